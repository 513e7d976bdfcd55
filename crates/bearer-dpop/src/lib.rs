#![forbid(unsafe_code)]
#![doc(html_root_url = "https://docs.rs/bearer-dpop/0.1")]
#![warn(missing_docs, unreachable_pub)]
//! DPoP (RFC 9449): access tokens bound to a key the client holds, so a
//! stolen token is useless without the key.
//!
//! A [`DpopKey`] signs a fresh proof for every request (`typ=dpop+jwt`,
//! the public JWK in the header, `htm`, `htu` without query or fragment,
//! `iat`, a unique `jti`, the token's hash `ath` on resource requests, and
//! the server's nonce when it asked for one), and keeps the latest
//! `DPoP-Nonce` of each origin it talks to (at most
//! [`MAX_ORIGINS`], the least recently used forgotten first).
//!
//! Give the key to a token source (`bearer_oauth2::OAuthClient::dpop`):
//! it sends a proof with every token request and attaches the key to the
//! tokens it gets ([`bearer_cache::TokenBinding`]), so the cache, the
//! reqwest middleware and the tower layer send them as
//! `Authorization: DPoP <token>` with a proof, with no key of their own.
//!
//! ```
//! use bearer_cache::TokenBinding;
//! use bearer_dpop::DpopKey;
//!
//! let key = DpopKey::generate()?; // ES256
//! let proof = key.proof("POST", "https://login.example.com/token", None)?;
//! assert_eq!(proof.split('.').count(), 3);
//! assert_eq!(key.thumbprint().len(), 43); // what the server puts in `cnf.jkt`
//! assert!(!format!("{key:?}").contains("\"d\""));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Signing is `bearer-jose`'s (on `jsonwebtoken`, with the crypto backend
//! the TLS feature picked); this crate only says what goes into a proof.

mod key;
mod nonces;
mod proof;

pub use key::{DpopError, DpopKey};
pub use nonces::MAX_ORIGINS;
pub use proof::access_token_hash;
