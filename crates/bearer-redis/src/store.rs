//! [`RedisStore`]: the [`TokenStore`] implementation.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bearer_cache::{Lease, StoreError, StoredToken, TokenStore};
use rand::RngExt;
use tokio::time::Instant;

use crate::builder::RedisStoreBuilder;
use crate::conn::{Conn, Link};
use crate::envelope::Envelope;
use crate::keys::{KeySpace, Names};
use crate::notify::{Wakes, woken_for};
use crate::scripts::{PEEK, RELEASE, RENEW, SAVE};

/// A [`TokenStore`] on Redis: a fleet of [`bearer_cache::TokenCache`]s
/// sharing it fetches one token per key. Cheap to clone; clones share
/// connections and counters.
///
/// Build it with [`RedisStore::builder`]; see the [crate docs](crate) for
/// the protocol.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub commands: Link,
    pub pubsub: Link,
    pub keys: KeySpace,
    pub channel: String,
    pub envelope: Envelope,
    pub wakes: Wakes,
    pub stats: Counters,
}

/// What a [`RedisStore`] has done so far (this process, all clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreStats {
    /// Commands and scripts sent to Redis (each one round trip).
    pub commands: u64,
    /// Tokens written.
    pub saves: u64,
    /// Fenced writes refused because the lease had passed to someone else.
    pub fenced_saves_refused: u64,
    /// Leases obtained.
    pub leases_granted: u64,
    /// Lease attempts that found another holder.
    pub leases_denied: u64,
    /// Leases extended by their holder while its fetch ran.
    pub leases_renewed: u64,
    /// Renewals that found the lease gone or held by another instance.
    pub leases_lost: u64,
    /// Waits that ended by a notification (not a timeout or lease expiry).
    pub waits_notified: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    commands: AtomicU64,
    saves: AtomicU64,
    fenced_saves_refused: AtomicU64,
    leases_granted: AtomicU64,
    leases_denied: AtomicU64,
    leases_renewed: AtomicU64,
    leases_lost: AtomicU64,
    waits_notified: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn redis_error(what: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |e| StoreError::with_cause(format!("redis {what} failed"), e)
}

/// Runs a read-only call, once more if the connection was broken: the
/// `ConnectionManager` answers the first call after an outage with the old
/// connection's error while it reconnects, and the second call gets the new
/// connection. Only reads and SUBSCRIBE are retried: they are harmless to repeat.
async fn retry_once<T, F, Fut>(mut call: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match call().await {
        Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
            call().await
        }
        other => other,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Starts configuring a store on the Redis at `url`
    /// (`redis://[:password@]host:port[/db]`).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), bearer_redis::BuildError> {
    /// let store = bearer_redis::RedisStore::builder("redis://127.0.0.1:6379/")
    ///     .prefix("orders-service:")
    ///     .encryption_key([0x42; 32])
    ///     .build()
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url.into())
    }

    /// Starts configuring a store on a Redis Cluster (cargo feature
    /// `cluster`), given some of its
    /// nodes (`redis://host:port`); the rest are learnt from them. Each
    /// key's value and lease share a slot (their names carry one hash
    /// tag), `MOVED`/`ASK` redirects and failovers are followed by the
    /// client, and notifications reach every node.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), bearer_redis::BuildError> {
    /// let store = bearer_redis::RedisStore::cluster_builder([
    ///     "redis://10.0.0.1:7000/",
    ///     "redis://10.0.0.2:7000/",
    ///     "redis://10.0.0.3:7000/",
    /// ])
    /// .prefix("orders-service:")
    /// .build()
    /// .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    pub fn cluster_builder(
        nodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> RedisStoreBuilder {
        RedisStoreBuilder::new_cluster(nodes.into_iter().map(Into::into).collect())
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        RedisStore {
            inner: Arc::new(inner),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> RedisStoreStats {
        let c = &self.inner.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisStoreStats {
            commands: get(&c.commands),
            saves: get(&c.saves),
            fenced_saves_refused: get(&c.fenced_saves_refused),
            leases_granted: get(&c.leases_granted),
            leases_denied: get(&c.leases_denied),
            leases_renewed: get(&c.leases_renewed),
            leases_lost: get(&c.leases_lost),
            waits_notified: get(&c.waits_notified),
        }
    }

    /// The Redis key holding the token for cache key `key`, e.g. to inspect
    /// or delete it by hand. It is derived by hashing: it reveals nothing of `key`.
    pub fn redis_key(&self, key: &str) -> String {
        self.inner.keys.names(key).value
    }

    /// Whether values are encrypted at rest.
    pub fn is_encrypting(&self) -> bool {
        self.inner.envelope.is_encrypting()
    }

    /// A connection for one command (counted as one round trip).
    async fn conn(&self) -> redis::RedisResult<Conn> {
        bump(&self.inner.stats.commands);
        self.inner.commands.get().await
    }

    /// Subscribes the notification connection if it is not (first use, or
    /// after a reconnect dropped the subscription).
    pub(crate) async fn ensure_subscribed(&self) -> Result<(), StoreError> {
        if self.inner.wakes.is_subscribed() {
            return Ok(());
        }
        let pubsub = &self.inner.pubsub;
        let channel = &self.inner.channel;
        retry_once(|| {
            bump(&self.inner.stats.commands);
            pubsub.subscribe(channel)
        })
        .await
        .map_err(redis_error("SUBSCRIBE"))?;
        self.inner.wakes.mark_subscribed();
        Ok(())
    }

    async fn peek(&self, names: &Names) -> Result<(Option<Vec<u8>>, i64), StoreError> {
        retry_once(|| async {
            PEEK.key(&names.value)
                .key(&names.lease)
                .invoke_async(&mut self.conn().await?)
                .await
        })
        .await
        .map_err(redis_error("peek"))
    }

    fn open(&self, names: &Names, raw: Option<Vec<u8>>) -> Result<Option<StoredToken>, StoreError> {
        raw.map(|bytes| self.inner.envelope.open(&names.value, &bytes))
            .transpose()
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn load(&self, key: &str) -> Result<Option<StoredToken>, StoreError> {
        let names = self.inner.keys.names(key);
        let raw: Option<Vec<u8>> = retry_once(|| async {
            redis::cmd("GET")
                .arg(&names.value)
                .query_async(&mut self.conn().await?)
                .await
        })
        .await
        .map_err(redis_error("GET"))?;
        self.open(&names, raw)
    }

    async fn save(
        &self,
        key: &str,
        token: &StoredToken,
        ttl: Duration,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError> {
        if ttl.is_zero() {
            // Already expired: nothing worth sharing.
            return Ok(());
        }
        let names = self.inner.keys.names(key);
        let value = self.inner.envelope.seal(&names.value, token);
        let fence = lease.map_or("", |l| l.fence.as_str());
        let mut conn = self.conn().await.map_err(redis_error("save"))?;
        let written: i64 = SAVE
            .key(&names.value)
            .key(&names.lease)
            .arg(value)
            .arg(millis(ttl))
            .arg(fence)
            .arg(&self.inner.channel)
            .arg(&names.id)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error("save"))?;
        if written == 1 {
            bump(&self.inner.stats.saves);
            tracing::debug!(
                target: "bearer_redis",
                key = %names.id,
                token = %token.token.access_token().fingerprint(),
                fenced = lease.is_some(),
                "token saved"
            );
        } else {
            bump(&self.inner.stats.fenced_saves_refused);
            tracing::info!(
                target: "bearer_redis",
                key = %names.id,
                token = %token.token.access_token().fingerprint(),
                "lease lost before saving; another instance's token stands"
            );
        }
        Ok(())
    }

    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let names = self.inner.keys.names(key);
        let fence = format!("{:032x}", rand::rng().random::<u128>());
        // The cache looks at the stored value again once it holds the lease,
        // so a token saved since its last look is not fetched twice.
        let mut conn = self.conn().await.map_err(redis_error("lease"))?;
        let granted: Option<String> = redis::cmd("SET")
            .arg(&names.lease)
            .arg(&fence)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(redis_error("lease"))?;
        if granted.is_some() {
            bump(&self.inner.stats.leases_granted);
            Ok(Some(Lease { fence }))
        } else {
            bump(&self.inner.stats.leases_denied);
            Ok(None)
        }
    }

    async fn renew(&self, key: &str, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let names = self.inner.keys.names(key);
        let mut conn = self.conn().await.map_err(redis_error("renew"))?;
        let renewed: i64 = RENEW
            .key(&names.lease)
            .arg(&lease.fence)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error("renew"))?;
        if renewed == 1 {
            bump(&self.inner.stats.leases_renewed);
            Ok(true)
        } else {
            bump(&self.inner.stats.leases_lost);
            Ok(false)
        }
    }

    async fn release(&self, key: &str, lease: &Lease) -> Result<(), StoreError> {
        let names = self.inner.keys.names(key);
        let mut conn = self.conn().await.map_err(redis_error("release"))?;
        let _released: i64 = RELEASE
            .key(&names.lease)
            .arg(&lease.fence)
            .arg(&self.inner.channel)
            .arg(&names.id)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error("release"))?;
        Ok(())
    }

    /// Listens first, then looks: a save landing between the caller's last
    /// look and this call is seen as "no lease any more" or as a
    /// notification. Also returns once the lease expires unclaimed (its
    /// holder died), so the caller need not sit out its whole timeout.
    async fn wait_for_update(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<StoredToken>, StoreError> {
        let deadline = Instant::now() + timeout;
        let names = self.inner.keys.names(key);
        self.ensure_subscribed().await?;
        let mut wakes = self.inner.wakes.listen();
        loop {
            let (raw, lease_ms) = self.peek(&names).await?;
            if lease_ms < 0 {
                // No fetch under way: what is stored now is the answer.
                return self.open(&names, raw);
            }
            let lease_end = Instant::now() + Duration::from_millis(lease_ms.unsigned_abs());
            let until = lease_end.min(deadline);
            match tokio::time::timeout_at(until, woken_for(&mut wakes, &names.id)).await {
                Ok(()) => {
                    bump(&self.inner.stats.waits_notified);
                    return self.load(key).await;
                }
                Err(_) if until >= deadline => return self.load(key).await,
                // The lease ran out: look again (someone may have taken it over).
                Err(_) => continue,
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys)
            .field("envelope", &self.inner.envelope)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
