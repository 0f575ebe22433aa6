//! A realm: its objects (sorted by id, so a pattern's literal prefix is a
//! range), and its subscribers grouped by pattern, so that one event costs
//! one match per distinct pattern, not one per subscriber. Plus the index
//! of data providers, which spans realms (`*`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::permissions::Provides;
use crate::engine::output::ConnectionId;
use crate::pattern::Pattern;

/// Whether an object has a live data provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    Connected,
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Object {
    pub data: Option<Box<RawValue>>,
    /// Live connections whose `dpv` matches this object.
    pub providers: u32,
}

impl Object {
    pub(crate) fn status(&self) -> ConnectionStatus {
        if self.providers > 0 {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::Disconnected
        }
    }
}

/// Subscribers sharing one pattern.
#[derive(Debug)]
pub(crate) struct Watchers {
    pub pattern: Arc<Pattern>,
    pub conns: BTreeSet<ConnectionId>,
}

/// Subscribers grouped by pattern source.
pub(crate) type PatternGroups = BTreeMap<Box<str>, Watchers>;

#[derive(Debug, Default)]
pub(crate) struct Realm {
    pub objects: BTreeMap<String, Object>,
    pub object_subs: PatternGroups,
    /// event name (or `*`) -> subscribers by pattern.
    pub event_subs: BTreeMap<String, PatternGroups>,
}

impl Realm {
    pub(crate) fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.object_subs.is_empty() && self.event_subs.is_empty()
    }

    /// Ids of objects matching `pattern`, scanning only its literal prefix.
    pub(crate) fn matching<'a>(&'a self, pattern: &'a Pattern) -> impl Iterator<Item = (&'a String, &'a Object)> + 'a {
        let prefix = pattern.literal_prefix();
        self.objects
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(id, _)| id.starts_with(prefix))
            .filter(move |(id, _)| pattern.matches(id))
    }
}

/// Subscribers in `groups` whose pattern matches `id` (`None`: an event
/// about no object, which only catch-all patterns receive).
/// Appends them to `out` (unsorted, possibly repeated: see [`sorted_unique`]).
pub(crate) fn watchers_of(groups: &PatternGroups, id: Option<&str>, out: &mut Vec<ConnectionId>) {
    for w in groups.values() {
        let hit = match id {
            Some(id) => w.pattern.matches(id),
            None => w.pattern.literal_prefix().is_empty() && w.pattern.matches(""),
        };
        if hit {
            out.extend(w.conns.iter().copied());
        }
    }
}

/// Sorts and dedups candidates gathered from several pattern groups (one
/// connection may watch with several patterns): cheaper than a set insert
/// per candidate on the fan-out path.
pub(crate) fn sorted_unique(mut conns: Vec<ConnectionId>) -> Vec<ConnectionId> {
    conns.sort_unstable();
    conns.dedup();
    conns
}

pub(crate) fn watch(groups: &mut PatternGroups, pattern: Arc<Pattern>, conn: ConnectionId) -> bool {
    groups
        .entry(pattern.as_str().into())
        .or_insert_with(|| Watchers { pattern, conns: BTreeSet::new() })
        .conns
        .insert(conn)
}

pub(crate) fn unwatch(groups: &mut PatternGroups, pattern: &str, conn: ConnectionId) -> bool {
    let Some(w) = groups.get_mut(pattern) else { return false };
    let removed = w.conns.remove(&conn);
    if w.conns.is_empty() {
        groups.remove(pattern);
    }
    removed
}

/// Live data providers by realm key (a realm name or `*`): literal patterns
/// in a hash map, wildcard patterns in a list.
#[derive(Debug, Default)]
pub(crate) struct ProviderIndex {
    literal: HashMap<(Box<str>, Box<str>), BTreeSet<ConnectionId>>,
    globs: HashMap<Box<str>, Vec<(ConnectionId, Arc<Pattern>)>>,
}

impl ProviderIndex {
    pub(crate) fn insert(&mut self, conn: ConnectionId, provides: &Provides) {
        for (key, pattern) in provides.entries() {
            if pattern.is_literal() {
                self.literal.entry((key.into(), pattern.as_str().into())).or_default().insert(conn);
            } else {
                self.globs.entry(key.into()).or_default().push((conn, Arc::clone(pattern)));
            }
        }
    }

    pub(crate) fn remove(&mut self, conn: ConnectionId, provides: &Provides) {
        for (key, pattern) in provides.entries() {
            if pattern.is_literal() {
                let k = (Box::<str>::from(key), Box::<str>::from(pattern.as_str()));
                if let Some(set) = self.literal.get_mut(&k) {
                    set.remove(&conn);
                    if set.is_empty() {
                        self.literal.remove(&k);
                    }
                }
            } else if let Some(list) = self.globs.get_mut(key) {
                list.retain(|(c, _)| *c != conn);
                if list.is_empty() {
                    self.globs.remove(key);
                }
            }
        }
    }

    /// How many distinct live connections provide for `id` in `realm`.
    pub(crate) fn count(&self, realm: &str, id: &str) -> u32 {
        let mut conns = BTreeSet::new();
        for key in [realm, "*"] {
            if let Some(set) = self.literal.get(&(key.into(), id.into())) {
                conns.extend(set.iter().copied());
            }
            if let Some(list) = self.globs.get(key) {
                conns.extend(list.iter().filter(|(_, p)| p.matches(id)).map(|(c, _)| *c));
            }
        }
        u32::try_from(conns.len()).unwrap_or(u32::MAX)
    }
}
