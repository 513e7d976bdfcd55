//! A [`TokenStore`] inside one process, for several caches (several
//! clients, several sources) that should share tokens without Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{Clock, Lease, SharedClock, StoreError, StoredToken, SystemClock, TokenStore};

/// An in-process [`TokenStore`]: leases, fencing and wake-ups behave as a
/// shared store's do, so caches sharing it fetch once per key between them.
///
/// ```
/// use bearer_cache::{MemoryStore, StaticSource, TokenCache, TokenKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::new();
/// let a = TokenCache::builder(StaticSource::new("t")).store(store.clone()).build();
/// let b = TokenCache::builder(StaticSource::new("t")).store(store.clone()).build();
/// a.get(&TokenKey::default()).await.unwrap();
/// b.get(&TokenKey::default()).await.unwrap();
/// assert_eq!(a.stats().fetches + b.stats().fetches, 1);
/// assert_eq!(b.stats().store_hits, 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    clock: SharedClock,
    state: Mutex<State>,
    saved: Notify,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<String, (StoredToken, Instant)>,
    leases: HashMap<String, (String, Instant)>,
    next_fence: u64,
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store whose entries and leases expire by `clock`.
    pub fn with_clock(clock: impl Clock) -> Self {
        MemoryStore {
            inner: Arc::new(Shared {
                clock: Arc::new(clock),
                state: Mutex::new(State::default()),
                saved: Notify::new(),
            }),
        }
    }

    /// How many keys hold a live token.
    pub fn len(&self) -> usize {
        let now = self.inner.clock.now();
        let state = self.inner.lock();
        state.tokens.values().filter(|(_, exp)| now < *exp).count()
    }

    /// Whether no key holds a live token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn leased(&self, key: &str) -> bool {
        let now = self.clock.now();
        self.lock()
            .leases
            .get(key)
            .is_some_and(|(_, exp)| now < *exp)
    }

    fn live_token(&self, key: &str) -> Option<StoredToken> {
        let now = self.clock.now();
        let state = self.lock();
        state
            .tokens
            .get(key)
            .filter(|(_, exp)| now < *exp)
            .map(|(t, _)| t.clone())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self, key: &str) -> Result<Option<StoredToken>, StoreError> {
        Ok(self.inner.live_token(key))
    }

    async fn save(
        &self,
        key: &str,
        token: &StoredToken,
        ttl: Duration,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        {
            let mut state = self.inner.lock();
            if let Some(lease) = lease {
                let held = state
                    .leases
                    .get(key)
                    .is_some_and(|(fence, exp)| *fence == lease.fence && now < *exp);
                if !held {
                    // Fenced out, as a shared store refuses it: the lease's
                    // current holder writes the key's token.
                    tracing::info!(target: "bearer_cache", "lease lost before saving; the save was refused");
                    return Ok(());
                }
            }
            state
                .tokens
                .insert(key.to_owned(), (token.clone(), now + ttl));
        }
        self.inner.saved.notify_waiters();
        Ok(())
    }

    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let now = self.inner.clock.now();
        let mut state = self.inner.lock();
        if state.leases.get(key).is_some_and(|(_, exp)| now < *exp) {
            return Ok(None);
        }
        state.next_fence += 1;
        let fence = state.next_fence.to_string();
        state
            .leases
            .insert(key.to_owned(), (fence.clone(), now + ttl));
        Ok(Some(Lease { fence }))
    }

    async fn renew(&self, key: &str, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        let mut state = self.inner.lock();
        match state.leases.get_mut(key) {
            Some((fence, exp)) if *fence == lease.fence && now < *exp => {
                *exp = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, lease: &Lease) -> Result<(), StoreError> {
        let released = {
            let mut state = self.inner.lock();
            let held = state
                .leases
                .get(key)
                .is_some_and(|(fence, _)| *fence == lease.fence);
            if held {
                state.leases.remove(key);
            }
            held
        };
        if released {
            // A holder that gives up early (its fetch failed) lets the
            // waiters take over at once.
            self.inner.saved.notify_waiters();
        }
        Ok(())
    }

    async fn wait_for_update(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<StoredToken>, StoreError> {
        let before = self.inner.live_token(key);
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400));
        loop {
            // Register before checking, so a save in between is not missed.
            let saved = self.inner.saved.notified();
            let now = self.inner.live_token(key);
            if (now.is_some() && now != before) || !self.inner.leased(key) {
                return Ok(now);
            }
            if tokio::time::timeout_at(deadline, saved).await.is_err() {
                return Ok(self.inner.live_token(key));
            }
        }
    }
}
