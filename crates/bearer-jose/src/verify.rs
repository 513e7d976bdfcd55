//! Verifying compact JWS the way a server does: for the test kit and for
//! tests. The signature check is jsonwebtoken's; claims are returned as
//! JSON for the caller's own rules (audience, times, replay).

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::JoseError;
use crate::backend;
use crate::jwk::B64;

/// A key that checks signatures: a public JWK or an HMAC secret.
#[derive(Clone)]
pub struct VerifyingKey {
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey").finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// From a public JWK (private members, if present, are ignored).
    ///
    /// # Errors
    /// [`JoseError::InvalidJwk`] when it is not a JWK jsonwebtoken reads.
    pub fn from_jwk(jwk: &Value) -> Result<Self, JoseError> {
        backend::ready()?;
        let bad = || JoseError::InvalidJwk {
            reason: "not a public JWK of a supported kind",
        };
        let parsed: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(jwk.clone()).map_err(|_| bad())?;
        let key = DecodingKey::from_jwk(&parsed).map_err(|_| bad())?;
        Ok(Self { key })
    }

    /// From an HMAC secret.
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
        }
    }
}

/// A JWS whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload, a JSON object.
    pub claims: Map<String, Value>,
}

fn json_part(part: &str, what: &'static str) -> Result<Map<String, Value>, JoseError> {
    let bytes = B64.decode(part).map_err(|_| JoseError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JoseError::Malformed(what)),
    }
}

/// The protected header of a compact JWS, unverified: for choosing the key
/// (`kid`, or DPoP's embedded `jwk`) before [`verify`].
///
/// # Errors
/// [`JoseError::Malformed`] when the token is not three parts with a
/// base64url JSON-object header.
pub fn peek_header(jws: &str) -> Result<Map<String, Value>, JoseError> {
    let header = jws.split('.').next().unwrap_or_default();
    json_part(header, "the header is not base64url JSON")
}

/// Checks a compact JWS: three parts, a header naming an algorithm in
/// `allowed` (so `none` and algorithm confusion are refused), and a
/// signature that verifies with `key`.
///
/// # Errors
/// [`JoseError::Malformed`], [`JoseError::AlgorithmNotAllowed`] or
/// [`JoseError::BadSignature`] (also when the key does not fit the
/// algorithm).
///
/// ```
/// use bearer_jose::{Algorithm, SigningKey, VerifyingKey, verify};
/// use serde_json::{Map, json};
///
/// let key = SigningKey::generate(Algorithm::ES256)?;
/// let jws = key.sign(&Map::new(), &json!({"iss": "me"}))?;
/// let public = VerifyingKey::from_jwk(&key.public_jwk().unwrap())?;
/// let checked = verify(&jws, &public, &[Algorithm::ES256])?;
/// assert_eq!(checked.claims["iss"], "me");
/// assert!(verify(&jws, &public, &[Algorithm::RS256]).is_err());
/// # Ok::<(), bearer_jose::JoseError>(())
/// ```
pub fn verify(jws: &str, key: &VerifyingKey, allowed: &[Algorithm]) -> Result<Verified, JoseError> {
    backend::ready()?;
    let mut parts = jws.split('.');
    let (Some(header_part), Some(claims_part), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("not three dot-separated parts"));
    };
    let header = json_part(header_part, "the header is not base64url JSON")?;
    let named = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JoseError::Malformed("the header has no alg"))?;
    let alg = allowed
        .iter()
        .copied()
        .find(|a| format!("{a:?}") == named)
        .ok_or_else(|| JoseError::AlgorithmNotAllowed(named.to_owned()))?;
    let signed = &jws[..header_part.len() + 1 + claims_part.len()];
    match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key.key, alg) {
        Ok(true) => {}
        _ => return Err(JoseError::BadSignature),
    }
    let claims = json_part(claims_part, "the payload is not base64url JSON")?;
    Ok(Verified { header, claims })
}
