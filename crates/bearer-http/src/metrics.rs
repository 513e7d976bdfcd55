//! The adapters' metrics (feature `metrics`), listed with the cache's in
//! `bearer_cache::metrics`. Without the feature these are empty.

use crate::rejection::Verdict;

/// A response rejected the token sent; `verdict` says whether it was blamed.
#[inline(always)]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn rejection(verdict: Verdict) {
    #[cfg(feature = "metrics")]
    {
        let verdict = match verdict {
            Verdict::Refresh => "refresh",
            Verdict::Final(_) => "final",
            Verdict::Reprove(_) => "reprove",
        };
        ::metrics::counter!("bearer_auth_rejections_total", "verdict" => verdict).increment(1);
    }
}

/// A request is resent with a new token.
#[inline(always)]
pub(crate) fn resend() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("bearer_auth_resends_total").increment(1);
}
