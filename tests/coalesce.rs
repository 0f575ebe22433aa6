//! Coalesced presence delivery (`presence.flushIntervalMs`), through the
//! public API with a simulated clock: a member's updates collapse to the
//! latest data, each subscriber gets one frame per flush with the events it
//! takes in `seq` order, joins and leaves are never dropped or reordered,
//! and with the interval at 0 the outputs are byte for byte today's.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::{alice_watched_by_bob, Host, T0};
use rollcall::{Config, ConnectionId, Credentials, Engine, Identity, Output, RateLimit};
use serde_json::{json, Value};

const FLUSH: u64 = 50;

fn config(presence: Value) -> Config {
    let mut config: Config = serde_json::from_value(json!({ "presence": presence })).expect("valid presence options");
    config.idle_timeout_ms = 0;
    config.resume_secret = Some("a test key of thirty-two bytes!!".into());
    config.epoch = 7;
    config
}

fn coalescing() -> Config {
    config(json!({ "flushIntervalMs": FLUSH }))
}

/// Every event a connection received, batches unpacked, as (event, id, data, seq).
fn events(frames: &[Value]) -> Vec<(String, String, Value, u64)> {
    let mut out = Vec::new();
    for f in frames {
        let list = match f["type"].as_str() {
            Some("presence") => vec![f.clone()],
            Some("batch") => f["events"].as_array().expect("a batch holds events").clone(),
            _ => continue,
        };
        for e in list {
            assert_eq!(e["type"], "presence", "a batch holds presence frames: {e}");
            let id = e["id"].as_str().unwrap().to_string();
            out.push((e["event"].as_str().unwrap().to_string(), id, e["data"].clone(), e["seq"].as_u64().unwrap()));
        }
    }
    out
}

fn ev(event: &str, conn: u64, data: Value, seq: u64) -> (String, String, Value, u64) {
    (event.to_string(), format!("rollcall:{conn}"), data, seq)
}

fn update(h: &mut Host, conn: u64, room: &str, data: Value) {
    h.ok(conn, json!({"op": "presence.update", "room": room, "data": data}));
}

#[test]
fn updates_in_a_window_collapse_to_the_latest_data_at_the_flush() {
    let mut h = alice_watched_by_bob(coalescing());
    let sends = h.sends;
    for n in 2..=6 {
        update(&mut h, 1, "r", json!({ "n": n }));
        h.advance(5);
    }
    assert!(h.take(2).is_empty(), "nothing before the flush");
    assert_eq!(h.engine.poll_timeout(), Some(T0 + FLUSH), "the window flushes through the wake-up time");
    h.advance(FLUSH);
    let got = h.take(2);
    assert_eq!(got.len(), 1, "one frame: {got:?}");
    assert_eq!(got[0]["type"], "presence", "a window of one event is the plain frame");
    assert_eq!(events(&got), vec![ev("update", 1, json!({"n": 6}), 2)]);
    // The latest write's time, not the first's.
    assert_eq!(got[0]["timestamp"], rollcall::time::iso8601(T0 + 20));
    assert_eq!(h.sends - sends, 5 + 1, "five acks to alice, one frame to bob");
    // The host heard of every change at once.
    let updated = h.events.iter().filter(|e| matches!(e, rollcall::HostEvent::PresenceUpdated { .. })).count();
    assert_eq!(updated, 5);
    assert_eq!(h.engine.poll_timeout(), None, "no window is open");
}

#[test]
fn a_window_goes_as_one_batch_in_seq_order_with_every_join_and_leave() {
    let mut h = alice_watched_by_bob(coalescing());
    h.open_as(3, "carol");
    h.open_as(4, "dave");
    h.join(3, "r");
    h.join(4, "r");
    h.enter(3, "r", json!("c1"));
    update(&mut h, 1, "r", json!("a1"));
    update(&mut h, 3, "r", json!("c2"));
    h.enter(4, "r", json!("d1")); // joins and leaves inside the window
    update(&mut h, 3, "r", json!("c3"));
    h.ok(4, json!({"op": "presence.leave", "room": "r"}));
    update(&mut h, 1, "r", json!("a2"));
    h.take(2);
    h.advance(FLUSH);
    let got = h.take(2);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0]["type"].as_str(), got[0]["room"].as_str()), (Some("batch"), Some("r")));
    assert_eq!(
        events(&got),
        vec![
            ev("join", 3, json!("c1"), 2),
            ev("update", 1, json!("a2"), 3),
            ev("update", 3, json!("c3"), 4),
            ev("join", 4, json!("d1"), 5),
            ev("leave", 4, json!("d1"), 6),
        ]
    );
    // A later subscriber's snapshot is at the last seq of the flush.
    let snap = h.ok(3, json!({"op": "presence.get", "room": "r"}));
    assert_eq!(snap["seq"], 6);
}

#[test]
fn a_leave_discards_the_pending_update_and_a_rejoin_starts_over() {
    let mut h = alice_watched_by_bob(coalescing());
    update(&mut h, 1, "r", json!(2));
    update(&mut h, 1, "r", json!(3));
    h.ok(1, json!({"op": "presence.leave", "room": "r"}));
    h.enter(1, "r", json!(4));
    update(&mut h, 1, "r", json!(5));
    h.advance(FLUSH);
    assert_eq!(
        events(&h.take(2)),
        vec![ev("leave", 1, json!(3), 2), ev("join", 1, json!(4), 3), ev("update", 1, json!(5), 4)],
        "the leave carries the last data; the update after the new join is kept"
    );
}

#[test]
fn each_subscriber_gets_only_what_its_subscription_takes() {
    let mut h = alice_watched_by_bob(coalescing());
    h.open_as(3, "carol"); // leaves only
    h.open_as(4, "alice"); // per-client view (alice's second device joins below)
    h.open_as(5, "eve"); // in the room, no presence subscription
    h.open_as(6, "frank"); // unsubscribes inside the window
    h.open_as(7, "gina"); // leaves the room inside the window
    for c in 3..=7 {
        h.join(c, "r");
    }
    h.ok(3, json!({"op": "presence.subscribe", "room": "r", "events": ["leave"]}));
    h.ok(4, json!({"op": "presence.subscribe", "room": "r", "view": "client"}));
    h.ok(6, json!({"op": "presence.subscribe", "room": "r"}));
    h.ok(7, json!({"op": "presence.subscribe", "room": "r"}));
    for c in 1..=7 {
        h.take(c);
    }
    h.enter(4, "r", json!("phone")); // alice's second device: no client-view join
    update(&mut h, 1, "r", json!("laptop"));
    h.ok(4, json!({"op": "presence.leave", "room": "r"})); // not alice's last device
    h.ok(6, json!({"op": "presence.unsubscribe", "room": "r"}));
    h.ok(7, json!({"op": "room.leave", "room": "r"}));
    for c in 1..=7 {
        h.take(c);
    }
    h.advance(FLUSH);
    assert_eq!(
        events(&h.take(2)),
        vec![ev("join", 4, json!("phone"), 2), ev("update", 1, json!("laptop"), 3), ev("leave", 4, json!("phone"), 4)]
    );
    assert_eq!(events(&h.take(3)), vec![ev("leave", 4, json!("phone"), 4)]);
    let client_view = h.take(4);
    assert_eq!(client_view.len(), 1);
    assert_eq!(client_view[0]["view"], "client", "only the update is a client-view change");
    assert_eq!(events(&client_view), vec![ev("update", 1, json!("laptop"), 3)]);
    for c in [1, 5, 6, 7] {
        assert_eq!(h.take(c), Vec::<Value>::new(), "connection {c} takes nothing of this window");
    }
}

#[test]
fn a_new_subscribers_snapshot_comes_after_the_window_is_flushed() {
    let mut h = alice_watched_by_bob(coalescing());
    update(&mut h, 1, "r", json!(2));
    h.open_as(3, "carol");
    h.join(3, "r");
    let snap = h.ok(3, json!({"op": "presence.subscribe", "room": "r"}));
    assert_eq!((snap["members"][0]["data"].clone(), snap["seq"].clone()), (json!(2), json!(2)));
    assert_eq!(events(&h.take(2)), vec![ev("update", 1, json!(2), 2)], "bob got the window before carol's snapshot");
    update(&mut h, 1, "r", json!(3));
    h.advance(FLUSH);
    let carol: Vec<_> = events(&h.take(3));
    assert_eq!(carol, vec![ev("update", 1, json!(3), 3)], "no gap, no duplicate");
}

#[test]
fn interval_zero_is_byte_for_byte_todays_protocol() {
    let script = |config: Config| -> (Vec<Output>, Vec<u8>) {
        let mut e = Engine::new(config).expect("valid");
        let mut out = Vec::new();
        let mut now = T0;
        for (c, who) in [(1, "alice"), (2, "bob"), (3, "alice")] {
            let identity = Identity { client_id: Some(who.into()), ..Identity::default() };
            e.handle_open(ConnectionId(c), Credentials::Identity(identity), now).unwrap();
        }
        let frames = [
            (1, r#"{"op":"room.join","ref":1,"room":"r"}"#),
            (2, r#"{"op":"room.join","ref":1,"room":"r"}"#),
            (3, r#"{"op":"room.join","ref":1,"room":"r"}"#),
            (2, r#"{"op":"presence.subscribe","ref":2,"room":"r"}"#),
            (3, r#"{"op":"presence.subscribe","ref":2,"room":"r","view":"client"}"#),
            (1, r#"{"op":"presence.join","ref":3,"room":"r","data":{"x":1}}"#),
            (3, r#"{"op":"presence.join","ref":3,"room":"r","data":{"x":2}}"#),
            (1, r#"{"op":"presence.update","ref":4,"room":"r","data":{"x":3}}"#),
            (1, r#"{"op":"presence.update","ref":5,"room":"r","data":{"x":4}}"#),
            (3, r#"{"op":"presence.leave","ref":6,"room":"r"}"#),
            (2, r#"{"op":"presence.get","ref":7,"room":"r"}"#),
        ];
        for (c, f) in frames {
            now += 3;
            e.handle_frame(ConnectionId(c), f.as_bytes(), now);
            out.extend(e.drain_outputs());
        }
        e.handle_lost(ConnectionId(1), now);
        e.handle_close(ConnectionId(3), now);
        let bytes = e.snapshot();
        e.handle_timeout(now + 60_000);
        out.extend(e.drain_outputs());
        (out, bytes)
    };
    let today = script(Config { idle_timeout_ms: 0, ..Config::default() });
    let zero = config(json!({"flushIntervalMs": 0, "rooms": [{"pattern": "r", "flushIntervalMs": 0}]}));
    assert_eq!(script(Config { resume_secret: None, epoch: 0, ..zero }), today);
    assert!(today.0.iter().any(|o| matches!(o, Output::Send(t) if t.payload.contains(r#""event":"update""#))));
}

#[test]
fn rooms_take_the_interval_of_the_first_pattern_that_matches() {
    let presence = json!({
        "flushIntervalMs": 0,
        "rooms": [{"pattern": "cursors/lobby", "flushIntervalMs": 0}, {"pattern": "cursors/**", "flushIntervalMs": FLUSH}],
    });
    let mut h = Host::new(config(presence));
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    for room in ["cursors/doc", "cursors/lobby", "chat"] {
        h.join(1, room);
        h.join(2, room);
        h.ok(2, json!({"op": "presence.subscribe", "room": room}));
        h.take(2);
        h.enter(1, room, json!(1));
        let immediate = !h.take(2).is_empty();
        assert_eq!(immediate, room != "cursors/doc", "{room}");
    }
    h.advance(FLUSH);
    assert_eq!(h.take(2)[0]["room"], "cursors/doc");
}

#[test]
fn updates_faster_than_the_rate_limit_coalesce_instead_of_closing() {
    let presence = json!({"flushIntervalMs": FLUSH, "rooms": [{"pattern": "strict", "flushIntervalMs": 0}]});
    let mut cfg = config(presence);
    cfg.limits.rate = RateLimit { burst: 5, per_second: 1 };
    cfg.limits.violations = RateLimit { burst: 3, per_second: 1 };
    let mut h = Host::new(cfg);
    h.open_as(1, "alice");
    h.open_as(2, "bob");
    for room in ["r", "strict"] {
        h.join(2, room);
        h.ok(2, json!({"op": "presence.subscribe", "room": room}));
    }
    h.join(1, "r");
    h.enter(1, "r", json!(0));
    h.join(1, "strict");
    h.take(2);
    for n in 1..=200 {
        h.advance(1);
        update(&mut h, 1, "r", json!(n)); // 1000 a second, for 200 ms
    }
    assert_eq!(h.closed_with(1), None);
    h.advance(FLUSH);
    let got = events(&h.take(2));
    // Windows open at the first update after a flush: at most 200/50 + 2.
    assert!(got.len() <= 200 / FLUSH as usize + 2, "at most one update per window: {}", got.len());
    assert_eq!(got.last().map(|e| e.2.clone()), Some(json!(200)));
    // The same rate in a room that does not coalesce is refused, then closed.
    h.enter(1, "strict", json!(0));
    for n in 1..=20 {
        h.request(1, json!({"op": "presence.update", "room": "strict", "data": n}));
    }
    assert_eq!(h.closed_with(1), Some(4008));
}

#[test]
fn a_snapshot_keeps_open_windows_and_a_restore_flushes_them_on_time() {
    let mut h = alice_watched_by_bob(coalescing());
    let plain = h.engine.snapshot();
    assert_eq!(
        Engine::restore(Config { idle_timeout_ms: 0, ..Config::default() }, &plain).expect("restores").snapshot(),
        plain,
        "without an open window the snapshot is the same as without coalescing"
    );
    h.advance(10);
    update(&mut h, 1, "r", json!(2));
    h.open_as(3, "carol");
    h.join(3, "r");
    h.enter(3, "r", json!("c"));
    let bytes = h.engine.snapshot();
    assert_ne!(bytes, plain);
    h.engine = Engine::restore(coalescing(), &bytes).expect("restores");
    assert_eq!(h.engine.snapshot(), bytes);
    assert_eq!(h.engine.poll_timeout(), Some(T0 + 10 + FLUSH));
    update(&mut h, 1, "r", json!(3)); // still collapses into the restored update
    h.advance(FLUSH);
    assert_eq!(events(&h.take(2)), vec![ev("update", 1, json!(3), 2), ev("join", 3, json!("c"), 3)]);
}

#[test]
fn a_resume_replays_what_was_flushed_while_lost_and_flushes_what_was_pending() {
    let mut h = Host::new(coalescing());
    let token = h.open_for_token(2, "bob");
    h.open_as(1, "alice");
    h.join(1, "r");
    h.join(2, "r");
    h.enter(1, "r", json!(1));
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(2);
    h.lose(2);
    update(&mut h, 1, "r", json!(2));
    h.advance(FLUSH); // seq 2, flushed while bob is lost
    update(&mut h, 1, "r", json!(3)); // seq 3, still pending at the resume
    h.open_as(4, "bob");
    h.take(4);
    assert_eq!(h.request(4, json!({"op": "resume", "token": token, "epoch": 7, "since": {"r": 1}}))["type"], "ack");
    let got: Vec<Value> = h.take(4).into_iter().filter(|f| f["type"] != "ack").collect();
    assert_eq!(events(&got), vec![ev("update", 1, json!(2), 2), ev("update", 1, json!(3), 3)]);
    h.advance(FLUSH);
    assert!(h.take(4).is_empty(), "nothing twice");
}

#[test]
fn a_room_that_empties_drops_its_window_and_its_wake_up() {
    let mut h = Host::new(coalescing());
    h.open_as(1, "alice");
    h.join(1, "r");
    h.enter(1, "r", json!(1));
    assert_eq!(h.engine.poll_timeout(), Some(T0 + FLUSH));
    h.close(1);
    assert_eq!(h.engine.poll_timeout(), None);
    assert!(h.engine.room_names().is_empty());
}

#[test]
fn bad_presence_options_are_refused() {
    for presence in [
        json!({"flushIntervalMs": 1u64 << 60}),
        json!({"rooms": [{"pattern": "r", "flushIntervalMs": 1u64 << 60}]}),
        json!({"rooms": [{"pattern": "", "flushIntervalMs": 5}]}),
    ] {
        assert!(Engine::new(config(presence.clone())).is_err(), "{presence}");
    }
    assert!(serde_json::from_value::<Config>(json!({"presence": {"flushMs": 5}})).is_err(), "unknown fields");
}
