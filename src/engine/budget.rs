//! The whole engine's memory budget (`limits.max_stored_bytes`): what each
//! stored thing is charged, and the refusal when the budget is spent.
//!
//! Charges are estimates of the heap each thing holds, its variable bytes
//! (ids, names, JSON text, claims) plus a fixed overhead for the map
//! entries, reference counts and compiled patterns around it:
//!
//! | thing | charge |
//! |---|---|
//! | a connection | [`CONNECTION_BYTES`] + its claims ([`identity_bytes`]) |
//! | a distinct glob among all live connections' claims | [`GLOB_BYTES`], once however many connections hold it |
//! | a room it joined | [`ROOM_BYTES`] + twice the name's length |
//! | a subscription it holds | [`ENTRY_BYTES`] + `limits.max_name_bytes`, plus [`GLOB_BYTES`] if its pattern is a glob |
//! | a presence member | [`ENTRY_BYTES`] + its data's length |
//! | an object | [`ENTRY_BYTES`] + its id's and data's lengths |
//!
//! A connection's charge is recomputed from its counts after every input
//! that concerns it ([`Engine::recharge`]), so it cannot drift; members and
//! objects are charged where they are stored and released where they go.

use super::connection::Connection;
use super::{Engine, Refusal};
use crate::auth::Identity;
use crate::error::ErrorCode;

/// Fixed charge of one connection: its state, two token buckets, its
/// presence id, its entry in the engine's maps.
pub(crate) const CONNECTION_BYTES: usize = 2048;
/// Fixed charge of one stored entry (a joined room, a subscription, a
/// member, an object, a claim pattern), on top of its variable bytes.
pub(crate) const ENTRY_BYTES: usize = 256;

/// Fixed charge of one joined room: the connection's entry, the room's
/// entry, and the room itself when it is the first (measured: 850 bytes of
/// wasm memory per join of a distinct 256-byte name, docs/BENCHMARKS.md).
pub(crate) const ROOM_BYTES: usize = 384;

/// Extra charge of a subscription whose pattern compiles to a glob (not
/// `**`, a literal, `<literal>*` or `<literal>/**`): the compiled regex and
/// its lazy DFA cache. Measured: 6 KB compiled, 265 KB once a distinct
/// 12-wildcard glob has met varied ids (docs/BENCHMARKS.md); globset allows
/// the cache up to 10 MiB, which no shape within `maxPatternWildcards` was
/// seen to need.
pub(crate) const GLOB_BYTES: usize = 256 * 1024;

/// What an identity's claims cost to keep: their text, and per pattern an
/// entry (its compiled form is shared, but a distinct pattern each time is
/// what an adversary sends).
pub(crate) fn identity_bytes(identity: &Identity) -> usize {
    let mut bytes = identity.client_id.as_ref().map_or(0, String::len);
    for (pattern, actions) in identity.rooms.iter().flatten() {
        bytes += ENTRY_BYTES + pattern.len() + actions.len();
    }
    for (realm, ids) in identity.per.iter().flatten() {
        bytes += realm.len();
        for (pattern, letters) in ids {
            bytes += ENTRY_BYTES + pattern.len() + letters.len();
        }
    }
    for (realm, patterns) in identity.dpv.iter().flatten() {
        bytes += realm.len();
        for pattern in patterns {
            bytes += ENTRY_BYTES + pattern.len();
        }
    }
    bytes
}

/// The distinct claim patterns of `identity` (rooms, `per`, `dpv`) that
/// compile to a glob: each is compiled once and shared by every connection
/// that holds it, so each is charged [`GLOB_BYTES`] once (see
/// [`Engine::hold_claims`]).
pub(crate) fn claim_globs(identity: &Identity) -> std::collections::BTreeSet<&str> {
    let rooms = identity.rooms.iter().flatten().map(|(pattern, _)| pattern.as_str());
    let per = identity.per.iter().flatten().flat_map(|(_, ids)| ids.keys().map(String::as_str));
    let dpv = identity.dpv.iter().flatten().flat_map(|(_, patterns)| patterns.iter().map(String::as_str));
    rooms.chain(per).chain(dpv).filter(|p| crate::pattern::is_glob(p)).collect()
}

/// Charge of a stored presence member or object holding `len` bytes.
pub(crate) fn entry_bytes(len: usize) -> usize {
    ENTRY_BYTES + len
}

impl Engine {
    /// What a connection is charged for, from its current state.
    pub(super) fn connection_bytes(&self, c: &Connection) -> usize {
        let per_subscription = ENTRY_BYTES + self.config.limits.max_name_bytes;
        let rooms: usize = c.rooms.keys().map(|room| ROOM_BYTES + 2 * room.len()).sum();
        CONNECTION_BYTES
            + c.claims_bytes
            + rooms
            + c.subscriptions.saturating_mul(per_subscription)
            + c.glob_subscriptions.saturating_mul(GLOB_BYTES)
    }

    /// Refuses with ENGINE_FULL unless `more` bytes fit beside `less` that
    /// the same change gives back.
    pub(super) fn budget_allows(&self, more: usize, less: usize) -> Result<(), Refusal> {
        let max = self.config.limits.max_stored_bytes;
        if more > less && self.stored_bytes.saturating_add(more - less) > max {
            return Err(Refusal(ErrorCode::EngineFull, format!("the engine holds its budget of {max} bytes")));
        }
        Ok(())
    }

    /// Whether one more subscription (with a glob pattern or not) fits.
    pub(super) fn budget_allows_subscription(&self, glob: bool) -> Result<(), Refusal> {
        let glob = if glob { GLOB_BYTES } else { 0 };
        self.budget_allows(ENTRY_BYTES + self.config.limits.max_name_bytes + glob, 0)
    }

    /// Whether joining `room` fits.
    pub(super) fn budget_allows_room(&self, room: &str) -> Result<(), Refusal> {
        self.budget_allows(ROOM_BYTES + 2 * room.len(), 0)
    }

    pub(super) fn charge(&mut self, more: usize, less: usize) {
        self.stored_bytes = self.stored_bytes.saturating_add(more).saturating_sub(less);
    }

    /// Brings a connection's charge up to date with its state.
    pub(super) fn recharge(&mut self, conn: super::ConnectionId) {
        let Some(c) = self.connections.get(&conn) else { return };
        let (now, before) = (self.connection_bytes(c), c.charged);
        if let Some(c) = self.connections.get_mut(&conn) {
            c.charged = now;
        }
        self.charge(now, before);
    }

    /// What keeping `identity` adds for its claim globs that no live
    /// connection holds yet.
    pub(super) fn new_claim_globs_bytes(&self, identity: &Identity) -> usize {
        claim_globs(identity)
            .into_iter()
            .filter(|p| !self.claim_globs.contains_key(*p))
            .count()
            .saturating_mul(GLOB_BYTES)
    }

    /// What `conn` swapping its identity for `new` gives back: its claim
    /// globs no other live connection holds and `new` does not hold.
    pub(super) fn released_claim_globs_bytes(&self, conn: super::ConnectionId, new: &Identity) -> usize {
        let Some(old) = self.connections.get(&conn).and_then(|c| c.identity.as_ref()) else { return 0 };
        let kept = claim_globs(new);
        claim_globs(old)
            .into_iter()
            .filter(|p| !kept.contains(p) && self.claim_globs.get(*p) == Some(&1))
            .count()
            .saturating_mul(GLOB_BYTES)
    }

    /// Takes a reference to each of `identity`'s claim globs, charging the
    /// ones no live connection held.
    pub(super) fn hold_claims(&mut self, identity: &Identity) {
        for pattern in claim_globs(identity) {
            let refs = self.claim_globs.entry(pattern.into()).or_insert(0);
            *refs += 1;
            if *refs == 1 {
                self.charge(GLOB_BYTES, 0);
            }
        }
    }

    /// Gives back the references [`Engine::hold_claims`] took for `identity`.
    pub(super) fn release_claims(&mut self, identity: &Identity) {
        for pattern in claim_globs(identity) {
            let Some(refs) = self.claim_globs.get_mut(pattern) else { continue };
            *refs -= 1;
            if *refs == 0 {
                self.claim_globs.remove(pattern);
                self.charge(0, GLOB_BYTES);
            }
        }
    }

    /// Sets a connection's identity, moving its claim globs' references
    /// from the identity it had (if any) to this one.
    pub(super) fn set_identity(&mut self, conn: super::ConnectionId, identity: Identity) {
        self.hold_claims(&identity);
        let Some(c) = self.connections.get_mut(&conn) else {
            self.release_claims(&identity);
            return;
        };
        let old = c.identity.take();
        c.set_identity(identity);
        if let Some(old) = old {
            self.release_claims(&old);
        }
    }

    /// Bytes charged against `limits.max_stored_bytes` now.
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }
}
