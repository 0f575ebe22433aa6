//! Room grants: which actions a connection may take on which rooms.
//!
//! Grants compile once per distinct claim and are shared (`Arc`) by every
//! connection whose claim is equal, so ten thousand connections with the
//! same token shape hold one compiled set.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::RoomAction;
use crate::cache::SharedCache;
use crate::pattern::{Pattern, PatternCache, PatternError};

/// A set of [`RoomAction`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);

    fn bit(a: RoomAction) -> u8 {
        match a {
            RoomAction::Subscribe => 1,
            RoomAction::Publish => 2,
            RoomAction::Presence => 4,
        }
    }

    pub fn with(self, a: RoomAction) -> Actions {
        Actions(self.0 | Self::bit(a))
    }

    pub fn allows(self, a: RoomAction) -> bool {
        self.0 & Self::bit(a) != 0
    }

    fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }
}

/// Compiled room grants: the union of the actions of every matching pattern.
#[derive(Debug)]
pub struct RoomGrants {
    entries: Vec<(Arc<Pattern>, Actions)>,
}

impl RoomGrants {
    pub fn actions_for(&self, room: &str) -> Actions {
        self.entries.iter().filter(|(p, _)| p.matches(room)).fold(Actions::NONE, |acc, (_, a)| acc.union(*a))
    }
}

pub type RoomClaim = BTreeMap<String, Vec<RoomAction>>;

/// Shares compiled grants between equal claims.
pub(crate) type GrantCache = SharedCache<RoomClaim, RoomGrants>;

/// Compiles a `rooms` claim through the shared caches.
pub(crate) fn compile(
    claim: &RoomClaim,
    cache: &mut GrantCache,
    patterns: &mut PatternCache,
) -> Result<Arc<RoomGrants>, PatternError> {
    cache.get_or_try_insert(claim, || {
        let mut entries = Vec::with_capacity(claim.len());
        for (pattern, actions) in claim {
            let actions = actions.iter().fold(Actions::NONE, |acc, a| acc.with(*a));
            entries.push((patterns.get(pattern)?, actions));
        }
        Ok(RoomGrants { entries })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_the_union_of_matching_patterns() {
        let mut patterns = PatternCache::new(256, 16);
        let mut cache = GrantCache::new(16);
        let claim: RoomClaim = BTreeMap::from([
            ("chat/*".to_string(), vec![RoomAction::Subscribe]),
            ("chat/lobby".to_string(), vec![RoomAction::Presence]),
        ]);
        let g = compile(&claim, &mut cache, &mut patterns).unwrap();
        let a = g.actions_for("chat/lobby");
        assert!(a.allows(RoomAction::Subscribe) && a.allows(RoomAction::Presence));
        assert!(!a.allows(RoomAction::Publish));
        assert_eq!(g.actions_for("other"), Actions::NONE);
        assert!(Arc::ptr_eq(&g, &compile(&claim.clone(), &mut cache, &mut patterns).unwrap()));
    }
}
