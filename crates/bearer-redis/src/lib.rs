#![forbid(unsafe_code)]
// Where other crates' docs link here when this crate's local docs are not
// built yet (`cargo doc --no-deps` documents the workspace in parallel).
#![doc(html_root_url = "https://docs.rs/bearer-redis/0.1")]
#![warn(missing_docs)]
//! One token per fleet: a [`bearer_cache::TokenStore`] on Redis.
//!
//! When a service runs as fifty instances, each fetching its own token, the
//! token endpoint sees fifty times the load. Give every instance's
//! [`TokenCache`](bearer_cache::TokenCache) the same [`RedisStore`] and the
//! fleet fetches one token per key:
//!
//! ```no_run
//! use bearer_cache::{StaticSource, TokenCache, TokenKey};
//! use bearer_redis::RedisStore;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/")
//!     .prefix("orders-service:")
//!     .encryption_key(std::env::var("TOKEN_STORE_KEY")?.as_bytes()) // 32 bytes
//!     .build()
//!     .await?;
//! let cache = TokenCache::builder(StaticSource::new("a-token"))
//!     .store(store.clone())
//!     .store_lease_ttl(Duration::from_secs(10))
//!     .build();
//! let token = cache.get(&TokenKey::new().scope("orders:read")).await?;
//! # let _ = token; Ok(()) }
//! ```
//!
//! # How it works
//! - **First level stays local.** The cache consults the store only when it
//!   would otherwise fetch: a warm token costs no Redis round trip.
//! - **Single flight across the fleet.** The instance that needs a fetch
//!   takes a lease (`SET lease NX PX ttl` with a random fencing value) and
//!   fetches; the others wait for its result.
//! - **A lease that holds while its holder lives.** The holder renews the
//!   lease every third of its TTL while its fetch runs (a Lua script that
//!   extends it only if it still holds the holder's fence), so a token
//!   endpoint slower than the lease does not let a second instance fetch
//!   and spend the same refresh token. A holder that dies, or stops (a
//!   paused process, a lost network), stops renewing and loses the lease
//!   within one TTL; the waiters move on. A holder that resumes asks Redis
//!   before its fetch takes another step and, finding the lease gone,
//!   drops the fetch and takes the fleet's token instead. (A holder paused
//!   *after* its request left can't be told from a dead one: its successor
//!   presents the same refresh token. Renewal makes that take a pause
//!   longer than the lease in the middle of a request.)
//! - **Fencing.** A save made under a lease is a Lua script that writes only
//!   if the lease still holds that holder's fence, drops the lease in the
//!   same step, and publishes a notification; a holder that stalled past
//!   its lease cannot overwrite its successor's token.
//! - **What can't be used counts as nothing stored.** A value that does not
//!   decrypt, does not parse, is not a Bearer token or could not go in a
//!   header is ignored and logged once per key; one expired (or due for
//!   refresh) by the reader's clock is ignored without a log, since a token
//!   in its last seconds is routinely still in Redis. Either way the reader
//!   takes the lease and asks its source as if Redis held nothing, and no
//!   request fails.
//! - **Notified, not polling.** Waiters listen on one pub/sub channel per
//!   store (`<prefix>updates`), subscribing *before* they look at the
//!   value, so a save can't slip between the look and the wait.
//! - **Keys reveal nothing.** Names are `<prefix>token:{<hash>}` and
//!   `<prefix>lease:{<hash>}`, the hash of the cache's key (itself a
//!   digest). The braces are a hash tag: on a cluster, a key's value and
//!   lease share a slot, so every script runs on one node.
//! - **Failover of a single primary.** Give the builder the primary's
//!   [`replicas`](RedisStoreBuilder::replicas): when the primary stops
//!   answering (or answers `READONLY`), the store asks each node its `ROLE`
//!   and moves to the one promoted in its place, by Sentinel or by an
//!   operator's `REPLICAOF NO ONE`. Until then its calls fail fast and the
//!   cache fetches locally.
//! - **Redis Cluster** (cargo feature `cluster`): `RedisStore::cluster_builder`
//!   takes seed nodes; the `redis` crate's cluster client follows `MOVED`
//!   and `ASK` redirects and failovers, and notifications go over the
//!   cluster's pub/sub, which reaches every node. While a primary is down
//!   and its replica not yet promoted, its keys' calls fail and the cache
//!   fetches locally: no request fails. The feature is off by default
//!   because redis 1.x's cluster client brings a second `rand` (0.9).
//! - **Encryption at rest** (with a key configured): XChaCha20-Poly1305, a
//!   random nonce per value, a key id byte for rotation, and the Redis key
//!   name as associated data so a value moved to another key does not open.
//!   With a key configured, plaintext values are refused.
//! - **Never a single point of failure.** Connections time out quickly and
//!   reconnect on their own; a failing call returns an error at once and
//!   the cache fetches locally, logging the outage once.
//!
//! # Why these pieces are hand-written
//! - The four Lua scripts (fenced save, fenced renewal, fenced release,
//!   atomic peek):
//!   fencing and "value and lease in one look" need server-side atomicity
//!   that no Redis command offers alone.
//! - The notification fan-out ([`tokio::sync::broadcast`](https://docs.rs/tokio/1/tokio/sync/broadcast/) fed by the `redis`
//!   crate's RESP3 push sender): one subscription serves every key and
//!   waiter of the process; a broken subscription wakes everyone.
//! - The value envelope (a few lines around `chacha20poly1305`): the layout
//!   (marker, key id, nonce) and the plaintext-refusal rule are ours.
//! - Following a promoted replica (a `ROLE` question to each node after a
//!   failed call): the `redis` crate's Sentinel client hands out one
//!   connection per call and never moves a [`ConnectionManager`](redis::aio::ConnectionManager),
//!   and needs Sentinel; this works with Sentinel or a manual promotion.
//!
//! Everything else is the `redis` crate's
//! [`ConnectionManager`](redis::aio::ConnectionManager) (reconnects,
//! timeouts) and the cache's own [`StoredToken`](bearer_cache::StoredToken) encoding.

mod builder;
mod conn;
mod envelope;
mod error;
mod keys;
mod notify;
mod scripts;
mod store;

pub use builder::RedisStoreBuilder;
pub use envelope::ValueError;
pub use error::BuildError;
pub use store::{RedisStore, RedisStoreStats};
