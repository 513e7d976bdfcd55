//! One key: its state under a mutex, the hint the lock-free hit path
//! reads, and a caller's way through the state's decisions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use arc_swap::ArcSwapOption;

use super::Inner;
use super::attempt::{self, Fetch};
use super::entry::{CachedToken, Entry};
use super::state::{Decision, Demand, Gate, SlotState};
use crate::policy::after;
use crate::{TokenError, TokenKey};

/// The bit of [`Slot::generation`] that says the slot left the index (the
/// count below it would take centuries of publishing to reach it).
pub(crate) const RETIRED: u64 = 1 << 63;

/// One key's state. Readers only touch `current` and the gate; the mutex
/// guards the state machine and is never held across an await.
pub(crate) struct Slot {
    pub(crate) key: Arc<TokenKey>,
    /// Whether the fleet path has logged that the store's value for this
    /// key can't be used (logged once per key).
    pub(crate) unusable_logged: AtomicBool,
    /// Seconds since the cache's epoch when this key was last seen in use
    /// (refreshed at most once per `Eviction::touch_every`).
    pub(super) last_touch: AtomicU64,
    /// Milliseconds since the cache's epoch before which no background
    /// refresh starts (`u64::MAX`: not now). A copy of the state's
    /// [`Gate`], so hits past the refresh point check it without the lock.
    refresh_gate_ms: AtomicU64,
    /// A copy of the state's current token, for lock-free hits.
    current: ArcSwapOption<Entry>,
    /// Moves whenever `current` does; [`RETIRED`] set once the slot has
    /// left the index. Threads' memos (`local.rs`) check it with one load.
    generation: AtomicU64,
    state: Mutex<SlotState<Fetch>>,
}

impl Slot {
    pub(crate) fn new(key: Arc<TokenKey>, touch: u64) -> Self {
        Slot {
            key,
            unusable_logged: AtomicBool::new(false),
            last_touch: AtomicU64::new(touch),
            refresh_gate_ms: AtomicU64::new(0),
            current: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            state: Mutex::new(SlotState::default()),
        }
    }

    /// The current token, without the lock.
    pub(crate) fn current(&self) -> Option<Arc<Entry>> {
        self.current.load_full()
    }

    /// Read before [`current`](Self::current): a memo made from the two is
    /// valid while this stays the same.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The slot has left the index: no memo of it is valid any more.
    pub(crate) fn retire(&self) {
        self.generation.fetch_or(RETIRED, Ordering::Release);
    }

    pub(crate) fn refresh_gate_open(&self, now_ms: u64) -> bool {
        now_ms >= self.refresh_gate_ms.load(Ordering::Relaxed)
    }

    /// The second (since the cache's epoch) from which
    /// [`touch_due`](Self::touch_due) can next say yes.
    pub(crate) fn next_touch(&self, every: u64) -> u64 {
        self.last_touch
            .load(Ordering::Relaxed)
            .saturating_add(every)
    }

    /// Whether the key's touch is `every` seconds old at `secs`, and if so
    /// refreshes it (one caller wins).
    pub(crate) fn touch_due(&self, secs: u64, every: u64) -> bool {
        let last = self.last_touch.load(Ordering::Relaxed);
        secs >= last.saturating_add(every)
            && self
                .last_touch
                .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Runs `change` on the state under the lock, then publishes what the
    /// hit path reads: every transition goes through here.
    pub(crate) fn update<R>(
        self: &Arc<Self>,
        inner: &Inner,
        change: impl FnOnce(&mut SlotState<Fetch>) -> R,
    ) -> R {
        let mut state = lock(&self.state);
        let result = change(&mut state);
        self.publish(inner, &state);
        result
    }

    fn publish(&self, inner: &Inner, state: &SlotState<Fetch>) {
        let current = state.current();
        let shown = self.current.load();
        let same = match (current, shown.as_ref()) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.current.store(current.cloned());
            self.generation.fetch_add(1, Ordering::Release);
        }
        let gate_ms = match state.gate() {
            Gate::Open => 0,
            Gate::From(at) => inner.millis_since_epoch(at),
            Gate::Closed => u64::MAX,
        };
        self.refresh_gate_ms.store(gate_ms, Ordering::Relaxed);
    }

    /// A hit found the token past its refresh point and the gate open.
    pub(crate) fn refresh_due(self: &Arc<Self>, inner: &Arc<Inner>, now: Instant) {
        // Whoever holds the lock is already deciding; don't queue behind it.
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let mut pending = None;
        state.refresh_due(now, |start| {
            let (fetch, work) = attempt::prepare(inner, self, start);
            pending = Some(work);
            fetch
        });
        self.publish(inner, &state);
        drop(state);
        if let Some(work) = pending {
            inner.counters.background_refresh();
            crate::metrics::background_refresh();
            work.spawn();
        }
    }

    /// A server rejected `entry`: see [`SlotState::rejected`].
    pub(crate) fn rejected(self: &Arc<Self>, inner: &Inner, entry: &Arc<Entry>) -> bool {
        self.update(inner, |state| state.rejected(entry))
    }
}

impl Inner {
    /// A caller's way to a token: follows the state's decisions until one
    /// serves it or refuses it. It joins the attempt under way or starts
    /// one; after a transient failure it waits for the next attempt, as
    /// long as that starts within `max_wait` of the call.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        force: bool,
    ) -> Result<CachedToken, TokenError> {
        let wait_until = after(self.clock.now(), self.policy.max_wait);
        let mut waited = false;
        loop {
            let now = self.clock.now();
            let demand = Demand {
                now,
                force,
                wait_until,
            };
            let mut pending = None;
            let decision = slot.update(self, |state| {
                state.demand(demand, |start| {
                    let (fetch, work) = attempt::prepare(self, slot, start);
                    pending = Some(work);
                    fetch
                })
            });
            // The attempt runs on a task of its own, started only now that
            // the lock is released: a caller that stalls or is dropped
            // cannot hold up the others.
            if let Some(work) = pending {
                work.spawn();
            }
            let (id, fetch, joined) = match decision {
                // Another caller's attempt landed while we took the lock.
                Decision::Serve(entry) => return Ok(CachedToken::shared(entry, true)),
                Decision::Started(id, fetch) => (id, fetch, false),
                Decision::Join(id, fetch) => (id, fetch, true),
                Decision::WaitUntil(at) => {
                    if !waited {
                        waited = true;
                        self.counters.retry_wait();
                        crate::metrics::retry_wait();
                    }
                    self.clock.sleep(at.saturating_duration_since(now)).await;
                    continue;
                }
                Decision::Refuse(error) => {
                    self.counters.backoff_refusal();
                    crate::metrics::backoff_refusal();
                    return Err(error);
                }
            };
            self.counters.wait();
            crate::metrics::wait();
            match attempt::join(self, slot, id, fetch, joined).await {
                Ok(entry) => return Ok(CachedToken::shared(entry, false)),
                Err(error) if !error.is_transient() => return Err(error),
                // Transient: the next decision says wait or refuse.
                Err(_) => {}
            }
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// The sizes the memory per key (`BENCHMARKS.md`, issue 18) rests on:
    /// a field added to a slot, an entry or a key costs every key. Smaller
    /// is not always less RSS, though: a 104-byte `Slot` (its `Arc` in a
    /// 128-byte glibc chunk instead of 144, beside tokio's 128-aligned task
    /// cells) measured 2,100–2,300 B per key against 508 for 112 bytes,
    /// with the same live heap. Check `--memory-child` after any change.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn what_every_key_holds_stays_small() {
        assert!(size_of::<Slot>() <= 112, "Slot: {}", size_of::<Slot>());
        assert!(size_of::<Entry>() <= 136, "Entry: {}", size_of::<Entry>());
        assert!(size_of::<TokenKey>() <= 24);
        assert!(size_of::<crate::Token>() <= 72);
    }
}
