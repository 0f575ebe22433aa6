//! Closing a connection (or leaving a room) takes it out of every presence
//! set it was in, tells the others, and leaves no ghost behind.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::Host;
use rollcall::{ConnectionId, HostEvent, RoomCounts};
use serde_json::{json, Value};

fn cid(n: u64) -> ConnectionId {
    ConnectionId(n)
}

/// Alice (1) is a member of rooms a, b and c; bob (2) watches a and b,
/// carol (3) watches c.
fn three_rooms() -> Host {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.open_as(3, "carol");
    for room in ["a", "b", "c"] {
        h.join(1, room);
        h.enter(1, room, json!({"in": room}));
    }
    for room in ["a", "b"] {
        h.join(2, room);
        h.ok(2, json!({"op": "presence.subscribe", "room": room}));
    }
    h.join(3, "c");
    h.enter(3, "c", json!(null));
    h.ok(3, json!({"op": "presence.subscribe", "room": "c"}));
    h.take(1);
    h.take(2);
    h.take(3);
    h.events.clear();
    h
}

/// Frames with their `epoch` and `seq` checked present and taken off (the
/// numbering has its own tests, tests/sequence.rs).
fn unnumbered(frames: Vec<Value>) -> Vec<Value> {
    frames
        .into_iter()
        .map(|mut f| {
            let o = f.as_object_mut().expect("a frame is an object");
            assert!(o.remove("epoch").is_some_and(|e| e.is_u64()) && o.remove("seq").is_some_and(|s| s.is_u64()));
            f
        })
        .collect()
}

fn leave(room: &str, id: &str, client_id: &str, data: Value) -> Value {
    json!({
        "type": "presence", "room": room, "event": "leave",
        "timestamp": "2024-07-13T10:13:28.496Z",
        "id": id, "clientId": client_id, "data": data
    })
}

#[test]
fn close_broadcasts_leave_for_every_presence_set() {
    let mut h = three_rooms();
    h.close(1);
    assert_eq!(
        unnumbered(h.take(2)),
        vec![
            leave("a", "rollcall:1", "alice", json!({"in": "a"})),
            leave("b", "rollcall:1", "alice", json!({"in": "b"}))
        ]
    );
    assert_eq!(unnumbered(h.take(3)), vec![leave("c", "rollcall:1", "alice", json!({"in": "c"}))]);
    for room in ["a", "b"] {
        assert_eq!(
            h.engine.room_counts(room),
            RoomCounts { connections: 1, members: 0, clients: 0, in_grace: 0 },
            "{room}"
        );
    }
    assert_eq!(h.engine.room_counts("c"), RoomCounts { connections: 1, members: 1, clients: 1, in_grace: 0 });
    assert_eq!(h.engine.connection_count(), 2);
    // The host does not need to close anything: it closed the socket itself.
    assert!(h.closes.is_empty());
}

#[test]
fn close_reports_presence_left_room_left_then_closed() {
    let mut h = three_rooms();
    h.close(1);
    let mut expected = Vec::new();
    for room in ["a", "b", "c"] {
        expected.push(HostEvent::PresenceLeft { room: room.into(), connection: cid(1), client_id: "alice".into() });
        expected.push(HostEvent::RoomLeft { connection: cid(1), room: room.into() });
    }
    expected.push(HostEvent::Closed { connection: cid(1) });
    assert_eq!(h.events, expected);
}

#[test]
fn room_leave_leaves_that_room_only() {
    let mut h = three_rooms();
    h.ok(1, json!({"op": "room.leave", "room": "b"}));
    assert_eq!(unnumbered(h.take(2)), vec![leave("b", "rollcall:1", "alice", json!({"in": "b"}))]);
    assert!(h.take(3).is_empty());
    assert_eq!(
        h.events,
        vec![
            HostEvent::PresenceLeft { room: "b".into(), connection: cid(1), client_id: "alice".into() },
            HostEvent::RoomLeft { connection: cid(1), room: "b".into() },
        ]
    );
    assert_eq!(h.engine.room_counts("a").members, 1);
    assert_eq!(h.engine.room_counts("b"), RoomCounts { connections: 1, members: 0, clients: 0, in_grace: 0 });
    assert_eq!(h.engine.room_counts("c").members, 2);
    // The connection lives on, outside b: presence there needs a new join.
    assert_eq!(h.engine.connection_count(), 3);
    assert_eq!(h.err(1, json!({"op": "presence.get", "room": "b"})), "ROOM_NOT_JOINED");
    h.ok(1, json!({"op": "presence.get", "room": "a"}));
}

#[test]
fn room_leave_drops_the_leavers_subscriptions_there() {
    let mut h = three_rooms();
    h.ok(2, json!({"op": "subscribe", "room": "a", "event": "*"}));
    h.ok(2, json!({"op": "room.leave", "room": "a"}));
    h.take(2);
    // Neither presence changes nor messages in `a` reach bob any more.
    h.ok(1, json!({"op": "presence.update", "room": "a", "data": 2}));
    let ack = h.ok(1, json!({"op": "publish", "room": "a", "event": "x"}));
    assert_eq!(ack["recipients"], 0);
    assert!(h.take(2).is_empty());
    // ... but in `b` they still do.
    h.ok(1, json!({"op": "presence.update", "room": "b", "data": 2}));
    assert_eq!(h.take_type(2, "presence").len(), 1);
}

#[test]
fn room_leave_when_not_joined_is_an_ack_and_changes_nothing() {
    let mut h = three_rooms();
    h.ok(2, json!({"op": "room.leave", "room": "c"}));
    assert!(h.events.is_empty());
    assert_eq!(h.engine.room_counts("c"), RoomCounts { connections: 2, members: 2, clients: 2, in_grace: 0 });
}

#[test]
fn a_closed_connection_receives_nothing_further() {
    let mut h = three_rooms();
    h.close(2);
    h.take(2);
    h.ok(1, json!({"op": "presence.update", "room": "a", "data": 1}));
    h.engine.publish("a", "x", None, h.now).unwrap();
    h.pump();
    h.close(3);
    h.ok(1, json!({"op": "presence.leave", "room": "b"}));
    assert!(h.take(2).is_empty());
    // Frames from the closed connection are ignored: no reply, no state.
    let deliveries = h.deliveries;
    h.send_raw(2, r#"{"op":"room.join","ref":1,"room":"a"}"#);
    h.send_raw(2, "not json");
    assert_eq!(h.deliveries, deliveries);
    assert!(h.take(2).is_empty());
    assert_eq!(h.engine.room_counts("a").connections, 1);
}

#[test]
fn close_twice_or_unknown_is_harmless() {
    let mut h = three_rooms();
    h.close(1);
    let events = h.events.len();
    h.take(2);
    h.take(3);
    h.close(1);
    h.close(99);
    assert_eq!(h.events.len(), events, "no second Closed, no event for an unknown id");
    assert!(h.take(2).is_empty());
    assert!(h.take(3).is_empty());
    assert!(h.closes.is_empty());
    assert_eq!(h.engine.connection_count(), 2);
    // The id can be reused for a fresh connection afterwards.
    h.open_as(1, "alice");
    assert_eq!(h.engine.connection_count(), 3);
    assert!(h.engine.room_names().contains(&"a".to_string()));
    assert_eq!(h.engine.room_counts("a").connections, 1);
}

#[test]
fn no_ghosts_counts_and_members_agree() {
    let mut h = Host::default();
    for id in 1..=6 {
        // Two devices per clientId.
        h.open_as(id, &format!("user{}", id.div_ceil(2)));
        h.join(id, "r");
        h.enter(id, "r", json!({"d": id}));
    }
    for id in [1, 4, 5] {
        h.close(id);
    }
    h.ok(6, json!({"op": "room.leave", "room": "r"}));
    let members = h.engine.members("r");
    let conns: Vec<u64> = members.iter().map(|m| m.connection.0).collect();
    assert_eq!(conns, vec![2, 3]);
    let clients = h.engine.clients("r");
    let names: Vec<&str> = clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(names, vec!["user1", "user2"]);
    assert_eq!(clients[1].connections, vec![cid(3)]);
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 2, members: 2, clients: 2, in_grace: 0 });
    assert_eq!(h.engine.connection_count(), 3);
    let got = h.ok(2, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(got["members"].as_array().map(Vec::len), Some(2));
}

#[test]
fn an_empty_room_disappears_from_room_names() {
    let mut h = three_rooms();
    assert_eq!(h.engine.room_names(), vec!["a", "b", "c"]);
    h.close(2);
    assert_eq!(h.engine.room_names(), vec!["a", "b", "c"], "alice is still in a and b");
    h.close(1);
    assert_eq!(h.engine.room_names(), vec!["c"]);
    h.ok(3, json!({"op": "room.leave", "room": "c"}));
    assert!(h.engine.room_names().is_empty());
    assert_eq!(h.engine.room_counts("c"), RoomCounts::default());
    assert!(h.engine.members("c").is_empty());
    assert!(h.engine.clients("c").is_empty());
    // Joining again starts from an empty room.
    h.join(3, "c");
    let got = h.ok(3, json!({"op": "presence.get", "room": "c"}));
    assert_eq!(got["members"], json!([]));
}

#[test]
fn a_room_of_joined_non_members_stays_until_the_last_leaves() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.join(1, "quiet");
    h.join(2, "quiet");
    h.close(1);
    assert_eq!(h.engine.room_names(), vec!["quiet"]);
    h.close(2);
    assert!(h.engine.room_names().is_empty());
    assert_eq!(h.engine.connection_count(), 0);
}
