//! Snapshot and restore: continuing from a restored engine is
//! indistinguishable from never having stopped; other versions are refused.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::T0;
use rollcall::{Config, ConnectionId, Credentials, Engine, Error, Identity, Output, SnapshotError, SNAPSHOT_VERSION};
use serde_json::json;

fn drain(e: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output()).collect()
}

fn identity(client: &str, expires_at: Option<u64>, dpv: serde_json::Value) -> Credentials {
    Credentials::Identity(Identity {
        client_id: Some(client.into()),
        expires_at,
        per: Some(serde_json::from_value(json!({"london": {"**": "CRUD"}})).unwrap()),
        dpv: Some(serde_json::from_value(dpv).unwrap()),
        ..Identity::default()
    })
}

/// A history that touches every kind of state.
fn build() -> Engine {
    let mut e = Engine::new(Config::default()).unwrap();
    let f = |e: &mut Engine, c: u64, frame: serde_json::Value| {
        e.handle_frame(ConnectionId(c), frame.to_string().as_bytes(), T0)
    };
    e.handle_open(ConnectionId(1), identity("alice", Some(T0 + 60_000), json!({})), T0).unwrap();
    e.handle_open(ConnectionId(2), identity("bob", None, json!({"london": ["riders/bob"]})), T0).unwrap();
    e.handle_open(ConnectionId(3), identity("alice", None, json!({"*": ["riders/*"]})), T0).unwrap();
    e.handle_open(ConnectionId(4), Credentials::None, T0).unwrap();
    for c in [1, 2, 3] {
        f(&mut e, c, json!({"op": "room.join", "room": "lobby"}));
    }
    f(&mut e, 1, json!({"op": "presence.subscribe", "room": "lobby", "view": "client"}));
    f(&mut e, 2, json!({"op": "presence.subscribe", "room": "lobby", "events": ["leave"]}));
    f(&mut e, 1, json!({"op": "presence.join", "room": "lobby", "data": {"s": "here"}}));
    f(&mut e, 3, json!({"op": "presence.join", "room": "lobby", "data": {"s": "phone"}}));
    f(&mut e, 2, json!({"op": "subscribe", "room": "lobby", "event": "chat"}));
    f(&mut e, 1, json!({"op": "object.create", "realm": "london", "id": "riders/bob", "data": {"lat": 1}}));
    f(&mut e, 1, json!({"op": "object.create", "realm": "london", "id": "riders/ann"}));
    f(&mut e, 1, json!({"op": "object.subscribe", "realm": "london", "pattern": "riders/*"}));
    f(&mut e, 1, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged"}));
    for _ in 0..5 {
        f(&mut e, 2, json!({"op": "nope"})); // spends part of bob's violation budget
    }
    drain(&mut e);
    e
}

/// What happens next: frames, closes, time passing.
fn continue_with(e: &mut Engine) -> Vec<Output> {
    let mut out = Vec::new();
    let f = |e: &mut Engine, c: u64, frame: serde_json::Value, now: u64| {
        e.handle_frame(ConnectionId(c), frame.to_string().as_bytes(), now)
    };
    f(e, 2, json!({"op": "publish", "room": "lobby", "event": "chat", "data": "hi"}), T0 + 10);
    f(e, 1, json!({"op": "presence.update", "room": "lobby", "data": {"s": "away"}}), T0 + 20);
    out.extend(drain(e));
    e.handle_close(ConnectionId(2), T0 + 30); // bob's object turns disconnected
    out.extend(drain(e));
    e.handle_close(ConnectionId(3), T0 + 40); // alice's phone: the cyclists go, presence leaves
    out.extend(drain(e));
    for _ in 0..20 {
        f(e, 1, json!({"op": "nope"}), T0 + 50);
    }
    out.extend(drain(e));
    e.handle_timeout(T0 + 11_000); // connection 4 never authenticated: 4003
    out.extend(drain(e));
    out.push(Output::Event(rollcall::HostEvent::Closed { connection: ConnectionId(0) })); // marker
    out
}

#[test]
fn a_restored_engine_continues_exactly_like_the_original() {
    let mut original = build();
    let bytes = original.snapshot();
    let mut restored = Engine::restore(Config::default(), &bytes).unwrap();
    assert_eq!(restored.snapshot(), bytes, "a restored engine snapshots to the same bytes");
    assert_eq!(restored.members("lobby"), original.members("lobby"));
    assert_eq!(restored.poll_timeout(), original.poll_timeout());
    assert_eq!(restored.object("london", "riders/bob"), original.object("london", "riders/bob"));
    let a = continue_with(&mut original);
    let b = continue_with(&mut restored);
    assert!(a.len() > 10, "the continuation does something");
    assert_eq!(a, b);
}

#[test]
fn other_versions_and_garbage_are_refused_never_misread() {
    let bytes = build().snapshot();
    let mut newer = bytes.clone();
    newer[4..8].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    assert_eq!(
        Engine::restore(Config::default(), &newer).unwrap_err(),
        Error::Snapshot(SnapshotError::Version { found: SNAPSHOT_VERSION + 1, supported: SNAPSHOT_VERSION })
    );
    assert_eq!(Engine::restore(Config::default(), b"{}").unwrap_err(), Error::Snapshot(SnapshotError::NotASnapshot));
    let truncated = &bytes[..bytes.len() / 2];
    assert!(matches!(Engine::restore(Config::default(), truncated), Err(Error::Snapshot(SnapshotError::Corrupt(_)))));
    let other_app = Config { app_id: "other".into(), ..Config::default() };
    assert!(matches!(Engine::restore(other_app, &bytes), Err(Error::Snapshot(SnapshotError::Mismatch(_)))));
}

#[test]
fn an_empty_engine_round_trips() {
    let e = Engine::new(Config::default()).unwrap();
    let restored = Engine::restore(Config::default(), &e.snapshot()).unwrap();
    assert_eq!(restored.connection_count(), 0);
    assert_eq!(restored.poll_timeout(), None);
}
