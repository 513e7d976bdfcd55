//! The kernel's coarse monotonic clock as a `std::time::Instant` that is
//! never behind a precise reading, for [`SystemClock::coarse_now`], and as
//! a [`Tick`], the same reading as nanoseconds past an origin, which the
//! cache's hit path compares with its deadlines' ticks (an `Instant` costs
//! a normalising addition to make; a tick is one subtraction).
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

use std::time::{Duration, Instant};

/// `Some` reading that is never behind `Instant::now()` and at most three
/// ticks ahead, on a multi-thread runtime's threads; `None` elsewhere (the
/// caller then reads the precise clock).
#[inline]
pub(super) fn now() -> Option<Instant> {
    Tick::now()?.instant()
}

/// A coarse reading kept as nanoseconds past the clock's origin. Compared
/// with [`Tick::of`] a deadline, it answers what the `Instant` it stands
/// for would, without making one: the hit path's whole use of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(u64);

impl Tick {
    /// A reading, on a multi-thread runtime's threads (see [`now`]).
    #[inline]
    pub(crate) fn now() -> Option<Tick> {
        imp::nanos().map(Tick)
    }

    /// The reading `deadline` stands at: a reading is before `deadline`
    /// exactly when it is below this (and none is below 0, where a
    /// deadline before the origin lands).
    pub(crate) fn of(deadline: Instant) -> Tick {
        let past = deadline.saturating_duration_since(imp::origin_instant());
        Tick(u64::try_from(past.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The instant this reading stands for (`None` past the end of time).
    pub(crate) fn instant(self) -> Option<Instant> {
        imp::origin_instant().checked_add(Duration::from_nanos(self.0))
    }
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
        /// The precise reading at the start, two ticks on (see the module
        /// docs), so a reading costs one addition.
        ahead: Instant,
        /// The coarse reading at the start; `None` if it made no sense,
        /// and then every reading is precise.
        coarse: Option<Timespec>,
    }

    fn origin() -> &'static Origin {
        static ORIGIN: OnceLock<Origin> = OnceLock::new();
        ORIGIN.get_or_init(|| {
            let coarse = Some(clock_gettime(ClockId::MonotonicCoarse)).filter(|t| valid(*t));
            let instant = Instant::now();
            let tick = Some(clock_getres(ClockId::MonotonicCoarse))
                .filter(|t| valid(*t) && t.tv_sec == 0)
                .map_or(u64::MAX, |t| t.tv_nsec.unsigned_abs());
            // A tick is a few milliseconds; a kernel reporting nonsense
            // must not make readings absurdly late either.
            let tick = tick.clamp(1, 100_000_000);
            Origin {
                ahead: instant + Duration::from_nanos(2 * tick),
                coarse,
            }
        })
    }

    /// Whether a reading is one a monotonic clock gives.
    #[inline]
    fn valid(t: Timespec) -> bool {
        t.tv_sec >= 0 && (0..1_000_000_000).contains(&t.tv_nsec)
    }

    /// `now - start` in nanoseconds, for valid readings; `None` if
    /// negative. No division on the hit path.
    #[inline]
    fn nanos_since(now: Timespec, start: Timespec) -> Option<u64> {
        if !valid(now) {
            return None;
        }
        let secs = u64::try_from(now.tv_sec.checked_sub(start.tv_sec)?).ok()?;
        secs.checked_mul(1_000_000_000)?
            .checked_add_signed(now.tv_nsec - start.tv_nsec)
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

    /// Nanoseconds past the origin, on a runtime worker.
    #[inline]
    pub(super) fn nanos() -> Option<u64> {
        let thread = THREAD.try_with(Cell::get).ok()?;
        if thread != Thread::RuntimeWorker {
            return first_look(thread);
        }
        // Never negative: the coarse clock is monotonic too.
        nanos_since(clock_gettime(ClockId::MonotonicCoarse), origin().coarse?)
    }

    /// The instant a reading of 0 stands for.
    pub(super) fn origin_instant() -> Instant {
        origin().ahead
    }

    #[cfg(test)]
    #[test]
    fn differences_borrow_and_never_go_negative() {
        let t = |tv_sec, tv_nsec| Timespec { tv_sec, tv_nsec };
        assert_eq!(
            nanos_since(t(5, 100), t(3, 900_000_000)),
            Some(1_100_000_100)
        );
        assert_eq!(nanos_since(t(3, 900), t(3, 900)), Some(0));
        assert_eq!(nanos_since(t(3, 899), t(3, 900)), None);
        assert_eq!(nanos_since(t(2, 0), t(3, 0)), None);
        assert_eq!(
            nanos_since(t(4, 1_000_000_000), t(3, 0)),
            None,
            "not a reading"
        );
        assert_eq!(nanos_since(t(-1, 0), t(0, 0)), None, "not a reading");
    }

    /// A thread's first reading classifies it; every other thread's
    /// readings are precise.
    #[cold]
    fn first_look(thread: Thread) -> Option<u64> {
        if thread == Thread::Unknown {
            let _ = THREAD.try_with(|t| t.set(classify()));
            if THREAD.try_with(Cell::get).ok()? == Thread::RuntimeWorker {
                return nanos();
            }
        }
        None
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    #[inline]
    pub(super) fn nanos() -> Option<u64> {
        None
    }

    pub(super) fn origin_instant() -> Instant {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Tick, now};
    use crate::{Clock, SystemClock};

    /// A tick is below a deadline's tick exactly when the instant it stands
    /// for is before the deadline: the hit path decides on ticks alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn ticks_compare_as_the_instants_they_stand_for() {
        let ticks = tokio::spawn(async { (0..1000).map(|_| Tick::now()).collect::<Vec<_>>() })
            .await
            .unwrap();
        let linux = cfg!(any(target_os = "linux", target_os = "android"));
        let nano = Duration::from_nanos(1);
        for tick in ticks {
            assert_eq!(tick.is_some(), linux);
            let Some(tick) = tick else { continue };
            let at = tick.instant().expect("within the end of time");
            for deadline in [at - nano, at, at + nano, at + Duration::from_secs(3600)] {
                assert_eq!(tick < Tick::of(deadline), at < deadline);
            }
        }
        // A deadline before the origin lands at 0, below every reading.
        let origin = Tick(0).instant().expect("the origin");
        assert_eq!(Tick::of(origin), Tick(0));
        if let Some(before) = origin.checked_sub(Duration::from_secs(60)) {
            assert_eq!(Tick::of(before), Tick(0));
        }
        assert!(Tick::of(origin + nano) > Tick(0));
    }

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
        let linux = cfg!(any(target_os = "linux", target_os = "android"));
        for (before, coarse, after) in readings {
            // Elsewhere the precise reading is used instead.
            assert_eq!(coarse.is_some(), linux);
            let Some(coarse) = coarse else { continue };
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
