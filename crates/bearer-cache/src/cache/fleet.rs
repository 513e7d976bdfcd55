//! The shared-store (fleet) protocol: use what another instance stored;
//! else take the fleet's lease, look once more, fetch and save; else wait
//! for the holder. The store is an optimisation, never a point of
//! failure: every call is bounded, and any failure falls back to fetching
//! alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Inner;
use super::attempt::Fetched;
use super::entry::{Entry, check_usable};
use super::slot::Slot;
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
        let key = slot
            .store_key
            .get_or_init(|| slot.key.digest(self.source.id()));
        // Store waits are real time: other instances do not share our clock.
        // `wait_timeout` is clamped by the builder, so this cannot overflow.
        let give_up_at = tokio::time::Instant::now() + link.wait_timeout;
        let mut stored = self.store_call(link, link.store.load(key)).await.flatten();
        // Bounds the rounds should a store answer waits at once.
        for _ in 0..MAX_LEASE_ROUNDS {
            if let Some(fetched) = self.usable_stored(stored.as_ref(), previous, reason) {
                return Ok(fetched);
            }
            match self
                .store_call(link, link.store.try_lease(key, link.lease_ttl))
                .await
            {
                Some(Some(lease)) => {
                    // Another instance may have saved between our read and
                    // our lease: fetching now would waste a rotated refresh token.
                    let latest = self.store_call(link, link.store.load(key)).await.flatten();
                    let latest = latest.or(stored);
                    if let Some(fetched) = self.usable_stored(latest.as_ref(), previous, reason) {
                        self.store_call(link, link.store.release(key, &lease)).await;
                        return Ok(fetched);
                    }
                    let newest = newest_token(latest.as_ref(), previous);
                    let result = self.fetch_from_source(&slot.key, newest, reason).await;
                    if let Ok(fetched) = &result {
                        self.save(link, key, fetched, Some(&lease)).await;
                    }
                    // Released even on failure, so waiters take over at once.
                    self.store_call(link, link.store.release(key, &lease)).await;
                    return result;
                }
                Some(None) => {
                    let budget = give_up_at.saturating_duration_since(tokio::time::Instant::now());
                    if budget.is_zero() {
                        break;
                    }
                    let waited = self
                        .store_call_with(
                            link,
                            link.store.wait_for_update(key, budget),
                            budget + link.call_timeout,
                        )
                        .await
                        .flatten();
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

    async fn save(&self, link: &StoreLink, key: &str, fetched: &Fetched, lease: Option<&Lease>) {
        let stored = StoredToken::new(&fetched.token, fetched.sent_at_system);
        let ttl = self.policy.lifetime(&fetched.token, fetched.sent_at_system);
        self.store_call(link, link.store.save(key, &stored, ttl, lease))
            .await;
    }

    /// A stored token is used only if it is fresher than what prompted the
    /// fetch: not the rejected one, not due for refresh itself.
    fn usable_stored(
        &self,
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
            tracing::warn!(target: "bearer_cache", %unusable, "ignoring an unusable stored token");
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
