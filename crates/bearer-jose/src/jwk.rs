//! JWKs: reading a private JWK into a key jsonwebtoken signs with,
//! writing a key's public JWK, and the RFC 7638 thumbprint.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::JoseError;
use crate::backend;
use crate::der::{self, Curve};

/// base64url without padding, as JOSE writes it.
pub(crate) const B64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Reading is lenient about trailing `=`, which some key tools emit.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The members of a private JWK we read; wiped when dropped.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct PrivateJwk {
    kty: String,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

/// A private JWK turned into what [`SigningKey`](crate::SigningKey) holds.
pub(crate) struct Imported {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) key: EncodingKey,
}

fn member(value: &Option<String>, reason: &'static str) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let text = value.as_deref().ok_or(JoseError::InvalidJwk { reason })?;
    B64_LENIENT
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|_| JoseError::InvalidJwk { reason })
}

fn algorithm(named: Option<&str>, default: Algorithm) -> Result<Algorithm, JoseError> {
    match named {
        None => Ok(default),
        Some(name) => name
            .parse()
            .map_err(|_| JoseError::UnsupportedAlgorithm(name.to_owned())),
    }
}

/// Reads a private JWK (RFC 7517/7518): RSA with its CRT members, EC on
/// P-256 or P-384, OKP Ed25519, or oct for HMAC. Without `alg`, RSA means
/// RS256, an EC curve its ES algorithm, OKP EdDSA and oct HS256.
pub(crate) fn import(json: &str) -> Result<Imported, JoseError> {
    // serde_json's messages can quote the input, so its error is dropped.
    let jwk: PrivateJwk = serde_json::from_str(json).map_err(|_| JoseError::InvalidJwk {
        reason: "not a JSON object with string members (kty, d, ...)",
    })?;
    let named = jwk.alg.as_deref();
    let (alg, key) = match jwk.kty.as_str() {
        "RSA" => {
            let alg = algorithm(named, Algorithm::RS256)?;
            if alg.family() != AlgorithmFamily::Rsa {
                return Err(JoseError::InvalidJwk {
                    reason: "alg does not fit kty RSA",
                });
            }
            let missing = "an RSA private JWK needs n, e, d, p, q, dp, dq and qi";
            let parts = [
                member(&jwk.n, missing)?,
                member(&jwk.e, missing)?,
                member(&jwk.d, missing)?,
                member(&jwk.p, missing)?,
                member(&jwk.q, missing)?,
                member(&jwk.dp, missing)?,
                member(&jwk.dq, missing)?,
                member(&jwk.qi, missing)?,
            ];
            let der = der::rsa_pkcs1(parts.each_ref().map(|p| p.as_slice()));
            (alg, EncodingKey::from_rsa_der(&der))
        }
        "EC" => {
            let (curve, default) = match jwk.crv.as_deref() {
                Some("P-256") => (Curve::P256, Algorithm::ES256),
                Some("P-384") => (Curve::P384, Algorithm::ES384),
                _ => {
                    return Err(JoseError::InvalidJwk {
                        reason: "crv must be P-256 or P-384",
                    });
                }
            };
            let alg = algorithm(named, default)?;
            if alg != default {
                return Err(JoseError::InvalidJwk {
                    reason: "alg does not fit the EC curve",
                });
            }
            let missing = "an EC private JWK needs d, x and y of the curve's size";
            let (d, x, y) = (
                member(&jwk.d, missing)?,
                member(&jwk.x, missing)?,
                member(&jwk.y, missing)?,
            );
            if [d.len(), x.len(), y.len()] != [curve.size(); 3] {
                return Err(JoseError::InvalidJwk { reason: missing });
            }
            (
                alg,
                EncodingKey::from_ec_der(&der::ec_pkcs8(curve, &d, &x, &y)),
            )
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(JoseError::InvalidJwk {
                    reason: "crv must be Ed25519",
                });
            }
            let alg = algorithm(named, Algorithm::EdDSA)?;
            if alg != Algorithm::EdDSA {
                return Err(JoseError::InvalidJwk {
                    reason: "alg does not fit kty OKP",
                });
            }
            let missing = "an Ed25519 private JWK needs d and x of 32 bytes";
            let (d, x) = (member(&jwk.d, missing)?, member(&jwk.x, missing)?);
            if d.len() != 32 || x.len() != 32 {
                return Err(JoseError::InvalidJwk { reason: missing });
            }
            let der = der::ed25519_pkcs8(&d);
            if backend::ed25519_public(&der)?
                .as_ref()
                .map(|p| p.as_slice())
                != Some(x.as_slice())
            {
                return Err(JoseError::InvalidJwk {
                    reason: "x is not the public key of d",
                });
            }
            (alg, EncodingKey::from_ed_der(&der))
        }
        "oct" => {
            let alg = algorithm(named, Algorithm::HS256)?;
            if alg.family() != AlgorithmFamily::Hmac {
                return Err(JoseError::InvalidJwk {
                    reason: "alg does not fit kty oct",
                });
            }
            let k = member(&jwk.k, "an oct JWK needs k")?;
            (alg, EncodingKey::from_secret(&k))
        }
        _ => {
            return Err(JoseError::InvalidJwk {
                reason: "kty must be RSA, EC, OKP or oct",
            });
        }
    };
    Ok(Imported {
        alg,
        kid: jwk.kid.clone(),
        key,
    })
}

/// Why a key's public half could not be made: the key bytes do not parse
/// for the algorithm.
pub(crate) struct NotAKey(pub(crate) jsonwebtoken::errors::Error);

/// The public JWK of an asymmetric key (`kty`, the key's members and
/// `alg`); `None` for HMAC. Parsing the key here is also what proves at
/// load time that it will sign.
pub(crate) fn public_jwk(
    alg: Algorithm,
    key: &EncodingKey,
) -> Result<Option<Map<String, Value>>, NotAKey> {
    let mut jwk = match alg.family() {
        AlgorithmFamily::Hmac => return Ok(None),
        AlgorithmFamily::Ed => {
            let public = backend::ed25519_public(key.inner())
                .ok()
                .flatten()
                .ok_or_else(|| NotAKey(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()))?;
            let mut jwk = Map::new();
            jwk.insert("kty".into(), "OKP".into());
            jwk.insert("crv".into(), "Ed25519".into());
            jwk.insert("x".into(), B64.encode(public).into());
            jwk
        }
        AlgorithmFamily::Rsa | AlgorithmFamily::Ec => {
            let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(key, alg).map_err(NotAKey)?;
            match serde_json::to_value(jwk) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(NotAKey(
                        jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into(),
                    ));
                }
            }
        }
    };
    jwk.insert("alg".into(), format!("{alg:?}").into());
    Ok(Some(jwk))
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: the
/// required members of its `kty`, in lexicographic order, without spaces.
/// This is the value of DPoP's `cnf.jkt`.
///
/// ```
/// // RFC 7638 §3.1's example key and thumbprint.
/// let jwk = serde_json::json!({
///     "kty": "RSA",
///     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
///     "e": "AQAB",
///     "alg": "RS256",
///     "kid": "2011-04-29"
/// });
/// assert_eq!(
///     bearer_jose::jwk_thumbprint(&jwk).unwrap(),
///     "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
/// );
/// ```
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, JoseError> {
    let bad = JoseError::InvalidJwk {
        reason: "a public JWK needs kty and its required members",
    };
    let kty = jwk.get("kty").and_then(Value::as_str).ok_or(bad)?;
    let required: &[&str] = match kty {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "oct" => &["k", "kty"],
        _ => {
            return Err(JoseError::InvalidJwk {
                reason: "kty must be RSA, EC, OKP or oct",
            });
        }
    };
    let mut canonical = String::from("{");
    for (i, name) in required.iter().enumerate() {
        let value = jwk
            .get(*name)
            .and_then(Value::as_str)
            .ok_or(JoseError::InvalidJwk {
                reason: "a public JWK needs kty and its required members",
            })?;
        if i > 0 {
            canonical.push(',');
        }
        // serde_json writes a string as JSON (quoted, escaped) and cannot fail.
        canonical.push_str(&Value::from(*name).to_string());
        canonical.push(':');
        canonical.push_str(&Value::from(value).to_string());
    }
    canonical.push('}');
    Ok(B64.encode(Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_thumbprint_needs_the_required_members() {
        let no_y = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA"});
        assert!(matches!(
            jwk_thumbprint(&no_y),
            Err(JoseError::InvalidJwk { .. })
        ));
        let odd = serde_json::json!({"kty": "XYZ"});
        assert!(matches!(
            jwk_thumbprint(&odd),
            Err(JoseError::InvalidJwk { .. })
        ));
    }

    #[test]
    fn bad_private_jwks_are_named_without_their_bytes() {
        for (json, reason) in [
            ("not json d=SECRETSECRET", "not a JSON object"),
            (
                r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"SECRETSECRET"}"#,
                "needs n, e, d, p",
            ),
            (
                r#"{"kty":"EC","crv":"P-521","d":"SECRETSECRET"}"#,
                "crv must be",
            ),
            (
                r#"{"kty":"EC","crv":"P-256","d":"SECRETSECRET","x":"AA","y":"AA"}"#,
                "of the curve's size",
            ),
            (
                r#"{"kty":"OKP","crv":"X25519","d":"SECRETSECRET"}"#,
                "crv must be Ed25519",
            ),
            (
                r#"{"kty":"oct","alg":"RS256","k":"SECRETSECRET"}"#,
                "alg does not fit",
            ),
            (r#"{"kty":"foo"}"#, "kty must be"),
        ] {
            let err = import(json).err().expect(json);
            let text = format!("{err} {err:?}");
            assert!(text.contains(reason), "{text}");
            assert!(!text.contains("SECRETSECRET"), "{text}");
        }
        let err = import(r#"{"kty":"oct","alg":"HS999","k":"AA"}"#)
            .err()
            .unwrap();
        assert!(matches!(err, JoseError::UnsupportedAlgorithm(ref a) if a == "HS999"));
    }
}
