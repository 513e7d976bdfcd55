//! The typed error every token source and the cache return.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An RFC 6749 §5.2 error response, kept as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The `error` code, e.g. `invalid_client`.
    pub code: String,
    /// `error_description`, if any.
    pub description: Option<String>,
    /// `error_uri`, if any.
    pub uri: Option<String>,
    /// The HTTP status it came with.
    pub status: u16,
}

impl OAuthError {
    /// Whether trying again later may succeed (`server_error`,
    /// `temporarily_unavailable`, or a 5xx/429 status).
    pub fn is_transient(&self) -> bool {
        // RFC 8628's polling answers are part of the device flow, whatever
        // status they come with: retrying them early would ignore `slow_down`.
        if matches!(self.code.as_str(), "authorization_pending" | "slow_down") {
            return false;
        }
        matches!(
            self.code.as_str(),
            "server_error" | "temporarily_unavailable"
        ) || transient_status(self.status)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.code, self.status)?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Whether an HTTP status from a token endpoint is worth retrying.
pub fn transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The underlying error behind a [`TokenError`] or [`StoreError`]: shared
/// so the error stays cheap to clone, and transparent to `source()` chains,
/// which reach the original error so it can be downcast.
///
/// ```
/// use std::error::Error;
/// use bearer_cache::TokenError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
/// let e = TokenError::transport(io);
/// let source = e.source().unwrap();
/// assert_eq!(source.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::ConnectionReset);
/// ```
#[derive(Clone)]
pub struct Cause(Arc<dyn StdError + Send + Sync>);

impl Cause {
    /// Wraps an error.
    pub fn new(error: impl StdError + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }
}

// Deliberately not `Error` itself: thiserror then reaches through the
// `Deref` to the original error for `source()`.
impl std::ops::Deref for Cause {
    type Target = dyn StdError + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for Cause {
    fn from(error: E) -> Self {
        Cause::new(error)
    }
}

/// Why a token could not be obtained.
///
/// Cloneable, because one failed fetch answers every caller that waited on
/// it. [`TokenError::is_transient`] tells retry layers whether trying again
/// may help; [`TokenError::oauth`] gives the RFC 6749 error when there was one.
///
/// ```
/// use bearer_cache::{OAuthError, TokenError};
/// let e = TokenError::OAuth {
///     error: OAuthError { code: "invalid_client".into(), description: None, uri: None, status: 401 },
///     retry_after: None,
/// };
/// assert!(!e.is_transient());
/// assert_eq!(e.oauth().unwrap().code, "invalid_client");
///
/// // A device-flow `slow_down` is never retried early, even sent with a 429.
/// let slow = OAuthError { code: "slow_down".into(), description: None, uri: None, status: 429 };
/// assert!(!slow.is_transient());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The authorization server answered with an RFC 6749 §5.2 error.
    #[error("authorization server error: {error}")]
    OAuth {
        /// The error as sent.
        error: OAuthError,
        /// The `Retry-After` the server sent, if any.
        retry_after: Option<Duration>,
    },
    /// A non-success HTTP status without an OAuth error body.
    #[error("token endpoint answered HTTP {status}: {excerpt:?}")]
    Http {
        /// The status.
        status: u16,
        /// The start of the body, scrubbed of secrets.
        excerpt: String,
        /// The `Retry-After` the server sent, if any.
        retry_after: Option<Duration>,
    },
    /// The answer could not be understood.
    #[error("malformed token response (HTTP {status}): {reason}; body starts {excerpt:?}")]
    Malformed {
        /// The status it came with.
        status: u16,
        /// What was wrong.
        reason: String,
        /// The start of the body, scrubbed of secrets.
        excerpt: String,
    },
    /// The server issued a token of a type this source cannot use: not
    /// Bearer, nor DPoP from a source that holds a DPoP key (MAC, N_A…).
    #[error("unsupported token type {0:?}: only Bearer, and DPoP with a DPoP key, are supported")]
    UnsupportedTokenType(String),
    /// The proof of possession for a bound (DPoP) token could not be made;
    /// the cause says why (a key that cannot sign).
    #[error("could not make the proof of possession for the token")]
    ProofFailed(#[source] Cause),
    /// The token value cannot be sent in a header (control characters, CR/LF…).
    #[error("the token contains characters not allowed in an Authorization header")]
    InvalidTokenValue,
    /// The answer was larger than the configured cap.
    #[error("token response exceeded {limit} bytes")]
    BodyTooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The fetch took longer than allowed.
    #[error("token request timed out after {0:?}")]
    Timeout(Duration),
    /// The token endpoint could not be reached or the connection broke.
    #[error("could not reach the token endpoint")]
    Transport(#[source] Cause),
    /// The token source panicked. Counted as a failed attempt: the key backs
    /// off and the next attempt calls the source again.
    #[error("the token source panicked")]
    SourcePanicked,
    /// The attempt ended before the source answered: its task was
    /// cancelled, or the runtime running it shut down. The next attempt
    /// starts afresh.
    #[error("the token fetch was interrupted before it finished")]
    Interrupted,
    /// The token had expired by the time it arrived (a negative or zero
    /// lifetime, an `exp` in the past, or a very slow answer). It is never
    /// handed out; the key backs off as after any failure.
    #[error("the token was already expired when it arrived")]
    AlreadyExpired,
    /// The refresh token was refused and there is no other grant to fall back on.
    #[error("re-authentication required: {0}")]
    ReauthenticationRequired(String),
    /// Any other failure of a token source.
    #[error("{message}")]
    Source {
        /// What went wrong (no secrets).
        message: String,
        /// Whether trying again may help.
        transient: bool,
        /// The underlying cause.
        #[source]
        cause: Option<Cause>,
    },
}

impl TokenError {
    /// A custom source failure.
    pub fn source(message: impl Into<String>, transient: bool) -> Self {
        TokenError::Source {
            message: message.into(),
            transient,
            cause: None,
        }
    }

    /// A transport failure from any error type.
    pub fn transport(cause: impl StdError + Send + Sync + 'static) -> Self {
        TokenError::Transport(Cause::new(cause))
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::OAuth { error, .. } => error.is_transient(),
            TokenError::Http { status, .. } => transient_status(*status),
            // A garbled answer is usually a proxy or a server mid-deploy.
            TokenError::Malformed { .. } => true,
            TokenError::Timeout(_)
            | TokenError::Transport(_)
            | TokenError::SourcePanicked
            | TokenError::Interrupted
            | TokenError::AlreadyExpired => true,
            TokenError::Source { transient, .. } => *transient,
            TokenError::UnsupportedTokenType(_)
            | TokenError::ProofFailed(_)
            | TokenError::InvalidTokenValue
            | TokenError::BodyTooLarge { .. }
            | TokenError::ReauthenticationRequired(_) => false,
        }
    }

    /// The RFC 6749 error, if the server sent one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            TokenError::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenError::OAuth { retry_after, .. } | TokenError::Http { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// A failure of a second-level [`TokenStore`](crate::TokenStore).
///
/// The cache never fails a caller because of one: it logs, then works
/// without the store. A read that reached the store but found a value it
/// cannot use ([`unusable_value`](Self::unusable_value)) is not an outage:
/// the cache treats the key as empty and keeps sharing through the store.
///
/// ```
/// use bearer_cache::StoreError;
///
/// let down = StoreError::new("connection refused");
/// let bad = StoreError::unusable_value("undecodable stored token");
/// assert!(!down.is_unusable_value());
/// assert!(bad.is_unusable_value());
/// assert_eq!(bad.to_string(), "token store: undecodable stored token");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("token store: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    cause: Option<Cause>,
    unusable_value: bool,
}

impl StoreError {
    /// A store error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            cause: None,
            unusable_value: false,
        }
    }

    /// A store error wrapping a cause.
    pub fn with_cause(
        message: impl Into<String>,
        cause: impl StdError + Send + Sync + 'static,
    ) -> Self {
        StoreError {
            message: message.into(),
            cause: Some(Cause::new(cause)),
            unusable_value: false,
        }
    }

    /// The store answered, but what it holds for the key cannot be read
    /// (undecodable, unknown version, failed decryption). The message must
    /// not contain any of the value.
    pub fn unusable_value(message: impl Into<String>) -> Self {
        StoreError {
            unusable_value: true,
            ..Self::new(message)
        }
    }

    /// Marks this error as an [`unusable_value`](Self::unusable_value).
    pub fn into_unusable_value(mut self) -> Self {
        self.unusable_value = true;
        self
    }

    /// Whether the store answered with a value that cannot be used, rather
    /// than failing to answer.
    pub fn is_unusable_value(&self) -> bool {
        self.unusable_value
    }
}
