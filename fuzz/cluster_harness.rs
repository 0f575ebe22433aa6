//! The cluster fuzz harness, plain Rust with no dependency but `rollcall`
//! and `serde_json`: shared by the cargo-fuzz target
//! (fuzz/fuzz_targets/cluster.rs) and by the corpus replay test
//! (tests/fuzz_corpus.rs).
//!
//! Two engines in cluster mode (nodes "a" and "b") and a model store that
//! does what rollcall/redis's Lua scripts do, as tests/cluster.rs and
//! tests/cluster_objects.rs model them: it orders each room's presence
//! changes and each realm's object changes (an epoch and a seq), keeps
//! every node's provider set with a growing version, hands snapshots, and
//! records resumable tokens for cross-node resume.
//!
//! [`run`] reads its bytes as a sequence of steps:
//!
//! - host events on either node: opens with asserted identities from a
//!   small table (`per` / `dpv` claims over realms "fleet" and "*"),
//!   structured frames (rooms, presence, room events, objects, realm
//!   subscriptions and events, `resume` with tokens either node handed
//!   out), raw frames, closes, lost sockets (3 s leave grace), clock
//!   ticks, host publishes;
//! - the store acting on a node's next cluster host event (writes are
//!   applied in each node's order and never lost); a cross-node resume
//!   claim is handed over faithfully, or with no state, a made-up state
//!   or a mutated one;
//! - deliveries from the store to a node: in order, out of order,
//!   dropped or duplicated;
//! - text the store never wrote: well-formed messages with fuzzed fields
//!   (epochs, seqs, ops, ids, data, node names, versions, patterns),
//!   mutated copies of real messages, and raw bytes, to every `cluster_*`
//!   entry point;
//! - a store that lost its state (new epochs; nodes re-assert their
//!   members and objects and publish resync markers);
//! - the whole cluster settling (every event acted on, every message
//!   delivered in order).
//!
//! After every step, on both nodes: outputs drain within a bound; every
//! `Send` payload is JSON and names only connections the host opened and
//! has not seen closed, none lost (in grace), none of another node; an
//! `Err` from a `cluster_*` call (but `cluster_resume`) produced no output;
//! `stored_bytes()` stays within the budget plus what the store ordered
//! (objects are applied past the budget); members' ids are unique in every
//! room the harness fed only the store's text; `room_counts` agrees with
//! `members()`/`clients()`; a member keyed as local is a live connection;
//! every object is `connected` iff it has providers, and has at least the
//! providers its node's own connections give it and at most that plus the
//! other nodes ever named in a providers message.
//!
//! At the end the store settles every write, every node reads a fresh
//! snapshot of everything, and where nothing but the store's own text was
//! fed, each node's presence sets and objects equal the store's, with
//! every object's providers recomputed from the identities and the store's
//! provider sets. Then every connection closes and the graces end: no
//! connection, room or deadline is left, and the budget holds the objects
//! only. A failed invariant panics with a message that starts with
//! `invariant:`.

#![allow(dead_code)]

// Shared by both harnesses; tests/fuzz_corpus.rs loads each harness, so
// these files are loaded twice there, once per harness.
#[allow(clippy::duplicate_mod)]
#[path = "claims.rs"]
mod claims;
#[allow(clippy::duplicate_mod)]
#[path = "input.rs"]
mod input;

use claims::{claim_provides, dpv_claim, per_claim};
use input::{js, Input};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

use rollcall::config::ClusterConfig;
use rollcall::engine::is_remote;
use rollcall::{Config, ConnectionId, ConnectionStatus, Credentials, Engine, HostEvent, Identity, Output};

/// The first clock reading: 2024-07-13T10:13:28.496Z.
const T0: u64 = 1_720_865_608_496;
const NODES: [&str; 2] = ["a", "b"];
const LEAVE_GRACE_MS: u64 = 3_000;
const MAX_STORED_BYTES: usize = 120_000;
/// Steps read from one input at most.
const MAX_STEPS: usize = 192;
/// Outputs one engine call may produce at most before it counts as a blow-up.
const MAX_OUTPUTS_PER_CALL: usize = 10_000;
/// Messages waiting for delivery to one node at most (older ones are lost).
const MAX_INBOX: usize = 64;
/// Resume tokens kept, newest last.
const MAX_TOKENS: usize = 8;
/// Real messages kept for mutation.
const MAX_RECENT: usize = 16;
/// Budget slack for members a cross-node resume adopts (charged past the
/// budget, as the store already holds them).
const ADOPT_SLACK: usize = 16 * 1024;

// ---- the input --------------------------------------------------------------

// ---- identities -------------------------------------------------------------

struct Spec {
    sub: &'static str,
    per: Option<&'static [(&'static str, &'static str, &'static str)]>,
    dpv: Option<&'static [(&'static str, &'static str)]>,
}

/// `dpv` patterns are limited to forms [`dpv_matches`] decides exactly as
/// the engine's globs do.
const SPECS: &[Spec] = &[
    Spec { sub: "alice", per: Some(&[("fleet", "**", "CRUD")]), dpv: None },
    Spec { sub: "bob", per: Some(&[("*", "**", "R")]), dpv: Some(&[("fleet", "van/*")]) },
    Spec { sub: "carol", per: Some(&[("fleet", "van/*", "CRU"), ("*", "x", "R")]), dpv: Some(&[("*", "**")]) },
    Spec { sub: "dave", per: None, dpv: Some(&[("fleet", "van/1"), ("fleet", "bike/1")]) },
    Spec { sub: "alice", per: Some(&[("*", "**", "CRUD")]), dpv: Some(&[("fleet", "x"), ("other", "*")]) },
    Spec { sub: "eve", per: Some(&[("other", "**", "CRUD"), ("fleet", "**", "R")]), dpv: Some(&[("other", "**")]) },
];

fn identity(spec: &Spec) -> Identity {
    Identity {
        client_id: Some(spec.sub.to_string()),
        per: spec.per.map(per_claim),
        dpv: spec.dpv.map(dpv_claim),
        ..Identity::default()
    }
}

// ---- pools ------------------------------------------------------------------

/// Connection slots per node. A slot holds one connection id at a time; a
/// slot whose connection closed opens the next with a new id (the slot's
/// id plus `SLOTS`), as the npm host never reuses one: in cluster mode a
/// member stays keyed by its connection until the store orders its leave.
const SLOTS: usize = 5;
const ROOMS: &[&str] = &["lobby", "r", "a/b"];
const REALMS: &[&str] = &["fleet", "other", "*"];
const IDS: &[&str] = &["van/1", "van/2", "bike/1", "x"];
const EVENTS: &[&str] = &["chat", "moved", "*", "connectionStatusChanged"];
const NODE_NAMES: &[&str] = &["a", "b", "c", "d"];
const MEMBER_IDS: &[&str] = &["rollcall:a:1", "rollcall:b:1", "rollcall:a:2", "rollcall:b:3", "rollcall:c:9"];
const PATTERNS: &[&str] = &["**", "van/*", "*", "x", "bike/1", "[", "a/**/c", "", "?", "{a,b}"];

fn pick(inp: &mut Input, pool: &[&str]) -> String {
    let i = inp.choose(pool.len() + 1);
    match pool.get(i) {
        Some(s) => s.to_string(),
        None => inp.string(10),
    }
}

fn data(inp: &mut Input) -> String {
    match inp.choose(8) {
        0 => "null".into(),
        1 => r#"{"k":1}"#.into(),
        2 => js("s"),
        3 => "[1,[2,{}]]".into(),
        4 => js(&"x".repeat(100)),
        5 => js(&inp.string(30)),
        6 => format!("{}", inp.byte()),
        _ => r#"{"a":"é","b":true}"#.into(),
    }
}

/// A u64 near `base`, or at an edge.
fn number(inp: &mut Input, base: u64) -> u64 {
    match inp.choose(10) {
        0 | 1 => base,
        2 | 3 => base.saturating_add(1),
        4 => base.saturating_add(2 + u64::from(inp.byte() % 8)),
        5 => base.saturating_sub(1),
        6 => 0,
        7 => u64::MAX - u64::from(inp.byte() % 3),
        8 => u64::from(inp.byte()),
        _ => (1 << 53) + u64::from(inp.byte()),
    }
}

// ---- frames -----------------------------------------------------------------

const OPS: &[&str] = &[
    "room.join",
    "room.join",
    "room.leave",
    "presence.join",
    "presence.join",
    "presence.update",
    "presence.leave",
    "presence.subscribe",
    "presence.get",
    "subscribe",
    "publish",
    "object.create",
    "object.create",
    "object.update",
    "object.delete",
    "object.subscribe",
    "object.list",
    "realm.subscribe",
    "realm.unsubscribe",
    "realm.publish",
    "object.get",
    "ping",
];

fn structured_frame(inp: &mut Input) -> Vec<u8> {
    let op = OPS[inp.choose(OPS.len())];
    let flags = inp.byte();
    let mut fields: Vec<(&str, String)> = vec![("op", js(op)), ("ref", format!("{}", inp.byte()))];
    let room_op = op.starts_with("room.") || op.starts_with("presence.") || op == "subscribe" || op == "publish";
    if room_op {
        fields.push(("room", js(&pick(inp, ROOMS))));
    } else if op != "ping" {
        fields.push(("realm", js(&pick(inp, REALMS))));
    }
    if matches!(op, "object.create" | "object.update" | "object.delete" | "object.get")
        || (op == "realm.publish" && flags & 1 != 0)
    {
        fields.push(("id", js(&pick(inp, IDS))));
    }
    if matches!(op, "subscribe" | "publish") || op.starts_with("realm.") {
        fields.push(("event", js(&pick(inp, EVENTS))));
    }
    if matches!(op, "object.subscribe" | "object.list" | "realm.subscribe" | "realm.unsubscribe") && flags & 2 != 0 {
        fields.push(("pattern", js(&pick(inp, &["**", "van/*", "x", "["]))));
    }
    let takes_data = matches!(
        op,
        "presence.join" | "presence.update" | "publish" | "object.create" | "object.update" | "realm.publish"
    );
    if takes_data && flags & 4 != 0 {
        fields.push(("data", data(inp)));
    }
    if op == "presence.subscribe" && flags & 8 != 0 {
        fields.push(("view", js("client")));
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", js(k))).collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

// ---- the store --------------------------------------------------------------

#[derive(Default)]
struct StoredRoom {
    seq: u64,
    /// Member id -> member text.
    members: BTreeMap<String, String>,
}

#[derive(Default)]
struct StoredRealm {
    seq: u64,
    /// Object id -> data text.
    objects: BTreeMap<String, String>,
}

struct Store {
    room_epoch: u64,
    rooms: BTreeMap<String, StoredRoom>,
    realm_epoch: u64,
    realms: BTreeMap<String, StoredRealm>,
    /// Node -> (its providers message, its provider set).
    providers: BTreeMap<String, (String, String)>,
    version: u64,
    /// Resume tokens recorded as resumable -> their node.
    resumable: BTreeMap<String, usize>,
}

impl Store {
    fn room_snapshot(&self, room: &str) -> String {
        let r = self.rooms.get(room);
        let members: Vec<&str> = r.map_or_else(Vec::new, |r| r.members.values().map(String::as_str).collect());
        format!(r#"{{"e":{},"s":{},"m":[{}]}}"#, self.room_epoch, r.map_or(0, |r| r.seq), members.join(","))
    }

    fn realm_snapshot(&self, realm: &str) -> String {
        let r = self.realms.get(realm);
        let objects: Vec<String> =
            r.map_or_else(Vec::new, |r| r.objects.iter().map(|(id, d)| format!("[{},{d}]", js(id))).collect());
        format!(r#"{{"e":{},"s":{},"o":[{}]}}"#, self.realm_epoch, r.map_or(0, |r| r.seq), objects.join(","))
    }

    fn providers_snapshot(&self) -> String {
        let p: Vec<&str> = self.providers.values().map(|(m, _)| m.as_str()).collect();
        format!(r#"{{"at":{},"p":[{}]}}"#, self.version, p.join(","))
    }
}

/// A message on its way from the store to a node.
#[derive(Debug, Clone)]
enum Msg {
    Room(String, String),
    /// A snapshot read when asked (`Some`) or when delivered (`None`).
    RoomSnapshot(String, Option<String>),
    Objects(String),
    RealmSnapshot(String, Option<String>),
}

// ---- the nodes ----------------------------------------------------------------

fn config(node: &str) -> Config {
    let mut config = Config {
        cluster: Some(ClusterConfig { node: node.into() }),
        resume_secret: Some(format!("rollcall-fuzz-resume-{node}")),
        leave_grace_ms: LEAVE_GRACE_MS,
        idle_timeout_ms: 0,
        ..Config::default()
    };
    let l = &mut config.limits;
    l.max_frame_bytes = 1024;
    l.max_json_depth = 8;
    l.max_name_bytes = 32;
    l.max_rooms_per_connection = 3;
    l.max_subscriptions_per_connection = 6;
    l.max_members_per_room = 4;
    l.max_presence_data_bytes = 128;
    l.max_realms = 3;
    l.max_objects_per_realm = 4;
    l.max_object_data_bytes = 128;
    l.max_stored_bytes = MAX_STORED_BYTES;
    config
}

struct Node {
    name: &'static str,
    engine: Engine,
    /// Connections the host opened and has not seen closed.
    open: BTreeSet<u64>,
    /// Every connection the host ever opened.
    ever: BTreeSet<u64>,
    /// The connection id of each slot.
    slots: [u64; SLOTS],
    /// Of those, the ones lost and in grace.
    lost: BTreeSet<u64>,
    /// The identity each open connection was opened with.
    identities: BTreeMap<u64, Identity>,
    /// Cluster host events the store has not acted on yet, in order.
    pending: VecDeque<HostEvent>,
    /// Messages from the store not delivered yet.
    inbox: VecDeque<Msg>,
    watching: BTreeSet<String>,
    /// Rooms fed text the store never wrote.
    tainted_rooms: BTreeSet<String>,
    /// Realms fed such text.
    tainted_realms: BTreeSet<String>,
    tainted_objects: bool,
    tainted_providers: bool,
    /// A handover state no node could have written was taken (a room
    /// listed twice is charged twice: see the report in docs/BENCHMARKS.md).
    tainted_resume: bool,
    /// Other nodes named in any providers text fed to this node.
    remote_names: BTreeSet<String>,
}

impl Node {
    fn new(name: &'static str) -> Node {
        Node {
            name,
            engine: Engine::new(config(name)).expect("harness config is valid"),
            open: BTreeSet::new(),
            ever: BTreeSet::new(),
            slots: [1, 2, 3, 4, 5],
            lost: BTreeSet::new(),
            identities: BTreeMap::new(),
            pending: VecDeque::new(),
            inbox: VecDeque::new(),
            watching: BTreeSet::new(),
            tainted_rooms: BTreeSet::new(),
            tainted_realms: BTreeSet::new(),
            tainted_objects: false,
            tainted_providers: false,
            tainted_resume: false,
            remote_names: BTreeSet::new(),
        }
    }

    /// Whether this node was fed text the store never wrote.
    fn tainted(&self) -> bool {
        !self.tainted_rooms.is_empty()
            || !self.tainted_realms.is_empty()
            || self.tainted_objects
            || self.tainted_providers
            || self.tainted_resume
    }

    fn deliver_later(&mut self, msg: Msg) {
        if self.inbox.len() == MAX_INBOX {
            self.inbox.pop_front();
        }
        self.inbox.push_back(msg);
    }

    /// Notes the node names a providers text names (for the providers bound).
    fn note_names(&mut self, text: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else { return };
        let mut names = Vec::new();
        if let Some(n) = v.get("n").and_then(|n| n.as_str()) {
            names.push(n.to_string());
        }
        if let Some(list) = v.get("p").and_then(|p| p.as_array()) {
            names.extend(list.iter().filter_map(|e| e.get("n").and_then(|n| n.as_str()).map(str::to_string)));
        }
        for n in names {
            if n != self.name {
                self.remote_names.insert(n);
            }
        }
    }
}

/// Which entry point a text goes to.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Apply,
    Snapshot,
    Objects,
    RealmSnapshot,
    ProvidersSnapshot,
}

struct Harness {
    nodes: Vec<Node>,
    store: Store,
    now: u64,
    /// Resume tokens seen (welcomes, resume acks), newest last.
    tokens: Vec<String>,
    /// Recent real messages (entry point, room or realm, text), for mutation.
    recent: VecDeque<(Entry, String, String)>,
    steps: usize,
    trace: bool,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            nodes: NODES.iter().map(|n| Node::new(n)).collect(),
            store: Store {
                room_epoch: 1000,
                rooms: BTreeMap::new(),
                realm_epoch: 7000,
                realms: BTreeMap::new(),
                providers: BTreeMap::new(),
                version: 0,
                resumable: BTreeMap::new(),
            },
            now: T0,
            tokens: Vec::new(),
            recent: VecDeque::new(),
            steps: 0,
            trace: std::env::var_os("ROLLCALL_FUZZ_TRACE").is_some(),
        }
    }

    fn remember(&mut self, entry: Entry, scope: &str, text: &str) {
        if self.recent.len() == MAX_RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((entry, scope.to_string(), text.to_string()));
    }

    fn keep_token(&mut self, token: &str) {
        if !self.tokens.iter().any(|t| t == token) {
            if self.tokens.len() == MAX_TOKENS {
                self.tokens.remove(0);
            }
            self.tokens.push(token.to_string());
        }
    }

    /// Drains node `i`'s outputs, checking them; returns how many there were.
    fn drain(&mut self, i: usize, after: &dyn Debug) -> usize {
        let mut count = 0;
        let mut socket_closed: BTreeSet<u64> = BTreeSet::new();
        let mut tokens = Vec::new();
        let node = &mut self.nodes[i];
        while let Some(out) = node.engine.poll_output() {
            count += 1;
            assert!(
                count < MAX_OUTPUTS_PER_CALL,
                "invariant: node {} produced {MAX_OUTPUTS_PER_CALL} outputs for {after:?}",
                node.name
            );
            if self.trace {
                eprintln!("    {}: {out:?}", node.name);
            }
            match out {
                Output::Send(t) => {
                    assert!(!t.to.is_empty(), "invariant: a Send with no recipient");
                    let v: serde_json::Value = serde_json::from_str(&t.payload).unwrap_or_else(|e| {
                        panic!("invariant: node {} sent text that is not JSON ({e}): {:?}", node.name, t.payload)
                    });
                    let distinct: BTreeSet<u64> = t.to.iter().map(|c| c.0).collect();
                    assert_eq!(distinct.len(), t.to.len(), "invariant: a Send names a recipient twice: {:?}", t.to);
                    for c in &t.to {
                        assert!(!is_remote(*c), "invariant: node {} sent to another node's key {c:?}", node.name);
                        assert!(
                            node.open.contains(&c.0),
                            "invariant: node {} sent to connection {}, never opened or closed, after {after:?}: {}",
                            node.name,
                            c.0,
                            t.payload
                        );
                        assert!(
                            !node.lost.contains(&c.0),
                            "invariant: node {} sent to lost connection {}",
                            node.name,
                            c.0
                        );
                        assert!(!socket_closed.contains(&c.0), "invariant: Send to connection {} after its Close", c.0);
                    }
                    if let Some(token) = v.get("resumeToken").and_then(|t| t.as_str()) {
                        tokens.push(token.to_string());
                    }
                }
                Output::Close(close) => {
                    let c = close.connection.0;
                    assert!(node.open.contains(&c), "invariant: node {} closed connection {c}, not open", node.name);
                    assert!(!node.lost.contains(&c), "invariant: node {} closed lost connection {c}", node.name);
                    assert!(close.reason.len() <= 123, "invariant: close reason over 123 bytes");
                    socket_closed.insert(c);
                }
                Output::Event(e) => match e {
                    HostEvent::Closed { connection } => {
                        let c = connection.0;
                        assert!(node.open.remove(&c), "invariant: node {} Closed {c}, not open ({after:?})", node.name);
                        node.lost.remove(&c);
                        node.identities.remove(&c);
                    }
                    HostEvent::ConnectionLost { connection, .. } => {
                        let c = connection.0;
                        assert!(node.open.contains(&c), "invariant: node {} lost {c}, not open", node.name);
                        assert!(node.lost.insert(c), "invariant: node {} lost {c} twice", node.name);
                    }
                    HostEvent::Resumed { connection, previous } => {
                        let (c, p) = (connection.0, previous.0);
                        assert!(node.open.contains(&c) && node.open.contains(&p), "invariant: Resumed {p} -> {c}");
                        assert_ne!(c, p, "invariant: connection {c} resumed itself");
                        node.open.remove(&p);
                        node.lost.remove(&p);
                        node.identities.remove(&p);
                    }
                    HostEvent::ClusterResumable { ref token, .. } => {
                        tokens.push(token.clone());
                        node.pending.push_back(e);
                    }
                    HostEvent::ClusterReplicate { .. }
                    | HostEvent::ClusterPublish { .. }
                    | HostEvent::ClusterWatch { .. }
                    | HostEvent::ClusterUnwatch { .. }
                    | HostEvent::ClusterResumeClaim { .. }
                    | HostEvent::ClusterResync { .. }
                    | HostEvent::ClusterObject { .. }
                    | HostEvent::ClusterRealmPublish { .. }
                    | HostEvent::ClusterProviders { .. }
                    | HostEvent::ClusterRealmResync { .. } => node.pending.push_back(e),
                    _ => {}
                },
            }
        }
        for t in tokens {
            self.keep_token(&t);
        }
        count
    }

    /// Feeds `text` to node `i`'s entry point; checks that an `Err` changed nothing.
    fn feed(&mut self, i: usize, entry: Entry, scope: &str, text: &str) {
        let now = self.now;
        let node = &mut self.nodes[i];
        if matches!(entry, Entry::Objects | Entry::ProvidersSnapshot) {
            node.note_names(text);
        }
        let e = &mut node.engine;
        let result = match entry {
            Entry::Apply => e.cluster_apply(scope, text, now),
            Entry::Snapshot => e.cluster_snapshot(scope, text, now),
            Entry::Objects => e.cluster_objects_apply(text, now),
            Entry::RealmSnapshot => e.cluster_realm_snapshot(scope, text, now),
            Entry::ProvidersSnapshot => e.cluster_providers_snapshot(text, now),
        };
        if self.trace {
            eprintln!("  {} {entry:?}({scope:?}, {text}) -> {result:?}", NODES[i]);
        }
        let outputs = self.drain(i, &(entry, scope, text));
        if let Err(err) = result {
            assert_eq!(outputs, 0, "invariant: {entry:?} answered Err ({err:?}) yet produced outputs for {text:?}");
        }
    }

    fn taint(&mut self, i: usize, entry: Entry, scope: &str) {
        let node = &mut self.nodes[i];
        match entry {
            Entry::Apply | Entry::Snapshot => {
                node.tainted_rooms.insert(scope.to_string());
            }
            Entry::RealmSnapshot => {
                node.tainted_realms.insert(scope.to_string());
            }
            // A made-up object change names its realm.
            Entry::Objects if !scope.is_empty() => {
                node.tainted_realms.insert(scope.to_string());
            }
            Entry::Objects | Entry::ProvidersSnapshot => {
                node.tainted_objects = true;
                node.tainted_providers = true;
            }
        }
    }

    // ---- the store's scripts ----

    /// The store acts on node `i`'s next cluster event.
    fn store_step(&mut self, i: usize, inp: &mut Input) {
        let Some(event) = self.nodes[i].pending.pop_front() else { return };
        if self.trace {
            eprintln!("  store <- {}: {event:?}", NODES[i]);
        }
        let now = self.now;
        match event {
            HostEvent::ClusterReplicate { room, op, id, member } => self.write_member(&room, op, &id, member, now),
            HostEvent::ClusterWatch { room } | HostEvent::ClusterResync { room } => {
                let node = &mut self.nodes[i];
                node.watching.insert(room.clone());
                // Read now, or when delivered.
                let snap = (inp.byte() & 1 == 0).then(|| self.store.room_snapshot(&room));
                self.nodes[i].deliver_later(Msg::RoomSnapshot(room, snap));
            }
            HostEvent::ClusterUnwatch { room } => {
                self.nodes[i].watching.remove(&room);
            }
            HostEvent::ClusterPublish { room, message } => {
                self.remember(Entry::Apply, &room, &message);
                for node in &mut self.nodes {
                    if node.watching.contains(&room) {
                        node.deliver_later(Msg::Room(room.clone(), message.clone()));
                    }
                }
            }
            HostEvent::ClusterResumable { token, .. } => {
                self.store.resumable.insert(token, i);
            }
            HostEvent::ClusterResumeClaim { connection, token } => {
                let state = self.store.resumable.remove(&token).and_then(|owner| {
                    let state = self.nodes[owner].engine.cluster_handover(&token, now);
                    self.drain(owner, &"cluster_handover");
                    state
                });
                if let Some(s) = &state {
                    self.remember(Entry::Apply, "handover", s);
                }
                // Faithful on a zero byte (as when settling).
                let how = inp.choose(8);
                let mutated = how == 7 && state.is_some();
                let state = match how {
                    5 => None,
                    6 => Some(handover_state(inp)),
                    7 => state.map(|s| mutate(inp, &s)),
                    _ => state,
                };
                if self.trace {
                    eprintln!("  {} cluster_resume({connection:?}, {state:?})", NODES[i]);
                }
                let result = self.nodes[i].engine.cluster_resume(connection, state.as_deref(), now);
                self.nodes[i].tainted_resume |= mutated && result.is_ok();
                self.drain(i, &"cluster_resume");
            }
            HostEvent::ClusterObject { realm, op, id, data_text } => {
                self.write_object(&realm, op, &id, data_text.as_deref(), now)
            }
            HostEvent::ClusterRealmPublish { message, .. } => {
                self.remember(Entry::Objects, "", &message);
                for node in &mut self.nodes {
                    node.deliver_later(Msg::Objects(message.clone()));
                }
            }
            HostEvent::ClusterProviders { providers } => {
                self.store.version += 1;
                let node = NODES[i];
                let text = format!(r#"{{"n":{},"v":{},"p":{providers}}}"#, js(node), self.store.version);
                self.store.providers.insert(node.to_string(), (text.clone(), providers));
                self.publish_objects(text);
            }
            HostEvent::ClusterRealmResync { realm } => {
                let snap = (inp.byte() & 1 == 0).then(|| self.store.realm_snapshot(&realm));
                self.nodes[i].deliver_later(Msg::RealmSnapshot(realm, snap));
            }
            _ => {}
        }
    }

    /// The change script: state, seq, publish to the nodes watching.
    fn write_member(&mut self, room: &str, op: &str, id: &str, member: Option<String>, t: u64) {
        let r = self.store.rooms.entry(room.to_string()).or_default();
        let (op, stored) = match member {
            Some(m) if op == "adopt" && r.members.contains_key(id) => {
                r.members.insert(id.to_string(), m);
                return;
            }
            Some(m) => {
                let op = if r.members.contains_key(id) { "update" } else { "join" };
                r.members.insert(id.to_string(), m.clone());
                (op, m)
            }
            None => match r.members.remove(id) {
                Some(old) => ("leave", old),
                None => return,
            },
        };
        r.seq += 1;
        let text = format!(r#"{{"e":{},"s":{},"op":"{op}","t":{t},"m":{stored}}}"#, self.store.room_epoch, r.seq);
        self.remember(Entry::Apply, room, &text);
        for node in &mut self.nodes {
            if node.watching.contains(room) {
                node.deliver_later(Msg::Room(room.to_string(), text.clone()));
            }
        }
    }

    /// The OBJECT script.
    fn write_object(&mut self, realm: &str, op: &str, id: &str, data: Option<&str>, t: u64) {
        let r = self.store.realms.entry(realm.to_string()).or_default();
        let exists = r.objects.contains_key(id);
        let (op, d) = match op {
            "delete" if exists => {
                r.objects.remove(id);
                ("delete", "null".to_string())
            }
            "update" if !exists => return,
            "create" | "update" => {
                let d = data.unwrap_or("null").to_string();
                r.objects.insert(id.to_string(), d.clone());
                (if exists { "update" } else { "create" }, d)
            }
            _ => return,
        };
        r.seq += 1;
        let text = format!(
            r#"{{"r":{},"e":{},"s":{},"op":"{op}","t":{t},"id":{},"d":{d}}}"#,
            js(realm),
            self.store.realm_epoch,
            r.seq,
            js(id)
        );
        self.publish_objects(text);
    }

    fn publish_objects(&mut self, text: String) {
        self.remember(Entry::Objects, "", &text);
        for node in &mut self.nodes {
            node.deliver_later(Msg::Objects(text.clone()));
        }
    }

    /// Redis restarted: empty, new epochs. Every node re-asserts its
    /// members and objects silently, then the store publishes resync markers.
    fn store_restart(&mut self) {
        self.store.room_epoch += 1;
        self.store.realm_epoch += 1;
        self.store.rooms.clear();
        self.store.realms.clear();
        for i in 0..self.nodes.len() {
            let rooms: Vec<String> = self.nodes[i].watching.iter().cloned().collect();
            for room in rooms {
                let members = self.nodes[i].engine.cluster_local_members(&room);
                let r = self.store.rooms.entry(room).or_default();
                for m in members {
                    let v: serde_json::Value = serde_json::from_str(&m).expect("the engine's member text is JSON");
                    let id = v["id"].as_str().expect("a member has an id").to_string();
                    r.members.insert(id, m);
                }
                r.seq = 1;
            }
            for realm in self.nodes[i].engine.cluster_realms() {
                let flat = self.nodes[i].engine.cluster_realm_objects(&realm);
                let r = self.store.realms.entry(realm).or_default();
                for pair in flat.chunks(2) {
                    let d = if pair[1].is_empty() { "null".to_string() } else { pair[1].clone() };
                    r.objects.insert(pair[0].clone(), d);
                }
                r.seq = 1;
            }
        }
        let (re, oe) = (self.store.room_epoch, self.store.realm_epoch);
        let rooms: Vec<(String, u64)> = self.store.rooms.iter().map(|(k, r)| (k.clone(), r.seq)).collect();
        for (room, seq) in rooms {
            let text = format!(r#"{{"e":{re},"s":{seq},"op":"resync"}}"#);
            for node in &mut self.nodes {
                if node.watching.contains(&room) {
                    node.deliver_later(Msg::Room(room.clone(), text.clone()));
                }
            }
        }
        let realms: Vec<(String, u64)> = self.store.realms.iter().map(|(k, r)| (k.clone(), r.seq)).collect();
        for (realm, seq) in realms {
            self.publish_objects(format!(r#"{{"r":{},"e":{oe},"s":{seq},"op":"resync"}}"#, js(&realm)));
        }
    }

    /// Delivers one message from node `i`'s inbox.
    fn deliver(&mut self, i: usize, msg: Msg) {
        let (entry, scope, text) = match msg {
            Msg::Room(room, text) => (Entry::Apply, room, text),
            Msg::RoomSnapshot(room, text) => {
                let text = text.unwrap_or_else(|| self.store.room_snapshot(&room));
                (Entry::Snapshot, room, text)
            }
            Msg::Objects(text) => (Entry::Objects, String::new(), text),
            Msg::RealmSnapshot(realm, text) => {
                let text = text.unwrap_or_else(|| self.store.realm_snapshot(&realm));
                (Entry::RealmSnapshot, realm, text)
            }
        };
        self.feed(i, entry, &scope, &text);
    }

    // ---- host events ----

    fn open(&mut self, i: usize, slot: usize, spec: usize) {
        let id = identity(&SPECS[spec]);
        let node = &mut self.nodes[i];
        let mut c = node.slots[slot];
        if !node.open.contains(&c) && node.ever.contains(&c) {
            c += SLOTS as u64;
            node.slots[slot] = c;
        }
        node.ever.insert(c);
        let was_open = node.open.contains(&c);
        let result = node.engine.handle_open(ConnectionId(c), Credentials::Identity(id.clone()), self.now);
        if self.trace {
            eprintln!("  {} open {c} as {spec} -> {result:?}", NODES[i]);
        }
        if was_open {
            assert!(result.is_err(), "invariant: opening open connection {c} again was not refused");
        } else {
            assert!(result.is_ok(), "invariant: opening connection {c} failed: {result:?}");
            node.open.insert(c);
            node.identities.insert(c, id);
        }
        let n = self.drain(i, &("open", c));
        if was_open {
            assert_eq!(n, 0, "invariant: a refused open produced outputs");
        }
    }

    fn frame(&mut self, i: usize, c: u64, bytes: &[u8]) {
        if self.trace {
            eprintln!("  {} frame {c}: {}", NODES[i], String::from_utf8_lossy(bytes));
        }
        let quiet = !self.nodes[i].open.contains(&c) || self.nodes[i].lost.contains(&c);
        self.nodes[i].engine.handle_frame(ConnectionId(c), bytes, self.now);
        let n = self.drain(i, &("frame", c));
        if quiet {
            assert_eq!(n, 0, "invariant: a frame for a connection not open or lost produced outputs");
        }
    }

    fn step(&mut self, inp: &mut Input) {
        self.steps += 1;
        let i = inp.choose(2);
        match inp.choose(32) {
            0..=2 => {
                let slot = inp.choose(SLOTS);
                let spec = inp.choose(SPECS.len());
                self.open(i, slot, spec);
            }
            3..=8 => {
                let c = self.nodes[i].slots[inp.choose(SLOTS)];
                let frame = structured_frame(inp);
                self.frame(i, c, &frame);
            }
            9 => {
                let c = self.nodes[i].slots[inp.choose(SLOTS)];
                let n = inp.byte() as usize;
                let bytes = inp.bytes(n).to_vec();
                self.frame(i, c, &bytes);
            }
            10 => {
                let c = self.nodes[i].slots[inp.choose(SLOTS)];
                if self.trace {
                    eprintln!("  {} close {c}", NODES[i]);
                }
                self.nodes[i].engine.handle_close(ConnectionId(c), self.now);
                self.drain(i, &("close", c));
            }
            11 => {
                let c = self.nodes[i].slots[inp.choose(SLOTS)];
                if self.trace {
                    eprintln!("  {} lost {c}", NODES[i]);
                }
                self.nodes[i].engine.handle_lost(ConnectionId(c), self.now);
                self.drain(i, &("lost", c));
            }
            12 => {
                // A resume with a token either node handed out (or a stale one).
                let c = self.nodes[i].slots[inp.choose(SLOTS)];
                let token = match self.tokens.len() {
                    0 => "0".repeat(64),
                    n => self.tokens[n - 1 - inp.choose(n)].clone(),
                };
                let since = match inp.choose(3) {
                    0 => String::new(),
                    1 => format!(r#","epoch":{},"since":{{"lobby":{}}}"#, number(inp, 1000), inp.byte()),
                    _ => r#","since":{"r":1}"#.to_string(),
                };
                let frame = format!(r#"{{"op":"resume","ref":{},"token":{}{since}}}"#, inp.byte(), js(&token));
                self.frame(i, c, frame.as_bytes());
            }
            13 => {
                self.now = match inp.choose(4) {
                    0 | 1 => self.now.saturating_add(u64::from(inp.byte()) * 10),
                    2 => self.now.saturating_add(u64::from(inp.byte()) * 100),
                    _ => self.now.saturating_add(LEAVE_GRACE_MS),
                };
                for (i, name) in NODES.iter().enumerate().take(self.nodes.len()) {
                    if self.trace {
                        eprintln!("  {name} tick {}", self.now);
                    }
                    self.nodes[i].engine.handle_timeout(self.now);
                    self.drain(i, &"tick");
                }
            }
            14 => {
                let room = pick(inp, ROOMS);
                let event = pick(inp, EVENTS);
                let d = match inp.choose(3) {
                    0 => None,
                    1 => Some(data(inp)),
                    _ => Some("{not json".to_string()),
                };
                let _ = self.nodes[i].engine.publish(&room, &event, d.as_deref(), self.now);
                self.drain(i, &"publish");
            }
            15..=20 => {
                // The store acts on a few events, in order.
                for _ in 0..=inp.choose(4) {
                    self.store_step(i, inp);
                }
            }
            21..=24 => {
                // Deliveries: in order, out of order, dropped or duplicated.
                let n = self.nodes[i].inbox.len();
                if n == 0 {
                    return self.check();
                }
                match inp.choose(8) {
                    0..=3 => {
                        for _ in 0..=inp.choose(4) {
                            let Some(msg) = self.nodes[i].inbox.pop_front() else { break };
                            self.deliver(i, msg);
                        }
                    }
                    4 | 5 => {
                        let k = inp.choose(n);
                        if let Some(msg) = self.nodes[i].inbox.remove(k) {
                            self.deliver(i, msg);
                        }
                    }
                    6 => {
                        let k = inp.choose(n);
                        self.nodes[i].inbox.remove(k);
                    }
                    _ => {
                        let k = inp.choose(n);
                        if let Some(msg) = self.nodes[i].inbox.get(k).cloned() {
                            self.deliver(i, msg);
                        }
                    }
                }
            }
            25 | 26 => {
                // Well-formed text the store never wrote.
                let (entry, scope, text) = self.made_up(inp);
                self.taint(i, entry, &scope);
                self.feed(i, entry, &scope, &text);
            }
            27 => {
                // A real message, mutated.
                if self.recent.is_empty() {
                    return self.check();
                }
                let k = inp.choose(self.recent.len());
                let (entry, scope, text) = self.recent[k].clone();
                let text = mutate(inp, &text);
                if scope == "handover" {
                    self.fuzzed_handover_elsewhere(i, &text, true);
                } else {
                    self.taint(i, entry, &scope);
                    self.feed(i, entry, &scope, &text);
                }
            }
            28 => {
                // Raw bytes, to any entry point.
                let n = inp.byte() as usize;
                let text = String::from_utf8_lossy(inp.bytes(n)).into_owned();
                let scope = pick(inp, ROOMS);
                match inp.choose(7) {
                    0 => self.fuzzed_handover_elsewhere(i, &text, true),
                    1 => {
                        let token = self.tokens.last().cloned().unwrap_or_default();
                        let token = if inp.byte() & 1 == 0 { token } else { text };
                        // A handover of a token nobody claimed (the host erred).
                        let now = self.now;
                        let _ = self.nodes[i].engine.cluster_handover(&token, now);
                        self.drain(i, &"cluster_handover");
                    }
                    k => {
                        let entry = [
                            Entry::Apply,
                            Entry::Snapshot,
                            Entry::Objects,
                            Entry::RealmSnapshot,
                            Entry::ProvidersSnapshot,
                        ][k - 2];
                        let scope = if matches!(entry, Entry::RealmSnapshot) { pick(inp, REALMS) } else { scope };
                        self.taint(i, entry, &scope);
                        // Raw text may name any realm.
                        self.nodes[i].tainted_objects |= matches!(entry, Entry::Objects);
                        self.feed(i, entry, &scope, &text);
                    }
                }
            }
            29 => {
                // A made-up handover for a connection whose resume waits for one.
                let state = handover_state(inp);
                self.fuzzed_handover_elsewhere(i, &state, false);
            }
            30 if inp.byte() < 32 => {
                if self.trace {
                    eprintln!("  store restart");
                }
                self.store_restart();
            }
            30 => {
                // The store acts on one event of each node.
                self.store_step(0, inp);
                self.store_step(1, inp);
            }
            _ => {
                // Everything settles: every event acted on, every message delivered in order.
                if self.trace {
                    eprintln!("  settle");
                }
                self.settle(&mut Input::new(&[]));
            }
        }
        self.check();
    }

    /// `cluster_resume` with `state` for the oldest resume on node `i`
    /// still waiting for its claim (if any: else for connection 1).
    /// `mutated`: not a state a node could have written.
    fn fuzzed_handover_elsewhere(&mut self, i: usize, state: &str, mutated: bool) {
        let waiting = self.nodes[i].pending.iter().find_map(|e| match e {
            HostEvent::ClusterResumeClaim { connection, .. } => Some(*connection),
            _ => None,
        });
        let conn = waiting.unwrap_or(ConnectionId(1));
        if let Some(k) = self.nodes[i]
            .pending
            .iter()
            .position(|e| matches!(e, HostEvent::ClusterResumeClaim { connection, .. } if *connection == conn))
        {
            self.nodes[i].pending.remove(k);
        }
        if self.trace {
            eprintln!("  {} cluster_resume({conn:?}, {state:?}) made up", NODES[i]);
        }
        let now = self.now;
        let result = self.nodes[i].engine.cluster_resume(conn, Some(state), now);
        self.nodes[i].tainted_resume |= mutated && result.is_ok();
        self.drain(i, &"cluster_resume (made up)");
    }

    /// A well-formed message the store never wrote, with fuzzed fields.
    fn made_up(&mut self, inp: &mut Input) -> (Entry, String, String) {
        let now = self.now;
        match inp.choose(8) {
            0 | 1 => {
                let room = pick(inp, ROOMS);
                let seq = self.store.rooms.get(&room).map_or(0, |r| r.seq);
                let e = number(inp, self.store.room_epoch);
                let s = number(inp, seq);
                let op = pick(inp, &["join", "update", "leave", "resync", "adopt"]);
                let mut fields = vec![format!(r#""e":{e}"#), format!(r#""s":{s}"#), format!(r#""op":{}"#, js(&op))];
                if inp.byte() & 1 == 0 {
                    fields.push(format!(r#""t":{}"#, number(inp, now)));
                }
                if inp.byte() & 3 != 0 {
                    fields.push(format!(r#""m":{}"#, member(inp)));
                }
                (Entry::Apply, room, format!("{{{}}}", fields.join(",")))
            }
            2 => {
                let room = pick(inp, ROOMS);
                let seq = self.store.rooms.get(&room).map_or(0, |r| r.seq);
                let e = number(inp, self.store.room_epoch);
                let s = number(inp, seq);
                let members: Vec<String> = (0..inp.choose(4)).map(|_| member(inp)).collect();
                (Entry::Snapshot, room, format!(r#"{{"e":{e},"s":{s},"m":[{}]}}"#, members.join(",")))
            }
            3 => {
                let realm = pick(inp, REALMS);
                let seq = self.store.realms.get(&realm).map_or(0, |r| r.seq);
                let e = number(inp, self.store.realm_epoch);
                let s = number(inp, seq);
                let op = pick(inp, &["create", "update", "delete", "resync"]);
                let mut fields = vec![
                    format!(r#""r":{}"#, js(&realm)),
                    format!(r#""e":{e}"#),
                    format!(r#""s":{s}"#),
                    format!(r#""op":{}"#, js(&op)),
                ];
                if inp.byte() & 1 == 0 {
                    fields.push(format!(r#""t":{}"#, number(inp, now)));
                }
                if inp.byte() & 3 != 0 {
                    fields.push(format!(r#""id":{}"#, js(&pick(inp, IDS))));
                }
                if inp.byte() & 1 == 0 {
                    fields.push(format!(r#""d":{}"#, data(inp)));
                }
                (Entry::Objects, realm, format!("{{{}}}", fields.join(",")))
            }
            4 => {
                let realm = pick(inp, REALMS);
                let seq = self.store.realms.get(&realm).map_or(0, |r| r.seq);
                let e = number(inp, self.store.realm_epoch);
                let s = number(inp, seq);
                let objects: Vec<String> =
                    (0..inp.choose(5)).map(|_| format!("[{},{}]", js(&pick(inp, IDS)), data(inp))).collect();
                (Entry::RealmSnapshot, realm, format!(r#"{{"e":{e},"s":{s},"o":[{}]}}"#, objects.join(",")))
            }
            5 => (Entry::Objects, String::new(), self.providers_message(inp)),
            6 => {
                let at = number(inp, self.store.version);
                let list: Vec<String> = (0..inp.choose(4)).map(|_| self.providers_message(inp)).collect();
                (Entry::ProvidersSnapshot, String::new(), format!(r#"{{"at":{at},"p":[{}]}}"#, list.join(",")))
            }
            _ => {
                // Room and realm events: routed to subscribers, no state.
                let n = js(&pick(inp, NODE_NAMES));
                let ev = js(&pick(inp, EVENTS));
                let f = match inp.choose(3) {
                    0 => data(inp),
                    1 => {
                        format!(r#"{{"type":"event","realm":"fleet","event":{ev},"id":"van/1","data":{}}}"#, data(inp))
                    }
                    _ => format!(r#"{{"type":"message","room":"lobby","event":{ev},"data":{}}}"#, data(inp)),
                };
                if inp.byte() & 1 == 0 {
                    let room = pick(inp, ROOMS);
                    (Entry::Apply, room, format!(r#"{{"n":{n},"ev":{ev},"f":{f}}}"#))
                } else {
                    let id = if inp.byte() & 1 == 0 { js(&pick(inp, IDS)) } else { "null".into() };
                    let r = js(&pick(inp, REALMS));
                    (Entry::Objects, String::new(), format!(r#"{{"r":{r},"n":{n},"ev":{ev},"id":{id},"f":{f}}}"#))
                }
            }
        }
    }

    fn providers_message(&mut self, inp: &mut Input) -> String {
        let n = pick(inp, NODE_NAMES);
        let known = self.store.providers.get(&n).map_or(self.store.version, |_| self.store.version);
        let v = number(inp, known);
        let p = match inp.choose(4) {
            0 => "null".to_string(),
            _ => {
                let realms: Vec<String> = (0..inp.choose(3))
                    .map(|_| {
                        let ps: Vec<String> = (0..inp.choose(3)).map(|_| js(&pick(inp, PATTERNS))).collect();
                        format!("{}:[{}]", js(&pick(inp, REALMS)), ps.join(","))
                    })
                    .collect();
                format!("{{{}}}", realms.join(","))
            }
        };
        format!(r#"{{"n":{},"v":{v},"p":{p}}}"#, js(&n))
    }

    // ---- checks ----

    fn check(&mut self) {
        for node in &mut self.nodes {
            let e = &mut node.engine;
            let mut object_bytes = 0;
            for realm in e.realm_names() {
                let objects = e.objects(&realm, "**").expect("`**` is a valid pattern");
                for o in &objects {
                    object_bytes += 256 + o.id.len() + o.data.as_ref().map_or(0, String::len);
                    let connected = o.connection_status == ConnectionStatus::Connected;
                    assert_eq!(
                        connected,
                        o.providers > 0,
                        "invariant: node {} object {:?} in {realm:?} is {:?} with {} providers",
                        node.name,
                        o.id,
                        o.connection_status,
                        o.providers
                    );
                    let local = node
                        .identities
                        .values()
                        .filter(|id| id.dpv.as_ref().is_some_and(|d| claim_provides(d, &realm, &o.id)))
                        .count() as u32;
                    let most = local + node.remote_names.len() as u32;
                    assert!(
                        local <= o.providers && o.providers <= most,
                        "invariant: node {} object {:?} in {realm:?} has {} providers; its own connections give {local}, at most {most}",
                        node.name,
                        o.id,
                        o.providers
                    );
                }
            }
            assert!(
                e.stored_bytes() <= MAX_STORED_BYTES + object_bytes + ADOPT_SLACK,
                "invariant: node {} holds {} bytes: budget {MAX_STORED_BYTES}, objects {object_bytes}",
                node.name,
                e.stored_bytes()
            );
            for room in e.room_names() {
                let members = e.members(&room);
                let clients = e.clients(&room);
                let counts = e.room_counts(&room);
                assert!(counts.connections > 0, "invariant: node {} lists room {room:?} with no connection", node.name);
                assert_eq!(counts.members, members.len(), "invariant: room_counts.members of {room:?}");
                assert_eq!(counts.clients, clients.len(), "invariant: room_counts.clients of {room:?}");
                let listed: usize = clients.iter().map(|c| c.connections.len()).sum();
                assert_eq!(listed, members.len(), "invariant: clients() of {room:?} disagrees with members()");
                // Until the store orders its leave, a member stays keyed by
                // a connection that closed (checked open after converging).
                for m in &members {
                    if !is_remote(m.connection) {
                        assert!(
                            node.ever.contains(&m.connection.0),
                            "invariant: node {} member {:?} of {room:?} keyed as local connection {}, never opened",
                            node.name,
                            m.id,
                            m.connection.0
                        );
                    }
                }
                if !node.tainted_rooms.contains(&room) {
                    let ids: BTreeSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
                    assert_eq!(
                        ids.len(),
                        members.len(),
                        "invariant: node {} room {room:?} holds a member id twice: {members:?}",
                        node.name
                    );
                }
            }
        }
    }

    /// Settles: the store acts on every event and every message is delivered.
    ///
    /// A change held past the store's seq (one the store never wrote) asks
    /// for a snapshot after every snapshot: host and engine would loop for
    /// ever. Where such text was fed, settling gives up after a while (the
    /// rest is dropped); where it was not, it must settle.
    fn settle(&mut self, inp: &mut Input) {
        for _ in 0..64 {
            let busy = self.nodes.iter().any(|n| !n.pending.is_empty() || !n.inbox.is_empty());
            if !busy {
                return;
            }
            for i in 0..self.nodes.len() {
                while !self.nodes[i].pending.is_empty() {
                    self.store_step(i, inp);
                }
                while let Some(msg) = self.nodes[i].inbox.pop_front() {
                    self.deliver(i, msg);
                }
            }
            self.check();
        }
        let tainted = self.nodes.iter().any(Node::tainted);
        assert!(tainted, "invariant: the cluster never settled on the store's text alone");
        for node in &mut self.nodes {
            node.pending
                .retain(|e| !matches!(e, HostEvent::ClusterResync { .. } | HostEvent::ClusterRealmResync { .. }));
            node.inbox.retain(|m| !matches!(m, Msg::RoomSnapshot(..) | Msg::RealmSnapshot(..)));
        }
        for i in 0..self.nodes.len() {
            while !self.nodes[i].pending.is_empty() {
                self.store_step(i, inp);
            }
            self.nodes[i]
                .pending
                .retain(|e| !matches!(e, HostEvent::ClusterResync { .. } | HostEvent::ClusterRealmResync { .. }));
        }
        for node in &mut self.nodes {
            node.inbox.clear();
        }
    }

    /// Every node reads a fresh snapshot of everything; where only the
    /// store's text was fed, it must then agree with the store.
    fn converge(&mut self) {
        let mut quiet = Input::new(&[]);
        self.settle(&mut quiet);
        for i in 0..self.nodes.len() {
            let rooms = self.nodes[i].engine.room_names();
            for room in &rooms {
                let snap = self.store.room_snapshot(room);
                self.feed(i, Entry::Snapshot, room, &snap);
            }
            let mut realms: BTreeSet<String> = self.store.realms.keys().cloned().collect();
            realms.extend(self.nodes[i].engine.realm_names());
            for realm in &realms {
                let snap = self.store.realm_snapshot(realm);
                self.feed(i, Entry::RealmSnapshot, realm, &snap);
            }
            let snap = self.store.providers_snapshot();
            self.feed(i, Entry::ProvidersSnapshot, "", &snap);
        }
        self.settle(&mut quiet);
        self.check();
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            for room in node.engine.room_names() {
                if node.tainted_rooms.contains(&room) || node.tainted_resume {
                    continue;
                }
                let members = node.engine.members(&room);
                for m in members.iter().filter(|m| !is_remote(m.connection)) {
                    assert!(
                        node.open.contains(&m.connection.0),
                        "invariant: node {} member {:?} of {room:?} keyed as connection {}, closed, after converging",
                        node.name,
                        m.id,
                        m.connection.0
                    );
                }
                let got: BTreeSet<String> = members.into_iter().map(|m| m.id).collect();
                let want: BTreeSet<String> =
                    self.store.rooms.get(&room).map(|r| r.members.keys().cloned().collect()).unwrap_or_default();
                assert_eq!(
                    got, want,
                    "invariant: node {} room {room:?} differs from the store after a snapshot",
                    node.name
                );
            }
            if node.tainted_objects {
                continue;
            }
            let mut realms: BTreeSet<String> = self.store.realms.keys().cloned().collect();
            realms.extend(node.engine.realm_names());
            for realm in realms {
                if node.tainted_realms.contains(&realm) {
                    continue;
                }
                let objects = node.engine.objects(&realm, "**").expect("`**` is a valid pattern");
                let got: BTreeMap<String, String> =
                    objects.iter().map(|o| (o.id.clone(), o.data.clone().unwrap_or_else(|| "null".into()))).collect();
                let want = self.store.realms.get(&realm).map(|r| r.objects.clone()).unwrap_or_default();
                assert_eq!(got, want, "invariant: node {} realm {realm:?} differs from the store", node.name);
                if node.tainted_providers {
                    continue;
                }
                for o in &objects {
                    let local = node
                        .identities
                        .values()
                        .filter(|id| id.dpv.as_ref().is_some_and(|d| claim_provides(d, &realm, &o.id)))
                        .count();
                    let remote = self
                        .store
                        .providers
                        .iter()
                        .filter(|(n, _)| n.as_str() != node.name)
                        .filter(|(_, (_, set))| {
                            let set: BTreeMap<String, Vec<String>> =
                                serde_json::from_str(set).expect("a node's provider set is JSON");
                            claim_provides(&set, &realm, &o.id)
                        })
                        .count();
                    assert_eq!(
                        o.providers as usize,
                        local + remote,
                        "invariant: node {} object {:?} in {realm:?}: {} providers, {local} local and {remote} other nodes provide it",
                        node.name,
                        o.id,
                        o.providers
                    );
                }
            }
        }
    }

    /// Closes everything: nothing may be left behind but objects.
    fn finish(&mut self) {
        for i in 0..self.nodes.len() {
            let conns: Vec<u64> = self.nodes[i].open.difference(&self.nodes[i].lost).copied().collect();
            for c in conns {
                self.nodes[i].engine.handle_close(ConnectionId(c), self.now);
                self.drain(i, &("final close", c));
            }
        }
        self.now = self.now.saturating_add(LEAVE_GRACE_MS);
        for i in 0..self.nodes.len() {
            self.nodes[i].engine.handle_timeout(self.now);
            self.drain(i, &"final tick");
        }
        let mut quiet = Input::new(&[]);
        self.settle(&mut quiet);
        self.check();
        for node in &mut self.nodes {
            let e = &mut node.engine;
            assert!(node.open.is_empty(), "invariant: node {} left connections {:?} open", node.name, node.open);
            assert_eq!(e.connection_count(), 0, "invariant: node {} holds connections after closing all", node.name);
            assert!(e.room_names().is_empty(), "invariant: node {} left rooms {:?}", node.name, e.room_names());
            assert_eq!(e.poll_timeout(), None, "invariant: node {} left a deadline", node.name);
            let mut objects = 0;
            for realm in e.realm_names() {
                let list = e.objects(&realm, "**").expect("`**` is a valid pattern");
                assert!(!list.is_empty(), "invariant: node {} left realm {realm:?} with nothing in it", node.name);
                for o in list {
                    objects += 256 + o.id.len() + o.data.map_or(0, |d| d.len());
                }
            }
            if node.tainted_resume {
                continue;
            }
            assert_eq!(
                e.stored_bytes(),
                objects,
                "invariant: node {} holds {} bytes with no connection, its objects {objects}",
                node.name,
                e.stored_bytes()
            );
        }
    }
}

/// A member in the store's format, with fuzzed fields.
fn member(inp: &mut Input) -> String {
    let mut fields = vec![
        format!(r#""id":{}"#, js(&pick(inp, MEMBER_IDS))),
        format!(r#""c":{}"#, js(&pick(inp, &["alice", "bob"]))),
    ];
    match inp.choose(3) {
        0 => {}
        1 => fields.push(r#""d":null"#.to_string()),
        _ => fields.push(format!(r#""d":{}"#, data(inp))),
    }
    fields.push(format!(r#""n":{}"#, js(&pick(inp, NODE_NAMES))));
    format!("{{{}}}", fields.join(","))
}

/// A handover in its format, with fuzzed fields, as a node could have
/// written it: each room once, its member (if any) under the handover's id.
fn handover_state(inp: &mut Input) -> String {
    let c = pick(inp, &["alice", "bob", "carol"]);
    let id = pick(inp, MEMBER_IDS);
    let mut names: Vec<String> = (0..inp.choose(4)).map(|_| pick(inp, ROOMS)).collect();
    names.sort();
    names.dedup();
    let rooms: Vec<String> = names
        .iter()
        .map(|room| {
            let mut fields = vec![format!(r#""r":{}"#, js(room))];
            if inp.byte() & 1 == 0 {
                let d = if inp.byte() & 1 == 0 { data(inp) } else { "null".into() };
                fields.push(format!(
                    r#""m":{{"id":{},"c":{},"d":{d},"n":{}}}"#,
                    js(&id),
                    js(&c),
                    js(&pick(inp, NODE_NAMES))
                ));
            }
            if inp.byte() & 1 == 0 {
                fields.push(format!(r#""p":[{},{}]"#, inp.byte(), inp.byte() & 1 == 0));
            }
            let ev: Vec<String> = (0..inp.choose(3)).map(|_| js(&pick(inp, EVENTS))).collect();
            fields.push(format!(r#""ev":[{}]"#, ev.join(",")));
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    let realms: Vec<String> = (0..inp.choose(3))
        .map(|_| {
            let ev = if inp.byte() & 1 == 0 { js(&pick(inp, EVENTS)) } else { "null".into() };
            format!("[{},{ev},{}]", js(&pick(inp, REALMS)), js(&pick(inp, &["**", "van/*", "x", "["])))
        })
        .collect();
    format!(r#"{{"c":{},"id":{},"rooms":[{}],"realms":[{}]}}"#, js(&c), js(&id), rooms.join(","), realms.join(","))
}

/// `text` with a few bytes changed, cut, inserted or repeated.
fn mutate(inp: &mut Input, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=inp.choose(3) {
        if bytes.is_empty() {
            break;
        }
        let at = (usize::from(inp.byte()) << 8 | usize::from(inp.byte())) % bytes.len();
        match inp.choose(5) {
            0 => bytes[at] = inp.byte(),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, b"{}[]\",:0-9e\\"[inp.choose(12)]),
            3 => {
                let end = (at + 1 + inp.choose(16)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => {
                let end = (at + 1 + inp.choose(8)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs one fuzz input. Panics (with `invariant: ...`) when an engine
/// breaks one of the invariants in the module docs.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut h = Harness::new();
    while !inp.is_empty() && h.steps < MAX_STEPS {
        if h.trace {
            eprintln!("#{} at byte {}", h.steps + 1, inp.position());
        }
        h.step(&mut inp);
    }
    h.converge();
    h.finish();
}
