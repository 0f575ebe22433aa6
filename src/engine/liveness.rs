//! Liveness: a connection that shows no sign of life for
//! `idle_timeout_ms` is lost (closed with 4010 `STALE`, then in grace).
//!
//! A sign of life is any frame, or [`Engine::handle_alive`] (a protocol
//! pong the host saw). Recording one costs a store: each connection has at
//! most one idle check scheduled, which, when due, either finds the
//! connection silent or moves itself to `last_seen + idle_timeout_ms`.

use super::{ConnectionId, Engine};
use crate::error::CloseCode;
use crate::time::Millis;

impl Engine {
    /// A sign of life other than a frame (a pong to the host's protocol
    /// ping). Unknown and lost connections are ignored.
    pub fn handle_alive(&mut self, conn: ConnectionId, now: Millis) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        if c.grace_until.is_none() && now > c.last_seen {
            c.last_seen = now;
            // A change record only when something changed: a host that
            // sweeps every socket (a Durable Object's alarm) rewrites only
            // the records of those that pinged since.
            self.dirty_conn(conn);
        }
    }

    /// Schedules the next idle check of `conn` at `from + idle_timeout_ms`.
    pub(super) fn schedule_idle_check(&mut self, conn: ConnectionId, from: Millis) {
        let idle = self.config.idle_timeout_ms;
        let Some(c) = self.connections.get_mut(&conn) else { return };
        if let Some(old) = c.idle_check.take() {
            self.idle.remove(&(old, conn));
        }
        if idle == 0 || c.grace_until.is_some() {
            return;
        }
        let at = crate::time::deadline(from, idle);
        c.idle_check = Some(at);
        self.idle.insert((at, conn));
    }

    /// An idle check is due: silent since `last_seen` for the whole
    /// timeout means lost; otherwise check again later.
    pub(super) fn idle_check(&mut self, at: Millis, conn: ConnectionId, now: Millis) {
        self.idle.remove(&(at, conn));
        let Some(c) = self.connections.get_mut(&conn) else { return };
        c.idle_check = None;
        let last_seen = c.last_seen;
        // Compared as the same clamped deadline, so that a clock at the end
        // of time (MAX_TIME) cannot reschedule the check forever.
        if crate::time::deadline(last_seen, self.config.idle_timeout_ms) > now {
            return self.schedule_idle_check(conn, last_seen);
        }
        let reason = CloseCode::Stale.as_str().to_string();
        self.outputs.push_back(super::Output::Close(super::Close { connection: conn, code: CloseCode::Stale, reason }));
        self.lose(conn, now);
    }
}
