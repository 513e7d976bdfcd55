//! The key a client proves possession of, and the proofs it signs.

use std::fmt;
use std::sync::Arc;

use bearer_cache::{AccessToken, Cause, Clock, SharedClock, SystemClock, TokenBinding, TokenError};
use bearer_jose::{Algorithm, JoseError, SigningKey};
use serde_json::{Map, Value};

use crate::nonces::NonceBook;
use crate::proof::{Claims, access_token_hash};

/// A DPoP key: signs a fresh proof per request and keeps each server's
/// latest nonce. Cheap to clone (clones share the key and the nonces).
/// `Debug` shows the algorithm and the thumbprint, never the private key,
/// which is wiped from memory when the last clone drops.
///
/// ```
/// use bearer_dpop::DpopKey;
/// use bearer_jose::{Algorithm, SigningKey};
///
/// // Generated (ES256), or your own asymmetric key in any algorithm
/// // bearer-jose loads (RS256, PS256, ES256, ES384, EdDSA).
/// let generated = DpopKey::generate()?;
/// let own = DpopKey::new(SigningKey::generate(Algorithm::ES256)?)?;
/// assert_ne!(generated.thumbprint(), own.thumbprint());
/// assert!(DpopKey::new(SigningKey::hmac(b"0123456789abcdef0123456789abcdef")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<Inner>,
}

struct Inner {
    key: SigningKey,
    /// `typ` and `jwk`, the same in every proof.
    header: Map<String, Value>,
    thumbprint: String,
    nonces: NonceBook,
    clock: SharedClock,
}

/// Why a DPoP key cannot be made or used with a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// DPoP needs an asymmetric key: the server checks the proof with the
    /// public key in its header.
    #[error("a DPoP key must be asymmetric; an HMAC key has no public half")]
    NotAsymmetric,
    /// The key could not be generated or loaded.
    #[error("could not make the DPoP key")]
    Key(#[source] JoseError),
    /// The server's `dpop_signing_alg_values_supported` does not list the
    /// key's algorithm.
    #[error("the server does not take DPoP proofs signed with {alg:?}; it takes {offered}")]
    AlgorithmNotAccepted {
        /// The key's algorithm.
        alg: Algorithm,
        /// What the server lists, space-separated.
        offered: String,
    },
}

impl DpopKey {
    /// A new random ES256 key (P-256), DPoP's common choice.
    pub fn generate() -> Result<Self, DpopError> {
        let key = SigningKey::generate(Algorithm::ES256).map_err(DpopError::Key)?;
        Self::new(key)
    }

    /// A new random key the server takes: ES256 when its
    /// `dpop_signing_alg_values_supported` lists it (or lists nothing);
    /// otherwise [`DpopError::AlgorithmNotAccepted`], and you supply a key
    /// of one of its algorithms with [`new`](Self::new).
    ///
    /// ```
    /// use bearer_dpop::DpopKey;
    /// assert!(DpopKey::generate_for(&["RS256", "ES256"]).is_ok());
    /// let err = DpopKey::generate_for(&["RS256"]).unwrap_err();
    /// assert!(err.to_string().contains("RS256"));
    /// ```
    pub fn generate_for<S: AsRef<str>>(offered: &[S]) -> Result<Self, DpopError> {
        let key = Self::generate()?;
        key.check_accepted(offered)?;
        Ok(key)
    }

    /// Proofs signed with `key` (asymmetric: RS*, PS*, ES*, EdDSA).
    pub fn new(key: SigningKey) -> Result<Self, DpopError> {
        let (Some(jwk), Some(thumbprint)) = (key.public_jwk(), key.thumbprint()) else {
            return Err(DpopError::NotAsymmetric);
        };
        let thumbprint = thumbprint.to_owned();
        let mut header = Map::new();
        header.insert("typ".into(), "dpop+jwt".into());
        header.insert("jwk".into(), jwk);
        Ok(DpopKey {
            inner: Arc::new(Inner {
                key,
                header,
                thumbprint,
                nonces: NonceBook::default(),
                clock: Arc::new(SystemClock),
            }),
        })
    }

    /// The clock proofs take `iat` from (default: the system's); share a
    /// `bearer_cache::ManualClock` with the server in tests. Nonces
    /// already kept are not carried over.
    pub fn with_clock(self, clock: impl Clock) -> Self {
        let inner = &*self.inner;
        DpopKey {
            inner: Arc::new(Inner {
                key: inner.key.clone(),
                header: inner.header.clone(),
                thumbprint: inner.thumbprint.clone(),
                nonces: NonceBook::default(),
                clock: Arc::new(clock),
            }),
        }
    }

    /// Whether a server that lists `offered` as its
    /// `dpop_signing_alg_values_supported` takes this key's proofs (an
    /// empty list says nothing, and passes).
    pub fn check_accepted<S: AsRef<str>>(&self, offered: &[S]) -> Result<(), DpopError> {
        let alg = self.algorithm();
        let name = format!("{alg:?}");
        if offered.is_empty() || offered.iter().any(|o| o.as_ref() == name) {
            return Ok(());
        }
        let offered: Vec<&str> = offered.iter().map(AsRef::as_ref).collect();
        Err(DpopError::AlgorithmNotAccepted {
            alg,
            offered: offered.join(" "),
        })
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.key.algorithm()
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key: what the server
    /// binds tokens to (`cnf.jkt`).
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// The public JWK that goes in every proof's header.
    pub fn public_jwk(&self) -> &Value {
        &self.inner.header["jwk"]
    }

    /// The nonce kept for `target`'s origin, if a server gave one.
    pub fn nonce_for(&self, target: &str) -> Option<String> {
        self.inner.nonces.get(target)
    }
}

impl TokenBinding for DpopKey {
    fn scheme(&self) -> &'static str {
        "DPoP"
    }

    fn proof_header(&self) -> &'static str {
        "DPoP"
    }

    fn proof(
        &self,
        method: &str,
        target: &str,
        access_token: Option<&AccessToken>,
    ) -> Result<String, TokenError> {
        let inner = &*self.inner;
        let jti = bearer_jose::new_jti();
        let nonce = inner.nonces.get(target);
        let ath = access_token.map(|t| access_token_hash(t.expose_secret()));
        let claims = Claims {
            jti: &jti,
            htm: method,
            htu: target,
            iat: bearer_jose::numeric_date(inner.clock.system_now()),
            nonce: nonce.as_deref(),
            ath: ath.as_deref(),
        };
        inner
            .key
            .sign(&inner.header, &claims)
            .map_err(|e| TokenError::ProofFailed(Cause::new(e)))
    }

    fn remember_nonce(&self, target: &str, nonce: &str) {
        self.inner.nonces.remember(target, nonce);
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.algorithm())
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bearer_jose::{VerifyingKey, peek_header, verify};

    #[test]
    fn a_proof_says_what_rfc9449_asks() {
        let key = DpopKey::generate().unwrap();
        key.remember_nonce("https://rs.example/other", "n-1");
        let token = AccessToken::new("tok");
        let proof = key
            .proof("GET", "https://rs.example/orders", Some(&token))
            .unwrap();
        let header = peek_header(&proof).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"].get("d").is_none(), "no private part");
        let public = VerifyingKey::from_jwk(&header["jwk"]).unwrap();
        let claims = verify(&proof, &public, &[Algorithm::ES256]).unwrap().claims;
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://rs.example/orders");
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], access_token_hash("tok"));
        assert!(claims["iat"].as_u64().unwrap() > 1_600_000_000);
        let again = key.proof("GET", "https://rs.example/orders", None).unwrap();
        let again = verify(&again, &public, &[Algorithm::ES256]).unwrap().claims;
        assert_ne!(again["jti"], claims["jti"]);
        assert!(again.get("ath").is_none());
        let elsewhere = key.proof("POST", "https://as.example/token", None).unwrap();
        let elsewhere = verify(&elsewhere, &public, &[Algorithm::ES256])
            .unwrap()
            .claims;
        assert!(elsewhere.get("nonce").is_none());
        assert_eq!(
            bearer_jose::jwk_thumbprint(&header["jwk"]).unwrap(),
            key.thumbprint()
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = DpopKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.thumbprint()));
        for member in ["\"d\"", "\"x\"", "\"y\""] {
            assert!(!shown.contains(member), "{shown}");
        }
    }

    #[test]
    fn server_algorithm_lists() {
        let key = DpopKey::generate().unwrap();
        assert!(key.check_accepted::<&str>(&[]).is_ok());
        assert!(key.check_accepted(&["PS256", "ES256"]).is_ok());
        assert!(matches!(
            key.check_accepted(&["RS256", "EdDSA"]),
            Err(DpopError::AlgorithmNotAccepted { .. })
        ));
    }
}
