//! When a rejected request is resent: one plain state machine per request.

use crate::rejection::Verdict;

/// One request's budget of resends after rejections, from
/// [`Authorizer::resends`](crate::Authorizer::resends). An adapter keeps a
/// copy of the request while [`keep_copy`](Self::keep_copy) says so, and asks
/// [`after_rejection`](Self::after_rejection) what to do each time the
/// server rejects the token the request carried.
///
/// ```
/// use bearer_http::{Resends, Step, Verdict};
///
/// let mut resends = Resends::new(1);
/// assert!(resends.keep_copy());
/// assert_eq!(resends.after_rejection(Verdict::Refresh, true), Step::Resend);
/// // The resent request is rejected too: its new token stays.
/// assert_eq!(resends.after_rejection(Verdict::Refresh, false), Step::Return);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resends {
    left: u32,
    replaced: bool,
    /// Whether the one resend with a fresh proof (DPoP) is spent or was
    /// never there (a bearer token, resending off).
    reproved: bool,
}

/// What to do with a rejection ([`Resends::after_rejection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A new token would not help: return the response, leave the cache.
    Final(&'static str),
    /// The token is bad but the request cannot be resent (no copy, resends
    /// used up or off): report the token (`TokenCache::invalidate_if_current`)
    /// and return the response.
    Invalidate,
    /// The request already replaced its token and was rejected again:
    /// return the response and keep the new token, so a server that
    /// rejects every token costs one fetch per request, never a storm.
    Return,
    /// Replace the token (`TokenCache::replace_rejected`) and resend the copy.
    Resend,
    /// Keep the token and resend the copy with a fresh proof (DPoP): the
    /// proof, not the token, was refused. Once per request, beside the
    /// budget of [`Resend`](Self::Resend)s.
    Reprove,
}

impl Resends {
    /// A budget of `max` resends (0: never resend).
    pub fn new(max: u32) -> Self {
        Resends {
            left: max,
            replaced: false,
            reproved: true,
        }
    }

    /// Allows the one resend with a fresh proof a request with a bound
    /// (DPoP) token may make, if resending is on at all. Adapters call it
    /// for bound tokens only, so a bearer request keeps no extra copy.
    pub fn allow_reproof(&mut self) {
        if self.left > 0 {
            self.reproved = false;
        }
    }

    /// Whether a copy of the request is worth keeping: a resend is still
    /// allowed.
    pub fn keep_copy(&self) -> bool {
        self.left > 0 || !self.reproved
    }

    /// The step after a rejection judged `verdict`, `has_copy` saying
    /// whether the adapter holds a copy to resend.
    pub fn after_rejection(&mut self, verdict: Verdict, has_copy: bool) -> Step {
        crate::metrics::rejection(verdict);
        match verdict {
            Verdict::Final(reason) => return Step::Final(reason),
            Verdict::Reprove(reason) => {
                if !has_copy || self.reproved {
                    return Step::Final(reason);
                }
                self.reproved = true;
                crate::metrics::resend();
                return Step::Reprove;
            }
            Verdict::Refresh => {}
        }
        if has_copy && self.left > 0 {
            self.left -= 1;
            self.replaced = true;
            crate::metrics::resend();
            Step::Resend
        } else if self.replaced {
            Step::Return
        } else {
            Step::Invalidate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_up_to_the_budget_then_keeps_the_new_token() {
        let mut r = Resends::new(2);
        assert_eq!(r.after_rejection(Verdict::Refresh, true), Step::Resend);
        assert!(r.keep_copy());
        assert_eq!(r.after_rejection(Verdict::Refresh, true), Step::Resend);
        assert!(!r.keep_copy());
        assert_eq!(r.after_rejection(Verdict::Refresh, true), Step::Return);
    }

    #[test]
    fn without_a_copy_or_budget_the_token_is_reported() {
        assert_eq!(
            Resends::new(1).after_rejection(Verdict::Refresh, false),
            Step::Invalidate
        );
        let mut none = Resends::new(0);
        assert!(!none.keep_copy());
        assert_eq!(
            none.after_rejection(Verdict::Refresh, true),
            Step::Invalidate
        );
    }

    #[test]
    fn a_final_verdict_wins_and_spends_nothing() {
        let mut r = Resends::new(1);
        assert_eq!(
            r.after_rejection(Verdict::Final("scope"), true),
            Step::Final("scope")
        );
        assert_eq!(r, Resends::new(1));
    }

    #[test]
    fn a_refused_proof_is_resent_once_beside_the_budget() {
        let nonce = Verdict::Reprove("use_dpop_nonce");
        // A bearer request has no such resend.
        assert_eq!(
            Resends::new(1).after_rejection(nonce, true),
            Step::Final("use_dpop_nonce")
        );
        let mut r = Resends::new(1);
        r.allow_reproof();
        assert_eq!(r.after_rejection(nonce, true), Step::Reprove);
        assert_eq!(
            r.after_rejection(nonce, true),
            Step::Final("use_dpop_nonce")
        );
        assert!(r.keep_copy());
        assert_eq!(r.after_rejection(Verdict::Refresh, true), Step::Resend);
        assert!(!r.keep_copy());
        let mut none = Resends::new(0);
        none.allow_reproof();
        assert!(!none.keep_copy());
        assert_eq!(
            none.after_rejection(nonce, true),
            Step::Final("use_dpop_nonce")
        );
    }
}
