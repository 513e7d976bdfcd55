//! What the layer adds to the inner service's errors.

use bearer_cache::TokenError;

/// Why the layer could not authorize a request. It reaches the caller as
/// the service's boxed error; downcast to find it. Its `Display` and
/// `Debug` never hold a secret; the [`TokenError`] is its `source()`.
///
/// ```
/// use bearer_cache::TokenError;
/// use bearer_tower::AuthError;
///
/// let boxed: tower::BoxError = Box::new(AuthError::NoToken(TokenError::InvalidTokenValue));
/// let found = boxed.downcast_ref::<AuthError>().unwrap();
/// assert!(!found.request_sent());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token could be obtained, so the request was **not sent**.
    #[error("no bearer token could be obtained; the request was not sent")]
    NoToken(#[source] TokenError),
    /// The server rejected the token sent and no replacement could be
    /// obtained, so the request was not resent.
    #[error("the server rejected the token and no new one could be obtained")]
    RefreshFailed(#[source] TokenError),
}

impl AuthError {
    /// The token source's error.
    pub fn token_error(&self) -> &TokenError {
        match self {
            AuthError::NoToken(e) | AuthError::RefreshFailed(e) => e,
        }
    }

    /// Whether the request reached the server once (and was refused).
    pub fn request_sent(&self) -> bool {
        matches!(self, AuthError::RefreshFailed(_))
    }
}
