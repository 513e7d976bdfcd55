//! Reads the `exp` claim of a JWT-shaped token, without verifying it.
//!
//! A client only needs `exp` to schedule a refresh; the server still
//! verifies the token. base64url is decoded by hand (twenty lines) so this
//! crate needs no codec dependency; every step rejects junk instead of
//! panicking.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tokens longer than this are not read as JWTs (no JWT in a header is this big).
const MAX_JWT_LEN: usize = 16 * 1024;

/// The expiry (`exp`) of a JWT, decoded but **not verified**; `None` when
/// `token` is not a JWT or carries no usable `exp`.
///
/// `exp` may be an integer or a float (seconds since the Unix epoch).
/// Anything else (two parts, bad base64url, non-JSON, a negative or
/// non-finite `exp`) gives `None`, never a panic.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use bearer_cache::sources::jwt_expiry;
///
/// // {"alg":"none"} . {"exp":1700000000} . (no signature)
/// let jwt = "eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.";
/// assert_eq!(jwt_expiry(jwt), Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
/// assert_eq!(jwt_expiry("an-opaque-token"), None);
/// ```
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    if token.len() > MAX_JWT_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None; // five parts is a JWE, whose payload is encrypted
    }
    let claims: serde_json::Value = serde_json::from_slice(&decode_base64url(payload)?).ok()?;
    let exp = claims.as_object()?.get("exp")?;
    let secs = exp.as_u64().map(|s| s as f64).or_else(|| exp.as_f64())?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(secs).ok()?)
}

/// base64url (RFC 4648 §5) without padding; trailing `=` tolerated.
fn decode_base64url(input: &str) -> Option<Vec<u8>> {
    let input = input.trim_end_matches('=');
    if input.len() % 4 == 1 {
        return None; // a lone trailing character cannot encode a byte
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for byte in input.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJub25lIn0.{}.sig", encode(payload.as_bytes()))
    }

    /// The reference encoder the decoder is checked against.
    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn decodes_every_length_and_byte() {
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..data.len() {
            assert_eq!(
                decode_base64url(&encode(&data[..len])).as_deref(),
                Some(&data[..len])
            );
        }
    }

    #[test]
    fn integer_and_float_exp() {
        let at = |s: u64| Some(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":1700000000}"#)), at(1_700_000_000));
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000.5,"sub":"x"}"#)),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500))
        );
        // Padding some encoders leave in is accepted.
        let padded = format!("h.{}==.s", encode(br#"{"exp":1}"#));
        assert_eq!(jwt_expiry(&padded), at(1));
    }

    #[test]
    fn junk_is_none_never_a_panic() {
        for junk in [
            "",
            ".",
            "..",
            "a.b",
            "a.b.c.d.e",
            "h.!!!.s",
            "h.A.s",
            &jwt("not json"),
            &jwt("[1,2]"),
            &jwt(r#"{"exp":"1700000000"}"#),
            &jwt(r#"{"exp":-5}"#),
            &jwt(r#"{"exp":1e300}"#),
            &jwt(r#"{"exp":null}"#),
            &jwt(r#"{"nbf":1}"#),
            &"x".repeat(MAX_JWT_LEN + 1),
        ] {
            assert_eq!(jwt_expiry(junk), None, "{junk:?}");
        }
    }
}
