//! What a configuration can get wrong.

/// A configuration an adapter refuses to build.
///
/// ```
/// use bearer_cache::{StaticSource, TokenCache};
/// use bearer_http::{Authorizer, BuildError};
///
/// let cache = TokenCache::builder(StaticSource::new("t")).build();
/// let err = Authorizer::builder(cache)
///     .allow_origin("http://api.example.com".parse()?)
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, BuildError::PlainHttp { .. }));
/// # Ok::<(), url::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An allowed origin that is not an `http(s)://host[:port]` URL: not a
    /// URL, another scheme, credentials, or a pattern such as
    /// `https://*.example.com` (allow each origin by name).
    #[error(
        "invalid allowed origin {input:?} ({reason}); an origin is scheme://host[:port], e.g. https://api.example.com"
    )]
    InvalidOrigin {
        /// The input (redacted if it may hold credentials).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plain-`http` origin that is not loopback, without
    /// [`allow_plain_http`](crate::AuthBuilder::allow_plain_http).
    #[error(
        "refusing to send bearer tokens over plain http to {origin}; use https, or allow_plain_http(true) if the network is trusted"
    )]
    PlainHttp {
        /// The origin.
        origin: String,
    },
    /// No origin was allowed, so no request would ever get a token.
    #[error("no allowed origin: call allow_origin(..) at least once")]
    NoAllowedOrigin,
}
