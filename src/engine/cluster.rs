//! Cluster mode (`Config::cluster`): several engines, one per process,
//! share each room's presence set through an external store (Redis, in
//! the npm package's `rollcall/redis`). The engine stays sans-IO: it says
//! what must be replicated and is told what the store ordered.
//!
//! - A local presence change (join, update, leave) is not applied to the
//!   room at once: the engine acks it, tells its host
//!   ([`HostEvent::PresenceJoined`] and friends, as on one node) and asks
//!   for it to be replicated ([`HostEvent::ClusterReplicate`], with the
//!   member as `member` text to store).
//! - The store orders every change of a room (an epoch and a per-room
//!   `seq`) and hands it to every engine watching the room, the origin
//!   included: [`Engine::cluster_apply`]. Only then does the change reach
//!   the room's presence set and its subscribers, so that every engine
//!   applies the same changes in the same order, and `presence.get`, the
//!   subscribe snapshot, counts and the per-client view agree everywhere.
//! - An engine watches a room while a local connection has joined it
//!   ([`HostEvent::ClusterWatch`] / [`HostEvent::ClusterUnwatch`]). Changes
//!   that arrive before the room's first snapshot, or after a gap in `seq`,
//!   or in another epoch, are held and the engine asks for a snapshot
//!   ([`HostEvent::ClusterResync`]); [`Engine::cluster_snapshot`] replaces
//!   the set and sends each presence subscriber one `resync` frame (never a
//!   storm of leaves and joins), then applies the held changes after it.
//!
//! Members of other engines are keyed in the room by ids with the top bit
//! set ([`REMOTE_BIT`]), which a host never uses for a connection (the
//! engine refuses to open one in cluster mode). Their member ids carry
//! their engine's node name (`appId:node:connection`), so they never clash.
//!
//! Wire formats (JSON text, owned by the engine; a host stores and passes
//! them unparsed):
//!
//! - member: `{"id":..,"c":clientId,"d":data|null,"n":node}`
//! - change: `{"e":epoch,"s":seq,"op":"join"|"update"|"leave"|"resync","t":ms,"m":member}`
//!   (`op: "resync"` carries no member: the room's set was re-asserted
//!   without events, every engine re-reads it)
//! - snapshot: `{"e":epoch,"s":seq,"m":[member, ...]}`
//! - room event: `{"n":node,"ev":event,"f":frame}` (the `message` frame as
//!   sent on its node; room events are not numbered)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::presence::emit_frames;
use super::room::{Member, Room, Upsert};
use super::{budget, ConnectionId, Engine, HostEvent, OpResult, Output, Refusal, Transmit};
use crate::error::{Error, ErrorCode};
use crate::protocol::reply::{self, AckBody};
use crate::protocol::request::PresenceKind;
use crate::time::Millis;

/// Keys of members that live on other engines have this bit set.
pub const REMOTE_BIT: u64 = 1 << 63;

/// Changes held per room while waiting for a snapshot; past it they are
/// dropped (the snapshot brings their effect).
const MAX_HELD: usize = 4096;

/// Whether `conn` keys a member of another engine.
pub fn is_remote(conn: ConnectionId) -> bool {
    conn.0 & REMOTE_BIT != 0
}

/// A member as stored in the cluster's store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireMember {
    pub id: Arc<str>,
    pub c: Arc<str>,
    #[serde(default)]
    pub d: Option<Box<RawValue>>,
    pub n: String,
    /// Its connection is lost and in grace (shown `inGrace` on every node).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub g: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Join,
    Update,
    Leave,
    Resync,
}

/// One ordered change of a room.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    e: u64,
    s: u64,
    op: Op,
    #[serde(default)]
    t: Option<Millis>,
    #[serde(default)]
    m: Option<WireMember>,
}

/// A room event published on another node: its frame, as sent there.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Published<'a> {
    n: &'a str,
    ev: &'a str,
    #[serde(borrow)]
    f: &'a RawValue,
}

/// A member's grace mark changed (no event, not numbered): its stored text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    mark: WireMember,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    e: u64,
    s: u64,
    m: Vec<WireMember>,
}

/// A local connection's member, as this engine asked the store to hold it.
#[derive(Debug)]
pub(crate) struct LocalMember {
    pub id: Arc<str>,
    /// The member as stored (wire format).
    pub wire: String,
    pub data_len: usize,
}

/// A room's cluster state (empty and unused on a single node).
#[derive(Debug, Default)]
pub(crate) struct RoomSync {
    /// The store's epoch for the room, once a snapshot came.
    pub epoch: Option<u64>,
    /// A resync was asked and has not come yet.
    asked: bool,
    /// Changes ahead of `log.seq + 1` (or before the first snapshot).
    held: BTreeMap<u64, Change>,
    /// Member id -> its key in `Room::members`.
    pub keys: HashMap<Arc<str>, ConnectionId>,
    /// Local connections that are members as far as the store is told.
    pub local: BTreeMap<ConnectionId, LocalMember>,
    /// Member id -> local connection, for those.
    pub local_ids: HashMap<Arc<str>, ConnectionId>,
}

impl RoomSync {
    /// A resume on this engine: `to` holds what `from` held.
    pub(crate) fn rename(&mut self, from: ConnectionId, to: ConnectionId) {
        if let Some(m) = self.local.remove(&from) {
            self.local_ids.insert(Arc::clone(&m.id), to);
            self.local.insert(to, m);
        }
        for key in self.keys.values_mut() {
            if *key == from {
                *key = to;
            }
        }
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidJson(format!("cluster {what}: {e}"))
}

impl Engine {
    /// The node name in cluster mode.
    pub(super) fn cluster_node(&self) -> Option<&str> {
        self.config.cluster.as_ref().map(|c| c.node.as_str())
    }

    /// The epoch presence frames of `rm` carry: the store's in cluster mode.
    pub(super) fn room_epoch(&self, rm: &Room) -> u64 {
        rm.sync.epoch.unwrap_or(self.epoch)
    }

    /// Cluster mode's `presence.join` / `presence.update` once the request
    /// is checked up to its data size: the room limit (members the store
    /// ordered, plus this one), the budget, the ack, then replication.
    pub(super) fn cluster_presence_set(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        op: &str,
        room: &str,
        data: Option<&RawValue>,
    ) -> OpResult {
        let max_members = self.config.limits.max_members_per_room;
        let c = self.connections.get(&conn).ok_or_else(super::unknown_connection)?;
        let (id, client_id) = (Arc::clone(&c.presence_id), c.client_id.clone().unwrap_or_default());
        let rm = self.rooms.get(room).ok_or_else(super::presence::not_joined)?;
        let old = rm.sync.local.get(&conn).map(|m| budget::entry_bytes(m.data_len));
        if old.is_none() && !rm.members.contains_key(&conn) && rm.members.len() >= max_members {
            return Err(Refusal(ErrorCode::RoomFull, format!("room {room:?} holds {max_members} members")));
        }
        let new = budget::entry_bytes(data.map_or(0, |d| d.get().len()));
        let old = old.unwrap_or(0);
        self.budget_allows(new, old)?;
        self.ack(conn, r, op, AckBody::default());
        self.replicate_set(conn, room, id, client_id, data);
        self.charge(new, old);
        Ok(())
    }

    /// Remembers a local member, asks for it to be replicated, and tells
    /// the host (`presenceJoined` or `presenceUpdated`, at once).
    fn replicate_set(
        &mut self,
        conn: ConnectionId,
        room: &str,
        id: Arc<str>,
        client_id: Arc<str>,
        data: Option<&RawValue>,
    ) {
        let Some(node) = self.cluster_node().map(str::to_string) else { return };
        let in_grace = self.connections.get(&conn).is_some_and(|c| c.grace_until.is_some());
        let (c, d) = (Arc::clone(&client_id), data.map(RawValue::to_owned));
        let wire = WireMember { id: Arc::clone(&id), c, d, n: node, g: in_grace };
        // Plain strings and a RawValue: serialising cannot fail.
        let text = serde_json::to_string(&wire).unwrap_or_default();
        let Some(rm) = self.rooms.get_mut(room) else { return };
        let data_len = data.map_or(0, |d| d.get().len());
        let old = rm.sync.local.insert(conn, LocalMember { id: Arc::clone(&id), wire: text.clone(), data_len });
        rm.sync.local_ids.insert(Arc::clone(&id), conn);
        let (room, data) = (room.to_string(), data.map(|d| d.get().to_string()));
        let op = if old.is_some() { "update" } else { "join" };
        self.event(HostEvent::ClusterReplicate { room: room.clone(), op, id: id.to_string(), member: Some(text) });
        let client_id = client_id.to_string();
        self.event(match old {
            Some(_) => HostEvent::PresenceUpdated { room, connection: conn, client_id, data },
            None => HostEvent::PresenceJoined { room, connection: conn, client_id, data },
        });
    }

    /// Cluster mode's leave of a local member: asks for it to be replicated.
    /// Returns the data bytes it held (for the budget), or `None` if `conn`
    /// was not a member.
    pub(super) fn replicate_leave(&mut self, conn: ConnectionId, room: &str) -> Option<usize> {
        let rm = self.rooms.get_mut(room)?;
        let m = rm.sync.local.remove(&conn)?;
        if rm.sync.local_ids.get(&m.id) == Some(&conn) {
            rm.sync.local_ids.remove(&m.id);
        }
        let client_id = serde_json::from_str::<WireMember>(&m.wire).map(|w| w.c.to_string()).unwrap_or_default();
        let room = room.to_string();
        self.event(HostEvent::ClusterReplicate { room: room.clone(), op: "leave", id: m.id.to_string(), member: None });
        self.event(HostEvent::PresenceLeft { room, connection: conn, client_id });
        Some(m.data_len)
    }

    /// Cluster mode: `conn` entered grace or left it (resumed here): its
    /// members' stored texts carry the mark, for every node's `inGrace`
    /// (`op: "mark"`: stored and published with no event).
    pub(super) fn mark_grace(&mut self, conn: ConnectionId, in_grace: bool) {
        if self.config.cluster.is_none() {
            return;
        }
        let rooms: Vec<String> =
            self.connections.get(&conn).map(|c| c.rooms.keys().cloned().collect()).unwrap_or_default();
        for room in rooms {
            let Some(m) = self.rooms.get_mut(&room).and_then(|rm| rm.sync.local.get_mut(&conn)) else { continue };
            let Ok(mut w) = serde_json::from_str::<WireMember>(&m.wire) else { continue };
            if w.g == in_grace {
                continue;
            }
            w.g = in_grace;
            // Plain strings and a RawValue: serialising cannot fail.
            m.wire = serde_json::to_string(&w).unwrap_or_default();
            let (id, member) = (m.id.to_string(), Some(m.wire.clone()));
            self.event(HostEvent::ClusterReplicate { room, op: "mark", id, member });
        }
    }

    /// Another node's member entered or left grace: only its `inGrace` mark changes.
    fn apply_mark(&mut self, room: &str, w: &WireMember) {
        if self.cluster_node() == Some(w.n.as_str()) {
            return; // this node's own: it knows
        }
        let Some(rm) = self.rooms.get_mut(room) else { return };
        let Some(key) = rm.sync.keys.get(&w.id).copied() else { return };
        if rm.members.contains_key(&key) {
            set_grace(rm, key, w.g);
        }
    }

    /// Cluster mode: a room event sent here goes to the other nodes too.
    pub(super) fn replicate_publish(&mut self, room: &str, event: &str, frame: &str) {
        let Some(node) = self.cluster_node() else { return };
        // The frame is the engine's own JSON: it parses.
        let Ok(f) = serde_json::from_str::<&RawValue>(frame) else { return };
        let Ok(message) = serde_json::to_string(&Published { n: node, ev: event, f }) else { return };
        self.event(HostEvent::ClusterPublish { room: room.to_string(), message });
    }

    /// A room event from another node: to this node's subscribers of it.
    fn apply_published(&mut self, room: &str, p: &Published<'_>) {
        if self.cluster_node() == Some(p.n) {
            return; // sent here already
        }
        let Some(rm) = self.rooms.get(room) else { return };
        let to = rm.event_recipients(p.ev);
        self.send(to, p.f.get().to_string());
    }

    /// This engine's own members of `room` in the store's format, for a
    /// host that re-asserts them (after the store lost its state, or a
    /// network blip). Empty on a single node.
    pub fn cluster_local_members(&self, room: &str) -> Vec<String> {
        self.rooms.get(room).map_or_else(Vec::new, |rm| rm.sync.local.values().map(|m| m.wire.clone()).collect())
    }

    /// A change of `room` the store ordered (wire format, see the module
    /// docs), from any engine, this one included; or a room event another
    /// engine published (sent to this engine's subscribers of it). Changes must come in the
    /// order the store gave them; a duplicate is ignored, a gap or an
    /// unknown epoch holds it and asks for a snapshot
    /// ([`HostEvent::ClusterResync`]). A room no local connection joined
    /// is ignored. `Err` only for text that is not a change (nothing changed).
    pub fn cluster_apply(&mut self, room: &str, change: &str, now: Millis) -> Result<(), Error> {
        if self.config.cluster.is_none() {
            return Err(Error::InvalidName("cluster_apply needs the `cluster` option".into()));
        }
        let change: Change = match serde_json::from_str(change) {
            Ok(change) => change,
            Err(e) => {
                if let Ok(p) = serde_json::from_str::<Published<'_>>(change) {
                    self.apply_published(room, &p);
                } else {
                    let mark = serde_json::from_str::<Mark>(change).map_err(|_| bad("change", e))?;
                    self.apply_mark(room, &mark.mark);
                }
                return Ok(());
            }
        };
        if change.op != Op::Resync && change.op != Op::Leave && change.m.is_none() {
            return Err(bad("change", "join and update carry `m`"));
        }
        let Some(rm) = self.rooms.get_mut(room) else { return Ok(()) };
        let sync = &mut rm.sync;
        if change.op == Op::Resync {
            // Before the first snapshot there is nothing to re-read yet.
            if sync.epoch.is_some() {
                self.ask_resync(room);
            }
            return Ok(());
        }
        match sync.epoch {
            Some(e) if e == change.e && change.s <= rm.log.seq => Ok(()),
            Some(e) if e == change.e && change.s == rm.log.seq.saturating_add(1) => {
                self.apply_change(room, change, now);
                self.apply_held(room, now);
                Ok(())
            }
            _ => {
                if sync.held.len() < MAX_HELD {
                    sync.held.insert(change.s, change);
                }
                if sync.epoch.is_some() {
                    self.ask_resync(room);
                }
                Ok(())
            }
        }
    }

    /// The store's whole presence set of `room` (wire format, see the
    /// module docs), at its epoch and seq. Replaces the room's set; each
    /// presence subscriber gets one `resync` frame if the set or the epoch
    /// changed. Then held changes after it are applied. A snapshot older
    /// than what the room has applied is ignored. `Err` only for text that
    /// is not a snapshot (nothing changed).
    pub fn cluster_snapshot(&mut self, room: &str, snapshot: &str, now: Millis) -> Result<(), Error> {
        if self.config.cluster.is_none() {
            return Err(Error::InvalidName("cluster_snapshot needs the `cluster` option".into()));
        }
        let snap: Snapshot = serde_json::from_str(snapshot).map_err(|e| bad("snapshot", e))?;
        let Some(node) = self.cluster_node().map(str::to_string) else { return Ok(()) };
        let next_key = &mut self.remote_keys;
        let Some(rm) = self.rooms.get_mut(room) else { return Ok(()) };
        rm.sync.asked = false;
        if rm.sync.epoch == Some(snap.e) && snap.s < rm.log.seq {
            self.apply_held(room, now);
            return Ok(());
        }
        let before: BTreeMap<Arc<str>, (Arc<str>, Option<String>)> =
            rm.members.values().map(|m| (Arc::clone(&m.id), (Arc::clone(&m.client_id), data_text(m)))).collect();
        let epoch_changed = rm.sync.epoch != Some(snap.e);
        // Rebuild the set, keeping each member's key.
        let old_keys = std::mem::take(&mut rm.sync.keys);
        let in_grace = std::mem::take(&mut rm.in_grace);
        rm.members.clear();
        rm.clients.clear();
        let mut remote_grace = Vec::new();
        for w in snap.m {
            if rm.sync.keys.contains_key(&w.id) {
                continue; // listed twice: the store never does, a host might
            }
            let key = match (old_keys.get(&w.id), rm.sync.local_ids.get(&w.id)) {
                (_, Some(local)) if w.n == node => *local,
                (Some(key), _) => *key,
                _ => remote_key(next_key),
            };
            if w.g && w.n != node {
                remote_grace.push(key);
            }
            rm.sync.keys.insert(Arc::clone(&w.id), key);
            let _ = rm.upsert(key, Member { id: w.id, client_id: w.c, data: w.d });
        }
        // This node's own marks are its own; other nodes' come from the store.
        rm.in_grace = in_grace.into_iter().filter(|c| rm.members.contains_key(c) && !is_remote(*c)).collect();
        rm.in_grace.extend(remote_grace);
        let after: BTreeMap<Arc<str>, (Arc<str>, Option<String>)> =
            rm.members.values().map(|m| (Arc::clone(&m.id), (Arc::clone(&m.client_id), data_text(m)))).collect();
        if epoch_changed || snap.s != rm.log.seq {
            // Frames kept for replay numbered another way: a resume resyncs.
            rm.log.floor = snap.s;
            rm.log.buffer.clear();
        }
        rm.sync.epoch = Some(snap.e);
        rm.log.seq = snap.s;
        rm.sync.held.retain(|s, c| *s > snap.s && c.e == snap.e);
        if epoch_changed || before != after {
            let mut frames = Vec::new();
            for (conn, sub) in &rm.presence_subs {
                let body = super::presence::snapshot(rm, sub.view, snap.e);
                frames.push((*conn, Arc::<str>::from(reply::resync(room, body))));
            }
            for (conn, payload) in frames {
                self.outputs.push_back(Output::Send(Transmit { to: vec![conn], payload }));
            }
        }
        self.apply_held(room, now);
        Ok(())
    }

    /// Applies held changes that follow the room's seq; asks for a
    /// snapshot if some are held past a gap.
    fn apply_held(&mut self, room: &str, now: Millis) {
        loop {
            let Some(rm) = self.rooms.get_mut(room) else { return };
            let next = rm.log.seq.saturating_add(1);
            rm.sync.held.retain(|s, _| *s >= next);
            let Some(first) = rm.sync.held.keys().next().copied() else { return };
            if first != next {
                return self.ask_resync(room);
            }
            let Some(change) = rm.sync.held.remove(&first) else { return };
            if Some(change.e) != rm.sync.epoch {
                return self.ask_resync(room);
            }
            self.apply_change(room, change, now);
        }
    }

    fn ask_resync(&mut self, room: &str) {
        let Some(rm) = self.rooms.get_mut(room) else { return };
        if !rm.sync.asked {
            rm.sync.asked = true;
            self.event(HostEvent::ClusterResync { room: room.to_string() });
        }
    }

    /// Applies one change that is next in order: the set changes and the
    /// room's subscribers get the event, numbered with the store's seq.
    fn apply_change(&mut self, room: &str, change: Change, now: Millis) {
        let node = self.cluster_node().map(str::to_string).unwrap_or_default();
        let (cap, at) = (self.config.replay_events, change.t.unwrap_or(now));
        let next_key = &mut self.remote_keys;
        let Some(rm) = self.rooms.get_mut(room) else { return };
        rm.log.seq = change.s;
        let numbered = (change.e, change.s);
        let kept = match (change.op, change.m) {
            (Op::Leave, Some(w)) => {
                let Some(key) = rm.sync.keys.remove(&w.id) else { return };
                let Some((member, last_of_client)) = rm.remove(key) else { return };
                let leave = PresenceKind::Leave;
                emit_frames(&mut self.outputs, room, rm, &member, leave, last_of_client, at, numbered)
            }
            (Op::Join | Op::Update, Some(w)) => {
                let key = match (rm.sync.keys.get(&w.id), rm.sync.local_ids.get(&w.id)) {
                    (Some(key), _) => *key,
                    (None, Some(local)) if w.n == node => *local,
                    _ => remote_key(next_key),
                };
                rm.sync.keys.insert(Arc::clone(&w.id), key);
                if w.n != node {
                    set_grace(rm, key, w.g);
                }
                let (kind, client_edge) = match rm.upsert(key, Member { id: w.id, client_id: w.c, data: w.d }) {
                    Upsert::Joined { first_of_client } => (PresenceKind::Join, first_of_client),
                    Upsert::Updated => (PresenceKind::Update, true),
                };
                let Some(member) = rm.members.get(&key) else { return };
                emit_frames(&mut self.outputs, room, rm, member, kind, client_edge, at, numbered)
            }
            _ => return,
        };
        rm.log.keep_all(kept, cap);
    }
}

fn set_grace(rm: &mut Room, key: ConnectionId, in_grace: bool) {
    if in_grace {
        rm.in_grace.insert(key);
    } else {
        rm.in_grace.remove(&key);
    }
}

pub(crate) fn remote_key(next: &mut u64) -> ConnectionId {
    *next += 1;
    ConnectionId(REMOTE_BIT | (*next & !REMOTE_BIT))
}

fn data_text(m: &Member) -> Option<String> {
    m.data.as_ref().map(|d| d.get().to_string())
}
