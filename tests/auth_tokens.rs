//! Authenticating with a JWT: at open (`Credentials::Token`) or with the
//! first `auth` frame (`Credentials::None`). Every refusal closes with 4001,
//! the `AuthError::as_str()` name as the close reason, and an `AuthRefused`
//! event; every acceptance sends one `welcome` and an `Authenticated` event.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod common;

use common::tokens::*;
use common::{Host, T0};
use rollcall::{Algorithm, AuthError, Config, ConnectionId, Credentials, HostEvent, RoomAction};
use serde_json::{json, Value};

// ---- helpers ---------------------------------------------------------------

fn token(t: String) -> Credentials {
    Credentials::Token(t)
}

/// Opens connection 1 on a fresh engine with `token` and asserts it was
/// welcomed exactly so, and the host told so.
fn assert_welcomed(config: Config, token: String, client_id: Option<&str>, expires_at: Option<u64>) -> Host {
    let mut h = Host::new(config);
    h.open(1, Credentials::Token(token));
    assert_eq!(h.closes, vec![], "the connection must stay open");
    assert_eq!(
        h.take(1),
        vec![json!({
            "type": "welcome", "protocol": 1, "id": "rollcall:1",
            "clientId": client_id, "expiresAt": expires_at, "epoch": 0
        })]
    );
    assert_eq!(
        h.events,
        vec![HostEvent::Authenticated { connection: ConnectionId(1), client_id: client_id.map(str::to_string) }]
    );
    assert_eq!(h.engine.connection_count(), 1);
    assert_eq!(h.engine.poll_timeout(), expires_at);
    h
}

/// Opens connection 1 on a fresh engine with `token` and asserts it was
/// refused: closed with 4001 and the error's name, nothing sent, the host
/// told why. Returns the error.
fn refused_with(config: Config, token: String) -> AuthError {
    let mut h = Host::new(config);
    h.open(1, Credentials::Token(token));
    let error = refusal_of(&mut h, 1);
    assert_eq!(h.engine.connection_count(), 0);
    assert_eq!(h.engine.poll_timeout(), None, "a closed connection leaves no deadline behind");
    error
}

/// Asserts connection `id` was refused (see `refused_with`) and returns why.
fn refusal_of(h: &mut Host, id: u64) -> AuthError {
    assert_eq!(h.closed_with(id), Some(4001), "closes: {:?}", h.closes);
    let error = h
        .events
        .iter()
        .find_map(|e| match e {
            HostEvent::AuthRefused { connection, error } if connection.0 == id => Some(error.clone()),
            _ => None,
        })
        .expect("an AuthRefused event");
    let close = h.closes.iter().find(|c| c.connection.0 == id).unwrap();
    assert_eq!(close.reason, error.as_str(), "the close reason is the error's stable name");
    assert!(h.take(id).iter().all(|m| m["type"] != "welcome"), "a refused connection is not welcomed");
    assert!(
        !h.events.iter().any(|e| matches!(e, HostEvent::Authenticated { connection, .. } if connection.0 == id)),
        "a refused connection is not authenticated"
    );
    assert!(h.events.contains(&HostEvent::Closed { connection: ConnectionId(id) }));
    error
}

fn hs_config(alg: Algorithm) -> Config {
    config_with(vec![hs_key(alg, SECRET, None)])
}

fn rs256_config() -> Config {
    config_with(vec![pem_key(Algorithm::RS256, RSA_PUBLIC, None)])
}

/// `exp` one hour after T0, and the engine's deadline for it.
const HOUR: u64 = 3600;
fn hour_exp() -> u64 {
    T0_SECS + HOUR
}

// ---- each algorithm ----------------------------------------------------------

#[test]
fn hs256_token_is_accepted_with_client_id_from_sub() {
    let t = hs(Algorithm::HS256, SECRET, None, &claims("alice", HOUR));
    assert_welcomed(hs_config(Algorithm::HS256), t, Some("alice"), Some(expiry_ms(hour_exp())));
}

#[test]
fn hs384_token_is_accepted_with_client_id_from_sub() {
    let t = hs(Algorithm::HS384, SECRET, None, &claims("alice", HOUR));
    assert_welcomed(hs_config(Algorithm::HS384), t, Some("alice"), Some(expiry_ms(hour_exp())));
}

#[test]
fn hs512_token_is_accepted_with_client_id_from_sub() {
    let t = hs(Algorithm::HS512, SECRET, None, &claims("alice", HOUR));
    assert_welcomed(hs_config(Algorithm::HS512), t, Some("alice"), Some(expiry_ms(hour_exp())));
}

#[test]
fn rs256_token_is_accepted_with_client_id_from_sub() {
    let t = rs256(&claims("bob", HOUR));
    assert_welcomed(rs256_config(), t, Some("bob"), Some(expiry_ms(hour_exp())));
}

#[test]
fn es256_token_is_accepted_with_client_id_from_sub() {
    let config = config_with(vec![pem_key(Algorithm::ES256, EC_PUBLIC, None)]);
    let t = es256(&claims("carol", HOUR));
    assert_welcomed(config, t, Some("carol"), Some(expiry_ms(hour_exp())));
}

#[test]
fn eddsa_token_is_accepted_with_client_id_from_sub() {
    let config = config_with(vec![pem_key(Algorithm::EdDSA, ED_PUBLIC, None)]);
    let t = eddsa(&claims("dave", HOUR));
    assert_welcomed(config, t, Some("dave"), Some(expiry_ms(hour_exp())));
}

#[test]
fn a_token_without_sub_is_welcomed_without_client_id_and_cannot_enter_presence() {
    let t = hs256(&json!({"exp": hour_exp()}));
    let mut h = assert_welcomed(hs256_config(), t, None, Some(expiry_ms(hour_exp())));
    h.join(1, "r");
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "r"})), "NO_CLIENT_ID");
}

#[test]
fn the_welcome_id_carries_the_app_id_and_connection_id() {
    let mut config = hs256_config();
    config.app_id = "myapp".into();
    let mut h = Host::new(config);
    h.open(42, token(hs256(&claims("alice", HOUR))));
    assert_eq!(
        h.take(42),
        vec![json!({
            "type": "welcome", "protocol": 1, "id": "myapp:42",
            "clientId": "alice", "expiresAt": expiry_ms(hour_exp()), "epoch": 0
        })]
    );
}

// ---- time claims ---------------------------------------------------------------

#[test]
fn a_token_expired_beyond_the_leeway_is_refused() {
    // exp 31 s ago: 1 s (minus T0's 496 ms) beyond the 30 s leeway.
    let t = hs256(&json!({"sub": "alice", "exp": T0_SECS - 31}));
    assert_eq!(refused_with(hs256_config(), t), AuthError::Expired);
}

#[test]
fn a_token_expired_within_the_leeway_is_accepted_until_exp_plus_leeway() {
    // exp 10 s ago: still inside the 30 s leeway; its deadline is exp + leeway.
    let exp = T0_SECS - 10;
    let t = hs256(&json!({"sub": "alice", "exp": exp}));
    let mut h = assert_welcomed(hs256_config(), t, Some("alice"), Some(exp * 1000 + 30_000));
    assert_eq!(h.engine.poll_timeout(), Some(T0 - 496 + 20_000));
    h.advance(20_000 - 496 - 1);
    assert_eq!(h.closed_with(1), None);
    h.advance(1);
    assert_eq!(h.closed_with(1), Some(4002));
}

#[test]
fn expiry_is_exclusive_at_exactly_exp_plus_leeway() {
    let exp = T0_SECS + 5;
    let deadline = exp * 1000 + LEEWAY_MS;

    let mut h = Host::new(hs256_config());
    h.now = deadline - 1;
    h.open(1, token(hs256(&json!({"sub": "alice", "exp": exp}))));
    assert_eq!(h.closed_with(1), None);
    assert_eq!(h.engine.poll_timeout(), Some(deadline));

    h.now = deadline;
    h.open(2, token(hs256(&json!({"sub": "alice", "exp": exp}))));
    assert_eq!(refusal_of(&mut h, 2), AuthError::Expired);
}

#[test]
fn the_leeway_is_configurable() {
    // exp 10 s ago: accepted with the default 30 s leeway, refused with 5 s.
    let t = hs256(&json!({"sub": "alice", "exp": T0_SECS - 10}));
    let mut config = hs256_config();
    config.auth.leeway_ms = 5_000;
    assert_eq!(refused_with(config, t), AuthError::Expired);

    let exp = T0_SECS + 60;
    let mut config = hs256_config();
    config.auth.leeway_ms = 0;
    let t = hs256(&json!({"sub": "alice", "exp": exp}));
    assert_welcomed(config, t, Some("alice"), Some(exp * 1000));
}

#[test]
fn a_token_not_yet_valid_beyond_the_leeway_is_refused() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "nbf": T0_SECS + 60}));
    assert_eq!(refused_with(hs256_config(), t), AuthError::NotYetValid);
}

#[test]
fn a_token_not_yet_valid_within_the_leeway_is_accepted() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "nbf": T0_SECS + 20}));
    assert_welcomed(hs256_config(), t, Some("alice"), Some(expiry_ms(hour_exp())));
}

#[test]
fn nbf_becomes_valid_exactly_one_leeway_before_it() {
    let nbf = T0_SECS + 100;
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "nbf": nbf}));
    let mut h = Host::new(hs256_config());
    h.now = nbf * 1000 - LEEWAY_MS - 1;
    h.open(1, token(t.clone()));
    assert_eq!(refusal_of(&mut h, 1), AuthError::NotYetValid);
    h.now += 1;
    h.open(2, token(t));
    assert_eq!(h.closed_with(2), None);
    assert_eq!(h.take_type(2, "welcome").len(), 1);
}

#[test]
fn a_token_without_exp_is_refused_when_exp_is_required() {
    assert!(Config::default().auth.require_exp, "require_exp defaults to true");
    let t = hs256(&json!({"sub": "alice"}));
    assert_eq!(refused_with(hs256_config(), t), AuthError::MissingExp);
}

#[test]
fn a_token_without_exp_is_accepted_when_exp_is_not_required_and_never_expires() {
    let mut config = hs256_config();
    config.auth.require_exp = false;
    let t = hs256(&json!({"sub": "alice"}));
    let mut h = assert_welcomed(config, t, Some("alice"), None);
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(365 * 24 * 3600 * 1000);
    assert_eq!(h.closed_with(1), None);
    assert_eq!(h.ok(1, json!({"op": "ping"}))["op"], "ping");
}

// ---- keys and signatures --------------------------------------------------------

#[test]
fn a_token_signed_with_another_rsa_key_is_refused() {
    let t = rs256_with(RSA2_PRIVATE, &claims("alice", HOUR));
    assert_eq!(refused_with(rs256_config(), t), AuthError::BadSignature);
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let t = hs(Algorithm::HS256, "some-other-secret", None, &claims("alice", HOUR));
    assert_eq!(refused_with(hs256_config(), t), AuthError::BadSignature);
}

#[test]
fn the_second_rsa_key_verifies_its_own_tokens() {
    // Guards the wrong-key test: RSA2 is a usable key, just not the configured one.
    let config = config_with(vec![pem_key(Algorithm::RS256, RSA2_PUBLIC, None)]);
    let t = rs256_with(RSA2_PRIVATE, &claims("alice", HOUR));
    assert_welcomed(config, t, Some("alice"), Some(expiry_ms(hour_exp())));
}

#[test]
fn a_token_whose_alg_is_not_configured_is_refused() {
    // Same secret, but HS512 where only HS256 is configured.
    let t = hs(Algorithm::HS512, SECRET, None, &claims("alice", HOUR));
    assert_eq!(refused_with(hs256_config(), t), AuthError::AlgorithmNotAllowed);
    // An ES256 token where only RS256 is configured.
    let t = es256(&claims("alice", HOUR));
    assert_eq!(refused_with(rs256_config(), t), AuthError::AlgorithmNotAllowed);
}

#[test]
fn an_alg_none_token_is_refused() {
    let t = alg_none(&claims("alice", HOUR));
    assert!(t.starts_with("eyJhbGciOiJub25lIn0.") && t.ends_with('.'));
    assert_eq!(refused_with(hs256_config(), t.clone()), AuthError::Malformed);
    assert_eq!(refused_with(rs256_config(), t), AuthError::Malformed);
}

#[test]
fn a_token_that_is_not_a_jwt_is_refused() {
    assert_eq!(refused_with(hs256_config(), "not-a-jwt".into()), AuthError::Malformed);
    assert_eq!(refused_with(hs256_config(), "".into()), AuthError::Malformed);
}

#[test]
fn hs256_signed_with_the_rsa_public_key_text_is_refused() {
    // Key confusion: the attacker knows the public PEM and uses it as an
    // HMAC secret. The engine has only the RS256 public key.
    let t = hs(Algorithm::HS256, RSA_PUBLIC, None, &claims("mallory", HOUR));
    assert_eq!(refused_with(rs256_config(), t), AuthError::AlgorithmNotAllowed);
}

#[test]
fn a_token_with_an_unknown_kid_is_refused() {
    let config = config_with(vec![hs_key(Algorithm::HS256, SECRET, Some("k1"))]);
    let t = hs(Algorithm::HS256, SECRET, Some("k9"), &claims("alice", HOUR));
    assert_eq!(refused_with(config, t), AuthError::UnknownKid);
}

fn rotated_config() -> Config {
    config_with(vec![
        hs_key(Algorithm::HS256, "secret-of-k1-0123456789", Some("k1")),
        hs_key(Algorithm::HS256, "secret-of-k2-0123456789", Some("k2")),
    ])
}

#[test]
fn kid_selects_among_rotated_keys() {
    let exp = Some(expiry_ms(hour_exp()));
    let t1 = hs(Algorithm::HS256, "secret-of-k1-0123456789", Some("k1"), &claims("alice", HOUR));
    assert_welcomed(rotated_config(), t1, Some("alice"), exp);
    let t2 = hs(Algorithm::HS256, "secret-of-k2-0123456789", Some("k2"), &claims("bob", HOUR));
    assert_welcomed(rotated_config(), t2, Some("bob"), exp);
}

#[test]
fn a_kid_naming_one_key_with_a_signature_by_another_is_refused() {
    let t = hs(Algorithm::HS256, "secret-of-k2-0123456789", Some("k1"), &claims("alice", HOUR));
    assert_eq!(refused_with(rotated_config(), t), AuthError::BadSignature);
}

#[test]
fn a_token_without_kid_is_tried_against_every_key() {
    let t = hs(Algorithm::HS256, "secret-of-k2-0123456789", None, &claims("alice", HOUR));
    assert_welcomed(rotated_config(), t, Some("alice"), Some(expiry_ms(hour_exp())));
    let t = hs(Algorithm::HS256, "secret-of-k3-0123456789", None, &claims("alice", HOUR));
    assert_eq!(refused_with(rotated_config(), t), AuthError::BadSignature);
}

#[test]
fn a_tampered_payload_is_refused() {
    for (t, config) in
        [(hs256(&claims("alice", HOUR)), hs256_config()), (rs256(&claims("alice", HOUR)), rs256_config())]
    {
        assert_eq!(payload_of(&t), claims("alice", HOUR), "the helpers round-trip");
        let mut forged = payload_of(&t);
        forged["sub"] = json!("mallory");
        let forged = with_payload(&t, &forged);
        assert_eq!(refused_with(config.clone(), forged), AuthError::BadSignature);

        let mut extended = payload_of(&t);
        extended["exp"] = json!(T0_SECS + 10 * 365 * 24 * 3600);
        assert_eq!(refused_with(config.clone(), with_payload(&t, &extended)), AuthError::BadSignature);
        // The untouched token still passes, so it was the tampering.
        assert_welcomed(config, t, Some("alice"), Some(expiry_ms(hour_exp())));
    }
}

// ---- issuer and audience -----------------------------------------------------

fn iss_config() -> Config {
    let mut config = hs256_config();
    config.auth.issuers = vec!["https://auth.example".into(), "https://auth2.example".into()];
    config
}

fn aud_config() -> Config {
    let mut config = hs256_config();
    config.auth.audiences = vec!["rollcall".into()];
    config
}

#[test]
fn a_configured_issuer_is_accepted() {
    for iss in ["https://auth.example", "https://auth2.example"] {
        let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "iss": iss}));
        assert_welcomed(iss_config(), t, Some("alice"), Some(expiry_ms(hour_exp())));
    }
}

#[test]
fn a_wrong_issuer_is_refused() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "iss": "https://evil.example"}));
    assert_eq!(refused_with(iss_config(), t), AuthError::WrongIssuer);
}

#[test]
fn a_missing_issuer_is_refused_when_issuers_are_configured() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp()}));
    assert_eq!(refused_with(iss_config(), t), AuthError::WrongIssuer);
}

#[test]
fn any_issuer_is_accepted_when_none_are_configured() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "iss": "https://anyone.example"}));
    assert_welcomed(hs256_config(), t, Some("alice"), Some(expiry_ms(hour_exp())));
}

#[test]
fn a_configured_audience_is_accepted() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "aud": "rollcall"}));
    assert_welcomed(aud_config(), t, Some("alice"), Some(expiry_ms(hour_exp())));
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "aud": ["other", "rollcall"]}));
    assert_welcomed(aud_config(), t, Some("alice"), Some(expiry_ms(hour_exp())));
}

#[test]
fn a_wrong_audience_is_refused() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "aud": "other-service"}));
    assert_eq!(refused_with(aud_config(), t), AuthError::WrongAudience);
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "aud": ["other-service"]}));
    assert_eq!(refused_with(aud_config(), t), AuthError::WrongAudience);
}

#[test]
fn a_missing_audience_is_refused_when_audiences_are_configured() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp()}));
    assert_eq!(refused_with(aud_config(), t), AuthError::WrongAudience);
}

#[test]
fn any_audience_is_accepted_when_none_are_configured() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "aud": "whatever"}));
    assert_welcomed(hs256_config(), t, Some("alice"), Some(expiry_ms(hour_exp())));
}

// ---- configuration and claims ------------------------------------------------

#[test]
fn without_keys_every_token_is_refused_with_no_keys() {
    assert!(Config::default().auth.keys.is_empty());
    let t = hs256(&claims("alice", HOUR));
    assert_eq!(refused_with(Config::default(), t), AuthError::NoKeys);
}

#[test]
fn a_rooms_claim_with_an_unknown_action_is_refused_as_bad_claims() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "rooms": {"chat/*": ["subscribe", "admin"]}}));
    let error = refused_with(hs256_config(), t);
    assert!(matches!(error, AuthError::BadClaims(_)), "{error:?}");
    assert_eq!(error.as_str(), "BAD_CLAIMS");
}

#[test]
fn a_rooms_claim_with_an_empty_pattern_is_refused_as_bad_claims() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "rooms": {"": ["subscribe"]}}));
    let error = refused_with(hs256_config(), t);
    assert!(matches!(error, AuthError::BadClaims(_)), "{error:?}");
}

#[test]
fn rooms_claim_subscribe_only_allows_joining_but_not_presence_or_publish() {
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "rooms": {"chat/*": ["subscribe"]}}));
    let mut h = Host::new(hs256_config());
    h.open(1, token(t));
    assert_eq!(h.take_type(1, "welcome").len(), 1);
    h.join(1, "chat/lobby");
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "chat/lobby", "data": {}})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "presence.update", "room": "chat/lobby", "data": {}})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "publish", "room": "chat/lobby", "event": "msg", "data": 1})), "FORBIDDEN");
    // `*` stays within one segment, and other rooms are not granted at all.
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "chat/a/b"})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "other"})), "FORBIDDEN");
    assert_eq!(h.engine.room_counts("chat/lobby").members, 0);
    assert_eq!(h.engine.room_names(), vec!["chat/lobby".to_string()]);
    assert_eq!(h.closed_with(1), None, "refusals by grant do not close the connection");
}

#[test]
fn rooms_claim_grants_are_the_union_of_matching_patterns() {
    let rooms = json!({"chat/*": ["subscribe"], "chat/lobby": ["presence"], "news": ["subscribe", "publish"]});
    let t = hs256(&json!({"sub": "alice", "exp": hour_exp(), "rooms": rooms}));
    let mut h = Host::new(hs256_config());
    h.open(1, token(t));
    h.join(1, "chat/lobby");
    h.enter(1, "chat/lobby", json!({"n": 1}));
    h.join(1, "chat/other");
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "chat/other"})), "FORBIDDEN");
    h.join(1, "news");
    assert_eq!(h.ok(1, json!({"op": "publish", "room": "news", "event": "e"}))["recipients"], 0);
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "news"})), "FORBIDDEN");
    assert_eq!(h.engine.room_counts("chat/lobby").members, 1);
}

#[test]
fn a_token_without_rooms_claim_takes_the_default_grants() {
    let mut config = hs256_config();
    config.default_room_grants = [("public/**".to_string(), vec![RoomAction::Subscribe])].into();
    let mut h = Host::new(config);
    h.open(1, token(hs256(&claims("alice", HOUR))));
    h.join(1, "public/a/b");
    assert_eq!(h.err(1, json!({"op": "room.join", "room": "private"})), "FORBIDDEN");
    assert_eq!(h.err(1, json!({"op": "presence.join", "room": "public/a/b"})), "FORBIDDEN");
}

// ---- opening without credentials, then `auth` -----------------------------------

#[test]
fn before_auth_only_auth_and_ping_are_allowed() {
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::None);
    assert_eq!(h.take(1), Vec::<Value>::new(), "no welcome before auth");
    assert_eq!(h.events, vec![]);
    for frame in [
        json!({"op": "room.join", "room": "r"}),
        json!({"op": "presence.join", "room": "r", "data": {}}),
        json!({"op": "presence.get", "room": "r"}),
        json!({"op": "subscribe", "room": "r", "event": "*"}),
        json!({"op": "publish", "room": "r", "event": "e"}),
    ] {
        assert_eq!(h.err(1, frame), "NOT_AUTHENTICATED");
    }
    let reply = h.request(1, json!({"op": "room.leave", "room": "r"}));
    assert_eq!(reply["code"], "NOT_AUTHENTICATED");
    assert_eq!(reply["ref"], json!(6), "the error echoes the request's ref");
    assert_eq!(h.ok(1, json!({"op": "ping"}))["op"], "ping");
    assert_eq!(h.engine.room_names(), Vec::<String>::new());
    assert_eq!(h.closed_with(1), None);
}

#[test]
fn auth_frame_authenticates_with_welcome_and_ack() {
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::None);
    assert_eq!(h.engine.poll_timeout(), Some(T0 + 10_000));
    let t = hs256(&claims("alice", HOUR));
    h.send_raw(1, &json!({"op": "auth", "ref": "a1", "token": t}).to_string());
    let expires_at = expiry_ms(hour_exp());
    assert_eq!(
        h.take(1),
        vec![
            json!({"type": "welcome", "protocol": 1, "id": "rollcall:1", "clientId": "alice", "expiresAt": expires_at, "epoch": 0}),
            json!({"type": "ack", "ref": "a1", "op": "auth", "clientId": "alice", "expiresAt": expires_at}),
        ]
    );
    assert_eq!(
        h.events,
        vec![HostEvent::Authenticated { connection: ConnectionId(1), client_id: Some("alice".into()) }]
    );
    // The auth time-out is replaced by the token's expiry.
    assert_eq!(h.engine.poll_timeout(), Some(expires_at));
    h.advance(10_000);
    assert_eq!(h.closed_with(1), None);
    h.join(1, "r");
    h.enter(1, "r", json!({}));
    assert_eq!(h.engine.members("r")[0].client_id, "alice");
}

#[test]
fn a_bad_token_in_the_auth_frame_closes_with_4001() {
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::None);
    let t = hs(Algorithm::HS256, "wrong-secret", None, &claims("alice", HOUR));
    h.send_raw(1, &json!({"op": "auth", "ref": 1, "token": t}).to_string());
    assert_eq!(refusal_of(&mut h, 1), AuthError::BadSignature);
    // Frames after the close are ignored.
    h.send_raw(1, r#"{"op":"ping","ref":2}"#);
    assert_eq!(h.take(1), Vec::<Value>::new());
}

#[test]
fn an_expired_token_in_the_auth_frame_closes_with_4001_expired() {
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::None);
    h.advance(5_000);
    let t = hs256(&json!({"sub": "alice", "exp": T0_SECS - 60}));
    h.send_raw(1, &json!({"op": "auth", "token": t}).to_string());
    assert_eq!(refusal_of(&mut h, 1), AuthError::Expired);
}

#[test]
fn without_auth_the_connection_closes_with_4003_at_the_auth_timeout() {
    let mut h = Host::new(hs256_config());
    h.open(1, Credentials::None);
    assert_eq!(h.engine.poll_timeout(), Some(T0 + 10_000));
    h.engine.handle_timeout(T0 + 9_999);
    h.pump();
    assert_eq!(h.closes, vec![]);
    h.advance(9_999);
    assert_eq!(h.closed_with(1), None);
    // Pings do not postpone it.
    h.ok(1, json!({"op": "ping"}));
    assert_eq!(h.engine.poll_timeout(), Some(T0 + 10_000));
    h.advance(1);
    assert_eq!(h.closed_with(1), Some(4003));
    assert_eq!(h.now, T0 + 10_000);
    assert!(h.events.contains(&HostEvent::Closed { connection: ConnectionId(1) }));
    assert!(!h.events.iter().any(|e| matches!(e, HostEvent::AuthRefused { .. })));
    assert_eq!(h.engine.connection_count(), 0);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn the_auth_timeout_is_configurable() {
    let mut config = hs256_config();
    config.auth.auth_timeout_ms = 2_500;
    let mut h = Host::new(config);
    h.open(1, Credentials::None);
    h.advance(1_000);
    h.open(2, Credentials::None);
    assert_eq!(h.engine.poll_timeout(), Some(T0 + 2_500));
    h.advance(1_499);
    assert_eq!(h.closes, vec![]);
    h.advance(1);
    assert_eq!(h.closed_with(1), Some(4003));
    assert_eq!(h.closed_with(2), None);
    assert_eq!(h.engine.poll_timeout(), Some(T0 + 3_500));
    h.advance(1_000);
    assert_eq!(h.closed_with(2), Some(4003));
}
