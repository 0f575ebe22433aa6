//! Presence join / update / leave / get, as seed 002 describes them.

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
            "id": "rollcall:1", "clientId": "alice", "data": {"username": "Bob"}
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
