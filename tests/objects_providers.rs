//! Data providers (`dpv`) and objects, n:m: several providers for one
//! object, one wildcard provider for many, realm `*`, objects created while
//! a provider is live, and a token refresh moving what a provider covers.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::tokens::*;
use common::{admin, ident, Host};
use rollcall::{ConnectionStatus, Credentials, HostEvent};
use serde_json::{json, Value};

use ConnectionStatus::{Connected, Disconnected};

/// A provider with no object rights.
fn provider(client_id: &str, dpv: Value) -> Credentials {
    ident(client_id, Value::Null, dpv)
}

fn create(h: &mut Host, conn: u64, realm: &str, id: &str) -> Value {
    h.ok(conn, json!({"op": "object.create", "realm": realm, "id": id}))
}

fn status(h: &Host, realm: &str, id: &str) -> (ConnectionStatus, u32) {
    let o = h.engine.object(realm, id).unwrap_or_else(|| panic!("{realm}/{id} exists"));
    (o.connection_status, o.providers)
}

/// Opens a watcher of every `connectionStatusChanged` in `realms`.
fn watcher(h: &mut Host, conn: u64, realms: &[&str]) {
    h.open(conn, ident("watcher", json!({"*": {"**": "R"}}), Value::Null));
    for realm in realms {
        h.ok(conn, json!({"op": "realm.subscribe", "realm": realm, "event": "connectionStatusChanged"}));
    }
    h.take(conn);
}

/// (realm, id, status) of every `connectionStatusChanged` the watcher got.
fn heard(h: &mut Host, conn: u64) -> Vec<(String, String, String)> {
    h.take(conn)
        .into_iter()
        .map(|m| {
            assert_eq!(m["type"], "event", "{m}");
            assert_eq!(m["event"], "connectionStatusChanged", "{m}");
            (
                m["realm"].as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().to_string(),
                m["data"]["connectionStatus"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ev(realm: &str, id: &str, status: &str) -> (String, String, String) {
    (realm.into(), id.into(), status.into())
}

fn host_status_events(h: &mut Host) -> Vec<(String, String, ConnectionStatus)> {
    std::mem::take(&mut h.events)
        .into_iter()
        .filter_map(|e| match e {
            HostEvent::ObjectStatusChanged { realm, id, status } => Some((realm, id, status)),
            _ => None,
        })
        .collect()
}

#[test]
fn two_devices_of_one_user_keep_the_object_connected_until_the_last_goes() {
    let mut h = Host::default();
    let john =
        || ident("john", json!({"london": {"deliveryRiders/john": "CRU"}}), json!({"london": ["deliveryRiders/john"]}));
    h.open(1, john());
    create(&mut h, 1, "london", "deliveryRiders/john");
    assert_eq!(status(&h, "london", "deliveryRiders/john"), (Connected, 1));
    watcher(&mut h, 9, &["london"]);
    h.open(2, john());
    assert_eq!(status(&h, "london", "deliveryRiders/john"), (Connected, 2));
    h.close(1);
    assert_eq!(status(&h, "london", "deliveryRiders/john"), (Connected, 1));
    assert_eq!(heard(&mut h, 9), vec![]);
    assert_eq!(host_status_events(&mut h), vec![]);
    // The second device reads it connected.
    let got = h.ok(2, json!({"op": "object.get", "realm": "london", "id": "deliveryRiders/john"}));
    assert_eq!(got["object"]["connectionStatus"], "connected");
    h.close(2);
    assert_eq!(status(&h, "london", "deliveryRiders/john"), (Disconnected, 0));
    assert_eq!(heard(&mut h, 9), vec![ev("london", "deliveryRiders/john", "disconnected")]);
    assert_eq!(host_status_events(&mut h), vec![("london".into(), "deliveryRiders/john".into(), Disconnected)]);
    // Both back: one `connected`, at the first.
    h.open(3, john());
    h.open(4, john());
    assert_eq!(status(&h, "london", "deliveryRiders/john"), (Connected, 2));
    assert_eq!(heard(&mut h, 9), vec![ev("london", "deliveryRiders/john", "connected")]);
}

#[test]
fn one_wildcard_provider_covers_many_objects_within_one_segment() {
    let mut h = Host::default();
    h.open(1, admin());
    let ids = [
        "deliveryRiders/cyclists/a",
        "deliveryRiders/cyclists/b",
        "deliveryRiders/cyclists/c",
        "deliveryRiders/cyclists/x/y",
        "deliveryRiders/walkers/x",
        "deliveryRiders/cyclists",
    ];
    for id in ids {
        create(&mut h, 1, "london", id);
    }
    watcher(&mut h, 9, &["london"]);
    h.open(2, provider("feed", json!({"london": ["deliveryRiders/cyclists/*"]})));
    let covered = &ids[..3];
    for id in ids {
        let expect = if covered.contains(&id) { (Connected, 1) } else { (Disconnected, 0) };
        assert_eq!(status(&h, "london", id), expect, "{id}");
    }
    assert_eq!(heard(&mut h, 9), covered.iter().map(|id| ev("london", id, "connected")).collect::<Vec<_>>());
    let listed: Vec<(String, ConnectionStatus)> = h
        .engine
        .objects("london", "deliveryRiders/cyclists/*")
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.connection_status))
        .collect();
    assert_eq!(listed, covered.iter().map(|id| (id.to_string(), Connected)).collect::<Vec<_>>());
    // `**` lists everything, sorted by id.
    let all: Vec<String> = h.engine.objects("london", "**").unwrap().into_iter().map(|o| o.id).collect();
    let mut sorted: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(all, sorted);
    h.close(2);
    assert_eq!(heard(&mut h, 9), covered.iter().map(|id| ev("london", id, "disconnected")).collect::<Vec<_>>());
    assert!(h.engine.objects("london", "**").unwrap().iter().all(|o| o.connection_status == Disconnected));
}

#[test]
fn realm_star_in_dpv_covers_every_realm_even_ones_made_later() {
    let mut h = Host::default();
    h.open(1, admin());
    create(&mut h, 1, "london", "maintenanceVehicles/1");
    create(&mut h, 1, "paris", "maintenanceVehicles/2");
    create(&mut h, 1, "paris", "deliveryRiders/cyclists/p");
    create(&mut h, 1, "paris", "deliveryRiders/walkers/p");
    watcher(&mut h, 9, &["london", "paris", "berlin"]);
    h.open(2, provider("bulk", json!({"*": ["deliveryRiders/cyclists/*", "maintenanceVehicles/*"]})));
    assert_eq!(status(&h, "london", "maintenanceVehicles/1"), (Connected, 1));
    assert_eq!(status(&h, "paris", "maintenanceVehicles/2"), (Connected, 1));
    assert_eq!(status(&h, "paris", "deliveryRiders/cyclists/p"), (Connected, 1));
    assert_eq!(status(&h, "paris", "deliveryRiders/walkers/p"), (Disconnected, 0));
    let mut got = heard(&mut h, 9);
    got.sort();
    assert_eq!(
        got,
        vec![
            ev("london", "maintenanceVehicles/1", "connected"),
            ev("paris", "deliveryRiders/cyclists/p", "connected"),
            ev("paris", "maintenanceVehicles/2", "connected"),
        ]
    );
    // A realm that did not exist when the provider connected.
    assert!(!h.engine.realm_names().contains(&"rome".to_string()));
    let ack = create(&mut h, 1, "rome", "maintenanceVehicles/9");
    assert_eq!(ack["op"], "object.create");
    assert_eq!(status(&h, "rome", "maintenanceVehicles/9"), (Connected, 1));
    create(&mut h, 1, "berlin", "maintenanceVehicles/3");
    create(&mut h, 1, "berlin", "trucks/3");
    assert_eq!(status(&h, "berlin", "maintenanceVehicles/3"), (Connected, 1));
    assert_eq!(status(&h, "berlin", "trucks/3"), (Disconnected, 0));
    // Created connected: no status change, to clients or to the host.
    assert_eq!(heard(&mut h, 9), vec![]);
    assert_eq!(host_status_events(&mut h).len(), 3);
    h.close(2);
    let mut got = heard(&mut h, 9);
    got.sort();
    assert_eq!(
        got,
        vec![
            ev("berlin", "maintenanceVehicles/3", "disconnected"),
            ev("london", "maintenanceVehicles/1", "disconnected"),
            ev("paris", "deliveryRiders/cyclists/p", "disconnected"),
            ev("paris", "maintenanceVehicles/2", "disconnected"),
        ]
    );
    assert_eq!(status(&h, "rome", "maintenanceVehicles/9"), (Disconnected, 0));
    assert_eq!(host_status_events(&mut h).len(), 5);
}

#[test]
fn an_object_created_while_its_provider_is_live_is_created_connected() {
    let mut h = Host::default();
    h.open(1, admin());
    h.ok(1, json!({"op": "object.subscribe", "realm": "london"}));
    h.open(2, provider("feed", json!({"london": ["cars/*", "bikes/1"]})));
    h.take(1);
    h.events.clear();
    create(&mut h, 1, "london", "cars/1");
    create(&mut h, 1, "london", "bikes/1");
    create(&mut h, 1, "london", "bikes/2");
    let changes: Vec<(String, String, String)> = h
        .take_type(1, "object")
        .into_iter()
        .map(|m| {
            (
                m["event"].as_str().unwrap().into(),
                m["object"]["id"].as_str().unwrap().into(),
                m["object"]["connectionStatus"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("create".into(), "cars/1".into(), "connected".into()),
            ("create".into(), "bikes/1".into(), "connected".into()),
            ("create".into(), "bikes/2".into(), "disconnected".into()),
        ]
    );
    assert_eq!(host_status_events(&mut h), vec![]);
    // Deleted and created again while the provider stays: connected again.
    h.ok(1, json!({"op": "object.delete", "realm": "london", "id": "cars/1"}));
    assert_eq!(h.engine.object("london", "cars/1"), None);
    create(&mut h, 1, "london", "cars/1");
    assert_eq!(status(&h, "london", "cars/1"), (Connected, 1));
    // After the provider goes, a new one is created disconnected.
    h.close(2);
    create(&mut h, 1, "london", "cars/2");
    assert_eq!(status(&h, "london", "cars/2"), (Disconnected, 0));
    assert_eq!(status(&h, "london", "cars/1"), (Disconnected, 0));
}

#[test]
fn a_provider_closing_while_another_stays_changes_nothing_visible() {
    let mut h = Host::default();
    h.open(1, admin());
    for id in ["cyclists/a", "cyclists/b"] {
        create(&mut h, 1, "london", id);
    }
    h.ok(1, json!({"op": "object.subscribe", "realm": "london"}));
    watcher(&mut h, 9, &["london"]);
    // A wildcard provider for both, and a literal one for `a` only.
    h.open(2, provider("bulk", json!({"london": ["cyclists/*"]})));
    h.open(3, provider("phone", json!({"london": ["cyclists/a"]})));
    assert_eq!(status(&h, "london", "cyclists/a"), (Connected, 2));
    assert_eq!(status(&h, "london", "cyclists/b"), (Connected, 1));
    assert_eq!(
        heard(&mut h, 9),
        vec![ev("london", "cyclists/a", "connected"), ev("london", "cyclists/b", "connected")]
    );
    h.take(1);
    h.events.clear();
    h.close(3);
    assert_eq!(status(&h, "london", "cyclists/a"), (Connected, 1));
    assert_eq!(heard(&mut h, 9), vec![]);
    assert_eq!(h.take(1), Vec::<Value>::new());
    assert_eq!(host_status_events(&mut h), vec![]);
    h.open(4, provider("phone", json!({"london": ["cyclists/a"]})));
    h.close(2);
    assert_eq!(status(&h, "london", "cyclists/a"), (Connected, 1));
    assert_eq!(status(&h, "london", "cyclists/b"), (Disconnected, 0));
    assert_eq!(heard(&mut h, 9), vec![ev("london", "cyclists/b", "disconnected")]);
    assert_eq!(host_status_events(&mut h), vec![("london".into(), "cyclists/b".into(), Disconnected)]);
}

#[test]
fn one_connection_matching_an_object_twice_counts_once() {
    let mut h = Host::default();
    h.open(1, admin());
    create(&mut h, 1, "london", "cars/1");
    watcher(&mut h, 9, &["london"]);
    // Literal and wildcard, named realm and `*`: all the same connection.
    h.open(2, provider("feed", json!({"london": ["cars/1", "cars/*", "**"], "*": ["cars/1", "cars/?"]})));
    assert_eq!(status(&h, "london", "cars/1"), (Connected, 1));
    create(&mut h, 1, "london", "cars/2");
    assert_eq!(status(&h, "london", "cars/2"), (Connected, 1));
    assert_eq!(heard(&mut h, 9), vec![ev("london", "cars/1", "connected")]);
    h.close(2);
    assert_eq!(status(&h, "london", "cars/1"), (Disconnected, 0));
    assert_eq!(status(&h, "london", "cars/2"), (Disconnected, 0));
    assert_eq!(heard(&mut h, 9), vec![ev("london", "cars/1", "disconnected"), ev("london", "cars/2", "disconnected")]);
}

fn token_with_dpv(dpv: Value) -> String {
    hs256(&json!({"sub": "feed", "exp": T0_SECS + 3600, "dpv": dpv}))
}

#[test]
fn a_token_refresh_moves_what_a_provider_covers() {
    let mut h = Host::new(hs256_config());
    h.open(1, admin());
    for id in ["a", "b", "c", "d"] {
        create(&mut h, 1, "london", id);
    }
    create(&mut h, 1, "paris", "a");
    h.ok(1, json!({"op": "object.subscribe", "realm": "london"}));
    watcher(&mut h, 9, &["london", "paris"]);
    h.open(2, Credentials::Token(token_with_dpv(json!({"london": ["a", "b"]}))));
    assert_eq!(heard(&mut h, 9), vec![ev("london", "a", "connected"), ev("london", "b", "connected")]);
    h.take(1);
    h.events.clear();

    let ack = h.ok(2, json!({"op": "auth", "token": token_with_dpv(json!({"london": ["b", "c"], "paris": ["a"]}))}));
    assert_eq!(ack["clientId"], "feed");
    let mut got = heard(&mut h, 9);
    got.sort();
    assert_eq!(
        got,
        vec![ev("london", "a", "disconnected"), ev("london", "c", "connected"), ev("paris", "a", "connected")]
    );
    assert_eq!(status(&h, "london", "a"), (Disconnected, 0));
    assert_eq!(status(&h, "london", "b"), (Connected, 1));
    assert_eq!(status(&h, "london", "c"), (Connected, 1));
    assert_eq!(status(&h, "london", "d"), (Disconnected, 0));
    assert_eq!(status(&h, "paris", "a"), (Connected, 1));
    // `b` was in both: no object change for it either.
    let changed: Vec<String> =
        h.take_type(1, "object").iter().map(|m| m["object"]["id"].as_str().unwrap().to_string()).collect();
    let mut changed_sorted = changed.clone();
    changed_sorted.sort();
    assert_eq!(changed_sorted, vec!["a", "c"]);
    assert_eq!(host_status_events(&mut h).len(), 3);

    // The same claims again: nothing moves.
    h.ok(2, json!({"op": "auth", "token": token_with_dpv(json!({"london": ["b", "c"], "paris": ["a"]}))}));
    assert_eq!(heard(&mut h, 9), vec![]);
    assert_eq!(status(&h, "london", "b"), (Connected, 1));

    // A wildcard that covers the old set and more.
    h.ok(2, json!({"op": "auth", "token": token_with_dpv(json!({"london": ["*"]}))}));
    let mut got = heard(&mut h, 9);
    got.sort();
    assert_eq!(
        got,
        vec![ev("london", "a", "connected"), ev("london", "d", "connected"), ev("paris", "a", "disconnected")]
    );
    for id in ["a", "b", "c", "d"] {
        assert_eq!(status(&h, "london", id), (Connected, 1), "{id}");
    }

    // No dpv at all: a provider no more.
    h.ok(2, json!({"op": "auth", "token": hs256(&json!({"sub": "feed", "exp": T0_SECS + 3600}))}));
    assert_eq!(heard(&mut h, 9).len(), 4);
    assert!(h.engine.objects("london", "**").unwrap().iter().all(|o| o.providers == 0));
    // Closing now changes nothing more.
    h.close(2);
    assert_eq!(heard(&mut h, 9), vec![]);
}

#[test]
fn a_refused_refresh_keeps_the_old_coverage() {
    let mut h = Host::new(hs256_config());
    h.open(1, admin());
    create(&mut h, 1, "london", "a");
    h.open(2, Credentials::Token(token_with_dpv(json!({"london": ["a"]}))));
    watcher(&mut h, 9, &["london"]);
    // Signed with another secret, then for another subject.
    let forged = hs(
        rollcall::Algorithm::HS256,
        "another-secret-0123456789abcdef!!",
        None,
        &json!({"sub": "feed", "exp": T0_SECS + 60}),
    );
    assert_eq!(h.err(2, json!({"op": "auth", "token": forged})), "TOKEN_INVALID");
    let other = hs256(&json!({"sub": "other", "exp": T0_SECS + 60}));
    assert_eq!(h.err(2, json!({"op": "auth", "token": other})), "SUBJECT_MISMATCH");
    assert_eq!(status(&h, "london", "a"), (Connected, 1));
    assert_eq!(heard(&mut h, 9), vec![]);
}

#[test]
fn providers_of_one_object_add_up_across_connections_and_users() {
    let mut h = Host::default();
    h.open(1, admin());
    create(&mut h, 1, "london", "ships/1");
    for (conn, dpv) in [
        (2, json!({"london": ["ships/1"]})),
        (3, json!({"london": ["ships/*"]})),
        (4, json!({"*": ["ships/1"]})),
        (5, json!({"*": ["**"]})),
        (6, json!({"paris": ["ships/1"]})),
        (7, json!({"london": ["ships/2"]})),
    ] {
        h.open(conn, provider(&format!("p{conn}"), dpv));
    }
    assert_eq!(status(&h, "london", "ships/1"), (Connected, 4));
    let mut left = 4;
    for conn in [5, 2, 4] {
        h.close(conn);
        left -= 1;
        assert_eq!(status(&h, "london", "ships/1"), (Connected, left));
    }
    h.close(3);
    assert_eq!(status(&h, "london", "ships/1"), (Disconnected, 0));
    // Host queries on unknown things.
    assert_eq!(h.engine.object("london", "ships/404"), None);
    assert_eq!(h.engine.object("nowhere", "ships/1"), None);
    assert_eq!(h.engine.objects("nowhere", "**").unwrap(), vec![]);
    assert!(h.engine.objects("london", "").is_err());
}
