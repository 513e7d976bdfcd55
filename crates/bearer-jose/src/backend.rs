//! The crypto backend: which jsonwebtoken provider signs, and the two
//! things jsonwebtoken leaves to us (making a new EC key, and the public
//! half of an Ed25519 key).

use crate::JoseError;
use crate::der::Der;

/// Installs the provider matching our features as jsonwebtoken's process
/// default, once. jsonwebtoken panics at first use when both of its
/// backends are compiled in and none is installed; a workspace build with
/// both TLS features does exactly that, so we always choose explicitly.
pub(crate) fn ready() -> Result<(), JoseError> {
    #[cfg(feature = "aws-lc")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // Losing the race to another installer is fine: any installed
        // provider signs correctly.
        ONCE.call_once(|| {
            let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        });
        Ok(())
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc")))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        });
        Ok(())
    }
    #[cfg(not(any(feature = "aws-lc", feature = "rust-crypto")))]
    {
        Err(JoseError::NoBackend)
    }
}

/// A new P-256 key as PKCS#8 DER.
pub(crate) fn generate_p256() -> Result<Der, JoseError> {
    ready()?;
    #[cfg(feature = "aws-lc")]
    {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| JoseError::Generate(jsonwebtoken::Algorithm::ES256))?;
        Ok(zeroize::Zeroizing::new(doc.as_ref().to_vec()))
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc")))]
    {
        use crate::der;
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use rand::Rng;
        use zeroize::Zeroizing;
        // Out-of-range scalars (zero or >= n) are astronomically rare; a
        // few tries bound the loop anyway.
        for _ in 0..8 {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand::rng().fill_bytes(&mut *bytes);
            let Ok(secret) = p256::SecretKey::from_slice(&*bytes) else {
                continue;
            };
            let point = secret.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                continue;
            };
            return Ok(der::ec_pkcs8(der::Curve::P256, &*bytes, x, y));
        }
        Err(JoseError::Generate(jsonwebtoken::Algorithm::ES256))
    }
    #[cfg(not(any(feature = "aws-lc", feature = "rust-crypto")))]
    {
        Err(JoseError::NoBackend)
    }
}

/// The public key (32 bytes) of a PKCS#8 Ed25519 private key; `None` when
/// the DER is not one.
pub(crate) fn ed25519_public(pkcs8: &[u8]) -> Result<Option<[u8; 32]>, JoseError> {
    ready()?;
    #[cfg(feature = "aws-lc")]
    {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) else {
            return Ok(None);
        };
        Ok(pair.public_key().as_ref().try_into().ok())
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc")))]
    {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8) else {
            return Ok(None);
        };
        Ok(Some(key.verifying_key().to_bytes()))
    }
    #[cfg(not(any(feature = "aws-lc", feature = "rust-crypto")))]
    {
        let _ = pkcs8;
        Err(JoseError::NoBackend)
    }
}
