use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bearer_cache::{FetchContext, Secret, Token, TokenError, TokenSource};
use serde_json::{Map, Value};
use url::Url;

use crate::client::{Grant, OAuthClient};
use crate::error::FlowError;
use crate::grants::refresh::{RefreshState, Refreshed};
use crate::response::Parser;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.2: 5 s when the server names no interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 8628 §3.5: `slow_down` adds 5 s.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// What to show the person during a device flow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevicePrompt {
    /// The code to type in.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// A URI with the code in it (for a QR code), if the server sent one.
    pub verification_uri_complete: Option<String>,
    /// How long the code stays valid.
    pub expires_in: Duration,
}

type OnPrompt = Arc<dyn Fn(&DevicePrompt) + Send + Sync>;

/// The device authorization grant (RFC 8628), for devices without a
/// browser: the person approves on another device; the refresh token then
/// keeps the token alive.
///
/// Polling waits on the configured [`Clock`](bearer_cache::Clock), the
/// same one retries use. That is the seam tests use: with a
/// [`ManualClock`](bearer_cache::ManualClock) shared with the server as the
/// clock, every poll "waits" exactly its interval on that clock and
/// returns at once, so the RFC's interval and `slow_down` rules (+5 s) are
/// exercised as written, with no real waiting and no test-only minimum
/// interval in the library.
///
/// `authorization_pending` keeps polling; `slow_down` adds 5 s;
/// `access_denied` and `expired_token` end the flow as permanent
/// [`TokenError::OAuth`] errors; a code outliving its `expires_in` locally
/// is [`FlowError::DeviceCodeExpired`].
///
/// ```
/// use bearer_cache::TokenSource;
/// use bearer_oauth2::DeviceCode;
///
/// let source = DeviceCode::new(
///     "https://idp.example/device".parse().unwrap(),
///     "https://idp.example/token".parse().unwrap(),
///     "tv-app",
///     |prompt| println!("Visit {} and enter {}", prompt.verification_uri, prompt.user_code),
/// )
/// .scope("offline_access");
/// assert!(source.id().starts_with("device_code:tv-app@"));
/// ```
pub struct DeviceCode {
    client: OAuthClient,
    id: String,
    device_authorization_url: Url,
    on_prompt: OnPrompt,
    state: RefreshState,
    sign_in: tokio::sync::Mutex<()>,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("client", &self.client)
            .field(
                "device_authorization_url",
                &crate::scrub::shown_url(&self.device_authorization_url),
            )
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The device authorization answer (RFC 8628 §3.2).
struct Authorization {
    device_code: Secret,
    prompt: DevicePrompt,
    interval: Duration,
}

impl DeviceCode {
    /// A public client; `on_prompt` shows the person where to go and what
    /// to type.
    pub fn new(
        device_authorization_url: Url,
        token_url: Url,
        client_id: impl Into<String>,
        on_prompt: impl Fn(&DevicePrompt) + Send + Sync + 'static,
    ) -> Self {
        Self::from_client(
            OAuthClient::new(token_url, client_id),
            device_authorization_url,
            on_prompt,
        )
    }

    /// The grant over an already configured client.
    pub fn from_client(
        client: OAuthClient,
        device_authorization_url: Url,
        on_prompt: impl Fn(&DevicePrompt) + Send + Sync + 'static,
    ) -> Self {
        DeviceCode {
            id: client.source_id("device_code"),
            client,
            device_authorization_url,
            on_prompt: Arc::new(on_prompt),
            state: RefreshState::default(),
            sign_in: tokio::sync::Mutex::new(()),
        }
    }

    crate::grants::client_options!(with_secret);

    async fn authorize(&self, cx: &FetchContext<'_>) -> Result<Authorization, TokenError> {
        self.client.check_tls()?;
        let form = self.client.key_params(cx.key, true)?;
        let secrets = self.client.request_secrets(&[]);
        let object = self
            .client
            .options
            .exchange(
                "device_authorization",
                || {
                    self.client
                        .authenticated_post(&self.device_authorization_url, form.clone())
                },
                |raw| Parser::oauth(&secrets).object_or_error(raw.status, &raw.headers, &raw.body),
            )
            .await?;
        Ok(parse_authorization(&object)?)
    }

    async fn sign_in(&self, cx: &FetchContext<'_>) -> Result<Token, TokenError> {
        let authorization = self.authorize(cx).await?;
        (self.on_prompt)(&authorization.prompt);
        let mut interval = authorization.interval;
        let mut waited = Duration::ZERO;
        loop {
            if waited >= authorization.prompt.expires_in {
                return Err(FlowError::DeviceCodeExpired.into());
            }
            self.client.options.clock.sleep(interval).await;
            waited = waited.saturating_add(interval);
            let grant = Grant::new(GRANT_TYPE)
                .secret("device_code", authorization.device_code.expose_secret())
                .without_scope();
            match self.client.request_token(grant, cx.key).await {
                Ok(token) => {
                    self.state.remember(&token);
                    return Ok(token);
                }
                Err(e) => match e.oauth().map(|o| o.code.as_str()) {
                    Some("authorization_pending") => {}
                    Some("slow_down") => interval = interval.saturating_add(SLOW_DOWN_STEP),
                    _ => return Err(e),
                },
            }
        }
    }
}

fn parse_authorization(object: &Map<String, Value>) -> Result<Authorization, FlowError> {
    let text = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let seconds = |name: &str| match object.get(name) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let missing = |name: &str| FlowError::MalformedDeviceAuthorization(format!("no `{name}`"));
    let device_code = text("device_code").ok_or_else(|| missing("device_code"))?;
    let user_code = text("user_code").ok_or_else(|| missing("user_code"))?;
    // Google still sends the draft's `verification_url`.
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| missing("verification_uri"))?;
    let expires_in = seconds("expires_in").ok_or_else(|| missing("expires_in"))?;
    Ok(Authorization {
        device_code: Secret::new(device_code),
        prompt: DevicePrompt {
            user_code: user_code.to_owned(),
            verification_uri: verification_uri.to_owned(),
            verification_uri_complete: text("verification_uri_complete").map(str::to_owned),
            expires_in: Duration::from_secs(expires_in),
        },
        interval: seconds("interval")
            .map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.clamp(1, 3600))),
    })
}

#[async_trait]
impl TokenSource for DeviceCode {
    fn id(&self) -> &str {
        &self.id
    }

    /// A person has until the device code expires (the server says when;
    /// RFC 8628 suggests 30 minutes at most), so the cache's usual deadline
    /// must not cut the polling short.
    fn fetch_deadline(&self) -> Option<Duration> {
        Some(Duration::from_secs(30 * 60))
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        if let Refreshed::Token(token) = self.state.refresh(&self.client, &cx).await? {
            return Ok(token);
        }
        let _one_at_a_time = self.sign_in.lock().await;
        if let Refreshed::Token(token) = self.state.refresh_latest(&self.client, &cx).await? {
            return Ok(token);
        }
        self.sign_in(&cx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Authorization, FlowError> {
        match serde_json::from_str(json).unwrap() {
            Value::Object(o) => parse_authorization(&o),
            _ => unreachable!(),
        }
    }

    #[test]
    fn authorization_fields() {
        let a = parse(r#"{"device_code":"d","user_code":"U","verification_url":"https://v","expires_in":"600"}"#).unwrap();
        assert_eq!(a.prompt.verification_uri, "https://v");
        assert_eq!(a.prompt.expires_in, Duration::from_secs(600));
        assert_eq!(a.interval, DEFAULT_INTERVAL);
        assert!(matches!(
            parse(r#"{"user_code":"U","verification_uri":"v","expires_in":1}"#),
            Err(FlowError::MalformedDeviceAuthorization(m)) if m.contains("device_code")
        ));
        assert!(parse(r#"{"device_code":"d","user_code":"U","verification_uri":"v"}"#).is_err());
    }
}
