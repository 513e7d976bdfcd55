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

/// The redirect URI the `UserSignIn` tests register; nothing listens there.
pub const REDIRECT: &str = "https://app.example/callback";

/// A `UserSignIn` for the server's default client, scope `read`.
pub fn user_sign_in(server: &bearer_testkit::TestServer) -> bearer_oauth2::UserSignIn {
    bearer_oauth2::UserSignIn::new(
        server.authorize_url(),
        server.token_url(),
        server.client_id(),
        REDIRECT.parse().unwrap(),
    )
    .client_secret(server.client_secret())
    .scope("read")
}

/// Follows an authorization URL as a browser would, up to the provider's
/// redirect: the callback URL.
pub async fn approve(url: &url::Url) -> url::Url {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url.clone()).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every tracing event, at every level, written while installed.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Captures this thread's events until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// What was written so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
