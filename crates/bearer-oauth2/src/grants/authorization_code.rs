use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bearer_cache::{FetchContext, Secret, Token, TokenError, TokenKey, TokenSource};
use rand::Rng;
use sha2::{Digest, Sha256};
use url::Url;

use crate::client::{Grant, OAuthClient};
use crate::error::FlowError;
use crate::grants::callback::Callback;
use crate::grants::refresh::{RefreshState, Refreshed};

type OpenBrowser = Arc<dyn Fn(&Url) + Send + Sync>;

/// The authorization code grant with PKCE S256 (RFC 6749 §4.1, RFC 7636)
/// for native apps and CLIs (RFC 8252): a person signs in once in a
/// browser; the refresh token keeps the token alive after that.
///
/// On a fetch without a usable refresh token it listens on a loopback
/// redirect URI (`http://127.0.0.1:<ephemeral port>/callback`), builds the
/// authorize URL with a fresh `state` and code challenge, hands it to your
/// `open_browser` callback, waits for the redirect (checking `state` in
/// constant time), and exchanges the code with the verifier. Concurrent
/// fetches share one sign-in.
///
/// The cache allows a fetch [`login_timeout`](Self::login_timeout) plus a
/// minute for the code exchange, whatever its own `fetch_timeout`.
///
/// For a web app (the provider redirects to the app's own URL), or to
/// print the URL and have the person paste the callback URL back, use
/// [`UserSignIn`](crate::UserSignIn), which also keeps a token per user.
///
/// ```no_run
/// use bearer_cache::{TokenCache, TokenKey};
/// use bearer_oauth2::AuthorizationCode;
///
/// # async fn run() -> Result<(), bearer_cache::TokenError> {
/// let source = AuthorizationCode::new(
///     "https://idp.example/authorize".parse().unwrap(),
///     "https://idp.example/token".parse().unwrap(),
///     "my-cli",
///     |url| println!("Open {url} to sign in"),
/// )
/// .scope("openid offline_access");
/// let cache = TokenCache::builder(source).build();
/// let token = cache.get(&TokenKey::default()).await?;
/// # Ok(()) }
/// ```
pub struct AuthorizationCode {
    client: OAuthClient,
    id: String,
    authorize_url: Url,
    open_browser: OpenBrowser,
    redirect_ip: IpAddr,
    redirect_port: u16,
    callback_path: String,
    login_timeout: Duration,
    /// Sent on the authorize URL only, never to the token endpoint.
    authorize_params: Vec<(String, String)>,
    state: RefreshState,
    /// One sign-in at a time, whatever the key.
    sign_in: tokio::sync::Mutex<()>,
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("client", &self.client)
            .field(
                "authorize_url",
                &crate::scrub::shown_url(&self.authorize_url),
            )
            .field(
                "redirect",
                &(self.redirect_ip, self.redirect_port, &self.callback_path),
            )
            .field("login_timeout", &self.login_timeout)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AuthorizationCode {
    /// A public client; `open_browser` is called with the URL the person
    /// must visit (open a browser, or print it).
    pub fn new(
        authorize_url: Url,
        token_url: Url,
        client_id: impl Into<String>,
        open_browser: impl Fn(&Url) + Send + Sync + 'static,
    ) -> Self {
        Self::from_client(
            OAuthClient::new(token_url, client_id),
            authorize_url,
            open_browser,
        )
    }

    /// The grant over an already configured client.
    pub fn from_client(
        client: OAuthClient,
        authorize_url: Url,
        open_browser: impl Fn(&Url) + Send + Sync + 'static,
    ) -> Self {
        AuthorizationCode {
            id: client.source_id("authorization_code"),
            client,
            authorize_url,
            open_browser: Arc::new(open_browser),
            redirect_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            redirect_port: 0,
            callback_path: "/callback".to_owned(),
            login_timeout: Duration::from_secs(300),
            authorize_params: Vec::new(),
            state: RefreshState::default(),
            sign_in: tokio::sync::Mutex::new(()),
        }
    }

    /// A fixed redirect port, for providers that do not accept any
    /// loopback port (default: an ephemeral one, as RFC 8252 §7.3 allows).
    pub fn redirect_port(mut self, port: u16) -> Self {
        self.redirect_port = port;
        self
    }

    /// The redirect URI's path (default `/callback`).
    pub fn callback_path(mut self, path: impl Into<String>) -> Self {
        self.callback_path = path.into();
        self
    }

    /// How long to wait for the person (default 5 min).
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// Adds a parameter to the authorize URL only, such as `prompt=consent`
    /// (which strict OpenID providers require before they grant
    /// `offline_access`) or `login_hint`. Parameters set with `param` go to
    /// both the authorize URL and every token request.
    ///
    /// ```
    /// use bearer_oauth2::AuthorizationCode;
    /// let source = AuthorizationCode::new(
    ///     "https://idp.example/authorize".parse().unwrap(),
    ///     "https://idp.example/token".parse().unwrap(),
    ///     "my-cli",
    ///     |_url| {},
    /// )
    /// .authorize_param("prompt", "consent");
    /// ```
    pub fn authorize_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.authorize_params.push((name.into(), value.into()));
        self
    }

    /// Starts with a refresh token kept from an earlier session, so no
    /// sign-in is needed while it works.
    pub fn refresh_token(self, refresh_token: impl Into<bearer_cache::RefreshToken>) -> Self {
        AuthorizationCode {
            state: RefreshState::new(Some(refresh_token.into())),
            ..self
        }
    }

    crate::grants::client_options!(with_secret);

    async fn sign_in(&self, cx: &FetchContext<'_>) -> Result<Token, TokenError> {
        let path = if self.callback_path.starts_with('/') {
            self.callback_path.clone()
        } else {
            format!("/{}", self.callback_path)
        };
        let callback = Callback::bind(self.redirect_ip, self.redirect_port, &path).await?;
        let redirect_uri = callback.redirect_uri().clone();
        let request = authorization_request(
            &self.client,
            &self.authorize_url,
            &redirect_uri,
            cx.key,
            &self.authorize_params,
        )?;
        tracing::info!(target: "bearer_oauth2", redirect_uri = %redirect_uri, "waiting for the person to sign in");
        (self.open_browser)(request.url());

        let pending = request.pending();
        let code = tokio::time::timeout(
            self.login_timeout,
            callback.wait(pending.state.expose_secret()),
        )
        .await
        .map_err(|_| FlowError::CallbackTimeout(self.login_timeout))??;
        let token = exchange_code(&self.client, &code, &redirect_uri, pending, cx.key).await?;
        self.state.remember(&token);
        Ok(token)
    }
}

/// Where to send a person to sign in, and what to keep until they come
/// back: the authorization URL (RFC 6749 §4.1.1, with PKCE S256 and a
/// fresh `state`) and its [`PendingSignIn`].
///
/// `Debug` shows the URL without its query, which carries the `state`.
#[derive(Clone)]
pub struct AuthorizationRequest {
    url: Url,
    pending: PendingSignIn,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field(
                "url",
                &format_args!(
                    "{}{}?[redacted]",
                    self.url.origin().ascii_serialization(),
                    self.url.path()
                ),
            )
            .field("pending", &self.pending)
            .finish()
    }
}

impl AuthorizationRequest {
    /// The URL to send the person to (a redirect, or printed for them).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// What to keep (in the user's session) until the callback.
    pub fn pending(&self) -> &PendingSignIn {
        &self.pending
    }

    /// The URL and what to keep, apart.
    pub fn into_parts(self) -> (Url, PendingSignIn) {
        (self.url, self.pending)
    }

    /// Adds a parameter to this request's URL only, such as `login_hint`
    /// or `prompt=consent`.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(name, value);
        self
    }
}

/// What a sign-in must keep between the authorization URL and the
/// callback: the `state` the callback must carry back and the PKCE
/// verifier the code exchange proves possession with. Both are secrets;
/// `Debug` shows fingerprints only.
///
/// Keep it server-side (in the session store, keyed by the session
/// cookie), or rebuild it with [`new`](Self::new) from where you kept it.
///
/// ```
/// use bearer_oauth2::PendingSignIn;
///
/// let pending = PendingSignIn::new("st4te", "v3rifier");
/// assert_eq!(pending.state().expose_secret(), "st4te");
/// assert!(!format!("{pending:?}").contains("v3rifier"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    state: Secret,
    pkce_verifier: Secret,
}

impl PendingSignIn {
    /// Rebuilds a pending sign-in from its kept `state` and PKCE verifier.
    pub fn new(state: impl Into<Secret>, pkce_verifier: impl Into<Secret>) -> Self {
        PendingSignIn {
            state: state.into(),
            pkce_verifier: pkce_verifier.into(),
        }
    }

    /// The `state` sent with the authorization URL.
    pub fn state(&self) -> &Secret {
        &self.state
    }

    /// The PKCE code verifier (RFC 7636).
    pub fn pkce_verifier(&self) -> &Secret {
        &self.pkce_verifier
    }
}

/// Builds the authorization URL for `redirect_uri` with a fresh `state`
/// and PKCE S256 challenge, `key`'s parameters over the client's defaults,
/// and `extra` authorize-only parameters.
pub(crate) fn authorization_request(
    client: &OAuthClient,
    authorize_url: &Url,
    redirect_uri: &Url,
    key: &TokenKey,
    extra: &[(String, String)],
) -> Result<AuthorizationRequest, TokenError> {
    let pending = PendingSignIn::new(random_urlsafe(32), random_urlsafe(32));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(
        pending.pkce_verifier.expose_secret().as_bytes(),
    ));
    let mut url = authorize_url.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client.client_id())
            .append_pair("redirect_uri", redirect_uri.as_str())
            .append_pair("state", pending.state.expose_secret())
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (name, value) in client.key_params(key, true)? {
            query.append_pair(&name, &value);
        }
        for (name, value) in extra {
            query.append_pair(name, value);
        }
    }
    Ok(AuthorizationRequest { url, pending })
}

/// Exchanges an authorization code for a token (RFC 6749 §4.1.3) with the
/// pending sign-in's PKCE verifier.
pub(crate) async fn exchange_code(
    client: &OAuthClient,
    code: &Secret,
    redirect_uri: &Url,
    pending: &PendingSignIn,
    key: &TokenKey,
) -> Result<Token, TokenError> {
    let grant = Grant::new("authorization_code")
        .secret("code", code.expose_secret())
        .param("redirect_uri", redirect_uri.as_str())
        .secret("code_verifier", pending.pkce_verifier.expose_secret())
        .without_scope();
    client.request_token(grant, key).await
}

/// `bytes` random bytes, base64url: 32 give a 43-character PKCE verifier
/// (RFC 7636 §4.1) and an unguessable `state`.
fn random_urlsafe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[async_trait]
impl TokenSource for AuthorizationCode {
    fn id(&self) -> &str {
        &self.id
    }

    fn fetch_deadline(&self) -> Option<Duration> {
        Some(self.login_timeout + Duration::from_secs(60))
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        if let Refreshed::Token(token) = self.state.refresh(&self.client, &cx).await? {
            return Ok(token);
        }
        let _one_at_a_time = self.sign_in.lock().await;
        // Another key's sign-in may have finished while we waited.
        if let Refreshed::Token(token) = self.state.refresh_latest(&self.client, &cx).await? {
            return Ok(token);
        }
        self.sign_in(&cx).await
    }
}
