//! The whole engine's memory budget (issue 10, finding 3):
//! `limits.maxStoredBytes` bounds object data, presence data, connections
//! with their claims, joined rooms and subscriptions together. What would
//! pass it is refused with `ENGINE_FULL` (a frame; a new connection is
//! closed with 4013), nothing is lost for anyone else, and what is freed
//! can be used again. The JS reproduction of the finding (100 connections,
//! 16 KB objects, wasm memory) is tests/js/engine-limits.test.js.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::{admin, Host};
use rollcall::{Config, Credentials, Limits};
use serde_json::json;

const BUDGET: usize = 256 * 1024;

fn budgeted() -> Host {
    Host::new(Config { limits: Limits { max_stored_bytes: BUDGET, ..Limits::default() }, ..Config::default() })
}

/// 16 KB of object data, as in the finding.
fn blob(i: usize) -> serde_json::Value {
    json!({"i": i, "pad": "x".repeat(16 * 1024 - 32)})
}

#[test]
fn default_limits_fit_in_wasm32_and_a_durable_object() {
    let l = Limits::default();
    assert_eq!(l.max_stored_bytes, 64 * 1024 * 1024);
    // No single item defaults past the budget.
    for item in [l.max_object_data_bytes, l.max_presence_data_bytes, l.max_frame_bytes] {
        assert!(item * 64 < l.max_stored_bytes, "{item}");
    }
    assert_eq!(rollcall::AuthConfig::default().max_token_bytes, 8 * 1024);
    assert_eq!(l.max_claim_patterns, 64);
}

#[test]
fn objects_past_the_budget_are_refused_and_everyone_else_carries_on() {
    let mut h = budgeted();
    h.open(1, admin());
    h.open_as(2, "bob");
    h.join(2, "lobby");
    h.enter(2, "lobby", json!({"name": "Bob"}));
    let mut created = 0;
    let code = loop {
        let reply = h.request(
            1,
            json!({"op": "object.create", "realm": "r", "id": format!("o{created}"), "data": blob(created)}),
        );
        if reply["type"] == "error" {
            break reply["code"].as_str().unwrap_or_default().to_string();
        }
        created += 1;
        assert!(created < 100, "the budget never bound");
    };
    assert_eq!(code, "ENGINE_FULL");
    assert!((10..16).contains(&created), "{created} objects of 16 KB in 256 KiB");
    assert!(h.engine.stored_bytes() <= BUDGET);
    // Nothing was lost: the refused object does not exist, the others do,
    // the connection is open (ENGINE_FULL is no violation), Bob still present.
    assert!(h.engine.object("r", &format!("o{created}")).is_none());
    assert_eq!(h.engine.objects("r", "**").unwrap().len(), created);
    for _ in 0..50 {
        assert_eq!(
            h.err(1, json!({"op": "object.create", "realm": "r", "id": "again", "data": blob(0)})),
            "ENGINE_FULL"
        );
    }
    assert_eq!(h.closed_with(1), None);
    assert_eq!(h.engine.members("lobby").len(), 1);
    // Shrinking an object frees bytes for another; growing it back is then refused.
    h.ok(1, json!({"op": "object.update", "realm": "r", "id": "o0", "data": 1}));
    h.ok(1, json!({"op": "object.create", "realm": "r", "id": "again", "data": blob(0)}));
    assert_eq!(h.err(1, json!({"op": "object.update", "realm": "r", "id": "o0", "data": blob(0)})), "ENGINE_FULL");
    assert_eq!(h.engine.object("r", "o0").and_then(|o| o.data).as_deref(), Some("1"));
    // Deleting frees them too.
    h.ok(1, json!({"op": "object.delete", "realm": "r", "id": "o1"}));
    h.ok(1, json!({"op": "object.update", "realm": "r", "id": "o0", "data": blob(0)}));
}

#[test]
fn presence_rooms_subscriptions_and_connections_count_against_the_budget() {
    let mut h = budgeted();
    h.open(1, admin());
    let mut i = 0;
    while h.request(1, json!({"op": "object.create", "realm": "r", "id": format!("o{i}"), "data": blob(i)}))["type"]
        == "ack"
    {
        i += 1;
    }
    // Fill what is left with small objects, to the last byte that fits.
    while h.request(1, json!({"op": "object.create", "realm": "r", "id": format!("s{i}")}))["type"] == "ack" {
        i += 1;
    }
    let stored = h.engine.stored_bytes();
    // A new connection does not fit: closed with 4013, nothing else happens.
    h.open_as(2, "late");
    assert_eq!(h.closed_with(2), Some(4013));
    assert_eq!(h.engine.connection_count(), 1);
    assert_eq!(h.engine.stored_bytes(), stored);
    // Presence, rooms and subscriptions of the live connection: ENGINE_FULL.
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "lobby"})), "ENGINE_FULL");
    assert_eq!(h.err(1, json!({"op": "object.subscribe", "realm": "r"})), "ENGINE_FULL");
    // Deleting makes room for all of it.
    for j in 0..4 {
        h.request(1, json!({"op": "object.delete", "realm": "r", "id": format!("o{j}")}));
    }
    h.join(1, "lobby");
    h.ok(1, json!({"op": "presence.subscribe", "room": "lobby"}));
    h.enter(1, "lobby", json!({"pad": "y".repeat(2000)}));
    h.open_as(3, "later");
    assert_eq!(h.closed_with(3), None);
    // Everything a connection held goes back when it closes.
    let before = h.engine.stored_bytes();
    h.close(1);
    h.close(3);
    assert!(h.engine.stored_bytes() < before);
    let objects: usize = h
        .engine
        .objects("r", "**")
        .unwrap()
        .iter()
        .map(|o| 256 + o.id.len() + o.data.as_ref().map_or(0, String::len))
        .sum();
    assert_eq!(h.engine.stored_bytes(), objects);
}

#[test]
fn a_restored_engine_charges_what_it_holds() {
    let mut h = budgeted();
    h.open(1, admin());
    h.open(2, Credentials::None);
    h.join(1, "lobby");
    h.enter(1, "lobby", json!({"name": "A"}));
    h.ok(1, json!({"op": "object.create", "realm": "r", "id": "a", "data": blob(1)}));
    let config = Config { limits: Limits { max_stored_bytes: BUDGET, ..Limits::default() }, ..Config::default() };
    let restored = rollcall::Engine::restore(config, &h.engine.snapshot()).unwrap();
    assert_eq!(restored.stored_bytes(), h.engine.stored_bytes());
}

#[test]
fn glob_subscriptions_are_charged_what_a_glob_holds() {
    // A distinct glob keeps a compiled regex and a lazy-DFA cache (265 KB
    // measured): 500 subscriptions of distinct globs would hold over
    // 128 MiB, so each is charged 256 KiB. In a 2 MiB budget: 7 fit.
    let limits = Limits { max_stored_bytes: 2 << 20, ..Limits::default() };
    let mut h = Host::new(Config { limits, ..Config::default() });
    h.open(1, admin());
    let mut n = 0;
    let code = loop {
        let reply =
            h.request(1, json!({"op": "realm.subscribe", "realm": "r", "event": "*", "pattern": format!("*a?{n}")}));
        if reply["type"] == "error" {
            break reply["code"].as_str().unwrap_or_default().to_string();
        }
        n += 1;
    };
    assert_eq!(code, "ENGINE_FULL");
    assert_eq!(n, 7, "glob subscriptions in 2 MiB");
    // Patterns that match without a glob cost a plain entry, and still fit.
    for p in ["**", "riders/*", "riders/**", "riders/alice"] {
        h.ok(1, json!({"op": "realm.subscribe", "realm": "r", "event": "*", "pattern": p}));
    }
    // Unsubscribing gives the bytes back.
    h.ok(1, json!({"op": "realm.unsubscribe", "realm": "r", "event": "*", "pattern": "*a?0"}));
    h.ok(1, json!({"op": "realm.subscribe", "realm": "r", "event": "*", "pattern": "*b?"}));
}

#[test]
fn claim_globs_are_charged_once_per_distinct_glob_and_given_back() {
    // A claim pattern that compiles to a glob (here a room grant) holds what
    // a glob subscription holds. It is compiled once and shared, so it is
    // charged 256 KiB once however many connections hold it; an adversary's
    // distinct globs each pay it, and fill a 2 MiB budget after 7.
    let limits = Limits { max_stored_bytes: 2 << 20, ..Limits::default() };
    let mut h = Host::new(Config { limits, ..Config::default() });
    let with_rooms = |client: &str, room: String| {
        Credentials::Identity(rollcall::Identity {
            client_id: Some(client.into()),
            rooms: Some([(room, vec![rollcall::RoomAction::Subscribe])].into()),
            ..rollcall::Identity::default()
        })
    };
    h.open(1, with_rooms("a", "team-?/lobby".into()));
    let one_glob = h.engine.stored_bytes();
    for id in 2..40 {
        h.open(id, with_rooms("a", "team-?/lobby".into()));
        assert_eq!(h.closed_with(id), None);
    }
    let per_connection = (h.engine.stored_bytes() - one_glob) / 38;
    assert!(per_connection < 8 * 1024, "a shared glob was charged per connection: {per_connection} bytes each");
    let mut distinct = 0;
    let refused = loop {
        let id = 100 + distinct;
        h.open(id, with_rooms("b", format!("team-?/room-{distinct}")));
        if let Some(code) = h.closed_with(id) {
            break code;
        }
        distinct += 1;
        assert!(distinct < 100, "distinct claim globs were never refused");
    };
    assert_eq!(refused, 4013);
    assert_eq!(distinct, 6, "distinct claim globs beside the shared one in 2 MiB");
    // Patterns that match without a glob cost only their text.
    h.open(500, with_rooms("c", "riders/*".into()));
    assert_eq!(h.closed_with(500), None);
    // Closing every holder gives each glob back.
    for id in (1..40).chain(100..100 + distinct).chain([500]) {
        h.close(id);
    }
    assert_eq!(h.engine.stored_bytes(), 0);
    // And a restored engine charges the same for the same holders.
    h.open(600, with_rooms("a", "team-?/lobby".into()));
    h.open(601, with_rooms("a", "team-?/lobby".into()));
    let config = Config { limits: Limits { max_stored_bytes: 2 << 20, ..Limits::default() }, ..Config::default() };
    let restored = rollcall::Engine::restore(config, &h.engine.snapshot()).unwrap();
    assert_eq!(restored.stored_bytes(), h.engine.stored_bytes());
}

#[test]
fn a_refreshed_token_is_charged_against_what_its_old_one_gives_back() {
    // A connection whose token names a claim glob nobody else holds (256 KiB)
    // in a budget that holds little more: a refresh to a token with another
    // glob fits, since the old one is given back in the same step.
    use common::tokens::{hs256, hs256_config, T0_SECS};
    let limits = Limits { max_stored_bytes: 300 << 10, ..Limits::default() };
    let mut h = Host::new(Config { limits, ..hs256_config() });
    let token = |glob: &str| hs256(&json!({"sub": "a", "exp": T0_SECS + 600, "rooms": {glob: ["subscribe"]}}));
    h.open(1, Credentials::Token(token("team-?/lobby")));
    assert_eq!(h.take_type(1, "welcome").len(), 1);
    let before = h.engine.stored_bytes();
    assert!(before > 256 << 10, "one claim glob is charged: {before}");
    h.ok(1, json!({"op": "auth", "token": token("crew-?/lobby")}));
    assert_eq!(h.engine.stored_bytes(), before, "one glob given back, one taken");
    // A second connection with a third glob does not fit beside it.
    h.open(2, Credentials::Token(token("band-?/lobby")));
    assert_eq!(h.closed_with(2), Some(4013));
}
