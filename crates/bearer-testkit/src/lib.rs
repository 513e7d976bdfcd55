#![forbid(unsafe_code)]
// Where other crates' docs link here when this crate's local docs are not
// built yet (`cargo doc --no-deps` documents the workspace in parallel).
#![doc(html_root_url = "https://docs.rs/bearer-testkit/0.1")]
#![warn(missing_docs)]
//! An in-process OAuth 2.0 authorization server and protected API, with
//! fault injection, for testing bearer-token clients over real HTTP.
//!
//! [`TestServer::start`] binds two loopback listeners on ephemeral ports
//! (the server, and a second origin for cross-origin redirect tests) and
//! stops when dropped. The [`Control`] handle injects faults, moves the
//! server's clock, approves device codes, and reads [`Counters`].
//!
//! # Test your own client in ten lines
//!
//! ```
//! use bearer_testkit::{TestServer, TokenFault};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let server = TestServer::start().await;
//! server.control().fail_next_token_requests(1, TokenFault::ServiceUnavailable { retry_after: Some(1) });
//! let http = bearer_testkit::client_builder().build().unwrap();
//! let form = [("grant_type", "client_credentials"), ("scope", "read")];
//! let token_request = || http.post(server.token_url()).basic_auth(server.client_id(), Some(server.client_secret())).form(&form);
//! assert_eq!(token_request().send().await.unwrap().status(), 503);
//! let token: serde_json::Value = token_request().send().await.unwrap().json().await.unwrap();
//! let api = http.get(server.api_url("/api/echo")).bearer_auth(token["access_token"].as_str().unwrap());
//! assert_eq!(api.send().await.unwrap().status(), 200);
//! assert_eq!(server.control().counters().issued.client_credentials, 1);
//! # }
//! ```
//!
//! # What is served
//!
//! | path | what |
//! |---|---|
//! | `POST /token` | grants `client_credentials`, `password`, `refresh_token` (optional rotation), `authorization_code` (PKCE S256), `urn:ietf:params:oauth:grant-type:device_code`; client auth `client_secret_basic` (RFC 6749 §2.3.1 form-urlencoding honoured), `client_secret_post`, none for public clients, and JWT assertions for clients registered with [`ClientConfig::private_key_jwt`] / [`ClientConfig::client_secret_jwt`] (signature with the registered JWK or secret, allowed `alg`, `iss` = `sub` = client, `aud` the token endpoint or issuer, `exp` ≤ 300 s after `iat`, `jti` replay; [`Control::reject_next_client_assertions`] injects refusals); RFC 6749 §5.2 errors |
//! | `GET /authorize` | approves automatically as the default user (or `login_hint`), redirects with `code`, `state`, `iss` |
//! | `POST /device_authorization`, `GET /device?user_code=` | RFC 8628; approve/deny through [`Control`] or by visiting the verification URI |
//! | `POST /revoke`, `POST /introspect` | RFC 7009, RFC 7662 |
//! | `GET /.well-known/openid-configuration` | discovery (also at `/.well-known/oauth-authorization-server`) |
//! | `POST /login` (path and field names set by [`LoginForm`]), `POST /login/access-token` | plain JSON/form login answering `{"token"}` (or the field [`LoginForm`] names) / `{"access_token"}` with a configurable expiry field ([`LoginExpiry`]) |
//! | `/api/echo`, `/api/slow?ms=`, `/api/stream?chunks=`, `/api/redirect?to=`, `/api/redirect-cross?to=`, `/api/scoped/{scope}`, `/api/status/{code}`, `/api/challenge?status=&www_authenticate=` | the protected API: RFC 6750 challenges on 401/403 |
//! | `/api/grpc` | the protected API as a gRPC server answers a unary call: `content-type: application/grpc`, `grpc-status: 16` on a refused token, `0` otherwise |
//! | other origin: `/redirect?to=`, `/redirect-back?to=` | 302 to a path on the other origin itself, or back on the main origin (an A → B → A bounce); no authentication |
//! | other origin: any other path | records headers, echoes, no authentication |
//! | TLS origin ([`TestServerBuilder::mutual_tls`], [`TestServer::mtls_url`]): everything above | asks for a client certificate (required at the handshake by default); clients registered with [`ClientConfig::tls_client_auth`] (subject DN or DNS SAN, chain checked against the [`TestPki`] CA) or [`ClientConfig::self_signed_tls_client_auth`] authenticate with it; tokens issued over it are bound (`cnf.x5t#S256`, also in JWT tokens and introspection) and the API refuses them, 401 `invalid_token`, on a connection presenting another certificate or none; discovery lists `mtls_endpoint_aliases` |
//!
//! # Time
//!
//! Expiry checks and issued lifetimes use the injected clock
//! ([`TestServerBuilder::clock`]): share a `bearer_cache::ManualClock` with
//! the client and advance it instead of sleeping. Latency and hang faults
//! use real time.
//!
//! ```
//! use bearer_cache::ManualClock;
//! use bearer_testkit::TestServer;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let clock = ManualClock::new();
//! let server = TestServer::builder()
//!     .clock(clock.clone())
//!     .token_lifetime(Duration::from_secs(60))
//!     .start()
//!     .await;
//! let token = server.control().mint_access_token("read");
//! let http = bearer_testkit::client_builder().build().unwrap();
//! let api = || http.get(server.api_url("/api/echo")).bearer_auth(&token).send();
//! assert_eq!(api().await.unwrap().status(), 200);
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(api().await.unwrap().status(), 401);
//! # }
//! ```

mod api;
mod api_challenge;
mod authorize;
mod authz;
mod client_assertion;
mod client_auth;
mod config;
mod control;
mod counters;
mod device;
mod discovery;
mod dpop;
mod faults;
mod introspection;
mod jwt;
mod login;
mod mtls;
mod oauth;
mod routes;
mod server;
mod state;
mod store;
mod validator;

pub use authorize::{query_params, s256 as pkce_s256_challenge};
pub use config::{AccessTokenFormat, ClientConfig, GrantType, LoginExpiry, LoginForm, UserConfig};
pub use control::Control;
pub use counters::{
    ClientAuthCounts, ClientAuthMethod, Counters, Endpoint, GrantCounts, TokenRequestRecord,
};
pub use dpop::{DpopCounts, DpopFault};
pub use faults::TokenFault;
pub use mtls::{ClientCertificate, TestPki, TlsSubject};
pub use server::{IntoSharedClock, TestServer, TestServerBuilder};
pub use validator::{ApiValidator, basic_authorization};

/// reqwest's client builder for talking to a test server: proxy variables
/// (`HTTP_PROXY`, `ALL_PROXY`, …) ignored, since a test server is plain
/// `http` on loopback and a proxy would see its tokens and secrets in
/// clear. The kit's own clients (remote introspection) are built from it.
///
/// ```
/// let http = bearer_testkit::client_builder().build().unwrap();
/// # drop(http);
/// ```
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy()
}
