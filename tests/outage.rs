//! The token endpoint goes down: callers holding a valid token never
//! notice; after hard expiry they wait for the next attempt (by default)
//! or get typed errors at once (`max_wait` zero), never a hang; the
//! endpoint sees no more attempts than the backoff allows however hard the
//! client is hammered; and the first attempt after it comes back succeeds.
//!
//! Time is a `ManualClock` shared by the cache and the test server; each
//! test runs on one thread, so a background fetch's outcome is recorded
//! before the test task runs again.

use std::time::Duration;

use async_trait::async_trait;
use bearer_testkit::{TestServer, TokenFault};
use futures::future::join_all;
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{
    Backoff, BearerAuth, BearerError, FetchContext, ManualClock, Token, TokenCache, TokenError,
    TokenSource,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::sync::watch;

const LIFETIME: Duration = Duration::from_secs(3600);
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Concurrent requests per instant.
const HAMMER: usize = 10;

/// Counts the fetches of the real source that have finished, so the test
/// can wait for a background refresh to end without sleeping.
#[derive(Debug)]
struct Finished<S> {
    inner: S,
    done: watch::Sender<u64>,
}

#[async_trait]
impl<S: TokenSource> TokenSource for Finished<S> {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let result = self.inner.fetch(cx).await;
        self.done.send_modify(|n| *n += 1);
        result
    }
}

struct Rig {
    server: TestServer,
    clock: ManualClock,
    cache: TokenCache,
    client: ClientWithMiddleware,
    done: watch::Receiver<u64>,
}

/// `max_wait`: how long callers wait for the next attempt after a failure.
async fn rig(max_wait: Duration) -> Rig {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(LIFETIME)
        .start()
        .await;
    let source = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read")
    .retries(0);
    let (done, done_rx) = watch::channel(0);
    let cache = TokenCache::builder(Finished {
        inner: source,
        done,
    })
    .clock(clock.clone())
    .backoff(Backoff::default().initial(INITIAL_BACKOFF).max(MAX_BACKOFF))
    .max_wait(max_wait)
    .build();
    let auth = BearerAuth::builder(cache.clone())
        .allow_origin(server.base_url())
        .build()
        .unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    Rig {
        server,
        clock,
        cache,
        client,
        done: done_rx,
    }
}

impl Rig {
    /// `HAMMER` concurrent API requests; each yields the token the API saw
    /// or the caller's error.
    async fn hammer(&self) -> Vec<Result<String, BearerError>> {
        let requests = (0..HAMMER).map(|_| async {
            match self
                .client
                .get(self.server.api_url("/api/echo"))
                .send()
                .await
            {
                Ok(response) => {
                    assert_eq!(response.status(), 200);
                    let echo: serde_json::Value = response.json().await.unwrap();
                    let header = echo["headers"]["authorization"].as_str().unwrap();
                    Ok(header.strip_prefix("Bearer ").unwrap().to_owned())
                }
                Err(e) => Err(BearerError::find(&e).expect("a BearerError").clone()),
            }
        });
        join_all(requests).await
    }

    /// Waits until the first fetch and every background refresh started
    /// so far have finished (their outcome is then recorded: the cache
    /// does so in the same poll).
    async fn settle(&mut self) {
        let started = 1 + self.cache.stats().background_refreshes;
        self.done
            .wait_for(|n| *n >= started)
            .await
            .expect("the source lives");
    }

    fn token_requests(&self) -> u64 {
        self.server.control().counters().token_requests
    }
}

/// The most attempts a cache with this backoff can make if asked at each
/// of `times` (offsets into the outage): every attempt when allowed, each
/// wait at its shortest (half the nominal delay, the jitter's lower end).
fn max_attempts(times: &[Duration]) -> u64 {
    let mut next = Duration::ZERO;
    let mut failures = 0u32;
    for &t in times {
        if t >= next {
            failures += 1;
            let nominal = INITIAL_BACKOFF
                .saturating_mul(1 << (failures - 1).min(30))
                .min(MAX_BACKOFF);
            next = t + nominal / 2;
        }
    }
    u64::from(failures)
}

#[tokio::test(flavor = "current_thread")]
async fn outage_is_invisible_while_valid_then_bounded_typed_errors_then_one_fetch_recovers() {
    let mut rig = rig(Duration::ZERO).await;
    let first = rig.hammer().await;
    let token = first[0].clone().expect("a token before the outage");
    assert!(first.iter().all(|r| r.as_ref().ok() == Some(&token)));
    assert_eq!(rig.token_requests(), 1);

    // The endpoint goes down. Past the refresh point, before hard expiry
    // (usable until 3570 s, refresh from 3270 s at the latest).
    rig.server.control().fail_next_token_requests(
        u64::MAX,
        TokenFault::ServiceUnavailable { retry_after: None },
    );
    rig.clock.advance(Duration::from_secs(3300));
    let mut asked_at = Vec::new();
    let outage_start = rig.clock.elapsed();
    for _ in 0..30 {
        asked_at.push(rig.clock.elapsed() - outage_start);
        for result in rig.hammer().await {
            assert_eq!(
                result.as_ref().ok(),
                Some(&token),
                "a valid token must keep working: {result:?}"
            );
        }
        rig.settle().await;
        rig.clock.advance(Duration::from_secs(1));
    }
    let background_attempts = rig.token_requests() - 1;
    assert!(
        background_attempts >= 1,
        "the cache tried to refresh in the background"
    );
    assert!(
        background_attempts <= max_attempts(&asked_at),
        "{background_attempts} refresh attempts in 30 s of outage"
    );

    // Past hard expiry: typed, transient errors; never a request without a token.
    rig.clock.advance(Duration::from_secs(300));
    let api_before = rig.server.control().counters().api_requests;
    for _ in 0..30 {
        asked_at.push(rig.clock.elapsed() - outage_start);
        for result in rig.hammer().await {
            let error = result.expect_err("no valid token left");
            assert!(
                matches!(
                    error,
                    BearerError::NoToken(TokenError::Http { status: 503, .. })
                ),
                "{error:?}"
            );
            assert!(error.is_transient());
            assert!(!error.request_sent());
        }
        rig.clock.advance(Duration::from_secs(1));
    }
    let attempts = rig.token_requests() - 1;
    let bound = max_attempts(&asked_at);
    assert!(
        attempts <= bound,
        "{attempts} token requests for {} callers; the backoff allows {bound}",
        60 * HAMMER
    );
    assert!(
        attempts > background_attempts,
        "expired: callers' own fetches were tried"
    );
    assert_eq!(
        rig.server.control().counters().api_requests,
        api_before,
        "no request went out without a token"
    );

    // The endpoint is back: the first attempt after the backoff succeeds.
    rig.server.control().clear_token_faults();
    rig.clock.advance(MAX_BACKOFF);
    let before = rig.token_requests();
    let results = rig.hammer().await;
    let fresh = results[0].clone().expect("recovered");
    assert_ne!(fresh, token);
    assert!(results.iter().all(|r| r.as_ref().ok() == Some(&fresh)));
    assert_eq!(
        rig.token_requests(),
        before + 1,
        "exactly one fetch recovers every caller"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn retry_after_from_the_endpoint_holds_every_caller_back() {
    // Callers would wait 10 s; the server asks for 60: they fail at once.
    let rig = rig(Duration::from_secs(10)).await;
    rig.server.control().fail_next_token_requests(
        u64::MAX,
        TokenFault::ServiceUnavailable {
            retry_after: Some(60),
        },
    );
    let t0 = rig.clock.elapsed();
    for second in 0..50 {
        for result in rig.hammer().await {
            let error = result.expect_err("endpoint down, no token yet");
            assert_eq!(
                error.token_error().retry_after(),
                Some(Duration::from_secs(60))
            );
        }
        assert_eq!(
            rig.token_requests(),
            1,
            "asked again {second} s after Retry-After: 60"
        );
        rig.clock.advance(Duration::from_secs(1));
    }
    // 50 s in, the next attempt is within the callers' 10 s: they wait for
    // it (no earlier), and get its outcome.
    for result in rig.hammer().await {
        result.expect_err("still down");
    }
    assert_eq!(rig.token_requests(), 2);
    assert!(rig.clock.elapsed() - t0 >= Duration::from_secs(60));
    rig.clock.advance(Duration::from_secs(60));
    rig.server.control().clear_token_faults();
    assert!(rig.hammer().await.iter().all(Result::is_ok));
    assert_eq!(rig.token_requests(), 3);
}

/// A hanging endpoint costs one deadline, not a hang; callers inside the
/// backoff window get the same `Timeout` at once, without a new request.
#[tokio::test(flavor = "current_thread")]
async fn hanging_endpoint_returns_timeout_within_the_cache_deadline() {
    const DEADLINE: Duration = Duration::from_millis(250);
    let clock = ManualClock::new();
    let server = TestServer::builder().clock(clock.clone()).start().await;
    server
        .control()
        .fail_next_token_requests(u64::MAX, TokenFault::Hang);
    // The source's own deadline is the default (10 s); the cache's is shorter.
    let source = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .retries(0);
    let cache = TokenCache::builder(source)
        .clock(clock.clone())
        .fetch_timeout(DEADLINE)
        .backoff(Backoff::default().initial(INITIAL_BACKOFF))
        .max_wait(Duration::ZERO)
        .build();
    let auth = BearerAuth::builder(cache)
        .allow_origin(server.base_url())
        .build()
        .unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();

    let send = || client.get(server.api_url("/api/echo")).send();
    let results = join_all((0..HAMMER).map(|_| send())).await;
    for result in results {
        let error = result.expect_err("the endpoint never answers");
        let bearer = BearerError::find(&error).expect("a BearerError");
        assert!(
            matches!(bearer.token_error(), TokenError::Timeout(d) if *d == DEADLINE),
            "{bearer:?}"
        );
        assert!(bearer.is_transient());
    }
    assert_eq!(
        server.control().counters().token_requests,
        1,
        "one fetch for all callers"
    );

    // Inside the backoff window: the same error, no new attempt.
    let again = send().await.expect_err("still in backoff");
    assert!(matches!(
        BearerError::find(&again).map(BearerError::token_error),
        Some(TokenError::Timeout(_))
    ));
    assert_eq!(server.control().counters().token_requests, 1);
    assert_eq!(server.control().counters().api_requests, 0);
}

/// By default, callers whose token has expired wait out the outage: every
/// caller gets the token of the first attempt that succeeds, attempts stay
/// one at a time and spaced by the backoff, and no request fails.
#[tokio::test(flavor = "current_thread")]
async fn callers_wait_through_an_outage_and_none_fails_after_recovery() {
    let rig = rig(Duration::from_secs(10)).await;
    rig.server
        .control()
        .fail_next_token_requests(3, TokenFault::ServiceUnavailable { retry_after: None });
    let t0 = rig.clock.elapsed();
    let results = rig.hammer().await;
    let token = results[0].clone().expect("the fourth attempt succeeds");
    assert!(
        results.iter().all(|r| r.as_ref().ok() == Some(&token)),
        "{results:?}"
    );
    assert_eq!(rig.token_requests(), 4, "one attempt at a time");
    // Three backoffs waited: 1, 2 and 4 s nominal, each at least half.
    let waited = rig.clock.elapsed() - t0;
    assert!(
        waited >= Duration::from_millis(3500) && waited <= Duration::from_secs(7),
        "{waited:?}"
    );
    assert_eq!(rig.cache.stats().backoff_refusals, 0);
}

/// A failure the caller cannot outwait (`invalid_client`) is never waited
/// on: every caller gets it at once, from one request.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_client_is_reported_at_once_even_to_waiting_callers() {
    let rig = rig(Duration::from_secs(10)).await;
    rig.server.control().fail_next_token_requests(
        u64::MAX,
        TokenFault::OAuthError {
            status: 401,
            error: "invalid_client".into(),
            description: None,
        },
    );
    let t0 = rig.clock.elapsed();
    for result in rig.hammer().await {
        let error = result.expect_err("refused");
        assert_eq!(error.token_error().oauth().unwrap().code, "invalid_client");
        assert!(!error.is_transient());
    }
    assert_eq!(rig.token_requests(), 1);
    assert_eq!(rig.clock.elapsed(), t0, "nobody waited");
}
