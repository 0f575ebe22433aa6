//! The engine: a state machine fed with host events and the time, answering
//! with [`Output`]s. See the crate docs for the run loop.

mod budget;
mod cluster;
mod cluster_objects;
mod cluster_resume;
mod coalesce;
mod connection;
mod grace;
mod liveness;
mod objects;
pub mod output;
pub mod persist;
mod presence;
mod realm;
mod resume;
mod room;
mod sequence;
pub mod snapshot;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::grants::{self, GrantCache};
use crate::auth::jwt::Verifier;
use crate::auth::permissions::{self, PermissionCache, Permissions, Provides, ProvidesCache};
use crate::auth::{AuthError, Identity, RoomAction, RoomGrants};
use crate::config::Config;
use crate::error::{CloseCode, ConfigError, Error, ErrorCode};
use crate::pattern::PatternCache;
use crate::protocol::reply::{self, AckBody};
use crate::protocol::request::{self, Request};
use crate::time::{self, Millis, MAX_TIME};

use connection::{AuthState, Connection, JoinedRoom};
use presence::not_joined;
use room::Room;

pub use cluster::{is_remote, REMOTE_BIT};
pub use objects::{ObjectInfo, CONNECTION_STATUS_CHANGED};
pub use output::{Close, ConnectionId, HostEvent, Output, Transmit};
pub use realm::ConnectionStatus;

/// What a verified identity may do, compiled and shared.
struct Rights {
    grants: Arc<RoomGrants>,
    permissions: Arc<Permissions>,
    provides: Option<Arc<Provides>>,
}

/// How a connection proves who it is when it opens.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Nothing yet: the client must send an `auth` frame within
    /// `auth.auth_timeout_ms`.
    None,
    /// A JWT, verified by the engine.
    Token(String),
    /// An identity the host has verified itself (an API key check, a session).
    /// One the engine cannot use (see [`AuthError::BadIdentity`]) is
    /// refused like a bad token: 4001, never an `Err`.
    Identity(Identity),
    /// Credentials the host could not even read into an [`Identity`] (a
    /// user callback returned a numeric clientId, say), with the reason.
    /// The connection is refused with `BAD_IDENTITY` and closed with 4001.
    Invalid(String),
}

/// A member of a presence set, for the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    /// In cluster mode, a member of another node has a key with
    /// [`REMOTE_BIT`] set here (see [`is_remote`]).
    pub connection: ConnectionId,
    pub id: String,
    pub client_id: String,
    /// The member's data as JSON text.
    pub data: Option<String>,
    /// Its connection is lost and in grace (`leaveGraceMs`): others still
    /// see it, and it leaves when the grace ends unless it is resumed.
    /// Serialised only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_grace: bool,
}

/// A clientId with its present connections (first device in, last out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub client_id: String,
    /// In cluster mode, those of other nodes are keys with [`REMOTE_BIT`] set.
    pub connections: Vec<ConnectionId>,
}

/// Sizes of a room, each O(1) to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomCounts {
    /// Connections that have joined the room.
    pub connections: usize,
    /// Members of its presence set (one per connection).
    pub members: usize,
    /// Distinct clientIds in its presence set.
    pub clients: usize,
    /// Members (of `members`) whose connection is lost and in grace.
    pub in_grace: usize,
}

/// A refused request: the code and the message sent back.
struct Refusal(ErrorCode, String);

type OpResult = Result<(), Refusal>;

/// The presence engine. See the crate docs.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    verifier: Verifier,
    patterns: PatternCache,
    grants: GrantCache,
    default_grants: Arc<RoomGrants>,
    permission_cache: PermissionCache,
    provides_cache: ProvidesCache,
    default_permissions: Arc<Permissions>,
    /// The empty set, for connections that have not authenticated.
    no_permissions: Arc<Permissions>,
    connections: HashMap<ConnectionId, Connection>,
    rooms: HashMap<String, Room>,
    realms: HashMap<String, realm::Realm>,
    providers: realm::ProviderIndex,
    /// Token expiries and auth time-outs.
    deadlines: BTreeSet<(Millis, ConnectionId)>,
    /// Idle checks (see liveness.rs).
    idle: BTreeSet<(Millis, ConnectionId)>,
    /// Ends of grace (see grace.rs).
    grace: BTreeSet<(Millis, ConnectionId)>,
    /// Resume token -> the connection it resumes (see resume.rs).
    resume_tokens: HashMap<Arc<str>, ConnectionId>,
    /// Resume tokens minted so far (each one's HMAC input is unique).
    minted: u64,
    /// Carried by every presence event and snapshot beside the room's seq
    /// (in cluster mode, a room's own epoch from the store, once known).
    epoch: u64,
    /// Keys handed to other nodes' members so far (cluster mode).
    remote_keys: u64,
    /// `resume`s waiting for a claim on another node (cluster mode).
    pending_resumes: HashMap<ConnectionId, cluster_resume::PendingResume>,
    /// Realms' order in the store and other nodes' providers (cluster mode).
    objects_sync: cluster_objects::ObjectsSync,
    outputs: output::OutputQueue,
    /// Bytes charged against `limits.max_stored_bytes` (see `budget`).
    stored_bytes: usize,
    /// Distinct glob patterns among live connections' claims -> how many
    /// connections hold each (each is charged once, see `budget`).
    claim_globs: HashMap<Box<str>, usize>,
    /// Open presence windows by flush time (see coalesce.rs).
    flushes: BTreeSet<(Millis, String)>,
    /// `presence.rooms`, compiled: the first match gives a room's interval.
    room_flushes: Vec<(Arc<crate::pattern::Pattern>, u64)>,
    /// Whether any room may coalesce (some interval is not 0).
    coalescing: bool,
    /// Records touched since the host last took them (see persist.rs);
    /// `None` until the host turns tracking on.
    changes: Option<persist::Dirty>,
}

impl Engine {
    /// Builds an engine; fails if a key or a default grant cannot be used.
    pub fn new(config: Config) -> Result<Engine, Error> {
        let limits = &config.limits;
        for (name, value) in [
            ("maxFrameBytes", limits.max_frame_bytes),
            ("maxJsonDepth", limits.max_json_depth),
            ("maxNameBytes", limits.max_name_bytes),
            ("patternCacheSize", limits.pattern_cache_size),
            ("rate.burst", limits.rate.burst as usize),
            ("violations.burst", limits.violations.burst as usize),
            ("maxTokenBytes", config.auth.max_token_bytes),
            ("maxStoredBytes", limits.max_stored_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::Limit(name).into());
            }
        }
        // Deadlines are now + these; a time near MAX_TIME would be clamped.
        for (name, value) in [("leewayMs", config.auth.leeway_ms), ("authTimeoutMs", config.auth.auth_timeout_ms)] {
            if value > MAX_TIME / 2 {
                return Err(ConfigError::Time(name).into());
            }
        }
        let verifier = Verifier::new(&config.auth)?;
        let mut patterns = PatternCache::new(limits.max_name_bytes, limits.pattern_cache_size)
            .with_max_wildcards(limits.max_pattern_wildcards);
        let mut grants = GrantCache::new(limits.pattern_cache_size);
        let default_grants =
            grants::compile(&config.default_room_grants, &mut grants, &mut patterns).map_err(ConfigError::Pattern)?;
        let cache_size = limits.pattern_cache_size;
        let mut permission_cache = PermissionCache::new(cache_size);
        let default_permissions =
            permissions::compile_permissions(&config.default_permissions, &mut permission_cache, &mut patterns)
                .map_err(ConfigError::Permissions)?;
        let no_permissions =
            permissions::compile_permissions(&Default::default(), &mut permission_cache, &mut patterns)
                .map_err(ConfigError::Permissions)?;
        if let Some(cluster) = &config.cluster {
            let node = &cluster.node;
            let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
            if node.is_empty() || node.len() > 64 || !node.bytes().all(ok) {
                return Err(ConfigError::ClusterNode(node.clone()).into());
            }
            let presence = &config.presence;
            if presence.flush_interval_ms > 0 || presence.rooms.iter().any(|r| r.flush_interval_ms > 0) {
                return Err(ConfigError::ClusterCoalescing.into());
            }
        }
        let epoch = config.epoch;
        let mut engine = Engine {
            config,
            verifier,
            patterns,
            grants,
            default_grants,
            permission_cache,
            provides_cache: ProvidesCache::new(cache_size),
            default_permissions,
            no_permissions,
            connections: HashMap::new(),
            rooms: HashMap::new(),
            realms: HashMap::new(),
            providers: realm::ProviderIndex::default(),
            deadlines: BTreeSet::new(),
            idle: BTreeSet::new(),
            grace: BTreeSet::new(),
            resume_tokens: HashMap::new(),
            minted: 0,
            epoch,
            remote_keys: 0,
            pending_resumes: HashMap::new(),
            objects_sync: cluster_objects::ObjectsSync::default(),
            outputs: output::OutputQueue::default(),
            stored_bytes: 0,
            claim_globs: HashMap::new(),
            flushes: BTreeSet::new(),
            room_flushes: Vec::new(),
            coalescing: false,
            changes: None,
        };
        engine.compile_room_flushes()?;
        Ok(engine)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- inputs -------------------------------------------------------

    /// A socket opened. With a token or an asserted identity, the engine
    /// checks it and either welcomes the connection or closes it with 4001
    /// (an [`Output::Close`] and a [`HostEvent::AuthRefused`]); when the
    /// memory budget (`limits.max_stored_bytes`) cannot take one more
    /// connection, it closes it with 4013. The only `Err` is a connection
    /// id that is already live, returned before anything changes.
    pub fn handle_open(&mut self, conn: ConnectionId, credentials: Credentials, now: Millis) -> Result<(), Error> {
        if self.connections.contains_key(&conn) {
            return Err(Error::DuplicateConnection(conn.0));
        }
        if self.config.cluster.is_some() && is_remote(conn) {
            return Err(Error::ReservedConnection(conn.0));
        }
        self.dirty_conn(conn);
        let identity = match credentials {
            Credentials::Identity(identity) => Some(self.check_identity(identity)),
            Credentials::Invalid(why) => Some(Err(AuthError::BadIdentity(why))),
            Credentials::Token(token) => Some(self.verify(&token, now)),
            Credentials::None => None,
        };
        let presence_id: Arc<str> = match self.cluster_node() {
            Some(node) => format!("{}:{node}:{}", self.config.app_id, conn.0).into(),
            None => format!("{}:{}", self.config.app_id, conn.0).into(),
        };
        let none = Arc::clone(&self.no_permissions);
        self.connections.insert(conn, Connection::new(presence_id, none, &self.config.limits, now));
        let claims = match &identity {
            Some(Ok((identity, _))) => budget::identity_bytes(identity) + self.new_claim_globs_bytes(identity),
            _ => 0,
        };
        if !matches!(identity, Some(Err(_))) {
            if let Err(Refusal(_, why)) = self.budget_allows(budget::CONNECTION_BYTES + claims, 0) {
                self.close(conn, CloseCode::EngineFull, format!("{}: {why}", CloseCode::EngineFull.as_str()), now);
                return Ok(());
            }
        }
        self.schedule_idle_check(conn, now);
        match identity {
            None => self.set_deadline(conn, Some(time::deadline(now, self.config.auth.auth_timeout_ms))),
            Some(Ok((identity, rights))) => self.become_ready(conn, identity, rights, now),
            Some(Err(error)) => self.refuse(conn, error, now),
        }
        self.recharge(conn);
        Ok(())
    }

    /// A frame arrived (text or binary; it must be UTF-8 JSON). Frames for
    /// unknown connections (e.g. one the engine just closed) are ignored.
    pub fn handle_frame(&mut self, conn: ConnectionId, bytes: &[u8], now: Millis) {
        // Unknown, or lost: its socket is gone as far as the engine knows.
        if !self.connections.get(&conn).is_some_and(|c| c.grace_until.is_none()) {
            return;
        }
        self.dirty_conn(conn);
        let limits = &self.config.limits;
        let Some(c) = self.connections.get_mut(&conn) else { return };
        c.last_seen = c.last_seen.max(now);
        // Where rooms coalesce, a member's presence updates there do not
        // spend the rate budget (coalesce.rs): the frame is read first.
        let parsed = self.coalescing.then(|| request::parse(bytes, limits));
        let free = matches!(&parsed, Some(Ok(f)) if self.coalescible(conn, &f.request));
        let limits = &self.config.limits;
        let Some(c) = self.connections.get_mut(&conn) else { return };
        if !free && !c.rate.try_take(limits.rate, now) {
            let message = format!("more than {} frames per second", limits.rate.per_second);
            return self.reject(conn, None, ErrorCode::RateLimited, &message, now);
        }
        let frame = match parsed.unwrap_or_else(|| request::parse(bytes, limits)) {
            Ok(frame) => frame,
            Err(r) => return self.reject(conn, r.reference, r.code, &r.message, now),
        };
        let pending = matches!(c.auth, AuthState::Pending);
        if pending && !frame.request.allowed_before_auth() {
            let message = "send `auth` with a token first";
            return self.reject(conn, frame.reference, ErrorCode::NotAuthenticated, message, now);
        }
        let r = frame.reference;
        let result = match frame.request {
            Request::Auth { token } if pending => {
                self.authenticate(conn, r, &token, now);
                Ok(())
            }
            Request::Auth { token } => self.refresh(conn, r, &token, now),
            Request::Ping => {
                self.ack(conn, r, "ping", AckBody::default());
                Ok(())
            }
            Request::Resume { token, epoch, since } => self.resume(conn, r, &token, epoch, since, now),
            Request::RoomJoin { room } => self.room_join(conn, r, room),
            Request::RoomLeave { room } => {
                if self.joined(conn, &room).is_ok() {
                    self.leave_room(conn, &room, now);
                }
                self.ack(conn, r, "room.leave", AckBody::default());
                Ok(())
            }
            Request::PresenceJoin { room, data } => self.presence_set(conn, r, "presence.join", &room, data, now),
            Request::PresenceUpdate { room, data } => self.presence_set(conn, r, "presence.update", &room, data, now),
            Request::PresenceLeave { room } => self.joined(conn, &room).map(|_| {
                self.ack(conn, r, "presence.leave", AckBody::default());
                self.remove_presence(conn, &room, now);
            }),
            Request::PresenceGet { room, view } => self.presence_get(conn, r, &room, view),
            Request::PresenceSubscribe { room, events, view } => self.presence_subscribe(conn, r, &room, events, view),
            Request::PresenceUnsubscribe { room } => self.unsubscribe(conn, r, "presence.unsubscribe", &room, None),
            Request::Subscribe { room, event } => self.subscribe(conn, r, &room, event),
            Request::Unsubscribe { room, event } => self.unsubscribe(conn, r, "unsubscribe", &room, Some(&event)),
            Request::Publish { room, event, data } => self.publish_from(conn, r, &room, &event, data, now),
            Request::ObjectCreate { realm, id, data } => self.object_create(conn, r, &realm, id, data, now),
            Request::ObjectUpdate { realm, id, data } => self.object_update(conn, r, &realm, id, data, now),
            Request::ObjectDelete { realm, id } => self.object_delete(conn, r, &realm, id, now),
            Request::ObjectGet { realm, id } => self.object_get(conn, r, &realm, &id),
            Request::ObjectList { realm, pattern } => self.object_list(conn, r, &realm, pattern.as_deref()),
            Request::ObjectSubscribe { realm, pattern } => self.realm_subscribe(conn, r, &realm, None, pattern),
            Request::ObjectUnsubscribe { realm, pattern } => self.realm_unsubscribe(conn, r, &realm, None, pattern),
            Request::RealmSubscribe { realm, event, pattern } => {
                self.realm_subscribe(conn, r, &realm, Some(event), pattern)
            }
            Request::RealmUnsubscribe { realm, event, pattern } => {
                self.realm_unsubscribe(conn, r, &realm, Some(event), pattern)
            }
            Request::RealmPublish { realm, event, id, data } => {
                self.realm_publish(conn, r, &realm, &event, id.as_deref(), data, now)
            }
        };
        if let Err(Refusal(code, message)) = result {
            self.reject(conn, r, code, &message, now);
        }
        self.recharge(conn);
    }

    /// The socket closed cleanly (the client meant to go). Leaves every
    /// presence set it was in (broadcasting `leave`). Unknown connections are
    /// ignored, so calling it after the engine itself closed a connection is
    /// harmless; so are connections already lost (in grace): their grace
    /// runs on. For a socket that dropped, use [`Engine::handle_lost`].
    pub fn handle_close(&mut self, conn: ConnectionId, now: Millis) {
        self.dirty_conn(conn);
        if self.connections.get(&conn).is_some_and(|c| c.grace_until.is_some()) {
            return;
        }
        self.remove_connection(conn, now);
    }

    /// Time passed: closes connections whose token expired, that never
    /// authenticated or that went silent, ends graces, and flushes the
    /// presence windows due (`presence.flushIntervalMs`). Call it at (or
    /// after) [`Engine::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Millis) {
        loop {
            let first = |set: &BTreeSet<(Millis, ConnectionId)>| set.first().copied().filter(|(at, _)| *at <= now);
            let (deadline, idle, grace) = (first(&self.deadlines), first(&self.idle), first(&self.grace));
            // Earliest first; at the same time a grace ends first, then a
            // token or auth deadline (a close, no grace), then an idle check.
            let next = [grace.map(|d| (d, 0)), deadline.map(|d| (d, 1)), idle.map(|d| (d, 2))]
                .into_iter()
                .flatten()
                .min_by_key(|((at, conn), which)| (*at, *which, *conn));
            if let Some(((_, conn), _)) = next {
                self.dirty_conn(conn);
            }
            match next {
                None => break,
                Some(((at, conn), 0)) => self.end_grace(at, conn, now),
                Some(((at, conn), 1)) => self.deadline_passed(at, conn, now),
                Some(((at, conn), _)) => self.idle_check(at, conn, now),
            }
        }
        // Last, so that a window flushes with every change due by `now`.
        self.flush_due(now);
    }

    fn deadline_passed(&mut self, at: Millis, conn: ConnectionId, now: Millis) {
        {
            self.deadlines.remove(&(at, conn));
            let Some(c) = self.connections.get_mut(&conn) else { return };
            c.deadline = None;
            let code = match c.auth {
                AuthState::Pending => CloseCode::AuthTimeout,
                AuthState::Ready { .. } => CloseCode::TokenExpired,
            };
            self.close(conn, code, code.as_str().to_string(), now);
        }
    }

    // ---- outputs ------------------------------------------------------

    /// The next instruction, in order. Drain after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Every pending instruction, in order.
    pub fn drain_outputs(&mut self) -> impl Iterator<Item = Output> + '_ {
        self.outputs.drain()
    }

    /// When the engine next needs [`Engine::handle_timeout`], if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        let connections = [&self.deadlines, &self.idle, &self.grace].into_iter().filter_map(|s| s.first().map(|e| e.0));
        connections.chain(self.next_flush()).min()
    }

    // ---- host queries and actions -------------------------------------

    /// Live connections (authenticated or not).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Ids of the live connections, sorted.
    pub fn connection_ids(&self) -> Vec<ConnectionId> {
        let mut ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        ids.sort();
        ids
    }

    /// The verified identity a connection authenticated with (its claims),
    /// or `None` if it is unknown or has not authenticated yet. Hosts keep
    /// it beside the socket (a Durable Object's socket attachment).
    pub fn identity(&self, conn: ConnectionId) -> Option<&Identity> {
        self.connections.get(&conn)?.identity.as_ref()
    }

    // ---- authentication -----------------------------------------------

    fn verify(&mut self, token: &str, now: Millis) -> Result<(Identity, Rights), AuthError> {
        let identity = self.verifier.verify(token, now)?;
        let rights = self.rights_for(&identity).map_err(AuthError::BadClaims)?;
        Ok((identity, rights))
    }

    /// A host-asserted identity, held to what a token's claims are held to.
    fn check_identity(&mut self, identity: Identity) -> Result<(Identity, Rights), AuthError> {
        if identity.expires_at.is_some_and(|at| at > MAX_TIME) {
            return Err(AuthError::BadIdentity(format!("expiresAt is past {MAX_TIME} (2^53 - 1 ms)")));
        }
        let rights = self.rights_for(&identity).map_err(AuthError::BadIdentity)?;
        Ok((identity, rights))
    }

    /// Compiles (or finds, shared) what an identity's claims allow. Claims
    /// with more than `limits.max_claim_patterns` patterns are refused
    /// before any is compiled.
    fn rights_for(&mut self, identity: &Identity) -> Result<Rights, String> {
        if let Some(id) = &identity.client_id {
            request::check_name(id, "clientId", self.config.limits.max_name_bytes)?;
        }
        let count = identity.pattern_count();
        let max = self.config.limits.max_claim_patterns;
        if count > max {
            return Err(format!("the claims hold {count} patterns, over the limit of {max}"));
        }
        let grants = match &identity.rooms {
            None => Arc::clone(&self.default_grants),
            Some(claim) => grants::compile(claim, &mut self.grants, &mut self.patterns).map_err(|e| e.to_string())?,
        };
        let permissions = match &identity.per {
            None => Arc::clone(&self.default_permissions),
            Some(claim) => permissions::compile_permissions(claim, &mut self.permission_cache, &mut self.patterns)?,
        };
        let provides = match &identity.dpv {
            Some(claim) if !claim.is_empty() => {
                Some(permissions::compile_provides(claim, &mut self.provides_cache, &mut self.patterns)?)
            }
            _ => None,
        };
        Ok(Rights { grants, permissions, provides })
    }

    /// The first `auth` frame: a welcome, then the ack its `ref` waits for.
    fn authenticate(&mut self, conn: ConnectionId, r: Option<&RawValue>, token: &str, now: Millis) {
        match self.verify(token, now) {
            Ok((identity, _))
                if self
                    .budget_allows(budget::identity_bytes(&identity) + self.new_claim_globs_bytes(&identity), 0)
                    .is_err() =>
            {
                let reason = format!("{}: no room for the claims", CloseCode::EngineFull.as_str());
                self.close(conn, CloseCode::EngineFull, reason, now);
            }
            Ok((identity, rights)) => {
                let (client_id, expires_at) = (identity.client_id.clone(), identity.expires_at);
                self.become_ready(conn, identity, rights, now);
                let body = AckBody { client_id: client_id.as_deref(), expires_at, ..AckBody::default() };
                self.ack(conn, r, "auth", body);
            }
            Err(error) => self.refuse(conn, error, now),
        }
    }

    /// Welcomes a connection; a data provider turns its objects `connected`.
    fn become_ready(&mut self, conn: ConnectionId, identity: Identity, rights: Rights, now: Millis) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        c.client_id = identity.client_id.clone().map(Arc::from);
        c.auth = AuthState::Ready { grants: rights.grants };
        c.permissions = rights.permissions;
        self.set_identity(conn, identity.clone());
        let token = self.mint_resume_token(conn);
        let Some(c) = self.connections.get_mut(&conn) else { return };
        let payload =
            reply::welcome(&c.presence_id, c.client_id.as_deref(), identity.expires_at, self.epoch, token.as_deref());
        let expires_at = identity.expires_at;
        let client_id = c.client_id.as_ref().map(|s| s.to_string());
        self.set_deadline(conn, expires_at);
        self.send(vec![conn], payload);
        self.event(HostEvent::Authenticated { connection: conn, client_id });
        self.set_provides(conn, rights.provides, now);
    }

    fn refuse(&mut self, conn: ConnectionId, error: AuthError, now: Millis) {
        let reason = error.as_str().to_string();
        self.event(HostEvent::AuthRefused { connection: conn, error });
        self.close(conn, CloseCode::AuthFailed, reason, now);
    }

    /// `auth` on an authenticated connection: a refreshed token for the same
    /// subject. New grants apply at once (rooms no longer allowed are left).
    fn refresh(&mut self, conn: ConnectionId, r: Option<&RawValue>, token: &str, now: Millis) -> OpResult {
        let (identity, rights) =
            self.verify(token, now).map_err(|e| Refusal(ErrorCode::TokenInvalid, format!("token refused: {e}")))?;
        let grants = rights.grants;
        let c = self.conn(conn)?;
        if identity.client_id.as_deref() != c.client_id.as_deref() {
            return Err(Refusal(ErrorCode::SubjectMismatch, "a refreshed token must have the same `sub`".into()));
        }
        // What it holds now and gives back: its claims' bytes, and the claim
        // globs only it held that the new token does not name.
        let old_claims = c.claims_bytes + self.released_claim_globs_bytes(conn, &identity);
        self.budget_allows(budget::identity_bytes(&identity) + self.new_claim_globs_bytes(&identity), old_claims)?;
        let c = self.conn(conn)?;
        c.auth = AuthState::Ready { grants: Arc::clone(&grants) };
        c.permissions = rights.permissions;
        self.set_identity(conn, identity.clone());
        self.set_deadline(conn, identity.expires_at);
        let body =
            AckBody { client_id: identity.client_id.as_deref(), expires_at: identity.expires_at, ..AckBody::default() };
        self.ack(conn, r, "auth", body);
        let client_id = identity.client_id.clone();
        self.event(HostEvent::TokenRefreshed { connection: conn, client_id, expires_at: identity.expires_at });
        self.apply_room_grants(conn, &grants, now);
        self.set_provides(conn, rights.provides, now);
        Ok(())
    }

    /// Leaves the rooms `grants` no longer allow, and the presence sets
    /// they no longer allow, and keeps the actions of the others.
    fn apply_room_grants(&mut self, conn: ConnectionId, grants: &RoomGrants, now: Millis) {
        let Some(c) = self.connections.get(&conn) else { return };
        let updates: Vec<(String, crate::auth::Actions)> =
            c.rooms.keys().map(|room| (room.clone(), grants.actions_for(room))).collect();
        for (room, actions) in updates {
            if !actions.allows(RoomAction::Subscribe) {
                self.leave_room(conn, &room, now);
                continue;
            }
            if !actions.allows(RoomAction::Presence) {
                self.remove_presence(conn, &room, now);
            }
            if let Some(j) = self.connections.get_mut(&conn).and_then(|c| c.rooms.get_mut(&room)) {
                j.actions = actions;
            }
        }
    }

    // ---- helpers ------------------------------------------------------

    fn conn(&mut self, conn: ConnectionId) -> Result<&mut Connection, Refusal> {
        // Callers are reached only from handle_frame, which found the connection.
        self.connections.get_mut(&conn).ok_or_else(unknown_connection)
    }

    fn joined(&self, conn: ConnectionId, room: &str) -> Result<JoinedRoom, Refusal> {
        self.connections.get(&conn).and_then(|c| c.rooms.get(room).copied()).ok_or_else(not_joined)
    }

    fn set_deadline(&mut self, conn: ConnectionId, at: Option<Millis>) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        if let Some(old) = c.deadline.take() {
            self.deadlines.remove(&(old, conn));
        }
        if let Some(at) = at {
            c.deadline = Some(at);
            self.deadlines.insert((at, conn));
        }
    }

    fn send(&mut self, to: Vec<ConnectionId>, payload: String) {
        if !to.is_empty() {
            self.outputs.push_back(Output::Send(Transmit { to, payload: payload.into() }));
        }
    }

    fn ack(&mut self, conn: ConnectionId, r: Option<&RawValue>, op: &str, body: AckBody<'_>) {
        let payload = reply::ack(r, op, body);
        self.send(vec![conn], payload);
    }

    fn event(&mut self, event: HostEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Sends an error frame; violations spend the connection's budget, and
    /// one that runs out is closed with 4008.
    fn reject(&mut self, conn: ConnectionId, r: Option<&RawValue>, code: ErrorCode, message: &str, now: Millis) {
        self.send(vec![conn], reply::error(r, code, message));
        if !code.is_violation() {
            return;
        }
        let limit = self.config.limits.violations;
        let exhausted = self.connections.get_mut(&conn).is_some_and(|c| !c.violations.try_take(limit, now));
        if exhausted {
            let reason = format!("{}: too many bad frames, last {code}", CloseCode::PolicyViolation.as_str());
            self.close(conn, CloseCode::PolicyViolation, reason, now);
        }
    }

    fn close(&mut self, conn: ConnectionId, code: CloseCode, reason: String, now: Millis) {
        // A lost connection (its token expired in grace) has no socket to
        // close: it only goes. Nothing is ever addressed to a lost one.
        if !self.connections.get(&conn).is_some_and(|c| c.grace_until.is_some()) {
            let reason = truncate_reason(reason);
            self.outputs.push_back(Output::Close(Close { connection: conn, code, reason }));
        }
        self.remove_connection(conn, now);
    }

    fn remove_connection(&mut self, conn: ConnectionId, now: Millis) {
        let Some(c) = self.connections.get(&conn) else { return };
        let rooms: Vec<String> = c.rooms.keys().cloned().collect();
        for room in rooms {
            self.leave_room(conn, &room, now);
        }
        self.drop_all_realm_subs(conn);
        self.set_provides(conn, None, now);
        self.forget(conn);
        self.event(HostEvent::Closed { connection: conn });
    }
}

impl Engine {
    /// Drops a connection with its deadlines and resume token, once its
    /// rooms, subscriptions and provider role are gone or handed over.
    fn forget(&mut self, conn: ConnectionId) {
        self.set_deadline(conn, None);
        self.pending_resumes.remove(&conn);
        let Some(c) = self.connections.remove(&conn) else { return };
        self.outputs.set_lost(conn, false);
        self.charge(0, c.charged);
        if let Some(identity) = &c.identity {
            self.release_claims(identity);
        }
        if let Some(at) = c.idle_check {
            self.idle.remove(&(at, conn));
        }
        if let Some(at) = c.grace_until {
            self.grace.remove(&(at, conn));
        }
        if let Some(token) = c.resume_token {
            self.resume_tokens.remove(&token);
        }
    }
}

/// WebSocket close reasons are at most 123 bytes of UTF-8.
fn truncate_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut cut = MAX - 3;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
}

fn unknown_connection() -> Refusal {
    Refusal(ErrorCode::BadRequest, "unknown connection".into())
}
