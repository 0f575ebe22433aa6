//! Object subscriptions: a snapshot, then every change in order with no gap
//! and no duplicate; unsubscribing; the subscription limit; realm event
//! subscriptions (`*` included) and `realm.publish`; one `Send` per event.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use std::collections::BTreeMap;

use common::tokens::*;
use common::{admin, ident, Host};
use rollcall::time::iso8601;
use rollcall::{Config, ConnectionStatus, Credentials, Identity, Limits, ObjectInfo, RateLimit};
use serde_json::{json, Value};

fn reader(name: &str) -> Credentials {
    ident(name, json!({"*": {"**": "R"}}), Value::Null)
}

/// An object as a client sees it.
fn frame_of(o: &ObjectInfo) -> Value {
    let data = o.data.as_deref().map_or(Value::Null, |d| serde_json::from_str(d).unwrap());
    let status = match o.connection_status {
        ConnectionStatus::Connected => "connected",
        ConnectionStatus::Disconnected => "disconnected",
    };
    json!({"id": o.id, "data": data, "connectionStatus": status})
}

fn engine_frames(h: &mut Host, realm: &str, pattern: &str) -> Vec<Value> {
    h.engine.objects(realm, pattern).unwrap().iter().map(frame_of).collect()
}

/// A subscriber's view, rebuilt from its snapshot and its changes.
#[derive(Debug, Default)]
struct Mirror {
    objects: BTreeMap<String, Value>,
}

impl Mirror {
    fn from_snapshot(ack: &Value) -> Mirror {
        let mut m = Mirror::default();
        for o in ack["objects"].as_array().expect("snapshot") {
            let id = o["id"].as_str().unwrap().to_string();
            assert!(m.objects.insert(id, o.clone()).is_none(), "duplicate in snapshot {ack}");
        }
        m
    }

    /// Applies one change, checking it is one: nothing repeated, nothing
    /// missed in between.
    fn apply(&mut self, m: &Value, realm: &str, now: u64) {
        assert_eq!(m["type"], "object", "{m}");
        assert_eq!(m["realm"], realm, "{m}");
        assert_eq!(m["timestamp"], iso8601(now), "{m}");
        let o = &m["object"];
        let id = o["id"].as_str().unwrap().to_string();
        let old = self.objects.get(&id);
        match m["event"].as_str().unwrap() {
            "create" => {
                assert!(old.is_none(), "create of a known object: {m}");
                self.objects.insert(id, o.clone());
            }
            "update" => {
                let old = old.unwrap_or_else(|| panic!("update of an unknown object: {m}"));
                assert_eq!(
                    old["connectionStatus"], o["connectionStatus"],
                    "status changed without a status change: {m}"
                );
                self.objects.insert(id, o.clone());
            }
            "status" => {
                let old = old.unwrap_or_else(|| panic!("status of an unknown object: {m}"));
                assert_ne!(old["connectionStatus"], o["connectionStatus"], "a status change that changes nothing: {m}");
                assert_eq!(old["data"], o["data"], "data changed without an update: {m}");
                self.objects.insert(id, o.clone());
            }
            "delete" => {
                let old = old.unwrap_or_else(|| panic!("delete of an unknown object: {m}"));
                assert_eq!(old, o, "a delete carries the object as it was: {m}");
                self.objects.remove(&id);
            }
            other => panic!("unknown change {other}: {m}"),
        }
    }

    fn frames(&self) -> Vec<Value> {
        self.objects.values().cloned().collect()
    }
}

#[test]
fn the_snapshot_equals_the_engine_objects_with_and_without_a_pattern() {
    let mut h = Host::default();
    h.open(1, admin());
    for (id, data) in
        [("cars/1", json!({"v": 1})), ("cars/2", json!(null)), ("cars/2/x", json!([1])), ("bikes/1", json!("b"))]
    {
        h.ok(1, json!({"op": "object.create", "realm": "london", "id": id, "data": data}));
    }
    h.ok(1, json!({"op": "object.create", "realm": "paris", "id": "cars/9"}));
    h.open(2, ident("p", Value::Null, json!({"london": ["cars/2"]})));
    h.open(3, reader("r"));
    let ack = h.ok(3, json!({"op": "object.subscribe", "realm": "london"}));
    assert_eq!(ack["op"], "object.subscribe");
    assert_eq!(ack["objects"], json!(engine_frames(&mut h, "london", "**")));
    assert_eq!(ack["objects"].as_array().unwrap().len(), 4);
    assert_eq!(ack["objects"][2], json!({"id": "cars/2", "data": null, "connectionStatus": "connected"}));
    for pattern in ["cars/*", "cars/**", "*/1", "cars/?", "nothing/*", "bikes/1"] {
        let ack = h.ok(3, json!({"op": "object.subscribe", "realm": "london", "pattern": pattern}));
        assert_eq!(ack["objects"], json!(engine_frames(&mut h, "london", pattern)), "{pattern}");
    }
    // A realm with no objects: an empty snapshot.
    let ack = h.ok(3, json!({"op": "object.subscribe", "realm": "empty"}));
    assert_eq!(ack["objects"], json!([]));
    // Subscribing again to the same thing sends the snapshot again.
    let ack = h.ok(3, json!({"op": "object.subscribe", "realm": "london", "pattern": "cars/*"}));
    assert_eq!(ack["objects"], json!(engine_frames(&mut h, "london", "cars/*")));
    // An invalid pattern is the client's mistake.
    assert_eq!(h.err(3, json!({"op": "object.subscribe", "realm": "london", "pattern": ""})), "BAD_REQUEST");
}

/// A small deterministic generator (xorshift), so the script is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const IDS: [&str; 8] = [
    "deliveryRiders/cyclists/a",
    "deliveryRiders/cyclists/b",
    "deliveryRiders/cyclists/c",
    "deliveryRiders/walkers/a",
    "deliveryRiders/walkers/b",
    "trucks/1",
    "trucks/2",
    "trucks/10",
];

const DPVS: [&str; 6] =
    ["deliveryRiders/cyclists/*", "deliveryRiders/**", "trucks/?", "trucks/1", "**", "deliveryRiders/walkers/a"];

fn provider_token(n: usize, rng: &mut Rng) -> String {
    let a = DPVS[rng.below(DPVS.len())];
    let b = DPVS[rng.below(DPVS.len())];
    hs256(&json!({"sub": format!("p{n}"), "exp": T0_SECS + 86_400, "dpv": {"london": [a, b]}}))
}

#[test]
fn changes_follow_the_snapshot_in_order_with_no_gap_and_no_duplicate() {
    // Many frames in little simulated time: no rate limit here.
    let mut config = hs256_config();
    config.limits.rate = RateLimit { burst: 1_000_000, per_second: 1_000_000 };
    let mut h = Host::new(config);
    h.open(1, admin());
    let patterns = ["**", "deliveryRiders/cyclists/*", "trucks/?", "deliveryRiders/**"];
    let mut mirrors: BTreeMap<u64, (String, Mirror)> = BTreeMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<u64> = Vec::new();
    let mut next_provider = 100;
    let mut counts = BTreeMap::<&str, usize>::new();
    for step in 0..600 {
        h.advance(7);
        // Subscribers join along the way, so that snapshots are non-trivial.
        if step % 150 == 10 {
            let conn = 10 + mirrors.len() as u64;
            let pattern = patterns[mirrors.len() % patterns.len()];
            h.open(conn, reader(&format!("s{conn}")));
            h.take(conn);
            let mut frame = json!({"op": "object.subscribe", "realm": "london"});
            if pattern != "**" {
                frame["pattern"] = json!(pattern);
            }
            let ack = h.ok(conn, frame);
            let m = Mirror::from_snapshot(&ack);
            assert_eq!(m.frames(), engine_frames(&mut h, "london", pattern));
            h.take(conn);
            mirrors.insert(conn, (pattern.to_string(), m));
        }
        let id = IDS[rng.below(IDS.len())];
        let exists = h.engine.object("london", id).is_some();
        match rng.below(7) {
            0 | 1 => {
                let frame = json!({"op": "object.create", "realm": "london", "id": id, "data": {"step": step}});
                if exists {
                    assert_eq!(h.err(1, frame), "OBJECT_EXISTS");
                } else {
                    h.ok(1, frame);
                    *counts.entry("create").or_default() += 1;
                }
            }
            2 => {
                let frame = json!({"op": "object.update", "realm": "london", "id": id, "data": [step]});
                if exists {
                    h.ok(1, frame);
                    *counts.entry("update").or_default() += 1;
                } else {
                    assert_eq!(h.err(1, frame), "OBJECT_NOT_FOUND");
                }
            }
            3 => {
                let frame = json!({"op": "object.delete", "realm": "london", "id": id});
                if exists {
                    h.ok(1, frame);
                    *counts.entry("delete").or_default() += 1;
                } else {
                    assert_eq!(h.err(1, frame), "OBJECT_NOT_FOUND");
                }
            }
            4 => {
                next_provider += 1;
                h.open(next_provider, Credentials::Token(provider_token(next_provider as usize, &mut rng)));
                live.push(next_provider);
            }
            5 if !live.is_empty() => {
                let conn = live.swap_remove(rng.below(live.len()));
                h.close(conn);
            }
            6 if !live.is_empty() => {
                let conn = live[rng.below(live.len())];
                h.ok(conn, json!({"op": "auth", "token": provider_token(conn as usize, &mut rng)}));
            }
            _ => {}
        }
        for (conn, (pattern, mirror)) in mirrors.iter_mut() {
            for m in h.take(*conn) {
                if m["event"] == "status" {
                    *counts.entry("status").or_default() += 1;
                }
                mirror.apply(&m, "london", h.now);
            }
            assert_eq!(mirror.frames(), engine_frames(&mut h, "london", pattern), "step {step}, {conn} on {pattern}");
        }
    }
    for kind in ["create", "update", "delete", "status"] {
        assert!(counts.get(kind).copied().unwrap_or(0) > 10, "the script exercised {kind}: {counts:?}");
    }
}

#[test]
fn the_ack_comes_before_any_later_change_and_changes_keep_their_order() {
    let mut h = Host::default();
    h.open(1, admin());
    h.open(2, reader("r"));
    h.take(2);
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "a", "data": 0}));
    h.ok(2, json!({"op": "object.subscribe", "realm": "london"}));
    h.ok(1, json!({"op": "object.update", "realm": "london", "id": "a", "data": 1}));
    h.open(3, ident("p", Value::Null, json!({"london": ["a"]})));
    h.ok(1, json!({"op": "object.update", "realm": "london", "id": "a", "data": 2}));
    h.close(3);
    h.ok(1, json!({"op": "object.delete", "realm": "london", "id": "a"}));
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "a", "data": 3}));
    let got: Vec<String> = h
        .take(2)
        .iter()
        .map(|m| match m["type"].as_str().unwrap() {
            "ack" => format!("ack:{}", m["objects"][0]["data"]),
            _ => format!(
                "{}:{}:{}",
                m["event"].as_str().unwrap(),
                m["object"]["data"],
                m["object"]["connectionStatus"].as_str().unwrap()
            ),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "ack:0",
            "update:1:disconnected",
            "status:1:connected",
            "update:2:connected",
            "status:2:disconnected",
            "delete:2:disconnected",
            "create:3:disconnected",
        ]
    );
}

#[test]
fn unsubscribing_stops_the_changes_of_that_subscription_only() {
    let mut h = Host::default();
    h.open(1, admin());
    h.open(2, reader("r"));
    h.ok(2, json!({"op": "object.subscribe", "realm": "london"}));
    h.ok(2, json!({"op": "object.subscribe", "realm": "london", "pattern": "cars/*"}));
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "cars/1"}));
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "bikes/1"}));
    // Two matching subscriptions, one frame each change.
    assert_eq!(h.take_type(2, "object").len(), 2);
    // Unsubscribing without a pattern ends the `**` one.
    let ack = h.ok(2, json!({"op": "object.unsubscribe", "realm": "london"}));
    assert_eq!(ack, json!({"type": "ack", "ref": 5, "op": "object.unsubscribe"}));
    h.ok(1, json!({"op": "object.update", "realm": "london", "id": "cars/1", "data": 1}));
    h.ok(1, json!({"op": "object.update", "realm": "london", "id": "bikes/1", "data": 1}));
    let got = h.take_type(2, "object");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["object"]["id"], "cars/1");
    // A pattern it does not hold: acked, changes nothing.
    h.ok(2, json!({"op": "object.unsubscribe", "realm": "london", "pattern": "cars/**"}));
    h.ok(2, json!({"op": "object.unsubscribe", "realm": "nowhere"}));
    h.ok(1, json!({"op": "object.update", "realm": "london", "id": "cars/1", "data": 2}));
    assert_eq!(h.take_type(2, "object").len(), 1);
    h.ok(2, json!({"op": "object.unsubscribe", "realm": "london", "pattern": "cars/*"}));
    h.ok(1, json!({"op": "object.update", "realm": "london", "id": "cars/1", "data": 3}));
    h.ok(1, json!({"op": "object.delete", "realm": "london", "id": "cars/1"}));
    h.open(3, ident("p", Value::Null, json!({"london": ["**"]})));
    let got: Vec<Value> = h.take(2).into_iter().filter(|m| m["type"] != "ack").collect();
    assert_eq!(got, Vec::<Value>::new());
    // An object unsubscribe leaves event subscriptions alone, and back.
    h.ok(2, json!({"op": "realm.subscribe", "realm": "london", "event": "e"}));
    h.ok(2, json!({"op": "object.unsubscribe", "realm": "london"}));
    h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "e"}));
    assert_eq!(h.take_type(2, "event").len(), 1);
    h.ok(2, json!({"op": "realm.unsubscribe", "realm": "london", "event": "e"}));
    h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "e"}));
    assert_eq!(h.take_type(2, "event").len(), 0);
}

#[test]
fn a_closed_subscriber_is_forgotten() {
    let mut h = Host::default();
    h.open(1, admin());
    h.open(2, reader("r"));
    h.ok(2, json!({"op": "object.subscribe", "realm": "london"}));
    h.ok(2, json!({"op": "realm.subscribe", "realm": "london", "event": "*"}));
    assert_eq!(h.engine.realm_names(), vec!["london"]);
    h.close(2);
    assert_eq!(h.engine.realm_names(), Vec::<String>::new(), "the realm held only subscriptions");
    let ack = h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "e"}));
    assert_eq!(ack["recipients"], 0);
    let sends = h.sends;
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "a"}));
    assert_eq!(h.sends, sends + 1, "only the ack");
}

#[test]
fn object_and_realm_subscriptions_count_toward_the_connection_limit() {
    let limits = Limits { max_subscriptions_per_connection: 3, ..Limits::default() };
    let mut h = Host::new(Config { limits, ..Config::default() });
    h.open(1, admin());
    h.ok(1, json!({"op": "object.subscribe", "realm": "london"}));
    h.ok(1, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged"}));
    h.join(1, "room");
    h.ok(1, json!({"op": "subscribe", "room": "room", "event": "chat"}));
    let refused = [
        json!({"op": "object.subscribe", "realm": "london", "pattern": "a/*"}),
        json!({"op": "object.subscribe", "realm": "paris"}),
        json!({"op": "realm.subscribe", "realm": "london", "event": "*"}),
        json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged", "pattern": "a/*"}),
        json!({"op": "presence.subscribe", "room": "room"}),
    ];
    for frame in &refused {
        assert_eq!(h.err(1, frame.clone()), "TOO_MANY_SUBSCRIPTIONS", "{frame}");
    }
    assert_eq!(h.engine.realm_names(), vec!["london"], "a refused subscription makes no realm");
    // The same subscriptions again are no new ones.
    let ack = h.ok(1, json!({"op": "object.subscribe", "realm": "london", "pattern": "**"}));
    assert_eq!(ack["objects"], json!([]));
    h.ok(1, json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged", "pattern": "**"}));
    // Freeing one frees a place, for either kind.
    h.ok(1, json!({"op": "object.unsubscribe", "realm": "london"}));
    h.ok(1, json!({"op": "realm.subscribe", "realm": "london", "event": "*"}));
    assert_eq!(h.err(1, refused[0].clone()), "TOO_MANY_SUBSCRIPTIONS");
    h.ok(1, json!({"op": "room.leave", "room": "room"}));
    h.ok(1, refused[0].clone());
    assert_eq!(h.err(1, refused[1].clone()), "TOO_MANY_SUBSCRIPTIONS");
    // Unsubscribing twice frees it once.
    h.ok(1, json!({"op": "realm.unsubscribe", "realm": "london", "event": "*"}));
    h.ok(1, json!({"op": "realm.unsubscribe", "realm": "london", "event": "*"}));
    h.ok(1, refused[1].clone());
    assert_eq!(h.err(1, refused[2].clone()), "TOO_MANY_SUBSCRIPTIONS");
}

#[test]
fn a_star_event_subscription_gets_every_realm_event_once() {
    let mut h = Host::default();
    h.open(1, admin());
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "cars/1"}));
    h.open(2, reader("r"));
    h.ok(2, json!({"op": "realm.subscribe", "realm": "london", "event": "*"}));
    // Also subscribed by name: still one copy of each.
    h.ok(2, json!({"op": "realm.subscribe", "realm": "london", "event": "honk"}));
    h.ok(
        2,
        json!({"op": "realm.subscribe", "realm": "london", "event": "connectionStatusChanged", "pattern": "cars/*"}),
    );
    h.take(2);
    h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "honk", "id": "cars/1"}));
    h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "beep", "data": {"x": 1}}));
    h.ok(1, json!({"op": "realm.publish", "realm": "paris", "event": "beep"}));
    h.open(3, ident("p", Value::Null, json!({"london": ["cars/*"]})));
    let got: Vec<String> = h
        .take(2)
        .iter()
        .map(|m| format!("{}:{}:{}", m["type"].as_str().unwrap(), m["event"].as_str().unwrap(), m["id"]))
        .collect();
    assert_eq!(got, vec!["event:honk:\"cars/1\"", "event:beep:null", "event:connectionStatusChanged:\"cars/1\""]);
    // A pattern on a `*` subscription filters by id; id-less events only reach catch-all patterns.
    h.open(4, reader("s"));
    h.ok(4, json!({"op": "realm.subscribe", "realm": "london", "event": "*", "pattern": "bikes/*"}));
    h.take(4);
    h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "honk", "id": "cars/1"}));
    h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "honk"}));
    h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "honk", "id": "bikes/1"}));
    let got = h.take(4);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], "bikes/1");
}

#[test]
fn realm_publish_is_delivered_from_the_publisher_and_acked_with_its_recipients() {
    let mut h = Host::default();
    h.open(7, ident("alice", json!({"london": {"riders/alice": "RU"}}), Value::Null));
    h.open(2, reader("r2"));
    h.open(3, reader("r3"));
    h.open(4, reader("r4"));
    for conn in [2, 3] {
        h.ok(conn, json!({"op": "realm.subscribe", "realm": "london", "event": "location"}));
    }
    h.ok(4, json!({"op": "realm.subscribe", "realm": "london", "event": "other"}));
    for conn in [2, 3, 4] {
        h.take(conn);
    }
    h.advance(250);
    let ack = h.ok(7, json!({"op": "realm.publish", "realm": "london", "event": "location", "id": "riders/alice", "data": {"lat": 1.5}}));
    assert_eq!(ack, json!({"type": "ack", "ref": 4, "op": "realm.publish", "recipients": 2}));
    let expected = json!({
        "type": "event", "realm": "london", "event": "location", "timestamp": iso8601(h.now),
        "id": "riders/alice", "from": {"id": "rollcall:7", "clientId": "alice"}, "data": {"lat": 1.5}
    });
    assert_eq!(h.take(2), vec![expected.clone()]);
    assert_eq!(h.take(3), vec![expected]);
    assert_eq!(h.take(4), Vec::<Value>::new());
    // The publisher subscribed too counts among the recipients, and gets it after its ack.
    h.ok(7, json!({"op": "realm.subscribe", "realm": "london", "event": "location", "pattern": "riders/*"}));
    h.take(7);
    let ack = h.ok(7, json!({"op": "realm.publish", "realm": "london", "event": "location", "id": "riders/alice"}));
    assert_eq!(ack["recipients"], 3);
    let own = h.take(7);
    assert_eq!(own.len(), 2);
    assert_eq!(own[0]["type"], "ack");
    assert_eq!(own[1]["type"], "event");
    assert_eq!(own[1]["data"], Value::Null);
    // A connection without a clientId publishes with `clientId: null`.
    h.open(
        8,
        Credentials::Identity(Identity {
            per: Some(serde_json::from_value(json!({"london": {"**": "U"}})).unwrap()),
            ..Identity::default()
        }),
    );
    h.ok(8, json!({"op": "realm.publish", "realm": "london", "event": "location", "id": "x"}));
    assert_eq!(h.take(2)[1]["from"], json!({"id": "rollcall:8", "clientId": null}));
}

#[test]
fn one_send_per_event_whatever_the_number_of_subscribers() {
    let mut h = Host::default();
    h.open(1, admin());
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "cars/1"}));
    let n = 60u64;
    for i in 0..n {
        let conn = 100 + i;
        // Three distinct permission sets and three patterns.
        let per = match i % 3 {
            0 => json!({"london": {"**": "R"}}),
            1 => json!({"*": {"cars/*": "R"}}),
            _ => json!({"london": {"cars/1": "R", "bikes/*": "R"}}),
        };
        let pattern = ["**", "cars/*", "cars/1"][(i / 3 % 3) as usize];
        h.open(conn, ident(&format!("s{i}"), per, Value::Null));
        h.ok(conn, json!({"op": "object.subscribe", "realm": "london", "pattern": pattern}));
        h.ok(conn, json!({"op": "realm.subscribe", "realm": "london", "event": "*", "pattern": pattern}));
        h.take(conn);
    }
    let measure = |h: &mut Host, f: &dyn Fn(&mut Host)| {
        let (s, d) = (h.sends, h.deliveries);
        f(h);
        (h.sends - s, h.deliveries - d)
    };
    // A publish: the ack and one event.
    let (sends, deliveries) = measure(&mut h, &|h| {
        h.ok(1, json!({"op": "realm.publish", "realm": "london", "event": "e", "id": "cars/1"}));
    });
    assert_eq!((sends, deliveries), (2, 1 + n as usize));
    // An update: the ack and one change.
    let (sends, deliveries) = measure(&mut h, &|h| {
        h.ok(1, json!({"op": "object.update", "realm": "london", "id": "cars/1", "data": 1}));
    });
    assert_eq!((sends, deliveries), (2, 1 + n as usize));
    // A provider arriving: one `status` change and one `connectionStatusChanged`.
    let (sends, deliveries) = measure(&mut h, &|h| h.open(2, ident("p", Value::Null, json!({"london": ["cars/1"]}))));
    assert_eq!((sends, deliveries), (1 + 2, 1 + 2 * n as usize), "welcome, status, event");
    // Every subscriber got each of them exactly once.
    for i in 0..n {
        let got = h.take(100 + i);
        let kinds: Vec<String> =
            got.iter().map(|m| format!("{}:{}", m["type"].as_str().unwrap(), m["event"].as_str().unwrap())).collect();
        assert_eq!(
            kinds,
            vec!["event:e", "object:update", "object:status", "event:connectionStatusChanged"],
            "subscriber {i}"
        );
    }
    // An id only some may read or match: still one send.
    h.ok(1, json!({"op": "object.create", "realm": "london", "id": "bikes/1"}));
    let (sends, deliveries) = measure(&mut h, &|h| {
        h.ok(1, json!({"op": "object.update", "realm": "london", "id": "bikes/1", "data": 2}));
    });
    // Readers of bikes/1: sets 0 and 2 (40 of 60); matching it: pattern `**` only (i / 3 % 3 == 0).
    let expected = (0..n).filter(|i| i % 3 != 1 && i / 3 % 3 == 0).count();
    assert_eq!((sends, deliveries), (2, 1 + expected));
}
