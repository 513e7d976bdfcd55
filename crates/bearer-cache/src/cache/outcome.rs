//! An attempt's outcome, awaited by every caller that joined the attempt.
//!
//! Written here rather than taken from `futures`' `Shared`, which wakes its
//! waiters while holding the lock that each of them takes again when it
//! runs: woken as a stampede's ten thousand callers are, the first to run
//! stalled until the last had been woken. Here the outcome is stored
//! first and read without a lock, and waiters are woken after the lock is
//! released, so the first woken finish while the rest are being woken.
//!
//! It also holds the attempt's timer, on the attempt's runtime: when a
//! source blocks its thread, the attempt's own timeout can't fire, and the
//! callers on that runtime are released by this one instead of each
//! keeping a timer of its own (see `attempt.rs`).

use std::future::Future;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use futures::task::{ArcWake, waker_ref};
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

use super::entry::Entry;
use super::slot::lock;
use crate::TokenError;

/// What an attempt's callers get.
pub(crate) type Outcome = Result<Arc<Entry>, TokenError>;

/// How many waiters are woken from the announcing thread; the rest are
/// woken from a blocking thread. Woken from a worker, a crowd overflows its
/// local run queue (256 tasks), which moves the oldest half, the callers
/// that have waited longest, to the back of the runtime's queue; woken from
/// a blocking thread, they queue in the order they came. The first ones
/// start at once, while that thread is still being woken.
const CROWD: usize = 128;

/// One attempt's outcome, once in, and its waiters until then.
pub(crate) struct Announcement {
    outcome: OnceLock<Outcome>,
    waiting: Mutex<Waiting>,
}

struct Waiting {
    /// One per waiter, by the index it was given; `None` once it left.
    wakers: Vec<Option<Waker>>,
    timer: Timer,
}

/// The attempt's deadline, as a timer of the attempt's runtime.
enum Timer {
    /// Started by the first caller to wait on it: an attempt nobody joins
    /// (a background refresh, or a first fetch with one caller, which
    /// keeps a timer of its own) puts nothing more in the timer wheel.
    Due(Handle, Instant),
    /// Held for as long as it should fire; its waker announces.
    Running { _timer: Pin<Box<Sleep>> },
    /// Fired, unusable, or no longer needed.
    Off,
}

impl Announcement {
    /// An announcement whose waiters are released at `deadline` on
    /// `runtime`'s timer if nothing was announced by then.
    pub(crate) fn new(runtime: Option<Handle>, deadline: Instant) -> Arc<Self> {
        Arc::new(Announcement {
            outcome: OnceLock::new(),
            waiting: Mutex::new(Waiting {
                // Made here, beside the announcement, rather than on the
                // first caller's first poll: the RSS per key of a cache
                // filled by first fetches (BENCHMARKS.md, issue 18) moved
                // by hundreds of bytes, from run to run, with where this
                // allocation fell among tokio's aligned task cells.
                wakers: Vec::with_capacity(4),
                timer: runtime.map_or(Timer::Off, |runtime| Timer::Due(runtime, deadline)),
            }),
        })
    }

    /// Announces `outcome` (the first announced stays) and wakes every
    /// waiter. Past the first [`CROWD`], from a blocking thread; if the
    /// runtime drops that job unrun (it is shutting down), they are woken
    /// all the same.
    pub(crate) fn announce(&self, outcome: Outcome) {
        let _ = self.outcome.set(outcome);
        let (wakers, timer) = {
            let mut waiting = lock(&self.waiting);
            (
                mem::take(&mut waiting.wakers),
                mem::replace(&mut waiting.timer, Timer::Off),
            )
        };
        // Its waker points back here: dropped, nothing holds this any more.
        drop(timer);
        let mut wake = WakeAll(wakers);
        if wake.0.len() > CROWD {
            if let Ok(runtime) = Handle::try_current() {
                // The first, who came first, here and now; the rest from a
                // blocking thread.
                for waker in wake.0[..CROWD].iter_mut().filter_map(Option::take) {
                    waker.wake();
                }
                drop(runtime.spawn_blocking(move || drop(wake)));
            }
        }
    }

    /// Waits for the outcome, on the attempt's timer if `on_timer`,
    /// otherwise on one the caller keeps itself. Takes the caller's handle
    /// rather than another: one count less to write as each waiter leaves.
    pub(crate) fn wait(self: Arc<Self>, on_timer: bool) -> Wait {
        Wait {
            announcement: self,
            index: None,
            on_timer,
        }
    }

    /// The number of callers waiting.
    #[cfg(test)]
    fn waiters(&self) -> usize {
        lock(&self.waiting).wakers.iter().flatten().count()
    }
}

/// The attempt's timer fired (or its runtime shut down): the attempt is
/// lost, and its waiters are released.
impl ArcWake for Announcement {
    fn wake_by_ref(announcement: &Arc<Self>) {
        announcement.announce(Err(TokenError::Interrupted));
    }
}

impl Timer {
    /// What starting it needs, if it is due to start.
    fn take_due(&mut self) -> Option<(Handle, Instant)> {
        match mem::replace(self, Timer::Off) {
            Timer::Due(runtime, deadline) => Some((runtime, deadline)),
            running => {
                *self = running;
                None
            }
        }
    }
}

/// Starts the attempt's timer on `runtime`, to announce the attempt lost
/// at `deadline`; `None` if it has fired already (and announced) or can't
/// be made: a runtime without timers, or one shut down, which dropped the
/// attempt and so announced.
fn start_timer(
    runtime: &Handle,
    deadline: Instant,
    announcement: &Arc<Announcement>,
) -> Option<Pin<Box<Sleep>>> {
    let waker = waker_ref(announcement);
    let started = catch_unwind(AssertUnwindSafe(|| {
        let _on = runtime.enter();
        let mut timer = Box::pin(tokio::time::sleep_until(deadline));
        let fired = timer
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        (!fired).then_some(timer)
    }));
    match started {
        Ok(Some(timer)) => Some(timer),
        Ok(None) => {
            announcement.announce(Err(TokenError::Interrupted));
            None
        }
        Err(_) => None,
    }
}

/// Wakes the wakers it holds when dropped.
struct WakeAll(Vec<Option<Waker>>);

impl Drop for WakeAll {
    fn drop(&mut self) {
        for waker in self.0.drain(..).flatten() {
            waker.wake();
        }
    }
}

/// One caller's wait for an [`Announcement`].
pub(crate) struct Wait {
    announcement: Arc<Announcement>,
    /// Where this waiter's waker is, once it has one.
    index: Option<usize>,
    /// Whether it relies on the attempt's timer (and starts it).
    on_timer: bool,
}

impl Future for Wait {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        if let Some(outcome) = this.announcement.outcome.get() {
            this.index = None;
            return Poll::Ready(outcome.clone());
        }
        let mut waiting = lock(&this.announcement.waiting);
        // `announce` stores the outcome before it takes the wakers, under
        // this lock: none stored now means the wakers are still here.
        if let Some(outcome) = this.announcement.outcome.get() {
            this.index = None;
            return Poll::Ready(outcome.clone());
        }
        match this.index.and_then(|i| waiting.wakers.get_mut(i)) {
            Some(Some(waker)) => waker.clone_from(cx.waker()),
            _ => {
                this.index = Some(waiting.wakers.len());
                waiting.wakers.push(Some(cx.waker().clone()));
            }
        }
        let due = if this.on_timer {
            waiting.timer.take_due()
        } else {
            None
        };
        drop(waiting);
        // Started outside the lock, which its waker takes.
        if let Some((runtime, deadline)) = due {
            if let Some(timer) = start_timer(&runtime, deadline, &this.announcement) {
                let mut waiting = lock(&this.announcement.waiting);
                // Not announced yet, `announce` will take it; announced,
                // it is dropped here.
                if this.announcement.outcome.get().is_none() {
                    waiting.timer = Timer::Running { _timer: timer };
                }
            }
        }
        match this.announcement.outcome.get() {
            Some(outcome) => {
                this.index = None;
                Poll::Ready(outcome.clone())
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        let Some(index) = self.index else {
            return;
        };
        if self.announcement.outcome.get().is_none() {
            let mut waiting = lock(&self.announcement.waiting);
            if let Some(waker) = waiting.wakers.get_mut(index) {
                *waker = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn every_waiter_gets_the_outcome_and_a_late_one_too() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let waiters: Vec<_> = (0..300)
            .map(|_| tokio::spawn(Arc::clone(&announcement).wait(true)))
            .collect();
        while announcement.waiters() < 300 {
            tokio::task::yield_now().await;
        }
        announcement.announce(Err(TokenError::SourcePanicked));
        announcement.announce(Err(TokenError::Interrupted));
        for waiter in waiters {
            let outcome = waiter.await.unwrap();
            assert!(
                matches!(outcome, Err(TokenError::SourcePanicked)),
                "{:?}",
                outcome.as_ref().err()
            );
        }
        let late = Arc::clone(&announcement).wait(true).await;
        assert!(
            matches!(late, Err(TokenError::SourcePanicked)),
            "the first stays"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_releases_the_waiters_as_interrupted() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let announcement = Announcement::new(Some(Handle::current()), deadline);
        let outcome = Arc::clone(&announcement).wait(true).await;
        assert!(
            matches!(outcome, Err(TokenError::Interrupted)),
            "{:?}",
            outcome.as_ref().err()
        );
        assert_eq!(Instant::now(), deadline);
        assert_eq!(
            Arc::strong_count(&announcement),
            1,
            "the timer's waker let go"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_leaves_is_not_woken_and_frees_its_place() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let mut leaving = Arc::clone(&announcement).wait(true);
        let staying = tokio::spawn(Arc::clone(&announcement).wait(true));
        assert!(
            futures::poll!(Pin::new(&mut leaving)).is_pending(),
            "nothing announced"
        );
        while announcement.waiters() < 2 {
            tokio::task::yield_now().await;
        }
        drop(leaving);
        assert_eq!(announcement.waiters(), 1);
        announcement.announce(Err(TokenError::SourcePanicked));
        assert!(staying.await.unwrap().is_err());
        assert_eq!(Arc::strong_count(&announcement), 1, "nothing holds it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_crowd_is_woken_from_a_blocking_thread() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let waiters: Vec<_> = (0..CROWD + 1)
            .map(|_| tokio::spawn(Arc::clone(&announcement).wait(true)))
            .collect();
        while announcement.waiters() <= CROWD {
            tokio::task::yield_now().await;
        }
        announcement.announce(Err(TokenError::SourcePanicked));
        for waiter in waiters {
            assert!(waiter.await.unwrap().is_err());
        }
    }

    /// What the blocking thread's job holds wakes its waiters even when the
    /// job is dropped unrun (its runtime shutting down).
    #[test]
    fn wakers_handed_off_are_woken_even_if_the_job_never_runs() {
        #[derive(Default)]
        struct Count(std::sync::atomic::AtomicUsize);
        impl ArcWake for Count {
            fn wake_by_ref(count: &Arc<Self>) {
                count.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count::default());
        let waker = || Some(futures::task::waker(Arc::clone(&count)));
        drop(WakeAll(vec![waker(), None, waker()]));
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
