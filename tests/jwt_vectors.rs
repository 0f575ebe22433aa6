//! The shared JWT vectors (tests/vectors/jwt.json) through the engine's own
//! verification: every token gets the verdict the file records. The
//! WebCrypto path (js/jwt.js) is held to the same file by
//! tests/js/jwt.test.js, so the two paths agree token for token.

// On wasm32 the same tests run under wasm-bindgen-test (Node and Chromium).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use rollcall::auth::jwt::Verifier;
use rollcall::{Algorithm, AuthConfig, JwtKey};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/jwt.json")).expect("valid JSON")
}

fn config(file: &Value, name: &str) -> AuthConfig {
    let keys = file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let algorithm: Algorithm = serde_json::from_value(k["algorithm"].clone()).unwrap();
            let text = |f: &str| k[f].as_str().map(String::from);
            JwtKey { kid: text("kid"), algorithm, secret: text("secret"), secret_bytes: None, pem: text("pem") }
        })
        .collect();
    let mut auth = AuthConfig { keys, ..AuthConfig::default() };
    let c = &file["configs"][name];
    let strings = |v: &Value| v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect());
    if let Some(issuers) = strings(&c["issuers"]) {
        auth.issuers = issuers;
    }
    if let Some(audiences) = strings(&c["audiences"]) {
        auth.audiences = audiences;
    }
    if let Some(leeway) = c["leewayMs"].as_u64() {
        auth.leeway_ms = leeway;
    }
    auth
}

#[test]
fn the_engine_gives_every_recorded_verdict() {
    let file = vectors();
    let now = file["now"].as_u64().unwrap();
    let mut wrong = Vec::new();
    let vectors = file["vectors"].as_array().unwrap();
    for v in vectors {
        let verifier = Verifier::new(&config(&file, v["config"].as_str().unwrap())).expect("valid keys");
        let got = match verifier.verify(v["token"].as_str().unwrap(), now) {
            Ok(_) => "OK".to_string(),
            Err(e) => e.as_str().to_string(),
        };
        if got != v["expect"] {
            wrong.push(format!("{}: expected {}, got {got}", v["name"], v["expect"]));
        }
    }
    assert!(wrong.is_empty(), "{} of {} vectors differ:\n{}", wrong.len(), vectors.len(), wrong.join("\n"));
    // Every algorithm the edge path supports is covered.
    for alg in ["HS256", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"] {
        assert!(vectors.iter().any(|v| v["name"].as_str().unwrap().starts_with(alg) && v["expect"] == "OK"), "{alg}");
    }
}
