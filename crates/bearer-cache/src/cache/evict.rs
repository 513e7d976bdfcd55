//! Which keys the cache forgets: a key unused for `idle_key_ttl`, and past
//! `max_keys` the least recently used ones.
//!
//! "Used" is the slot's touch, which hits refresh at most once per
//! [`Eviction::touch_every`] (so the hit path writes nothing per request).
//! Forgetting happens in sweeps over the index, off the request path: when
//! a new key takes the cache past `max_keys` (down to 15/16 of it, so the
//! next such sweep is `max_keys / 16` new keys away), and every
//! [`interval`](Eviction::interval) for idle keys, started by a new key or
//! a touch. A swept slot is removed from the index and retired, so no
//! thread's memo serves it any more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::Index;
use super::slot::Slot;

/// The eviction settings and the sweeps' bookkeeping.
pub(crate) struct Eviction {
    max_keys: usize,
    idle_secs: u64,
    /// Seconds since the cache's epoch when the last sweep started.
    last_sweep: AtomicU64,
    sweeping: AtomicBool,
}

impl Eviction {
    pub(crate) fn new(max_keys: u64, idle: Duration) -> Self {
        Eviction {
            max_keys: usize::try_from(max_keys).unwrap_or(usize::MAX),
            idle_secs: idle.as_secs().max(1),
            last_sweep: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
        }
    }

    /// How often, in seconds, a key in use refreshes its touch: often
    /// enough that no key in use looks idle.
    pub(crate) fn touch_every(&self) -> u64 {
        (self.idle_secs / 2).clamp(1, 60)
    }

    /// Seconds between sweeps for idle keys.
    fn interval(&self) -> u64 {
        (self.idle_secs / 4).clamp(1, 60)
    }

    /// Whether a sweep is due with `keys` keys at `secs`.
    pub(crate) fn due(&self, keys: usize, secs: u64) -> bool {
        keys > self.max_keys
            || secs
                >= self
                    .last_sweep
                    .load(Ordering::Relaxed)
                    .saturating_add(self.interval())
    }

    /// One sweep of `index` at `secs` (a sweep already under way makes
    /// this one return at once).
    pub(crate) fn sweep(&self, index: &Index, secs: u64) {
        if self.sweeping.swap(true, Ordering::Acquire) {
            return;
        }
        // Cleared however the sweep ends (a panic while dropping a retired
        // token included), so one bad sweep cannot stop all later ones.
        let _done = Cleared(&self.sweeping);
        self.last_sweep.store(secs, Ordering::Relaxed);
        let index = index.pin();
        index.retain(|_, slot| {
            let keep = !is_idle(slot.last_touch(), secs, self.idle_secs);
            if !keep {
                slot.retire();
            }
            keep
        });
        let keys = index.len();
        if keys > self.max_keys {
            let keep = self.max_keys - self.max_keys / 16;
            let touches = index
                .iter()
                .map(|(_, slot)| (slot.last_touch(), Arc::clone(slot)))
                .collect();
            for slot in least_recent(touches, keys - keep) {
                // Only if the index still maps the key to this very slot.
                let _ = index.remove_if(&*slot.key, |_, current| Arc::ptr_eq(current, &slot));
                slot.retire();
            }
        }
    }
}

/// Clears the "sweep under way" flag when dropped.
struct Cleared<'a>(&'a AtomicBool);

impl Drop for Cleared<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Whether a key last touched at `last` is idle at `now` (seconds).
fn is_idle(last: u64, now: u64, idle_secs: u64) -> bool {
    now.saturating_sub(last) >= idle_secs
}

/// The `n` least recently touched of `touches` (touch, item).
fn least_recent<T>(mut touches: Vec<(u64, T)>, n: usize) -> impl Iterator<Item = T> {
    let n = n.min(touches.len());
    if n > 0 && n < touches.len() {
        touches.select_nth_unstable_by_key(n - 1, |(touch, _)| *touch);
    }
    touches.into_iter().take(n).map(|(_, item)| item)
}

/// Keeps a slot's touch current for the eviction policy (see the module).
impl Slot {
    pub(crate) fn last_touch(&self) -> u64 {
        self.last_touch.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenKey;

    #[test]
    fn idle_means_unused_for_the_whole_ttl() {
        assert!(!is_idle(100, 159, 60));
        assert!(is_idle(100, 160, 60));
        // A clock reading before the touch is not idleness.
        assert!(!is_idle(100, 50, 60));
    }

    #[test]
    fn the_least_recently_touched_go_first() {
        let touches = vec![(5, 'a'), (1, 'b'), (9, 'c'), (3, 'd'), (7, 'e')];
        let mut gone: Vec<char> = least_recent(touches.clone(), 2).collect();
        gone.sort_unstable();
        assert_eq!(gone, ['b', 'd']);
        assert_eq!(least_recent(touches.clone(), 0).count(), 0);
        assert_eq!(least_recent(touches, 9).count(), 5);
    }

    fn index_with(touches: &[u64]) -> Index {
        let index: Index = papaya::HashMap::with_hasher(Default::default());
        for (i, &touch) in touches.iter().enumerate() {
            let key = Arc::new(TokenKey::new().scope(format!("s{i}")));
            let slot = Arc::new(Slot::new(Arc::clone(&key), touch));
            index.pin().insert(key, slot);
        }
        index
    }

    #[test]
    fn a_sweep_drops_idle_keys_and_retires_them() {
        let index = index_with(&[0, 100, 200]);
        let kept = index
            .pin()
            .get(&TokenKey::new().scope("s2"))
            .cloned()
            .unwrap();
        let idle = index
            .pin()
            .get(&TokenKey::new().scope("s0"))
            .cloned()
            .unwrap();
        let eviction = Eviction::new(10, Duration::from_secs(150));
        eviction.sweep(&index, 200);
        assert_eq!(index.len(), 2);
        assert!(idle.generation() & super::super::slot::RETIRED != 0);
        assert_eq!(kept.generation() & super::super::slot::RETIRED, 0);
    }

    #[test]
    fn past_the_bound_the_least_recently_used_go() {
        let touches: Vec<u64> = (0..40).collect();
        let index = index_with(&touches);
        let eviction = Eviction::new(32, Duration::from_secs(3600));
        assert!(eviction.due(index.len(), 0));
        eviction.sweep(&index, 40);
        assert_eq!(index.len(), 30);
        let pinned = index.pin();
        assert!(pinned.get(&TokenKey::new().scope("s9")).is_none());
        assert!(pinned.get(&TokenKey::new().scope("s10")).is_some());
        assert!(!eviction.due(index.len(), 41));
    }
}
