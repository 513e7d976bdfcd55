//! URL layout of both listeners.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

use crate::state::Shared;
use crate::{api, api_challenge, authorize, authz, device, discovery, introspection, login, mtls};

pub(crate) fn main(shared: Arc<Shared>) -> Router {
    let login_path = shared.settings().login_form.path;
    Router::new()
        .route("/token", post(authz::token))
        .route("/authorize", get(authorize::authorize))
        .route("/device_authorization", post(device::device_authorization))
        .route("/device", get(device::verify))
        .route("/revoke", post(introspection::revoke))
        .route("/introspect", post(introspection::introspect))
        .route(
            "/.well-known/openid-configuration",
            get(discovery::document),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::document),
        )
        .route(&login_path, post(login::login))
        .route("/login/access-token", post(login::login_access_token))
        .route("/api/echo", any(api::echo))
        .route("/api/echo/{*rest}", any(api::echo))
        .route("/api/slow", any(api::slow))
        .route("/api/stream", any(api::stream))
        .route("/api/redirect", any(api::redirect))
        .route("/api/redirect-cross", any(api::redirect_cross))
        .route("/api/scoped/{scope}", any(api::scoped))
        .route("/api/status/{code}", any(api::status))
        .route("/api/grpc", any(api::grpc))
        .route("/api/challenge", any(api_challenge::challenge))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            crate::dpop::api_layer,
        ))
        // Clients may stream large bodies in; read them all.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            mtls::check_binding,
        ))
        .with_state(shared)
}

pub(crate) fn other_origin(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/redirect", any(api::other_origin_redirect))
        .route("/redirect-back", any(api::other_origin_redirect))
        .fallback(api::other_origin)
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}
