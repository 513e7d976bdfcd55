//! `/.well-known/openid-configuration` (and the RFC 8414 twin).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::config::GrantType;
use crate::server::join;
use crate::state::Shared;

/// The discovery document.
pub(crate) async fn document(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let url = |path: &str| join(&shared.base_url, path).to_string();
    let mut scopes: Vec<&str> = Vec::new();
    for scope in shared.clients.iter().flat_map(|c| &c.scopes) {
        if !scopes.contains(&scope.as_str()) {
            scopes.push(scope);
        }
    }
    Json(json!({
        "issuer": shared.issuer(),
        "token_endpoint": url("/token"),
        "authorization_endpoint": url("/authorize"),
        "device_authorization_endpoint": url("/device_authorization"),
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none", "private_key_jwt", "client_secret_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA", "HS256"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
        "dpop_signing_alg_values_supported": crate::dpop::ALGORITHMS.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
    }))
}
