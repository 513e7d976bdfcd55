//! The claim values every assertion and proof needs: a unique `jti` and
//! NumericDate times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::Rng as _;

use crate::jwk::B64;

/// A fresh JWT ID: 128 random bits, base64url (22 characters). Unique
/// enough that a server's replay check never trips on two of ours.
///
/// ```
/// let (a, b) = (bearer_jose::new_jti(), bearer_jose::new_jti());
/// assert_eq!(a.len(), 22);
/// assert_ne!(a, b);
/// ```
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// `at` as a JWT NumericDate (whole seconds since the epoch); times before
/// the epoch give 0.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(bearer_jose::numeric_date(UNIX_EPOCH + Duration::from_millis(1_500)), 1);
/// ```
pub fn numeric_date(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `iat` and `exp` for a short-lived JWT issued at `now` and valid for
/// `lifetime` (saturating, so no lifetime overflows).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let now = UNIX_EPOCH + Duration::from_secs(1_000);
/// assert_eq!(bearer_jose::issued_and_expiry(now, Duration::from_secs(60)), (1_000, 1_060));
/// assert_eq!(bearer_jose::issued_and_expiry(now, Duration::MAX).1, u64::MAX);
/// ```
pub fn issued_and_expiry(now: SystemTime, lifetime: Duration) -> (u64, u64) {
    let iat = numeric_date(now);
    (iat, iat.saturating_add(lifetime.as_secs()))
}
