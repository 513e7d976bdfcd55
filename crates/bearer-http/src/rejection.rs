//! What a 401 means for the token that was sent (RFC 6750 §3.1).

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

use crate::challenge::{BearerErrorCode, parse_www_authenticate_all};

/// What a 401's `WWW-Authenticate` fields say about the token sent.
///
/// ```
/// use bearer_cache::{StaticSource, TokenCache};
/// use bearer_http::{Authorizer, Verdict};
/// use http::{HeaderMap, HeaderValue, header::WWW_AUTHENTICATE};
///
/// let rules = Authorizer::builder(TokenCache::builder(StaticSource::new("t")).build())
///     .allow_origin("https://api.example.com".parse()?)
///     .build()?;
/// let mut headers = HeaderMap::new();
/// headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
/// assert_eq!(rules.verdict(&headers), Verdict::Refresh);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token is bad (expired, revoked): replace it and resend.
    Refresh,
    /// A new token would not help; the 401 is the answer.
    Final(&'static str),
}

/// Reads the `WWW-Authenticate` fields of a 401.
///
/// `invalid_token`, a Bearer challenge without `error` and unknown codes
/// mean the token: refresh. `insufficient_scope` and `invalid_request` mean
/// the request: don't. A 401 without any Bearer challenge follows
/// `refresh_without_challenge`.
pub(crate) fn verdict(headers: &HeaderMap, refresh_without_challenge: bool) -> Verdict {
    let values: Vec<std::borrow::Cow<'_, str>> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    let challenges = parse_www_authenticate_all(values.iter().map(|v| v.as_ref()));
    let mut bearer = challenges.iter().filter(|c| c.is_bearer()).peekable();
    if bearer.peek().is_none() {
        return if refresh_without_challenge {
            Verdict::Refresh
        } else {
            Verdict::Final("401 without a Bearer challenge")
        };
    }
    for challenge in bearer {
        match challenge.bearer_error() {
            Some(BearerErrorCode::InsufficientScope) => {
                return Verdict::Final("insufficient_scope: a new token would not help");
            }
            Some(BearerErrorCode::InvalidRequest) => {
                return Verdict::Final("invalid_request: the request itself was refused");
            }
            _ => {}
        }
    }
    Verdict::Refresh
}

/// gRPC's status for a missing or bad credential (`UNAUTHENTICATED`).
const GRPC_UNAUTHENTICATED: &[u8] = b"16";

/// Whether a response rejects the token it carried, and what it says: a
/// 401 is judged by its `WWW-Authenticate` fields; a gRPC `UNAUTHENTICATED`
/// (`grpc-status: 16` in the headers of a trailers-only answer) blames the
/// token. `None`: not a rejection.
pub(crate) fn rejection(
    status: StatusCode,
    headers: &HeaderMap,
    refresh_without_challenge: bool,
) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED {
        Some(verdict(headers, refresh_without_challenge))
    } else if grpc_unauthenticated(headers) {
        Some(Verdict::Refresh)
    } else {
        None
    }
}

/// Whether a request is a gRPC call (`content-type: application/grpc…`),
/// whose answer may reject the token in its trailers.
pub(crate) fn is_grpc(request_headers: &HeaderMap) -> bool {
    request_headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Whether headers or trailers carry `grpc-status: 16`.
pub(crate) fn grpc_unauthenticated(fields: &HeaderMap) -> bool {
    fields
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == GRPC_UNAUTHENTICATED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn rejections_are_401s_and_grpc_unauthenticated() {
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", HeaderValue::from_static("16"));
        assert_eq!(
            rejection(StatusCode::OK, &grpc, false),
            Some(Verdict::Refresh)
        );
        grpc.insert("grpc-status", HeaderValue::from_static("7"));
        assert_eq!(rejection(StatusCode::OK, &grpc, false), None);
        assert!(!grpc_unauthenticated(&grpc));
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/json", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            assert_eq!(is_grpc(&h), grpc, "{content_type}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
        assert_eq!(rejection(StatusCode::FORBIDDEN, &headers(&[]), true), None);
        assert_eq!(
            rejection(StatusCode::UNAUTHORIZED, &headers(&[]), true),
            Some(Verdict::Refresh)
        );
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(WWW_AUTHENTICATE, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn invalid_token_and_plain_bearer_refresh() {
        for v in [
            &b"Bearer error=\"invalid_token\""[..],
            b"Bearer realm=\"api\"",
            b"Bearer",
            b"Bearer error=\"something_new\"",
        ] {
            assert_eq!(verdict(&headers(&[v]), false), Verdict::Refresh, "{v:?}");
        }
    }

    #[test]
    fn scope_and_request_errors_are_final() {
        for v in [
            &b"Bearer error=\"insufficient_scope\", scope=\"admin\""[..],
            b"Bearer error=invalid_request",
        ] {
            assert!(
                matches!(verdict(&headers(&[v]), true), Verdict::Final(_)),
                "{v:?}"
            );
        }
    }

    #[test]
    fn no_bearer_challenge_follows_configuration() {
        for h in [
            headers(&[]),
            headers(&[b"Basic realm=\"x\""]),
            headers(&[b"@@junk"]),
        ] {
            assert_eq!(verdict(&h, true), Verdict::Refresh);
            assert!(matches!(verdict(&h, false), Verdict::Final(_)));
        }
    }

    #[test]
    fn bearer_challenge_found_across_fields_and_past_junk() {
        let h = headers(&[
            b"Basic realm=\"x\"",
            b"\"junk",
            b"bearer ERROR=insufficient_scope",
        ]);
        assert!(matches!(verdict(&h, true), Verdict::Final(_)));
        let h = headers(&[
            b"Negotiate",
            b"Bearer error=\"invalid_token\", realm=\"caf\xe9\"",
        ]);
        assert_eq!(verdict(&h, false), Verdict::Refresh);
    }
}
