//! Liveness: a connection that shows no sign of life for `idleTimeoutMs`
//! is lost (4010, then grace); any frame or `handle_alive` keeps it.

mod common;

use common::{ident, Host};
use rollcall::{Config, ConnectionId, HostEvent};
use serde_json::json;

const IDLE: u64 = 30_000;
const GRACE: u64 = 15_000;

fn setup(config: Config) -> Host {
    common::alice_watched_by_bob(config)
}

/// Advances `ms` in steps of 10 s, bob showing life (a protocol pong) at each.
fn advance_with_bob_alive(h: &mut Host, ms: u64) {
    let end = h.now + ms;
    while h.now < end {
        let step = (end - h.now).min(10_000);
        h.advance(step);
        h.engine.handle_alive(ConnectionId(2), h.now);
    }
}

#[test]
fn defaults_make_a_silent_peer_gone_within_45_seconds() {
    let config = Config::default();
    assert_eq!((config.idle_timeout_ms, config.leave_grace_ms), (IDLE, GRACE));
    assert!(config.idle_timeout_ms + config.leave_grace_ms <= 45_000);
}

#[test]
fn a_silent_connection_is_closed_stale_then_leaves_at_the_end_of_its_grace() {
    let mut h = setup(Config::default());
    advance_with_bob_alive(&mut h, IDLE - 1);
    assert!(h.closes.is_empty(), "not yet: {:?}", h.closes);
    advance_with_bob_alive(&mut h, 1);
    assert_eq!(h.closed_with(1), Some(4010));
    assert!(h.closed_with(2).is_none());
    assert!(h.events.iter().any(|e| matches!(e, HostEvent::ConnectionLost { connection, .. } if connection.0 == 1)));
    assert_eq!(h.take(2), Vec::<serde_json::Value>::new(), "nothing while alice is in grace");
    assert_eq!(h.engine.room_counts("r").in_grace, 1);
    advance_with_bob_alive(&mut h, GRACE - 1);
    assert!(h.take(2).is_empty());
    advance_with_bob_alive(&mut h, 1);
    let got = h.take_type(2, "presence");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0]["event"].as_str(), got[0]["id"].as_str()), (Some("leave"), Some("rollcall:1")));
    assert_eq!(h.engine.room_counts("r").members, 0);
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn frames_and_pongs_are_signs_of_life() {
    let mut h = setup(Config::default());
    for _ in 0..12 {
        // alice pings (a frame); bob only answers protocol pings.
        h.advance(20_000);
        h.ok(1, json!({"op": "ping"}));
        h.engine.handle_alive(ConnectionId(2), h.now);
    }
    assert!(h.closes.is_empty(), "{:?}", h.closes);
    assert_eq!(h.engine.room_counts("r").members, 1);
}

#[test]
fn even_a_refused_frame_is_a_sign_of_life() {
    let mut h = setup(Config::default());
    h.advance(IDLE - 1000);
    h.send_raw(1, "not json");
    h.engine.handle_alive(ConnectionId(2), h.now);
    h.advance(IDLE - 1000);
    assert!(h.closed_with(1).is_none());
}

#[test]
fn an_idle_timeout_of_zero_never_closes() {
    let mut h = setup(Config { idle_timeout_ms: 0, ..Config::default() });
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(3_600_000);
    assert!(h.closes.is_empty());
}

#[test]
fn without_grace_a_stale_connection_leaves_at_once() {
    let mut h = setup(Config { leave_grace_ms: 0, ..Config::default() });
    advance_with_bob_alive(&mut h, IDLE);
    assert_eq!(h.closed_with(1), Some(4010));
    assert_eq!(h.take_type(2, "presence")[0]["event"], "leave");
    assert!(h.events.iter().any(|e| matches!(e, HostEvent::Closed { connection } if connection.0 == 1)));
}

#[test]
fn a_silent_provider_turns_its_objects_disconnected_within_the_bound() {
    let mut h = Host::new(Config::default());
    h.open(1, common::admin());
    h.open(2, ident("john", json!({}), json!({"london": ["riders/john"]})));
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "riders/john"}));
    h.ok(1, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged"}));
    h.take(1);
    let mut status = Vec::new();
    while h.now < common::T0 + 60_000 {
        h.advance(5_000);
        h.engine.handle_alive(ConnectionId(1), h.now);
        for f in h.take(1) {
            if f["type"] == "event" {
                status.push((h.now - common::T0, f["data"]["connectionStatus"].clone()));
            }
        }
    }
    assert_eq!(status, vec![(45_000, json!("disconnected"))]);
}
