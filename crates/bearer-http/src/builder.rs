//! The settings every adapter shares, set once.

use std::fmt;
use std::marker::PhantomData;

use bearer_cache::{TokenCache, TokenKey};
use url::Url;

use crate::authorizer::{Authorizer, Settings};
use crate::error::BuildError;
use crate::origin::AllowedOrigins;

/// An adapter built from an [`Authorizer`]: the reqwest middleware, the
/// tower layer. Implemented by the adapters; you name it only to write one.
pub trait Adapter: Sized {
    /// Wraps the checked configuration.
    fn from_authorizer(authorizer: Authorizer) -> Self;
}

impl Adapter for Authorizer {
    fn from_authorizer(authorizer: Authorizer) -> Self {
        authorizer
    }
}

/// Configures an adapter (`A`): where tokens go and when a rejected
/// request is resent. Every adapter's `builder` returns one, so the knobs
/// and their defaults are the same everywhere.
///
/// ```
/// use bearer_cache::{StaticSource, TokenCache};
/// use bearer_http::Authorizer;
///
/// let cache = TokenCache::builder(StaticSource::new("t0k3n")).build();
/// let authorizer = Authorizer::builder(cache)
///     .allow_origin("https://api.example.com".parse()?)
///     .max_auth_retries(1)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct AuthBuilder<A> {
    cache: TokenCache,
    origins: Vec<Url>,
    allow_plain_http: bool,
    settings: Settings,
    adapter: PhantomData<fn() -> A>,
}

impl<A: Adapter> AuthBuilder<A> {
    /// Starts from the defaults, over `cache`.
    pub fn new(cache: TokenCache) -> Self {
        AuthBuilder {
            cache,
            origins: Vec::new(),
            allow_plain_http: false,
            settings: Settings::default(),
            adapter: PhantomData,
        }
    }

    /// Allows tokens to go to this URL's origin (scheme, host and port; a
    /// path is ignored). Plain `http` is accepted only for loopback
    /// (127.0.0.0/8, `::1`, `localhost`) unless
    /// [`allow_plain_http`](Self::allow_plain_http). Checked by
    /// [`build`](Self::build), which refuses wildcards (`https://*.example.com`)
    /// and other patterns with [`BuildError::InvalidOrigin`]: allow each
    /// origin by name.
    ///
    /// Every URL here is a [`Url`]: parse it once with `.parse()?`, which
    /// reports a malformed one as a typed `url::ParseError`; what parses but
    /// cannot hold a token (another scheme, credentials, plain `http`, a
    /// wildcard) is a [`BuildError`] from `build`.
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
        self.settings.default_key = key;
        self
    }

    /// How many times one request is resent after a rejection blamed its
    /// token (default 1; 0 turns resending off). The last rejection is
    /// returned as the response, never as an error.
    pub fn max_auth_retries(mut self, retries: u32) -> Self {
        self.settings.max_auth_retries = retries;
        self
    }

    /// Whether non-idempotent requests (`POST`, `PATCH`…) are resent after
    /// a 401 (default `true`: a 401 means the server did not act on it).
    /// Set `false` to resend only `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`
    /// and `DELETE`.
    pub fn retry_non_idempotent(mut self, retry: bool) -> Self {
        self.settings.retry_non_idempotent = retry;
        self
    }

    /// Whether a 401 without any `Bearer` challenge counts as a rejected
    /// token (default `true`: many servers send a bare 401).
    pub fn refresh_without_challenge(mut self, refresh: bool) -> Self {
        self.settings.refresh_without_challenge = refresh;
        self
    }

    /// Whether a request that already carries `Authorization` gets the
    /// cache's token instead (default `false`: it is left alone).
    pub fn replace_existing_authorization(mut self, replace: bool) -> Self {
        self.settings.replace_authorization = replace;
        self
    }

    /// Checks the configuration and builds the adapter.
    pub fn build(self) -> Result<A, BuildError> {
        let mut origins = AllowedOrigins::default();
        for origin in &self.origins {
            origins.add(origin.as_str(), self.allow_plain_http)?;
        }
        if origins.is_empty() {
            return Err(BuildError::NoAllowedOrigin);
        }
        Ok(A::from_authorizer(Authorizer::new(
            self.cache,
            origins,
            self.settings,
        )))
    }
}

impl<A> fmt::Debug for AuthBuilder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthBuilder")
            .field("cache", &self.cache)
            .field("origins", &self.origins.len())
            .field("default_key", &self.settings.default_key)
            .finish_non_exhaustive()
    }
}
