//! An attempt's outcome, awaited by every caller that joined the attempt.
//!
//! Written here rather than taken from `futures`' `Shared`, which wakes its
//! waiters while holding the lock that each of them takes again when it
//! runs: woken as a stampede's ten thousand callers are, the first to run
//! stalled until the last had been woken. Here the outcome is stored
//! first and read without a lock, and waiters are woken after the lock is
//! released.
//!
//! On a multi-thread runtime a crowd is woken as a relay, in the order it
//! came: the announcement wakes the first few (its lanes, see [`waking`]),
//! and each waiter, as it takes the outcome (or leaves), wakes the next
//! one not yet woken. Woken all at once, a crowd sits in the runtime's
//! queues in batches, and a worker the system preempts holds its batch
//! back while the rest finish: measured in a stampede on 2 cores, 60 to
//! 280 of the callers that came early finished last, which is what its
//! p99 is made of. A relay holds back no more than a preempted worker's
//! few lanes. So that a waiter that
//! is woken but never polled again can't stall the relay, a watch on the
//! runtime's timer wakes the next lanes whenever the relay makes no
//! progress for [`STALL`], twice as many at each stall. Elsewhere (a
//! current-thread runtime, no runtime) a crowd is woken at once.
//!
//! It also holds the attempt's timer, on the attempt's runtime: when a
//! source blocks its thread, the attempt's own timeout can't fire, and the
//! callers on that runtime are released by this one instead of each
//! keeping a timer of its own (see `attempt.rs`). The announcement takes
//! the timer's place: from then on they are woken as above.

use std::future::Future;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::task::{ArcWake, waker_ref};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::{Instant, Sleep};

use super::entry::Entry;
use super::slot::lock;
use crate::TokenError;

/// What an attempt's callers get.
pub(super) type Outcome = Result<Arc<Entry>, TokenError>;

/// How a crowd of waiters is woken once the outcome is in.
enum Waking {
    /// Everyone at once, by the announcement.
    AllAtOnce,
    /// As a relay: `lanes` by the announcement, the rest by those before
    /// them, watched on `runtime`'s timer.
    Relay { runtime: Handle, lanes: usize },
}

/// How a crowd is woken when announced on `runtime`. As a relay only on a
/// multi-thread runtime: its workers are always driven, so the watch
/// always runs, and it is there that a preempted worker holds a batch
/// back. A current-thread runtime runs one queue in order anyway, and it
/// is driven only inside its `block_on`: a relay there would leave waiters
/// that don't run on it (another thread's `futures::executor::block_on`
/// in its context) behind turns that its queued tasks hold until it is
/// driven again.
///
/// Lanes: a few per worker, enough to keep every worker busy, few enough
/// that what a preempted worker holds back is a small part of a crowd (on
/// 2 cores, 8 lanes beat 16, 32 and 64 in stampede p99), and well below a
/// worker's local run queue (256 tasks, past which the oldest half, the
/// callers that have waited longest, would go to the back of the
/// runtime's queue).
fn waking(runtime: Option<Handle>) -> Waking {
    match runtime {
        Some(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            let lanes = lanes(runtime.metrics().num_workers());
            Waking::Relay { runtime, lanes }
        }
        _ => Waking::AllAtOnce,
    }
}

/// The relay's lanes on a runtime of `workers` (see [`waking`]).
fn lanes(workers: usize) -> usize {
    const PER_WORKER: usize = 4;
    workers.saturating_mul(PER_WORKER).clamp(MIN_LANES, 128)
}

/// The fewest lanes: a crowd no larger is woken at once, and no runtime is
/// looked up for it.
const MIN_LANES: usize = 8;

/// How long the relay may make no progress before the watch wakes more
/// waiters: long beside one waiter's turn (microseconds), short beside a
/// caller's patience.
const STALL: Duration = Duration::from_millis(5);

/// One attempt's outcome, once in, and its waiters until then.
pub(super) struct Announcement {
    outcome: OnceLock<Outcome>,
    waiting: Mutex<Waiting>,
}

struct Waiting {
    /// One per waiter, by the index it was given; `None` once it left or
    /// was woken.
    wakers: Vec<Option<Waker>>,
    /// Once announced: where the relay has reached (every waiter before
    /// this index was woken or left).
    next: usize,
    timer: Timer,
}

impl Waiting {
    /// The next `n` waiters not yet woken, taken off the list. All of
    /// them, the common case, takes the list itself: no allocation.
    fn take_next(&mut self, n: usize) -> Vec<Option<Waker>> {
        if self.wakers.len() - self.next <= n {
            return self.take_all();
        }
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n && self.next < self.wakers.len() {
            if let Some(waker) = self.wakers[self.next].take() {
                taken.push(Some(waker));
            }
            self.next += 1;
        }
        taken
    }

    /// Every waiter not yet woken: the list itself.
    fn take_all(&mut self) -> Vec<Option<Waker>> {
        self.next = 0;
        mem::take(&mut self.wakers)
    }

    /// The next waiter not yet woken, taken off the list.
    fn take_one(&mut self) -> Option<Waker> {
        while self.next < self.wakers.len() {
            self.next += 1;
            if let Some(waker) = self.wakers[self.next - 1].take() {
                return Some(waker);
            }
        }
        None
    }

    fn all_woken(&self) -> bool {
        self.next >= self.wakers.len()
    }
}

/// The attempt's deadline, as a timer of the attempt's runtime.
enum Timer {
    /// Started by the first caller that waits on the attempt's timer (a
    /// joiner on the attempt's runtime): an attempt nobody joins
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
    pub(super) fn new(runtime: Option<Handle>, deadline: Instant) -> Arc<Self> {
        Arc::new(Announcement {
            outcome: OnceLock::new(),
            waiting: Mutex::new(Waiting {
                // Made here, beside the announcement, rather than on the
                // first caller's first poll: the RSS per key of a cache
                // filled by first fetches (BENCHMARKS.md, issue 18) moved
                // by hundreds of bytes, from run to run, with where this
                // allocation fell among tokio's aligned task cells.
                wakers: Vec::with_capacity(4),
                next: 0,
                timer: runtime.map_or(Timer::Off, |runtime| Timer::Due(runtime, deadline)),
            }),
        })
    }

    /// Announces `outcome` (the first announced stays) and wakes every
    /// waiter: as a relay on a multi-thread runtime, otherwise all at once
    /// (see [`waking`]).
    pub(super) fn announce(self: &Arc<Self>, outcome: Outcome) {
        self.announce_by(outcome, || waking(Handle::try_current().ok()));
    }

    /// [`announce`](Self::announce), woken as `how` says if there are
    /// more waiters than [`MIN_LANES`] (asked only then).
    fn announce_by(self: &Arc<Self>, outcome: Outcome, how: impl FnOnce() -> Waking) {
        if self.outcome.set(outcome).is_err() {
            // Announced before: that announcement took the timer and the
            // waiters.
            return;
        }
        let (first, timer, relay) = {
            let mut waiting = lock(&self.waiting);
            let timer = mem::replace(&mut waiting.timer, Timer::Off);
            let crowd = waiting.wakers.len() - waiting.next > MIN_LANES;
            let (first, relay) = match crowd.then(how) {
                Some(Waking::Relay { runtime, lanes }) => {
                    let first = waiting.take_next(lanes);
                    let seen = waiting.next;
                    let relay = (!waiting.all_woken()).then_some((runtime, lanes, seen));
                    (first, relay)
                }
                Some(Waking::AllAtOnce) | None => (waiting.take_all(), None),
            };
            (first, timer, relay)
        };
        // Its waker points back here: dropped, only the watch (if any)
        // holds this any more.
        drop(timer);
        for waker in first.into_iter().flatten() {
            waker.wake();
        }
        if let Some((runtime, lanes, seen)) = relay {
            self.watch(&runtime, lanes, seen);
        }
    }

    /// The waiter at `index` took the outcome or is leaving: its place is
    /// cleared and, once the outcome is in, its turn in the relay passed
    /// on to the next waiter (one turn too many, at worst, if it had not
    /// been woken yet). Checked under the lock, which `announce` takes
    /// after it stores the outcome.
    fn leave(&self, index: usize) {
        let (own, next) = {
            let mut waiting = lock(&self.waiting);
            let own = waiting.wakers.get_mut(index).and_then(Option::take);
            let next = if self.outcome.get().is_some() {
                waiting.take_one()
            } else {
                None
            };
            (own, next)
        };
        // Dropped outside the lock.
        drop(own);
        if let Some(waker) = next {
            waker.wake();
        }
    }

    /// Watches the relay on `runtime`'s timer until every waiter is woken,
    /// from where it stood (`seen`); wakes them all at once if it can't (a
    /// runtime without timers), or if the runtime drops the watch
    /// (shutting down).
    fn watch(self: &Arc<Self>, runtime: &Handle, lanes: usize, seen: usize) {
        let rest = WakeRest(Arc::clone(self));
        // `None` on a runtime without timers; `rest` then wakes them all.
        let Some(timer) = with_timers(runtime, || tokio::time::interval(STALL)) else {
            return;
        };
        drop(runtime.spawn(rest.watch(timer, lanes, seen)));
    }

    /// Waits for the outcome, on the attempt's timer if `on_timer`,
    /// otherwise on one the caller keeps itself. Takes the caller's handle
    /// rather than another: one count less to write as each waiter leaves.
    pub(super) fn wait(self: Arc<Self>, on_timer: bool) -> Wait {
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

/// Wakes every waiter not yet woken when dropped: the watch's last resort.
struct WakeRest(Arc<Announcement>);

impl WakeRest {
    /// Every [`STALL`], wakes the next `lanes` waiters if the relay made
    /// no progress since the last look (the first: where it stood when
    /// announced, `seen`), twice as many at each stall after that (so that
    /// many waiters that never take their turn cost a few stalls, not one
    /// per lane's worth of them); done once every waiter is woken.
    async fn watch(self, mut timer: tokio::time::Interval, mut lanes: usize, mut seen: usize) {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The interval's first tick is at once.
        timer.tick().await;
        loop {
            timer.tick().await;
            let woken = {
                let mut waiting = lock(&self.0.waiting);
                if waiting.all_woken() {
                    return;
                }
                let woken = if waiting.next == seen {
                    let woken = waiting.take_next(lanes);
                    lanes = lanes.saturating_mul(2);
                    woken
                } else {
                    Vec::new()
                };
                seen = waiting.next;
                woken
            };
            for waker in woken.into_iter().flatten() {
                waker.wake();
            }
        }
    }
}

impl Drop for WakeRest {
    fn drop(&mut self) {
        let rest = {
            let mut waiting = lock(&self.0.waiting);
            waiting.take_all()
        };
        for waker in rest.into_iter().flatten() {
            waker.wake();
        }
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
    let started = with_timers(runtime, || {
        let mut timer = Box::pin(tokio::time::sleep_until(deadline));
        let fired = timer
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        (!fired).then_some(timer)
    });
    match started {
        Some(Some(timer)) => Some(timer),
        Some(None) => {
            announcement.announce(Err(TokenError::Interrupted));
            None
        }
        None => None,
    }
}

/// `make`'s timer, made in `runtime`'s context; `None` if that panics (a
/// runtime built without timers, or one shut down).
fn with_timers<T>(runtime: &Handle, make: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(|| {
        let _on = runtime.enter();
        make()
    }))
    .ok()
}

/// One caller's wait for an [`Announcement`].
pub(super) struct Wait {
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
        if let Some(outcome) = this.taken() {
            return Poll::Ready(outcome);
        }
        let due = {
            let mut waiting = lock(&this.announcement.waiting);
            // `announce` stores the outcome before it takes the wakers,
            // under this lock: none stored now means they are still here.
            if this.announcement.outcome.get().is_some() {
                None
            } else {
                match this.index.and_then(|i| waiting.wakers.get_mut(i)) {
                    Some(Some(waker)) => waker.clone_from(cx.waker()),
                    _ => {
                        this.index = Some(waiting.wakers.len());
                        waiting.wakers.push(Some(cx.waker().clone()));
                    }
                }
                if this.on_timer {
                    waiting.timer.take_due()
                } else {
                    None
                }
            }
        };
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
        match this.taken() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

impl Wait {
    /// The outcome, if announced; a waiter that had a place passes its
    /// turn in the relay on.
    fn taken(&mut self) -> Option<Outcome> {
        let outcome = self.announcement.outcome.get()?.clone();
        if let Some(index) = self.index.take() {
            self.announcement.leave(index);
        }
        Some(outcome)
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(index) = self.index {
            self.announcement.leave(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The lanes the relay tests run with.
    const LANES: usize = MIN_LANES;

    /// Announces `outcome` woken as a relay of [`LANES`] on this runtime
    /// (a current-thread one, whose paused time drives the watch), as a
    /// multi-thread runtime would.
    fn relay(announcement: &Arc<Announcement>, outcome: Outcome) {
        announcement.announce_by(outcome, || Waking::Relay {
            runtime: Handle::current(),
            lanes: LANES,
        });
    }

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

    /// On a current-thread runtime (one queue, no stealing) the relay
    /// finishes a crowd in exactly the order it came.
    #[tokio::test(start_paused = true)]
    async fn a_crowd_is_woken_in_turn_in_the_order_it_came() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let lanes = LANES;
        let finished = Arc::new(Mutex::new(Vec::new()));
        let crowd = lanes * 4 + 3;
        let waiters: Vec<_> = (0..crowd)
            .map(|i| {
                let (announcement, finished) = (Arc::clone(&announcement), Arc::clone(&finished));
                tokio::spawn(async move {
                    let outcome = announcement.wait(true).await;
                    finished.lock().unwrap().push(i);
                    outcome
                })
            })
            .collect();
        while announcement.waiters() < crowd {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        relay(&announcement, Err(TokenError::SourcePanicked));
        for waiter in waiters {
            assert!(waiter.await.unwrap().is_err());
        }
        assert_eq!(*finished.lock().unwrap(), (0..crowd).collect::<Vec<_>>());
        assert_eq!(Instant::now(), start, "the relay, not the watch");
    }

    /// `held` waiters polled once here and then held, and behind them
    /// `spawned` waiting on tasks of their own, all in place.
    async fn queue(
        announcement: &Arc<Announcement>,
        held: usize,
        spawned: usize,
    ) -> (Vec<Wait>, Vec<tokio::task::JoinHandle<Outcome>>) {
        let mut waits: Vec<_> = (0..held)
            .map(|_| Arc::clone(announcement).wait(true))
            .collect();
        for wait in &mut waits {
            assert!(futures::poll!(Pin::new(wait)).is_pending());
        }
        let tasks = (0..spawned)
            .map(|_| tokio::spawn(Arc::clone(announcement).wait(true)))
            .collect();
        while announcement.waiters() < held + spawned {
            tokio::task::yield_now().await;
        }
        (waits, tasks)
    }

    /// What `waiter` got, failing the test if it is not released within a
    /// minute (of paused time: at once, if nothing else is due).
    async fn released(waiter: tokio::task::JoinHandle<Outcome>) -> Outcome {
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("released within a minute")
            .expect("the waiter's task")
    }

    /// Waiters woken but never polled again (a caller holding its future
    /// without polling it) hold the relay's turns: the watch wakes the
    /// next lanes after a stall, so the rest still get the outcome.
    #[tokio::test(start_paused = true)]
    async fn waiters_that_never_take_their_turn_do_not_stall_the_rest() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let lanes = LANES;
        let (held, rest) = queue(&announcement, lanes, lanes * 3).await;
        let start = Instant::now();
        relay(&announcement, Err(TokenError::SourcePanicked));
        for waiter in rest {
            assert!(released(waiter).await.is_err());
        }
        let took = Instant::now() - start;
        assert!(took >= STALL, "released by the watch, after {took:?}");
        drop(held);
    }

    /// Many such waiters cost a few stalls: each wakes twice as many as
    /// the one before.
    #[tokio::test(start_paused = true)]
    async fn many_waiters_that_never_take_their_turn_cost_a_few_stalls() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let lanes = LANES;
        // The announcement wakes `lanes` of them; the watch `lanes`,
        // `2 ×`, `4 ×` and `8 ×` at its four stalls, the last of which
        // reaches past the held 15 lanes' worth to the rest. A lane at a
        // stall would take fifteen.
        let (held, rest) = queue(&announcement, lanes * 15, lanes).await;
        let start = Instant::now();
        relay(&announcement, Err(TokenError::SourcePanicked));
        for waiter in rest {
            assert!(released(waiter).await.is_err());
        }
        assert_eq!(Instant::now() - start, STALL * 4);
        drop(held);
    }

    /// A waiter that leaves after the announcement, woken or not, passes
    /// its turn on.
    #[tokio::test(start_paused = true)]
    async fn waiters_that_leave_after_the_announcement_pass_their_turn_on() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let lanes = LANES;
        let (leaving, rest) = queue(&announcement, lanes * 2, lanes * 2).await;
        let start = Instant::now();
        relay(&announcement, Err(TokenError::SourcePanicked));
        drop(leaving);
        for waiter in rest {
            assert!(waiter.await.unwrap().is_err());
        }
        assert_eq!(Instant::now(), start, "the relay, not the watch");
    }

    /// On two workers, with a third of the crowd cancelled while the relay
    /// runs (some holding a turn when they go), everyone left is released.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_that_leaves_at_random_while_woken_is_all_released() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let crowd = 3000;
        let waiters: Vec<_> = (0..crowd)
            .map(|_| tokio::spawn(Arc::clone(&announcement).wait(true)))
            .collect();
        while announcement.waiters() < crowd {
            tokio::task::yield_now().await;
        }
        let announcing = Arc::clone(&announcement);
        let announced =
            tokio::spawn(async move { announcing.announce(Err(TokenError::SourcePanicked)) });
        for waiter in waiters.iter().step_by(3) {
            waiter.abort();
        }
        announced.await.unwrap();
        let all = async {
            for (i, waiter) in waiters.into_iter().enumerate() {
                match waiter.await {
                    Ok(outcome) => assert!(outcome.is_err()),
                    Err(cancelled) => assert!(i % 3 == 0 && cancelled.is_cancelled()),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("all released");
    }

    /// On a current-thread runtime a crowd is woken at once: waiters that
    /// never take their turn hold nobody back, with no time passing.
    #[tokio::test(start_paused = true)]
    async fn a_current_thread_runtime_wakes_a_crowd_at_once() {
        let announcement = Announcement::new(Some(Handle::current()), later());
        let (held, rest) = queue(&announcement, MIN_LANES * 4, MIN_LANES).await;
        let start = Instant::now();
        announcement.announce(Err(TokenError::SourcePanicked));
        for waiter in rest {
            assert!(released(waiter).await.is_err());
        }
        assert_eq!(Instant::now(), start, "no watch");
        drop(held);
    }

    #[test]
    fn a_relay_only_on_a_multi_thread_runtime() {
        let two = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        assert!(matches!(
            waking(Some(two.handle().clone())),
            Waking::Relay { lanes: 8, .. }
        ));
        let one = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(
            waking(Some(one.handle().clone())),
            Waking::AllAtOnce
        ));
        assert!(matches!(waking(None), Waking::AllAtOnce));
    }

    #[test]
    fn lanes_are_four_a_worker_within_bounds() {
        assert_eq!(lanes(1), MIN_LANES);
        assert_eq!(lanes(2), 8);
        assert_eq!(lanes(5), 20);
        assert_eq!(lanes(64), 128);
        assert_eq!(lanes(usize::MAX), 128);
    }

    /// Announced outside a runtime, every waiter is woken at once.
    #[test]
    fn outside_a_runtime_every_waiter_is_woken_at_once() {
        #[derive(Default)]
        struct Count(std::sync::atomic::AtomicUsize);
        impl ArcWake for Count {
            fn wake_by_ref(count: &Arc<Self>) {
                count.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count::default());
        let waker = futures::task::waker(Arc::clone(&count));
        let announcement = Announcement::new(None, later());
        let mut waits: Vec<_> = (0..MIN_LANES * 3)
            .map(|_| Arc::clone(&announcement).wait(false))
            .collect();
        for wait in &mut waits {
            let polled = Pin::new(wait).poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
        }
        drop(waits.remove(1));
        announcement.announce(Err(TokenError::SourcePanicked));
        assert_eq!(
            count.0.load(std::sync::atomic::Ordering::SeqCst),
            MIN_LANES * 3 - 1,
            "every waiter but the one that left"
        );
    }
}
