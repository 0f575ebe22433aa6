//! What the host can ask the engine, and the events it is told.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::Host;
use rollcall::{ClientInfo, ConnectionId, Credentials, HostEvent, Identity, MemberInfo, RoomCounts};
use serde_json::json;

fn cid(n: u64) -> ConnectionId {
    ConnectionId(n)
}

#[test]
fn room_counts_count_connections_members_and_clients() {
    let mut h = Host::default();
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 0, members: 0, clients: 0, in_grace: 0 });
    h.open_as(1, "alice");
    h.open_as(2, "alice");
    h.open_as(3, "bob");
    h.open(4, Credentials::Identity(Identity::default()));
    for id in 1..=4 {
        h.join(id, "r");
    }
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 4, members: 0, clients: 0, in_grace: 0 });
    h.enter(1, "r", json!(null));
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 4, members: 1, clients: 1, in_grace: 0 });
    h.enter(2, "r", json!(null));
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 4, members: 2, clients: 1, in_grace: 0 });
    h.enter(3, "r", json!(null));
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 4, members: 3, clients: 2, in_grace: 0 });
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": 1}));
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 4, members: 3, clients: 2, in_grace: 0 });
    h.ok(3, json!({"op": "presence.leave", "room": "r"}));
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 4, members: 2, clients: 1, in_grace: 0 });
    // Serialised for a host's HTTP endpoint, camelCase with no member list.
    assert_eq!(
        serde_json::to_value(h.engine.room_counts("r")).unwrap(),
        json!({"connections": 4, "members": 2, "clients": 1, "inGrace": 0})
    );
    assert_eq!(h.engine.room_counts("unknown"), RoomCounts::default());
}

#[test]
fn members_are_ordered_by_connection_id() {
    let mut h = Host::default();
    for id in [30, 4, 17, 200, 5] {
        h.open_as(id, &format!("c{id}"));
        h.join(id, "r");
    }
    for id in [200, 17, 5, 30, 4] {
        h.enter(id, "r", json!({"n": id}));
    }
    let members = h.engine.members("r");
    let ids: Vec<u64> = members.iter().map(|m| m.connection.0).collect();
    assert_eq!(ids, vec![4, 5, 17, 30, 200]);
    assert_eq!(
        members[2],
        MemberInfo {
            connection: cid(17),
            id: "rollcall:17".into(),
            client_id: "c17".into(),
            data: Some(r#"{"n":17}"#.into()),
            in_grace: false,
        }
    );
    assert_eq!(
        serde_json::to_value(&members[0]).unwrap(),
        json!({"connection": 4, "id": "rollcall:4", "clientId": "c4", "data": "{\"n\":4}"})
    );
    // The client sees the same order in presence.get.
    let got = h.ok(4, json!({"op": "presence.get", "room": "r"}));
    let ids: Vec<&str> = got["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["rollcall:4", "rollcall:5", "rollcall:17", "rollcall:30", "rollcall:200"]);
    assert!(h.engine.members("unknown").is_empty());
}

#[test]
fn members_data_is_the_json_text_or_none() {
    let mut h = Host::default();
    h.open_as(1, "a");
    h.open_as(2, "b");
    h.join(1, "r");
    h.join(2, "r");
    h.send_raw(1, r#"{"op":"presence.join","room":"r","data":{"x": [1, 2]}}"#);
    h.send_raw(2, r#"{"op":"presence.join","room":"r"}"#);
    let members = h.engine.members("r");
    assert_eq!(members[0].data.as_deref(), Some(r#"{"x": [1, 2]}"#), "as the client sent it");
    assert_eq!(members[1].data, None);
}

#[test]
fn clients_are_ordered_by_client_id() {
    let mut h = Host::default();
    for (id, client) in [(1, "zed"), (2, "amy"), (3, "zed"), (4, "mia")] {
        h.open_as(id, client);
        h.join(id, "r");
        h.enter(id, "r", json!(null));
    }
    assert_eq!(
        h.engine.clients("r"),
        vec![
            ClientInfo { client_id: "amy".into(), connections: vec![cid(2)] },
            ClientInfo { client_id: "mia".into(), connections: vec![cid(4)] },
            ClientInfo { client_id: "zed".into(), connections: vec![cid(1), cid(3)] },
        ]
    );
}

#[test]
fn connection_count_counts_live_connections() {
    let mut h = Host::default();
    assert_eq!(h.engine.connection_count(), 0);
    h.open_as(1, "a");
    h.open(2, Credentials::None); // not yet authenticated, but live
    h.open_as(3, "c");
    assert_eq!(h.engine.connection_count(), 3);
    h.close(3);
    assert_eq!(h.engine.connection_count(), 2);
    // The engine's own closes count too: the unauthenticated one times out.
    h.advance(10_000);
    assert_eq!(h.closed_with(2), Some(4003));
    assert_eq!(h.engine.connection_count(), 1);
    // A live id cannot be opened twice.
    let again = h.engine.handle_open(cid(1), Credentials::Identity(Identity::default()), h.now);
    assert_eq!(again, Err(rollcall::Error::DuplicateConnection(1)));
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn room_names_are_sorted_and_live() {
    let mut h = Host::default();
    h.open_as(1, "a");
    h.open_as(2, "b");
    for room in ["zoo", "alpha", "mid/dle"] {
        h.join(1, room);
    }
    h.join(2, "beta");
    assert_eq!(h.engine.room_names(), vec!["alpha", "beta", "mid/dle", "zoo"]);
    h.ok(1, json!({"op": "room.leave", "room": "zoo"}));
    assert_eq!(h.engine.room_names(), vec!["alpha", "beta", "mid/dle"]);
    h.close(1);
    assert_eq!(h.engine.room_names(), vec!["beta"]);
    // Refused joins create nothing.
    h.err(2, json!({"op": "room.join", "room": ""}));
    assert_eq!(h.engine.room_names(), vec!["beta"]);
}

#[test]
fn host_events_for_a_join_update_leave() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.join(1, "r");
    h.enter(1, "r", json!({"v": 1}));
    h.ok(1, json!({"op": "presence.update", "room": "r", "data": {"v": 2}}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.ok(1, json!({"op": "room.leave", "room": "r"}));
    h.close(1);
    assert_eq!(
        h.events,
        vec![
            HostEvent::Authenticated { connection: cid(1), client_id: Some("alice".into()) },
            HostEvent::RoomJoined { connection: cid(1), room: "r".into() },
            HostEvent::PresenceJoined {
                room: "r".into(),
                connection: cid(1),
                client_id: "alice".into(),
                data: Some(r#"{"v":1}"#.into()),
            },
            HostEvent::PresenceUpdated {
                room: "r".into(),
                connection: cid(1),
                client_id: "alice".into(),
                data: Some(r#"{"v":2}"#.into()),
            },
            HostEvent::PresenceLeft { room: "r".into(), connection: cid(1), client_id: "alice".into() },
            HostEvent::RoomLeft { connection: cid(1), room: "r".into() },
            HostEvent::Closed { connection: cid(1) },
        ]
    );
}

#[test]
fn host_events_need_no_subscriber_and_refusals_emit_none() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.events.clear();
    h.err(1, json!({"op": "presence.join", "room": "r"}));
    h.send_raw(1, "garbage");
    assert!(h.events.is_empty(), "{:?}", h.events);
    h.join(1, "r");
    h.join(1, "r"); // joining again is an ack, not a second event
    h.enter(1, "r", json!(null));
    h.enter(1, "r", json!(null)); // the second is an update
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.ok(1, json!({"op": "presence.leave", "room": "r"})); // no second leave
    let kinds: Vec<&str> = h
        .events
        .iter()
        .map(|e| match e {
            HostEvent::RoomJoined { .. } => "room-joined",
            HostEvent::PresenceJoined { .. } => "joined",
            HostEvent::PresenceUpdated { .. } => "updated",
            HostEvent::PresenceLeft { .. } => "left",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["room-joined", "joined", "updated", "left"]);
}

#[test]
fn outputs_are_in_order_ack_before_broadcast_before_event() {
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.join(1, "r");
    h.join(2, "r");
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.engine.handle_frame(cid(1), br#"{"op":"presence.join","ref":1,"room":"r"}"#, h.now);
    let outputs: Vec<rollcall::Output> = h.engine.drain_outputs().collect();
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    match &outputs[0] {
        rollcall::Output::Send(t) => {
            assert_eq!(t.to, vec![cid(1)]);
            assert!(t.payload.contains(r#""type":"ack""#));
        }
        other => panic!("{other:?}"),
    }
    match &outputs[1] {
        rollcall::Output::Send(t) => {
            assert_eq!(t.to, vec![cid(2)]);
            assert!(t.payload.contains(r#""event":"join""#));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&outputs[2], rollcall::Output::Event(HostEvent::PresenceJoined { .. })));
    assert_eq!(h.engine.poll_output(), None);
}
