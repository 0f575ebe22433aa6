//! Records: the engine's state split into small pieces that change
//! independently, so that a host whose memory may be dropped (a hibernating
//! Durable Object) writes only what changed instead of a whole snapshot.
//!
//! - the **meta** record (appId, epoch, resume tokens minted): key `m`;
//! - one record per **connection** (its identity, deadlines, budgets,
//!   resume token, and per room it joined: its member data, presence
//!   subscription and event subscriptions; its realm subscriptions): key
//!   `c:<id>`. A live connection's record fits beside its socket (a
//!   Durable Object's socket attachment); a lost one (in grace) has no
//!   socket and must be stored;
//! - one record per **room** with presence events (its seq, replay floor
//!   and replay buffer): key `r:<room>`;
//! - one record per **object** (its data and live provider count): key
//!   `o:<realm>` + `\n` + `<id>`.
//!
//! Once [`Engine::track_changes`] is on, every call marks what it touched;
//! [`Engine::take_changes`] returns each touched record, encoded, or `None`
//! when it no longer exists (the host deletes it). Feeding every record the
//! host kept to [`Engine::import`] rebuilds exactly the engine that wrote
//! them (its [`Engine::snapshot`] is byte for byte the same). The engine
//! does no I/O: it says what changed, the host writes it.
//!
//! Encoding: the 4 bytes `RCR` + [`RECORD_VERSION`], then postcard.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::snapshot::{conn_state, window_state, ConnState, RealmState, RoomState, SnapshotError, State, WindowState};
use super::{ConnectionId, Engine};
use crate::config::Config;
use crate::error::Error;
use crate::protocol::request::View;

/// The record format this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
const MAGIC: &[u8; 3] = b"RCR";

/// What [`Engine::take_changes`] marks: touched since the last take.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    meta: bool,
    conns: BTreeSet<ConnectionId>,
    rooms: BTreeSet<String>,
    objects: BTreeSet<(String, String)>,
}

/// Which record a change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    Meta,
    /// A connection's record. `lost`: it is in grace, with no socket to
    /// keep its record beside, so the host must store it.
    Connection {
        id: ConnectionId,
        lost: bool,
    },
    Room,
    Object,
}

/// One record that changed: `value` is its new encoding, or `None` when it
/// is gone (delete it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The record's key (see the module docs), unique among records.
    pub key: String,
    pub kind: RecordKind,
    pub value: Option<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct MetaRecord {
    app_id: String,
    epoch: u64,
    minted: u64,
}

/// What a connection holds in one room it joined.
#[derive(Serialize, Deserialize)]
struct ConnRoom {
    name: String,
    /// (clientId, data as JSON text) when it is a member.
    member: Option<(String, Option<String>)>,
    /// (event bits, per-client view)
    presence_sub: Option<(u8, bool)>,
    events: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ConnRecord {
    /// With `rooms` left empty: they are in `joined`.
    state: ConnState,
    joined: Vec<ConnRoom>,
}

#[derive(Serialize, Deserialize)]
struct RoomRecord {
    name: String,
    seq: u64,
    floor: u64,
    replay: Vec<(u64, u8, bool, String)>,
    /// Its open presence window (`presence.flushIntervalMs`), if any.
    window: Option<WindowState>,
}

#[derive(Serialize, Deserialize)]
struct ObjectRecord {
    realm: String,
    id: String,
    data: Option<String>,
    providers: u32,
}

#[derive(Serialize, Deserialize)]
enum Record {
    Meta(MetaRecord),
    Connection(Box<ConnRecord>),
    Room(RoomRecord),
    Object(ObjectRecord),
}

fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(RECORD_VERSION);
    // Encoding into a Vec cannot fail: every type here is plain data.
    out.extend(postcard::to_allocvec(record).unwrap_or_default());
    out
}

fn decode(bytes: &[u8]) -> Result<Record, Error> {
    if bytes.len() < 4 || &bytes[..3] != MAGIC {
        return Err(Error::Snapshot(SnapshotError::NotASnapshot));
    }
    if bytes[3] != RECORD_VERSION {
        return Err(Error::Snapshot(SnapshotError::Version {
            found: u32::from(bytes[3]),
            supported: u32::from(RECORD_VERSION),
        }));
    }
    postcard::from_bytes(&bytes[4..]).map_err(|e| Error::Snapshot(SnapshotError::Corrupt(e.to_string())))
}

/// The key of connection `id`'s record.
pub fn connection_key(id: ConnectionId) -> String {
    format!("c:{}", id.0)
}

fn room_key(name: &str) -> String {
    format!("r:{name}")
}

fn object_key(realm: &str, id: &str) -> String {
    format!("o:{realm}\n{id}")
}

impl Engine {
    /// Turns change tracking on (see the module docs). Everything the
    /// engine holds now counts as changed, so the first
    /// [`Engine::take_changes`] returns every record.
    pub fn track_changes(&mut self) {
        let mut dirty = Dirty { meta: true, ..Dirty::default() };
        dirty.conns.extend(self.connections.keys().copied());
        dirty.rooms.extend(self.rooms.keys().cloned());
        for (name, realm) in &self.realms {
            dirty.objects.extend(realm.objects.keys().map(|id| (name.clone(), id.clone())));
        }
        self.changes = Some(dirty);
    }

    /// Whether [`Engine::track_changes`] is on.
    pub fn is_tracking_changes(&self) -> bool {
        self.changes.is_some()
    }

    /// The records changed since the last call (none unless
    /// [`Engine::track_changes`] is on), in key order per kind: meta,
    /// connections, rooms, objects.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let Some(dirty) = self.changes.as_mut().map(std::mem::take) else { return Vec::new() };
        let mut out = Vec::new();
        if dirty.meta {
            let meta = MetaRecord { app_id: self.config.app_id.clone(), epoch: self.epoch, minted: self.minted };
            out.push(Change { key: "m".into(), kind: RecordKind::Meta, value: Some(encode(&Record::Meta(meta))) });
        }
        for id in dirty.conns {
            let lost = self.connections.get(&id).is_some_and(|c| c.grace_until.is_some());
            let value = self.connection_record(id).map(|r| encode(&Record::Connection(Box::new(r))));
            out.push(Change { key: connection_key(id), kind: RecordKind::Connection { id, lost }, value });
        }
        for name in dirty.rooms {
            // A room without presence events yet (sent or pending) has nothing to keep.
            let value = self
                .rooms
                .get(&name)
                .filter(|r| r.log.seq > 0 || !r.log.buffer.is_empty() || r.window.due.is_some())
                .map(|r| {
                    let s = super::snapshot::room_state(&name, r, self.config.cluster.is_some());
                    let window = window_state(&name, r);
                    encode(&Record::Room(RoomRecord {
                        name: name.clone(),
                        seq: s.seq,
                        floor: s.floor,
                        replay: s.replay,
                        window,
                    }))
                });
            out.push(Change { key: room_key(&name), kind: RecordKind::Room, value });
        }
        for (realm, id) in dirty.objects {
            let value = self.realms.get(&realm).and_then(|rm| rm.objects.get(&id)).map(|o| {
                encode(&Record::Object(ObjectRecord {
                    realm: realm.clone(),
                    id: id.clone(),
                    data: o.data.as_ref().map(|d| d.get().to_string()),
                    providers: o.providers,
                }))
            });
            out.push(Change { key: object_key(&realm, &id), kind: RecordKind::Object, value });
        }
        out
    }

    fn connection_record(&self, id: ConnectionId) -> Option<ConnRecord> {
        let c = self.connections.get(&id)?;
        let mut state = conn_state(id, c);
        let joined = std::mem::take(&mut state.rooms)
            .into_iter()
            .map(|name| {
                let room = self.rooms.get(&name);
                let member = room
                    .and_then(|r| r.members.get(&id))
                    .map(|m| (m.client_id.to_string(), m.data.as_ref().map(|d| d.get().to_string())));
                let presence_sub =
                    room.and_then(|r| r.presence_subs.get(&id)).map(|s| (s.events.bits(), s.view == View::Client));
                let events = room
                    .map(|r| {
                        r.event_subs.iter().filter(|(_, subs)| subs.contains(&id)).map(|(e, _)| e.clone()).collect()
                    })
                    .unwrap_or_default();
                ConnRoom { name, member, presence_sub, events }
            })
            .collect();
        Some(ConnRecord { state, joined })
    }

    /// Rebuilds an engine from records written by [`Engine::take_changes`]
    /// (in any order), with change tracking on. Records of rooms no
    /// connection has joined are dropped (and reported as deleted by the
    /// next [`Engine::take_changes`]); anything else inconsistent is refused
    /// like a corrupt snapshot.
    pub fn import<'a>(config: Config, records: impl IntoIterator<Item = &'a [u8]>) -> Result<Engine, Error> {
        let mut meta = None;
        let mut conns: BTreeMap<u64, ConnRecord> = BTreeMap::new();
        let mut room_logs: BTreeMap<String, RoomRecord> = BTreeMap::new();
        let mut realms: BTreeMap<String, BTreeMap<String, (Option<String>, u32)>> = BTreeMap::new();
        let twice = |what: String| Error::Snapshot(SnapshotError::Corrupt(format!("{what} is listed twice")));
        for bytes in records {
            match decode(bytes)? {
                Record::Meta(m) if meta.is_none() => meta = Some(m),
                Record::Meta(_) => return Err(twice("the meta record".into())),
                Record::Connection(c) => {
                    let id = c.state.id;
                    if conns.insert(id, *c).is_some() {
                        return Err(twice(format!("connection {id}")));
                    }
                }
                Record::Room(r) => {
                    let name = r.name.clone();
                    if room_logs.insert(name.clone(), r).is_some() {
                        return Err(twice(format!("room {name:?}")));
                    }
                }
                Record::Object(o) => {
                    let objects = realms.entry(o.realm).or_default();
                    if objects.insert(o.id.clone(), (o.data, o.providers)).is_some() {
                        return Err(twice(format!("object {:?}", o.id)));
                    }
                }
            }
        }
        let mut rooms: BTreeMap<String, RoomState> = BTreeMap::new();
        let mut connections = Vec::with_capacity(conns.len());
        for (id, record) in conns {
            let mut state = record.state;
            for joined in record.joined {
                let room = rooms.entry(joined.name.clone()).or_insert_with(|| RoomState {
                    name: joined.name.clone(),
                    joined: Vec::new(),
                    members: Vec::new(),
                    presence_subs: Vec::new(),
                    event_subs: Vec::new(),
                    seq: 0,
                    floor: 0,
                    replay: Vec::new(),
                });
                room.joined.push(id);
                if let Some((client_id, data)) = joined.member {
                    room.members.push((id, client_id, data));
                }
                if let Some((bits, client_view)) = joined.presence_sub {
                    room.presence_subs.push((id, bits, client_view));
                }
                for event in joined.events {
                    match room.event_subs.iter_mut().find(|(e, _)| *e == event) {
                        Some((_, ids)) => ids.push(id),
                        None => room.event_subs.push((event, vec![id])),
                    }
                }
                state.rooms.push(joined.name);
            }
            connections.push(state);
        }
        let mut orphans = Vec::new();
        let mut windows = Vec::new();
        for (name, log) in room_logs {
            match rooms.get_mut(&name) {
                Some(room) => {
                    (room.seq, room.floor, room.replay) = (log.seq, log.floor, log.replay);
                    windows.extend(log.window);
                }
                None => orphans.push(name),
            }
        }
        let mut rooms: Vec<RoomState> = rooms.into_values().collect();
        for room in &mut rooms {
            room.event_subs.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let (app_id, epoch, minted) = match meta {
            Some(m) => (m.app_id, m.epoch, m.minted),
            None => (config.app_id.clone(), config.epoch, 0),
        };
        let realms = realms
            .into_iter()
            .map(|(name, objects)| RealmState {
                name,
                objects: objects.into_iter().map(|(id, (data, providers))| (id, data, providers)).collect(),
            })
            .collect();
        let state = State { app_id, epoch, minted, connections, rooms, realms };
        let mut engine = Engine::from_state(config, state, windows)?;
        engine.changes = Some(Dirty::default());
        for name in orphans {
            engine.dirty_room(&name);
        }
        Ok(engine)
    }

    // ---- marks, called where state changes ----------------------------

    pub(super) fn dirty_meta(&mut self) {
        if let Some(d) = self.changes.as_mut() {
            d.meta = true;
        }
    }

    pub(super) fn dirty_conn(&mut self, conn: ConnectionId) {
        if let Some(d) = self.changes.as_mut() {
            d.conns.insert(conn);
        }
    }

    pub(super) fn dirty_room(&mut self, room: &str) {
        if let Some(d) = self.changes.as_mut() {
            if !d.rooms.contains(room) {
                d.rooms.insert(room.to_string());
            }
        }
    }

    pub(super) fn dirty_object(&mut self, realm: &str, id: &str) {
        if let Some(d) = self.changes.as_mut() {
            d.objects.insert((realm.to_string(), id.to_string()));
        }
    }
}

impl Dirty {
    /// For call sites that hold a borrow of a room or object already.
    pub(super) fn touch_room(&mut self, room: &str) {
        if !self.rooms.contains(room) {
            self.rooms.insert(room.to_string());
        }
    }

    pub(super) fn touch_object(&mut self, realm: &str, id: &str) {
        self.objects.insert((realm.to_string(), id.to_string()));
    }
}
