//! Change records (src/engine/persist.rs): what one call marks changed, the
//! `lost` flag that sends a record from a socket attachment to storage,
//! deletions, import, and the host events and fixed ping pair a hibernating
//! host relies on. The exactness of import over random histories is a
//! property in tests/snapshot_model.rs.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use std::collections::BTreeMap;

use common::{Host, T0};
use rollcall::protocol::reply;
use rollcall::{Change, Config, ConnectionId, Engine, HostEvent, RecordKind};
use serde_json::json;

fn config() -> Config {
    Config { resume_secret: Some("persist-test".into()), leave_grace_ms: 5_000, ..Config::default() }
}

/// `n` members of room "r", each subscribed to its presence, changes taken.
fn room_of(n: u64) -> Host {
    let mut h = Host::new(config());
    h.engine.track_changes();
    for id in 1..=n {
        h.open_as(id, &format!("user{id}"));
        h.join(id, "r");
        h.ok(id, json!({"op": "presence.subscribe", "room": "r"}));
        h.enter(id, "r", json!({"n": 0}));
    }
    let _ = h.engine.take_changes();
    h
}

fn keys(changes: &[Change]) -> Vec<&str> {
    changes.iter().map(|c| c.key.as_str()).collect()
}

#[test]
fn a_presence_update_changes_its_connection_and_its_room_only_whatever_the_room_size() {
    for n in [2, 10, 200] {
        let mut h = room_of(n);
        h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"n": 1}}));
        let changes = h.engine.take_changes();
        assert_eq!(keys(&changes), ["c:1", "r:r"], "room of {n}");
        assert!(changes.iter().all(|c| c.value.is_some()));
        assert_eq!(changes[0].kind, RecordKind::Connection { id: ConnectionId(1), lost: false });
        // Nothing more until something else happens.
        assert!(h.engine.take_changes().is_empty());
    }
}

#[test]
fn a_lost_connection_is_flagged_and_its_end_of_grace_deletes_it() {
    let mut h = room_of(3);
    h.lose(2);
    let changes = h.engine.take_changes();
    assert_eq!(keys(&changes), ["c:2"]);
    assert_eq!(changes[0].kind, RecordKind::Connection { id: ConnectionId(2), lost: true });
    h.advance(5_000);
    let changes = h.engine.take_changes();
    // Gone: its record deleted; the leave took a seq in the room.
    assert_eq!(keys(&changes), ["c:2", "r:r"]);
    assert_eq!(changes[0].value, None);
    assert!(changes[1].value.is_some());
}

#[test]
fn the_last_one_out_deletes_the_room_record_and_objects_come_and_go() {
    let mut h = room_of(1);
    h.open(9, common::admin());
    h.ok(9, json!({"op": "object.create", "realm": "london", "id": "riders/a", "data": {"x": 1}}));
    let changes = h.engine.take_changes();
    assert_eq!(keys(&changes), ["m", "c:9", "o:london\nriders/a"]);
    h.ok(9, json!({"op": "object.delete", "realm": "london", "id": "riders/a"}));
    let changes = h.engine.take_changes();
    assert_eq!(keys(&changes), ["c:9", "o:london\nriders/a"]);
    assert_eq!(changes[1].value, None);
    h.close(1);
    let changes = h.engine.take_changes();
    assert_eq!(keys(&changes), ["c:1", "r:r"]);
    assert!(changes.iter().all(|c| c.value.is_none()));
}

#[test]
fn import_rebuilds_the_engine_and_drops_orphan_room_records() {
    let mut h = room_of(3);
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    h.engine.track_changes(); // everything, once
    for c in h.engine.take_changes() {
        store.insert(c.key, c.value.expect("live records"));
    }
    let room = store["r:r"].clone();
    let mut e = Engine::import(config(), store.values().map(Vec::as_slice)).expect("import");
    assert_eq!(e.snapshot(), h.engine.snapshot());
    assert!(e.take_changes().is_empty());
    // A room record whose connections are all gone is dropped and reported deleted.
    let only_room = Engine::import(config(), [room.as_slice()]);
    let mut e = only_room.expect("an orphan room record is not an error");
    assert_eq!(e.room_names(), Vec::<String>::new());
    let changes = e.take_changes();
    assert_eq!(keys(&changes), ["r:r"]);
    assert_eq!(changes[0].value, None);
    // Garbage and foreign versions are refused, never a panic.
    assert!(Engine::import(config(), [&b"RCR\x09xx"[..]]).is_err());
    assert!(Engine::import(config(), [&b"nope"[..]]).is_err());
    let twice = [store["c:1"].as_slice(), store["c:1"].as_slice()];
    assert!(Engine::import(config(), twice).is_err());
}

#[test]
fn a_sign_of_life_changes_the_record_only_when_it_moves_last_seen() {
    let mut h = room_of(3);
    h.engine.handle_alive(ConnectionId(2), T0 + 5);
    assert_eq!(keys(&h.engine.take_changes()), ["c:2"]);
    // The same time again, an older one, an unknown connection: nothing.
    h.engine.handle_alive(ConnectionId(2), T0 + 5);
    h.engine.handle_alive(ConnectionId(2), T0 + 1);
    h.engine.handle_alive(ConnectionId(99), T0 + 9);
    assert!(h.engine.take_changes().is_empty());
}

#[test]
fn a_refreshed_token_is_a_host_event() {
    let mut h = Host::new(common::tokens::hs256_config());
    let token = common::tokens::hs256(&common::tokens::claims("ann", 600));
    h.open(1, rollcall::Credentials::Token(token));
    h.events.clear();
    let later = common::tokens::hs256(&common::tokens::claims("ann", 1200));
    h.ok(1, json!({"op": "auth", "token": later}));
    let refreshed: Vec<_> = h.events.iter().filter(|e| matches!(e, HostEvent::TokenRefreshed { .. })).collect();
    assert_eq!(refreshed.len(), 1, "{:?}", h.events);
    let HostEvent::TokenRefreshed { connection, client_id, expires_at } = refreshed[0] else { unreachable!() };
    assert_eq!((*connection, client_id.as_deref()), (ConnectionId(1), Some("ann")));
    assert!(expires_at.is_some());
}

#[test]
fn the_ping_pair_is_what_the_engine_answers() {
    let mut h = Host::default();
    h.open_as(1, "ann");
    h.take(1);
    h.engine.handle_frame(ConnectionId(1), reply::PING.as_bytes(), T0);
    let sent: Vec<String> = std::iter::from_fn(|| h.engine.poll_output())
        .filter_map(|o| match o {
            rollcall::Output::Send(t) => Some(t.payload.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [reply::ping_ack()]);
}

#[test]
fn an_open_presence_window_is_in_its_room_record_and_flushes_the_same_after_import() {
    // A coalescing room (presence.flushIntervalMs) holds its events in a
    // window until the flush: a host that rebuilds from records while one
    // is open (a Durable Object evicted mid-window) must flush the same.
    let coalescing =
        || Config { presence: rollcall::PresenceConfig { flush_interval_ms: 50, ..Default::default() }, ..config() };
    let mut h = Host::new(coalescing());
    h.engine.track_changes();
    for id in 1..=3 {
        h.open_as(id, &format!("user{id}"));
        h.join(id, "r");
        h.ok(id, json!({"op": "presence.subscribe", "room": "r"}));
        h.enter(id, "r", json!({"n": 0}));
    }
    h.advance(100); // the joins' window is flushed
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for c in h.engine.take_changes() {
        store.insert(c.key, c.value.expect("live records"));
    }
    let flushed = store["r:r"].clone();
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"n": 1}}));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"n": 2}}));
    let changes = h.engine.take_changes();
    assert!(keys(&changes).contains(&"r:r"), "a queued update changes its room's record");
    for c in changes {
        match c.value {
            Some(v) => store.insert(c.key, v),
            None => store.remove(&c.key),
        };
    }
    assert_ne!(store["r:r"], flushed, "the room record holds the open window");
    let mut woken = Host::new(coalescing());
    woken.now = h.now;
    woken.engine = Engine::import(coalescing(), store.values().map(Vec::as_slice)).expect("import");
    assert_eq!(woken.engine.snapshot(), h.engine.snapshot());
    for id in 1..=3 {
        h.take(id);
    }
    h.advance(100);
    woken.advance(100);
    for id in 1..=3 {
        let (sent, resent) = (h.take(id), woken.take(id));
        assert_eq!(sent, resent, "connection {id} after the flush");
        assert!(sent.iter().any(|f| f["data"]["n"] == 2), "connection {id} got the coalesced update: {sent:?}");
    }
}
