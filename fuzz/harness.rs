//! The engine fuzz harness, plain Rust with no dependency but `rollcall`:
//! shared by the cargo-fuzz target (fuzz/fuzz_targets/engine.rs) and by the
//! corpus replay test (tests/fuzz_corpus.rs).
//!
//! [`run`] reads its bytes as a sequence of host events (opens with
//! host-asserted identities from a small table, HS256 tokens minted here,
//! no credentials or garbage tokens; structured JSON frames built from
//! choices in the input; raw frames; auth refreshes; closes; lost sockets
//! with a leave grace; signs of life; `resume` frames with the tokens the
//! engine handed out; clock ticks; host publishes; a snapshot+restore swap)
//! against an engine with small
//! limits, and checks invariants after every event. A failed invariant
//! panics with a message that starts with `invariant:`.
//!
//! After a swap the engine it replaced keeps running as a shadow, fed the
//! same events: its outputs and snapshots must stay identical to those of
//! the restored engine ("continuing from a snapshot is indistinguishable
//! from never having stopped").

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
use std::collections::{BTreeMap, BTreeSet};

use rollcall::time::MAX_TIME;
use rollcall::{
    Algorithm, AuthError, CloseCode, Config, ConnectionId, ConnectionStatus, Credentials, Engine, HostEvent, Identity,
    JwtKey, Output, RateLimit, RoomAction, RoomFlush,
};

/// The first clock reading: 2024-07-13T10:13:28.496Z.
const T0: u64 = 1_720_865_608_496;
const SECRET: &str = "rollcall-fuzz-secret";
const LEEWAY_MS: u64 = 1_000;
/// `leave_grace_ms` of the harness.
const LEAVE_GRACE_MS: u64 = 3_000;
/// Resume tokens kept from welcomes and resume acks, newest last.
const MAX_TOKENS: usize = 8;
const APP_ID: &str = "rollcall";
/// Events read from one input at most.
const MAX_EVENTS: usize = 256;
/// `limits.max_claim_patterns` and `limits.max_stored_bytes` of the harness.
const MAX_CLAIM_PATTERNS: usize = 8;
/// Room for two globs (a claim glob or a glob subscription is charged
/// 256 KiB) beside 100 KB of everything else, so that globs fit and the
/// budget still binds now and then.
const MAX_STORED_BYTES: usize = 2 * 256 * 1024 + 100_000;
/// Outputs one event may produce at most before it counts as a blow-up.
const MAX_OUTPUTS_PER_EVENT: usize = 10_000;

// ---- the input --------------------------------------------------------------

// ---- identities -----------------------------------------------------------

/// One row of the identity table: what a host asserts or a token claims.
struct Spec {
    sub: Option<&'static str>,
    rooms: Option<&'static [(&'static str, &'static [RoomAction])]>,
    per: Option<&'static [(&'static str, &'static str, &'static str)]>,
    dpv: Option<&'static [(&'static str, &'static str)]>,
    /// Expiry relative to the time of the open (ms); `None`: never.
    expires_in: Option<u64>,
}

use RoomAction::{Presence as P, Publish as B, Subscribe as S};

/// Data-provider patterns are limited to forms [`dpv_matches`] decides
/// exactly as the engine's globs do: `**`, `*`, `<literal>/*`, literals.
const SPECS: &[Spec] = &[
    Spec { sub: Some("alice"), rooms: None, per: None, dpv: None, expires_in: None },
    Spec {
        sub: Some("bob"),
        rooms: None,
        per: Some(&[("*", "**", "CRUD")]),
        dpv: Some(&[("*", "**")]),
        expires_in: None,
    },
    Spec {
        sub: Some("carol"),
        rooms: Some(&[("lobby", &[S, B, P]), ("room-?", &[S, P])]),
        per: Some(&[("r1", "a/*", "CRUD"), ("r2", "**", "R")]),
        dpv: Some(&[("r1", "a/*")]),
        expires_in: Some(5_000),
    },
    Spec {
        sub: Some("alice"),
        rooms: None,
        per: Some(&[("*", "**", "R"), ("r2", "a/b", "CU")]),
        dpv: Some(&[("r2", "x"), ("r2", "a/b"), ("*", "a/b")]),
        expires_in: None,
    },
    Spec {
        sub: None,
        rooms: Some(&[("lobby", &[S, B])]),
        per: Some(&[("*", "**", "CRUD")]),
        dpv: None,
        expires_in: None,
    },
    Spec {
        sub: Some("dave"),
        rooms: Some(&[("room-*", &[S, P]), ("lobby", &[S])]),
        per: Some(&[("r3", "**", "CRD")]),
        dpv: Some(&[("*", "*")]),
        expires_in: Some(60_000),
    },
    Spec {
        sub: Some("eve"),
        rooms: Some(&[]),
        per: Some(&[("r1", "**", "CRU")]),
        dpv: Some(&[("r1", "b/*"), ("r1", "a/b")]),
        expires_in: None,
    },
    Spec {
        sub: Some("bob"),
        rooms: Some(&[("**", &[S, P])]),
        per: Some(&[("*", "**", "CRUD")]),
        dpv: Some(&[("r2", "**")]),
        expires_in: Some(1_000),
    },
    // Refused by the engine: bad rights letters, an empty pattern, an empty clientId.
    Spec { sub: Some("mallory"), rooms: None, per: Some(&[("r1", "a", "RX")]), dpv: None, expires_in: None },
    Spec { sub: Some("mallory"), rooms: None, per: None, dpv: Some(&[("r1", "")]), expires_in: None },
    Spec { sub: Some(""), rooms: None, per: None, dpv: None, expires_in: None },
];

/// A `per` claim with one pattern more than the harness allows.
fn too_many_patterns() -> BTreeMap<String, BTreeMap<String, String>> {
    let ids = (0..=MAX_CLAIM_PATTERNS).map(|i| (format!("p{i}"), "R".to_string())).collect();
    BTreeMap::from([("r1".to_string(), ids)])
}

fn identity(spec: &Spec, expires_at: Option<u64>) -> Identity {
    Identity {
        client_id: spec.sub.map(str::to_string),
        rooms: spec.rooms.map(|rooms| rooms.iter().map(|(p, a)| (p.to_string(), a.to_vec())).collect()),
        expires_at,
        per: spec.per.map(per_claim),
        dpv: spec.dpv.map(dpv_claim),
    }
}

fn provides(identity: &Identity, realm: &str, id: &str) -> bool {
    identity.dpv.as_ref().is_some_and(|dpv| claim_provides(dpv, realm, id))
}

// ---- HS256 tokens -----------------------------------------------------------

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The claims of `spec` as JSON, with `exp` in seconds.
fn claims_json(spec: &Spec, sub_override: Option<&str>, exp: u64) -> String {
    let mut fields = Vec::new();
    if let Some(sub) = sub_override.or(spec.sub) {
        fields.push(format!("\"sub\":{}", js(sub)));
    }
    fields.push(format!("\"exp\":{exp}"));
    if let Some(rooms) = spec.rooms {
        let entries: Vec<String> = rooms
            .iter()
            .map(|(p, actions)| {
                let names: Vec<String> = actions
                    .iter()
                    .map(|a| {
                        js(match a {
                            RoomAction::Subscribe => "subscribe",
                            RoomAction::Publish => "publish",
                            RoomAction::Presence => "presence",
                        })
                    })
                    .collect();
                format!("{}:[{}]", js(p), names.join(","))
            })
            .collect();
        fields.push(format!("\"rooms\":{{{}}}", entries.join(",")));
    }
    let id = identity(spec, None);
    if let Some(per) = &id.per {
        let realms: Vec<String> = per
            .iter()
            .map(|(realm, ids)| {
                let ids: Vec<String> = ids.iter().map(|(p, l)| format!("{}:{}", js(p), js(l))).collect();
                format!("{}:{{{}}}", js(realm), ids.join(","))
            })
            .collect();
        fields.push(format!("\"per\":{{{}}}", realms.join(",")));
    }
    if let Some(dpv) = &id.dpv {
        let realms: Vec<String> = dpv
            .iter()
            .map(|(realm, ps)| {
                let ps: Vec<String> = ps.iter().map(|p| js(p)).collect();
                format!("{}:[{}]", js(realm), ps.join(","))
            })
            .collect();
        fields.push(format!("\"dpv\":{{{}}}", realms.join(",")));
    }
    format!("{{{}}}", fields.join(","))
}

fn hs256_token(claims: &str, secret: &str) -> String {
    let signing_input = format!("{}.{}", b64url(br#"{"alg":"HS256","typ":"JWT"}"#), b64url(claims.as_bytes()));
    let signature = hmac_sha256(secret.as_bytes(), signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&signature))
}

/// What a token is expected to do at `now`.
enum TokenKind {
    /// Valid until `expires_at` (ms, leeway included): proves this identity.
    Valid(Identity),
    /// Signed right but expired, signed wrong, or not a JWT: refused.
    Refused,
}

/// A token chosen by the input: valid for a row of the table (perhaps with
/// another `sub`), expired, signed with the wrong key, or garbage.
fn token(inp: &mut Input, now: u64) -> (String, TokenKind) {
    let spec_index = inp.choose(SPECS.len() - 3);
    let spec = &SPECS[spec_index];
    let secs = now / 1000;
    match inp.choose(6) {
        0..=2 => {
            let life = [2u64, 10, 3600][inp.choose(3)];
            let exp = secs.saturating_add(life);
            let expires_at = exp.saturating_mul(1000).saturating_add(LEEWAY_MS);
            let token = hs256_token(&claims_json(spec, None, exp), SECRET);
            (token, TokenKind::Valid(identity(spec, Some(expires_at))))
        }
        3 => {
            // Another subject: valid, but a refresh with it is a mismatch.
            let exp = secs.saturating_add(60);
            let sub = ["zed", "alice", "bob"][inp.choose(3)];
            let token = hs256_token(&claims_json(spec, Some(sub), exp), SECRET);
            let mut id = identity(spec, Some(exp.saturating_mul(1000).saturating_add(LEEWAY_MS)));
            id.client_id = Some(sub.to_string());
            (token, TokenKind::Valid(id))
        }
        4 => {
            let exp = secs.saturating_sub(60);
            let secret = if inp.byte() & 1 == 0 { SECRET } else { "not-the-secret" };
            (hs256_token(&claims_json(spec, None, exp), secret), TokenKind::Refused)
        }
        5 if inp.byte() & 1 == 0 => {
            let claims = match inp.choose(3) {
                // exp = Number.MAX_SAFE_INTEGER seconds: past MAX_TIME in ms.
                0 => claims_json(spec, None, MAX_TIME),
                // More patterns than max_claim_patterns.
                1 => {
                    let per: Vec<String> = (0..=MAX_CLAIM_PATTERNS).map(|i| format!(r#""p{i}":"R""#)).collect();
                    format!(r#"{{"sub":"big","exp":{},"per":{{"r1":{{{}}}}}}}"#, secs + 60, per.join(","))
                }
                // iss as an array.
                _ => format!(r#"{{"sub":"x","exp":{},"iss":["a"]}}"#, secs + 60),
            };
            (hs256_token(&claims, SECRET), TokenKind::Refused)
        }
        5 if inp.byte() & 1 == 0 => {
            // A `crit` header naming an extension: refused (RFC 7515 4.1.11).
            let header = b64url(br#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#);
            let signing_input = format!("{header}.{}", b64url(claims_json(spec, None, secs + 60).as_bytes()));
            let signature = b64url(&hmac_sha256(SECRET.as_bytes(), signing_input.as_bytes()));
            (format!("{signing_input}.{signature}"), TokenKind::Refused)
        }
        _ => {
            let garbage = match inp.choose(4) {
                0 => String::new(),
                1 => "e30.e30.".to_string(),
                2 => "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_string(),
                _ => inp.string(24),
            };
            (garbage, TokenKind::Refused)
        }
    }
}

// ---- frames -----------------------------------------------------------------

const CONNS: &[u64] = &[1, 2, 3, 4, 5, 6, u64::MAX];
const ROOMS: &[&str] = &["lobby", "room-1", "room-2", "a/b", "x"];
const REALMS: &[&str] = &["r1", "r2", "r3", "*", ""];
const IDS: &[&str] = &["a/b", "a/c", "b/x", "x", "a/b/c", "y"];
const PATTERNS: &[&str] = &["**", "a/*", "*", "a/b", "b/**", "[", "a/**/c", "?", ""];
const EVENTS: &[&str] = &["msg", "*", "connectionStatusChanged", "e2"];
const OPS: &[&str] = &[
    "ping",
    "room.join",
    "room.leave",
    "presence.join",
    "presence.update",
    "presence.leave",
    "presence.get",
    "presence.subscribe",
    "presence.unsubscribe",
    "subscribe",
    "unsubscribe",
    "publish",
    "object.create",
    "object.update",
    "object.delete",
    "object.get",
    "object.list",
    "object.subscribe",
    "object.unsubscribe",
    "realm.subscribe",
    "realm.unsubscribe",
    "realm.publish",
    "auth",
    "nope",
];

/// A name from `pool`, or (one time in pool.len()+1) a short one from the input.
fn name(inp: &mut Input, pool: &[&str]) -> String {
    let i = inp.choose(pool.len() + 1);
    match pool.get(i) {
        Some(s) => js(s),
        None => js(&inp.string(12)),
    }
}

fn data(inp: &mut Input) -> String {
    match inp.choose(9) {
        0 => "null".into(),
        1 => r#"{"k":1}"#.into(),
        2 => js("s"),
        3 => "[1,[2,{}]]".into(),
        4 => js(&"x".repeat(100)),
        5 => js(&inp.string(40)),
        6 => "[[[[[[[[[[1]]]]]]]]]]".into(),
        7 => format!("{}", inp.byte()),
        _ => r#"{"a":"é","b":true}"#.into(),
    }
}

/// A structured frame: an op and the fields it takes, each chosen by the
/// input, plus optional fields, a `ref`, and now and then a field of the
/// wrong type.
fn structured_frame(inp: &mut Input) -> Vec<u8> {
    let op = OPS[inp.choose(OPS.len())];
    let flags = inp.byte();
    let mut fields: Vec<(&str, String)> = vec![("op", js(op))];
    if flags & 1 != 0 {
        let r = match inp.choose(5) {
            0 => "1".to_string(),
            1 => js("r"),
            2 => "-7".into(),
            3 => "1.5".into(),
            _ => js(&"r".repeat(70)),
        };
        fields.push(("ref", r));
    }
    let room_ops = op.starts_with("room.")
        || op.starts_with("presence.")
        || op.ends_with("subscribe") && !op.contains('.')
        || op == "publish";
    let realm_ops = op.starts_with("object.") || op.starts_with("realm.");
    if room_ops {
        fields.push(("room", name(inp, ROOMS)));
    }
    if realm_ops {
        fields.push(("realm", name(inp, REALMS)));
    }
    let needs_id = matches!(op, "object.create" | "object.update" | "object.delete" | "object.get");
    if needs_id || (op == "realm.publish" && flags & 2 != 0) {
        fields.push(("id", name(inp, IDS)));
    }
    let takes_event = matches!(op, "subscribe" | "unsubscribe" | "publish") || op.starts_with("realm.");
    if takes_event {
        fields.push(("event", name(inp, EVENTS)));
    }
    let takes_pattern = matches!(op, "object.list" | "object.subscribe" | "object.unsubscribe")
        || op.starts_with("realm.s")
        || op.starts_with("realm.u");
    if takes_pattern && flags & 4 != 0 {
        fields.push(("pattern", name(inp, PATTERNS)));
    }
    let takes_data = matches!(
        op,
        "presence.join" | "presence.update" | "publish" | "object.create" | "object.update" | "realm.publish"
    );
    if takes_data && flags & 8 != 0 {
        fields.push(("data", data(inp)));
    }
    if op == "presence.get" || op == "presence.subscribe" {
        if flags & 16 != 0 {
            fields.push(("view", js(["connection", "client", "other"][inp.choose(3)])));
        }
        if op == "presence.subscribe" && flags & 32 != 0 {
            let events = match inp.choose(5) {
                0 => r#"["join"]"#,
                1 => r#"["leave","update"]"#,
                2 => r#"[]"#,
                3 => r#"["bogus"]"#,
                _ => r#"["join","update","leave"]"#,
            };
            fields.push(("events", events.to_string()));
        }
    }
    if op == "auth" {
        fields.push(("token", js("not-a-token")));
    }
    if flags & 64 != 0 && fields.len() > 1 {
        // One field of the wrong type.
        let i = 1 + inp.choose(fields.len() - 1);
        fields[i].1 = ["5", "null", "{}", "[\"x\"]"][inp.choose(4)].to_string();
    }
    if flags & 128 != 0 {
        fields.push(("extra", "true".into()));
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", js(k))).collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

// ---- the engine -------------------------------------------------------------

fn config() -> Config {
    let mut config = Config::default();
    config.auth.keys = vec![JwtKey::hmac(Algorithm::HS256, SECRET)];
    config.auth.leeway_ms = LEEWAY_MS;
    config.auth.auth_timeout_ms = 2_000;
    // Idle time-outs, lost sockets, leave grace and resume are fuzzed: a
    // lost connection stays (unreachable) for LEAVE_GRACE_MS unless a new
    // connection resumes it with the token of its welcome.
    config.leave_grace_ms = LEAVE_GRACE_MS;
    config.resume_secret = Some("rollcall-fuzz-resume".into());
    config.default_permissions =
        BTreeMap::from([("r3".to_string(), BTreeMap::from([("**".to_string(), "R".to_string())]))]);
    let l = &mut config.limits;
    l.max_frame_bytes = 512;
    l.max_json_depth = 8;
    l.max_name_bytes = 32;
    l.max_rooms_per_connection = 3;
    l.max_subscriptions_per_connection = 4;
    l.max_members_per_room = 3;
    l.max_presence_data_bytes = 64;
    l.rate = RateLimit { burst: 20, per_second: 10 };
    l.violations = RateLimit { burst: 5, per_second: 1 };
    l.pattern_cache_size = 4;
    l.max_realms = 3;
    l.max_objects_per_realm = 4;
    l.max_object_data_bytes = 64;
    l.max_claim_patterns = MAX_CLAIM_PATTERNS;
    // Binds now and then: opens closed with 4013, frames refused with ENGINE_FULL.
    l.max_stored_bytes = MAX_STORED_BYTES;
    // "room-1" and "room-2" coalesce their presence (open windows go
    // through the snapshot swaps); the other rooms send at once.
    config.presence.rooms = vec![RoomFlush { pattern: "room-*".into(), flush_interval_ms: 50 }];
    config
}

/// One host event, replayable on more than one engine.
#[derive(Debug, Clone)]
enum Action {
    Open(u64, Credentials),
    Frame(u64, Vec<u8>),
    Close(u64),
    /// The socket dropped without a close (`handle_lost`).
    Lost(u64),
    /// A sign of life other than a frame (`handle_alive`).
    Alive(u64),
    Tick,
    Publish {
        room: String,
        event: String,
        data: Option<String>,
    },
}

/// What the engine answered with, besides its outputs.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    None,
    Open(Result<(), String>),
    Publish(Result<usize, String>),
}

fn exec(engine: &mut Engine, action: &Action, now: u64) -> (Answer, Vec<Output>) {
    let answer = match action {
        Action::Open(c, credentials) => {
            Answer::Open(engine.handle_open(ConnectionId(*c), credentials.clone(), now).map_err(|e| format!("{e:?}")))
        }
        Action::Frame(c, bytes) => {
            engine.handle_frame(ConnectionId(*c), bytes, now);
            Answer::None
        }
        Action::Close(c) => {
            engine.handle_close(ConnectionId(*c), now);
            Answer::None
        }
        Action::Lost(c) => {
            engine.handle_lost(ConnectionId(*c), now);
            Answer::None
        }
        Action::Alive(c) => {
            engine.handle_alive(ConnectionId(*c), now);
            Answer::None
        }
        Action::Tick => {
            engine.handle_timeout(now);
            Answer::None
        }
        Action::Publish { room, event, data } => {
            Answer::Publish(engine.publish(room, event, data.as_deref(), now).map_err(|e| format!("{e:?}")))
        }
    };
    let mut outputs = Vec::new();
    while let Some(o) = engine.poll_output() {
        outputs.push(o);
        assert!(
            outputs.len() < MAX_OUTPUTS_PER_EVENT,
            "invariant: one event produced {MAX_OUTPUTS_PER_EVENT} outputs or more ({action:?})"
        );
    }
    (answer, outputs)
}

/// What the harness expects of one event's outcome.
#[derive(Default)]
struct Expect {
    /// A connection this event opened, and the identity it should hold
    /// (`None`: pending); `must_live`: it may not be closed by this event.
    opened: Option<(u64, Option<Identity>, bool)>,
    /// The host closed this connection.
    host_closed: Option<u64>,
    /// This event concerns a lost connection only: nothing may happen.
    quiet: Option<u64>,
    /// A connection sent `auth` with a token proving this identity.
    auth: Option<(u64, Identity)>,
    /// Token times are past what f64 holds exactly: adopt the engine's
    /// decision about the token instead of predicting it.
    loose: bool,
}

/// Whether token times (seconds as f64, times 1000) are still exact.
fn precise(now: u64) -> bool {
    now < 1 << 52
}

struct Harness {
    engine: Engine,
    /// The engine as it was before the last swap, fed the same events.
    shadow: Option<Engine>,
    now: u64,
    /// Live connections and the identity each holds (`None`: pending).
    live: BTreeMap<u64, Option<Identity>>,
    /// Of those, the ones lost and in grace: nothing may be sent to them.
    lost: BTreeSet<u64>,
    /// Member ids that moved with a resume (connection -> the id it took).
    member_ids: BTreeMap<u64, String>,
    /// Resume tokens seen in frames, newest last.
    tokens: Vec<String>,
    events: usize,
    /// Every connection has been closed (the last checks run).
    finished: bool,
    /// Print every event and its outputs (`ROLLCALL_FUZZ_TRACE=1`), to read a crash.
    trace: bool,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            engine: Engine::new(config()).expect("harness config is valid"),
            shadow: None,
            now: T0,
            live: BTreeMap::new(),
            lost: BTreeSet::new(),
            member_ids: BTreeMap::new(),
            tokens: Vec::new(),
            events: 0,
            finished: false,
            trace: std::env::var_os("ROLLCALL_FUZZ_TRACE").is_some(),
        }
    }

    fn step(&mut self, inp: &mut Input) {
        self.events += 1;
        let mut expect = Expect::default();
        let action = match inp.choose(24) {
            0..=2 => {
                let c = CONNS[inp.choose(CONNS.len())];
                let credentials = match inp.choose(8) {
                    0..=3 => {
                        let index = inp.choose(SPECS.len());
                        let spec = &SPECS[index];
                        let mut expires_at = spec.expires_in.map(|d| self.now.saturating_add(d));
                        let flags = inp.byte();
                        if flags & 0x0f == 0 {
                            // Past what a JS number holds: refused, never a deadline.
                            expires_at = Some(MAX_TIME + 1 + u64::from(flags >> 4));
                        }
                        let mut id = identity(spec, expires_at);
                        if flags & 0xf0 == 0x10 {
                            id.per = Some(too_many_patterns());
                        }
                        let refused = index >= SPECS.len() - 3
                            || expires_at.is_some_and(|at| at > MAX_TIME)
                            || id.pattern_count() > MAX_CLAIM_PATTERNS;
                        if !self.live.contains_key(&c) && !refused {
                            // The engine closes at once an identity already expired.
                            let must_live = expires_at.map_or(true, |at| at > self.now);
                            expect.opened = Some((c, Some(id.clone()), must_live));
                        }
                        Credentials::Identity(id)
                    }
                    4 if inp.byte() & 7 == 0 => Credentials::Invalid("a clientId that is not a string".into()),
                    4 => {
                        if !self.live.contains_key(&c) {
                            expect.opened = Some((c, None, true));
                        }
                        Credentials::None
                    }
                    _ => {
                        let (token, kind) = token(inp, self.now);
                        if !self.live.contains_key(&c) {
                            if !precise(self.now) {
                                // Past 2^52 ms the engine's f64 `exp` arithmetic rounds:
                                // take whatever it decided.
                                expect.loose = true;
                                expect.opened = Some((c, None, false));
                            } else if let TokenKind::Valid(id) = kind {
                                expect.opened = Some((c, Some(id), true));
                            }
                        }
                        Credentials::Token(token)
                    }
                };
                Action::Open(c, credentials)
            }
            3..=10 => Action::Frame(CONNS[inp.choose(CONNS.len())], structured_frame(inp)),
            11 => {
                let n = inp.byte() as usize;
                Action::Frame(CONNS[inp.choose(CONNS.len())], inp.bytes(n).to_vec())
            }
            12 => {
                let c = CONNS[inp.choose(CONNS.len())];
                let (token, kind) = token(inp, self.now);
                if let TokenKind::Valid(id) = kind {
                    expect.auth = Some((c, id));
                }
                expect.loose = !precise(self.now);
                let r = inp.byte();
                Action::Frame(c, format!(r#"{{"op":"auth","ref":{r},"token":{}}}"#, js(&token)).into_bytes())
            }
            13 => {
                let c = CONNS[inp.choose(CONNS.len())];
                if self.lost.contains(&c) {
                    // Its socket is gone already: the engine waits for its grace.
                    expect.quiet = Some(c);
                } else {
                    expect.host_closed = Some(c);
                }
                Action::Close(c)
            }
            14 | 15 => {
                self.now = match inp.choose(8) {
                    0..=3 => self.now.saturating_add(u64::from(inp.byte()) * 10),
                    4 | 5 => self.now.saturating_add(u64::from(inp.byte()) * 1000),
                    6 => self.engine.poll_timeout().map_or(self.now, |at| at.max(self.now)),
                    _ => {
                        if inp.byte() == 0xff {
                            u64::MAX - u64::from(inp.byte())
                        } else {
                            self.now.saturating_add(3_600_000)
                        }
                    }
                };
                Action::Tick
            }
            16 => {
                let room = match inp.choose(ROOMS.len() + 2) {
                    i if i < ROOMS.len() => ROOMS[i].to_string(),
                    i if i == ROOMS.len() => "*".to_string(),
                    _ => inp.string(12),
                };
                let event = EVENTS[inp.choose(EVENTS.len())].to_string();
                let data = match inp.choose(4) {
                    0 => None,
                    1 => Some(data(inp)),
                    2 => Some("{not json".to_string()),
                    _ => Some(r#"{"server":true}"#.to_string()),
                };
                Action::Publish { room, event, data }
            }
            20 => {
                let c = CONNS[inp.choose(CONNS.len())];
                if self.lost.contains(&c) {
                    expect.quiet = Some(c);
                }
                Action::Lost(c)
            }
            21 => Action::Alive(CONNS[inp.choose(CONNS.len())]),
            22 => {
                // A resume with a token some connection was given (or a stale one).
                let c = CONNS[inp.choose(CONNS.len())];
                let token = match self.tokens.len() {
                    0 => "0".repeat(64),
                    n => self.tokens[n - 1 - inp.choose(n)].clone(),
                };
                let r = inp.byte();
                let since = match inp.choose(4) {
                    0 => String::new(),
                    1 => format!(r#","epoch":{},"since":{{"lobby":{}}}"#, inp.byte(), inp.byte()),
                    2 => format!(r#","epoch":0,"since":{{"room-1":{},"lobby":0}}"#, inp.byte()),
                    _ => r#","since":{"room-2":1}"#.to_string(),
                };
                Action::Frame(c, format!(r#"{{"op":"resume","ref":{r},"token":{}{since}}}"#, js(&token)).into_bytes())
            }
            17 => {
                if self.trace {
                    eprintln!("#{} swap", self.events);
                }
                self.swap();
                return self.check_state(&"swap");
            }
            _ => Action::Frame(CONNS[inp.choose(CONNS.len())], structured_frame(inp)),
        };
        let before: BTreeSet<u64> = self.live.keys().copied().collect();
        let (answer, outputs) = exec(&mut self.engine, &action, self.now);
        if self.trace {
            let shown = match &action {
                Action::Frame(c, bytes) => format!("Frame({c}, {})", String::from_utf8_lossy(bytes)),
                other => format!("{other:?}"),
            };
            eprintln!("#{} now={} {shown} -> {answer:?}", self.events, self.now);
            for o in &outputs {
                eprintln!("    {o:?}");
            }
        }
        if let Some(shadow) = &mut self.shadow {
            let (shadow_answer, shadow_outputs) = exec(shadow, &action, self.now);
            assert_eq!(
                (&answer, &outputs),
                (&shadow_answer, &shadow_outputs),
                "invariant: the restored engine answered {action:?} unlike the engine it was snapshotted from"
            );
        }
        self.check_outputs(&action, &answer, &outputs, &before, &expect);
        self.check_state(&action);
    }

    /// Snapshot, restore, and carry on with the restored engine; the old
    /// one becomes the shadow.
    fn swap(&mut self) {
        let bytes = self.engine.snapshot();
        let restored = Engine::restore(config(), &bytes)
            .unwrap_or_else(|e| panic!("invariant: restore of a fresh snapshot failed: {e:?}"));
        // The round trip, checked on the engine that carries on.
        assert!(restored.snapshot() == bytes, "invariant: snapshot -> restore -> snapshot changed the bytes at a swap");
        let old = std::mem::replace(&mut self.engine, restored);
        self.shadow = Some(old);
    }

    /// Keeps the resume tokens a frame carries (welcomes, resume acks),
    /// for later `resume` frames.
    fn keep_tokens(&mut self, payload: &str) {
        const KEY: &str = "\"resumeToken\":\"";
        let Some(at) = payload.find(KEY) else { return };
        let rest = &payload[at + KEY.len()..];
        let Some(end) = rest.find('"') else { return };
        let token = rest[..end].to_string();
        if !self.tokens.contains(&token) {
            if self.tokens.len() == MAX_TOKENS {
                self.tokens.remove(0);
            }
            self.tokens.push(token);
        }
    }

    fn check_outputs(
        &mut self,
        action: &Action,
        answer: &Answer,
        outputs: &[Output],
        before: &BTreeSet<u64>,
        expect: &Expect,
    ) {
        let mut may_exist = before.clone();
        if let Some((c, ..)) = &expect.opened {
            may_exist.insert(*c);
        }
        if let Action::Open(c, _) = action {
            if before.contains(c) {
                assert!(
                    matches!(answer, Answer::Open(Err(_))),
                    "invariant: opening live connection {c} again was not refused: {answer:?}"
                );
                assert!(outputs.is_empty(), "invariant: a refused open produced outputs: {outputs:?}");
            }
            if let Answer::Open(Err(_)) = answer {
                assert!(outputs.is_empty(), "invariant: a refused open produced outputs: {outputs:?}");
            } else {
                may_exist.insert(*c);
            }
        }
        if let Action::Frame(c, _) = action {
            if !before.contains(c) {
                assert!(outputs.is_empty(), "invariant: a frame for unknown connection {c} produced {outputs:?}");
            }
            if self.lost.contains(c) {
                assert!(outputs.is_empty(), "invariant: a frame for lost connection {c} produced {outputs:?}");
            }
        }
        if let Action::Alive(c) = action {
            assert!(outputs.is_empty(), "invariant: a sign of life of {c} produced {outputs:?}");
        }
        if let Some(c) = expect.quiet {
            assert!(outputs.is_empty(), "invariant: {action:?} on lost connection {c} produced {outputs:?}");
        }
        let mut gone: BTreeSet<u64> = BTreeSet::new();
        let mut closed_by_engine: BTreeSet<u64> = BTreeSet::new();
        let mut full: BTreeSet<u64> = BTreeSet::new();
        let mut bad_identity: BTreeSet<u64> = BTreeSet::new();
        // Sockets this event closed or lost, and resumes (new, previous).
        let mut socket_closed: BTreeSet<u64> = BTreeSet::new();
        let mut lost_now: BTreeSet<u64> = BTreeSet::new();
        let mut resumed: Vec<(u64, u64)> = Vec::new();
        let mut sent = 0usize;
        let mut publish_sends: Vec<usize> = Vec::new();
        for o in outputs {
            match o {
                Output::Send(t) => {
                    assert!(!t.to.is_empty(), "invariant: a Send with no recipient");
                    let distinct: BTreeSet<u64> = t.to.iter().map(|c| c.0).collect();
                    assert_eq!(distinct.len(), t.to.len(), "invariant: a Send names a recipient twice: {:?}", t.to);
                    for c in &distinct {
                        assert!(may_exist.contains(c), "invariant: Send to connection {c}, which is not live");
                        assert!(!gone.contains(c), "invariant: Send to connection {c} after it closed");
                        assert!(
                            expect.host_closed != Some(*c),
                            "invariant: Send to connection {c} while the host closes it"
                        );
                        assert!(
                            !self.lost.contains(c) && !lost_now.contains(c),
                            "invariant: Send to connection {c}, which is lost (in grace)"
                        );
                        assert!(!socket_closed.contains(c), "invariant: Send to connection {c} after its Close");
                    }
                    self.keep_tokens(&t.payload);
                    sent += 1;
                    publish_sends.push(t.to.len());
                }
                Output::Close(close) => {
                    let c = close.connection.0;
                    assert!(may_exist.contains(&c), "invariant: Close of connection {c}, which is not live");
                    assert!(!gone.contains(&c), "invariant: connection {c} closed twice");
                    assert!(close.reason.len() <= 123, "invariant: close reason over 123 bytes");
                    assert!(!self.lost.contains(&c), "invariant: Close of connection {c}, which is lost already");
                    if close.code == CloseCode::EngineFull {
                        full.insert(c);
                    }
                    closed_by_engine.insert(c);
                    socket_closed.insert(c);
                }
                Output::Event(HostEvent::ConnectionLost { connection, .. }) => {
                    let c = connection.0;
                    assert!(may_exist.contains(&c), "invariant: ConnectionLost of connection {c}, which is not live");
                    assert!(!self.lost.contains(&c), "invariant: connection {c} lost twice");
                    assert!(lost_now.insert(c), "invariant: two ConnectionLost events for connection {c}");
                }
                Output::Event(HostEvent::Resumed { connection, previous }) => {
                    let (c, p) = (connection.0, previous.0);
                    assert!(may_exist.contains(&c) && may_exist.contains(&p), "invariant: Resumed {p} -> {c} not live");
                    assert_ne!(c, p, "invariant: connection {c} resumed itself");
                    resumed.push((c, p));
                }
                Output::Event(HostEvent::Closed { connection }) => {
                    let c = connection.0;
                    assert!(may_exist.contains(&c), "invariant: Closed event for connection {c}, which is not live");
                    assert!(gone.insert(c), "invariant: two Closed events for connection {c}");
                }
                Output::Event(HostEvent::AuthRefused { connection, error: AuthError::BadIdentity(_) }) => {
                    bad_identity.insert(connection.0);
                }
                Output::Event(_) => {}
            }
        }
        // An engine Close is followed by the connection's Closed event, by
        // its grace (a silent one, 4010), or by a resume taking it over (4011).
        let taken_over: BTreeSet<u64> = resumed.iter().map(|(_, p)| *p).collect();
        let accounted: BTreeSet<u64> = gone.iter().chain(&lost_now).chain(&taken_over).copied().collect();
        assert!(
            closed_by_engine.is_subset(&accounted),
            "invariant: Close outputs {closed_by_engine:?} without Closed, ConnectionLost or Resumed events"
        );
        if let Action::Close(c) = action {
            if before.contains(c) && expect.quiet != Some(*c) {
                assert!(gone.contains(c), "invariant: host close of {c} produced no Closed event");
            } else {
                assert!(outputs.is_empty(), "invariant: closing unknown connection {c} produced {outputs:?}");
            }
        }
        if let Answer::Publish(Ok(n)) = answer {
            match n {
                0 => assert_eq!(sent, 0, "invariant: publish to 0 recipients sent something"),
                n => assert_eq!(
                    publish_sends,
                    vec![*n],
                    "invariant: publish returned {n} recipients, sent {publish_sends:?}"
                ),
            }
        }
        // Update the model.
        for c in &gone {
            self.live.remove(c);
            self.lost.remove(c);
            self.member_ids.remove(c);
        }
        for c in lost_now.difference(&gone) {
            self.lost.insert(*c);
        }
        for (c, p) in &resumed {
            self.live.remove(p);
            self.lost.remove(p);
            let id = self.member_ids.remove(p).unwrap_or_else(|| format!("{APP_ID}:{p}"));
            self.member_ids.insert(*c, id);
        }
        if let Some((c, identity, must_live)) = &expect.opened {
            // Only a spent memory budget may turn a good identity away (4013).
            if *must_live && !full.contains(c) {
                assert!(!gone.contains(c), "invariant: connection {c} opened with {identity:?} was closed at once");
            }
            if !gone.contains(c) {
                let identity =
                    if expect.loose { self.engine.identity(ConnectionId(*c)).cloned() } else { identity.clone() };
                self.live.insert(*c, identity);
            }
        }
        if let (Action::Open(c, Credentials::Token(_)), None) = (action, &expect.opened) {
            if !before.contains(c) {
                assert!(gone.contains(c), "invariant: connection {c} opened with a bad token was not closed");
            }
        }
        if let Action::Open(c, Credentials::Identity(_) | Credentials::Invalid(_)) = action {
            if !before.contains(c) && expect.opened.is_none() {
                assert!(
                    gone.contains(c) && bad_identity.contains(c),
                    "invariant: an unusable identity was not refused with BAD_IDENTITY for {c}"
                );
            }
        }
        // An `auth` frame may have replaced the identity.
        if let Some((c, id)) = &expect.auth {
            if let Some(held) = self.live.get_mut(c) {
                if self.engine.identity(ConnectionId(*c)) == Some(id) {
                    *held = Some(id.clone());
                }
            }
        }
        if let (true, Action::Frame(c, _)) = (expect.loose, action) {
            if let Some(held) = self.live.get_mut(c) {
                *held = self.engine.identity(ConnectionId(*c)).cloned();
            }
        }
        let ids: Vec<u64> = self.engine.connection_ids().iter().map(|c| c.0).collect();
        let model: Vec<u64> = self.live.keys().copied().collect();
        assert_eq!(ids, model, "invariant: live connections differ from the model after {action:?}");
    }

    fn check_state(&mut self, after: &dyn std::fmt::Debug) {
        let engine = &mut self.engine;
        assert_eq!(engine.connection_count(), self.live.len(), "invariant: connection_count after {after:?}");
        for (c, id) in &self.live {
            assert_eq!(
                engine.identity(ConnectionId(*c)),
                id.as_ref(),
                "invariant: connection {c} holds another identity than the model's after {after:?}"
            );
        }
        if self.live.values().any(Option::is_none) {
            assert!(engine.poll_timeout().is_some(), "invariant: a pending connection without a deadline");
        }
        // Rooms: members are live connections, counts agree with the lists.
        for room in engine.room_names() {
            let counts = engine.room_counts(&room);
            let members = engine.members(&room);
            let clients = engine.clients(&room);
            assert!(counts.connections > 0, "invariant: room {room:?} listed with no connection");
            assert_eq!(counts.members, members.len(), "invariant: room_counts.members of {room:?}");
            assert_eq!(counts.clients, clients.len(), "invariant: room_counts.clients of {room:?}");
            assert!(counts.members <= counts.connections, "invariant: more members than connections in {room:?}");
            assert!(counts.members <= 3, "invariant: room {room:?} holds {} members over the limit", counts.members);
            let mut by_client: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
            for m in &members {
                let c = m.connection.0;
                let id = self.live.get(&c).unwrap_or_else(|| {
                    panic!("invariant: member {c} of room {room:?} is not a live connection (after {after:?})")
                });
                let id = id.as_ref().unwrap_or_else(|| panic!("invariant: pending connection {c} is a member"));
                assert_eq!(id.client_id.as_deref(), Some(m.client_id.as_str()), "invariant: member {c}'s clientId");
                let expected = self.member_ids.get(&c).cloned().unwrap_or_else(|| format!("{APP_ID}:{c}"));
                assert_eq!(m.id, expected, "invariant: member {c}'s presence id");
                by_client.entry(m.client_id.clone()).or_default().insert(c);
            }
            let listed: BTreeMap<String, BTreeSet<u64>> =
                clients.iter().map(|ci| (ci.client_id.clone(), ci.connections.iter().map(|c| c.0).collect())).collect();
            assert_eq!(listed, by_client, "invariant: clients() of {room:?} disagrees with members()");
            assert!(clients.iter().all(|ci| !ci.connections.is_empty()), "invariant: a client with no connection");
        }
        // Objects: providers recomputed from the identities held.
        for realm in engine.realm_names() {
            let objects = engine.objects(&realm, "**").expect("`**` is a valid pattern");
            assert!(objects.len() <= 4, "invariant: realm {realm:?} holds {} objects over the limit", objects.len());
            for o in &objects {
                let expected =
                    self.live.values().flatten().filter(|identity| provides(identity, &realm, &o.id)).count() as u32;
                assert_eq!(
                    o.providers, expected,
                    "invariant: object {:?} in realm {realm:?} has {} providers, {expected} live connections provide it (after {after:?})",
                    o.id, o.providers
                );
                let status = if expected > 0 { ConnectionStatus::Connected } else { ConnectionStatus::Disconnected };
                assert_eq!(o.connection_status, status, "invariant: connectionStatus of {:?} in {realm:?}", o.id);
                assert_eq!(
                    engine.object(&realm, &o.id).as_ref(),
                    Some(o),
                    "invariant: object() disagrees with objects()"
                );
            }
        }
        assert!(engine.realm_names().len() <= 3, "invariant: more realms than max_realms");
        assert!(
            engine.stored_bytes() <= MAX_STORED_BYTES,
            "invariant: {} bytes stored, over the budget, after {after:?}",
            engine.stored_bytes()
        );
        if let Some(shadow) = &self.shadow {
            assert_eq!(shadow.stored_bytes(), engine.stored_bytes(), "invariant: the budget drifted after {after:?}");
        }
        // Whole-state comparison costs two snapshots: every 16th event and
        // at the end (outputs are compared after every event).
        if let (Some(shadow), true) = (&self.shadow, self.events % 16 == 0 || self.finished) {
            assert!(
                shadow.snapshot() == engine.snapshot(),
                "invariant: the restored engine's state diverged from its shadow after {after:?}"
            );
        }
    }

    /// Snapshot, restore, snapshot again: the same bytes. (At swaps and at
    /// the end only: restoring recompiles every claim's patterns.)
    fn check_snapshot_roundtrip(&self, after: &dyn std::fmt::Debug) {
        let bytes = self.engine.snapshot();
        let restored = Engine::restore(config(), &bytes)
            .unwrap_or_else(|e| panic!("invariant: restore of a fresh snapshot failed after {after:?}: {e:?}"));
        assert!(
            restored.snapshot() == bytes,
            "invariant: snapshot -> restore -> snapshot changed the bytes after {after:?}"
        );
    }

    /// Runs `action` on the engine and its shadow (they must agree), then
    /// checks its outputs against `expect`.
    fn run_checked(&mut self, action: Action, expect: &Expect) {
        let before: BTreeSet<u64> = self.live.keys().copied().collect();
        let (answer, outputs) = exec(&mut self.engine, &action, self.now);
        if let Some(shadow) = &mut self.shadow {
            let shadow_result = exec(shadow, &action, self.now);
            assert!(
                (&answer, &outputs) == (&shadow_result.0, &shadow_result.1),
                "invariant: the restored engine answered {action:?} unlike the engine it was snapshotted from"
            );
        }
        self.check_outputs(&action, &answer, &outputs, &before, expect);
    }

    /// Closes everything: nothing may be left behind.
    fn finish(&mut self) {
        let conns: Vec<u64> = self.live.keys().copied().filter(|c| !self.lost.contains(c)).collect();
        for c in conns {
            self.run_checked(Action::Close(c), &Expect { host_closed: Some(c), ..Expect::default() });
        }
        if !self.lost.is_empty() {
            // The lost ones go when their grace ends.
            self.now = self.now.saturating_add(LEAVE_GRACE_MS);
            self.run_checked(Action::Tick, &Expect::default());
            assert!(self.lost.is_empty(), "invariant: connections {:?} still lost after their grace", self.lost);
        }
        self.finished = true;
        self.check_state(&"closing every connection");
        let engine = &mut self.engine;
        assert_eq!(engine.connection_count(), 0, "invariant: connections left after closing all");
        assert!(engine.room_names().is_empty(), "invariant: rooms left with no connection: {:?}", engine.room_names());
        assert_eq!(engine.poll_timeout(), None, "invariant: a deadline left with no connection");
        // With no connection left, only objects are charged: nothing leaked from the budget.
        let mut objects = 0;
        for realm in engine.realm_names() {
            for o in engine.objects(&realm, "**").expect("`**` is a valid pattern") {
                objects += 256 + o.id.len() + o.data.map_or(0, |d| d.len());
            }
        }
        assert_eq!(engine.stored_bytes(), objects, "invariant: the budget holds bytes for nothing");
        for realm in engine.realm_names() {
            let objects = engine.objects(&realm, "**").expect("`**` is a valid pattern");
            assert!(!objects.is_empty(), "invariant: realm {realm:?} left with no object and no subscriber");
        }
    }
}

/// Runs one fuzz input. Panics (with `invariant: ...`) when the engine
/// breaks one of the invariants in the module docs.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut h = Harness::new();
    while !inp.is_empty() && h.events < MAX_EVENTS {
        h.step(&mut inp);
    }
    h.check_snapshot_roundtrip(&"the last event");
    h.finish();
}

/// Checks the harness itself: its SHA-256 and its tokens (a valid token
/// authenticates, an expired one is refused).
pub fn self_check() {
    let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let mut engine = Engine::new(config()).expect("harness config is valid");
    let (valid, _) = token(&mut Input::new(&[1, 0, 2]), T0);
    engine.handle_open(ConnectionId(1), Credentials::Token(valid), T0).expect("open");
    assert_eq!(engine.identity(ConnectionId(1)).and_then(|i| i.client_id.as_deref()), Some("bob"));
    let (expired, _) = token(&mut Input::new(&[1, 4, 0]), T0);
    engine.handle_open(ConnectionId(2), Credentials::Token(expired), T0).expect("open");
    assert_eq!(engine.connection_count(), 1, "an expired token must be refused");
}
