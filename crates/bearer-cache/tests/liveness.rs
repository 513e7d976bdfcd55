//! The cache always recovers: whatever a source does (panic, hang while
//! its runtime shuts down, answer with absurd or already-past lifetimes),
//! the next demand after the backoff reaches the source again, and callers
//! wait for that attempt instead of failing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bearer_cache::{
    Backoff, Clock, Expiry, FetchContext, ManualClock, OAuthError, Token, TokenCache, TokenError,
    TokenKey, TokenSource,
};
use tokio::time::advance;

/// What the source does on its n-th call (1-based); calls past the script
/// answer with a one-hour token.
#[derive(Clone, Debug)]
enum Step {
    Panic,
    Hang,
    Fail(TokenError),
    Answer(Token),
}

#[derive(Debug, Default)]
struct Scripted {
    calls: AtomicU64,
    script: Mutex<Vec<Step>>,
}

impl Scripted {
    fn new(script: Vec<Step>) -> Arc<Self> {
        Arc::new(Scripted {
            calls: AtomicU64::new(0),
            script: Mutex::new(script),
        })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenSource for Scripted {
    fn id(&self) -> &str {
        "scripted"
    }

    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let step = self.script.lock().unwrap().get(n as usize - 1).cloned();
        match step {
            Some(Step::Panic) => panic!("source bug on call {n}"),
            Some(Step::Hang) => std::future::pending().await,
            Some(Step::Fail(e)) => Err(e),
            Some(Step::Answer(t)) => Ok(t),
            None => Ok(Token::bearer(format!("token-{n}"))
                .with_expiry(Expiry::In(Duration::from_secs(3600)))),
        }
    }
}

fn key() -> TokenKey {
    TokenKey::default()
}

fn unavailable() -> TokenError {
    TokenError::Http {
        status: 503,
        excerpt: "down".into(),
        retry_after: None,
    }
}

async fn value(cache: &TokenCache) -> Result<String, TokenError> {
    cache
        .get(&key())
        .await
        .map(|t| t.access_token().expose_secret().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_source_that_panics_once_does_not_stop_the_key() {
    // Fail-fast: the panic is a typed, transient failure, and the key comes
    // back after the backoff.
    let source = Scripted::new(vec![Step::Panic]);
    let cache = TokenCache::builder(Arc::clone(&source))
        .max_wait(Duration::ZERO)
        .build();
    let err = value(&cache).await.unwrap_err();
    assert!(matches!(err, TokenError::SourcePanicked), "{err:?}");
    assert!(err.is_transient());
    advance(Duration::from_secs(1)).await;
    assert_eq!(value(&cache).await.unwrap(), "token-2");
    assert_eq!(cache.stats().failures, 1);

    // Waiting (the default): the caller never sees the panic.
    let source = Scripted::new(vec![Step::Panic, Step::Panic]);
    let cache = TokenCache::builder(Arc::clone(&source)).build();
    assert_eq!(value(&cache).await.unwrap(), "token-3");
    assert_eq!(source.calls(), 3);
    assert_eq!(cache.stats().retry_waits, 1);

    // Forced refreshes and rejections after a panic reach the source too.
    let source = Scripted::new(vec![Step::Answer(Token::bearer("first")), Step::Panic]);
    let cache = TokenCache::builder(Arc::clone(&source)).build();
    let first = cache.get(&key()).await.unwrap();
    let forced = cache.refresh(&key()).await.unwrap();
    assert_eq!(forced.access_token().expose_secret(), "token-3");
    let replaced = cache.replace_rejected(&key(), &forced).await.unwrap();
    assert_eq!(replaced.access_token().expose_secret(), "token-4");
    assert!(!first.same_fetch(&replaced));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_change_hook_costs_nothing() {
    let source = Scripted::new(vec![]);
    let cache = TokenCache::builder(Arc::clone(&source))
        .on_change(|_, _| panic!("hook bug"))
        .build();
    assert_eq!(value(&cache).await.unwrap(), "token-1");
    assert_eq!(value(&cache).await.unwrap(), "token-1");
    assert_eq!(cache.stats().failures, 0);
}

/// The runtime that ran a fetch shuts down mid-fetch; the cache, used from
/// another runtime, fetches again.
#[test]
fn a_runtime_shutting_down_mid_fetch_does_not_stop_the_key() {
    let source = Scripted::new(vec![Step::Hang]);
    let clock = ManualClock::new();
    let cache = TokenCache::builder(Arc::clone(&source))
        .clock(clock.clone())
        .build();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    first.block_on(async {
        let c = cache.clone();
        tokio::spawn(async move { c.get(&key()).await });
        while source.calls() == 0 {
            tokio::task::yield_now().await;
        }
    });
    drop(first);

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let token = second.block_on(async { value(&cache).await });
    assert_eq!(token.unwrap(), "token-2");
    assert_eq!(
        cache.stats().failures,
        1,
        "the interrupted attempt counted once"
    );
}

/// The runtime that runs a fetch stalls (not dropped, never driven again);
/// a caller on another runtime gives up on that attempt after its budget
/// and fetches again.
#[test]
fn a_caller_on_another_runtime_outlasts_a_stalled_one() {
    let source = Scripted::new(vec![Step::Hang]);
    let cache = TokenCache::builder(Arc::clone(&source))
        .clock(ManualClock::new())
        .build();
    let stalled = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    stalled.block_on(async {
        let c = cache.clone();
        tokio::spawn(async move { c.get(&key()).await });
        while source.calls() == 0 {
            tokio::task::yield_now().await;
        }
    });

    // Paused: its timers fire as soon as nothing else can run.
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let token = second.block_on(async { value(&cache).await });
    assert_eq!(token.unwrap(), "token-2");
    assert_eq!(cache.stats().failures, 1);
    drop(stalled);
}

/// A caller on one runtime waits on an attempt running on another, which
/// then shuts down: the caller is released at once (its own timer is an
/// hour away) and fetches again on its own runtime.
#[test]
fn a_caller_waiting_on_a_runtime_that_shuts_down_is_released() {
    let source = Scripted::new(vec![Step::Hang]);
    let cache = TokenCache::builder(Arc::clone(&source))
        .clock(ManualClock::new())
        .fetch_timeout(Duration::from_secs(3600))
        .build();
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let c = cache.clone();
    first.spawn(async move { c.get(&key()).await });
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let token = second.block_on(async {
        while source.calls() == 0 {
            tokio::task::yield_now().await;
        }
        let c = cache.clone();
        let waiter = tokio::spawn(async move { value(&c).await });
        // Both callers count a wait once they are waiting on the attempt.
        while cache.stats().waits < 2 {
            tokio::task::yield_now().await;
        }
        first.shutdown_background();
        // Generous: only a caller that is never released fails it.
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("released")
            .unwrap()
    });
    assert_eq!(token.unwrap(), "token-2");
    assert_eq!(cache.stats().failures, 1, "the lost attempt counted once");
}

/// A source that blocks its thread on its first call until released.
#[derive(Debug)]
struct BlocksOnce {
    calls: AtomicU64,
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

#[async_trait]
impl TokenSource for BlocksOnce {
    fn id(&self) -> &str {
        "blocks-once"
    }

    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let release = self.release.lock().unwrap().take();
        if let Some(release) = release {
            // A bug of the source's, as a blocking call in async code is.
            let _ = release.recv();
        }
        Ok(Token::bearer(format!("token-{n}")).with_expiry(Expiry::In(Duration::from_secs(3600))))
    }
}

/// Releases a blocked source when dropped, failing assertions included,
/// so the runtime can shut down.
struct Unblock(std::sync::mpsc::Sender<()>);

impl Drop for Unblock {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// A source that blocks its worker thread (where its own timeout can't
/// fire): the callers that joined its attempt, on the same runtime, are
/// released after the attempt's budget and grace all the same, and the
/// key fetches again on the free worker. Real time: a paused clock needs a
/// current-thread runtime, which the block would stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_outlast_a_source_that_blocks_its_thread() {
    let (unblock, blocked) = std::sync::mpsc::channel();
    let _unblock = Unblock(unblock);
    let source = Arc::new(BlocksOnce {
        calls: AtomicU64::new(0),
        release: Mutex::new(Some(blocked)),
    });
    let cache = TokenCache::builder(Arc::clone(&source))
        .clock(ManualClock::new())
        .fetch_timeout(Duration::from_millis(50))
        .build();
    let starter = {
        let c = cache.clone();
        tokio::spawn(async move { c.get(&key()).await })
    };
    while source.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let joiners: Vec<_> = (0..16)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { value(&c).await })
        })
        .collect();
    // Released, they wait out the backoff (on the manual clock) and share
    // the next attempt, which the free worker runs.
    for joiner in joiners {
        // Generous: only a caller that is never released fails it.
        let released = tokio::time::timeout(Duration::from_secs(60), joiner).await;
        assert_eq!(released.expect("released").unwrap().unwrap(), "token-2");
    }
    assert_eq!(
        starter
            .await
            .unwrap()
            .unwrap()
            .access_token()
            .expose_secret(),
        "token-2"
    );
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().failures, 1, "the lost attempt counted once");
}

#[tokio::test(start_paused = true)]
async fn absurd_lifetimes_are_capped_never_trusted() {
    let far = SystemTime::now() + Duration::from_secs(200 * 365 * 24 * 3600);
    for (name, token) in [
        (
            "Long.MAX_VALUE",
            Token::bearer("t").with_expiry(Expiry::In(Duration::from_secs(i64::MAX as u64))),
        ),
        (
            "Duration::MAX",
            Token::bearer("t").with_expiry(Expiry::In(Duration::MAX)),
        ),
        ("far exp", Token::bearer("t").with_expiry(Expiry::At(far))),
        (
            "huge refresh_in",
            Token::bearer("t")
                .with_expiry(Expiry::In(Duration::from_secs(3600)))
                .with_refresh_in(Duration::MAX),
        ),
    ] {
        let source = Scripted::new(vec![Step::Answer(token)]);
        let cache = TokenCache::builder(Arc::clone(&source))
            .refresh_jitter(0.0)
            .build();
        let t = cache
            .get(&key())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let now = tokio::time::Instant::now().into_std();
        assert!(
            t.expires_at() - now <= Duration::from_secs(24 * 3600),
            "{name}"
        );
        assert!(t.refresh_at() <= t.expires_at(), "{name}");
        // Past the capped lifetime the key refreshes like any other.
        advance(t.expires_at() - now).await;
        assert_eq!(value(&cache).await.unwrap(), "token-2", "{name}");
    }

    // Shared through a store, the same answer is stored and read back.
    let store = bearer_cache::MemoryStore::new();
    for _ in 0..2 {
        let source = Scripted::new(vec![Step::Answer(
            Token::bearer("t").with_expiry(Expiry::In(Duration::MAX)),
        )]);
        let cache = TokenCache::builder(Arc::clone(&source))
            .store(store.clone())
            .build();
        assert_eq!(value(&cache).await.unwrap(), "t");
    }

    // The cap is a setting.
    let source = Scripted::new(vec![Step::Answer(
        Token::bearer("t").with_expiry(Expiry::In(Duration::MAX)),
    )]);
    let cache = TokenCache::builder(Arc::clone(&source))
        .max_lifetime(Duration::from_secs(600))
        .build();
    let t = cache.get(&key()).await.unwrap();
    let now = tokio::time::Instant::now().into_std();
    assert!(t.expires_at() - now <= Duration::from_secs(600));
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_arrival_is_never_handed_out_and_causes_no_storm() {
    let dead = || Step::Answer(Token::bearer("dead").with_expiry(Expiry::In(Duration::ZERO)));
    let past = || {
        Step::Answer(
            Token::bearer("past")
                .with_expiry(Expiry::At(SystemTime::now() - Duration::from_secs(5))),
        )
    };
    let source = Scripted::new(
        (0..40)
            .map(|i| if i % 2 == 0 { dead() } else { past() })
            .collect(),
    );
    let cache = TokenCache::builder(Arc::clone(&source))
        .max_wait(Duration::ZERO)
        .build();
    // 20 requests 100 ms apart: far fewer attempts than requests.
    for _ in 0..20 {
        let err = value(&cache).await.unwrap_err();
        assert!(matches!(err, TokenError::AlreadyExpired), "{err:?}");
        advance(Duration::from_millis(100)).await;
    }
    assert!(
        source.calls() <= 3,
        "{} attempts for 20 requests",
        source.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn callers_wait_for_the_next_attempt_and_one_success_answers_all() {
    let source = Scripted::new(vec![Step::Fail(unavailable()), Step::Fail(unavailable())]);
    let cache = TokenCache::builder(Arc::clone(&source)).build();
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { value(&c).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "token-3");
    }
    assert_eq!(source.calls(), 3, "attempts stay single-flight");
    assert_eq!(cache.stats().failures, 2);
    assert_eq!(cache.stats().backoff_refusals, 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_keeps_to_the_backoff_and_to_max_wait() {
    let source = Scripted::new((0..100).map(|_| Step::Fail(unavailable())).collect());
    let cache = TokenCache::builder(Arc::clone(&source))
        .backoff(
            Backoff::default()
                .initial(Duration::from_secs(1))
                .jitter(0.0),
        )
        .max_wait(Duration::from_secs(5))
        .build();
    let started = tokio::time::Instant::now();
    let err = value(&cache).await.unwrap_err();
    assert!(err.is_transient());
    // Attempts at 0, 1 and 3 s; the next (7 s) is past the 5 s bound, so
    // the caller gets the last failure at once, at 3 s.
    assert_eq!(source.calls(), 3);
    assert_eq!(started.elapsed(), Duration::from_secs(3));

    // A caller with no patience never waits.
    let cache = TokenCache::builder(Arc::clone(&source))
        .max_wait(Duration::ZERO)
        .build();
    let before = source.calls();
    let started = tokio::time::Instant::now();
    assert!(value(&cache).await.is_err());
    assert!(value(&cache).await.is_err());
    assert_eq!(source.calls(), before + 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_never_waited_on() {
    let refused = TokenError::OAuth {
        error: OAuthError {
            code: "invalid_client".into(),
            description: None,
            uri: None,
            status: 401,
        },
        retry_after: None,
    };
    let source = Scripted::new(vec![Step::Fail(refused.clone()), Step::Fail(refused)]);
    let cache = TokenCache::builder(Arc::clone(&source)).build();
    let started = tokio::time::Instant::now();
    for _ in 0..10 {
        let err = value(&cache).await.unwrap_err();
        assert_eq!(err.oauth().unwrap().code, "invalid_client");
    }
    assert_eq!(source.calls(), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_manual_clock_lets_waiters_through_without_real_time() {
    let clock = ManualClock::new();
    let source = Scripted::new(vec![Step::Fail(unavailable())]);
    let cache = TokenCache::builder(Arc::clone(&source))
        .clock(clock.clone())
        .build();
    let t0 = clock.now();
    assert_eq!(value(&cache).await.unwrap(), "token-2");
    let waited = clock.now() - t0;
    assert!(waited >= Duration::from_millis(250) && waited <= Duration::from_millis(500));
}

/// Counts fetches under way at once and fails, panics or answers at random.
#[derive(Debug, Default)]
struct Chaotic {
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
    calls: AtomicU64,
    healthy: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl TokenSource for Chaotic {
    fn id(&self) -> &str {
        "chaotic"
    }

    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        for _ in 0..(n % 4) {
            tokio::task::yield_now().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.healthy.load(Ordering::SeqCst) {
            return Ok(
                Token::bearer(format!("ok-{n}")).with_expiry(Expiry::In(Duration::from_secs(3600)))
            );
        }
        match n % 5 {
            0 => panic!("chaos"),
            1 => Err(unavailable()),
            2 => {
                Ok(Token::bearer(format!("short-{n}"))
                    .with_expiry(Expiry::In(Duration::from_secs(2))))
            }
            3 => Ok(Token::bearer("dead").with_expiry(Expiry::In(Duration::ZERO))),
            _ => Ok(Token::bearer(format!("long-{n}")).with_expiry(Expiry::In(Duration::MAX))),
        }
    }
}

/// Real threads, a shared manual clock jumping under them, and every kind
/// of demand at once: never two fetches of one key at a time, no caller
/// stuck, and the key serves as soon as the source is healthy again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_demands_under_chaos_keep_single_flight_and_recover() {
    let source = Arc::new(Chaotic::default());
    let clock = ManualClock::new();
    let cache = TokenCache::builder(Arc::clone(&source))
        .clock(clock.clone())
        .max_wait(Duration::from_secs(2))
        .build();
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (cache, clock) = (cache.clone(), clock.clone());
            tokio::spawn(async move {
                for i in 0..150u64 {
                    match (w + i) % 4 {
                        0 => {
                            if let Ok(t) = cache.get(&key()).await {
                                cache.invalidate_if_current(&key(), &t);
                            }
                        }
                        1 => {
                            let _ = cache.refresh(&key()).await;
                        }
                        2 => clock.advance(Duration::from_millis(300 * (i % 7))),
                        _ => {
                            let _ = cache.get(&key()).await;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("no caller panicked");
    }
    assert_eq!(source.most_in_flight.load(Ordering::SeqCst), 1);
    source.healthy.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(301));
    let t = cache
        .refresh(&key())
        .await
        .expect("serves once the source is healthy");
    assert!(t.access_token().expose_secret().starts_with("ok-"));
    assert!(cache.get(&key()).await.unwrap().same_fetch(&t));
}
