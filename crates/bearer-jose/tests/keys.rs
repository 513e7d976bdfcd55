//! Keys from every source sign JWS that jsonwebtoken's own decoder
//! accepts; bad keys fail with typed errors that show no key bytes.

use bearer_jose::{Algorithm, JoseError, SigningKey};
use jsonwebtoken::{DecodingKey, Validation, decode};
use serde_json::{Map, Value, json};

mod fixtures;

/// Signs, then decodes with jsonwebtoken's `decode` (the public JWK as the
/// key), and returns the header it saw.
fn round_trip(key: &SigningKey, decoding: &DecodingKey) -> jsonwebtoken::Header {
    let mut header = Map::new();
    header.insert("typ".into(), json!("JWT"));
    header.insert("custom".into(), json!("x"));
    let jws = key
        .sign(
            &header,
            &json!({"sub": "client-1", "aud": "https://as.example/token", "exp": u32::MAX}),
        )
        .unwrap();
    let mut validation = Validation::new(key.algorithm());
    validation.set_audience(&["https://as.example/token"]);
    let data = decode::<Value>(&jws, decoding, &validation).expect("jsonwebtoken accepts it");
    assert_eq!(data.claims["sub"], "client-1");
    assert_eq!(data.header.alg, key.algorithm());
    assert_eq!(
        data.header.extras.get("custom").map(String::as_str),
        Some("x")
    );
    data.header
}

fn public_decoding_key(key: &SigningKey) -> DecodingKey {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().unwrap()).unwrap();
    DecodingKey::from_jwk(&jwk).unwrap()
}

#[test]
fn every_pem_algorithm_signs_what_jsonwebtoken_verifies() {
    for (alg, pem) in [
        (Algorithm::RS256, fixtures::RSA_PKCS8),
        (Algorithm::PS256, fixtures::RSA_PKCS8),
        (Algorithm::RS256, fixtures::RSA_PKCS1),
        (Algorithm::ES256, fixtures::P256_PKCS8),
        (Algorithm::EdDSA, fixtures::ED25519_PKCS8),
    ] {
        let key = SigningKey::from_pem(alg, pem.as_bytes())
            .unwrap()
            .with_kid("k-1");
        let header = round_trip(&key, &public_decoding_key(&key));
        assert_eq!(header.kid.as_deref(), Some("k-1"), "{alg:?}");
        let thumbprint = bearer_jose::jwk_thumbprint(&key.public_jwk().unwrap()).unwrap();
        assert_eq!(key.thumbprint(), Some(thumbprint.as_str()));
    }
}

#[test]
fn every_jwk_kind_signs_what_jsonwebtoken_verifies() {
    for json in [fixtures::RSA_JWK, fixtures::P256_JWK, fixtures::ED25519_JWK] {
        let key = SigningKey::from_jwk(json).unwrap();
        round_trip(&key, &public_decoding_key(&key));
    }
    // The same RSA key from PEM and from JWK has one public JWK.
    let from_pem = SigningKey::from_pem(Algorithm::RS256, fixtures::RSA_PKCS8.as_bytes()).unwrap();
    let from_jwk = SigningKey::from_jwk(fixtures::RSA_JWK).unwrap();
    assert_eq!(from_pem.thumbprint(), from_jwk.thumbprint());
}

#[test]
fn hmac_and_generated_keys_sign_what_jsonwebtoken_verifies() {
    let secret = b"0123456789abcdef0123456789abcdef-client-secret";
    let hmac = SigningKey::hmac(secret);
    round_trip(&hmac, &DecodingKey::from_secret(secret));
    let oct = SigningKey::from_jwk(
        r#"{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#,
    )
    .unwrap();
    round_trip(
        &oct,
        &DecodingKey::from_secret(b"secret-secret-secret-secret-secret"),
    );

    let generated = SigningKey::generate(Algorithm::ES256).unwrap();
    round_trip(&generated, &public_decoding_key(&generated));
    let other = SigningKey::generate(Algorithm::ES256).unwrap();
    assert_ne!(generated.thumbprint(), other.thumbprint());
}

#[test]
fn the_crate_verifier_accepts_its_own_and_refuses_the_rest() {
    let key = SigningKey::from_pem(Algorithm::ES256, fixtures::P256_PKCS8.as_bytes()).unwrap();
    let jws = key.sign(&Map::new(), &json!({"n": 1})).unwrap();
    let public = bearer_jose::VerifyingKey::from_jwk(&key.public_jwk().unwrap()).unwrap();
    assert!(bearer_jose::verify(&jws, &public, &[Algorithm::ES256]).is_ok());
    let tampered = format!("{}x", &jws[..jws.len() - 1]);
    assert!(matches!(
        bearer_jose::verify(&tampered, &public, &[Algorithm::ES256]),
        Err(JoseError::BadSignature)
    ));
    assert!(matches!(
        bearer_jose::verify(&jws, &public, &[Algorithm::HS256]),
        Err(JoseError::AlgorithmNotAllowed(_))
    ));
    assert!(matches!(
        bearer_jose::verify("a.b", &public, &[Algorithm::ES256]),
        Err(JoseError::Malformed(_))
    ));
    // Another key's signature does not verify.
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    let foreign = stranger.sign(&Map::new(), &json!({"n": 1})).unwrap();
    assert!(matches!(
        bearer_jose::verify(&foreign, &public, &[Algorithm::ES256]),
        Err(JoseError::BadSignature)
    ));
}

#[test]
fn bad_pem_and_unsupported_algorithms_are_typed_errors() {
    let err = SigningKey::from_pem(
        Algorithm::RS256,
        b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            JoseError::InvalidPem {
                alg: Algorithm::RS256,
                ..
            }
        ),
        "{err:?}"
    );
    // An EC key loaded as RSA, and an RSA key loaded as EdDSA.
    assert!(matches!(
        SigningKey::from_pem(Algorithm::RS256, fixtures::P256_PKCS8.as_bytes()),
        Err(JoseError::InvalidPem { .. })
    ));
    assert!(matches!(
        SigningKey::from_pem(Algorithm::EdDSA, fixtures::RSA_PKCS8.as_bytes()),
        Err(JoseError::InvalidPem { .. })
    ));
    // A P-256 key for ES384.
    assert!(matches!(
        SigningKey::from_pem(Algorithm::ES384, fixtures::P256_PKCS8.as_bytes()),
        Err(JoseError::InvalidPem { .. })
    ));
    assert!(matches!(
        SigningKey::from_pem(Algorithm::HS256, b"secret"),
        Err(JoseError::UnsupportedAlgorithm(_))
    ));
    assert!(matches!(
        SigningKey::generate(Algorithm::RS256),
        Err(JoseError::UnsupportedAlgorithm(_))
    ));
    // A JWK whose public half does not match its private half.
    let mut mismatched: Value = serde_json::from_str(fixtures::ED25519_JWK).unwrap();
    mismatched["x"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert!(matches!(
        SigningKey::from_jwk(&mismatched.to_string()),
        Err(JoseError::InvalidJwk { .. })
    ));
}

#[test]
fn debug_and_errors_show_no_key_material() {
    let rsa = SigningKey::from_jwk(fixtures::RSA_JWK).unwrap();
    let ed = SigningKey::from_jwk(fixtures::ED25519_JWK).unwrap();
    let hmac = SigningKey::hmac(b"hmac-secret-that-must-not-show-up");
    let rsa_d = serde_json::from_str::<Value>(fixtures::RSA_JWK).unwrap()["d"]
        .as_str()
        .unwrap()
        .to_owned();
    let ed_d = serde_json::from_str::<Value>(fixtures::ED25519_JWK).unwrap()["d"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = format!("{rsa:?} {ed:?} {hmac:?} {rsa:#?}");
    assert!(
        shown.contains("RS256") && shown.contains("thumbprint"),
        "{shown}"
    );
    for secret in [&rsa_d[..16], &ed_d[..16], "hmac-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // Errors from a damaged PEM show none of its body.
    let damaged = fixtures::RSA_PKCS8.replace("MII", "MIJ");
    let err = SigningKey::from_pem(Algorithm::RS256, damaged.as_bytes()).unwrap_err();
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let body_line = fixtures::RSA_PKCS8.lines().nth(3).unwrap();
    assert!(!text.contains(&body_line[..20]), "{text}");
}
