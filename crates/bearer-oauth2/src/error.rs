//! Errors of the interactive flows and of discovery.

use bearer_cache::TokenError;

/// Why an interactive flow (authorization code, device authorization)
/// failed before a token request could be made. Carried as the cause of a
/// [`TokenError::Source`]; get it back with [`flow_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The callback's `state` did not match the one sent: a forged or
    /// stale redirect.
    #[error("the authorization callback's state does not match the request's")]
    StateMismatch,
    /// The callback carried neither a code nor an error.
    #[error("the authorization callback carried no code")]
    MissingCode,
    /// The authorization server redirected back with an error
    /// (RFC 6749 §4.1.2.1), e.g. `access_denied`.
    #[error("authorization failed: {code}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    AuthorizationFailed {
        /// The `error` code.
        code: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// Nobody completed the sign-in in time.
    #[error("no authorization callback within {0:?}")]
    CallbackTimeout(std::time::Duration),
    /// The loopback listener for the redirect could not be opened.
    #[error("cannot listen for the authorization callback: {0}")]
    Listener(String),
    /// The device code expired before the user approved it.
    #[error("the device code expired before the user approved it")]
    DeviceCodeExpired,
    /// The device authorization answer lacked a field or was not JSON.
    #[error("malformed device authorization answer: {0}")]
    MalformedDeviceAuthorization(String),
}

impl FlowError {
    /// Whether trying again may help without a person doing something.
    pub fn is_transient(&self) -> bool {
        matches!(self, FlowError::Listener(_))
    }
}

impl From<FlowError> for TokenError {
    fn from(error: FlowError) -> Self {
        let transient = error.is_transient();
        // What failed; the flow's own message is the source's.
        source_error(
            "the interactive authorization did not complete",
            error,
            transient,
        )
    }
}

/// A [`TokenError::Source`] saying `what` failed, caused by `error`
/// (reachable again by downcast), whose message it does not repeat.
pub(crate) fn source_error(
    what: &str,
    error: impl std::error::Error + Send + Sync + 'static,
    transient: bool,
) -> TokenError {
    TokenError::Source {
        message: what.to_owned(),
        transient,
        cause: Some(bearer_cache::Cause::new(error)),
    }
}

/// Why a [`RefreshTokenStorage`](crate::RefreshTokenStorage) could not load,
/// save or remove a refresh token. Reaches the cache as a transient
/// [`TokenError::Source`] with this error as its cause.
///
/// ```
/// use bearer_oauth2::StorageError;
/// use std::error::Error;
///
/// let io = std::io::Error::other("connection reset");
/// let err = StorageError::new("cannot reach the session database").with_source(io);
/// assert_eq!(err.to_string(), "cannot reach the session database");
/// assert_eq!(err.source().unwrap().to_string(), "connection reset");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A storage failure, described without any secret.
    pub fn new(message: impl Into<String>) -> Self {
        StorageError {
            message: message.into(),
            source: None,
        }
    }

    /// The underlying error (the database's, the file system's).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl From<StorageError> for TokenError {
    fn from(error: StorageError) -> Self {
        source_error("the refresh token storage failed", error, true)
    }
}

/// The [`FlowError`] behind a [`TokenError`], if that is what it is.
///
/// ```
/// use bearer_cache::TokenError;
/// use bearer_oauth2::{FlowError, flow_error};
/// let e: TokenError = FlowError::StateMismatch.into();
/// assert_eq!(flow_error(&e), Some(&FlowError::StateMismatch));
/// assert!(!e.is_transient());
/// ```
pub fn flow_error(error: &TokenError) -> Option<&FlowError> {
    match error {
        TokenError::Source {
            cause: Some(cause), ..
        } => cause.downcast_ref::<FlowError>(),
        _ => None,
    }
}

/// Why OpenID discovery failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The discovery document could not be fetched (transport, status,
    /// timeout, size).
    #[error("cannot fetch the discovery document")]
    Fetch(#[from] TokenError),
    /// The document is not the JSON object RFC 8414 describes.
    #[error("malformed discovery document: {0}")]
    Malformed(String),
    /// The document names another issuer (RFC 8414 §3.3): it must not be used.
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The issuer asked for (without query or userinfo, as every URL shown).
        expected: String,
        /// The issuer the document names (likewise).
        found: String,
    },
    /// The provider does not offer an endpoint this grant needs.
    #[error("the provider has no {0}")]
    MissingEndpoint(&'static str),
    /// The provider's `token_endpoint_auth_methods_supported` leaves out
    /// the client authentication method asked for.
    #[error("the provider does not accept client authentication method {method}")]
    AuthMethodNotSupported {
        /// The method's registered name, e.g. `private_key_jwt`.
        method: &'static str,
    },
    /// The provider's `token_endpoint_auth_signing_alg_values_supported`
    /// leaves out the client assertion's algorithm.
    #[error("the provider does not accept client assertions signed with {algorithm}")]
    AssertionAlgorithmNotSupported {
        /// The key's algorithm, e.g. `EdDSA`.
        algorithm: String,
    },
}
