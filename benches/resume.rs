//! The cost of a resume (issue 11): a connection present, with a presence
//! subscription, in 1 or 10 rooms of 1,000 presence subscribers each is
//! lost, and a new connection takes it over with `resume` (nothing missed,
//! or 32 missed presence frames per room replayed), against what a client
//! without resume does: `room.join` + `presence.subscribe` + `presence.join`
//! in each room (its join fanned out to the 1,000 subscribers; the old
//! member's leave at the end of its grace is not counted).
//!
//! Each iteration prepares untimed (lose the current connection, open the
//! next, make the missed changes) and times one frame's handling plus the
//! drain of its outputs. Run: `cargo bench --bench resume`.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rollcall::{Config, ConnectionId, Credentials, Engine, Output};
use serde_json::{json, Value};

use support::{drain, identity, request, T0};

const SUBSCRIBERS: u64 = 1_000;
const MISSED: usize = 32;
const OTHER: u64 = 1;

fn config() -> Config {
    Config { resume_secret: Some("bench-resume-key-of-32-bytes-!!!".into()), idle_timeout_ms: 0, ..support::config() }
}

fn room(r: usize) -> String {
    format!("room-{r}")
}

/// Opens `conn` as alice and returns its resume token.
fn open_alice(e: &mut Engine, conn: u64) -> String {
    e.handle_open(ConnectionId(conn), Credentials::Identity(identity(json!({"clientId": "alice"}))), T0).expect("open");
    let mut token = String::new();
    while let Some(out) = e.poll_output() {
        if let Output::Send(s) = out {
            if let Ok(v) = serde_json::from_str::<Value>(&s.payload) {
                if let Some(t) = v["resumeToken"].as_str() {
                    token = t.to_string();
                }
            }
        }
    }
    token
}

/// `rooms` rooms of 1,000 presence subscribers, `OTHER` present in each.
fn build(rooms: usize) -> Engine {
    let mut e = Engine::new(config()).expect("config");
    support::open(&mut e, OTHER, identity(json!({"clientId": "other"})));
    for r in 0..rooms {
        request(&mut e, OTHER, &json!({"op": "room.join", "room": room(r)}));
        request(&mut e, OTHER, &json!({"op": "presence.join", "room": room(r), "data": {"k": 0}}));
    }
    for s in 0..SUBSCRIBERS {
        let conn = 10 + s;
        support::open(&mut e, conn, identity(json!({"clientId": format!("watcher{s}")})));
        for r in 0..rooms {
            request(&mut e, conn, &json!({"op": "room.join", "room": room(r)}));
            request(&mut e, conn, &json!({"op": "presence.subscribe", "room": room(r)}));
        }
    }
    e
}

/// What alice does in each room when she joins as new.
fn rejoin_frames(rooms: usize) -> Vec<String> {
    (0..rooms)
        .flat_map(|r| {
            [
                json!({"op": "room.join", "room": room(r)}).to_string(),
                json!({"op": "presence.subscribe", "room": room(r)}).to_string(),
                json!({"op": "presence.join", "room": room(r), "data": {"name": "alice"}}).to_string(),
            ]
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resume");
    for rooms in [1usize, 10] {
        let mut e = build(rooms);
        let mut next: u64 = 1_000_000;
        // alice, present and subscribed everywhere.
        let mut token = open_alice(&mut e, next);
        for f in rejoin_frames(rooms) {
            support::send(&mut e, next, &f);
        }
        for missed in [0, MISSED] {
            group.bench_function(BenchmarkId::new(format!("resume/missed {missed}"), rooms), |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        e.handle_lost(ConnectionId(next), T0);
                        drain(&mut e);
                        let since: Value = (0..rooms)
                            .map(|r| {
                                let ack = request_value(&mut e, OTHER, &json!({"op": "presence.get", "room": room(r)}));
                                (room(r), ack["seq"].clone())
                            })
                            .collect::<serde_json::Map<_, _>>()
                            .into();
                        for k in 0..missed {
                            for r in 0..rooms {
                                let update = json!({"op": "presence.update", "room": room(r), "data": {"k": k}});
                                request(&mut e, OTHER, &update);
                            }
                        }
                        next += 1;
                        let new_token = open_alice(&mut e, next);
                        let frame = json!({"op": "resume", "token": token, "epoch": 0, "since": since}).to_string();
                        let start = Instant::now();
                        e.handle_frame(ConnectionId(next), frame.as_bytes(), T0);
                        let t = black_box(drain(&mut e));
                        timed += start.elapsed();
                        assert_eq!(t.sends, 1 + missed * rooms, "the ack and the replayed frames only");
                        token = new_token;
                    }
                    timed
                })
            });
        }
        group.bench_function(BenchmarkId::new("rejoin as new", rooms), |b| {
            let frames = rejoin_frames(rooms);
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // The old member is gone (untimed), the new one joins.
                    e.handle_close(ConnectionId(next), T0);
                    drain(&mut e);
                    next += 1;
                    token = open_alice(&mut e, next);
                    let start = Instant::now();
                    for f in &frames {
                        e.handle_frame(ConnectionId(next), f.as_bytes(), T0);
                        black_box(drain(&mut e));
                    }
                    timed += start.elapsed();
                }
                timed
            })
        });
    }
    group.finish();
}

/// Sends a request and returns its reply (the last frame sent to `conn`).
fn request_value(e: &mut Engine, conn: u64, frame: &Value) -> Value {
    e.handle_frame(ConnectionId(conn), frame.to_string().as_bytes(), T0);
    let mut reply = Value::Null;
    while let Some(out) = e.poll_output() {
        if let Output::Send(s) = out {
            if s.to == [ConnectionId(conn)] {
                reply = serde_json::from_str(&s.payload).unwrap_or(Value::Null);
            }
        }
    }
    reply
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = bench
}
criterion_main!(benches);
