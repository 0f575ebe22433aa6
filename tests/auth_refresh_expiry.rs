//! Refreshing a token with `auth` on an authenticated connection, and what
//! happens when a token runs out: a close with 4002 at `exp` + leeway, and
//! `leave` for every presence set the connection was in.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::tokens::*;
use common::{Host, T0};
use rollcall::{Algorithm, ConnectionId, Credentials, HostEvent, Identity};
use serde_json::{json, Value};

/// `exp` (in seconds) a minute after T0, and ten minutes after.
const SHORT: u64 = T0_SECS + 60;
const LONG: u64 = T0_SECS + 600;

fn tok(sub: &str, exp: u64) -> Credentials {
    Credentials::Token(hs256(&json!({"sub": sub, "exp": exp})))
}

/// An engine with connection 1 ("alice", token expiring at SHORT) welcomed.
fn alice_with_short_token() -> Host {
    let mut h = Host::new(hs256_config());
    h.open(1, tok("alice", SHORT));
    assert_eq!(h.take_type(1, "welcome")[0]["expiresAt"], expiry_ms(SHORT));
    h
}

fn auth(h: &mut Host, id: u64, token: String) -> Value {
    h.request(id, json!({"op": "auth", "token": token}))
}

/// Opens connection `id` as a host-asserted watcher of `room`'s presence.
fn watcher(h: &mut Host, id: u64, room: &str) {
    h.open_as(id, "watcher");
    h.join(id, room);
    h.ok(id, json!({"op": "presence.subscribe", "room": room}));
    h.take(id);
}

// ---- refresh ---------------------------------------------------------------

#[test]
fn refresh_with_the_same_sub_acks_the_new_expiry() {
    let mut h = alice_with_short_token();
    let reply = auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": LONG})));
    assert_eq!(
        reply,
        json!({"type": "ack", "ref": 1, "op": "auth", "clientId": "alice", "expiresAt": expiry_ms(LONG)})
    );
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(LONG)));
    // A refresh is not a new authentication: no second welcome or event.
    assert_eq!(h.take_type(1, "welcome"), Vec::<Value>::new());
    assert_eq!(h.events.iter().filter(|e| matches!(e, HostEvent::Authenticated { .. })).count(), 1);
}

#[test]
fn a_refreshed_connection_outlives_the_old_expiry_and_closes_at_the_new_one() {
    let mut h = alice_with_short_token();
    auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": LONG})));
    h.advance(expiry_ms(SHORT) - h.now + 1);
    assert_eq!(h.closed_with(1), None, "the old expiry no longer applies");
    assert_eq!(h.ok(1, json!({"op": "ping"}))["op"], "ping");
    h.advance(expiry_ms(LONG) - h.now - 1);
    assert_eq!(h.closed_with(1), None);
    h.advance(1);
    assert_eq!(h.closed_with(1), Some(4002));
    assert_eq!(h.now, expiry_ms(LONG));
}

#[test]
fn refresh_may_shorten_the_expiry() {
    let mut h = Host::new(hs256_config());
    h.open(1, tok("alice", LONG));
    let reply = auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": SHORT})));
    assert_eq!(reply["expiresAt"], expiry_ms(SHORT));
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(SHORT)));
    h.advance(expiry_ms(SHORT) - h.now);
    assert_eq!(h.closed_with(1), Some(4002));
}

#[test]
fn refresh_with_another_sub_is_refused_and_the_old_token_stays_in_force() {
    let mut h = alice_with_short_token();
    let reply = auth(&mut h, 1, hs256(&json!({"sub": "mallory", "exp": LONG})));
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "SUBJECT_MISMATCH");
    assert_eq!(reply["ref"], 1);
    assert_eq!(h.closed_with(1), None, "a mismatch does not close the connection");
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(SHORT)));
    // Still alice: the presence member carries the original clientId.
    h.join(1, "r");
    h.enter(1, "r", json!({}));
    assert_eq!(h.engine.members("r")[0].client_id, "alice");
    h.advance(expiry_ms(SHORT) - h.now);
    assert_eq!(h.closed_with(1), Some(4002), "closed at the old token's expiry");
}

#[test]
fn refresh_without_sub_on_a_connection_with_one_is_a_subject_mismatch() {
    let mut h = alice_with_short_token();
    let reply = auth(&mut h, 1, hs256(&json!({"exp": LONG})));
    assert_eq!(reply["code"], "SUBJECT_MISMATCH");
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(SHORT)));
}

#[test]
fn refresh_with_an_invalid_token_is_refused_and_the_connection_stays_open() {
    let mut h = alice_with_short_token();
    let bad = [
        hs(Algorithm::HS256, "wrong-secret", None, &json!({"sub": "alice", "exp": LONG})),
        hs256(&json!({"sub": "alice", "exp": T0_SECS - 60})),
        hs256(&json!({"sub": "alice"})),
        alg_none(&json!({"sub": "alice", "exp": LONG})),
        "garbage".to_string(),
    ];
    for token in bad {
        let reply = auth(&mut h, 1, token);
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], "TOKEN_INVALID");
    }
    assert_eq!(h.closes, vec![]);
    assert!(!h.events.iter().any(|e| matches!(e, HostEvent::AuthRefused { .. })));
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(SHORT)), "the old token stays in force");
    assert_eq!(h.ok(1, json!({"op": "ping"}))["op"], "ping");
    // A later valid refresh still works.
    let reply = auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": LONG})));
    assert_eq!(reply["expiresAt"], expiry_ms(LONG));
}

#[test]
fn refresh_whose_rooms_claim_drops_presence_leaves_the_presence_set() {
    let mut h = Host::new(hs256_config());
    let rooms = json!({"r": ["subscribe", "presence"]});
    h.open(1, Credentials::Token(hs256(&json!({"sub": "alice", "exp": SHORT, "rooms": rooms}))));
    watcher(&mut h, 2, "r");
    h.join(1, "r");
    h.enter(1, "r", json!({"status": "here"}));
    assert_eq!(h.take_type(2, "presence").len(), 1);

    let reply = auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": LONG, "rooms": {"r": ["subscribe"]}})));
    assert_eq!(reply["type"], "ack");
    assert_eq!(
        h.take_type(2, "presence"),
        vec![json!({
            "type": "presence", "room": "r", "event": "leave",
            "timestamp": "2024-07-13T10:13:28.496Z",
            "id": "rollcall:1", "clientId": "alice", "data": {"status": "here"},
            "epoch": 0, "seq": 2
        })]
    );
    assert!(h.events.contains(&HostEvent::PresenceLeft {
        room: "r".into(),
        connection: ConnectionId(1),
        client_id: "alice".into()
    }));
    let counts = h.engine.room_counts("r");
    assert_eq!((counts.connections, counts.members), (2, 0), "alice stays joined, out of the presence set");
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "r"})), "FORBIDDEN");
}

#[test]
fn refresh_whose_rooms_claim_drops_subscribe_leaves_the_room() {
    let mut h = Host::new(hs256_config());
    let rooms = json!({"r": ["subscribe", "presence"], "s": ["subscribe"]});
    h.open(1, Credentials::Token(hs256(&json!({"sub": "alice", "exp": SHORT, "rooms": rooms}))));
    watcher(&mut h, 2, "r");
    h.join(1, "r");
    h.enter(1, "r", json!(null));
    h.join(1, "s");
    h.take(2);

    auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": LONG, "rooms": {"s": ["subscribe"]}})));
    let leaves = h.take_type(2, "presence");
    assert_eq!(leaves.len(), 1);
    assert_eq!((leaves[0]["event"].as_str(), leaves[0]["id"].as_str()), (Some("leave"), Some("rollcall:1")));
    assert_eq!(h.engine.room_counts("r").connections, 1);
    assert_eq!(h.engine.room_counts("r").members, 0);
    assert_eq!(h.engine.room_counts("s").connections, 1, "rooms still granted are kept");
    assert!(h.events.contains(&HostEvent::RoomLeft { connection: ConnectionId(1), room: "r".into() }));
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "r"})), "FORBIDDEN");
}

#[test]
fn refresh_applies_to_a_connection_that_authenticated_with_an_auth_frame() {
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::None);
    let first = auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": SHORT})));
    assert_eq!(first["expiresAt"], expiry_ms(SHORT));
    let second = auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": LONG})));
    assert_eq!(
        second,
        json!({"type": "ack", "ref": 2, "op": "auth", "clientId": "alice", "expiresAt": expiry_ms(LONG)})
    );
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(LONG)));
}

#[test]
fn a_host_asserted_connection_can_take_a_token_for_its_client_id() {
    let mut h = Host::new(hs256_config());
    h.open_as(1, "alice");
    assert_eq!(h.engine.poll_timeout(), None);
    let reply = auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": SHORT})));
    assert_eq!(reply["expiresAt"], expiry_ms(SHORT));
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(SHORT)));
    assert_eq!(auth(&mut h, 1, hs256(&json!({"sub": "bob", "exp": SHORT})))["code"], "SUBJECT_MISMATCH");
}

// ---- expiry ------------------------------------------------------------------

#[test]
fn an_expired_token_closes_with_4002_at_exp_plus_leeway() {
    let mut h = alice_with_short_token();
    let deadline = SHORT * 1000 + 30_000;
    assert_eq!(h.engine.poll_timeout(), Some(deadline));
    h.engine.handle_timeout(deadline - 1);
    h.pump();
    assert_eq!(h.closes, vec![]);
    h.advance(deadline - 1 - h.now);
    assert_eq!(h.closed_with(1), None);
    h.advance(1);
    assert_eq!(h.closed_with(1), Some(4002));
    assert_eq!(h.now, deadline);
    assert!(h.events.contains(&HostEvent::Closed { connection: ConnectionId(1) }));
    assert!(!h.events.iter().any(|e| matches!(e, HostEvent::AuthRefused { .. })));
    assert_eq!(h.engine.connection_count(), 0);
    assert_eq!(h.engine.poll_timeout(), None);
    // The engine has forgotten it: frames and a late close are ignored.
    h.send_raw(1, r#"{"op":"ping","ref":9}"#);
    h.close(1);
    assert_eq!(h.take_type(1, "ack"), Vec::<Value>::new());
    assert_eq!(h.closes.len(), 1);
}

#[test]
fn expiry_leaves_every_presence_set_and_tells_subscribers() {
    let mut h = alice_with_short_token();
    watcher(&mut h, 2, "a");
    h.join(2, "b");
    h.ok(2, json!({"op": "presence.subscribe", "room": "b"}));
    h.join(1, "a");
    h.join(1, "b");
    h.enter(1, "a", json!({"n": 1}));
    h.enter(1, "b", json!({"n": 2}));
    h.take(2);

    h.advance(expiry_ms(SHORT) - h.now);
    assert_eq!(h.closed_with(1), Some(4002));
    // 2024-07-13T10:13:28 + 60 s + 30 s leeway.
    let at = "2024-07-13T10:14:58.000Z";
    assert_eq!(
        h.take_type(2, "presence"),
        vec![
            json!({"type": "presence", "room": "a", "event": "leave", "timestamp": at,
                   "id": "rollcall:1", "clientId": "alice", "data": {"n": 1}, "epoch": 0, "seq": 2}),
            json!({"type": "presence", "room": "b", "event": "leave", "timestamp": at,
                   "id": "rollcall:1", "clientId": "alice", "data": {"n": 2}, "epoch": 0, "seq": 2}),
        ]
    );
    for room in ["a", "b"] {
        assert!(h.events.contains(&HostEvent::PresenceLeft {
            room: room.into(),
            connection: ConnectionId(1),
            client_id: "alice".into()
        }));
        let counts = h.engine.room_counts(room);
        assert_eq!((counts.connections, counts.members), (1, 0));
    }
    assert_eq!(h.closed_with(2), None, "the host-asserted watcher has no expiry");
}

#[test]
fn connections_expire_in_order_of_their_deadlines() {
    let mut h = Host::new(hs256_config());
    h.open(1, tok("alice", LONG));
    h.open(2, tok("bob", SHORT));
    h.open(3, tok("carol", T0_SECS + 300));
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(SHORT)));
    h.advance(expiry_ms(LONG) - h.now);
    let order: Vec<u64> = h.closes.iter().map(|c| c.connection.0).collect();
    assert_eq!(order, vec![2, 3, 1]);
    assert!(h.closes.iter().all(|c| c.code.code() == 4002));
}

#[test]
fn a_token_from_an_auth_frame_expires_with_4002_not_4003() {
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::None);
    auth(&mut h, 1, hs256(&json!({"sub": "alice", "exp": T0_SECS + 1})));
    assert_eq!(h.engine.poll_timeout(), Some(expiry_ms(T0_SECS + 1)));
    h.advance(60_000);
    assert_eq!(h.closed_with(1), Some(4002));
    assert_eq!(h.closes.len(), 1);
    assert_eq!(h.closes[0].connection, ConnectionId(1));
}

#[test]
fn a_host_asserted_identity_expires_at_its_expires_at_without_leeway() {
    let mut h = Host::new(hs256_config());
    let identity = Identity { client_id: Some("alice".into()), expires_at: Some(T0 + 5_000), ..Identity::default() };
    h.open(1, Credentials::Identity(identity));
    assert_eq!(h.take_type(1, "welcome")[0]["expiresAt"], T0 + 5_000);
    assert_eq!(h.engine.poll_timeout(), Some(T0 + 5_000));
    h.advance(4_999);
    assert_eq!(h.closed_with(1), None);
    h.advance(1);
    assert_eq!(h.closed_with(1), Some(4002));
}
