//! Retrying transient failures inside one fetch.
//!
//! The spacing is [`bearer_cache::Backoff`], the same rule the cache uses
//! between attempts; the waiting is the source's [`Clock`], the same clock
//! the cache uses. Only the *when* of a retry inside one fetch lives here.

use std::future::Future;
use std::time::Duration;

use bearer_cache::{Backoff, Clock, TokenError};

/// The default spacing of retries inside one fetch: from 200 ms, at most
/// 2 s apart, half jittered; a `Retry-After` honoured up to 5 min (and
/// only if it ends before the fetch's deadline).
pub(crate) fn default_backoff() -> Backoff {
    Backoff::default()
        .initial(Duration::from_millis(200))
        .max(Duration::from_secs(2))
}

/// The default number of retries after the first request of a fetch.
pub(crate) const DEFAULT_RETRIES: u32 = 2;

/// Runs `attempt` until it succeeds, fails permanently, has been retried
/// `retries` times, or `timeout` (counted over every attempt and wait)
/// passes. A wait that would end past the deadline ends the retries: the
/// error goes back to the cache, which backs off on its own.
pub(crate) async fn run<T, F, Fut>(
    retries: u32,
    backoff: &Backoff,
    clock: &dyn Clock,
    timeout: Duration,
    what: &str,
    mut attempt: F,
) -> Result<T, TokenError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TokenError>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started.checked_add(timeout);
    let mut retry = 0;
    loop {
        let remaining = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(tokio::time::Instant::now())
        });
        let error = match tokio::time::timeout(remaining, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => return Err(TokenError::Timeout(timeout)),
        };
        if !error.is_transient() || retry >= retries {
            return Err(error);
        }
        retry += 1;
        let delay = backoff.delay(retry, error.retry_after());
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(tokio::time::Instant::now())
        });
        if delay >= left {
            return Err(error);
        }
        tracing::debug!(
            target: "bearer_oauth2",
            what,
            error = &error as &dyn std::error::Error,
            retry,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "transient failure; retrying"
        );
        clock.sleep(delay).await;
    }
}
