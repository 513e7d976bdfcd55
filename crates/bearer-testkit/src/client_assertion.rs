//! Client authentication by JWT assertion (RFC 7523 §2.2, OpenID Connect
//! Core §9: `private_key_jwt`, `client_secret_jwt`), checked the way a
//! strict authorization server checks it: the signature with the client's
//! registered key, an allowed algorithm, `iss` = `sub` = the client, an
//! accepted `aud`, `exp`/`iat` within bounds, and a `jti` never seen before.

use std::collections::HashMap;

use bearer_jose::{Algorithm, VerifyingKey};
use serde_json::{Map, Value};

use crate::config::ClientConfig;
use crate::counters::ClientAuthMethod;
use crate::oauth::OAuthError;
use crate::state::{Shared, lock};

/// The only `client_assertion_type` this server knows.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest `exp - iat` accepted: an assertion is meant for one request.
pub(crate) const MAX_LIFETIME_SECS: u64 = 300;

/// How far in the future an `iat` may be (clock skew).
pub(crate) const SKEW_SECS: u64 = 30;

/// How a client registered for assertions authenticates.
#[derive(Debug, Clone)]
pub(crate) enum AssertionKeys {
    /// `private_key_jwt` with these public JWKs (several during a rotation).
    PublicKeys(Vec<Value>),
    /// `client_secret_jwt`: HMAC over the client's secret.
    Secret,
}

/// A client's assertion registration.
#[derive(Debug, Clone)]
pub(crate) struct AssertionRegistration {
    pub(crate) keys: AssertionKeys,
    pub(crate) algorithms: Vec<Algorithm>,
}

/// The assertion-related state of the server: seen `jti`s and faults.
#[derive(Debug, Default)]
pub(crate) struct AssertionBook {
    /// `(client, jti)` → the assertion's `exp`, kept until then.
    seen: HashMap<(String, String), u64>,
    /// Assertions still to refuse although valid (an injected fault).
    reject_next: u64,
}

impl AssertionBook {
    pub(crate) fn reject_next(&mut self, n: u64) {
        self.reject_next = n;
    }

    /// Records `jti` for `client`; `false` when it was already there.
    /// Entries past their `exp` are dropped first, which bounds the book
    /// by the assertions of the last few minutes.
    fn first_use(&mut self, client: &str, jti: &str, exp: u64, now: u64) -> bool {
        self.seen.retain(|_, until| *until >= now);
        self.seen
            .insert((client.to_owned(), jti.to_owned()), exp)
            .is_none()
    }
}

impl ClientConfig {
    /// A `private_key_jwt` client: it authenticates only with assertions
    /// signed by the private half of `public_jwk` (RS256, PS256, ES256 or
    /// EdDSA by default, see [`assertion_algorithms`](Self::assertion_algorithms)).
    /// All scopes and grants as [`confidential`](Self::confidential).
    ///
    /// ```
    /// use bearer_jose::{Algorithm, SigningKey};
    /// use bearer_testkit::ClientConfig;
    ///
    /// let key = SigningKey::generate(Algorithm::ES256)?;
    /// let client = ClientConfig::private_key_jwt("svc", key.public_jwk().unwrap());
    /// assert_eq!(client.secret(), None);
    /// # Ok::<(), bearer_jose::JoseError>(())
    /// ```
    pub fn private_key_jwt(id: impl Into<String>, public_jwk: Value) -> Self {
        let mut client = ClientConfig::public(id);
        client.assertion = Some(AssertionRegistration {
            keys: AssertionKeys::PublicKeys(vec![public_jwk]),
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::PS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
            ],
        });
        client
    }

    /// A `client_secret_jwt` client: it authenticates only with HS256
    /// assertions keyed with `secret` (never with the secret itself).
    pub fn client_secret_jwt(id: impl Into<String>, secret: impl Into<String>) -> Self {
        let mut client = ClientConfig::confidential(id, secret);
        client.assertion = Some(AssertionRegistration {
            keys: AssertionKeys::Secret,
            algorithms: vec![Algorithm::HS256],
        });
        client
    }

    /// Registers another public JWK for a `private_key_jwt` client (a key
    /// rotation: assertions from either verify; `kid` picks when given).
    /// No effect on other clients.
    pub fn add_jwk(mut self, public_jwk: Value) -> Self {
        if let Some(AssertionRegistration {
            keys: AssertionKeys::PublicKeys(keys),
            ..
        }) = &mut self.assertion
        {
            keys.push(public_jwk);
        }
        self
    }

    /// Replaces the algorithms an assertion may use. No effect on clients
    /// that do not authenticate with assertions.
    pub fn assertion_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if let Some(registration) = &mut self.assertion {
            registration.algorithms = algorithms.to_vec();
        }
        self
    }
}

/// The method an assertion claims, from its header's `alg` (HMAC means
/// `client_secret_jwt`); `None` when the header does not parse.
pub(crate) fn method_of(assertion: &str) -> Option<ClientAuthMethod> {
    let header = bearer_jose::peek_header(assertion).ok()?;
    let alg = header.get("alg")?.as_str()?;
    Some(if alg.starts_with("HS") {
        ClientAuthMethod::ClientSecretJwt
    } else {
        ClientAuthMethod::PrivateKeyJwt
    })
}

/// The client an assertion names (`sub`), read before verifying so the
/// key can be found.
pub(crate) fn subject_of(assertion: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

fn refused(why: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client(why, false)
}

/// Verifies `assertion` for `client` (whose id the caller looked up from
/// `sub`) and records its `jti`.
pub(crate) fn verify(
    shared: &Shared,
    client: &ClientConfig,
    assertion_type: Option<&str>,
    assertion: &str,
) -> Result<(), OAuthError> {
    let result = check(shared, client, assertion_type, assertion);
    if result.is_err() {
        shared.count(|c| c.assertions_rejected += 1);
    }
    result
}

fn check(
    shared: &Shared,
    client: &ClientConfig,
    assertion_type: Option<&str>,
    assertion: &str,
) -> Result<(), OAuthError> {
    if assertion_type != Some(JWT_BEARER) {
        return Err(refused("unsupported client_assertion_type"));
    }
    let registration = client
        .assertion
        .as_ref()
        .ok_or_else(|| refused("this client is not registered for client assertions"))?;
    {
        let mut book = lock(&shared.assertions);
        if book.reject_next > 0 {
            book.reject_next -= 1;
            return Err(refused("the client assertion was refused (injected fault)"));
        }
    }
    let header = bearer_jose::peek_header(assertion)
        .map_err(|_| refused("the client assertion is not a JWS"))?;
    let keys: Vec<VerifyingKey> = match &registration.keys {
        AssertionKeys::Secret => {
            let secret = client.secret.as_deref().unwrap_or_default();
            vec![VerifyingKey::hmac(secret.as_bytes())]
        }
        AssertionKeys::PublicKeys(jwks) => {
            let kid = header.get("kid").and_then(Value::as_str);
            jwks.iter()
                .filter(|jwk| kid.is_none() || jwk.get("kid").and_then(Value::as_str) == kid)
                .filter_map(|jwk| VerifyingKey::from_jwk(jwk).ok())
                .collect()
        }
    };
    if keys.is_empty() {
        return Err(refused("no registered key matches the assertion's kid"));
    }
    let mut last = refused("the client assertion's signature does not verify");
    let mut verified = None;
    for key in &keys {
        match bearer_jose::verify(assertion, key, &registration.algorithms) {
            Ok(v) => {
                verified = Some(v);
                break;
            }
            Err(bearer_jose::JoseError::AlgorithmNotAllowed(alg)) => {
                last = refused(format!("algorithm {alg} is not allowed for this client"));
            }
            Err(_) => {}
        }
    }
    let claims = verified.ok_or(last)?.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client.id()) || text("sub") != Some(client.id()) {
        return Err(refused("iss and sub must both be the client id"));
    }
    if !audience_accepted(shared, claims.get("aud")) {
        return Err(refused(
            "the assertion's aud is neither the token endpoint nor the issuer",
        ));
    }
    let now = shared.now().unix;
    let number = |name: &str| claims.get(name).and_then(Value::as_u64);
    let exp = number("exp").ok_or_else(|| refused("the assertion has no exp"))?;
    let iat = number("iat").ok_or_else(|| refused("the assertion has no iat"))?;
    check_times(now, iat, exp).map_err(refused)?;
    let jti = text("jti").ok_or_else(|| refused("the assertion has no jti"))?;
    if !lock(&shared.assertions).first_use(client.id(), jti, exp, now) {
        shared.count(|c| c.assertion_replays += 1);
        return Err(refused("the assertion's jti was already used"));
    }
    Ok(())
}

/// `aud` (a string or an array) names the token endpoint or the issuer.
fn audience_accepted(shared: &Shared, aud: Option<&Value>) -> bool {
    let issuer = shared.issuer();
    let token_endpoint = crate::server::join(&shared.base_url, "/token").to_string();
    let accepted = |a: &str| {
        let a = a.trim_end_matches('/');
        a == issuer.trim_end_matches('/') || a == token_endpoint.trim_end_matches('/')
    };
    match aud {
        Some(Value::String(a)) => accepted(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(accepted),
        _ => false,
    }
}

/// The time rule: not expired, not issued in the future (beyond skew), and
/// not valid for longer than [`MAX_LIFETIME_SECS`].
fn check_times(now: u64, iat: u64, exp: u64) -> Result<(), &'static str> {
    if exp <= now {
        return Err("the assertion has expired");
    }
    if iat > now.saturating_add(SKEW_SECS) {
        return Err("the assertion's iat is in the future");
    }
    if exp.saturating_sub(iat) > MAX_LIFETIME_SECS {
        return Err("the assertion is valid for too long");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_rule() {
        assert!(check_times(1_000, 1_000, 1_060).is_ok());
        assert_eq!(
            check_times(1_000, 900, 1_000),
            Err("the assertion has expired")
        );
        assert_eq!(
            check_times(1_000, 1_031, 1_090),
            Err("the assertion's iat is in the future")
        );
        assert!(check_times(1_000, 1_030, 1_090).is_ok());
        assert_eq!(
            check_times(1_000, 1_000, 1_301),
            Err("the assertion is valid for too long")
        );
        assert_eq!(
            check_times(1_000, 0, u64::MAX),
            Err("the assertion is valid for too long")
        );
    }

    #[test]
    fn a_jti_counts_once_until_its_exp() {
        let mut book = AssertionBook::default();
        assert!(book.first_use("c", "j1", 100, 10));
        assert!(!book.first_use("c", "j1", 100, 50));
        assert!(book.first_use("other", "j1", 100, 50), "per client");
        // After exp the entry is gone (the assertion would fail on exp anyway).
        assert!(book.first_use("c", "j1", 200, 101));
        assert_eq!(book.seen.len(), 1);
    }
}
