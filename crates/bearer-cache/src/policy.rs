//! When to refresh and when a token is too old to use: the refresh point
//! and the hard expiry, each computed in one place.
//!
//! Kept apart from the cache so each rule is a pure function of its inputs.
//! Every span that comes from outside (a server's `expires_in`,
//! `refresh_in` or `exp`, a stored expiry, a user setting) is clamped
//! before it is added to an `Instant`, so no answer can make it overflow.

use std::time::{Duration, Instant, SystemTime};

use crate::{Backoff, Expiry, Token};

/// The longest span ever added to an `Instant` here: a setting beyond it
/// is taken as this.
pub(crate) const LONGEST_SPAN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A fraction setting in [0, `max`]; NaN is taken as 0.
pub(crate) fn unit(fraction: f64, max: f64) -> f64 {
    if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, max)
    }
}

/// `at + span`, clamped so it can never overflow.
pub(crate) fn after(at: Instant, span: Duration) -> Instant {
    let span = span.min(LONGEST_SPAN);
    at.checked_add(span)
        .or_else(|| at.checked_add(span / 2))
        .unwrap_or(at)
}

/// The timing rules the cache applies to every token. Set through
/// [`TokenCacheBuilder`](crate::TokenCacheBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub refresh_ahead: Duration,
    pub max_refresh_ahead_fraction: f64,
    pub refresh_jitter: f64,
    pub expiry_margin: Duration,
    pub max_margin_fraction: f64,
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
    pub backoff: Backoff,
    pub fetch_timeout: Duration,
    pub max_wait: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            refresh_ahead: Duration::from_secs(300),
            max_refresh_ahead_fraction: 0.5,
            refresh_jitter: 0.2,
            expiry_margin: Duration::from_secs(30),
            max_margin_fraction: 0.1,
            default_lifetime: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(24 * 3600),
            backoff: Backoff::default(),
            fetch_timeout: Duration::from_secs(30),
            max_wait: Duration::from_secs(10),
        }
    }
}

/// The two instants that govern a token's life in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadlines {
    /// From here on a background refresh starts; callers still get the token.
    pub refresh_at: Instant,
    /// From here on the token is never handed out.
    pub expires_at: Instant,
}

impl Policy {
    /// The token's lifetime as counted from `sent_at`, the moment its
    /// request was sent, capped at `max_lifetime`: a server's "never
    /// expires" (`expires_in: 9223372036854775807`) means "refresh daily".
    pub fn lifetime(&self, token: &Token, sent_at_system: SystemTime) -> Duration {
        let lifetime = match token.expiry() {
            Expiry::In(d) => d,
            Expiry::At(at) => at.duration_since(sent_at_system).unwrap_or(Duration::ZERO),
            Expiry::Unknown => self.default_lifetime,
        };
        lifetime.min(self.max_lifetime).min(LONGEST_SPAN)
    }

    /// Computes the deadlines of a token whose request was sent at `sent_at`.
    /// `jitter` in [0, 1) picks how much earlier than the latest refresh
    /// point this instance refreshes, so a fleet does not refresh in step.
    pub fn deadlines(
        &self,
        token: &Token,
        sent_at: Instant,
        sent_at_system: SystemTime,
        jitter: f64,
    ) -> Deadlines {
        let lifetime = self.lifetime(token, sent_at_system);
        // The margin covers clock skew and the request's own flight time, but
        // never eats more than a fraction of a short-lived token.
        let margin = self
            .expiry_margin
            .min(lifetime.mul_f64(self.max_margin_fraction));
        let usable = lifetime.saturating_sub(margin);
        let expires_at = after(sent_at, usable);

        let ahead = self
            .refresh_ahead
            .min(usable.mul_f64(self.max_refresh_ahead_fraction));
        let ahead = ahead + ahead.mul_f64(self.refresh_jitter * unit(jitter, 1.0));
        let mut refresh_at = expires_at
            .checked_sub(ahead)
            .unwrap_or(sent_at)
            .max(sent_at);
        if let Some(hint) = token.refresh_in() {
            refresh_at = after(sent_at, hint).min(expires_at);
        }
        Deadlines {
            refresh_at,
            expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: u64) -> Token {
        Token::bearer("t").with_expiry(Expiry::In(Duration::from_secs(expires_in)))
    }

    #[test]
    fn long_lived_token_uses_configured_margin_and_window() {
        let p = Policy::default();
        let t0 = Instant::now();
        let d = p.deadlines(&token(3600), t0, SystemTime::now(), 0.0);
        assert_eq!(d.expires_at - t0, Duration::from_secs(3570));
        assert_eq!(d.refresh_at - t0, Duration::from_secs(3270));
    }

    #[test]
    fn short_lived_token_margin_is_a_fraction_of_lifetime() {
        let p = Policy::default();
        let t0 = Instant::now();
        let d = p.deadlines(&token(5), t0, SystemTime::now(), 0.0);
        // 10 % margin, then half of what is left as the refresh window.
        assert_eq!(d.expires_at - t0, Duration::from_millis(4500));
        assert_eq!(d.refresh_at - t0, Duration::from_millis(2250));
    }

    #[test]
    fn jitter_only_moves_refresh_earlier_and_stays_bounded() {
        let p = Policy::default();
        let t0 = Instant::now();
        let late = p.deadlines(&token(3600), t0, SystemTime::now(), 0.0);
        let early = p.deadlines(&token(3600), t0, SystemTime::now(), 0.999);
        assert!(early.refresh_at < late.refresh_at);
        // 20 % of the 300 s window at most.
        assert!(late.refresh_at - early.refresh_at <= Duration::from_secs(60));
        assert_eq!(early.expires_at, late.expires_at);
    }

    #[test]
    fn server_refresh_hint_is_honoured() {
        let p = Policy::default();
        let t0 = Instant::now();
        let t = token(3600).with_refresh_in(Duration::from_secs(600));
        let d = p.deadlines(&t, t0, SystemTime::now(), 0.5);
        assert_eq!(d.refresh_at - t0, Duration::from_secs(600));
    }

    #[test]
    fn unknown_expiry_gets_default_lifetime() {
        let p = Policy::default();
        let t0 = Instant::now();
        let d = p.deadlines(&Token::bearer("t"), t0, SystemTime::now(), 0.0);
        assert_eq!(d.expires_at - t0, Duration::from_secs(270));
    }

    #[test]
    fn absolute_expiry_counts_from_request_sent() {
        let p = Policy::default();
        let t0 = Instant::now();
        let sys = SystemTime::now();
        let t = Token::bearer("t").with_expiry(Expiry::At(sys + Duration::from_secs(100)));
        let d = p.deadlines(&t, t0, sys, 0.0);
        assert_eq!(d.expires_at - t0, Duration::from_secs(90));
        // Already expired on arrival: never usable, never panics.
        let past = Token::bearer("t").with_expiry(Expiry::At(sys - Duration::from_secs(5)));
        let d = p.deadlines(&past, t0, sys, 0.0);
        assert_eq!(d.expires_at, t0);
        assert_eq!(d.refresh_at, t0);
    }
}
