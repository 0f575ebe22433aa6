//! A room: who has joined it, its presence set, and its subscribers. Plain
//! data with no outputs; the engine turns its answers into frames.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::engine::output::ConnectionId;
use crate::protocol::request::{EventMask, PresenceKind, View};

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: Arc<str>,
    pub client_id: Arc<str>,
    pub data: Option<Box<RawValue>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PresenceSub {
    pub events: EventMask,
    pub view: View,
}

/// What a presence upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// A new member; `first_of_client` if no other connection of its
    /// clientId was present.
    Joined {
        first_of_client: bool,
    },
    Updated,
}

#[derive(Debug, Default)]
pub(crate) struct Room {
    pub joined: BTreeSet<ConnectionId>,
    pub members: BTreeMap<ConnectionId, Member>,
    /// clientId -> its present connections (the per-client view).
    pub clients: BTreeMap<Arc<str>, BTreeSet<ConnectionId>>,
    pub presence_subs: BTreeMap<ConnectionId, PresenceSub>,
    /// event name (or `*`) -> subscribers.
    pub event_subs: BTreeMap<String, BTreeSet<ConnectionId>>,
    /// Members whose connection is lost and in grace.
    pub in_grace: BTreeSet<ConnectionId>,
    /// Presence sequence numbers and the replay buffer.
    pub log: super::sequence::RoomLog,
    /// Its presence flush interval (0: events go at once), and the events
    /// waiting for the flush (coalesce.rs).
    pub flush_ms: u64,
    pub window: super::coalesce::Window,
    /// Cluster mode's state of the room (unused on one node).
    pub sync: super::cluster::RoomSync,
}

impl Room {
    pub(crate) fn is_empty(&self) -> bool {
        self.joined.is_empty()
    }

    pub(crate) fn upsert(&mut self, conn: ConnectionId, member: Member) -> Upsert {
        if let Some(existing) = self.members.get_mut(&conn) {
            existing.data = member.data;
            return Upsert::Updated;
        }
        let devices = self.clients.entry(Arc::clone(&member.client_id)).or_default();
        let first_of_client = devices.is_empty();
        devices.insert(conn);
        self.members.insert(conn, member);
        Upsert::Joined { first_of_client }
    }

    /// Removes a member; says whether it was its clientId's last connection.
    pub(crate) fn remove(&mut self, conn: ConnectionId) -> Option<(Member, bool)> {
        let member = self.members.remove(&conn)?;
        self.in_grace.remove(&conn);
        let mut last_of_client = false;
        if let Some(devices) = self.clients.get_mut(&member.client_id) {
            devices.remove(&conn);
            if devices.is_empty() {
                self.clients.remove(&member.client_id);
                last_of_client = true;
            }
        }
        Some((member, last_of_client))
    }

    /// Subscribers of presence events of `kind` in `view`.
    pub(crate) fn presence_recipients(&self, kind: PresenceKind, view: View) -> Vec<ConnectionId> {
        self.presence_subs.iter().filter(|(_, s)| s.view == view && s.events.contains(kind)).map(|(c, _)| *c).collect()
    }

    /// Subscribers of `event`: by its name or by `*`, each once.
    pub(crate) fn event_recipients(&self, event: &str) -> Vec<ConnectionId> {
        let named = self.event_subs.get(event);
        let all = self.event_subs.get("*");
        match (named, all) {
            (Some(a), Some(b)) => a.union(b).copied().collect(),
            (Some(a), None) | (None, Some(a)) => a.iter().copied().collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Hands everything `from` holds here to `to` (a resume): membership,
    /// presence member (same id and data), grace mark dropped, subscriptions.
    pub(crate) fn rename(&mut self, from: ConnectionId, to: ConnectionId) {
        if self.joined.remove(&from) {
            self.joined.insert(to);
        }
        self.sync.rename(from, to);
        self.in_grace.remove(&from);
        if let Some(member) = self.members.remove(&from) {
            if let Some(devices) = self.clients.get_mut(&member.client_id) {
                devices.remove(&from);
                devices.insert(to);
            }
            self.members.insert(to, member);
        }
        if let Some(sub) = self.presence_subs.remove(&from) {
            self.presence_subs.insert(to, sub);
        }
        for subs in self.event_subs.values_mut() {
            if subs.remove(&from) {
                subs.insert(to);
            }
        }
    }

    /// Drops every subscription `conn` holds here; returns how many.
    pub(crate) fn unsubscribe_all(&mut self, conn: ConnectionId) -> usize {
        let mut n = usize::from(self.presence_subs.remove(&conn).is_some());
        self.event_subs.retain(|_, subs| {
            n += usize::from(subs.remove(&conn));
            !subs.is_empty()
        });
        n
    }
}
