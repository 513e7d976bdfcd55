//! Counters, kept with relaxed atomics and read as a snapshot. Hits, the
//! one counter every request bumps, are striped per thread so that no two
//! threads write the same cache line on the hit path.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// What the cache has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache without waiting.
    pub hits: u64,
    /// Lookups that found no usable token.
    pub misses: u64,
    /// Requests made to the token source.
    pub fetches: u64,
    /// Refreshes started ahead of expiry, in the background.
    pub background_refreshes: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Tokens invalidated after a server rejected them.
    pub invalidations: u64,
    /// Callers that waited on a fetch.
    pub waits: u64,
    /// Callers answered with the last error during backoff: a permanent
    /// failure, or a next attempt later than they would wait.
    pub backoff_refusals: u64,
    /// Callers that waited for the next attempt after a failed one.
    pub retry_waits: u64,
    /// Tokens taken from the shared store instead of the source.
    pub store_hits: u64,
    /// Store calls that failed or timed out.
    pub store_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: Striped,
    misses: AtomicU64,
    fetches: AtomicU64,
    background_refreshes: AtomicU64,
    failures: AtomicU64,
    invalidations: AtomicU64,
    waits: AtomicU64,
    backoff_refusals: AtomicU64,
    retry_waits: AtomicU64,
    store_hits: AtomicU64,
    store_errors: AtomicU64,
}

macro_rules! bump {
    ($($method:ident => $field:ident),* $(,)?) => {
        impl Counters {
            $(pub(crate) fn $method(&self) { self.$field.fetch_add(1, Relaxed); })*

            pub(crate) fn snapshot(&self) -> CacheStats {
                CacheStats { hits: self.hits.sum(), $($field: self.$field.load(Relaxed),)* }
            }
        }
    };
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.add_one();
    }
}

bump! {
    miss => misses,
    fetch => fetches,
    background_refresh => background_refreshes,
    failure => failures,
    invalidation => invalidations,
    wait => waits,
    backoff_refusal => backoff_refusals,
    retry_wait => retry_waits,
    store_hit => store_hits,
    store_error => store_errors,
}

/// A counter split over cache-line-sized stripes, summed when read. The
/// first threads to count (several per core) each own a stripe, which they
/// bump with a plain load and store: a single writer loses nothing and
/// needs no read-modify-write. Threads past those share other stripes,
/// round-robin, with atomic increments.
#[derive(Debug)]
struct Striped {
    /// Stripe `i` is written by thread number `i` only.
    owned: Box<[Padded]>,
    shared: Box<[Padded]>,
}

/// One stripe on a line of its own (128 bytes: adjacent-line prefetchers
/// pair 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// Shared stripes: threads past the owners are short-lived ones (a
/// blocking pool's), rarely many at once.
const SHARED_STRIPES: usize = 8;

impl Default for Striped {
    fn default() -> Self {
        // Room for a runtime's workers, its blocking threads and a few more
        // (128 bytes a stripe: 32 KiB at 64 cores).
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        let owned = cores.saturating_mul(4).clamp(16, 256);
        let stripes = |n| (0..n).map(|_| Padded::default()).collect();
        Striped {
            owned: stripes(owned),
            shared: stripes(SHARED_STRIPES),
        }
    }
}

impl Striped {
    fn add_one(&self) {
        let thread = thread_number();
        match self.owned.get(thread) {
            // This thread's own: nobody else writes it.
            Some(own) => own.0.store(own.0.load(Relaxed).wrapping_add(1), Relaxed),
            None => {
                self.shared[thread % SHARED_STRIPES].0.fetch_add(1, Relaxed);
            }
        }
    }

    fn sum(&self) -> u64 {
        self.owned
            .iter()
            .chain(self.shared.iter())
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(Relaxed)))
    }
}

/// A small number for the calling thread, handed out in order of first use.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    NUMBER
        .try_with(|n| {
            if n.get() == usize::MAX {
                n.set(NEXT.fetch_add(1, Relaxed));
            }
            n.get()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_hits_sum_over_threads() {
        let counters = Counters::default();
        std::thread::scope(|s| {
            for _ in 0..5 {
                s.spawn(|| (0..1000).for_each(|_| counters.hit()));
            }
        });
        counters.miss();
        let stats = counters.snapshot();
        assert_eq!((stats.hits, stats.misses), (5000, 1));
    }

    /// More threads than stripes: those past the owners share stripes
    /// with atomic increments, and no count is lost.
    #[test]
    fn threads_beyond_the_stripes_lose_no_count() {
        let counters = Counters::default();
        let threads = counters.hits.owned.len() * 3;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| (0..1000).for_each(|_| counters.hit()));
            }
        });
        assert_eq!(counters.snapshot().hits, threads as u64 * 1000);
    }
}
