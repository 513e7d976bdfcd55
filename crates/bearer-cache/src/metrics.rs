//! Metrics through the [`metrics`](https://docs.rs/metrics) facade, with
//! the cargo feature `metrics`; without it every function here is empty and
//! compiles to nothing, so the hit path pays nothing. Install any `metrics`
//! recorder (Prometheus, StatsD, OpenTelemetry…) to collect them.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `bearer_cache_hits_total` | counter | | lookups answered from the cache at once |
//! | `bearer_cache_misses_total` | counter | | lookups that found no usable token |
//! | `bearer_cache_waits_total` | counter | | callers that waited on a fetch |
//! | `bearer_cache_retry_waits_total` | counter | | callers that waited for the next attempt after a failed one |
//! | `bearer_cache_refusals_total` | counter | | callers answered with the last error during backoff |
//! | `bearer_cache_invalidations_total` | counter | | tokens invalidated after a server rejected them |
//! | `bearer_cache_background_refreshes_total` | counter | | refreshes started ahead of expiry, in the background |
//! | `bearer_cache_store_hits_total` | counter | | tokens taken from the shared store |
//! | `bearer_cache_store_errors_total` | counter | | shared-store calls that failed or timed out |
//! | `bearer_token_fetches_total` | counter | `reason`, `outcome` | requests to the token source: `reason` is `initial`, `refresh_ahead`, `expired`, `rejected` or `forced`; `outcome` is `success`, `transient_error` or `permanent_error` |
//! | `bearer_token_fetch_duration_seconds` | histogram | `outcome` | how long a request to the token source took |
//! | `bearer_token_time_to_expiry_seconds` | gauge | | time left before the hard expiry of the token last served or installed |
//! | `bearer_auth_rejections_total` | counter | `verdict` | responses that rejected the token sent (401, gRPC `UNAUTHENTICATED`): `refresh` (the token was blamed), `final` (a new token would not help) or `reprove` (a DPoP proof was refused: resent with a fresh one, the token kept); from the adapters (feature `metrics` of `bearer-http`) |
//! | `bearer_auth_resends_total` | counter | | requests resent with a new token after a rejection (same) |
//!
//! Labels carry no key, token or URL: nothing secret, and a bounded number
//! of series.

use std::time::Duration;

use crate::error::TokenError;
use crate::source::FetchReason;

macro_rules! counters {
    ($($function:ident => $name:literal),* $(,)?) => {
        $(
            #[inline(always)]
            pub(crate) fn $function() {
                #[cfg(feature = "metrics")]
                ::metrics::counter!($name).increment(1);
            }
        )*
    };
}

counters! {
    hit => "bearer_cache_hits_total",
    miss => "bearer_cache_misses_total",
    wait => "bearer_cache_waits_total",
    retry_wait => "bearer_cache_retry_waits_total",
    backoff_refusal => "bearer_cache_refusals_total",
    background_refresh => "bearer_cache_background_refreshes_total",
    invalidation => "bearer_cache_invalidations_total",
    store_hit => "bearer_cache_store_hits_total",
    store_error => "bearer_cache_store_errors_total",
}

/// One request to the token source, its reason, outcome and duration.
#[inline(always)]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn fetched(reason: FetchReason, outcome: Result<(), &TokenError>, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let outcome = outcome_label(outcome);
        ::metrics::counter!(
            "bearer_token_fetches_total",
            "reason" => reason_label(reason),
            "outcome" => outcome
        )
        .increment(1);
        ::metrics::histogram!("bearer_token_fetch_duration_seconds", "outcome" => outcome)
            .record(took.as_secs_f64());
    }
}

/// The time left before the hard expiry (`expires_at`) of the token just
/// served or installed at `now`. Takes both instants, not their difference,
/// so that without the feature the hit path does not compute it.
#[inline(always)]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn time_to_expiry(expires_at: std::time::Instant, now: std::time::Instant) {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!("bearer_token_time_to_expiry_seconds")
        .set(expires_at.saturating_duration_since(now).as_secs_f64());
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn reason_label(reason: FetchReason) -> &'static str {
    match reason {
        FetchReason::Initial => "initial",
        FetchReason::RefreshAhead => "refresh_ahead",
        FetchReason::Expired => "expired",
        FetchReason::Rejected => "rejected",
        FetchReason::Forced => "forced",
    }
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn outcome_label(outcome: Result<(), &TokenError>) -> &'static str {
    match outcome {
        Ok(()) => "success",
        Err(e) if e.is_transient() => "transient_error",
        Err(_) => "permanent_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_snake_case_and_distinct() {
        let reasons = [
            FetchReason::Initial,
            FetchReason::RefreshAhead,
            FetchReason::Expired,
            FetchReason::Rejected,
            FetchReason::Forced,
        ]
        .map(reason_label);
        let mut unique = reasons.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), reasons.len());
        assert!(
            reasons
                .iter()
                .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        assert_eq!(outcome_label(Ok(())), "success");
        assert_eq!(
            outcome_label(Err(&TokenError::InvalidTokenValue)),
            "permanent_error"
        );
    }
}
