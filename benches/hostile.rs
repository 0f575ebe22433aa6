//! Hostile input: the worst a connection can make the engine do.
//!
//! * `frame/…`: one frame from one connection (`handle_frame` + drain) at
//!   `maxFrameBytes` (64 KiB): accepted at the depth limit, refused as too
//!   deep (the scan reads it all), refused as too large, and one dropped
//!   by the rate limit.
//! * `pattern/compile/…` and `pattern/match/…`: one 256-byte pattern
//!   (`maxNameBytes`) compiled, and matched against 256-byte ids that vary
//!   (4,096 random ids over `a`/`b`, so globset's lazy DFA keeps meeting new
//!   states). `before-*`: no wildcard limit (as before
//!   `maxPatternWildcards`); `limit-*`: 12 wildcards, the default limit.
//! * `event/update/…`: one `object.update` (by an honest connection) in a
//!   realm where one hostile connection holds subscriptions with distinct
//!   patterns, each one matched against the id on every change: `none` (no
//!   hostile connection), `limit-500` (500 patterns, the
//!   `maxSubscriptionsPerConnection`, at 12 wildcards, of the most
//!   expensive shape), `before-100` (100 patterns (the same shape at 255 wildcards and 256
//!   bytes, which only an engine without the limit accepts). The updated ids are 256 random
//!   bytes over `a`/`b`, cycling over 4,096 objects.
//! * `list/scan/N`: one `object.list` with a 12-wildcard pattern without a
//!   literal prefix in a realm of N objects: every object is matched.
//!
//! * `open/…`: one `handle_open` with an HS256 token, drained, then the
//!   connection closed (the close is cheap next to the open). `limit-64`:
//!   the most a token may carry at the defaults, 64 distinct 12-wildcard
//!   patterns (`per` and `dpv`) in just under `maxTokenBytes` (8 KiB), every
//!   one compiled on each open (the compiled-claim cache is kept at one
//!   entry and two tokens alternate); `over-patterns`: 65 such patterns,
//!   refused before any is compiled; `refused-225KB`: issue 10's 225 KB
//!   token with 3,000 patterns, refused by its length; `before-3000`: that
//!   token accepted with both limits lifted, as before them.
//!
//! Run: `cargo bench --bench hostile`.

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rollcall::pattern::Pattern;
use rollcall::{Config, ConnectionId, Engine, Limits, RateLimit};
use serde_json::json;

use support::{drain, identity, open, request, send, T0};

const REALM: &str = "london";
const HONEST: u64 = 1;
const HOSTILE: u64 = 2;

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
        .configure_from_args()
}

/// The defaults with the frame rate and the violation budget lifted (the
/// timed loops send one frame thousands of times), and the wildcard limit
/// as given.
fn config(max_pattern_wildcards: usize) -> Config {
    Config {
        limits: Limits {
            rate: RateLimit { burst: u32::MAX, per_second: u32::MAX },
            violations: RateLimit { burst: u32::MAX, per_second: u32::MAX },
            max_pattern_wildcards,
            // Time, not memory, is measured here: 500 glob subscriptions are
            // past the default budget (256 KiB each).
            max_stored_bytes: usize::MAX,
            ..Limits::default()
        },
        ..Config::default()
    }
}

/// `n` pseudo-random strings of `len` bytes over `a`/`b`.
fn random_ids(n: usize, len: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x & 1 == 0 {
                        'a'
                    } else {
                        'b'
                    }
                })
                .collect()
        })
        .collect()
}

fn bench_frames(c: &mut Criterion) {
    let limits = Limits::default();
    let max = limits.max_frame_bytes;
    let mut g = c.benchmark_group("frame");
    let mut engine = Engine::new(config(12)).unwrap();
    open(&mut engine, HONEST, identity(json!({"clientId": "h"})));
    request(&mut engine, HONEST, &json!({"op": "room.join", "room": "r"}));
    // `publish` with data nested to the depth limit (the frame object is
    // level 1, `data` level 2), repeated to fill the frame: the most JSON
    // serde must read.
    let d = limits.max_json_depth - 2;
    let deep = format!("{}0{}", "[".repeat(d), "]".repeat(d));
    let frame_with = |unit: &str, last: &str| {
        let head = r#"{"op":"publish","room":"r","event":"e","data":["#;
        let mut f = head.to_string();
        while f.len() + unit.len() + 1 + last.len() + 2 <= max {
            f.push_str(unit);
            f.push(',');
        }
        f.push_str(last);
        f.push_str("]}");
        f
    };
    let accepted = frame_with(&deep, "0");
    assert!(accepted.len() <= max);
    assert_eq!(send(&mut engine, HONEST, &accepted).sends, 1);
    // The same, with one level too many at the very end: the depth scan
    // reads the whole frame before it refuses it.
    let over = format!("{}0{}", "[".repeat(d + 1), "]".repeat(d + 1));
    let too_deep = frame_with(&deep, &over);
    assert!(too_deep.len() <= max);
    let too_large = "x".repeat(max + 1);
    let ping = r#"{"op":"ping"}"#;
    for (name, frame) in
        [("accepted-64KiB-depth32", &accepted), ("too-deep-64KiB", &too_deep), ("too-large", &too_large)]
    {
        g.bench_function(name, |b| {
            b.iter(|| {
                engine.handle_frame(ConnectionId(HONEST), black_box(frame.as_bytes()), T0);
                black_box(drain(&mut engine))
            })
        });
    }
    // A connection whose bucket is empty: the frame is dropped unread.
    let mut c = Config::default();
    c.limits.violations = RateLimit { burst: u32::MAX, per_second: 0 };
    c.limits.rate = RateLimit { burst: 1, per_second: 0 };
    let mut limited = Engine::new(c).unwrap();
    open(&mut limited, HOSTILE, identity(json!({"clientId": "x"})));
    send(&mut limited, HOSTILE, ping);
    g.bench_function("rate-limited", |b| {
        b.iter(|| {
            limited.handle_frame(ConnectionId(HOSTILE), black_box(too_large.as_bytes()), T0);
            black_box(drain(&mut limited))
        })
    });
    g.finish();
}

/// Patterns of 256 bytes (`maxNameBytes`), and the 12-wildcard worst.
fn shapes() -> Vec<(&'static str, String)> {
    vec![
        ("before-star-a-254q", format!("*a{}", "?".repeat(254))),
        ("before-star-a-x128", "*a".repeat(128)),
        ("before-star-q-x128", "*?".repeat(128)),
        ("before-q-x256", "?".repeat(256)),
        ("limit-star-a-11q", format!("*a{}", "?".repeat(11))),
        ("limit-star-a-11q-pad256", format!("*a{}{}", "?".repeat(11), "a".repeat(256 - 13))),
        ("limit-star-x12-pad256", format!("{}*", "a*".repeat(11)) + &"a".repeat(256 - 23)),
        ("typical-riders-star", "deliveryRiders/*".to_string()),
    ]
}

fn bench_patterns(c: &mut Criterion) {
    let ids = random_ids(4096, 256);
    let mut g = c.benchmark_group("pattern");
    for (name, p) in shapes() {
        assert!(p.len() <= 256, "{name}");
        g.bench_with_input(BenchmarkId::new("compile", name), &p, |b, p| {
            b.iter(|| Pattern::compile(black_box(p), 256).unwrap())
        });
        let pattern = Pattern::compile(&p, 256).unwrap();
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("match", name), &pattern, |b, pattern| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                pattern.matches(black_box(&ids[i]))
            })
        });
    }
    g.finish();
}

/// An engine with `objects` objects of 256-byte random ids, an honest
/// subscriber of `**`, and (if `patterns` > 0) a hostile connection with
/// `patterns` distinct subscriptions of `wildcards` wildcards each.
fn realm_engine(objects: &[String], patterns: usize, wildcards: usize) -> Engine {
    let mut engine = Engine::new(config(wildcards.max(12))).unwrap();
    open(&mut engine, HONEST, identity(json!({"clientId": "h", "per": {REALM: {"**": "CRUD"}}})));
    for id in objects {
        request(&mut engine, HONEST, &json!({"op": "object.create", "realm": REALM, "id": id}));
    }
    request(&mut engine, HONEST, &json!({"op": "object.subscribe", "realm": REALM, "pattern": "**"}));
    if patterns > 0 {
        open(&mut engine, HOSTILE, identity(json!({"clientId": "x", "per": {REALM: {"**": "R"}}})));
        for n in 0..patterns {
            let pattern = hostile_pattern(n, wildcards);
            let op = if n % 2 == 0 { "object.subscribe" } else { "realm.subscribe" };
            request(&mut engine, HOSTILE, &json!({"op": op, "realm": REALM, "event": "*", "pattern": pattern}));
        }
        // One more is refused.
        if patterns < Limits::default().max_subscriptions_per_connection {
            return engine;
        }
        engine.handle_frame(
            ConnectionId(HOSTILE),
            json!({"op": "object.subscribe", "realm": REALM, "pattern": "extra*"}).to_string().as_bytes(),
            T0,
        );
        let t = drain(&mut engine);
        assert_eq!(t.sends, 1, "the 501st subscription is refused");
    }
    engine
}

/// 500 distinct patterns of exactly `wildcards` wildcards, none with a
/// literal prefix: `*`, then `?`s around one literal (`a` or `b`), then a
/// distinct run of `c`s... which ids over `a`/`b` never contain, so the
/// glob must run to the end of the id to fail. Half of them instead end in
/// `?` so they can match.
fn hostile_pattern(n: usize, wildcards: usize) -> String {
    let lit = if n % 2 == 0 { 'a' } else { 'b' };
    let qs = wildcards - 1;
    let before = n / 2 % qs;
    let mut p = format!("*{}{lit}{}", "?".repeat(before), "?".repeat(qs - before));
    // Distinct: a distinct number of `a`/`b` literals between the wildcards.
    let extra = n / (2 * qs);
    p.insert_str(1 + before, &lit.to_string().repeat(extra));
    p
}

fn bench_events(c: &mut Criterion) {
    let objects = random_ids(4096, 256);
    let mut g = c.benchmark_group("event");
    // `before` holds 100 patterns, not 500: each one's lazy DFA may grow to
    // globset's 10 MiB cache, and 500 of them would take gigabytes.
    for (name, patterns, wildcards) in [("none", 0, 12), ("limit-500", 500, 12), ("before-100", 100, 255)] {
        let mut engine = realm_engine(&objects, patterns, wildcards);
        let mut i = 0;
        g.bench_function(BenchmarkId::new("update", name), |b| {
            b.iter(|| {
                i = (i + 1) % objects.len();
                let f = json!({"op": "object.update", "realm": REALM, "id": objects[i]}).to_string();
                engine.handle_frame(ConnectionId(HONEST), f.as_bytes(), T0);
                black_box(drain(&mut engine))
            })
        });
    }
    g.finish();
}

fn bench_list(c: &mut Criterion) {
    let mut g = c.benchmark_group("list");
    for n in [1_000usize, 10_000] {
        let objects = random_ids(n, 256);
        let mut engine = realm_engine(&objects, 0, 12);
        open(&mut engine, HOSTILE, identity(json!({"clientId": "x", "per": {REALM: {"**": "R"}}})));
        // No literal prefix, 12 wildcards, matches nothing (no `c` in any
        // id): the scan and the glob runs only, no output to build.
        let f =
            json!({"op": "object.list", "realm": REALM, "pattern": format!("*a{}c", "?".repeat(10) + "*")}).to_string();
        assert_eq!(send(&mut engine, HOSTILE, &f).sends, 1);
        g.bench_function(BenchmarkId::new("scan", n), |b| {
            b.iter(|| {
                engine.handle_frame(ConnectionId(HOSTILE), f.as_bytes(), T0);
                black_box(drain(&mut engine))
            })
        });
    }
    g.finish();
}

const SECRET: &str = "hostile-bench-secret";

/// An HS256 token whose `per` and `dpv` claims hold `n` distinct patterns
/// together, each `pad` bytes of literal then 12 wildcards. `salt` makes
/// the patterns of two tokens differ.
fn token_with_patterns(n: usize, pad: usize, salt: usize) -> String {
    let pattern = |i: usize| format!("{salt}-{i}/{}/*a{}", "x".repeat(pad), "?".repeat(10));
    let per: serde_json::Map<String, serde_json::Value> = (0..n / 2).map(|i| (pattern(i), json!("R"))).collect();
    let dpv: Vec<String> = (n / 2..n).map(pattern).collect();
    let claims = json!({"sub": "big", "exp": T0 / 1000 + 3600, "per": {REALM: per}, "dpv": {REALM: dpv}});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("signs")
}

fn bench_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    let engine_with = |max_token_bytes: usize, max_claim_patterns: usize| {
        let mut c = config(12);
        c.auth.keys = vec![rollcall::JwtKey::hmac(rollcall::Algorithm::HS256, SECRET)];
        c.auth.max_token_bytes = max_token_bytes;
        c.limits.max_claim_patterns = max_claim_patterns;
        // One compiled claim kept: each open below compiles its patterns.
        c.limits.pattern_cache_size = 1;
        Engine::new(c).unwrap()
    };
    let limits = Limits::default();
    let max_token = rollcall::AuthConfig::default().max_token_bytes;
    let limit = limits.max_claim_patterns;
    let fitting = [token_with_patterns(limit, 58, 0), token_with_patterns(limit, 58, 1)];
    assert!(fitting.iter().all(|t| t.len() <= max_token && t.len() > max_token - 1536), "{}", fitting[0].len());
    let over = [token_with_patterns(limit + 1, 20, 0), token_with_patterns(limit + 1, 20, 1)];
    let huge = [token_with_patterns(3_000, 40, 0), token_with_patterns(3_000, 40, 1)];
    assert!(huge[0].len() > 220_000, "{}", huge[0].len());
    let cases: [(&str, &[String; 2], usize, usize, bool); 4] = [
        ("limit-64", &fitting, max_token, limit, true),
        ("over-patterns", &over, max_token, limit, false),
        ("refused-225KB", &huge, max_token, limit, false),
        ("before-3000", &huge, usize::MAX, usize::MAX, true),
    ];
    for (name, tokens, max_token_bytes, max_patterns, accepted) in cases {
        let mut engine = engine_with(max_token_bytes, max_patterns);
        let mut i = 0usize;
        let mut step = |engine: &mut Engine| {
            i += 1;
            let conn = ConnectionId(10 + (i as u64 % 2));
            engine.handle_open(conn, rollcall::Credentials::Token(tokens[i % 2].clone()), T0).unwrap();
            let opened = engine.connection_count() == 1;
            engine.handle_close(conn, T0);
            black_box(drain(engine));
            opened
        };
        assert_eq!(step(&mut engine), accepted, "{name}");
        g.bench_function(name, |b| b.iter(|| step(&mut engine)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = bench_frames, bench_patterns, bench_events, bench_list, bench_open
}
criterion_main!(benches);
