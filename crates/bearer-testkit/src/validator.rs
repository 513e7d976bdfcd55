//! How the protected API decides whether a bearer token is good.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use url::Url;

use crate::config::split_scope;
use crate::state::{Shared, lock};

/// The API's token validation mode.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum ApiValidator {
    /// Accept live tokens this server issued (the default).
    #[default]
    Local,
    /// Ask an RFC 7662 introspection endpoint (e.g. another authorization
    /// server) with `client_secret_basic`; accept when `"active": true`.
    Introspection {
        /// The introspection endpoint.
        url: Url,
        /// The API's client id at that server.
        client_id: String,
        /// The API's client secret at that server.
        client_secret: String,
    },
}

impl fmt::Debug for ApiValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiValidator::Local => f.write_str("Local"),
            ApiValidator::Introspection { url, client_id, .. } => f
                .debug_struct("Introspection")
                .field("url", &url.as_str())
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

/// What the API knows about an accepted token.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenInfo {
    pub(crate) client_id: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) scope: Vec<String>,
    pub(crate) audience: Vec<String>,
    /// The DPoP key thumbprint the token is bound to (`cnf.jkt`).
    pub(crate) jkt: Option<String>,
}

impl ApiValidator {
    /// The token's grant, or an `error_description` for the challenge.
    pub(crate) async fn validate(&self, shared: &Shared, token: &str) -> Result<TokenInfo, String> {
        match self {
            ApiValidator::Local => {
                let now = shared.now();
                let store = lock(&shared.store);
                let record = store
                    .check_access(token, now)
                    .map_err(|r| r.description().to_owned())?;
                Ok(TokenInfo {
                    client_id: Some(record.grant.client_id.clone()),
                    subject: record.grant.subject.clone(),
                    scope: record.grant.scope.clone(),
                    audience: record.grant.audience.clone(),
                    jkt: record.jkt.clone(),
                })
            }
            ApiValidator::Introspection {
                url,
                client_id,
                client_secret,
            } => introspect_remote(shared, url, client_id, client_secret, token).await,
        }
    }
}

async fn introspect_remote(
    shared: &Shared,
    url: &Url,
    client_id: &str,
    client_secret: &str,
    token: &str,
) -> Result<TokenInfo, String> {
    let response = shared
        .http
        .post(url.clone())
        .header(
            http::header::AUTHORIZATION,
            basic_authorization(client_id, client_secret),
        )
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .map_err(|e| format!("introspection request failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("introspection answered {}", response.status()));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|_| "introspection answered malformed JSON".to_owned())?;
    if body["active"] != Value::Bool(true) {
        return Err("the access token is not active".to_owned());
    }
    let audience = match &body["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(values) => values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(TokenInfo {
        client_id: body["client_id"].as_str().map(str::to_owned),
        subject: body["sub"].as_str().map(str::to_owned),
        scope: split_scope(body["scope"].as_str().unwrap_or("")),
        audience,
        jkt: body["cnf"]["jkt"].as_str().map(str::to_owned),
    })
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 says.
pub fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(client_secret)))
    )
}
