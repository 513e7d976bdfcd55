//! DPoP (RFC 9449) as a strict server checks it: proofs at the token
//! endpoint and the protected API, nonces, and tokens bound to a key.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bearer_jose::{Algorithm, VerifyingKey, jwk_thumbprint, peek_header, verify};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::oauth::no_store_json;
use crate::state::{Shared, lock};
use crate::store::random_token;

/// How far a proof's `iat` may be from the server's now, either way.
const IAT_WINDOW_SECS: u64 = 60;

/// The algorithms proofs may be signed with (`dpop_signing_alg_values_supported`).
pub(crate) const ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// JWK members that only a private key has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A misbehaviour of the server's DPoP checks, injected through
/// [`Control::fail_next_dpop_proofs`](crate::Control::fail_next_dpop_proofs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopFault {
    /// The server rotates its nonce before checking the proof, so the
    /// nonce the client holds is stale: answered `use_dpop_nonce` with the
    /// new one (nonces are required from then on).
    StaleNonce,
    /// The proof's `jti` is taken as already used: `invalid_dpop_proof`.
    ReplayedJti,
    /// The proof's `ath` is taken as not matching the token:
    /// `invalid_dpop_proof` (at the API; the token endpoint has no `ath`).
    WrongAth,
}

/// What the server's DPoP checks saw ([`Control::dpop_counts`](crate::Control::dpop_counts)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DpopCounts {
    /// Proofs accepted, at the token endpoint and the API.
    pub proofs_accepted: u64,
    /// Proofs refused as invalid (`invalid_dpop_proof`).
    pub proofs_refused: u64,
    /// Answers asking for a (new) nonce (`use_dpop_nonce`).
    pub nonce_challenges: u64,
    /// Tokens issued bound to a key (`token_type: DPoP`, `cnf.jkt`).
    pub bound_tokens_issued: u64,
    /// API requests whose token was bound to another key than the proof's,
    /// or that sent a bound token as a bearer token.
    pub binding_mismatches: u64,
}

/// The server's DPoP state.
#[derive(Debug)]
pub(crate) struct DpopState {
    require_nonce: bool,
    nonce: String,
    /// Accepted `jti`s with their `iat`, forgotten once out of the window.
    seen: HashMap<String, u64>,
    faults: VecDeque<DpopFault>,
    counts: DpopCounts,
}

impl Default for DpopState {
    fn default() -> Self {
        DpopState {
            require_nonce: false,
            nonce: random_token(),
            seen: HashMap::new(),
            faults: VecDeque::new(),
            counts: DpopCounts::default(),
        }
    }
}

impl DpopState {
    pub(crate) fn set_require_nonce(&mut self, require: bool) {
        self.require_nonce = require;
    }

    pub(crate) fn rotate_nonce(&mut self) {
        self.nonce = random_token();
    }

    pub(crate) fn push_faults(&mut self, n: u64, fault: DpopFault) {
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(10_000);
        self.faults.extend(std::iter::repeat_n(fault, n));
    }

    pub(crate) fn counts(&self) -> DpopCounts {
        self.counts
    }

    /// The nonce to hand out with answers, when nonces are on.
    fn offered_nonce(&self) -> Option<&str> {
        self.require_nonce.then_some(self.nonce.as_str())
    }
}

/// Why a proof was not accepted.
#[derive(Debug)]
pub(crate) enum Refused {
    /// `use_dpop_nonce`: resend with the nonce in `DPoP-Nonce`.
    UseNonce,
    /// `invalid_dpop_proof`, with what was wrong.
    Invalid(String),
}

/// `ath`: base64url SHA-256 of the access token.
fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A URL as `htu` compares: no query or fragment, scheme and host
/// normalised by the URL parser.
fn normalized_target(url: &str) -> Option<String> {
    let mut url = Url::parse(url).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// Checks the request's `DPoP` proof for `method` on `target`, with `ath`
/// against `token` when the request carries one. Answers the thumbprint
/// of the proof's key.
pub(crate) fn check_proof(
    shared: &Shared,
    headers: &HeaderMap,
    method: &str,
    target: &str,
    token: Option<&str>,
) -> Result<String, Refused> {
    let invalid = |why: &str| Refused::Invalid(why.to_owned());
    let mut state = lock(&shared.dpop);
    let result = (|| {
        match state.faults.pop_front() {
            Some(DpopFault::StaleNonce) => {
                state.rotate_nonce();
                state.require_nonce = true;
                return Err(Refused::UseNonce);
            }
            Some(DpopFault::ReplayedJti) => return Err(invalid("the proof's jti was used before")),
            Some(DpopFault::WrongAth) if token.is_some() => {
                return Err(invalid("the proof's ath does not match the access token"));
            }
            _ => {}
        }
        let mut values = headers.get_all("dpop").iter();
        let (Some(proof), None) = (values.next(), values.next()) else {
            return Err(invalid("exactly one DPoP header is required"));
        };
        let proof = proof
            .to_str()
            .map_err(|_| invalid("the DPoP header is not ASCII"))?;
        let header = peek_header(proof).map_err(|_| invalid("the proof is not a JWS"))?;
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(invalid("the proof's typ is not dpop+jwt"));
        }
        let Some(Value::Object(jwk)) = header.get("jwk") else {
            return Err(invalid("the proof's header has no jwk"));
        };
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(invalid("the proof's jwk holds a private key"));
        }
        let jwk = Value::Object(jwk.clone());
        let key = VerifyingKey::from_jwk(&jwk)
            .map_err(|_| invalid("the proof's jwk is not a usable public key"))?;
        let claims = verify(proof, &key, ALGORITHMS)
            .map_err(|e| Refused::Invalid(format!("the proof does not verify: {e}")))?
            .claims;
        check_claims(
            &mut state,
            shared.now().unix,
            &claims,
            method,
            target,
            token,
        )?;
        let jkt = jwk_thumbprint(&jwk).map_err(|_| invalid("the proof's jwk has no thumbprint"))?;
        let (jti, iat) = (
            claims["jti"].as_str().unwrap_or_default(),
            claims["iat"].as_u64().unwrap_or_default(),
        );
        state.seen.insert(jti.to_owned(), iat);
        Ok(jkt)
    })();
    match &result {
        Ok(_) => state.counts.proofs_accepted += 1,
        Err(Refused::UseNonce) => state.counts.nonce_challenges += 1,
        Err(Refused::Invalid(_)) => state.counts.proofs_refused += 1,
    }
    result
}

fn check_claims(
    state: &mut DpopState,
    now: u64,
    claims: &Map<String, Value>,
    method: &str,
    target: &str,
    token: Option<&str>,
) -> Result<(), Refused> {
    let invalid = |why: &str| Refused::Invalid(why.to_owned());
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("htm") != Some(method) {
        return Err(invalid("the proof's htm is not the request's method"));
    }
    let htu = text("htu").and_then(normalized_target);
    if htu.is_none() || htu != normalized_target(target) {
        return Err(invalid("the proof's htu is not the request's URL"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("the proof has no numeric iat"))?;
    if iat.abs_diff(now) > IAT_WINDOW_SECS {
        return Err(invalid("the proof's iat is outside the accepted window"));
    }
    let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= 256);
    let Some(jti) = jti else {
        return Err(invalid("the proof has no usable jti"));
    };
    state
        .seen
        .retain(|_, seen_iat| seen_iat.abs_diff(now) <= 2 * IAT_WINDOW_SECS);
    if state.seen.contains_key(jti) {
        return Err(invalid("the proof's jti was used before"));
    }
    if let Some(token) = token {
        if text("ath") != Some(token_hash(token).as_str()) {
            return Err(invalid("the proof's ath does not match the access token"));
        }
    }
    if state.require_nonce && text("nonce") != Some(state.nonce.as_str()) {
        return Err(Refused::UseNonce);
    }
    Ok(())
}

/// The token endpoint's check: `Ok(None)` when the request has no proof
/// (a bearer token is issued), `Ok(Some(jkt))` to bind the token, or the
/// RFC 9449 §5 error answer.
pub(crate) fn at_token_endpoint(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<Option<String>, Box<Response>> {
    if !headers.contains_key("dpop") {
        return Ok(None);
    }
    let target = crate::server::join(&shared.base_url, "/token");
    match check_proof(shared, headers, "POST", target.as_str(), None) {
        Ok(jkt) => Ok(Some(jkt)),
        Err(refused) => {
            let (error, why) = match refused {
                Refused::UseNonce => ("use_dpop_nonce", "a DPoP nonce is required".to_owned()),
                Refused::Invalid(why) => ("invalid_dpop_proof", why),
            };
            let body = json!({ "error": error, "error_description": why });
            let mut response = no_store_json(StatusCode::BAD_REQUEST, &body);
            with_nonce(shared, &mut response);
            Err(Box::new(response))
        }
    }
}

/// Binds the token in a success body to `jkt`: `token_type: DPoP`, the
/// thumbprint kept with the token (and in a JWT's `cnf`).
pub(crate) fn bind_issued(shared: &Shared, body: &mut Map<String, Value>, jkt: &str) {
    let Some(token) = body
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let mut store = lock(&shared.store);
    let Some(mut record) = store.access.remove(&token) else {
        return;
    };
    record.jkt = Some(jkt.to_owned());
    let bound = match rebind_jwt(shared, &token, jkt) {
        Some(jwt) => jwt,
        None => token,
    };
    store.access.insert(bound.clone(), record);
    drop(store);
    body.insert("access_token".into(), bound.into());
    body.insert("token_type".into(), "DPoP".into());
    lock(&shared.dpop).counts.bound_tokens_issued += 1;
}

/// A JWT access token issued again with `cnf.jkt`; `None` for opaque ones.
fn rebind_jwt(shared: &Shared, token: &str, jkt: &str) -> Option<String> {
    let key = match &shared.settings().access_token_format {
        crate::config::AccessTokenFormat::Opaque => return None,
        crate::config::AccessTokenFormat::JwtUnsigned => None,
        crate::config::AccessTokenFormat::JwtHs256 { key } => Some(key.clone()),
    };
    let payload = token.split('.').nth(1)?;
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["cnf"] = json!({ "jkt": jkt });
    Some(crate::jwt::encode(&claims, key.as_deref()))
}

/// Adds the current nonce to an answer, when nonces are on.
pub(crate) fn with_nonce(shared: &Shared, response: &mut Response) {
    if let Some(nonce) = lock(&shared.dpop).offered_nonce() {
        if let Ok(value) = HeaderValue::from_str(nonce) {
            response.headers_mut().insert("dpop-nonce", value);
        }
    }
}

/// The protected API's DPoP check, before the handlers: a `DPoP` request
/// must prove the key its token is bound to; a bound token may not come as
/// a bearer token. Other requests pass as they are.
pub(crate) async fn api_layer(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(scheme, token)| (scheme.to_ascii_lowercase(), token.trim().to_owned()));
    match presented {
        Some((scheme, token)) if scheme == "dpop" => {
            let (method, path) = (request.method().clone(), request.uri().path().to_owned());
            let checked =
                check_api_request(&shared, method.as_str(), &path, request.headers(), &token).await;
            if let Err(response) = checked {
                shared.count(|c| {
                    c.api_requests += 1;
                    c.api_unauthorized += 1;
                });
                return response;
            }
        }
        Some((scheme, token)) if scheme == "bearer" => {
            let bound = lock(&shared.store)
                .access
                .get(&token)
                .is_some_and(|r| r.jkt.is_some());
            if bound {
                lock(&shared.dpop).counts.binding_mismatches += 1;
                shared.count(|c| {
                    c.api_requests += 1;
                    c.api_unauthorized += 1;
                });
                return challenge(
                    &shared,
                    "invalid_token",
                    "a DPoP-bound token needs the DPoP scheme and a proof",
                );
            }
        }
        _ => {}
    }
    let mut response = next.run(request).await;
    with_nonce(&shared, &mut response);
    response
}

async fn check_api_request(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), Response> {
    let validator = shared.settings().validator;
    let info = validator
        .validate(shared, token)
        .await
        .map_err(|why| challenge(shared, "invalid_token", &why))?;
    let Some(bound_to) = info.jkt else {
        return Err(challenge(
            shared,
            "invalid_token",
            "the token is not bound to a DPoP key",
        ));
    };
    let target = crate::server::join(&shared.base_url, path);
    match check_proof(shared, headers, method, target.as_str(), Some(token)) {
        Ok(jkt) if jkt == bound_to => Ok(()),
        Ok(_) => {
            lock(&shared.dpop).counts.binding_mismatches += 1;
            Err(challenge(
                shared,
                "invalid_token",
                "the token is bound to another key",
            ))
        }
        Err(Refused::UseNonce) => Err(challenge(
            shared,
            "use_dpop_nonce",
            "a DPoP nonce is required",
        )),
        Err(Refused::Invalid(why)) => Err(challenge(shared, "invalid_dpop_proof", &why)),
    }
}

/// 401 with a `DPoP` challenge (RFC 9449 §7.1), the nonce when nonces are on.
fn challenge(shared: &Shared, error: &str, why: &str) -> Response {
    let algs: Vec<String> = ALGORITHMS.iter().map(|a| format!("{a:?}")).collect();
    let why: String = why
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect();
    let value = format!(
        "DPoP error=\"{error}\", error_description=\"{why}\", algs=\"{}\"",
        algs.join(" ")
    );
    let body = json!({ "error": error, "error_description": why });
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    with_nonce(shared, &mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_without_query_and_fragment() {
        assert_eq!(
            normalized_target("HTTP://LOCALHOST:80/a?b#c").as_deref(),
            Some("http://localhost/a")
        );
        assert_eq!(normalized_target("not a url"), None);
    }

    #[test]
    fn rfc9449_ath_example() {
        assert_eq!(
            token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
