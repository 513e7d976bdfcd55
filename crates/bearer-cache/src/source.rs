//! Where tokens come from.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Token, TokenError, TokenKey};

/// Why the cache is asking a source for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchReason {
    /// No token for this key yet.
    Initial,
    /// The current token is past its refresh point but still valid.
    RefreshAhead,
    /// The current token is past its hard expiry.
    Expired,
    /// A server rejected the current token (a 401).
    Rejected,
    /// A caller forced a refresh.
    Forced,
}

/// What a source is told when asked for a token.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FetchContext<'a> {
    /// The parameters to request the token with.
    pub key: &'a TokenKey,
    /// The token this one replaces, even if it was rejected or has expired:
    /// a source uses its refresh token.
    pub previous: Option<&'a Token>,
    /// Why the fetch happens.
    pub reason: FetchReason,
}

impl<'a> FetchContext<'a> {
    /// A context for `key`.
    pub fn new(key: &'a TokenKey, previous: Option<&'a Token>, reason: FetchReason) -> Self {
        FetchContext {
            key,
            previous,
            reason,
        }
    }
}

/// Fetches tokens. Implement it for any way of obtaining one; the cache
/// decides when.
///
/// ```
/// use async_trait::async_trait;
/// use bearer_cache::{FetchContext, Token, TokenError, TokenSource};
///
/// #[derive(Debug)]
/// struct Vault;
///
/// #[async_trait]
/// impl TokenSource for Vault {
///     fn id(&self) -> &str { "vault:payments" }
///     async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
///         Ok(Token::bearer("from-vault"))
///     }
/// }
/// ```
#[async_trait]
pub trait TokenSource: Send + Sync + Debug + 'static {
    /// A stable name for this source (issuer, grant, client id): it is part
    /// of every shared-store key. It must not contain a secret.
    fn id(&self) -> &str;

    /// Obtains a token for `cx.key`.
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError>;

    /// How long one fetch may take when the source knows it needs longer
    /// than the cache's [`fetch_timeout`](crate::TokenCacheBuilder::fetch_timeout):
    /// an interactive sign-in waits minutes for a person. The cache allows
    /// the longer of the two. `None` (the default) defers to the cache.
    fn fetch_deadline(&self) -> Option<Duration> {
        None
    }
}

#[async_trait]
impl<S: TokenSource + ?Sized> TokenSource for Arc<S> {
    fn id(&self) -> &str {
        (**self).id()
    }

    fn fetch_deadline(&self) -> Option<Duration> {
        (**self).fetch_deadline()
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        (**self).fetch(cx).await
    }
}

#[async_trait]
impl<S: TokenSource + ?Sized> TokenSource for Box<S> {
    fn id(&self) -> &str {
        (**self).id()
    }

    fn fetch_deadline(&self) -> Option<Duration> {
        (**self).fetch_deadline()
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        (**self).fetch(cx).await
    }
}
