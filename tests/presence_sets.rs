//! Presence join / update / leave / get, as seed 002 describes them.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::{Host, T0};
use serde_json::json;

#[test]
fn join_is_broadcast_with_the_seed_shape() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.join(1, "myRoom");
    h.join(2, "myRoom");
    h.ok(2, json!({"op": "presence.subscribe", "room": "myRoom"}));
    h.take(2);
    h.enter(1, "myRoom", json!({"username": "Bob"}));
    let events = h.take_type(2, "presence");
    assert_eq!(
        events,
        vec![json!({
            "type": "presence", "room": "myRoom", "event": "join",
            "timestamp": "2024-07-13T10:13:28.496Z",
            "id": "rollcall:1", "clientId": "alice", "data": {"username": "Bob"},
            "epoch": 0, "seq": 1
        })]
    );
    let _ = T0;
}

#[test]
fn joining_twice_is_an_update_and_update_before_join_joins() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "watcher");
    h.join(1, "r");
    h.join(2, "r");
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(2);
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"v": 1}}));
    h.ok(1, json!({"op": "presence.join", "room": "r", "data": {"v": 2}}));
    let kinds: Vec<_> = h.take_type(2, "presence").iter().map(|e| e["event"].clone()).collect();
    assert_eq!(kinds, vec![json!("join"), json!("update")]);
    assert_eq!(h.engine.room_counts("r").members, 1);
    assert_eq!(h.engine.members("r")[0].data.as_deref(), Some(r#"{"v":2}"#));
}

#[test]
fn get_returns_every_member_with_id_client_id_and_data() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.open_as(3, "carol");
    for c in [1, 2, 3] {
        h.join(c, "r");
    }
    h.enter(2, "r", json!({"name": "Bob"}));
    h.enter(1, "r", json!({"name": "Alice"}));
    h.ok(3, json!({"op": "presence.join", "room": "r"}));
    let got = h.ok(3, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(
        got["members"],
        json!([
            {"id": "rollcall:1", "clientId": "alice", "data": {"name": "Alice"}},
            {"id": "rollcall:2", "clientId": "bob", "data": {"name": "Bob"}},
            {"id": "rollcall:3", "clientId": "carol", "data": null},
        ])
    );
    assert_eq!(got["op"], "presence.get");
    // A getter that is not itself a member still sees everyone.
    h.open_as(4, "dave");
    h.join(4, "r");
    let got = h.ok(4, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(got["members"].as_array().map(Vec::len), Some(3));
}

#[test]
fn get_on_an_empty_presence_set_is_an_empty_list() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.join(1, "r");
    let got = h.ok(1, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(got["members"], json!([]));
}

#[test]
fn leave_broadcasts_leave_and_removes_the_member() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.join(1, "r");
    h.join(2, "r");
    h.enter(1, "r", json!({"n": 1}));
    h.enter(2, "r", json!({"n": 2}));
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(2);
    h.now += 1000;
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    assert_eq!(
        h.take_type(2, "presence"),
        vec![json!({
            "type": "presence", "room": "r", "event": "leave",
            "timestamp": "2024-07-13T10:13:29.496Z",
            "id": "rollcall:1", "clientId": "alice", "data": {"n": 1},
            "epoch": 0, "seq": 3
        })]
    );
    assert_eq!(h.engine.room_counts("r").members, 1);
    let members = h.engine.members("r");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_id, "bob");
    let got = h.ok(2, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(got["members"], json!([{"id": "rollcall:2", "clientId": "bob", "data": {"n": 2}}]));
    // Leaving presence is not leaving the room.
    assert_eq!(h.engine.room_counts("r").connections, 2);
}

#[test]
fn leave_is_idempotent() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.join(1, "r");
    h.join(2, "r");
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.enter(1, "r", json!(null));
    h.take(2);
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    let leaves = h.take_type(2, "presence");
    assert_eq!(leaves.len(), 1, "{leaves:?}");
    assert_eq!(leaves[0]["event"], "leave");
    assert_eq!(h.engine.room_counts("r").members, 0);
    // Leaving without ever having entered is also just an ack.
    h.ok(2, json!({"op": "presence.leave", "room": "r"}));
    assert!(h.take_type(2, "presence").is_empty());
    // And one can enter again afterwards: a fresh join.
    h.enter(1, "r", json!({"back": true}));
    let events = h.take_type(2, "presence");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "join");
}

#[test]
fn presence_needs_a_client_id() {
    let mut h = Host::default();
    let anonymous = rollcall::Identity { client_id: None, ..rollcall::Identity::default() };
    h.open(1, rollcall::Credentials::Identity(anonymous));
    h.open_as(2, "watcher");
    h.join(1, "r");
    h.join(2, "r");
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(2);
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "r", "data": {}})), "NO_CLIENT_ID");
    assert_eq!(h.err(1, json!({"op": "presence.update", "room": "r", "data": {}})), "NO_CLIENT_ID");
    assert_eq!(h.engine.room_counts("r").members, 0);
    assert!(h.engine.members("r").is_empty());
    assert!(h.take_type(2, "presence").is_empty());
    // It may still read the set, subscribe and publish.
    h.ok(1, json!({"op": "presence.get", "room": "r"}));
    h.ok(1, json!({"op": "presence.subscribe", "room": "r"}));
    h.ok(1, json!({"op": "publish", "room": "r", "event": "e"}));
}

#[test]
fn presence_before_room_join_is_room_not_joined() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.join(2, "r");
    for op in ["presence.join", "presence.update", "presence.leave", "presence.get", "presence.subscribe"] {
        assert_eq!(h.err(1, json!({"op": op, "room": "r", "data": {}})), "ROOM_NOT_JOINED", "{op}");
    }
    assert_eq!(h.engine.room_counts("r"), rollcall::RoomCounts { connections: 1, members: 0, clients: 0, in_grace: 0 });
    // A room nobody joined is not created by the attempt.
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "ghost"})), "ROOM_NOT_JOINED");
    assert_eq!(h.engine.room_names(), vec!["r".to_string()]);
}

#[test]
fn error_frames_echo_the_ref_and_carry_a_message() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.send_raw(1, r#"{"op":"presence.join","ref":"abc","room":"r"}"#);
    let errors = h.take_type(1, "error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["ref"], "abc");
    assert_eq!(errors[0]["code"], "ROOM_NOT_JOINED");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
}
