//! The second-level store a fleet of instances shares (e.g. Redis).

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Expiry, RefreshToken, StoreError, Token};

/// A token as kept in a shared store: expiry in wall-clock time, since the
/// instances sharing it do not share a monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token; its expiry is always [`Expiry::At`] or [`Expiry::Unknown`].
    pub token: Token,
    /// When the instance that fetched it sent the request.
    pub fetched_at: SystemTime,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    access_token: String,
    token_type: String,
    expires_at_ms: Option<u64>,
    refresh_token: Option<String>,
    scopes: Option<Vec<String>>,
    refresh_in_ms: Option<u64>,
    fetched_at_ms: u64,
}

/// `t + d` for an expiry, never panicking: past what `SystemTime` holds,
/// a century on (the cache caps lifetimes far below that anyway).
fn expiry_after(t: SystemTime, d: Duration) -> Expiry {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d)
        .or_else(|| t.checked_add(d.min(CENTURY)))
        .map_or(Expiry::Unknown, Expiry::At)
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl StoredToken {
    /// Prepares `token`, fetched by a request sent at `fetched_at`, for storing.
    pub fn new(token: &Token, fetched_at: SystemTime) -> Self {
        let expiry = match token.expiry() {
            Expiry::In(d) => expiry_after(fetched_at, d),
            other => other,
        };
        StoredToken {
            token: token.clone().with_expiry(expiry),
            fetched_at,
        }
    }

    /// The one byte encoding all stores share. It holds the secrets in the
    /// clear: a store encrypts it if it leaves the process.
    pub fn encode(&self) -> Vec<u8> {
        let t = &self.token;
        let wire = Wire {
            v: 1,
            access_token: t.access_token().expose_secret().to_owned(),
            token_type: t.token_type().to_owned(),
            expires_at_ms: match t.expiry() {
                Expiry::In(d) => match expiry_after(self.fetched_at, d) {
                    Expiry::At(at) => Some(to_ms(at)),
                    _ => None,
                },
                Expiry::At(at) => Some(to_ms(at)),
                Expiry::Unknown => None,
            },
            refresh_token: t.refresh_token().map(|r| r.expose_secret().to_owned()),
            scopes: t.scopes().map(<[String]>::to_vec),
            refresh_in_ms: t
                .refresh_in()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            fetched_at_ms: to_ms(self.fetched_at),
        };
        serde_json::to_vec(&wire).expect("a plain struct always serializes")
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| {
            StoreError::unusable_value(format!("undecodable stored token: {}", e.classify_name()))
        })?;
        if w.v != 1 {
            return Err(StoreError::unusable_value(format!(
                "stored token version {} unknown",
                w.v
            )));
        }
        let expiry = match w.expires_at_ms {
            Some(ms) => Expiry::At(from_ms(ms)?),
            None => Expiry::Unknown,
        };
        let mut token = Token::bearer(w.access_token)
            .with_token_type(w.token_type)
            .with_expiry(expiry)
            .with_refresh_token_opt(w.refresh_token.map(RefreshToken::new));
        if let Some(s) = w.scopes {
            token = token.with_scopes(s);
        }
        if let Some(ms) = w.refresh_in_ms {
            token = token.with_refresh_in(Duration::from_millis(ms));
        }
        Ok(StoredToken {
            token,
            fetched_at: from_ms(w.fetched_at_ms)?,
        })
    }
}

/// A stored instant, checked: another writer's number is outside input.
fn from_ms(ms: u64) -> Result<SystemTime, StoreError> {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .ok_or_else(|| StoreError::unusable_value("stored time out of range"))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    // Never echo the input: it holds secrets.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// Proof of holding a key's fetch lease: the holder's fencing value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// A value unique to this holding; saves made with a lease that is no
    /// longer held are refused by the store.
    pub fence: String,
}

/// A store shared by many cache instances, so a fleet fetches one token per
/// key instead of one per instance.
///
/// Keys are [`TokenKey::digest`](crate::TokenKey::digest) values. The cache
/// bounds every call with its store timeout and falls back to fetching on its
/// own when a call fails, so an implementation never needs its own retries.
/// A read that finds a value it cannot decode or decrypt returns a
/// [`StoreError::unusable_value`]: the cache then treats the key as empty
/// (logging once per key) and keeps the fleet's single flight.
///
/// A holder keeps its lease by [`renew`](TokenStore::renew)ing it and
/// proves it with its [`Lease::fence`] on [`save`](TokenStore::save): an
/// implementation must refuse a save whose fence no longer holds the lease.
#[async_trait]
pub trait TokenStore: Send + Sync + Debug + 'static {
    /// The stored token, if any.
    async fn load(&self, key: &str) -> Result<Option<StoredToken>, StoreError>;

    /// Stores `token`. With a `lease`, the write happens only if that lease
    /// is still held (fencing); the write also wakes [`wait_for_update`] callers.
    ///
    /// [`wait_for_update`]: TokenStore::wait_for_update
    async fn save(
        &self,
        key: &str,
        token: &StoredToken,
        ttl: Duration,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError>;

    /// Tries to become the one instance that fetches `key`, for at most
    /// `ttl`. `None` means another instance holds the lease.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, StoreError>;

    /// Extends a lease this holder still holds to `ttl` from now. `false`
    /// means the lease is no longer held with `lease`'s fence (it ran out,
    /// or another instance holds it now): the holder must stop, since a
    /// save with it would be refused anyway.
    ///
    /// The cache renews every third of the lease's TTL while its fetch
    /// runs, so a live holder keeps the lease however slow the source is,
    /// and a holder that stops (killed, paused, cut off) loses it within
    /// one TTL.
    async fn renew(&self, key: &str, lease: &Lease, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives the lease up early.
    async fn release(&self, key: &str, lease: &Lease) -> Result<(), StoreError>;

    /// Waits (notified, not polling) until another instance saves `key` or
    /// no lease is held on it any more, at most `timeout`; returns what is
    /// stored then. Returning early is always allowed: the cache looks
    /// again and goes back to the lease.
    async fn wait_for_update(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<StoredToken>, StoreError>;
}
