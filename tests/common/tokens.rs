//! Minting JWTs for tests: fixture keys (tests/keys/, generated once with
//! openssl and committed; test-only, never used anywhere else), engine key
//! configs, and helpers to sign, hand-build and tamper with tokens.

use jsonwebtoken::{encode, EncodingKey, Header};
use rollcall::{Algorithm, Config, JwtKey};
use serde_json::{json, Value};

use super::T0;

pub const RSA_PRIVATE: &str = include_str!("../keys/rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../keys/rsa_public.pem");
/// A second RSA keypair, for "signed with the wrong key".
pub const RSA2_PRIVATE: &str = include_str!("../keys/rsa2_private.pem");
pub const RSA2_PUBLIC: &str = include_str!("../keys/rsa2_public.pem");
pub const EC_PRIVATE: &str = include_str!("../keys/ec_private.pem");
pub const EC_PUBLIC: &str = include_str!("../keys/ec_public.pem");
pub const ED_PRIVATE: &str = include_str!("../keys/ed_private.pem");
pub const ED_PUBLIC: &str = include_str!("../keys/ed_public.pem");

/// The HMAC secret the `hs*` helpers use unless told otherwise.
pub const SECRET: &str = "rollcall-test-secret-0123456789abcdef";

/// The default `leeway_ms` of [`rollcall::AuthConfig`].
pub const LEEWAY_MS: u64 = 30_000;

/// `T0` in whole seconds (T0 itself is 496 ms past this second).
pub const T0_SECS: u64 = T0 / 1000;

/// Claims `{"sub": sub, "exp": T0_SECS + exp_in_secs}`.
pub fn claims(sub: &str, exp_in_secs: u64) -> Value {
    json!({"sub": sub, "exp": T0_SECS + exp_in_secs})
}

/// When the engine considers a token with this `exp` (in seconds) expired,
/// with the default leeway: `exp * 1000 + 30 000` ms.
pub fn expiry_ms(exp_secs: u64) -> u64 {
    exp_secs * 1000 + LEEWAY_MS
}

// ---- keys the engine verifies with ---------------------------------------

pub fn hs_key(algorithm: Algorithm, secret: &str, kid: Option<&str>) -> JwtKey {
    JwtKey { kid: kid.map(str::to_string), ..JwtKey::hmac(algorithm, secret) }
}

pub fn pem_key(algorithm: Algorithm, pem: &str, kid: Option<&str>) -> JwtKey {
    JwtKey { kid: kid.map(str::to_string), algorithm, secret: None, secret_bytes: None, pem: Some(pem.to_string()) }
}

/// The default configuration with these verification keys, without idle
/// time-outs: token tests advance the clock far past them (liveness has
/// its own tests, tests/liveness.rs).
pub fn config_with(keys: Vec<JwtKey>) -> Config {
    let mut config = Config::default();
    config.auth.keys = keys;
    config.idle_timeout_ms = 0;
    config
}

/// The default configuration verifying HS256 tokens signed with [`SECRET`].
pub fn hs256_config() -> Config {
    config_with(vec![hs_key(Algorithm::HS256, SECRET, None)])
}

// ---- signing ---------------------------------------------------------------

/// Signs `claims` with `key` under `alg`, with an optional `kid` header.
pub fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("test token signs")
}

/// An HMAC token (HS256/384/512) signed with `secret`.
pub fn hs(alg: Algorithm, secret: &str, kid: Option<&str>, claims: &Value) -> String {
    sign(alg, &EncodingKey::from_secret(secret.as_bytes()), kid, claims)
}

/// An HS256 token signed with [`SECRET`], no kid.
pub fn hs256(claims: &Value) -> String {
    hs(Algorithm::HS256, SECRET, None, claims)
}

pub fn rs256_with(private_pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA fixture key");
    sign(Algorithm::RS256, &key, None, claims)
}

/// An RS256 token signed with the first RSA fixture key.
pub fn rs256(claims: &Value) -> String {
    rs256_with(RSA_PRIVATE, claims)
}

pub fn es256(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("EC fixture key");
    sign(Algorithm::ES256, &key, None, claims)
}

pub fn eddsa(claims: &Value) -> String {
    let key = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("Ed25519 fixture key");
    sign(Algorithm::EdDSA, &key, None, claims)
}

// ---- hand-built and tampered tokens ---------------------------------------

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding, as JWTs use.
pub fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub fn b64url_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64URL.iter().position(|&b| b == c).expect("base64url character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// An unsigned `alg: none` token: `eyJhbGciOiJub25lIn0.<payload>.`
pub fn alg_none(claims: &Value) -> String {
    format!("eyJhbGciOiJub25lIn0.{}.", b64url(claims.to_string().as_bytes()))
}

/// The claims part of `token`, decoded.
pub fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&b64url_decode(part)).expect("payload is JSON")
}

/// `token` with its payload replaced by `claims`, header and signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    format!("{}.{}.{}", parts[0], b64url(claims.to_string().as_bytes()), parts[2])
}
