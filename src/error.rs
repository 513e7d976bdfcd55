//! The middleware's errors.

use bearer_cache::{OAuthError, TokenError};

/// Why the middleware could not authorize a request.
///
/// It reaches the caller inside `reqwest_middleware::Error::Middleware`;
/// [`BearerError::find`] digs it out, also through `reqwest-retry`'s
/// wrapper. Its `Display` and `Debug` never contain a secret.
///
/// Its `Display` says what happened to the request; the [`TokenError`]
/// behind it is its `source()`, so print the chain (anyhow's `{:#}`, or a
/// loop over `source()`) to see both, each once.
///
/// ```
/// use reqwest_bearer::{BearerError, OAuthError, TokenError};
///
/// let err = BearerError::NoToken(TokenError::OAuth {
///     error: OAuthError { code: "invalid_client".into(), description: None, uri: None, status: 401 },
///     retry_after: None,
/// });
/// assert!(!err.is_transient());
/// assert_eq!(err.oauth().map(|e| e.code.as_str()), Some("invalid_client"));
/// assert!(!err.request_sent());
///
/// let wrapped = reqwest_middleware::Error::middleware(err);
/// assert!(BearerError::find(&wrapped).is_some());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// No token could be obtained, so the request was **not sent**.
    #[error("no bearer token could be obtained; the request was not sent")]
    NoToken(#[source] TokenError),
    /// The server answered 401 to the token sent, and no replacement could
    /// be obtained, so the request was not resent. The server did not act on
    /// the first attempt (it refused it).
    #[error("the server rejected the token and no new one could be obtained")]
    RefreshFailed(#[source] TokenError),
}

impl BearerError {
    /// The token source's error.
    pub fn token_error(&self) -> &TokenError {
        match self {
            BearerError::NoToken(e) | BearerError::RefreshFailed(e) => e,
        }
    }

    /// Whether trying again later may succeed (endpoint down, 5xx, 429,
    /// timeout); `false` for configuration and authorization failures
    /// (`invalid_client`, `invalid_grant`, …).
    pub fn is_transient(&self) -> bool {
        self.token_error().is_transient()
    }

    /// The authorization server's RFC 6749 error, when it sent one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        self.token_error().oauth()
    }

    /// How long the token endpoint asked clients to wait (`Retry-After`),
    /// if it did. `reqwest-retry` cannot be told this; the cache honours it
    /// by answering with this error until then.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.token_error().retry_after()
    }

    /// Whether the request reached the server once (and was refused with 401).
    pub fn request_sent(&self) -> bool {
        matches!(self, BearerError::RefreshFailed(_))
    }

    /// Finds a `BearerError` in a `reqwest_middleware::Error`, including one
    /// wrapped by `reqwest-retry`'s `RetryError`.
    pub fn find(error: &reqwest_middleware::Error) -> Option<&BearerError> {
        let reqwest_middleware::Error::Middleware(inner) = error else {
            return None;
        };
        if let Some(found) = inner.downcast_ref::<BearerError>() {
            return Some(found);
        }
        match inner.downcast_ref::<reqwest_retry::RetryError>()? {
            reqwest_retry::RetryError::WithRetries { err, .. }
            | reqwest_retry::RetryError::Error(err) => Self::find(err),
        }
    }
}
