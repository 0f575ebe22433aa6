//! Resume across nodes (cluster mode): a client whose connection was lost
//! on node A reconnects to node B and presents its resume token there.
//!
//! 1. A, when the connection enters grace, says the token is resumable
//!    ([`HostEvent::ClusterResumable`]); its host records it in the store.
//! 2. B does not know the token: instead of `RESUME_FAILED` it asks its
//!    host to claim it ([`HostEvent::ClusterResumeClaim`]); the claim is
//!    atomic in the store (one claimer wins), then A's host is asked for
//!    the connection: [`Engine::cluster_handover`] forgets it on A with no
//!    event (its members stay in A's view, as another node's) and returns
//!    what it held.
//! 3. B's host hands that over: [`Engine::cluster_resume`] re-creates the
//!    rooms, subscriptions and members (same member id, same data) on the
//!    new connection, asks the store to re-own the members to B with no
//!    event (`clusterReplicate` with `op: "adopt"`), and acks the resume.
//!    Observers see nothing; the resumed client gets a `resync` per room it
//!    watches (at once, or when B first reads a room it did not follow).
//!
//! Realm subscriptions are carried too (those the new connection's token
//! lets it read); a provider role is the new connection's own (from its
//! token), so its objects stay `connected` on every node.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::cluster::{remote_key, LocalMember, WireMember};
use super::connection::JoinedRoom;
use super::room::PresenceSub;
use super::{Close, ConnectionId, Engine, HostEvent, Output};
use crate::auth::permissions::Crud;
use crate::auth::RoomAction;
use crate::error::{CloseCode, Error, ErrorCode};
use crate::protocol::reply::AckBody;
use crate::protocol::request::{EventMask, View};
use crate::time::Millis;

/// A `resume` waiting for its claim (on the node it arrived at).
#[derive(Debug)]
pub(crate) struct PendingResume {
    reference: Option<Box<RawValue>>,
    epoch: Option<u64>,
    since: std::collections::BTreeMap<String, u64>,
}

/// What a handed-over connection held, between nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Handover {
    /// clientId
    c: String,
    /// member id
    id: String,
    rooms: Vec<HandedRoom>,
    /// Its realm subscriptions: (realm, event or none for objects, pattern).
    #[serde(default)]
    realms: Vec<(String, Option<String>, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandedRoom {
    r: String,
    /// Its member, as stored, if it had one.
    #[serde(default)]
    m: Option<WireMember>,
    /// Its presence subscription: event mask bits, client view.
    #[serde(default)]
    p: Option<(u8, bool)>,
    /// Its event subscriptions.
    #[serde(default)]
    ev: Vec<String>,
}

impl Engine {
    /// `resume` with a token this engine does not know, in cluster mode:
    /// holds the request and asks the host to claim the token.
    pub(super) fn claim_remote_resume(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        token: &str,
        epoch: Option<u64>,
        since: std::collections::BTreeMap<String, u64>,
    ) {
        let reference = r.map(RawValue::to_owned);
        self.pending_resumes.insert(conn, PendingResume { reference, epoch, since });
        self.event(HostEvent::ClusterResumeClaim { connection: conn, token: token.to_string() });
    }

    /// On the node that holds the connection whose resume token is
    /// `token`: forgets it with no event for anyone (its members stay, as
    /// another node's) and returns what it held, for
    /// [`Engine::cluster_resume`] on the claiming node. `None` if no
    /// connection here has that token.
    pub fn cluster_handover(&mut self, token: &str, now: Millis) -> Option<String> {
        self.config.cluster.as_ref()?;
        let old = *self.resume_tokens.get(token)?;
        let c = self.connections.get(&old)?;
        let realms = c.realm_subs.iter().map(|s| (s.realm.clone(), s.event.clone(), s.pattern.clone())).collect();
        let (client_id, id) = (c.client_id.as_deref()?.to_string(), c.presence_id.to_string());
        let live = c.grace_until.is_none();
        let names: Vec<String> = c.rooms.keys().cloned().collect();
        let mut rooms = Vec::new();
        let mut uncharge = 0;
        for name in names {
            let next_key = &mut self.remote_keys;
            let Some(rm) = self.rooms.get_mut(&name) else { continue };
            let m = rm.sync.local.remove(&old).and_then(|m| {
                rm.sync.local_ids.remove(&m.id);
                uncharge += super::budget::entry_bytes(m.data_len);
                serde_json::from_str::<WireMember>(&m.wire).ok()
            });
            let p = rm.presence_subs.get(&old).map(|s| (s.events.bits(), s.view == View::Client));
            let ev = rm.event_subs.iter().filter(|(_, s)| s.contains(&old)).map(|(e, _)| e.clone()).collect();
            // Its member stays in this node's view, as another node's now.
            if let Some(member) = rm.members.remove(&old) {
                let key = remote_key(next_key);
                rm.in_grace.remove(&old);
                if let Some(devices) = rm.clients.get_mut(&member.client_id) {
                    devices.remove(&old);
                    devices.insert(key);
                }
                rm.sync.keys.insert(Arc::clone(&member.id), key);
                rm.members.insert(key, member);
            }
            rm.unsubscribe_all(old);
            rm.joined.remove(&old);
            if rm.is_empty() {
                self.rooms.remove(&name);
                self.event(HostEvent::ClusterUnwatch { room: name.clone() });
            }
            rooms.push(HandedRoom { r: name, m, p, ev });
        }
        self.charge(0, uncharge);
        if let Some(c) = self.connections.get_mut(&old) {
            c.rooms.clear();
            c.subscriptions = 0;
        }
        self.drop_all_realm_subs(old);
        self.set_provides(old, None, now);
        self.forget(old);
        if live {
            let reason = CloseCode::Resumed.as_str().to_string();
            self.outputs.push_back(Output::Close(Close { connection: old, code: CloseCode::Resumed, reason }));
        }
        self.event(HostEvent::Closed { connection: old });
        // Strings, numbers and RawValues: serialising cannot fail.
        serde_json::to_string(&Handover { c: client_id, id, rooms, realms }).ok()
    }

    /// On the node a `resume` arrived at: the claimed connection's state
    /// from [`Engine::cluster_handover`] (`None`: the claim failed, the
    /// client gets `RESUME_FAILED`). Re-creates its rooms (those its grants
    /// still allow), subscriptions and members on `conn`, and acks the
    /// resume. `Err` only for state that is not a handover (the client gets
    /// `RESUME_FAILED` too).
    pub fn cluster_resume(&mut self, conn: ConnectionId, state: Option<&str>, now: Millis) -> Result<(), Error> {
        let Some(pending) = self.pending_resumes.remove(&conn) else { return Ok(()) };
        let r = pending.reference.as_deref();
        let parsed = match state.map(serde_json::from_str::<Handover>) {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                self.reject(conn, r, ErrorCode::ResumeFailed, "no connection to resume with this token", now);
                return Err(Error::InvalidJson(format!("cluster handover: {e}")));
            }
            None => None,
        };
        let Some(c) = self.connections.get(&conn) else { return Ok(()) };
        let usable = parsed.filter(|h| c.client_id.as_deref() == Some(h.c.as_str()) && c.rooms.is_empty());
        let Some(h) = usable else {
            self.reject(conn, r, ErrorCode::ResumeFailed, "no connection to resume with this token", now);
            return Ok(());
        };
        let Some(node) = self.cluster_node().map(str::to_string) else { return Ok(()) };
        let Some(grants) = c.grants().cloned() else { return Ok(()) };
        let id: Arc<str> = h.id.into();
        for room in h.rooms {
            if self.connections.get(&conn).is_some_and(|c| c.rooms.contains_key(&room.r)) {
                continue; // listed twice: the engine never writes that, a host might
            }
            let actions = grants.actions_for(&room.r);
            if !actions.allows(RoomAction::Subscribe) {
                continue;
            }
            let rm = self.rooms.entry(room.r.clone()).or_default();
            if rm.joined.is_empty() {
                self.outputs.push_back(Output::Event(HostEvent::ClusterWatch { room: room.r.clone() }));
            }
            rm.joined.insert(conn);
            let mut subscriptions = 0;
            if let Some((bits, client)) = room.p {
                let view = if client { View::Client } else { View::Connection };
                rm.presence_subs.insert(conn, PresenceSub { events: EventMask::from_bits(bits), view });
                subscriptions += 1;
            }
            for event in room.ev {
                rm.event_subs.entry(event).or_default().insert(conn);
                subscriptions += 1;
            }
            let mut adopt = None;
            if let Some(w) = room.m.filter(|_| actions.allows(RoomAction::Presence)) {
                let data_len = w.d.as_ref().map_or(0, |d| d.get().len());
                let w = WireMember { n: node.clone(), g: false, ..w };
                let wire = serde_json::to_string(&w).unwrap_or_default();
                rm.sync.local.insert(conn, LocalMember { id: Arc::clone(&id), wire: wire.clone(), data_len });
                rm.sync.local_ids.insert(Arc::clone(&id), conn);
                // The member was another node's in this view: it is this connection's now.
                if let Some(key) = rm.sync.keys.get(&id).copied() {
                    if let Some(member) = rm.members.remove(&key) {
                        if let Some(devices) = rm.clients.get_mut(&member.client_id) {
                            devices.remove(&key);
                            devices.insert(conn);
                        }
                        rm.members.insert(conn, member);
                        rm.sync.keys.insert(Arc::clone(&id), conn);
                    }
                }
                adopt = Some((wire, data_len));
            }
            let Some(c) = self.connections.get_mut(&conn) else { continue };
            c.rooms.insert(room.r.clone(), JoinedRoom { actions, subscriptions });
            c.subscriptions += subscriptions;
            self.event(HostEvent::RoomJoined { connection: conn, room: room.r.clone() });
            if let Some((wire, data_len)) = adopt {
                self.charge(super::budget::entry_bytes(data_len), 0);
                let event =
                    HostEvent::ClusterReplicate { room: room.r, op: "adopt", id: id.to_string(), member: Some(wire) };
                self.event(event);
            }
        }
        for (realm, event, pattern) in h.realms {
            if self.permissions(conn).allows_somewhere(&realm, Crud::READ) {
                // Past the limits or the budget here: not carried, like a refused subscribe.
                let _ = self.add_realm_sub(conn, super::objects::RealmSub { realm, event, pattern });
            }
        }
        let Some(c) = self.connections.get_mut(&conn) else { return Ok(()) };
        c.presence_id = Arc::clone(&id);
        let token = c.resume_token.clone();
        let body =
            AckBody { id: Some(&id), resume_token: token.as_deref(), epoch: Some(self.epoch), ..AckBody::default() };
        self.ack(conn, r, "resume", body);
        self.catch_up(conn, pending.epoch, &pending.since);
        self.recharge(conn);
        Ok(())
    }
}
