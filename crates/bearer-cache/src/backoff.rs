//! How long to wait after a failure: the one backoff rule of the workspace.
//!
//! The cache spaces its attempts for a key with it, and the HTTP sources of
//! `bearer-oauth2` space their retries inside one fetch with it, so both
//! read a server's `Retry-After` the same way and are configured alike.

use std::time::Duration;

use rand::RngExt;

/// Bounded exponential backoff with jitter, honouring `Retry-After`.
///
/// The wait after the `n`-th consecutive failure (1-based) starts from
/// `initial · multiplierⁿ⁻¹`, capped at `max`. Of that base, the share
/// `jitter` is random and the rest fixed ("equal jitter" at the default
/// 0.5), so waits grow steadily while a fleet spreads out. A server's
/// `Retry-After` lengthens the wait to what it asked, up to
/// `max_retry_after`; a longer request is cut to that bound, never obeyed
/// whole and never ignored.
///
/// | knob | default |
/// |---|---|
/// | [`initial`](Self::initial) | 500 ms |
/// | [`max`](Self::max) | 10 s |
/// | [`multiplier`](Self::multiplier) | 2 |
/// | [`jitter`](Self::jitter) | 0.5 |
/// | [`max_retry_after`](Self::max_retry_after) | 5 min |
///
/// ```
/// use bearer_cache::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::default()
///     .initial(Duration::from_millis(100))
///     .max(Duration::from_secs(1))
///     .jitter(0.0);
/// assert_eq!(backoff.delay(1, None), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3, None), Duration::from_millis(400));
/// assert_eq!(backoff.delay(30, None), Duration::from_secs(1));
/// // A server that asks for more gets it, up to `max_retry_after`.
/// assert_eq!(backoff.delay(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
/// assert_eq!(backoff.delay(1, Some(Duration::from_secs(86_400))), Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    max_retry_after: Duration,
}

/// The longest wait any setting or server can ask for: keeps every
/// `Instant` the backoff is added to far from overflow.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

impl Backoff {
    pub(crate) const DEFAULT: Backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(10),
        multiplier: 2.0,
        jitter: 0.5,
        max_retry_after: Duration::from_secs(300),
    };

    /// The base wait after the first failure (default 500 ms).
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial.min(LONGEST);
        self
    }

    /// The longest base wait (default 10 s). After an outage, a caller that
    /// needs a token waits at most about this long for the next attempt.
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max.min(LONGEST);
        self
    }

    /// The growth per consecutive failure (default 2; values below 1 are
    /// taken as 1, a constant backoff).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The random share of each wait, from 0 (fixed waits) to 1 (anywhere
    /// from zero to the base); default 0.5.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// The longest `Retry-After` honoured (default 5 min); a server asking
    /// for more waits this long.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max.min(LONGEST);
        self
    }

    /// The wait after the `failures`-th consecutive failure (1-based; 0 is
    /// taken as 1), given the server's `Retry-After`, if it sent one.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(failures, retry_after, rand::rng().random::<f64>())
    }

    /// [`delay`](Self::delay) with the random draw given (`sample` in [0, 1]).
    pub(crate) fn delay_with(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        sample: f64,
    ) -> Duration {
        let sample = if sample.is_nan() {
            0.0
        } else {
            sample.clamp(0.0, 1.0)
        };
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let growth = self.multiplier.powi(exponent);
        // f64 seconds: an overflow saturates to infinity, then the cap.
        let base_secs = if self.initial.is_zero() {
            0.0 // and not 0 · ∞
        } else {
            (self.initial.as_secs_f64() * growth).min(self.max.as_secs_f64())
        };
        let fixed = base_secs * (1.0 - self.jitter);
        let random = base_secs * self.jitter * sample;
        let wait = Duration::try_from_secs_f64(fixed + random).unwrap_or(self.max);
        match retry_after {
            Some(asked) => wait.max(asked.min(self.max_retry_after)),
            None => wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_multiplier_up_to_the_cap() {
        let b = Backoff::default().jitter(0.0);
        let ms = |n| b.delay_with(n, None, 0.7).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(5)],
            [500, 500, 1000, 2000, 8000]
        );
        assert_eq!(ms(6), 10_000);
        assert_eq!(ms(u32::MAX), 10_000);
    }

    #[test]
    fn jitter_stays_within_the_base() {
        let b = Backoff::default();
        for n in 1..40 {
            let low = b.delay_with(n, None, 0.0);
            let high = b.delay_with(n, None, 1.0);
            let base = b.delay_with(n, None, 0.0) * 2;
            assert_eq!(high, base, "failure {n}");
            assert!(low <= high);
            for s in [0.1, 0.5, 0.9] {
                let d = b.delay_with(n, None, s);
                assert!(d >= low && d <= high, "failure {n}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_after_lengthens_and_is_capped_never_shortens() {
        let b = Backoff::default().jitter(0.0);
        assert_eq!(
            b.delay_with(1, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            b.delay_with(1, Some(Duration::MAX), 0.0),
            Duration::from_secs(300)
        );
        assert_eq!(
            b.delay_with(5, Some(Duration::ZERO), 0.0),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn hostile_settings_never_panic_or_overflow() {
        let b = Backoff::default()
            .initial(Duration::MAX)
            .max(Duration::MAX)
            .multiplier(f64::INFINITY)
            .jitter(f64::NAN)
            .max_retry_after(Duration::MAX);
        for n in [0, 1, 2, 64, u32::MAX] {
            let d = b.delay_with(n, Some(Duration::MAX), f64::NAN);
            assert!(d <= LONGEST, "{d:?}");
        }
        let zero = Backoff::default()
            .initial(Duration::ZERO)
            .multiplier(f64::INFINITY);
        assert_eq!(zero.delay_with(9, None, 0.5), Duration::ZERO);
    }
}
