//! Object permissions (`per`): each CRUD right allowed and refused, the
//! union of entries and realm `*`, default permissions, bad claims, the
//! object limits, and who may publish realm events.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::tokens::*;
use common::Host;
use rollcall::{
    AuthError, Config, ConnectionStatus, Credentials, Error, HostEvent, Identity, Limits, ObjectInfo, RateLimit,
};
use serde_json::{json, Value};

fn per_ident(per: Value) -> Credentials {
    Credentials::Identity(Identity {
        client_id: Some("c".into()),
        per: Some(serde_json::from_value(per).unwrap()),
        ..Identity::default()
    })
}

fn admin() -> Credentials {
    per_ident(json!({"*": {"**": "CRUD"}}))
}

/// A host whose connection 1 is an admin and `conn` has exactly `per`.
fn with(conn: u64, per: Value) -> Host {
    let mut h = Host::default();
    h.open(1, admin());
    h.open(conn, per_ident(per));
    h
}

fn op(op: &str, realm: &str, id: &str) -> Value {
    json!({"op": op, "realm": realm, "id": id})
}

fn objects(h: &mut Host, realm: &str) -> Vec<ObjectInfo> {
    h.engine.objects(realm, "**").unwrap()
}

#[test]
fn create_needs_c() {
    for letters in ["R", "U", "D", "RUD", ""] {
        let mut h = with(2, json!({"london": {"a": letters}}));
        assert_eq!(h.err(2, op("object.create", "london", "a")), "FORBIDDEN", "{letters:?}");
        assert_eq!(objects(&mut h, "london"), vec![]);
        assert!(h.engine.realm_names().is_empty(), "a refused create leaves no realm behind");
    }
    let mut h = with(2, json!({"london": {"a": "C"}}));
    h.ok(2, json!({"op": "object.create", "realm": "london", "id": "a", "data": {"x": 1}}));
    assert_eq!(h.engine.object("london", "a").unwrap().data.as_deref(), Some(r#"{"x":1}"#));
    // Only where granted.
    assert_eq!(h.err(2, op("object.create", "london", "b")), "FORBIDDEN");
    assert_eq!(h.err(2, op("object.create", "paris", "a")), "FORBIDDEN");
    // Twice: the object exists, and keeps its data.
    assert_eq!(h.err(2, json!({"op": "object.create", "realm": "london", "id": "a", "data": 2})), "OBJECT_EXISTS");
    assert_eq!(h.engine.object("london", "a").unwrap().data.as_deref(), Some(r#"{"x":1}"#));
}

#[test]
fn object_exists_needs_c_first() {
    // Without C, an existing id is FORBIDDEN, not OBJECT_EXISTS.
    let mut h = with(2, json!({"london": {"a": "RUD"}}));
    h.ok(1, op("object.create", "london", "a"));
    assert_eq!(h.err(2, op("object.create", "london", "a")), "FORBIDDEN");
}

#[test]
fn update_needs_u() {
    for letters in ["C", "R", "D", "CRD"] {
        let mut h = with(2, json!({"london": {"a": letters}}));
        h.ok(1, json!({"op": "object.create", "realm": "london", "id": "a", "data": 1}));
        let code = h.err(2, json!({"op": "object.update", "realm": "london", "id": "a", "data": 2}));
        assert_eq!(code, "FORBIDDEN", "{letters:?}");
        assert_eq!(h.engine.object("london", "a").unwrap().data.as_deref(), Some("1"));
    }
    let mut h = with(2, json!({"london": {"a": "U", "b": "U"}}));
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "a", "data": 1}));
    h.ok(2, json!({"op": "object.update", "realm": "london", "id": "a", "data": [2]}));
    assert_eq!(h.engine.object("london", "a").unwrap().data.as_deref(), Some("[2]"));
    // No data: the data is cleared.
    h.ok(2, op("object.update", "london", "a"));
    assert_eq!(h.engine.object("london", "a").unwrap().data, None);
    assert_eq!(h.err(2, op("object.update", "london", "b")), "OBJECT_NOT_FOUND");
    assert_eq!(h.engine.object("london", "b"), None, "update does not create");
    assert_eq!(h.err(2, op("object.update", "london", "c")), "FORBIDDEN");
}

#[test]
fn delete_needs_d() {
    for letters in ["C", "R", "U", "CRU"] {
        let mut h = with(2, json!({"london": {"a": letters}}));
        h.ok(1, op("object.create", "london", "a"));
        assert_eq!(h.err(2, op("object.delete", "london", "a")), "FORBIDDEN", "{letters:?}");
        assert!(h.engine.object("london", "a").is_some());
    }
    let mut h = with(2, json!({"london": {"a": "D", "b": "D"}}));
    h.ok(1, op("object.create", "london", "a"));
    h.ok(2, op("object.delete", "london", "a"));
    assert_eq!(h.engine.object("london", "a"), None);
    assert_eq!(h.err(2, op("object.delete", "london", "a")), "OBJECT_NOT_FOUND");
    assert_eq!(h.err(2, op("object.delete", "london", "b")), "OBJECT_NOT_FOUND");
    assert!(h.engine.realm_names().is_empty(), "the empty realm is dropped");
}

#[test]
fn get_needs_r_and_does_not_leak_existence() {
    let mut h = with(2, json!({"london": {"a": "CUD", "secret/*": "CUD", "open/*": "R"}}));
    h.ok(1, op("object.create", "london", "secret/1"));
    let reply_existing = h.request(2, op("object.get", "london", "secret/1"));
    let reply_missing = h.request(2, op("object.get", "london", "secret/2"));
    assert_eq!(reply_existing["code"], "FORBIDDEN");
    assert_eq!(reply_missing["code"], "FORBIDDEN");
    // The two refusals differ only in the id they echo.
    let msg = |r: &Value, id: &str| r["message"].as_str().unwrap().replace(id, "ID");
    assert_eq!(msg(&reply_existing, "secret/1"), msg(&reply_missing, "secret/2"));
    // With R: found, or not found.
    h.ok(1, op("object.create", "london", "open/1"));
    let got = h.ok(2, op("object.get", "london", "open/1"));
    assert_eq!(got["object"], json!({"id": "open/1", "data": null, "connectionStatus": "disconnected"}));
    assert_eq!(h.err(2, op("object.get", "london", "open/2")), "OBJECT_NOT_FOUND");
    assert_eq!(h.err(2, op("object.get", "paris", "open/1")), "FORBIDDEN");
}

#[test]
fn list_and_subscriptions_need_r_somewhere_in_the_realm() {
    let mut h = with(2, json!({"london": {"**": "CUD"}, "paris": {"x/*": "R"}}));
    h.ok(1, op("object.create", "london", "a"));
    h.ok(1, op("object.create", "paris", "x/1"));
    h.ok(1, op("object.create", "paris", "y/1"));
    for frame in [
        json!({"op": "object.list", "realm": "london"}),
        json!({"op": "object.subscribe", "realm": "london"}),
        json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged"}),
        json!({"op": "realm.subscribe", "realm": "london", "event": "*"}),
        json!({"op": "object.list", "realm": "rome"}),
    ] {
        assert_eq!(h.err(2, frame.clone()), "FORBIDDEN", "{frame}");
    }
    // Nothing was subscribed: the limit counts none of them.
    let listed = h.ok(2, json!({"op": "object.list", "realm": "paris"}));
    assert_eq!(listed["objects"], json!([{"id": "x/1", "data": null, "connectionStatus": "disconnected"}]));
    let listed = h.ok(2, json!({"op": "object.list", "realm": "paris", "pattern": "y/*"}));
    assert_eq!(listed["objects"], json!([]));
    let sub = h.ok(2, json!({"op": "object.subscribe", "realm": "paris", "pattern": "**"}));
    assert_eq!(sub["objects"], json!([{"id": "x/1", "data": null, "connectionStatus": "disconnected"}]));
    h.ok(2, json!({"op": "realm.subscribe", "realm": "paris", "event": "connectionStatusChanged"}));
}

#[test]
fn rights_are_the_union_of_every_matching_entry_and_realm_star() {
    let per = json!({
        "*": {"**": "R", "shared/*": "U"},
        "london": {"riders/*": "C", "riders/me": "UD"},
    });
    let mut h = with(2, per);
    // riders/me in london: R from `*`, C from riders/*, U and D from itself.
    h.ok(2, json!({"op": "object.create", "realm": "london", "id": "riders/me", "data": 1}));
    h.ok(2, op("object.get", "london", "riders/me"));
    h.ok(2, json!({"op": "object.update", "realm": "london", "id": "riders/me", "data": 2}));
    h.ok(2, op("object.delete", "london", "riders/me"));
    // riders/other: C and R but not U or D.
    h.ok(2, op("object.create", "london", "riders/other"));
    assert_eq!(h.err(2, op("object.update", "london", "riders/other")), "FORBIDDEN");
    assert_eq!(h.err(2, op("object.delete", "london", "riders/other")), "FORBIDDEN");
    // In any other realm: R and shared/* U only.
    h.ok(1, op("object.create", "tokyo", "shared/1"));
    h.ok(2, op("object.get", "tokyo", "shared/1"));
    h.ok(2, op("object.update", "tokyo", "shared/1"));
    assert_eq!(h.err(2, op("object.create", "tokyo", "riders/me")), "FORBIDDEN");
    assert_eq!(h.err(2, op("object.delete", "tokyo", "shared/1")), "FORBIDDEN");
    // `*` does not cross segments; `**` does.
    assert_eq!(h.err(2, op("object.create", "london", "riders/a/b")), "FORBIDDEN");
    h.ok(1, op("object.create", "tokyo", "deep/a/b/c"));
    h.ok(2, op("object.get", "tokyo", "deep/a/b/c"));
}

#[test]
fn without_per_the_configured_default_permissions_apply() {
    // Default: none at all.
    let mut h = Host::default();
    h.open(1, admin());
    h.ok(1, op("object.create", "london", "a"));
    h.open_as(2, "nobody");
    assert_eq!(h.err(2, op("object.get", "london", "a")), "FORBIDDEN");
    assert_eq!(h.err(2, json!({"op": "object.list", "realm": "london"})), "FORBIDDEN");
    assert_eq!(h.err(2, op("object.create", "london", "b")), "FORBIDDEN");

    // Configured: read everything in london, create under public/.
    let mut config = hs256_config();
    config.default_permissions = serde_json::from_value(json!({"london": {"**": "R", "public/*": "C"}})).unwrap();
    let mut h = Host::new(config);
    h.open(1, admin());
    h.ok(1, op("object.create", "london", "a"));
    h.open_as(2, "someone");
    h.ok(2, op("object.get", "london", "a"));
    h.ok(2, op("object.create", "london", "public/1"));
    assert_eq!(h.err(2, op("object.create", "london", "b")), "FORBIDDEN");
    assert_eq!(h.err(2, op("object.get", "paris", "a")), "FORBIDDEN");
    // A token without `per` takes them too.
    h.open(3, Credentials::Token(hs256(&claims("tok", 60))));
    h.ok(3, op("object.get", "london", "a"));
    // A `per` claim, even an empty one, replaces them.
    h.open(4, per_ident(json!({})));
    assert_eq!(h.err(4, op("object.get", "london", "a")), "FORBIDDEN");
    let mut c = claims("tok2", 60);
    c["per"] = json!({"paris": {"**": "R"}});
    h.open(5, Credentials::Token(hs256(&c)));
    assert_eq!(h.err(5, op("object.get", "london", "a")), "FORBIDDEN");
}

#[test]
fn invalid_default_permissions_are_a_config_error() {
    let config = Config {
        default_permissions: serde_json::from_value(json!({"london": {"**": "RW"}})).unwrap(),
        ..Config::default()
    };
    assert!(matches!(rollcall::Engine::new(config), Err(Error::Config(rollcall::ConfigError::Permissions(_)))));
}

#[test]
fn bad_per_letters_refuse_the_token_or_the_identity() {
    for per in [
        json!({"london": {"a": "RX"}}),
        json!({"london": {"a": "r"}}),
        json!({"*": {"**": "CRUD "}}),
        json!({"london": {"": "R"}}),
    ] {
        let mut h = Host::new(hs256_config());
        let mut c = claims("bad", 60);
        c["per"] = per.clone();
        h.open(1, Credentials::Token(hs256(&c)));
        assert_eq!(h.closed_with(1), Some(4001), "{per}");
        assert_eq!(h.closes[0].reason, "BAD_CLAIMS", "{per}");
        assert!(
            h.events.iter().any(|e| matches!(e, HostEvent::AuthRefused { error: AuthError::BadClaims(_), .. })),
            "{per}"
        );
        assert_eq!(h.engine.connection_count(), 0);

        let identity = Identity { per: Some(serde_json::from_value(per.clone()).unwrap()), ..Identity::default() };
        h.open(2, Credentials::Identity(identity));
        assert_eq!(h.closed_with(2), Some(4001), "{per}");
        let refused = |e: &HostEvent| matches!(e, HostEvent::AuthRefused { error: AuthError::BadIdentity(_), .. });
        assert!(h.events.iter().any(refused), "{per}");
        assert_eq!(h.engine.connection_count(), 0);
    }
    // A bad dpv pattern likewise.
    let identity =
        Identity { dpv: Some(serde_json::from_value(json!({"london": [""]})).unwrap()), ..Identity::default() };
    let mut h = Host::default();
    h.open(3, Credentials::Identity(identity));
    assert_eq!(h.closed_with(3), Some(4001));
    assert_eq!(h.closes[0].reason, "BAD_IDENTITY");
}

#[test]
fn a_refresh_with_bad_per_letters_is_refused_and_changes_nothing() {
    let mut h = Host::new(hs256_config());
    h.open(1, admin());
    h.ok(1, op("object.create", "london", "a"));
    let mut c = claims("x", 60);
    c["per"] = json!({"london": {"a": "R"}});
    h.open(2, Credentials::Token(hs256(&c)));
    c["per"] = json!({"london": {"a": "RZ"}});
    assert_eq!(h.err(2, json!({"op": "auth", "token": hs256(&c)})), "TOKEN_INVALID");
    h.ok(2, op("object.get", "london", "a"));
    // And a good refresh takes R away at once.
    c["per"] = json!({"london": {"b": "R"}});
    h.ok(2, json!({"op": "auth", "token": hs256(&c)}));
    assert_eq!(h.err(2, op("object.get", "london", "a")), "FORBIDDEN");
}

fn limited(limits: Limits) -> Host {
    let limits = Limits { violations: RateLimit { burst: 10_000, per_second: 1 }, ..limits };
    let mut h = Host::new(Config { limits, ..Config::default() });
    h.open(1, admin());
    h
}

#[test]
fn object_data_over_the_limit_is_refused() {
    let mut h = limited(Limits { max_object_data_bytes: 10, ..Limits::default() });
    // `"12345678"` is exactly 10 bytes of JSON text.
    h.ok(1, json!({"op": "object.create", "realm": "r", "id": "a", "data": "12345678"}));
    let code = h.err(1, json!({"op": "object.create", "realm": "r", "id": "b", "data": "123456789"}));
    assert_eq!(code, "OBJECT_DATA_TOO_LARGE");
    assert_eq!(h.engine.object("r", "b"), None);
    let code = h.err(1, json!({"op": "object.update", "realm": "r", "id": "a", "data": [1, 2, 3, 4, 5]}));
    assert_eq!(code, "OBJECT_DATA_TOO_LARGE");
    assert_eq!(h.engine.object("r", "a").unwrap().data.as_deref(), Some(r#""12345678""#));
    h.ok(1, json!({"op": "object.update", "realm": "r", "id": "a", "data": [1, 2, 3, 4]}));
    // Data is checked before existence.
    let code = h.err(1, json!({"op": "object.update", "realm": "r", "id": "zz", "data": "123456789"}));
    assert_eq!(code, "OBJECT_DATA_TOO_LARGE");
    // Without data there is nothing to measure.
    h.ok(1, op("object.create", "r", "c"));
}

#[test]
fn a_full_realm_refuses_new_objects_until_one_goes() {
    let mut h = limited(Limits { max_objects_per_realm: 2, ..Limits::default() });
    h.ok(1, op("object.create", "r", "a"));
    h.ok(1, op("object.create", "r", "b"));
    assert_eq!(h.err(1, op("object.create", "r", "c")), "REALM_FULL");
    assert_eq!(h.engine.objects("r", "**").unwrap().len(), 2);
    // An existing id is still OBJECT_EXISTS, updates still work.
    assert_eq!(h.err(1, op("object.create", "r", "a")), "OBJECT_EXISTS");
    h.ok(1, json!({"op": "object.update", "realm": "r", "id": "a", "data": 1}));
    // Other realms have their own room.
    h.ok(1, op("object.create", "s", "c"));
    h.ok(1, op("object.delete", "r", "b"));
    h.ok(1, op("object.create", "r", "c"));
    assert_eq!(h.err(1, op("object.create", "r", "d")), "REALM_FULL");
}

#[test]
fn too_many_realms_refuses_a_new_realm_by_create_or_subscribe() {
    let mut h = limited(Limits { max_realms: 2, ..Limits::default() });
    h.ok(1, op("object.create", "r1", "a"));
    h.ok(1, json!({"op": "object.subscribe", "realm": "r2"}));
    assert_eq!(h.engine.realm_names(), vec!["r1", "r2"]);
    assert_eq!(h.err(1, op("object.create", "r3", "a")), "TOO_MANY_REALMS");
    assert_eq!(h.err(1, json!({"op": "object.subscribe", "realm": "r3"})), "TOO_MANY_REALMS");
    assert_eq!(h.err(1, json!({"op": "realm.subscribe", "realm": "r3", "event": "e"})), "TOO_MANY_REALMS");
    assert_eq!(h.engine.realm_names(), vec!["r1", "r2"]);
    // Reads and publishes touch no realm: they work anywhere.
    let list = h.ok(1, json!({"op": "object.list", "realm": "r3"}));
    assert_eq!(list["objects"], json!([]));
    assert_eq!(h.err(1, op("object.get", "r3", "a")), "OBJECT_NOT_FOUND");
    let ack = h.ok(1, json!({"op": "realm.publish", "realm": "r3", "event": "e"}));
    assert_eq!(ack["recipients"], 0);
    // Existing realms take more objects.
    h.ok(1, op("object.create", "r1", "b"));
    h.ok(1, op("object.create", "r2", "a"));
    // When a realm empties it is dropped and frees its place.
    h.ok(1, op("object.delete", "r1", "a"));
    h.ok(1, op("object.delete", "r1", "b"));
    assert_eq!(h.engine.realm_names(), vec!["r2"]);
    h.ok(1, op("object.create", "r3", "a"));
    // Unsubscribing is not enough for r2 while it holds an object.
    h.ok(1, json!({"op": "object.unsubscribe", "realm": "r2"}));
    assert_eq!(h.err(1, op("object.create", "r4", "a")), "TOO_MANY_REALMS");
    h.ok(1, op("object.delete", "r2", "a"));
    h.ok(1, op("object.create", "r4", "a"));
    assert_eq!(h.engine.realm_names(), vec!["r3", "r4"]);
}

#[test]
fn publishing_a_realm_event_needs_u_on_the_id_or_somewhere_in_the_realm() {
    let mut h = with(2, json!({"london": {"riders/me": "U", "**": "R"}, "paris": {"**": "R"}}));
    h.open(3, per_ident(json!({"*": {"**": "R"}})));
    h.ok(3, json!({"op": "realm.subscribe", "realm": "london", "event": "*"}));
    h.take(3);
    // With an id: U on that id. No object needs to exist.
    let ack = h.ok(2, json!({"op": "realm.publish", "realm": "london", "event": "ping", "id": "riders/me", "data": 1}));
    assert_eq!(ack["recipients"], 1);
    assert_eq!(h.take(3).len(), 1);
    let code = h.err(2, json!({"op": "realm.publish", "realm": "london", "event": "ping", "id": "riders/you"}));
    assert_eq!(code, "FORBIDDEN");
    // Without an id: U anywhere in the realm.
    h.ok(2, json!({"op": "realm.publish", "realm": "london", "event": "ping"}));
    assert_eq!(h.take(3).len(), 1);
    assert_eq!(h.err(2, json!({"op": "realm.publish", "realm": "paris", "event": "ping"})), "FORBIDDEN");
    // R alone publishes nothing.
    assert_eq!(h.err(3, json!({"op": "realm.publish", "realm": "london", "event": "ping"})), "FORBIDDEN");
    assert_eq!(h.take(3).iter().filter(|m| m["type"] == "event").count(), 0);
}

#[test]
fn nobody_publishes_connection_status_changed_and_nobody_publishes_star() {
    let mut h = Host::default();
    h.open(1, admin());
    h.open(2, admin());
    h.ok(2, json!({"op": "realm.subscribe", "realm": "london", "event": "*"}));
    h.take(2);
    for id in [Some("riders/me"), None] {
        let mut frame = json!({"op": "realm.publish", "realm": "london", "event": "connectionStatusChanged",
                               "data": {"connectionStatus": "connected"}});
        if let Some(id) = id {
            frame["id"] = json!(id);
        }
        assert_eq!(h.err(1, frame), "FORBIDDEN");
    }
    assert_eq!(h.err(1, json!({"op": "realm.publish", "realm": "london", "event": "*"})), "BAD_REQUEST");
    assert_eq!(h.take(2), Vec::<Value>::new());
    // `*` is no realm name either.
    assert_eq!(h.err(1, op("object.create", "*", "a")), "BAD_REQUEST");
    assert!(h.engine.realm_names() == vec!["london"]);
    assert_eq!(h.engine.object("london", "riders/me").map(|o| o.connection_status), None::<ConnectionStatus>);
}

#[test]
fn a_create_refused_for_a_full_realm_leaves_no_empty_realm_behind() {
    // Zero objects per realm: objects switched off. Refused creates must
    // not leave empty realms that count toward max_realms forever.
    let mut h = limited(Limits { max_objects_per_realm: 0, max_realms: 1, ..Limits::default() });
    for realm in ["r1", "r2", "r3"] {
        assert_eq!(h.err(1, op("object.create", realm, "a")), "REALM_FULL");
    }
    assert_eq!(h.engine.realm_names(), Vec::<String>::new());
    // The one realm allowed is still free for a subscription.
    h.ok(1, json!({"op": "object.subscribe", "realm": "r9"}));
    assert_eq!(h.engine.realm_names(), vec!["r9"]);
    // And a refusal in an existing realm keeps it.
    assert_eq!(h.err(1, op("object.create", "r9", "a")), "REALM_FULL");
    assert_eq!(h.engine.realm_names(), vec!["r9"]);
}
