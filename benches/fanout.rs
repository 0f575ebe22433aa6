//! Fan-out: one change delivered to many subscribers.
//!
//! * `status/…`: one object's `connectionStatusChanged` (`emit_status_change`)
//!   to N realm subscribers with mixed patterns and mixed `per` claims, some
//!   of which cannot read the object. A provider whose `dpv` names only that
//!   object connects (`open`: the object turns `connected`) and goes
//!   (`close`: `disconnected`). `mixed`: patterns drawn from 30 and claims
//!   from 32 distinct ones; `distinct`: every subscriber has its own glob
//!   (10,000 glob runs per change instead of 30).
//! * `presence/update/N`: a room of N members, all subscribed to presence;
//!   one member's `presence.update` frame (handle_frame + drain).
//!
//! Run: `cargo bench --bench fanout`.

mod support;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rollcall::{ConnectionId, Engine, Identity};
use serde_json::{json, Value};

use support::{bench_open_close, close_provider, drain, identity, open, open_provider, request, send, T0};

const REALM: &str = "london";
const TARGET: &str = "deliveryRiders/r1234";
const CREATOR: u64 = 1;
const SUBSCRIBER0: u64 = 1_000;

/// 30 subscription patterns: the first 14 match TARGET, the rest do not.
const PATTERNS: [&str; 30] = [
    "**",
    "*/*",
    "deliveryRiders/*",
    "deliveryRiders/**",
    "deliveryRiders/r*",
    "deliveryRiders/r1*",
    "deliveryRiders/r12*",
    "deliveryRiders/r123*",
    "deliveryRiders/r1234",
    "deliveryRiders/r?234",
    "deliveryRiders/r1?3?",
    "*/r1234",
    "**/r1234",
    "deliveryRiders/*4",
    // no match
    "deliveryRiders/r2*",
    "deliveryRiders/r9*",
    "deliveryRiders/r5678",
    "deliveryRiders/r1235",
    "vessels/*",
    "vessels/**",
    "aircraft/*",
    "aircraft/a1*",
    "deliveryRiders/*/x",
    "deliveryRiders/r1234/*",
    "deliveryRiders/r?",
    "*/v1",
    "trucks/**",
    "deliveryRiders/r0*",
    "deliveryRiders/r3?",
    "vessels/v1234",
];

/// 16 base `per` claims for realm london (the first 8 can read TARGET, the
/// last 8 can subscribe but not read it); `claim(j)` makes 32 distinct ones.
fn base_claim(k: usize) -> Value {
    match k {
        0 => json!({"london": {"**": "R"}}),
        1 => json!({"london": {"deliveryRiders/*": "R"}}),
        2 => json!({"*": {"**": "R"}}),
        3 => json!({"*": {"deliveryRiders/**": "CRUD"}}),
        4 => json!({"london": {"deliveryRiders/r1*": "R"}}),
        5 => json!({"london": {"deliveryRiders/r1234": "RU"}}),
        6 => json!({"london": {"deliveryRiders/*": "R", "deliveryRiders/johndoe-123": "CU"}}),
        7 => json!({"london": {"deliveryRiders/r12??": "R", "vessels/*": "CRUD"}}),
        // cannot read TARGET
        8 => json!({"london": {"vessels/*": "R"}}),
        9 => json!({"london": {"deliveryRiders/r2*": "R"}}),
        10 => json!({"london": {"aircraft/**": "CRUD"}}),
        11 => json!({"london": {"deliveryRiders/*": "CU", "vessels/*": "R"}}),
        12 => json!({"paris": {"**": "R"}, "london": {"vessels/*": "R"}}),
        13 => json!({"london": {"deliveryRiders/r5678": "R"}}),
        14 => json!({"london": {"deliveryRiders/r1234/*": "R"}}),
        _ => json!({"london": {"*/v1": "R", "deliveryRiders/r123": "R"}}),
    }
}

const CLAIMS: usize = 32;

fn claim(j: usize) -> Value {
    let mut c = base_claim(j % 16);
    if j >= 16 {
        // Same rights on TARGET, a distinct claim (and compiled set).
        let realm = if c.get("london").is_some() { "london" } else { "*" };
        c[realm][format!("team{j}/**")] = json!("R");
    }
    c
}

/// A glob of its own for subscriber `i` that matches TARGET when `i` is
/// even: TARGET with the characters picked by the bits of a mask turned
/// into `?`; odd ones get a `/x` segment appended, so never match.
fn own_pattern(i: u64) -> String {
    let mask = i / 2 + 1;
    let mut p = String::new();
    let mut bit = 0;
    for ch in TARGET.chars() {
        if ch == '/' {
            p.push('/');
            continue;
        }
        p.push(if mask >> bit & 1 == 1 { '?' } else { ch });
        bit += 1;
    }
    if i % 2 == 1 {
        p.push_str("/x");
    }
    p
}

/// The realm (10,000 riders incl. TARGET, 10,000 vessels) and `n`
/// subscribers, every tenth to event `*`, the rest to
/// `connectionStatusChanged`.
fn build_status(n: u64, pattern: impl Fn(u64) -> String) -> Engine {
    let mut e = Engine::new(support::config()).expect("config");
    open(&mut e, CREATOR, identity(json!({"clientId": "creator", "per": {REALM: {"**": "CRUD"}}})));
    for k in 0..10_000 {
        for kind in ["deliveryRiders/r", "vessels/v"] {
            send(&mut e, CREATOR, &format!(r#"{{"op":"object.create","realm":"{REALM}","id":"{kind}{k}"}}"#));
        }
    }
    for i in 0..n {
        let conn = SUBSCRIBER0 + i;
        // Claims change every 30 subscribers, so every pattern meets every claim.
        let per = claim((i as usize / PATTERNS.len()) % CLAIMS);
        open(&mut e, conn, identity(json!({"clientId": format!("watcher{i}"), "per": per})));
        let event = if i % 10 == 9 { "*" } else { "connectionStatusChanged" };
        let frame = json!({"op": "realm.subscribe", "ref": 1, "realm": REALM, "event": event, "pattern": pattern(i)});
        request(&mut e, conn, &frame);
    }
    e
}

fn status_provider() -> Identity {
    identity(json!({"clientId": "r1234-feed", "dpv": {REALM: [TARGET]}}))
}

fn bench_status(c: &mut Criterion) {
    let who = status_provider();
    let mut group = c.benchmark_group("status");
    let variants: [(&str, u64); 3] = [("mixed", 1_000), ("mixed", 10_000), ("distinct", 10_000)];
    for (kind, n) in variants {
        let built = Instant::now();
        let mut e = if kind == "mixed" {
            build_status(n, |i| PATTERNS[i as usize % PATTERNS.len()].to_string())
        } else {
            build_status(n, own_pattern)
        };
        println!("set-up: {n} {kind} subscribers in {:.1?}", built.elapsed());
        let opened = open_provider(&mut e, &who);
        let closed = close_provider(&mut e);
        // Exactly one change each way, one realm-event send (the welcome
        // is the other send on open).
        assert_eq!((opened.status_events, closed.status_events), (1, 1));
        let recipients = closed.widest;
        assert_eq!(opened.widest, recipients);
        println!("status/{kind}/{n}: {recipients} of {n} subscribers receive each change");
        group.throughput(Throughput::Elements(recipients as u64));
        bench_open_close(&mut group, kind, n, &mut e, &who);
    }
    group.finish();
}

/// A room of `n` members, each joined, subscribed to presence (before any
/// member is in, so set-up stays linear in snapshots) and then in the set.
fn build_room(n: u64) -> Engine {
    let mut e = Engine::new(support::config()).expect("config");
    for conn in 1..=n {
        open(&mut e, conn, identity(json!({"clientId": format!("u{conn}")})));
        send(&mut e, conn, r#"{"op":"room.join","ref":1,"room":"lobby"}"#);
        send(&mut e, conn, r#"{"op":"presence.subscribe","ref":2,"room":"lobby"}"#);
    }
    for conn in 1..=n {
        send(&mut e, conn, &format!(r#"{{"op":"presence.join","ref":3,"room":"lobby","data":{{"name":"u{conn}"}}}}"#));
    }
    assert_eq!(e.room_counts("lobby").members, n as usize);
    e
}

fn bench_presence(c: &mut Criterion) {
    let mut group = c.benchmark_group("presence");
    const UPDATE: &[u8] = br#"{"op":"presence.update","ref":4,"room":"lobby","data":{"name":"u1","status":"away"}}"#;
    for n in [100u64, 1_000, 10_000] {
        let built = Instant::now();
        let mut e = build_room(n);
        println!("set-up: room of {n} in {:.1?}", built.elapsed());
        e.handle_frame(ConnectionId(1), UPDATE, T0);
        let t = drain(&mut e);
        // The ack, and the update to every subscriber (the sender included).
        assert_eq!((t.sends, t.deliveries, t.widest), (2, 1 + n as usize, n as usize));
        println!("presence/update/{n}: {} recipients", t.widest);
        group.throughput(Throughput::Elements(n));
        group.bench_function(BenchmarkId::new("update", n), |b| {
            b.iter(|| {
                e.handle_frame(ConnectionId(1), black_box(UPDATE), T0);
                black_box(drain(&mut e))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = bench_status, bench_presence
}
criterion_main!(benches);
