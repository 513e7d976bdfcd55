//! Proof of possession for bound (DPoP) tokens: the proof header of a
//! request and the nonces answers carry.

use bearer_cache::{CachedToken, TokenBinding, TokenError};
use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use url::{Position, Url};

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
const NONCE_HEADER: &str = "dpop-nonce";

/// A request URL as a DPoP proof names it (`htu`, RFC 9449 §4.2): without
/// query and fragment, which may carry secrets and are not part of it, and
/// without userinfo.
///
/// ```
/// let url = "https://api.example.com/v1/orders?key=s3cr3t#top".parse()?;
/// assert_eq!(bearer_http::proof_target(&url), "https://api.example.com/v1/orders");
/// # Ok::<(), url::ParseError>(())
/// ```
pub fn proof_target(url: &Url) -> Cow<'_, str> {
    if url.username().is_empty() && url.password().is_none() {
        Cow::Borrowed(&url[..Position::AfterPath])
    } else {
        Cow::Owned(format!(
            "{}{}",
            &url[..Position::BeforeUsername],
            &url[Position::BeforeHost..Position::AfterPath]
        ))
    }
}

/// [`proof_target`] for an absolute `http::Uri`; `None` for one without
/// scheme or authority, which no proof can name.
///
/// ```
/// let uri: http::Uri = "https://api.example.com/v1/orders?key=s3cr3t".parse()?;
/// assert_eq!(
///     bearer_http::proof_target_of_uri(&uri).as_deref(),
///     Some("https://api.example.com/v1/orders")
/// );
/// # Ok::<(), http::uri::InvalidUri>(())
/// ```
pub fn proof_target_of_uri(uri: &Uri) -> Option<String> {
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    Some(format!("{scheme}://{authority}{}", uri.path()))
}

/// The proof header of one request with a bound token: its name and a
/// fresh proof for `method` and `target` with the token's hash (`ath`).
pub(crate) fn proof_header(
    binding: &dyn TokenBinding,
    token: &CachedToken,
    method: &str,
    target: &str,
) -> Result<(HeaderName, HeaderValue), TokenError> {
    let proof = binding.proof(method, target, Some(token.access_token()))?;
    let name = HeaderName::from_bytes(binding.proof_header().as_bytes())
        .map_err(|e| TokenError::ProofFailed(bearer_cache::Cause::new(e)))?;
    // A proof is a compact JWS: base64url and dots, always a valid value.
    let mut value = HeaderValue::from_str(&proof)
        .map_err(|e| TokenError::ProofFailed(bearer_cache::Cause::new(e)))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Keeps the nonce an answer carries for the origin of `target`, for the
/// binding's next proofs there (RFC 9449 §8.2: any answer may rotate it).
pub(crate) fn remember_nonce(binding: &dyn TokenBinding, target: &str, headers: &HeaderMap) {
    if let Some(nonce) = headers.get(NONCE_HEADER).and_then(|v| v.to_str().ok()) {
        binding.remember_nonce(target, nonce);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_drop_query_and_fragment_only() {
        for (url, target) in [
            ("https://a.example/p/q?x=1#f", "https://a.example/p/q"),
            ("https://a.example", "https://a.example/"),
            (
                "http://127.0.0.1:8080/a%20b?",
                "http://127.0.0.1:8080/a%20b",
            ),
            ("https://u:p@a.example:8443/x?s", "https://a.example:8443/x"),
            ("https://u@a.example/x", "https://a.example/x"),
        ] {
            assert_eq!(proof_target(&Url::parse(url).unwrap()), target, "{url}");
        }
        let uri: Uri = "http://127.0.0.1:8080/a?b".parse().unwrap();
        assert_eq!(
            proof_target_of_uri(&uri).as_deref(),
            Some("http://127.0.0.1:8080/a")
        );
        assert_eq!(proof_target_of_uri(&"/relative".parse().unwrap()), None);
    }
}
