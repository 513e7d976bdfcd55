//! The transport-neutral rules of bearer-token auth over HTTP, shared by
//! every adapter (the `reqwest-bearer` middleware, `bearer-tower`'s layer):
//!
//! - **where tokens go**: allowed origins, checked on a `Url` or an
//!   `http::Uri` ([`Authorizer::check_url`], [`Authorizer::check_uri`]);
//! - **what a 401 means**: the `WWW-Authenticate` verdict
//!   ([`Authorizer::verdict`], built on [`parse_www_authenticate`]);
//! - **when to resend**: the per-request budget and its steps
//!   ([`Authorizer::resends`], [`Resends`]);
//! - **bound tokens** (DPoP, RFC 9449): a fresh proof per request
//!   ([`Authorizer::proof_header`]), the nonces answers carry
//!   ([`Authorizer::observe_answer`]), `DPoP` challenges
//!   ([`Authorizer::rejection_for`]). A token's binding comes with it from
//!   the cache, so adapters need no key of their own.
//!
//! An adapter holds an [`Authorizer`] and only moves requests; it decides
//! nothing itself.
//!
//! ```
//! use bearer_cache::{StaticSource, TokenCache};
//! use bearer_http::{Authorizer, Step, Verdict};
//! use http::{Extensions, Method};
//!
//! let cache = TokenCache::builder(StaticSource::new("t0k3n")).build();
//! let auth = Authorizer::builder(cache)
//!     .allow_origin("https://api.example.com".parse()?)
//!     .build()?;
//! let mut resends = auth.resends(&Method::GET, &Extensions::new());
//! assert_eq!(resends.after_rejection(Verdict::Refresh, true), Step::Resend);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod authorizer;
mod builder;
mod challenge;
mod error;
mod extensions;
mod fields;
mod metrics;
mod origin;
mod proof;
mod rejection;
mod resend;

pub use authorizer::{Authorizer, Skipped};
pub use builder::{Adapter, AuthBuilder};
pub use challenge::{
    BearerErrorCode, Challenge, ChallengeParseError, parse_www_authenticate,
    parse_www_authenticate_all,
};
pub use error::BuildError;
pub use extensions::{NoAuthRetry, SkipAuth};
pub use proof::{proof_target, proof_target_of_uri};
pub use rejection::Verdict;
pub use resend::{Resends, Step};
