//! The shared-store path: several caches, one fetch per key between them.
//! Driven by the in-process `MemoryStore` under tokio's paused time; the same
//! rules are proven against a real Redis in `bearer-redis`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bearer_cache::{
    Expiry, FetchContext, Lease, MemoryStore, StoreError, StoredToken, Token, TokenCache,
    TokenError, TokenKey, TokenSource,
};
use tokio::time::advance;

#[derive(Debug, Default)]
struct Counting {
    fetches: AtomicU64,
    delay: Mutex<Duration>,
    used_refresh: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl TokenSource for Counting {
    fn id(&self) -> &str {
        "counting"
    }
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        self.used_refresh.lock().unwrap().push(
            cx.previous
                .and_then(|p| p.refresh_token())
                .map(|r| r.expose_secret().to_owned()),
        );
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        Ok(Token::bearer(format!("token-{n}"))
            .with_refresh_token(format!("refresh-{n}"))
            .with_expiry(Expiry::In(Duration::from_secs(100))))
    }
}

fn fleet(source: &Arc<Counting>, store: &MemoryStore, n: usize) -> Vec<TokenCache> {
    fleet_with(
        source,
        store,
        n,
        Duration::from_secs(5),
        Duration::from_secs(2),
    )
}

/// `n` caches on `store` with fetch leases of `lease`, waiting at most
/// `wait` for another instance's fetch.
fn fleet_with(
    source: &Arc<Counting>,
    store: &MemoryStore,
    n: usize,
    lease: Duration,
    wait: Duration,
) -> Vec<TokenCache> {
    (0..n)
        .map(|_| {
            TokenCache::builder(Arc::clone(source))
                .store(store.clone())
                .refresh_jitter(0.0)
                .store_wait_timeout(wait)
                .store_lease_ttl(lease)
                .build()
        })
        .collect()
}

async fn value(cache: &TokenCache) -> String {
    cache
        .get(&TokenKey::default())
        .await
        .unwrap()
        .access_token()
        .expose_secret()
        .to_owned()
}

/// Every cache asks at once (each on its own task); their answers.
async fn all_at_once(caches: &[TokenCache]) -> Vec<String> {
    let tasks: Vec<_> = caches
        .iter()
        .cloned()
        .map(|c| tokio::spawn(async move { value(&c).await }))
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

#[tokio::test(start_paused = true)]
async fn twenty_caches_asking_at_once_cause_one_fetch() {
    let source = Arc::new(Counting::default());
    *source.delay.lock().unwrap() = Duration::from_millis(100);
    let store = MemoryStore::new();
    let caches = fleet(&source, &store, 20);
    for got in all_at_once(&caches).await {
        assert_eq!(got, "token-1");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    let store_hits: u64 = caches.iter().map(|c| c.stats().store_hits).sum();
    assert_eq!(store_hits, 19);
    // Warm: no store round trip at all.
    let before: Vec<_> = caches.iter().map(|c| c.stats()).collect();
    for c in &caches {
        value(c).await;
    }
    for (c, b) in caches.iter().zip(before) {
        assert_eq!(c.stats().store_hits, b.store_hits);
        assert_eq!(c.stats().hits, b.hits + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn one_instance_refreshes_ahead_and_the_others_reuse_it() {
    let source = Arc::new(Counting::default());
    let store = MemoryStore::new();
    let caches = fleet(&source, &store, 3);
    for c in &caches {
        assert_eq!(value(c).await, "token-1");
    }
    advance(Duration::from_secs(50)).await; // refresh window of a 100 s token
    assert_eq!(value(&caches[0]).await, "token-1");
    tokio::task::yield_now().await;
    assert_eq!(value(&caches[0]).await, "token-2");
    for c in &caches[1..] {
        // Their own background refresh finds token-2 in the store.
        assert_eq!(value(c).await, "token-1");
        tokio::task::yield_now().await;
        assert_eq!(value(c).await, "token-2");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_token_is_replaced_once_and_rotation_uses_each_refresh_token_once() {
    let source = Arc::new(Counting::default());
    let store = MemoryStore::new();
    let caches = fleet(&source, &store, 5);
    let mut sent = Vec::new();
    for c in &caches {
        sent.push(c.get(&TokenKey::default()).await.unwrap());
    }
    for (c, t) in caches.iter().zip(&sent) {
        let fresh = c.replace_rejected(&TokenKey::default(), t).await.unwrap();
        assert_eq!(fresh.access_token().expose_secret(), "token-2");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    let used = source.used_refresh.lock().unwrap().clone();
    assert_eq!(used, vec![None, Some("refresh-1".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn a_lease_holder_that_never_finishes_is_worked_around() {
    let source = Arc::new(Counting::default());
    *source.delay.lock().unwrap() = Duration::from_secs(3600);
    let store = MemoryStore::new();
    let caches = fleet(&source, &store, 2);
    // The first instance takes the lease and hangs in its fetch.
    let stuck = tokio::spawn({
        let c = caches[0].clone();
        async move { value(&c).await }
    });
    tokio::task::yield_now().await;
    *source.delay.lock().unwrap() = Duration::ZERO;
    // The second waits for the holder (2 s), then fetches on its own.
    assert_eq!(value(&caches[1]).await, "token-2");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    stuck.abort();
}

/// When the lease holder's fetch fails, the waiters do not all fetch on
/// their own: one takes the lease over, the rest wait for it again; the
/// holder's own caller waits for its next attempt, which finds the token
/// the fleet fetched meanwhile.
#[tokio::test(start_paused = true)]
async fn waiters_take_turns_when_the_holder_fails() {
    #[derive(Debug, Default)]
    struct FailFirst {
        fetches: AtomicU64,
    }
    #[async_trait]
    impl TokenSource for FailFirst {
        fn id(&self) -> &str {
            "fail-first"
        }
        async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if n == 1 {
                return Err(TokenError::source("first fetch fails", true));
            }
            Ok(Token::bearer(format!("token-{n}"))
                .with_expiry(Expiry::In(Duration::from_secs(100))))
        }
    }
    let source = Arc::new(FailFirst::default());
    let store = MemoryStore::new();
    let caches: Vec<TokenCache> = (0..6)
        .map(|_| {
            TokenCache::builder(Arc::clone(&source))
                .store(store.clone())
                .build()
        })
        .collect();
    let holder = tokio::spawn({
        let c = caches[0].clone();
        async move { value(&c).await }
    });
    tokio::task::yield_now().await;
    let waiters: Vec<_> = caches[1..]
        .iter()
        .cloned()
        .map(|c| tokio::spawn(async move { value(&c).await }))
        .collect();
    assert_eq!(holder.await.unwrap(), "token-2");
    for w in waiters {
        assert_eq!(w.await.unwrap(), "token-2");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

/// A fetch three times slower than the lease: the holder renews it while
/// the fetch runs, so no waiter takes over and spends the same refresh
/// token a second time.
#[tokio::test(start_paused = true)]
async fn a_holder_slower_than_its_lease_keeps_it_and_the_fleet_fetches_once() {
    let source = Arc::new(Counting::default());
    let store = MemoryStore::new();
    let lease = Duration::from_millis(400);
    let caches = fleet_with(&source, &store, 5, lease, Duration::from_secs(20));
    assert_eq!(value(&caches[0]).await, "token-1");
    advance(Duration::from_secs(101)).await; // token-1 has expired everywhere
    *source.delay.lock().unwrap() = Duration::from_millis(1200);
    for got in all_at_once(&caches).await {
        assert_eq!(got, "token-2");
    }
    let used = source.used_refresh.lock().unwrap().clone();
    assert_eq!(used, vec![None, Some("refresh-1".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_renewed_only_by_its_holder_and_only_while_it_holds() {
    use bearer_cache::TokenStore;
    let store = MemoryStore::new();
    let ttl = Duration::from_secs(1);
    let lease = store.try_lease("k", ttl).await.unwrap().unwrap();
    let forged = Lease {
        fence: "forged".into(),
    };
    assert!(!store.renew("k", &forged, ttl).await.unwrap());
    advance(Duration::from_millis(900)).await;
    assert!(store.renew("k", &lease, ttl).await.unwrap());
    advance(Duration::from_millis(900)).await;
    // Renewed: still held 1.8 s after it was taken.
    assert_eq!(store.try_lease("k", ttl).await.unwrap(), None);
    advance(Duration::from_millis(200)).await;
    assert!(!store.renew("k", &lease, ttl).await.unwrap(), "it ran out");
    let next = store.try_lease("k", ttl).await.unwrap().expect("free");
    assert!(
        !store.renew("k", &lease, ttl).await.unwrap(),
        "not the old holder's"
    );
    assert!(store.renew("k", &next, ttl).await.unwrap());
}

/// A `MemoryStore` whose renewals never get an answer: a holder cut off
/// from the store while it fetches.
#[derive(Debug, Clone)]
struct NoRenewals(MemoryStore);

#[async_trait]
impl bearer_cache::TokenStore for NoRenewals {
    async fn load(&self, key: &str) -> Result<Option<StoredToken>, StoreError> {
        self.0.load(key).await
    }
    async fn save(
        &self,
        key: &str,
        token: &StoredToken,
        ttl: Duration,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError> {
        self.0.save(key, token, ttl, lease).await
    }
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        self.0.try_lease(key, ttl).await
    }
    async fn renew(&self, _: &str, _: &Lease, _: Duration) -> Result<bool, StoreError> {
        Err(StoreError::new("no answer"))
    }
    async fn release(&self, key: &str, lease: &Lease) -> Result<(), StoreError> {
        self.0.release(key, lease).await
    }
    async fn wait_for_update(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<StoredToken>, StoreError> {
        self.0.wait_for_update(key, timeout).await
    }
}

/// A holder that can't renew carries on with its fetch (the store can't
/// say it lost the lease), but once its lease has passed to another
/// instance its late save is fenced out: the successor's token stands.
#[tokio::test(start_paused = true)]
async fn a_late_save_from_a_holder_that_lost_its_lease_is_fenced_out() {
    use bearer_cache::TokenStore;
    let source = Arc::new(Counting::default());
    let store = MemoryStore::new();
    let lease = Duration::from_secs(1);
    let cut_off = TokenCache::builder(Arc::clone(&source))
        .store(NoRenewals(store.clone()))
        .store_lease_ttl(lease)
        .build();
    let successor = fleet_with(&source, &store, 1, lease, Duration::from_secs(20)).remove(0);
    *source.delay.lock().unwrap() = Duration::from_secs(5);
    let late = tokio::spawn(async move { value(&cut_off).await });
    tokio::task::yield_now().await; // the cut-off holder has the lease and fetches
    *source.delay.lock().unwrap() = Duration::from_millis(100);
    assert_eq!(value(&successor).await, "token-2");
    assert_eq!(
        late.await.unwrap(),
        "token-1",
        "it keeps its own token locally"
    );
    let key = TokenKey::default().digest("counting");
    let kept = store.load(&key).await.unwrap().unwrap();
    assert_eq!(kept.token.access_token().expose_secret(), "token-2");
}
