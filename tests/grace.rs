//! Leave grace: a lost connection keeps its memberships, subscriptions and
//! provider role for `leaveGraceMs` with nothing sent to others; then one
//! `leave`. Intentional ends are immediate.

mod common;

use common::{ident, Host};
use rollcall::{Config, ConnectionId, HostEvent, RoomCounts};
use serde_json::{json, Value};

const GRACE: u64 = 15_000;

fn setup(config: Config) -> Host {
    common::alice_watched_by_bob(Config { idle_timeout_ms: 0, ..config })
}

#[test]
fn a_lost_member_stays_silently_and_leaves_once_when_its_grace_ends() {
    let mut h = setup(Config::default());
    h.lose(1);
    assert!(h.take(2).is_empty());
    assert!(h.closes.is_empty(), "the socket is already gone: nothing to close");
    assert!(matches!(h.events[..], [HostEvent::ConnectionLost { connection: ConnectionId(1), grace_until }]
        if grace_until == common::T0 + GRACE));
    h.advance(GRACE - 1);
    assert!(h.take(2).is_empty());
    h.advance(1);
    let got = h.take(2);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0]["event"].as_str(), got[0]["id"].as_str()), (Some("leave"), Some("rollcall:1")));
    assert!(h.events.iter().any(|e| matches!(e, HostEvent::Closed { connection: ConnectionId(1) })));
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn counts_members_and_presence_get_say_who_is_in_grace() {
    let mut h = setup(Config::default());
    h.lose(1);
    assert_eq!(h.engine.room_counts("r"), RoomCounts { connections: 2, members: 1, clients: 1, in_grace: 1 });
    assert!(h.engine.members("r")[0].in_grace);
    assert!(h.engine.in_grace(ConnectionId(1)));
    let got = h.ok(2, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(got["members"][0]["inGrace"], true);
    assert_eq!(got["members"][0]["id"], "rollcall:1");
    // A live member carries no flag.
    h.enter(2, "r", json!({"n": 2}));
    let got = h.ok(2, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(got["members"][1].get("inGrace"), None);
}

#[test]
fn intentional_ends_are_immediate() {
    for end in ["close", "presence.leave", "room.leave"] {
        let mut h = setup(Config::default());
        match end {
            "close" => h.close(1),
            op => {
                h.ok(1, json!({"op": op, "room": "r"}));
            }
        }
        let got = h.take_type(2, "presence");
        assert_eq!(got.len(), 1, "{end}: {got:?}");
        assert_eq!(got[0]["event"], "leave", "{end}");
    }
}

#[test]
fn a_close_after_the_loss_does_not_end_the_grace() {
    let mut h = setup(Config::default());
    h.lose(1);
    h.close(1);
    h.lose(1);
    assert!(h.take(2).is_empty());
    assert_eq!(h.engine.room_counts("r").in_grace, 1);
    h.advance(GRACE);
    assert_eq!(h.take_type(2, "presence").len(), 1);
}

#[test]
fn frames_of_a_lost_connection_are_ignored() {
    let mut h = setup(Config::default());
    h.lose(1);
    h.send_raw(1, r#"{"op":"presence.update","room":"r","data":{"n":9}}"#);
    assert!(h.take(1).is_empty() && h.take(2).is_empty());
}

#[test]
fn a_grace_of_zero_is_a_leave_at_once() {
    let mut h = setup(Config { leave_grace_ms: 0, ..Config::default() });
    h.lose(1);
    assert_eq!(h.take_type(2, "presence")[0]["event"], "leave");
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn a_connection_lost_before_it_authenticated_is_gone_at_once() {
    let mut h = setup(Config::default());
    h.open(3, rollcall::Credentials::None);
    h.lose(3);
    assert_eq!(h.engine.connection_count(), 2);
}

#[test]
fn an_expiring_token_ends_the_grace_early() {
    let mut h = setup(Config::default());
    let identity = rollcall::Identity {
        client_id: Some("carol".into()),
        expires_at: Some(common::T0 + 5_000),
        ..Default::default()
    };
    h.open(3, rollcall::Credentials::Identity(identity));
    h.join(3, "r");
    h.enter(3, "r", json!({}));
    h.take(2);
    h.lose(3);
    h.advance(5_000);
    let got: Vec<Value> = h.take_type(2, "presence");
    assert_eq!((got.len(), got[0]["event"].as_str()), (1, Some("leave")));
}

/// A data provider whose link blinks (lost, then back within the grace on a
/// new connection) never turns its objects `disconnected`.
#[test]
fn a_provider_blinking_within_grace_changes_no_status() {
    let mut h = Host::new(Config { idle_timeout_ms: 0, ..Config::default() });
    h.open(1, common::admin());
    let john = || ident("john", json!({}), json!({"london": ["riders/john"]}));
    h.open(2, john());
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "riders/john"}));
    h.ok(1, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged"}));
    h.take(1);
    h.events.clear();
    h.lose(2);
    h.advance(GRACE - 1);
    h.open(3, john());
    h.advance(GRACE * 4);
    assert!(h.take(1).is_empty());
    assert!(!h.events.iter().any(|e| matches!(e, HostEvent::ObjectStatusChanged { .. })), "{:?}", h.events);
    assert_eq!(h.engine.object("london", "riders/john").unwrap().providers, 1);
    // Lost for good: disconnected at the end of that grace only.
    h.lose(3);
    h.advance(GRACE - 1);
    assert!(h.take(1).is_empty());
    h.advance(1);
    assert_eq!(h.take(1)[0]["data"]["connectionStatus"], "disconnected");
}
