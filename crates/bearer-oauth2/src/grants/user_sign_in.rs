//! The authorization code grant driven by the app: a web app's redirect,
//! or a callback URL pasted in by hand, and a token per signed-in user.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bearer_cache::{
    Expiry, FetchContext, RefreshToken, Secret, Token, TokenError, TokenKey, TokenSource,
};
use url::Url;

use crate::client::OAuthClient;
use crate::error::StorageError;
use crate::grants::authorization_code::{
    AuthorizationRequest, PendingSignIn, authorization_request, exchange_code,
};
use crate::grants::callback::parse_callback;
use crate::grants::refresh::refresh_with;

/// Where each user's refresh token lives between requests and restarts:
/// implement it on your database or session store. Called with the user id
/// the app chose ([`TokenKey::user`]); [`MemoryRefreshTokens`] keeps them
/// in memory.
///
/// ```
/// use async_trait::async_trait;
/// use bearer_cache::RefreshToken;
/// use bearer_oauth2::{RefreshTokenStorage, StorageError};
///
/// struct Sessions { /* a database pool */ }
///
/// #[async_trait]
/// impl RefreshTokenStorage for Sessions {
///     async fn load(&self, user: &str) -> Result<Option<RefreshToken>, StorageError> {
///         // SELECT refresh_token FROM sessions WHERE user_id = $1
///         Ok(None)
///     }
///     async fn save(&self, user: &str, refresh_token: &RefreshToken) -> Result<(), StorageError> {
///         // UPSERT, with refresh_token.expose_secret() (encrypted at rest)
///         Ok(())
///     }
///     async fn remove(&self, user: &str) -> Result<(), StorageError> {
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait RefreshTokenStorage: Send + Sync + 'static {
    /// The user's refresh token, if they have signed in.
    async fn load(&self, user: &str) -> Result<Option<RefreshToken>, StorageError>;
    /// Keeps the user's newest refresh token (after sign-in and after each
    /// rotation), replacing the one before.
    async fn save(&self, user: &str, refresh_token: &RefreshToken) -> Result<(), StorageError>;
    /// Forgets the user's refresh token (the provider refused it).
    async fn remove(&self, user: &str) -> Result<(), StorageError>;
}

/// Shares one storage between the source and the app (which may want to
/// forget a user on sign-out).
#[async_trait]
impl<S: RefreshTokenStorage + ?Sized> RefreshTokenStorage for Arc<S> {
    async fn load(&self, user: &str) -> Result<Option<RefreshToken>, StorageError> {
        (**self).load(user).await
    }

    async fn save(&self, user: &str, refresh_token: &RefreshToken) -> Result<(), StorageError> {
        (**self).save(user, refresh_token).await
    }

    async fn remove(&self, user: &str) -> Result<(), StorageError> {
        (**self).remove(user).await
    }
}

/// A [`RefreshTokenStorage`] in memory: for tests, CLIs and single-process
/// apps that may ask users to sign in again after a restart.
///
/// ```
/// use bearer_oauth2::{MemoryRefreshTokens, RefreshTokenStorage};
///
/// # async fn run() -> Result<(), bearer_oauth2::StorageError> {
/// let storage = MemoryRefreshTokens::default();
/// storage.save("u-1", &"r-1".into()).await?;
/// assert_eq!(storage.load("u-1").await?, Some("r-1".into()));
/// assert!(!format!("{storage:?}").contains("r-1"));
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct MemoryRefreshTokens {
    tokens: Mutex<HashMap<String, RefreshToken>>,
}

impl MemoryRefreshTokens {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, RefreshToken>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryRefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRefreshTokens")
            .field("users", &self.lock().len())
            .finish()
    }
}

#[async_trait]
impl RefreshTokenStorage for MemoryRefreshTokens {
    async fn load(&self, user: &str) -> Result<Option<RefreshToken>, StorageError> {
        Ok(self.lock().get(user).cloned())
    }

    async fn save(&self, user: &str, refresh_token: &RefreshToken) -> Result<(), StorageError> {
        self.lock().insert(user.to_owned(), refresh_token.clone());
        Ok(())
    }

    async fn remove(&self, user: &str) -> Result<(), StorageError> {
        self.lock().remove(user);
        Ok(())
    }
}

/// The authorization code grant with PKCE S256 for web apps and manual
/// sign-in, keeping a token per signed-in user.
///
/// The app drives the sign-in, as `requests-oauthlib`'s `OAuth2Session`
/// does:
/// 1. [`start`](Self::start) gives the authorization URL and a
///    [`PendingSignIn`] (the `state` and PKCE verifier) to keep in the
///    user's session; send the user to the URL (a redirect, or print it).
/// 2. The provider redirects to your `redirect_uri`.
///    [`finish`](Self::finish) takes that full callback URL (or
///    [`finish_with_code`](Self::finish_with_code) the bare code), checks
///    its `state`, answers the provider's `error` as a typed
///    [`FlowError`](crate::FlowError), exchanges the code, and keeps the
///    user's refresh token in your [`RefreshTokenStorage`].
/// 3. Put this source (in an `Arc`) under a [`TokenCache`](bearer_cache::TokenCache)
///    and ask for [`key(user)`](Self::key): each user's token is cached,
///    refreshed ahead of expiry and replaced after a 401 by the cache's
///    usual rules, with the refresh token from storage (a rotated one is
///    saved again). A user who never signed in, or whose refresh token the
///    provider refused, gets [`TokenError::ReauthenticationRequired`]:
///    send them to step 1. After they finish again, call
///    [`TokenCache::refresh`](bearer_cache::TokenCache::refresh) with their
///    key: the cache otherwise keeps answering the earlier error until its
///    backoff passes.
///
/// ```no_run
/// use std::sync::Arc;
/// use bearer_cache::TokenCache;
/// use bearer_oauth2::{MemoryRefreshTokens, UserSignIn};
///
/// # async fn run(callback_url: url::Url) -> Result<(), Box<dyn std::error::Error>> {
/// let sign_in = Arc::new(
///     UserSignIn::new(
///         "https://idp.example/authorize".parse()?,
///         "https://idp.example/token".parse()?,
///         "web-app",
///         "https://app.example/callback".parse()?,
///     )
///     .client_secret("s3cr3t")
///     .scope("openid offline_access orders:read")
///     .storage(MemoryRefreshTokens::default()),
/// );
/// let cache = TokenCache::builder(sign_in.clone()).build();
///
/// // GET /login: redirect, keeping `pending` in the session.
/// let (url, pending) = sign_in.start()?.into_parts();
/// // GET /callback?code=…&state=…: the full URL the browser came back with.
/// let key = sign_in.finish("u-1041", &pending, &callback_url).await?;
/// cache.refresh(&key).await?; // into the cache at once
/// // Later, on the user's behalf (with reqwest-bearer: `.token_key(key)`).
/// let token = cache.get(&key).await?;
/// # Ok(()) }
/// ```
pub struct UserSignIn {
    client: OAuthClient,
    id: String,
    authorize_url: Url,
    redirect_uri: Url,
    authorize_params: Vec<(String, String)>,
    storage: Arc<dyn RefreshTokenStorage>,
    /// Tokens from finished sign-ins, each handed to the cache's first
    /// fetch for its user.
    signed_in: Mutex<HashMap<String, Token>>,
}

impl fmt::Debug for UserSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSignIn")
            .field("client", &self.client)
            .field("authorize_url", &self.authorize_url.as_str())
            .field("redirect_uri", &self.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

impl UserSignIn {
    /// A public client signing users in at `authorize_url`, redirected
    /// back to `redirect_uri` (registered with the provider), with refresh
    /// tokens kept in memory until [`storage`](Self::storage) says otherwise.
    pub fn new(
        authorize_url: Url,
        token_url: Url,
        client_id: impl Into<String>,
        redirect_uri: Url,
    ) -> Self {
        Self::from_client(
            OAuthClient::new(token_url, client_id),
            authorize_url,
            redirect_uri,
        )
    }

    /// The grant over an already configured client.
    pub fn from_client(client: OAuthClient, authorize_url: Url, redirect_uri: Url) -> Self {
        UserSignIn {
            id: client.source_id("user_sign_in"),
            client,
            authorize_url,
            redirect_uri,
            authorize_params: Vec::new(),
            storage: Arc::new(MemoryRefreshTokens::default()),
            signed_in: Mutex::default(),
        }
    }

    /// Where each user's refresh token is kept (default: in memory).
    pub fn storage(mut self, storage: impl RefreshTokenStorage) -> Self {
        self.storage = Arc::new(storage);
        self
    }

    /// Adds a parameter to every authorization URL, such as
    /// `prompt=consent`; see also [`AuthorizationRequest::param`].
    pub fn authorize_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.authorize_params.push((name.into(), value.into()));
        self
    }

    crate::grants::client_options!(with_secret);

    /// The cache key of `user`'s token (an id of the app's choosing).
    pub fn key(&self, user: &str) -> TokenKey {
        TokenKey::new().user(user)
    }

    /// A new authorization URL, with the [`PendingSignIn`] to keep until
    /// the callback. Fails only if the default parameters set one the
    /// grant owns (such as `state`).
    pub fn start(&self) -> Result<AuthorizationRequest, TokenError> {
        authorization_request(
            &self.client,
            &self.authorize_url,
            &self.redirect_uri,
            &TokenKey::new(),
            &self.authorize_params,
        )
    }

    /// Completes `user`'s sign-in from the full callback URL the provider
    /// redirected to. Its `state` must be `pending`'s
    /// ([`FlowError::StateMismatch`](crate::FlowError::StateMismatch)
    /// otherwise); the provider's `error` is
    /// [`FlowError::AuthorizationFailed`](crate::FlowError::AuthorizationFailed).
    /// Both are reached with [`flow_error`](crate::flow_error). Returns the
    /// user's cache key.
    pub async fn finish(
        &self,
        user: &str,
        pending: &PendingSignIn,
        callback_url: &Url,
    ) -> Result<TokenKey, TokenError> {
        let code = parse_callback(
            callback_url.query().unwrap_or(""),
            pending.state().expose_secret(),
        )?;
        self.finish_with_code(user, pending, code).await
    }

    /// Completes `user`'s sign-in with the authorization code alone (when
    /// the app has already checked the callback's `state`, or the person
    /// pasted just the code).
    pub async fn finish_with_code(
        &self,
        user: &str,
        pending: &PendingSignIn,
        code: impl Into<Secret>,
    ) -> Result<TokenKey, TokenError> {
        let key = self.key(user);
        let token = exchange_code(
            &self.client,
            &code.into(),
            &self.redirect_uri,
            pending,
            &TokenKey::new(),
        )
        .await?;
        match token.refresh_token() {
            Some(refresh_token) => self.storage.save(user, refresh_token).await?,
            None => self.storage.remove(user).await?,
        }
        // A lifetime counts from the request; the cache may ask later.
        let token = match token.expiry() {
            Expiry::In(lifetime) => token.with_expiry(Expiry::At(SystemTime::now() + lifetime)),
            _ => token,
        };
        self.lock_signed_in().insert(user.to_owned(), token);
        tracing::info!(target: "bearer_oauth2", %key, "user signed in");
        Ok(key)
    }

    fn lock_signed_in(&self) -> MutexGuard<'_, HashMap<String, Token>> {
        self.signed_in
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn reauthenticate(user: &str, why: &str) -> TokenError {
        TokenError::ReauthenticationRequired(format!("user {user} must sign in again: {why}"))
    }
}

#[async_trait]
impl TokenSource for UserSignIn {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let Some(user) = cx.key.user_id() else {
            return Err(TokenError::source(
                "UserSignIn keeps a token per user: ask for UserSignIn::key(user)",
                false,
            ));
        };
        if let Some(token) = self.lock_signed_in().remove(user) {
            return Ok(token);
        }
        let stored = self.storage.load(user).await?;
        let Some(refresh_token) =
            stored.or_else(|| cx.previous.and_then(Token::refresh_token).cloned())
        else {
            return Err(Self::reauthenticate(user, "no refresh token"));
        };
        let key = TokenKey::new();
        match refresh_with(&self.client, &refresh_token, &key).await {
            Ok(token) => {
                if let Some(new) = token.refresh_token().filter(|r| **r != refresh_token) {
                    self.storage.save(user, new).await?;
                }
                Ok(token)
            }
            Err(e) if e.oauth().is_some_and(|o| o.code == "invalid_grant") => {
                self.storage.remove(user).await?;
                Err(Self::reauthenticate(
                    user,
                    "the provider refused the refresh token (invalid_grant)",
                ))
            }
            Err(e) => Err(e),
        }
    }
}
