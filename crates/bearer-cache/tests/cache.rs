//! Every rule of the cache, under tokio's paused time: no sockets, no sleeps
//! that wait for real time to pass.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bearer_cache::{
    Backoff, Expiry, FetchContext, FetchReason, OAuthError, Token, TokenCache, TokenError,
    TokenKey, TokenSource,
};
use tokio::sync::Notify;
use tokio::time::{Instant, advance};

/// A source that counts its fetches, takes `delay` of (paused) time, fails
/// on demand and records what the cache told it.
#[derive(Debug, Default)]
struct Recorder {
    fetches: AtomicU64,
    lifetime: Mutex<Option<Duration>>,
    delay: Mutex<Duration>,
    failures: Mutex<VecDeque<TokenError>>,
    always_fail: Mutex<Option<TokenError>>,
    seen: Mutex<Vec<(FetchReason, Option<String>)>>,
    started: Notify,
    token_type: Mutex<Option<String>>,
    value_override: Mutex<Option<String>>,
    hang: Mutex<bool>,
}

impl Recorder {
    fn new(lifetime: Duration) -> Arc<Self> {
        let r = Recorder::default();
        *r.lifetime.lock().unwrap() = Some(lifetime);
        Arc::new(r)
    }
    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
    fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }
    fn fail_next(&self, e: TokenError) {
        self.failures.lock().unwrap().push_back(e);
    }
    fn fail_always(&self, e: Option<TokenError>) {
        *self.always_fail.lock().unwrap() = e;
    }
}

#[async_trait]
impl TokenSource for Recorder {
    fn id(&self) -> &str {
        "recorder"
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.lock().unwrap().push((
            cx.reason,
            cx.previous
                .and_then(|p| p.refresh_token())
                .map(|r| r.expose_secret().to_owned()),
        ));
        self.started.notify_waiters();
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if *self.hang.lock().unwrap() {
            std::future::pending::<()>().await;
        }
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        if let Some(e) = self.always_fail.lock().unwrap().clone() {
            return Err(e);
        }
        let value = self
            .value_override
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| format!("token-{n}"));
        let mut t = Token::bearer(value).with_refresh_token(format!("refresh-{n}"));
        if let Some(l) = *self.lifetime.lock().unwrap() {
            t = t.with_expiry(Expiry::In(l));
        }
        if let Some(tt) = self.token_type.lock().unwrap().clone() {
            t = t.with_token_type(tt);
        }
        Ok(t)
    }
}

fn unavailable() -> TokenError {
    TokenError::Http {
        status: 503,
        excerpt: "down".into(),
        retry_after: None,
    }
}

fn new_cache(source: &Arc<Recorder>) -> TokenCache {
    TokenCache::builder(Arc::clone(source))
        .refresh_jitter(0.0)
        .build()
}

fn key() -> TokenKey {
    TokenKey::default()
}

async fn value(cache: &TokenCache) -> String {
    cache
        .get(&key())
        .await
        .map(|t| t.access_token().expose_secret().to_owned())
        .unwrap_or_else(|e| format!("error: {e}"))
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_concurrent_callers_cause_one_fetch() {
    let source = Recorder::new(Duration::from_secs(3600));
    source.set_delay(Duration::from_millis(50));
    let cache = new_cache(&source);
    let callers: Vec<_> = (0..10_000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(&key()).await.map(|t| t.fingerprint()) })
        })
        .collect();
    let mut fingerprints = std::collections::HashSet::new();
    for c in callers {
        fingerprints.insert(c.await.unwrap().unwrap());
    }
    assert_eq!(source.fetches(), 1);
    assert_eq!(fingerprints.len(), 1, "every caller got the same token");
    let stats = cache.stats();
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.misses + stats.hits, 10_000);
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_gives_up_does_not_cancel_the_fetch() {
    let source = Recorder::new(Duration::from_secs(3600));
    source.set_delay(Duration::from_secs(1));
    let cache = new_cache(&source);
    let started = source.started.notified();
    let leader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&key()).await }
    });
    started.await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // A follower arriving after the leader left joins the same fetch.
    let t = cache.get(&key()).await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "token-1");
    assert_eq!(source.fetches(), 1);
    // And a caller whose own timeout fires mid-fetch leaves it running too.
    cache.clear();
    let r = tokio::time::timeout(Duration::from_millis(10), cache.get(&key())).await;
    assert!(r.is_err());
    assert_eq!(value(&cache).await, "token-2");
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_serves_current_token_and_refreshes_once_in_background() {
    let source = Recorder::new(Duration::from_secs(100));
    let cache = new_cache(&source);
    let first = cache.get(&key()).await.unwrap();
    assert!(!first.was_hit());
    // 100 s lifetime: margin 10 s (10 %), window 45 s (half of the rest).
    let t0 = Instant::now();
    assert_eq!(first.expires_at() - t0.into_std(), Duration::from_secs(90));
    assert_eq!(first.refresh_at() - t0.into_std(), Duration::from_secs(45));

    source.set_delay(Duration::from_secs(5));
    advance(Duration::from_secs(46)).await;
    let before = Instant::now();
    for _ in 0..100 {
        let t = cache.get(&key()).await.unwrap();
        assert_eq!(t.access_token().expose_secret(), "token-1");
        assert!(t.was_hit());
    }
    assert_eq!(Instant::now(), before, "no caller waited for the refresh");
    tokio::task::yield_now().await;
    assert_eq!(source.fetches(), 2, "exactly one background refresh");
    assert_eq!(cache.stats().background_refreshes, 1);
    assert_eq!(cache.stats().waits, 1, "only the very first caller waited");

    advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert_eq!(value(&cache).await, "token-2");
    assert_eq!(source.seen.lock().unwrap()[1].0, FetchReason::RefreshAhead);
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_keeps_valid_token_backs_off_and_never_serves_expired() {
    let source = Recorder::new(Duration::from_secs(100));
    let cache = TokenCache::builder(Arc::clone(&source))
        .refresh_jitter(0.0)
        .backoff(
            Backoff::default()
                .initial(Duration::from_secs(4))
                .max(Duration::from_secs(4)),
        )
        .max_wait(Duration::ZERO)
        .build();
    assert_eq!(value(&cache).await, "token-1");
    source.fail_always(Some(unavailable()));

    advance(Duration::from_secs(50)).await; // in the refresh window
    assert_eq!(value(&cache).await, "token-1");
    tokio::task::yield_now().await;
    assert_eq!(source.fetches(), 2);
    assert_eq!(cache.stats().failures, 1);

    // Inside the backoff window: still the old token, no new attempt.
    for _ in 0..50 {
        assert_eq!(value(&cache).await, "token-1");
    }
    tokio::task::yield_now().await;
    assert_eq!(source.fetches(), 2, "backoff holds further refreshes");

    // After the backoff (at most 4 s), one more background attempt.
    advance(Duration::from_secs(4)).await;
    assert_eq!(value(&cache).await, "token-1");
    tokio::task::yield_now().await;
    assert_eq!(source.fetches(), 3);

    // Past hard expiry (90 s) the old token is never served.
    advance(Duration::from_secs(40)).await;
    let err = cache.get(&key()).await.unwrap_err();
    assert!(err.is_transient());
    assert!(matches!(err, TokenError::Http { status: 503, .. }));
    assert_eq!(
        source.fetches(),
        4,
        "an expired token makes the caller try again"
    );

    // The endpoint recovers: the first attempt after the backoff succeeds.
    source.fail_always(None);
    advance(Duration::from_secs(4)).await;
    assert_eq!(value(&cache).await, "token-5");
    assert_eq!(source.fetches(), 5);
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_and_honour_retry_after() {
    let source = Recorder::new(Duration::from_secs(100));
    source.fail_always(Some(unavailable()));
    let cache = TokenCache::builder(Arc::clone(&source))
        .backoff(
            Backoff::default()
                .initial(Duration::from_secs(2))
                .max(Duration::from_secs(8)),
        )
        .max_wait(Duration::ZERO)
        .build();
    // Attempt n waits between half and all of 2 s * 2^(n-1), capped at 8 s.
    for (attempt, full) in [(1u64, 2u64), (2, 4), (3, 8), (4, 8)] {
        assert!(cache.get(&key()).await.is_err());
        assert_eq!(source.fetches(), attempt);
        advance(Duration::from_millis(full * 500 - 1)).await;
        assert!(cache.get(&key()).await.is_err());
        assert_eq!(
            source.fetches(),
            attempt,
            "refused without a fetch inside the backoff"
        );
        advance(Duration::from_millis(full * 500 + 1)).await;
    }
    assert!(cache.stats().backoff_refusals >= 4);

    // A server's Retry-After is a floor.
    let source = Recorder::new(Duration::from_secs(100));
    source.fail_next(TokenError::Http {
        status: 429,
        excerpt: String::new(),
        retry_after: Some(Duration::from_secs(20)),
    });
    let cache = TokenCache::builder(Arc::clone(&source))
        .max_wait(Duration::ZERO)
        .build();
    assert!(cache.get(&key()).await.is_err());
    advance(Duration::from_secs(19)).await;
    assert!(cache.get(&key()).await.is_err());
    assert_eq!(source.fetches(), 1);
    advance(Duration::from_secs(1)).await;
    assert_eq!(value(&cache).await, "token-2");
}

#[tokio::test(start_paused = true)]
async fn compare_and_invalidate_ignores_stale_reports_and_coalesces() {
    let source = Recorder::new(Duration::from_secs(3600));
    let cache = new_cache(&source);
    let t1 = cache.get(&key()).await.unwrap();
    assert!(cache.invalidate_if_current(&key(), &t1));
    assert!(!cache.invalidate_if_current(&key(), &t1), "already gone");

    let t2 = cache.get(&key()).await.unwrap();
    assert_eq!(t2.access_token().expose_secret(), "token-2");
    // A late report of token-1 must not throw token-2 away.
    assert!(!cache.invalidate_if_current(&key(), &t1));
    assert!(cache.get(&key()).await.unwrap().same_fetch(&t2));
    assert_eq!(source.fetches(), 2);

    // 1,000 concurrent reports of the same rejected token: one fetch.
    source.set_delay(Duration::from_millis(30));
    let reports: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            let t2 = t2.clone();
            tokio::spawn(async move { cache.replace_rejected(&key(), &t2).await })
        })
        .collect();
    for r in reports {
        let t = r.await.unwrap().unwrap();
        assert_eq!(t.access_token().expose_secret(), "token-3");
    }
    assert_eq!(source.fetches(), 3);
    assert_eq!(cache.stats().invalidations, 2);
    let seen = source.seen.lock().unwrap();
    assert_eq!(seen[2].0, FetchReason::Rejected);
    assert_eq!(
        seen[2].1.as_deref(),
        Some("refresh-2"),
        "the refresh token survives invalidation"
    );
}

#[tokio::test(start_paused = true)]
async fn short_lived_tokens_keep_a_usable_window() {
    let source = Recorder::new(Duration::from_secs(2));
    let cache = new_cache(&source);
    assert_eq!(value(&cache).await, "token-1");
    advance(Duration::from_millis(1790)).await;
    // 0.2 s margin: still valid at 1.79 s (refresh already under way).
    assert_eq!(value(&cache).await, "token-1");
    source.set_delay(Duration::from_secs(1));
    source.fail_next(unavailable());
    tokio::task::yield_now().await;
    advance(Duration::from_millis(20)).await;
    // At 1.81 s it is past hard expiry: never served, whatever happens.
    let r = cache.get(&key()).await;
    assert!(r.is_err() || r.unwrap().access_token().expose_secret() != "token-1");
}

#[tokio::test(start_paused = true)]
async fn tokens_without_expiry_get_the_default_lifetime() {
    let source = Arc::new(Recorder::default());
    let cache = TokenCache::builder(Arc::clone(&source))
        .default_lifetime(Duration::from_secs(60))
        .refresh_jitter(0.0)
        .build();
    let t = cache.get(&key()).await.unwrap();
    assert_eq!(
        t.expires_at() - Instant::now().into_std(),
        Duration::from_secs(54)
    );
    advance(Duration::from_secs(55)).await;
    assert_eq!(value(&cache).await, "token-2");
}

#[tokio::test(start_paused = true)]
async fn expiry_counts_from_when_the_request_was_sent() {
    let source = Recorder::new(Duration::from_secs(100));
    source.set_delay(Duration::from_secs(10));
    let cache = new_cache(&source);
    let sent = Instant::now();
    let t = cache.get(&key()).await.unwrap();
    assert_eq!(Instant::now() - sent, Duration::from_secs(10));
    assert_eq!(t.expires_at() - sent.into_std(), Duration::from_secs(90));
}

#[tokio::test(start_paused = true)]
async fn keys_are_independent() {
    let source = Recorder::new(Duration::from_secs(3600));
    let cache = new_cache(&source);
    let a = cache.get(&TokenKey::new().scope("a")).await.unwrap();
    let b = cache.get(&TokenKey::new().scope("b")).await.unwrap();
    assert!(!a.same_fetch(&b));
    assert!(
        cache
            .get(&TokenKey::new().scope("a"))
            .await
            .unwrap()
            .same_fetch(&a)
    );
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn force_refresh_fetches_even_when_valid_and_hook_sees_rotation() {
    let source = Recorder::new(Duration::from_secs(3600));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cache = TokenCache::builder(Arc::clone(&source))
        .on_change({
            let seen = Arc::clone(&seen);
            move |_key, token| {
                let r = token.refresh_token().unwrap().expose_secret().to_owned();
                seen.lock().unwrap().push(r);
            }
        })
        .build();
    assert_eq!(value(&cache).await, "token-1");
    let t = cache.refresh(&key()).await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "token-2");
    assert_eq!(value(&cache).await, "token-2");
    assert_eq!(*seen.lock().unwrap(), vec!["refresh-1", "refresh-2"]);
    assert_eq!(source.seen.lock().unwrap()[1].0, FetchReason::Forced);
}

#[tokio::test(start_paused = true)]
async fn non_bearer_and_header_unsafe_tokens_are_refused() {
    let source = Recorder::new(Duration::from_secs(3600));
    *source.token_type.lock().unwrap() = Some("DPoP".into());
    let cache = new_cache(&source);
    let err = cache.get(&key()).await.unwrap_err();
    assert!(matches!(err, TokenError::UnsupportedTokenType(ref t) if t == "DPoP"));
    assert!(!err.is_transient());

    for bad in ["abc\r\nX-Evil: 1", "with space", "tab\t", "", "naïve"] {
        let source = Recorder::new(Duration::from_secs(3600));
        *source.value_override.lock().unwrap() = Some(bad.to_owned());
        let err = cache_with(&source).get(&key()).await.unwrap_err();
        assert!(matches!(err, TokenError::InvalidTokenValue), "{bad:?}");
    }
    // Lower-case bearer is still bearer.
    let source = Recorder::new(Duration::from_secs(3600));
    *source.token_type.lock().unwrap() = Some("bearer".into());
    assert_eq!(value(&cache_with(&source)).await, "token-1");
}

fn cache_with(source: &Arc<Recorder>) -> TokenCache {
    new_cache(source)
}

#[tokio::test(start_paused = true)]
async fn a_hanging_source_times_out_with_a_typed_error() {
    let source = Recorder::new(Duration::from_secs(3600));
    *source.hang.lock().unwrap() = true;
    let cache = TokenCache::builder(Arc::clone(&source))
        .fetch_timeout(Duration::from_secs(5))
        .build();
    let err = cache.get(&key()).await.unwrap_err();
    assert!(matches!(err, TokenError::Timeout(d) if d == Duration::from_secs(5)));
    assert!(err.is_transient());
}

#[derive(Debug)]
struct Panicking;

#[async_trait]
impl TokenSource for Panicking {
    fn id(&self) -> &str {
        "panicking"
    }
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        panic!("source bug")
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_becomes_an_error() {
    let cache = TokenCache::builder(Panicking).build();
    let err = cache.get(&key()).await.unwrap_err();
    assert!(err.to_string().contains("panicked"));
}

#[tokio::test(start_paused = true)]
async fn secrets_are_redacted_everywhere() {
    let source = Recorder::new(Duration::from_secs(3600));
    *source.value_override.lock().unwrap() = Some("SECRET-ACCESS-VALUE".into());
    let cache = new_cache(&source);
    let t = cache.get(&key()).await.unwrap();
    let printed = format!(
        "{t:?} {:?} {} {:?} {:?} {cache:?}",
        t.token(),
        t.access_token(),
        t.access_token(),
        t.token().refresh_token()
    );
    assert!(!printed.contains("SECRET-ACCESS-VALUE"), "{printed}");
    assert!(!printed.contains("refresh-1"), "{printed}");
    assert!(printed.contains(&t.fingerprint().to_string()));

    let e = TokenError::OAuth {
        error: OAuthError {
            code: "invalid_grant".into(),
            description: Some("expired".into()),
            uri: None,
            status: 400,
        },
        retry_after: None,
    };
    assert_eq!(e.oauth().unwrap().code, "invalid_grant");
    assert!(!e.is_transient());
}

/// A source that says it needs longer than the cache's fetch timeout
/// (an interactive sign-in) gets its own deadline, and no more.
#[derive(Debug)]
struct SlowSignIn;

#[async_trait]
impl TokenSource for SlowSignIn {
    fn id(&self) -> &str {
        "sign-in"
    }
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        tokio::time::sleep(Duration::from_secs(120)).await;
        Ok(Token::bearer("signed-in"))
    }
    fn fetch_deadline(&self) -> Option<Duration> {
        Some(Duration::from_secs(300))
    }
}

#[tokio::test(start_paused = true)]
async fn a_source_deadline_lifts_the_fetch_timeout() {
    let cache = TokenCache::builder(SlowSignIn)
        .fetch_timeout(Duration::from_secs(30))
        .build();
    let start = Instant::now();
    let t = cache.get(&key()).await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "signed-in");
    assert_eq!(Instant::now() - start, Duration::from_secs(120));
}

#[test]
fn the_lookup_future_stays_small() {
    // Every request awaits one; the miss path is boxed so this one is cheap
    // to create and move.
    let cache = TokenCache::builder(Recorder::new(Duration::from_secs(1))).build();
    let key = key();
    let size = std::mem::size_of_val(&cache.get(&key));
    assert!(size <= 256, "get() future is {size} bytes");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_earns_one_attempt_even_during_backoff() {
    let source = Recorder::new(Duration::from_secs(100));
    let cache = TokenCache::builder(Arc::clone(&source))
        .refresh_jitter(0.0)
        .backoff(
            Backoff::default()
                .initial(Duration::from_secs(30))
                .max(Duration::from_secs(30)),
        )
        .build();
    let t1 = cache.get(&key()).await.unwrap();
    // A background refresh fails and puts the key in a long backoff.
    source.fail_next(unavailable());
    advance(Duration::from_secs(50)).await;
    cache.get(&key()).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(source.fetches(), 2);
    // The server now rejects token-1: the cache tries at once, once.
    let t2 = cache.replace_rejected(&key(), &t1).await.unwrap();
    assert_eq!(t2.access_token().expose_secret(), "token-3");
    assert!(!cache.invalidate_if_current(&key(), &t1));
    assert_eq!(source.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_derived_value_is_built_once_per_token() {
    let source = Recorder::new(Duration::from_secs(3600));
    let cache = new_cache(&source);
    let builds = std::sync::atomic::AtomicU32::new(0);
    let make = |value: &str| {
        builds.fetch_add(1, Ordering::SeqCst);
        Arc::<str>::from(value)
    };
    for _ in 0..10 {
        let t = cache.get(&key()).await.unwrap();
        assert_eq!(&*t.derived(make), "Bearer token-1");
    }
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    // Another type is built each time, never confused with the first.
    let t = cache.get(&key()).await.unwrap();
    assert_eq!(t.derived(|v| v.len()), "Bearer token-1".len());
    // A new token gets its own.
    let t2 = cache.refresh(&key()).await.unwrap();
    assert_eq!(&*t2.derived(make), "Bearer token-2");
    assert_eq!(builds.load(Ordering::SeqCst), 2);
}

/// A thread's memo of a key answers repeated hits without asking the
/// slot, up to the first instant something is due: the refresh point, the
/// expiry, the touch. Crossing each, a memoized key behaves as any other.
#[tokio::test(start_paused = true)]
async fn a_memoized_key_still_refreshes_ahead_and_never_serves_expired() {
    let source = Recorder::new(Duration::from_secs(100));
    let cache = TokenCache::builder(Arc::clone(&source))
        .refresh_jitter(0.0)
        .fetch_timeout(Duration::from_secs(120))
        .idle_key_ttl(Duration::from_secs(20))
        .build();
    // Hits from here on come from this thread's memo. 100 s lifetime:
    // refresh point at 45 s, expiry at 90 s.
    for _ in 0..5 {
        assert_eq!(value(&cache).await, "token-1");
    }
    // Past the touch interval (10 s) again and again: hits go on.
    for _ in 0..4 {
        advance(Duration::from_secs(11)).await;
        assert_eq!(value(&cache).await, "token-1");
    }
    assert_eq!(source.fetches(), 1);
    // Past the refresh point, the first hit starts the refresh.
    source.set_delay(Duration::from_secs(60));
    advance(Duration::from_secs(2)).await;
    assert_eq!(value(&cache).await, "token-1");
    tokio::task::yield_now().await;
    assert_eq!(source.fetches(), 2);
    assert_eq!(cache.stats().background_refreshes, 1);
    // The refresh outlasts the expiry: the memo never serves the expired
    // token; the caller waits for the refresh instead.
    advance(Duration::from_secs(45)).await;
    let t = cache.get(&key()).await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "token-2");
    assert!(!t.was_hit());
}
