//! A data provider connecting and going (`set_provides`): a realm of
//! 10^4, 10^5 or 10^6 objects (10^6 is the default `maxObjectsPerRealm`)
//! of which 1,000 are `deliveryRiders/<n>`, and a
//! provider whose `dpv` is `{"london": ["deliveryRiders/*"]}`. Each open
//! turns the 1,000 riders `connected`, each close turns them back.
//!
//! `open` times `handle_open` + draining its outputs; `close` times
//! `handle_close` + draining. Each iteration does both on one prepared
//! engine; only the half named is timed. Run: `cargo bench --bench providers`.

mod support;

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rollcall::{Engine, Identity};
use serde_json::json;

use support::{bench_open_close, close_provider, identity, open, open_provider, request, send};

const REALM: &str = "london";
const RIDERS: usize = 1_000;
const CREATOR: u64 = 1;
const SUBSCRIBER0: u64 = 1_000;

/// One connection with CRUD on the realm creates `total` objects: 1,000
/// riders and the others split between `aircraft/<n>` (sorted before the riders) and
/// `vessels/<n>` (after them).
fn build(total: usize) -> Engine {
    let others = total - RIDERS;
    let mut e = Engine::new(support::config()).expect("config");
    open(&mut e, CREATOR, identity(json!({"clientId": "creator", "per": {REALM: {"**": "CRUD"}}})));
    for n in 0..RIDERS {
        send(&mut e, CREATOR, &format!(r#"{{"op":"object.create","realm":"{REALM}","id":"deliveryRiders/{n}"}}"#));
    }
    for n in 0..others {
        let kind = if n % 2 == 0 { "vessels" } else { "aircraft" };
        send(&mut e, CREATOR, &format!(r#"{{"op":"object.create","realm":"{REALM}","id":"{kind}/{n}"}}"#));
    }
    assert_eq!(e.objects(REALM, "**").expect("pattern").len(), total);
    e
}

/// `count` more connections, each reading the whole realm and subscribed to
/// `connectionStatusChanged`: half with `**`, half with `deliveryRiders/*`.
fn add_subscribers(e: &mut Engine, from: u64, count: u64) {
    for i in from..from + count {
        let conn = SUBSCRIBER0 + i;
        open(e, conn, identity(json!({"clientId": format!("watcher{i}"), "per": {REALM: {"**": "R"}}})));
        let pattern = if i % 2 == 0 { "**" } else { "deliveryRiders/*" };
        request(
            e,
            conn,
            &json!({"op": "realm.subscribe", "ref": 1, "realm": REALM, "event": "connectionStatusChanged", "pattern": pattern}),
        );
    }
}

fn provider() -> Identity {
    identity(json!({"clientId": "riders-feed", "dpv": {REALM: ["deliveryRiders/*"]}}))
}

fn bench_providers(c: &mut Criterion) {
    let who = provider();
    let mut group = c.benchmark_group("provider");
    // The parameter is the realm's size; the 1,000 riders are among them.
    for total in [10_000usize, 100_000, 1_000_000] {
        let built = Instant::now();
        let mut e = build(total);
        println!("set-up: {total} objects ({RIDERS} riders) in {:.1?}", built.elapsed());
        let mut subscribers = 0;
        for subs in [0u64, 100] {
            add_subscribers(&mut e, subscribers, subs - subscribers);
            subscribers = subs;

            // One checked cycle: every rider turns, and back.
            let opened = open_provider(&mut e, &who);
            let rider = e.object(REALM, "deliveryRiders/7").expect("rider");
            assert_eq!(rider.providers, 1);
            let closed = close_provider(&mut e);
            assert_eq!(e.object(REALM, "deliveryRiders/7").expect("rider").providers, 0);
            for (what, t) in [("open", opened), ("close", closed)] {
                assert_eq!(t.status_events, RIDERS, "{what}: one status change per rider");
                println!(
                    "provider/{what}/subs={subs}/{total}: {} status changes, {} sends, {} deliveries",
                    t.status_events, t.sends, t.deliveries
                );
            }
            // Throughput: the objects whose status changed.
            group.throughput(Throughput::Elements(RIDERS as u64));
            bench_open_close(&mut group, &format!("subs={subs}"), total, &mut e, &who);
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = bench_providers
}
criterion_main!(benches);
