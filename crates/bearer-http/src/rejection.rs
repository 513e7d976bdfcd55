//! What a 401 means for the token that was sent (RFC 6750 §3.1).

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, StatusCode};

use crate::challenge::{BearerErrorCode, parse_www_authenticate_all};
use crate::fields::field;

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
    /// The token is fine but its proof was refused (DPoP `use_dpop_nonce`,
    /// `invalid_dpop_proof`): resend once with a fresh proof (carrying the
    /// nonce the answer gave), keeping the token.
    Reprove(&'static str),
}

/// Reads the `WWW-Authenticate` fields of a 401.
///
/// `invalid_token`, a Bearer challenge without `error` and unknown codes
/// mean the token: refresh. `insufficient_scope` and `invalid_request` mean
/// the request: don't. A 401 without any Bearer challenge follows
/// `refresh_without_challenge`.
pub(crate) fn verdict(headers: &HeaderMap, refresh_without_challenge: bool) -> Verdict {
    let challenges = challenges(headers);
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

fn challenges(headers: &HeaderMap) -> Vec<crate::Challenge> {
    let values: Vec<std::borrow::Cow<'_, str>> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    parse_www_authenticate_all(values.iter().map(|v| v.as_ref()))
}

/// Reads the `WWW-Authenticate` fields of a 401 to a request that carried
/// a DPoP-bound token (RFC 9449 §7.1): its `DPoP` challenges, and `Bearer`
/// ones from a server that answers in that scheme. A refused proof
/// (`use_dpop_nonce`, `invalid_dpop_proof`) is resent with a fresh one
/// before anything else, as a new token would be refused the same way;
/// otherwise the codes mean what they mean for a bearer token.
pub(crate) fn bound_verdict(headers: &HeaderMap, refresh_without_challenge: bool) -> Verdict {
    let challenges = challenges(headers);
    let codes: Vec<BearerErrorCode> = challenges
        .iter()
        .filter_map(|c| c.dpop_error().or_else(|| c.bearer_error()))
        .collect();
    if codes.contains(&BearerErrorCode::UseDpopNonce) {
        return Verdict::Reprove("use_dpop_nonce: resent with the server's nonce");
    }
    if codes.contains(&BearerErrorCode::InvalidDpopProof) {
        return Verdict::Reprove("invalid_dpop_proof: resent with a fresh proof");
    }
    if codes.contains(&BearerErrorCode::InsufficientScope) {
        return Verdict::Final("insufficient_scope: a new token would not help");
    }
    if codes.contains(&BearerErrorCode::InvalidRequest) {
        return Verdict::Final("invalid_request: the request itself was refused");
    }
    let challenged = challenges.iter().any(|c| c.is_dpop() || c.is_bearer());
    if challenged || refresh_without_challenge {
        Verdict::Refresh
    } else {
        Verdict::Final("401 without a DPoP or Bearer challenge")
    }
}

/// gRPC's status for a missing or bad credential (`UNAUTHENTICATED`).
const GRPC_UNAUTHENTICATED: &[u8] = b"16";

/// Whether a response rejects the token it carried, and what it says: a
/// 401 is judged by its `WWW-Authenticate` fields; to a gRPC call (`grpc`,
/// see [`is_grpc`]), a gRPC `UNAUTHENTICATED` (`grpc-status: 16` in the
/// headers of a trailers-only answer) blames the token. `None`: not a
/// rejection.
// Asked of every answer: inlined, down to the calls that read a 401. The
// answer to anything but a gRPC call is not searched for `grpc-status`:
// only a gRPC server speaks it, and only to a gRPC call.
#[inline]
pub(crate) fn rejection(
    status: StatusCode,
    headers: &HeaderMap,
    refresh_without_challenge: bool,
    bound: bool,
    grpc: bool,
) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED {
        Some(if bound {
            bound_verdict(headers, refresh_without_challenge)
        } else {
            verdict(headers, refresh_without_challenge)
        })
    } else if grpc && grpc_unauthenticated(headers) {
        Some(Verdict::Refresh)
    } else {
        None
    }
}

/// Whether a request is a gRPC call (`content-type: application/grpc…`,
/// the type compared without regard to case, as media types are), whose
/// answer may reject the token with a gRPC status, in its headers or its
/// trailers.
#[inline]
pub(crate) fn is_grpc(request_headers: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    field(request_headers, &http::header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .get(..GRPC.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(GRPC))
    })
}

/// Whether headers or trailers carry `grpc-status: 16`. Asked only of a
/// gRPC call's answer (see [`rejection`]).
pub(crate) fn grpc_unauthenticated(fields: &HeaderMap) -> bool {
    // A name built once: a `&str` would be parsed and checked on every
    // answer.
    static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    fields
        .get(&GRPC_STATUS)
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
            rejection(StatusCode::OK, &grpc, false, false, true),
            Some(Verdict::Refresh)
        );
        // Only a gRPC call's answer speaks gRPC.
        assert_eq!(rejection(StatusCode::OK, &grpc, false, false, false), None);
        grpc.insert("grpc-status", HeaderValue::from_static("7"));
        assert_eq!(rejection(StatusCode::OK, &grpc, false, false, true), None);
        assert!(!grpc_unauthenticated(&grpc));
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc-web+proto", true),
            ("Application/gRPC", true),
            ("application/grp", false),
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
        assert_eq!(
            rejection(StatusCode::FORBIDDEN, &headers(&[]), true, false, true),
            None
        );
        assert_eq!(
            rejection(StatusCode::UNAUTHORIZED, &headers(&[]), true, false, false),
            Some(Verdict::Refresh)
        );
    }

    #[test]
    fn grpc_status_is_found_among_few_names_and_many() {
        for fields in (0..=8).chain([30]) {
            for (status, rejects) in [
                (&["16"][..], true),
                (&["7"], false),
                (&["16", "0"], true),
                (&["0", "16"], false),
                (&[], false),
            ] {
                let mut h = HeaderMap::new();
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/grpc"),
                );
                for i in 0..fields {
                    let name = HeaderName::try_from(format!("x-field-{i}")).unwrap();
                    h.insert(name, HeaderValue::from_static("16"));
                }
                for value in status {
                    h.append("grpc-status", HeaderValue::from_static(value));
                }
                // Names after it too, and one that only begins like it.
                h.insert("grpc-status-details-bin", HeaderValue::from_static("16"));
                h.insert(http::header::DATE, HeaderValue::from_static("x"));
                assert_eq!(
                    grpc_unauthenticated(&h),
                    rejects,
                    "{fields} fields, {status:?}"
                );
                assert_eq!(
                    grpc_unauthenticated(&h),
                    h.get("grpc-status").is_some_and(|v| v == "16"),
                    "the same as a lookup"
                );
            }
        }
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

    #[test]
    fn dpop_challenges_judge_a_bound_token() {
        let reprove = |v: &[u8]| bound_verdict(&headers(&[v]), false);
        assert!(matches!(
            reprove(b"DPoP error=\"use_dpop_nonce\", algs=\"ES256\""),
            Verdict::Reprove(_)
        ));
        assert!(matches!(
            reprove(b"DPoP error=\"invalid_dpop_proof\""),
            Verdict::Reprove(_)
        ));
        // A nonce request wins over an invalid_token in another challenge.
        let h = headers(&[b"Bearer error=invalid_token", b"DPoP error=use_dpop_nonce"]);
        assert!(matches!(bound_verdict(&h, false), Verdict::Reprove(_)));
        assert_eq!(reprove(b"DPoP error=\"invalid_token\""), Verdict::Refresh);
        assert_eq!(reprove(b"DPoP algs=\"ES256\""), Verdict::Refresh);
        assert_eq!(reprove(b"Bearer error=invalid_token"), Verdict::Refresh);
        assert!(matches!(
            reprove(b"DPoP error=insufficient_scope"),
            Verdict::Final(_)
        ));
        assert!(matches!(
            reprove(b"DPoP error=invalid_request"),
            Verdict::Final(_)
        ));
        assert!(matches!(reprove(b"Basic realm=x"), Verdict::Final(_)));
        assert_eq!(
            bound_verdict(&headers(&[b"Basic realm=x"]), true),
            Verdict::Refresh
        );
        // Through `rejection`: only a bound token reads DPoP challenges.
        let nonce = headers(&[b"DPoP error=use_dpop_nonce"]);
        assert!(matches!(
            rejection(StatusCode::UNAUTHORIZED, &nonce, false, true, false),
            Some(Verdict::Reprove(_))
        ));
        assert!(matches!(
            rejection(StatusCode::UNAUTHORIZED, &nonce, false, false, false),
            Some(Verdict::Final(_))
        ));
    }
}
