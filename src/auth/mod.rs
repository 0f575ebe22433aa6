//! Who a connection is and what it may do.
//!
//! A connection is authenticated either by a JWT ([`jwt::Verifier`]) or by
//! an [`Identity`] the host asserts itself. Both end in the same place: a
//! clientId, an expiry, and shared compiled [`grants::RoomGrants`].

pub mod grants;
pub mod jwt;
pub mod permissions;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Millis;

pub use grants::{Actions, RoomGrants};

/// An action on a room, as named in the `rooms` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomAction {
    /// Join the room and receive its events and presence changes.
    Subscribe,
    /// Publish events into the room.
    Publish,
    /// Enter the room's presence set.
    Presence,
}

/// A verified identity: from a token's claims, or asserted by the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Identity {
    /// The `sub` claim. Without one a connection can subscribe and publish
    /// but not enter presence sets.
    pub client_id: Option<String>,
    /// The `rooms` claim: room pattern -> actions. `None` takes the
    /// configuration's `default_room_grants`.
    pub rooms: Option<BTreeMap<String, Vec<RoomAction>>>,
    /// When the credentials stop being valid (ms); the engine closes the
    /// connection then with 4002 unless it was refreshed.
    pub expires_at: Option<Millis>,
    /// The `per` claim: realm (or `*`) -> id pattern -> CRUD letters.
    /// `None` takes the configuration's `default_permissions`.
    pub per: Option<permissions::PermissionClaim>,
    /// The `dpv` claim: realm (or `*`) -> id patterns this connection is a
    /// data provider for.
    pub dpv: Option<permissions::ProviderClaim>,
}

impl Identity {
    /// Patterns in the `rooms`, `per` and `dpv` claims together (held to
    /// `limits.max_claim_patterns`).
    pub fn pattern_count(&self) -> usize {
        self.rooms.as_ref().map_or(0, BTreeMap::len)
            + self.per.iter().flatten().map(|(_, ids)| ids.len()).sum::<usize>()
            + self.dpv.iter().flatten().map(|(_, ids)| ids.len()).sum::<usize>()
    }
}

/// Why a token or an asserted identity was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No keys are configured, so no token can be verified.
    NoKeys,
    /// Not a JWT: wrong shape, bad base64 or JSON, or `alg: none`.
    Malformed,
    /// The header's `alg` is not the algorithm of any configured key (or of
    /// the key its `kid` names).
    AlgorithmNotAllowed,
    /// The header's `kid` names no configured key.
    UnknownKid,
    /// The signature does not verify with any candidate key.
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    NotYetValid,
    /// `exp` is missing and the configuration requires it.
    MissingExp,
    /// `iss` is not one of the configured issuers.
    WrongIssuer,
    /// `aud` is not one of the configured audiences.
    WrongAudience,
    /// A claim has the wrong shape (e.g. an unknown room action, an `iss`
    /// that is not a string, an `exp` past [`MAX_TIME`](crate::time::MAX_TIME)),
    /// a grant pattern is invalid, or the claims hold more than
    /// `limits.max_claim_patterns` patterns.
    BadClaims(String),
    /// The token is longer than `auth.max_token_bytes`; refused before any
    /// decoding.
    TokenTooLarge,
    /// The token's header has a `crit` member: it names extensions that
    /// must be understood, and rollcall understands none (RFC 7515 4.1.11).
    UnknownCrit,
    /// A host-asserted identity is unusable: a field of the wrong type (a
    /// numeric clientId), a clientId that is empty, too long or holds
    /// control characters, an unknown room action or right letter, an
    /// invalid pattern, too many patterns, an `expiresAt` past
    /// [`MAX_TIME`](crate::time::MAX_TIME). The connection is refused as for
    /// a bad token.
    BadIdentity(String),
}

impl AuthError {
    /// A stable, machine-readable name, used as the close reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthError::NoKeys => "NO_KEYS",
            AuthError::Malformed => "MALFORMED",
            AuthError::AlgorithmNotAllowed => "ALGORITHM_NOT_ALLOWED",
            AuthError::UnknownKid => "UNKNOWN_KID",
            AuthError::BadSignature => "BAD_SIGNATURE",
            AuthError::Expired => "EXPIRED",
            AuthError::NotYetValid => "NOT_YET_VALID",
            AuthError::MissingExp => "MISSING_EXP",
            AuthError::WrongIssuer => "WRONG_ISSUER",
            AuthError::WrongAudience => "WRONG_AUDIENCE",
            AuthError::BadClaims(_) => "BAD_CLAIMS",
            AuthError::TokenTooLarge => "TOKEN_TOO_LARGE",
            AuthError::UnknownCrit => "UNKNOWN_CRIT",
            AuthError::BadIdentity(_) => "BAD_IDENTITY",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::BadClaims(why) | AuthError::BadIdentity(why) => write!(f, "{}: {why}", self.as_str()),
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for AuthError {}

/// Serialises as its Display text, e.g. `"EXPIRED"` or `"BAD_CLAIMS: ..."`.
impl Serialize for AuthError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
