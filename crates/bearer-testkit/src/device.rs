//! The RFC 8628 device authorization grant.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::authz::{requested_audience, requested_scope, require_form};
use crate::client_auth::Presented;
use crate::config::{ClientConfig, GrantType};
use crate::counters::Endpoint;
use crate::oauth::{OAuthError, no_store_json, param, parse_form};
use crate::server::join;
use crate::state::{Shared, lock};
use crate::store::{DeviceGrant, DeviceStatus, Grant, random_token, random_user_code};

/// RFC 8628 §3.5: each `slow_down` adds five seconds to the interval.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// `POST /device_authorization`.
pub(crate) async fn device_authorization(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record_headers(Endpoint::DeviceAuthorization, &headers);
    shared.count(|c| c.device_authorizations += 1);
    let params = parse_form(&body);
    match start(&shared, &headers, &params) {
        Ok(body) => no_store_json(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn start(
    shared: &Shared,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Value, OAuthError> {
    require_form(headers)?;
    let client = Presented::from_request(headers, params).authenticate(shared)?;
    if !client.grants.contains(&GrantType::DeviceCode) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use the device flow",
        ));
    }
    let scope = requested_scope(client, params)?;
    let audience = requested_audience(params)?;
    let settings = shared.settings();
    let device_code = random_token();
    let user_code = random_user_code();
    let mut store = lock(&shared.store);
    let grant = Grant {
        id: store.new_grant_id(),
        client_id: client.id.clone(),
        subject: None,
        scope,
        audience,
    };
    store.devices.insert(
        device_code.clone(),
        DeviceGrant {
            user_code: user_code.clone(),
            grant,
            expires_at: shared.now().mono + settings.device_lifetime,
            interval: settings.device_interval,
            last_poll: None,
            status: DeviceStatus::Pending,
        },
    );
    let verification_uri = join(&shared.base_url, "/device");
    let mut complete = verification_uri.clone();
    complete
        .query_pairs_mut()
        .append_pair("user_code", &user_code);
    Ok(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri.as_str(),
        "verification_uri_complete": complete.as_str(),
        "expires_in": settings.device_lifetime.as_secs(),
        "interval": settings.device_interval.as_secs(),
    }))
}

/// `GET /device?user_code=...`: the user "visits" the verification URI and
/// approves as the default user (handy for peers in other languages).
pub(crate) async fn verify(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let user = shared.users[0].username.clone();
    let approved = param(&query, "user_code").is_some_and(|code| {
        let mut store = lock(&shared.store);
        match store.device_by_user_code(code) {
            Some(d) if d.status == DeviceStatus::Pending => {
                d.status = DeviceStatus::Approved(user);
                true
            }
            _ => false,
        }
    });
    if approved {
        Html("<html><body><p>Device approved.</p></body></html>").into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Html("<html><body><p>Unknown or already decided user code.</p></body></html>"),
        )
            .into_response()
    }
}

/// The device-code grant at the token endpoint.
pub(crate) fn poll(
    shared: &Shared,
    client: &ClientConfig,
    params: &[(String, String)],
) -> Result<Map<String, Value>, OAuthError> {
    let device_code = param(params, "device_code")
        .ok_or_else(|| OAuthError::invalid_request("missing device_code"))?;
    let now = shared.now();
    let forced_slow_down = {
        let mut settings = lock(&shared.settings);
        let forced = settings.forced_slow_downs > 0;
        settings.forced_slow_downs = settings.forced_slow_downs.saturating_sub(1);
        forced
    };
    let mut store = lock(&shared.store);
    let device = match store.devices.get_mut(device_code) {
        Some(d) if d.grant.client_id == client.id => d,
        _ => return Err(OAuthError::invalid_grant("unknown device_code")),
    };
    if device.status == DeviceStatus::Consumed {
        return Err(OAuthError::invalid_grant(
            "the device_code was already used",
        ));
    }
    if now.mono >= device.expires_at {
        return Err(OAuthError::new("expired_token", "the device_code expired"));
    }
    if device.status == DeviceStatus::Denied {
        return Err(OAuthError::new(
            "access_denied",
            "the user denied the request",
        ));
    }
    let last_poll = device.last_poll.replace(now.mono);
    let too_fast =
        last_poll.is_some_and(|last| now.mono.saturating_duration_since(last) < device.interval);
    let approved = match &device.status {
        DeviceStatus::Approved(user) => Some(user.clone()),
        _ => None,
    };
    // An approved grant is answered even when polled early; only a forced
    // slow_down holds it back.
    let Some(user) = approved.filter(|_| !forced_slow_down) else {
        if forced_slow_down || too_fast {
            device.interval += SLOW_DOWN_STEP;
            return Err(OAuthError::new(
                "slow_down",
                format!(
                    "polling too fast; the interval is now {} s",
                    device.interval.as_secs()
                ),
            ));
        }
        return Err(OAuthError::new(
            "authorization_pending",
            "the user has not decided yet",
        ));
    };
    device.status = DeviceStatus::Consumed;
    let grant = Grant {
        subject: Some(user),
        ..device.grant.clone()
    };
    let refresh = shared.mint_refresh_token(&mut store, &grant);
    Ok(shared.token_response(&mut store, &grant, Some(refresh)))
}
