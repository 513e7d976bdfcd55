//! What a value looks like in Redis: the cache's own encoding, sealed with
//! XChaCha20-Poly1305 when a key is configured.
//!
//! Sealed layout: `[MARKER, key id, 24-byte random nonce, ciphertext+tag]`.
//! The associated data is the marker, the key id and the Redis key name, so
//! a value copied to another key (another scope, another client) fails to
//! open instead of serving the wrong token.

use std::collections::BTreeMap;
use std::fmt;

use bearer_cache::{StoreError, StoredToken};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngExt;
use zeroize::Zeroizing;

/// First byte of a sealed value. Plain values are JSON and start with `{`.
const MARKER: u8 = 0xE1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 2 + NONCE_LEN;

/// Why a stored value could not be read. It never contains any of the value.
///
/// Reached through [`std::error::Error::source`] of the [`StoreError`] a
/// failed read returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is stored in the clear but this store has an encryption
    /// key: plaintext is refused, so a writer without the key cannot plant a token.
    #[error("value is not encrypted but an encryption key is configured; refused")]
    PlaintextRefused,
    /// The value is encrypted but this store has no key.
    #[error("value is encrypted but no encryption key is configured")]
    NoKey,
    /// The value names a key id this store does not have.
    #[error("value is encrypted with key id {0}, which is not configured")]
    UnknownKeyId(u8),
    /// Authentication failed: the wrong key, a value moved from another
    /// Redis key, or tampering.
    #[error("value failed authentication (wrong key, moved or tampered)")]
    Unauthentic,
    /// Too short to be a sealed value.
    #[error("value is truncated")]
    Truncated,
}

impl ValueError {
    /// The `ValueError` behind a failed read, if that is why it failed.
    ///
    /// ```
    /// use bearer_redis::ValueError;
    /// let plain = bearer_cache::StoreError::new("connection refused");
    /// assert_eq!(ValueError::of(&plain), None);
    /// ```
    pub fn of(error: &StoreError) -> Option<&ValueError> {
        std::error::Error::source(error)?.downcast_ref::<ValueError>()
    }
}

/// Seals and opens values. Holds the keys; `Debug` shows only their ids.
#[derive(Clone, Default)]
pub(crate) struct Envelope {
    /// The id new values are sealed with; `None` stores plaintext.
    current: Option<u8>,
    keys: BTreeMap<u8, Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("sealing_key_id", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Envelope {
    pub fn plaintext() -> Self {
        Self::default()
    }

    pub fn with_keys(current: u8, keys: BTreeMap<u8, Zeroizing<[u8; 32]>>) -> Self {
        Envelope {
            current: Some(current),
            keys,
        }
    }

    pub fn is_encrypting(&self) -> bool {
        self.current.is_some()
    }

    pub fn seal(&self, redis_key: &str, token: &StoredToken) -> Vec<u8> {
        let plain = Zeroizing::new(token.encode());
        let Some(id) = self.current else {
            return plain.to_vec();
        };
        let key = &self.keys[&id];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce[..]);
        let aad = associated_data(id, redis_key);
        let sealed = cipher(key)
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory sizes");
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(MARKER);
        out.push(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, redis_key: &str, value: &[u8]) -> Result<StoredToken, StoreError> {
        let plain = self.open_bytes(redis_key, value).map_err(|e| {
            StoreError::with_cause("unreadable stored token", e).into_unusable_value()
        })?;
        StoredToken::decode(&plain)
    }

    fn open_bytes(&self, redis_key: &str, value: &[u8]) -> Result<Zeroizing<Vec<u8>>, ValueError> {
        if value.first() != Some(&MARKER) {
            if self.is_encrypting() {
                return Err(ValueError::PlaintextRefused);
            }
            return Ok(Zeroizing::new(value.to_vec()));
        }
        if value.len() < HEADER_LEN {
            return Err(ValueError::Truncated);
        }
        if self.keys.is_empty() {
            return Err(ValueError::NoKey);
        }
        let id = value[1];
        let key = self.keys.get(&id).ok_or(ValueError::UnknownKeyId(id))?;
        let aad = associated_data(id, redis_key);
        let nonce = XNonce::try_from(&value[2..HEADER_LEN]).map_err(|_| ValueError::Truncated)?;
        cipher(key)
            .decrypt(
                &nonce,
                Payload {
                    msg: &value[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ValueError::Unauthentic)
    }
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&Key::from(*key))
}

fn associated_data(id: u8, redis_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + redis_key.len());
    aad.push(MARKER);
    aad.push(id);
    aad.extend_from_slice(redis_key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use bearer_cache::{Expiry, Token};
    use std::time::{Duration, SystemTime};

    fn token() -> StoredToken {
        let t = Token::bearer("access-SECRET-123")
            .with_refresh_token("refresh-SECRET-456")
            .with_expiry(Expiry::In(Duration::from_secs(60)));
        StoredToken::new(
            &t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    fn keyed(id: u8, byte: u8) -> Envelope {
        Envelope::with_keys(id, BTreeMap::from([(id, Zeroizing::new([byte; 32]))]))
    }

    fn value_error(e: &StoreError) -> ValueError {
        ValueError::of(e).cloned().expect("a ValueError cause")
    }

    #[test]
    fn sealed_values_round_trip_and_hide_the_secrets() {
        let env = keyed(1, 9);
        let sealed = env.seal("k", &token());
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("SECRET"));
        assert_eq!(env.open("k", &sealed).unwrap(), token());
        // A fresh nonce every time.
        assert_ne!(sealed, env.seal("k", &token()));
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_open() {
        let env = keyed(1, 9);
        let sealed = env.seal("bearer:token:a", &token());
        let err = env.open("bearer:token:b", &sealed).unwrap_err();
        assert_eq!(value_error(&err), ValueError::Unauthentic);
    }

    #[test]
    fn wrong_key_missing_key_plaintext_and_truncation_are_typed_errors() {
        let sealed = keyed(1, 9).seal("k", &token());
        let plain = Envelope::plaintext().seal("k", &token());
        let cases = [
            (keyed(1, 8).open("k", &sealed), ValueError::Unauthentic),
            (keyed(2, 9).open("k", &sealed), ValueError::UnknownKeyId(1)),
            (Envelope::plaintext().open("k", &sealed), ValueError::NoKey),
            (keyed(1, 9).open("k", &plain), ValueError::PlaintextRefused),
            (keyed(1, 9).open("k", &sealed[..10]), ValueError::Truncated),
        ];
        for (result, expected) in cases {
            let err = result.unwrap_err();
            assert_eq!(value_error(&err), expected);
            assert!(!format!("{err} {err:?}").contains("SECRET"));
        }
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            value_error(&keyed(1, 9).open("k", &tampered).unwrap_err()),
            ValueError::Unauthentic
        );
    }

    #[test]
    fn older_keys_still_open_values_after_rotation() {
        let old = keyed(1, 1).seal("k", &token());
        let rotated = Envelope::with_keys(
            2,
            BTreeMap::from([(1, Zeroizing::new([1; 32])), (2, Zeroizing::new([2; 32]))]),
        );
        assert_eq!(rotated.open("k", &old).unwrap(), token());
        assert_eq!(rotated.seal("k", &token())[1], 2);
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let dbg = format!("{:?}", keyed(3, 0xAB));
        assert!(dbg.contains("3"));
        assert!(!dbg.contains("171"), "{dbg}"); // 0xAB
    }
}
