//! A test-only OAuth source: posts a grant to the testkit's token endpoint.
//! (Kept tiny on purpose; the real sources live in bearer-oauth2.)

use std::time::Duration;

use async_trait::async_trait;
use bearer_cache::{Expiry, FetchContext, OAuthError, Token, TokenError, TokenSource};

#[derive(Debug, Clone)]
pub enum Grant {
    ClientCredentials,
    /// Password first, then refresh tokens.
    Password {
        username: String,
        password: String,
    },
}

#[derive(Debug, Clone)]
pub struct HttpSource {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub grant: Grant,
    http: reqwest::Client,
}

impl HttpSource {
    pub fn new(
        token_url: impl Into<String>,
        client_id: &str,
        client_secret: &str,
        grant: Grant,
    ) -> Self {
        HttpSource {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            grant,
            http: bearer_testkit::client_builder().build().unwrap(),
        }
    }
}

#[async_trait]
impl TokenSource for HttpSource {
    fn id(&self) -> &str {
        &self.client_id
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let refresh = cx.previous.and_then(|t| t.refresh_token());
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
        ];
        match (&self.grant, refresh) {
            (_, Some(r)) => form.extend([
                ("grant_type", "refresh_token"),
                ("refresh_token", r.expose_secret()),
            ]),
            (Grant::Password { username, password }, None) => form.extend([
                ("grant_type", "password"),
                ("username", username.as_str()),
                ("password", password.as_str()),
            ]),
            (Grant::ClientCredentials, None) => form.push(("grant_type", "client_credentials")),
        }
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenError::source(format!("token request failed: {e}"), true))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| TokenError::source("token response is not JSON", true))?;
        let text = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        if let Some(code) = text("error") {
            return Err(TokenError::OAuth {
                error: OAuthError {
                    code,
                    description: text("error_description"),
                    uri: None,
                    status,
                },
                retry_after: None,
            });
        }
        let access =
            text("access_token").ok_or_else(|| TokenError::source("no access_token", false))?;
        let mut token = Token::bearer(access);
        if let Some(secs) = body.get("expires_in").and_then(|v| v.as_u64()) {
            token = token.with_expiry(Expiry::In(Duration::from_secs(secs)));
        }
        if let Some(r) = text("refresh_token") {
            token = token.with_refresh_token(r);
        } else if let Some(r) = refresh {
            // No rotation: the old refresh token stays valid.
            token = token.with_refresh_token(r.clone());
        }
        Ok(token)
    }
}
