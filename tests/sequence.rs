//! Presence sequence numbers: every presence event and snapshot carries the
//! room's `seq` and the engine's `epoch`; a resume replays what was missed
//! from a bounded buffer, or sends a flagged `resync` snapshot.

mod common;

use common::Host;
use rollcall::{Config, ConnectionId};
use serde_json::{json, Value};

const EPOCH: u64 = 7;

fn config(replay_events: usize) -> Config {
    Config {
        idle_timeout_ms: 0,
        resume_secret: Some("a test key of thirty-two bytes!!".into()),
        epoch: EPOCH,
        replay_events,
        ..Config::default()
    }
}

#[test]
fn events_and_snapshots_carry_epoch_and_a_per_room_seq() {
    let mut h = Host::new(config(64));
    h.open_as(1, "alice");
    assert_eq!(h.take(1)[0]["epoch"], EPOCH);
    h.open_as(2, "bob");
    for room in ["a", "b"] {
        h.join(1, room);
        h.join(2, room);
        h.ok(2, json!({"op": "presence.subscribe", "room": room}));
    }
    h.enter(1, "a", json!(1));
    h.enter(1, "a", json!(2));
    h.enter(1, "b", json!(3));
    let seqs: Vec<(Value, Value, Value)> =
        h.take_type(2, "presence").iter().map(|f| (f["room"].clone(), f["seq"].clone(), f["epoch"].clone())).collect();
    assert_eq!(
        seqs,
        vec![
            (json!("a"), json!(1), json!(EPOCH)),
            (json!("a"), json!(2), json!(EPOCH)),
            (json!("b"), json!(1), json!(EPOCH))
        ]
    );
    let snap = h.ok(2, json!({"op": "presence.get", "room": "a"}));
    assert_eq!((snap["epoch"].as_u64(), snap["seq"].as_u64()), (Some(EPOCH), Some(2)));
    let snap = h.ok(2, json!({"op": "presence.subscribe", "room": "b", "view": "client"}));
    assert_eq!((snap["epoch"].as_u64(), snap["seq"].as_u64()), (Some(EPOCH), Some(1)));
}

/// bob (2) subscribed to "r" and present; returns his resume token.
fn bob_in_r(h: &mut Host) -> String {
    let token = h.open_for_token(2, "bob");
    h.join(2, "r");
    h.enter(2, "r", json!("bob"));
    h.ok(2, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(2);
    token
}

/// bob comes back as connection 4 and resumes with `extra` fields; returns
/// what he got after the ack.
fn bob_resumes(h: &mut Host, token: &str, extra: Value) -> Vec<Value> {
    h.open_as(4, "bob");
    h.take(4);
    let mut frame = json!({"op": "resume", "token": token});
    frame.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    assert_eq!(h.request(4, frame)["type"], "ack");
    h.take(4).into_iter().filter(|f| f["type"] != "ack").collect()
}

/// carol (3) comes, changes and goes while bob is lost.
fn carol_comes_and_goes(h: &mut Host) -> Vec<Value> {
    h.open_as(9, "watcher");
    h.join(9, "r");
    h.ok(9, json!({"op": "presence.subscribe", "room": "r"}));
    h.take(9);
    h.open_as(3, "carol");
    h.join(3, "r");
    h.enter(3, "r", json!(1));
    h.enter(3, "r", json!(2));
    h.ok(3, json!({"op": "room.leave", "room": "r"}));
    h.take_type(9, "presence")
}

#[test]
fn a_resume_replays_exactly_the_missed_frames() {
    let mut h = Host::new(config(64));
    let token = bob_in_r(&mut h);
    let seen = 1; // bob's own join
    h.lose(2);
    let missed = carol_comes_and_goes(&mut h);
    assert_eq!(missed.len(), 3);
    h.take(2);
    let replayed = bob_resumes(&mut h, &token, json!({"epoch": EPOCH, "since": {"r": seen}}));
    assert_eq!(replayed, missed, "the same frames, in order, nothing else");
}

#[test]
fn a_resume_past_the_buffer_gets_a_flagged_resync() {
    let mut h = Host::new(config(2));
    let token = bob_in_r(&mut h);
    h.lose(2);
    carol_comes_and_goes(&mut h);
    let got = bob_resumes(&mut h, &token, json!({"epoch": EPOCH, "since": {"r": 1}}));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0]["type"].as_str(), got[0]["room"].as_str()), (Some("resync"), Some("r")));
    assert_eq!((got[0]["epoch"].as_u64(), got[0]["seq"].as_u64()), (Some(EPOCH), Some(4)));
    let ids: Vec<&str> = got[0]["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["rollcall:2"], "bob himself, under his old id");
}

#[test]
fn another_epoch_or_no_since_gets_a_resync() {
    for since in [json!({"epoch": EPOCH + 1, "since": {"r": 1}}), json!({})] {
        let mut h = Host::new(config(64));
        let token = bob_in_r(&mut h);
        h.lose(2);
        let got = bob_resumes(&mut h, &token, since);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["type"], "resync");
    }
}

#[test]
fn nothing_missed_is_nothing_replayed() {
    let mut h = Host::new(config(64));
    let token = bob_in_r(&mut h);
    h.lose(2);
    let got = bob_resumes(&mut h, &token, json!({"epoch": EPOCH, "since": {"r": 1}}));
    assert_eq!(got, Vec::<Value>::new());
}

/// A restored engine replays and refuses exactly as the one snapshotted:
/// seqs, the buffer and its floor, grace deadlines and tokens all survive.
#[test]
fn snapshot_and_restore_keep_seqs_buffers_graces_and_tokens() {
    for (since, expect) in [(1, "resync"), (3, "presence")] {
        let mut h = Host::new(config(2));
        let token = bob_in_r(&mut h);
        h.lose(2);
        carol_comes_and_goes(&mut h); // seqs 2..=4; the buffer keeps 3 and 4
        let bytes = h.engine.snapshot();
        h.engine = rollcall::Engine::restore(config(2), &bytes).expect("restores");
        assert_eq!(h.engine.snapshot(), bytes);
        assert_eq!(h.engine.room_counts("r").in_grace, 1);
        let got = bob_resumes(&mut h, &token, json!({"epoch": EPOCH, "since": {"r": since}}));
        assert_eq!(got[0]["type"], expect, "since {since}: {got:?}");
        assert_eq!(got.last().unwrap()["seq"], 4);
    }
    // The grace deadline survives too.
    let mut h = Host::new(config(2));
    bob_in_r(&mut h);
    h.advance(1000);
    h.engine.handle_lost(ConnectionId(2), h.now);
    let bytes = h.engine.snapshot();
    let restored = rollcall::Engine::restore(config(2), &bytes).expect("restores");
    assert_eq!(restored.poll_timeout(), Some(common::T0 + 1000 + 15_000));
}
