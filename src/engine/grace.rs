//! Leave grace: a connection lost abnormally keeps its rooms, presence
//! memberships, subscriptions and provider role for `leave_grace_ms`, with
//! nothing sent to others. At the end it goes as if closed (one `leave`
//! per presence set, its objects `disconnected`), unless another
//! connection resumed it first (resume.rs).

use super::connection::AuthState;
use super::{ConnectionId, Engine, HostEvent};
use crate::time::Millis;

impl Engine {
    /// The socket dropped without a clean close (1006, an error, a
    /// terminate, a silent peer the host gave up on). With a non-zero
    /// `leave_grace_ms` an authenticated connection enters grace; otherwise,
    /// or if it never authenticated, this is [`Engine::handle_close`].
    /// Unknown and already lost connections are ignored.
    pub fn handle_lost(&mut self, conn: ConnectionId, now: Millis) {
        self.dirty_conn(conn);
        self.lose(conn, now);
    }

    pub(super) fn lose(&mut self, conn: ConnectionId, now: Millis) {
        let grace = self.config.leave_grace_ms;
        let Some(c) = self.connections.get_mut(&conn) else { return };
        if c.grace_until.is_some() {
            return;
        }
        if grace == 0 || matches!(c.auth, AuthState::Pending) {
            return self.remove_connection(conn, now);
        }
        let until = crate::time::deadline(now, grace);
        c.grace_until = Some(until);
        self.outputs.set_lost(conn, true);
        let rooms: Vec<String> = c.rooms.keys().cloned().collect();
        self.grace.insert((until, conn));
        self.schedule_idle_check(conn, now); // cancels it
        for room in rooms {
            if let Some(rm) = self.rooms.get_mut(&room) {
                if rm.members.contains_key(&conn) {
                    rm.in_grace.insert(conn);
                }
            }
        }
        self.mark_grace(conn, true);
        self.event(HostEvent::ConnectionLost { connection: conn, grace_until: until });
        let token = self.connections.get(&conn).and_then(|c| c.resume_token.as_deref().map(str::to_string));
        if let (Some(token), true) = (token, self.config.cluster.is_some()) {
            self.event(HostEvent::ClusterResumable { connection: conn, token, grace_until: until });
        }
    }

    /// The grace of `conn` ends: it goes, as if its socket closed now.
    pub(super) fn end_grace(&mut self, at: Millis, conn: ConnectionId, now: Millis) {
        self.grace.remove(&(at, conn));
        if let Some(c) = self.connections.get_mut(&conn) {
            c.grace_until = None;
            self.outputs.set_lost(conn, false);
            self.remove_connection(conn, now);
        }
    }

    /// Whether `conn` is lost and in grace.
    pub fn in_grace(&self, conn: ConnectionId) -> bool {
        self.connections.get(&conn).is_some_and(|c| c.grace_until.is_some())
    }
}
