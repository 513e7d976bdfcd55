//! Composition with `reqwest-retry`.

use reqwest_middleware::Error;
use reqwest_retry::{DefaultRetryableStrategy, Retryable, RetryableStrategy};

use crate::BearerError;

/// A `reqwest-retry` [`RetryableStrategy`][strategy] that knows [`BearerError`]:
/// a token endpoint that is down, slow or answering 5xx/429 is
/// [`Retryable::Transient`][transient]; a refused client or grant (`invalid_client`,
/// `invalid_grant`, …) is [`Retryable::Fatal`][fatal]. Everything else goes to the
/// wrapped strategy (by default reqwest-retry's own, which treats a 401 as
/// fatal: the bearer middleware already handled it).
///
/// [strategy]: https://docs.rs/reqwest-retry/0.9/reqwest_retry/trait.RetryableStrategy.html
/// [transient]: https://docs.rs/reqwest-retry/0.9/reqwest_retry/enum.Retryable.html#variant.Transient
/// [fatal]: https://docs.rs/reqwest-retry/0.9/reqwest_retry/enum.Retryable.html#variant.Fatal
///
/// Put the retry middleware **outside** (before) [`BearerAuth`](crate::BearerAuth),
/// so each retry asks the cache for a token again:
///
/// ```
/// use reqwest_bearer::{BearerAuth, BearerRetryStrategy, StaticSource};
/// use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
///
/// let auth = BearerAuth::builder_for_source(StaticSource::new("t"))
///     .allow_origin("https://api.example.com".parse()?)
///     .build()?;
/// let retry = RetryTransientMiddleware::new_with_policy_and_strategy(
///     ExponentialBackoff::builder().build_with_max_retries(3),
///     BearerRetryStrategy::default(),
/// );
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(retry)
///     .with(auth)
///     .build();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct BearerRetryStrategy<S = DefaultRetryableStrategy> {
    inner: S,
}

impl Default for BearerRetryStrategy {
    fn default() -> Self {
        BearerRetryStrategy {
            inner: DefaultRetryableStrategy,
        }
    }
}

impl<S> std::fmt::Debug for BearerRetryStrategy<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerRetryStrategy")
            .finish_non_exhaustive()
    }
}

impl<S> BearerRetryStrategy<S> {
    /// Classifies bearer errors, and hands everything else to `inner`.
    pub fn wrapping(inner: S) -> Self {
        BearerRetryStrategy { inner }
    }
}

impl<S: RetryableStrategy> RetryableStrategy for BearerRetryStrategy<S> {
    fn handle(&self, res: &Result<reqwest::Response, Error>) -> Option<Retryable> {
        if let Err(error) = res {
            if let Some(bearer) = BearerError::find(error) {
                return Some(if bearer.is_transient() {
                    Retryable::Transient
                } else {
                    Retryable::Fatal
                });
            }
        }
        self.inner.handle(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bearer_cache::{OAuthError, TokenError};

    fn classify(e: TokenError) -> Option<Retryable> {
        let err = Error::middleware(BearerError::NoToken(e));
        BearerRetryStrategy::default().handle(&Err(err))
    }

    fn oauth(code: &str, status: u16) -> TokenError {
        TokenError::OAuth {
            error: OAuthError {
                code: code.into(),
                description: None,
                uri: None,
                status,
            },
            retry_after: None,
        }
    }

    #[test]
    fn transient_token_failures_are_retried_auth_failures_are_not() {
        let transient = TokenError::Http {
            status: 503,
            excerpt: String::new(),
            retry_after: None,
        };
        assert!(classify(transient) == Some(Retryable::Transient));
        assert!(classify(oauth("temporarily_unavailable", 400)) == Some(Retryable::Transient));
        assert!(classify(oauth("invalid_client", 401)) == Some(Retryable::Fatal));
        assert!(classify(oauth("invalid_grant", 400)) == Some(Retryable::Fatal));
        let limited = BearerError::NoToken(TokenError::Http {
            status: 429,
            excerpt: String::new(),
            retry_after: Some(std::time::Duration::from_secs(7)),
        });
        assert!(limited.is_transient());
        assert_eq!(
            limited.retry_after(),
            Some(std::time::Duration::from_secs(7))
        );
    }

    #[test]
    fn finds_errors_wrapped_by_reqwest_retry() {
        let inner = Error::middleware(BearerError::RefreshFailed(oauth("server_error", 500)));
        let wrapped = Error::middleware(reqwest_retry::RetryError::WithRetries {
            retries: 2,
            err: inner,
        });
        assert!(BearerRetryStrategy::default().handle(&Err(wrapped)) == Some(Retryable::Transient));
    }

    #[test]
    fn other_middleware_errors_go_to_the_wrapped_strategy() {
        #[derive(Debug, thiserror::Error)]
        #[error("something else")]
        struct Other;
        // reqwest-retry's default treats any middleware error as fatal.
        let res = Err(Error::middleware(Other));
        assert!(BearerRetryStrategy::default().handle(&res) == Some(Retryable::Fatal));

        struct AlwaysTransient;
        impl RetryableStrategy for AlwaysTransient {
            fn handle(&self, _: &Result<reqwest::Response, Error>) -> Option<Retryable> {
                Some(Retryable::Transient)
            }
        }
        let res = Err(Error::middleware(Other));
        let s = BearerRetryStrategy::wrapping(AlwaysTransient);
        assert!(s.handle(&res) == Some(Retryable::Transient));
        let res = Err(Error::middleware(BearerError::NoToken(oauth(
            "invalid_client",
            401,
        ))));
        assert!(s.handle(&res) == Some(Retryable::Fatal));
    }
}
