//! Resume: a new connection that presents a lost connection's resume
//! token (and credentials for the same clientId) takes over its rooms,
//! presence members (same id, same data), subscriptions and provider role.
//! Others see nothing. The resumed client then gets, per room it watches,
//! the presence frames it missed (sequence.rs), or a `resync` snapshot.
//!
//! Tokens are HMAC-SHA256 under `resume_secret` of (epoch, connection,
//! a counter), hex: 256 bits nobody can guess without the key, no clock
//! or entropy read by the engine. Single use: a resume retires the old
//! connection's token; the resuming connection's own (from its welcome)
//! is the next one.

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use sha2::Sha256;

use super::connection::AuthState;
use super::presence::snapshot;
use super::{Close, ConnectionId, Engine, HostEvent, OpResult, Output, Refusal};
use crate::error::{CloseCode, ErrorCode};
use crate::protocol::reply::{self, AckBody};
use crate::time::Millis;

fn failed(message: &str) -> Refusal {
    Refusal(ErrorCode::ResumeFailed, message.to_string())
}

impl Engine {
    /// Mints `conn`'s resume token (none without `resume_secret`).
    pub(super) fn mint_resume_token(&mut self, conn: ConnectionId) -> Option<Arc<str>> {
        let secret = self.config.resume_secret.as_deref()?;
        self.minted += 1;
        // HMAC takes a key of any length: new_from_slice cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
        mac.update(format!("rollcall-resume:{}:{}:{}", self.epoch, conn.0, self.minted).as_bytes());
        let token: Arc<str> = hex(&mac.finalize().into_bytes()).into();
        self.dirty_meta();
        let c = self.connections.get_mut(&conn)?;
        if let Some(old) = c.resume_token.replace(Arc::clone(&token)) {
            self.resume_tokens.remove(&old);
        }
        self.resume_tokens.insert(Arc::clone(&token), conn);
        Some(token)
    }

    /// `resume`: see the module docs and docs/PROTOCOL.md.
    pub(super) fn resume(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        token: &str,
        epoch: Option<u64>,
        since: BTreeMap<String, u64>,
        now: Millis,
    ) -> OpResult {
        let c = self.connections.get(&conn).ok_or_else(super::unknown_connection)?;
        if !c.rooms.is_empty() || !c.realm_subs.is_empty() {
            return Err(failed("resume before joining a room or subscribing"));
        }
        let nobody = "no connection to resume with this token";
        let old = match self.resume_tokens.get(token) {
            Some(old) => *old,
            None if self.config.cluster.is_some() && c.client_id.is_some() => {
                // Perhaps another node's: the host claims it (cluster_resume.rs).
                self.claim_remote_resume(conn, r, token, epoch, since);
                return Ok(());
            }
            None => return Err(failed(nobody)),
        };
        let o = self.connections.get(&old).ok_or_else(|| failed(nobody))?;
        if old == conn || c.client_id.is_none() || o.client_id != c.client_id {
            return Err(failed(nobody));
        }
        let live = o.grace_until.is_none();
        self.transfer(old, conn, now);
        self.mark_grace(conn, false);
        if live {
            // Its socket is not known to be gone yet: it is, now. The close
            // comes after whatever the handover told it (its provider role
            // going away), never before a frame to it.
            let reason = CloseCode::Resumed.as_str().to_string();
            self.outputs.push_back(Output::Close(Close { connection: old, code: CloseCode::Resumed, reason }));
        }
        let c = self.connections.get(&conn).ok_or_else(super::unknown_connection)?;
        let (id, token) = (Arc::clone(&c.presence_id), c.resume_token.clone());
        let body =
            AckBody { id: Some(&id), resume_token: token.as_deref(), epoch: Some(self.epoch), ..AckBody::default() };
        self.ack(conn, r, "resume", body);
        self.catch_up(conn, epoch, &since);
        self.event(HostEvent::Resumed { connection: conn, previous: old });
        Ok(())
    }

    /// Hands `from`'s rooms, members, subscriptions and member id to `to`,
    /// and forgets `from`. `to` keeps its own credentials: rooms its grants
    /// no longer allow are left, and its own provider claim replaces
    /// `from`'s (objects both cover never change status).
    fn transfer(&mut self, from: ConnectionId, to: ConnectionId, now: Millis) {
        self.dirty_conn(from);
        self.set_provides(from, None, now);
        let Some(o) = self.connections.get_mut(&from) else { return };
        let rooms = std::mem::take(&mut o.rooms);
        let realm_subs = std::mem::take(&mut o.realm_subs);
        let (subscriptions, globs, presence_id) = (o.subscriptions, o.glob_subscriptions, Arc::clone(&o.presence_id));
        self.forget(from);
        for name in rooms.keys() {
            if let Some(rm) = self.rooms.get_mut(name) {
                rm.rename(from, to);
            }
        }
        for sub in &realm_subs {
            if let Some(rm) = self.realms.get_mut(&sub.realm) {
                let groups = match &sub.event {
                    None => Some(&mut rm.object_subs),
                    Some(event) => rm.event_subs.get_mut(event),
                };
                if let Some(w) = groups.and_then(|g| g.get_mut(sub.pattern.as_str())) {
                    if w.conns.remove(&from) {
                        w.conns.insert(to);
                    }
                }
            }
        }
        let Some(c) = self.connections.get_mut(&to) else { return };
        c.rooms = rooms;
        c.realm_subs = realm_subs;
        c.subscriptions += subscriptions;
        c.glob_subscriptions += globs;
        c.presence_id = presence_id;
        if let AuthState::Ready { grants } = &c.auth {
            let grants = Arc::clone(grants);
            self.apply_room_grants(to, &grants, now);
        }
    }

    /// Sends a resumed connection what it missed in each room it watches:
    /// the kept frames after its `since`, or a `resync` snapshot.
    pub(super) fn catch_up(&mut self, conn: ConnectionId, epoch: Option<u64>, since: &BTreeMap<String, u64>) {
        let Some(c) = self.connections.get(&conn) else { return };
        // What its rooms still hold for a flush goes to the others now; this
        // connection takes it below, with what it missed (coalesce.rs).
        let rooms: Vec<String> = c.rooms.keys().filter(|room| self.coalesces(room)).cloned().collect();
        for room in rooms {
            self.flush_room_except(&room, Some(conn));
        }
        let Some(c) = self.connections.get(&conn) else { return };
        let mut frames: Vec<Arc<str>> = Vec::new();
        for name in c.rooms.keys() {
            let Some(rm) = self.rooms.get(name) else { continue };
            let Some(sub) = rm.presence_subs.get(&conn) else { continue };
            if self.config.cluster.is_some() && rm.sync.epoch.is_none() {
                continue; // its first snapshot brings a resync to every subscriber
            }
            let room_epoch = self.room_epoch(rm);
            let kept = match (epoch, since.get(name)) {
                (Some(e), Some(&seq)) if e == room_epoch => rm.log.since(seq, sub.view, sub.events),
                _ => None,
            };
            match kept {
                Some(kept) => frames.extend(kept),
                None => frames.push(reply::resync(name, snapshot(rm, sub.view, room_epoch)).into()),
            }
        }
        for payload in frames {
            self.outputs.push_back(Output::Send(super::Transmit { to: vec![conn], payload }));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}
