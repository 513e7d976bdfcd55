//! Retrying transient failures inside one fetch, and the injectable wait.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use bearer_cache::{ManualClock, TokenError};
use futures::future::BoxFuture;
use rand::RngExt;

/// Waits. Every pause of a source (retry backoff, device-flow polling)
/// goes through one, so tests replace real waiting with moving a clock.
///
/// [`TokioSleeper`] is the default. [`ManualClock`] is a sleeper too: its
/// `sleep` advances the clock and returns at once, so a test that shares
/// the clock with the test server sees a device flow poll at its interval
/// without waiting a second.
///
/// ```
/// use bearer_cache::{Clock, ManualClock};
/// use bearer_oauth2::Sleeper;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.sleep(Duration::from_secs(5)).await;
/// assert_eq!(clock.now() - t0, Duration::from_secs(5));
/// # }
/// ```
pub trait Sleeper: Send + Sync + Debug + 'static {
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Real waiting, on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

impl Sleeper for ManualClock {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}

/// How a source retries a transient failure (5xx, 429, 408, a broken
/// connection, `server_error`, `temporarily_unavailable`, a garbled answer)
/// within one fetch. Permanent failures are never retried.
///
/// The wait before retry `n` (0-based) is half fixed, half random
/// ("equal jitter") around `base_delay · 2ⁿ`, capped at `max_delay`, and
/// never shorter than a `Retry-After` the server sent. A `Retry-After`
/// beyond `max_retry_after`, or a wait that would end past the fetch's
/// deadline, ends the retries: the error goes back to the cache, which
/// backs off on its own.
///
/// ```
/// use bearer_oauth2::RetryPolicy;
/// use std::time::Duration;
/// let policy = RetryPolicy::default().max_retries(1).base_delay(Duration::from_millis(1));
/// assert_eq!(policy.retries(), 1);
/// assert_eq!(RetryPolicy::none().retries(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Two retries, from 200 ms, at most 2 s apart; `Retry-After` up to 10 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// How many retries after the first attempt.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The wait before the first retry, doubled for each further one.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest wait between attempts (not counting `Retry-After`).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The longest `Retry-After` waited for inside a fetch.
    pub fn max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after = limit;
        self
    }

    /// The configured number of retries.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry `retry` (0-based), or `None` to stop.
    fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut impl RngExt,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let base = self
            .base_delay
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_delay);
        let half = base / 2;
        let jittered = half + half.mul_f64(rng.random::<f64>());
        match retry_after {
            Some(asked) if asked > self.max_retry_after => None,
            Some(asked) => Some(jittered.max(asked)),
            None => Some(jittered),
        }
    }
}

/// Runs `attempt` until it succeeds, fails permanently, runs out of
/// retries, or `timeout` (counted over every attempt and wait) passes.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    sleeper: &dyn Sleeper,
    timeout: Duration,
    what: &str,
    mut attempt: F,
) -> Result<T, TokenError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TokenError>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut retry = 0;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let error = match tokio::time::timeout(remaining, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => return Err(TokenError::Timeout(timeout)),
        };
        if !error.is_transient() {
            return Err(error);
        }
        let Some(delay) = policy.delay(retry, error.retry_after(), &mut rand::rng()) else {
            return Err(error);
        };
        if tokio::time::Instant::now() + delay >= deadline {
            return Err(error);
        }
        retry += 1;
        tracing::debug!(
            target: "bearer_oauth2",
            what,
            %error,
            retry,
            delay_ms = delay.as_millis() as u64,
            "transient failure; retrying"
        );
        sleeper.sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let policy = RetryPolicy::default()
            .max_retries(10)
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(400));
        let mut rng = rand::rng();
        for (retry, base) in [(0, 100), (1, 200), (2, 400), (5, 400)] {
            let d = policy.delay(retry, None, &mut rng).unwrap();
            let base = Duration::from_millis(base);
            assert!(d >= base / 2 && d <= base, "retry {retry}: {d:?}");
        }
        let asked = Duration::from_secs(7);
        assert_eq!(policy.delay(0, Some(asked), &mut rng), Some(asked));
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(11)), &mut rng),
            None
        );
        assert_eq!(policy.delay(10, None, &mut rng), None);
    }
}
