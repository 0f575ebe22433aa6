//! Object permissions (`per`) and data-provider patterns (`dpv`), as in
//! seed 000:
//!
//! ```json
//! "per": { "london": { "deliveryRiders/*": "R", "deliveryRiders/johndoe-123": "CU" } },
//! "dpv": { "*": ["deliveryRiders/cyclists/*"] }
//! ```
//!
//! A realm key `*` means every realm. Rights are the union of every
//! matching entry. Both compile once per distinct claim and are shared.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::SharedCache;
use crate::pattern::{Pattern, PatternCache};

/// The `per` claim: realm (or `*`) -> id pattern -> CRUD letters.
pub type PermissionClaim = BTreeMap<String, BTreeMap<String, String>>;
/// The `dpv` claim: realm (or `*`) -> id patterns provided for.
pub type ProviderClaim = BTreeMap<String, Vec<String>>;

/// A set of CRUD rights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Crud(u8);

impl Crud {
    pub const NONE: Crud = Crud(0);
    pub const CREATE: Crud = Crud(1);
    pub const READ: Crud = Crud(2);
    pub const UPDATE: Crud = Crud(4);
    pub const DELETE: Crud = Crud(8);

    /// Parses letters such as `"CRU"`; any other character is an error.
    pub fn parse(letters: &str) -> Result<Crud, String> {
        letters.chars().try_fold(Crud::NONE, |acc, c| {
            let bit = match c {
                'C' => Crud::CREATE,
                'R' => Crud::READ,
                'U' => Crud::UPDATE,
                'D' => Crud::DELETE,
                other => return Err(format!("{other:?} is not one of the rights C, R, U, D")),
            };
            Ok(Crud(acc.0 | bit.0))
        })
    }

    pub fn contains(self, other: Crud) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

/// Which realms an entry applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RealmKey {
    Any,
    Named(Box<str>),
}

impl RealmKey {
    fn new(key: &str) -> RealmKey {
        if key == "*" {
            RealmKey::Any
        } else {
            RealmKey::Named(key.into())
        }
    }

    fn covers(&self, realm: &str) -> bool {
        match self {
            RealmKey::Any => true,
            RealmKey::Named(name) => **name == *realm,
        }
    }
}

/// Compiled `per`.
#[derive(Debug)]
pub struct Permissions {
    entries: Vec<(RealmKey, Arc<Pattern>, Crud)>,
}

impl Permissions {
    /// Whether `right` is granted on object `id` in `realm`.
    pub fn allows(&self, realm: &str, id: &str, right: Crud) -> bool {
        let mut granted = Crud::NONE;
        for (key, pattern, rights) in &self.entries {
            if rights.0 & right.0 != 0 && key.covers(realm) && pattern.matches(id) {
                granted = Crud(granted.0 | rights.0);
                if granted.contains(right) {
                    return true;
                }
            }
        }
        false
    }

    /// Whether `right` is granted on any id of `realm` (to subscribe, list,
    /// or receive id-less realm events at all).
    pub fn allows_somewhere(&self, realm: &str, right: Crud) -> bool {
        self.entries.iter().any(|(key, _, rights)| rights.contains(right) && key.covers(realm))
    }
}

/// Compiled `dpv`: the objects a data provider keeps `connected`.
#[derive(Debug)]
pub struct Provides {
    entries: Vec<(RealmKey, Arc<Pattern>)>,
}

impl Provides {
    /// The patterns that apply in `realm`.
    pub fn patterns_in<'a>(&'a self, realm: &'a str) -> impl Iterator<Item = &'a Arc<Pattern>> + 'a {
        self.entries.iter().filter(move |(key, _)| key.covers(realm)).map(|(_, p)| p)
    }

    pub fn provides(&self, realm: &str, id: &str) -> bool {
        self.patterns_in(realm).any(|p| p.matches(id))
    }

    /// Every (realm key, pattern); the key is a realm name or `*`.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Arc<Pattern>)> + '_ {
        self.entries.iter().map(|(key, p)| {
            let key: &str = match key {
                RealmKey::Any => "*",
                RealmKey::Named(n) => n,
            };
            (key, p)
        })
    }

    /// Realm keys named (not `*`), and whether `*` is among them.
    pub fn realms(&self) -> (Vec<&str>, bool) {
        let mut named = Vec::new();
        let mut any = false;
        for (key, _) in &self.entries {
            match key {
                RealmKey::Any => any = true,
                RealmKey::Named(n) => named.push(&**n),
            }
        }
        (named, any)
    }
}

pub(crate) type PermissionCache = SharedCache<PermissionClaim, Permissions>;
pub(crate) type ProvidesCache = SharedCache<ProviderClaim, Provides>;

pub(crate) fn compile_permissions(
    claim: &PermissionClaim,
    cache: &mut PermissionCache,
    patterns: &mut PatternCache,
) -> Result<Arc<Permissions>, String> {
    cache.get_or_try_insert(claim, || {
        let mut entries = Vec::new();
        for (realm, ids) in claim {
            for (pattern, letters) in ids {
                let rights = Crud::parse(letters).map_err(|e| format!("per.{realm}.{pattern}: {e}"))?;
                let pattern = patterns.get(pattern).map_err(|e| format!("per.{realm}: {e}"))?;
                entries.push((RealmKey::new(realm), pattern, rights));
            }
        }
        Ok(Permissions { entries })
    })
}

pub(crate) fn compile_provides(
    claim: &ProviderClaim,
    cache: &mut ProvidesCache,
    patterns: &mut PatternCache,
) -> Result<Arc<Provides>, String> {
    cache.get_or_try_insert(claim, || {
        let mut entries = Vec::new();
        for (realm, ids) in claim {
            for pattern in ids {
                let pattern = patterns.get(pattern).map_err(|e| format!("dpv.{realm}: {e}"))?;
                entries.push((RealmKey::new(realm), pattern));
            }
        }
        Ok(Provides { entries })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per(json: &str) -> Arc<Permissions> {
        let claim: PermissionClaim = serde_json::from_str(json).unwrap();
        compile_permissions(&claim, &mut SharedCache::new(8), &mut PatternCache::new(256, 8)).unwrap()
    }

    #[test]
    fn the_seed_token_reads_all_riders_and_writes_only_itself() {
        let p = per(r#"{"london": {"deliveryRiders/*": "R", "deliveryRiders/johndoe-123": "CU"}}"#);
        assert!(p.allows("london", "deliveryRiders/alice", Crud::READ));
        assert!(!p.allows("london", "deliveryRiders/alice", Crud::UPDATE));
        assert!(p.allows("london", "deliveryRiders/johndoe-123", Crud::UPDATE));
        assert!(p.allows("london", "deliveryRiders/johndoe-123", Crud::READ));
        assert!(!p.allows("paris", "deliveryRiders/alice", Crud::READ));
        assert!(!p.allows("london", "deliveryRiders/johndoe-123", Crud::DELETE));
    }

    #[test]
    fn realm_star_covers_every_realm_and_bad_letters_are_refused() {
        let p = per(r#"{"*": {"**": "RD"}}"#);
        assert!(p.allows("anywhere", "a/b/c", Crud::DELETE));
        let claim: PermissionClaim = serde_json::from_str(r#"{"x": {"a": "RX"}}"#).unwrap();
        assert!(compile_permissions(&claim, &mut SharedCache::new(8), &mut PatternCache::new(256, 8)).is_err());
    }
}
