//! Model-based property test: random operation sequences over a small
//! universe (connections 1..=6 sharing clientIds "a", "b", "c"; rooms "r1",
//! "r2", "r3") run against the [`Engine`] and against a plain reference model
//! kept in `BTreeMap`s. Connections open with host-asserted identities
//! (some expiring), HS256 tokens (some already expired), or nothing (then
//! `auth` or time out); tokens are refreshed with the same or another `sub`
//! and wider or narrower room grants. Operations: room join/leave, presence
//! join/update/leave/get/subscribe (filters, both views)/unsubscribe, event
//! subscribe/unsubscribe/publish, host publish, host close, clock ticks with
//! `handle_timeout`, garbage frames, lost connections (`handle_lost`, then
//! a leave grace that ends with the clock, where frames and closes are
//! ignored) and `resume` with the resume token of another connection
//! (live, lost, gone, of another clientId, or none). Presence events and
//! snapshots carry the room's `seq`. After every step the two must agree on:
//!
//! - every frame each connection received in that step (welcome, acks with
//!   their snapshots, error codes, presence events in both views, messages),
//!   in order, and every close the engine asked for;
//! - `members`, `clients`, `room_counts`, `room_names`, `connection_count`
//!   and `poll_timeout`;
//! - a subscriber's reconstruction (ack snapshot + events since) equals the
//!   engine's presence set (per connection or per clientId);
//! - no frame goes to a connection after its close, and nothing panics,
//!   including on garbage frames.
//!
//! A second property runs the same operations beside a coalescing shadow
//! engine (`presence.flushIntervalMs` in r1 and r2; see [`Shadow`]): it
//! must agree with the engine on every frame but presence events, on the
//! host queries, and its subscribers' pictures, built from its frames with
//! batches unpacked, must equal its presence sets after each flush.
//!
//! Cases default to 256; override with `PROPTEST_CASES`.

// proptest does not build for wasm32; the other suites run there.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::T0;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rollcall::protocol::request;
use rollcall::time::iso8601;
use rollcall::{
    Algorithm, ClientInfo, Config, ConnectionId, Credentials, Engine, Identity, JwtKey, Limits, MemberInfo, Output,
    RateLimit, RoomAction, RoomCounts,
};
use serde_json::{json, Value};

// ---- the universe ------------------------------------------------------

const CONNS: u64 = 6;
const CLIENTS: [&str; 3] = ["a", "b", "c"];
const ROOMS: [&str; 3] = ["r1", "r2", "r3"];
/// Event names for subscribe/unsubscribe; publish uses the first two only.
const EVENTS: [&str; 3] = ["e1", "e2", "*"];
const KINDS: [&str; 3] = ["join", "update", "leave"];
const ALL_KINDS: u8 = 0b111;
/// Presence / message data as raw JSON text (kept byte for byte by the engine).
const DATA: [&str; 12] = [
    "null",
    "1",
    "-2.5",
    "1e3",
    "\"hi\"",
    "true",
    "{\"v\":0}",
    "{\"v\":1}",
    "{ \"name\" : \"Ann\", \"n\": [1, 2] }",
    "[]",
    "{\"deep\":{\"a\":{\"b\":[null]}}}",
    "\"caf\\u00e9\\n\"",
];
/// The index of a data text over `max_presence_data_bytes`.
const BIG: usize = DATA.len();
const AUTH_TIMEOUT_MS: u64 = 10_000;
const LEEWAY_MS: u64 = 30_000;
const SECRET: &str = "model-test-secret";
const GRACE_MS: u64 = 3_000;
/// Generated connection ids from `LIVE` on name a live connection by rank.
const LIVE: u64 = 100;
/// Generated room indexes from `JOINED` on name a joined room by rank.
const JOINED: usize = 10;

fn data_text(i: usize) -> String {
    match DATA.get(i) {
        Some(d) => d.to_string(),
        None => format!("\"{}\"", "x".repeat(5000)),
    }
}

fn config() -> Config {
    let mut config = Config::default();
    config.auth.auth_timeout_ms = AUTH_TIMEOUT_MS;
    config.auth.leeway_ms = LEEWAY_MS;
    config.auth.keys = vec![JwtKey::hmac(Algorithm::HS256, SECRET)];
    // Small limits, so that every refusal is reachable in a few steps.
    config.limits.max_rooms_per_connection = 2;
    config.limits.max_subscriptions_per_connection = 2;
    config.limits.max_members_per_room = 3;
    config.limits.rate = RateLimit { burst: 20, per_second: 5 };
    config.limits.violations = RateLimit { burst: 5, per_second: 1 };
    // Liveness has its own tests (tests/liveness.rs); grace and resume are here.
    config.idle_timeout_ms = 0;
    config.leave_grace_ms = GRACE_MS;
    config.resume_secret = Some("model-resume-key".into());
    config
}

/// The claim of a "limited" identity: everything in r1, only subscribe in r2,
/// nothing in r3.
fn limited_claim() -> BTreeMap<String, Vec<RoomAction>> {
    BTreeMap::from([
        ("r1".to_string(), vec![RoomAction::Subscribe, RoomAction::Publish, RoomAction::Presence]),
        ("r2".to_string(), vec![RoomAction::Subscribe]),
    ])
}

// ---- operations --------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ViewK {
    Connection,
    Client,
}

#[derive(Debug, Clone)]
enum OpenKind {
    /// A host-asserted identity with a clientId, maybe expiring, maybe
    /// with the limited room claim.
    Client { client: usize, expires_in: Option<u64>, limited: bool },
    /// A host-asserted identity without a clientId.
    NoClientId { expires_in: Option<u64> },
    /// No credentials: must `auth` within the auth time-out.
    Pending,
    /// A malformed token, refused at once (4001).
    BadToken,
    /// A signed token (refused at once if already expired).
    Token(TokenSpec),
}

/// Whose `sub` a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    /// The connection's own clientId (or none if it has none).
    Same,
    Client(usize),
    None,
}

/// A signed HS256 token: `sub`, `exp` = now (in whole seconds) + `exp_in`,
/// and the limited `rooms` claim or none (default grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokenSpec {
    sub: Sub,
    limited: bool,
    exp_in: i64,
}

impl TokenSpec {
    fn sub(&self) -> Option<String> {
        match self.sub {
            Sub::Client(i) => Some(CLIENTS[i].to_string()),
            Sub::None | Sub::Same => None,
        }
    }

    fn exp(&self, now: u64) -> i64 {
        (now / 1000) as i64 + self.exp_in
    }

    /// When the engine will consider it expired (ms): exp plus the leeway.
    fn expires_at(&self, now: u64) -> u64 {
        (self.exp(now).max(0) as u64) * 1000 + LEEWAY_MS
    }

    fn sign(&self, now: u64) -> String {
        let mut claims = json!({"exp": self.exp(now)});
        if let Some(sub) = self.sub() {
            claims["sub"] = json!(sub);
        }
        if self.limited {
            claims["rooms"] = serde_json::to_value(limited_claim()).unwrap();
        }
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key).expect("sign")
    }
}

#[derive(Debug, Clone)]
enum Req {
    Ping,
    /// `auth` with a signed token, or (`None`) with a malformed one.
    Auth(Option<TokenSpec>),
    RoomJoin(usize),
    RoomLeave(usize),
    PresenceJoin(usize, Option<usize>),
    PresenceUpdate(usize, Option<usize>),
    PresenceLeave(usize),
    PresenceGet(usize, Option<ViewK>),
    /// room, `events` (kind indexes; `None` omits the field), view
    PresenceSubscribe(usize, Option<Vec<usize>>, Option<ViewK>),
    PresenceUnsubscribe(usize),
    Subscribe(usize, usize),
    Unsubscribe(usize, usize),
    Publish(usize, usize, Option<usize>),
    /// `resume` with the resume token last welcomed on that connection id.
    Resume(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Open(u64, OpenKind),
    Close(u64),
    Tick(u64),
    Frame(u64, Req),
    Garbage(u64, Vec<u8>),
    HostPublish(usize, usize, Option<usize>),
    /// The host's `handle_lost`.
    Lost(u64),
}

fn view_name(v: ViewK) -> &'static str {
    match v {
        ViewK::Connection => "connection",
        ViewK::Client => "client",
    }
}

fn mask_of(events: &Option<Vec<usize>>) -> u8 {
    match events {
        None => ALL_KINDS,
        Some(kinds) => kinds.iter().fold(0, |m, k| m | (1 << k)),
    }
}

/// The frame text for `req`, data spliced in raw.
fn frame_text(reference: u64, req: &Req, now: u64) -> String {
    let mut m = serde_json::Map::new();
    m.insert("ref".into(), json!(reference));
    let mut data = None;
    let set = |m: &mut serde_json::Map<String, Value>, k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    let op = match req {
        Req::Ping => "ping",
        // The step builds it: the token is the harness's.
        Req::Resume(_) => "resume",
        Req::Auth(spec) => {
            let token = spec.map_or("not.a.jwt".to_string(), |t| t.sign(now));
            set(&mut m, "token", json!(token));
            "auth"
        }
        Req::RoomJoin(r) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            "room.join"
        }
        Req::RoomLeave(r) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            "room.leave"
        }
        Req::PresenceJoin(r, d) | Req::PresenceUpdate(r, d) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            data = d.map(data_text);
            if matches!(req, Req::PresenceJoin(..)) {
                "presence.join"
            } else {
                "presence.update"
            }
        }
        Req::PresenceLeave(r) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            "presence.leave"
        }
        Req::PresenceGet(r, v) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            if let Some(v) = v {
                set(&mut m, "view", json!(view_name(*v)));
            }
            "presence.get"
        }
        Req::PresenceSubscribe(r, events, v) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            if let Some(kinds) = events {
                let names: Vec<&str> = kinds.iter().map(|k| KINDS[*k]).collect();
                set(&mut m, "events", json!(names));
            }
            if let Some(v) = v {
                set(&mut m, "view", json!(view_name(*v)));
            }
            "presence.subscribe"
        }
        Req::PresenceUnsubscribe(r) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            "presence.unsubscribe"
        }
        Req::Subscribe(r, e) | Req::Unsubscribe(r, e) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            set(&mut m, "event", json!(EVENTS[*e]));
            if matches!(req, Req::Subscribe(..)) {
                "subscribe"
            } else {
                "unsubscribe"
            }
        }
        Req::Publish(r, e, d) => {
            set(&mut m, "room", json!(ROOMS[*r]));
            set(&mut m, "event", json!(EVENTS[*e]));
            data = d.map(data_text);
            "publish"
        }
    };
    m.insert("op".into(), json!(op));
    let mut text = Value::Object(m).to_string();
    if let Some(d) = data {
        text.pop();
        text.push_str(",\"data\":");
        text.push_str(&d);
        text.push('}');
    }
    text
}

// ---- strategies --------------------------------------------------------

/// Connection ids `1..=CONNS`, or `LIVE + k`: the k-th live connection
/// (resolved at run time, so that most operations hit a live one).
fn conn_id() -> impl Strategy<Value = u64> {
    prop_oneof![1 => 1..=CONNS, 3 => (0..CONNS).prop_map(|k| LIVE + k)]
}

/// Rooms, r1 the busiest so that presence sets fill up.
fn fixed_room() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(0usize), 3 => Just(1usize), 1 => Just(2usize)]
}

/// A room index, or `JOINED + k`: the k-th room the connection has joined
/// (resolved at run time).
fn room() -> impl Strategy<Value = usize> {
    prop_oneof![1 => fixed_room(), 1 => (0..2usize).prop_map(|k| JOINED + k)]
}

fn data() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![1 => Just(None), 8 => (0..DATA.len()).prop_map(Some), 1 => Just(Some(BIG))]
}

fn view() -> impl Strategy<Value = Option<ViewK>> {
    prop_oneof![Just(None), Just(Some(ViewK::Connection)), Just(Some(ViewK::Client))]
}

fn expires_in() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        4 => Just(None),
        1 => prop::sample::select(vec![0u64, 1, 1500, 8000, 30_000]).prop_map(Some),
    ]
}

fn token_spec() -> impl Strategy<Value = TokenSpec> {
    (
        prop_oneof![4 => Just(Sub::Same), 1 => (0..CLIENTS.len()).prop_map(Sub::Client), 1 => Just(Sub::None)],
        prop::bool::weighted(0.4),
        prop::sample::select(vec![-40i64, -10, 5, 60, 600]),
    )
        .prop_map(|(sub, limited, exp_in)| TokenSpec { sub, limited, exp_in })
}

fn open_kind() -> impl Strategy<Value = OpenKind> {
    prop_oneof![
        12 => (0..CLIENTS.len(), expires_in(), prop::bool::weighted(0.2))
            .prop_map(|(client, expires_in, limited)| OpenKind::Client { client, expires_in, limited }),
        1 => expires_in().prop_map(|expires_in| OpenKind::NoClientId { expires_in }),
        1 => Just(OpenKind::Pending),
        1 => Just(OpenKind::BadToken),
        // At open there is no "own" clientId: `Same` means client "a".
        3 => token_spec().prop_map(|t| {
            let sub = if t.sub == Sub::Same { Sub::Client(0) } else { t.sub };
            OpenKind::Token(TokenSpec { sub, ..t })
        }),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        1 => Just(Req::Ping),
        1 => Just(Req::Auth(None)),
        3 => token_spec().prop_map(|t| Req::Auth(Some(t))),
        10 => fixed_room().prop_map(Req::RoomJoin),
        4 => room().prop_map(Req::RoomLeave),
        6 => (room(), data()).prop_map(|(r, d)| Req::PresenceJoin(r, d)),
        4 => (room(), data()).prop_map(|(r, d)| Req::PresenceUpdate(r, d)),
        2 => room().prop_map(Req::PresenceLeave),
        1 => (room(), view()).prop_map(|(r, v)| Req::PresenceGet(r, v)),
        6 => subscribe_req(),
        1 => room().prop_map(Req::PresenceUnsubscribe),
        6 => (room(), 0..EVENTS.len()).prop_map(|(r, e)| Req::Subscribe(r, e)),
        1 => (room(), 0..EVENTS.len()).prop_map(|(r, e)| Req::Unsubscribe(r, e)),
        3 => (room(), 0..2usize, data()).prop_map(|(r, e, d)| Req::Publish(r, e, d)),
    ]
}

/// Frames the parser must refuse, one way or another.
fn tricky() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        r#"{"op":"room.join","room":""}"#,
        r#"{"op":"room.join","room":5,"ref":"x"}"#,
        r#"{"op":"presence.subscribe","ref":3,"room":"r1","events":[]}"#,
        r#"{"op":"presence.subscribe","room":"r1","events":["joins"]}"#,
        r#"{"op":"presence.subscribe","room":"r1","view":"both"}"#,
        r#"{"op":"publish","ref":"p","room":"r1","event":"*"}"#,
        r#"{"op":"room.join","room":"r1","ref":{"a":1}}"#,
        r#"{"op":"room.join","room":"r1","ref":1.5}"#,
        r#"{"op":"room.join","room":"r1","ref":123456789012345678901234}"#,
        r#"{"op":"nope","ref":"abc"}"#,
        r#"{"op":1}"#,
        r#"{"ref":1}"#,
        r#"{"op":"auth","ref":9}"#,
        r#"{"op":"room.join","room":"r\u0001"}"#,
        r#"{"op":"presence.join","room":"r1","data":"#,
        r#"{"op":"room.join","room":"r1""#,
        "null",
        "[]",
        "\"str\"",
        "{",
        "",
        "\u{feff}{}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(format!("{}{}", "[".repeat(40), "]".repeat(40)).into_bytes());
    v.push(format!(r#"{{"op":"room.join","room":"{}"}}"#, "r".repeat(300)).into_bytes());
    v.push(format!(r#"{{"op":"ping","ref":"{}"}}"#, "y".repeat(70)).into_bytes());
    v.push(format!(r#"{{"op":"ping","pad":"{}"}}"#, "z".repeat(70_000)).into_bytes());
    v.push(b"{\"op\":\"\xff\"}".to_vec());
    v.push(b"\xc3\x28".to_vec());
    v
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        "\\PC{0,40}".prop_map(String::into_bytes),
        prop::sample::select(tricky()),
        // A valid frame cut short.
        (req(), any::<prop::sample::Index>()).prop_map(|(r, i)| {
            let text = frame_text(1, &r.map_room(|r| r % ROOMS.len()), T0).into_bytes();
            let cut = i.index(text.len());
            text[..cut].to_vec()
        }),
    ]
}

fn tick() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1..2000u64, Just(1000u64), 5000..20_000u64]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..=CONNS, open_kind()).prop_map(|(c, k)| Op::Open(c, k)),
        2 => conn_id().prop_map(Op::Close),
        4 => tick().prop_map(Op::Tick),
        44 => (conn_id(), req()).prop_map(|(c, r)| Op::Frame(c, r)),
        3 => (conn_id(), garbage()).prop_map(|(c, g)| Op::Garbage(c, g)),
        3 => conn_id().prop_map(Op::Lost),
        4 => (conn_id(), conn_id()).prop_map(|(c, t)| Op::Frame(c, Req::Resume(t))),
        2 => (fixed_room(), 0..2usize, data()).prop_map(|(r, e, d)| Op::HostPublish(r, e, d)),
    ]
}

fn subscribe_req() -> impl Strategy<Value = Req> {
    (room(), prop_oneof![3 => Just(None), 1 => prop::collection::vec(0..KINDS.len(), 1..4).prop_map(Some)], view())
        .prop_map(|(r, e, v)| Req::PresenceSubscribe(r, e, v))
}

/// A connection's opening moves: open, then maybe join r1, subscribe to
/// its presence, and enter it.
fn setup(conn: u64) -> impl Strategy<Value = Vec<Op>> {
    (
        open_kind(),
        prop::bool::weighted(0.8),
        prop::option::weighted(0.6, subscribe_req()),
        prop::option::weighted(0.5, data()),
    )
        .prop_map(move |(kind, join, sub, enter)| {
            let mut ops = vec![Op::Open(conn, kind)];
            if join {
                ops.push(Op::Frame(conn, Req::RoomJoin(0)));
                ops.extend(sub.map(|s| Op::Frame(conn, s)));
                ops.extend(enter.map(|d| Op::Frame(conn, Req::PresenceJoin(0, d))));
            }
            ops
        })
}

/// A few connections set up first, then random operations.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (0..=5u64)
        .prop_flat_map(|n| {
            let setups: Vec<_> = (1..=n).map(setup).collect();
            (setups, prop::collection::vec(op(), 5..60))
        })
        .prop_map(|(setups, rest)| {
            let mut ops: Vec<Op> = setups.into_iter().flatten().collect();
            ops.extend(rest);
            ops
        })
}

// ---- the reference model -----------------------------------------------

/// A token bucket in milli-tokens, as the protocol describes it.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    last: u64,
}

impl Bucket {
    fn full(limit: RateLimit, now: u64) -> Bucket {
        Bucket { milli: u64::from(limit.burst) * 1000, last: now }
    }

    fn take(&mut self, limit: RateLimit, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.milli = (self.milli + elapsed * u64::from(limit.per_second)).min(u64::from(limit.burst) * 1000);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Actions {
    subscribe: bool,
    publish: bool,
    presence: bool,
}

#[derive(Debug)]
struct MConn {
    /// Its member id: its own, or the one it resumed.
    pid: String,
    /// Lost: in grace until then.
    lost_until: Option<u64>,
    client_id: Option<String>,
    ready: bool,
    limited: bool,
    deadline: Option<u64>,
    rooms: BTreeSet<String>,
    rate: Bucket,
    violations: Bucket,
}

impl MConn {
    fn actions(&self, room: &str) -> Actions {
        if !self.limited {
            return Actions { subscribe: true, publish: true, presence: true };
        }
        match room {
            "r1" => Actions { subscribe: true, publish: true, presence: true },
            "r2" => Actions { subscribe: true, publish: false, presence: false },
            _ => Actions { subscribe: false, publish: false, presence: false },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MSub {
    mask: u8,
    view: ViewK,
}

#[derive(Debug, Default)]
struct MRoom {
    joined: BTreeSet<u64>,
    /// conn -> (clientId, data as raw JSON text)
    members: BTreeMap<u64, (String, Option<String>)>,
    psubs: BTreeMap<u64, MSub>,
    esubs: BTreeMap<String, BTreeSet<u64>>,
    seq: u64,
}

impl MRoom {
    fn has_client(&self, client: &str) -> bool {
        self.members.values().any(|(c, _)| c == client)
    }

    fn member_frame(c: &MConn, client: &str, data: &Option<String>) -> Value {
        let mut frame = json!({"id": c.pid, "clientId": client, "data": data_value(data)});
        if c.lost_until.is_some() {
            frame["inGrace"] = json!(true);
        }
        frame
    }

    fn snapshot(&self, view: ViewK, conns: &BTreeMap<u64, MConn>) -> Value {
        let mut body = self.members_body(view, conns);
        body["epoch"] = json!(0);
        body["seq"] = json!(self.seq);
        body
    }

    fn members_body(&self, view: ViewK, conns: &BTreeMap<u64, MConn>) -> Value {
        match view {
            ViewK::Connection => {
                let members: Vec<Value> = self
                    .members
                    .iter()
                    .map(|(c, (client, data))| Self::member_frame(&conns[c], client, data))
                    .collect();
                json!({ "members": members })
            }
            ViewK::Client => {
                let mut by_client: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
                for (c, (client, data)) in &self.members {
                    by_client.entry(client).or_default().push(Self::member_frame(&conns[c], client, data));
                }
                let clients: Vec<Value> = by_client
                    .into_iter()
                    .map(|(client, conns)| json!({"clientId": client, "connections": conns}))
                    .collect();
                json!({ "clients": clients })
            }
        }
    }
}

fn presence_id(conn: u64) -> String {
    format!("rollcall:{conn}")
}

fn data_value(data: &Option<String>) -> Value {
    match data {
        Some(text) => serde_json::from_str(text).expect("model data is JSON"),
        None => Value::Null,
    }
}

/// What the engine stores for a `data` field: JSON `null` is no data.
fn stored(text: Option<String>) -> Option<String> {
    text.filter(|t| t != "null")
}

fn is_violation(code: &str) -> bool {
    !matches!(
        code,
        "ROOM_FULL" | "TOKEN_INVALID" | "SUBJECT_MISMATCH" | "FORBIDDEN" | "ROOM_NOT_JOINED" | "RESUME_FAILED"
    )
}

struct Model {
    now: u64,
    limits: Limits,
    conns: BTreeMap<u64, MConn>,
    rooms: BTreeMap<String, MRoom>,
    /// What each connection should receive in the current step.
    out: BTreeMap<u64, Vec<Value>>,
    /// Closes the engine should ask for in the current step.
    closes: Vec<(u64, u16)>,
}

impl Model {
    fn new(limits: Limits) -> Model {
        Model {
            now: T0,
            limits,
            conns: BTreeMap::new(),
            rooms: BTreeMap::new(),
            out: BTreeMap::new(),
            closes: Vec::new(),
        }
    }

    fn push(&mut self, conn: u64, frame: Value) {
        // Nothing goes to a lost connection: it has no socket.
        if self.lost(conn) {
            return;
        }
        self.out.entry(conn).or_default().push(frame);
    }

    fn subscriptions(&self, conn: u64) -> usize {
        self.rooms
            .values()
            .map(|r| usize::from(r.psubs.contains_key(&conn)) + r.esubs.values().filter(|s| s.contains(&conn)).count())
            .sum()
    }

    fn ack(&mut self, conn: u64, r: u64, op: &str, body: Value) {
        let mut frame = json!({"type": "ack", "ref": r, "op": op});
        if let Value::Object(extra) = body {
            frame.as_object_mut().unwrap().extend(extra);
        }
        self.push(conn, frame);
    }

    /// An error frame; violations spend the budget, an empty one closes (4008).
    fn reject(&mut self, conn: u64, r: Value, code: &str) {
        self.push(conn, json!({"type": "error", "ref": r, "code": code}));
        if !is_violation(code) {
            return;
        }
        let (limit, now) = (self.limits.violations, self.now);
        let exhausted = self.conns.get_mut(&conn).is_some_and(|c| !c.violations.take(limit, now));
        if exhausted {
            self.close(conn, 4008);
        }
    }

    fn close(&mut self, conn: u64, code: u16) {
        self.closes.push((conn, code));
        self.remove_connection(conn);
    }

    fn remove_connection(&mut self, conn: u64) {
        let Some(c) = self.conns.get(&conn) else { return };
        let rooms: Vec<String> = c.rooms.iter().cloned().collect();
        for room in rooms {
            self.leave_room(conn, &room);
        }
        self.conns.remove(&conn);
    }

    /// Subscriptions dropped first (no own leave), then presence, then the room.
    fn leave_room(&mut self, conn: u64, room: &str) {
        let Some(rm) = self.rooms.get_mut(room) else { return };
        rm.psubs.remove(&conn);
        for subs in rm.esubs.values_mut() {
            subs.remove(&conn);
        }
        rm.esubs.retain(|_, s| !s.is_empty());
        self.remove_presence(conn, room);
        let rm = self.rooms.get_mut(room).unwrap();
        rm.joined.remove(&conn);
        if rm.joined.is_empty() {
            self.rooms.remove(room);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.remove(room);
        }
    }

    fn remove_presence(&mut self, conn: u64, room: &str) {
        let Some(rm) = self.rooms.get_mut(room) else { return };
        let Some((client, data)) = rm.members.remove(&conn) else { return };
        let last = !rm.has_client(&client);
        self.emit(room, conn, &client, &data, 2, last);
    }

    /// A presence change, to every subscriber whose view and filter take it.
    fn emit(&mut self, room: &str, conn: u64, client: &str, data: &Option<String>, kind: usize, client_edge: bool) {
        let timestamp = iso8601(self.now);
        let rm = self.rooms.get_mut(room).unwrap();
        rm.seq += 1;
        let seq = rm.seq;
        let subs: Vec<(u64, MSub)> = rm.psubs.iter().map(|(c, s)| (*c, *s)).collect();
        let pid = self.conns[&conn].pid.clone();
        for (view, applies) in [(ViewK::Connection, true), (ViewK::Client, client_edge)] {
            if !applies {
                continue;
            }
            for (to, sub) in &subs {
                if sub.view != view || sub.mask & (1 << kind) == 0 {
                    continue;
                }
                let mut frame = json!({
                    "type": "presence", "room": room, "event": KINDS[kind], "timestamp": timestamp,
                    "id": pid, "clientId": client, "data": data_value(data), "epoch": 0, "seq": seq,
                });
                if view == ViewK::Client {
                    frame["view"] = json!("client");
                }
                self.push(*to, frame);
            }
        }
    }

    // -- inputs --

    /// Returns whether the engine must accept the open.
    fn open(&mut self, conn: u64, kind: &OpenKind) -> bool {
        if self.conns.contains_key(&conn) {
            return false;
        }
        let now = self.now;
        let mut c = MConn {
            pid: presence_id(conn),
            lost_until: None,
            client_id: None,
            ready: true,
            limited: false,
            deadline: None,
            rooms: BTreeSet::new(),
            rate: Bucket::full(self.limits.rate, now),
            violations: Bucket::full(self.limits.violations, now),
        };
        let mut welcome = None;
        match kind {
            OpenKind::Client { client, expires_in, limited } => {
                c.client_id = Some(CLIENTS[*client].to_string());
                c.limited = *limited;
                c.deadline = expires_in.map(|d| now + d);
                welcome = Some(c.deadline);
            }
            OpenKind::NoClientId { expires_in } => {
                c.deadline = expires_in.map(|d| now + d);
                welcome = Some(c.deadline);
            }
            OpenKind::Pending => {
                c.ready = false;
                c.deadline = Some(now + AUTH_TIMEOUT_MS);
            }
            OpenKind::BadToken => c.ready = false,
            OpenKind::Token(t) => {
                if now >= t.expires_at(now) {
                    c.ready = false;
                } else {
                    c.client_id = t.sub();
                    c.limited = t.limited;
                    c.deadline = Some(t.expires_at(now));
                    welcome = Some(c.deadline);
                }
            }
        }
        let client_id = c.client_id.clone();
        self.conns.insert(conn, c);
        if let Some(expires_at) = welcome {
            self.push(
                conn,
                json!({"type": "welcome", "protocol": rollcall::protocol::VERSION, "id": presence_id(conn),
                       "clientId": client_id, "expiresAt": expires_at, "epoch": 0}),
            );
        }
        if !self.conns[&conn].ready && !matches!(kind, OpenKind::Pending) {
            self.close(conn, 4001);
        }
        true
    }

    /// The first `auth`: a welcome, then the ack.
    fn authenticate(&mut self, conn: u64, r: u64, t: &TokenSpec) {
        let expires_at = t.expires_at(self.now);
        let c = self.conns.get_mut(&conn).unwrap();
        c.ready = true;
        c.client_id = t.sub();
        c.limited = t.limited;
        c.deadline = Some(expires_at);
        let client_id = c.client_id.clone();
        self.push(
            conn,
            json!({"type": "welcome", "protocol": rollcall::protocol::VERSION, "id": presence_id(conn),
                   "clientId": client_id, "expiresAt": expires_at, "epoch": 0}),
        );
        let mut body = json!({"expiresAt": expires_at});
        if let Some(id) = client_id {
            body["clientId"] = json!(id);
        }
        self.ack(conn, r, "auth", body);
    }

    /// A refreshed token: same `sub` only; new grants apply at once.
    fn refresh(&mut self, conn: u64, r: u64, t: &TokenSpec) {
        let expires_at = t.expires_at(self.now);
        let c = self.conns.get_mut(&conn).unwrap();
        if c.client_id != t.sub() {
            return self.reject(conn, json!(r), "SUBJECT_MISMATCH");
        }
        c.limited = t.limited;
        c.deadline = Some(expires_at);
        let mut body = json!({"expiresAt": expires_at});
        if let Some(id) = &c.client_id {
            body["clientId"] = json!(id);
        }
        let rooms: Vec<String> = c.rooms.iter().cloned().collect();
        self.ack(conn, r, "auth", body);
        for room in rooms {
            let actions = self.conns[&conn].actions(&room);
            if !actions.subscribe {
                self.leave_room(conn, &room);
            } else if !actions.presence {
                self.remove_presence(conn, &room);
            }
        }
    }

    /// Time passes: graces end and deadlines pass, earliest first (at the
    /// same time a grace first, then by connection).
    fn tick(&mut self, dt: u64) {
        self.now += dt;
        let now = self.now;
        let mut due: Vec<(u64, u8, u64)> = Vec::new();
        for (id, c) in &self.conns {
            due.extend(c.lost_until.filter(|d| *d <= now).map(|d| (d, 0, *id)));
            due.extend(c.deadline.filter(|d| *d <= now).map(|d| (d, 2, *id)));
        }
        due.sort();
        for (_, which, conn) in due {
            let Some(c) = self.conns.get(&conn) else { continue };
            if which == 0 || c.lost_until.is_some() {
                // A grace ends, or a token expires in grace: it goes, with
                // no close (its socket is gone already).
                self.remove_connection(conn);
            } else {
                let code = if c.ready { 4002 } else { 4003 };
                self.close(conn, code);
            }
        }
    }

    fn lost(&self, conn: u64) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.lost_until.is_some())
    }

    /// `handle_lost`: grace for an authenticated connection, else gone.
    fn lose(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.lost_until.is_some() {
            return;
        }
        if !c.ready {
            return self.remove_connection(conn);
        }
        c.lost_until = Some(self.now + GRACE_MS);
    }

    /// `resume` by `conn` with the token of `target`'s last welcome.
    fn resume(&mut self, conn: u64, r: u64, target: u64) {
        let c = &self.conns[&conn];
        let valid = self.conns.get(&target).filter(|t| {
            t.ready && target != conn && c.rooms.is_empty() && c.client_id.is_some() && t.client_id == c.client_id
        });
        if valid.is_none() {
            return self.reject(conn, json!(r), "RESUME_FAILED");
        }
        let t = self.conns.remove(&target).unwrap();
        if t.lost_until.is_none() {
            self.closes.push((target, 4011));
        }
        for room in &t.rooms {
            let rm = self.rooms.get_mut(room).unwrap();
            rm.joined.remove(&target);
            rm.joined.insert(conn);
            if let Some(member) = rm.members.remove(&target) {
                rm.members.insert(conn, member);
            }
            if let Some(sub) = rm.psubs.remove(&target) {
                rm.psubs.insert(conn, sub);
            }
            for subs in rm.esubs.values_mut() {
                if subs.remove(&target) {
                    subs.insert(conn);
                }
            }
        }
        let c = self.conns.get_mut(&conn).unwrap();
        c.pid = t.pid.clone();
        c.rooms = t.rooms;
        let rooms: Vec<String> = c.rooms.iter().cloned().collect();
        for room in &rooms {
            let actions = self.conns[&conn].actions(room);
            if !actions.subscribe {
                self.leave_room(conn, room);
            } else if !actions.presence {
                self.remove_presence(conn, room);
            }
        }
        self.ack(conn, r, "resume", json!({"id": t.pid, "epoch": 0}));
        for room in rooms {
            let Some(rm) = self.rooms.get(&room) else { continue };
            let Some(sub) = rm.psubs.get(&conn) else { continue };
            let mut frame = rm.snapshot(sub.view, &self.conns);
            frame["type"] = json!("resync");
            frame["room"] = json!(room);
            self.push(conn, frame);
        }
    }

    fn host_publish(&mut self, room: &str, event: &str, data: Option<String>) -> usize {
        let Some(rm) = self.rooms.get(room) else { return 0 };
        let to: Vec<u64> = event_recipients(rm, event).into_iter().filter(|c| !self.lost(*c)).collect();
        let frame = json!({"type": "message", "room": room, "event": event, "timestamp": iso8601(self.now),
                           "from": null, "data": data_value(&stored(data))});
        for c in &to {
            self.push(*c, frame.clone());
        }
        to.len()
    }

    fn garbage(&mut self, conn: u64, rejection: (Value, &str)) {
        let (limit, now) = (self.limits.rate, self.now);
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.lost_until.is_none()) else { return };
        if !c.rate.take(limit, now) {
            return self.reject(conn, Value::Null, "RATE_LIMITED");
        }
        self.reject(conn, rejection.0, rejection.1);
    }

    fn frame(&mut self, conn: u64, r: u64, req: &Req) {
        let (limit, now) = (self.limits.rate, self.now);
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.lost_until.is_none()) else { return };
        if !c.rate.take(limit, now) {
            return self.reject(conn, Value::Null, "RATE_LIMITED");
        }
        let ready = c.ready;
        if !ready && !matches!(req, Req::Ping | Req::Auth(_)) {
            return self.reject(conn, json!(r), "NOT_AUTHENTICATED");
        }
        let joined = |m: &Model, room: usize| m.conns[&conn].rooms.contains(ROOMS[room]);
        match req {
            Req::Ping => self.ack(conn, r, "ping", json!({})),
            Req::Resume(target) => self.resume(conn, r, *target),
            Req::Auth(spec) => {
                let valid = (*spec).filter(|t| now < t.expires_at(now));
                match (ready, valid) {
                    (false, None) => self.close(conn, 4001),
                    (true, None) => self.reject(conn, json!(r), "TOKEN_INVALID"),
                    (false, Some(t)) => self.authenticate(conn, r, &t),
                    (true, Some(t)) => self.refresh(conn, r, &t),
                }
            }
            Req::RoomJoin(i) => {
                let room = ROOMS[*i];
                let c = &self.conns[&conn];
                if !c.rooms.contains(room) {
                    if !c.actions(room).subscribe {
                        return self.reject(conn, json!(r), "FORBIDDEN");
                    }
                    if c.rooms.len() >= self.limits.max_rooms_per_connection {
                        return self.reject(conn, json!(r), "TOO_MANY_ROOMS");
                    }
                    self.conns.get_mut(&conn).unwrap().rooms.insert(room.to_string());
                    self.rooms.entry(room.to_string()).or_default().joined.insert(conn);
                }
                self.ack(conn, r, "room.join", json!({}));
            }
            Req::RoomLeave(i) => {
                if joined(self, *i) {
                    self.leave_room(conn, ROOMS[*i]);
                }
                self.ack(conn, r, "room.leave", json!({}));
            }
            Req::PresenceJoin(i, d) | Req::PresenceUpdate(i, d) => {
                let op = if matches!(req, Req::PresenceJoin(..)) { "presence.join" } else { "presence.update" };
                let room = ROOMS[*i];
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                let c = &self.conns[&conn];
                if !c.actions(room).presence {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                let Some(client) = c.client_id.clone() else {
                    return self.reject(conn, json!(r), "NO_CLIENT_ID");
                };
                let data = stored(d.map(data_text));
                if data.as_ref().map_or(0, String::len) > self.limits.max_presence_data_bytes {
                    return self.reject(conn, json!(r), "PRESENCE_DATA_TOO_LARGE");
                }
                let rm = self.rooms.get_mut(room).unwrap();
                let present = rm.members.contains_key(&conn);
                if !present && rm.members.len() >= self.limits.max_members_per_room {
                    return self.reject(conn, json!(r), "ROOM_FULL");
                }
                let first = !rm.has_client(&client);
                rm.members.insert(conn, (client.clone(), data.clone()));
                self.ack(conn, r, op, json!({}));
                if present {
                    self.emit(room, conn, &client, &data, 1, true);
                } else {
                    self.emit(room, conn, &client, &data, 0, first);
                }
            }
            Req::PresenceLeave(i) => {
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                // Its own subscriptions stay: it may see its own leave.
                self.ack(conn, r, "presence.leave", json!({}));
                self.remove_presence(conn, ROOMS[*i]);
            }
            Req::PresenceGet(i, v) => {
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                let body = self.rooms[ROOMS[*i]].snapshot(v.unwrap_or(ViewK::Connection), &self.conns);
                self.ack(conn, r, "presence.get", body);
            }
            Req::PresenceSubscribe(i, events, v) => {
                let room = ROOMS[*i];
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                let already = self.rooms[room].psubs.contains_key(&conn);
                if !already && self.subscriptions(conn) >= self.limits.max_subscriptions_per_connection {
                    return self.reject(conn, json!(r), "TOO_MANY_SUBSCRIPTIONS");
                }
                let view = v.unwrap_or(ViewK::Connection);
                let rm = self.rooms.get_mut(room).unwrap();
                rm.psubs.insert(conn, MSub { mask: mask_of(events), view });
                let body = self.rooms[room].snapshot(view, &self.conns);
                self.ack(conn, r, "presence.subscribe", body);
            }
            Req::PresenceUnsubscribe(i) => {
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                self.rooms.get_mut(ROOMS[*i]).unwrap().psubs.remove(&conn);
                self.ack(conn, r, "presence.unsubscribe", json!({}));
            }
            Req::Subscribe(i, e) => {
                let (room, event) = (ROOMS[*i], EVENTS[*e]);
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                let already = self.rooms[room].esubs.get(event).is_some_and(|s| s.contains(&conn));
                if !already && self.subscriptions(conn) >= self.limits.max_subscriptions_per_connection {
                    return self.reject(conn, json!(r), "TOO_MANY_SUBSCRIPTIONS");
                }
                self.rooms.get_mut(room).unwrap().esubs.entry(event.to_string()).or_default().insert(conn);
                self.ack(conn, r, "subscribe", json!({}));
            }
            Req::Unsubscribe(i, e) => {
                let (room, event) = (ROOMS[*i], EVENTS[*e]);
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                let rm = self.rooms.get_mut(room).unwrap();
                if let Some(s) = rm.esubs.get_mut(event) {
                    s.remove(&conn);
                    if s.is_empty() {
                        rm.esubs.remove(event);
                    }
                }
                self.ack(conn, r, "unsubscribe", json!({}));
            }
            Req::Publish(i, e, d) => {
                let (room, event) = (ROOMS[*i], EVENTS[*e]);
                if !joined(self, *i) {
                    return self.reject(conn, json!(r), "ROOM_NOT_JOINED");
                }
                let c = &self.conns[&conn];
                if !c.actions(room).publish {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                let from = json!({"id": c.pid, "clientId": c.client_id});
                let to: BTreeSet<u64> =
                    event_recipients(&self.rooms[room], event).into_iter().filter(|c| !self.lost(*c)).collect();
                self.ack(conn, r, "publish", json!({"recipients": to.len()}));
                let frame = json!({"type": "message", "room": room, "event": event,
                                   "timestamp": iso8601(self.now), "from": from,
                                   "data": data_value(&stored(d.map(data_text)))});
                for c in to {
                    self.push(c, frame.clone());
                }
            }
        }
    }
}

fn event_recipients(rm: &MRoom, event: &str) -> BTreeSet<u64> {
    let mut to = BTreeSet::new();
    for name in [event, "*"] {
        if let Some(s) = rm.esubs.get(name) {
            to.extend(s.iter().copied());
        }
    }
    to
}

// ---- the harness -------------------------------------------------------

/// A subscriber's own picture of a presence set, from frames only.
#[derive(Debug)]
enum Recon {
    /// presence id -> (clientId, data)
    Connection(BTreeMap<String, (String, Value)>),
    Client(BTreeSet<String>),
}

struct Harness {
    engine: Engine,
    now: u64,
    /// Connections the engine may send to: opened, and not closed since.
    live: BTreeSet<u64>,
    recon: BTreeMap<(u64, String), Recon>,
    next_ref: u64,
    /// The resume token of each connection id's last welcome.
    tokens: BTreeMap<u64, String>,
    /// An engine with coalesced presence delivery fed the same inputs.
    shadow: Option<Shadow>,
}

/// The coalescing twin of the harness's engine (`presence.flushIntervalMs`
/// in r1 and r2, not in r3). Everything but its presence frames must be
/// the same as the engine's (acks without their `seq`); its subscribers'
/// pictures, built from its frames with batches unpacked, must equal its
/// presence sets whenever no window is open (after `flush`, every third
/// step); its `seq`s rise per subscriber and room; and a flush sends each
/// subscriber at most one frame per coalescing room.
struct Shadow {
    engine: Engine,
    live: BTreeSet<u64>,
    recon: BTreeMap<(u64, String), Recon>,
    /// The last seq each (connection, room) saw, from snapshots and events.
    seqs: BTreeMap<(u64, String), u64>,
    steps: usize,
}

type Frames = BTreeMap<u64, Vec<Value>>;

/// Error messages and resume tokens (checked in tests/resume.rs) are not modelled.
fn normalize(mut v: Value) -> Value {
    if v["type"] == "error" {
        v.as_object_mut().unwrap().remove("message");
    }
    v.as_object_mut().unwrap().remove("resumeToken");
    v
}

impl Harness {
    /// Drains outputs: frames per connection (in order) and closes.
    fn drain(&mut self, got: &mut Frames, closes: &mut Vec<(u64, u16)>) -> Result<(), TestCaseError> {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send(t) => {
                    let v: Value = serde_json::from_str(&t.payload)
                        .map_err(|e| TestCaseError::fail(format!("engine sent non-JSON {:?}: {e}", t.payload)))?;
                    prop_assert!(!t.to.is_empty(), "send to nobody: {}", v);
                    for c in t.to {
                        prop_assert!(self.live.contains(&c.0), "frame {} sent to closed connection {}", v, c.0);
                        if v["type"] == "welcome" {
                            let token = v["resumeToken"].as_str();
                            prop_assert!(token.is_some_and(|t| t.len() == 64), "a welcome without a token: {}", v);
                            self.tokens.insert(c.0, token.unwrap_or_default().to_string());
                        }
                        got.entry(c.0).or_default().push(normalize(v.clone()));
                    }
                }
                Output::Close(c) => {
                    prop_assert!(self.live.remove(&c.connection.0), "close of a dead connection {}", c.connection.0);
                    closes.push((c.connection.0, c.code.code()));
                }
                Output::Event(_) => {}
            }
        }
        Ok(())
    }
}

fn identity(kind: &OpenKind, now: u64) -> Credentials {
    match kind {
        OpenKind::Client { client, expires_in, limited } => Credentials::Identity(Identity {
            client_id: Some(CLIENTS[*client].to_string()),
            rooms: limited.then(limited_claim),
            expires_at: expires_in.map(|d| now + d),
            ..Identity::default()
        }),
        OpenKind::NoClientId { expires_in } => {
            Credentials::Identity(Identity { expires_at: expires_in.map(|d| now + d), ..Identity::default() })
        }
        OpenKind::Pending => Credentials::None,
        OpenKind::BadToken => Credentials::Token("not-a-token".into()),
        OpenKind::Token(spec) => Credentials::Token(spec.sign(now)),
    }
}

impl Req {
    fn map_room(&self, f: impl Fn(usize) -> usize) -> Req {
        match self.clone() {
            Req::Ping => Req::Ping,
            Req::Auth(t) => Req::Auth(t),
            Req::RoomJoin(r) => Req::RoomJoin(f(r)),
            Req::RoomLeave(r) => Req::RoomLeave(f(r)),
            Req::PresenceJoin(r, d) => Req::PresenceJoin(f(r), d),
            Req::PresenceUpdate(r, d) => Req::PresenceUpdate(f(r), d),
            Req::PresenceLeave(r) => Req::PresenceLeave(f(r)),
            Req::PresenceGet(r, v) => Req::PresenceGet(f(r), v),
            Req::PresenceSubscribe(r, e, v) => Req::PresenceSubscribe(f(r), e, v),
            Req::PresenceUnsubscribe(r) => Req::PresenceUnsubscribe(f(r)),
            Req::Subscribe(r, e) => Req::Subscribe(f(r), e),
            Req::Unsubscribe(r, e) => Req::Unsubscribe(f(r), e),
            Req::Publish(r, e, d) => Req::Publish(f(r), e, d),
            Req::Resume(t) => Req::Resume(t),
        }
    }
}

/// Resolves `LIVE + k` and `JOINED + k` against the model's state (only
/// the model's: the engine is never asked).
fn resolve(op: &Op, m: &Model) -> Op {
    let conn = |c: u64| {
        if c < LIVE {
            return c;
        }
        let live: Vec<u64> = m.conns.keys().copied().collect();
        if live.is_empty() {
            1
        } else {
            live[(c - LIVE) as usize % live.len()]
        }
    };
    match op {
        Op::Close(c) => Op::Close(conn(*c)),
        Op::Lost(c) => Op::Lost(conn(*c)),
        Op::Garbage(c, bytes) => Op::Garbage(conn(*c), bytes.clone()),
        Op::Frame(c, req) => {
            let c = conn(*c);
            let joined: Vec<usize> = m
                .conns
                .get(&c)
                .map_or(Vec::new(), |mc| (0..ROOMS.len()).filter(|i| mc.rooms.contains(ROOMS[*i])).collect());
            let mut req = req.map_room(|r| match r {
                r if r < JOINED => r,
                _ if joined.is_empty() => 0,
                r => joined[(r - JOINED) % joined.len()],
            });
            if let Req::Resume(t) = &mut req {
                *t = conn(*t);
            }
            if let Req::Auth(Some(t)) = &mut req {
                if t.sub == Sub::Same {
                    let own = m.conns.get(&c).and_then(|mc| mc.client_id.as_deref());
                    t.sub = own.and_then(|id| CLIENTS.iter().position(|x| *x == id)).map_or(Sub::None, Sub::Client);
                }
            }
            Op::Frame(c, req)
        }
        other => other.clone(),
    }
}

fn step(h: &mut Harness, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let op = &resolve(op, m);
    step_resolved(h, m, op).map_err(|e| TestCaseError::fail(format!("resolved as {op:?}: {e}")))
}

fn step_resolved(h: &mut Harness, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    m.out.clear();
    m.closes.clear();
    let mut got = Frames::new();
    let mut closes = Vec::new();
    let mut subscribed: Option<(u64, String, u8)> = None;
    match op {
        Op::Open(c, kind) => {
            let accepted = m.open(*c, kind);
            let result = h.engine.handle_open(ConnectionId(*c), identity(kind, h.now), h.now);
            prop_assert_eq!(result.is_ok(), accepted, "handle_open result: {:?}", result);
            if accepted {
                h.live.insert(*c);
            }
            if let Some(s) = &mut h.shadow {
                let result = s.engine.handle_open(ConnectionId(*c), identity(kind, h.now), h.now);
                prop_assert_eq!(result.is_ok(), accepted, "the shadow's handle_open result: {:?}", result);
                if accepted {
                    s.live.insert(*c);
                }
            }
        }
        Op::Close(c) => {
            // A lost connection's socket is already gone: its grace runs on.
            if !m.lost(*c) {
                m.remove_connection(*c);
                h.live.remove(c);
                if let Some(s) = &mut h.shadow {
                    s.live.remove(c);
                }
            }
            h.engine.handle_close(ConnectionId(*c), h.now);
            h.shadow_do(|e, now| e.handle_close(ConnectionId(*c), now));
        }
        Op::Lost(c) => {
            m.lose(*c);
            h.engine.handle_lost(ConnectionId(*c), h.now);
            h.shadow_do(|e, now| e.handle_lost(ConnectionId(*c), now));
        }
        Op::Tick(dt) => {
            m.tick(*dt);
            h.now += dt;
            h.engine.handle_timeout(h.now);
            h.shadow_do(|e, now| e.handle_timeout(now));
        }
        Op::Frame(c, req) => {
            h.next_ref += 1;
            let r = h.next_ref;
            m.frame(*c, r, req);
            if let Req::PresenceSubscribe(i, events, _) = req {
                subscribed = Some((*c, ROOMS[*i].to_string(), mask_of(events)));
            }
            let text = match req {
                Req::Resume(t) => {
                    let token = h.tokens.get(t).map_or("none", String::as_str);
                    json!({"op": "resume", "ref": r, "token": token}).to_string()
                }
                _ => frame_text(r, req, h.now),
            };
            h.engine.handle_frame(ConnectionId(*c), text.as_bytes(), h.now);
            h.shadow_do(|e, now| e.handle_frame(ConnectionId(*c), text.as_bytes(), now));
        }
        Op::Garbage(c, bytes) => {
            let expected = match request::parse(bytes, &m.limits) {
                // Valid after all (vanishingly rare): not garbage, skip it.
                Ok(_) => return Ok(()),
                Err(rej) => {
                    let r = rej.reference.map_or(Value::Null, |r| serde_json::from_str(r.get()).unwrap());
                    (r, rej.code.as_str())
                }
            };
            m.garbage(*c, expected);
            h.engine.handle_frame(ConnectionId(*c), bytes, h.now);
            h.shadow_do(|e, now| e.handle_frame(ConnectionId(*c), bytes, now));
        }
        Op::HostPublish(r, e, d) => {
            let (room, event) = (ROOMS[*r], EVENTS[*e]);
            let data = d.map(data_text);
            let n = h.engine.publish(room, event, data.as_deref(), h.now);
            let expected = m.host_publish(room, event, data.clone());
            prop_assert_eq!(n.ok(), Some(expected), "host publish recipients");
            if let Some(s) = &mut h.shadow {
                let n = s.engine.publish(room, event, data.as_deref(), h.now);
                prop_assert_eq!(n.ok(), Some(expected), "the shadow's host publish recipients");
            }
        }
    }
    h.drain(&mut got, &mut closes)?;

    // Frames and closes, exactly.
    for c in 1..=CONNS {
        let empty = Vec::new();
        let (g, want) = (got.get(&c).unwrap_or(&empty), m.out.get(&c).unwrap_or(&empty));
        prop_assert_eq!(g, want, "frames received by connection {}", c);
    }
    prop_assert_eq!(&closes, &m.closes, "closes");

    // Host queries.
    prop_assert_eq!(h.engine.connection_count(), m.conns.len(), "connection_count");
    prop_assert_eq!(h.engine.room_names(), m.rooms.keys().cloned().collect::<Vec<_>>(), "room_names");
    let deadline = m.conns.values().flat_map(|c| [c.deadline, c.lost_until]).flatten().min();
    prop_assert_eq!(h.engine.poll_timeout(), deadline, "poll_timeout");
    for room in ROOMS {
        let rm = m.rooms.get(room);
        let members: Vec<MemberInfo> = rm.map_or(Vec::new(), |rm| {
            rm.members
                .iter()
                .map(|(c, (client, data))| MemberInfo {
                    connection: ConnectionId(*c),
                    id: m.conns[c].pid.clone(),
                    client_id: client.clone(),
                    data: data.clone(),
                    in_grace: m.lost(*c),
                })
                .collect()
        });
        prop_assert_eq!(h.engine.members(room), members, "members of {}", room);
        let mut clients: BTreeMap<String, Vec<ConnectionId>> = BTreeMap::new();
        for (c, (client, _)) in rm.map(|rm| &rm.members).into_iter().flatten() {
            clients.entry(client.clone()).or_default().push(ConnectionId(*c));
        }
        let clients: Vec<ClientInfo> =
            clients.into_iter().map(|(client_id, connections)| ClientInfo { client_id, connections }).collect();
        prop_assert_eq!(h.engine.clients(room), clients.clone(), "clients of {}", room);
        let counts = RoomCounts {
            connections: rm.map_or(0, |r| r.joined.len()),
            members: rm.map_or(0, |r| r.members.len()),
            clients: clients.len(),
            in_grace: rm.map_or(0, |r| r.members.keys().filter(|c| m.lost(**c)).count()),
        };
        prop_assert_eq!(h.engine.room_counts(room), counts, "room_counts of {}", room);
    }

    // Subscribers' reconstructions, from what they received.
    for (c, frames) in &got {
        for f in frames {
            if f["type"] == "ack" && f["op"] == "presence.subscribe" {
                let (sc, room, mask) = subscribed.clone().expect("a subscribe ack answers a subscribe");
                prop_assert_eq!(sc, *c);
                h.recon.remove(&(*c, room.clone()));
                if mask == ALL_KINDS {
                    h.recon.insert((*c, room), recon_from_snapshot(f));
                }
            } else if f["type"] == "resync" {
                // A resumed connection's fresh picture, for its resumed subscription.
                let room = f["room"].as_str().unwrap().to_string();
                h.recon.remove(&(*c, room.clone()));
                if m.rooms.get(&room).and_then(|rm| rm.psubs.get(c)).is_some_and(|s| s.mask == ALL_KINDS) {
                    h.recon.insert((*c, room), recon_from_snapshot(f));
                }
            } else if f["type"] == "presence" {
                let room = f["room"].as_str().unwrap().to_string();
                if let Some(rec) = h.recon.get_mut(&(*c, room)) {
                    apply_event(rec, f)?;
                }
            }
        }
    }
    // Drop pictures whose subscription is gone (unsubscribed, left, closed,
    // or replaced by a filtered one), or whose connection is lost (it gets
    // nothing more; a resume brings the new connection a replay or resync).
    h.recon.retain(|(c, room), rec| picture_kept(m, *c, room, rec));
    for ((c, room), rec) in &h.recon {
        match rec {
            Recon::Connection(members) => {
                let engine: BTreeMap<String, (String, Value)> = h
                    .engine
                    .members(room)
                    .into_iter()
                    .map(|mi| {
                        let data = mi.data.map_or(Value::Null, |d| serde_json::from_str(&d).unwrap());
                        (mi.id, (mi.client_id, data))
                    })
                    .collect();
                prop_assert_eq!(members, &engine, "connection {}'s picture of {}", c, room);
            }
            Recon::Client(clients) => {
                let engine: BTreeSet<String> = h.engine.clients(room).into_iter().map(|ci| ci.client_id).collect();
                prop_assert_eq!(clients, &engine, "connection {}'s per-client picture of {}", c, room);
            }
        }
    }
    if h.shadow.is_some() {
        check_shadow(h, m, op, &got, &closes, subscribed)?;
    }
    Ok(())
}

impl Harness {
    fn shadow_do(&mut self, f: impl FnOnce(&mut Engine, u64)) {
        if let Some(s) = &mut self.shadow {
            f(&mut s.engine, self.now);
        }
    }
}

/// What must be equal between the engine and its coalescing shadow:
/// frames other than presence events and resyncs, with `seq` left out.
fn comparable(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| !matches!(f["type"].as_str(), Some("presence" | "batch" | "resync")))
        .map(|f| {
            let mut f = f.clone();
            f.as_object_mut().unwrap().remove("seq");
            f
        })
        .collect()
}

fn check_shadow(
    h: &mut Harness,
    m: &Model,
    op: &Op,
    got: &Frames,
    closes: &[(u64, u16)],
    subscribed: Option<(u64, String, u8)>,
) -> Result<(), TestCaseError> {
    let s = h.shadow.as_mut().expect("a shadow");
    s.steps += 1;
    let flush = s.steps % 3 == 0;
    let (mut frames, mut shadow_closes) = (Frames::new(), Vec::new());
    let mut drain = |s: &mut Shadow, frames: &mut Frames| -> Result<(), TestCaseError> {
        while let Some(out) = s.engine.poll_output() {
            match out {
                Output::Send(t) => {
                    let v: Value = serde_json::from_str(&t.payload).unwrap();
                    for c in t.to {
                        prop_assert!(s.live.contains(&c.0), "shadow frame {} to closed connection {}", v, c.0);
                        frames.entry(c.0).or_default().push(normalize(v.clone()));
                    }
                }
                Output::Close(c) => {
                    prop_assert!(s.live.remove(&c.connection.0), "shadow close of a dead connection");
                    shadow_closes.push((c.connection.0, c.code.code()));
                }
                Output::Event(_) => {}
            }
        }
        Ok(())
    };
    drain(s, &mut frames)?;
    let before_flush: Frames = frames.clone();
    if flush {
        s.engine.flush();
        let mut flushed = Frames::new();
        drain(s, &mut flushed)?;
        for (c, fs) in &flushed {
            prop_assert!(fs.iter().all(|f| f["type"] == "presence" || f["type"] == "batch"), "a flush sends events");
            frames.entry(*c).or_default().extend(fs.iter().cloned());
        }
        one_frame_per_room(&flushed)?;
    }
    if matches!(op, Op::Tick(_)) {
        one_frame_per_room(&before_flush)?;
    }
    prop_assert_eq!(&shadow_closes, &closes.to_vec(), "the shadow's closes");
    for c in 1..=CONNS {
        let empty = Vec::new();
        let (g, want) = (frames.get(&c).unwrap_or(&empty), got.get(&c).unwrap_or(&empty));
        prop_assert_eq!(comparable(g), comparable(want), "the shadow's frames to {} besides presence", c);
    }
    // Same state.
    prop_assert_eq!(s.engine.connection_count(), h.engine.connection_count());
    prop_assert_eq!(s.engine.room_names(), h.engine.room_names());
    for room in ROOMS {
        prop_assert_eq!(s.engine.members(room), h.engine.members(room), "the shadow's members of {}", room);
        prop_assert_eq!(s.engine.clients(room), h.engine.clients(room));
        prop_assert_eq!(s.engine.room_counts(room), h.engine.room_counts(room));
    }
    if let (Some(mine), Some(theirs)) = (h.engine.poll_timeout(), s.engine.poll_timeout()) {
        prop_assert!(theirs <= mine, "the shadow wakes for the engine's deadlines too");
    } else if !flush {
        prop_assert!(h.engine.poll_timeout().is_none() || s.engine.poll_timeout().is_some());
    }
    // Its subscribers' pictures, seqs rising.
    for (c, fs) in &frames {
        for f in fs {
            let room = f["room"].as_str().map(str::to_string);
            match f["type"].as_str() {
                Some("ack") if f["op"] == "presence.subscribe" => {
                    let (_, room, mask) = subscribed.clone().expect("a subscribe ack answers a subscribe");
                    s.recon.remove(&(*c, room.clone()));
                    s.seqs.insert((*c, room.clone()), f["seq"].as_u64().unwrap());
                    if mask == ALL_KINDS {
                        s.recon.insert((*c, room), recon_from_snapshot(f));
                    }
                }
                Some("resync") => {
                    let room = room.unwrap();
                    s.recon.remove(&(*c, room.clone()));
                    s.seqs.insert((*c, room.clone()), f["seq"].as_u64().unwrap());
                    if m.rooms.get(&room).and_then(|rm| rm.psubs.get(c)).is_some_and(|p| p.mask == ALL_KINDS) {
                        s.recon.insert((*c, room), recon_from_snapshot(f));
                    }
                }
                Some("presence" | "batch") => {
                    let room = room.unwrap();
                    let events =
                        if f["type"] == "batch" { f["events"].as_array().unwrap().clone() } else { vec![f.clone()] };
                    prop_assert!(!events.is_empty(), "an empty batch");
                    for e in &events {
                        prop_assert_eq!(&e["room"], &json!(room), "a batch holds its room's events");
                        let seq = e["seq"].as_u64().unwrap();
                        let last = s.seqs.insert((*c, room.clone()), seq);
                        prop_assert!(
                            last.map_or(true, |l| seq > l),
                            "seq {} after {:?} to {} in {}",
                            seq,
                            last,
                            c,
                            room
                        );
                        if let Some(rec) = s.recon.get_mut(&(*c, room.clone())) {
                            apply_event(rec, e)?;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    s.recon.retain(|(c, room), rec| picture_kept(m, *c, room, rec));
    s.seqs.retain(|(c, room), _| m.rooms.get(room).is_some_and(|rm| rm.psubs.contains_key(c)));
    if flush {
        for ((c, room), rec) in &s.recon {
            match rec {
                Recon::Connection(members) => {
                    let engine: BTreeMap<String, (String, Value)> = s
                        .engine
                        .members(room)
                        .into_iter()
                        .map(|mi| {
                            (mi.id, (mi.client_id, mi.data.map_or(Value::Null, |d| serde_json::from_str(&d).unwrap())))
                        })
                        .collect();
                    prop_assert_eq!(members, &engine, "shadow connection {}'s picture of {}", c, room);
                }
                Recon::Client(clients) => {
                    let engine: BTreeSet<String> = s.engine.clients(room).into_iter().map(|ci| ci.client_id).collect();
                    prop_assert_eq!(clients, &engine, "shadow connection {}'s per-client picture of {}", c, room);
                }
            }
        }
    }
    Ok(())
}

/// At most one presence or batch frame per connection and coalescing room.
fn one_frame_per_room(frames: &Frames) -> Result<(), TestCaseError> {
    for (c, fs) in frames {
        for room in ["r1", "r2"] {
            let n =
                fs.iter().filter(|f| (f["type"] == "presence" || f["type"] == "batch") && f["room"] == room).count();
            prop_assert!(n <= 1, "{} frames to {} for {} in one flush", n, c, room);
        }
    }
    Ok(())
}

/// Whether a subscriber's picture is still checked: its connection is not
/// lost (it gets nothing more; a resume brings the new connection a replay
/// or resync) and it still holds an unfiltered subscription in that view.
fn picture_kept(m: &Model, c: u64, room: &str, rec: &Recon) -> bool {
    if m.lost(c) {
        return false;
    }
    let view = match rec {
        Recon::Connection(_) => ViewK::Connection,
        Recon::Client(_) => ViewK::Client,
    };
    m.rooms.get(room).and_then(|rm| rm.psubs.get(&c)).is_some_and(|s| s.mask == ALL_KINDS && s.view == view)
}

fn recon_from_snapshot(ack: &Value) -> Recon {
    let member = |m: &Value| {
        (m["id"].as_str().unwrap().to_string(), (m["clientId"].as_str().unwrap().to_string(), m["data"].clone()))
    };
    if let Some(members) = ack["members"].as_array() {
        Recon::Connection(members.iter().map(member).collect())
    } else {
        let clients = ack["clients"].as_array().expect("snapshot has members or clients");
        Recon::Client(clients.iter().map(|c| c["clientId"].as_str().unwrap().to_string()).collect())
    }
}

fn apply_event(rec: &mut Recon, f: &Value) -> Result<(), TestCaseError> {
    let event = f["event"].as_str().unwrap();
    let client = f["clientId"].as_str().unwrap().to_string();
    match rec {
        Recon::Connection(members) => {
            prop_assert!(f.get("view").is_none(), "client-view event to a connection-view subscriber: {}", f);
            let id = f["id"].as_str().unwrap().to_string();
            let present = members.contains_key(&id);
            match event {
                "join" => prop_assert!(!present, "join of a present member: {}", f),
                _ => prop_assert!(present, "{} of an absent member: {}", event, f),
            }
            if event == "leave" {
                members.remove(&id);
            } else {
                members.insert(id, (client, f["data"].clone()));
            }
        }
        Recon::Client(clients) => {
            prop_assert_eq!(&f["view"], &json!("client"), "connection-view event to a client-view subscriber");
            let present = clients.contains(&client);
            match event {
                "join" => prop_assert!(!present, "join of a present client: {}", f),
                _ => prop_assert!(present, "{} of an absent client: {}", event, f),
            }
            if event == "leave" {
                clients.remove(&client);
            } else {
                clients.insert(client);
            }
        }
    }
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    run_with(config(), None, ops)
}

/// Runs `ops`; with `flush_ms`, beside a coalescing shadow (see [`Shadow`]).
fn run_with(config: Config, flush_ms: Option<u64>, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new(config.limits.clone());
    let shadow = flush_ms.map(|ms| {
        let mut shadow = config.clone();
        shadow.presence = serde_json::from_value(json!({
            "flushIntervalMs": ms, "rooms": [{"pattern": "r3", "flushIntervalMs": 0}],
        }))
        .expect("presence options");
        Shadow {
            engine: Engine::new(shadow).expect("valid config"),
            live: BTreeSet::new(),
            recon: BTreeMap::new(),
            seqs: BTreeMap::new(),
            steps: 0,
        }
    });
    let mut h = Harness {
        engine: Engine::new(config).expect("valid config"),
        now: T0,
        live: BTreeSet::new(),
        recon: BTreeMap::new(),
        next_ref: 0,
        tokens: BTreeMap::new(),
        shadow,
    };
    for (i, op) in ops.iter().enumerate() {
        step(&mut h, &mut model, op).map_err(|e| TestCaseError::fail(format!("step {i} ({op:?}): {e}")))?;
    }
    // Closing everything, and waiting out the graces, empties every room and the engine.
    for c in 1..=CONNS {
        step(&mut h, &mut model, &Op::Close(c)).map_err(|e| TestCaseError::fail(format!("final close: {e}")))?;
    }
    step(&mut h, &mut model, &Op::Tick(GRACE_MS)).map_err(|e| TestCaseError::fail(format!("final grace: {e}")))?;
    prop_assert_eq!(h.engine.connection_count(), 0);
    prop_assert!(h.engine.room_names().is_empty());
    prop_assert_eq!(h.engine.poll_timeout(), None);
    Ok(())
}

proptest! {
    // ProptestConfig::default() honours PROPTEST_CASES (default 256).
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn engine_agrees_with_the_model(ops in ops()) {
        run(&ops)?;
    }

    /// The same operations with coalesced delivery in r1 and r2. The rate
    /// limit is lifted for both engines: a coalescing room takes updates
    /// over it (that difference has its own test in tests/coalesce.rs).
    #[test]
    fn coalescing_engine_agrees_with_the_engine(ops in ops(), flush_ms in prop_oneof![Just(1u64), 1..3000u64, Just(20_000u64)]) {
        let mut config = config();
        config.limits.rate = RateLimit { burst: 10_000, per_second: 10_000 };
        run_with(config, Some(flush_ms), &ops)?;
    }
}

/// A fixed sequence through the trickiest paths, so that they run even when
/// the random cases miss them.
#[test]
fn scripted_sequence_agrees_with_the_model() {
    use OpenKind::*;
    let ops = vec![
        Op::Open(1, Client { client: 0, expires_in: None, limited: false }),
        Op::Open(2, Client { client: 0, expires_in: Some(1500), limited: false }),
        Op::Open(3, Client { client: 1, expires_in: None, limited: false }),
        Op::Open(4, Client { client: 2, expires_in: None, limited: false }),
        Op::Frame(3, Req::RoomJoin(0)),
        Op::Frame(4, Req::RoomJoin(0)),
        Op::Frame(3, Req::PresenceSubscribe(0, None, Some(ViewK::Client))),
        Op::Frame(4, Req::PresenceSubscribe(0, None, None)),
        Op::Frame(1, Req::RoomJoin(0)),
        Op::Frame(2, Req::RoomJoin(0)),
        Op::Frame(1, Req::PresenceUpdate(0, Some(6))),
        Op::Frame(2, Req::PresenceJoin(0, Some(7))),
        Op::Frame(2, Req::PresenceJoin(0, Some(8))),
        Op::Frame(1, Req::PresenceSubscribe(0, Some(vec![2]), None)),
        Op::Frame(1, Req::PresenceLeave(0)),
        Op::Frame(1, Req::PresenceJoin(0, Some(0))),
        Op::Frame(4, Req::PresenceJoin(0, Some(BIG))),
        Op::Frame(4, Req::Subscribe(0, 2)),
        Op::Frame(2, Req::Subscribe(0, 0)),
        Op::Frame(2, Req::Subscribe(0, 2)),
        Op::Frame(2, Req::Subscribe(0, 1)),
        Op::Frame(1, Req::Publish(0, 0, Some(3))),
        Op::HostPublish(0, 1, None),
        Op::Garbage(1, b"{\"op\":".to_vec()),
        Op::Tick(2000),
        Op::Frame(1, Req::RoomLeave(0)),
        Op::Open(5, Pending),
        Op::Frame(5, Req::RoomJoin(0)),
        Op::Open(6, BadToken),
        // Lost, then resumed by another connection of the same clientId.
        Op::Frame(1, Req::RoomJoin(0)),
        Op::Frame(1, Req::PresenceJoin(0, Some(1))),
        Op::Frame(1, Req::PresenceSubscribe(0, None, None)),
        Op::Lost(1),
        Op::Frame(1, Req::Ping),
        Op::Close(1),
        Op::Frame(3, Req::PresenceUpdate(0, Some(2))),
        Op::Open(2, Client { client: 0, expires_in: None, limited: true }),
        Op::Frame(2, Req::Resume(3)),
        Op::Frame(2, Req::Resume(1)),
        Op::Frame(2, Req::Resume(1)),
        Op::Frame(2, Req::PresenceUpdate(0, Some(3))),
        // A live connection resumed (4011), and a grace that runs out.
        Op::Open(1, Client { client: 2, expires_in: None, limited: false }),
        Op::Frame(1, Req::Resume(4)),
        Op::Lost(3),
        Op::Tick(GRACE_MS),
        Op::Tick(10_000),
    ];
    if let Err(e) = run(&ops) {
        panic!("{e}");
    }
}
