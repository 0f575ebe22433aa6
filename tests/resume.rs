//! Resume: a new connection presenting a lost connection's resume token
//! (same clientId) takes over its rooms, member (same id and data),
//! subscriptions and provider role; others see nothing.

mod common;

use common::{ident, Host};
use rollcall::{Config, ConnectionId, HostEvent};
use serde_json::{json, Value};

const GRACE: u64 = 15_000;

fn config() -> Config {
    Config { idle_timeout_ms: 0, resume_secret: Some("a test key of thirty-two bytes!!".into()), ..Config::default() }
}

/// alice (1) present in "r" and subscribed to it and to its "chat"; bob
/// (2) subscribed. Returns alice's resume token.
fn setup(h: &mut Host) -> String {
    h.open_as(1, "alice");
    let token = h.take_type(1, "welcome")[0]["resumeToken"].as_str().expect("a resume token").to_string();
    h.open_as(2, "bob");
    for id in [1, 2] {
        h.join(id, "r");
        h.ok(id, json!({"op": "presence.subscribe", "room": "r"}));
    }
    h.enter(1, "r", json!({"n": 1}));
    h.ok(1, json!({"op": "subscribe", "room": "r", "event": "chat"}));
    h.take(1);
    h.take(2);
    h.events.clear();
    token
}

fn resume(h: &mut Host, id: u64, token: &str) -> Value {
    h.request(id, json!({"op": "resume", "token": token}))
}

#[test]
fn the_welcome_carries_a_256_bit_token_only_with_a_secret() {
    let mut h = Host::new(config());
    h.open_as(1, "alice");
    h.open_as(2, "alice");
    let t1 = h.take(1)[0]["resumeToken"].as_str().unwrap().to_string();
    let t2 = h.take(2)[0]["resumeToken"].as_str().unwrap().to_string();
    assert_eq!(t1.len(), 64);
    assert!(t1.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(t1, t2);
    let mut h = Host::new(Config::default());
    h.open_as(1, "alice");
    assert_eq!(h.take(1)[0].get("resumeToken"), None);
}

#[test]
fn a_resume_within_grace_takes_over_silently() {
    let mut h = Host::new(config());
    let token = setup(&mut h);
    h.lose(1);
    h.advance(GRACE - 1);
    h.open_as(3, "alice");
    let welcome = h.take(3);
    let next = welcome[0]["resumeToken"].as_str().unwrap().to_string();
    let ack = resume(&mut h, 3, &token);
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!((ack["id"].as_str(), ack["resumeToken"].as_str()), (Some("rollcall:1"), Some(next.as_str())));
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, HostEvent::Resumed { connection: ConnectionId(3), previous: ConnectionId(1) })));
    h.advance(GRACE * 4);
    assert!(h.take(2).is_empty(), "bob saw nothing");
    let members = h.engine.members("r");
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].connection, members[0].id.as_str()), (ConnectionId(3), "rollcall:1"));
    assert_eq!(members[0].data.as_deref(), Some(r#"{"n":1}"#));
    assert!(!members[0].in_grace);
    assert_eq!(h.engine.room_counts("r").connections, 2);
    // Its subscriptions came along: presence and events.
    h.take(3);
    h.enter(2, "r", json!({"n": 2}));
    assert_eq!(h.take_type(3, "presence")[0]["id"], "rollcall:2");
    h.ok(2, json!({"op": "publish", "room": "r", "event": "chat", "data": "hi"}));
    assert_eq!(h.take_type(3, "message")[0]["data"], "hi");
    // And the member is alice's own: she updates it.
    h.take(2);
    h.ok(3, json!({"op": "presence.update", "room": "r", "data": {"n": 3}}));
    let got = h.take_type(2, "presence");
    assert_eq!((got[0]["event"].as_str(), got[0]["id"].as_str()), (Some("update"), Some("rollcall:1")));
}

#[test]
fn a_token_is_single_use_and_the_next_one_works() {
    let mut h = Host::new(config());
    let token = setup(&mut h);
    h.lose(1);
    h.open_as(3, "alice");
    let next = h.take(3)[0]["resumeToken"].as_str().unwrap().to_string();
    assert_eq!(resume(&mut h, 3, &token)["type"], "ack");
    h.lose(3);
    h.open_as(4, "alice");
    h.take(4);
    assert_eq!(h.err(4, json!({"op": "resume", "token": token})), "RESUME_FAILED", "a replayed token");
    assert_eq!(resume(&mut h, 4, &next)["id"], "rollcall:1");
    assert!(h.take(2).is_empty());
}

#[test]
fn a_stolen_token_for_another_client_id_fails_and_changes_nothing() {
    let mut h = Host::new(config());
    let token = setup(&mut h);
    h.lose(1);
    h.open_as(3, "mallory");
    h.take(3);
    assert_eq!(h.err(3, json!({"op": "resume", "token": token})), "RESUME_FAILED");
    assert_eq!(h.engine.room_counts("r").in_grace, 1);
    // alice herself still can.
    h.open_as(4, "alice");
    assert_eq!(resume(&mut h, 4, &token)["type"], "ack");
    assert!(h.take(2).is_empty());
}

#[test]
fn after_the_grace_a_token_fails_and_the_member_has_left() {
    let mut h = Host::new(config());
    let token = setup(&mut h);
    h.lose(1);
    h.advance(GRACE);
    assert_eq!(h.take_type(2, "presence")[0]["event"], "leave");
    h.open_as(3, "alice");
    assert_eq!(h.err(3, json!({"op": "resume", "token": token})), "RESUME_FAILED");
    assert_eq!(h.err(3, json!({"op": "resume", "token": "00"})), "RESUME_FAILED");
    assert!(h.closes.is_empty(), "a failed resume is not a violation that closes");
}

#[test]
fn a_resume_must_come_before_joining_anything() {
    let mut h = Host::new(config());
    let token = setup(&mut h);
    h.lose(1);
    h.open_as(3, "alice");
    h.join(3, "other");
    assert_eq!(h.err(3, json!({"op": "resume", "token": token})), "RESUME_FAILED");
    assert_eq!(h.engine.room_counts("r").in_grace, 1);
}

#[test]
fn resuming_a_connection_not_yet_known_lost_closes_it_4011() {
    let mut h = Host::new(config());
    let token = setup(&mut h);
    h.open_as(3, "alice");
    assert_eq!(resume(&mut h, 3, &token)["type"], "ack");
    assert_eq!(h.closed_with(1), Some(4011));
    assert!(h.take(2).is_empty());
    assert_eq!(h.engine.room_counts("r").members, 1);
    // The host's later close of the old socket changes nothing.
    h.close(1);
    assert!(h.take(2).is_empty());
}

#[test]
fn a_provider_resumed_keeps_its_objects_connected() {
    let mut h = Host::new(config());
    h.open(1, common::admin());
    let john = || ident("john", json!({}), json!({"london": ["riders/john"]}));
    h.open(2, john());
    let token = h.take(2)[0]["resumeToken"].as_str().unwrap().to_string();
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "riders/john"}));
    h.ok(1, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged"}));
    h.take(1);
    h.events.clear();
    h.lose(2);
    h.open(3, john());
    assert_eq!(resume(&mut h, 3, &token)["type"], "ack");
    h.advance(GRACE * 2);
    assert!(h.take(1).is_empty());
    assert!(!h.events.iter().any(|e| matches!(e, HostEvent::ObjectStatusChanged { .. })));
    assert_eq!(h.engine.object("london", "riders/john").unwrap().providers, 1);
    h.close(3);
    assert_eq!(h.take(1)[0]["data"]["connectionStatus"], "disconnected");
}

#[test]
fn realm_subscriptions_come_along() {
    let mut h = Host::new(config());
    h.open(1, ident("alice", json!({"london": {"**": "CRUD"}}), Value::Null));
    let token = h.take(1)[0]["resumeToken"].as_str().unwrap().to_string();
    h.ok(1, json!({"op": "object.subscribe", "realm": "london"}));
    h.lose(1);
    h.open(2, ident("alice", json!({"london": {"**": "CRUD"}}), Value::Null));
    assert_eq!(resume(&mut h, 2, &token)["type"], "ack");
    h.take(2);
    h.open(3, common::admin());
    h.ok(3, json!({"op": "object.create", "realm": "london", "id": "a"}));
    assert_eq!(h.take_type(2, "object")[0]["object"]["id"], "a");
}

#[test]
fn a_resume_keeps_the_budget_charge_of_glob_subscriptions_and_nothing_goes_to_the_lost() {
    // Found by the fuzz harness once it resumed: the resumer took the
    // subscriptions but not their glob charge, so the running engine's
    // budget drifted from a restored one by 256 KiB.
    let mut h = Host::new(config());
    h.open(1, common::admin());
    let token = h.take(1)[0]["resumeToken"].as_str().unwrap().to_string();
    h.ok(1, json!({"op": "object.subscribe", "realm": "r1", "pattern": "a?/*/b"}));
    h.open_as(2, "bob");
    h.join(2, "r");
    h.join(1, "r");
    h.ok(1, json!({"op": "subscribe", "room": "r", "event": "chat"}));
    h.take(1);
    h.lose(1);
    // Lost: a publish neither reaches it nor counts it.
    assert_eq!(h.request(2, json!({"op": "publish", "room": "r", "event": "chat", "data": 1}))["recipients"], 0);
    assert!(h.take(1).is_empty());
    let before = h.engine.stored_bytes();
    h.open(3, common::admin());
    assert_eq!(resume(&mut h, 3, &token)["type"], "ack");
    let restored = rollcall::Engine::restore(config(), &h.engine.snapshot()).unwrap();
    assert_eq!(h.engine.stored_bytes(), restored.stored_bytes());
    assert!(h.engine.stored_bytes() >= before, "the glob subscription's charge moved with it");
    // The resumer is reached again.
    assert_eq!(h.request(2, json!({"op": "publish", "room": "r", "event": "chat", "data": 2}))["recipients"], 1);
}
