//! Time, injectable.
//!
//! Every rule of the cache (refresh point, hard expiry, backoff) is a
//! comparison against [`Clock::now`], and every wait of the cache and of
//! the sources (a caller waiting out a backoff, a retry, a device-flow
//! poll) goes through [`Clock::sleep`]: one clock for all of it. Tests
//! therefore control time exactly: either with tokio's paused time
//! ([`SystemClock`] reads and sleeps on tokio's clock) or, when real
//! sockets are involved and paused time would auto-advance under them,
//! with a [`ManualClock`] shared by the client and the test server.
//!
//! Deadlines that only bound how long something may take (a fetch's
//! timeout) run on tokio's timer, which paused-time tests control too.
//!
//! The hit path asks for [`Clock::coarse_now`]: a reading that may run a
//! few milliseconds ahead, never behind, and that [`SystemClock`] takes
//! from the kernel's tick-granular clock (`coarse.rs`) at a third of the
//! price of a precise one. With the default clock the hit path goes one
//! step further and compares that reading as a plain count (`Tick`)
//! against the same deadlines, without making an `Instant` of it.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;

mod coarse;

pub(crate) use coarse::Tick;

/// A source of monotonic and wall-clock time.
///
/// ```
/// use bearer_cache::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - t0, Duration::from_secs(5));
/// ```
pub trait Clock: Send + Sync + Debug + 'static {
    /// Monotonic now: all expiry arithmetic uses this.
    fn now(&self) -> Instant;
    /// Now or a little later, never earlier: a cheaper reading for checks
    /// that a deadline has not passed yet (the cache's hit path), which may
    /// then see a deadline a few milliseconds early. Decisions that act on
    /// time (starting a fetch, backing off) use [`now`](Self::now). The
    /// default is [`now`](Self::now) itself, so a clock of your own stays
    /// exact.
    ///
    /// ```
    /// use bearer_cache::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.coarse_now(), clock.now());
    /// ```
    fn coarse_now(&self) -> Instant {
        self.now()
    }
    /// Wall-clock now: used only to convert absolute expiry times
    /// (`expires_at`, a JWT `exp`, an HTTP-date `Retry-After`) into a
    /// remaining span.
    fn system_now(&self) -> SystemTime;
    /// Completes once `duration` has passed on this clock. The default
    /// waits on tokio's timer.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The default clock: tokio's monotonic clock (so `start_paused` tests
/// control it) and the system's wall clock.
///
/// Its [`coarse_now`](Clock::coarse_now), on the threads of a multi-thread
/// tokio runtime (where tokio's time can't be paused), is the kernel's
/// coarse monotonic clock (Linux `CLOCK_MONOTONIC_COARSE`, about 6 ns
/// against 17 ns for a precise reading) plus two of its ticks, so that it
/// is never behind [`now`](Clock::now) and at most three ticks (12 ms at
/// the usual 250 Hz) ahead. Elsewhere, and on other systems, it is
/// [`now`](Clock::now).
///
/// ```
/// use bearer_cache::{Clock, SystemClock};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 1)] async fn main() {
/// let before = SystemClock.now();
/// let coarse = tokio::spawn(async { SystemClock.coarse_now() }).await.unwrap();
/// assert!(coarse >= before);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[inline]
    fn coarse_now(&self) -> Instant {
        coarse::now().unwrap_or_else(|| self.now())
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to; cheap to clone, clones share time.
///
/// Both views (monotonic and wall) advance together. Its
/// [`sleep`](Clock::sleep) moves the clock forward to the sleeper's
/// wake-up time (if no one moved it past that already) and returns at once, so a test sharing the clock with its server sees a
/// device flow poll at its interval, or a cache wait out its backoff,
/// without waiting.
///
/// ```
/// use bearer_cache::{Clock, ManualClock};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.sleep(Duration::from_secs(5)).await;
/// assert_eq!(clock.now() - t0, Duration::from_secs(5));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    base: Instant,
    system_base: SystemTime,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock starting at the real current time.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A clock whose wall-clock view starts at `system_now`.
    pub fn starting_at(system_now: SystemTime) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                base: Instant::now(),
                system_base: system_now,
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .inner
            .offset_nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |at| {
                Some(at.saturating_add(nanos))
            });
    }

    /// How far this clock has been advanced since it was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.base + self.elapsed()
    }

    fn system_now(&self) -> SystemTime {
        self.inner.system_base + self.elapsed()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        // To the sleeper's wake-up time, not by its duration: callers that
        // wait for the same instant move the clock once between them.
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let target = self
            .inner
            .offset_nanos
            .load(Ordering::SeqCst)
            .saturating_add(nanos);
        self.inner.offset_nanos.fetch_max(target, Ordering::SeqCst);
        Box::pin(std::future::ready(()))
    }
}

/// A shared, type-erased clock.
pub type SharedClock = Arc<dyn Clock>;

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn coarse_now(&self) -> Instant {
        (**self).coarse_now()
    }

    fn system_now(&self) -> SystemTime {
        (**self).system_now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        (**self).sleep(duration)
    }
}
