//! Revocation (RFC 7009) and introspection (RFC 7662).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::authz::require_form;
use crate::client_auth::Presented;
use crate::counters::Endpoint;
use crate::oauth::{OAuthError, no_store_json, param, parse_form};
use crate::state::{Shared, lock};
use crate::store::Grant;

/// `POST /revoke`.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record_headers(Endpoint::Revocation, &headers);
    shared.count(|c| c.revocations += 1);
    let params = parse_form(&body);
    match revoke_token(&shared, &headers, &params) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

fn revoke_token(
    shared: &Shared,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), OAuthError> {
    require_form(headers)?;
    let client = Presented::from_request(headers, params).authenticate(shared)?;
    let token =
        param(params, "token").ok_or_else(|| OAuthError::invalid_request("missing token"))?;
    let mut store = lock(&shared.store);
    let owner = |grant: &Grant| grant.client_id == client.id;
    if let Some(record) = store.access.get_mut(token) {
        if !owner(&record.grant) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the token was issued to another client",
            ));
        }
        record.revoked = true;
    } else if let Some(record) = store.refresh.get(token) {
        if !owner(&record.grant) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the token was issued to another client",
            ));
        }
        // RFC 7009 §2.1: revoking a refresh token revokes its access tokens.
        let grant_id = record.grant.id;
        store.revoke_grant(grant_id);
    }
    // RFC 7009 §2.2: unknown tokens are not an error.
    Ok(())
}

/// `POST /introspect`.
pub(crate) async fn introspect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record_headers(Endpoint::Introspection, &headers);
    shared.count(|c| c.introspections += 1);
    let params = parse_form(&body);
    match describe(&shared, &headers, &params) {
        Ok(body) => no_store_json(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn describe(
    shared: &Shared,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Value, OAuthError> {
    require_form(headers)?;
    let client = Presented::from_request(headers, params).authenticate(shared)?;
    if client.secret().is_none() {
        // RFC 7662 §2.1: introspection callers must authenticate.
        return Err(OAuthError::invalid_client(
            "introspection needs a confidential client",
            false,
        ));
    }
    let token =
        param(params, "token").ok_or_else(|| OAuthError::invalid_request("missing token"))?;
    let now = shared.now();
    let store = lock(&shared.store);
    if let Ok(record) = store.check_access(token, now) {
        let mut body = grant_claims(shared, &record.grant, record.iat_unix);
        body["token_type"] = "Bearer".into();
        body["exp"] = record.exp_unix.into();
        if let Some(cnf) = crate::mtls::confirmation(shared, token) {
            body["cnf"] = cnf;
        }
        return Ok(body);
    }
    if let Some(record) = store.refresh.get(token).filter(|r| r.active) {
        let mut body = grant_claims(shared, &record.grant, record.iat_unix);
        body["token_type"] = "refresh_token".into();
        return Ok(body);
    }
    Ok(json!({ "active": false }))
}

fn grant_claims(shared: &Shared, grant: &Grant, iat: u64) -> Value {
    let mut body = json!({
        "active": true,
        "scope": grant.scope.join(" "),
        "client_id": grant.client_id,
        "iat": iat,
        "iss": shared.issuer(),
    });
    if let Some(subject) = &grant.subject {
        body["sub"] = subject.clone().into();
        body["username"] = subject.clone().into();
    }
    match grant.audience.as_slice() {
        [] => {}
        [one] => body["aud"] = one.clone().into(),
        many => body["aud"] = many.to_vec().into(),
    }
    body
}
