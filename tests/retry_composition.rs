//! `reqwest-retry` around and inside the bearer middleware, with exact counts.

#[path = "middleware_support/mod.rs"]
mod support;

use std::time::{Duration, SystemTime};

use bearer_testkit::{TestServer, TokenFault};
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{BearerAuth, BearerError, BearerRetryStrategy, ManualClock, TokenCache};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{RetryDecision, RetryPolicy, RetryTransientMiddleware};
use support::get_echo;

/// Retries at once, but first moves the shared clock past the cache's
/// backoff, as a real retry policy's wait would.
struct ClockStepRetries {
    clock: ManualClock,
    max_retries: u32,
}

impl RetryPolicy for ClockStepRetries {
    fn should_retry(&self, _start: SystemTime, n_past_retries: u32) -> RetryDecision {
        if n_past_retries >= self.max_retries {
            return RetryDecision::DoNotRetry;
        }
        self.clock.advance(Duration::from_secs(60));
        RetryDecision::Retry {
            execute_after: SystemTime::now(),
        }
    }
}

struct Rig {
    server: TestServer,
    auth: BearerAuth,
    clock: ManualClock,
}

async fn rig(secret: Option<&str>) -> Rig {
    rig_waiting(secret, Duration::from_secs(10)).await
}

/// `max_wait`: how long the cache lets a caller wait for its next attempt.
async fn rig_waiting(secret: Option<&str>, max_wait: Duration) -> Rig {
    let clock = ManualClock::new();
    let server = TestServer::builder().clock(clock.clone()).start().await;
    let source = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        secret.unwrap_or(server.client_secret()),
    )
    .scope("read")
    .retries(0);
    let cache = TokenCache::builder(source)
        .clock(clock.clone())
        .max_wait(max_wait)
        .build();
    let auth = BearerAuth::new(cache, server.base_url()).unwrap();
    Rig {
        server,
        auth,
        clock,
    }
}

fn retry(rig: &Rig) -> RetryTransientMiddleware<ClockStepRetries, BearerRetryStrategy> {
    RetryTransientMiddleware::new_with_policy_and_strategy(
        ClockStepRetries {
            clock: rig.clock.clone(),
            max_retries: 3,
        },
        BearerRetryStrategy::default(),
    )
}

/// Builds the client for one ordering of the retry and bearer layers.
type BuildClient = fn(&Rig) -> ClientWithMiddleware;

/// Recommended: retry outside, bearer inside.
fn retry_outside(rig: &Rig) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(retry(rig))
        .with(rig.auth.clone())
        .build()
}

fn retry_inside(rig: &Rig) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(rig.auth.clone())
        .with(retry(rig))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outer_retry_recovers_from_an_unavailable_token_endpoint() {
    let rig = rig(None).await;
    let control = rig.server.control();
    control.fail_next_token_requests(2, TokenFault::ServiceUnavailable { retry_after: None });
    let client = retry_outside(&rig);
    get_echo(&client, rig.server.api_url("/api/echo")).await;
    let counters = control.counters();
    assert_eq!(counters.token_requests, 3);
    assert_eq!(counters.issued.client_credentials, 1);
    assert_eq!(counters.api_requests, 1);
    let stats = rig.auth.cache().stats();
    assert_eq!(stats.failures, 2);
    assert_eq!(stats.backoff_refusals, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outer_retry_gives_up_on_a_refused_client_at_once() {
    let rig = rig(Some("wrong-secret")).await;
    let client = retry_outside(&rig);
    let err = client
        .get(rig.server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let bearer = BearerError::find(&err).expect("found through reqwest-retry's wrapper");
    assert_eq!(
        bearer.oauth().map(|e| e.code.as_str()),
        Some("invalid_client")
    );
    assert!(!bearer.is_transient());
    let counters = rig.server.control().counters();
    assert_eq!(counters.token_requests, 1);
    assert_eq!(counters.api_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outer_retry_gives_up_after_its_budget() {
    // Callers that do not wait: each retry costs exactly one attempt.
    let rig = rig_waiting(None, Duration::ZERO).await;
    let control = rig.server.control();
    control.fail_next_token_requests(10, TokenFault::InternalError);
    let err = retry_outside(&rig)
        .get(rig.server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    assert!(BearerError::find(&err).unwrap().is_transient());
    // One attempt and three retries, each a real fetch after the backoff.
    assert_eq!(control.counters().token_requests, 4);
    assert_eq!(control.counters().api_requests, 0);
}

/// The README's stack with a real retry policy (10–200 ms apart): a retry
/// never lands on a stored error. The token endpoint fails twice and
/// recovers; the request succeeds, with one token request per failure
/// plus the one that succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recommended_stack_loses_no_request_to_a_short_token_outage() {
    for failures in [1, 2, 3] {
        let rig = rig(None).await;
        let control = rig.server.control();
        control.fail_next_token_requests(
            failures,
            TokenFault::ServiceUnavailable { retry_after: None },
        );
        let retry = RetryTransientMiddleware::new_with_policy_and_strategy(
            ExponentialBackoff::builder()
                .retry_bounds(Duration::from_millis(10), Duration::from_millis(200))
                .build_with_max_retries(3),
            BearerRetryStrategy::default(),
        );
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(retry)
            .with(rig.auth.clone())
            .build();
        get_echo(&client, rig.server.api_url("/api/echo")).await;
        let counters = control.counters();
        assert_eq!(counters.token_requests, failures + 1, "{failures} failures");
        assert_eq!(counters.issued.client_credentials, 1);
        assert_eq!(counters.api_requests, 1);
        assert_eq!(rig.auth.cache().stats().backoff_refusals, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_either_side_leaves_401_handling_to_the_bearer_layer() {
    let variants: [(&str, BuildClient); 2] = [
        ("retry_outside", retry_outside),
        ("retry_inside", retry_inside),
    ];
    for (name, build) in variants {
        let rig = rig(None).await;
        let control = rig.server.control();
        let client = build(&rig);
        get_echo(&client, rig.server.api_url("/api/echo")).await;
        control.revoke_all();
        get_echo(&client, rig.server.api_url("/api/echo")).await;
        let counters = control.counters();
        // The retry layer never resends a 401 (an inner one treats it as
        // final); the bearer layer resends once with a fresh token.
        assert_eq!(counters.api_requests, 3, "{name}");
        assert_eq!(counters.issued.client_credentials, 2, "{name}");
        assert_eq!(rig.auth.cache().stats().invalidations, 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_retry_resends_5xx_with_the_same_token() {
    let rig = rig(None).await;
    let control = rig.server.control();
    let response = retry_inside(&rig)
        .get(rig.server.api_url("/api/status/503"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let counters = control.counters();
    assert_eq!(counters.api_requests, 4);
    assert_eq!(counters.token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_retry_cannot_help_a_token_endpoint_outage() {
    let rig = rig_waiting(None, Duration::ZERO).await;
    let control = rig.server.control();
    control.fail_next_token_requests(1, TokenFault::ServiceUnavailable { retry_after: None });
    let err = retry_inside(&rig)
        .get(rig.server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    // The bearer layer fails before the inner retry runs: one fetch, no request.
    assert!(BearerError::find(&err).unwrap().is_transient());
    assert_eq!(control.counters().token_requests, 1);
    assert_eq!(control.counters().api_requests, 0);
}
