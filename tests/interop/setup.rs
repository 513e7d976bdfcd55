//! The pieces every interop test assembles: a protected API that asks the
//! provider whether a token is active, a cache tuned for tokens that live
//! two seconds, and a client with `reqwest-retry` outside our middleware.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bearer_testkit::{ApiValidator, TestServer};
use reqwest_bearer::reqwest_retry::RetryTransientMiddleware;
use reqwest_bearer::reqwest_retry::policies::ExponentialBackoff;
use reqwest_bearer::{BearerAuth, BearerRetryStrategy, TokenCacheBuilder, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::Value;
use tokio::sync::Notify;

use crate::provider::{API_ID, API_SECRET, Provider};

/// The testkit's `/api/*`, accepting a token only when the provider's
/// introspection endpoint says it is active.
pub async fn protected_api(provider: &Provider) -> TestServer {
    TestServer::builder()
        .api_validator(ApiValidator::Introspection {
            url: provider.introspection_url(),
            client_id: API_ID.to_owned(),
            client_secret: API_SECRET.to_owned(),
        })
        .start()
        .await
}

/// A cache for the provider's short tokens. oidc-provider stamps `iat`
/// in whole seconds and `exp = iat + ttl`, so a token answered with
/// `expires_in: 2` may have only just over one second left: a one-second
/// margin absorbs that. No jitter, so the deadlines are exact.
pub fn short_lived_cache(source: impl TokenSource) -> TokenCacheBuilder {
    reqwest_bearer::TokenCache::builder(source)
        .expiry_margin(Duration::from_secs(1))
        .max_margin_fraction(0.5)
        .refresh_jitter(0.0)
}

/// Our middleware for the API's origin, inside `reqwest-retry`.
pub fn client(
    api: &TestServer,
    cache: reqwest_bearer::TokenCache,
) -> (BearerAuth, ClientWithMiddleware) {
    let auth = BearerAuth::builder(cache)
        .allow_origin(api.base_url())
        .build()
        .expect("a loopback origin is allowed");
    let retry = RetryTransientMiddleware::new_with_policy_and_strategy(
        ExponentialBackoff::builder().build_with_max_retries(2),
        BearerRetryStrategy::default(),
    );
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(retry)
        .with(auth.clone())
        .build();
    (auth, client)
}

/// GETs the API's echo endpoint, expecting 200: what it saw.
pub async fn echo(api: &TestServer, client: &ClientWithMiddleware) -> Echo {
    let response = client
        .get(api.api_url("/api/echo"))
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(response.status(), 200, "the API accepted the token");
    Echo(response.json().await.expect("echo answers JSON"))
}

/// The echo endpoint's answer.
pub struct Echo(pub Value);

impl Echo {
    /// The bearer token the API received.
    pub fn token(&self) -> String {
        self.0["headers"]["authorization"]
            .as_str()
            .and_then(|v| v.strip_prefix("Bearer "))
            .expect("a bearer token was sent")
            .to_owned()
    }

    /// What introspection said about the token.
    pub fn introspected(&self, field: &str) -> &Value {
        &self.0["token"][field]
    }
}

/// Counts the cache's token changes (its `on_change` hook), so a test can
/// wait for a background refresh to land.
#[derive(Clone, Default)]
pub struct Changes {
    count: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl Changes {
    pub fn hook(
        &self,
    ) -> impl Fn(&reqwest_bearer::TokenKey, &reqwest_bearer::Token) + Send + Sync + 'static {
        let this = self.clone();
        move |_, _| {
            this.count.fetch_add(1, Ordering::SeqCst);
            this.notify.notify_waiters();
        }
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until `n` changes have happened (a failure guard of 10 s).
    pub async fn wait_for(&self, n: usize) {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                if self.count() >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("expected {n} token changes, saw {}", self.count()));
    }
}

/// Introspects `token` as the API client: the provider's own word.
pub async fn introspect(provider: &Provider, token: &str) -> Value {
    reqwest::Client::new()
        .post(provider.introspection_url())
        .basic_auth(API_ID, Some(API_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspection answers")
        .json()
        .await
        .expect("introspection answers JSON")
}
