//! Every limit and every error code: what is refused, that a refusal
//! changes nothing, and how persistent abuse ends (4008) while a slow
//! trickle of mistakes and ordinary refusals never do.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use std::collections::BTreeMap;

use common::Host;
use rollcall::{
    AuthConfig, CloseCode, Config, ConfigError, ConnectionId, Credentials, Engine, Error, ErrorCode, HostEvent,
    Identity, JwtKey, Limits, RateLimit, RoomAction, RoomCounts,
};
use serde_json::{json, Value};

fn host(limits: Limits) -> Host {
    // Clocks here run for minutes of silence: no idle time-outs.
    Host::new(Config { limits, idle_timeout_ms: 0, ..Config::default() })
}

/// Violations that never close (for tests about something else).
const LENIENT: RateLimit = RateLimit { burst: 10_000, per_second: 1 };

/// Everything a host can observe about rooms and connections.
#[derive(Debug, PartialEq)]
struct State {
    connections: usize,
    rooms: Vec<String>,
    counts: Vec<RoomCounts>,
    members: Vec<Vec<rollcall::MemberInfo>>,
    clients: Vec<Vec<rollcall::ClientInfo>>,
}

fn state(h: &Host) -> State {
    let rooms = h.engine.room_names();
    State {
        connections: h.engine.connection_count(),
        counts: rooms.iter().map(|r| h.engine.room_counts(r)).collect(),
        members: rooms.iter().map(|r| h.engine.members(r)).collect(),
        clients: rooms.iter().map(|r| h.engine.clients(r)).collect(),
        rooms,
    }
}

/// 1 (alice) is a member of `r`; 2 (bob) watches `r` for presence and for
/// every event.
fn populated(limits: Limits) -> Host {
    let mut h = common::alice_watched_by_bob(Config { limits, idle_timeout_ms: 0, ..Config::default() });
    h.ok(2, json!({"op": "subscribe", "room": "r", "event": "*"}));
    h.take(2);
    h
}

/// Sends a raw frame from 1 and asserts exactly one error frame with `code`
/// (and `ref`), that nothing else changed, and that 2 received nothing.
fn refused_raw(h: &mut Host, frame: &[u8], code: &str, reference: Value) {
    let before = state(h);
    h.take(1);
    h.take(2);
    h.engine.handle_frame(ConnectionId(1), frame, h.now);
    h.pump();
    let got = h.take(1);
    let shown = String::from_utf8_lossy(frame);
    assert_eq!(got.len(), 1, "one reply to {shown}: {got:?}");
    assert_eq!(got[0]["type"], "error", "{shown}");
    assert_eq!(got[0]["code"], code, "{shown}: {}", got[0]);
    assert_eq!(got[0]["ref"], reference, "{shown}");
    assert!(got[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(state(h), before, "{shown} changed nothing");
    assert!(h.take(2).is_empty(), "{shown} reached nobody else");
    assert!(h.closes.is_empty());
}

// ---- frames ---------------------------------------------------------------

#[test]
fn bad_frame_for_what_is_not_a_json_object() {
    let mut h = populated(Limits { violations: LENIENT, ..Limits::default() });
    for frame in ["not json", "{", "", "   ", "{\"op\":\"ping\",}", "\"room.join\"", "42", "null", "true"] {
        refused_raw(&mut h, frame.as_bytes(), "BAD_FRAME", Value::Null);
    }
}

#[test]
fn bad_frame_for_a_json_array_even_one_shaped_like_a_request() {
    let mut h = populated(Limits { violations: LENIENT, ..Limits::default() });
    for frame in ["[]", "[1,2]", r#"["presence.leave", 1, "r"]"#, r#"["ping"]"#] {
        refused_raw(&mut h, frame.as_bytes(), "BAD_FRAME", Value::Null);
    }
    assert_eq!(h.engine.room_counts("r").members, 1, "alice did not leave by an array");
}

#[test]
fn bad_frame_for_invalid_utf8() {
    let mut h = populated(Limits { violations: LENIENT, ..Limits::default() });
    refused_raw(&mut h, b"{\"op\":\"ping\",\"ref\":\"\xff\"}", "BAD_FRAME", Value::Null);
    refused_raw(&mut h, &[0xc3, 0x28], "BAD_FRAME", Value::Null);
    // UTF-8 in a binary frame is fine.
    h.engine.handle_frame(ConnectionId(1), "{\"op\":\"ping\",\"ref\":\"é\"}".as_bytes(), h.now);
    h.pump();
    assert_eq!(h.take(1), vec![json!({"type": "ack", "ref": "é", "op": "ping"})]);
}

#[test]
fn frame_too_large_is_checked_on_the_byte_length() {
    let limits = Limits { max_frame_bytes: 64, violations: LENIENT, ..Limits::default() };
    let mut h = populated(limits);
    let frame = |n: usize| format!(r#"{{"op":"presence.update","room":"r","data":"{}"}}"#, "x".repeat(n));
    let base = frame(0).len();
    let exact = frame(64 - base);
    assert_eq!(exact.len(), 64);
    h.send_raw(1, &exact);
    assert_eq!(h.take(1)[0]["type"], "ack");
    let over = frame(65 - base);
    assert_eq!(over.len(), 65);
    let before = h.engine.members("r");
    refused_raw(&mut h, over.as_bytes(), "FRAME_TOO_LARGE", Value::Null);
    assert_eq!(h.engine.members("r"), before);
    // Size is counted in bytes, not characters.
    let wide = format!(r#"{{"op":"ping","ref":"{}"}}"#, "é".repeat(25));
    assert!(wide.chars().count() <= 64 && wide.len() > 64);
    refused_raw(&mut h, wide.as_bytes(), "FRAME_TOO_LARGE", Value::Null);
}

#[test]
fn too_deep_counts_arrays_and_objects_but_not_strings() {
    let limits = Limits { max_json_depth: 3, violations: LENIENT, ..Limits::default() };
    let mut h = populated(limits);
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"a": [1]}}));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"a": "[[[[{{{{"}}));
    refused_raw(&mut h, br#"{"op":"presence.update","room":"r","data":{"a":[[1]]}}"#, "TOO_DEEP", Value::Null);
    refused_raw(&mut h, br#"{"op":"presence.update","room":"r","data":[{"a":{}}]}"#, "TOO_DEEP", Value::Null);
    // Deeply nested garbage is refused for depth before anything parses it.
    let bomb = "[".repeat(100_000 / 2);
    let limits = Limits { max_json_depth: 3, max_frame_bytes: 1 << 20, violations: LENIENT, ..Limits::default() };
    let mut h = populated(limits);
    refused_raw(&mut h, bomb.as_bytes(), "TOO_DEEP", Value::Null);
}

#[test]
fn unknown_op_echoes_the_ref() {
    let mut h = populated(Limits { violations: LENIENT, ..Limits::default() });
    refused_raw(&mut h, br#"{"op":"room.destroy","ref":9,"room":"r"}"#, "UNKNOWN_OP", json!(9));
    refused_raw(&mut h, br#"{"op":"","ref":"x"}"#, "UNKNOWN_OP", json!("x"));
    refused_raw(&mut h, br#"{"op":"PING","ref":-3}"#, "UNKNOWN_OP", json!(-3));
}

#[test]
fn bad_request_for_missing_or_mistyped_fields() {
    let mut h = populated(Limits { max_name_bytes: 8, violations: LENIENT, ..Limits::default() });
    let cases: &[&str] = &[
        r#"{"ref":1}"#,
        r#"{"op":7,"ref":1}"#,
        r#"{"op":null,"ref":1}"#,
        r#"{"op":"room.join","ref":1}"#,
        r#"{"op":"room.join","ref":1,"room":5}"#,
        r#"{"op":"room.join","ref":1,"room":null}"#,
        r#"{"op":"room.join","ref":1,"room":["r"]}"#,
        r#"{"op":"room.join","ref":1,"room":""}"#,
        r#"{"op":"room.join","ref":1,"room":"123456789"}"#,
        r#"{"op":"room.join","ref":1,"room":"a\u0007b"}"#,
        r#"{"op":"presence.leave","ref":1}"#,
        r#"{"op":"subscribe","ref":1,"room":"r"}"#,
        r#"{"op":"subscribe","ref":1,"room":"r","event":""}"#,
        r#"{"op":"subscribe","ref":1,"room":"r","event":"123456789"}"#,
        r#"{"op":"publish","ref":1,"room":"r","event":3}"#,
        r#"{"op":"publish","ref":1,"room":"r","event":"*"}"#,
        r#"{"op":"unsubscribe","ref":1,"room":"r"}"#,
        r#"{"op":"auth","ref":1}"#,
        r#"{"op":"auth","ref":1,"token":5}"#,
        r#"{"op":"presence.get","ref":1,"room":"r","view":"everyone"}"#,
        r#"{"op":"presence.get","ref":1,"room":"r","view":1}"#,
        r#"{"op":"presence.subscribe","ref":1,"room":"r","view":"Client"}"#,
        r#"{"op":"presence.subscribe","ref":1,"room":"r","events":[]}"#,
        r#"{"op":"presence.subscribe","ref":1,"room":"r","events":["kick"]}"#,
        r#"{"op":"presence.subscribe","ref":1,"room":"r","events":"join"}"#,
        r#"{"op":"presence.subscribe","ref":1,"room":"r","events":["join",1]}"#,
    ];
    for frame in cases {
        refused_raw(&mut h, frame.as_bytes(), "BAD_REQUEST", json!(1));
    }
    // A name of exactly max_name_bytes is fine.
    h.join(1, "12345678");
}

#[test]
fn bad_request_for_a_bad_ref_which_is_not_echoed() {
    let mut h = populated(Limits { violations: LENIENT, ..Limits::default() });
    let long = format!(r#"{{"op":"ping","ref":"{}"}}"#, "x".repeat(65));
    let cases = [
        r#"{"op":"ping","ref":1.5}"#.to_string(),
        r#"{"op":"ping","ref":1e3}"#.to_string(),
        r#"{"op":"ping","ref":true}"#.to_string(),
        r#"{"op":"ping","ref":{"a":1}}"#.to_string(),
        r#"{"op":"ping","ref":[1]}"#.to_string(),
        r#"{"op":"ping","ref":123456789012345678901}"#.to_string(),
        long,
    ];
    for frame in &cases {
        refused_raw(&mut h, frame.as_bytes(), "BAD_REQUEST", Value::Null);
    }
    // The largest refs that are accepted, echoed as they were sent.
    let ok = format!(r#"{{"op":"ping","ref":"{}"}}"#, "x".repeat(64));
    h.send_raw(1, &ok);
    assert_eq!(h.take(1)[0]["ref"], json!("x".repeat(64)));
    h.send_raw(1, r#"{"op":"ping","ref":-1234567890123456789}"#);
    assert_eq!(h.take(1)[0]["ref"], json!(-1234567890123456789i64));
    h.send_raw(1, r#"{"op":"ping"}"#);
    assert_eq!(h.take(1), vec![json!({"type": "ack", "ref": null, "op": "ping"})]);
}

// ---- per-connection and per-room limits ----------------------------------

#[test]
fn too_many_rooms() {
    let mut h = host(Limits { max_rooms_per_connection: 2, ..Limits::default() });
    h.open_as(1, "alice");
    h.join(1, "a");
    h.join(1, "b");
    h.join(1, "a"); // already joined: not a new room
    let before = state(&h);
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "c"})), "TOO_MANY_ROOMS");
    assert_eq!(state(&h), before);
    assert!(!h.events.iter().any(|e| matches!(e, HostEvent::RoomJoined { room, .. } if room == "c")));
    h.ok(1, json!({"op": "room.leave", "room": "b"}));
    h.join(1, "c");
    assert_eq!(h.engine.room_names(), vec!["a", "c"]);
}

#[test]
fn too_many_subscriptions_across_rooms() {
    let mut h = host(Limits { max_subscriptions_per_connection: 3, ..Limits::default() });
    h.open_as(1, "alice");
    h.join(1, "a");
    h.join(1, "b");
    h.ok(1, json!({"op": "presence.subscribe", "room": "a"}));
    h.ok(1, json!({"op": "subscribe", "room": "a", "event": "x"}));
    h.ok(1, json!({"op": "subscribe", "room": "b", "event": "*"}));
    h.ok(1, json!({"op": "subscribe", "room": "b", "event": "*"})); // held already
    assert_eq!(h.err(1, json!({"op": "subscribe", "room": "b", "event": "y"})), "TOO_MANY_SUBSCRIPTIONS");
    assert_eq!(h.err(1, json!({"op": "presence.subscribe", "room": "b"})), "TOO_MANY_SUBSCRIPTIONS");
    // The refused subscriptions do not exist.
    assert_eq!(h.engine.publish("b", "y", None, h.now), Ok(1), "via `*` only");
    h.open_as(2, "bob");
    h.join(2, "b");
    h.take(1);
    h.enter(2, "b", json!(null));
    assert!(h.take_type(1, "presence").is_empty());
    // Unsubscribing frees a place; leaving a room frees all of its.
    h.ok(1, json!({"op": "unsubscribe", "room": "a", "event": "x"}));
    h.ok(1, json!({"op": "presence.subscribe", "room": "b"}));
    assert_eq!(h.err(1, json!({"op": "subscribe", "room": "b", "event": "z"})), "TOO_MANY_SUBSCRIPTIONS");
    h.ok(1, json!({"op": "room.leave", "room": "b"}));
    h.join(1, "b");
    h.ok(1, json!({"op": "subscribe", "room": "b", "event": "1"}));
    h.ok(1, json!({"op": "subscribe", "room": "b", "event": "2"}));
    assert_eq!(h.err(1, json!({"op": "subscribe", "room": "b", "event": "3"})), "TOO_MANY_SUBSCRIPTIONS");
}

#[test]
fn room_full() {
    let mut h = host(Limits { max_members_per_room: 2, ..Limits::default() });
    for id in 1..=4 {
        h.open_as(id, &format!("u{id}"));
        h.join(id, "r");
    }
    h.ok(4, json!({"op": "presence.subscribe", "room": "r"}));
    h.enter(1, "r", json!(1));
    h.enter(2, "r", json!(2));
    h.take(4);
    let before = state(&h);
    assert_eq!(h.err(3, json!({"op": "presence.join", "room": "r", "data": 3})), "ROOM_FULL");
    assert_eq!(h.err(3, json!({"op": "presence.update", "room": "r", "data": 3})), "ROOM_FULL");
    assert_eq!(state(&h), before);
    assert!(h.take(4).is_empty());
    // Members already in may still update.
    h.ok(2, json!({"op": "presence.update", "room": "r", "data": 22}));
    // Joining the room (not its presence set) is not limited by it.
    h.open_as(5, "u5");
    h.join(5, "r");
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.enter(3, "r", json!(3));
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 5, members: 2, clients: 2, in_grace: 0 });
    // Another room has its own count.
    h.join(3, "s");
    h.enter(3, "s", json!(null));
}

#[test]
fn presence_data_too_large() {
    let mut h = populated(Limits { max_presence_data_bytes: 16, ..Limits::default() });
    // The size is that of the JSON text: "0123456789abcd" with quotes is 16.
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": "0123456789abcd"}));
    assert_eq!(h.engine.members("r")[0].data.as_deref(), Some(r#""0123456789abcd""#));
    h.take(2);
    h.take(1);
    refused_raw(
        &mut h,
        br#"{"op":"presence.update","ref":5,"room":"r","data":"0123456789abcde"}"#,
        "PRESENCE_DATA_TOO_LARGE",
        json!(5),
    );
    refused_raw(
        &mut h,
        br#"{"op":"presence.join","ref":6,"room":"r","data":{"k":"0123456789"}}"#,
        "PRESENCE_DATA_TOO_LARGE",
        json!(6),
    );
    assert_eq!(h.engine.members("r")[0].data.as_deref(), Some(r#""0123456789abcd""#), "old data kept");
    // A new member with too much data does not enter.
    h.join(2, "r");
    h.take(2);
    h.send_raw(2, r#"{"op":"presence.join","ref":7,"room":"r","data":[1,2,3,4,5,6,7,8,9]}"#);
    assert_eq!(h.take(2)[0]["code"], "PRESENCE_DATA_TOO_LARGE");
    assert_eq!(h.engine.room_counts("r").members, 1);
}

/// Sends a ping from `id`; returns "ack" or the error code of the reply.
/// (A rate-limited frame is not parsed, so its error carries no `ref`.)
fn ping(h: &mut Host, id: u64) -> String {
    h.take(id);
    h.send_raw(id, r#"{"op":"ping","ref":"p"}"#);
    let got = h.take(id);
    assert_eq!(got.len(), 1, "{got:?}");
    match got[0]["type"].as_str() {
        Some("ack") => {
            assert_eq!(got[0]["ref"], "p");
            "ack".into()
        }
        _ => got[0]["code"].as_str().unwrap().to_string(),
    }
}

#[test]
fn rate_limited_is_a_token_bucket() {
    let limits = Limits { rate: RateLimit { burst: 5, per_second: 2 }, violations: LENIENT, ..Limits::default() };
    let mut h = host(limits);
    h.open_as(1, "alice");
    for _ in 0..5 {
        assert_eq!(ping(&mut h, 1), "ack");
    }
    // The frame is not even parsed: no ref comes back, and it does nothing.
    h.take(1);
    h.send_raw(1, r#"{"op":"room.join","ref":1,"room":"r"}"#);
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["code"], "RATE_LIMITED");
    assert_eq!(got[0]["ref"], Value::Null);
    assert!(h.engine.room_names().is_empty());
    assert_eq!(ping(&mut h, 1), "RATE_LIMITED");
    // 2 per second: one token every 500 ms.
    h.advance(499);
    assert_eq!(ping(&mut h, 1), "RATE_LIMITED");
    h.advance(1);
    assert_eq!(ping(&mut h, 1), "ack");
    assert_eq!(ping(&mut h, 1), "RATE_LIMITED");
    // A long pause refills up to the burst, not beyond.
    h.advance(60_000);
    for _ in 0..5 {
        assert_eq!(ping(&mut h, 1), "ack");
    }
    assert_eq!(ping(&mut h, 1), "RATE_LIMITED");
    assert!(h.closes.is_empty());
}

#[test]
fn rate_limits_are_per_connection() {
    let limits = Limits { rate: RateLimit { burst: 2, per_second: 1 }, violations: LENIENT, ..Limits::default() };
    let mut h = host(limits);
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    assert_eq!(ping(&mut h, 1), "ack");
    assert_eq!(ping(&mut h, 1), "ack");
    assert_eq!(ping(&mut h, 1), "RATE_LIMITED");
    assert_eq!(ping(&mut h, 2), "ack");
    assert_eq!(ping(&mut h, 2), "ack");
}

fn grants(list: &[(&str, &[RoomAction])]) -> Identity {
    Identity {
        client_id: Some("limited".into()),
        rooms: Some(list.iter().map(|(p, a)| (p.to_string(), a.to_vec())).collect::<BTreeMap<_, _>>()),
        ..Identity::default()
    }
}

#[test]
fn forbidden_by_identity_grants() {
    let mut h = Host::default();
    h.open_as(2, "bob");
    h.join(2, "public/lobby");
    h.ok(2, json!({"op": "presence.subscribe", "room": "public/lobby"}));
    h.ok(2, json!({"op": "subscribe", "room": "public/lobby", "event": "*"}));
    let identity = grants(&[
        ("public/*", &[RoomAction::Subscribe]),
        ("chat/*", &[RoomAction::Subscribe, RoomAction::Presence]),
        ("news", &[RoomAction::Subscribe, RoomAction::Publish]),
    ]);
    h.open(1, Credentials::Identity(identity));
    h.take(2);
    let before = state(&h);
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "private"})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "public/a/b"})), "FORBIDDEN", "* is one segment");
    assert_eq!(state(&h), before);
    h.join(1, "public/lobby");
    let before = state(&h);
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "public/lobby", "data": 1})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "presence.update", "room": "public/lobby", "data": 1})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "publish", "room": "public/lobby", "event": "e"})), "FORBIDDEN");
    assert_eq!(state(&h), before);
    assert!(h.take(2).is_empty());
    // What is granted works.
    h.ok(1, json!({"op": "presence.get", "room": "public/lobby"}));
    h.ok(1, json!({"op": "presence.subscribe", "room": "public/lobby"}));
    h.join(1, "chat/1");
    h.enter(1, "chat/1", json!(null));
    h.join(1, "news");
    h.ok(1, json!({"op": "publish", "room": "news", "event": "e"}));
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "news"})), "FORBIDDEN");
}

#[test]
fn not_authenticated_before_auth() {
    let mut h = Host::default();
    h.open(1, Credentials::None);
    for frame in [
        json!({"op": "room.join", "room": "r"}),
        json!({"op": "publish", "room": "r", "event": "e"}),
        json!({"op": "presence.join", "room": "r"}),
    ] {
        assert_eq!(h.err(1, frame), "NOT_AUTHENTICATED");
    }
    h.ok(1, json!({"op": "ping"}));
    assert!(h.engine.room_names().is_empty());
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn token_invalid_and_subject_mismatch_on_refresh() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let secret = "limits-test-secret-0123456789abcdef";
    let auth = AuthConfig { keys: vec![JwtKey::hmac(rollcall::Algorithm::HS256, secret)], ..AuthConfig::default() };
    let mut h = Host::new(Config { auth, ..Config::default() });
    let token = |sub: &str| {
        let claims = json!({"sub": sub, "exp": common::T0 / 1000 + 3600});
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    };
    h.open(1, Credentials::Token(token("alice")));
    assert_eq!(h.take(1)[0]["type"], "welcome");
    h.join(1, "r");
    h.enter(1, "r", json!(null));
    let before = state(&h);
    assert_eq!(h.err(1, json!({"op": "auth", "token": "garbage"})), "TOKEN_INVALID");
    assert_eq!(h.err(1, json!({"op": "auth", "token": token("mallory")})), "SUBJECT_MISMATCH");
    assert_eq!(state(&h), before, "the connection keeps its old identity and rooms");
    h.ok(1, json!({"op": "auth", "token": token("alice")}));
    assert!(h.closes.is_empty());
}

// ---- persistent abuse -----------------------------------------------------

fn abuse_setup(violations: RateLimit) -> Host {
    let mut h = host(Limits { violations, ..Limits::default() });
    h.open_as(1, "abuser");
    h.open_as(2, "good");
    h.join(1, "r");
    h.join(2, "r");
    h.enter(1, "r", json!({"who": "abuser"}));
    h.enter(2, "r", json!({"who": "good"}));
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(1);
    h.take(2);
    h.events.clear();
    h
}

#[test]
fn persistent_abuse_closes_with_4008_and_the_room_carries_on() {
    let mut h = abuse_setup(RateLimit { burst: 3, per_second: 1 });
    let bad = ["nope", "{}", r#"{"op":"x"}"#];
    for frame in bad {
        h.send_raw(1, frame);
        // Interleaved good traffic from the other connection is served.
        h.ok(2, json!({"op": "ping"}));
    }
    assert!(h.closes.is_empty(), "the burst itself is tolerated");
    assert_eq!(h.engine.connection_count(), 2);
    h.send_raw(1, r#"{"op":"room.join","room":5}"#);
    assert_eq!(h.closes.len(), 1);
    assert_eq!(h.closes[0].connection, ConnectionId(1));
    assert_eq!(h.closes[0].code, CloseCode::PolicyViolation);
    assert_eq!(h.closed_with(1), Some(4008));
    assert!(h.closes[0].reason.contains("BAD_REQUEST"), "{}", h.closes[0].reason);
    // The abuser got an error frame for each of its four frames.
    let codes: Vec<Value> = h.take(1).iter().map(|m| m["code"].clone()).collect();
    assert_eq!(codes, vec![json!("BAD_FRAME"), json!("BAD_REQUEST"), json!("UNKNOWN_OP"), json!("BAD_REQUEST")]);
    // The other connection sees the abuser leave, and is still served.
    let leaves = h.take_type(2, "presence");
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0]["event"], "leave");
    assert_eq!(leaves[0]["clientId"], "abuser");
    let got = h.ok(2, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(got["members"], json!([{"id": "rollcall:2", "clientId": "good", "data": {"who": "good"}}]));
    assert_eq!(h.engine.connection_count(), 1);
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 1, members: 1, clients: 1, in_grace: 0 });
    assert!(h.events.contains(&HostEvent::Closed { connection: ConnectionId(1) }));
    // The engine has forgotten the abuser: its frames and the host's close are no-ops.
    h.send_raw(1, r#"{"op":"ping","ref":1}"#);
    assert!(h.take(1).is_empty());
    h.close(1);
    assert_eq!(h.closes.len(), 1);
    assert_eq!(h.events.iter().filter(|e| matches!(e, HostEvent::Closed { .. })).count(), 1);
}

#[test]
fn flooding_is_a_violation_too() {
    let limits = Limits {
        rate: RateLimit { burst: 5, per_second: 1 },
        violations: RateLimit { burst: 3, per_second: 1 },
        ..Limits::default()
    };
    let mut h = host(limits);
    h.open_as(1, "flooder");
    h.take(1);
    for _ in 0..5 {
        h.send_raw(1, r#"{"op":"ping"}"#);
    }
    for _ in 0..3 {
        h.send_raw(1, r#"{"op":"ping"}"#);
    }
    assert!(h.closes.is_empty());
    h.send_raw(1, r#"{"op":"ping"}"#);
    assert_eq!(h.closed_with(1), Some(4008));
    let codes: Vec<Value> = h.take(1).iter().map(|m| m["code"].clone()).collect();
    assert_eq!(codes[..5], vec![Value::Null; 5][..], "five acks");
    assert_eq!(codes[5..], vec![json!("RATE_LIMITED"); 4][..]);
}

#[test]
fn violations_are_forgiven_over_time() {
    let mut h = abuse_setup(RateLimit { burst: 3, per_second: 1 });
    // A slow trickle: one mistake a second, for a minute.
    for _ in 0..60 {
        h.send_raw(1, "oops");
        h.advance(1000);
    }
    assert!(h.closes.is_empty());
    assert_eq!(h.engine.connection_count(), 2);
    // The budget is back to its burst: three quick ones pass, after two
    // seconds two more, and the next closes.
    for _ in 0..3 {
        h.send_raw(1, "oops");
    }
    h.advance(2000);
    h.send_raw(1, "oops");
    h.send_raw(1, "oops");
    assert!(h.closes.is_empty());
    h.send_raw(1, "oops");
    assert_eq!(h.closed_with(1), Some(4008));
}

#[test]
fn ordinary_refusals_never_close() {
    let violations = RateLimit { burst: 1, per_second: 1 };
    let rate = RateLimit { burst: 10_000, per_second: 1 };
    let limits = Limits { max_members_per_room: 1, violations, rate, ..Limits::default() };
    let mut h = host(limits);
    h.open_as(2, "member");
    h.join(2, "r");
    h.enter(2, "r", json!(null));
    h.open(1, Credentials::Identity(grants(&[("r", &[RoomAction::Subscribe, RoomAction::Presence])])));
    h.join(1, "r");
    for _ in 0..30 {
        assert_eq!(h.err(1, json!({"op": "presence.join", "room": "r"})), "ROOM_FULL");
        assert_eq!(h.err(1, json!({"op": "room.join", "room": "elsewhere"})), "FORBIDDEN");
        assert_eq!(h.err(1, json!({"op": "publish", "room": "r", "event": "e"})), "FORBIDDEN");
        assert_eq!(h.err(1, json!({"op": "presence.get", "room": "other"})), "ROOM_NOT_JOINED");
        assert_eq!(h.err(1, json!({"op": "auth", "token": "x"})), "TOKEN_INVALID");
    }
    assert!(h.closes.is_empty());
    // The violation budget is untouched: one violation passes, the second closes.
    h.send_raw(1, "bad");
    assert!(h.closes.is_empty());
    h.send_raw(1, "bad");
    assert_eq!(h.closed_with(1), Some(4008));
}

#[test]
fn violation_classification_is_stable() {
    let all = [
        ErrorCode::BadFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::TooDeep,
        ErrorCode::UnknownOp,
        ErrorCode::BadRequest,
        ErrorCode::NotAuthenticated,
        ErrorCode::TokenInvalid,
        ErrorCode::SubjectMismatch,
        ErrorCode::Forbidden,
        ErrorCode::RoomNotJoined,
        ErrorCode::TooManyRooms,
        ErrorCode::TooManySubscriptions,
        ErrorCode::RoomFull,
        ErrorCode::PresenceDataTooLarge,
        ErrorCode::NoClientId,
        ErrorCode::RateLimited,
    ];
    let not_violations: Vec<&str> = all.iter().filter(|c| !c.is_violation()).map(|c| c.as_str()).collect();
    assert_eq!(not_violations, vec!["TOKEN_INVALID", "SUBJECT_MISMATCH", "FORBIDDEN", "ROOM_NOT_JOINED", "ROOM_FULL"]);
    for code in all {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        assert_eq!(code.to_string(), code.as_str());
    }
    assert_eq!(CloseCode::PolicyViolation.code(), 4008);
    assert_eq!(CloseCode::PolicyViolation.as_str(), "POLICY_VIOLATION");
}

#[test]
fn zero_limits_are_refused_at_construction() {
    for (limits, name) in [
        (Limits { max_frame_bytes: 0, ..Limits::default() }, "maxFrameBytes"),
        (Limits { max_json_depth: 0, ..Limits::default() }, "maxJsonDepth"),
        (Limits { max_name_bytes: 0, ..Limits::default() }, "maxNameBytes"),
        (Limits { pattern_cache_size: 0, ..Limits::default() }, "patternCacheSize"),
    ] {
        let err = Engine::new(Config { limits, ..Config::default() }).unwrap_err();
        assert_eq!(err, Error::Config(ConfigError::Limit(name)));
    }
}

#[test]
fn default_limits_are_the_documented_ones() {
    let l = Limits::default();
    assert_eq!(
        (l.max_frame_bytes, l.max_json_depth, l.max_name_bytes, l.max_rooms_per_connection),
        (65_536, 32, 256, 100)
    );
    assert_eq!(
        (l.max_subscriptions_per_connection, l.max_members_per_room, l.max_presence_data_bytes, l.pattern_cache_size),
        (500, 10_000, 4096, 4096)
    );
    assert_eq!(l.rate, RateLimit { burst: 100, per_second: 50 });
    assert_eq!(l.violations, RateLimit { burst: 20, per_second: 1 });
}
