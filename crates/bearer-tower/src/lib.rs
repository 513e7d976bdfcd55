//! Bearer-token authentication as a [`tower`] layer over `http::Request`:
//! for hyper-util's client, tonic's channels and any tower stack. Tokens
//! come from a [`bearer_cache::TokenCache`]; which requests get one, what a
//! 401 means and when to resend are decided by `bearer-http`, the same
//! code the `reqwest-bearer` middleware runs.
//!
//! ```
//! use bearer_cache::{StaticSource, TokenCache};
//! use bearer_tower::BearerLayer;
//!
//! let cache = TokenCache::builder(StaticSource::new("t0k3n")).build();
//! let layer = BearerLayer::builder(cache)
//!     .allow_origin("https://api.example.com".parse()?)
//!     .build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Per request, as the reqwest middleware: only allowed origins get the
//! token (plain `http` only to loopback unless allowed), requests that
//! carry `Authorization` or [`SkipAuth`] pass untouched; with no token to
//! be had the request is not sent ([`AuthError::NoToken`]); a 401 that
//! blames the token replaces exactly that token and resends once if the
//! body can be copied ([`ReplayBody`]); the last 401 is a response.
//!
//! A DPoP-bound token (from a source with a `DpopKey`) goes as
//! `Authorization: DPoP …` with a fresh proof for the request's method and
//! URL; the layer needs no key of its own. A proof the server refuses
//! (`use_dpop_nonce`, `invalid_dpop_proof`) is resent once with a new one
//! (and the server's nonce), the token kept.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod body;
mod error;
#[cfg(feature = "tonic")]
pub mod grpc;
mod layer;
mod response;
mod service;

pub use body::ReplayBody;
pub use error::AuthError;
pub use layer::{BearerLayer, BearerLayerBuilder};
pub use response::ResponseBody;
pub use service::BearerService;

pub use bearer_http::{AuthBuilder, BuildError, NoAuthRetry, SkipAuth};
