use async_trait::async_trait;

use crate::{AccessToken, Expiry, FetchContext, Token, TokenError, TokenSource};

/// A token the user already has. It never expires unless told to, so
/// the cache re-reads it only after its default lifetime.
///
/// ```
/// use bearer_cache::{StaticSource, TokenSource};
/// let source = StaticSource::new("pat_123");
/// assert_eq!(source.id(), "static");
/// assert!(!format!("{source:?}").contains("pat_123"));
/// ```
#[derive(Debug, Clone)]
pub struct StaticSource {
    token: AccessToken,
    expiry: Expiry,
    id: String,
}

impl StaticSource {
    /// A source that always returns `token`.
    pub fn new(token: impl Into<AccessToken>) -> Self {
        StaticSource {
            token: token.into(),
            expiry: Expiry::Unknown,
            id: "static".to_owned(),
        }
    }

    /// Sets the token's expiry.
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Names the source, to tell several static tokens apart in a shared store.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
}

#[async_trait]
impl TokenSource for StaticSource {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        Ok(Token::bearer(self.token.clone()).with_expiry(self.expiry))
    }
}
