//! Counters, kept with relaxed atomics and read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    hits: AtomicU64,
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
                CacheStats { $($field: self.$field.load(Relaxed),)* }
            }
        }
    };
}

bump! {
    hit => hits,
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
