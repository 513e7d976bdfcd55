//! Client authentication by JWT assertion (RFC 7523 §2.2, OpenID Connect
//! Core §9): the claims of one `client_assertion` and the knobs that shape it.

use std::time::{Duration, SystemTime};

use bearer_jose::{JoseError, SigningKey};
use serde::Serialize;

/// The `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The default lifetime of an assertion: long enough for a slow network
/// and a clock a little off, short enough that a leaked one is soon
/// useless.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// What a client assertion's `aud` names.
///
/// RFC 7523 lets the authorization server choose; most accept the token
/// endpoint's URL (the default), some (and FAPI 2.0 profiles) want the
/// issuer identifier.
///
/// ```
/// use bearer_oauth2::{AssertionAudience, ClientAuth, OAuthClient};
/// use bearer_jose::{Algorithm, SigningKey};
///
/// let key = SigningKey::generate(Algorithm::ES256)?.with_kid("svc-2026");
/// let client = OAuthClient::new("https://idp.example/oauth2/token".parse().unwrap(), "svc")
///     .auth_method(ClientAuth::PrivateKeyJwt(key))
///     .assertion_audience(AssertionAudience::Issuer("https://idp.example".into()));
/// # let _ = client;
/// # Ok::<(), bearer_jose::JoseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The URL of the token endpoint (the default), also when the
    /// assertion goes to the device authorization endpoint.
    #[default]
    TokenEndpoint,
    /// The authorization server's issuer identifier, as given.
    Issuer(String),
}

/// How assertions are made: audience and lifetime.
#[derive(Debug, Clone, Default)]
pub(crate) struct AssertionOptions {
    pub audience: AssertionAudience,
    /// `None` means [`DEFAULT_ASSERTION_LIFETIME`].
    pub lifetime: Option<Duration>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// One fresh assertion for `client_id`: `iss` = `sub` = the client,
/// `aud` = `audience`, `iat` now, `exp` a lifetime later, a new `jti`, and
/// the key's `kid` in the header when it has one.
pub(crate) fn client_assertion(
    key: &SigningKey,
    client_id: &str,
    audience: &str,
    now: SystemTime,
    lifetime: Duration,
) -> Result<String, JoseError> {
    let (iat, exp) = bearer_jose::issued_and_expiry(now, lifetime);
    let claims = Claims {
        iss: client_id,
        sub: client_id,
        aud: audience,
        iat,
        exp,
        jti: bearer_jose::new_jti(),
    };
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "JWT".into());
    key.sign(&header, &claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bearer_jose::{Algorithm, VerifyingKey, verify};
    use std::time::UNIX_EPOCH;

    #[test]
    fn an_assertion_carries_the_rfc_7523_claims() {
        let key = SigningKey::generate(Algorithm::ES256)
            .unwrap()
            .with_kid("k9");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let sign = || {
            client_assertion(
                &key,
                "svc",
                "https://as/token",
                now,
                DEFAULT_ASSERTION_LIFETIME,
            )
            .unwrap()
        };
        let public = VerifyingKey::from_jwk(&key.public_jwk().unwrap()).unwrap();
        let checked = verify(&sign(), &public, &[Algorithm::ES256]).unwrap();
        assert_eq!(checked.header["kid"], "k9");
        let c = &checked.claims;
        assert_eq!(
            (c["iss"].as_str(), c["sub"].as_str()),
            (Some("svc"), Some("svc"))
        );
        assert_eq!(c["aud"], "https://as/token");
        assert_eq!(
            (c["iat"].as_u64(), c["exp"].as_u64()),
            (Some(1_000_000), Some(1_000_060))
        );
        let again = sign();
        let again = verify(&again, &public, &[Algorithm::ES256]).unwrap();
        assert_ne!(
            again.claims["jti"], c["jti"],
            "every assertion has its own jti"
        );
    }
}
