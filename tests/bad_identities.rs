//! A host-asserted identity the engine cannot use (issue 10, finding 2) is
//! refused like a bad token: an `authRefused` event with `BAD_IDENTITY` and
//! a 4001 close, never an `Err`, and nobody else notices. The only `Err`
//! of `handle_open` is a connection id that is already live, returned
//! before anything changes. (The JS surface: tests/js/engine-limits.test.js.)

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::Host;
use rollcall::time::MAX_TIME;
use rollcall::{AuthError, ConnectionId, Credentials, HostEvent, Identity};
use serde_json::{json, Value};

/// Alice (connection 1) in the lobby's presence set, watched by Bob (2).
fn lobby() -> Host {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    for id in [1, 2] {
        h.join(id, "lobby");
        h.ok(id, json!({"op": "presence.subscribe", "room": "lobby"}));
    }
    h.enter(1, "lobby", json!({"name": "Alice"}));
    h.take(1);
    h.take(2);
    h
}

fn assert_refused(h: &mut Host, id: u64, what: &str) {
    assert_eq!(h.closed_with(id), Some(4001), "{what}");
    let refused = h.events.iter().any(
        |e| matches!(e, HostEvent::AuthRefused { connection, error: AuthError::BadIdentity(_) } if connection.0 == id),
    );
    assert!(refused, "{what}: {:?}", h.events);
    assert_eq!(h.closes.last().map(|c| c.reason.as_str()), Some("BAD_IDENTITY"), "{what}");
    // Everyone else: nothing sent, nothing changed.
    assert!(h.take(1).is_empty() && h.take(2).is_empty(), "{what}");
    assert_eq!(h.engine.connection_ids(), vec![ConnectionId(1), ConnectionId(2)], "{what}");
    assert_eq!(h.engine.room_counts("lobby").members, 1, "{what}");
}

#[test]
fn identities_with_bad_content_are_refused_with_bad_identity() {
    let mut h = lobby();
    let long = "x".repeat(rollcall::Limits::default().max_name_bytes + 1);
    let cases: Vec<(&str, Identity)> = vec![
        ("empty clientId", Identity { client_id: Some(String::new()), ..Identity::default() }),
        ("newline in clientId", Identity { client_id: Some("eve\nadmin".into()), ..Identity::default() }),
        ("NUL in clientId", Identity { client_id: Some("eve\0".into()), ..Identity::default() }),
        ("clientId too long", Identity { client_id: Some(long), ..Identity::default() }),
        ("expiresAt past 2^53", Identity { expires_at: Some(MAX_TIME + 1), ..Identity::default() }),
        ("expiresAt u64::MAX", Identity { expires_at: Some(u64::MAX), ..Identity::default() }),
    ];
    let json_cases: Vec<(&str, Value)> = vec![
        ("lowercase per letter", json!({"clientId": "eve", "per": {"london": {"riders/*": "r"}}})),
        ("empty room pattern", json!({"clientId": "eve", "rooms": {"": ["subscribe"]}})),
        ("empty dpv pattern", json!({"clientId": "eve", "dpv": {"london": [""]}})),
        ("too complex a pattern", json!({"clientId": "eve", "per": {"x": {"*a?????????????": "R"}}})),
        (
            "too many patterns",
            json!({"clientId": "eve", "per": {"x": (0..65).map(|i| (format!("p{i}"), json!("R"))).collect::<serde_json::Map<_, _>>()}}),
        ),
    ];
    let all =
        cases.into_iter().chain(json_cases.into_iter().map(|(what, v)| {
            (what, serde_json::from_value::<Identity>(v).expect("deserialises; refused by the engine"))
        }));
    for (i, (what, identity)) in all.enumerate() {
        let id = 10 + i as u64;
        h.open(id, Credentials::Identity(identity));
        assert_refused(&mut h, id, what);
    }
}

#[test]
fn identities_that_do_not_even_deserialise_are_refused_through_credentials_invalid() {
    // What a host holds when its user callback returned junk: the wasm
    // surface turns these into `Credentials::Invalid`, never a throw.
    let mut h = lobby();
    for (i, junk) in [
        json!({"clientId": 123}),
        json!({"clientId": "eve", "rooms": {"lobby": ["own"]}}),
        json!({"clientId": "eve", "expiresAt": "soon"}),
        json!({"clientId": "eve", "expiresAt": -1}),
        json!({"per": ["R"]}),
        json!("eve"),
    ]
    .into_iter()
    .enumerate()
    {
        let why = serde_json::from_value::<Identity>(junk.clone()).expect_err("does not deserialise").to_string();
        let id = 10 + i as u64;
        h.open(id, Credentials::Invalid(why));
        assert_refused(&mut h, id, &junk.to_string());
    }
}

#[test]
fn only_a_duplicate_connection_id_is_an_err_and_it_changes_nothing() {
    let mut h = lobby();
    let bad = Identity { client_id: Some(String::new()), ..Identity::default() };
    let err = h.engine.handle_open(ConnectionId(1), Credentials::Identity(bad), h.now).unwrap_err();
    assert_eq!(err.code(), "DUPLICATE_CONNECTION");
    assert!(h.engine.poll_output().is_none());
    assert_eq!(h.engine.identity(ConnectionId(1)).and_then(|i| i.client_id.as_deref()), Some("alice"));
    // A refused id is free again at once.
    h.open(3, Credentials::Invalid("junk".into()));
    assert_eq!(h.closed_with(3), Some(4001));
    h.open_as(3, "carol");
    assert_eq!(h.engine.connection_count(), 3);
}
