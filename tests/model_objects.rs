//! Model-based property test for object presence (seed 000), in the manner
//! of tests/model.rs: random operation sequences over a small universe run
//! against the [`Engine`] and against a plain reference model.
//!
//! The universe: connections 1..=5 with random `per` claims (read all, read
//! `r/a*` only, CRUD on an own id, read all plus CUD on an own id, mixed
//! per-realm rights, everything, nothing, or the configured default) and
//! random `dpv` claims (a literal id, `r/*` in every realm, `**` in realm
//! "x", literals in "y", `**` everywhere, an own id, none); realms "x", "y"
//! and (rarely, past `max_realms`) "z"; ids "r/a1", "r/a2", "r/b1", "s/c1",
//! "r/a1/z". Connections open with host-asserted identities (some
//! expiring) or pending (then `auth` with a token, or time out). Operations:
//! object create/update/delete/get/list, object.subscribe/unsubscribe with
//! random patterns, realm.subscribe/unsubscribe to `connectionStatusChanged`,
//! `*` or a named event with random patterns, realm.publish with and without
//! an id, token refreshes that change `per` and `dpv` (or are refused),
//! host close, clock ticks. The model keeps the objects with their data and
//! the live providers; an object is `connected` iff some live connection's
//! `dpv` covers it. After every step the two must agree on:
//!
//! - every frame each connection received (welcome, acks with their object
//!   snapshots, error codes, `object` change frames with their status,
//!   `connectionStatusChanged` events filtered by pattern and read right,
//!   published realm events), in order, and every close;
//! - the host's `ObjectStatusChanged` events, in order;
//! - `object()` for every (realm, id), `objects()` (with `providers`
//!   counts), `realm_names`, `connection_count` and `poll_timeout`;
//! - no frame goes to a connection after its close, and nothing panics.
//!
//! Orders the model follows (src/engine/objects.rs): when a connection's
//! providers change, the objects that went `disconnected` come first, then
//! those that went `connected`, each group in (realm, id) order; one
//! change sends the `status` object frame, then the realm event, then the
//! host event; a closing connection's subscriptions are dropped first; on
//! a first `auth` the changes come after the welcome and before the ack.
//!
//! Cases default to 256; override with `PROPTEST_CASES`.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::T0;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rollcall::time::iso8601;
use rollcall::{
    Algorithm, Config, ConnectionId, ConnectionStatus, Credentials, Engine, HostEvent, Identity, JwtKey, Limits,
    ObjectInfo, Output, RateLimit, CONNECTION_STATUS_CHANGED,
};
use serde_json::{json, Value};

// ---- the universe ------------------------------------------------------

const CONNS: u64 = 5;
const CLIENTS: [&str; 3] = ["a", "b", "c"];
/// "z" is one realm too many (`max_realms` is 2) whenever "x" and "y" exist;
/// "*" is no realm name at all (refused by the parser).
const REALMS: [&str; 4] = ["x", "y", "z", "*"];
const IDS: [&str; 5] = ["r/a1", "r/a2", "r/b1", "s/c1", "r/a1/z"];
/// Id patterns for list and subscriptions.
const PATTERNS: [&str; 9] = ["**", "r/*", "r/a*", "r/a1", "s/**", "?/b1", "*", "r/**", "r/a?/*"];
/// Event names for realm.subscribe.
const SUB_EVENTS: [&str; 3] = [CONNECTION_STATUS_CHANGED, "*", "e1"];
/// Event names for realm.publish (the engine's own event is refused, `*`
/// by the parser).
const PUB_EVENTS: [&str; 4] = ["e1", "e2", CONNECTION_STATUS_CHANGED, "*"];
const DATA: [&str; 8] = [
    "null",
    "1",
    "\"hi\"",
    "{\"v\":0}",
    "{\"v\":1}",
    "{ \"name\" : \"Ann\", \"n\": [1, 2] }",
    "[]",
    "\"caf\\u00e9\\n\"",
];
/// The index of a data text over `max_object_data_bytes`.
const BIG: usize = DATA.len();
const MAX_OBJECT_DATA: usize = 64;
const AUTH_TIMEOUT_MS: u64 = 10_000;
const LEEWAY_MS: u64 = 30_000;
const SECRET: &str = "model-objects-secret";
/// Generated connection ids from `LIVE` on name a live connection by rank.
const LIVE: u64 = 100;

fn data_text(i: usize) -> String {
    match DATA.get(i) {
        Some(d) => d.to_string(),
        None => format!("\"{}\"", "x".repeat(MAX_OBJECT_DATA)),
    }
}

/// `per` of connections whose claims carry none.
fn default_per() -> Value {
    json!({"x": {"r/**": "R"}})
}

fn config() -> Config {
    let mut config = Config::default();
    config.auth.auth_timeout_ms = AUTH_TIMEOUT_MS;
    config.auth.leeway_ms = LEEWAY_MS;
    config.auth.keys = vec![JwtKey::hmac(Algorithm::HS256, SECRET)];
    config.default_permissions = serde_json::from_value(default_per()).unwrap();
    // Small limits, so that every refusal is reachable in a few steps.
    config.limits.max_subscriptions_per_connection = 3;
    config.limits.max_realms = 2;
    config.limits.max_objects_per_realm = 4;
    config.limits.max_object_data_bytes = MAX_OBJECT_DATA;
    config.limits.rate = RateLimit { burst: 30, per_second: 5 };
    config.limits.violations = RateLimit { burst: 6, per_second: 1 };
    // Compiled patterns and claims are shared through bounded caches: a
    // small one starts over often, so equal claims stop sharing one Arc.
    config.limits.pattern_cache_size = 4;
    // A lost provider keeps its objects connected through its grace, and a
    // resume hands its role over (liveness has its own tests).
    config.idle_timeout_ms = 0;
    config.leave_grace_ms = GRACE_MS;
    config.resume_secret = Some("model-resume-key".into());
    config
}

const GRACE_MS: u64 = 3_000;

// ---- claims ------------------------------------------------------------

/// A `per` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PerK {
    /// No claim: the configuration's default.
    Default,
    Nothing,
    ReadAll,
    /// Read `r/a*` in every realm, nothing else.
    ReadRA,
    /// CRUD on one own id, in every realm.
    Own(usize),
    /// Read everything, create/update/delete one own id.
    ReadAllOwn(usize),
    /// Everything in "x"; in "y" read `r/*`, create/update `s/**`.
    Mixed,
    Writer,
}

impl PerK {
    fn claim(self) -> Option<Value> {
        Some(match self {
            PerK::Default => return None,
            PerK::Nothing => json!({}),
            PerK::ReadAll => json!({"*": {"**": "R"}}),
            PerK::ReadRA => json!({"*": {"r/a*": "R"}}),
            PerK::Own(i) => json!({"*": {IDS[i]: "CRUD"}}),
            PerK::ReadAllOwn(i) => json!({"*": {"**": "R", IDS[i]: "CUD"}}),
            PerK::Mixed => json!({"x": {"**": "CRUD"}, "y": {"r/*": "R", "s/**": "CU"}}),
            PerK::Writer => json!({"*": {"**": "CRUD"}}),
        })
    }
}

/// A `dpv` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DpvK {
    None,
    /// `{}`: no patterns, the same as none.
    Empty,
    Literal,
    RStar,
    AllX,
    Y,
    All,
    /// One own id, named twice (in "x" and under `*`): one provider still.
    Own(usize),
}

impl DpvK {
    fn claim(self) -> Option<Value> {
        Some(match self {
            DpvK::None => return None,
            DpvK::Empty => json!({}),
            DpvK::Literal => json!({"x": ["r/a1"]}),
            DpvK::RStar => json!({"*": ["r/*"]}),
            DpvK::AllX => json!({"x": ["**"]}),
            DpvK::Y => json!({"y": ["s/c1", "r/a2"]}),
            DpvK::All => json!({"*": ["**"]}),
            DpvK::Own(i) => json!({"*": [IDS[i]], "x": [IDS[i]]}),
        })
    }
}

/// (realm key, id pattern, CRUD letters).
type PerEntry = (String, String, String);

fn per_entries(claim: &Value) -> Vec<PerEntry> {
    let mut out = Vec::new();
    for (realm, ids) in claim.as_object().unwrap() {
        for (pattern, letters) in ids.as_object().unwrap() {
            out.push((realm.clone(), pattern.clone(), letters.as_str().unwrap().to_string()));
        }
    }
    out
}

fn dpv_entries(claim: &Option<Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (realm, ids) in claim.iter().flat_map(|c| c.as_object().unwrap()) {
        for pattern in ids.as_array().unwrap() {
            out.push((realm.clone(), pattern.as_str().unwrap().to_string()));
        }
    }
    out
}

fn covers(key: &str, realm: &str) -> bool {
    key == "*" || key == realm
}

/// The pattern language: `*` within a segment, `**` across, `?` one
/// character (not `/`), everything else literal.
fn glob(pattern: &str, id: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| m(rest, &s[i..])),
            [b'*', rest @ ..] => {
                let seg = s.iter().position(|b| *b == b'/').unwrap_or(s.len());
                (0..=seg).any(|i| m(rest, &s[i..]))
            }
            [b'?', rest @ ..] => s.first().is_some_and(|b| *b != b'/') && m(rest, &s[1..]),
            [c, rest @ ..] => s.first() == Some(c) && m(rest, &s[1..]),
        }
    }
    pattern == "**" || m(pattern.as_bytes(), id.as_bytes())
}

fn allows(per: &[PerEntry], realm: &str, id: &str, right: char) -> bool {
    per.iter().any(|(k, p, letters)| letters.contains(right) && covers(k, realm) && glob(p, id))
}

fn allows_somewhere(per: &[PerEntry], realm: &str, right: char) -> bool {
    per.iter().any(|(k, _, letters)| letters.contains(right) && covers(k, realm))
}

// ---- operations --------------------------------------------------------

/// Whose `sub` a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    /// The connection's own clientId (resolved at run time).
    Same,
    Client(usize),
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokenSpec {
    sub: Sub,
    per: PerK,
    dpv: DpvK,
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

    /// When the engine considers it expired (ms): exp plus the leeway.
    fn expires_at(&self, now: u64) -> u64 {
        (self.exp(now).max(0) as u64) * 1000 + LEEWAY_MS
    }

    fn sign(&self, now: u64) -> String {
        let mut claims = json!({"exp": self.exp(now)});
        if let Some(sub) = self.sub() {
            claims["sub"] = json!(sub);
        }
        if let Some(per) = self.per.claim() {
            claims["per"] = per;
        }
        if let Some(dpv) = self.dpv.claim() {
            claims["dpv"] = dpv;
        }
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key).expect("sign")
    }
}

#[derive(Debug, Clone)]
enum OpenKind {
    /// A host-asserted identity.
    Identity { client: Option<usize>, per: PerK, dpv: DpvK, expires_in: Option<u64> },
    /// No credentials: must `auth` within the auth time-out.
    Pending,
}

/// Indexes into REALMS, IDS, PATTERNS (`None`: field omitted), DATA.
#[derive(Debug, Clone)]
enum Req {
    /// `auth` with a signed token, or (`None`) with a malformed one.
    Auth(Option<TokenSpec>),
    Create(usize, usize, Option<usize>),
    Update(usize, usize, Option<usize>),
    Delete(usize, usize),
    Get(usize, usize),
    List(usize, Option<usize>),
    ObjSub(usize, Option<usize>),
    ObjUnsub(usize, Option<usize>),
    /// realm, SUB_EVENTS index, pattern
    RealmSub(usize, usize, Option<usize>),
    RealmUnsub(usize, usize, Option<usize>),
    /// realm, PUB_EVENTS index, id, data
    Publish(usize, usize, Option<usize>, Option<usize>),
    /// `resume` with the resume token last welcomed on that connection id.
    Resume(u64),
}

impl Req {
    /// A realm `*`, or `*` published as an event name.
    fn refused_by_parser(&self) -> bool {
        match self {
            Req::Auth(_) | Req::Resume(_) => false,
            Req::Publish(r, e, ..) => REALMS[*r] == "*" || PUB_EVENTS[*e] == "*",
            Req::Create(r, ..)
            | Req::Update(r, ..)
            | Req::Delete(r, _)
            | Req::Get(r, _)
            | Req::List(r, _)
            | Req::ObjSub(r, _)
            | Req::ObjUnsub(r, _)
            | Req::RealmSub(r, ..)
            | Req::RealmUnsub(r, ..) => REALMS[*r] == "*",
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Open(u64, OpenKind),
    Close(u64),
    Tick(u64),
    Frame(u64, Req),
    /// The host's `handle_lost`.
    Lost(u64),
}

fn frame_text(reference: u64, req: &Req, now: u64) -> String {
    // The step builds `resume` frames: the token is the harness's.
    let mut m = serde_json::Map::new();
    m.insert("ref".into(), json!(reference));
    let mut data = None;
    let mut set = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    let pat = |p: &Option<usize>| p.map(|p| json!(PATTERNS[p]));
    let op = match req {
        Req::Resume(_) => "resume",
        Req::Auth(spec) => {
            set("token", json!(spec.map_or("not.a.jwt".to_string(), |t| t.sign(now))));
            "auth"
        }
        Req::Create(r, i, d) | Req::Update(r, i, d) => {
            set("realm", json!(REALMS[*r]));
            set("id", json!(IDS[*i]));
            data = d.map(data_text);
            if matches!(req, Req::Create(..)) {
                "object.create"
            } else {
                "object.update"
            }
        }
        Req::Delete(r, i) | Req::Get(r, i) => {
            set("realm", json!(REALMS[*r]));
            set("id", json!(IDS[*i]));
            if matches!(req, Req::Delete(..)) {
                "object.delete"
            } else {
                "object.get"
            }
        }
        Req::List(r, p) | Req::ObjSub(r, p) | Req::ObjUnsub(r, p) => {
            set("realm", json!(REALMS[*r]));
            if let Some(p) = pat(p) {
                set("pattern", p);
            }
            match req {
                Req::List(..) => "object.list",
                Req::ObjSub(..) => "object.subscribe",
                _ => "object.unsubscribe",
            }
        }
        Req::RealmSub(r, e, p) | Req::RealmUnsub(r, e, p) => {
            set("realm", json!(REALMS[*r]));
            set("event", json!(SUB_EVENTS[*e]));
            if let Some(p) = pat(p) {
                set("pattern", p);
            }
            if matches!(req, Req::RealmSub(..)) {
                "realm.subscribe"
            } else {
                "realm.unsubscribe"
            }
        }
        Req::Publish(r, e, i, d) => {
            set("realm", json!(REALMS[*r]));
            set("event", json!(PUB_EVENTS[*e]));
            if let Some(i) = i {
                set("id", json!(IDS[*i]));
            }
            data = d.map(data_text);
            "realm.publish"
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

fn conn_id() -> impl Strategy<Value = u64> {
    prop_oneof![1 => 1..=CONNS, 4 => (0..CONNS).prop_map(|k| LIVE + k)]
}

fn realm() -> impl Strategy<Value = usize> {
    prop_oneof![16 => Just(0usize), 8 => Just(1usize), 2 => Just(2usize), 1 => Just(3usize)]
}

fn id() -> impl Strategy<Value = usize> {
    0..IDS.len()
}

fn pattern() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![3 => Just(None), 6 => (0..PATTERNS.len()).prop_map(Some)]
}

fn data() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![1 => Just(None), 12 => (0..DATA.len()).prop_map(Some), 1 => Just(Some(BIG))]
}

fn per() -> impl Strategy<Value = PerK> {
    prop_oneof![
        1 => Just(PerK::Default),
        1 => Just(PerK::Nothing),
        2 => Just(PerK::ReadAll),
        1 => Just(PerK::ReadRA),
        2 => id().prop_map(PerK::Own),
        2 => id().prop_map(PerK::ReadAllOwn),
        2 => Just(PerK::Mixed),
        6 => Just(PerK::Writer),
    ]
}

fn dpv() -> impl Strategy<Value = DpvK> {
    prop_oneof![
        3 => Just(DpvK::None),
        1 => Just(DpvK::Empty),
        2 => Just(DpvK::Literal),
        2 => Just(DpvK::RStar),
        2 => Just(DpvK::AllX),
        2 => Just(DpvK::Y),
        1 => Just(DpvK::All),
        2 => id().prop_map(DpvK::Own),
    ]
}

fn token_spec() -> impl Strategy<Value = TokenSpec> {
    (
        prop_oneof![8 => Just(Sub::Same), 1 => (0..CLIENTS.len()).prop_map(Sub::Client), 1 => Just(Sub::None)],
        per(),
        dpv(),
        prop::sample::select(vec![-40i64, 5, 600, 600, 600, 600]),
    )
        .prop_map(|(sub, per, dpv, exp_in)| TokenSpec { sub, per, dpv, exp_in })
}

fn open_kind() -> impl Strategy<Value = OpenKind> {
    let expires_in = prop_oneof![5 => Just(None), 1 => prop::sample::select(vec![1500u64, 8000]).prop_map(Some)];
    prop_oneof![
        12 => (prop::option::weighted(0.8, 0..CLIENTS.len()), per(), dpv(), expires_in)
            .prop_map(|(client, per, dpv, expires_in)| OpenKind::Identity { client, per, dpv, expires_in }),
        1 => Just(OpenKind::Pending),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        5 => token_spec().prop_map(|t| Req::Auth(Some(t))),
        1 => Just(Req::Auth(None)),
        12 => (realm(), id(), data()).prop_map(|(r, i, d)| Req::Create(r, i, d)),
        5 => (realm(), id(), data()).prop_map(|(r, i, d)| Req::Update(r, i, d)),
        3 => (realm(), id()).prop_map(|(r, i)| Req::Delete(r, i)),
        3 => (realm(), id()).prop_map(|(r, i)| Req::Get(r, i)),
        3 => (realm(), pattern()).prop_map(|(r, p)| Req::List(r, p)),
        5 => (realm(), pattern()).prop_map(|(r, p)| Req::ObjSub(r, p)),
        2 => (realm(), pattern()).prop_map(|(r, p)| Req::ObjUnsub(r, p)),
        5 => (realm(), 0..SUB_EVENTS.len(), pattern()).prop_map(|(r, e, p)| Req::RealmSub(r, e, p)),
        2 => (realm(), 0..SUB_EVENTS.len(), pattern()).prop_map(|(r, e, p)| Req::RealmUnsub(r, e, p)),
        5 => (realm(), prop_oneof![8 => 0..2usize, 1 => Just(2usize), 1 => Just(3usize)], prop::option::weighted(0.7, id()), data())
            .prop_map(|(r, e, i, d)| Req::Publish(r, e, i, d)),
    ]
}

fn tick() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1..2000u64, 5000..12_000u64]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1..=CONNS, open_kind()).prop_map(|(c, k)| Op::Open(c, k)),
        3 => conn_id().prop_map(Op::Close),
        3 => tick().prop_map(Op::Tick),
        50 => (conn_id(), req()).prop_map(|(c, r)| Op::Frame(c, r)),
        3 => conn_id().prop_map(Op::Lost),
        4 => (conn_id(), conn_id()).prop_map(|(c, t)| Op::Frame(c, Req::Resume(t))),
    ]
}

/// A connection's opening moves: open, then maybe an object subscription
/// and a realm event subscription (mostly `connectionStatusChanged`).
fn setup(conn: u64) -> impl Strategy<Value = Vec<Op>> {
    (
        open_kind(),
        prop::option::weighted(0.5, (realm(), pattern())),
        prop::option::weighted(0.6, (realm(), prop_oneof![3 => Just(0usize), 1 => 1..SUB_EVENTS.len()], pattern())),
    )
        .prop_map(move |(kind, osub, esub)| {
            let mut ops = vec![Op::Open(conn, kind)];
            ops.extend(osub.map(|(r, p)| Op::Frame(conn, Req::ObjSub(r, p))));
            ops.extend(esub.map(|(r, e, p)| Op::Frame(conn, Req::RealmSub(r, e, p))));
            ops
        })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    (1..=CONNS)
        .prop_flat_map(|n| {
            let setups: Vec<_> = (1..=n).map(setup).collect();
            (setups, prop::collection::vec(op(), 10..70))
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

/// A realm subscription: (realm, event or `None` for objects, pattern).
type SubKey = (String, Option<String>, String);

#[derive(Debug)]
struct MConn {
    /// Its id in `from`: its own, or the one it resumed.
    pid: String,
    /// Lost: in grace until then.
    lost_until: Option<u64>,
    client_id: Option<String>,
    ready: bool,
    per: Vec<PerEntry>,
    /// Empty unless ready.
    dpv: Vec<(String, String)>,
    deadline: Option<u64>,
    rate: Bucket,
    violations: Bucket,
    subs: BTreeSet<SubKey>,
}

impl MConn {
    fn provides(&self, realm: &str, id: &str) -> bool {
        self.dpv.iter().any(|(k, p)| covers(k, realm) && glob(p, id))
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
        "TOKEN_INVALID"
            | "SUBJECT_MISMATCH"
            | "FORBIDDEN"
            | "OBJECT_EXISTS"
            | "OBJECT_NOT_FOUND"
            | "REALM_FULL"
            | "TOO_MANY_REALMS"
            | "RESUME_FAILED"
    )
}

fn status_name(connected: bool) -> &'static str {
    if connected {
        "connected"
    } else {
        "disconnected"
    }
}

struct Model {
    now: u64,
    limits: Limits,
    default_per: Vec<PerEntry>,
    conns: BTreeMap<u64, MConn>,
    /// (realm, id) -> data as raw JSON text.
    objects: BTreeMap<(String, String), Option<String>>,
    /// What each connection should receive in the current step.
    out: BTreeMap<u64, Vec<Value>>,
    /// Closes the engine should ask for in the current step.
    closes: Vec<(u64, u16)>,
    /// `ObjectStatusChanged` host events of the current step.
    events: Vec<(String, String, &'static str)>,
}

impl Model {
    fn new(limits: Limits) -> Model {
        Model {
            now: T0,
            limits,
            default_per: per_entries(&default_per()),
            conns: BTreeMap::new(),
            objects: BTreeMap::new(),
            out: BTreeMap::new(),
            closes: Vec::new(),
            events: Vec::new(),
        }
    }

    fn per_of(&self, claim: Option<Value>) -> Vec<PerEntry> {
        claim.map_or_else(|| self.default_per.clone(), |c| per_entries(&c))
    }

    fn push(&mut self, conn: u64, frame: Value) {
        // Nothing goes to a lost connection: it has no socket.
        if self.lost(conn) {
            return;
        }
        self.out.entry(conn).or_default().push(frame);
    }

    fn ack(&mut self, conn: u64, r: u64, op: &str, body: Value) {
        let mut frame = json!({"type": "ack", "ref": r, "op": op});
        if let Value::Object(extra) = body {
            frame.as_object_mut().unwrap().extend(extra);
        }
        self.push(conn, frame);
    }

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

    /// Its subscriptions go first, then what it provided for.
    fn remove_connection(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.subs.clear();
        self.change_providers(|m| {
            m.conns.remove(&conn);
        });
    }

    // -- objects and realms --

    fn providers(&self, realm: &str, id: &str) -> u32 {
        self.conns.values().filter(|c| c.provides(realm, id)).count() as u32
    }

    fn connected(&self, realm: &str, id: &str) -> bool {
        self.providers(realm, id) > 0
    }

    fn object_frame(&self, realm: &str, id: &str) -> Value {
        let data = &self.objects[&(realm.to_string(), id.to_string())];
        json!({"id": id, "data": data_value(data), "connectionStatus": status_name(self.connected(realm, id))})
    }

    fn realm_exists(&self, realm: &str) -> bool {
        self.objects.keys().any(|(r, _)| r == realm) || self.conns.values().any(|c| c.subs.iter().any(|s| s.0 == realm))
    }

    fn realm_names(&self) -> Vec<String> {
        REALMS.iter().filter(|r| self.realm_exists(r)).map(|r| r.to_string()).collect()
    }

    /// Whether using `realm` would pass `max_realms`.
    fn realm_refused(&self, realm: &str) -> bool {
        !self.realm_exists(realm) && self.realm_names().len() >= self.limits.max_realms
    }

    fn objects_in(&self, realm: &str) -> impl Iterator<Item = &str> + '_ {
        let realm = realm.to_string();
        self.objects.keys().filter(move |(r, _)| *r == realm).map(|(_, id)| id.as_str())
    }

    fn readable(&self, conn: u64, realm: &str, pattern: &str) -> Vec<Value> {
        let per = &self.conns[&conn].per;
        let ids: Vec<String> = self
            .objects_in(realm)
            .filter(|id| glob(pattern, id) && allows(per, realm, id, 'R'))
            .map(str::to_string)
            .collect();
        ids.iter().map(|id| self.object_frame(realm, id)).collect()
    }

    /// An object's change, to object subscribers whose pattern matches and
    /// who may read it.
    fn emit_object_change(&mut self, realm: &str, id: &str, event: &str) {
        let frame = json!({"type": "object", "realm": realm, "event": event, "timestamp": iso8601(self.now),
                           "object": self.object_frame(realm, id)});
        let to: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                allows(&c.per, realm, id, 'R')
                    && c.subs.iter().any(|(r, e, p)| r == realm && e.is_none() && glob(p, id))
            })
            .map(|(k, _)| *k)
            .collect();
        for c in to {
            self.push(c, frame.clone());
        }
    }

    /// Subscribers of `event` (by name or `*`) whose pattern matches `id`
    /// (with no id: matches the empty id) and who may read it.
    fn event_readers(&self, realm: &str, event: &str, id: Option<&str>) -> Vec<u64> {
        self.conns
            .iter()
            .filter(|(_, c)| {
                let read = match id {
                    Some(id) => allows(&c.per, realm, id, 'R'),
                    None => allows_somewhere(&c.per, realm, 'R'),
                };
                read && c.subs.iter().any(|(r, e, p)| {
                    r == realm && e.as_deref().is_some_and(|e| e == event || e == "*") && glob(p, id.unwrap_or(""))
                })
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Runs `f`, then publishes every object whose status it changed: the
    /// ones gone `disconnected` first, then the ones gone `connected`.
    fn change_providers(&mut self, f: impl FnOnce(&mut Model)) {
        let before: BTreeMap<(String, String), bool> =
            self.objects.keys().map(|(r, i)| ((r.clone(), i.clone()), self.connected(r, i))).collect();
        f(self);
        let mut lost = Vec::new();
        let mut gained = Vec::new();
        for ((r, i), was) in before {
            match (was, self.connected(&r, &i)) {
                (true, false) => lost.push((r, i)),
                (false, true) => gained.push((r, i)),
                _ => {}
            }
        }
        for (realm, id) in lost.into_iter().chain(gained) {
            self.emit_object_change(&realm, &id, "status");
            let status = status_name(self.connected(&realm, &id));
            let frame = json!({"type": "event", "realm": realm, "event": CONNECTION_STATUS_CHANGED,
                               "timestamp": iso8601(self.now), "id": id, "from": null,
                               "data": {"connectionStatus": status}});
            for c in self.event_readers(&realm, CONNECTION_STATUS_CHANGED, Some(&id)) {
                self.push(c, frame.clone());
            }
            self.events.push((realm, id, status));
        }
    }

    fn set_dpv(&mut self, conn: u64, dpv: Vec<(String, String)>) {
        self.change_providers(|m| m.conns.get_mut(&conn).unwrap().dpv = dpv);
    }

    fn welcome(&mut self, conn: u64, expires_at: Option<u64>) {
        let client_id = self.conns[&conn].client_id.clone();
        self.push(
            conn,
            json!({"type": "welcome", "protocol": rollcall::protocol::VERSION, "id": presence_id(conn),
                   "clientId": client_id, "expiresAt": expires_at, "epoch": 0}),
        );
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
            ready: false,
            per: Vec::new(),
            dpv: Vec::new(),
            deadline: Some(now + AUTH_TIMEOUT_MS),
            rate: Bucket::full(self.limits.rate, now),
            violations: Bucket::full(self.limits.violations, now),
            subs: BTreeSet::new(),
        };
        match kind {
            OpenKind::Pending => {
                self.conns.insert(conn, c);
            }
            OpenKind::Identity { client, per, dpv, expires_in } => {
                c.ready = true;
                c.client_id = client.map(|i| CLIENTS[i].to_string());
                c.per = self.per_of(per.claim());
                c.deadline = expires_in.map(|d| now + d);
                self.conns.insert(conn, c);
                self.welcome(conn, expires_in.map(|d| now + d));
                self.set_dpv(conn, dpv_entries(&dpv.claim()));
            }
        }
        true
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

    /// `resume` by `conn` with the token of `target`'s last welcome: its
    /// provider role goes (the resuming one's own stays), its
    /// subscriptions and id come along.
    fn resume(&mut self, conn: u64, r: u64, target: u64) {
        let c = &self.conns[&conn];
        let valid = self.conns.get(&target).filter(|t| {
            t.ready && target != conn && c.subs.is_empty() && c.client_id.is_some() && t.client_id == c.client_id
        });
        if valid.is_none() {
            return self.reject(conn, json!(r), "RESUME_FAILED");
        }
        if !self.lost(target) {
            self.closes.push((target, 4011));
        }
        self.set_dpv(target, Vec::new());
        let t = self.conns.remove(&target).unwrap();
        let c = self.conns.get_mut(&conn).unwrap();
        c.pid = t.pid.clone();
        c.subs = t.subs;
        self.ack(conn, r, "resume", json!({"id": t.pid, "epoch": 0}));
    }

    fn auth(&mut self, conn: u64, r: u64, spec: &Option<TokenSpec>) {
        let now = self.now;
        let ready = self.conns[&conn].ready;
        let Some(t) = spec.filter(|t| now < t.expires_at(now)) else {
            return if ready { self.reject(conn, json!(r), "TOKEN_INVALID") } else { self.close(conn, 4001) };
        };
        let expires_at = t.expires_at(now);
        if ready && self.conns[&conn].client_id != t.sub() {
            return self.reject(conn, json!(r), "SUBJECT_MISMATCH");
        }
        let per = self.per_of(t.per.claim());
        let c = self.conns.get_mut(&conn).unwrap();
        c.ready = true;
        c.client_id = t.sub();
        c.per = per;
        c.deadline = Some(expires_at);
        let mut body = json!({"expiresAt": expires_at});
        if let Some(id) = t.sub() {
            body["clientId"] = json!(id);
        }
        let dpv = dpv_entries(&t.dpv.claim());
        if ready {
            // A refresh: the ack, then the provider changes.
            self.ack(conn, r, "auth", body);
            self.set_dpv(conn, dpv);
        } else {
            // The first auth: welcome, provider changes, then the ack.
            self.welcome(conn, Some(expires_at));
            self.set_dpv(conn, dpv);
            self.ack(conn, r, "auth", body);
        }
    }

    /// A new subscription: the limits, then it is held.
    fn subscribe(&mut self, conn: u64, r: u64, key: SubKey) -> bool {
        let c = &self.conns[&conn];
        if !c.subs.contains(&key) {
            if c.subs.len() >= self.limits.max_subscriptions_per_connection {
                self.reject(conn, json!(r), "TOO_MANY_SUBSCRIPTIONS");
                return false;
            }
            if self.realm_refused(&key.0) {
                self.reject(conn, json!(r), "TOO_MANY_REALMS");
                return false;
            }
            self.conns.get_mut(&conn).unwrap().subs.insert(key);
        }
        true
    }

    fn frame(&mut self, conn: u64, r: u64, req: &Req) {
        let (limit, now) = (self.limits.rate, self.now);
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.lost_until.is_none()) else { return };
        if !c.rate.take(limit, now) {
            return self.reject(conn, Value::Null, "RATE_LIMITED");
        }
        if req.refused_by_parser() {
            return self.reject(conn, json!(r), "BAD_REQUEST");
        }
        if !c.ready && !matches!(req, Req::Auth(_)) {
            return self.reject(conn, json!(r), "NOT_AUTHENTICATED");
        }
        let per = c.per.clone();
        let pattern = |p: &Option<usize>| p.map_or("**", |p| PATTERNS[p]).to_string();
        match req {
            Req::Auth(spec) => self.auth(conn, r, spec),
            Req::Resume(target) => self.resume(conn, r, *target),
            Req::Create(ri, ii, d) | Req::Update(ri, ii, d) => {
                let (realm, id) = (REALMS[*ri], IDS[*ii]);
                let create = matches!(req, Req::Create(..));
                if !allows(&per, realm, id, if create { 'C' } else { 'U' }) {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                let data = stored(d.map(data_text));
                if data.as_ref().map_or(0, String::len) > self.limits.max_object_data_bytes {
                    return self.reject(conn, json!(r), "OBJECT_DATA_TOO_LARGE");
                }
                let key = (realm.to_string(), id.to_string());
                if create {
                    if self.realm_refused(realm) {
                        return self.reject(conn, json!(r), "TOO_MANY_REALMS");
                    }
                    if self.objects.contains_key(&key) {
                        return self.reject(conn, json!(r), "OBJECT_EXISTS");
                    }
                    if self.objects_in(realm).count() >= self.limits.max_objects_per_realm {
                        return self.reject(conn, json!(r), "REALM_FULL");
                    }
                } else if !self.objects.contains_key(&key) {
                    return self.reject(conn, json!(r), "OBJECT_NOT_FOUND");
                }
                self.objects.insert(key, data);
                let (op, event) = if create { ("object.create", "create") } else { ("object.update", "update") };
                self.ack(conn, r, op, json!({}));
                self.emit_object_change(realm, id, event);
            }
            Req::Delete(ri, ii) => {
                let (realm, id) = (REALMS[*ri], IDS[*ii]);
                if !allows(&per, realm, id, 'D') {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                let key = (realm.to_string(), id.to_string());
                if !self.objects.contains_key(&key) {
                    return self.reject(conn, json!(r), "OBJECT_NOT_FOUND");
                }
                self.ack(conn, r, "object.delete", json!({}));
                self.emit_object_change(realm, id, "delete");
                self.objects.remove(&key);
            }
            Req::Get(ri, ii) => {
                let (realm, id) = (REALMS[*ri], IDS[*ii]);
                if !allows(&per, realm, id, 'R') {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                if !self.objects.contains_key(&(realm.to_string(), id.to_string())) {
                    return self.reject(conn, json!(r), "OBJECT_NOT_FOUND");
                }
                let object = self.object_frame(realm, id);
                self.ack(conn, r, "object.get", json!({ "object": object }));
            }
            Req::List(ri, p) | Req::ObjSub(ri, p) => {
                let realm = REALMS[*ri];
                if !allows_somewhere(&per, realm, 'R') {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                let pattern = pattern(p);
                let objects = self.readable(conn, realm, &pattern);
                let op = if matches!(req, Req::List(..)) {
                    "object.list"
                } else {
                    if !self.subscribe(conn, r, (realm.to_string(), None, pattern)) {
                        return;
                    }
                    "object.subscribe"
                };
                self.ack(conn, r, op, json!({ "objects": objects }));
            }
            Req::RealmSub(ri, e, p) => {
                let realm = REALMS[*ri];
                if !allows_somewhere(&per, realm, 'R') {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                if self.subscribe(conn, r, (realm.to_string(), Some(SUB_EVENTS[*e].to_string()), pattern(p))) {
                    self.ack(conn, r, "realm.subscribe", json!({}));
                }
            }
            Req::ObjUnsub(ri, p) | Req::RealmUnsub(ri, _, p) => {
                let (event, op) = match req {
                    Req::RealmUnsub(_, e, _) => (Some(SUB_EVENTS[*e].to_string()), "realm.unsubscribe"),
                    _ => (None, "object.unsubscribe"),
                };
                self.conns.get_mut(&conn).unwrap().subs.remove(&(REALMS[*ri].to_string(), event, pattern(p)));
                self.ack(conn, r, op, json!({}));
            }
            Req::Publish(ri, e, i, d) => {
                let (realm, event, id) = (REALMS[*ri], PUB_EVENTS[*e], i.map(|i| IDS[i]));
                let allowed = match id {
                    Some(id) => allows(&per, realm, id, 'U'),
                    None => allows_somewhere(&per, realm, 'U'),
                };
                if event == CONNECTION_STATUS_CHANGED || !allowed {
                    return self.reject(conn, json!(r), "FORBIDDEN");
                }
                let to: Vec<u64> =
                    self.event_readers(realm, event, id).into_iter().filter(|c| !self.lost(*c)).collect();
                self.ack(conn, r, "realm.publish", json!({"recipients": to.len()}));
                let from = json!({"id": self.conns[&conn].pid, "clientId": self.conns[&conn].client_id});
                let frame = json!({"type": "event", "realm": realm, "event": event,
                                   "timestamp": iso8601(self.now), "id": id, "from": from,
                                   "data": data_value(&stored(d.map(data_text)))});
                for c in to {
                    self.push(c, frame.clone());
                }
            }
        }
    }
}

// ---- the harness -------------------------------------------------------

struct Harness {
    engine: Engine,
    now: u64,
    /// Connections the engine may send to: opened, and not closed since.
    live: BTreeSet<u64>,
    next_ref: u64,
    /// The resume token of each connection id's last welcome.
    tokens: BTreeMap<u64, String>,
}

type Frames = BTreeMap<u64, Vec<Value>>;

fn normalize(mut v: Value) -> Value {
    if v["type"] == "error" {
        v.as_object_mut().unwrap().remove("message");
    }
    // Resume tokens are checked in tests/resume.rs.
    v.as_object_mut().unwrap().remove("resumeToken");
    v
}

impl Harness {
    /// Drains outputs: frames per connection (in order), closes, and the
    /// object status events.
    fn drain(
        &mut self,
        got: &mut Frames,
        closes: &mut Vec<(u64, u16)>,
        events: &mut Vec<(String, String, &'static str)>,
    ) -> Result<(), TestCaseError> {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send(t) => {
                    let v: Value = serde_json::from_str(&t.payload)
                        .map_err(|e| TestCaseError::fail(format!("engine sent non-JSON {:?}: {e}", t.payload)))?;
                    prop_assert!(!t.to.is_empty(), "send to nobody: {}", v);
                    let distinct: BTreeSet<_> = t.to.iter().collect();
                    prop_assert_eq!(distinct.len(), t.to.len(), "a recipient named twice: {:?}", t.to);
                    for c in t.to {
                        prop_assert!(self.live.contains(&c.0), "frame {} sent to closed connection {}", v, c.0);
                        if let Some(token) = v["resumeToken"].as_str() {
                            if v["type"] == "welcome" {
                                self.tokens.insert(c.0, token.to_string());
                            }
                        }
                        got.entry(c.0).or_default().push(normalize(v.clone()));
                    }
                }
                Output::Close(c) => {
                    prop_assert!(self.live.remove(&c.connection.0), "close of a dead connection {}", c.connection.0);
                    closes.push((c.connection.0, c.code.code()));
                }
                Output::Event(HostEvent::ObjectStatusChanged { realm, id, status }) => {
                    let status = match status {
                        ConnectionStatus::Connected => "connected",
                        ConnectionStatus::Disconnected => "disconnected",
                    };
                    events.push((realm, id, status));
                }
                Output::Event(_) => {}
            }
        }
        Ok(())
    }
}

fn identity(kind: &OpenKind, now: u64) -> Credentials {
    match kind {
        OpenKind::Identity { client, per, dpv, expires_in } => Credentials::Identity(Identity {
            client_id: client.map(|i| CLIENTS[i].to_string()),
            rooms: None,
            expires_at: expires_in.map(|d| now + d),
            per: per.claim().map(|c| serde_json::from_value(c).unwrap()),
            dpv: dpv.claim().map(|c| serde_json::from_value(c).unwrap()),
        }),
        OpenKind::Pending => Credentials::None,
    }
}

/// Resolves `LIVE + k` and `Sub::Same` against the model's state.
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
        Op::Frame(c, req) => {
            let c = conn(*c);
            let mut req = req.clone();
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

fn info(m: &Model, realm: &str, id: &str) -> ObjectInfo {
    let data = m.objects[&(realm.to_string(), id.to_string())].clone();
    let providers = m.providers(realm, id);
    let connection_status = if providers > 0 { ConnectionStatus::Connected } else { ConnectionStatus::Disconnected };
    ObjectInfo { id: id.to_string(), data, connection_status, providers }
}

fn step_resolved(h: &mut Harness, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    m.out.clear();
    m.closes.clear();
    m.events.clear();
    let (mut got, mut closes, mut events) = (Frames::new(), Vec::new(), Vec::new());
    match op {
        Op::Open(c, kind) => {
            let accepted = m.open(*c, kind);
            let result = h.engine.handle_open(ConnectionId(*c), identity(kind, h.now), h.now);
            prop_assert_eq!(result.is_ok(), accepted, "handle_open result: {:?}", result);
            if accepted {
                h.live.insert(*c);
            }
        }
        Op::Close(c) => {
            // A lost connection's socket is already gone: its grace runs on.
            if !m.lost(*c) {
                m.remove_connection(*c);
                h.live.remove(c);
            }
            h.engine.handle_close(ConnectionId(*c), h.now);
        }
        Op::Lost(c) => {
            m.lose(*c);
            h.engine.handle_lost(ConnectionId(*c), h.now);
        }
        Op::Tick(dt) => {
            m.tick(*dt);
            h.now += dt;
            h.engine.handle_timeout(h.now);
        }
        Op::Frame(c, req) => {
            h.next_ref += 1;
            let r = h.next_ref;
            m.frame(*c, r, req);
            let text = match req {
                Req::Resume(t) => {
                    let token = h.tokens.get(t).map_or("none", String::as_str);
                    json!({"op": "resume", "ref": r, "token": token}).to_string()
                }
                _ => frame_text(r, req, h.now),
            };
            h.engine.handle_frame(ConnectionId(*c), text.as_bytes(), h.now);
        }
    }
    h.drain(&mut got, &mut closes, &mut events)?;

    for c in 1..=CONNS {
        let empty = Vec::new();
        let (g, want) = (got.get(&c).unwrap_or(&empty), m.out.get(&c).unwrap_or(&empty));
        prop_assert_eq!(g, want, "frames received by connection {}", c);
    }
    prop_assert_eq!(&closes, &m.closes, "closes");
    prop_assert_eq!(&events, &m.events, "ObjectStatusChanged host events");

    prop_assert_eq!(h.engine.connection_count(), m.conns.len(), "connection_count");
    let deadline = m.conns.values().flat_map(|c| [c.deadline, c.lost_until]).flatten().min();
    prop_assert_eq!(h.engine.poll_timeout(), deadline, "poll_timeout");
    prop_assert_eq!(h.engine.realm_names(), m.realm_names(), "realm_names");
    for realm in REALMS {
        for id in IDS {
            let want = m.objects.contains_key(&(realm.to_string(), id.to_string())).then(|| info(m, realm, id));
            prop_assert_eq!(h.engine.object(realm, id), want, "object({}, {})", realm, id);
        }
        for pattern in ["**", "r/*", "r/a?/*"] {
            let want: Vec<ObjectInfo> = m
                .objects_in(realm)
                .filter(|id| glob(pattern, id))
                .map(str::to_string)
                .collect::<Vec<_>>()
                .iter()
                .map(|id| info(m, realm, id))
                .collect();
            prop_assert_eq!(h.engine.objects(realm, pattern).ok(), Some(want), "objects({}, {})", realm, pattern);
        }
    }
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let config = config();
    let mut model = Model::new(config.limits.clone());
    let mut h = Harness {
        engine: Engine::new(config).expect("valid config"),
        now: T0,
        live: BTreeSet::new(),
        next_ref: 0,
        tokens: BTreeMap::new(),
    };
    for (i, op) in ops.iter().enumerate() {
        step(&mut h, &mut model, op).map_err(|e| TestCaseError::fail(format!("step {i} ({op:?}): {e}")))?;
    }
    // Closing everything disconnects every object and drops every
    // subscription; the objects stay.
    for c in 1..=CONNS {
        step(&mut h, &mut model, &Op::Close(c)).map_err(|e| TestCaseError::fail(format!("final close: {e}")))?;
    }
    step(&mut h, &mut model, &Op::Tick(GRACE_MS)).map_err(|e| TestCaseError::fail(format!("final grace: {e}")))?;
    prop_assert_eq!(h.engine.connection_count(), 0);
    prop_assert_eq!(h.engine.poll_timeout(), None);
    for realm in REALMS {
        for o in h.engine.objects(realm, "**").unwrap() {
            prop_assert_eq!((o.connection_status, o.providers), (ConnectionStatus::Disconnected, 0));
        }
    }
    Ok(())
}

proptest! {
    // ProptestConfig::default() honours PROPTEST_CASES (default 256).
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn engine_agrees_with_the_object_model(ops in ops()) {
        run(&ops)?;
    }
}

/// The model's pattern matcher agrees with the engine's on every pattern
/// and id of the universe (so the model tests the engine, not itself).
#[test]
fn the_model_matches_ids_like_the_engine() {
    let all: Vec<&str> = PATTERNS.iter().chain(["r/a1", "s/c1", "r/a2"].iter()).copied().collect();
    for p in all {
        let compiled = rollcall::pattern::Pattern::compile(p, 256).expect("universe patterns are valid");
        for id in IDS.iter().chain([""].iter()) {
            assert_eq!(compiled.matches(id), glob(p, id), "{p:?} on {id:?}");
        }
    }
}

/// A fixed sequence through the order-sensitive paths, so that they run
/// even when the random cases miss them.
#[test]
fn scripted_sequence_agrees_with_the_object_model() {
    use OpenKind::*;
    let ident = |client, per, dpv| Identity { client: Some(client), per, dpv, expires_in: None };
    let ops = vec![
        Op::Open(1, ident(0, PerK::Writer, DpvK::None)),
        Op::Open(2, ident(1, PerK::ReadRA, DpvK::None)),
        Op::Open(3, ident(2, PerK::ReadAll, DpvK::None)),
        Op::Frame(1, Req::Create(0, 0, Some(3))),
        Op::Frame(1, Req::Create(0, 1, Some(5))),
        Op::Frame(1, Req::Create(0, 2, None)),
        Op::Frame(1, Req::Create(0, 4, Some(1))),
        Op::Frame(1, Req::Create(1, 3, Some(2))),
        Op::Frame(1, Req::Create(1, 1, Some(BIG))),
        Op::Frame(1, Req::Create(2, 0, None)),
        Op::Frame(2, Req::ObjSub(0, None)),
        Op::Frame(2, Req::RealmSub(0, 0, None)),
        Op::Frame(3, Req::ObjSub(0, Some(1))),
        Op::Frame(3, Req::RealmSub(0, 1, Some(2))),
        Op::Frame(3, Req::RealmSub(1, 0, None)),
        // A provider for several objects in both realms, then one that
        // overlaps it, then the first goes: no change until the last goes.
        Op::Open(4, ident(0, PerK::Nothing, DpvK::All)),
        Op::Open(5, ident(1, PerK::Nothing, DpvK::RStar)),
        Op::Close(4),
        // A refresh that loses some objects and gains others.
        Op::Frame(5, Req::Auth(Some(TokenSpec { sub: Sub::Same, per: PerK::ReadAll, dpv: DpvK::Y, exp_in: 600 }))),
        Op::Frame(5, Req::Auth(Some(TokenSpec { sub: Sub::None, per: PerK::ReadAll, dpv: DpvK::Y, exp_in: 600 }))),
        Op::Frame(5, Req::Publish(0, 0, Some(0), Some(3))),
        Op::Frame(1, Req::Publish(0, 0, None, Some(3))),
        Op::Frame(1, Req::Publish(0, 2, Some(0), None)),
        Op::Frame(1, Req::Delete(0, 0)),
        // A pending connection whose first auth makes it a provider.
        Op::Open(4, Pending),
        Op::Frame(4, Req::Get(0, 1)),
        Op::Frame(
            4,
            Req::Auth(Some(TokenSpec { sub: Sub::Client(0), per: PerK::Own(1), dpv: DpvK::Own(1), exp_in: 5 })),
        ),
        Op::Frame(4, Req::Update(0, 1, Some(4))),
        Op::Frame(4, Req::Update(0, 2, Some(4))),
        Op::Tick(40_000),
        Op::Frame(1, Req::List(0, Some(6))),
        Op::Frame(1, Req::Create(0, 0, None)),
        // A provider lost: connected through its grace; resumed by a new
        // connection of the same clientId that provides less; then one
        // lost for good.
        Op::Open(4, ident(0, PerK::Nothing, DpvK::All)),
        Op::Frame(4, Req::RealmSub(0, 0, None)),
        Op::Lost(4),
        Op::Frame(4, Req::Get(0, 1)),
        Op::Tick(1000),
        Op::Open(6, ident(0, PerK::ReadAll, DpvK::Y)),
        Op::Frame(6, Req::Resume(4)),
        Op::Frame(6, Req::Publish(0, 0, Some(0), Some(3))),
        Op::Lost(6),
        Op::Tick(GRACE_MS),
    ];
    if let Err(e) = run(&ops) {
        panic!("{e}");
    }
}
