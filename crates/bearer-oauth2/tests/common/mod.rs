//! Shared test helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_cache::{FetchContext, FetchReason, Token, TokenError, TokenKey, TokenSource};
use bearer_oauth2::{RetryPolicy, Sleeper};
use futures::future::BoxFuture;

/// A sleeper that records each wait and returns at once.
#[derive(Debug, Clone, Default)]
pub struct RecordingSleeper(pub Arc<Mutex<Vec<Duration>>>);

impl RecordingSleeper {
    pub fn waits(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(duration);
        Box::pin(std::future::ready(()))
    }
}

/// Two retries, 1 ms apart: retries are exercised without waiting.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .max_retries(2)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(2))
}

/// One fetch straight from a source, outside any cache.
pub async fn fetch(
    source: &dyn TokenSource,
    key: &TokenKey,
    previous: Option<&Token>,
) -> Result<Token, TokenError> {
    source
        .fetch(FetchContext::new(key, previous, FetchReason::Initial))
        .await
}

/// Asserts `secret` appears nowhere in what is shown.
pub fn assert_hidden(secret: &str, shown: &str) {
    assert!(
        !shown.contains(secret),
        "secret {secret:?} leaked in: {shown}"
    );
}
