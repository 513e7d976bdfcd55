//! One key's state machine: plain transitions over plain state.
//!
//! Every decision the cache makes for a key is a method here, taking the
//! time as an argument and touching nothing but this struct: what a caller
//! gets on a demand (serve, join, start, wait, refuse), whether a hit
//! starts a background refresh, what a finished attempt leaves behind, what
//! a server's rejection changes, and what the lock-free hit path may read
//! ([`SlotState::gate`]). The slot holds it under a mutex and acts on the
//! decisions; the tests below drive it with any sequence of events.
//!
//! The refresh point lives in [`Policy::deadlines`](crate::policy::Policy),
//! the backoff in [`Backoff`]; this file only decides *when* to use them.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Instant;

use super::entry::Entry;
use crate::policy::after;
use crate::{Backoff, FetchReason, TokenError};

/// Names one attempt, so that the report of an attempt given up for lost
/// cannot change what a newer one left. Never zero, so that a state with
/// no attempt costs no room of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptId(NonZeroU64);

/// What a caller asks of a key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Demand {
    pub now: Instant,
    /// A new token even if the current one is valid.
    pub force: bool,
    /// The latest instant the caller will wait until for the next attempt
    /// to start; at or before `now`, it fails fast.
    pub wait_until: Instant,
}

/// What a new attempt is started with.
pub(crate) struct Start {
    pub id: AttemptId,
    pub reason: FetchReason,
    /// The newest token, even if rejected or expired: its refresh token is
    /// what the attempt uses.
    pub previous: Option<Arc<Entry>>,
}

/// The answer to a [`Demand`]. `F` is the handle callers await an attempt on.
pub(crate) enum Decision<F> {
    /// A valid token, at once.
    Serve(Arc<Entry>),
    /// An attempt is under way: await it.
    Join(AttemptId, F),
    /// A new attempt was just started: await it.
    Started(AttemptId, F),
    /// The last attempt failed; the next may start at this instant, which
    /// the caller is willing to wait for: wait, then demand again.
    WaitUntil(Instant),
    /// No token now and none the caller can wait for: the last failure.
    Refuse(TokenError),
}

/// What a finished attempt changed.
pub(crate) enum Finish {
    /// The token is now the key's current one; `changed` when its value
    /// differs from the token before it.
    Installed { entry: Arc<Entry>, changed: bool },
    /// The attempt failed; the next one waits `delay`.
    Failed {
        error: TokenError,
        failures: u32,
        delay: std::time::Duration,
    },
    /// Not the attempt on record (it was given up for lost): nothing
    /// changed, and the outcome goes back as it came.
    Stale(Result<Arc<Entry>, TokenError>),
}

/// When the hit path may start a background refresh, without the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Whenever the current token passes its refresh point.
    Open,
    /// Not before this instant (backoff, or a token that came due at once).
    From(Instant),
    /// Not now: an attempt is under way.
    Closed,
}

/// A failed attempt's verdict: until when callers get its error.
#[derive(Debug, Clone)]
struct Refusal {
    until: Instant,
    error: TokenError,
}

pub(crate) struct SlotState<F> {
    /// The token handed out while it is valid; `None` once rejected.
    current: Option<Arc<Entry>>,
    /// The newest token, even once rejected or expired.
    latest: Option<Arc<Entry>>,
    attempt: Option<(AttemptId, F)>,
    /// Boxed, and `None` while all of it is at rest: every key holds a
    /// state, and few keys have had a failure lately.
    setbacks: Option<Box<Setbacks>>,
    next_id: NonZeroU64,
}

/// What failures (and a token that came due at once) leave behind.
#[derive(Default)]
struct Setbacks {
    /// Consecutive failed attempts.
    failures: u32,
    refusal: Option<Refusal>,
    /// No background refresh before this: set when a token arrives already
    /// due for refresh, so it does not make every request refresh.
    refresh_not_before: Option<Instant>,
}

impl<F> Default for SlotState<F> {
    fn default() -> Self {
        SlotState {
            current: None,
            latest: None,
            attempt: None,
            setbacks: None,
            next_id: NonZeroU64::MIN,
        }
    }
}

impl<F> SlotState<F> {
    fn refusal(&self) -> Option<&Refusal> {
        self.setbacks.as_ref()?.refusal.as_ref()
    }

    fn refresh_not_before(&self) -> Option<Instant> {
        self.setbacks.as_ref()?.refresh_not_before
    }
}

impl<F: Clone> SlotState<F> {
    /// A caller needs a token. `start` begins an attempt and returns the
    /// handle to await it on; it is called at most once, and only when no
    /// attempt is under way.
    pub fn demand(&mut self, d: Demand, start: impl FnOnce(Start) -> F) -> Decision<F> {
        if !d.force {
            if let Some(entry) = self.valid(d.now) {
                return Decision::Serve(Arc::clone(entry));
            }
        }
        if let Some((id, fetch)) = &self.attempt {
            return Decision::Join(*id, fetch.clone());
        }
        if let Some(refusal) = self.refusal().filter(|r| d.now < r.until) {
            let permanent = !refusal.error.is_transient();
            // A permanent failure needs a person, not patience; a forced
            // refresh is how an app says one acted (signed in again).
            if !(permanent && d.force) {
                return if !permanent && refusal.until <= d.wait_until {
                    Decision::WaitUntil(refusal.until)
                } else {
                    Decision::Refuse(refusal.error.clone())
                };
            }
        }
        let reason = if d.force {
            FetchReason::Forced
        } else if self.current.is_some() {
            FetchReason::Expired
        } else if self.latest.is_some() {
            FetchReason::Rejected
        } else {
            FetchReason::Initial
        };
        let (id, fetch) = self.start(reason, start);
        Decision::Started(id, fetch)
    }

    /// A caller got the current token past its refresh point: start one
    /// background refresh if none is under way and no backoff forbids it.
    pub fn refresh_due(&mut self, now: Instant, start: impl FnOnce(Start) -> F) -> bool {
        let due = self
            .valid(now)
            .is_some_and(|entry| now >= entry.deadlines.refresh_at);
        let gate_open = match self.gate() {
            Gate::Open => true,
            Gate::From(at) => now >= at,
            Gate::Closed => false,
        };
        if due && gate_open {
            self.start(FetchReason::RefreshAhead, start);
            return true;
        }
        false
    }

    fn start(&mut self, reason: FetchReason, start: impl FnOnce(Start) -> F) -> (AttemptId, F) {
        let id = AttemptId(self.next_id);
        self.next_id = self.next_id.checked_add(1).unwrap_or(NonZeroU64::MIN);
        let fetch = start(Start {
            id,
            reason,
            previous: self.latest.clone(),
        });
        self.attempt = Some((id, fetch.clone()));
        (id, fetch)
    }

    /// Attempt `id` ended with `outcome` at `now`. A token already expired
    /// on arrival counts as a failure: it is never handed out, and the
    /// backoff keeps a server that sends such tokens from being asked on
    /// every request. `sample` in [0, 1] is the backoff's random draw.
    pub fn finish(
        &mut self,
        id: AttemptId,
        now: Instant,
        outcome: Result<Arc<Entry>, TokenError>,
        backoff: &Backoff,
        sample: f64,
    ) -> Finish {
        if self
            .attempt
            .as_ref()
            .is_none_or(|(on_record, _)| *on_record != id)
        {
            return Finish::Stale(outcome);
        }
        self.attempt = None;
        let outcome = outcome.and_then(|entry| {
            if now < entry.deadlines.expires_at {
                Ok(entry)
            } else {
                Err(TokenError::AlreadyExpired)
            }
        });
        match outcome {
            Ok(entry) => {
                let changed = self
                    .latest
                    .as_ref()
                    .is_none_or(|p| p.token.access_token() != entry.token.access_token());
                // No failures and no refusal left; a gate only if due.
                self.setbacks = (entry.deadlines.refresh_at <= now).then(|| {
                    Box::new(Setbacks {
                        refresh_not_before: Some(after(now, backoff.delay_with(1, None, sample))),
                        ..Setbacks::default()
                    })
                });
                self.current = Some(Arc::clone(&entry));
                self.latest = Some(Arc::clone(&entry));
                Finish::Installed { entry, changed }
            }
            Err(error) => {
                let setbacks = self.setbacks.get_or_insert_default();
                setbacks.failures = setbacks.failures.saturating_add(1);
                let failures = setbacks.failures;
                let delay = backoff.delay_with(failures, error.retry_after(), sample);
                setbacks.refusal = Some(Refusal {
                    until: after(now, delay),
                    error: error.clone(),
                });
                Finish::Failed {
                    error,
                    failures,
                    delay,
                }
            }
        }
    }

    /// A server rejected `entry`. It is invalidated only if it is still the
    /// current token, so any number of reports of one token change things
    /// once. A rejection is news the last failure did not know: the next
    /// demand may start an attempt at once, backoff or not.
    pub fn rejected(&mut self, entry: &Arc<Entry>) -> bool {
        if !self.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, entry)) {
            return false;
        }
        self.current = None;
        if let Some(setbacks) = &mut self.setbacks {
            setbacks.refusal = None;
        }
        true
    }

    /// The current token, for the lock-free hit path.
    pub fn current(&self) -> Option<&Arc<Entry>> {
        self.current.as_ref()
    }

    /// When the hit path may start a background refresh: the one place
    /// the lock-free hint is derived from.
    pub fn gate(&self) -> Gate {
        if self.attempt.is_some() {
            return Gate::Closed;
        }
        let not_before = [self.refusal().map(|r| r.until), self.refresh_not_before()]
            .into_iter()
            .flatten()
            .max();
        not_before.map_or(Gate::Open, Gate::From)
    }

    fn valid(&self, now: Instant) -> Option<&Arc<Entry>> {
        self.current
            .as_ref()
            .filter(|entry| now < entry.deadlines.expires_at)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

    use super::*;
    use crate::policy::Policy;
    use crate::{Expiry, Token};

    type State = SlotState<u64>;

    fn entry(
        value: &str,
        now: Instant,
        expiry: Expiry,
        refresh_in: Option<Duration>,
    ) -> Arc<Entry> {
        let mut token = Token::bearer(value).with_expiry(expiry);
        if let Some(hint) = refresh_in {
            token = token.with_refresh_in(hint);
        }
        let deadlines = Policy::default().deadlines(&token, now, SystemTime::now(), 0.5);
        Arc::new(Entry::new(token, deadlines).expect("a plain bearer token"))
    }

    fn lived(value: &str, now: Instant, secs: u64) -> Arc<Entry> {
        entry(value, now, Expiry::In(Duration::from_secs(secs)), None)
    }

    fn demand(now: Instant) -> Demand {
        Demand {
            now,
            force: false,
            wait_until: now + Duration::from_secs(10),
        }
    }

    fn fail_fast(now: Instant) -> Demand {
        Demand {
            wait_until: now,
            ..demand(now)
        }
    }

    fn unavailable() -> TokenError {
        TokenError::source("endpoint down", true)
    }

    fn started(decision: Decision<u64>) -> AttemptId {
        match decision {
            Decision::Started(id, _) => id,
            other => panic!("expected a new attempt, got {}", name(&other)),
        }
    }

    fn name(d: &Decision<u64>) -> &'static str {
        match d {
            Decision::Serve(_) => "serve",
            Decision::Join(..) => "join",
            Decision::Started(..) => "start",
            Decision::WaitUntil(_) => "wait",
            Decision::Refuse(_) => "refuse",
        }
    }

    const B: Backoff = Backoff::DEFAULT;

    #[test]
    fn the_first_demand_starts_and_the_rest_join() {
        let t0 = Instant::now();
        let mut s = State::default();
        let id = started(s.demand(demand(t0), |_| 7));
        assert!(
            matches!(s.demand(demand(t0), |_| unreachable!()), Decision::Join(j, 7) if j == id)
        );
        assert_eq!(s.gate(), Gate::Closed);
        let e = lived("a", t0, 3600);
        assert!(matches!(
            s.finish(id, t0, Ok(e), &B, 0.5),
            Finish::Installed { changed: true, .. }
        ));
        assert!(matches!(
            s.demand(demand(t0), |_| unreachable!()),
            Decision::Serve(_)
        ));
        assert_eq!(s.gate(), Gate::Open);
    }

    #[test]
    fn a_transient_failure_makes_callers_wait_for_the_next_attempt() {
        let t0 = Instant::now();
        let mut s = State::default();
        let id = started(s.demand(demand(t0), |_| 1));
        let Finish::Failed { delay, .. } = s.finish(id, t0, Err(unavailable()), &B, 0.5) else {
            panic!("failed")
        };
        let retry_at = t0 + delay;
        assert!(
            matches!(s.demand(demand(t0), |_| unreachable!()), Decision::WaitUntil(at) if at == retry_at)
        );
        // A caller with no patience gets the failure at once.
        assert!(matches!(
            s.demand(fail_fast(t0), |_| unreachable!()),
            Decision::Refuse(_)
        ));
        // At the retry instant, one caller starts the next attempt.
        started(s.demand(demand(retry_at), |_| 2));
    }

    #[test]
    fn a_permanent_failure_fails_every_caller_at_once() {
        let t0 = Instant::now();
        let mut s = State::default();
        let id = started(s.demand(demand(t0), |_| 1));
        let refused = TokenError::ReauthenticationRequired("invalid_grant".into());
        s.finish(id, t0, Err(refused), &B, 0.5);
        assert!(matches!(
            s.demand(demand(t0), |_| unreachable!()),
            Decision::Refuse(TokenError::ReauthenticationRequired(_))
        ));
        // A forced refresh (the person signed in again) is tried at once.
        let forced = Demand {
            force: true,
            ..demand(t0)
        };
        assert!(matches!(s.demand(forced, |_| 2), Decision::Started(..)));
    }

    #[test]
    fn a_token_expired_on_arrival_is_a_failure_with_backoff() {
        let t0 = Instant::now();
        let mut s = State::default();
        let id = started(s.demand(demand(t0), |_| 1));
        let dead = entry("a", t0, Expiry::In(Duration::ZERO), None);
        assert!(matches!(
            s.finish(id, t0, Ok(dead), &B, 0.5),
            Finish::Failed {
                error: TokenError::AlreadyExpired,
                ..
            }
        ));
        assert!(matches!(
            s.demand(demand(t0), |_| unreachable!()),
            Decision::WaitUntil(_)
        ));
    }

    #[test]
    fn a_token_due_at_once_does_not_refresh_on_every_hit() {
        let t0 = Instant::now();
        let mut s = State::default();
        let id = started(s.demand(demand(t0), |_| 1));
        let due = entry(
            "a",
            t0,
            Expiry::In(Duration::from_secs(60)),
            Some(Duration::ZERO),
        );
        s.finish(id, t0, Ok(due), &B, 0.5);
        assert!(!s.refresh_due(t0, |_| unreachable!()));
        let Gate::From(at) = s.gate() else {
            panic!("gated")
        };
        assert!(s.refresh_due(at, |_| 2));
    }

    #[test]
    fn a_stale_report_changes_nothing() {
        let t0 = Instant::now();
        let mut s = State::default();
        let first = started(s.demand(demand(t0), |_| 1));
        s.finish(first, t0, Err(unavailable()), &B, 0.0);
        assert!(matches!(
            s.finish(first, t0, Ok(lived("late", t0, 60)), &B, 0.0),
            Finish::Stale(Ok(_))
        ));
        assert!(s.current().is_none());
    }

    #[test]
    fn only_the_current_token_is_invalidated_and_the_backoff_lifted() {
        let t0 = Instant::now();
        let mut s = State::default();
        let id = started(s.demand(demand(t0), |_| 1));
        let a = lived("a", t0, 3600);
        s.finish(id, t0, Ok(Arc::clone(&a)), &B, 0.5);
        let late = t0 + Duration::from_secs(3500);
        assert!(s.refresh_due(late, |_| 2));
        let Some((refresh, _)) = s.attempt else {
            panic!("in flight")
        };
        s.finish(refresh, late, Err(unavailable()), &B, 0.5);
        assert!(!s.rejected(&lived("other", t0, 60)));
        assert!(s.rejected(&a));
        assert!(
            !s.rejected(&a),
            "a second report of the same token changes nothing"
        );
        assert!(matches!(
            started_reason(&mut s, late),
            FetchReason::Rejected
        ));
    }

    #[test]
    fn a_key_at_rest_keeps_nothing_boxed() {
        let t0 = Instant::now();
        let mut s = State::default();
        let id = started(s.demand(demand(t0), |_| 1));
        s.finish(id, t0, Err(unavailable()), &B, 0.5);
        assert!(s.setbacks.is_some());
        let later = t0 + Duration::from_secs(400);
        let id = started(s.demand(demand(later), |_| 2));
        s.finish(id, later, Ok(lived("a", later, 3600)), &B, 0.5);
        assert!(s.setbacks.is_none(), "a success clears what failures left");
        assert_eq!(s.gate(), Gate::Open);
        // A token due at once keeps its gate, and the next failure counts
        // from one again.
        assert!(s.refresh_due(later + Duration::from_secs(3500), |_| 3));
        let Some((id, _)) = s.attempt else {
            panic!("in flight")
        };
        let due = entry(
            "b",
            later,
            Expiry::In(Duration::from_secs(60)),
            Some(Duration::ZERO),
        );
        s.finish(id, later, Ok(due), &B, 0.5);
        assert!(matches!(s.gate(), Gate::From(_)));
        let id = started(s.demand(
            Demand {
                force: true,
                ..demand(later)
            },
            |_| 4,
        ));
        assert!(matches!(
            s.finish(id, later, Err(unavailable()), &B, 0.5),
            Finish::Failed { failures: 1, .. }
        ));
    }

    fn started_reason(s: &mut State, now: Instant) -> FetchReason {
        let mut reason = None;
        s.demand(demand(now), |start| {
            reason = Some(start.reason);
            9
        });
        reason.expect("an attempt started")
    }

    // ---- properties over any sequence of events -------------------------

    #[derive(Debug, Clone)]
    enum Event {
        Demand {
            force: bool,
            patience_ms: u64,
        },
        Hit,
        Succeed {
            expiry: ExpiryIn,
            refresh_in: Option<u64>,
        },
        Fail {
            transient: bool,
            retry_after: Option<u64>,
        },
        Panic,
        Cancel,
        Reject,
        Advance(u64),
    }

    #[derive(Debug, Clone)]
    enum ExpiryIn {
        Secs(u64),
        Max,
        Unknown,
        AtOffset(i64),
    }

    fn events() -> impl Strategy<Value = Event> {
        let secs = prop_oneof![0..5u64, 0..4000u64, Just(u64::MAX), Just(i64::MAX as u64)];
        prop_oneof![
            (any::<bool>(), prop_oneof![Just(0u64), 0..20_000u64])
                .prop_map(|(force, patience_ms)| Event::Demand { force, patience_ms }),
            Just(Event::Hit),
            (
                prop_oneof![
                    secs.clone().prop_map(ExpiryIn::Secs),
                    Just(ExpiryIn::Max),
                    Just(ExpiryIn::Unknown),
                    any::<i64>().prop_map(ExpiryIn::AtOffset),
                ],
                proptest::option::of(secs.clone()),
            )
                .prop_map(|(expiry, refresh_in)| Event::Succeed { expiry, refresh_in }),
            (any::<bool>(), proptest::option::of(secs)).prop_map(|(transient, retry_after)| {
                Event::Fail {
                    transient,
                    retry_after,
                }
            }),
            Just(Event::Panic),
            Just(Event::Cancel),
            Just(Event::Reject),
            prop_oneof![0..2_000u64, 0..400_000u64, Just(u64::MAX / 4)].prop_map(Event::Advance),
        ]
    }

    /// Drives the state with `events`, checking the invariants after each.
    struct Model {
        s: State,
        now: Instant,
        t0: Instant,
        /// Attempts started and not yet finished, as the world sees them.
        running: Vec<AttemptId>,
        /// The earliest a new attempt may start after the last failure,
        /// unless a rejection lifted it, or a forced refresh after a
        /// permanent failure.
        not_before: Option<Instant>,
        last_permanent: bool,
        seq: u64,
    }

    impl Model {
        fn new() -> Self {
            let t0 = Instant::now();
            Model {
                s: State::default(),
                now: t0,
                t0,
                running: Vec::new(),
                not_before: None,
                last_permanent: false,
                seq: 0,
            }
        }

        fn start(&mut self, start: Start) -> u64 {
            assert!(self.running.is_empty(), "two attempts in flight");
            let forced_past_permanent = start.reason == FetchReason::Forced && self.last_permanent;
            if let (Some(at), false) = (self.not_before, forced_past_permanent) {
                assert!(self.now >= at, "an attempt started inside the backoff");
            }
            self.running.push(start.id);
            self.seq += 1;
            self.seq
        }

        fn step(&mut self, event: &Event) {
            let now = self.now;
            match event {
                Event::Demand { force, patience_ms } => {
                    let d = Demand {
                        now,
                        force: *force,
                        wait_until: after(now, Duration::from_millis(*patience_ms)),
                    };
                    let mut started = None;
                    let decision = self.s.demand(d, |start| {
                        started = Some(start);
                        0
                    });
                    if let Some(start) = started {
                        self.start(start);
                    }
                    match decision {
                        Decision::Serve(entry) => {
                            assert!(!force);
                            assert!(now < entry.deadlines.expires_at, "served past hard expiry");
                        }
                        Decision::WaitUntil(at) => {
                            assert!(
                                at > now && at <= d.wait_until,
                                "waits beyond the caller's bound"
                            );
                        }
                        Decision::Join(id, _) | Decision::Started(id, _) => {
                            assert_eq!(self.running, [id]);
                        }
                        Decision::Refuse(_) => {}
                    }
                }
                Event::Hit => {
                    let mut started = None;
                    self.s.refresh_due(now, |start| {
                        started = Some(start);
                        0
                    });
                    if let Some(start) = started {
                        assert_eq!(start.reason, FetchReason::RefreshAhead);
                        self.start(start);
                    }
                }
                Event::Succeed { expiry, refresh_in } => {
                    let expiry = match expiry {
                        ExpiryIn::Secs(s) => Expiry::In(Duration::from_secs(*s)),
                        ExpiryIn::Max => Expiry::In(Duration::MAX),
                        ExpiryIn::Unknown => Expiry::Unknown,
                        ExpiryIn::AtOffset(o) => {
                            let base = SystemTime::now();
                            let span = Duration::from_secs(o.unsigned_abs());
                            Expiry::At(
                                if *o >= 0 {
                                    base.checked_add(span)
                                } else {
                                    base.checked_sub(span)
                                }
                                .unwrap_or(base),
                            )
                        }
                    };
                    let e = entry("t", now, expiry, refresh_in.map(Duration::from_secs));
                    self.finish(Ok(e));
                }
                Event::Fail {
                    transient,
                    retry_after,
                } => {
                    let error = if *transient {
                        TokenError::Http {
                            status: 503,
                            excerpt: String::new(),
                            retry_after: retry_after.map(Duration::from_secs),
                        }
                    } else {
                        TokenError::ReauthenticationRequired("invalid_grant".into())
                    };
                    self.finish(Err(error));
                }
                Event::Panic => self.finish(Err(TokenError::SourcePanicked)),
                Event::Cancel => self.finish(Err(TokenError::Interrupted)),
                Event::Reject => {
                    if let Some(current) = self.s.current().cloned() {
                        if self.s.rejected(&current) {
                            self.not_before = None;
                        }
                    }
                }
                Event::Advance(ms) => self.now = after(self.now, Duration::from_millis(*ms)),
            }
            self.check();
        }

        fn finish(&mut self, outcome: Result<Arc<Entry>, TokenError>) {
            let Some(id) = self.running.pop() else { return };
            match self.s.finish(id, self.now, outcome, &B, 0.5) {
                Finish::Installed { entry, .. } => {
                    assert!(self.now < entry.deadlines.expires_at);
                    self.not_before = None;
                }
                Finish::Failed { delay, error, .. } => {
                    self.not_before = Some(after(self.now, delay));
                    self.last_permanent = !error.is_transient();
                }
                Finish::Stale(_) => panic!("the attempt on record was reported stale"),
            }
        }

        fn check(&self) {
            assert_eq!(self.s.attempt.is_some(), !self.running.is_empty());
            if let Some(current) = self.s.current() {
                assert!(current.deadlines.refresh_at <= current.deadlines.expires_at);
            }
            assert!(self.now >= self.t0);
        }

        /// From whatever state the events left: within the longest backoff,
        /// a demand reaches an attempt, and its success serves everyone.
        fn recovers(&mut self) {
            if let Some(id) = self.running.pop() {
                self.s
                    .finish(id, self.now, Err(TokenError::Interrupted), &B, 0.5);
            }
            self.now = after(self.now, Duration::from_secs(301));
            let d = demand(self.now);
            let id = match self.s.demand(d, |_| 0) {
                Decision::Started(id, _) => id,
                Decision::Serve(_) => return,
                other => panic!("no attempt after the longest backoff: {}", name(&other)),
            };
            let e = lived("fresh", self.now, 3600);
            assert!(matches!(
                self.s.finish(id, self.now, Ok(e), &B, 0.5),
                Finish::Installed { .. }
            ));
            assert!(matches!(
                self.s.demand(demand(self.now), |_| unreachable!()),
                Decision::Serve(_)
            ));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_sequence_keeps_the_invariants_and_recovers(events in proptest::collection::vec(events(), 0..60)) {
            let mut model = Model::new();
            for event in &events {
                model.step(event);
            }
            model.recovers();
        }
    }
}
