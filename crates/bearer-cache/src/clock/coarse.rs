//! The kernel's coarse monotonic clock as a `std::time::Instant` that is
//! never behind a precise reading, for [`SystemClock::coarse_now`].
//!
//! `CLOCK_MONOTONIC_COARSE` is the precise monotonic clock as of the last
//! tick, read from the vDSO without touching the hardware counter: about
//! 6 ns here against 17 for `Instant::now`, on a hit path that costs about
//! 25 in all. std has no way to read it, hence `rustix` (a safe wrapper of
//! the same vDSO call), on Linux and Android only.
//!
//! **Why the result is never behind.** Both clocks count the same time
//! (the coarse one is the precise one sampled at each tick), so a coarse
//! reading `c` taken at true time `T` satisfies `T - tick < c ≤ T`. At
//! start we read `c₀`, then `I₀ = Instant::now()` (so `I₀ ≥ c₀`). A later
//! reading is mapped to `I₀ + (c - c₀) + 2 ticks`, which is above
//! `c + 2 ticks > T + tick`: never behind, by one spare tick for a tick
//! that comes late (a guest's virtual CPU descheduled), and at most three
//! ticks ahead. For a token cache that only means a deadline seen a few
//! milliseconds early.
//!
//! **Why only on a multi-thread runtime's threads.** [`SystemClock`] follows
//! tokio's clock, which tests pause and move by hours
//! (`tokio::time::advance`); the coarse clock knows nothing of that.
//! Pausing needs a current-thread runtime, so on a thread that runs tasks
//! of a multi-thread runtime (its workers and its blocking pool, which
//! live and die with it) tokio's time is the real one. A thread is
//! classified once, on its first reading; every other thread keeps the
//! precise reading. (A current-thread runtime started *inside* such a
//! thread, from `spawn_blocking` or `block_in_place`, with paused time, is
//! the one case this would get wrong.)
//!
//! [`SystemClock`]: super::SystemClock
//! [`SystemClock::coarse_now`]: super::SystemClock

use std::time::Instant;

/// `Some` reading that is never behind `Instant::now()` and at most three
/// ticks ahead, on a multi-thread runtime's threads; `None` elsewhere (the
/// caller then reads the precise clock).
#[inline]
pub(super) fn now() -> Option<Instant> {
    imp::now()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::cell::Cell;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use rustix::time::{ClockId, Timespec, clock_getres, clock_gettime};

    /// What a thread is, for this clock.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Thread {
        Unknown,
        /// Runs tasks of a multi-thread runtime: tokio's time is real here.
        RuntimeWorker,
        /// Anything else: tokio's time may be paused, or we can't tell.
        Other,
    }

    thread_local! {
        static THREAD: Cell<Thread> = const { Cell::new(Thread::Unknown) };
    }

    /// The mapping from coarse readings to `Instant`s, made once.
    struct Origin {
        instant: Instant,
        coarse_nanos: u64,
        /// Two ticks: added to every reading (see the module docs).
        ahead: Duration,
    }

    fn origin() -> &'static Origin {
        static ORIGIN: OnceLock<Origin> = OnceLock::new();
        ORIGIN.get_or_init(|| {
            let coarse_nanos = coarse_nanos();
            let instant = Instant::now();
            let tick = nanos(clock_getres(ClockId::MonotonicCoarse));
            // A tick is a few milliseconds; a kernel reporting nonsense
            // must not make readings absurdly late either.
            let tick = tick.clamp(1, 100_000_000);
            Origin {
                instant,
                coarse_nanos,
                ahead: Duration::from_nanos(2 * tick),
            }
        })
    }

    fn nanos(t: Timespec) -> u64 {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let sub = u64::try_from(t.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(sub)
    }

    fn coarse_nanos() -> u64 {
        nanos(clock_gettime(ClockId::MonotonicCoarse))
    }

    fn classify() -> Thread {
        let on_worker = tokio::task::try_id().is_some()
            && tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
                runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            });
        if on_worker {
            Thread::RuntimeWorker
        } else {
            Thread::Other
        }
    }

    #[inline]
    pub(super) fn now() -> Option<Instant> {
        let thread = THREAD
            .try_with(|thread| {
                if thread.get() == Thread::Unknown {
                    thread.set(classify());
                }
                thread.get()
            })
            .ok()?;
        if thread != Thread::RuntimeWorker {
            return None;
        }
        let origin = origin();
        let since = coarse_nanos().saturating_sub(origin.coarse_nanos);
        origin
            .instant
            .checked_add(Duration::from_nanos(since))?
            .checked_add(origin.ahead)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::time::Instant;

    #[inline]
    pub(super) fn now() -> Option<Instant> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::now;
    use crate::{Clock, SystemClock};

    /// On a worker: never behind a precise reading taken before it, and
    /// ahead of one taken after it by no more than its documented bound
    /// (three ticks; 100 ms covers any tick a kernel uses).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_worker_it_is_coarse_and_never_behind() {
        let readings = tokio::spawn(async {
            (0..10_000)
                .map(|_| {
                    let before = Instant::now();
                    let coarse = now();
                    (before, coarse, Instant::now())
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        for (before, coarse, after) in readings {
            let Some(coarse) = coarse else {
                // Not Linux: the precise reading is used instead.
                assert!(cfg!(not(any(target_os = "linux", target_os = "android"))));
                continue;
            };
            assert!(coarse >= before, "a coarse reading was behind");
            assert!(coarse <= after + Duration::from_millis(300));
        }
    }

    /// Where tokio's time may be paused, the precise (tokio) reading is
    /// used: a paused clock moved by an hour is seen at once.
    #[tokio::test(start_paused = true)]
    async fn paused_time_is_followed_exactly() {
        assert_eq!(now(), None);
        let before = SystemClock.coarse_now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let after = SystemClock.coarse_now();
        assert_eq!(after - before, Duration::from_secs(3600));
        assert_eq!(after, SystemClock.now());
    }

    /// `block_on`'s own thread is not a worker, whatever the runtime.
    #[test]
    fn block_on_threads_read_the_precise_clock() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let from_block_on = std::thread::spawn(move || runtime.block_on(async { now() }))
            .join()
            .unwrap();
        assert_eq!(from_block_on, None);
    }
}
