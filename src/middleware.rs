//! The middleware: inject the token, and on a 401 refresh it and resend once.

use std::fmt;
use std::sync::Arc;

use bearer_cache::{CachedToken, TokenCache, TokenError, TokenKey, TokenSource};
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next, Result};
use tracing::Instrument;
use tracing::field::{Empty, display};
use url::Url;

use crate::error::{BearerError, BuildError};
use crate::extensions::{NoAuthRetry, SkipAuth};
use crate::origin::AllowedOrigins;
use crate::redirect::Sent;
use crate::rejection::{Verdict, verdict};

/// A `reqwest-middleware` middleware that adds `Authorization: Bearer …`
/// from a [`TokenCache`] to requests for the origins you allow, and on a
/// 401 that blames the token replaces it and resends the request once.
///
/// Cheap to clone; clones share the cache.
///
/// ```
/// use reqwest_bearer::{BearerAuth, StaticSource};
///
/// let http = reqwest::Client::builder()
///     .redirect(BearerAuth::redirect_policy())
///     .build()?;
/// let auth = BearerAuth::builder_for_source(StaticSource::new("t0k3n"))
///     .allow_origin("https://api.example.com".parse()?)
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(http)
///     .with(auth)
///     .build();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # What the origin check cannot see
///
/// The origin is checked on the request as this layer hands it on, and on
/// nothing after that:
///
/// - **Middlewares that rewrite URLs** (failover to another host, mirrors,
///   base-URL rewriting) must sit *outside* this layer, that is, be added to
///   the `ClientBuilder` *before* it, so the check sees the URL that will be
///   sent. One added after it sends the token to wherever it rewrites to.
/// - **Redirects** are followed by the `reqwest::Client` under every
///   middleware. Build it with [`redirect_policy`](Self::redirect_policy)
///   (or `Policy::none()`): reqwest's default policy drops the token when a
///   hop changes origin but restores it on the next hop within the new one.
/// - **A proxy from the environment** (`HTTP_PROXY`, `ALL_PROXY`): reqwest
///   sends a plain-`http` request to the proxy as it is, `Authorization`
///   included, so a token for a loopback origin (allowed over plain `http`
///   because it never leaves the machine) then travels in clear to the
///   proxy. Build the client with `.no_proxy()`, or a `NO_PROXY` that covers
///   loopback, when you allow such an origin. An `https` origin goes through
///   a proxy as a `CONNECT` tunnel: the proxy sees the host, not the token.
#[derive(Clone)]
pub struct BearerAuth {
    config: Arc<Config>,
}

struct Config {
    cache: TokenCache,
    origins: AllowedOrigins,
    default_key: TokenKey,
    max_auth_retries: u32,
    retry_non_idempotent: bool,
    refresh_without_challenge: bool,
    replace_authorization: bool,
}

/// Configures a [`BearerAuth`]; see [`BearerAuth::builder`].
#[must_use]
pub struct BearerAuthBuilder {
    cache: TokenCache,
    origins: Vec<Url>,
    allow_plain_http: bool,
    default_key: TokenKey,
    max_auth_retries: u32,
    retry_non_idempotent: bool,
    refresh_without_challenge: bool,
    replace_authorization: bool,
}

impl BearerAuth {
    /// Starts configuring a middleware over `cache`.
    pub fn builder(cache: TokenCache) -> BearerAuthBuilder {
        BearerAuthBuilder {
            cache,
            origins: Vec::new(),
            allow_plain_http: false,
            default_key: TokenKey::new(),
            max_auth_retries: 1,
            retry_non_idempotent: true,
            refresh_without_challenge: true,
            replace_authorization: false,
        }
    }

    /// Like [`builder`](Self::builder), over a cache with default settings.
    pub fn builder_for_source(source: impl TokenSource) -> BearerAuthBuilder {
        Self::builder(TokenCache::builder(source).build())
    }

    /// The common case: tokens from `cache` for `base_url`'s origin only,
    /// default settings.
    ///
    /// ```
    /// use reqwest_bearer::{BearerAuth, StaticSource, TokenCache};
    ///
    /// let cache = TokenCache::builder(StaticSource::new("t")).build();
    /// let auth = BearerAuth::new(cache, "https://api.example.com/v1/".parse()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(cache: TokenCache, base_url: Url) -> std::result::Result<Self, BuildError> {
        Self::builder(cache).allow_origin(base_url).build()
    }

    /// The redirect policy to build the `reqwest::Client` under this layer
    /// with. It follows redirects as reqwest's default does (up to 10),
    /// except for requests this layer gave a token:
    ///
    /// - a hop that would send the token to another origin is refused
    ///   ([`RedirectRefused`](crate::RedirectRefused), the cause of a `reqwest::Error` with
    ///   `is_redirect()`). reqwest drops `Authorization` when a hop changes
    ///   origin, but restores it on the next hop within the new origin, so
    ///   without this policy `A → B → B` hands the token to `B`;
    /// - it records whether the hop that answered carried the token, so a
    ///   401 from `A` after `A → B → A` (where reqwest dropped the token)
    ///   neither costs a token fetch nor is resent, while a 401 after a
    ///   redirect within the origin still does.
    ///
    /// With any other policy, the layer sees a redirect only as a final URL
    /// that differs from the one sent: such a 401 is returned as it is (it
    /// cannot tell which hops carried the token), while a bounce back to the
    /// very URL sent looks like no redirect and its 401 counts. reqwest's
    /// own rule then decides where the token goes.
    /// [`Policy::none`](reqwest::redirect::Policy::none) is safe too.
    ///
    /// ```
    /// use reqwest_bearer::{BearerAuth, StaticSource};
    ///
    /// let http = reqwest::Client::builder()
    ///     .redirect(BearerAuth::redirect_policy())
    ///     .build()?;
    /// let auth = BearerAuth::builder_for_source(StaticSource::new("t0k3n"))
    ///     .allow_origin("https://api.example.com".parse()?)
    ///     .build()?;
    /// let client = reqwest_middleware::ClientBuilder::new(http).with(auth).build();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redirect_policy() -> reqwest::redirect::Policy {
        reqwest::redirect::Policy::custom(|attempt| {
            match crate::redirect::follow(attempt.previous(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    }

    /// The cache, e.g. for its [`stats`](TokenCache::stats).
    pub fn cache(&self) -> &TokenCache {
        &self.config.cache
    }
}

impl BearerAuthBuilder {
    /// Allows tokens to go to this URL's origin (scheme, host and port; a
    /// path is ignored). Plain `http` is accepted only for loopback
    /// (127.0.0.0/8, `::1`, `localhost`) unless
    /// [`allow_plain_http`](Self::allow_plain_http). Checked by
    /// [`build`](Self::build), which refuses wildcards (`https://*.example.com`)
    /// and other patterns with [`BuildError::InvalidOrigin`]: allow each
    /// origin by name.
    ///
    /// Every URL in this crate and its sources is a [`Url`] (re-exported as
    /// `reqwest_bearer::reqwest::Url`): parse it once with `.parse()?`,
    /// which reports a malformed one as a typed `url::ParseError`; what
    /// parses but cannot hold a token (another scheme, credentials, plain
    /// `http`, a wildcard) is a [`BuildError`] from `build`.
    pub fn allow_origin(mut self, url: Url) -> Self {
        self.origins.push(url);
        self
    }

    /// Accepts plain-`http` origins that are not loopback (default `false`:
    /// a bearer token on an open network is a stolen token).
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The key for requests that carry no [`TokenKey`] extension (default:
    /// the empty key, the source's own defaults).
    pub fn default_key(mut self, key: TokenKey) -> Self {
        self.default_key = key;
        self
    }

    /// How many times one request is resent after a 401 blamed its token
    /// (default 1; 0 turns resending off). The last 401 is returned as the
    /// response, never as an error.
    pub fn max_auth_retries(mut self, retries: u32) -> Self {
        self.max_auth_retries = retries;
        self
    }

    /// Whether non-idempotent requests (`POST`, `PATCH`…) are resent after
    /// a 401 (default `true`: a 401 means the server did not act on it).
    /// Set `false` to resend only `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`
    /// and `DELETE`.
    pub fn retry_non_idempotent(mut self, retry: bool) -> Self {
        self.retry_non_idempotent = retry;
        self
    }

    /// Whether a 401 without any `Bearer` challenge counts as a rejected
    /// token (default `true`: many servers send a bare 401).
    pub fn refresh_without_challenge(mut self, refresh: bool) -> Self {
        self.refresh_without_challenge = refresh;
        self
    }

    /// Whether a request that already carries `Authorization` gets the
    /// cache's token instead (default `false`: it is left alone).
    pub fn replace_existing_authorization(mut self, replace: bool) -> Self {
        self.replace_authorization = replace;
        self
    }

    /// Checks the configuration and builds the middleware.
    pub fn build(self) -> std::result::Result<BearerAuth, BuildError> {
        let mut origins = AllowedOrigins::default();
        for origin in &self.origins {
            origins.add(origin.as_str(), self.allow_plain_http)?;
        }
        if origins.is_empty() {
            return Err(BuildError::NoAllowedOrigin);
        }
        Ok(BearerAuth {
            config: Arc::new(Config {
                cache: self.cache,
                origins,
                default_key: self.default_key,
                max_auth_retries: self.max_auth_retries,
                retry_non_idempotent: self.retry_non_idempotent,
                refresh_without_challenge: self.refresh_without_challenge,
                replace_authorization: self.replace_authorization,
            }),
        })
    }
}

// The per-request future is boxed by `async_trait` on every request, so it
// is kept small (under the allocator's fast size classes): the token comes
// from the cache's synchronous hit path, the default key is borrowed, the
// resend copy and the 401 path are boxed.
#[async_trait::async_trait]
impl Middleware for BearerAuth {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let config = &*self.config;
        if let Err(reason) = self.authorizable(&req, extensions) {
            {
                tracing::trace!(target: "reqwest_bearer", reason, "request sent without a token");
                return next.run(req, extensions).await;
            }
        }
        let custom_key = extensions.get::<TokenKey>().map(|k| Box::new(k.clone()));
        let key = custom_key.as_deref().unwrap_or(&config.default_key);
        let span = tracing::debug_span!(
            target: "reqwest_bearer",
            "bearer_auth",
            method = %req.method(),
            origin = Empty,
            key = Empty,
            token = Empty,
            cache_hit = Empty,
            auth_retry = false,
        );
        // Formatted only for a subscriber that wants the span: these cost
        // allocations on every request otherwise.
        if !span.is_disabled() {
            span.record("origin", display(req.url().origin().ascii_serialization()));
            span.record("key", display(key));
        }

        let token = match config.cache.get_cached(key) {
            Some(token) => token,
            None => config
                .cache
                .get(key)
                .instrument(span.clone())
                .await
                .map_err(|e| fail(BearerError::NoToken(e)))?,
        };
        span.record("token", display(token.fingerprint()));
        span.record("cache_hit", token.was_hit());

        let may_resend = config.max_auth_retries > 0
            && extensions.get::<NoAuthRetry>().is_none()
            && (config.retry_non_idempotent || req.method().is_idempotent());
        // The only way to resend is a copy taken before sending; a streaming
        // body has none, and then its 401 is simply returned.
        let spare = if may_resend {
            req.try_clone().map(Box::new)
        } else {
            None
        };

        let sent = Sent::new(req.url());
        set_authorization(&mut req, &token)?;
        let (response, carried) = sent
            .track(next.clone().run(req, extensions))
            .instrument(span.clone())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let rejected = Rejected {
            key: key.clone(),
            token,
            spare,
            sent,
            carried,
        };
        Box::pin(self.after_unauthorized(response, rejected, extensions, next))
            .instrument(span)
            .await
    }
}

impl BearerAuth {
    /// Whether a request gets a token, or why it goes without one.
    fn authorizable(
        &self,
        req: &Request,
        extensions: &Extensions,
    ) -> std::result::Result<(), &'static str> {
        if extensions.get::<SkipAuth>().is_some() {
            return Err("skip_auth");
        }
        if !self.config.origins.allows(req.url()) {
            return Err("origin_not_allowed");
        }
        if !self.config.replace_authorization && req.headers().contains_key(AUTHORIZATION) {
            return Err("authorization_present");
        }
        Ok(())
    }

    /// The 401 path: decide, replace the token, resend while allowed.
    async fn after_unauthorized(
        &self,
        mut response: Response,
        mut state: Rejected,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let config = &*self.config;
        let span = tracing::Span::current();
        let mut retries_left = config.max_auth_retries;
        let mut invalidated = false;
        loop {
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if !state.carried {
                // A redirect dropped the token before this hop (or may
                // have, unseen): the 401 says nothing about the token.
                tracing::debug!(target: "reqwest_bearer", "401 to a redirected request that did not carry the token; returned as is");
                return Ok(response);
            }
            if let Verdict::Final(reason) =
                verdict(response.headers(), config.refresh_without_challenge)
            {
                tracing::debug!(target: "reqwest_bearer", reason, "401 returned as is");
                return Ok(response);
            }
            let Some(mut resend) = state.spare.take() else {
                // A request that already replaced its token keeps the new one:
                // a server rejecting every token then costs one fetch per
                // request, never a storm.
                if !invalidated {
                    config.cache.invalidate_if_current(&state.key, &state.token);
                }
                tracing::debug!(
                    target: "reqwest_bearer",
                    rejected = %state.token.fingerprint(),
                    "token rejected; not resending (retries used up, disabled, or body not replayable)"
                );
                return Ok(response);
            };
            retries_left = retries_left.saturating_sub(1);
            if retries_left > 0 {
                state.spare = resend.try_clone().map(Box::new);
            }
            let rejected = state.token.fingerprint();
            state.token = config
                .cache
                .replace_rejected(&state.key, &state.token)
                .await
                .map_err(|e| fail(BearerError::RefreshFailed(e)))?;
            invalidated = true;
            span.record("auth_retry", true);
            span.record("token", display(state.token.fingerprint()));
            tracing::debug!(
                target: "reqwest_bearer",
                rejected = %rejected,
                token = %state.token.fingerprint(),
                "token rejected (401); resending with a fresh one"
            );
            set_authorization(&mut resend, &state.token)?;
            drop(response);
            (response, state.carried) = state
                .sent
                .track(next.clone().run(*resend, extensions))
                .await?;
        }
    }
}

/// What the 401 path needs from the first attempt.
struct Rejected {
    key: TokenKey,
    token: CachedToken,
    /// A copy of the request for resending, if it could be copied.
    spare: Option<Box<Request>>,
    sent: Sent,
    /// Whether the hop that answered carried the token.
    carried: bool,
}

fn fail(error: BearerError) -> Error {
    Error::middleware(error)
}

fn set_authorization(req: &mut Request, token: &CachedToken) -> Result<()> {
    // Built once per token, then cloned (a reference count) per request.
    let value = token.derived(|authorization| {
        HeaderValue::from_str(authorization).ok().map(|mut value| {
            value.set_sensitive(true);
            value
        })
    });
    // The cache admits only header-safe tokens, so this cannot fail today;
    // it stays a typed error rather than a panic should that rule change.
    let value = value.ok_or_else(|| fail(BearerError::NoToken(TokenError::InvalidTokenValue)))?;
    req.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.config;
        f.debug_struct("BearerAuth")
            .field("cache", &c.cache)
            .field("allowed_origins", &c.origins.sorted())
            .field("default_key", &c.default_key)
            .field("max_auth_retries", &c.max_auth_retries)
            .field("retry_non_idempotent", &c.retry_non_idempotent)
            .field("refresh_without_challenge", &c.refresh_without_challenge)
            .field("replace_existing_authorization", &c.replace_authorization)
            .finish()
    }
}

impl fmt::Debug for BearerAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthBuilder")
            .field("cache", &self.cache)
            .field("origins", &self.origins.len())
            .field("default_key", &self.default_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The idempotent-only policy leans on `http`'s RFC 9110 §9.2.2 list.
    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(m.parse::<http::Method>().unwrap().is_idempotent(), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PROPFIND"] {
            assert!(!m.parse::<http::Method>().unwrap().is_idempotent(), "{m}");
        }
    }

    #[test]
    fn build_needs_an_origin_and_rejects_bad_ones() {
        let cache = || TokenCache::builder(bearer_cache::StaticSource::new("t")).build();
        assert_eq!(
            BearerAuth::builder(cache()).build().unwrap_err(),
            BuildError::NoAllowedOrigin
        );
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(matches!(
            BearerAuth::new(cache(), url("ftp://api.example.com")),
            Err(BuildError::InvalidOrigin { .. })
        ));
        assert!(matches!(
            BearerAuth::new(cache(), url("http://api.example.com")),
            Err(BuildError::PlainHttp { .. })
        ));
        let ok = BearerAuth::builder(cache())
            .allow_origin(url("http://api.example.com"))
            .allow_plain_http(true)
            .build()
            .unwrap();
        assert!(format!("{ok:?}").contains("http://api.example.com"));
    }
}
