//! Room events: subscribe by name or `*`, publish from clients and the host.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::Host;
use rollcall::{Credentials, Error, Identity};
use serde_json::{json, Value};

/// 1 publishes; 2 subscribes to "chat", 3 to "*", 4 to both, 5 to "other",
/// 6 has joined but subscribed to nothing.
fn setup() -> Host {
    let mut h = Host::default();
    for id in 1..=6 {
        h.open_as(id, &format!("u{id}"));
        h.join(id, "r");
    }
    h.ok(2, json!({"op": "subscribe", "room": "r", "event": "chat"}));
    h.ok(3, json!({"op": "subscribe", "room": "r", "event": "*"}));
    h.ok(4, json!({"op": "subscribe", "room": "r", "event": "chat"}));
    h.ok(4, json!({"op": "subscribe", "room": "r", "event": "*"}));
    h.ok(5, json!({"op": "subscribe", "room": "r", "event": "other"}));
    for id in 1..=6 {
        h.take(id);
    }
    h
}

#[test]
fn publish_delivers_the_message_once_per_subscriber() {
    let mut h = setup();
    let (sends, deliveries) = (h.sends, h.deliveries);
    let ack = h.ok(1, json!({"op": "publish", "room": "r", "event": "chat", "data": {"text": "hi"}}));
    assert_eq!(ack["recipients"], 3);
    assert_eq!(ack["op"], "publish");
    let expected = json!({
        "type": "message", "room": "r", "event": "chat",
        "timestamp": "2024-07-13T10:13:28.496Z",
        "from": {"id": "rollcall:1", "clientId": "u1"},
        "data": {"text": "hi"}
    });
    for id in [2, 3, 4] {
        assert_eq!(h.take_type(id, "message"), vec![expected.clone()], "connection {id}");
    }
    assert!(h.take(5).is_empty());
    assert!(h.take(6).is_empty());
    assert_eq!(h.take(1), vec![ack], "the publisher gets its ack only");
    // One Send for the ack and one for the message, however many recipients.
    assert_eq!(h.sends - sends, 2);
    assert_eq!(h.deliveries - deliveries, 1 + 3);
}

#[test]
fn wildcard_subscribers_get_every_event() {
    let mut h = setup();
    let ack = h.ok(1, json!({"op": "publish", "room": "r", "event": "other", "data": 7}));
    assert_eq!(ack["recipients"], 3);
    for id in [3, 4, 5] {
        let msgs = h.take_type(id, "message");
        assert_eq!(msgs.len(), 1, "connection {id}");
        assert_eq!(msgs[0]["event"], "other");
        assert_eq!(msgs[0]["data"], 7);
    }
    assert!(h.take(2).is_empty());
    let ack = h.ok(1, json!({"op": "publish", "room": "r", "event": "nobody-listens"}));
    assert_eq!(ack["recipients"], 2);
    let msgs = h.take_type(3, "message");
    assert_eq!(msgs[0]["data"], Value::Null, "no data is `data: null`");
}

#[test]
fn a_publisher_subscribed_to_its_own_event_receives_it() {
    let mut h = setup();
    let ack = h.ok(4, json!({"op": "publish", "room": "r", "event": "chat"}));
    assert_eq!(ack["recipients"], 3);
    let frames = h.take(4);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["type"], "ack");
    assert_eq!(frames[1]["type"], "message");
}

#[test]
fn messages_do_not_cross_rooms() {
    let mut h = setup();
    h.join(2, "elsewhere");
    h.ok(2, json!({"op": "subscribe", "room": "elsewhere", "event": "*"}));
    h.take(2);
    let ack = h.ok(1, json!({"op": "publish", "room": "r", "event": "x"}));
    assert_eq!(ack["recipients"], 2);
    assert!(h.take(2).is_empty());
    assert_eq!(h.engine.publish("elsewhere", "chat", None, h.now), Ok(1));
    h.pump();
    let msgs = h.take(2);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["room"], "elsewhere");
}

#[test]
fn unsubscribe_stops_one_subscription_only() {
    let mut h = setup();
    h.ok(4, json!({"op": "unsubscribe", "room": "r", "event": "*"}));
    let ack = h.ok(1, json!({"op": "publish", "room": "r", "event": "other"}));
    assert_eq!(ack["recipients"], 2, "3 and 5");
    assert!(h.take_type(4, "message").is_empty());
    let ack = h.ok(1, json!({"op": "publish", "room": "r", "event": "chat"}));
    assert_eq!(ack["recipients"], 3, "2, 3 and 4 (still on chat)");
    assert_eq!(h.take_type(4, "message").len(), 1);
    // Unsubscribing what one does not hold is an ack.
    h.ok(6, json!({"op": "unsubscribe", "room": "r", "event": "chat"}));
}

#[test]
fn subscribing_twice_delivers_once() {
    let mut h = setup();
    h.ok(2, json!({"op": "subscribe", "room": "r", "event": "chat"}));
    let ack = h.ok(1, json!({"op": "publish", "room": "r", "event": "chat"}));
    assert_eq!(ack["recipients"], 3);
    assert_eq!(h.take_type(2, "message").len(), 1);
}

#[test]
fn publishing_the_wildcard_is_a_bad_request() {
    let mut h = setup();
    let deliveries = h.deliveries;
    assert_eq!(h.err(1, json!({"op": "publish", "room": "r", "event": "*"})), "BAD_REQUEST");
    assert_eq!(h.deliveries, deliveries + 1, "only the error frame");
    for id in 2..=6 {
        assert!(h.take(id).is_empty());
    }
}

#[test]
fn publish_and_subscribe_need_the_room_joined() {
    let mut h = setup();
    h.open_as(7, "outsider");
    assert_eq!(h.err(7, json!({"op": "publish", "room": "r", "event": "chat"})), "ROOM_NOT_JOINED");
    assert_eq!(h.err(7, json!({"op": "subscribe", "room": "r", "event": "chat"})), "ROOM_NOT_JOINED");
    assert_eq!(h.err(7, json!({"op": "unsubscribe", "room": "r", "event": "chat"})), "ROOM_NOT_JOINED");
    for id in 2..=6 {
        assert!(h.take(id).is_empty());
    }
}

#[test]
fn from_has_a_null_client_id_for_an_anonymous_publisher() {
    let mut h = setup();
    h.open(7, Credentials::Identity(Identity::default()));
    h.join(7, "r");
    h.ok(7, json!({"op": "publish", "room": "r", "event": "chat", "data": "x"}));
    let msgs = h.take_type(2, "message");
    assert_eq!(msgs[0]["from"], json!({"id": "rollcall:7", "clientId": null}));
}

#[test]
fn host_publish_sends_from_null_and_returns_the_count() {
    let mut h = setup();
    let (sends, deliveries) = (h.sends, h.deliveries);
    h.now += 1000;
    let n = h.engine.publish("r", "chat", Some(r#"{"n": 1}"#), h.now).unwrap();
    assert_eq!(n, 3);
    h.pump();
    assert_eq!(h.sends - sends, 1, "one Send output for every recipient");
    assert_eq!(h.deliveries - deliveries, 3);
    let expected = json!({
        "type": "message", "room": "r", "event": "chat",
        "timestamp": "2024-07-13T10:13:29.496Z",
        "from": null, "data": {"n": 1}
    });
    for id in [2, 3, 4] {
        assert_eq!(h.take(id), vec![expected.clone()], "connection {id}");
    }
    assert!(h.take(5).is_empty());
    assert!(h.events.iter().all(|e| !matches!(e, rollcall::HostEvent::Closed { .. })));
}

#[test]
fn host_publish_to_an_unknown_room_or_without_subscribers_is_zero() {
    let mut h = setup();
    let sends = h.sends;
    assert_eq!(h.engine.publish("no-such-room", "chat", None, h.now), Ok(0));
    assert_eq!(h.engine.publish("r", "unheard-of", None, h.now), Ok(2), "the `*` subscribers, 3 and 4");
    h.pump();
    assert_eq!(h.sends - sends, 1);
}

#[test]
fn host_publish_rejects_bad_json_and_bad_names() {
    let mut h = setup();
    let now = h.now;
    assert!(matches!(h.engine.publish("r", "chat", Some("{not json"), now), Err(Error::InvalidJson(_))));
    assert!(matches!(h.engine.publish("r", "chat", Some(""), now), Err(Error::InvalidJson(_))));
    assert!(matches!(h.engine.publish("r", "chat", Some("1 2"), now), Err(Error::InvalidJson(_))));
    assert!(matches!(h.engine.publish("", "chat", None, now), Err(Error::InvalidName(_))));
    assert!(matches!(h.engine.publish("r", "", None, now), Err(Error::InvalidName(_))));
    assert!(matches!(h.engine.publish("r", "a\nb", None, now), Err(Error::InvalidName(_))));
    let long = "x".repeat(257);
    assert!(matches!(h.engine.publish(&long, "chat", None, now), Err(Error::InvalidName(_))));
    assert!(matches!(h.engine.publish("r", &long, None, now), Err(Error::InvalidName(_))));
    assert!(matches!(h.engine.publish("r", "*", None, now), Err(Error::InvalidName(_))));
    h.pump();
    for id in 1..=6 {
        assert!(h.take(id).is_empty(), "nothing was sent for a refused publish");
    }
}
