//! What one proof says (RFC 9449 §4.2).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A proof's claims; optional ones are left out when absent.
#[derive(Serialize)]
pub(crate) struct Claims<'a> {
    pub(crate) jti: &'a str,
    pub(crate) htm: &'a str,
    pub(crate) htu: &'a str,
    pub(crate) iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ath: Option<&'a str>,
}

/// `ath`: the base64url SHA-256 of the access token's ASCII value.
///
/// ```
/// // RFC 9449 §7.1's example token and its hash.
/// assert_eq!(
///     bearer_dpop::access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///     "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
/// );
/// ```
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}
