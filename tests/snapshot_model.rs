//! Snapshot/restore as a property: random histories over a small universe
//! (connections 1..=6 opened with host-asserted identities carrying random
//! clientIds, `rooms` grants, `per` and `dpv` claims and expiries; pending
//! connections that then `auth` with an HS256 token or garbage; tokens at
//! open; rooms r1, r2 (r3 rarely); realms "london" (and "paris", "tokyo"
//! rarely) with ids riders/a, riders/b, vans/c) drive engine A without
//! stopping. Every client op is generated (auth, ping, room.*, presence.*,
//! subscribe/unsubscribe/publish, object.*, realm.*) with random data,
//! patterns, views and event filters, plus closes, clock ticks with
//! `handle_timeout`, host publishes, garbage frames, floods that hit the
//! rate limit and the 4008 close, and liveness: signs of life
//! (`handle_alive`), idle time-outs, lost connections in grace, and
//! `resume` with live, lost, used or foreign tokens and `since` seqs that
//! replay or resync (so that idle checks, grace deadlines, resume tokens,
//! member ids, per-room seqs and replay buffers must all survive).
//!
//! At one or more random points A is snapshotted (outputs drained) and B is
//! restored from the bytes; from then on both get the same inputs, and after
//! every step their outputs, return values, `poll_timeout`, `members`,
//! `clients`, `room_counts`, `room_names`, `realm_names`, `object`,
//! `objects`, `connection_count` and their snapshot bytes must be equal.
//!
//! And A writes its records (persist.rs) as they change: after every step
//! an engine imported from the records kept so far snapshots to the same
//! bytes as A.
//!
//! Also: a snapshot never restores under another `SNAPSHOT_VERSION`;
//! truncations are refused; random bytes and bit flips never panic in
//! `restore`, and an engine restored from flipped bytes that still decode
//! never panics when driven further.
//!
//! Cases default to 48 per property (a few seconds in debug); override with
//! `PROPTEST_CASES`.

// proptest does not build for wasm32; the other suites run there.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeSet;

use common::tokens::{self, hs256};
use common::T0;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rollcall::{
    Algorithm, Config, ConnectionId, Credentials, Engine, Error, HostEvent, Identity, Output, RateLimit, SnapshotError,
    SNAPSHOT_VERSION,
};
use serde_json::{json, Value};

// ---- the universe ------------------------------------------------------

const CONNS: u64 = 6;
/// Index 3 is an invalid clientId (empty): the open is refused as the host's error.
const CLIENTS: [&str; 4] = ["a", "b", "c", ""];
const ROOMS: [&str; 3] = ["r1", "r2", "r3"];
const ROOM_EVENTS: [&str; 3] = ["e1", "e2", "*"];
const KINDS: [&str; 3] = ["join", "update", "leave"];
const REALMS: [&str; 3] = ["london", "paris", "tokyo"];
const IDS: [&str; 4] = ["riders/a", "riders/b", "vans/c", "riders/a/x"];
const PATTERNS: [&str; 8] = ["**", "riders/*", "riders/a", "vans/*", "*", "riders/**", "*/c", "[bad"];
const REALM_EVENTS: [&str; 4] = ["moved", "stopped", "connectionStatusChanged", "*"];
/// Presence / object / message data as raw JSON text. The last is over the limits.
const DATA: [&str; 8] = [
    "null",
    "1",
    "\"hi\"",
    "{\"v\":0}",
    "{ \"name\" : \"Ann\", \"n\": [1, 2] }",
    "[]",
    "\"caf\\u00e9\"",
    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
];
/// Generated connection ids from `LIVE` on name a live connection by rank.
const LIVE: u64 = 100;

fn config() -> Config {
    let mut config = tokens::hs256_config();
    config.auth.auth_timeout_ms = 10_000;
    // Small limits, so that every refusal is reachable in a few steps.
    config.limits.max_rooms_per_connection = 2;
    config.limits.max_subscriptions_per_connection = 3;
    config.limits.max_members_per_room = 3;
    config.limits.max_presence_data_bytes = 64;
    config.limits.max_object_data_bytes = 64;
    config.limits.max_realms = 2;
    config.limits.max_objects_per_realm = 3;
    config.limits.pattern_cache_size = 3;
    config.limits.rate = RateLimit { burst: 20, per_second: 5 };
    config.limits.violations = RateLimit { burst: 5, per_second: 1 };
    config.idle_timeout_ms = 8_000;
    config.leave_grace_ms = 5_000;
    config.resume_secret = Some("snapshot-model-key".into());
    config.epoch = 42;
    config.replay_events = 2;
    config
}

/// `rooms` claims: 0 none (default grants: everything), 1 limited, 2 no presence.
fn rooms_claim(i: usize) -> Option<Value> {
    match i {
        0 => None,
        1 => Some(json!({"r1": ["subscribe", "publish", "presence"], "r2": ["subscribe"]})),
        _ => Some(json!({"r*": ["subscribe", "publish"]})),
    }
}

/// `per` claims; the last is invalid.
fn per_claim(i: usize) -> Option<Value> {
    match i {
        0 => None,
        1 => Some(json!({"london": {"**": "CRUD"}})),
        2 => Some(json!({"london": {"riders/*": "R", "riders/a": "CU"}})),
        3 => Some(json!({"*": {"**": "R"}, "london": {"vans/*": "CRUD"}})),
        4 => Some(json!({"*": {"**": "CRUD"}})),
        5 => Some(json!({"london": {"riders/b": "RUD"}, "paris": {"**": "CR"}})),
        _ => Some(json!({"london": {"**": "Z"}})),
    }
}

/// `dpv` claims; 5 is empty, the last is invalid.
fn dpv_claim(i: usize) -> Option<Value> {
    match i {
        0 => None,
        1 => Some(json!({"london": ["riders/a"]})),
        2 => Some(json!({"*": ["riders/*"]})),
        3 => Some(json!({"london": ["vans/*", "riders/b"]})),
        4 => Some(json!({"*": ["**"]})),
        5 => Some(json!({})),
        _ => Some(json!({"london": ["[bad"]})),
    }
}

fn claims_for(rooms: usize, per: usize, dpv: usize) -> Value {
    let mut v = json!({});
    if let Some(r) = rooms_claim(rooms) {
        v["rooms"] = r;
    }
    if let Some(p) = per_claim(per) {
        v["per"] = p;
    }
    if let Some(d) = dpv_claim(dpv) {
        v["dpv"] = d;
    }
    v
}

// ---- operations --------------------------------------------------------

#[derive(Debug, Clone)]
struct Claims {
    rooms: usize,
    per: usize,
    dpv: usize,
}

#[derive(Debug, Clone)]
struct TokenSpec {
    sub: Option<usize>,
    claims: Claims,
    /// exp = now (whole seconds) + exp_in
    exp_in: i64,
}

impl TokenSpec {
    fn sign(&self, now: u64) -> String {
        let mut c = claims_for(self.claims.rooms, self.claims.per, self.claims.dpv);
        c["exp"] = json!((now / 1000) as i64 + self.exp_in);
        if let Some(s) = self.sub {
            c["sub"] = json!(CLIENTS[s]);
        }
        hs256(&c)
    }
}

#[derive(Debug, Clone)]
enum TokenKind {
    Good(TokenSpec),
    /// 0 not a JWT, 1 wrong secret, 2 alg none
    Bad(usize),
}

impl TokenKind {
    fn text(&self, now: u64) -> String {
        match self {
            TokenKind::Good(t) => t.sign(now),
            TokenKind::Bad(0) => "garbage".into(),
            TokenKind::Bad(1) => {
                tokens::hs(Algorithm::HS256, "wrong-secret", None, &json!({"sub": "a", "exp": now / 1000 + 60}))
            }
            TokenKind::Bad(_) => tokens::alg_none(&json!({"sub": "a", "exp": now / 1000 + 60})),
        }
    }
}

#[derive(Debug, Clone)]
enum OpenKind {
    Identity { client: Option<usize>, claims: Claims, expires_in: Option<u64> },
    Pending,
    Token(TokenKind),
}

#[derive(Debug, Clone)]
enum Op {
    Open(u64, OpenKind),
    Close(u64),
    /// Advance the clock by this much (`None`: to the next deadline) and
    /// call `handle_timeout`.
    Tick(Option<u64>),
    /// `auth` with a token (signed when it is sent).
    Auth(u64, Option<u32>, TokenKind),
    /// Any other frame, pre-rendered.
    Frame(u64, String),
    Garbage(u64, Vec<u8>),
    /// `n` copies of a frame at the same instant.
    Flood(u64, usize, String),
    HostPublish(usize, usize, Option<usize>),
    /// The host's `handle_lost`.
    Lost(u64),
    /// The host's `handle_alive` (a pong).
    Alive(u64),
    /// `resume` with the token last welcomed on the second connection, in
    /// epoch 42 (or another), replaying after this seq in r1 and r2.
    Resume(u64, u64, bool, Option<u64>),
}

/// A fully resolved input, fed to A and B alike.
#[derive(Debug, Clone)]
enum Input {
    Open(u64, Credentials),
    Close(u64),
    Timeout,
    Frames(u64, Vec<Vec<u8>>),
    HostPublish(String, String, Option<String>),
    Lost(u64),
    Alive(u64),
}

// ---- strategies --------------------------------------------------------

fn conn_id() -> impl Strategy<Value = u64> {
    prop_oneof![1 => 1..=CONNS, 4 => (0..CONNS).prop_map(|k| LIVE + k)]
}

fn room() -> impl Strategy<Value = &'static str> {
    prop_oneof![5 => Just(ROOMS[0]), 4 => Just(ROOMS[1]), 1 => Just(ROOMS[2])]
}

fn realm() -> impl Strategy<Value = &'static str> {
    prop_oneof![12 => Just(REALMS[0]), 2 => Just(REALMS[1]), 1 => Just(REALMS[2])]
}

fn object_id() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(IDS[0]), 4 => Just(IDS[1]), 3 => Just(IDS[2]), 1 => Just(IDS[3])]
}

fn pattern() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![2 => Just(None), 8 => prop::sample::select(PATTERNS.to_vec()).prop_map(Some)]
}

fn data() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![1 => Just(None), 8 => prop::sample::select(DATA[..DATA.len() - 1].to_vec()).prop_map(Some), 1 => Just(Some(DATA[DATA.len() - 1]))]
}

fn view() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![2 => Just(None), 2 => Just(Some("connection")), 2 => Just(Some("client")), 1 => Just(Some("both"))]
}

fn events_filter() -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop_oneof![
        3 => Just(None),
        2 => prop::collection::vec(prop::sample::select(KINDS.to_vec()), 1..3).prop_map(Some),
        1 => Just(Some(vec![])),
    ]
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        prop_oneof![3 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)],
        prop_oneof![2 => Just(0usize), 8 => 1..6usize, 1 => Just(6usize)],
        prop_oneof![3 => Just(0usize), 6 => 1..6usize, 1 => Just(6usize)],
    )
        .prop_map(|(rooms, per, dpv)| Claims { rooms, per, dpv })
}

fn client_idx() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![1 => Just(None), 12 => (0..3usize).prop_map(Some), 1 => Just(Some(3usize))]
}

fn token_spec() -> impl Strategy<Value = TokenSpec> {
    (client_idx(), claims(), prop::sample::select(vec![-40i64, -10, 3, 20, 600, 600, 600]))
        .prop_map(|(sub, claims, exp_in)| TokenSpec { sub, claims, exp_in })
}

fn token_kind() -> impl Strategy<Value = TokenKind> {
    prop_oneof![5 => token_spec().prop_map(TokenKind::Good), 1 => (0..3usize).prop_map(TokenKind::Bad)]
}

fn open_kind() -> BoxedStrategy<OpenKind> {
    prop_oneof![
        10 => (client_idx(), claims(), prop_oneof![4 => Just(None), 1 => prop::sample::select(vec![0u64, 1500, 8000, 30_000]).prop_map(Some)])
            .prop_map(|(client, claims, expires_in)| OpenKind::Identity { client, claims, expires_in }),
        3 => Just(OpenKind::Pending),
        3 => token_kind().prop_map(OpenKind::Token),
    ]
    .boxed()
}

/// A frame: `(key, JSON text)` fields, `op` first and `ref` maybe.
fn render(op: &str, reference: Option<u32>, fields: Vec<(&str, String)>) -> String {
    let mut parts = vec![format!("\"op\":{}", json!(op))];
    if let Some(r) = reference {
        parts.push(format!("\"ref\":{r}"));
    }
    for (k, v) in fields {
        parts.push(format!("{}:{v}", json!(k)));
    }
    format!("{{{}}}", parts.join(","))
}

fn s(text: &str) -> String {
    json!(text).to_string()
}

fn opt_fields(fields: &mut Vec<(&'static str, String)>, key: &'static str, v: Option<&str>, raw: bool) {
    if let Some(v) = v {
        fields.push((key, if raw { v.to_string() } else { s(v) }));
    }
}

/// Every client op but `auth`, rendered.
fn frame() -> BoxedStrategy<String> {
    let reference = prop::option::weighted(0.7, 0..1000u32);
    let room_op = prop_oneof![
        8 => (room(), prop::sample::select(vec!["room.join", "room.join", "room.join", "room.leave", "presence.leave", "presence.unsubscribe"]))
            .prop_map(|(r, op)| (op, vec![("room", s(r))])),
        8 => (room(), prop::sample::select(vec!["presence.join", "presence.update"]), data()).prop_map(|(r, op, d)| {
            let mut f = vec![("room", s(r))];
            opt_fields(&mut f, "data", d, true);
            (op, f)
        }),
        2 => (room(), view()).prop_map(|(r, v)| {
            let mut f = vec![("room", s(r))];
            opt_fields(&mut f, "view", v, false);
            ("presence.get", f)
        }),
        4 => (room(), events_filter(), view()).prop_map(|(r, e, v)| {
            let mut f = vec![("room", s(r))];
            if let Some(e) = e {
                f.push(("events", json!(e).to_string()));
            }
            opt_fields(&mut f, "view", v, false);
            ("presence.subscribe", f)
        }),
        4 => (room(), prop::sample::select(vec!["subscribe", "unsubscribe"]), prop::sample::select(ROOM_EVENTS.to_vec()))
            .prop_map(|(r, op, e)| (op, vec![("room", s(r)), ("event", s(e))])),
        3 => (room(), prop::sample::select(ROOM_EVENTS.to_vec()), data()).prop_map(|(r, e, d)| {
            let mut f = vec![("room", s(r)), ("event", s(e))];
            opt_fields(&mut f, "data", d, true);
            ("publish", f)
        }),
    ]
    .boxed();
    let object_op = prop_oneof![
        6 => (realm(), prop::sample::select(vec!["object.create", "object.update"]), object_id(), data()).prop_map(|(rl, op, id, d)| {
            let mut f = vec![("realm", s(rl)), ("id", s(id))];
            opt_fields(&mut f, "data", d, true);
            (op, f)
        }),
        3 => (realm(), prop::sample::select(vec!["object.delete", "object.get"]), object_id())
            .prop_map(|(rl, op, id)| (op, vec![("realm", s(rl)), ("id", s(id))])),
        5 => (realm(), prop::sample::select(vec!["object.list", "object.subscribe", "object.subscribe", "object.unsubscribe"]), pattern()).prop_map(|(rl, op, p)| {
            let mut f = vec![("realm", s(rl))];
            opt_fields(&mut f, "pattern", p, false);
            (op, f)
        }),
        4 => (realm(), prop::sample::select(vec!["realm.subscribe", "realm.subscribe", "realm.unsubscribe"]), prop::sample::select(REALM_EVENTS.to_vec()), pattern()).prop_map(|(rl, op, e, p)| {
            let mut f = vec![("realm", s(rl)), ("event", s(e))];
            opt_fields(&mut f, "pattern", p, false);
            (op, f)
        }),
        3 => (realm(), prop::sample::select(REALM_EVENTS.to_vec()), prop::option::weighted(0.7, object_id()), data()).prop_map(|(rl, e, id, d)| {
            let mut f = vec![("realm", s(rl)), ("event", s(e))];
            opt_fields(&mut f, "id", id, false);
            opt_fields(&mut f, "data", d, true);
            ("realm.publish", f)
        }),
    ]
    .boxed();
    (reference, prop_oneof![1 => Just(("ping", vec![])), 10 => room_op, 10 => object_op])
        .prop_map(|(r, (op, fields))| render(op, r, fields))
        .boxed()
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        prop::sample::select(vec![
            r#"{"op":"nope","ref":1}"#,
            r#"{"op":"room.join","room":""}"#,
            r#"{"op":"object.create","realm":"*","id":"riders/a"}"#,
            r#"{"op":"realm.publish","realm":"london","event":"*"}"#,
            r#"{"op":"auth","ref":9}"#,
            r#"{"op":"presence.join","room":"r1","data":"#,
            "[]",
            "{",
        ])
        .prop_map(|t| t.as_bytes().to_vec()),
        // A valid frame cut short.
        (frame(), any::<prop::sample::Index>()).prop_map(|(f, i)| f.as_bytes()[..i.index(f.len())].to_vec()),
    ]
}

fn op() -> BoxedStrategy<Op> {
    prop_oneof![
        6 => (1..=CONNS, open_kind()).prop_map(|(c, k)| Op::Open(c, k)),
        2 => conn_id().prop_map(Op::Close),
        4 => prop_oneof![1 => Just(None), 2 => Just(Some(0u64)), 5 => (1..3000u64).prop_map(Some), 1 => (5000..40_000u64).prop_map(Some)].prop_map(Op::Tick),
        3 => (conn_id(), prop::option::of(0..1000u32), token_kind()).prop_map(|(c, r, t)| Op::Auth(c, r, t)),
        44 => (conn_id(), frame()).prop_map(|(c, f)| Op::Frame(c, f)),
        3 => (conn_id(), garbage()).prop_map(|(c, g)| Op::Garbage(c, g)),
        1 => (conn_id(), 4..30usize, prop_oneof![Just(r#"{"op":"ping"}"#.to_string()), Just(r#"{"op":"nope"}"#.to_string()), frame()])
            .prop_map(|(c, n, f)| Op::Flood(c, n, f)),
        2 => (0..3usize, 0..4usize, prop::option::of(0..3usize)).prop_map(|(r, e, d)| Op::HostPublish(r, e, d)),
        3 => conn_id().prop_map(Op::Lost),
        3 => conn_id().prop_map(Op::Alive),
        4 => (conn_id(), conn_id(), prop::bool::weighted(0.8), prop::option::of(0..8u64))
            .prop_map(|(c, t, e, s)| Op::Resume(c, t, e, s)),
    ]
    .boxed()
}

/// A connection's opening moves: open, then maybe join rooms, subscribe,
/// enter presence, watch objects.
fn setup(conn: u64) -> BoxedStrategy<Vec<Op>> {
    let f = |text: &str| Some(text.to_string());
    (
        open_kind(),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.4),
        prop::option::weighted(0.5, (events_filter(), view())),
        prop::option::weighted(0.7, data()),
        prop::bool::weighted(0.4),
        prop::option::weighted(0.5, pattern()),
        prop::option::weighted(0.3, prop::sample::select(REALM_EVENTS.to_vec())),
    )
        .prop_map(move |(kind, r1, r2, sub, enter, events, objects, realm_event)| {
            let mut texts: Vec<Option<String>> = vec![];
            if r1 {
                texts.push(f(r#"{"op":"room.join","room":"r1"}"#));
            }
            if r2 {
                texts.push(f(r#"{"op":"room.join","room":"r2","ref":"j2"}"#));
            }
            if let Some((e, v)) = sub {
                let mut fields = vec![("room", s("r1"))];
                if let Some(e) = e {
                    fields.push(("events", json!(e).to_string()));
                }
                opt_fields(&mut fields, "view", v, false);
                texts.push(Some(render("presence.subscribe", Some(1), fields)));
            }
            if let Some(d) = enter {
                let mut fields = vec![("room", s("r1"))];
                opt_fields(&mut fields, "data", d, true);
                texts.push(Some(render("presence.join", None, fields)));
            }
            if events {
                texts.push(f(r#"{"op":"subscribe","room":"r1","event":"*"}"#));
            }
            if let Some(p) = objects {
                let mut fields = vec![("realm", s("london"))];
                opt_fields(&mut fields, "pattern", p, false);
                texts.push(Some(render("object.subscribe", None, fields)));
            }
            if let Some(e) = realm_event {
                texts.push(Some(render("realm.subscribe", None, vec![("realm", s("london")), ("event", s(e))])));
            }
            let mut ops = vec![Op::Open(conn, kind)];
            ops.extend(texts.into_iter().flatten().map(|t| Op::Frame(conn, t)));
            ops
        })
        .boxed()
}

/// One op, or a connection opening with its setup.
fn op_group() -> BoxedStrategy<Vec<Op>> {
    prop_oneof![12 => op().prop_map(|o| vec![o]), 1 => (1..=CONNS).prop_flat_map(setup)].boxed()
}

/// Every connection opens first (mostly, with setup), then random ops.
fn history(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(prop::option::weighted(0.85, Just(())), CONNS as usize),
        prop::collection::vec(op_group(), len),
    )
        .prop_flat_map(|(opens, groups)| {
            let setups: Vec<BoxedStrategy<Vec<Op>>> =
                opens.into_iter().enumerate().filter_map(|(i, k)| k.map(|()| setup(i as u64 + 1))).collect();
            (setups, Just(groups))
        })
        .prop_map(|(setups, groups)| setups.into_iter().chain(groups).flatten().collect::<Vec<Op>>())
}

// ---- running -------------------------------------------------------------

/// The harness: the clock and the live connections (tracked from outputs).
struct World {
    now: u64,
    live: BTreeSet<u64>,
    /// The resume token of each connection id's last welcome.
    tokens: std::collections::BTreeMap<u64, String>,
}

impl World {
    fn resolve(&self, c: u64) -> u64 {
        if c >= LIVE {
            let k = (c - LIVE) as usize;
            if self.live.is_empty() {
                return k as u64 % CONNS + 1;
            }
            return *self.live.iter().nth(k % self.live.len()).unwrap();
        }
        c
    }

    /// Turns an op into a concrete input, moving the clock as it says.
    fn input(&mut self, op: &Op, next_deadline: Option<u64>) -> (Input, u64) {
        let input = match op {
            Op::Open(c, kind) => {
                let credentials = match kind {
                    OpenKind::Identity { client, claims, expires_in } => {
                        let v = claims_for(claims.rooms, claims.per, claims.dpv);
                        let identity = Identity {
                            client_id: client.map(|c| CLIENTS[c].to_string()),
                            rooms: v.get("rooms").map(|r| serde_json::from_value(r.clone()).unwrap()),
                            // Invalid CRUD letters and patterns still parse as claims.
                            per: v.get("per").map(|p| serde_json::from_value(p.clone()).unwrap()),
                            dpv: v.get("dpv").map(|d| serde_json::from_value(d.clone()).unwrap()),
                            expires_at: expires_in.map(|e| self.now + e),
                        };
                        Credentials::Identity(identity)
                    }
                    OpenKind::Pending => Credentials::None,
                    OpenKind::Token(t) => Credentials::Token(t.text(self.now)),
                };
                Input::Open(*c, credentials)
            }
            Op::Close(c) => Input::Close(self.resolve(*c)),
            Op::Tick(dt) => {
                self.now = match dt {
                    Some(dt) => self.now + dt,
                    None => next_deadline.map_or(self.now, |d| d.max(self.now)),
                };
                Input::Timeout
            }
            Op::Auth(c, r, t) => {
                let mut frame = json!({"op": "auth", "token": t.text(self.now)});
                if let Some(r) = r {
                    frame["ref"] = json!(r);
                }
                Input::Frames(self.resolve(*c), vec![frame.to_string().into_bytes()])
            }
            Op::Frame(c, f) => Input::Frames(self.resolve(*c), vec![f.clone().into_bytes()]),
            Op::Garbage(c, g) => Input::Frames(self.resolve(*c), vec![g.clone()]),
            Op::Flood(c, n, f) => Input::Frames(self.resolve(*c), vec![f.clone().into_bytes(); *n]),
            Op::Lost(c) => Input::Lost(self.resolve(*c)),
            Op::Alive(c) => Input::Alive(self.resolve(*c)),
            Op::Resume(c, target, same_epoch, since) => {
                let token = self.tokens.get(&self.resolve(*target)).map_or("none", String::as_str);
                let mut frame =
                    json!({"op": "resume", "ref": 1, "token": token, "epoch": if *same_epoch { 42 } else { 7 }});
                if let Some(seq) = since {
                    frame["since"] = json!({"r1": seq, "r2": seq});
                }
                Input::Frames(self.resolve(*c), vec![frame.to_string().into_bytes()])
            }
            Op::HostPublish(r, e, d) => {
                let data = d.map(|d| ["{\"x\":1}", "\"hi\"", "{bad"][d].to_string());
                Input::HostPublish(ROOMS[*r].into(), ["e1", "e2", "*", "connectionStatusChanged"][*e].into(), data)
            }
        };
        (input, self.now)
    }

    fn observe(&mut self, input: &Input, outputs: &[Output], opened_ok: bool) {
        if let (Input::Open(c, _), true) = (input, opened_ok) {
            self.live.insert(*c);
        }
        for o in outputs {
            match o {
                Output::Event(HostEvent::Closed { connection })
                | Output::Event(HostEvent::Resumed { previous: connection, .. }) => {
                    self.live.remove(&connection.0);
                }
                Output::Send(t) if t.payload.contains("\"resumeToken\"") && t.payload.contains("\"welcome\"") => {
                    let v: Value = serde_json::from_str(&t.payload).unwrap();
                    for c in &t.to {
                        self.tokens.insert(c.0, v["resumeToken"].as_str().unwrap().to_string());
                    }
                }
                _ => {}
            }
        }
    }
}

/// What one input did: its outputs and the host-visible return value.
#[derive(Debug, PartialEq)]
struct Effect {
    outputs: Vec<Output>,
    result: Option<Result<usize, Error>>,
}

fn apply(e: &mut Engine, input: &Input, now: u64) -> Effect {
    let result = match input {
        Input::Open(c, credentials) => Some(e.handle_open(ConnectionId(*c), credentials.clone(), now).map(|()| 0)),
        Input::Close(c) => {
            e.handle_close(ConnectionId(*c), now);
            None
        }
        Input::Timeout => {
            e.handle_timeout(now);
            None
        }
        Input::Frames(c, frames) => {
            for f in frames {
                e.handle_frame(ConnectionId(*c), f, now);
            }
            None
        }
        Input::HostPublish(room, event, data) => Some(e.publish(room, event, data.as_deref(), now)),
        Input::Lost(c) => {
            e.handle_lost(ConnectionId(*c), now);
            None
        }
        Input::Alive(c) => {
            e.handle_alive(ConnectionId(*c), now);
            None
        }
    };
    Effect { outputs: std::iter::from_fn(|| e.poll_output()).collect(), result }
}

/// Everything the host can ask, equal on both engines.
fn agree(a: &mut Engine, b: &mut Engine, at: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.poll_timeout(), b.poll_timeout(), "poll_timeout {}", at);
    prop_assert_eq!(a.connection_count(), b.connection_count(), "connection_count {}", at);
    prop_assert_eq!(a.room_names(), b.room_names(), "room_names {}", at);
    prop_assert_eq!(a.realm_names(), b.realm_names(), "realm_names {}", at);
    for room in ROOMS {
        prop_assert_eq!(a.members(room), b.members(room), "members of {} {}", room, at);
        prop_assert_eq!(a.clients(room), b.clients(room), "clients of {} {}", room, at);
        prop_assert_eq!(a.room_counts(room), b.room_counts(room), "room_counts of {} {}", room, at);
    }
    for realm in REALMS {
        for id in IDS {
            prop_assert_eq!(a.object(realm, id), b.object(realm, id), "object {}/{} {}", realm, id, at);
        }
        for p in ["**", "riders/*", "vans/*"] {
            prop_assert_eq!(a.objects(realm, p), b.objects(realm, p), "objects {} {} {}", realm, p, at);
        }
    }
    prop_assert!(a.snapshot() == b.snapshot(), "snapshots differ {}", at);
    Ok(())
}

/// The records a host keeps (persist.rs), by key, as `take_changes` says.
fn keep_changes(store: &mut std::collections::BTreeMap<String, Vec<u8>>, e: &mut Engine) {
    for change in e.take_changes() {
        match change.value {
            Some(value) => store.insert(change.key, value),
            None => store.remove(&change.key),
        };
    }
}

fn run(ops: &[Op], restore_at: &BTreeSet<usize>) -> Result<(), TestCaseError> {
    let config = config();
    let mut a = Engine::new(config.clone()).expect("valid config");
    // A also writes records as they change: after every step, an engine
    // imported from them must be A exactly (snapshot bytes equal).
    a.track_changes();
    let mut store = std::collections::BTreeMap::new();
    let mut b: Option<Engine> = None;
    let mut world = World { now: T0, live: BTreeSet::new(), tokens: Default::default() };
    for (i, op) in ops.iter().enumerate() {
        if restore_at.contains(&i) {
            // Outputs are drained after every step.
            let bytes = a.snapshot();
            let mut restored = Engine::restore(config.clone(), &bytes)
                .map_err(|e| TestCaseError::fail(format!("restore before step {i}: {e}")))?;
            prop_assert!(
                restored.snapshot() == bytes,
                "a restored engine snapshots to other bytes (before step {})",
                i
            );
            agree(&mut a, &mut restored, &format!("right after restore before step {i}"))?;
            b = Some(restored);
        }
        let (input, now) = world.input(op, a.poll_timeout());
        let ea = apply(&mut a, &input, now);
        keep_changes(&mut store, &mut a);
        let imported = Engine::import(config.clone(), store.values().map(Vec::as_slice))
            .map_err(|e| TestCaseError::fail(format!("import after step {i}: {e}")))?;
        prop_assert!(imported.snapshot() == a.snapshot(), "records do not rebuild A after step {}: {:?}", i, op);
        if let Some(b) = b.as_mut() {
            let eb = apply(b, &input, now);
            prop_assert_eq!(&ea, &eb, "outputs differ at step {}: {:?}", i, op);
            agree(&mut a, b, &format!("after step {i}: {op:?}"))?;
        }
        let opened_ok = matches!(ea.result, Some(Ok(_))) && matches!(input, Input::Open(..));
        world.observe(&input, &ea.outputs, opened_ok);
    }
    if let Some(mut b) = b {
        prop_assert!(a.snapshot() == b.snapshot(), "snapshots differ at the end");
        // Closing everything leaves both empty in the same way.
        let now = world.now + 1;
        for c in 1..=CONNS {
            let input = Input::Close(c);
            let (ea, eb) = (apply(&mut a, &input, now), apply(&mut b, &input, now));
            prop_assert_eq!(ea, eb, "closing {} at the end", c);
        }
        // And the graces run out alike.
        let (ea, eb) =
            (apply(&mut a, &Input::Timeout, now + 3_600_000), apply(&mut b, &Input::Timeout, now + 3_600_000));
        prop_assert_eq!(ea, eb, "graces ending at the end");
        prop_assert_eq!(a.connection_count(), 0);
        agree(&mut a, &mut b, "after closing everything")?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48)
}

fn restore_points(len: usize) -> impl Strategy<Value = BTreeSet<usize>> {
    prop::collection::btree_set(0..len, 1..4)
}

fn case() -> impl Strategy<Value = (Vec<Op>, BTreeSet<usize>)> {
    history(20..100).prop_flat_map(|ops| {
        let n = ops.len();
        (Just(ops), restore_points(n))
    })
}

/// Drives an engine of unknown provenance: anything but a panic is fine.
fn drive(e: &mut Engine, ops: &[Op]) {
    let mut world = World { now: T0, live: BTreeSet::new(), tokens: Default::default() };
    for op in ops {
        let (input, now) = world.input(op, e.poll_timeout());
        let effect = apply(e, &input, now);
        let opened_ok = matches!(effect.result, Some(Ok(_))) && matches!(input, Input::Open(..));
        world.observe(&input, &effect.outputs, opened_ok);
        for room in ROOMS {
            let _ = (e.members(room), e.clients(room), e.room_counts(room));
        }
        for realm in REALMS {
            let _ = e.objects(realm, "**");
        }
    }
    // Live connections are unknown: close every id the snapshot might hold.
    let _ = e.snapshot();
    for c in 0..=CONNS + 1 {
        e.handle_close(ConnectionId(c), world.now);
    }
    e.handle_timeout(u64::MAX);
    let _ = e.drain_outputs().count();
}

fn snapshot_after(ops: &[Op]) -> Vec<u8> {
    let mut e = Engine::new(config()).expect("valid config");
    let mut world = World { now: T0, live: BTreeSet::new(), tokens: Default::default() };
    for op in ops {
        let (input, now) = world.input(op, e.poll_timeout());
        let effect = apply(&mut e, &input, now);
        let opened_ok = matches!(effect.result, Some(Ok(_))) && matches!(input, Input::Open(..));
        world.observe(&input, &effect.outputs, opened_ok);
    }
    e.snapshot()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn restoring_and_continuing_is_indistinguishable((ops, at) in case()) {
        run(&ops, &at)?;
    }

    #[test]
    fn other_versions_are_refused(ops in history(0..40), version in any::<u32>()) {
        prop_assume!(version != SNAPSHOT_VERSION);
        let mut bytes = snapshot_after(&ops);
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        prop_assert_eq!(
            Engine::restore(config(), &bytes).unwrap_err(),
            Error::Snapshot(SnapshotError::Version { found: version, supported: SNAPSHOT_VERSION })
        );
    }

    #[test]
    fn truncations_are_refused(ops in history(0..40), cut in any::<prop::sample::Index>()) {
        let bytes = snapshot_after(&ops);
        let cut = cut.index(bytes.len());
        prop_assert!(Engine::restore(config(), &bytes[..cut]).is_err(), "a snapshot cut at {} of {} restored", cut, bytes.len());
    }

    #[test]
    fn bit_flips_never_panic(
        ops in history(0..60),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..4),
        then in prop::collection::vec(op(), 0..40),
    ) {
        let mut bytes = snapshot_after(&ops);
        for (i, bit) in flips {
            // Mostly in the body: header flips only ever reach the header checks.
            let at = 8 + i.index(bytes.len() - 8);
            bytes[at] ^= 1 << bit;
        }
        if let Ok(mut e) = Engine::restore(config(), &bytes) {
            drive(&mut e, &then);
        }
    }

    #[test]
    fn random_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..200),
        header in prop_oneof![Just(None), Just(Some(SNAPSHOT_VERSION)), any::<u32>().prop_map(Some)],
        then in prop::collection::vec(op(), 0..20),
    ) {
        let mut bytes = Vec::new();
        if let Some(v) = header {
            bytes.extend_from_slice(b"RCSN");
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend(body);
        if let Ok(mut e) = Engine::restore(config(), &bytes) {
            drive(&mut e, &then);
        }
    }
}

/// A fixed history through objects, providers, pending auth, floods and
/// expiries, restored at several points.
#[test]
fn scripted_history_restores_at_every_point() {
    let ident = |client: usize, rooms: usize, per: usize, dpv: usize, expires_in: Option<u64>| OpenKind::Identity {
        client: Some(client),
        claims: Claims { rooms, per, dpv },
        expires_in,
    };
    let f = |c: u64, text: &str| Op::Frame(c, text.to_string());
    let ops = vec![
        Op::Open(1, ident(0, 0, 1, 0, Some(60_000))),
        Op::Open(2, ident(1, 1, 2, 1, None)),
        Op::Open(3, ident(0, 0, 3, 2, None)),
        Op::Open(4, OpenKind::Pending),
        Op::Open(5, OpenKind::Pending),
        f(1, r#"{"op":"room.join","room":"r1"}"#),
        f(2, r#"{"op":"room.join","room":"r1"}"#),
        f(3, r#"{"op":"room.join","room":"r1"}"#),
        f(1, r#"{"op":"presence.subscribe","room":"r1","view":"client","ref":1}"#),
        f(2, r#"{"op":"presence.subscribe","room":"r1","events":["leave"]}"#),
        f(1, r#"{"op":"presence.join","room":"r1","data":{"s":"here"}}"#),
        f(3, r#"{"op":"presence.join","room":"r1","data":{"s":"phone"}}"#),
        f(2, r#"{"op":"subscribe","room":"r1","event":"*"}"#),
        f(1, r#"{"op":"object.create","realm":"london","id":"riders/a","data":{"lat":1}}"#),
        f(1, r#"{"op":"object.create","realm":"london","id":"riders/b"}"#),
        f(1, r#"{"op":"object.create","realm":"london","id":"vans/c"}"#),
        f(1, r#"{"op":"object.subscribe","realm":"london","pattern":"riders/*"}"#),
        f(3, r#"{"op":"realm.subscribe","realm":"london","event":"connectionStatusChanged"}"#),
        f(3, r#"{"op":"realm.subscribe","realm":"london","event":"*","pattern":"vans/*"}"#),
        Op::Auth(
            4,
            Some(7),
            TokenKind::Good(TokenSpec { sub: Some(2), claims: Claims { rooms: 0, per: 4, dpv: 3 }, exp_in: 20 }),
        ),
        Op::Flood(2, 8, r#"{"op":"nope"}"#.to_string()),
        f(2, r#"{"op":"publish","room":"r1","event":"e1","data":"hi"}"#),
        f(1, r#"{"op":"realm.publish","realm":"london","event":"moved","id":"vans/c","data":1}"#),
        f(1, r#"{"op":"presence.update","room":"r1","data":{"s":"away"}}"#),
        Op::Close(2),
        Op::Tick(Some(1000)),
        Op::Flood(3, 25, r#"{"op":"ping"}"#.to_string()),
        Op::Tick(None),
        Op::Auth(4, None, TokenKind::Bad(1)),
        Op::Tick(None),
        Op::Tick(Some(60_000)),
        Op::Open(
            2,
            OpenKind::Token(TokenKind::Good(TokenSpec {
                sub: Some(1),
                claims: Claims { rooms: 0, per: 1, dpv: 1 },
                exp_in: 600,
            })),
        ),
        f(2, r#"{"op":"object.delete","realm":"london","id":"riders/a"}"#),
    ];
    for k in 0..ops.len() {
        if let Err(e) = run(&ops, &BTreeSet::from([k])) {
            panic!("restored before step {k}: {e}");
        }
    }
}

/// Found by flipping bits: a room that no longer lists a connection which
/// still lists the room restored fine, and the engine then panicked (a
/// missing room indexed) once the room's other connections left and the
/// stray one sent `presence.get`. Restore now refuses it.
#[test]
fn a_connection_listing_a_room_that_does_not_list_it_is_corrupt() {
    let ident = || Credentials::Identity(Identity { client_id: Some("a".into()), ..Identity::default() });
    let mut e = Engine::new(config()).unwrap();
    for c in [1, 2] {
        e.handle_open(ConnectionId(c), ident(), T0).unwrap();
        e.handle_frame(ConnectionId(c), br#"{"op":"room.join","room":"r1"}"#, T0);
    }
    let _ = e.drain_outputs().count();
    let mut bytes = e.snapshot();
    // The room's state: name "r1", then `joined` as [1, 2]; make it [1, 1].
    let room = b"\x02r1\x02\x01\x02";
    let at = bytes.windows(room.len()).rposition(|w| w == room).expect("the room's joined list");
    bytes[at + room.len() - 1] = 1;
    assert!(matches!(Engine::restore(config(), &bytes), Err(Error::Snapshot(SnapshotError::Corrupt(_)))));
}
