//! What a validly signed token may carry (issue 10, findings 1 and 7): an
//! `exp` past what a JS number holds is refused (`BAD_CLAIMS`), at open and
//! in a refresh, so no deadline the engine hands out is unrepresentable; a
//! `crit` header is refused (RFC 7515 4.1.11); `iss` must be a string and
//! `aud` a string or an array of strings; a token over `auth.maxTokenBytes`
//! or with more than `limits.maxClaimPatterns` patterns is refused before
//! its patterns are compiled. Times: benches/hostile.rs (`open`).

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::tokens::*;
use common::Host;
use jsonwebtoken::{encode, EncodingKey, Header};
use rollcall::time::MAX_TIME;
use rollcall::{Algorithm, AuthError, Config, ConnectionId, Credentials, HostEvent};
use serde_json::{json, Value};

/// `Number.MAX_SAFE_INTEGER`, as a token's `exp` (seconds).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

fn refused_with(h: &Host, id: u64) -> Option<String> {
    h.events.iter().find_map(|e| match e {
        HostEvent::AuthRefused { connection, error } if connection.0 == id => Some(error.as_str().to_string()),
        _ => None,
    })
}

fn open_token(h: &mut Host, id: u64, claims: &Value) {
    h.open(id, Credentials::Token(hs256(claims)));
}

#[test]
fn an_exp_past_what_js_can_hold_is_refused_at_open() {
    let mut h = Host::new(hs256_config());
    h.open_as(9, "bystander");
    for (id, exp) in [(1, json!(MAX_SAFE_INTEGER)), (2, json!(1e300)), (3, json!(MAX_TIME / 1000 + 1))] {
        open_token(&mut h, id, &json!({"sub": "mallory", "exp": exp}));
        assert_eq!(h.closed_with(id), Some(4001), "exp {exp}");
        assert_eq!(refused_with(&h, id).as_deref(), Some("BAD_CLAIMS"), "exp {exp}");
    }
    // Nothing past MAX_TIME was ever scheduled; the bystander is untouched.
    assert!(h.engine.poll_timeout().map_or(true, |at| at <= MAX_TIME));
    assert_eq!(h.engine.connection_ids(), vec![ConnectionId(9)]);
    // The latest representable expiry still works: year 287 396 minus the leeway.
    let exp = (MAX_TIME - LEEWAY_MS) / 1000;
    open_token(&mut h, 4, &json!({"sub": "far", "exp": exp}));
    assert_eq!(h.closed_with(4), None);
    assert_eq!(h.engine.poll_timeout(), Some(exp * 1000 + LEEWAY_MS));
    assert!(h.engine.poll_timeout() <= Some(MAX_TIME));
}

#[test]
fn an_exp_past_what_js_can_hold_is_refused_in_a_refresh_and_the_old_token_stays() {
    let mut h = Host::new(hs256_config());
    open_token(&mut h, 1, &claims("alice", 60));
    let deadline = h.engine.poll_timeout();
    let token = hs256(&json!({"sub": "alice", "exp": MAX_SAFE_INTEGER}));
    assert_eq!(h.err(1, json!({"op": "auth", "token": token})), "TOKEN_INVALID");
    assert_eq!(h.engine.poll_timeout(), deadline);
    assert_eq!(h.closed_with(1), None);
    h.ok(1, json!({"op": "ping"}));
}

#[test]
fn time_options_that_would_overflow_deadlines_are_refused() {
    for (leeway, timeout) in [(u64::MAX, 10_000), (30_000, u64::MAX), (MAX_TIME, 10_000)] {
        let mut config = Config::default();
        config.auth.leeway_ms = leeway;
        config.auth.auth_timeout_ms = timeout;
        let err = rollcall::Engine::new(config).unwrap_err();
        assert_eq!(err.code(), "BAD_OPTIONS", "{err}");
    }
}

#[test]
fn a_pending_connection_opened_near_the_end_of_time_gets_a_representable_deadline() {
    let mut h = Host::default();
    h.now = MAX_TIME - 5;
    h.open(1, Credentials::None);
    assert_eq!(h.engine.poll_timeout(), Some(MAX_TIME));
    h.advance(5);
    assert_eq!(h.closed_with(1), Some(4003));
}

/// An HS256 token with a hand-made header.
fn with_header(header: Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::HS256).expect("signs");
    format!("{signing_input}.{sig}")
}

#[test]
fn a_crit_header_is_refused() {
    let mut h = Host::new(hs256_config());
    let claims = claims("alice", 60);
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("exp")] {
        let token = with_header(json!({"alg": "HS256", "typ": "JWT", "crit": crit}), &claims);
        open_token_text(&mut h, 1, token);
        assert_eq!(h.closed_with(1), Some(4001), "crit {crit}");
        let error = refused_with(&h, 1);
        assert!(matches!(error.as_deref(), Some("UNKNOWN_CRIT" | "MALFORMED")), "crit {crit}: {error:?}");
        h.closes.clear();
        h.events.clear();
    }
    // The same header without `crit` verifies: the refusal is about `crit` alone.
    open_token_text(&mut h, 1, with_header(json!({"alg": "HS256", "typ": "JWT"}), &claims));
    assert_eq!(h.closed_with(1), None);
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let token = encode(&header, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    open_token_text(&mut h, 2, token);
    assert_eq!(refused_with(&h, 2).as_deref(), Some("UNKNOWN_CRIT"));
}

fn open_token_text(h: &mut Host, id: u64, token: String) {
    h.open(id, Credentials::Token(token));
}

#[test]
fn iss_must_be_a_string_and_aud_a_string_or_strings() {
    let mut config = hs256_config();
    config.auth.issuers = vec!["https://issuer".into()];
    config.auth.audiences = vec!["rollcall".into()];
    let mut h = Host::new(config);
    let base = |iss: Value, aud: Value| json!({"sub": "a", "exp": T0_SECS + 60, "iss": iss, "aud": aud});
    let refused = [
        base(json!(["https://issuer"]), json!("rollcall")),
        base(json!(["https://issuer", "other"]), json!("rollcall")),
        base(json!(7), json!("rollcall")),
        base(json!("https://issuer"), json!(7)),
        base(json!("https://issuer"), json!(["rollcall", 7])),
        base(json!("https://issuer"), json!({"a": "rollcall"})),
    ];
    for (i, claims) in refused.iter().enumerate() {
        let id = i as u64 + 1;
        open_token(&mut h, id, claims);
        assert_eq!(h.closed_with(id), Some(4001), "{claims}");
        assert_eq!(refused_with(&h, id).as_deref(), Some("BAD_CLAIMS"), "{claims}");
    }
    for (i, claims) in
        [base(json!("https://issuer"), json!("rollcall")), base(json!("https://issuer"), json!(["x", "rollcall"]))]
            .iter()
            .enumerate()
    {
        let id = i as u64 + 100;
        open_token(&mut h, id, claims);
        assert_eq!(h.closed_with(id), None, "{claims}");
    }
    // Without configured issuers an array `iss` is still not a JWT `iss`.
    let mut h = Host::new(hs256_config());
    open_token(&mut h, 1, &json!({"sub": "a", "exp": T0_SECS + 60, "iss": ["x"]}));
    assert_eq!(refused_with(&h, 1).as_deref(), Some("BAD_CLAIMS"));
}

/// `n` distinct `per` patterns, plus `n` `dpv` patterns.
fn many_patterns(n: usize) -> Value {
    let per: serde_json::Map<String, Value> =
        (0..n).map(|i| (format!("deliveryRiders/london/cyclists/rider-{i:06}/*"), json!("R"))).collect();
    let dpv: Vec<String> = (0..n).map(|i| format!("deliveryRiders/london/cyclists/rider-{i:06}")).collect();
    json!({"sub": "big", "exp": T0_SECS + 60, "per": {"london": per}, "dpv": {"london": dpv}})
}

#[test]
fn a_token_over_max_token_bytes_is_refused_before_decoding() {
    let mut h = Host::new(hs256_config());
    // The finding's token: 3,000 patterns, about 225 KB.
    let token = hs256(&many_patterns(1_500));
    assert!(token.len() > 190_000, "{}", token.len());
    open_token_text(&mut h, 1, token.clone());
    assert_eq!(refused_with(&h, 1).as_deref(), Some("TOKEN_TOO_LARGE"));
    assert_eq!(h.closed_with(1), Some(4001));
    // In a refresh too (a token that fits in a frame), and the connection keeps its token.
    open_token(&mut h, 2, &claims("big", 60));
    let token = hs256(&many_patterns(100));
    assert!(token.len() > 8 * 1024 && token.len() < 60_000, "{}", token.len());
    let reply = h.request(2, json!({"op": "auth", "token": token}));
    assert_eq!(
        (&reply["code"], reply["message"].as_str().map(|m| m.contains("TOKEN_TOO_LARGE"))),
        (&json!("TOKEN_INVALID"), Some(true))
    );
    assert_eq!(h.closed_with(2), None);
    // The limit is an option.
    let mut config = hs256_config();
    config.auth.max_token_bytes = 64;
    let mut h = Host::new(config);
    open_token(&mut h, 1, &claims("alice", 60));
    assert_eq!(refused_with(&h, 1).as_deref(), Some("TOKEN_TOO_LARGE"));
}

#[test]
fn claims_over_max_claim_patterns_are_refused() {
    let limit = rollcall::Limits::default().max_claim_patterns;
    let mut h = Host::new(hs256_config());
    // 33 per + 33 dpv = 66 patterns, within 8 KiB.
    let over = hs256(&many_patterns(limit / 2 + 1));
    assert!(over.len() < 8 * 1024, "{}", over.len());
    open_token_text(&mut h, 1, over);
    assert_eq!(refused_with(&h, 1).as_deref(), Some("BAD_CLAIMS"));
    assert!(h.events.iter().any(|e| matches!(e,
        HostEvent::AuthRefused { error: AuthError::BadClaims(why), .. } if why.contains("patterns"))));
    open_token_text(&mut h, 2, hs256(&many_patterns(limit / 2)));
    assert_eq!(h.closed_with(2), None);
}
