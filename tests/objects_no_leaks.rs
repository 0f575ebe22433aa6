//! Nothing about an object reaches a connection without R on it: not in a
//! snapshot, a change, a `connectionStatusChanged` event, a published realm
//! event or a list; and once a refresh takes R away, nothing more at all.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::tokens::*;
use common::{ident, Host};
use rollcall::Credentials;
use serde_json::{json, Value};

const ADMIN: u64 = 1;
/// Reads everything: the control, showing every event was sent at all.
const ALL: u64 = 2;
/// Reads `deliveryRiders/a*` only.
const NARROW: u64 = 3;
const PROVIDER_A: u64 = 10;
const PROVIDER_B: u64 = 11;

fn narrow_per() -> Value {
    json!({"london": {"deliveryRiders/a*": "R"}})
}

/// The id a frame is about, if any.
fn id_of(m: &Value) -> Option<&str> {
    match m["type"].as_str() {
        Some("object") => m["object"]["id"].as_str(),
        Some("event") => m["id"].as_str(),
        _ => None,
    }
}

fn readable(id: &str) -> bool {
    id.starts_with("deliveryRiders/a") && !id["deliveryRiders/".len()..].contains('/')
}

/// Subscribes `conn` to objects, `connectionStatusChanged` and every realm
/// event in london, all with pattern `**`; returns the snapshot ids.
fn subscribe_all(h: &mut Host, conn: u64) -> Vec<String> {
    let ack = h.ok(conn, json!({"op": "object.subscribe", "realm": "london", "pattern": "**"}));
    h.ok(
        conn,
        json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged", "pattern": "**"}),
    );
    h.ok(conn, json!({"op": "realm.subscribe", "realm": "london", "event": "*", "pattern": "**"}));
    h.take(conn);
    ack["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
}

/// Creates, updates, status changes, deletes and published events, on
/// readable and unreadable ids alike.
fn script(h: &mut Host) {
    let create = |h: &mut Host, id: &str| {
        h.ok(ADMIN, json!({"op": "object.create", "realm": "london", "id": id, "data": {"n": id}}))
    };
    create(h, "deliveryRiders/a3");
    create(h, "deliveryRiders/b2");
    create(h, "deliveryRiders/a/nested");
    create(h, "other/a1");
    for id in ["deliveryRiders/a1", "deliveryRiders/b1", "other/a1"] {
        h.ok(ADMIN, json!({"op": "object.update", "realm": "london", "id": id, "data": {"v": 2}}));
    }
    // Providers for a1 and b1 come and go.
    h.open(PROVIDER_A, ident("pa", Value::Null, json!({"london": ["deliveryRiders/a1"]})));
    h.open(PROVIDER_B, ident("pb", Value::Null, json!({"london": ["deliveryRiders/b*", "other/*"]})));
    h.close(PROVIDER_A);
    h.close(PROVIDER_B);
    for id in ["deliveryRiders/a2", "deliveryRiders/b1", "other/a1"] {
        h.ok(ADMIN, json!({"op": "object.delete", "realm": "london", "id": id}));
    }
    for id in ["deliveryRiders/a1", "deliveryRiders/b1", "deliveryRiders/zzz", "other/a1"] {
        h.ok(ADMIN, json!({"op": "realm.publish", "realm": "london", "event": "honk", "id": id, "data": 1}));
    }
}

fn setup() -> Host {
    let mut h = Host::new(hs256_config());
    h.open(ADMIN, ident("admin", json!({"*": {"**": "CRUD"}}), Value::Null));
    for id in ["deliveryRiders/a1", "deliveryRiders/a2", "deliveryRiders/b1", "other/x"] {
        h.ok(ADMIN, json!({"op": "object.create", "realm": "london", "id": id}));
    }
    h.open(ALL, ident("all", json!({"london": {"**": "R"}}), Value::Null));
    h
}

#[test]
fn a_narrow_reader_gets_only_what_it_may_read() {
    let mut h = setup();
    h.open(NARROW, ident("narrow", narrow_per(), Value::Null));
    assert_eq!(subscribe_all(&mut h, ALL).len(), 4);
    assert_eq!(subscribe_all(&mut h, NARROW), vec!["deliveryRiders/a1", "deliveryRiders/a2"]);
    script(&mut h);
    let all = h.take(ALL);
    let narrow = h.take(NARROW);
    // Every frame the narrow reader got is about an id it may read ...
    for m in &narrow {
        let id = id_of(m).unwrap_or_else(|| panic!("unexpected frame {m}"));
        assert!(readable(id), "leaked {m}");
    }
    // ... and it got exactly what the full reader got about those ids.
    let expected: Vec<&Value> = all.iter().filter(|m| id_of(m).is_some_and(readable)).collect();
    assert_eq!(narrow.iter().collect::<Vec<_>>(), expected);
    // The control saw the unreadable ones: the script did send them.
    let kinds = |frames: &[Value], unreadable: bool| {
        let mut k: Vec<String> = frames
            .iter()
            .filter(|m| id_of(m).is_some_and(|id| readable(id) != unreadable))
            .map(|m| format!("{}:{}", m["type"].as_str().unwrap(), m["event"].as_str().unwrap()))
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let every_kind = vec![
        "event:connectionStatusChanged",
        "event:honk",
        "object:create",
        "object:delete",
        "object:status",
        "object:update",
    ];
    assert_eq!(kinds(&all, true), every_kind);
    assert_eq!(kinds(&narrow, false), every_kind);
    assert_eq!(kinds(&narrow, true), Vec::<String>::new());
}

#[test]
fn published_events_with_an_unreadable_id_count_no_such_recipient() {
    let mut h = setup();
    h.open(NARROW, ident("narrow", narrow_per(), Value::Null));
    subscribe_all(&mut h, NARROW);
    let publish = |h: &mut Host, id: Option<&str>| {
        let mut frame = json!({"op": "realm.publish", "realm": "london", "event": "honk"});
        if let Some(id) = id {
            frame["id"] = json!(id);
        }
        h.ok(ADMIN, frame)["recipients"].as_u64().unwrap()
    };
    assert_eq!(publish(&mut h, Some("deliveryRiders/b1")), 0);
    assert_eq!(publish(&mut h, Some("deliveryRiders/nobody")), 0);
    assert_eq!(h.take(NARROW), Vec::<Value>::new());
    assert_eq!(publish(&mut h, Some("deliveryRiders/anybody")), 1);
    assert_eq!(h.take(NARROW).len(), 1);
    // No id: for anyone with R somewhere in the realm.
    assert_eq!(publish(&mut h, None), 1);
    let got = h.take(NARROW);
    assert_eq!(got[0]["id"], Value::Null);
    assert_eq!(got[0]["event"], "honk");
}

#[test]
fn a_narrow_subscription_pattern_still_hides_unreadable_ids() {
    // Pattern and R cover different sets: only the intersection arrives.
    let mut h = setup();
    h.open(NARROW, ident("narrow", narrow_per(), Value::Null));
    let ack = h.ok(NARROW, json!({"op": "object.subscribe", "realm": "london", "pattern": "deliveryRiders/*1"}));
    assert_eq!(ack["objects"].as_array().unwrap().len(), 1);
    assert_eq!(ack["objects"][0]["id"], "deliveryRiders/a1");
    h.take(NARROW);
    for id in ["deliveryRiders/a1", "deliveryRiders/a2", "deliveryRiders/b1"] {
        h.ok(ADMIN, json!({"op": "object.update", "realm": "london", "id": id, "data": 1}));
    }
    let got = h.take(NARROW);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["object"]["id"], "deliveryRiders/a1");
}

#[test]
fn object_list_and_get_filter_by_r() {
    let mut h = setup();
    h.open(NARROW, ident("narrow", narrow_per(), Value::Null));
    let ids = |reply: &Value| -> Vec<String> {
        reply["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
    };
    let list = h.ok(NARROW, json!({"op": "object.list", "realm": "london"}));
    assert_eq!(ids(&list), vec!["deliveryRiders/a1", "deliveryRiders/a2"]);
    let list = h.ok(NARROW, json!({"op": "object.list", "realm": "london", "pattern": "deliveryRiders/*"}));
    assert_eq!(ids(&list), vec!["deliveryRiders/a1", "deliveryRiders/a2"]);
    let list = h.ok(NARROW, json!({"op": "object.list", "realm": "london", "pattern": "other/*"}));
    assert_eq!(ids(&list), Vec::<String>::new());
    let list = h.ok(ALL, json!({"op": "object.list", "realm": "london", "pattern": "other/*"}));
    assert_eq!(ids(&list), vec!["other/x"]);
    assert_eq!(h.err(NARROW, json!({"op": "object.get", "realm": "london", "id": "deliveryRiders/b1"})), "FORBIDDEN");
    h.ok(NARROW, json!({"op": "object.get", "realm": "london", "id": "deliveryRiders/a1"}));
}

#[test]
fn after_a_refresh_that_removes_r_nothing_more_is_delivered() {
    let mut h = setup();
    let token = |per: Value| hs256(&json!({"sub": "narrow", "exp": T0_SECS + 3600, "per": per}));
    h.open(NARROW, Credentials::Token(token(narrow_per())));
    subscribe_all(&mut h, ALL);
    subscribe_all(&mut h, NARROW);
    h.ok(ADMIN, json!({"op": "object.update", "realm": "london", "id": "deliveryRiders/a1", "data": 1}));
    assert_eq!(h.take(NARROW).len(), 1, "delivered while R holds");

    // R moves to other/*: riders are out of reach.
    h.ok(NARROW, json!({"op": "auth", "token": token(json!({"london": {"other/*": "R"}}))}));
    h.take(NARROW);
    script(&mut h);
    let got = h.take(NARROW);
    assert!(got.iter().all(|m| id_of(m).is_some_and(|id| id.starts_with("other/"))), "{got:?}");
    let control = h.take(ALL);
    assert!(control.iter().any(|m| id_of(m).is_some_and(readable)), "riders changed meanwhile");
    assert_eq!(h.err(NARROW, json!({"op": "object.get", "realm": "london", "id": "deliveryRiders/a1"})), "FORBIDDEN");

    // No R at all: not even id-less events.
    h.ok(NARROW, json!({"op": "auth", "token": token(json!({}))}));
    h.take(NARROW);
    h.ok(ADMIN, json!({"op": "object.create", "realm": "london", "id": "other/new"}));
    h.ok(ADMIN, json!({"op": "realm.publish", "realm": "london", "event": "honk"}));
    h.open(PROVIDER_A, ident("pa", Value::Null, json!({"london": ["**"]})));
    h.close(PROVIDER_A);
    assert_eq!(h.take(NARROW), Vec::<Value>::new());
    let ack = h.ok(ADMIN, json!({"op": "realm.publish", "realm": "london", "event": "honk", "id": "other/new"}));
    assert_eq!(ack["recipients"], 1, "only the control");
    let control = h.take(ALL);
    assert!(control.iter().filter(|m| m["type"] == "object" || m["type"] == "event").count() > 4, "{control:?}");
}

#[test]
fn a_connection_without_per_or_default_permissions_cannot_even_subscribe() {
    let mut h = setup();
    h.open_as(NARROW, "nobody");
    for frame in [
        json!({"op": "object.subscribe", "realm": "london"}),
        json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged"}),
        json!({"op": "realm.subscribe", "realm": "london", "event": "*"}),
        json!({"op": "object.list", "realm": "london"}),
    ] {
        assert_eq!(h.err(NARROW, frame.clone()), "FORBIDDEN", "{frame}");
    }
    h.take(NARROW);
    h.open(PROVIDER_A, ident("pa", Value::Null, json!({"london": ["**"]})));
    h.ok(ADMIN, json!({"op": "realm.publish", "realm": "london", "event": "honk"}));
    assert_eq!(h.take(NARROW), Vec::<Value>::new());
}
