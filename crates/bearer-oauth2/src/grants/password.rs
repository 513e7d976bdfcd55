use async_trait::async_trait;
use bearer_cache::{FetchContext, Secret, Token, TokenError, TokenSource};
use url::Url;

use crate::client::{Grant, OAuthClient};
use crate::grants::refresh::{RefreshState, Refreshed};

/// The resource owner password grant (RFC 6749 §4.3): refreshed with the
/// refresh token while it works, signed in again with the password when
/// there is none or it is refused.
///
/// ```
/// use bearer_cache::TokenSource;
/// use bearer_oauth2::PasswordGrant;
///
/// let source = PasswordGrant::new("https://idp.example/token".parse().unwrap(), "app", "alice", "wonderland")
///     .client_secret("s3cr3t")
///     .scope("read");
/// assert_eq!(source.id(), "password:app@https://idp.example/token#alice");
/// assert!(!format!("{source:?}").contains("wonderland"));
/// ```
#[derive(Debug)]
pub struct PasswordGrant {
    client: OAuthClient,
    id: String,
    username: String,
    password: Secret,
    state: RefreshState,
}

impl PasswordGrant {
    /// A public client of `token_url` signing in as `username`.
    pub fn new(
        token_url: Url,
        client_id: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<Secret>,
    ) -> Self {
        Self::from_client(OAuthClient::new(token_url, client_id), username, password)
    }

    /// The grant over an already configured client.
    pub fn from_client(
        client: OAuthClient,
        username: impl Into<String>,
        password: impl Into<Secret>,
    ) -> Self {
        let username = username.into();
        PasswordGrant {
            id: format!("{}#{username}", client.source_id("password")),
            client,
            username,
            password: password.into(),
            state: RefreshState::default(),
        }
    }

    crate::grants::client_options!(with_secret);
}

#[async_trait]
impl TokenSource for PasswordGrant {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        if let Refreshed::Token(token) = self.state.refresh(&self.client, &cx).await? {
            return Ok(token);
        }
        let grant = Grant::new("password")
            .param("username", &self.username)
            .secret("password", self.password.expose_secret());
        let token = self.client.request_token(grant, cx.key).await?;
        self.state.remember(&token);
        Ok(token)
    }
}
