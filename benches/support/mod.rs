//! A minimal bench host: one engine, a fixed clock, outputs drained and
//! counted (not parsed: a real host would only copy the payload to sockets).
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use rollcall::{Config, ConnectionId, Credentials, Engine, HostEvent, Identity, Output, RateLimit};
use serde_json::Value;

/// 2024-07-13T10:13:28.496Z
pub const T0: u64 = 1_720_865_608_496;

/// Criterion settings that keep each bench to a few seconds.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args()
}

/// The default configuration with the per-connection frame rate limit
/// lifted: set-up sends 10^5..10^6 frames from one connection at one instant,
/// and the timed loops send the same frame thousands of times. The memory
/// budget is lifted too: 10^6 objects are past the default 64 MiB. Nothing
/// else differs from `Config::default()`.
pub fn config() -> Config {
    let mut config = Config::default();
    config.limits.rate = RateLimit { burst: u32::MAX, per_second: u32::MAX };
    config.limits.max_stored_bytes = usize::MAX;
    config
}

/// What one drain of the outputs held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// `Output::Send`s.
    pub sends: usize,
    /// Recipients named by all the sends.
    pub deliveries: usize,
    /// The largest recipient list of one send.
    pub widest: usize,
    /// `HostEvent::ObjectStatusChanged` events.
    pub status_events: usize,
    pub events: usize,
    pub closes: usize,
}

/// Drains every pending output, as a host must after each call.
pub fn drain(engine: &mut Engine) -> Tally {
    let mut t = Tally::default();
    while let Some(out) = engine.poll_output() {
        match out {
            Output::Send(s) => {
                t.sends += 1;
                t.deliveries += s.to.len();
                t.widest = t.widest.max(s.to.len());
            }
            Output::Event(e) => {
                t.events += 1;
                if matches!(e, HostEvent::ObjectStatusChanged { .. }) {
                    t.status_events += 1;
                }
            }
            Output::Close(_) => t.closes += 1,
        }
    }
    t
}

/// An identity from its JSON form (`{"clientId":…, "per":…, "dpv":…}`).
pub fn identity(v: Value) -> Identity {
    serde_json::from_value(v).expect("valid identity JSON")
}

pub fn open(engine: &mut Engine, conn: u64, identity: Identity) {
    engine.handle_open(ConnectionId(conn), Credentials::Identity(identity), T0).expect("open");
    let t = drain(engine);
    assert_eq!(t.closes, 0, "connection {conn} was closed at open");
}

/// Sends one frame and drains; panics if the engine answered with an error.
pub fn request(engine: &mut Engine, conn: u64, frame: &Value) -> Tally {
    send(engine, conn, &frame.to_string())
}

/// Like [`request`], with the frame as text.
pub fn send(engine: &mut Engine, conn: u64, frame: &str) -> Tally {
    engine.handle_frame(ConnectionId(conn), frame.as_bytes(), T0);
    let mut errors = Vec::new();
    let mut t = Tally::default();
    while let Some(out) = engine.poll_output() {
        match out {
            Output::Send(s) => {
                if s.to == [ConnectionId(conn)] && s.payload.contains(r#""type":"error""#) {
                    errors.push(s.payload.to_string());
                }
                t.sends += 1;
                t.deliveries += s.to.len();
            }
            Output::Close(_) => t.closes += 1,
            Output::Event(_) => t.events += 1,
        }
    }
    assert!(errors.is_empty() && t.closes == 0, "frame {frame} from {conn} refused: {errors:?}");
    t
}

/// The connection id of the provider the benches open and close.
pub const PROVIDER: u64 = 1_000_000_000;

/// Opens the provider with `who`'s claims; its objects turn `connected`.
pub fn open_provider(e: &mut Engine, who: &Identity) -> Tally {
    e.handle_open(ConnectionId(PROVIDER), Credentials::Identity(who.clone()), T0).expect("open");
    drain(e)
}

/// Closes the provider; its objects turn `disconnected`.
pub fn close_provider(e: &mut Engine) -> Tally {
    e.handle_close(ConnectionId(PROVIDER), T0);
    drain(e)
}

/// Two benches, `open/<label>` and `close/<label>` at `param`: each times
/// only its own half of an open-then-close cycle of the provider.
pub fn bench_open_close(
    group: &mut BenchmarkGroup<'_, WallTime>,
    label: &str,
    param: impl std::fmt::Display,
    e: &mut Engine,
    who: &Identity,
) {
    group.bench_function(BenchmarkId::new(format!("open/{label}"), &param), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                black_box(open_provider(e, who));
                timed += start.elapsed();
                black_box(close_provider(e));
            }
            timed
        })
    });
    group.bench_function(BenchmarkId::new(format!("close/{label}"), &param), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                black_box(open_provider(e, who));
                let start = Instant::now();
                black_box(close_provider(e));
                timed += start.elapsed();
            }
            timed
        })
    });
}
