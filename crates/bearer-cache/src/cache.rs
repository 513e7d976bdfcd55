//! The cache: single-flight fetches, refresh-ahead, stale-if-error,
//! compare-and-invalidate, and an optional shared second level.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};

use crate::policy::{Deadlines, Policy};
use crate::stats::{CacheStats, Counters};
use crate::{
    AccessToken, Clock, FetchContext, FetchReason, Fingerprint, SharedClock, StoredToken,
    SystemClock, Token, TokenError, TokenKey, TokenSource, TokenStore,
};

/// Called with the key and the new token whenever a key's token changes,
/// e.g. to persist a rotated refresh token.
pub type ChangeHook = Arc<dyn Fn(&TokenKey, &Token) + Send + Sync>;

/// Keys are ours, not an attacker's, so a fast non-DoS-resistant hash is fine.
type Index = papaya::HashMap<TokenKey, Arc<Slot>, foldhash::fast::RandomState>;

type SharedFetch = Shared<BoxFuture<'static, Result<Arc<Entry>, TokenError>>>;

/// An expiry-aware, single-flight cache of access tokens from one
/// [`TokenSource`]. Cheap to clone; clones share everything.
///
/// ```
/// use bearer_cache::{StaticSource, TokenCache, TokenKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = TokenCache::builder(StaticSource::new("a-token")).build();
/// let token = cache.get(&TokenKey::default()).await.unwrap();
/// assert_eq!(token.access_token().expose_secret(), "a-token");
/// assert_eq!(cache.stats().fetches, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    source: Arc<dyn TokenSource>,
    /// The lock-free index every lookup reads.
    index: Arc<Index>,
    /// The eviction policy: bounds the number of keys and drops idle ones;
    /// its eviction listener removes them from `index`. Touched only when a
    /// slot is created and about once a minute per key in use, so its
    /// bookkeeping stays off the per-request path.
    policy_map: moka::future::Cache<TokenKey, Arc<Slot>>,
    epoch: Instant,
    policy: Policy,
    clock: SharedClock,
    store: Option<StoreLink>,
    on_change: Option<ChangeHook>,
    counters: Counters,
}

struct StoreLink {
    store: Arc<dyn TokenStore>,
    call_timeout: Duration,
    lease_ttl: Duration,
    wait_timeout: Duration,
    healthy: AtomicBool,
}

/// One key's state. Readers only touch `current`; the mutex guards the
/// bookkeeping of fetches and failures and is never held across an await.
struct Slot {
    key: TokenKey,
    store_key: OnceLock<String>,
    /// Seconds since the cache's epoch when `policy_map` last saw this key.
    last_touch: AtomicU64,
    /// Milliseconds since the cache's epoch before which no background
    /// refresh starts (a fetch in flight, or backoff). Atomic, so requests
    /// in the refresh window check it without touching the mutex.
    background_not_before_ms: AtomicU64,
    current: ArcSwapOption<Entry>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    inflight: Option<SharedFetch>,
    /// The newest token, even once rejected or expired: its refresh token is
    /// what the next fetch uses.
    latest: Option<Arc<Entry>>,
    failures: u32,
    /// After a failure: until when callers get its error at once (backoff).
    refusal: Option<(Instant, TokenError)>,
}

struct Entry {
    token: Token,
    authorization: SecretString,
    fingerprint: Fingerprint,
    deadlines: Deadlines,
    /// One value an adapter derives from the token once (a ready header).
    derived: OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

/// A token handed out by the cache, with what the caller may need to report
/// it rejected. Cheap to clone. `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct CachedToken {
    entry: Arc<Entry>,
    hit: bool,
}

impl CachedToken {
    /// The token.
    pub fn token(&self) -> &Token {
        &self.entry.token
    }

    /// The access token value.
    pub fn access_token(&self) -> &AccessToken {
        self.entry.token.access_token()
    }

    /// `Bearer <token>`, ready for an `Authorization` header (or gRPC
    /// `authorization` metadata). Checked at fetch time to hold only visible
    /// ASCII, so it can never inject a header.
    pub fn expose_authorization_value(&self) -> &str {
        self.entry.authorization.expose_secret()
    }

    /// A value derived from this token once and kept with it for as long as
    /// the token lives, such as a transport's ready-made header value, so a
    /// hot path clones it instead of building it per request. `make` gets
    /// [`expose_authorization_value`](Self::expose_authorization_value).
    /// One derived type per token: asking for another type builds it anew
    /// on every call.
    ///
    /// ```
    /// # use bearer_cache::{StaticSource, TokenCache, TokenKey};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let cache = TokenCache::builder(StaticSource::new("abc")).build();
    /// let token = cache.get(&TokenKey::default()).await.unwrap();
    /// let header: std::sync::Arc<str> = token.derived(|value| value.into());
    /// assert_eq!(&*header, "Bearer abc");
    /// # }
    /// ```
    pub fn derived<T>(&self, make: impl FnOnce(&str) -> T) -> T
    where
        T: Clone + Send + Sync + 'static,
    {
        if let Some(stored) = self.entry.derived.get() {
            if let Some(value) = stored.downcast_ref::<T>() {
                return value.clone();
            }
            return make(self.expose_authorization_value());
        }
        let value = make(self.expose_authorization_value());
        // Two first callers may race; either value is the same.
        let _ = self.entry.derived.set(Box::new(value.clone()));
        value
    }

    /// The loggable fingerprint of the access token.
    pub fn fingerprint(&self) -> Fingerprint {
        self.entry.fingerprint
    }

    /// Whether the cache had it (no fetch was awaited).
    pub fn was_hit(&self) -> bool {
        self.hit
    }

    /// When the cache stops handing it out.
    pub fn expires_at(&self) -> Instant {
        self.entry.deadlines.expires_at
    }

    /// When the cache starts refreshing it in the background.
    pub fn refresh_at(&self) -> Instant {
        self.entry.deadlines.refresh_at
    }

    /// Whether both came from the same fetch.
    pub fn same_fetch(&self, other: &CachedToken) -> bool {
        Arc::ptr_eq(&self.entry, &other.entry)
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("fingerprint", &self.entry.fingerprint)
            .field("hit", &self.hit)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &self.inner.source.id())
            .field("keys", &self.inner.index.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenCache`]. Every knob has a default that suits tokens
/// living minutes to hours.
pub struct TokenCacheBuilder {
    source: Arc<dyn TokenSource>,
    policy: Policy,
    clock: SharedClock,
    store: Option<Arc<dyn TokenStore>>,
    store_call_timeout: Duration,
    store_lease_ttl: Duration,
    store_wait_timeout: Duration,
    on_change: Option<ChangeHook>,
    max_keys: u64,
    idle_key_ttl: Duration,
}

impl TokenCache {
    /// Starts configuring a cache over `source`.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        Self::builder_shared(Arc::new(source))
    }

    /// Like [`builder`](Self::builder), for a source already behind an `Arc`.
    pub fn builder_shared(source: Arc<dyn TokenSource>) -> TokenCacheBuilder {
        TokenCacheBuilder {
            source,
            policy: Policy::default(),
            clock: Arc::new(SystemClock),
            store: None,
            store_call_timeout: Duration::from_millis(250),
            store_lease_ttl: Duration::from_secs(10),
            store_wait_timeout: Duration::from_secs(15),
            on_change: None,
            max_keys: 10_000,
            idle_key_ttl: Duration::from_secs(3600),
        }
    }

    /// The source's identity.
    pub fn source_id(&self) -> &str {
        self.inner.source.id()
    }

    /// A token for `key`: at once when the cache holds a valid one (starting
    /// a background refresh when it nears expiry), else after the one fetch
    /// all concurrent callers of this key share.
    ///
    /// Dropping the returned future never cancels a fetch other callers
    /// wait on. After a failure, callers within the backoff window get the
    /// same error at once instead of a new request to the endpoint.
    pub async fn get(&self, key: &TokenKey) -> Result<CachedToken, TokenError> {
        if let Some(hit) = self.get_cached(key) {
            return Ok(hit);
        }
        // Boxed: the miss path's state is large, and every caller's future
        // would otherwise carry it on the hit path too.
        Box::pin(self.get_miss(key)).await
    }

    async fn get_miss(&self, key: &TokenKey) -> Result<CachedToken, TokenError> {
        let slot = self.slot(key).await;
        self.inner.counters.miss();
        self.join_or_fetch(&slot, false).await
    }

    /// The cached token for `key` if one is valid now, without waiting:
    /// the synchronous half of [`get`](Self::get) (it also starts a
    /// background refresh when the token nears expiry). `None` means a
    /// caller must `get` and wait. For adapters whose hot path should hold
    /// no future across the lookup. Like everything in this crate it runs
    /// inside a tokio runtime: it may spawn the background refresh.
    pub fn get_cached(&self, key: &TokenKey) -> Option<CachedToken> {
        let (hit, touch_due) = self.inner.lookup(key, self.inner.clock.now())?;
        if touch_due {
            // Rare (once a minute per key): keep a busy key from looking idle
            // to the eviction policy, off the caller's path.
            let inner = Arc::clone(&self.inner);
            let key = key.clone();
            tokio::spawn(async move { inner.policy_map.get(&key).await });
        }
        Some(hit)
    }

    /// Reports that a server rejected `rejected`. The key is invalidated only
    /// if `rejected` is still its current token, so any number of reports of
    /// the same token, and reports of tokens already replaced, cause at most
    /// one new fetch. Returns whether it invalidated.
    pub fn invalidate_if_current(&self, key: &TokenKey, rejected: &CachedToken) -> bool {
        let Some(slot) = self.inner.index.pin().get(key).cloned() else {
            return false;
        };
        let mut state = lock(&slot.state);
        let is_current = slot
            .current
            .load()
            .as_ref()
            .is_some_and(|e| Arc::ptr_eq(e, &rejected.entry));
        if is_current {
            slot.current.store(None);
            // A rejection is news the last failure did not know: allow one
            // attempt now (reports of one token invalidate only once).
            state.refusal = None;
            self.inner.counters.invalidation();
            tracing::info!(
                target: "bearer_cache",
                key = %key,
                token = %rejected.fingerprint(),
                "token rejected by server; invalidated"
            );
        }
        is_current
    }

    /// Reports `rejected` (see [`invalidate_if_current`]) and returns a token
    /// that is not it: the one a concurrent report already fetched, or a new one.
    ///
    /// [`invalidate_if_current`]: Self::invalidate_if_current
    pub async fn replace_rejected(
        &self,
        key: &TokenKey,
        rejected: &CachedToken,
    ) -> Result<CachedToken, TokenError> {
        self.invalidate_if_current(key, rejected);
        self.get(key).await
    }

    /// Fetches a new token for `key` now, whatever the cache holds, and
    /// waits for it (joining a fetch already under way).
    pub async fn refresh(&self, key: &TokenKey) -> Result<CachedToken, TokenError> {
        let slot = self.slot(key).await;
        self.join_or_fetch(&slot, true).await
    }

    /// Forgets every key.
    pub fn clear(&self) {
        self.inner.policy_map.invalidate_all();
        self.inner.index.pin().clear();
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    async fn slot(&self, key: &TokenKey) -> Arc<Slot> {
        if let Some(slot) = self.inner.index.pin().get(key) {
            return Arc::clone(slot);
        }
        let touch = self.inner.seconds_since_epoch(self.inner.clock.now());
        let created = self
            .inner
            .policy_map
            .get_with_by_ref(key, async { Arc::new(Slot::new(key.clone(), touch)) })
            .await;
        Arc::clone(self.inner.index.pin().get_or_insert(key.clone(), created))
    }

    async fn join_or_fetch(
        &self,
        slot: &Arc<Slot>,
        force: bool,
    ) -> Result<CachedToken, TokenError> {
        let fetch = {
            let mut state = lock(&slot.state);
            let now = self.inner.clock.now();
            if !force {
                if let Some(entry) = slot.current.load_full() {
                    if now < entry.deadlines.expires_at {
                        // Another caller's fetch landed while we took the lock.
                        return Ok(CachedToken { entry, hit: true });
                    }
                }
            }
            match &state.inflight {
                Some(fetch) => fetch.clone(),
                None => {
                    if !force {
                        if let Some((at, err)) = &state.refusal {
                            if now < *at {
                                self.inner.counters.backoff_refusal();
                                return Err(err.clone());
                            }
                        }
                    }
                    let reason = if force {
                        FetchReason::Forced
                    } else if slot.current.load().is_some() {
                        FetchReason::Expired
                    } else if state.latest.is_some() {
                        FetchReason::Rejected
                    } else {
                        FetchReason::Initial
                    };
                    start_fetch(&self.inner, slot, &mut state, reason)
                }
            }
        };
        self.inner.counters.wait();
        fetch.await.map(|entry| CachedToken { entry, hit: false })
    }
}

/// Spawns the fetch so that it outlives any caller, and records it as the
/// slot's one fetch in flight. Called with the slot's lock held.
fn start_fetch(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    state: &mut SlotState,
    reason: FetchReason,
) -> SharedFetch {
    slot.background_not_before_ms
        .store(u64::MAX, Ordering::Relaxed);
    let inner = Arc::clone(inner);
    let slot_for_task = Arc::clone(slot);
    let previous = state.latest.clone();
    let task = tokio::spawn(async move {
        inner
            .fetch_and_install(&slot_for_task, previous, reason)
            .await
    });
    let fetch = task
        .map(|joined| {
            joined.unwrap_or_else(|_| Err(TokenError::source("the token source panicked", true)))
        })
        .boxed()
        .shared();
    state.inflight = Some(fetch.clone());
    fetch
}

impl Slot {
    fn new(key: TokenKey, touch: u64) -> Self {
        Slot {
            key,
            store_key: OnceLock::new(),
            last_touch: AtomicU64::new(touch),
            background_not_before_ms: AtomicU64::new(0),
            current: ArcSwapOption::empty(),
            state: Mutex::new(SlotState::default()),
        }
    }
}

impl Inner {
    /// The hot path: one lock-free index read and one atomic pointer load.
    /// Returns a valid token, if any, and whether the eviction policy is
    /// due to hear that the key is in use.
    fn lookup(self: &Arc<Self>, key: &TokenKey, now: Instant) -> Option<(CachedToken, bool)> {
        let index = self.index.pin();
        let slot = index.get(key)?;
        let entry = slot.current.load_full()?;
        if now >= entry.deadlines.expires_at {
            return None;
        }
        self.counters.hit();
        if now >= entry.deadlines.refresh_at
            && self.millis_since_epoch(now) >= slot.background_not_before_ms.load(Ordering::Relaxed)
        {
            self.refresh_in_background(slot);
        }
        Some((CachedToken { entry, hit: true }, self.touch_due(slot, now)))
    }

    /// Whether `policy_map` should hear of this key again (once a minute).
    fn touch_due(&self, slot: &Slot, now: Instant) -> bool {
        let secs = self.seconds_since_epoch(now);
        let last = slot.last_touch.load(Ordering::Relaxed);
        secs >= last + 60
            && slot
                .last_touch
                .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn seconds_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn millis_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn refresh_in_background(self: &Arc<Self>, slot: &Arc<Slot>) {
        // Whoever holds the lock is already deciding; don't queue behind it.
        let Ok(mut state) = slot.state.try_lock() else {
            return;
        };
        if state.inflight.is_some() {
            return;
        }
        self.counters.background_refresh();
        drop(start_fetch(
            self,
            slot,
            &mut state,
            FetchReason::RefreshAhead,
        ));
    }
}

fn lock(m: &Mutex<SlotState>) -> MutexGuard<'_, SlotState> {
    // A panic while holding it leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many times one fetch goes back to the lease after waiting.
const MAX_LEASE_ROUNDS: usize = 8;

/// The token whose refresh token the next fetch should use: the stored one
/// carries the newest rotation.
fn newest_token<'a>(
    stored: Option<&'a StoredToken>,
    previous: Option<&'a Entry>,
) -> Option<&'a Token> {
    stored.map(|s| &s.token).or(previous.map(|e| &e.token))
}

/// What a fetch produced, before it is installed.
struct Fetched {
    token: Token,
    sent_at: Instant,
    sent_at_system: SystemTime,
    from_store: bool,
}

impl Inner {
    async fn fetch_and_install(
        &self,
        slot: &Slot,
        previous: Option<Arc<Entry>>,
        reason: FetchReason,
    ) -> Result<Arc<Entry>, TokenError> {
        tracing::debug!(target: "bearer_cache", key = %slot.key, ?reason, "fetching token");
        let result = match &self.store {
            Some(link) => {
                self.fetch_via_store(link, slot, previous.as_deref(), reason)
                    .await
            }
            None => {
                self.fetch_from_source(&slot.key, previous.as_deref().map(|e| &e.token), reason)
                    .await
            }
        };
        let installed = result.and_then(|fetched| self.make_entry(fetched));

        let mut state = lock(&slot.state);
        state.inflight = None;
        let now = self.clock.now();
        match installed {
            Ok((entry, from_store)) => {
                slot.current.store(Some(Arc::clone(&entry)));
                let changed = previous
                    .as_ref()
                    .is_none_or(|p| p.token.access_token() != entry.token.access_token());
                state.latest = Some(Arc::clone(&entry));
                state.failures = 0;
                state.refusal = None;
                // A server that hands back a token already due for refresh
                // (its own cache window) must not make every request refresh.
                let next_background = if entry.deadlines.refresh_at <= now {
                    self.millis_since_epoch(now + self.policy.backoff.initial)
                } else {
                    0
                };
                slot.background_not_before_ms
                    .store(next_background, Ordering::Relaxed);
                drop(state);
                tracing::debug!(
                    target: "bearer_cache",
                    key = %slot.key,
                    token = %entry.fingerprint,
                    from_store,
                    expires_in_ms = entry.deadlines.expires_at.saturating_duration_since(now).as_millis() as u64,
                    "token installed"
                );
                if changed {
                    if let Some(hook) = &self.on_change {
                        hook(&slot.key, &entry.token);
                    }
                }
                Ok(entry)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let delay = self.policy.backoff.delay(
                    state.failures,
                    error.retry_after(),
                    &mut rand::rng(),
                );
                state.refusal = Some((now + delay, error.clone()));
                slot.background_not_before_ms
                    .store(self.millis_since_epoch(now + delay), Ordering::Relaxed);
                let failures = state.failures;
                drop(state);
                self.counters.failure();
                tracing::warn!(
                    target: "bearer_cache",
                    key = %slot.key,
                    ?reason,
                    %error,
                    transient = error.is_transient(),
                    consecutive_failures = failures,
                    backoff_ms = delay.as_millis() as u64,
                    "token fetch failed"
                );
                Err(error)
            }
        }
    }

    fn make_entry(&self, fetched: Fetched) -> Result<(Arc<Entry>, bool), TokenError> {
        let token = fetched.token;
        if !token.token_type().eq_ignore_ascii_case("bearer") {
            return Err(TokenError::UnsupportedTokenType(
                token.token_type().to_owned(),
            ));
        }
        if !token.header_safe() {
            return Err(TokenError::InvalidTokenValue);
        }
        // A stored token keeps the fleet's schedule (as `usable_stored`
        // judged it); only our own fetches are jittered.
        let jitter = if fetched.from_store {
            0.0
        } else {
            rand::rng().random::<f64>()
        };
        let deadlines =
            self.policy
                .deadlines(&token, fetched.sent_at, fetched.sent_at_system, jitter);
        let authorization =
            SecretString::from(format!("Bearer {}", token.access_token().expose_secret()));
        let fingerprint = token.access_token().fingerprint();
        Ok((
            Arc::new(Entry {
                token,
                authorization,
                fingerprint,
                deadlines,
                derived: OnceLock::new(),
            }),
            fetched.from_store,
        ))
    }

    async fn fetch_from_source(
        &self,
        key: &TokenKey,
        previous: Option<&Token>,
        reason: FetchReason,
    ) -> Result<Fetched, TokenError> {
        let sent_at = self.clock.now();
        let sent_at_system = self.clock.system_now();
        self.counters.fetch();
        let cx = FetchContext::new(key, previous, reason);
        let deadline = self
            .source
            .fetch_deadline()
            .map_or(self.policy.fetch_timeout, |d| {
                d.max(self.policy.fetch_timeout)
            });
        let token = tokio::time::timeout(deadline, self.source.fetch(cx))
            .await
            .map_err(|_| TokenError::Timeout(deadline))??;
        Ok(Fetched {
            token,
            sent_at,
            sent_at_system,
            from_store: false,
        })
    }

    /// The fleet path: use what another instance stored; else take the
    /// lease, look once more, and fetch; else wait for the holder and try
    /// again, until the wait budget runs out. Any store failure falls back
    /// to fetching alone.
    async fn fetch_via_store(
        &self,
        link: &StoreLink,
        slot: &Slot,
        previous: Option<&Entry>,
        reason: FetchReason,
    ) -> Result<Fetched, TokenError> {
        let key = slot
            .store_key
            .get_or_init(|| slot.key.digest(self.source.id()));
        // Store waits are real time: other instances do not share our clock.
        let give_up_at = tokio::time::Instant::now() + link.wait_timeout;
        let mut stored = self.store_call(link, link.store.load(key)).await.flatten();
        // Bounds the rounds should a store answer waits at once.
        for _ in 0..MAX_LEASE_ROUNDS {
            if let Some(fetched) = self.usable_stored(stored.as_ref(), previous, reason) {
                return Ok(fetched);
            }
            match self
                .store_call(link, link.store.try_lease(key, link.lease_ttl))
                .await
            {
                Some(Some(lease)) => {
                    // Another instance may have saved between our read and
                    // our lease: fetching now would waste a rotated refresh token.
                    let latest = self.store_call(link, link.store.load(key)).await.flatten();
                    let latest = latest.or(stored);
                    if let Some(fetched) = self.usable_stored(latest.as_ref(), previous, reason) {
                        self.store_call(link, link.store.release(key, &lease)).await;
                        return Ok(fetched);
                    }
                    let newest = newest_token(latest.as_ref(), previous);
                    let result = self.fetch_from_source(&slot.key, newest, reason).await;
                    if let Ok(fetched) = &result {
                        self.save(link, key, fetched, Some(&lease)).await;
                    }
                    // Released even on failure, so waiters take over at once.
                    self.store_call(link, link.store.release(key, &lease)).await;
                    return result;
                }
                Some(None) => {
                    let budget = give_up_at.saturating_duration_since(tokio::time::Instant::now());
                    if budget.is_zero() {
                        break;
                    }
                    let waited = self
                        .store_call_with(
                            link,
                            link.store.wait_for_update(key, budget),
                            budget + link.call_timeout,
                        )
                        .await
                        .flatten();
                    stored = waited.or(stored);
                }
                None => break,
            }
        }
        // The store is down, or the holder outlived our patience: fetch
        // alone and keep it local; an unfenced save could overwrite the
        // holder's newer token.
        let newest = newest_token(stored.as_ref(), previous);
        self.fetch_from_source(&slot.key, newest, reason).await
    }

    async fn save(
        &self,
        link: &StoreLink,
        key: &str,
        fetched: &Fetched,
        lease: Option<&crate::Lease>,
    ) {
        let stored = StoredToken::new(&fetched.token, fetched.sent_at_system);
        let ttl = self.policy.lifetime(&fetched.token, fetched.sent_at_system);
        self.store_call(link, link.store.save(key, &stored, ttl, lease))
            .await;
    }

    /// A stored token is used only if it is fresher than what prompted the
    /// fetch: not the rejected one, not due for refresh itself.
    fn usable_stored(
        &self,
        stored: Option<&StoredToken>,
        previous: Option<&Entry>,
        reason: FetchReason,
    ) -> Option<Fetched> {
        let stored = stored?;
        if previous.is_some_and(|p| p.token.access_token() == stored.token.access_token()) {
            return None;
        }
        if reason == FetchReason::Forced {
            return None;
        }
        let now = self.clock.now();
        let now_system = self.clock.system_now();
        let age = now_system
            .duration_since(stored.fetched_at)
            .unwrap_or(Duration::ZERO);
        let sent_at = now.checked_sub(age).unwrap_or(now);
        let deadlines = self
            .policy
            .deadlines(&stored.token, sent_at, stored.fetched_at, 0.0);
        if now >= deadlines.refresh_at {
            return None;
        }
        self.counters.store_hit();
        Some(Fetched {
            token: stored.token.clone(),
            sent_at,
            sent_at_system: stored.fetched_at,
            from_store: true,
        })
    }

    async fn store_call<T>(
        &self,
        link: &StoreLink,
        call: impl Future<Output = Result<T, crate::StoreError>>,
    ) -> Option<T> {
        self.store_call_with(link, call, link.call_timeout).await
    }

    /// Runs one store call within `limit`; a failure is logged once per
    /// outage and turns into `None`, never into a caller's error.
    async fn store_call_with<T>(
        &self,
        link: &StoreLink,
        call: impl Future<Output = Result<T, crate::StoreError>>,
        limit: Duration,
    ) -> Option<T> {
        let outcome = match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        match outcome {
            Ok(value) => {
                if !link.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(target: "bearer_cache", "token store is back; sharing tokens again");
                }
                Some(value)
            }
            Err(message) => {
                self.counters.store_error();
                if link.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "bearer_cache",
                        error = %message,
                        "token store unavailable; fetching locally until it returns"
                    );
                }
                None
            }
        }
    }
}

impl TokenCacheBuilder {
    /// How long before hard expiry a background refresh starts (default
    /// 5 min), at most [`max_refresh_ahead_fraction`] of the lifetime.
    ///
    /// [`max_refresh_ahead_fraction`]: Self::max_refresh_ahead_fraction
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.policy.refresh_ahead = ahead;
        self
    }

    /// The largest share of a token's usable lifetime the refresh window
    /// may take (default 0.5): a 10 s token refreshes after about 5 s.
    pub fn max_refresh_ahead_fraction(mut self, fraction: f64) -> Self {
        self.policy.max_refresh_ahead_fraction = fraction.clamp(0.0, 1.0);
        self
    }

    /// Random extra lead, as a fraction of the refresh window (default 0.2),
    /// so instances do not refresh in step.
    pub fn refresh_jitter(mut self, fraction: f64) -> Self {
        self.policy.refresh_jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// How long before the server's expiry a token is no longer handed out
    /// (default 30 s): covers clock skew and time in flight.
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.policy.expiry_margin = margin;
        self
    }

    /// The largest share of a lifetime the margin may take (default 0.1),
    /// so short-lived tokens stay usable.
    pub fn max_margin_fraction(mut self, fraction: f64) -> Self {
        self.policy.max_margin_fraction = fraction.clamp(0.0, 0.9);
        self
    }

    /// The lifetime assumed for tokens that carry no expiry (default 5 min).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.default_lifetime = lifetime;
        self
    }

    /// The first wait after a failed fetch (default 500 ms); it doubles per
    /// consecutive failure, with jitter, up to [`max_backoff`](Self::max_backoff).
    pub fn initial_backoff(mut self, initial: Duration) -> Self {
        self.policy.backoff.initial = initial;
        self
    }

    /// The longest wait between failed fetches (default 10 s): after an
    /// outage, callers whose token has expired see errors for at most this
    /// long once the endpoint is back.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.policy.backoff.max = max;
        self
    }

    /// The longest server `Retry-After` honoured (default 5 min).
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.policy.backoff.max_retry_after = max;
        self
    }

    /// A deadline for each fetch from the source (default 30 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.policy.fetch_timeout = timeout;
        self
    }

    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The clock, already shared.
    pub fn shared_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// A second-level store shared by many instances.
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The deadline of each store call (default 250 ms); past it the cache
    /// carries on without the store.
    pub fn store_call_timeout(mut self, timeout: Duration) -> Self {
        self.store_call_timeout = timeout;
        self
    }

    /// How long a fetch lease lasts if its holder dies (default 10 s). Keep
    /// it shorter than [`store_wait_timeout`](Self::store_wait_timeout), so
    /// a waiter outlives a dead holder's lease and takes over.
    pub fn store_lease_ttl(mut self, ttl: Duration) -> Self {
        self.store_lease_ttl = ttl;
        self
    }

    /// How long to wait for another instance's fetch, in all (default 15 s);
    /// past it the cache fetches alone.
    pub fn store_wait_timeout(mut self, timeout: Duration) -> Self {
        self.store_wait_timeout = timeout;
        self
    }

    /// Called whenever a key's token changes.
    pub fn on_change(mut self, hook: impl Fn(&TokenKey, &Token) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(hook));
        self
    }

    /// The most keys kept (default 10,000); least used go first.
    pub fn max_keys(mut self, max: u64) -> Self {
        self.max_keys = max;
        self
    }

    /// A key unused this long is dropped (default 1 h).
    pub fn idle_key_ttl(mut self, ttl: Duration) -> Self {
        self.idle_key_ttl = ttl;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> TokenCache {
        let index: Arc<Index> = Arc::new(papaya::HashMap::with_hasher(Default::default()));
        let evict_from = Arc::clone(&index);
        let policy_map = moka::future::Cache::builder()
            .max_capacity(self.max_keys)
            .time_to_idle(self.idle_key_ttl)
            .eviction_listener(move |key: Arc<TokenKey>, slot: Arc<Slot>, cause| {
                if cause != moka::notification::RemovalCause::Replaced {
                    // Only if the index still maps the key to this very slot.
                    let _ = evict_from
                        .pin()
                        .remove_if(&*key, |_, current| Arc::ptr_eq(current, &slot));
                }
            })
            .build();
        TokenCache {
            inner: Arc::new(Inner {
                source: self.source,
                index,
                policy_map,
                epoch: self.clock.now(),
                policy: self.policy,
                clock: self.clock,
                store: self.store.map(|store| StoreLink {
                    store,
                    call_timeout: self.store_call_timeout,
                    lease_ttl: self.store_lease_ttl,
                    wait_timeout: self.store_wait_timeout,
                    healthy: AtomicBool::new(true),
                }),
                on_change: self.on_change,
                counters: Counters::default(),
            }),
        }
    }
}

impl fmt::Debug for TokenCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCacheBuilder")
            .field("source", &self.source.id())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
