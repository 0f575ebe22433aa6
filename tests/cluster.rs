//! Cluster mode through the engine's public API, with no Redis: a model
//! store in this file does what rollcall/redis's Lua scripts do (orders
//! each room's changes with an epoch and a seq, keeps the set, hands
//! snapshots), and hands every ordered change to every engine watching
//! the room. The real thing is tested in tests/js/cluster.test.js.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{node_config, EventCursor, Host, T0};
use rollcall::engine::is_remote;
use rollcall::{ConnectionId, Credentials, Engine, Error, HostEvent, Identity};
use serde_json::{json, Value};

/// What rollcall/redis keeps per room: epoch, seq, members by id.
#[derive(Default)]
struct StoredRoom {
    seq: u64,
    members: BTreeMap<String, String>,
}

struct Cluster {
    hosts: Vec<Host>,
    /// Host events already acted on, per host.
    cursor: EventCursor,
    epoch: u64,
    rooms: BTreeMap<String, StoredRoom>,
    watching: Vec<BTreeSet<String>>,
    /// Every change published, in order: (room, text).
    published: Vec<(String, String)>,
    /// Changes not handed to host `i` yet (a network that is slow for it).
    held_back: Option<usize>,
    /// Resume tokens recorded as resumable: token -> host.
    resumable: BTreeMap<String, usize>,
}

impl Cluster {
    fn new(nodes: &[&str]) -> Cluster {
        Cluster {
            hosts: nodes.iter().map(|n| Host::new(node_config(n))).collect(),
            cursor: EventCursor::new(nodes.len()),
            epoch: 1000,
            rooms: BTreeMap::new(),
            watching: vec![BTreeSet::new(); nodes.len()],
            published: Vec::new(),
            held_back: None,
            resumable: BTreeMap::new(),
        }
    }

    fn snapshot_text(&self, room: &str) -> String {
        let r = self.rooms.get(room);
        let members: Vec<Value> =
            r.map(|r| r.members.values().map(|m| serde_json::from_str(m).unwrap()).collect()).unwrap_or_default();
        json!({"e": self.epoch, "s": r.map_or(0, |r| r.seq), "m": members}).to_string()
    }

    /// The change script: state, seq, publish.
    fn write(&mut self, room: &str, op: &str, id: &str, member: Option<&str>, t: u64) {
        let r = self.rooms.entry(room.to_string()).or_default();
        let (op, stored) = match member {
            Some(m) if (op == "adopt" || op == "mark") && r.members.contains_key(id) => {
                // Re-owned by the resuming node, or its grace mark: no event, not numbered.
                r.members.insert(id.to_string(), m.to_string());
                let mark = format!(r#"{{"mark":{m}}}"#);
                return self.deliver(room, &mark);
            }
            _ if op == "mark" => return,
            Some(m) => {
                let op = if op == "adopt" { "join" } else { op };
                let op = if r.members.contains_key(id) { "update" } else { op };
                r.members.insert(id.to_string(), m.to_string());
                (op, m.to_string())
            }
            None => match r.members.remove(id) {
                Some(old) => ("leave", old),
                None => return, // already gone: no event
            },
        };
        r.seq += 1;
        let m: Value = serde_json::from_str(&stored).unwrap();
        let text = json!({"e": self.epoch, "s": r.seq, "op": op, "t": t, "m": m}).to_string();
        self.published.push((room.to_string(), text.clone()));
        self.deliver(room, &text);
    }

    fn deliver(&mut self, room: &str, text: &str) {
        for i in 0..self.hosts.len() {
            if self.held_back == Some(i) || !self.watching[i].contains(room) {
                continue;
            }
            let h = &mut self.hosts[i];
            h.engine.cluster_apply(room, text, h.now).expect("a valid change");
            h.pump();
        }
    }

    /// Acts on every host's cluster events until none is left.
    fn settle(&mut self) {
        while let Some((i, event)) = self.cursor.next(&self.hosts) {
            let now = self.hosts[i].now;
            match event {
                HostEvent::ClusterReplicate { room, op, id, member } => {
                    self.write(&room, op, &id, member.as_deref(), now)
                }
                HostEvent::ClusterWatch { room } | HostEvent::ClusterResync { room } => {
                    self.watching[i].insert(room.clone());
                    if self.held_back != Some(i) {
                        let snap = self.snapshot_text(&room);
                        self.hosts[i].engine.cluster_snapshot(&room, &snap, now).expect("a valid snapshot");
                        self.hosts[i].pump();
                    }
                }
                HostEvent::ClusterUnwatch { room } => {
                    self.watching[i].remove(&room);
                }
                HostEvent::ClusterPublish { room, message } => self.deliver(&room, &message),
                HostEvent::ClusterResumable { token, .. } => {
                    self.resumable.insert(token, i);
                }
                HostEvent::ClusterResumeClaim { connection, token } => {
                    // The claim script: one claimer wins, then the owner hands over.
                    let state = self.resumable.remove(&token).and_then(|owner| {
                        let h = &mut self.hosts[owner];
                        let state = h.engine.cluster_handover(&token, h.now);
                        h.pump();
                        state
                    });
                    let h = &mut self.hosts[i];
                    h.engine.cluster_resume(connection, state.as_deref(), now).expect("a valid handover");
                    h.pump();
                }
                _ => {}
            }
        }
    }

    fn h(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i]
    }

    /// Connection `conn` on host `i`: "watcher", in `room`, subscribed to its presence.
    fn watcher(&mut self, i: usize, conn: u64, room: &str) {
        self.h(i).open_as(conn, "watcher");
        self.h(i).join(conn, room);
        self.h(i).ok(conn, json!({"op": "presence.subscribe", "room": room}));
    }

    /// Member ids of `room` as engine `i` sees them, sorted.
    fn ids(&self, i: usize, room: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.hosts[i].engine.members(room).into_iter().map(|m| m.id).collect();
        ids.sort();
        ids
    }
}

fn presence_events(frames: &[Value]) -> Vec<(String, String, u64)> {
    frames
        .iter()
        .filter(|f| f["type"] == "presence")
        .map(|f| (f["event"].as_str().unwrap().into(), f["id"].as_str().unwrap().into(), f["seq"].as_u64().unwrap()))
        .collect()
}

#[test]
fn one_presence_set_and_one_order_across_nodes() {
    let mut c = Cluster::new(&["a", "b"]);
    for (i, conn) in [(0, 1), (1, 1)] {
        c.h(i).open_as(conn, "watcher");
        c.h(i).join(conn, "lobby");
        c.h(i).ok(conn, json!({"op": "presence.subscribe", "room": "lobby"}));
    }
    c.settle();
    c.h(0).open_as(2, "alice");
    c.h(0).join(2, "lobby");
    c.h(1).open_as(2, "bob");
    c.h(1).join(2, "lobby");
    // Both write before either sees the other: the store orders them.
    c.h(0).enter(2, "lobby", json!({"n": 1}));
    c.h(1).enter(2, "lobby", json!({"n": 2}));
    c.settle();
    c.h(0).ok(2, json!({"op": "presence.update", "room": "lobby", "data": {"n": 3}}));
    c.settle();
    assert_eq!(c.ids(0, "lobby"), vec!["rollcall:a:2", "rollcall:b:2"]);
    assert_eq!(c.ids(0, "lobby"), c.ids(1, "lobby"));
    assert_eq!(c.hosts[0].engine.room_counts("lobby").members, 2);
    assert_eq!(c.hosts[1].engine.room_counts("lobby").clients, 2);
    let a = presence_events(&c.h(0).take(1));
    let b = presence_events(&c.h(1).take(1));
    assert_eq!(a, b, "the same events in the same order on both nodes");
    assert_eq!(a.iter().map(|e| e.2).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(a[2].0, "update");
    // A newcomer on b gets both in its snapshot, with the store's seq.
    c.h(1).open_as(3, "carol");
    c.h(1).join(3, "lobby");
    let snap = c.h(1).ok(3, json!({"op": "presence.get", "room": "lobby"}));
    assert_eq!(snap["members"].as_array().unwrap().len(), 2);
    assert_eq!(snap["seq"], 3);
    assert_eq!(snap["epoch"], 1000);
    // Remote members are keyed apart from local connections.
    let keys: Vec<ConnectionId> = c.hosts[1].engine.members("lobby").into_iter().map(|m| m.connection).collect();
    assert_eq!(keys.iter().filter(|k| is_remote(**k)).count(), 1);
    assert!(keys.contains(&ConnectionId(2)));
    // Leaving on a: one leave everywhere.
    c.h(0).close(2);
    c.settle();
    assert_eq!(c.ids(0, "lobby"), vec!["rollcall:b:2"]);
    assert_eq!(c.ids(1, "lobby"), vec!["rollcall:b:2"]);
    let leaves: Vec<_> = presence_events(&c.h(1).take(1)).into_iter().filter(|e| e.0 == "leave").collect();
    assert_eq!(leaves, vec![("leave".to_string(), "rollcall:a:2".to_string(), 4)]);
}

#[test]
fn the_client_view_counts_devices_on_every_node() {
    let mut c = Cluster::new(&["a", "b"]);
    c.h(0).open_as(1, "watcher");
    c.h(0).join(1, "r");
    c.h(0).ok(1, json!({"op": "presence.subscribe", "room": "r", "view": "client"}));
    c.settle();
    for i in 0..2 {
        c.h(i).open_as(5, "alice");
        c.h(i).join(5, "r");
        c.h(i).enter(5, "r", json!(null));
        c.settle();
    }
    let clients = c.hosts[0].engine.clients("r");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].connections.len(), 2);
    c.h(0).close(5);
    c.settle();
    c.h(1).close(5);
    c.settle();
    let events: Vec<String> = presence_events(&c.h(0).take(1)).into_iter().map(|e| e.0).collect();
    assert_eq!(events, vec!["join", "leave"], "first device in, last device out, across nodes");
}

#[test]
fn a_change_is_visible_once_ordered_even_on_its_own_node() {
    let mut c = Cluster::new(&["a"]);
    c.h(0).open_as(1, "alice");
    c.h(0).join(1, "r");
    c.h(0).enter(1, "r", json!({"x": 1}));
    // Acked and told to the host, but not in the set until the store orders it.
    assert!(c.hosts[0].events.iter().any(|e| matches!(e, HostEvent::PresenceJoined { .. })));
    assert_eq!(c.hosts[0].engine.room_counts("r").members, 0);
    c.settle();
    assert_eq!(c.hosts[0].engine.members("r")[0].connection, ConnectionId(1));
    assert_eq!(c.hosts[0].engine.cluster_local_members("r").len(), 1);
}

#[test]
fn a_gap_asks_for_a_snapshot_and_subscribers_get_one_resync() {
    let mut c = Cluster::new(&["a", "b"]);
    c.watcher(1, 1, "r");
    c.h(0).open_as(1, "alice");
    c.h(0).join(1, "r");
    c.settle();
    c.h(1).take(1);
    // b misses two changes (a network blip), then sees the third.
    c.held_back = Some(1);
    c.h(0).enter(1, "r", json!(1));
    c.h(0).ok(1, json!({"op": "presence.update", "room": "r", "data": 2}));
    c.settle();
    c.held_back = None;
    c.h(0).ok(1, json!({"op": "presence.update", "room": "r", "data": 3}));
    c.settle();
    let frames = c.h(1).take(1);
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["resync"], "{frames:?}");
    assert_eq!(frames[0]["seq"], 3);
    assert_eq!(frames[0]["members"][0]["data"], 3);
    assert_eq!(c.ids(1, "r"), vec!["rollcall:a:1"]);
}

#[test]
fn a_store_that_lost_its_state_heals_by_reassert_without_a_storm() {
    let mut c = Cluster::new(&["a", "b"]);
    c.watcher(1, 1, "r");
    c.h(0).open_as(1, "alice");
    c.h(0).join(1, "r");
    c.h(0).enter(1, "r", json!("hi"));
    c.settle();
    c.h(1).take(1);
    // Redis restarted: empty, a new epoch. Node a re-asserts its members
    // silently and publishes a resync marker.
    c.rooms.clear();
    c.epoch = 2000;
    let mut stored = StoredRoom::default();
    for m in c.hosts[0].engine.cluster_local_members("r") {
        let id = serde_json::from_str::<Value>(&m).unwrap()["id"].as_str().unwrap().to_string();
        stored.members.insert(id, m);
    }
    stored.seq = 1;
    c.rooms.insert("r".into(), stored);
    let marker = json!({"e": 2000, "s": 1, "op": "resync"}).to_string();
    c.deliver("r", &marker);
    c.settle();
    let frames = c.h(1).take(1);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "resync");
    assert_eq!(frames[0]["epoch"], 2000);
    assert_eq!(c.ids(1, "r"), vec!["rollcall:a:1"]);
    // Later changes carry the new epoch and follow on.
    c.h(0).close(1);
    c.settle();
    let frames = c.h(1).take(1);
    assert_eq!(
        (frames[0]["event"].as_str(), frames[0]["epoch"].as_u64(), frames[0]["seq"].as_u64()),
        (Some("leave"), Some(2000), Some(2))
    );
}

#[test]
fn changes_before_the_first_snapshot_wait_for_it() {
    let mut e = Engine::new(node_config("b")).unwrap();
    let id = Identity { client_id: Some("w".into()), ..Identity::default() };
    e.handle_open(ConnectionId(1), Credentials::Identity(id), T0).unwrap();
    e.handle_frame(ConnectionId(1), br#"{"op":"room.join","room":"r"}"#, T0);
    let member = json!({"id": "rollcall:a:9", "c": "zed", "d": null, "n": "a"});
    let change = |s: u64, op: &str| json!({"e": 7, "s": s, "op": op, "t": T0, "m": member}).to_string();
    // Arrives between the subscription and the snapshot: held.
    e.cluster_apply("r", &change(2, "update"), T0).unwrap();
    assert_eq!(e.room_counts("r").members, 0);
    let snap = json!({"e": 7, "s": 1, "m": [member]}).to_string();
    e.cluster_snapshot("r", &snap, T0).unwrap();
    assert_eq!(e.room_counts("r").members, 1);
    e.cluster_apply("r", &change(2, "update"), T0).unwrap(); // a duplicate: ignored
    e.cluster_apply("r", &change(3, "leave"), T0).unwrap();
    assert_eq!(e.room_counts("r").members, 0);
    // Bad text is the host's error; nothing changes.
    assert!(matches!(e.cluster_apply("r", "{", T0), Err(Error::InvalidJson(_))));
    assert!(matches!(e.cluster_snapshot("r", r#"{"e":1}"#, T0), Err(Error::InvalidJson(_))));
}

#[test]
fn cluster_options_are_checked_and_ids_reserved() {
    for bad in ["", "a:b", &"n".repeat(65)] {
        assert!(Engine::new(node_config(bad)).is_err(), "{bad:?}");
    }
    // Coalesced delivery does not combine with cluster mode (the store orders every change).
    let mut coalescing = node_config("n1");
    coalescing.presence.flush_interval_ms = 50;
    assert!(matches!(Engine::new(coalescing), Err(Error::Config(rollcall::error::ConfigError::ClusterCoalescing))));
    let mut e = Engine::new(node_config("n1")).unwrap();
    let reserved = ConnectionId(rollcall::engine::REMOTE_BIT | 5);
    assert_eq!(e.handle_open(reserved, Credentials::None, T0), Err(Error::ReservedConnection(reserved.0)));
    // Off by default: no cluster events, and the calls are refused.
    let mut h = Host::default();
    h.open_as(1, "alice");
    h.join(1, "r");
    h.enter(1, "r", json!(null));
    assert!(!h.events.iter().any(|e| matches!(e, HostEvent::ClusterWatch { .. } | HostEvent::ClusterReplicate { .. })));
    assert_eq!(h.engine.members("r")[0].id, "rollcall:1");
    assert!(h.engine.cluster_apply("r", "{}", T0).is_err());
}

#[test]
fn a_client_resumes_on_another_node_with_no_event_at_observers() {
    let mut c = Cluster::new(&["a", "b"]);
    for i in 0..2 {
        c.watcher(i, 1, "r");
    }
    let token = c.h(0).open_for_token(2, "alice");
    c.h(0).join(2, "r");
    c.h(0).enter(2, "r", json!({"on": "phone"}));
    c.h(0).ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    c.settle();
    let before: Vec<Vec<String>> = (0..2).map(|i| c.ids(i, "r")).collect();
    for i in 0..2 {
        c.h(i).take(1);
    }
    c.h(0).lose(2);
    c.settle();
    // Lost on a: in grace on every node, with no event.
    for i in 0..2 {
        let alice: Vec<bool> =
            c.hosts[i].engine.members("r").iter().filter(|m| m.client_id == "alice").map(|m| m.in_grace).collect();
        assert_eq!(alice, [true], "in grace, as seen on node {i}");
        assert_eq!(c.hosts[i].engine.room_counts("r").in_grace, 1);
        assert_eq!(c.h(i).take(1), Vec::<Value>::new());
    }
    let get = c.h(1).ok(1, json!({"op": "presence.get", "room": "r"}));
    assert!(
        get["members"].as_array().unwrap().iter().any(|m| m["clientId"] == "alice" && m["inGrace"] == true),
        "{get}"
    );
    c.h(1).take(1);
    // alice comes back through another node, within her grace.
    c.h(1).open_as(7, "alice");
    c.h(1).send_raw(7, &json!({"op": "resume", "ref": 1, "token": token}).to_string());
    c.settle();
    let frames = c.h(1).take(7);
    let ack = frames.iter().find(|f| f["type"] == "ack").expect("a resume ack");
    assert_eq!((ack["op"].as_str(), ack["id"].as_str()), (Some("resume"), Some("rollcall:a:2")));
    assert!(frames.iter().any(|f| f["type"] == "resync"), "she gets the set as it is: {frames:?}");
    // Nobody saw anything; the set is the same; she is b's member now.
    for (i, ids) in before.iter().enumerate() {
        assert_eq!(c.h(i).take(1), Vec::<Value>::new(), "observers on node {i}");
        assert_eq!(&c.ids(i, "r"), ids);
    }
    assert!(c.hosts[1].engine.members("r").iter().any(|m| m.connection == ConnectionId(7)));
    assert!(c.hosts[0].engine.members("r").iter().all(|m| m.connection != ConnectionId(2)));
    assert_eq!(c.hosts[0].engine.connection_count(), 1, "node a forgot her old connection");
    for i in 0..2 {
        assert!(c.hosts[i].engine.members("r").iter().all(|m| !m.in_grace), "back from grace, as seen on node {i}");
    }
    // Her grace on a ends with nothing; her later changes come from b.
    c.h(0).advance(60_000);
    c.settle();
    assert_eq!(c.h(1).take(1), Vec::<Value>::new());
    c.h(1).ok(7, json!({"op": "presence.update", "room": "r", "data": {"on": "laptop"}}));
    c.h(1).close(7);
    c.settle();
    for i in 0..2 {
        let events: Vec<String> = presence_events(&c.h(i).take(1)).into_iter().map(|e| e.0).collect();
        assert_eq!(events, vec!["update", "leave"]);
    }
    // A token nobody holds: RESUME_FAILED, as on one node.
    c.h(1).open_as(8, "alice");
    c.h(1).send_raw(8, &json!({"op": "resume", "ref": 2, "token": token}).to_string());
    c.settle();
    let refused = c.h(1).take_type(8, "error");
    assert_eq!((refused[0]["code"].as_str(), refused[0]["ref"].as_u64()), (Some("RESUME_FAILED"), Some(2)));
}

#[test]
fn room_events_reach_subscribers_on_every_node_once() {
    let mut c = Cluster::new(&["a", "b", "c"]);
    for i in 0..3 {
        c.h(i).open_as(1, "listener");
        c.h(i).join(1, "r");
        c.h(i).ok(1, json!({"op": "subscribe", "room": "r", "event": "chat"}));
        c.h(i).open_as(2, "deaf");
        c.h(i).join(2, "r");
    }
    c.settle();
    let ack = c.h(0).ok(1, json!({"op": "publish", "room": "r", "event": "chat", "data": {"hi": 1}}));
    assert_eq!(ack["recipients"], 1, "the recipients on this node");
    c.settle(); // room events are not ordered across nodes: one at a time
    let sent = c.h(1).engine.publish("r", "chat", Some(r#"{"from":"server"}"#), T0).unwrap();
    assert_eq!(sent, 1);
    c.h(1).pump();
    c.settle();
    for i in 0..3 {
        let got: Vec<Value> = c.h(i).take_type(1, "message").into_iter().map(|f| f["data"].clone()).collect();
        assert_eq!(got, vec![json!({"hi": 1}), json!({"from": "server"})], "node {i}");
        assert_eq!(c.h(i).take_type(2, "message"), Vec::<Value>::new(), "not subscribed on node {i}");
    }
}

#[test]
fn a_client_resumed_on_another_node_keeps_its_realm_subscriptions() {
    let mut c = Cluster::new(&["a", "b"]);
    let reader = json!({"fleet": {"**": "R"}, "secret": {"**": "R"}});
    c.h(0).open(2, common::ident("alice", reader.clone(), json!({"fleet": ["van/1"]})));
    let token = c.h(0).take_type(2, "welcome")[0]["resumeToken"].as_str().unwrap().to_string();
    c.h(0).ok(2, json!({"op": "realm.subscribe", "realm": "fleet", "event": "moved", "pattern": "van/*"}));
    c.h(0).ok(2, json!({"op": "realm.subscribe", "realm": "secret", "event": "moved"}));
    c.h(0).ok(2, json!({"op": "object.subscribe", "realm": "fleet"}));
    c.h(0).lose(2);
    c.settle();
    // Back on b with a token that reads fleet only: the secret subscription is not carried.
    c.h(1).open(7, common::ident("alice", json!({"fleet": {"**": "R"}}), json!({"fleet": ["van/1"]})));
    c.h(1).send_raw(7, &json!({"op": "resume", "ref": 1, "token": token}).to_string());
    c.settle();
    assert_eq!(c.h(1).take_type(7, "ack")[0]["op"], "resume");
    c.h(1).open(8, common::ident("publisher", json!({"*": {"**": "U"}}), Value::Null));
    for (realm, id) in [("fleet", "van/1"), ("fleet", "bike/1"), ("secret", "x")] {
        c.h(1).ok(8, json!({"op": "realm.publish", "realm": realm, "event": "moved", "id": id}));
    }
    let got: Vec<(String, String)> = c
        .h(1)
        .take_type(7, "event")
        .iter()
        .map(|f| (f["realm"].as_str().unwrap().into(), f["id"].as_str().unwrap().into()))
        .collect();
    assert_eq!(got, [("fleet".to_string(), "van/1".to_string())]);
    assert_eq!(c.hosts[0].engine.connection_count(), 0, "node a forgot her old connection and its subscriptions");
    assert!(c.hosts[0].engine.realm_names().is_empty());
}

#[test]
fn the_grace_mark_reaches_every_node_and_goes_with_a_resume_on_the_same_node_or_the_grace_end() {
    let mut c = Cluster::new(&["a", "b"]);
    c.watcher(1, 1, "r");
    let token = c.h(0).open_for_token(2, "alice");
    c.h(0).join(2, "r");
    c.h(0).enter(2, "r", json!(null));
    c.h(0).open_as(3, "bob");
    c.h(0).join(3, "r");
    c.h(0).enter(3, "r", json!(null));
    c.settle();
    c.h(1).take(1);
    let graced = |c: &Cluster, i: usize| -> Vec<String> {
        c.hosts[i].engine.members("r").into_iter().filter(|m| m.in_grace).map(|m| m.client_id).collect()
    };
    c.h(0).lose(2);
    c.h(0).lose(3);
    c.settle();
    assert_eq!(graced(&c, 1), ["alice", "bob"]);
    // alice resumes on her own node: the mark goes everywhere, with no event.
    c.h(0).open_as(7, "alice");
    c.h(0).send_raw(7, &json!({"op": "resume", "ref": 1, "token": token}).to_string());
    c.settle();
    assert_eq!(graced(&c, 0), ["bob"]);
    assert_eq!(graced(&c, 1), ["bob"]);
    // A node that reads the room afresh gets the mark from the store.
    c.h(1).open_as(4, "late");
    c.h(1).join(4, "r");
    let snap = c.snapshot_text("r");
    let now = c.h(1).now;
    c.h(1).engine.cluster_snapshot("r", &snap, now).unwrap();
    c.h(1).pump();
    assert_eq!(graced(&c, 1), ["bob"]);
    assert_eq!(c.h(1).take(1), Vec::<Value>::new(), "the same set: no resync, no event");
    // bob's grace ends: one leave everywhere, and no mark left.
    c.h(0).advance(60_000);
    c.settle();
    let events: Vec<String> = presence_events(&c.h(1).take(1)).into_iter().map(|e| e.0).collect();
    assert_eq!(events, ["leave"]);
    assert!(graced(&c, 0).is_empty() && graced(&c, 1).is_empty());
}
