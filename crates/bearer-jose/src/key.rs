//! [`SigningKey`]: a private or HMAC key with its algorithm and key id.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::jwk::{self, B64, NotAKey};
use crate::{JoseError, backend};

/// A key that signs JWS: RSA (RS256/384/512, PS256/384/512), EC (ES256,
/// ES384), Ed25519 (EdDSA) or an HMAC secret (HS256/384/512).
///
/// Clone is cheap (the key is shared). `Debug` shows the algorithm, the
/// key id and the public thumbprint, never key bytes; the key bytes are
/// zeroized when the last clone drops (jsonwebtoken's `EncodingKey` wipes
/// itself, and every intermediate buffer here is wiped too).
///
/// ```
/// use bearer_jose::{Algorithm, SigningKey};
///
/// let key = SigningKey::generate(Algorithm::ES256)?.with_kid("2026-12");
/// assert_eq!(key.algorithm(), Algorithm::ES256);
/// assert_eq!(key.kid(), Some("2026-12"));
/// let jwk = key.public_jwk().expect("asymmetric");
/// assert_eq!(jwk["kty"], "EC");
/// assert!(jwk.get("d").is_none());
/// assert!(!format!("{key:?}").contains("\"d\""));
/// # Ok::<(), bearer_jose::JoseError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<Inner>,
}

struct Inner {
    alg: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
    /// With `kid` when set; `None` for HMAC.
    public: Option<Map<String, Value>>,
    thumbprint: Option<String>,
}

impl SigningKey {
    fn assemble(alg: Algorithm, kid: Option<String>, key: EncodingKey) -> Result<Self, NotAKey> {
        let mut public = jwk::public_jwk(alg, &key)?;
        let thumbprint = public
            .as_ref()
            .and_then(|p| jwk::jwk_thumbprint(&Value::Object(p.clone())).ok());
        if let (Some(public), Some(kid)) = (public.as_mut(), kid.as_ref()) {
            public.insert("kid".into(), kid.clone().into());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                alg,
                kid,
                key,
                public,
                thumbprint,
            }),
        })
    }

    /// Loads a private key from PEM for `alg`: RSA keys as PKCS#1
    /// (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`); EC and Ed25519 keys as
    /// PKCS#8. The key is parsed now, so a wrong or damaged key fails here
    /// and not at the first request.
    ///
    /// # Errors
    /// [`JoseError::UnsupportedAlgorithm`] for HMAC algorithms (use
    /// [`SigningKey::hmac`]); [`JoseError::InvalidPem`] when the PEM is not
    /// a private key of `alg`'s family and curve.
    ///
    /// ```
    /// use bearer_jose::{Algorithm, JoseError, SigningKey};
    ///
    /// let err = SigningKey::from_pem(Algorithm::RS256, b"not a key").unwrap_err();
    /// assert!(matches!(err, JoseError::InvalidPem { .. }));
    /// ```
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, JoseError> {
        backend::ready()?;
        let loaded = match alg.family() {
            AlgorithmFamily::Hmac => {
                return Err(JoseError::UnsupportedAlgorithm(format!("{alg:?} from PEM")));
            }
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
        };
        let key = loaded.map_err(|source| JoseError::InvalidPem { alg, source })?;
        Self::assemble(alg, None, key)
            .map_err(|NotAKey(source)| JoseError::InvalidPem { alg, source })
    }

    /// Loads a private JWK (JSON text): `RSA` with all its private members
    /// (`d`, `p`, `q`, `dp`, `dq`, `qi`), `EC` on P-256 or P-384, `OKP`
    /// Ed25519, or `oct`. The algorithm is the JWK's `alg`, else RS256 for
    /// RSA, the curve's ES algorithm, EdDSA, or HS256; `kid` is kept.
    ///
    /// # Errors
    /// [`JoseError::InvalidJwk`] naming what is missing or inconsistent;
    /// [`JoseError::UnsupportedAlgorithm`] for an `alg` jsonwebtoken lacks.
    ///
    /// ```
    /// use bearer_jose::{Algorithm, SigningKey};
    ///
    /// // RFC 8037's Ed25519 example key.
    /// let key = SigningKey::from_jwk(r#"{"kty":"OKP","crv":"Ed25519",
    ///     "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed-1"}"#)?;
    /// assert_eq!(key.algorithm(), Algorithm::EdDSA);
    /// assert_eq!(key.kid(), Some("ed-1"));
    /// assert_eq!(key.thumbprint(), Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"));
    /// # Ok::<(), bearer_jose::JoseError>(())
    /// ```
    pub fn from_jwk(json: &str) -> Result<Self, JoseError> {
        backend::ready()?;
        let imported = jwk::import(json)?;
        Self::assemble(imported.alg, imported.kid.clone(), imported.key.clone()).map_err(|_| {
            JoseError::InvalidJwk {
                reason: "the members do not form a valid key for its algorithm",
            }
        })
    }

    /// An HS256 key over `secret` (for `client_secret_jwt`, where the
    /// secret is the client secret's bytes).
    ///
    /// ```
    /// use bearer_jose::{Algorithm, SigningKey};
    ///
    /// let key = SigningKey::hmac(b"a client secret of at least 32 bytes!");
    /// assert_eq!(key.algorithm(), Algorithm::HS256);
    /// assert!(key.public_jwk().is_none());
    /// ```
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            inner: Arc::new(Inner {
                alg: Algorithm::HS256,
                kid: None,
                key: EncodingKey::from_secret(secret),
                public: None,
                thumbprint: None,
            }),
        }
    }

    /// A new random key for `alg`. ES256 is supported (DPoP's usual
    /// algorithm); others fail with [`JoseError::UnsupportedAlgorithm`].
    ///
    /// # Errors
    /// Also [`JoseError::Generate`] if the backend's generator fails.
    pub fn generate(alg: Algorithm) -> Result<Self, JoseError> {
        if alg != Algorithm::ES256 {
            return Err(JoseError::UnsupportedAlgorithm(format!(
                "generating {alg:?} keys"
            )));
        }
        let der = backend::generate_p256()?;
        Self::assemble(alg, None, EncodingKey::from_ec_der(&der))
            .map_err(|_| JoseError::Generate(alg))
    }

    /// The same key with key id `kid` (sent as the JWS `kid` header and in
    /// the public JWK).
    pub fn with_kid(self, kid: impl Into<String>) -> Self {
        let kid = kid.into();
        let inner = &*self.inner;
        let mut public = inner.public.clone();
        if let Some(public) = public.as_mut() {
            public.insert("kid".into(), kid.clone().into());
        }
        Self {
            inner: Arc::new(Inner {
                alg: inner.alg,
                kid: Some(kid),
                key: inner.key.clone(),
                public,
                thumbprint: inner.thumbprint.clone(),
            }),
        }
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    /// The key id, if one was given or came with the JWK.
    pub fn kid(&self) -> Option<&str> {
        self.inner.kid.as_deref()
    }

    /// The public JWK (with `alg`, and `kid` when set) to register with a
    /// server or put in a DPoP header; `None` for HMAC keys.
    pub fn public_jwk(&self) -> Option<Value> {
        self.inner.public.clone().map(Value::Object)
    }

    /// The RFC 7638 SHA-256 thumbprint of the public JWK (DPoP's
    /// `cnf.jkt`); `None` for HMAC keys, whose "public" half is the secret.
    pub fn thumbprint(&self) -> Option<&str> {
        self.inner.thumbprint.as_deref()
    }

    /// Signs `claims` as a compact JWS. The header is `header_fields`
    /// (such as `typ` or `jwk`) plus `alg`, always this key's, and `kid`
    /// when the key has one and `header_fields` does not set it.
    ///
    /// # Errors
    /// [`JoseError::Sign`] when the backend fails.
    ///
    /// ```
    /// use bearer_jose::{Algorithm, SigningKey};
    /// use serde_json::{Map, json};
    ///
    /// let key = SigningKey::hmac(b"0123456789abcdef0123456789abcdef").with_kid("k1");
    /// let mut header = Map::new();
    /// header.insert("typ".into(), json!("JWT"));
    /// let jws = key.sign(&header, &json!({"sub": "client-1"}))?;
    /// assert_eq!(jws.split('.').count(), 3);
    /// # Ok::<(), bearer_jose::JoseError>(())
    /// ```
    pub fn sign<C: Serialize + ?Sized>(
        &self,
        header_fields: &Map<String, Value>,
        claims: &C,
    ) -> Result<String, JoseError> {
        backend::ready()?;
        let alg = self.inner.alg;
        let mut header = header_fields.clone();
        header.insert("alg".into(), format!("{alg:?}").into());
        if let Some(kid) = &self.inner.kid {
            header.entry("kid").or_insert_with(|| kid.clone().into());
        }
        let unserializable =
            |_| JoseError::Malformed("the header or claims do not serialize to JSON");
        let header = serde_json::to_vec(&header).map_err(unserializable)?;
        let claims = serde_json::to_vec(claims).map_err(unserializable)?;
        let mut jws = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 100);
        B64.encode_string(&header, &mut jws);
        jws.push('.');
        B64.encode_string(&claims, &mut jws);
        let signature = jsonwebtoken::crypto::sign(jws.as_bytes(), &self.inner.key, alg)
            .map_err(|source| JoseError::Sign { alg, source })?;
        jws.push('.');
        jws.push_str(&signature);
        Ok(jws)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.inner.alg)
            .field("kid", &self.inner.kid)
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}
