//! The protected API under `/api/...` and the other origin.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use rand::RngExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::counters::Endpoint;
use crate::server::join;
use crate::state::{Shared, lock};
use crate::validator::TokenInfo;

/// Bodies up to this size are echoed back as text; larger ones only by
/// length and digest.
const ECHO_BODY_LIMIT: usize = 1024 * 1024;

/// What the `Authorization` header carried.
pub(crate) enum Presented {
    Nothing,
    Malformed(&'static str),
    Token(String),
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Presented {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() {
        return Presented::Malformed("more than one Authorization header");
    }
    let Ok(value) = value.to_str() else {
        return Presented::Malformed("the Authorization header is not ASCII");
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    // A DPoP request got here past `dpop::api_layer`'s proof check.
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("dpop") {
        // Another scheme is no bearer token at all (RFC 6750 §3.1).
        return Presented::Nothing;
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Presented::Malformed("malformed bearer token");
    }
    Presented::Token(token.to_owned())
}

/// Counts the request and checks its bearer token; the error is the answer.
pub(crate) async fn guard(shared: &Shared, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    shared.record_headers(Endpoint::Api, headers);
    shared.count(|c| c.api_requests += 1);
    let token = match bearer_token(headers) {
        Presented::Nothing => return Err(unauthorized(shared, None)),
        Presented::Malformed(why) => return Err(invalid_request(why)),
        Presented::Token(token) => token,
    };
    let settings = {
        let mut settings = lock(&shared.settings);
        let rejected = settings.reject_api_requests > 0;
        settings.reject_api_requests = settings.reject_api_requests.saturating_sub(1);
        if rejected {
            drop(settings);
            return Err(unauthorized(shared, Some("the server rejected the token")));
        }
        settings.clone()
    };
    let info = settings
        .validator
        .validate(shared, &token)
        .await
        .map_err(|why| unauthorized(shared, Some(&why)))?;
    let p = settings.revoke_presented_probability;
    if p > 0.0 && lock(&shared.rng).random_bool(p) {
        if let Some(record) = lock(&shared.store).access.get_mut(&token) {
            record.revoked = true;
        }
        return Err(unauthorized(shared, Some("the access token was revoked")));
    }
    if let Some(audience) = settings
        .required_audience
        .as_ref()
        .filter(|a| !info.audience.contains(a))
    {
        let why = format!("the token's audience does not include {audience}");
        return Err(unauthorized(shared, Some(&why)));
    }
    Ok(info)
}

/// 401 with an RFC 6750 challenge; no `error` when no token was sent (§3.1).
pub(crate) fn unauthorized(shared: &Shared, invalid_token: Option<&str>) -> Response {
    shared.count(|c| c.api_unauthorized += 1);
    let (challenge, body) = match invalid_token {
        None => (
            "Bearer realm=\"testkit\"".to_owned(),
            json!({ "message": "a bearer token is required" }),
        ),
        Some(why) => (
            format!(
                "Bearer realm=\"testkit\", error=\"invalid_token\", error_description=\"{}\"",
                quotable(why)
            ),
            json!({ "error": "invalid_token", "error_description": why }),
        ),
    };
    challenge_response(StatusCode::UNAUTHORIZED, &challenge, &body)
}

fn invalid_request(why: &str) -> Response {
    let challenge = format!(
        "Bearer realm=\"testkit\", error=\"invalid_request\", error_description=\"{}\"",
        quotable(why)
    );
    let body = json!({ "error": "invalid_request", "error_description": why });
    challenge_response(StatusCode::BAD_REQUEST, &challenge, &body)
}

fn insufficient_scope(shared: &Shared, scope: &str) -> Response {
    shared.count(|c| c.api_forbidden += 1);
    let challenge = format!(
        "Bearer realm=\"testkit\", error=\"insufficient_scope\", \
         error_description=\"the token lacks the required scope\", scope=\"{}\"",
        quotable(scope)
    );
    let body = json!({ "error": "insufficient_scope", "scope": scope });
    challenge_response(StatusCode::FORBIDDEN, &challenge, &body)
}

fn challenge_response(status: StatusCode, challenge: &str, body: &Value) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Keeps only the characters RFC 6750 §3 allows inside a quoted attribute.
fn quotable(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

fn echo_json(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    token: Option<&TokenInfo>,
) -> Value {
    let mut header_map: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        header_map
            .entry(name.as_str())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let text = (body.len() <= ECHO_BODY_LIMIT)
        .then(|| std::str::from_utf8(body).ok())
        .flatten();
    let digest: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let token = token.map(|t| {
        json!({
            "client_id": t.client_id,
            "sub": t.subject,
            "scope": t.scope.join(" "),
            "aud": t.audience,
        })
    });
    json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": header_map,
        "body": text,
        "body_len": body.len(),
        "body_sha256": digest,
        "token": token,
    })
}

/// `/api/echo` (any method): the request as JSON.
pub(crate) async fn echo(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match guard(&shared, &headers).await {
        Ok(info) => {
            axum::Json(echo_json(&method, &uri, &headers, &body, Some(&info))).into_response()
        }
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub(crate) struct SlowQuery {
    #[serde(default)]
    ms: u64,
}

/// `/api/slow?ms=N`: answers after N ms of real time.
pub(crate) async fn slow(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<SlowQuery>,
) -> Response {
    if let Err(response) = guard(&shared, &headers).await {
        return response;
    }
    tokio::time::sleep(Duration::from_millis(query.ms)).await;
    axum::Json(json!({ "slept_ms": query.ms })).into_response()
}

#[derive(Deserialize)]
pub(crate) struct StreamQuery {
    #[serde(default = "default_chunks")]
    chunks: u64,
}

fn default_chunks() -> u64 {
    3
}

/// `/api/stream?chunks=N`: a chunked body of N lines `chunk i`.
pub(crate) async fn stream(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    if let Err(response) = guard(&shared, &headers).await {
        return response;
    }
    let chunks =
        (0..query.chunks).map(|i| Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n"))));
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct RedirectQuery {
    to: String,
}

/// `/api/redirect?to=PATH`: 302 to a path on this origin.
pub(crate) async fn redirect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<RedirectQuery>,
) -> Response {
    if let Err(response) = guard(&shared, &headers).await {
        return response;
    }
    if !query.to.starts_with('/') || query.to.starts_with("//") {
        return (StatusCode::BAD_REQUEST, "`to` must be an absolute path").into_response();
    }
    found(&query.to)
}

/// `/api/redirect-cross?to=PATH`: 302 to that path on the other origin.
pub(crate) async fn redirect_cross(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<RedirectQuery>,
) -> Response {
    if let Err(response) = guard(&shared, &headers).await {
        return response;
    }
    found(join(&shared.other_origin_url, &query.to).as_str())
}

fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad redirect target").into_response(),
    }
}

/// `/api/scoped/{scope}`: requires that scope (403 `insufficient_scope`).
pub(crate) async fn scoped(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(scope): Path<String>,
) -> Response {
    match guard(&shared, &headers).await {
        Ok(info) if info.scope.contains(&scope) => {
            axum::Json(json!({ "scope": scope })).into_response()
        }
        Ok(_) => insufficient_scope(&shared, &scope),
        Err(response) => response,
    }
}

/// `/api/status/{code}`: answers that status (after authentication).
pub(crate) async fn status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(code): Path<u16>,
) -> Response {
    if let Err(response) = guard(&shared, &headers).await {
        return response;
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({ "status": status.as_u16() }))).into_response()
}

/// `/api/grpc`: answers as a gRPC server answers a unary call, whatever
/// the request: `200` with `content-type: application/grpc` and,
/// trailers-only, `grpc-status: 16` (`UNAUTHENTICATED`) when the token is
/// refused, `grpc-status: 0` when it is accepted.
pub(crate) async fn grpc(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let status = match guard(&shared, &headers).await {
        Ok(_) => "0",
        Err(_) => "16",
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/grpc"),
            (header::HeaderName::from_static("grpc-status"), status),
        ],
    )
        .into_response()
}

/// `/redirect?to=PATH` on the other origin: 302 to that path on the other
/// origin itself; `/redirect-back?to=PATH`: to that path on the main origin,
/// completing an A → B → A bounce. No authentication; what it saw is
/// recorded.
pub(crate) async fn other_origin_redirect(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<RedirectQuery>,
) -> Response {
    shared.record_headers(Endpoint::OtherOrigin, &headers);
    shared.count(|c| c.other_origin_requests += 1);
    let base = if uri.path() == "/redirect-back" {
        &shared.base_url
    } else {
        &shared.other_origin_url
    };
    found(join(base, &query.to).as_str())
}

/// Anything on the other origin: records what it saw and echoes it, no
/// authentication.
pub(crate) async fn other_origin(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record_headers(Endpoint::OtherOrigin, &headers);
    shared.count(|c| c.other_origin_requests += 1);
    axum::Json(echo_json(&method, &uri, &headers, &body, None)).into_response()
}
