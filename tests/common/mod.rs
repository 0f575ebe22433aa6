//! A test host: one engine, a simulated clock, and per-connection inboxes.
//! Like quinn's `Pair` or str0m's `TestRtc`: no network, time is a number.
#![allow(dead_code)]

pub mod tokens;

use std::collections::BTreeMap;

use rollcall::{Close, Config, ConnectionId, Credentials, Engine, HostEvent, Identity, Output};
use serde_json::{json, Value};

/// An asserted identity with these `per` and `dpv` claims (`null`: none).
pub fn ident(client_id: &str, per: Value, dpv: Value) -> Credentials {
    Credentials::Identity(Identity {
        client_id: Some(client_id.into()),
        per: if per.is_null() { None } else { Some(serde_json::from_value(per).unwrap()) },
        dpv: if dpv.is_null() { None } else { Some(serde_json::from_value(dpv).unwrap()) },
        ..Identity::default()
    })
}

/// Every right on every object, providing nothing.
pub fn admin() -> Credentials {
    ident("admin", json!({"*": {"**": "CRUD"}}), Value::Null)
}

/// alice (1) present in "r" with `{"n":1}`, bob (2) subscribed to its
/// presence; inboxes and events emptied.
pub fn alice_watched_by_bob(config: Config) -> Host {
    let mut h = Host::new(config);
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    h.join(1, "r");
    h.join(2, "r");
    h.enter(1, "r", json!({"n": 1}));
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(1);
    h.take(2);
    h.events.clear();
    h
}

/// 2024-07-13T10:13:28.496Z
pub const T0: u64 = 1_720_865_608_496;

pub struct Host {
    pub engine: Engine,
    pub now: u64,
    pub inbox: BTreeMap<u64, Vec<Value>>,
    pub closes: Vec<Close>,
    pub events: Vec<HostEvent>,
    /// How many `Send` outputs were produced, and how many recipients they named.
    pub sends: usize,
    pub deliveries: usize,
    next_ref: u64,
}

impl Host {
    pub fn new(config: Config) -> Host {
        Host {
            engine: Engine::new(config).expect("valid config"),
            now: T0,
            inbox: BTreeMap::new(),
            closes: Vec::new(),
            events: Vec::new(),
            sends: 0,
            deliveries: 0,
            next_ref: 0,
        }
    }

    pub fn default() -> Host {
        Host::new(Config::default())
    }

    /// Drains the engine's outputs into inboxes, closes and events.
    pub fn pump(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send(t) => {
                    self.sends += 1;
                    self.deliveries += t.to.len();
                    let v: Value = serde_json::from_str(&t.payload).expect("engine sends JSON");
                    for c in t.to {
                        self.inbox.entry(c.0).or_default().push(v.clone());
                    }
                }
                Output::Close(c) => self.closes.push(c),
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    pub fn open(&mut self, id: u64, credentials: Credentials) {
        self.engine.handle_open(ConnectionId(id), credentials, self.now).expect("open");
        self.pump();
    }

    /// Opens a connection with a host-asserted clientId and default grants.
    pub fn open_as(&mut self, id: u64, client_id: &str) {
        let identity = Identity { client_id: Some(client_id.into()), ..Identity::default() };
        self.open(id, Credentials::Identity(identity));
    }

    pub fn send_raw(&mut self, id: u64, frame: &str) {
        self.engine.handle_frame(ConnectionId(id), frame.as_bytes(), self.now);
        self.pump();
    }

    /// Sends `frame` with a fresh `ref` and returns the reply with that ref.
    pub fn request(&mut self, id: u64, mut frame: Value) -> Value {
        self.next_ref += 1;
        let r = self.next_ref;
        frame["ref"] = json!(r);
        self.send_raw(id, &frame.to_string());
        self.inbox
            .get(&id)
            .and_then(|msgs| msgs.iter().rev().find(|m| m["ref"] == json!(r)).cloned())
            .unwrap_or(Value::Null)
    }

    /// Like `request`, but asserts an ack and returns it.
    pub fn ok(&mut self, id: u64, frame: Value) -> Value {
        let reply = self.request(id, frame.clone());
        assert_eq!(reply["type"], "ack", "expected an ack for {frame}, got {reply}");
        reply
    }

    /// Like `request`, but asserts an error frame and returns its code.
    pub fn err(&mut self, id: u64, frame: Value) -> String {
        let reply = self.request(id, frame.clone());
        assert_eq!(reply["type"], "error", "expected an error for {frame}, got {reply}");
        reply["code"].as_str().unwrap_or_default().to_string()
    }

    pub fn join(&mut self, id: u64, room: &str) {
        self.ok(id, json!({"op": "room.join", "room": room}));
    }

    pub fn enter(&mut self, id: u64, room: &str, data: Value) {
        self.ok(id, json!({"op": "presence.join", "room": room, "data": data}));
    }

    /// The host's `handle_lost`: the socket dropped without a clean close.
    pub fn lose(&mut self, id: u64) {
        self.engine.handle_lost(ConnectionId(id), self.now);
        self.pump();
    }

    /// Opens `id` as `client_id` and returns the resume token of its welcome.
    pub fn open_for_token(&mut self, id: u64, client_id: &str) -> String {
        self.open_as(id, client_id);
        let welcome = self.take_type(id, "welcome");
        welcome[0]["resumeToken"].as_str().expect("a resume token").to_string()
    }

    pub fn close(&mut self, id: u64) {
        self.engine.handle_close(ConnectionId(id), self.now);
        self.pump();
    }

    /// Advances the clock, firing every deadline on the way, in order.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(at) = self.engine.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.engine.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
    }

    /// Takes and returns everything connection `id` received so far.
    pub fn take(&mut self, id: u64) -> Vec<Value> {
        self.inbox.remove(&id).unwrap_or_default()
    }

    /// Takes connection `id`'s frames of `type` only.
    pub fn take_type(&mut self, id: u64, ty: &str) -> Vec<Value> {
        self.take(id).into_iter().filter(|m| m["type"] == ty).collect()
    }

    pub fn closed_with(&self, id: u64) -> Option<u16> {
        self.closes.iter().find(|c| c.connection.0 == id).map(|c| c.code.code())
    }
}

/// One node of a cluster (cluster tests): its name, a resume secret of its
/// own, no idle checks (the tests' clocks jump).
pub fn node_config(node: &str) -> Config {
    Config {
        cluster: Some(rollcall::config::ClusterConfig { node: node.into() }),
        resume_secret: Some(format!("resume-secret-{node}")),
        idle_timeout_ms: 0,
        ..Config::default()
    }
}

/// How far a test's model store has read each host's events (cluster tests).
pub struct EventCursor {
    seen: Vec<usize>,
}

impl EventCursor {
    pub fn new(hosts: usize) -> EventCursor {
        EventCursor { seen: vec![0; hosts] }
    }

    /// The next event not read yet: the first host's first, with its host index.
    pub fn next(&mut self, hosts: &[Host]) -> Option<(usize, HostEvent)> {
        for (i, h) in hosts.iter().enumerate() {
            if let Some(e) = h.events.get(self.seen[i]) {
                self.seen[i] += 1;
                return Some((i, e.clone()));
            }
        }
        None
    }
}
