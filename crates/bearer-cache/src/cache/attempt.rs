//! One attempt at a token: spawned so no caller can cancel it, bounded in
//! time, proof against a panicking source, and always reported to its
//! slot, whatever ends it: the source's answer, an error, a panic, the
//! timeout, or the task being dropped (cancelled, or its runtime shut
//! down). A report reaches the state exactly once; the state ignores a
//! report for an attempt it no longer has on record.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{BoxFuture, Shared};
use rand::RngExt;

use super::Inner;
use super::entry::Entry;
use super::slot::Slot;
use super::state::{AttemptId, Finish, Start};
use crate::policy::LONGEST_SPAN;
use crate::{FetchContext, FetchReason, Token, TokenError, TokenKey};

/// What callers await an attempt on.
pub(crate) type Fetch = Shared<BoxFuture<'static, Result<Arc<Entry>, TokenError>>>;

/// How much longer than its budget a waiter gives an attempt before it
/// presumes the attempt lost (a runtime that stopped polling it without
/// dropping it) and reports it so.
const GRACE: Duration = Duration::from_secs(1);

/// Past this many waiters, an outcome is announced from a blocking thread
/// (half a worker's local run queue).
const CROWD: usize = 128;

/// What a source or the store produced, before it is installed.
pub(crate) struct Fetched {
    pub token: Token,
    pub sent_at: Instant,
    pub sent_at_system: SystemTime,
    pub from_store: bool,
}

/// An attempt decided on but not yet running. Made under the slot's lock,
/// spawned once the lock is released (a runtime that is shutting down may
/// drop a task inside `spawn`, and its report takes the lock). Dropped
/// unspawned, it reports the attempt interrupted.
pub(crate) struct Pending {
    reporter: Reporter,
    start: Start,
    done: oneshot::Sender<Result<Arc<Entry>, TokenError>>,
    /// The callers' handle, to count them when the outcome is announced.
    fetch: Fetch,
}

/// Prepares attempt `start`: the handle its callers await, and the work.
pub(crate) fn prepare(inner: &Arc<Inner>, slot: &Arc<Slot>, start: Start) -> (Fetch, Pending) {
    let (done, outcome) = oneshot::channel();
    let fetch = outcome
        .map(|sent| sent.unwrap_or(Err(TokenError::Interrupted)))
        .boxed()
        .shared();
    let reporter = Reporter {
        inner: Arc::clone(inner),
        slot: Arc::clone(slot),
        id: start.id,
        armed: true,
    };
    (
        fetch.clone(),
        Pending {
            reporter,
            start,
            done,
            fetch,
        },
    )
}

impl Pending {
    /// Runs the attempt on its own task, so that no caller can cancel it.
    pub(crate) fn spawn(self) {
        tokio::spawn(self.run());
    }

    async fn run(self) {
        let Pending {
            mut reporter,
            start,
            done,
            fetch,
        } = self;
        let inner = Arc::clone(&reporter.inner);
        let slot = Arc::clone(&reporter.slot);
        let budget = inner.attempt_budget();
        let run = inner.run(&slot, start.previous, start.reason);
        let outcome = match tokio::time::timeout(budget, AssertUnwindSafe(run).catch_unwind()).await
        {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_panic)) => {
                // The payload may hold anything the source had, secrets
                // included: it is not logged.
                tracing::error!(
                    target: "bearer_cache",
                    key = %slot.key,
                    "token source panicked; counted as a failed attempt"
                );
                Err(TokenError::SourcePanicked)
            }
            Err(_) => Err(TokenError::Timeout(budget)),
        };
        reporter.armed = false;
        let result = inner.report(&slot, start.id, outcome);
        // Every waiter holds a handle, and this task one.
        let waiters = fetch.strong_count().unwrap_or(1).saturating_sub(1);
        drop(fetch);
        // Sending wakes every waiter from this thread. Woken from a
        // worker, a crowd overflows its local run queue, which moves the
        // oldest half (the callers that have waited longest) to the back
        // of the runtime's queue; woken from a blocking thread, they queue
        // in the order they came. A send dropped unrun (the runtime
        // shutting down) wakes them all the same, as interrupted.
        if waiters > CROWD {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn_blocking(move || done.send(result)));
                return;
            }
        }
        // Nobody may be waiting (a background refresh): that is fine.
        let _ = done.send(result);
    }
}

/// Awaits attempt `id`, for at most its budget and a grace period. Any
/// failure is reported too: if the attempt already reported, the state
/// takes it as stale; if it never could, this ends it.
pub(crate) async fn join(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    id: AttemptId,
    fetch: Fetch,
) -> Result<Arc<Entry>, TokenError> {
    let limit = inner.attempt_budget().saturating_add(GRACE);
    let outcome = tokio::time::timeout(limit, fetch)
        .await
        .unwrap_or(Err(TokenError::Interrupted));
    match outcome {
        Ok(entry) => Ok(entry),
        Err(error) => {
            // Usually stale by now, and ignored; see the function's doc.
            let _ = inner.finish(slot, id, Err(error.clone()));
            Err(error)
        }
    }
}

/// Reports the attempt as interrupted if it is dropped before it reported.
struct Reporter {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    id: AttemptId,
    armed: bool,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if self.armed {
            let _ = self
                .inner
                .finish(&self.slot, self.id, Err(TokenError::Interrupted));
        }
    }
}

impl Inner {
    /// The attempt itself: through the shared store if there is one.
    async fn run(
        &self,
        slot: &Slot,
        previous: Option<Arc<Entry>>,
        reason: FetchReason,
    ) -> Result<Fetched, TokenError> {
        tracing::debug!(target: "bearer_cache", key = %slot.key, ?reason, "fetching token");
        match &self.store {
            Some(link) => {
                self.fetch_via_store(link, slot, previous.as_deref(), reason)
                    .await
            }
            None => {
                self.fetch_from_source(&slot.key, previous.as_deref().map(|e| &e.token), reason)
                    .await
            }
        }
    }

    pub(crate) async fn fetch_from_source(
        &self,
        key: &TokenKey,
        previous: Option<&Token>,
        reason: FetchReason,
    ) -> Result<Fetched, TokenError> {
        let sent_at = self.clock.now();
        let sent_at_system = self.clock.system_now();
        self.counters.fetch();
        let cx = FetchContext::new(key, previous, reason);
        let deadline = self
            .source
            .fetch_deadline()
            .map_or(self.policy.fetch_timeout, |d| {
                d.max(self.policy.fetch_timeout)
            })
            .min(LONGEST_SPAN);
        let outcome = tokio::time::timeout(deadline, self.source.fetch(cx))
            .await
            .map_err(|_| TokenError::Timeout(deadline))
            .and_then(|fetched| fetched);
        let took = self.clock.now().saturating_duration_since(sent_at);
        crate::metrics::fetched(reason, outcome.as_ref().map(|_| ()), took);
        let token = outcome?;
        Ok(Fetched {
            token,
            sent_at,
            sent_at_system,
            from_store: false,
        })
    }

    /// The attempt's outcome, installed and reported; what its waiters get.
    fn report(
        &self,
        slot: &Arc<Slot>,
        id: AttemptId,
        outcome: Result<Fetched, TokenError>,
    ) -> Result<Arc<Entry>, TokenError> {
        let built = outcome.and_then(|fetched| self.make_entry(fetched));
        self.finish(slot, id, built)
    }

    /// Hands attempt `id`'s outcome to the state, then logs and notifies.
    pub(crate) fn finish(
        &self,
        slot: &Arc<Slot>,
        id: AttemptId,
        outcome: Result<Arc<Entry>, TokenError>,
    ) -> Result<Arc<Entry>, TokenError> {
        let now = self.clock.now();
        let sample = rand::rng().random::<f64>();
        let finish = slot.update(self, |state| {
            state.finish(id, now, outcome, &self.policy.backoff, sample)
        });
        match finish {
            Finish::Installed { entry, changed } => {
                crate::metrics::time_to_expiry(entry.deadlines.expires_at, now);
                tracing::debug!(
                    target: "bearer_cache",
                    key = %slot.key,
                    token = %entry.fingerprint,
                    expires_in_ms = u64::try_from(entry.deadlines.expires_at.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
                    "token installed"
                );
                if changed {
                    self.notify_change(&slot.key, &entry.token);
                }
                Ok(entry)
            }
            Finish::Failed {
                error,
                failures,
                delay,
            } => {
                self.counters.failure();
                tracing::warn!(
                    target: "bearer_cache",
                    key = %slot.key,
                    error = &error as &dyn std::error::Error,
                    transient = error.is_transient(),
                    consecutive_failures = failures,
                    backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "token fetch failed"
                );
                Err(error)
            }
            Finish::Stale(outcome) => outcome,
        }
    }

    /// Runs the change hook; a panicking hook is logged, never propagated
    /// into the attempt or its waiters.
    fn notify_change(&self, key: &TokenKey, token: &Token) {
        let Some(hook) = &self.on_change else {
            return;
        };
        if std::panic::catch_unwind(AssertUnwindSafe(|| hook(key, token))).is_err() {
            tracing::error!(target: "bearer_cache", key = %key, "on_change hook panicked");
        }
    }

    fn make_entry(&self, fetched: Fetched) -> Result<Arc<Entry>, TokenError> {
        // A stored token keeps the fleet's schedule (as `usable_stored`
        // judged it); only our own fetches are jittered.
        let jitter = if fetched.from_store {
            0.0
        } else {
            rand::rng().random::<f64>()
        };
        let deadlines = self.policy.deadlines(
            &fetched.token,
            fetched.sent_at,
            fetched.sent_at_system,
            jitter,
        );
        Entry::new(fetched.token, deadlines).map(Arc::new)
    }
}
