#![forbid(unsafe_code)]
// Where other crates' docs link here when this crate's local docs are not
// built yet (`cargo doc --no-deps` documents the workspace in parallel).
#![doc(html_root_url = "https://docs.rs/bearer-cache/0.1")]
#![warn(missing_docs)]
//! An expiry-aware, single-flight access-token cache, independent of any
//! HTTP client: it serves `reqwest`, `hyper`, `tonic` or anything else that
//! sends `Authorization: Bearer …`.
//!
//! What it guarantees, per [`TokenKey`]:
//! - **Single flight.** Any number of concurrent callers on a missing or
//!   expired token cause exactly one fetch; all get its result. The fetch
//!   runs on its own task, so a caller that gives up cancels nothing.
//! - **Refresh ahead.** Past the refresh point callers keep getting the
//!   current token at once while one background fetch replaces it, so no
//!   request waits at a normal expiry. The point is jittered, respects the
//!   server's `refresh_in` hint, and never leaves a short-lived token
//!   without a usable window.
//! - **Stale if error.** A failed refresh keeps the still-valid token in
//!   service and backs off ([`Backoff`]: bounded exponential, jittered,
//!   `Retry-After` honoured). Nothing is served past hard expiry.
//! - **Wait, don't fail.** A caller that needs a token when the last
//!   attempt failed waits for the next attempt, up to
//!   [`max_wait`](TokenCacheBuilder::max_wait) (10 s), and gets its
//!   outcome; one success answers every waiting caller. A permanent
//!   failure (`invalid_client`, `invalid_grant`, …) is returned at once.
//! - **Always recovers.** Whatever ends an attempt — the source's answer,
//!   an error, a panic ([`TokenError::SourcePanicked`]), the timeout, its
//!   task dropped with a runtime that shut down ([`TokenError::Interrupted`])
//!   — it is recorded as that attempt's outcome, and the next demand after
//!   the backoff starts a new one. No outside number can overflow: a
//!   lifetime is capped at [`max_lifetime`](TokenCacheBuilder::max_lifetime)
//!   (24 h), a token expired on arrival is refused
//!   ([`TokenError::AlreadyExpired`]) and backed off like any failure.
//! - **Compare and invalidate.** A server's rejection invalidates a key only
//!   if the rejected token is still the current one: a thousand concurrent
//!   401s for one token cause one fetch.
//! - **A shared second level** ([`TokenStore`]) lets a fleet share a token;
//!   the store is an optimisation, never a point of failure.
//!
//! - **Bound tokens** (DPoP): a token may carry the key it is bound to
//!   ([`TokenBinding`], set by the source); the cache treats it like any
//!   other token, never looks inside, and does not share it through a
//!   [`TokenStore`] (the key stays in the process).
//!
//! Expiry is counted from when the token request was *sent*. Time comes from
//! an injectable [`Clock`], so every rule is testable without sleeping.
//!
//! ```
//! use bearer_cache::{Expiry, FetchContext, Token, TokenCache, TokenError, TokenKey, TokenSource};
//! use std::time::Duration;
//!
//! #[derive(Debug)]
//! struct MySource;
//!
//! #[async_trait::async_trait]
//! impl TokenSource for MySource {
//!     fn id(&self) -> &str { "my-source" }
//!     async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
//!         Ok(Token::bearer("t0k3n").with_expiry(Expiry::In(Duration::from_secs(3600))))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), TokenError> {
//! let cache = TokenCache::builder(MySource)
//!     .refresh_ahead(Duration::from_secs(120))
//!     .expiry_margin(Duration::from_secs(10))
//!     .build();
//! let token = cache.get(&TokenKey::new().scope("orders:read")).await?;
//! assert_eq!(token.expose_authorization_value(), "Bearer t0k3n");
//! # Ok(()) }
//! ```
//!
//! Built on [`papaya`](https://docs.rs/papaya) for the lock-free key index;
//! eviction (bounded, idle keys dropped) is a sweep of ours over it, so a
//! key costs no policy bookkeeping of a general cache crate. The
//! per-key state machine is ours, because no cache crate offers
//! refresh-ahead with stale-if-error and compare-and-invalidate. Its
//! decisions are plain functions over plain state (`cache/state.rs`),
//! proven by property tests over any sequence of demands, answers,
//! failures, panics, cancellations, clock jumps and hostile numbers.
//! On Linux the hit path reads the kernel's coarse monotonic clock through
//! [`rustix`](https://docs.rs/rustix), since std offers only the precise
//! one ([`SystemClock`] says when and why that is safe). An attempt's
//! callers wait on an announcement of ours rather than on `futures`'
//! `Shared`, which wakes its waiters under the lock each of them takes
//! again: a crowd woken at once stalled on it. Ours wakes a crowd as a
//! relay, in the order it came, on a multi-thread runtime, and all at once
//! elsewhere (`cache/outcome.rs`).

mod backoff;
mod binding;
mod cache;
mod clock;
mod error;
mod key;
mod memory_store;
pub mod metrics;
mod policy;
mod source;
pub mod sources;
mod stats;
mod store;
mod token;

pub use backoff::Backoff;
pub use binding::TokenBinding;
pub use cache::{CachedToken, ChangeHook, TokenCache, TokenCacheBuilder};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{Cause, OAuthError, StoreError, TokenError, transient_status};
pub use key::TokenKey;
pub use memory_store::MemoryStore;
pub use source::{FetchContext, FetchReason, TokenSource};
pub use sources::{EnvSource, FileSource, StaticSource, jwt_expiry};
pub use stats::CacheStats;
pub use store::{Lease, StoredToken, TokenStore};
pub use token::{
    AccessToken, Expiry, Fingerprint, RefreshToken, Secret, Token, fingerprint, is_header_safe,
};

/// The `secrecy` crate these secrets are built on, re-exported so a
/// [`secrecy::SecretString`](https://docs.rs/secrecy/0.10/secrecy/type.SecretString.html) of the same version can be passed wherever a
/// [`Secret`], [`AccessToken`] or [`RefreshToken`] is taken.
pub use secrecy;
