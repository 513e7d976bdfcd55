//! Each thread's memo of the keys it looked up last, so that a repeated
//! hit writes nothing another thread writes.
//!
//! A memo names a cache, a key, the key's slot, the slot's generation when
//! the memo was made, and this thread's own handle on the entry that was
//! current then ([`Local`]). A hit checks the memo with one atomic load: the
//! slot's generation, which moves whenever the slot publishes another
//! entry and is retired for good when the slot leaves the index. The handle
//! it hands out is this thread's, so its reference count (and the header
//! value derived from it) lives on a line no other thread writes.
//!
//! The memo is small and direct-mapped; a key takes a way only on its
//! second lookup in a row there, so that a scan over many keys neither
//! churns it nor allocates.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::entry::{Entry, Local};
use super::slot::{RETIRED, Slot};
use crate::TokenKey;
use crate::clock::Tick;

const WAYS: usize = 16;

struct Way {
    cache: u64,
    hash: u64,
    /// The key last seen here without a memo: it gets one on its next look.
    candidate: u64,
    memo: Option<Memo>,
}

pub(crate) struct Memo {
    pub(crate) slot: Arc<Slot>,
    generation: u64,
    pub(crate) local: Arc<Local>,
    /// Before this instant the eviction policy can't be due to hear of
    /// the key (see `Inner::touch_due`): the hit skips asking the slot.
    pub(crate) touch_at: Cell<Instant>,
    /// Before this instant a hit has nothing to decide, only to count:
    /// the token is short of its refresh point and its expiry, and the
    /// touch is not due. A copy on this thread's line, so such a hit
    /// reads nothing of the entry's.
    quiet_until: Cell<Instant>,
    /// The same instant as a coarse reading.
    quiet_tick: Cell<Tick>,
}

/// What a quiet hit is checked against: a coarse reading where the cache's
/// clock allows one (it is the default clock), else an instant.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Now {
    Tick(Tick),
    At(Instant),
}

impl Memo {
    /// Moves [`quiet_until`](Self::quiet_until) to what the entry's
    /// deadlines and the touch allow now.
    pub(crate) fn settle(&self) {
        let deadlines = &self.local.entry.deadlines;
        let quiet = deadlines
            .refresh_at
            .min(deadlines.expires_at)
            .min(self.touch_at.get());
        self.quiet_until.set(quiet);
        self.quiet_tick.set(Tick::of(quiet));
    }
}

thread_local! {
    static MEMO: RefCell<[Way; WAYS]> = const {
        RefCell::new([const { Way { cache: 0, hash: 0, candidate: 0, memo: None } }; WAYS])
    };
}

/// A number for each cache, never reused, so a memo can't outlive its
/// cache into another one at the same address.
pub(crate) fn cache_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn way(cache: u64, hash: u64) -> usize {
    let mixed = (hash ^ cache.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_right(29);
    (mixed as usize) & (WAYS - 1)
}

impl Way {
    /// This way's memo, if it is of `key` in `cache` and still holds the
    /// slot's current entry.
    #[inline]
    fn current(&self, cache: u64, hash: u64, key: &TokenKey) -> Option<&Memo> {
        let memo = self.memo.as_ref()?;
        // A retired slot's generation has the bit set, so it differs too.
        let current = self.cache == cache
            && self.hash == hash
            && memo.slot.generation() == memo.generation
            && *memo.slot.key == *key;
        current.then_some(memo)
    }
}

/// This thread's handle on `key`'s token in `cache` when its memo holds the
/// slot's current entry and nothing is due at `now` (see
/// [`Memo::quiet_until`]): the whole of a repeated hit but the counting.
/// `None` sends the caller to [`with_memo`], which decides the rest.
#[inline]
pub(crate) fn quiet_hit(cache: u64, key: &TokenKey, now: Now) -> Option<Arc<Local>> {
    let hash = key.memo_hash();
    MEMO.try_with(|ways| {
        let ways = ways.try_borrow().ok()?;
        let memo = ways[way(cache, hash)].current(cache, hash, key)?;
        let quiet = match now {
            Now::Tick(tick) => tick < memo.quiet_tick.get(),
            Now::At(instant) => instant < memo.quiet_until.get(),
        };
        quiet.then(|| Arc::clone(&memo.local))
    })
    .ok()
    .flatten()
}

/// Runs `serve` on this thread's memo of `key` in `cache` if the memo still
/// holds the slot's current entry; `None` when there is none (or the memo
/// is unreachable: re-entered, or the thread is ending).
#[inline]
pub(crate) fn with_memo<R>(
    cache: u64,
    key: &TokenKey,
    serve: impl FnOnce(&Memo) -> Option<R>,
) -> Option<Option<R>> {
    let hash = key.memo_hash();
    MEMO.try_with(|ways| {
        let mut ways = ways.try_borrow_mut().ok()?;
        let way = &mut ways[way(cache, hash)];
        if let Some(memo) = way.current(cache, hash, key) {
            return Some(serve(memo));
        }
        let retired = way
            .memo
            .as_ref()
            .is_some_and(|memo| memo.slot.generation() & RETIRED != 0);
        if retired {
            // The key left the cache: let its token go now, not when this
            // way is next reused.
            way.memo = None;
        }
        None
    })
    .ok()
    .flatten()
}

/// Offers this thread's memo `entry`, current in `slot` at `generation`.
/// Returns the thread's handle if the key earned a memo (its second look
/// in a row at this way, or a newer entry for the key already memoized).
pub(crate) fn offer(
    cache: u64,
    slot: &Arc<Slot>,
    generation: u64,
    entry: &Arc<Entry>,
    now: Instant,
) -> Option<Arc<Local>> {
    let hash = slot.key.memo_hash();
    MEMO.try_with(|ways| {
        let mut ways = ways.try_borrow_mut().ok()?;
        let way = &mut ways[way(cache, hash)];
        let same_key = way.cache == cache && way.hash == hash && way.memo.is_some();
        if !same_key && way.candidate != hash {
            way.candidate = hash;
            return None;
        }
        let local = Arc::new(Local::new(Arc::clone(entry)));
        *way = Way {
            cache,
            hash,
            candidate: 0,
            memo: Some(Memo {
                slot: Arc::clone(slot),
                generation,
                local: Arc::clone(&local),
                touch_at: Cell::new(now),
                // The first hit asks the slot about the touch, then settles.
                quiet_until: Cell::new(now),
                quiet_tick: Cell::new(Tick::of(now)),
            }),
        };
        Some(local)
    })
    .ok()
    .flatten()
}
