//! One attempt at a token: spawned so no caller can cancel it, bounded in
//! time, proof against a panicking source, and always reported to its
//! slot, whatever ends it: the source's answer, an error, a panic, the
//! timeout, or the task being dropped (cancelled, or its runtime shut
//! down). A report reaches the state exactly once; the state ignores a
//! report for an attempt it no longer has on record.
//!
//! Its callers are bounded in time too. A caller that joins an attempt on
//! its own runtime waits on the attempt's timer, which the
//! [`Announcement`] holds and which fires even when a source blocks its
//! thread (where the attempt's own timeout can't): joiners share one
//! timer, and when a stampede's thousands are woken, none has a timer of
//! its own to take out of the wheel. The caller that started the
//! attempt keeps a timer inline in its own future, which costs no
//! allocation when, as with most first fetches, nobody joins. So does a
//! caller on another runtime, since the attempt's runtime may stop being
//! driven without being dropped.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use rand::RngExt;
use tokio::runtime::{Handle, Id};

use super::Inner;
use super::entry::Entry;
use super::outcome::{Announcement, Outcome};
use super::slot::Slot;
use super::state::{AttemptId, Finish, Start};
use crate::policy::LONGEST_SPAN;
use crate::{FetchContext, FetchReason, Token, TokenError, TokenKey};

/// What callers await an attempt on.
#[derive(Clone)]
pub(crate) struct Fetch {
    announcement: Arc<Announcement>,
    /// The runtime whose timer the announcement holds (`None` outside one,
    /// where the attempt can't run and every caller keeps a timer of its
    /// own).
    runtime: Option<Id>,
}

/// How much longer than its budget a caller gives an attempt before it
/// presumes the attempt lost (a runtime that stopped polling it without
/// dropping it) and reports it so.
const GRACE: Duration = Duration::from_secs(1);

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
}

/// Prepares attempt `start`: the handle its callers await, and the work.
pub(crate) fn prepare(inner: &Arc<Inner>, slot: &Arc<Slot>, start: Start) -> (Fetch, Pending) {
    let runtime = Handle::try_current().ok();
    let fetch = Fetch {
        runtime: runtime.as_ref().map(Handle::id),
        announcement: Announcement::new(
            runtime,
            tokio::time::Instant::now() + inner.waiting_limit(),
        ),
    };
    let reporter = Reporter {
        inner: Arc::clone(inner),
        slot: Arc::clone(slot),
        id: start.id,
        announcement: Arc::clone(&fetch.announcement),
        armed: true,
    };
    (fetch, Pending { reporter, start })
}

impl Pending {
    /// Runs the attempt on its own task, so that no caller can cancel it.
    pub(crate) fn spawn(self) {
        tokio::spawn(self.run());
    }

    async fn run(self) {
        let Pending { reporter, start } = self;
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
        reporter.report(outcome);
    }
}

/// Awaits attempt `id`, for at most its budget and a grace period: on the
/// attempt's timer when the caller `joined` it on its runtime, on one of
/// its own otherwise. Any failure is reported too: if the attempt already
/// reported, the state takes it as stale; if it never could, this ends it.
pub(crate) async fn join(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    id: AttemptId,
    fetch: Fetch,
    joined: bool,
) -> Outcome {
    let on_timer = joined && {
        let here = Handle::try_current().ok().map(|runtime| runtime.id());
        here.is_some() && here == fetch.runtime
    };
    let wait = fetch.announcement.wait(on_timer);
    let outcome = if on_timer {
        wait.await
    } else {
        tokio::time::timeout(inner.waiting_limit(), wait)
            .await
            .unwrap_or(Err(TokenError::Interrupted))
    };
    match outcome {
        Ok(entry) => Ok(entry),
        Err(error) => {
            // Usually stale by now, and ignored; see the function's doc.
            let _ = inner.finish(slot, id, Err(error.clone()));
            Err(error)
        }
    }
}

/// Reports the attempt to its slot and announces it to its callers, once:
/// as interrupted if it is dropped before it reported.
struct Reporter {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    id: AttemptId,
    announcement: Arc<Announcement>,
    armed: bool,
}

impl Reporter {
    fn report(mut self, outcome: Result<Fetched, TokenError>) {
        self.armed = false;
        let announced = self.inner.report(&self.slot, self.id, outcome);
        self.announcement.announce(announced);
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if self.armed {
            let _ = self
                .inner
                .finish(&self.slot, self.id, Err(TokenError::Interrupted));
            self.announcement.announce(Err(TokenError::Interrupted));
        }
    }
}

impl Inner {
    /// How long a caller waits for an attempt at most.
    fn waiting_limit(&self) -> Duration {
        self.attempt_budget()
            .saturating_add(GRACE)
            .min(LONGEST_SPAN)
    }

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
    ) -> Outcome {
        let built = outcome.and_then(|fetched| self.make_entry(fetched));
        self.finish(slot, id, built)
    }

    /// Hands attempt `id`'s outcome to the state, then logs and notifies.
    pub(crate) fn finish(&self, slot: &Arc<Slot>, id: AttemptId, outcome: Outcome) -> Outcome {
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
