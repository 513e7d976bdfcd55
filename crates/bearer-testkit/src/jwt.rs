//! JWT-shaped access tokens, for clients that read `exp` from the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bearer_jose::SigningKey;
use serde_json::{Map, Value, json};

/// Encodes `claims` as `alg: none` (`key` absent) or HS256 (signed by
/// bearer-jose; an unsigned JWT no signing library makes, so it is
/// written here).
pub(crate) fn encode(claims: &Value, key: Option<&[u8]>) -> String {
    if let Some(key) = key {
        let mut header = Map::new();
        header.insert("typ".into(), "JWT".into());
        // HMAC signing of serializable JSON cannot fail.
        return SigningKey::hmac(key)
            .sign(&header, claims)
            .unwrap_or_default();
    }
    let header = json!({ "alg": "none", "typ": "JWT" });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bearer_jose::{Algorithm, VerifyingKey, verify};

    #[test]
    fn hs256_tokens_verify_and_unsigned_ones_say_none() {
        let claims = json!({"sub": "x", "exp": 10});
        let signed = encode(&claims, Some(b"key"));
        let checked = verify(&signed, &VerifyingKey::hmac(b"key"), &[Algorithm::HS256]).unwrap();
        assert_eq!(checked.claims["sub"], "x");
        let unsigned = encode(&claims, None);
        assert!(unsigned.ends_with('.'));
        assert_eq!(bearer_jose::peek_header(&unsigned).unwrap()["alg"], "none");
    }
}
