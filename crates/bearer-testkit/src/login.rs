//! A plain (non-OAuth) login endpoint: username and password in, token out.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::config::{LoginExpiry, LoginForm};
use crate::counters::Endpoint;
use crate::oauth::{no_store_json, param, parse_form};
use crate::server::ConnectionHandle;
use crate::state::{Shared, lock};
use crate::store::Grant;

/// Which field carries the token.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `{"token": ...}` at `/login`, or as [`crate::LoginForm`] says.
    Token,
    /// `{"access_token": ..., "token_type": "Bearer"}` at `/login/access-token`.
    AccessToken,
}

/// `POST /login` (or the [`crate::LoginForm`]'s path).
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

    let form = shared.settings().login_form;
    let Some(credentials) = parse_credentials(&headers, &body, &form) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "expected {} and {} as JSON or a form",
                form.username_field, form.password_field
            ),
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
            body.insert(form.token_field.clone(), token.into());
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

fn parse_credentials(headers: &HeaderMap, body: &[u8], form: &LoginForm) -> Option<Credentials> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (user, pass) = (&form.username_field, &form.password_field);
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let params = parse_form(body);
        return Some(Credentials {
            username: param(&params, user)?.to_owned(),
            password: param(&params, pass)?.to_owned(),
        });
    }
    let json: Value = serde_json::from_slice(body).ok()?;
    Some(Credentials {
        username: json.get(user.as_str())?.as_str()?.to_owned(),
        password: json.get(pass.as_str())?.as_str()?.to_owned(),
    })
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response()
}
