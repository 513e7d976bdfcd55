#![forbid(unsafe_code)]
#![doc(html_root_url = "https://docs.rs/bearer-jose/0.1")]
#![warn(missing_docs, unreachable_pub)]
//! Signing keys and compact JWS for the reqwest-bearer crates: the client
//! assertions of `private_key_jwt` and `client_secret_jwt` (RFC 7523,
//! OpenID Connect Core §9) in `bearer-oauth2`, and DPoP proofs (RFC 9449).
//!
//! ```
//! use bearer_jose::{Algorithm, SigningKey};
//! use serde_json::{Map, json};
//!
//! let key = SigningKey::generate(Algorithm::ES256)?.with_kid("k1");
//! let jws = key.sign(&Map::new(), &json!({
//!     "iss": "client-1",
//!     "jti": bearer_jose::new_jti(),
//! }))?;
//! assert_eq!(jws.split('.').count(), 3);
//! println!("register this: {}", key.public_jwk().unwrap());
//! # Ok::<(), bearer_jose::JoseError>(())
//! ```
//!
//! # Which crate does what
//! - **[`jsonwebtoken`] (10)** parses PEM keys, signs and verifies
//!   (every JWS signature here is its `crypto::sign`/`crypto::verify`),
//!   and derives the public JWK of RSA and EC keys. It is the most used
//!   JWT crate, kept up to date, and lets the crypto backend be chosen.
//! - **The backend** follows the TLS feature of `reqwest-bearer`, so a
//!   build carries one crypto library: feature `aws-lc` (the default, and
//!   what `rustls` turns on) uses `aws-lc-rs`, which rustls already
//!   brings; feature `rust-crypto` (what `native-tls` turns on) uses the
//!   RustCrypto crates (`rsa`, `p256`, `p384`, `ed25519-dalek`, `hmac`)
//!   and no C code. With both on, aws-lc is used. The backend crate is also
//!   called directly for the two things jsonwebtoken does not do: making a
//!   new P-256 key ([`SigningKey::generate`]) and the public half of an
//!   Ed25519 key.
//! - **By hand, and why:** the compact serialization (two base64url JSON
//!   parts and a dot), because the header needs members jsonwebtoken's
//!   `Header` cannot hold (DPoP's `jwk` as any key type); turning a
//!   private JWK into PKCS#1/PKCS#8 DER (a fixed layout of a few
//!   integers), because jsonwebtoken loads private keys only from PEM or
//!   DER; and the RFC 7638 thumbprint ([`jwk_thumbprint`]), a hash over a
//!   fixed member order, so it works for JWKs from any source and never
//!   panics on a key type.
//!
//! Costs of the choice: jsonwebtoken brings `base64` 0.22 beside the
//! workspace's 0.23 (and with `rust-crypto`, older `rand`/`sha2` majors for
//! its own use). They stay private to it.
//!
//! # Secrets
//! Private keys and HMAC secrets never appear in `Debug`, `Display` or
//! errors (errors name the algorithm and the member, not bytes), and are
//! zeroized on drop.

mod backend;
mod claims;
mod der;
mod error;
mod jwk;
mod key;
mod verify;

pub use claims::{issued_and_expiry, new_jti, numeric_date};
pub use error::JoseError;
pub use jsonwebtoken::Algorithm;
pub use jwk::jwk_thumbprint;
pub use key::SigningKey;
pub use verify::{Verified, VerifyingKey, peek_header, verify};
