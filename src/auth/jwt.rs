//! JWT verification against configured keys, with time checked against the
//! host's `now` (the crate's own clock-reading checks are switched off).

use std::collections::BTreeMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::auth::permissions::{PermissionClaim, ProviderClaim};
use crate::auth::{AuthError, Identity, RoomAction};
use crate::config::{AuthConfig, JwtKey};
use crate::error::ConfigError;
use crate::time::{Millis, MAX_TIME};

/// The claims rollcall reads. Others are ignored. `iss` and `aud` are read
/// only to hold them to their RFC 7519 shapes (a string; a string or an
/// array of strings): the crate's own check would let an `iss` array pass.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    iss: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
    rooms: Option<BTreeMap<String, Vec<RoomAction>>>,
    per: Option<PermissionClaim>,
    dpv: Option<ProviderClaim>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(#[allow(dead_code)] String),
    Many(#[allow(dead_code)] Vec<String>),
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies tokens with the configured keys.
pub struct Verifier {
    keys: Vec<Key>,
    leeway_ms: u64,
    require_exp: bool,
    max_token_bytes: usize,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.keys.len()).finish()
    }
}

impl Verifier {
    pub fn new(config: &AuthConfig) -> Result<Verifier, ConfigError> {
        let keys = config.keys.iter().map(|k| compile_key(k, config)).collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier {
            keys,
            leeway_ms: config.leeway_ms,
            require_exp: config.require_exp,
            max_token_bytes: config.max_token_bytes,
        })
    }

    /// Verifies `token` at time `now` and returns the identity it proves.
    pub fn verify(&self, token: &str, now: Millis) -> Result<Identity, AuthError> {
        if self.keys.is_empty() {
            return Err(AuthError::NoKeys);
        }
        // Before any decoding: the cost of a refused token stays that of a length check.
        if token.len() > self.max_token_bytes {
            return Err(AuthError::TokenTooLarge);
        }
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        // RFC 7515 4.1.11: extensions listed in `crit` must be understood;
        // rollcall understands none, and an empty list is itself invalid.
        if header.crit.is_some() {
            return Err(AuthError::UnknownCrit);
        }
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => {
                let key = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)).ok_or(AuthError::UnknownKid)?;
                vec![key]
            }
            None => self.keys.iter().collect(),
        };
        let candidates: Vec<&Key> = candidates.into_iter().filter(|k| k.algorithm == header.alg).collect();
        if candidates.is_empty() {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let mut last = AuthError::BadSignature;
        for key in candidates {
            match decode::<Claims>(token, &key.key, &key.validation) {
                Ok(data) => return self.check_times(data.claims, now),
                Err(e) => {
                    last = map_error(e.kind());
                    if last != AuthError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn check_times(&self, claims: Claims, now: Millis) -> Result<Identity, AuthError> {
        let to_ms = |secs: f64| -> Millis {
            if secs.is_finite() && secs > 0.0 {
                (secs * 1000.0).min(u64::MAX as f64) as Millis
            } else {
                0
            }
        };
        let expires_at = match claims.exp {
            Some(exp) => {
                let at = to_ms(exp).saturating_add(self.leeway_ms);
                if now >= at {
                    return Err(AuthError::Expired);
                }
                // A deadline the host could not hold (JS numbers are exact to 2^53).
                if at > MAX_TIME {
                    return Err(AuthError::BadClaims(format!("exp {exp} is too far in the future")));
                }
                Some(at)
            }
            None if self.require_exp => return Err(AuthError::MissingExp),
            None => None,
        };
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(self.leeway_ms) < to_ms(nbf) {
                return Err(AuthError::NotYetValid);
            }
        }
        Ok(Identity { client_id: claims.sub, rooms: claims.rooms, expires_at, per: claims.per, dpv: claims.dpv })
    }
}

fn compile_key(k: &JwtKey, config: &AuthConfig) -> Result<Key, ConfigError> {
    let err = |why: String| ConfigError::Key { kid: k.kid.clone(), why };
    let secret = match (&k.secret, &k.secret_bytes) {
        (Some(text), None) => Some(text.as_bytes()),
        (None, Some(bytes)) => Some(bytes.as_slice()),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(err("give `secret` or `secretBytes`, not both".into())),
    };
    let key = match (k.algorithm, secret, &k.pem) {
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, Some(secret), None) => {
            if secret.is_empty() {
                return Err(err("the secret is empty".into()));
            }
            DecodingKey::from_secret(secret)
        }
        (
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
            None,
            Some(pem),
        ) => DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| err(e.to_string()))?,
        (Algorithm::ES256 | Algorithm::ES384, None, Some(pem)) => {
            DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| err(e.to_string()))?
        }
        (Algorithm::EdDSA, None, Some(pem)) => {
            DecodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| err(e.to_string()))?
        }
        (alg, _, _) => {
            return Err(err(format!("{alg:?} needs exactly one of `secret` (HS*) or `pem` (RS*, PS*, ES*, EdDSA)")))
        }
    };
    let mut validation = Validation::new(k.algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.validate_aud = !config.audiences.is_empty();
    // A token without `aud`/`iss` must not pass a configured check: the
    // crate only compares these claims when present unless they are required.
    if !config.audiences.is_empty() {
        validation.set_audience(&config.audiences);
        validation.required_spec_claims.insert("aud".into());
    }
    if !config.issuers.is_empty() {
        validation.set_issuer(&config.issuers);
        validation.required_spec_claims.insert("iss".into());
    }
    Ok(Key { kid: k.kid.clone(), algorithm: k.algorithm, key, validation })
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::Json(e) => AuthError::BadClaims(e.to_string()),
        ErrorKind::InvalidClaimFormat(c) => AuthError::BadClaims(format!("claim {c} is malformed")),
        _ => AuthError::Malformed,
    }
}
