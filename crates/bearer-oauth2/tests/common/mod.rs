//! Shared test helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::{Instant, SystemTime};

use bearer_cache::{
    Backoff, Clock, FetchContext, FetchReason, SystemClock, Token, TokenError, TokenKey,
    TokenSource,
};
use futures::future::BoxFuture;

/// A clock that records each wait and returns at once.
#[derive(Debug, Clone, Default)]
pub struct RecordingClock(pub Arc<Mutex<Vec<Duration>>>);

impl RecordingClock {
    pub fn waits(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

impl Clock for RecordingClock {
    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn system_now(&self) -> SystemTime {
        SystemClock.system_now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(duration);
        Box::pin(std::future::ready(()))
    }
}

/// Retries 1 to 2 ms apart: retries are exercised without waiting.
pub fn fast_retries() -> Backoff {
    Backoff::default()
        .initial(Duration::from_millis(1))
        .max(Duration::from_millis(2))
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
