//! The token endpoint and its grants.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use crate::client_auth::Presented;
use crate::config::{ClientConfig, GrantType, split_scope};
use crate::counters::{ClientAuthMethod, Endpoint, TokenRequestRecord};
use crate::oauth::{OAuthError, no_store_json, param, params_named, parse_form};
use crate::server::ConnectionHandle;
use crate::state::{Shared, lock};
use crate::store::Grant;

/// `POST /token`.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record_headers(Endpoint::Token, &headers);
    let params = parse_form(&body);
    let mut presented = Presented::from_request(&headers, &params);
    *lock(&shared.last_token_request) = Some(TokenRequestRecord {
        params: params.clone(),
        client_auth: presented.method,
        client_id: presented.client_id.clone(),
    });
    shared.count(|c| {
        c.token_requests += 1;
        match presented.method {
            ClientAuthMethod::ClientSecretBasic => c.client_auth.basic += 1,
            ClientAuthMethod::ClientSecretPost => c.client_auth.post += 1,
            ClientAuthMethod::None => c.client_auth.none += 1,
            ClientAuthMethod::PrivateKeyJwt => c.client_auth.private_key_jwt += 1,
            ClientAuthMethod::ClientSecretJwt => c.client_auth.client_secret_jwt += 1,
        }
    });

    let latency = shared.settings().token_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let fault = {
        let mut rng = lock(&shared.rng);
        lock(&shared.token_faults).next(&mut rng)
    };
    if let Some(fault) = &fault {
        shared.count(|c| c.token_faults += 1);
        if !fault.is_reshape() {
            return fault
                .respond(connection.as_ref().map(|e| &e.0), &headers, &body)
                .await;
        }
    }

    let dpop = match crate::dpop::at_token_endpoint(&shared, &headers) {
        Ok(jkt) => jkt,
        Err(answer) => {
            shared.count(|c| c.token_errors += 1);
            return *answer;
        }
    };
    match run_grant(&shared, &headers, &params, &mut presented) {
        Ok(mut body) => {
            if let Some(jkt) = dpop {
                crate::dpop::bind_issued(&shared, &mut body, &jkt);
            }
            if let Some(fault) = fault {
                fault.reshape(&mut body, "expires_in");
            }
            let mut answer = no_store_json(StatusCode::OK, &Value::Object(body));
            crate::dpop::with_nonce(&shared, &mut answer);
            answer
        }
        Err(error) => {
            shared.count(|c| c.token_errors += 1);
            error.into_response()
        }
    }
}

fn run_grant(
    shared: &Shared,
    headers: &HeaderMap,
    params: &[(String, String)],
    presented: &mut Presented,
) -> Result<Map<String, Value>, OAuthError> {
    require_form(headers)?;
    reject_repeated(params)?;
    let client = presented.authenticate(shared)?;
    let grant_type = param(params, "grant_type")
        .ok_or_else(|| OAuthError::invalid_request("missing grant_type"))?;
    let grant_type = GrantType::parse(grant_type).ok_or_else(|| {
        OAuthError::new(
            "unsupported_grant_type",
            format!("grant_type {grant_type:?} is not supported"),
        )
    })?;
    if !client.grants.contains(&grant_type) {
        return Err(OAuthError::new(
            "unauthorized_client",
            format!("this client may not use {}", grant_type.as_str()),
        ));
    }
    let body = match grant_type {
        GrantType::ClientCredentials => client_credentials(shared, client, params)?,
        GrantType::Password => password(shared, client, params)?,
        GrantType::RefreshToken => refresh(shared, client, params)?,
        GrantType::AuthorizationCode => crate::authorize::exchange(shared, client, params)?,
        GrantType::DeviceCode => crate::device::poll(shared, client, params)?,
    };
    shared.count(|c| match grant_type {
        GrantType::ClientCredentials => c.issued.client_credentials += 1,
        GrantType::Password => c.issued.password += 1,
        GrantType::RefreshToken => c.issued.refresh_token += 1,
        GrantType::AuthorizationCode => c.issued.authorization_code += 1,
        GrantType::DeviceCode => c.issued.device_code += 1,
    });
    Ok(body)
}

/// RFC 6749 §3.2: the token endpoint takes a form.
pub(crate) fn require_form(headers: &HeaderMap) -> Result<(), OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(format!(
            "Content-Type must be application/x-www-form-urlencoded, not {content_type:?}"
        )))
    }
}

/// RFC 6749 §3.2: parameters must not repeat (except RFC 8707 `resource`
/// and the `audience` extension, which may).
fn reject_repeated(params: &[(String, String)]) -> Result<(), OAuthError> {
    for (i, (name, _)) in params.iter().enumerate() {
        let repeatable = name == "resource" || name == "audience";
        if !repeatable && params[..i].iter().any(|(n, _)| n == name) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name:?} is repeated"
            )));
        }
    }
    Ok(())
}

/// The requested scope, checked against the client's; absent means all of
/// the client's scopes.
pub(crate) fn requested_scope(
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = param(params, "scope") else {
        return Ok(client.scopes.clone());
    };
    let scope = split_scope(requested);
    if let Some(bad) = scope.iter().find(|s| !client.scopes.contains(s)) {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("scope {bad:?} is not allowed for this client"),
        ));
    }
    Ok(scope)
}

/// `audience` values and RFC 8707 `resource` values, which must be absolute
/// URIs without a fragment.
pub(crate) fn requested_audience(params: &[(String, String)]) -> Result<Vec<String>, OAuthError> {
    let mut audience: Vec<String> = params_named(params, "audience")
        .into_iter()
        .map(str::to_owned)
        .collect();
    for resource in params_named(params, "resource") {
        match url::Url::parse(resource) {
            Ok(u) if u.fragment().is_none() => audience.push(resource.to_owned()),
            _ => {
                return Err(OAuthError::new(
                    "invalid_target",
                    format!("resource {resource:?} is not an absolute URI without a fragment"),
                ));
            }
        }
    }
    Ok(audience)
}

fn client_credentials(
    shared: &Shared,
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<Map<String, Value>, OAuthError> {
    let scope = requested_scope(client, params)?;
    let audience = requested_audience(params)?;
    let mut store = lock(&shared.store);
    let grant = Grant {
        id: store.new_grant_id(),
        client_id: client.id.clone(),
        subject: None,
        scope,
        audience,
    };
    // RFC 6749 §4.4.3: no refresh token for client credentials.
    Ok(shared.token_response(&mut store, &grant, None))
}

fn password(
    shared: &Shared,
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<Map<String, Value>, OAuthError> {
    let (Some(username), Some(password)) = (param(params, "username"), param(params, "password"))
    else {
        return Err(OAuthError::invalid_request(
            "username and password are required",
        ));
    };
    let user = shared
        .user(username, password)
        .ok_or_else(|| OAuthError::invalid_grant("wrong username or password"))?;
    let scope = requested_scope(client, params)?;
    let audience = requested_audience(params)?;
    let mut store = lock(&shared.store);
    let grant = Grant {
        id: store.new_grant_id(),
        client_id: client.id.clone(),
        subject: Some(user.username.clone()),
        scope,
        audience,
    };
    let refresh = shared.mint_refresh_token(&mut store, &grant);
    Ok(shared.token_response(&mut store, &grant, Some(refresh)))
}

fn refresh(
    shared: &Shared,
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<Map<String, Value>, OAuthError> {
    let presented = param(params, "refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("missing refresh_token"))?;
    let requested_audience = requested_audience(params)?;
    let rotate = shared.settings().rotate_refresh_tokens;
    let mut store = lock(&shared.store);
    let original = match store.refresh.get(presented) {
        Some(r) if r.active && r.grant.client_id == client.id => r.grant.clone(),
        Some(r) if !r.active => {
            return Err(OAuthError::invalid_grant(
                "the refresh token was revoked or rotated",
            ));
        }
        _ => return Err(OAuthError::invalid_grant("unknown refresh token")),
    };
    // RFC 6749 §6: a refresh may narrow the scope, never widen it.
    let scope = match param(params, "scope") {
        None => original.scope.clone(),
        Some(requested) => {
            let scope = split_scope(requested);
            if let Some(bad) = scope.iter().find(|s| !original.scope.contains(s)) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("scope {bad:?} exceeds the original grant"),
                ));
            }
            scope
        }
    };
    let audience = if requested_audience.is_empty() {
        original.audience.clone()
    } else {
        requested_audience
    };
    let new_refresh = if rotate {
        if let Some(old) = store.refresh.get_mut(presented) {
            old.active = false;
        }
        Some(shared.mint_refresh_token(&mut store, &original))
    } else {
        None
    };
    let grant = Grant {
        scope,
        audience,
        ..original
    };
    Ok(shared.token_response(&mut store, &grant, new_refresh))
}
