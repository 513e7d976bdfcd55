//! The cache: single-flight fetches, refresh-ahead, stale-if-error,
//! compare-and-invalidate, and an optional shared second level.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`TokenCache`], the façade, and the lock-free hit path |
//! | `builder.rs` | [`TokenCacheBuilder`]: every knob with its default |
//! | `state.rs` | one key's decisions, as plain transitions with their tests |
//! | `slot.rs` | one key: the state under a mutex, the hint the hit path reads, the caller's wait |
//! | `attempt.rs` | one attempt: spawned, bounded, panic-proof, always reported |
//! | `outcome.rs` | an attempt's outcome as its callers await it, and the attempt's timer |
//! | `fleet.rs` | the shared-store protocol: read, lease, fetch, save |
//! | `entry.rs` | a token as held, and the [`CachedToken`] handed out |
//! | `evict.rs` | which keys are forgotten: idle ones, and the least recently used past `max_keys` |
//! | `local.rs` | each thread's memo of its last keys: hits that write nothing shared |

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod attempt;
mod builder;
mod entry;
mod evict;
mod fleet;
mod local;
mod outcome;
mod slot;
mod state;

pub use builder::TokenCacheBuilder;
pub use entry::CachedToken;

use crate::clock::Tick;
use crate::policy::{Policy, after};
use crate::stats::{CacheStats, Counters};
use crate::{SharedClock, Token, TokenError, TokenKey, TokenSource};
use entry::{Entry, Held};
use fleet::StoreLink;
use slot::{RETIRED, Slot};

/// Called with the key and the new token whenever a key's token changes,
/// e.g. to persist a rotated refresh token.
pub type ChangeHook = Arc<dyn Fn(&TokenKey, &Token) + Send + Sync>;

/// Keys are ours, not an attacker's, so a fast non-DoS-resistant hash is fine.
/// One copy of each key, shared by the index, the eviction policy and the
/// slot.
type Index = papaya::HashMap<Arc<TokenKey>, Arc<Slot>, foldhash::fast::RandomState>;

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

pub(crate) struct Inner {
    /// This cache's number, for threads' memos.
    id: u64,
    source: Arc<dyn TokenSource>,
    /// The lock-free index every lookup reads.
    index: Arc<Index>,
    /// Bounds the number of keys and drops idle ones, in sweeps started
    /// when a slot is created or a key's touch is refreshed (at most once
    /// a minute per key in use): nothing of it on the per-request path.
    eviction: evict::Eviction,
    epoch: Instant,
    policy: Policy,
    clock: SharedClock,
    /// Whether `clock` is the default one, whose coarse readings the hit
    /// path may take as ticks.
    ticks: bool,
    store: Option<StoreLink>,
    on_change: Option<ChangeHook>,
    counters: Counters,
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

impl TokenCache {
    /// Starts configuring a cache over `source`.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        Self::builder_shared(Arc::new(source))
    }

    /// Like [`builder`](Self::builder), for a source already behind an `Arc`.
    pub fn builder_shared(source: Arc<dyn TokenSource>) -> TokenCacheBuilder {
        TokenCacheBuilder::new(source)
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
    /// wait on. When the last attempt failed, the caller waits for the next
    /// one (spaced by the [backoff](TokenCacheBuilder::backoff)) for up to
    /// [`max_wait`](TokenCacheBuilder::max_wait), and gets that attempt's
    /// outcome; a permanent failure (`invalid_client`, `invalid_grant`, …)
    /// is returned at once.
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
        crate::metrics::miss();
        self.inner.acquire(&slot, false).await
    }

    /// The cached token for `key` if one is valid now, without waiting:
    /// the synchronous half of [`get`](Self::get) (it also starts a
    /// background refresh when the token nears expiry). `None` means a
    /// caller must `get` and wait. For adapters whose hot path should hold
    /// no future across the lookup. Like everything in this crate it runs
    /// inside a tokio runtime: it may spawn the background refresh.
    pub fn get_cached(&self, key: &TokenKey) -> Option<CachedToken> {
        let now = self.inner.hit_reading();
        if let Some(local) = local::quiet_hit(self.inner.id, key, now) {
            // Nothing to decide: the rules of a hit would only count it.
            self.inner.counters.hit();
            crate::metrics::hit();
            #[cfg(feature = "metrics")]
            crate::metrics::time_to_expiry(
                local.entry.deadlines.expires_at,
                self.inner.instant(now),
            );
            let held = Held::Local(local);
            return Some(CachedToken { held, hit: true });
        }
        let now = self.inner.instant(now);
        let (hit, touched) = self.inner.lookup(key, now)?;
        if touched {
            // Rare (once a minute per key in use): a chance to sweep.
            self.inner.maybe_sweep(self.inner.seconds_since_epoch(now));
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
        let invalidated = slot.rejected(&self.inner, rejected.entry());
        if invalidated {
            self.inner.counters.invalidation();
            crate::metrics::invalidation();
            tracing::info!(
                target: "bearer_cache",
                key = %key,
                token = %rejected.fingerprint(),
                "token rejected by server; invalidated"
            );
        }
        invalidated
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
    /// waits for it (joining a fetch already under way). After a transient
    /// failure it keeps to the backoff like any other attempt; after a
    /// permanent one (`invalid_grant`, `invalid_client`, …) it tries at
    /// once: it is how an app says that something changed, such as a
    /// person signing in again.
    pub async fn refresh(&self, key: &TokenKey) -> Result<CachedToken, TokenError> {
        let slot = self.slot(key).await;
        self.inner.acquire(&slot, true).await
    }

    /// Forgets every key.
    pub fn clear(&self) {
        self.inner.index.pin().retain(|_, slot| {
            slot.retire();
            false
        });
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
        // One copy of the key, for the index and the slot.
        let shared = Arc::new(key.clone());
        let slot = Arc::clone(
            self.inner
                .index
                .pin()
                .get_or_insert_with(Arc::clone(&shared), move || {
                    Arc::new(Slot::new(shared, touch))
                }),
        );
        self.inner.maybe_sweep(touch);
        slot
    }
}

impl Inner {
    /// A hit that has something to decide, or no memo to start from (the
    /// quiet repeated hit is [`local::quiet_hit`]). First this thread's
    /// memo of the key: one atomic load (the slot's generation) says it
    /// still holds the current entry, and the handle handed out is the
    /// thread's own. Else one lock-free index read and one atomic pointer
    /// load. Either way, past the refresh point, one atomic read of the
    /// slot's gate. Returns a valid token, if any, and whether the eviction
    /// policy is due to hear that the key is in use.
    fn lookup(self: &Arc<Self>, key: &TokenKey, now: Instant) -> Option<(CachedToken, bool)> {
        let memoized = local::with_memo(self.id, key, |memo| {
            let touch = self.serve(&memo.slot, &memo.local.entry, now, Some(&memo.touch_at))?;
            memo.settle();
            let held = Held::Local(Arc::clone(&memo.local));
            Some((CachedToken { held, hit: true }, touch))
        });
        if let Some(served) = memoized {
            return served;
        }
        let index = self.index.pin();
        let slot = index.get(key)?;
        let generation = slot.generation();
        let entry = slot.current()?;
        let touch = self.serve(slot, &entry, now, None)?;
        let local = if generation & RETIRED == 0 {
            local::offer(self.id, slot, generation, &entry, now)
        } else {
            None
        };
        let held = local.map_or(Held::Shared(entry), Held::Local);
        Some((CachedToken { held, hit: true }, touch))
    }

    /// The rules of a hit on `entry`, the slot's current one: refused at
    /// hard expiry; counted; past the refresh point, a background refresh
    /// if the gate is open. Returns whether the eviction policy is due to
    /// hear of the key.
    fn serve(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        entry: &Entry,
        now: Instant,
        touch_at: Option<&Cell<Instant>>,
    ) -> Option<bool> {
        if now >= entry.deadlines.expires_at {
            return None;
        }
        self.counters.hit();
        crate::metrics::hit();
        crate::metrics::time_to_expiry(entry.deadlines.expires_at, now);
        if now >= entry.deadlines.refresh_at && slot.refresh_gate_open(self.millis_since_epoch(now))
        {
            // Starting a fetch acts on time: the precise reading decides.
            slot.refresh_due(self, self.clock.now());
        }
        Some(self.touch_due(slot, now, touch_at))
    }

    /// Refreshes the key's touch for the eviction policy when it is due (at
    /// most once a minute) and says whether it did. With `touch_at` (a
    /// thread's memo of the key), the slot is asked only from the instant
    /// its answer could be yes, which is then moved to the next such
    /// instant: the same answers, without turning `now` into seconds on
    /// every hit.
    fn touch_due(&self, slot: &Slot, now: Instant, touch_at: Option<&Cell<Instant>>) -> bool {
        if touch_at.is_some_and(|at| now < at.get()) {
            return false;
        }
        let every = self.eviction.touch_every();
        let due = slot.touch_due(self.seconds_since_epoch(now), every);
        if let Some(at) = touch_at {
            at.set(after(
                self.epoch,
                Duration::from_secs(slot.next_touch(every)),
            ));
        }
        due
    }

    /// Starts a sweep for the eviction policy if one is due, on the
    /// runtime's blocking pool (inline without a runtime).
    fn maybe_sweep(self: &Arc<Self>, secs: u64) {
        if !self.eviction.due(self.index.len(), secs) {
            return;
        }
        let inner = Arc::clone(self);
        let sweep = move || inner.eviction.sweep(&inner.index, secs);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(sweep)),
            Err(_) => sweep(),
        }
    }

    /// What the hit path reads: never behind the precise clock, so a
    /// deadline may be seen a few milliseconds early (and the miss path
    /// then reads the precise one), never late.
    #[inline]
    fn hit_reading(&self) -> local::Now {
        match self.ticks.then(Tick::now) {
            Some(Some(tick)) => local::Now::Tick(tick),
            // The default clock off a runtime's workers, where its coarse
            // reading is the precise one: read that, not the ticks again.
            Some(None) => local::Now::At(self.clock.now()),
            None => local::Now::At(self.clock.coarse_now()),
        }
    }

    /// The instant `now` stands for.
    fn instant(&self, now: local::Now) -> Instant {
        match now {
            local::Now::Tick(tick) => tick.instant().unwrap_or_else(|| self.clock.now()),
            local::Now::At(instant) => instant,
        }
    }

    fn seconds_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn millis_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// How long one attempt may take in all: the source's deadline, plus
    /// the store's waits when there is a store.
    fn attempt_budget(&self) -> Duration {
        let source = self
            .source
            .fetch_deadline()
            .map_or(self.policy.fetch_timeout, |d| {
                d.max(self.policy.fetch_timeout)
            });
        let store = self
            .store
            .as_ref()
            .map_or(Duration::ZERO, StoreLink::budget);
        source.saturating_add(store)
    }
}
