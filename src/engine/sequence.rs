//! Per-room presence sequence numbers and the bounded replay buffer a
//! resumed connection catches up from.
//!
//! Every presence event of a room takes the room's next `seq` (from 1) and
//! carries it with the engine's `epoch`. The frames sent are kept, as they
//! were serialised (shared, not copied), up to `replay_events` per room;
//! a resume replays those after the client's last `seq`, or sends a
//! `resync` snapshot when they are gone or the epoch differs.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::request::{EventMask, PresenceKind, View};

/// One sent presence frame, kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replayed {
    pub seq: u64,
    pub kind: PresenceKind,
    pub view: View,
    pub payload: Arc<str>,
}

#[derive(Debug, Default)]
pub(crate) struct RoomLog {
    /// The seq of the room's last presence event (0: none yet).
    pub seq: u64,
    /// Events with a seq above this are all in `buffer` (for their views).
    pub floor: u64,
    pub buffer: VecDeque<Replayed>,
}

impl RoomLog {
    /// The seq for the next event.
    pub(crate) fn next(&mut self) -> u64 {
        self.seq = self.seq.saturating_add(1);
        self.seq
    }

    /// Keeps a sent frame, dropping the oldest past `cap` frames.
    pub(crate) fn keep(&mut self, entry: Replayed, cap: usize) {
        if cap == 0 {
            self.floor = self.seq;
            return;
        }
        while self.buffer.len() >= cap {
            if let Some(old) = self.buffer.pop_front() {
                self.floor = self.floor.max(old.seq);
            }
        }
        self.buffer.push_back(entry);
    }

    pub(crate) fn keep_all(&mut self, entries: [Option<Replayed>; 2], cap: usize) {
        for entry in entries.into_iter().flatten() {
            self.keep(entry, cap);
        }
    }

    /// The frames after `since` for a subscriber of `view` and `events`, or
    /// `None` when some of them are no longer kept.
    pub(crate) fn since(&self, since: u64, view: View, events: EventMask) -> Option<Vec<Arc<str>>> {
        if since > self.seq || since < self.floor {
            return None;
        }
        Some(
            self.buffer
                .iter()
                .filter(|e| e.seq > since && e.view == view && events.contains(e.kind))
                .map(|e| Arc::clone(&e.payload))
                .collect(),
        )
    }
}
