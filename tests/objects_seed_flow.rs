//! Seed 000 end to end: John's own token (`per` and `dpv`), signed as a real
//! HS256 JWT and verified by the engine, drives his rider object's
//! `connectionStatus` as he connects, disconnects and reconnects.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::tokens::*;
use common::{Host, T0};
use rollcall::{ConnectionStatus, Credentials, HostEvent, Identity, ObjectInfo};
use serde_json::{json, Value};

const JOHN: &str = "deliveryRiders/johndoe-123";
/// 2024-07-13T10:13:28.496Z, the ISO form of `T0`.
const T0_ISO: &str = "2024-07-13T10:13:28.496Z";

/// The seed's token, with its `deliveryRides/` typo made `deliveryRiders/`
/// so that the read pattern, the write entry and the provider entry agree.
fn seed_claims() -> Value {
    json!({
        // user john doe is a delivery driver in London
        "sub": "johndoe-123",
        "exp": T0_SECS + 3600,
        "per": {
            "london": {
                "deliveryRiders/*": "R",
                "deliveryRiders/johndoe-123": "CU"
            }
        },
        "dpv": {
            "london": ["deliveryRiders/johndoe-123"]
        }
    })
}

fn john_token() -> Credentials {
    Credentials::Token(hs256(&seed_claims()))
}

/// Another rider, built the same way: reads every rider, writes herself.
fn rider_token(sub: &str) -> Credentials {
    let own = format!("deliveryRiders/{sub}");
    Credentials::Token(hs256(&json!({
        "sub": sub,
        "exp": T0_SECS + 3600,
        "per": {"london": {"deliveryRiders/*": "R", own.clone(): "CU"}},
        "dpv": {"london": [own]}
    })))
}

/// A dispatcher: reads every rider, provides for nothing.
fn dispatcher() -> Credentials {
    let per = serde_json::from_value(json!({"london": {"deliveryRiders/*": "R"}})).unwrap();
    Credentials::Identity(Identity { client_id: Some("dispatch".into()), per: Some(per), ..Identity::default() })
}

fn status_events(h: &Host) -> Vec<(String, String, ConnectionStatus)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            HostEvent::ObjectStatusChanged { realm, id, status } => Some((realm.clone(), id.clone(), *status)),
            _ => None,
        })
        .collect()
}

fn connection_status_event(status: &str, timestamp: &str) -> Value {
    json!({
        "type": "event",
        "realm": "london",
        "event": "connectionStatusChanged",
        "timestamp": timestamp,
        "id": JOHN,
        "from": null,
        "data": {"connectionStatus": status}
    })
}

#[test]
fn the_seed_token_verifies_and_carries_its_claims() {
    let mut h = Host::new(hs256_config());
    h.open(1, john_token());
    let welcome = h.take_type(1, "welcome");
    assert_eq!(welcome.len(), 1, "{:?}", h.closes);
    assert_eq!(welcome[0]["clientId"], "johndoe-123");
    assert_eq!(h.closes, vec![]);
    // The token's rights are in force: R on every rider, C on himself only.
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": JOHN, "data": {"lat": 51.5}}));
    assert_eq!(h.err(1, json!({"op": "object.create", "realm": "london", "id": "deliveryRiders/alice"})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "object.create", "realm": "paris", "id": JOHN})), "FORBIDDEN");
    // And no D at all, not even on himself.
    assert_eq!(h.err(1, json!({"op": "object.delete", "realm": "london", "id": JOHN})), "FORBIDDEN");
}

#[test]
fn the_seed_as_written_grants_writes_on_deliveryrides_not_deliveryriders() {
    // The seed's literal claims: `deliveryRides/` (sic) for write and dpv.
    let mut claims = seed_claims();
    claims["per"]["london"] = json!({"deliveryRiders/*": "R", "deliveryRides/johndoe-123": "CU"});
    claims["dpv"]["london"] = json!(["deliveryRides/johndoe-123"]);
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::Token(hs256(&claims)));
    // Ids are matched exactly: the typo'd entry does not cover the rider id.
    assert_eq!(h.err(1, json!({"op": "object.create", "realm": "london", "id": JOHN})), "FORBIDDEN");
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "deliveryRides/johndoe-123"}));
    assert_eq!(
        h.engine.object("london", "deliveryRides/johndoe-123").unwrap().connection_status,
        ConnectionStatus::Connected
    );
    // But he cannot read it back: R is on deliveryRiders/* only.
    assert_eq!(
        h.err(1, json!({"op": "object.get", "realm": "london", "id": "deliveryRides/johndoe-123"})),
        "FORBIDDEN"
    );
}

#[test]
fn john_creates_his_object_connected_and_riders_read_it() {
    let mut h = Host::new(hs256_config());
    h.open(1, john_token());
    h.open(2, rider_token("alice-456"));
    h.take(1);
    h.take(2);
    let ack = h
        .ok(1, json!({"op": "object.create", "realm": "london", "id": JOHN, "data": {"lat": 51.5072, "lng": -0.1276}}));
    assert_eq!(ack, json!({"type": "ack", "ref": 1, "op": "object.create"}));
    assert_eq!(
        h.engine.object("london", JOHN),
        Some(ObjectInfo {
            id: JOHN.into(),
            data: Some(r#"{"lat":51.5072,"lng":-0.1276}"#.into()),
            connection_status: ConnectionStatus::Connected,
            providers: 1,
        })
    );
    let expected = json!({"id": JOHN, "data": {"lat": 51.5072, "lng": -0.1276}, "connectionStatus": "connected"});
    let own = h.ok(1, json!({"op": "object.get", "realm": "london", "id": JOHN}));
    assert_eq!(own["object"], expected);
    let other = h.ok(2, json!({"op": "object.get", "realm": "london", "id": JOHN}));
    assert_eq!(other, json!({"type": "ack", "ref": 3, "op": "object.get", "object": expected}));
    // Alice may read John but not write him.
    assert_eq!(h.err(2, json!({"op": "object.update", "realm": "london", "id": JOHN, "data": 1})), "FORBIDDEN");
    // John updates himself; readers see the new data.
    h.ok(1, json!({"op": "object.update", "realm": "london", "id": JOHN, "data": {"lat": 51.51}}));
    let other = h.ok(2, json!({"op": "object.get", "realm": "london", "id": JOHN}));
    assert_eq!(other["object"]["data"], json!({"lat": 51.51}));
    assert_eq!(other["object"]["connectionStatus"], "connected");
    // Being created connected is not a status change.
    assert_eq!(status_events(&h), vec![]);
}

#[test]
fn a_watcher_of_connection_status_changed_sees_john_go_and_come_back() {
    let mut h = Host::new(hs256_config());
    h.open(9, dispatcher());
    let ack = h.ok(
        9,
        json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged", "pattern": "deliveryRiders/*"}),
    );
    assert_eq!(ack, json!({"type": "ack", "ref": 1, "op": "realm.subscribe"}));
    h.open(1, john_token());
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": JOHN, "data": {"lat": 51.5}}));
    h.take(9);

    h.close(1);
    assert_eq!(h.take(9), vec![connection_status_event("disconnected", T0_ISO)]);
    assert_eq!(h.engine.object("london", JOHN).unwrap().connection_status, ConnectionStatus::Disconnected);
    assert_eq!(h.engine.object("london", JOHN).unwrap().providers, 0);
    // The object outlives its provider, data and all.
    let read = h.ok(9, json!({"op": "object.get", "realm": "london", "id": JOHN}));
    assert_eq!(read["object"], json!({"id": JOHN, "data": {"lat": 51.5}, "connectionStatus": "disconnected"}));
    h.take(9);

    h.advance(61_000);
    h.open(3, john_token());
    assert_eq!(h.take(9), vec![connection_status_event("connected", "2024-07-13T10:14:29.496Z")]);
    assert_eq!(h.engine.object("london", JOHN).unwrap().connection_status, ConnectionStatus::Connected);
    assert_eq!(
        status_events(&h),
        vec![
            ("london".into(), JOHN.into(), ConnectionStatus::Disconnected),
            ("london".into(), JOHN.into(), ConnectionStatus::Connected),
        ]
    );
}

#[test]
fn a_watcher_with_another_pattern_hears_nothing_of_john() {
    let mut h = Host::new(hs256_config());
    let per = serde_json::from_value(json!({"*": {"**": "R"}})).unwrap();
    h.open(9, Credentials::Identity(Identity { per: Some(per), ..Identity::default() }));
    h.ok(9, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged", "pattern": "maintenanceVehicles/*"}));
    h.ok(9, json!({"op": "realm.subscribe", "realm": "paris", "event": "connectionStatusChanged"}));
    h.open(1, john_token());
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": JOHN}));
    h.take(9);
    h.close(1);
    h.open(2, john_token());
    assert_eq!(h.take(9), Vec::<Value>::new());
    // The host hears about it all the same.
    assert_eq!(status_events(&h).len(), 2);
}

#[test]
fn an_object_subscription_gets_the_snapshot_then_status_changes() {
    let mut h = Host::new(hs256_config());
    h.open(1, john_token());
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": JOHN, "data": {"lat": 51.5}}));
    h.open(2, rider_token("alice-456"));
    h.ok(2, json!({"op": "object.create", "realm": "london", "id": "deliveryRiders/alice-456"}));
    h.open(9, dispatcher());
    let ack = h.ok(9, json!({"op": "object.subscribe", "realm": "london", "pattern": "deliveryRiders/*"}));
    assert_eq!(
        ack,
        json!({"type": "ack", "ref": 3, "op": "object.subscribe", "objects": [
            {"id": "deliveryRiders/alice-456", "data": null, "connectionStatus": "connected"},
            {"id": JOHN, "data": {"lat": 51.5}, "connectionStatus": "connected"},
        ]})
    );
    h.take(9);

    h.close(1);
    let status = |s: &str, ts: &str| {
        json!({"type": "object", "realm": "london", "event": "status", "timestamp": ts,
               "object": {"id": JOHN, "data": {"lat": 51.5}, "connectionStatus": s}})
    };
    assert_eq!(h.take(9), vec![status("disconnected", T0_ISO)]);
    h.advance(1_000);
    h.open(3, john_token());
    assert_eq!(h.take(9), vec![status("connected", "2024-07-13T10:13:29.496Z")]);
    // Alice never changed: nothing about her.
    h.ok(3, json!({"op": "object.update", "realm": "london", "id": JOHN, "data": {"lat": 52}}));
    assert_eq!(
        h.take(9),
        vec![json!({"type": "object", "realm": "london", "event": "update", "timestamp": "2024-07-13T10:13:29.496Z",
                    "object": {"id": JOHN, "data": {"lat": 52}, "connectionStatus": "connected"}})]
    );
}

#[test]
fn john_authenticating_late_with_an_auth_frame_turns_his_object_connected() {
    let mut h = Host::new(hs256_config());
    h.open(1, john_token());
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": JOHN}));
    h.close(1);
    h.open(9, dispatcher());
    h.ok(9, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged", "pattern": "deliveryRiders/*"}));
    h.take(9);
    // Opened without credentials: not a provider until `auth` succeeds.
    h.open(2, Credentials::None);
    assert_eq!(h.engine.object("london", JOHN).unwrap().connection_status, ConnectionStatus::Disconnected);
    let token = hs256(&seed_claims());
    h.ok(2, json!({"op": "auth", "token": token}));
    assert_eq!(h.take(9), vec![connection_status_event("connected", T0_ISO)]);
    assert_eq!(h.engine.object("london", JOHN).unwrap().providers, 1);
    // An auth timeout on another unauthenticated socket changes nothing.
    h.open(3, Credentials::None);
    h.advance(10_000);
    assert_eq!(h.closed_with(3), Some(4003));
    assert_eq!(h.take(9), Vec::<Value>::new());
    // His token expiring ends his provision like a close does.
    h.advance(3_600_000 + LEEWAY_MS);
    assert_eq!(h.closed_with(2), Some(4002));
    assert_eq!(h.engine.object("london", JOHN).unwrap().connection_status, ConnectionStatus::Disconnected);
    let late = T0 + 3_600_000 + LEEWAY_MS - 496;
    let got = h.take(9);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["data"], json!({"connectionStatus": "disconnected"}));
    assert_eq!(got[0]["timestamp"], rollcall::time::iso8601(late));
}
