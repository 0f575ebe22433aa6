//! What the engine asks of its host.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::auth::AuthError;
use crate::engine::realm::ConnectionStatus;
use crate::error::CloseCode;

/// A host-chosen connection id, unique among the engine's live connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One instruction for the host. Drain them with
/// [`Engine::poll_output`](crate::Engine::poll_output) after every call.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Output {
    /// Send `payload` (a text frame) to every connection in `to`, in order
    /// with the other outputs.
    Send(Transmit),
    /// Close the connection with this WebSocket close code and reason. The
    /// engine has already forgotten it; a later `handle_close` is a no-op.
    Close(Close),
    /// Something the host may want to react to. Needs no action.
    Event(HostEvent),
}

/// A payload serialised once for any number of recipients.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub to: Vec<ConnectionId>,
    pub payload: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Close {
    pub connection: ConnectionId,
    pub code: CloseCode,
    pub reason: String,
}

/// Events for the host itself, so server code can react without parsing frames.
/// Serialises as `{"type": "presenceJoined", "room": ..., ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum HostEvent {
    /// The connection proved who it is (at open or by its first `auth`).
    Authenticated {
        connection: ConnectionId,
        client_id: Option<String>,
    },
    /// An authenticated connection's `auth` with a new token was accepted:
    /// its claims (and so its identity, rights and expiry) changed.
    TokenRefreshed {
        connection: ConnectionId,
        client_id: Option<String>,
        expires_at: Option<u64>,
    },
    /// The connection's token was refused; it is being closed with 4001.
    AuthRefused {
        connection: ConnectionId,
        error: AuthError,
    },
    /// The connection is gone from the engine (closed by host or engine,
    /// or its grace ended).
    Closed {
        connection: ConnectionId,
    },
    /// The connection was lost abnormally and is in grace until
    /// `grace_until`: others still see it; nothing is sent about it.
    ConnectionLost {
        connection: ConnectionId,
        grace_until: u64,
    },
    /// `connection` resumed `previous` (with its resume token): it holds
    /// `previous`'s rooms, members and subscriptions now; `previous` is gone.
    Resumed {
        connection: ConnectionId,
        previous: ConnectionId,
    },
    RoomJoined {
        connection: ConnectionId,
        room: String,
    },
    RoomLeft {
        connection: ConnectionId,
        room: String,
    },
    PresenceJoined {
        room: String,
        connection: ConnectionId,
        client_id: String,
        data: Option<String>,
    },
    PresenceUpdated {
        room: String,
        connection: ConnectionId,
        client_id: String,
        data: Option<String>,
    },
    PresenceLeft {
        room: String,
        connection: ConnectionId,
        client_id: String,
    },
    /// An object's `connectionStatus` changed (its first provider came or
    /// its last one went).
    ObjectStatusChanged {
        realm: String,
        id: String,
        status: ConnectionStatus,
    },
    /// Cluster mode: a local presence change the store must order and
    /// hand to every node (`op`: `join`, `update` or `leave`; `member`, the
    /// member to store, for join and update), or (`op: "adopt"`) a member
    /// resumed from another node that the store must re-own to this node
    /// with no event. See `engine/cluster.rs`.
    ClusterReplicate {
        room: String,
        op: &'static str,
        id: String,
        member: Option<String>,
    },
    /// Cluster mode: a room event published here (by a client or the
    /// host) for the other nodes' subscribers: publish `message` on the
    /// room's channel, for `Engine::cluster_apply` there.
    ClusterPublish {
        room: String,
        message: String,
    },
    /// Cluster mode: a local connection joined `room`, the first here:
    /// follow its changes in the store and hand over its snapshot.
    ClusterWatch {
        room: String,
    },
    /// Cluster mode: the last local connection left `room`: stop following it.
    ClusterUnwatch {
        room: String,
    },
    /// Cluster mode: a connection in grace can be resumed on another node
    /// with `token` until `grace_until`: record it in the store.
    ClusterResumable {
        connection: ConnectionId,
        token: String,
        grace_until: u64,
    },
    /// Cluster mode: `resume` with a token this node does not know: claim
    /// it in the store, fetch the state from its node, and call
    /// `Engine::cluster_resume` (with `None` if that fails).
    ClusterResumeClaim {
        connection: ConnectionId,
        token: String,
    },
    /// Cluster mode: `room` missed changes (a gap in `seq`, another epoch,
    /// a re-assert): hand over a fresh snapshot (`Engine::cluster_snapshot`).
    ClusterResync {
        room: String,
    },
    /// Cluster mode: a local object change (`op`: `create`, `update` or
    /// `delete`; `data_text`: the data as JSON text, passed unparsed) for
    /// the store to order and hand to
    /// every node's `Engine::cluster_objects_apply`. See
    /// `engine/cluster_objects.rs`.
    ClusterObject {
        realm: String,
        op: &'static str,
        id: String,
        data_text: Option<String>,
    },
    /// Cluster mode: a realm event published here: publish `message` on the
    /// objects channel, for `Engine::cluster_objects_apply` on other nodes.
    ClusterRealmPublish {
        realm: String,
        message: String,
    },
    /// Cluster mode: this node's provider set (`{realm: [pattern, ...]}`)
    /// changed: store it as this node's, for every other node.
    ClusterProviders {
        providers: String,
    },
    /// Cluster mode: `realm` missed changes: hand over its snapshot
    /// (`Engine::cluster_realm_snapshot`).
    ClusterRealmResync {
        realm: String,
    },
}

/// The engine's pending outputs. A `Send` never names a lost connection (in
/// grace): it has no socket, and a resume replays what it missed. The
/// filter applies when the output is queued, so a connection lost in the
/// middle of a call gets what came before, and nothing after.
#[derive(Debug, Default)]
pub(crate) struct OutputQueue {
    queue: VecDeque<Output>,
    /// Connections in grace now.
    lost: HashSet<ConnectionId>,
}

impl OutputQueue {
    pub(crate) fn push_back(&mut self, output: Output) {
        match output {
            Output::Send(mut t) if !self.lost.is_empty() => {
                t.to = self.reachable(t.to);
                if !t.to.is_empty() {
                    self.queue.push_back(Output::Send(t));
                }
            }
            output => self.queue.push_back(output),
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    pub(crate) fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, Output> {
        self.queue.drain(..)
    }

    /// `to` without the lost connections: the recipients a Send to `to`
    /// reaches (what a publish ack counts).
    pub(crate) fn reachable(&self, mut to: Vec<ConnectionId>) -> Vec<ConnectionId> {
        if !self.lost.is_empty() {
            to.retain(|c| !self.lost.contains(c));
        }
        to
    }

    /// `conn` is lost (in grace) from now on, or (`false`) no longer.
    pub(crate) fn set_lost(&mut self, conn: ConnectionId, lost: bool) {
        if lost {
            self.lost.insert(conn);
        } else {
            self.lost.remove(&conn);
        }
    }
}
