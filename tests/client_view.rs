//! The per-clientId view: one member per clientId, first device in, last
//! device out, while the connection view sees every device.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::Host;
use rollcall::{ClientInfo, ConnectionId, RoomCounts};
use serde_json::{json, Value};

/// Alice has devices 1 and 2, bob has 3; 8 watches the connection view,
/// 9 the client view.
fn setup() -> Host {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "alice");
    h.open_as(3, "bob");
    h.open_as(8, "conn-watcher");
    h.open_as(9, "client-watcher");
    for id in [1, 2, 3, 8, 9] {
        h.join(id, "r");
    }
    h.ok(8, json!({"op": "presence.subscribe", "room": "r"}));
    h.ok(9, json!({"op": "presence.subscribe", "room": "r", "view": "client"}));
    h.take(8);
    h.take(9);
    h
}

fn summary(events: &[Value]) -> Vec<(String, String)> {
    events.iter().map(|e| (e["event"].as_str().unwrap().to_string(), e["id"].as_str().unwrap().to_string())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn two_devices_join_and_leave_once_in_the_client_view() {
    let mut h = setup();
    h.enter(1, "r", json!({"dev": 1}));
    h.enter(2, "r", json!({"dev": 2}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.close(2);
    let conn = h.take_type(8, "presence");
    let client = h.take_type(9, "presence");
    assert_eq!(
        summary(&conn),
        pairs(&[("join", "rollcall:1"), ("join", "rollcall:2"), ("leave", "rollcall:1"), ("leave", "rollcall:2")])
    );
    assert!(conn.iter().all(|e| e.get("view").is_none()), "the connection view carries no `view`: {conn:?}");
    assert_eq!(summary(&client), pairs(&[("join", "rollcall:1"), ("leave", "rollcall:2")]));
    assert_eq!(
        client[0],
        json!({
            "type": "presence", "room": "r", "event": "join", "view": "client",
            "timestamp": "2024-07-13T10:13:28.496Z",
            "id": "rollcall:1", "clientId": "alice", "data": {"dev": 1},
            "epoch": 0, "seq": 1
        })
    );
    assert_eq!(client[1]["view"], "client");
    assert_eq!(client[1]["clientId"], "alice");
}

#[test]
fn updates_from_either_device_reach_the_client_view() {
    let mut h = setup();
    h.enter(1, "r", json!({"dev": 1}));
    h.enter(2, "r", json!({"dev": 2}));
    h.take(8);
    h.take(9);
    h.ok(2, json!({"op": "presence.update", "room": "r", "data": {"typing": true}}));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"typing": false}}));
    let client = h.take_type(9, "presence");
    assert_eq!(summary(&client), pairs(&[("update", "rollcall:2"), ("update", "rollcall:1")]));
    assert!(client.iter().all(|e| e["view"] == "client" && e["clientId"] == "alice"));
    assert_eq!(client[0]["data"], json!({"typing": true}));
    assert_eq!(client[1]["data"], json!({"typing": false}));
    assert_eq!(h.take_type(8, "presence").len(), 2);
}

#[test]
fn distinct_clients_each_join_in_the_client_view() {
    let mut h = setup();
    h.enter(1, "r", json!(null));
    h.enter(3, "r", json!(null));
    h.enter(2, "r", json!(null));
    let client = h.take_type(9, "presence");
    let ids: Vec<&str> = client.iter().map(|e| e["clientId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["alice", "bob"]);
}

#[test]
fn client_view_snapshot_groups_connections_by_client_id() {
    let mut h = setup();
    h.enter(2, "r", json!({"dev": 2}));
    h.enter(3, "r", json!({"dev": 3}));
    h.enter(1, "r", json!({"dev": 1}));
    let expected = json!([
        {"clientId": "alice", "connections": [
            {"id": "rollcall:1", "clientId": "alice", "data": {"dev": 1}},
            {"id": "rollcall:2", "clientId": "alice", "data": {"dev": 2}},
        ]},
        {"clientId": "bob", "connections": [
            {"id": "rollcall:3", "clientId": "bob", "data": {"dev": 3}},
        ]},
    ]);
    let got = h.ok(8, json!({"op": "presence.get", "room": "r", "view": "client"}));
    assert_eq!(got["clients"], expected);
    assert!(got.get("members").is_none(), "{got}");
    let sub = h.ok(8, json!({"op": "presence.subscribe", "room": "r", "view": "client"}));
    assert_eq!(sub["clients"], expected);
    // The explicit connection view is the default's.
    let conn = h.ok(8, json!({"op": "presence.get", "room": "r", "view": "connection"}));
    assert_eq!(conn["members"].as_array().map(Vec::len), Some(3));
    assert!(conn.get("clients").is_none());
}

#[test]
fn engine_clients_and_room_counts_agree() {
    let mut h = setup();
    h.enter(3, "r", json!(null));
    h.enter(2, "r", json!(null));
    h.enter(1, "r", json!(null));
    assert_eq!(
        h.engine.clients("r"),
        vec![
            ClientInfo { client_id: "alice".into(), connections: vec![ConnectionId(1), ConnectionId(2)] },
            ClientInfo { client_id: "bob".into(), connections: vec![ConnectionId(3)] },
        ]
    );
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 5, members: 3, clients: 2, in_grace: 0 });
    h.close(1);
    assert_eq!(
        h.engine.clients("r"),
        vec![
            ClientInfo { client_id: "alice".into(), connections: vec![ConnectionId(2)] },
            ClientInfo { client_id: "bob".into(), connections: vec![ConnectionId(3)] },
        ]
    );
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 4, members: 2, clients: 2, in_grace: 0 });
    h.ok(2, json!({"op": "room.leave", "room": "r"}));
    assert_eq!(h.engine.clients("r").len(), 1);
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 3, members: 1, clients: 1, in_grace: 0 });
}

#[test]
fn client_view_honours_the_events_filter() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "alice");
    h.open_as(9, "watcher");
    for id in [1, 2, 9] {
        h.join(id, "r");
    }
    h.ok(9, json!({"op": "presence.subscribe", "room": "r", "view": "client", "events": ["leave"]}));
    h.take(9);
    h.enter(1, "r", json!(1));
    h.enter(2, "r", json!(2));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": 3}));
    h.close(2);
    assert!(h.take_type(9, "presence").is_empty(), "alice still has device 1");
    h.close(1);
    let events = h.take_type(9, "presence");
    assert_eq!(summary(&events), pairs(&[("leave", "rollcall:1")]));
    assert_eq!(events[0]["view"], "client");
}

#[test]
fn switching_view_by_resubscribing() {
    let mut h = setup();
    h.ok(8, json!({"op": "presence.subscribe", "room": "r", "view": "client"}));
    h.take(8);
    h.enter(1, "r", json!(1));
    h.enter(2, "r", json!(2));
    let events = h.take_type(8, "presence");
    assert_eq!(summary(&events), pairs(&[("join", "rollcall:1")]));
    assert_eq!(events[0]["view"], "client");
}
