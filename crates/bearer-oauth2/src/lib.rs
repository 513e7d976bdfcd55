#![forbid(unsafe_code)]
// Where other crates' docs link here when this crate's local docs are not
// built yet (`cargo doc --no-deps` documents the workspace in parallel).
#![doc(html_root_url = "https://docs.rs/bearer-oauth2/0.1")]
#![warn(missing_docs)]
//! Token sources that talk HTTP, for [`bearer_cache`]: the OAuth 2.0
//! grants (client credentials, password, refresh token with rotation,
//! authorization code with PKCE — on a loopback redirect for desktop apps
//! and CLIs ([`AuthorizationCode`]), or driven by a web app or a pasted
//! callback URL with a token per user ([`UserSignIn`]) — and device
//! authorization), plain login endpoints, and OpenID discovery.
//!
//! Every source implements [`TokenSource`](bearer_cache::TokenSource); the
//! [`TokenCache`](bearer_cache::TokenCache) decides when to call it and
//! hands it the previous token, whose refresh token it uses.
//!
//! ```
//! use bearer_cache::{TokenCache, TokenKey};
//! use bearer_oauth2::ClientCredentials;
//!
//! let source = ClientCredentials::new(
//!     "https://idp.example/oauth2/token".parse().unwrap(),
//!     "orders-service",
//!     "s3cr3t",
//! )
//! .scope("orders:read");
//! let cache = TokenCache::builder(source).build();
//! # let _ = cache;
//! ```
//!
//! # Why not the `oauth2` crate
//! Checked against `oauth2` 5.0.0, its newest release. Its default
//! features bring `reqwest` 0.12, a second `reqwest` beside ours (0.13);
//! with `default-features = false` it takes any client through its
//! `AsyncHttpClient` trait (a closure from `http::Request` to
//! `http::Response`), so that alone is no longer a reason. What remains:
//! - It still brings older majors of crates we use (`base64` 0.22,
//!   `rand` 0.8, `sha2` 0.10, `thiserror` 1, plus `chrono`), which this
//!   workspace keeps at one major version each.
//! - Its token response reads `expires_in` as a number only, so a server
//!   that sends it as a string (many do) fails the whole exchange.
//! - It leaves to the caller what this crate exists for: a cap on the
//!   answer's size, a deadline per fetch, bounded retries honouring
//!   `Retry-After`, a 200 carrying `{"error": …}` read as the error it is,
//!   and error text scrubbed of the request's secrets.
//!
//! The form POST a grant needs is small, so this crate writes it on
//! `reqwest` 0.13 with all of the above.
//!
//! # Client authentication
//! A confidential client proves itself with its secret
//! ([`ClientAuth::Basic`], the default, or [`ClientAuth::Post`]) or with a
//! signed JWT assertion (RFC 7523 §2.2): [`ClientAuth::PrivateKeyJwt`] with
//! a [`bearer_jose::SigningKey`] (RS256, PS256, ES256, EdDSA from PEM or
//! JWK), or [`ClientAuth::ClientSecretJwt`] (HS256 over the client secret).
//! Every token request of every grant signs a new one; see
//! [`AssertionAudience`] for its `aud`.
//!
//! ```
//! use bearer_jose::{Algorithm, SigningKey};
//! use bearer_oauth2::{ClientAuth, ClientCredentials, OAuthClient};
//!
//! // In production: SigningKey::from_pem(Algorithm::RS256, &std::fs::read("key.pem")?)
//! let key = SigningKey::generate(Algorithm::ES256)?.with_kid("orders-2026");
//! println!("register with the provider: {}", key.public_jwk().unwrap());
//! let source = ClientCredentials::from_client(
//!     OAuthClient::new("https://idp.example/oauth2/token".parse().unwrap(), "orders-service")
//!         .auth_method(ClientAuth::PrivateKeyJwt(key)),
//! )
//! .scope("orders:read");
//! # let _ = source;
//! # Ok::<(), bearer_jose::JoseError>(())
//! ```
//!
//! # Secrets
//! Client secrets, passwords, refresh tokens and PKCE verifiers are held as
//! [`bearer_cache::Secret`]s, private keys as [`bearer_jose::SigningKey`]s
//! (redacted, zeroized on drop); client assertions are never logged.
//! `Debug`, errors and logs show at most a fingerprint. Excerpts of unexpected answers are cut to 200 characters
//! with the request's secrets and anything token-like replaced.
//!
//! # Interactive grants and the cache's deadline
//! [`AuthorizationCode`] and [`DeviceCode`] wait for a person; they tell the
//! cache so through [`TokenSource::fetch_deadline`](bearer_cache::TokenSource::fetch_deadline),
//! which lifts the cache's usual 30 s
//! [`fetch_timeout`](bearer_cache::TokenCacheBuilder::fetch_timeout) for them.

mod assertion;
mod client;
mod discovery;
mod dpop;
mod error;
mod grants;
mod login;
mod response;
mod retry;
mod scrub;
mod transport;

pub use assertion::{AssertionAudience, DEFAULT_ASSERTION_LIFETIME};
/// Re-exported from [`bearer_cache`]: a JWT's `exp`, decoded but not verified.
pub use bearer_cache::jwt_expiry;
/// DPoP keys ([`OAuthClient::dpop`]), re-exported from `bearer-dpop`.
pub use bearer_dpop::{DpopError, DpopKey};
pub use client::{ClientAuth, OAuthClient};
pub use discovery::{ProviderMetadata, discover, discover_with};
pub use error::{DiscoveryError, FlowError, StorageError, flow_error};
pub use grants::authorization_code::{AuthorizationCode, AuthorizationRequest, PendingSignIn};
pub use grants::client_credentials::ClientCredentials;
pub use grants::device_code::{DeviceCode, DevicePrompt};
pub use grants::password::PasswordGrant;
pub use grants::refresh::RefreshTokenGrant;
pub use grants::user_sign_in::{MemoryRefreshTokens, RefreshTokenStorage, UserSignIn};
pub use login::{LoginEncoding, LoginEndpoint};
pub use response::parse_token_response;
pub use transport::{DEFAULT_MAX_BODY, DEFAULT_TIMEOUT};
