//! The shared-store (fleet) protocol: use what another instance stored;
//! else take the fleet's lease, look once more, fetch (renewing the lease
//! while the fetch runs) and save under the lease's fence; else wait for
//! the holder. The store is an optimisation, never a point of failure:
//! every call is bounded, any failure falls back to fetching alone, and
//! anything read that can't be used counts as nothing stored.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::Inner;
use super::attempt::Fetched;
use super::entry::{Entry, check_usable};
use super::slot::Slot;
use crate::policy::after;
use crate::{FetchReason, Lease, StoreError, StoredToken, Token, TokenError, TokenStore};

/// The cache's link to its store, with the store settings.
pub(crate) struct StoreLink {
    pub(crate) store: std::sync::Arc<dyn TokenStore>,
    pub(crate) call_timeout: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) wait_timeout: Duration,
    pub(crate) healthy: AtomicBool,
}

impl StoreLink {
    /// The longest the store part of one attempt can take: the wait for
    /// another instance, and the bounded calls around it.
    pub(crate) fn budget(&self) -> Duration {
        let calls = u32::try_from(4 + 2 * MAX_LEASE_ROUNDS).unwrap_or(u32::MAX);
        self.wait_timeout
            .saturating_add(self.call_timeout.saturating_mul(calls))
    }
}

/// How many times one fetch goes back to the lease after waiting.
const MAX_LEASE_ROUNDS: usize = 8;

/// The token whose refresh token the next fetch should use: the stored one
/// carries the newest rotation.
fn newest_token<'a>(
    stored: Option<&'a StoredToken>,
    previous: Option<&'a Entry>,
) -> Option<&'a Token> {
    stored.map(|s| &s.token).or(previous.map(|e| &e.token))
}

/// When a lease holder next renews: a third of the TTL after its last
/// answered call to the store was sent, so two more tries fit in before
/// the store's term (which began no earlier than that call) runs out; a
/// tenth after an unanswered one. The one rule of renewal timing.
fn next_renewal(last_sent: Instant, ttl: Duration, answered: bool) -> Instant {
    let wait = if answered { ttl / 3 } else { ttl / 10 };
    after(last_sent, wait.max(MIN_RENEWAL_GAP))
}

/// Renewals are never closer together than this, however short the TTL.
const MIN_RENEWAL_GAP: Duration = Duration::from_millis(5);

/// How a fetch under a lease ended.
enum Held<T> {
    /// The fetch finished while the lease held (or the store could not say).
    Done(T),
    /// The store said the lease is someone else's now: the fetch was dropped.
    Lost,
}

/// Now, on tokio's clock: store leases expire in real time, which paused
/// tests control through tokio.
fn real_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Inner {
    /// The fleet path: use what another instance stored; else take the
    /// lease, look once more, and fetch; else wait for the holder and try
    /// again, until the wait budget runs out. Any store failure falls back
    /// to fetching alone.
    pub(crate) async fn fetch_via_store(
        &self,
        link: &StoreLink,
        slot: &Slot,
        previous: Option<&Entry>,
        reason: FetchReason,
    ) -> Result<Fetched, TokenError> {
        // Made per attempt rather than kept per key: a store attempt's
        // round trips dwarf a digest, and every key would carry it.
        let key = &slot.key.digest(self.source.id());
        // Store waits are real time: other instances do not share our clock.
        // `wait_timeout` is clamped by the builder, so this cannot overflow.
        let give_up_at = tokio::time::Instant::now() + link.wait_timeout;
        let mut stored = self.load(link, slot, key).await;
        // Bounds the rounds should a store answer waits at once.
        for _ in 0..MAX_LEASE_ROUNDS {
            if let Some(fetched) = self.usable_stored(slot, stored.as_ref(), previous, reason) {
                return Ok(fetched);
            }
            let asked_at = real_now();
            match self
                .store_call(link, link.store.try_lease(key, link.lease_ttl))
                .await
            {
                Some(Some(lease)) => {
                    // Another instance may have saved between our read and
                    // our lease: fetching now would waste a rotated refresh token.
                    let latest = self.load(link, slot, key).await.or(stored);
                    if let Some(fetched) =
                        self.usable_stored(slot, latest.as_ref(), previous, reason)
                    {
                        self.store_call(link, link.store.release(key, &lease)).await;
                        return Ok(fetched);
                    }
                    let newest = newest_token(latest.as_ref(), previous);
                    let fetch = self.fetch_from_source(&slot.key, newest, reason);
                    match self.while_held(link, key, &lease, asked_at, fetch).await {
                        Held::Done(result) => {
                            if let Ok(fetched) = &result {
                                self.save(link, key, fetched, Some(&lease)).await;
                            }
                            // Released even on failure, so waiters take over at once.
                            self.store_call(link, link.store.release(key, &lease)).await;
                            return result;
                        }
                        Held::Lost => {
                            tracing::warn!(
                                target: "bearer_cache",
                                key = %slot.key,
                                "fetch lease lost mid-fetch (this instance stalled past it); \
                                 fetch dropped before it went further, looking at the store again"
                            );
                            stored = self.load(link, slot, key).await.or(latest);
                        }
                    }
                }
                Some(None) => {
                    let budget = give_up_at.saturating_duration_since(tokio::time::Instant::now());
                    if budget.is_zero() {
                        break;
                    }
                    let waited = self
                        .read(
                            link,
                            slot,
                            link.store.wait_for_update(key, budget),
                            budget + link.call_timeout,
                        )
                        .await;
                    stored = waited.or(stored);
                }
                None => break,
            }
        }
        // The store is down, or the holder outlived our patience: fetch
        // alone and keep it local; an unfenced save could overwrite the
        // holder's newer token.
        let newest = newest_token(stored.as_ref(), previous);
        self.fetch_from_source(&slot.key, newest, reason).await
    }

    /// Runs `work` (the holder's fetch) while keeping `lease`: renews it
    /// on [`next_renewal`]'s schedule, and drops `work` as soon as the
    /// store says the lease is someone else's. The renewal point is
    /// checked against the clock before every step of `work`, so a holder
    /// that resumes from a pause longer than its lease asks the store
    /// before its fetch takes another step, and never spends a refresh
    /// token its successor is already spending. A store that does not
    /// answer cannot say the lease was lost: the fetch carries on, and its
    /// save stays fenced.
    async fn while_held<F: Future>(
        &self,
        link: &StoreLink,
        key: &str,
        lease: &Lease,
        leased_at: Instant,
        work: F,
    ) -> Held<F::Output> {
        let ttl = link.lease_ttl;
        let mut renew_at = next_renewal(leased_at, ttl, true);
        let mut work = pin!(work);
        loop {
            let mut due = pin!(tokio::time::sleep_until(renew_at.into()));
            let finished = std::future::poll_fn(|cx| {
                // Timers fire late after a pause; the clock does not.
                if real_now() >= renew_at {
                    return Poll::Ready(None);
                }
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(out));
                }
                due.as_mut().poll(cx).map(|()| None)
            })
            .await;
            if let Some(out) = finished {
                return Held::Done(out);
            }
            let sent_at = real_now();
            match self
                .store_call(link, link.store.renew(key, lease, ttl))
                .await
            {
                Some(true) => renew_at = next_renewal(sent_at, ttl, true),
                Some(false) => return Held::Lost,
                None => renew_at = next_renewal(real_now(), ttl, false),
            }
        }
    }

    /// Reads `key`; what can't be used counts as nothing stored.
    async fn load(&self, link: &StoreLink, slot: &Slot, key: &str) -> Option<StoredToken> {
        self.read(link, slot, link.store.load(key), link.call_timeout)
            .await
    }

    async fn save(&self, link: &StoreLink, key: &str, fetched: &Fetched, lease: Option<&Lease>) {
        // A bound token is useless without this process's key: not shared.
        if fetched.token.binding().is_some() {
            return;
        }
        let stored = StoredToken::new(&fetched.token, fetched.sent_at_system);
        let ttl = self.policy.lifetime(&fetched.token, fetched.sent_at_system);
        self.store_call(link, link.store.save(key, &stored, ttl, lease))
            .await;
    }

    /// A stored token is used only if it is fresher than what prompted the
    /// fetch: not the rejected one, not due for refresh itself, and one
    /// that can be sent at all.
    fn usable_stored(
        &self,
        slot: &Slot,
        stored: Option<&StoredToken>,
        previous: Option<&Entry>,
        reason: FetchReason,
    ) -> Option<Fetched> {
        let stored = stored?;
        if previous.is_some_and(|p| p.token.access_token() == stored.token.access_token()) {
            return None;
        }
        if reason == FetchReason::Forced {
            return None;
        }
        if let Err(unusable) = check_usable(&stored.token) {
            // Another instance (or an older version) stored what we can't
            // send: ask the source as if the store were empty.
            self.note_unusable(slot, &unusable);
            return None;
        }
        let now = self.clock.now();
        let now_system = self.clock.system_now();
        let age = now_system
            .duration_since(stored.fetched_at)
            .unwrap_or(Duration::ZERO);
        // Older than this process's monotonic clock reaches: long expired.
        let sent_at = now.checked_sub(age)?;
        let deadlines = self
            .policy
            .deadlines(&stored.token, sent_at, stored.fetched_at, 0.0);
        if now >= deadlines.refresh_at {
            return None;
        }
        self.counters.store_hit();
        crate::metrics::store_hit();
        Some(Fetched {
            token: stored.token.clone(),
            sent_at,
            sent_at_system: stored.fetched_at,
            from_store: true,
        })
    }

    /// Logs, once per key, that what the store holds for it can't be used.
    fn note_unusable(&self, slot: &Slot, why: &(dyn std::error::Error + 'static)) {
        if !slot.unusable_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "bearer_cache",
                key = %slot.key,
                error = why,
                "ignoring what the token store holds for this key (not logged again for it); \
                 fetching as if it held nothing"
            );
        }
    }

    /// Runs one store read within `limit`. A value the store holds but
    /// can't be used is logged once per key and read as nothing stored;
    /// any other failure is the store's ([`store_call_with`]).
    ///
    /// [`store_call_with`]: Self::store_call_with
    async fn read(
        &self,
        link: &StoreLink,
        slot: &Slot,
        call: impl Future<Output = Result<Option<StoredToken>, StoreError>>,
        limit: Duration,
    ) -> Option<StoredToken> {
        let call = async {
            match call.await {
                Err(e) if e.is_unusable_value() => {
                    self.note_unusable(slot, &e);
                    Ok(None)
                }
                other => other,
            }
        };
        self.store_call_with(link, call, limit).await.flatten()
    }

    async fn store_call<T>(
        &self,
        link: &StoreLink,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        self.store_call_with(link, call, link.call_timeout).await
    }

    /// Runs one store call within `limit`; a failure is logged once per
    /// outage and turns into `None`, never into a caller's error.
    async fn store_call_with<T>(
        &self,
        link: &StoreLink,
        call: impl Future<Output = Result<T, StoreError>>,
        limit: Duration,
    ) -> Option<T> {
        let outcome = match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        match outcome {
            Ok(value) => {
                if !link.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(target: "bearer_cache", "token store is back; sharing tokens again");
                }
                Some(value)
            }
            Err(message) => {
                self.counters.store_error();
                crate::metrics::store_error();
                if link.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "bearer_cache",
                        error = %message,
                        "token store unavailable; fetching locally until it returns"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_renews_at_a_third_of_its_lease_and_sooner_after_no_answer() {
        let t0 = Instant::now();
        let ttl = Duration::from_millis(900);
        assert_eq!(next_renewal(t0, ttl, true), t0 + Duration::from_millis(300));
        assert_eq!(next_renewal(t0, ttl, false), t0 + Duration::from_millis(90));
        // Two more tries fit in before the store's term ends.
        assert!(next_renewal(t0, ttl, true) + ttl / 3 < t0 + ttl);
    }

    #[test]
    fn renewals_are_spaced_however_short_the_lease_and_never_overflow() {
        let t0 = Instant::now();
        assert_eq!(next_renewal(t0, Duration::ZERO, true), t0 + MIN_RENEWAL_GAP);
        assert!(next_renewal(t0, Duration::MAX, true) >= t0);
    }
}
