//! The crate's one error type.

use jsonwebtoken::Algorithm;

/// What went wrong loading a key, signing or verifying. Messages name the
/// step and the algorithm, never key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// The PEM text is not a private key of the algorithm's family (RSA for
    /// RS*/PS*, a PKCS#8 EC key on the right curve for ES*, a PKCS#8
    /// Ed25519 key for EdDSA).
    #[error("the PEM does not hold a usable {alg:?} private key")]
    InvalidPem {
        /// The algorithm the key was loaded for.
        alg: Algorithm,
        /// jsonwebtoken's or the backend's reason (it names no key bytes).
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// The JWK is not a usable private key; `reason` says which part.
    #[error("the private JWK is not usable: {reason}")]
    InvalidJwk {
        /// Which member is missing or wrong.
        reason: &'static str,
    },
    /// The algorithm is not one this operation supports (for example HS256
    /// from PEM, or generating an RSA key).
    #[error("algorithm {0} is not supported for this")]
    UnsupportedAlgorithm(String),
    /// Neither backend feature (`aws-lc`, `rust-crypto`) is on, so nothing
    /// can sign.
    #[error("no crypto backend: enable bearer-jose's `aws-lc` or `rust-crypto` feature")]
    NoBackend,
    /// The backend failed to make a new key.
    #[error("generating a {0:?} key failed")]
    Generate(Algorithm),
    /// The backend failed to sign.
    #[error("signing with the {alg:?} key failed")]
    Sign {
        /// The key's algorithm.
        alg: Algorithm,
        /// The backend's reason.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A JWS to verify is not compact JWS with JSON header and claims.
    #[error("the JWS is malformed: {0}")]
    Malformed(&'static str),
    /// A JWS names an algorithm the verifier does not allow.
    #[error("the JWS algorithm {0} is not allowed")]
    AlgorithmNotAllowed(String),
    /// A JWS's signature does not verify with the key.
    #[error("the JWS signature does not verify")]
    BadSignature,
}
