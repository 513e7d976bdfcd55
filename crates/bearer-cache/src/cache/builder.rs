//! [`TokenCacheBuilder`]: every knob of the cache, with its default.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::fleet::StoreLink;
use super::{ChangeHook, Index, Inner, TokenCache};
use crate::policy::{LONGEST_SPAN, Policy, unit};
use crate::stats::Counters;
use crate::{Backoff, Clock, SharedClock, SystemClock, Token, TokenKey, TokenSource, TokenStore};

/// Configures a [`TokenCache`]. Every knob has a default that suits tokens
/// living minutes to hours.
pub struct TokenCacheBuilder {
    source: Arc<dyn TokenSource>,
    policy: Policy,
    clock: SharedClock,
    /// Whether `clock` is still the default [`SystemClock`].
    default_clock: bool,
    store: Option<Arc<dyn TokenStore>>,
    store_call_timeout: Duration,
    store_lease_ttl: Duration,
    store_wait_timeout: Duration,
    on_change: Option<ChangeHook>,
    max_keys: u64,
    idle_key_ttl: Duration,
}

impl TokenCacheBuilder {
    pub(crate) fn new(source: Arc<dyn TokenSource>) -> Self {
        TokenCacheBuilder {
            source,
            policy: Policy::default(),
            clock: Arc::new(SystemClock),
            default_clock: true,
            store: None,
            store_call_timeout: Duration::from_millis(250),
            store_lease_ttl: Duration::from_secs(10),
            store_wait_timeout: Duration::from_secs(15),
            on_change: None,
            max_keys: 10_000,
            idle_key_ttl: Duration::from_secs(3600),
        }
    }

    /// 5 min), at most [`max_refresh_ahead_fraction`] of the lifetime.
    ///
    /// [`max_refresh_ahead_fraction`]: Self::max_refresh_ahead_fraction
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.policy.refresh_ahead = ahead.min(LONGEST_SPAN);
        self
    }

    /// The largest share of a token's usable lifetime the refresh window
    /// may take (default 0.5): a 10 s token refreshes after about 5 s.
    pub fn max_refresh_ahead_fraction(mut self, fraction: f64) -> Self {
        self.policy.max_refresh_ahead_fraction = unit(fraction, 1.0);
        self
    }

    /// Random extra lead, as a fraction of the refresh window (default 0.2),
    /// so instances do not refresh in step.
    pub fn refresh_jitter(mut self, fraction: f64) -> Self {
        self.policy.refresh_jitter = unit(fraction, 1.0);
        self
    }

    /// How long before the server's expiry a token is no longer handed out
    /// (default 30 s): covers clock skew and time in flight.
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.policy.expiry_margin = margin.min(LONGEST_SPAN);
        self
    }

    /// The largest share of a lifetime the margin may take (default 0.1),
    /// so short-lived tokens stay usable.
    pub fn max_margin_fraction(mut self, fraction: f64) -> Self {
        self.policy.max_margin_fraction = unit(fraction, 0.9);
        self
    }

    /// The lifetime assumed for tokens that carry no expiry (default 5 min).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.default_lifetime = lifetime.min(LONGEST_SPAN);
        self
    }

    /// How attempts are spaced after a failure (default
    /// [`Backoff::default()`]: from 500 ms, doubling, at most 10 s, half
    /// jittered, a server's `Retry-After` honoured up to 5 min). Until the
    /// next attempt, a valid token keeps serving; a caller with none waits
    /// for that attempt (see [`max_wait`](Self::max_wait)).
    ///
    /// ```
    /// use bearer_cache::{Backoff, StaticSource, TokenCache};
    /// use std::time::Duration;
    ///
    /// let cache = TokenCache::builder(StaticSource::new("t"))
    ///     .backoff(Backoff::default().initial(Duration::from_millis(200)).max(Duration::from_secs(5)))
    ///     .build();
    /// # let _ = cache;
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.policy.backoff = backoff;
        self
    }

    /// How long a caller that needs a token waits for the next attempt
    /// after a failed one (default 10 s, the default backoff's longest
    /// wait), instead of getting that failure at once. Attempts stay one at
    /// a time and spaced by the backoff; one success answers every waiting
    /// caller. A caller whose next attempt would start later than this
    /// gets the last failure at once, and a permanent failure
    /// (`invalid_client`, `invalid_grant`, …) is never waited on. `ZERO`
    /// fails fast. A caller may wait this long, plus the attempt itself
    /// ([`fetch_timeout`](Self::fetch_timeout)).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.policy.max_wait = max_wait.min(LONGEST_SPAN);
        self
    }

    /// The longest lifetime believed (default 24 h): a token said to live
    /// longer, up to "never expires" (`expires_in: 9223372036854775807`),
    /// is refreshed as if it lived this long.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.policy.max_lifetime = max.min(LONGEST_SPAN);
        self
    }

    /// A deadline for each fetch from the source (default 30 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.policy.fetch_timeout = timeout.min(LONGEST_SPAN);
        self
    }

    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.default_clock = false;
        self
    }

    /// The clock, already shared.
    pub fn shared_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self.default_clock = false;
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
        self.store_call_timeout = timeout.min(LONGEST_SPAN);
        self
    }

    /// How long a fetch lease lasts if its holder dies or stops (default
    /// 10 s). A live holder renews it every third of this while its fetch
    /// runs, so a fetch may take longer than the lease. Keep it shorter
    /// than [`store_wait_timeout`](Self::store_wait_timeout), so a waiter
    /// outlives a dead holder's lease and takes over.
    pub fn store_lease_ttl(mut self, ttl: Duration) -> Self {
        self.store_lease_ttl = ttl.min(LONGEST_SPAN);
        self
    }

    /// How long to wait for another instance's fetch, in all (default 15 s);
    /// past it the cache fetches alone. A live holder keeps its lease for
    /// as long as its fetch runs, so single flight holds for fetches
    /// shorter than this.
    pub fn store_wait_timeout(mut self, timeout: Duration) -> Self {
        self.store_wait_timeout = timeout.min(LONGEST_SPAN);
        self
    }

    /// Called whenever a key's token changes.
    pub fn on_change(mut self, hook: impl Fn(&TokenKey, &Token) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(hook));
        self
    }

    /// The most keys kept (default 10,000); past it, the least recently
    /// used go first (in a sweep off the request path, down to 15/16 of it).
    pub fn max_keys(mut self, max: u64) -> Self {
        self.max_keys = max;
        self
    }

    /// A key unused this long is dropped (default 1 h; measured on the
    /// cache's clock, to the second).
    pub fn idle_key_ttl(mut self, ttl: Duration) -> Self {
        self.idle_key_ttl = ttl.min(LONGEST_SPAN);
        self
    }

    /// Builds the cache.
    pub fn build(self) -> TokenCache {
        // Blocking resizes: an incremental one (papaya's default) moves on
        // only as keys are added, and until it ends every lookup searches
        // both tables. Keys of a token cache are added rarely, so one that
        // stops halfway would double every miss-path lookup for good; the
        // insert that grows the table (a first fetch, slow anyway) copies
        // it whole instead.
        let index: Arc<Index> = Arc::new(
            papaya::HashMap::builder()
                .hasher(Default::default())
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
        );

        TokenCache {
            inner: Arc::new(Inner {
                id: super::local::cache_id(),
                source: self.source,
                index,
                eviction: super::evict::Eviction::new(self.max_keys, self.idle_key_ttl),
                epoch: self.clock.now(),
                policy: self.policy,
                clock: self.clock,
                ticks: self.default_clock,
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
