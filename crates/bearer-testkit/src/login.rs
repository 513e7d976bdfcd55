//! A plain (non-OAuth) login endpoint: username and password in, token out.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::LoginExpiry;
use crate::counters::Endpoint;
use crate::oauth::{no_store_json, param, parse_form};
use crate::server::ConnectionHandle;
use crate::state::{Shared, lock};
use crate::store::Grant;

/// Which field carries the token.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `{"token": ...}` at `/login`.
    Token,
    /// `{"access_token": ..., "token_type": "Bearer"}` at `/login/access-token`.
    AccessToken,
}

/// `POST /login`.
pub(crate) async fn login(
    state: State<Arc<Shared>>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, connection, headers, body, Shape::Token).await
}

/// `POST /login/access-token`.
pub(crate) async fn login_access_token(
    state: State<Arc<Shared>>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, connection, headers, body, Shape::AccessToken).await
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Bytes,
    shape: Shape,
) -> Response {
    shared.record_headers(Endpoint::Login, &headers);
    shared.count(|c| c.login_requests += 1);
    let fault = {
        let mut rng = lock(&shared.rng);
        lock(&shared.login_faults).next(&mut rng)
    };
    if let Some(fault) = &fault {
        shared.count(|c| c.login_faults += 1);
        if !fault.is_reshape() {
            return fault
                .respond(connection.as_ref().map(|e| &e.0), &headers, &body)
                .await;
        }
    }

    let Some(credentials) = parse_credentials(&headers, &body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected username and password as JSON or a form",
        );
    };
    let Some(user) = shared.user(&credentials.username, &credentials.password) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        );
    };
    let (token, lifetime) = {
        let mut store = lock(&shared.store);
        let grant = Grant {
            id: store.new_grant_id(),
            client_id: "login".to_owned(),
            subject: Some(user.username.clone()),
            scope: Vec::new(),
            audience: Vec::new(),
        };
        shared.mint_access_token(&mut store, &grant)
    };
    shared.count(|c| c.login_tokens_issued += 1);

    let mut body = Map::new();
    match shape {
        Shape::Token => {
            body.insert("token".into(), token.into());
        }
        Shape::AccessToken => {
            body.insert("access_token".into(), token.into());
            body.insert("token_type".into(), "Bearer".into());
        }
    }
    let expiry_field = match shared.settings().login_expiry {
        LoginExpiry::None => None,
        LoginExpiry::ExpiresIn => {
            body.insert("expires_in".into(), lifetime.into());
            Some("expires_in")
        }
        LoginExpiry::ExpiresAt => {
            body.insert("expires_at".into(), (shared.now().unix + lifetime).into());
            Some("expires_at")
        }
    };
    if let Some(fault) = &fault {
        fault.reshape(&mut body, expiry_field.unwrap_or("expires_in"));
    }
    no_store_json(StatusCode::OK, &Value::Object(body))
}

fn parse_credentials(headers: &HeaderMap, body: &[u8]) -> Option<Credentials> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let params = parse_form(body);
        return Some(Credentials {
            username: param(&params, "username")?.to_owned(),
            password: param(&params, "password")?.to_owned(),
        });
    }
    serde_json::from_slice(body).ok()
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response()
}
