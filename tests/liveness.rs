//! The key always recovers, end to end: a client with the middleware, a
//! real token endpoint (the test kit) answering with the numbers real
//! servers send, and a source that panics. Each case once left the key
//! stopped for good, or asked the endpoint on every request.
//!
//! Time is a `ManualClock` shared by the cache and the test server.

#[path = "middleware_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bearer_testkit::{TestServer, TokenFault};
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{
    BearerAuth, BearerError, FetchContext, ManualClock, Token, TokenCache, TokenError, TokenSource,
};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::json;
use support::{client, get_echo, source};

struct Rig {
    server: TestServer,
    clock: ManualClock,
    client: ClientWithMiddleware,
}

async fn rig_with(make: impl FnOnce(ClientCredentials) -> Box<dyn TokenSource>) -> Rig {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await;
    let cache = TokenCache::builder(make(source(&server)))
        .clock(clock.clone())
        .build();
    let auth = BearerAuth::builder(cache)
        .allow_origin(server.base_url())
        .build()
        .unwrap();
    Rig {
        client: client(auth),
        server,
        clock,
    }
}

async fn rig() -> Rig {
    rig_with(|s| Box::new(s)).await
}

impl Rig {
    fn token_requests(&self) -> u64 {
        self.server.control().counters().token_requests
    }

    fn answer_next_with(&self, name: &str, value: serde_json::Value) {
        self.server.control().fail_next_token_requests(
            1,
            TokenFault::Field {
                name: name.into(),
                value,
            },
        );
    }

    async fn get(&self) {
        get_echo(&self.client, self.server.api_url("/api/echo")).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn never_expires_as_java_sends_it_is_capped_and_the_key_keeps_working() {
    for (name, value) in [
        ("expires_in", json!(9_223_372_036_854_775_807_i64)),
        ("expires_in", json!(1e300)),
        ("refresh_in", json!(9_223_372_036_854_775_807_i64)),
    ] {
        let rig = rig().await;
        rig.answer_next_with(name, value.clone());
        for _ in 0..5 {
            rig.get().await;
        }
        assert_eq!(rig.token_requests(), 1, "{name}: {value}");
        // "Never" is believed for a day at most: then the key refreshes.
        rig.clock.advance(Duration::from_secs(25 * 3600));
        rig.get().await;
        assert_eq!(rig.token_requests(), 2, "{name}: {value}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn expires_in_zero_means_unsaid_and_causes_no_storm() {
    let rig = rig().await;
    rig.answer_next_with("expires_in", json!(0));
    for _ in 0..20 {
        rig.get().await;
    }
    assert_eq!(rig.token_requests(), 1, "20 requests, one token");
}

#[tokio::test(flavor = "current_thread")]
async fn an_already_expired_token_is_never_sent() {
    let rig = rig().await;
    rig.server.control().fail_next_token_requests(
        u64::MAX,
        TokenFault::Field {
            name: "expires_in".into(),
            value: json!(-5),
        },
    );
    let t0 = rig.clock.elapsed();
    let err = rig
        .client
        .get(rig.server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let bearer = BearerError::find(&err).expect("a BearerError");
    assert!(
        matches!(bearer.token_error(), TokenError::AlreadyExpired),
        "{bearer:?}"
    );
    assert_eq!(rig.server.control().counters().api_requests, 0);
    // The caller waited out its 10 s with attempts spaced by the backoff
    // (0.5, 1, 2, 4 s nominal), not one per millisecond.
    let waited = rig.clock.elapsed() - t0;
    assert!(waited <= Duration::from_secs(10), "{waited:?}");
    assert!(
        rig.token_requests() <= 6,
        "{} attempts",
        rig.token_requests()
    );
    // The server mends its ways: the next attempt serves.
    rig.server.control().clear_token_faults();
    rig.clock.advance(Duration::from_secs(10));
    rig.get().await;
}

/// Panics on its first fetch, then behaves.
#[derive(Debug)]
struct PanicsOnce<S> {
    inner: S,
    calls: AtomicU64,
}

#[async_trait]
impl<S: TokenSource> TokenSource for PanicsOnce<S> {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("a bug in the source");
        }
        self.inner.fetch(cx).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_source_that_panicked_once_serves_the_same_request() {
    let rig = rig_with(|inner| {
        Box::new(PanicsOnce {
            inner,
            calls: AtomicU64::new(0),
        })
    })
    .await;
    for _ in 0..3 {
        rig.get().await;
    }
    assert_eq!(rig.token_requests(), 1, "the panic cost no token request");
}
