//! The engine's configuration: keys and claims checks, default room grants,
//! and limits. Every field has a documented default; deserialises from
//! camelCase JSON (the npm package passes its options through as they are).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::auth::permissions::PermissionClaim;
use crate::auth::RoomAction;
use crate::rate::RateLimit;

pub use jsonwebtoken::Algorithm;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    /// Prefix of presence ids (`"<appId>:<connectionId>"`). Default `"rollcall"`.
    pub app_id: String,
    /// Token verification. Default: no keys (only host-asserted identities).
    pub auth: AuthConfig,
    /// Room grants for tokens and identities that carry no `rooms` claim.
    /// Default: every action on every room (`{"**": ["subscribe","publish","presence"]}`).
    pub default_room_grants: BTreeMap<String, Vec<RoomAction>>,
    /// Object permissions for tokens and identities that carry no `per`
    /// claim. Default: none (`{}`): such connections read no object.
    pub default_permissions: PermissionClaim,
    pub limits: Limits,
    /// How long a connection lost abnormally (the host's `handle_lost`, or
    /// silent for `idle_timeout_ms`) keeps its presence memberships, rooms,
    /// subscriptions and provider role, in ms, with nothing sent to others;
    /// at its end they get one `leave`. 0: a lost connection leaves at once.
    /// Default 15 000.
    pub leave_grace_ms: u64,
    /// A connection that shows no sign of life (no frame, no
    /// [`Engine::handle_alive`](crate::Engine::handle_alive)) for this long
    /// is lost (closed with 4010, then in grace). Hosts ping well within it
    /// (rollcall/node every third of it). 0: never. Default 30 000, so that
    /// a silent peer is gone (its `leave` sent) within 45 s.
    pub idle_timeout_ms: u64,
    /// The key resume tokens are HMAC-SHA256'd under (any text; 32 random
    /// bytes or more). `None`: no resume tokens (grace still applies). The
    /// npm `Engine` fills in 32 random bytes when it is not given. Default `None`.
    pub resume_secret: Option<String>,
    /// This engine's epoch: presence events carry it beside their per-room
    /// `seq`, so that a client can tell another engine's numbers apart. A
    /// restored engine keeps its snapshot's. The npm `Engine` defaults it to
    /// the time of construction. Default 0.
    pub epoch: u64,
    /// Presence events kept per room for a resumed connection to catch up
    /// (beyond them it gets a `resync` snapshot). Default 64.
    pub replay_events: usize,
    /// Coalesced delivery of presence events (see `engine/coalesce.rs`).
    /// Default: off (every event is sent at once, one frame each).
    pub presence: PresenceConfig,
    /// Cluster mode: this engine is one node of several sharing each room's
    /// presence set, objects and providers through a store (see `engine/cluster.rs`, `engine/cluster_objects.rs` and
    /// `rollcall/redis`). `None`: one engine alone. Default `None`.
    pub cluster: Option<ClusterConfig>,
}

/// Coalesced presence delivery: a room with a non-zero flush interval
/// holds its presence events for up to that long, collapses a member's
/// successive updates to its latest data, and sends each subscriber one
/// frame per flush. 0 (the default) sends every event at once, as one
/// `presence` frame.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// The flush interval of rooms no entry of `rooms` names, in ms. At most
    /// 2^52. Default 0 (no coalescing).
    pub flush_interval_ms: u64,
    /// Per-room intervals: the first entry whose room pattern matches a
    /// room's name gives its interval (fixed when the room is created).
    /// Default none.
    pub rooms: Vec<RoomFlush>,
}

/// A flush interval for the rooms a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomFlush {
    /// A room pattern (`*`, `**`, `?`; see docs/PROTOCOL.md).
    pub pattern: String,
    /// Its flush interval, in ms (0: no coalescing there).
    pub flush_interval_ms: u64,
}

/// Cluster mode's options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster: 1 to 64 bytes of
    /// `[A-Za-z0-9_.-]`. Member ids become `appId:node:connection`.
    pub node: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            app_id: "rollcall".into(),
            auth: AuthConfig::default(),
            default_room_grants: BTreeMap::from([(
                "**".to_string(),
                vec![RoomAction::Subscribe, RoomAction::Publish, RoomAction::Presence],
            )]),
            default_permissions: PermissionClaim::new(),
            limits: Limits::default(),
            leave_grace_ms: 15_000,
            idle_timeout_ms: 30_000,
            resume_secret: None,
            epoch: 0,
            replay_events: 64,
            presence: PresenceConfig::default(),
            cluster: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Verification keys. A token's `alg` must equal its key's `algorithm`;
    /// with a `kid` in the token header only the key with that kid is tried.
    pub keys: Vec<JwtKey>,
    /// Clock-skew allowance for `exp` and `nbf`, in ms. Default 30 000.
    pub leeway_ms: u64,
    /// Refuse tokens without `exp`. Default true.
    pub require_exp: bool,
    /// Accepted issuers (`iss`); empty accepts any. Default empty.
    pub issuers: Vec<String>,
    /// Accepted audiences (`aud`); empty skips the check. Default empty.
    pub audiences: Vec<String>,
    /// How long a connection opened without credentials may take to send
    /// `auth`, in ms. Default 10 000.
    pub auth_timeout_ms: u64,
    /// Longest token accepted (at open or in `auth`), in bytes; a longer one
    /// is refused with `TOKEN_TOO_LARGE` before it is decoded. With
    /// `limits.max_claim_patterns` it bounds the cost of verifying a token.
    /// Default 8 192.
    pub max_token_bytes: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            keys: Vec::new(),
            leeway_ms: 30_000,
            require_exp: true,
            issuers: Vec::new(),
            audiences: Vec::new(),
            auth_timeout_ms: 10_000,
            max_token_bytes: 8 * 1024,
        }
    }
}

/// One verification key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtKey {
    /// Matched against the token header's `kid`. Optional.
    #[serde(default)]
    pub kid: Option<String>,
    /// The only algorithm this key accepts.
    pub algorithm: Algorithm,
    /// HMAC secret (HS256/384/512), as UTF-8 text.
    #[serde(default)]
    pub secret: Option<String>,
    /// HMAC secret as raw bytes, for a secret that is not UTF-8 text (the JS
    /// package sends a `Uint8Array` secret here). Exclusive with `secret`.
    #[serde(default)]
    pub secret_bytes: Option<Vec<u8>>,
    /// Public key in PEM (RS*, PS*, ES*, EdDSA).
    #[serde(default)]
    pub pem: Option<String>,
}

impl JwtKey {
    /// An HMAC key (`algorithm` one of HS256/384/512) with a UTF-8 `secret`.
    pub fn hmac(algorithm: Algorithm, secret: impl Into<String>) -> JwtKey {
        JwtKey { kid: None, algorithm, secret: Some(secret.into()), secret_bytes: None, pem: None }
    }
}

/// Limits on what one client may do. Every one is enforced with an error
/// frame (see [`crate::ErrorCode`]); repeated violations close the connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Limits {
    /// Largest frame accepted, in bytes. Default 65 536.
    pub max_frame_bytes: usize,
    /// Deepest nesting of arrays and objects in a frame. Default 32.
    pub max_json_depth: usize,
    /// Longest room or event name, in bytes. Default 256.
    pub max_name_bytes: usize,
    /// Rooms one connection may have joined at once. Default 100.
    pub max_rooms_per_connection: usize,
    /// Subscriptions (presence and event) one connection may hold. Default 500.
    pub max_subscriptions_per_connection: usize,
    /// Members of one room's presence set. Default 10 000.
    pub max_members_per_room: usize,
    /// Size of one member's presence data (JSON text), in bytes. Default 4 096.
    pub max_presence_data_bytes: usize,
    /// Frames a connection may send: burst 100, then 50 per second.
    pub rate: RateLimit,
    /// Violations a connection may commit before it is closed with 4008:
    /// burst 20, forgiven 1 per second. Which errors count:
    /// [`ErrorCode::is_violation`](crate::ErrorCode::is_violation).
    pub violations: RateLimit,
    /// Compiled patterns kept in the cache. Default 4 096.
    pub pattern_cache_size: usize,
    /// Wildcard characters (`*` and `?`; `**` counts two) in one id or room
    /// pattern, from a client's `pattern` field or from claims. `**` alone
    /// and literal patterns always pass. Bounds the cost of matching one
    /// glob against one id. Default 12.
    pub max_pattern_wildcards: usize,
    /// Realms the engine holds at once. Default 10 000.
    pub max_realms: usize,
    /// Objects in one realm. Default 1 000 000.
    pub max_objects_per_realm: usize,
    /// Size of one object's data (JSON text), in bytes. Default 16 384.
    pub max_object_data_bytes: usize,
    /// Patterns in one identity's claims, `rooms`, `per` and `dpv` together
    /// (from a token or asserted by the host). More are refused
    /// (`BAD_CLAIMS`, `BAD_IDENTITY`) before any is compiled, so that
    /// opening a connection has a bounded cost. Default 64.
    pub max_claim_patterns: usize,
    /// The whole engine's memory budget, in bytes: object ids and data,
    /// presence data, connections (a fixed overhead plus the size of their
    /// claims), joined rooms and subscriptions, each charged its size plus
    /// a fixed overhead (see docs/PROTOCOL.md, "Memory budget"). What would
    /// pass it is refused with `ENGINE_FULL` (a frame), or, for a new
    /// connection, closed with 4013. Default 67 108 864 (64 MiB): filled
    /// with the most adversarial shapes measured, the engine's wasm memory
    /// stayed at or under 66 MiB (docs/BENCHMARKS.md, "Memory budget"),
    /// far inside wasm32's 4 GiB; a Durable Object (128 MB in all) may
    /// lower it.
    pub max_stored_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 64 * 1024,
            max_json_depth: 32,
            max_name_bytes: 256,
            max_rooms_per_connection: 100,
            max_subscriptions_per_connection: 500,
            max_members_per_room: 10_000,
            max_presence_data_bytes: 4096,
            rate: RateLimit { burst: 100, per_second: 50 },
            violations: RateLimit { burst: 20, per_second: 1 },
            pattern_cache_size: 4096,
            max_pattern_wildcards: 12,
            max_realms: 10_000,
            max_objects_per_realm: 1_000_000,
            max_object_data_bytes: 16 * 1024,
            max_claim_patterns: 64,
            max_stored_bytes: 64 * 1024 * 1024,
        }
    }
}
