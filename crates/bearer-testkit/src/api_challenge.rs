//! `/api/challenge`: a protected route answering with the status and
//! `WWW-Authenticate` fields the test asks for, to exercise a client's
//! handling of every RFC 6750 challenge kind.
//!
//! `GET /api/challenge?status=401&www_authenticate=Bearer%20error%3D%22insufficient_scope%22`
//! first authenticates the request like every `/api/...` route (so a bad
//! token still gets the usual `invalid_token` 401), then answers `status`
//! (default 401) with one `WWW-Authenticate` field per `www_authenticate`
//! parameter, in order (none: a bare 401).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::state::Shared;

/// `/api/challenge?status=&www_authenticate=…` (any method).
pub(crate) async fn challenge(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = crate::api::guard(&shared, &headers).await {
        return response;
    }
    let mut status = StatusCode::UNAUTHORIZED;
    let mut challenges = Vec::new();
    let query = query.unwrap_or_default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "status" => match value
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
            {
                Some(s) => status = s,
                None => return (StatusCode::BAD_REQUEST, "bad `status`").into_response(),
            },
            "www_authenticate" => match HeaderValue::from_str(&value) {
                Ok(v) => challenges.push(v),
                Err(_) => {
                    return (StatusCode::BAD_REQUEST, "bad `www_authenticate`").into_response();
                }
            },
            _ => {}
        }
    }
    if status == StatusCode::UNAUTHORIZED {
        shared.count(|c| c.api_unauthorized += 1);
    }
    let mut response = (status, "challenge\n").into_response();
    for value in challenges {
        response
            .headers_mut()
            .append(header::WWW_AUTHENTICATE, value);
    }
    response
}
