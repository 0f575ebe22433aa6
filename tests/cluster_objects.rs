//! Objects, providers and realm events across nodes (cluster mode) through
//! the engine's public API, with no Redis: a model store in this file does
//! what rollcall/redis's Lua scripts do (OBJECT orders each realm's changes
//! with an epoch and a seq and keeps the objects; PROVIDERS keeps each
//! node's provider set with a growing version; everything goes on one
//! channel every node follows). The real thing: tests/js/cluster.test.js.

mod common;

use std::collections::BTreeMap;

use common::{ident, node_config, EventCursor, Host};
use rollcall::{ConnectionStatus, Engine, Error, HostEvent};
use serde_json::{json, Value};

#[derive(Default)]
struct StoredRealm {
    seq: u64,
    objects: BTreeMap<String, String>,
}

struct Store {
    hosts: Vec<Host>,
    cursor: EventCursor,
    epoch: u64,
    realms: BTreeMap<String, StoredRealm>,
    /// node -> its providers message.
    providers: BTreeMap<String, String>,
    version: u64,
    /// A host that gets nothing for now (a network that is slow for it).
    held_back: Option<usize>,
}

impl Store {
    fn new(nodes: &[&str]) -> Store {
        Store {
            hosts: nodes.iter().map(|n| Host::new(node_config(n))).collect(),
            cursor: EventCursor::new(nodes.len()),
            epoch: 7000,
            realms: BTreeMap::new(),
            providers: BTreeMap::new(),
            version: 0,
            held_back: None,
        }
    }

    fn h(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i]
    }

    /// The OBJECT script.
    fn object(&mut self, realm: &str, op: &str, id: &str, data: Option<&str>, t: u64) {
        let r = self.realms.entry(realm.to_string()).or_default();
        let exists = r.objects.contains_key(id);
        let (op, d) = match op {
            "delete" if exists => {
                r.objects.remove(id);
                ("delete", "null".to_string())
            }
            "update" if !exists => return,
            "create" | "update" => {
                let d = data.unwrap_or("null").to_string();
                r.objects.insert(id.to_string(), d.clone());
                (if exists { "update" } else { "create" }, d)
            }
            _ => return,
        };
        r.seq += 1;
        let d: Value = serde_json::from_str(&d).unwrap();
        let text = json!({"r": realm, "e": self.epoch, "s": r.seq, "op": op, "t": t, "id": id, "d": d}).to_string();
        self.deliver(&text);
    }

    /// The PROVIDERS script (`None`: the node is gone).
    fn set_providers(&mut self, node: &str, providers: Option<&str>) {
        self.version += 1;
        let p: Value = providers.map_or(Value::Null, |p| serde_json::from_str(p).unwrap());
        let text = json!({"n": node, "v": self.version, "p": p}).to_string();
        match providers {
            Some(_) => self.providers.insert(node.to_string(), text.clone()),
            None => self.providers.remove(node),
        };
        self.deliver(&text);
    }

    fn realm_snapshot(&self, realm: &str) -> String {
        let r = self.realms.get(realm);
        let objects: Vec<Value> = r.map_or_else(Vec::new, |r| {
            r.objects.iter().map(|(id, d)| json!([id, serde_json::from_str::<Value>(d).unwrap()])).collect()
        });
        json!({"e": self.epoch, "s": r.map_or(0, |r| r.seq), "o": objects}).to_string()
    }

    fn providers_snapshot(&self) -> String {
        let p: Vec<Value> = self.providers.values().map(|m| serde_json::from_str(m).unwrap()).collect();
        json!({"at": self.version, "p": p}).to_string()
    }

    fn deliver(&mut self, text: &str) {
        for i in 0..self.hosts.len() {
            if self.held_back == Some(i) {
                continue;
            }
            let h = &mut self.hosts[i];
            h.engine.cluster_objects_apply(text, h.now).expect("a valid message");
            h.pump();
        }
    }

    /// Acts on every host's cluster events until none is left.
    fn settle(&mut self) {
        while let Some((i, event)) = self.cursor.next(&self.hosts) {
            let now = self.hosts[i].now;
            let node = self.hosts[i].engine.config().cluster.as_ref().unwrap().node.clone();
            match event {
                HostEvent::ClusterObject { realm, op, id, data_text } => {
                    self.object(&realm, op, &id, data_text.as_deref(), now)
                }
                HostEvent::ClusterRealmPublish { message, .. } => self.deliver(&message),
                HostEvent::ClusterProviders { providers } => self.set_providers(&node, Some(&providers)),
                HostEvent::ClusterRealmResync { realm } if self.held_back != Some(i) => {
                    let snap = self.realm_snapshot(&realm);
                    self.hosts[i].engine.cluster_realm_snapshot(&realm, &snap, now).expect("a snapshot");
                    self.hosts[i].pump();
                }
                _ => {}
            }
        }
    }

    fn open(&mut self, i: usize, conn: u64, client_id: &str, per: Value, dpv: Value) {
        self.h(i).open(conn, ident(client_id, per, dpv));
        self.h(i).take(conn);
        self.settle();
    }

    /// `object.subscribe` to every object of `realm`.
    fn subscribe(&mut self, i: usize, conn: u64, realm: &str) {
        self.h(i).ok(conn, json!({"op": "object.subscribe", "realm": realm}));
        self.h(i).ok(conn, json!({"op": "realm.subscribe", "realm": realm, "event": "*"}));
        self.h(i).take(conn);
    }

    fn request(&mut self, i: usize, conn: u64, frame: Value) -> Value {
        let reply = self.h(i).ok(conn, frame);
        self.settle();
        reply
    }

    /// What every node holds of `realm`: (id, data, status, providers).
    fn objects(&mut self, i: usize, realm: &str) -> Vec<(String, Option<String>, ConnectionStatus, u32)> {
        let engine: &mut Engine = &mut self.hosts[i].engine;
        engine
            .objects(realm, "**")
            .unwrap()
            .into_iter()
            .map(|o| (o.id, o.data, o.connection_status, o.providers))
            .collect()
    }
}

/// Object frames as (event, id, status); realm events as ("event:"name, id, status or "").
fn changes(frames: &[Value]) -> Vec<(String, String, String)> {
    frames
        .iter()
        .filter_map(|f| match f["type"].as_str() {
            Some("object") => Some((
                f["event"].as_str().unwrap().to_string(),
                f["object"]["id"].as_str().unwrap().to_string(),
                f["object"]["connectionStatus"].as_str().unwrap().to_string(),
            )),
            Some("event") => Some((
                format!("event:{}", f["event"].as_str().unwrap()),
                f["id"].as_str().unwrap_or_default().to_string(),
                f["data"]["connectionStatus"].as_str().unwrap_or_default().to_string(),
            )),
            _ => None,
        })
        .collect()
}

fn c(event: &str, id: &str, status: &str) -> (String, String, String) {
    (event.to_string(), id.to_string(), status.to_string())
}

const READ_ALL: &str = r#"{"fleet": {"**": "R"}}"#;

fn per(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn objects_written_on_one_node_reach_readers_on_every_node_by_their_rights() {
    let mut s = Store::new(&["n0", "n1", "n2"]);
    s.open(0, 1, "reader", per(READ_ALL), Value::Null);
    s.open(2, 1, "partial", per(r#"{"fleet": {"van/1": "R"}}"#), Value::Null);
    s.open(1, 1, "writer", per(r#"{"fleet": {"**": "CRUD"}}"#), Value::Null);
    s.subscribe(0, 1, "fleet");
    s.subscribe(2, 1, "fleet");
    // Acked at once on its node, applied once the store ordered it.
    s.h(1).ok(1, json!({"op": "object.create", "realm": "fleet", "id": "van/1", "data": {"km": 1}}));
    assert!(s.objects(1, "fleet").is_empty(), "not applied before the store ordered it");
    s.settle();
    s.request(1, 1, json!({"op": "object.create", "realm": "fleet", "id": "van/2"}));
    s.request(1, 1, json!({"op": "object.update", "realm": "fleet", "id": "van/1", "data": {"km": 2}}));
    s.request(1, 1, json!({"op": "object.delete", "realm": "fleet", "id": "van/2"}));
    assert_eq!(
        changes(&s.h(0).take(1)),
        [
            c("create", "van/1", "disconnected"),
            c("create", "van/2", "disconnected"),
            c("update", "van/1", "disconnected"),
            c("delete", "van/2", "disconnected")
        ]
    );
    assert_eq!(changes(&s.h(2).take(1)), [c("create", "van/1", "disconnected"), c("update", "van/1", "disconnected")]);
    // Every node holds the same objects; the writer's node refuses as one node would.
    let want = vec![("van/1".to_string(), Some(r#"{"km":2}"#.to_string()), ConnectionStatus::Disconnected, 0)];
    for i in 0..3 {
        assert_eq!(s.objects(i, "fleet"), want);
    }
    assert_eq!(s.hosts[1].engine.cluster_realm_epoch("fleet"), Some(7000), "the store's epoch, for a re-assert");
    assert_eq!(s.hosts[1].engine.cluster_realm_epoch("nowhere"), None);
    assert_eq!(s.h(1).err(1, json!({"op": "object.create", "realm": "fleet", "id": "van/1"})), "OBJECT_EXISTS");
    assert_eq!(s.h(1).err(1, json!({"op": "object.delete", "realm": "fleet", "id": "van/2"})), "OBJECT_NOT_FOUND");
    assert_eq!(s.h(0).err(1, json!({"op": "object.create", "realm": "fleet", "id": "x"})), "FORBIDDEN");
}

#[test]
fn concurrent_creates_on_two_nodes_end_as_one_object_everywhere() {
    let mut s = Store::new(&["n0", "n1"]);
    for i in 0..2 {
        s.open(i, 1, "writer", per(r#"{"fleet": {"**": "CRUD"}}"#), Value::Null);
        s.subscribe(i, 1, "fleet");
    }
    // Both acked before either is ordered: the later in the store's order is an update.
    s.h(0).ok(1, json!({"op": "object.create", "realm": "fleet", "id": "x", "data": 1}));
    s.h(1).ok(1, json!({"op": "object.create", "realm": "fleet", "id": "x", "data": 2}));
    s.settle();
    for i in 0..2 {
        assert_eq!(changes(&s.h(i).take(1)), [c("create", "x", "disconnected"), c("update", "x", "disconnected")]);
        assert_eq!(s.objects(i, "fleet")[0].1.as_deref(), Some("2"));
    }
    // An update of an object deleted first is dropped by the store.
    s.h(0).ok(1, json!({"op": "object.delete", "realm": "fleet", "id": "x"}));
    s.h(1).ok(1, json!({"op": "object.update", "realm": "fleet", "id": "x", "data": 3}));
    s.settle();
    for i in 0..2 {
        assert_eq!(changes(&s.h(i).take(1)), [c("delete", "x", "disconnected")]);
        assert!(s.objects(i, "fleet").is_empty());
    }
}

#[test]
fn a_provider_on_one_node_connects_objects_everywhere_and_its_node_gone_disconnects_them_once() {
    let mut s = Store::new(&["n0", "n1", "n2"]);
    s.open(0, 1, "admin", per(r#"{"fleet": {"**": "CRUD"}}"#), Value::Null);
    s.open(1, 1, "reader", per(READ_ALL), Value::Null);
    s.subscribe(0, 1, "fleet");
    s.subscribe(1, 1, "fleet");
    s.request(0, 1, json!({"op": "object.create", "realm": "fleet", "id": "van/1"}));
    s.request(0, 1, json!({"op": "object.create", "realm": "fleet", "id": "bike/1"}));
    s.h(0).take(1);
    s.h(1).take(1);
    // Two providers of van/* on n2: the node's set says it once.
    s.open(2, 1, "vans", Value::Null, json!({"fleet": ["van/*"]}));
    s.open(2, 2, "vans-2", Value::Null, json!({"fleet": ["van/*"]}));
    let said: Vec<String> = s
        .h(2)
        .events
        .iter()
        .filter_map(|e| match e {
            HostEvent::ClusterProviders { providers } => Some(providers.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(said, [r#"{"fleet":["van/*"]}"#]);
    for i in 0..2 {
        assert_eq!(
            changes(&s.h(i).take(1)),
            [c("status", "van/1", "connected"), c("event:connectionStatusChanged", "van/1", "connected")]
        );
    }
    // Each other node counts as one provider; its own connections one each.
    assert_eq!(s.objects(0, "fleet")[1], ("van/1".into(), None, ConnectionStatus::Connected, 1));
    assert_eq!(s.objects(2, "fleet")[1], ("van/1".into(), None, ConnectionStatus::Connected, 2));
    // One of two providers goes: nothing changes anywhere.
    s.h(2).close(2);
    s.settle();
    assert!(s.h(0).take(1).is_empty() && s.h(1).take(1).is_empty());
    // An object created later is connected at once where the provider's set is known.
    s.request(0, 1, json!({"op": "object.create", "realm": "fleet", "id": "van/2"}));
    assert_eq!(changes(&s.h(1).take(1)), [c("create", "van/2", "connected")]);
    s.h(0).take(1);
    // The node dies; the reaper removes its set: disconnected everywhere, once.
    s.set_providers("n2", None);
    s.set_providers("n2", None);
    s.settle();
    for i in 0..2 {
        let got = changes(&s.h(i).take(1));
        assert_eq!(got.iter().filter(|(e, _, st)| e == "status" && st == "disconnected").count(), 2, "{got:?}");
    }
    assert!(s.objects(0, "fleet").iter().all(|o| o.2 == ConnectionStatus::Disconnected && o.3 == 0));
    // A stale message (a lower version) changes nothing.
    let stale = json!({"n": "n2", "v": 1, "p": {"fleet": ["**"]}}).to_string();
    let now = s.h(0).now;
    s.h(0).engine.cluster_objects_apply(&stale, now).unwrap();
    s.h(0).pump();
    assert!(s.h(0).take(1).is_empty());
}

#[test]
fn a_providers_snapshot_drops_nodes_gone_and_keeps_newer_ones() {
    let mut s = Store::new(&["n0", "n1"]);
    s.open(0, 1, "admin", per(r#"{"fleet": {"**": "CRUD"}}"#), Value::Null);
    s.subscribe(0, 1, "fleet");
    s.request(0, 1, json!({"op": "object.create", "realm": "fleet", "id": "a"}));
    s.open(1, 1, "provider", Value::Null, json!({"fleet": ["a"]}));
    s.h(0).take(1);
    let now = s.h(0).now;
    // A snapshot taken before n1's set was written (at an older version) keeps it.
    s.h(0).engine.cluster_providers_snapshot(r#"{"at":0,"p":[]}"#, now).unwrap();
    s.h(0).pump();
    assert!(s.h(0).take(1).is_empty());
    assert_eq!(s.objects(0, "fleet")[0].2, ConnectionStatus::Connected);
    // A newer one without it: n1 is gone.
    let later = format!(r#"{{"at":{},"p":[]}}"#, s.version + 1);
    s.h(0).engine.cluster_providers_snapshot(&later, now).unwrap();
    s.h(0).pump();
    assert_eq!(
        changes(&s.h(0).take(1)),
        [c("status", "a", "disconnected"), c("event:connectionStatusChanged", "a", "disconnected")]
    );
    // The store's own snapshot brings it back.
    let snap = s.providers_snapshot().replace(&format!(r#""at":{}"#, s.version), r#""at":0"#);
    let snap = snap.replace(&format!(r#""v":{}"#, s.version), &format!(r#""v":{}"#, s.version + 5));
    s.h(0).engine.cluster_providers_snapshot(&snap, now).unwrap();
    s.h(0).pump();
    assert_eq!(changes(&s.h(0).take(1))[0], c("status", "a", "connected"));
}

#[test]
fn a_node_that_missed_changes_resyncs_its_realm_as_the_changes_that_differ() {
    let mut s = Store::new(&["n0", "n1"]);
    s.open(0, 1, "admin", per(r#"{"fleet": {"**": "CRUD"}}"#), Value::Null);
    s.open(1, 1, "reader", per(READ_ALL), Value::Null);
    s.subscribe(1, 1, "fleet");
    for id in ["a", "b", "c"] {
        s.request(0, 1, json!({"op": "object.create", "realm": "fleet", "id": id, "data": 0}));
    }
    s.h(1).take(1);
    // n1 misses three changes.
    s.held_back = Some(1);
    s.request(0, 1, json!({"op": "object.update", "realm": "fleet", "id": "a", "data": 1}));
    s.request(0, 1, json!({"op": "object.delete", "realm": "fleet", "id": "b"}));
    s.request(0, 1, json!({"op": "object.create", "realm": "fleet", "id": "d"}));
    s.held_back = None;
    // The next change shows the gap: held, then the snapshot (which holds it too).
    s.request(0, 1, json!({"op": "object.update", "realm": "fleet", "id": "c", "data": 5}));
    assert!(s.h(1).events.iter().any(|e| matches!(e, HostEvent::ClusterRealmResync { realm } if realm == "fleet")));
    let mut got = changes(&s.h(1).take(1));
    got.sort();
    let want = [("create", "d"), ("delete", "b"), ("update", "a"), ("update", "c")];
    assert_eq!(got, want.map(|(e, id)| c(e, id, "disconnected")));
    assert_eq!(s.objects(1, "fleet"), s.objects(0, "fleet"));
    // A snapshot older than what it applied changes nothing.
    let now = s.h(1).now;
    s.h(1).engine.cluster_realm_snapshot("fleet", r#"{"e":7000,"s":1,"o":[]}"#, now).unwrap();
    s.h(1).pump();
    assert!(s.h(1).take(1).is_empty());
    assert_eq!(s.objects(1, "fleet").len(), 3);
}

#[test]
fn realm_events_reach_readers_on_other_nodes_once_with_their_rights() {
    let mut s = Store::new(&["n0", "n1"]);
    s.open(0, 1, "publisher", per(r#"{"fleet": {"**": "CRU"}}"#), Value::Null);
    s.open(0, 2, "local", per(READ_ALL), Value::Null);
    s.open(1, 1, "remote", per(READ_ALL), Value::Null);
    s.open(1, 2, "partial", per(r#"{"fleet": {"van/1": "R"}}"#), Value::Null);
    for (i, conn) in [(0, 2), (1, 1), (1, 2)] {
        s.subscribe(i, conn, "fleet");
    }
    for id in ["van/1", "van/2"] {
        let ack = s.request(0, 1, json!({"op": "realm.publish", "realm": "fleet", "event": "moved", "id": id}));
        assert_eq!(ack["recipients"], 1, "its own node's recipients");
    }
    assert_eq!(changes(&s.h(0).take(2)), [c("event:moved", "van/1", ""), c("event:moved", "van/2", "")]);
    assert_eq!(changes(&s.h(1).take(1)), [c("event:moved", "van/1", ""), c("event:moved", "van/2", "")]);
    assert_eq!(changes(&s.h(1).take(2)), [c("event:moved", "van/1", "")]);
    // Nobody may publish connectionStatusChanged, on any node.
    let code = s.h(0).err(1, json!({"op": "realm.publish", "realm": "fleet", "event": "connectionStatusChanged"}));
    assert_eq!(code, "FORBIDDEN");
}

#[test]
fn texts_that_are_not_the_stores_change_nothing_and_a_single_node_refuses_the_calls() {
    let mut s = Store::new(&["n0"]);
    s.open(0, 1, "admin", per(r#"{"fleet": {"**": "CRUD"}}"#), Value::Null);
    s.subscribe(0, 1, "fleet");
    s.request(0, 1, json!({"op": "object.create", "realm": "fleet", "id": "a"}));
    s.h(0).take(1);
    let now = s.h(0).now;
    let e = &mut s.hosts[0].engine;
    for bad in [
        "",
        "{}",
        "[]",
        "null",
        r#"{"r":"fleet","e":1}"#,
        r#"{"n":"x","v":"1"}"#,
        r#"{"r":"fleet","n":"x","ev":"e"}"#,
        "\u{0}",
    ] {
        assert!(matches!(e.cluster_objects_apply(bad, now), Err(Error::InvalidJson(_))), "{bad:?}");
    }
    assert!(e.cluster_objects_apply(r#"{"n":"x","v":1,"p":{"fleet":"van/*"}}"#, now).is_err());
    assert!(e.cluster_realm_snapshot("fleet", r#"{"e":1,"s":1,"o":[[1,2]]}"#, now).is_err());
    assert!(e.cluster_providers_snapshot(r#"{"at":1}"#, now).is_err());
    // A snapshot with one claim that does not compile changes nothing, not even the others.
    let half = r#"{"at":5,"p":[{"n":"x","v":5,"p":{"fleet":["**"]}},{"n":"y","v":5,"p":{"fleet":[""]}}]}"#;
    assert!(e.cluster_providers_snapshot(half, now).is_err());
    // The largest seq the store could send is taken as it is, never overflowing.
    e.cluster_realm_snapshot("fleet", r#"{"e":9,"s":18446744073709551615,"o":[["a",null]]}"#, now).unwrap();
    e.cluster_objects_apply(r#"{"r":"fleet","e":9,"s":18446744073709551615,"op":"delete","id":"a"}"#, now).unwrap();
    s.h(0).pump();
    assert!(s.h(0).take(1).is_empty());
    assert_eq!(s.objects(0, "fleet").len(), 1);
    let mut single = Host::default();
    assert!(single.engine.cluster_objects_apply(r#"{"n":"x","v":1,"p":null}"#, 0).is_err());
    assert!(single.engine.cluster_realm_snapshot("r", r#"{"e":1,"s":1,"o":[]}"#, 0).is_err());
    assert!(single.engine.cluster_providers_snapshot(r#"{"at":1,"p":[]}"#, 0).is_err());
}
