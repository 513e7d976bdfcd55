use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use bearer_cache::{FetchContext, RefreshToken, Token, TokenError, TokenKey, TokenSource};
use url::Url;

use crate::client::{Grant, OAuthClient};

/// The newest refresh token a source has seen, across keys: with rotation
/// the one in an older key's previous token is already spent.
#[derive(Default)]
pub(crate) struct RefreshState {
    latest: Mutex<Option<RefreshToken>>,
}

impl fmt::Debug for RefreshState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshState")
            .field("has_refresh_token", &self.get().is_some())
            .finish()
    }
}

/// What a refresh came to.
pub(crate) enum Refreshed {
    Token(Token),
    /// Every refresh token was refused (`invalid_grant`) or there was none.
    Rejected,
}

impl RefreshState {
    pub fn new(initial: Option<RefreshToken>) -> Self {
        RefreshState {
            latest: Mutex::new(initial),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<RefreshToken>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self) -> Option<RefreshToken> {
        self.lock().clone()
    }

    pub fn remember(&self, token: &Token) {
        if let Some(r) = token.refresh_token() {
            *self.lock() = Some(r.clone());
        }
    }

    fn forget(&self, spent: &RefreshToken) {
        let mut latest = self.lock();
        if latest.as_ref() == Some(spent) {
            *latest = None;
        }
    }

    /// Refreshes with the previous token's refresh token (the cache's
    /// view, possibly from a shared store), then with the newest one seen
    /// here. A refused one is dropped; any other failure is returned.
    pub async fn refresh(
        &self,
        client: &OAuthClient,
        cx: &FetchContext<'_>,
    ) -> Result<Refreshed, TokenError> {
        let previous = cx.previous.and_then(Token::refresh_token).cloned();
        self.refresh_from(client, cx, previous).await
    }

    /// Like [`refresh`](Self::refresh), with only the newest refresh token
    /// seen here, for a second try after waiting on another fetch.
    pub async fn refresh_latest(
        &self,
        client: &OAuthClient,
        cx: &FetchContext<'_>,
    ) -> Result<Refreshed, TokenError> {
        self.refresh_from(client, cx, None).await
    }

    async fn refresh_from(
        &self,
        client: &OAuthClient,
        cx: &FetchContext<'_>,
        previous: Option<RefreshToken>,
    ) -> Result<Refreshed, TokenError> {
        let mut candidates: Vec<RefreshToken> = previous.into_iter().collect();
        if let Some(latest) = self.get() {
            if !candidates.contains(&latest) {
                candidates.push(latest);
            }
        }
        for refresh_token in candidates {
            match refresh_with(client, &refresh_token, cx.key).await {
                Ok(token) => {
                    self.remember(&token);
                    return Ok(Refreshed::Token(token));
                }
                Err(e) if e.oauth().is_some_and(|o| o.code == "invalid_grant") => {
                    tracing::info!(
                        target: "bearer_oauth2",
                        refresh_token = %refresh_token.fingerprint(),
                        "refresh token refused (invalid_grant); dropping it"
                    );
                    self.forget(&refresh_token);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Refreshed::Rejected)
    }
}

/// One `refresh_token` request. Without rotation the server sends no new
/// refresh token: the one used stays valid and is kept.
pub(crate) async fn refresh_with(
    client: &OAuthClient,
    refresh_token: &RefreshToken,
    key: &TokenKey,
) -> Result<Token, TokenError> {
    let grant = Grant::new("refresh_token").secret("refresh_token", refresh_token.expose_secret());
    let token = client.request_token(grant, key).await?;
    Ok(match token.refresh_token() {
        Some(_) => token,
        None => token.with_refresh_token(refresh_token.clone()),
    })
}

/// The refresh token grant (RFC 6749 §6) on its own: for a refresh token
/// obtained elsewhere (a CLI login, a consent screen). Rotated refresh
/// tokens are kept (the cache's `on_change` hook sees each new token, to
/// persist it). When the refresh token is refused, there is nothing to fall
/// back on: [`TokenError::ReauthenticationRequired`].
///
/// ```
/// use bearer_cache::TokenSource;
/// use bearer_oauth2::RefreshTokenGrant;
///
/// let source = RefreshTokenGrant::new("https://idp.example/token".parse().unwrap(), "cli", "r-123")
///     .client_secret("s3cr3t");
/// assert!(source.id().starts_with("refresh_token:cli@"));
/// assert!(!format!("{source:?}").contains("r-123"));
/// ```
#[derive(Debug)]
pub struct RefreshTokenGrant {
    client: OAuthClient,
    id: String,
    state: RefreshState,
}

impl RefreshTokenGrant {
    /// A public client of `token_url` holding `refresh_token`.
    pub fn new(
        token_url: Url,
        client_id: impl Into<String>,
        refresh_token: impl Into<RefreshToken>,
    ) -> Self {
        Self::from_client(OAuthClient::new(token_url, client_id), refresh_token)
    }

    /// The grant over an already configured client.
    pub fn from_client(client: OAuthClient, refresh_token: impl Into<RefreshToken>) -> Self {
        let refresh_token = refresh_token.into();
        RefreshTokenGrant {
            // Two users of one client must not share a store entry.
            id: format!(
                "{}#{}",
                client.source_id("refresh_token"),
                refresh_token.fingerprint()
            ),
            client,
            state: RefreshState::new(Some(refresh_token)),
        }
    }

    /// The newest refresh token this source holds, to persist it.
    pub fn current_refresh_token(&self) -> Option<RefreshToken> {
        self.state.get()
    }

    crate::grants::client_options!(with_secret);
}

#[async_trait]
impl TokenSource for RefreshTokenGrant {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        match self.state.refresh(&self.client, &cx).await? {
            Refreshed::Token(token) => Ok(token),
            Refreshed::Rejected => Err(TokenError::ReauthenticationRequired(
                "the refresh token was refused (invalid_grant) and this source has no other grant"
                    .to_owned(),
            )),
        }
    }
}
