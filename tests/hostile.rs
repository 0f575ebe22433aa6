//! One hostile connection at the default limits: its worst frames are refused
//! or closed within the documented number of frames, it can hold at most
//! `maxSubscriptionsPerConnection` patterns of at most `maxPatternWildcards`
//! wildcards each, and the other connections receive exactly what they
//! receive without it. Bounds on counts only; the times are in
//! `benches/hostile.rs` (docs/BENCHMARKS.md, "Hostile input").

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use std::collections::BTreeMap;

use common::Host;
use rollcall::{Config, Credentials, Identity, Limits};
use serde_json::{json, Value};

const REALM: &str = "london";
const HOSTILE: u64 = 99;

/// The defaults with the memory budget lifted: 500 glob subscriptions are
/// charged 128 MiB, past the default 64 MiB (what the budget refuses is
/// tests/memory_budget.rs); here the per-connection counts are the subject.
fn without_budget() -> Config {
    Config { limits: Limits { max_stored_bytes: usize::MAX, ..Limits::default() }, ..Config::default() }
}

fn identity(v: Value) -> Identity {
    serde_json::from_value(v).expect("valid identity JSON")
}

/// A reader of the whole realm (what the hostile connection is given).
fn reader(client_id: &str) -> Identity {
    identity(json!({"clientId": client_id, "per": {REALM: {"**": "RU"}}}))
}

/// The `n`th of many distinct patterns with exactly `wildcards` wildcard
/// characters, in the most expensive shape for globset's lazy DFA: a `*`,
/// one literal, then `?`s (the DFA must remember which of the last
/// characters were the literal: up to 2^(wildcards-1) states).
fn worst_pattern(n: usize, wildcards: usize) -> String {
    format!("{}/*a{}", n, "?".repeat(wildcards - 1))
}

/// Frames from the hostile connection at one instant; returns the codes of
/// the error frames it got, in order, and how many frames were sent
/// before the engine closed it (or all of them).
fn flood(h: &mut Host, frames: &[String]) -> (Vec<String>, usize) {
    h.take(HOSTILE);
    let mut sent = 0;
    for f in frames {
        if h.closed_with(HOSTILE).is_some() {
            break;
        }
        h.send_raw(HOSTILE, f);
        sent += 1;
    }
    let codes = h
        .take(HOSTILE)
        .into_iter()
        .filter(|m| m["type"] == "error")
        .map(|m| m["code"].as_str().unwrap().to_string())
        .collect();
    (codes, sent)
}

#[test]
fn the_wildcard_limit_is_twelve_and_counts_star_and_question_mark() {
    assert_eq!(Limits::default().max_pattern_wildcards, 12);
    let mut h = Host::default();
    h.open(1, Credentials::Identity(reader("a")));
    let ok = [
        worst_pattern(0, 12),
        "*".repeat(12),
        "a/**/b/**/c/**/d/**/e/**/f/**".into(),
        "**".into(),
        // No wildcard: no glob, whatever the length.
        "x".repeat(256),
    ];
    for p in &ok {
        h.ok(1, json!({"op": "object.list", "realm": REALM, "pattern": p}));
        h.ok(1, json!({"op": "object.subscribe", "realm": REALM, "pattern": p}));
        h.ok(1, json!({"op": "realm.subscribe", "realm": REALM, "event": "*", "pattern": p}));
    }
    let over = [worst_pattern(0, 13), "*".repeat(13), "a/**/b/**/c/**/d/**/e/**/f/**/*".into(), "?".repeat(256)];
    for p in &over {
        for frame in [
            json!({"op": "object.list", "realm": REALM, "pattern": p}),
            json!({"op": "object.subscribe", "realm": REALM, "pattern": p}),
            json!({"op": "realm.subscribe", "realm": REALM, "event": "*", "pattern": p}),
        ] {
            assert_eq!(h.err(1, frame), "PATTERN_TOO_COMPLEX", "{p}");
        }
    }
    // A refused subscription holds nothing: unsubscribing it is a no-op ack,
    // and another connection's update is not matched against it.
    h.ok(1, json!({"op": "object.unsubscribe", "realm": REALM, "pattern": over[0]}));
}

#[test]
fn claims_over_the_wildcard_limit_are_refused() {
    let mut h = Host::default();
    let bad = |claim: Value| identity(claim);
    for claim in [
        json!({"per": {REALM: {worst_pattern(0, 13): "R"}}}),
        json!({"dpv": {REALM: [worst_pattern(0, 13)]}}),
        json!({"rooms": {worst_pattern(0, 13): ["subscribe"]}}),
    ] {
        h.open(1, Credentials::Identity(bad(claim.clone())));
        assert_eq!(h.closed_with(1), Some(4001), "{claim}");
        assert_eq!(h.closes.pop().map(|c| c.reason), Some("BAD_IDENTITY".into()), "{claim}");
    }
    h.open(2, Credentials::Identity(bad(json!({"per": {REALM: {worst_pattern(0, 12): "R"}}}))));
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn complex_patterns_close_the_connection_after_the_violation_burst() {
    let mut h = Host::default();
    h.open(HOSTILE, Credentials::Identity(reader("h")));
    let frames: Vec<String> = (0..100)
        .map(|i| json!({"op": "object.subscribe", "realm": REALM, "pattern": worst_pattern(i, 13)}).to_string())
        .collect();
    let (codes, sent) = flood(&mut h, &frames);
    // violations {burst 20}: the 21st violation finds the bucket empty.
    let burst = Limits::default().violations.burst as usize;
    assert_eq!(sent, burst + 1);
    assert_eq!(codes, vec!["PATTERN_TOO_COMPLEX"; burst + 1]);
    assert_eq!(h.closed_with(HOSTILE), Some(4008));
}

#[test]
fn a_flood_is_refused_unread_after_the_rate_burst_and_closed_soon_after() {
    let mut h = Host::default();
    h.open(HOSTILE, Credentials::Identity(reader("h")));
    // The most expensive frame that is still accepted: a 12-wildcard list
    // over the whole realm, padded to the frame limit.
    let limits = Limits::default();
    let frame = |i: usize| {
        let f = json!({"op": "object.list", "realm": REALM, "pattern": worst_pattern(i, 12), "pad": ""}).to_string();
        let pad = "x".repeat(limits.max_frame_bytes - f.len());
        json!({"op": "object.list", "realm": REALM, "pattern": worst_pattern(i, 12), "pad": pad}).to_string()
    };
    let frames: Vec<String> = (0..1000).map(frame).collect();
    assert_eq!(frames[0].len(), limits.max_frame_bytes);
    let (codes, sent) = flood(&mut h, &frames);
    let (rate, violations) = (limits.rate.burst as usize, limits.violations.burst as usize);
    // 100 frames run, then 21 are dropped unread before the close.
    assert_eq!(sent, rate + violations + 1);
    assert_eq!(codes, vec!["RATE_LIMITED"; violations + 1]);
    assert_eq!(h.closed_with(HOSTILE), Some(4008));
}

#[test]
fn subscriptions_stop_at_the_per_connection_limit() {
    let mut h = Host::new(without_budget());
    h.open(HOSTILE, Credentials::Identity(reader("h")));
    let max = Limits::default().max_subscriptions_per_connection;
    let mut acks = 0;
    let mut refused = Vec::new();
    for i in 0..max + 30 {
        // Within the rate limit: 50 frames per second.
        h.advance(20);
        let op = if i % 2 == 0 { "object.subscribe" } else { "realm.subscribe" };
        let reply =
            h.request(HOSTILE, json!({"op": op, "realm": REALM, "event": "*", "pattern": worst_pattern(i, 12)}));
        match reply["type"].as_str() {
            Some("ack") => acks += 1,
            _ => refused.push(reply["code"].as_str().unwrap_or_default().to_string()),
        }
        if h.closed_with(HOSTILE).is_some() {
            break;
        }
    }
    assert_eq!(acks, max, "at most {max} patterns held");
    // Each refusal is a violation; at one every 20 ms the budget (burst 20,
    // 1 per second back) runs out on the 21st or 22nd.
    assert!(refused.iter().all(|c| c == "TOO_MANY_SUBSCRIPTIONS"));
    assert!((21..=23).contains(&refused.len()), "{}", refused.len());
    assert_eq!(h.closed_with(HOSTILE), Some(4008));
}

/// Simulated seconds before the honest connections start, in which the
/// hostile connection (if any) fills its subscriptions within the rate limit.
const PREAMBLE_TICKS: usize = 505;

/// What the honest connections 1..=4 do: a creator (1) makes and updates
/// objects, a reader (2) lists and subscribes, a provider (3) comes and
/// goes, a room member (4) publishes and updates presence. `hostile` runs
/// at every tick (every 20 ms), between the honest steps.
fn scenario(mut hostile: impl FnMut(&mut Host, usize)) -> BTreeMap<u64, Vec<Value>> {
    let mut h = Host::new(without_budget());
    h.open(1, Credentials::Identity(identity(json!({"clientId": "c", "per": {REALM: {"**": "CRUD"}}}))));
    h.open(2, Credentials::Identity(reader("r")));
    h.open_as(4, "m");
    let mut step = 0;
    let mut tick = |h: &mut Host, step: &mut usize| {
        hostile(h, *step);
        *step += 1;
        h.advance(20);
    };
    for i in 0..20 {
        h.ok(1, json!({"op": "object.create", "realm": REALM, "id": format!("riders/r{i}"), "data": {"n": i}}));
    }
    h.ok(2, json!({"op": "object.subscribe", "realm": REALM, "pattern": "riders/r1*"}));
    h.ok(
        2,
        json!({"op": "realm.subscribe", "realm": REALM, "event": "connectionStatusChanged", "pattern": "riders/*"}),
    );
    h.join(4, "room");
    h.ok(4, json!({"op": "presence.subscribe", "room": "room"}));
    h.ok(4, json!({"op": "subscribe", "room": "room", "event": "*"}));
    while step < PREAMBLE_TICKS {
        tick(&mut h, &mut step);
    }
    for round in 0..10 {
        h.ok(
            1,
            json!({"op": "object.update", "realm": REALM, "id": format!("riders/r1{round}"), "data": {"v": round}}),
        );
        tick(&mut h, &mut step);
        h.open(
            3,
            Credentials::Identity(identity(json!({"clientId": "p", "dpv": {REALM: [format!("riders/r{round}")]}}))),
        );
        tick(&mut h, &mut step);
        h.close(3);
        tick(&mut h, &mut step);
        h.ok(2, json!({"op": "object.list", "realm": REALM, "pattern": "riders/r?"}));
        tick(&mut h, &mut step);
        h.enter(4, "room", json!({"round": round}));
        h.ok(4, json!({"op": "publish", "room": "room", "event": "e", "data": round}));
        tick(&mut h, &mut step);
        h.ok(1, json!({"op": "object.create", "realm": REALM, "id": format!("riders/new{round}")}));
        tick(&mut h, &mut step);
    }
    h.ok(1, json!({"op": "object.delete", "realm": REALM, "id": "riders/r11"}));
    tick(&mut h, &mut step);
    h.inbox.retain(|id, _| *id != HOSTILE);
    h.inbox
}

#[test]
fn others_receive_exactly_the_same_with_a_hostile_connection() {
    let alone = scenario(|_, _| {});
    let limits = Limits::default();
    let max = limits.max_subscriptions_per_connection;
    let mut acks = 0;
    let mut errors = 0;
    let mut junk = 0;
    let with_hostile = scenario(|h, step| {
        if step == 0 {
            h.open(HOSTILE, Credentials::Identity(reader("h")));
        }
        let p = worst_pattern(step, 12);
        let frame = if step < PREAMBLE_TICKS {
            // 500 subscriptions with distinct 12-wildcard patterns, half to
            // object changes, half to every realm event, plus 5 more that
            // are refused (TOO_MANY_SUBSCRIPTIONS).
            let op = if step % 2 == 0 { "object.subscribe" } else { "realm.subscribe" };
            json!({"op": op, "realm": REALM, "event": "*", "pattern": p}).to_string()
        } else {
            // Then one frame per tick: mostly the most expensive accepted
            // one (a list over the realm with a 12-wildcard pattern), every
            // fifth one junk that is refused.
            junk += usize::from(step % 5 == 0);
            match step % 15 {
                0 => "x".repeat(limits.max_frame_bytes + 1),
                5 => format!("{}{}", "[".repeat(40), "]".repeat(40)),
                10 => json!({"op": "object.list", "realm": REALM, "pattern": worst_pattern(step, 13)}).to_string(),
                _ => json!({"op": "object.list", "realm": REALM, "pattern": p}).to_string(),
            }
        };
        h.send_raw(HOSTILE, &frame);
        assert_eq!(h.closed_with(HOSTILE), None, "step {step}");
        for m in h.take(HOSTILE) {
            match m["type"].as_str() {
                Some("ack") if step < PREAMBLE_TICKS => acks += 1,
                Some("error") => errors += 1,
                _ => {}
            }
        }
    });
    // It held the most it may, and it was never closed (it stayed within
    // the rate and the violation budget).
    assert_eq!(acks, max);
    assert_eq!(errors, (PREAMBLE_TICKS - max) + junk);
    assert!(junk >= 10);
    assert_eq!(alone.keys().collect::<Vec<_>>(), vec![&1, &2, &3, &4]);
    for (id, frames) in &alone {
        assert!(!frames.is_empty());
        assert_eq!(with_hostile.get(id), Some(frames), "connection {id}");
    }
    assert_eq!(alone, with_hostile);
}
