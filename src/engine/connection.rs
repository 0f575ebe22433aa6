//! One connection's state: identity, grants, joined rooms, budgets.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::collections::BTreeSet;

use crate::auth::permissions::{Permissions, Provides};
use crate::auth::{Actions, RoomGrants};
use crate::config::Limits;
use crate::engine::objects::RealmSub;
use crate::rate::TokenBucket;
use crate::time::Millis;

#[derive(Debug)]
pub(crate) enum AuthState {
    /// Opened without credentials; must send `auth` before the deadline.
    Pending,
    Ready {
        grants: Arc<RoomGrants>,
    },
}

/// What a connection holds in one room it has joined.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JoinedRoom {
    pub actions: Actions,
    /// Subscriptions held in this room (presence and events).
    pub subscriptions: usize,
}

#[derive(Debug)]
pub(crate) struct Connection {
    /// `"<appId>:<connectionId>"`, the presence id.
    pub presence_id: Arc<str>,
    pub client_id: Option<Arc<str>>,
    pub auth: AuthState,
    pub rooms: BTreeMap<String, JoinedRoom>,
    /// Subscriptions held, rooms and realms together.
    pub subscriptions: usize,
    /// Of those, realm subscriptions whose pattern compiles to a glob.
    pub glob_subscriptions: usize,
    pub permissions: Arc<Permissions>,
    /// What this connection is a data provider for, if anything.
    pub provides: Option<Arc<Provides>>,
    pub realm_subs: BTreeSet<RealmSub>,
    /// The claims it authenticated with (kept for snapshots); `None` while
    /// pending. Set with [`Connection::set_identity`].
    pub identity: Option<crate::auth::Identity>,
    /// What those claims cost in the engine's budget, computed once when
    /// they are set (not on every frame).
    pub claims_bytes: usize,
    pub deadline: Option<Millis>,
    /// The last sign of life (a frame, or the host's `handle_alive`).
    pub last_seen: Millis,
    /// When the idle check is scheduled (an entry of the engine's `idle` set).
    pub idle_check: Option<Millis>,
    /// Lost abnormally: in grace until this time, no longer read from.
    pub grace_until: Option<Millis>,
    /// The secret that resumes this connection from another one.
    pub resume_token: Option<Arc<str>>,
    pub rate: TokenBucket,
    pub violations: TokenBucket,
    /// Bytes this connection is charged in the engine's budget.
    pub charged: usize,
}

impl Connection {
    /// Keeps the claims it authenticated with and their budget charge.
    pub(crate) fn set_identity(&mut self, identity: crate::auth::Identity) {
        self.claims_bytes = super::budget::identity_bytes(&identity);
        self.identity = Some(identity);
    }

    pub(crate) fn new(presence_id: Arc<str>, permissions: Arc<Permissions>, limits: &Limits, now: Millis) -> Self {
        Connection {
            presence_id,
            client_id: None,
            auth: AuthState::Pending,
            rooms: BTreeMap::new(),
            subscriptions: 0,
            glob_subscriptions: 0,
            permissions,
            provides: None,
            realm_subs: BTreeSet::new(),
            identity: None,
            claims_bytes: 0,
            deadline: None,
            last_seen: now,
            idle_check: None,
            grace_until: None,
            resume_token: None,
            rate: TokenBucket::full(limits.rate, now),
            violations: TokenBucket::full(limits.violations, now),
            charged: 0,
        }
    }

    pub(crate) fn grants(&self) -> Option<&Arc<RoomGrants>> {
        match &self.auth {
            AuthState::Ready { grants, .. } => Some(grants),
            AuthState::Pending => None,
        }
    }
}
