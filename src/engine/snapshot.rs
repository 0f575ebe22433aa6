//! Snapshot and restore: the whole state in a compact, versioned encoding,
//! so that a host whose memory is dropped (a hibernating Durable Object) can
//! come back exactly as it was.
//!
//! Layout: the 4 bytes `RCSN`, the format version as a little-endian `u32`,
//! then the state in postcard. A snapshot of another version is refused
//! before its body is read. Compiled forms (grants, permissions, patterns,
//! the provider index) are not stored: they are rebuilt from the claims.
//!
//! Take a snapshot after draining [`Engine::poll_output`]: pending outputs
//! are not part of it. Open presence windows (`presence.flushIntervalMs`)
//! are: they follow the state, only when there are any, and flush at
//! their time after a restore.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::coalesce::Pending;
use super::connection::{AuthState, Connection, JoinedRoom};
use super::objects::RealmSub;
use super::realm::{self, Object, Realm};
use super::room::{Member, PresenceSub, Room};
use super::sequence::Replayed;
use super::{budget, ConnectionId, Engine};
use crate::auth::permissions::{PermissionClaim, ProviderClaim};
use crate::auth::{Identity, RoomAction};
use crate::config::Config;
use crate::error::Error;
use crate::protocol::request::{EventMask, View};
use crate::rate::TokenBucket;
use crate::time::MAX_TIME;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 2;
const MAGIC: &[u8; 4] = b"RCSN";

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes do not start with a rollcall snapshot header.
    NotASnapshot,
    /// Written by another format version; never read as this one.
    Version { found: u32, supported: u32 },
    /// The body does not decode, or refers to things that are not in it.
    Corrupt(String),
    /// The snapshot does not fit the configuration it is restored with
    /// (another appId, claims the configuration refuses).
    Mismatch(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::NotASnapshot => write!(f, "not a rollcall snapshot"),
            SnapshotError::Version { found, supported } => {
                write!(f, "snapshot format version {found}; this build reads version {supported}")
            }
            SnapshotError::Corrupt(why) => write!(f, "corrupt snapshot: {why}"),
            SnapshotError::Mismatch(why) => write!(f, "snapshot does not fit this configuration: {why}"),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct State {
    pub(super) app_id: String,
    pub(super) epoch: u64,
    /// Resume tokens minted so far.
    pub(super) minted: u64,
    pub(super) connections: Vec<ConnState>,
    pub(super) rooms: Vec<RoomState>,
    pub(super) realms: Vec<RealmState>,
}

/// Identity with plain fields (postcard is not self-describing).
#[derive(Serialize, Deserialize)]
pub(super) struct IdentityState {
    pub(super) client_id: Option<String>,
    pub(super) rooms: Option<BTreeMap<String, Vec<RoomAction>>>,
    pub(super) expires_at: Option<u64>,
    pub(super) per: Option<PermissionClaim>,
    pub(super) dpv: Option<ProviderClaim>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ConnState {
    pub(super) id: u64,
    /// Its member id (another connection's, once it resumed one).
    pub(super) presence_id: String,
    pub(super) identity: Option<IdentityState>,
    pub(super) deadline: Option<u64>,
    pub(super) last_seen: u64,
    pub(super) idle_check: Option<u64>,
    pub(super) grace_until: Option<u64>,
    pub(super) resume_token: Option<String>,
    pub(super) rate: (u64, u64),
    pub(super) violations: (u64, u64),
    pub(super) rooms: Vec<String>,
    /// (realm, event or none for objects, pattern)
    pub(super) realm_subs: Vec<(String, Option<String>, String)>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct RoomState {
    pub(super) name: String,
    pub(super) joined: Vec<u64>,
    /// (connection, clientId, data as JSON text)
    pub(super) members: Vec<(u64, String, Option<String>)>,
    /// (connection, event bits, per-client view)
    pub(super) presence_subs: Vec<(u64, u8, bool)>,
    pub(super) event_subs: Vec<(String, Vec<u64>)>,
    /// Presence seq, replay floor, and kept frames (seq, kind bit, per-client view, text).
    pub(super) seq: u64,
    pub(super) floor: u64,
    pub(super) replay: Vec<(u64, u8, bool, String)>,
}

/// A room's open presence window (coalesce.rs), written after the state
/// only when some window is open, so that snapshots without one are byte
/// for byte those of builds without coalescing. (kind bit, client edge,
/// time, member id, clientId, data as JSON text) per pending change.
#[derive(Serialize, Deserialize)]
pub(super) struct WindowState {
    room: String,
    due: u64,
    events: Vec<(u8, bool, u64, String, String, Option<String>)>,
}

/// `room`'s open presence window, if one is open.
pub(super) fn window_state(name: &str, r: &Room) -> Option<WindowState> {
    let due = r.window.due?;
    let events = r
        .window
        .pending()
        .map(|e| {
            let data = e.data.as_ref().map(|d| d.get().to_string());
            (EventMask::of(e.kind).bits(), e.client_edge, e.at, e.id.to_string(), e.client_id.to_string(), data)
        })
        .collect();
    Some(WindowState { room: name.to_string(), due, events })
}

#[derive(Serialize, Deserialize)]
pub(super) struct RealmState {
    pub(super) name: String,
    /// (id, data as JSON text, live providers)
    pub(super) objects: Vec<(String, Option<String>, u32)>,
}

fn corrupt(why: impl fmt::Display) -> Error {
    Error::Snapshot(SnapshotError::Corrupt(why.to_string()))
}

fn raw(text: Option<String>) -> Result<Option<Box<RawValue>>, Error> {
    text.map(|t| RawValue::from_string(t).map_err(corrupt)).transpose()
}

/// One connection as stored (its rooms by name; what it holds in each room
/// is stored by the room, or by its record: see persist.rs).
pub(super) fn conn_state(id: ConnectionId, c: &Connection) -> ConnState {
    ConnState {
        id: id.0,
        presence_id: c.presence_id.to_string(),
        last_seen: c.last_seen,
        idle_check: c.idle_check,
        grace_until: c.grace_until,
        resume_token: c.resume_token.as_ref().map(|t| t.to_string()),
        identity: c.identity.as_ref().map(|i| IdentityState {
            client_id: i.client_id.clone(),
            rooms: i.rooms.clone(),
            expires_at: i.expires_at,
            per: i.per.clone(),
            dpv: i.dpv.clone(),
        }),
        deadline: c.deadline,
        rate: c.rate.state(),
        violations: c.violations.state(),
        rooms: c.rooms.keys().cloned().collect(),
        realm_subs: c.realm_subs.iter().map(|s| (s.realm.clone(), s.event.clone(), s.pattern.clone())).collect(),
    }
}

/// `cluster`: other nodes' members are left out (they are the store's to
/// hand back: a restored node resyncs its rooms).
pub(super) fn room_state(name: &str, r: &Room, cluster: bool) -> RoomState {
    RoomState {
        name: name.to_string(),
        joined: r.joined.iter().map(|c| c.0).collect(),
        members: r
            .members
            .iter()
            .filter(|(c, _)| !(cluster && super::is_remote(**c)))
            .map(|(c, m)| (c.0, m.client_id.to_string(), m.data.as_ref().map(|d| d.get().to_string())))
            .collect(),
        presence_subs: r.presence_subs.iter().map(|(c, s)| (c.0, s.events.bits(), s.view == View::Client)).collect(),
        event_subs: r.event_subs.iter().map(|(e, conns)| (e.clone(), conns.iter().map(|c| c.0).collect())).collect(),
        seq: r.log.seq,
        floor: r.log.floor,
        replay: r
            .log
            .buffer
            .iter()
            .map(|e| (e.seq, EventMask::of(e.kind).bits(), e.view == View::Client, e.payload.to_string()))
            .collect(),
    }
}

impl Engine {
    /// The whole state, encoded. See the module docs for the format.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut connections: Vec<ConnState> = self.connections.iter().map(|(id, c)| conn_state(*id, c)).collect();
        connections.sort_by_key(|c| c.id);
        let cluster = self.config.cluster.is_some();
        let mut rooms: Vec<RoomState> = self.rooms.iter().map(|(name, r)| room_state(name, r, cluster)).collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        let mut realms: Vec<RealmState> = self
            .realms
            .iter()
            .map(|(name, r)| RealmState {
                name: name.clone(),
                objects: r
                    .objects
                    .iter()
                    .map(|(id, o)| (id.clone(), o.data.as_ref().map(|d| d.get().to_string()), o.providers))
                    .collect(),
            })
            .collect();
        realms.sort_by(|a, b| a.name.cmp(&b.name));
        let state = State {
            app_id: self.config.app_id.clone(),
            epoch: self.epoch,
            minted: self.minted,
            connections,
            rooms,
            realms,
        };
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        // Encoding into a Vec cannot fail: every type here is plain data.
        out.extend(postcard::to_allocvec(&state).unwrap_or_default());
        let mut windows: Vec<WindowState> = self.rooms.iter().filter_map(|(name, r)| window_state(name, r)).collect();
        if !windows.is_empty() {
            windows.sort_by(|a, b| a.room.cmp(&b.room));
            out.extend(postcard::to_allocvec(&windows).unwrap_or_default());
        }
        out
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes, with `config`
    /// (normally the one it was taken with). Continuing from it is
    /// indistinguishable from never having stopped.
    pub fn restore(config: Config, bytes: &[u8]) -> Result<Engine, Error> {
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(Error::Snapshot(SnapshotError::NotASnapshot));
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[4..8]);
        let found = u32::from_le_bytes(version);
        if found != SNAPSHOT_VERSION {
            return Err(Error::Snapshot(SnapshotError::Version { found, supported: SNAPSHOT_VERSION }));
        }
        let (state, rest): (State, &[u8]) = postcard::take_from_bytes(&bytes[8..]).map_err(corrupt)?;
        let windows: Vec<WindowState> =
            if rest.is_empty() { Vec::new() } else { postcard::from_bytes(rest).map_err(corrupt)? };
        Engine::from_state(config, state, windows)
    }

    /// Rebuilds an engine from its decoded state (a snapshot's, or one
    /// assembled from records by persist.rs) and its open presence windows,
    /// checking that it is consistent.
    pub(super) fn from_state(config: Config, state: State, windows: Vec<WindowState>) -> Result<Engine, Error> {
        let mut e = Engine::new(config)?;
        if state.app_id != e.config.app_id {
            return Err(Error::Snapshot(SnapshotError::Mismatch(format!(
                "appId {:?} was snapshotted, {:?} configured",
                state.app_id, e.config.app_id
            ))));
        }
        e.epoch = state.epoch;
        e.minted = state.minted;
        for cs in state.connections {
            e.restore_connection(cs)?;
        }
        for rs in state.rooms {
            e.restore_room(rs)?;
        }
        for ws in windows {
            e.restore_window(ws)?;
        }
        // The converse of restore_room's check: a connection that lists a
        // room the room does not list would later index a missing room.
        for (id, c) in &e.connections {
            if let Some(room) = c.rooms.keys().find(|r| !e.rooms.get(*r).is_some_and(|rm| rm.joined.contains(id))) {
                return Err(corrupt(format!("connection {} lists room {room:?}, which does not list it", id.0)));
            }
        }
        for rs in state.realms {
            let realm = e.realms.entry(rs.name).or_default();
            for (id, data, providers) in rs.objects {
                realm.objects.insert(id, Object { data: raw(data)?, providers });
            }
        }
        let subs: Vec<(ConnectionId, RealmSub)> =
            e.connections.iter().flat_map(|(id, c)| c.realm_subs.iter().map(move |s| (*id, s.clone()))).collect();
        for (conn, sub) in subs {
            let pattern = e.patterns.get(&sub.pattern).map_err(corrupt)?;
            let rm: &mut Realm = e.realms.entry(sub.realm.clone()).or_default();
            let groups = match &sub.event {
                None => &mut rm.object_subs,
                Some(event) => rm.event_subs.entry(event.clone()).or_default(),
            };
            realm::watch(groups, pattern, conn);
        }
        e.recount_budget();
        Ok(e)
    }

    /// Charges everything restored (see `budget`): a snapshot is taken
    /// within the budget, so none of it is refused here.
    fn recount_budget(&mut self) {
        let members: usize = self
            .rooms
            .values()
            .flat_map(|rm| rm.members.values())
            .map(|m| budget::entry_bytes(m.data.as_ref().map_or(0, |d| d.get().len())))
            .sum();
        let objects: usize = self
            .realms
            .values()
            .flat_map(|rm| rm.objects.iter())
            .map(|(id, o)| budget::entry_bytes(id.len() + o.data.as_ref().map_or(0, |d| d.get().len())))
            .sum();
        let claim_globs = self.claim_globs.len().saturating_mul(budget::GLOB_BYTES);
        self.stored_bytes = members.saturating_add(objects).saturating_add(claim_globs);
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for conn in ids {
            self.recharge(conn);
        }
    }

    fn restore_connection(&mut self, cs: ConnState) -> Result<(), Error> {
        let conn = ConnectionId(cs.id);
        // The engine never holds a time past MAX_TIME (so a JS host can).
        let expires_at = cs.identity.as_ref().and_then(|i| i.expires_at);
        if [cs.deadline, expires_at].into_iter().flatten().any(|at| at > MAX_TIME) {
            return Err(corrupt(format!("connection {} has a deadline past 2^53 - 1", cs.id)));
        }
        if self.connections.contains_key(&conn) {
            return Err(corrupt(format!("connection {} is listed twice", cs.id)));
        }
        let presence_id: Arc<str> = cs.presence_id.into();
        let mut c = Connection::new(presence_id, Arc::clone(&self.no_permissions), &self.config.limits, cs.last_seen);
        c.rate = TokenBucket::from_state(cs.rate);
        c.violations = TokenBucket::from_state(cs.violations);
        if let Some(i) = cs.identity {
            let identity =
                Identity { client_id: i.client_id, rooms: i.rooms, expires_at: i.expires_at, per: i.per, dpv: i.dpv };
            let rights = self
                .rights_for(&identity)
                .map_err(|err| Error::Snapshot(SnapshotError::Mismatch(format!("connection {}: {err}", cs.id))))?;
            c.client_id = identity.client_id.clone().map(Arc::from);
            c.auth = AuthState::Ready { grants: rights.grants };
            c.permissions = rights.permissions;
            if let Some(p) = &rights.provides {
                self.providers.insert(conn, p);
            }
            c.provides = rights.provides;
            self.hold_claims(&identity);
            c.set_identity(identity);
        }
        for room in cs.rooms {
            let actions = c.grants().map(|g| g.actions_for(&room)).unwrap_or_default();
            c.rooms.insert(room, JoinedRoom { actions, subscriptions: 0 });
        }
        c.subscriptions = cs.realm_subs.len();
        c.glob_subscriptions = cs.realm_subs.iter().filter(|(_, _, pattern)| crate::pattern::is_glob(pattern)).count();
        c.realm_subs =
            cs.realm_subs.into_iter().map(|(realm, event, pattern)| RealmSub { realm, event, pattern }).collect();
        if let Some(at) = cs.idle_check {
            c.idle_check = Some(at);
            self.idle.insert((at, conn));
        }
        if let Some(at) = cs.grace_until {
            c.grace_until = Some(at);
            self.grace.insert((at, conn));
            self.outputs.set_lost(conn, true);
        }
        if let Some(token) = cs.resume_token {
            let token: Arc<str> = token.into();
            if self.resume_tokens.insert(Arc::clone(&token), conn).is_some() {
                return Err(corrupt(format!("connection {}'s resume token is another's", cs.id)));
            }
            c.resume_token = Some(token);
        }
        self.connections.insert(conn, c);
        self.set_deadline(conn, cs.deadline);
        Ok(())
    }

    /// An open window, kept as it was: it flushes when it was due.
    fn restore_window(&mut self, ws: WindowState) -> Result<(), Error> {
        let rm =
            self.rooms.get_mut(&ws.room).ok_or_else(|| corrupt(format!("window of unknown room {:?}", ws.room)))?;
        if ws.due > MAX_TIME || rm.window.due.is_some() {
            return Err(corrupt(format!("window of room {:?} is out of range or listed twice", ws.room)));
        }
        for (bits, client_edge, at, id, client_id, data) in ws.events {
            let kind = EventMask::from_bits(bits).kind().ok_or_else(|| corrupt("pending change of no kind"))?;
            let data = raw(data)?;
            rm.window.push(Pending { kind, client_edge, at, id: id.into(), client_id: client_id.into(), data });
        }
        rm.window.due = Some(ws.due);
        self.flushes.insert((ws.due, ws.room));
        Ok(())
    }

    fn restore_room(&mut self, rs: RoomState) -> Result<(), Error> {
        let mut room = Room { flush_ms: self.flush_interval_for(&rs.name), ..Room::default() };
        for id in rs.joined {
            let conn = ConnectionId(id);
            if !self.connections.get(&conn).is_some_and(|c| c.rooms.contains_key(&rs.name)) {
                return Err(corrupt(format!("room {:?} lists connection {id}, which did not join it", rs.name)));
            }
            room.joined.insert(conn);
        }
        for (id, client_id, data) in rs.members {
            let conn = ConnectionId(id);
            if !room.joined.contains(&conn) {
                return Err(corrupt(format!("member {id} of room {:?} has not joined it", rs.name)));
            }
            let presence_id = self
                .connections
                .get(&conn)
                .map(|c| Arc::clone(&c.presence_id))
                .ok_or_else(|| corrupt(format!("member {id} is not a connection")))?;
            room.upsert(conn, Member { id: presence_id, client_id: client_id.into(), data: raw(data)? });
            if self.connections.get(&conn).is_some_and(|c| c.grace_until.is_some()) {
                room.in_grace.insert(conn);
            }
        }
        room.log.seq = rs.seq;
        room.log.floor = rs.floor;
        for (seq, kind, client_view, payload) in rs.replay {
            let kind = EventMask::from_bits(kind).kind().ok_or_else(|| corrupt("replayed frame of no kind"))?;
            let view = if client_view { View::Client } else { View::Connection };
            room.log.buffer.push_back(Replayed { seq, kind, view, payload: payload.into() });
        }
        let mut count = |conn: ConnectionId| -> Result<(), Error> {
            let c = self.connections.get_mut(&conn).ok_or_else(|| corrupt(format!("unknown connection {}", conn.0)))?;
            c.subscriptions += 1;
            if let Some(j) = c.rooms.get_mut(&rs.name) {
                j.subscriptions += 1;
            }
            Ok(())
        };
        for (id, bits, client_view) in rs.presence_subs {
            let conn = ConnectionId(id);
            count(conn)?;
            let view = if client_view { View::Client } else { View::Connection };
            room.presence_subs.insert(conn, PresenceSub { events: EventMask::from_bits(bits), view });
        }
        for (event, conns) in rs.event_subs {
            for id in conns {
                count(ConnectionId(id))?;
                room.event_subs.entry(event.clone()).or_default().insert(ConnectionId(id));
            }
        }
        self.rooms.insert(rs.name, room);
        Ok(())
    }
}
