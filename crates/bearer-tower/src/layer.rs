//! The layer: configuration, shared by every service it wraps.

use std::fmt;

use bearer_cache::{TokenCache, TokenSource};
use bearer_http::{Adapter, AuthBuilder, Authorizer};
use tower::Layer;

use crate::service::BearerService;

/// A tower [`Layer`] that adds `Authorization: Bearer …` from a
/// [`TokenCache`] to `http::Request`s for the origins you allow, and when
/// the server rejects the token (a 401 that blames it) replaces it and
/// resends the request once, if its body can be copied ([`ReplayBody`]).
/// The rules are those of the `reqwest-bearer` middleware, from the same
/// code (`bearer-http`).
///
/// Cheap to clone; clones share the cache.
///
/// ```
/// use bearer_cache::StaticSource;
/// use bearer_tower::BearerLayer;
///
/// let layer = BearerLayer::builder_for_source(StaticSource::new("t0k3n"))
///     .allow_origin("https://api.example.com".parse()?)
///     .build()?;
/// let service = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|request: http::Request<String>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The request's URI must be absolute (`https://host/path`), as HTTP
/// clients such as hyper-util's take it; a relative URI matches no origin
/// and goes without a token. Redirects are not this layer's business: put
/// a redirect-following layer *outside* it, so each hop is checked.
///
/// [`ReplayBody`]: crate::ReplayBody
#[derive(Clone)]
pub struct BearerLayer {
    auth: Authorizer,
}

/// Configures a [`BearerLayer`]: the same knobs and defaults as every
/// adapter ([`AuthBuilder`]).
pub type BearerLayerBuilder = AuthBuilder<BearerLayer>;

impl Adapter for BearerLayer {
    fn from_authorizer(auth: Authorizer) -> Self {
        BearerLayer { auth }
    }
}

impl BearerLayer {
    /// Starts configuring a layer over `cache`.
    pub fn builder(cache: TokenCache) -> BearerLayerBuilder {
        AuthBuilder::new(cache)
    }

    /// Like [`builder`](Self::builder), over a cache with default settings.
    pub fn builder_for_source(source: impl TokenSource) -> BearerLayerBuilder {
        Self::builder(TokenCache::builder(source).build())
    }

    /// The cache, e.g. for its [`stats`](TokenCache::stats).
    pub fn cache(&self) -> &TokenCache {
        self.auth.cache()
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService::new(inner, self.auth.clone())
    }
}

impl fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BearerLayer").field(&self.auth).finish()
    }
}
