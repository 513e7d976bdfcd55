#![forbid(unsafe_code)]
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
//!   fetches; the others wait for its result. A holder that dies leaves a
//!   lease that expires after its TTL, and the waiters move on.
//! - **Fencing.** A save made under a lease is a Lua script that writes only
//!   if the lease still holds that holder's fence, drops the lease in the
//!   same step, and publishes a notification; a holder that stalled past
//!   its lease cannot overwrite its successor's token.
//! - **Notified, not polling.** Waiters listen on one pub/sub channel per
//!   store (`<prefix>updates`), subscribing *before* they look at the
//!   value, so a save can't slip between the look and the wait.
//! - **Keys reveal nothing.** Names are `<prefix>token:<hash>` and
//!   `<prefix>lease:<hash>`, the hash of the cache's key (itself a digest).
//! - **Encryption at rest** (with a key configured): XChaCha20-Poly1305, a
//!   random nonce per value, a key id byte for rotation, and the Redis key
//!   name as associated data so a value moved to another key does not open.
//!   With a key configured, plaintext values are refused.
//! - **Never a single point of failure.** Connections time out quickly and
//!   reconnect on their own; a failing call returns an error at once and
//!   the cache fetches locally, logging the outage once.
//!
//! # Why these pieces are hand-written
//! - The three Lua scripts (fenced save, fenced release, atomic peek):
//!   fencing and "value and lease in one look" need server-side atomicity
//!   that no Redis command offers alone.
//! - The notification fan-out ([`tokio::sync::broadcast`] fed by the `redis`
//!   crate's RESP3 push sender): one subscription serves every key and
//!   waiter of the process; a broken subscription wakes everyone.
//! - The value envelope (a few lines around `chacha20poly1305`): the layout
//!   (marker, key id, nonce) and the plaintext-refusal rule are ours.
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
