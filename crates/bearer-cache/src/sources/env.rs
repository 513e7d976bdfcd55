use std::time::Duration;

use async_trait::async_trait;

use crate::sources::text::token_from_text;
use crate::{FetchContext, Token, TokenError, TokenSource};

/// A token read from an environment variable on every fetch.
///
/// A JWT keeps its own `exp`; any other token is given
/// [`reread_after`](Self::reread_after) (default 5 min) as its lifetime. An
/// unset variable is a permanent error: the process environment does not
/// change by itself.
///
/// ```
/// use bearer_cache::{EnvSource, TokenSource};
/// let source = EnvSource::new("API_TOKEN");
/// assert_eq!(source.id(), "env:API_TOKEN");
/// ```
#[derive(Debug, Clone)]
pub struct EnvSource {
    variable: String,
    id: String,
    reread_after: Duration,
}

impl EnvSource {
    /// A source reading the token from the variable `variable`.
    pub fn new(variable: impl Into<String>) -> Self {
        let variable = variable.into();
        EnvSource {
            id: format!("env:{variable}"),
            variable,
            reread_after: Duration::from_secs(300),
        }
    }

    /// The lifetime given to a token that is not a JWT (default 5 min).
    pub fn reread_after(mut self, lifetime: Duration) -> Self {
        self.reread_after = lifetime;
        self
    }

    /// Names the source (default `env:<variable>`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
}

#[async_trait]
impl TokenSource for EnvSource {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let what = format!("environment variable {}", self.variable);
        match std::env::var(&self.variable) {
            Ok(text) => token_from_text(&text, self.reread_after, &what),
            Err(std::env::VarError::NotPresent) => {
                Err(TokenError::source(format!("{what} is not set"), false))
            }
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::InvalidTokenValue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expiry, FetchReason, TokenKey};

    async fn fetch(source: &EnvSource) -> Result<Token, TokenError> {
        let key = TokenKey::new();
        source
            .fetch(FetchContext::new(&key, None, FetchReason::Initial))
            .await
    }

    #[tokio::test]
    async fn reads_the_variable() {
        // Cargo sets this for the test process; no unsafe `set_var` needed.
        let source = EnvSource::new("CARGO_PKG_NAME").reread_after(Duration::from_secs(9));
        let token = fetch(&source).await.unwrap();
        assert_eq!(token.access_token().expose_secret(), "bearer-cache");
        assert_eq!(token.expiry(), Expiry::In(Duration::from_secs(9)));
    }

    #[tokio::test]
    async fn unset_variable_is_a_permanent_error() {
        let err = fetch(&EnvSource::new("BEARER_CACHE_SURELY_UNSET_7f3a"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::Source {
                    transient: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("BEARER_CACHE_SURELY_UNSET_7f3a"));
    }

    #[tokio::test]
    async fn a_value_with_spaces_is_refused() {
        // CARGO_PKG_DESCRIPTION has spaces: not a header-safe token.
        let err = fetch(&EnvSource::new("CARGO_PKG_DESCRIPTION"))
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::InvalidTokenValue), "{err:?}");
    }
}
