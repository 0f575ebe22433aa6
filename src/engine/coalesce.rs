//! Coalesced presence delivery (`presence.flushIntervalMs`).
//!
//! A room with a non-zero flush interval does not send its presence
//! events as they happen: it holds them in a window, opened by the first
//! event and flushed `interval` ms later through the engine's wake-up time
//! (`poll_timeout`). Within a window:
//!
//! - a member's successive `update`s collapse into one, carrying its latest
//!   data and time (last write wins), at the place of the first;
//! - `join` and `leave` are never dropped or reordered; a `leave` discards
//!   the member's pending `update`; a `join` and `leave` in one window are
//!   both delivered;
//! - at the flush, the events take the room's next `seq` numbers in order
//!   (a collapsed update takes none), and each subscriber gets ONE frame
//!   with every event of the window its subscription (view and `events`
//!   filter) takes: the plain `presence` frame when that is one event, a
//!   `batch` frame when more. Each event's text is built once per view and
//!   shared by every batch and by the replay buffer.
//!
//! A window is flushed early, before anything that shows a snapshot of the
//! room (`presence.subscribe`, `presence.get`, a `resume`'s catch-up), so
//! that a snapshot never holds a change its events are still to bring. (A
//! resuming connection is left out of that flush: it takes those events
//! from the replay buffer, after what it missed before them.)
//! Host events (`presenceJoined`, ...) are not delayed: the state changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::value::RawValue;

use super::presence::host_event;
use super::room::Member;
use super::sequence::Replayed;
use super::{ConnectionId, Engine, Output, Transmit};
use crate::protocol::reply::{self, PresenceEvent};
use crate::protocol::request::{EventMask, PresenceKind, Request, View};
use crate::time::{self, iso8601, Millis};

/// One change waiting for its room's flush.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub kind: PresenceKind,
    /// Also a change for the per-client view (see `emit_presence`).
    pub client_edge: bool,
    /// When it happened (for an update: its latest write).
    pub at: Millis,
    pub id: Arc<str>,
    pub client_id: Arc<str>,
    pub data: Option<Box<RawValue>>,
}

/// A room's open window.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// When it flushes; `None` while empty.
    pub due: Option<Millis>,
    /// In order of change; `None` where a `leave` discarded an update.
    pub events: Vec<Option<Pending>>,
    /// Member id -> the index of its pending update, while that update is
    /// the member's last event in the window.
    pub updates: HashMap<Arc<str>, usize>,
}

impl Window {
    /// Adds a change, collapsing or discarding a pending update.
    pub(crate) fn push(&mut self, event: Pending) {
        match event.kind {
            PresenceKind::Update => {
                if let Some(Some(pending)) = self.updates.get(&event.id).and_then(|&i| self.events.get_mut(i)) {
                    pending.at = event.at;
                    pending.data = event.data;
                    return;
                }
                self.updates.insert(Arc::clone(&event.id), self.events.len());
            }
            PresenceKind::Leave => {
                if let Some(i) = self.updates.remove(&event.id) {
                    if let Some(slot) = self.events.get_mut(i) {
                        *slot = None;
                    }
                }
            }
            PresenceKind::Join => {
                self.updates.remove(&event.id);
            }
        }
        self.events.push(Some(event));
    }

    /// The pending changes, in order.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.events.iter().flatten()
    }
}

impl Engine {
    /// Checks and compiles `presence.rooms` (at construction).
    pub(super) fn compile_room_flushes(&mut self) -> Result<(), crate::error::ConfigError> {
        use crate::error::ConfigError;
        let presence = &self.config.presence;
        let intervals =
            std::iter::once(presence.flush_interval_ms).chain(presence.rooms.iter().map(|r| r.flush_interval_ms));
        if intervals.clone().any(|ms| ms > time::MAX_TIME / 2) {
            return Err(ConfigError::Time("presence.flushIntervalMs"));
        }
        self.coalescing = intervals.into_iter().any(|ms| ms > 0);
        let mut compiled = Vec::with_capacity(presence.rooms.len());
        for r in &presence.rooms {
            compiled.push((self.patterns.get(&r.pattern).map_err(ConfigError::Pattern)?, r.flush_interval_ms));
        }
        self.room_flushes = compiled;
        Ok(())
    }

    /// The flush interval of a new room named `room`.
    pub(super) fn flush_interval_for(&self, room: &str) -> u64 {
        self.room_flushes
            .iter()
            .find(|(pattern, _)| pattern.matches(room))
            .map_or(self.config.presence.flush_interval_ms, |(_, ms)| *ms)
    }

    /// Whether `room` holds its presence events for a flush.
    pub(super) fn coalesces(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|rm| rm.flush_ms > 0)
    }

    /// A frame that coalesces rather than spending the rate budget: a
    /// member's `presence.update` (or repeated `presence.join`) in a room
    /// that coalesces. It costs a parse, a store and an ack; its fan-out
    /// is bounded by the flush interval, whatever its rate.
    pub(super) fn coalescible(&self, conn: ConnectionId, request: &Request<'_>) -> bool {
        match request {
            Request::PresenceUpdate { room, .. } | Request::PresenceJoin { room, .. } => {
                self.rooms.get(room.as_str()).is_some_and(|rm| rm.flush_ms > 0 && rm.members.contains_key(&conn))
            }
            _ => false,
        }
    }

    /// Queues one presence change of `member` in `room` (which coalesces)
    /// and tells the host at once.
    pub(super) fn queue_presence(
        &mut self,
        room: &str,
        conn: ConnectionId,
        member: Member,
        kind: PresenceKind,
        client_edge: bool,
        now: Millis,
    ) {
        let event = host_event(room, conn, &member, kind);
        let Some(rm) = self.rooms.get_mut(room) else { return };
        let Member { id, client_id, data } = member;
        let pending = Pending { kind, client_edge, at: now, id, client_id, data };
        rm.window.push(pending);
        if rm.window.due.is_none() {
            let due = time::deadline(now, rm.flush_ms);
            rm.window.due = Some(due);
            self.flushes.insert((due, room.to_string()));
        }
        self.event(event);
    }

    /// Flushes the windows due by `now`.
    pub(super) fn flush_due(&mut self, now: Millis) {
        // Each entry is taken out before its flush: the loop ends whatever
        // state the room is in.
        while self.flushes.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, room)) = self.flushes.pop_first() else { break };
            self.flush_room(&room);
        }
    }

    /// Flushes every open window now (a host about to snapshot or stop
    /// may; a snapshot keeps open windows in any case).
    pub fn flush(&mut self) {
        while let Some((_, room)) = self.flushes.pop_first() {
            self.flush_room(&room);
        }
    }

    /// When the next window flushes.
    pub(super) fn next_flush(&self) -> Option<Millis> {
        self.flushes.first().map(|(at, _)| *at)
    }

    /// Drops `room`'s window unsent (the room is going: nobody is left).
    pub(super) fn forget_window(&mut self, room: &str, due: Option<Millis>) {
        if let Some(due) = due {
            self.flushes.remove(&(due, room.to_string()));
        }
    }

    /// Sends `room`'s window: numbers its events, and sends each
    /// subscriber one frame with the events it takes.
    pub(super) fn flush_room(&mut self, room: &str) {
        self.flush_room_except(room, None);
    }

    /// `flush_room`, sending nothing to `except` (a connection resuming:
    /// it gets these events from the replay buffer, in order with what it
    /// missed before them, or a `resync`).
    pub(super) fn flush_room_except(&mut self, room: &str, except: Option<ConnectionId>) {
        let Some(rm) = self.rooms.get_mut(room) else { return };
        if rm.window.due.is_none() {
            return; // nothing open (always so in a room that does not coalesce)
        }
        let window = std::mem::take(&mut rm.window);
        if let Some(d) = self.changes.as_mut() {
            d.touch_room(room); // its seq, replay buffer and window change
        }
        if let Some(due) = window.due {
            self.flushes.remove(&(due, room.to_string()));
        }
        let (epoch, cap) = (self.epoch, self.config.replay_events);
        // Subscribers grouped by what they take: (view, events filter).
        let mut classes: BTreeMap<(bool, u8), Vec<ConnectionId>> = BTreeMap::new();
        for (conn, sub) in &rm.presence_subs {
            classes.entry((sub.view == View::Client, sub.events.bits())).or_default().push(*conn);
        }
        let takes = |view: View, kind: PresenceKind| {
            classes
                .keys()
                .any(|&(client, bits)| client == (view == View::Client) && EventMask::from_bits(bits).contains(kind))
        };
        // Each event's text per view (connection, client), built once if
        // anyone takes it.
        let mut texts: Vec<(PresenceKind, [Option<Arc<str>>; 2])> = Vec::new();
        for e in window.events.into_iter().flatten() {
            let seq = rm.log.next();
            let timestamp = iso8601(e.at);
            let mut both = [None, None];
            for (i, view) in [View::Connection, View::Client].into_iter().enumerate() {
                if (view == View::Client && !e.client_edge) || !takes(view, e.kind) {
                    continue;
                }
                let text: Arc<str> = reply::presence(&PresenceEvent {
                    room,
                    event: e.kind.as_str(),
                    client_view: view == View::Client,
                    timestamp: &timestamp,
                    id: &e.id,
                    client_id: &e.client_id,
                    data: e.data.as_deref(),
                    epoch,
                    seq,
                })
                .into();
                rm.log.keep(Replayed { seq, kind: e.kind, view, payload: Arc::clone(&text) }, cap);
                both[i] = Some(text);
            }
            texts.push((e.kind, both));
        }
        for ((client, bits), mut to) in classes {
            to.retain(|conn| Some(*conn) != except);
            if to.is_empty() {
                continue;
            }
            let mask = EventMask::from_bits(bits);
            let mine: Vec<&Arc<str>> = texts
                .iter()
                .filter(|(kind, _)| mask.contains(*kind))
                .filter_map(|(_, both)| both[usize::from(client)].as_ref())
                .collect();
            let payload = match mine.as_slice() {
                [] => continue,
                [one] => Arc::clone(one),
                many => reply::batch(room, many).into(),
            };
            self.outputs.push_back(Output::Send(Transmit { to, payload }));
        }
    }
}
