//! The authorization endpoint (auto-approving) and the code exchange, with
//! PKCE S256.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use url::Url;

use crate::authz::{requested_audience, requested_scope};
use crate::config::{ClientConfig, GrantType};
use crate::counters::Endpoint;
use crate::oauth::{OAuthError, param};
use crate::state::{Shared, lock};
use crate::store::{AuthCode, Grant, random_token};

/// `GET /authorize`: approves as the default user (or the configured user
/// named by `login_hint`) and redirects with `code` and `state`.
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    shared.record_headers(Endpoint::Authorize, &headers);
    shared.count(|c| c.authorize_requests += 1);
    let q = |name| param(&query, name);

    // Errors before the redirect URI is trusted are shown, not redirected
    // (RFC 6749 §4.1.2.1).
    let Some(client) = q("client_id").and_then(|id| shared.client(id)) else {
        return OAuthError::invalid_request("missing or unknown client_id").into_response();
    };
    let Some(redirect_uri) = q("redirect_uri").and_then(|u| Url::parse(u).ok()) else {
        return OAuthError::invalid_request("missing or invalid redirect_uri").into_response();
    };
    let state = q("state");
    let redirect_error = |error: &str, description: &str| {
        redirect(
            &redirect_uri,
            &[
                ("error", error),
                ("error_description", description),
                ("state", state.unwrap_or_default()),
            ],
            state.is_some(),
        )
    };

    if q("response_type") != Some("code") {
        return redirect_error("unsupported_response_type", "only response_type=code");
    }
    if !client.grants.contains(&GrantType::AuthorizationCode) {
        return redirect_error(
            "unauthorized_client",
            "this client may not use authorization_code",
        );
    }
    let scope = match requested_scope(client, &query) {
        Ok(scope) => scope,
        Err(e) => return redirect_error(e.error, &e.description),
    };
    let audience = match requested_audience(&query) {
        Ok(audience) => audience,
        Err(e) => return redirect_error(e.error, &e.description),
    };
    let settings = shared.settings();
    let challenge = q("code_challenge").map(str::to_owned);
    match (challenge.is_some(), q("code_challenge_method")) {
        (true, Some("S256")) => {}
        (true, _) => {
            return redirect_error("invalid_request", "code_challenge_method must be S256");
        }
        (false, _) if settings.require_pkce => {
            return redirect_error("invalid_request", "code_challenge (PKCE S256) is required");
        }
        (false, _) => {}
    }
    if take_one(&shared, |s| &mut s.denied_authorizations) {
        return redirect_error("access_denied", "the user denied the request");
    }
    let subject = q("login_hint")
        .and_then(|hint| shared.users.iter().find(|u| u.username == hint))
        .unwrap_or(&shared.users[0])
        .username
        .clone();

    let code = random_token();
    {
        let mut store = lock(&shared.store);
        let grant = Grant {
            id: store.new_grant_id(),
            client_id: client.id.clone(),
            subject: Some(subject),
            scope,
            audience,
        };
        store.codes.insert(
            code.clone(),
            AuthCode {
                grant,
                redirect_uri: redirect_uri.to_string(),
                challenge,
                expires_at: shared.now().mono + settings.code_lifetime,
                used: false,
            },
        );
    }
    redirect(
        &redirect_uri,
        &[
            ("code", code.as_str()),
            ("state", state.unwrap_or_default()),
            ("iss", shared.issuer()),
        ],
        state.is_some(),
    )
}

/// Decrements a counter setting; `true` if it was positive.
fn take_one(shared: &Shared, field: impl FnOnce(&mut crate::state::Settings) -> &mut u64) -> bool {
    let mut settings = lock(&shared.settings);
    let n = field(&mut settings);
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

fn redirect(to: &Url, params: &[(&str, &str)], with_state: bool) -> Response {
    let mut location = to.clone();
    {
        let mut pairs = location.query_pairs_mut();
        for (name, value) in params {
            if *name != "state" || with_state {
                pairs.append_pair(name, value);
            }
        }
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// The `authorization_code` grant at the token endpoint.
pub(crate) fn exchange(
    shared: &Shared,
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<Map<String, Value>, OAuthError> {
    let code = param(params, "code").ok_or_else(|| OAuthError::invalid_request("missing code"))?;
    let now = shared.now();
    let mut store = lock(&shared.store);
    let Some(record) = store.codes.get_mut(code) else {
        return Err(OAuthError::invalid_grant("unknown authorization code"));
    };
    if record.used {
        // RFC 6749 §4.1.2: a reused code revokes what it already issued.
        let grant_id = record.grant.id;
        store.revoke_grant(grant_id);
        return Err(OAuthError::invalid_grant(
            "the authorization code was already used",
        ));
    }
    record.used = true;
    if now.mono >= record.expires_at {
        return Err(OAuthError::invalid_grant("the authorization code expired"));
    }
    if record.grant.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    let redirect_uri = param(params, "redirect_uri")
        .and_then(|u| Url::parse(u).ok())
        .map(|u| u.to_string());
    if redirect_uri.as_deref() != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if let Some(challenge) = &record.challenge {
        let verifier = param(params, "code_verifier")
            .ok_or_else(|| OAuthError::invalid_grant("missing code_verifier"))?;
        if !valid_verifier(verifier) {
            return Err(OAuthError::invalid_grant(
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        if s256(verifier) != *challenge {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
    }
    let grant = record.grant.clone();
    let refresh = shared.mint_refresh_token(&mut store, &grant);
    Ok(shared.token_response(&mut store, &grant, Some(refresh)))
}

/// RFC 7636 §4.1.
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Query parameters of a URL, e.g. the `Location` of an authorize redirect.
pub fn query_params(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}
