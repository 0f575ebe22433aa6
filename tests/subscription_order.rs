//! presence.subscribe: the ack carries a snapshot, then every later change
//! arrives in order, with no gap and no duplicate.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use std::collections::BTreeMap;

use common::Host;
use serde_json::{json, Value};

/// Applies a snapshot and then presence events to a set keyed by member id,
/// the way a client library would. Panics on a duplicate join or a leave
/// or update for an unknown member (a gap).
fn reconstruct(snapshot: &Value, events: &[Value]) -> BTreeMap<String, Value> {
    let mut set = BTreeMap::new();
    for m in snapshot.as_array().expect("members array") {
        set.insert(m["id"].as_str().unwrap().to_string(), m.clone());
    }
    for e in events {
        let id = e["id"].as_str().unwrap().to_string();
        let member = json!({"id": e["id"], "clientId": e["clientId"], "data": e["data"]});
        match e["event"].as_str().unwrap() {
            "join" => assert!(set.insert(id, member).is_none(), "duplicate join {e}"),
            "update" => assert!(set.insert(id, member).is_some(), "update of unknown member {e}"),
            "leave" => assert!(set.remove(&id).is_some(), "leave of unknown member {e}"),
            other => panic!("unknown event {other}"),
        }
    }
    set
}

fn engine_set(h: &Host, room: &str) -> BTreeMap<String, Value> {
    h.engine
        .members(room)
        .into_iter()
        .map(|m| {
            let data: Value = m.data.as_deref().map_or(Value::Null, |d| serde_json::from_str(d).unwrap());
            (m.id.clone(), json!({"id": m.id, "clientId": m.client_id, "data": data}))
        })
        .collect()
}

#[test]
fn ack_carries_the_snapshot_then_changes_follow_in_order() {
    let mut h = Host::default();
    for id in 1..=5 {
        h.open_as(id, &format!("u{id}"));
        h.join(id, "r");
    }
    h.open_as(9, "watcher");
    h.join(9, "r");
    // Before subscribing: 1 and 2 in, 3 in and out again.
    h.enter(1, "r", json!({"v": 1}));
    h.enter(2, "r", json!({"v": 1}));
    h.enter(3, "r", json!({"v": 1}));
    h.ok(3, json!({"op": "presence.leave", "room": "r"}));
    h.take(9);
    let ack = h.ok(9, json!({"op": "presence.subscribe", "room": "r"}));
    assert_eq!(
        ack["members"],
        json!([
            {"id": "rollcall:1", "clientId": "u1", "data": {"v": 1}},
            {"id": "rollcall:2", "clientId": "u2", "data": {"v": 1}},
        ])
    );
    // After: a mix of joins, updates and leaves, with the clock moving.
    h.now += 1;
    h.enter(4, "r", json!({"v": 1}));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"v": 2}}));
    h.now += 1;
    h.ok(2, json!({"op": "presence.leave", "room": "r"}));
    h.enter(3, "r", json!({"v": 3}));
    h.close(4);
    h.enter(5, "r", json!({"v": 5}));
    let frames = h.take(9);
    // The ack is the first frame; nothing from before the subscription follows it.
    assert_eq!(frames[0]["type"], "ack");
    let events: Vec<Value> = frames[1..].to_vec();
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["clientId"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> =
        [("join", "u4"), ("update", "u1"), ("leave", "u2"), ("join", "u3"), ("leave", "u4"), ("join", "u5")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(seen, expected);
    assert_eq!(events[0]["timestamp"], "2024-07-13T10:13:28.497Z");
    assert_eq!(events[2]["timestamp"], "2024-07-13T10:13:28.498Z");
    assert_eq!(reconstruct(&ack["members"], &events), engine_set(&h, "r"));
    assert_eq!(engine_set(&h, "r").len(), 3);
}

#[test]
fn reconstruction_matches_the_engine_for_a_longer_interleaving() {
    let mut h = Host::default();
    for id in 1..=8 {
        h.open_as(id, &format!("u{}", id % 3));
        h.join(id, "r");
    }
    h.open_as(100, "watcher");
    h.join(100, "r");
    // A deterministic pseudo-random schedule, with the subscription halfway.
    let mut x: u64 = 12345;
    let mut snapshot = Value::Null;
    for step in 0..200 {
        if step == 100 {
            h.take(100);
            snapshot = h.ok(100, json!({"op": "presence.subscribe", "room": "r"}))["members"].clone();
            h.take(100);
        }
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let id = (x >> 33) % 8 + 1;
        match (x >> 40) % 4 {
            0 | 1 => h.enter(id, "r", json!({"step": step})),
            2 => {
                h.ok(id, json!({"op": "presence.leave", "room": "r"}));
            }
            _ => {
                h.ok(id, json!({"op": "presence.update", "room": "r", "data": {"u": step}}));
            }
        }
    }
    let events = h.take_type(100, "presence");
    assert!(events.len() > 50, "the schedule produced events: {}", events.len());
    assert_eq!(reconstruct(&snapshot, &events), engine_set(&h, "r"));
}

#[test]
fn events_filter_delivers_only_the_named_kinds() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "watcher");
    h.join(1, "r");
    h.join(2, "r");
    h.ok(2, json!({"op": "presence.subscribe", "room": "r", "events": ["leave"]}));
    h.take(2);
    h.enter(1, "r", json!(1));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": 2}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    let events = h.take_type(2, "presence");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "leave");
    assert_eq!(events[0]["data"], 2);
}

#[test]
fn events_filter_with_two_kinds() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "watcher");
    h.join(1, "r");
    h.join(2, "r");
    h.ok(2, json!({"op": "presence.subscribe", "room": "r", "events": ["join", "update"]}));
    h.take(2);
    h.enter(1, "r", json!(1));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": 2}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    let kinds: Vec<Value> = h.take_type(2, "presence").iter().map(|e| e["event"].clone()).collect();
    assert_eq!(kinds, vec![json!("join"), json!("update")]);
}

#[test]
fn resubscribing_replaces_the_filter_and_resends_the_snapshot() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "watcher");
    h.join(1, "r");
    h.join(2, "r");
    let first = h.ok(2, json!({"op": "presence.subscribe", "room": "r", "events": ["join"]}));
    assert_eq!(first["members"], json!([]));
    h.enter(1, "r", json!({"v": 1}));
    assert_eq!(h.take_type(2, "presence").len(), 1);
    let second = h.ok(2, json!({"op": "presence.subscribe", "room": "r", "events": ["leave"]}));
    assert_eq!(second["members"], json!([{"id": "rollcall:1", "clientId": "alice", "data": {"v": 1}}]));
    h.take(2);
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"v": 2}}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.enter(1, "r", json!({"v": 3}));
    let kinds: Vec<Value> = h.take_type(2, "presence").iter().map(|e| e["event"].clone()).collect();
    assert_eq!(kinds, vec![json!("leave")], "only the new filter applies, each event once");
}

#[test]
fn resubscribing_does_not_count_twice_against_the_limit() {
    let limits = rollcall::Limits { max_subscriptions_per_connection: 1, ..rollcall::Limits::default() };
    let mut h = Host::new(rollcall::Config { limits, ..rollcall::Config::default() });
    h.open_as(1, "alice");
    h.join(1, "r");
    for _ in 0..5 {
        h.ok(1, json!({"op": "presence.subscribe", "room": "r"}));
    }
    h.ok(1, json!({"op": "presence.unsubscribe", "room": "r"}));
    h.ok(1, json!({"op": "subscribe", "room": "r", "event": "e"}));
}

#[test]
fn unsubscribe_stops_events() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "watcher");
    h.join(1, "r");
    h.join(2, "r");
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.enter(1, "r", json!(1));
    assert_eq!(h.take_type(2, "presence").len(), 1);
    let ack = h.ok(2, json!({"op": "presence.unsubscribe", "room": "r"}));
    assert_eq!(ack["op"], "presence.unsubscribe");
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": 2}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    assert!(h.take(2).iter().all(|m| m["type"] == "ack"));
    // Unsubscribing again is an ack, too.
    h.ok(2, json!({"op": "presence.unsubscribe", "room": "r"}));
    h.enter(1, "r", json!(3));
    assert!(h.take_type(2, "presence").is_empty());
}

#[test]
fn a_subscriber_also_sees_its_own_changes() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.join(1, "r");
    h.ok(1, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(1);
    h.enter(1, "r", json!({"me": true}));
    let frames = h.take(1);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["type"], "ack", "the ack comes before the broadcast");
    assert_eq!(frames[1]["event"], "join");
    assert_eq!(frames[1]["id"], "rollcall:1");
}
