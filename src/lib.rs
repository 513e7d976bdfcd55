//! Bearer-token authentication for [`reqwest-middleware`](reqwest_middleware):
//! tokens from an expiry-aware, single-flight cache, sent only to the
//! origins you allow, refreshed and resent once when a server answers 401.
//!
//! ```no_run
//! use reqwest_bearer::{BearerAuth, TokenCache, oauth2::ClientCredentials};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = ClientCredentials::new(
//!     "https://login.example.com/oauth2/token".parse()?,
//!     "my-client",
//!     "my-secret",
//! )
//! .scope("orders:read");
//! let auth = BearerAuth::builder(TokenCache::builder(source).build())
//!     .allow_origin("https://api.example.com".parse()?)
//!     .build()?;
//! let http = reqwest::Client::builder()
//!     .redirect(BearerAuth::redirect_policy())
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(http)
//!     .with(auth)
//!     .build();
//! let orders = client.get("https://api.example.com/orders").send().await?;
//! # Ok(()) }
//! ```
//!
//! What the middleware does, per request:
//! - **Where tokens go.** Only to allowed origins (scheme, host, port);
//!   plain `http` only to loopback unless allowed explicitly. Other requests
//!   pass through untouched, as do requests that already carry
//!   `Authorization` (configurable) and those marked [`SkipAuth`]. The header
//!   is marked sensitive; with [`BearerAuth::redirect_policy`] on the client,
//!   no redirect takes it to another origin. What the check cannot see
//!   (URL-rewriting middlewares inside it, proxies) is in [`BearerAuth`]'s docs.
//! - **No token, no request.** If none can be had, the request is not sent
//!   and the caller gets a [`BearerError`] (transient or not, with the
//!   OAuth error code when there is one).
//! - **401.** The `WWW-Authenticate` challenges decide ([`parse_www_authenticate`]):
//!   `invalid_token` (or a bare 401, configurable) replaces exactly the token
//!   sent — concurrent 401s for one token cause one fetch — and resends the
//!   request once, if its body can be replayed; `insufficient_scope` and
//!   `invalid_request` return the 401 as it is. The last 401 is a response,
//!   never an error. A 401 to a hop that did not carry the token (after a
//!   redirect through another origin) changes nothing.
//! - **DPoP.** A source with a [`DpopKey`] gets tokens bound to it
//!   (RFC 9449); they are sent as `Authorization: DPoP …` with a fresh
//!   proof per request (`ath`, the request's method and URL without query,
//!   the server's latest nonce). A refused proof (`use_dpop_nonce`,
//!   `invalid_dpop_proof`) is resent once with a new proof, the token kept.
//!
//!   ```no_run
//!   use reqwest_bearer::{BearerAuth, DpopKey, TokenCache, oauth2::ClientCredentials};
//!
//!   # fn run() -> Result<(), Box<dyn std::error::Error>> {
//!   let source = ClientCredentials::new(
//!       "https://login.example.com/oauth2/token".parse()?,
//!       "my-client",
//!       "my-secret",
//!   )
//!   .dpop(DpopKey::generate()?);
//!   let auth = BearerAuth::builder(TokenCache::builder(source).build())
//!       .allow_origin("https://api.example.com".parse()?)
//!       .build()?;
//!   # Ok(()) }
//!   ```
//! - **Retries.** Put `reqwest-retry` outside this middleware with
//!   [`BearerRetryStrategy`], which retries a token endpoint that is down and
//!   never one that refused the client.
//! - **Worst-case time.** One call waits for at most one token fetch (the
//!   source's `timeout`, 10 s by default retries included, capped by the
//!   cache's `fetch_timeout`, 30 s), then the request (reqwest has no
//!   timeout by default: set one on your `reqwest::Client`), then, after a
//!   401 that blames the token, one more fetch and one more request
//!   ([`BearerAuthBuilder::max_auth_retries`], default 1). Defaults and a
//!   30 s request timeout: 10 + 30 + 10 + 30 = 80 s; `reqwest-retry` outside
//!   multiplies it by its attempts and adds its backoff.
//! - **Tracing.** One `bearer_auth` span per authorized request, with the
//!   token's fingerprint (never the token), `cache_hit` and `auth_retry`.
#![forbid(unsafe_code)]
// Where other crates' docs link here when this crate's local docs are not
// built yet (`cargo doc --no-deps` documents the workspace in parallel).
#![doc(html_root_url = "https://docs.rs/reqwest-bearer/0.1")]
#![warn(missing_docs)]

mod error;
mod extensions;
mod middleware;
mod redirect;
mod retry;
mod spare;

pub use bearer_http::{
    BearerErrorCode, BuildError, Challenge, ChallengeParseError, NoAuthRetry, SkipAuth,
    parse_www_authenticate, parse_www_authenticate_all,
};
pub use error::BearerError;
pub use extensions::RequestBuilderExt;
pub use middleware::{BearerAuth, BearerAuthBuilder};
pub use redirect::RedirectRefused;
pub use retry::BearerRetryStrategy;

/// A DPoP key (RFC 9449) for a token source: see [`oauth2::OAuthClient::dpop`].
pub use bearer_oauth2::DpopKey;

pub use bearer_cache::{
    AccessToken, Backoff, CacheStats, CachedToken, Clock, Expiry, FetchContext, FetchReason,
    Fingerprint, ManualClock, OAuthError, RefreshToken, Secret, StaticSource, SystemClock, Token,
    TokenCache, TokenCacheBuilder, TokenError, TokenKey, TokenSource, TokenStore, fingerprint,
};

/// The token cache, in full (stores, hooks, clocks).
pub use bearer_cache as cache;
/// The `secrecy` crate behind [`Secret`]: a `secrecy::SecretString` is
/// accepted wherever a secret is.
pub use bearer_cache::secrecy;
/// Signing keys for `private_key_jwt` / `client_secret_jwt` and DPoP; its
/// crypto backend follows this crate's TLS feature.
pub use bearer_jose as jose;
/// Token sources that speak OAuth 2.0 and login endpoints.
pub use bearer_oauth2 as oauth2;
/// The HTTP client this crate is built on, re-exported so your client and
/// ours are one `reqwest` (build yours as `reqwest_bearer::reqwest::Client`;
/// TLS is chosen with this crate's `rustls` or `native-tls` feature).
pub use reqwest;
/// The middleware framework this crate plugs into, re-exported so versions
/// match, with its `json`, `form` and `query` features on:
///
/// ```no_run
/// use reqwest_bearer::reqwest_middleware::ClientBuilder;
/// use reqwest_bearer::{BearerAuth, StaticSource, reqwest};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let api = reqwest::Url::parse("https://api.example.com")?;
/// let auth = BearerAuth::builder_for_source(StaticSource::new("t0k3n"))
///     .allow_origin(api.clone())
///     .build()?;
/// let client = ClientBuilder::new(reqwest::Client::new()).with(auth).build();
/// let order = std::collections::HashMap::from([("sku", "A-1"), ("quantity", "2")]);
/// let created = client.post(api.join("/orders")?).json(&order).send().await?;
/// # Ok(()) }
/// ```
pub use reqwest_middleware;
/// The retry middleware [`BearerRetryStrategy`] is written for.
pub use reqwest_retry;

/// Every setting of the cache, the sources and the middleware, with its
/// default and why; how they compose with `reqwest-retry`; the worst-case
/// time of one call (`docs/configuration.md`, compiled here so its example
/// cannot drift).
#[doc = include_str!("../docs/configuration.md")]
pub mod configuration {}

/// The README's example, compiled as a doctest so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
