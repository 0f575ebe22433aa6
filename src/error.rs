//! Errors, in three kinds:
//!
//! - [`ErrorCode`]: what a *client* did wrong. Never an `Err` of the API: it
//!   goes back to that client as an error frame (see docs/PROTOCOL.md).
//! - [`CloseCode`]: why the engine closes a connection.
//! - [`Error`]: what the *host* did wrong (a bad configuration, a connection
//!   id used twice). These are the only `Err`s the engine returns.

use std::fmt;

use serde::Serialize;

use crate::pattern::PatternError;

/// Stable error codes sent to clients in `{"type":"error","code":...}` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a JSON object.
    BadFrame,
    /// The frame is larger than `limits.max_frame_bytes`.
    FrameTooLarge,
    /// The frame nests arrays/objects deeper than `limits.max_json_depth`.
    TooDeep,
    /// `op` names no operation of this protocol version.
    UnknownOp,
    /// A field is missing, has the wrong type, or an invalid value.
    BadRequest,
    /// The operation needs an authenticated connection (send `auth` first).
    NotAuthenticated,
    /// The token given to `auth` was refused; the connection keeps its old one.
    TokenInvalid,
    /// A refreshed token names another subject than the connection's.
    SubjectMismatch,
    /// The connection's grants do not allow this action on this room.
    Forbidden,
    /// The operation needs the room to be joined first (`room.join`).
    RoomNotJoined,
    /// Joining would pass `limits.max_rooms_per_connection`.
    TooManyRooms,
    /// Subscribing would pass `limits.max_subscriptions_per_connection`.
    TooManySubscriptions,
    /// The room's presence set holds `limits.max_members_per_room` members.
    RoomFull,
    /// Presence data is larger than `limits.max_presence_data_bytes`.
    PresenceDataTooLarge,
    /// Entering a presence set needs a clientId (a `sub` claim).
    NoClientId,
    /// The connection sends faster than `limits.rate`.
    RateLimited,
    /// `object.create` of an id that exists.
    ObjectExists,
    /// The object does not exist (or was deleted).
    ObjectNotFound,
    /// Object data is larger than `limits.max_object_data_bytes`.
    ObjectDataTooLarge,
    /// The realm holds `limits.max_objects_per_realm` objects.
    RealmFull,
    /// The engine holds `limits.max_realms` realms.
    TooManyRealms,
    /// A `pattern` has more wildcards than `limits.max_pattern_wildcards`.
    PatternTooComplex,
    /// `resume` with a token that names no connection this engine can hand
    /// over (unknown, already used, grace over, another clientId), or on a
    /// connection that already joined a room. Nothing changed.
    ResumeFailed,
    /// The engine's memory budget (`limits.max_stored_bytes`) cannot take
    /// what the request would store (an object, presence data, a joined
    /// room, a subscription, a refreshed token's claims). Nothing changed;
    /// it may pass later, when others leave or delete.
    EngineFull,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "BAD_FRAME",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::TooDeep => "TOO_DEEP",
            ErrorCode::UnknownOp => "UNKNOWN_OP",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::NotAuthenticated => "NOT_AUTHENTICATED",
            ErrorCode::TokenInvalid => "TOKEN_INVALID",
            ErrorCode::SubjectMismatch => "SUBJECT_MISMATCH",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RoomNotJoined => "ROOM_NOT_JOINED",
            ErrorCode::TooManyRooms => "TOO_MANY_ROOMS",
            ErrorCode::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            ErrorCode::RoomFull => "ROOM_FULL",
            ErrorCode::PresenceDataTooLarge => "PRESENCE_DATA_TOO_LARGE",
            ErrorCode::NoClientId => "NO_CLIENT_ID",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ObjectExists => "OBJECT_EXISTS",
            ErrorCode::ObjectNotFound => "OBJECT_NOT_FOUND",
            ErrorCode::ObjectDataTooLarge => "OBJECT_DATA_TOO_LARGE",
            ErrorCode::RealmFull => "REALM_FULL",
            ErrorCode::TooManyRealms => "TOO_MANY_REALMS",
            ErrorCode::PatternTooComplex => "PATTERN_TOO_COMPLEX",
            ErrorCode::ResumeFailed => "RESUME_FAILED",
            ErrorCode::EngineFull => "ENGINE_FULL",
        }
    }

    /// Whether the error counts against the connection's violation budget
    /// (`limits.violations`). Refusals a well-behaved client can meet, such
    /// as a full room or a refused token, do not.
    pub fn is_violation(self) -> bool {
        !matches!(
            self,
            ErrorCode::RoomFull
                | ErrorCode::TokenInvalid
                | ErrorCode::SubjectMismatch
                | ErrorCode::Forbidden
                | ErrorCode::RoomNotJoined
                | ErrorCode::ObjectExists
                | ErrorCode::ObjectNotFound
                | ErrorCode::RealmFull
                | ErrorCode::TooManyRealms
                | ErrorCode::ResumeFailed
                | ErrorCode::EngineFull
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Close codes the engine uses (the 4000-4999 range is the application's).
/// Serialises as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 4001: the token given at open (or to the first `auth`) was refused.
    AuthFailed,
    /// 4002: the connection's token expired and was not refreshed in time.
    TokenExpired,
    /// 4003: no `auth` frame arrived within `auth_timeout_ms` of opening.
    AuthTimeout,
    /// 4008: the connection kept sending bad or too many frames.
    PolicyViolation,
    /// 4010: no sign of life for `idle_timeout_ms`: the connection is lost
    /// (in grace, if any). The host should drop the socket at once.
    Stale,
    /// 4011: another connection resumed this one (with its resume token).
    Resumed,
    /// 4013: the engine's memory budget (`limits.max_stored_bytes`) cannot
    /// take one more connection (or a first `auth`'s claims). Try again later.
    EngineFull,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::AuthFailed => 4001,
            CloseCode::TokenExpired => 4002,
            CloseCode::AuthTimeout => 4003,
            CloseCode::PolicyViolation => 4008,
            CloseCode::Stale => 4010,
            CloseCode::Resumed => 4011,
            CloseCode::EngineFull => 4013,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CloseCode::AuthFailed => "AUTH_FAILED",
            CloseCode::TokenExpired => "TOKEN_EXPIRED",
            CloseCode::AuthTimeout => "AUTH_TIMEOUT",
            CloseCode::PolicyViolation => "POLICY_VIOLATION",
            CloseCode::Stale => "STALE",
            CloseCode::Resumed => "RESUMED",
            CloseCode::EngineFull => "ENGINE_FULL",
        }
    }
}

impl Serialize for CloseCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

/// What the host did wrong. Client mistakes never show up here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `handle_open` with an id that is already live.
    DuplicateConnection(u64),
    /// The configuration cannot be used.
    Config(ConfigError),
    /// A host call named a room or event that breaks the limits.
    InvalidName(String),
    /// Data handed to a host call is not valid JSON.
    InvalidJson(String),
    /// A snapshot could not be restored.
    Snapshot(crate::engine::snapshot::SnapshotError),
    /// `handle_open` in cluster mode with an id that has the top bit set
    /// (those key other nodes' members).
    ReservedConnection(u64),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DuplicateConnection(id) => write!(f, "connection {id} is already open"),
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::InvalidName(why) => write!(f, "invalid name: {why}"),
            Error::InvalidJson(why) => write!(f, "invalid JSON: {why}"),
            Error::Snapshot(e) => write!(f, "{e}"),
            Error::ReservedConnection(id) => {
                write!(f, "connection id {id} has the top bit set, reserved in cluster mode")
            }
        }
    }
}

impl Error {
    /// A stable UPPER_SNAKE name: `DUPLICATE_CONNECTION`, `BAD_OPTIONS`,
    /// `BAD_ARGUMENT` (a name or JSON handed to a host call) or
    /// `BAD_SNAPSHOT`. The wasm surface starts its thrown messages with it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::DuplicateConnection(_) => "DUPLICATE_CONNECTION",
            Error::Config(_) => "BAD_OPTIONS",
            Error::InvalidName(_) | Error::InvalidJson(_) | Error::ReservedConnection(_) => "BAD_ARGUMENT",
            Error::Snapshot(_) => "BAD_SNAPSHOT",
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key could not be read (bad PEM, empty secret, ...).
    Key { kid: Option<String>, why: String },
    /// A default grant's pattern is invalid.
    Pattern(PatternError),
    /// A limit is zero where zero makes no sense.
    Limit(&'static str),
    /// A time option is so large that deadlines would pass
    /// [`MAX_TIME`](crate::time::MAX_TIME).
    Time(&'static str),
    /// The default object permissions are invalid.
    Permissions(String),
    /// `cluster.node` is empty, too long or holds other than `[A-Za-z0-9_.-]`.
    ClusterNode(String),
    /// Coalesced presence delivery (`presence.flushIntervalMs`) was asked
    /// for in cluster mode, which orders every change through the store.
    ClusterCoalescing,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Key { kid, why } => write!(f, "key {kid:?}: {why}"),
            ConfigError::Pattern(e) => write!(f, "{e}"),
            ConfigError::Limit(name) => write!(f, "limit {name} must be greater than zero"),
            ConfigError::Time(name) => write!(f, "{name} must be at most 2^52 ms"),
            ConfigError::Permissions(why) => write!(f, "defaultPermissions: {why}"),
            ConfigError::ClusterNode(node) => {
                write!(f, "cluster.node {node:?} must be 1 to 64 bytes of A-Z, a-z, 0-9, `_`, `.` or `-`")
            }
            ConfigError::ClusterCoalescing => {
                write!(f, "presence.flushIntervalMs (coalesced delivery) is not available in cluster mode")
            }
        }
    }
}
