//! One connection's state: identity, grants, joined rooms, budgets.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::{Actions, RoomGrants};
use crate::config::Limits;
use crate::rate::TokenBucket;
use crate::time::Millis;

#[derive(Debug)]
pub(crate) enum AuthState {
    /// Opened without credentials; must send `auth` before the deadline.
    Pending,
    Ready { grants: Arc<RoomGrants> },
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
    pub subscriptions: usize,
    pub deadline: Option<Millis>,
    pub rate: TokenBucket,
    pub violations: TokenBucket,
}

impl Connection {
    pub(crate) fn new(presence_id: Arc<str>, limits: &Limits, now: Millis) -> Self {
        Connection {
            presence_id,
            client_id: None,
            auth: AuthState::Pending,
            rooms: BTreeMap::new(),
            subscriptions: 0,
            deadline: None,
            rate: TokenBucket::full(limits.rate, now),
            violations: TokenBucket::full(limits.violations, now),
        }
    }

    pub(crate) fn grants(&self) -> Option<&Arc<RoomGrants>> {
        match &self.auth {
            AuthState::Ready { grants, .. } => Some(grants),
            AuthState::Pending => None,
        }
    }
}
