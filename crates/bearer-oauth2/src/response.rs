//! Reading token endpoint answers, leniently where real servers differ and
//! strictly where it matters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bearer_cache::{Expiry, OAuthError, Token, TokenBinding, TokenError, jwt_expiry};
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::scrub::{Secrets, cap, excerpt, scrub, scrub_secrets};

/// Parses a token endpoint answer (RFC 6749 §5.1 and §5.2) into a [`Token`]
/// or the typed error it amounts to. Pure: no I/O, never panics.
///
/// - An `{"error": …}` body is [`TokenError::OAuth`] with its code,
///   description and URI, whatever the status (a 200 carrying an error is
///   an error); `Retry-After` (seconds or HTTP-date) is kept.
/// - Another non-2xx answer is [`TokenError::Http`] with a short excerpt
///   scrubbed of anything token-like.
/// - A 2xx that is not a JSON object, or lacks `access_token`, is
///   [`TokenError::Malformed`].
/// - `token_type` is matched in any case; missing, it is taken as `Bearer`
///   (with a warning); any other type is [`TokenError::UnsupportedTokenType`].
/// - `expires_in` may be a number or a numeric string; without it, a
///   non-standard `expires_at` (Unix seconds) or the token's own JWT `exp`
///   is used, else the expiry is unknown.
///
/// ```
/// use bearer_cache::{Expiry, TokenError};
/// use bearer_oauth2::parse_token_response;
/// use http::HeaderMap;
/// use std::time::Duration;
///
/// let ok = br#"{"access_token":"abc","token_type":"bearer","expires_in":"3600"}"#;
/// let token = parse_token_response(200, &HeaderMap::new(), ok).unwrap();
/// assert_eq!(token.expiry(), Expiry::In(Duration::from_secs(3600)));
///
/// let err = br#"{"error":"invalid_client","error_description":"bad secret"}"#;
/// let e = parse_token_response(401, &HeaderMap::new(), err).unwrap_err();
/// assert_eq!(e.oauth().unwrap().code, "invalid_client");
/// assert!(!e.is_transient());
///
/// let dpop = br#"{"access_token":"abc","token_type":"DPoP"}"#;
/// assert!(matches!(
///     parse_token_response(200, &HeaderMap::new(), dpop),
///     Err(TokenError::UnsupportedTokenType(t)) if t == "DPoP"
/// ));
/// ```
pub fn parse_token_response(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Token, TokenError> {
    Parser::oauth(&Secrets::none()).parse(status, headers, body)
}

/// How to read one kind of answer.
#[derive(Debug, Clone)]
pub(crate) struct Parser<'a> {
    /// The request's own secrets, scrubbed from excerpts and descriptions.
    pub secrets: &'a Secrets,
    /// Where the access token may be, tried in order (JSON pointers).
    pub token_pointers: &'a [&'a str],
    /// The lifetime of a token that says nothing of its expiry.
    pub default_lifetime: Option<Duration>,
    /// Wall-clock now, for an HTTP-date `Retry-After`.
    pub now: SystemTime,
    /// The DPoP key the request's proof was signed with: a `DPoP` token is
    /// taken, bound to it, only then.
    pub binding: Option<Arc<dyn TokenBinding>>,
}

const OAUTH_POINTERS: &[&str] = &["/access_token"];

impl<'a> Parser<'a> {
    /// The RFC 6749 reader.
    pub fn oauth(secrets: &'a Secrets) -> Self {
        Parser {
            secrets,
            token_pointers: OAUTH_POINTERS,
            default_lifetime: None,
            now: SystemTime::now(),
            binding: None,
        }
    }

    /// The same reader, for a request that carried a proof of `binding`.
    pub fn bound(self, binding: Arc<dyn TokenBinding>) -> Self {
        Parser {
            binding: Some(binding),
            ..self
        }
    }

    /// The same reader, with wall-clock now from the source's clock.
    pub fn at(self, now: SystemTime) -> Self {
        Parser { now, ..self }
    }

    pub fn parse(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Token, TokenError> {
        let object = self.object_or_error(status, headers, body)?;
        self.token(status, body, &object)
    }

    /// The JSON object of a success, or the error the answer amounts to.
    pub fn object_or_error(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Map<String, Value>, TokenError> {
        let retry_after = retry_after(headers, self.now);
        let object = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        };
        if let Some(error) = object.as_ref().and_then(|o| self.oauth_error(o, status)) {
            return Err(TokenError::OAuth { error, retry_after });
        }
        if !(200..300).contains(&status) {
            return Err(TokenError::Http {
                status,
                excerpt: excerpt(body, self.secrets),
                retry_after,
            });
        }
        match object {
            Some(object) if object.contains_key("error") => {
                Err(self.malformed(status, body, "`error` is not a string"))
            }
            Some(object) => Ok(object),
            None => Err(self.malformed(status, body, "the body is not a JSON object")),
        }
    }

    fn oauth_error(&self, object: &Map<String, Value>, status: u16) -> Option<OAuthError> {
        let code = object.get("error")?.as_str()?;
        let text = |field: &str| {
            object
                .get(field)
                .and_then(Value::as_str)
                .map(|s| cap(&scrub(s, self.secrets), self.secrets))
        };
        Some(OAuthError {
            // Codes are short ASCII words: only the request's secrets could hide there.
            code: scrub_secrets(code, self.secrets),
            description: text("error_description"),
            // Only the request's secrets: token-like redaction would mangle
            // ordinary URIs (a path with a digit and 20+ characters).
            uri: object
                .get("error_uri")
                .and_then(Value::as_str)
                .map(|s| cap(&scrub_secrets(s, self.secrets), self.secrets)),
            status,
        })
    }

    fn malformed(&self, status: u16, body: &[u8], reason: impl Into<String>) -> TokenError {
        TokenError::Malformed {
            status,
            reason: reason.into(),
            excerpt: excerpt(body, self.secrets),
        }
    }

    /// The token in a success object.
    pub fn token(
        &self,
        status: u16,
        body: &[u8],
        object: &Map<String, Value>,
    ) -> Result<Token, TokenError> {
        let root = Value::Object(object.clone());
        let found = self
            .token_pointers
            .iter()
            .find_map(|p| root.pointer(p).map(|v| (*p, v)));
        let Some((pointer, value)) = found else {
            let wanted = self.token_pointers.join(" or ");
            return Err(self.malformed(status, body, format!("no access token at {wanted}")));
        };
        let access_token = match value.as_str() {
            Some(t) if !t.is_empty() => t,
            _ => {
                return Err(self.malformed(
                    status,
                    body,
                    format!("{pointer} is not a non-empty string"),
                ));
            }
        };
        if !bearer_cache::is_header_safe(access_token) {
            return Err(TokenError::InvalidTokenValue);
        }
        // Expiry fields are looked for beside the token first, then at the top.
        let parent = pointer
            .rsplit_once('/')
            .and_then(|(parent, _)| root.pointer(parent))
            .and_then(Value::as_object)
            .unwrap_or(object);
        let field = |name: &str| {
            parent
                .get(name)
                .or_else(|| object.get(name))
                .filter(|v| !v.is_null())
        };

        match field("token_type") {
            None => tracing::warn!(
                target: "bearer_oauth2",
                "token response has no token_type; assuming Bearer"
            ),
            Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
            Some(Value::String(t))
                if self
                    .binding
                    .as_ref()
                    .is_some_and(|b| t.eq_ignore_ascii_case(b.scheme())) => {}
            Some(Value::String(t)) => {
                let shown: String = scrub(t, self.secrets).chars().take(40).collect();
                return Err(TokenError::UnsupportedTokenType(shown));
            }
            Some(_) => return Err(self.malformed(status, body, "`token_type` is not a string")),
        }

        // `expires_in: 0` is read as "not said", as Go's x/oauth2 and
        // authlib do: servers send it for tokens without a set lifetime.
        let expires_in = match field("expires_in") {
            None => None,
            Some(v) => match number(v) {
                Some(0.0) => None,
                Some(secs) => Some(span(secs)),
                None => {
                    return Err(self.malformed(
                        status,
                        body,
                        "`expires_in` is not a number of seconds",
                    ));
                }
            },
        };
        let expiry = if let Some(lifetime) = expires_in {
            // Negative: already expired, which the cache refuses to hand
            // out; beyond any `Duration`: capped by the cache's max lifetime.
            Expiry::In(lifetime)
        } else if let Some(v) = field("expires_at") {
            let secs = number(v)
                .ok_or_else(|| self.malformed(status, body, "`expires_at` is not a Unix time"))?;
            UNIX_EPOCH
                .checked_add(span(secs))
                .map_or(Expiry::In(Duration::MAX), Expiry::At)
        } else if let Some(at) = jwt_expiry(access_token) {
            Expiry::At(at)
        } else {
            self.default_lifetime.map_or(Expiry::Unknown, Expiry::In)
        };

        let mut token = Token::bearer(access_token).with_expiry(expiry);
        if let (Some(binding), Some(Value::String(t))) = (&self.binding, field("token_type")) {
            if t.eq_ignore_ascii_case(binding.scheme()) {
                token = token
                    .with_token_type(binding.scheme())
                    .with_binding(binding.clone());
            }
        }
        match field("refresh_token") {
            None => {}
            Some(Value::String(r)) if !r.is_empty() => token = token.with_refresh_token(r.as_str()),
            Some(_) => {
                return Err(self.malformed(
                    status,
                    body,
                    "`refresh_token` is not a non-empty string",
                ));
            }
        }
        match field("scope") {
            Some(Value::String(s)) => token = token.with_scopes(s.split_whitespace()),
            Some(Value::Array(a)) => token = token.with_scopes(a.iter().filter_map(Value::as_str)),
            _ => {}
        }
        if let Some(secs) = field("refresh_in").and_then(number).filter(|s| *s >= 0.0) {
            token = token.with_refresh_in(span(secs));
        }
        Ok(token)
    }
}

/// A finite number, as a JSON number or a numeric string.
fn number(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// Seconds as a span: a negative count is none, and one too large for a
/// `Duration` is the largest (the cache caps lifetimes anyway).
fn span(secs: f64) -> Duration {
    if secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(status: u16, body: &str) -> Result<Token, TokenError> {
        parse_token_response(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn lenient_success_shapes() {
        for body in [
            r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#,
            r#"{"access_token":"a","token_type":"BEARER","expires_in":"60"}"#,
            r#"{"access_token":"a","token_type":"bearer","expires_in":60.0}"#,
            r#"{"access_token":"a","expires_in":" 60 "}"#,
        ] {
            let t = parse(200, body).unwrap();
            assert_eq!(t.expiry(), Expiry::In(Duration::from_secs(60)), "{body}");
            assert_eq!(t.access_token().expose_secret(), "a");
        }
        let t = parse(200, r#"{"access_token":"a","token_type":"Bearer","expires_at":1700000000,"refresh_token":"r","scope":"x y","refresh_in":30}"#).unwrap();
        assert_eq!(
            t.expiry(),
            Expiry::At(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(t.refresh_token().unwrap().expose_secret(), "r");
        assert_eq!(t.scopes().unwrap(), ["x", "y"]);
        assert_eq!(t.refresh_in(), Some(Duration::from_secs(30)));
        // {"alg":"none"}.{"exp":2000000000}
        let jwt = r#"{"access_token":"eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDAwMDAwMDB9.","token_type":"Bearer"}"#;
        assert_eq!(
            parse(200, jwt).unwrap().expiry(),
            Expiry::At(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(
            parse(200, r#"{"access_token":"a"}"#).unwrap().expiry(),
            Expiry::Unknown
        );
    }

    #[test]
    fn odd_lifetimes_are_read_not_refused() {
        let expiry = |body: &str| parse(200, body).unwrap().expiry();
        // "Never expires" in the wild: read whole, capped later by the cache.
        let long_max = expiry(r#"{"access_token":"a","expires_in":9223372036854775807}"#);
        assert!(matches!(long_max, Expiry::In(d) if d >= Duration::from_secs(i64::MAX as u64)));
        assert_eq!(
            expiry(r#"{"access_token":"a","expires_in":1e300}"#),
            Expiry::In(Duration::MAX)
        );
        assert_eq!(
            expiry(r#"{"access_token":"a","expires_at":1e300}"#),
            Expiry::In(Duration::MAX)
        );
        // Zero means "not said"; negative means already expired.
        assert_eq!(
            expiry(r#"{"access_token":"a","expires_in":0}"#),
            Expiry::Unknown
        );
        assert_eq!(
            expiry(r#"{"access_token":"a","expires_in":"0"}"#),
            Expiry::Unknown
        );
        assert_eq!(
            expiry(r#"{"access_token":"a","expires_in":-5}"#),
            Expiry::In(Duration::ZERO)
        );
        let t = parse(
            200,
            r#"{"access_token":"a","expires_in":60,"refresh_in":1e300}"#,
        )
        .unwrap();
        assert_eq!(t.refresh_in(), Some(Duration::MAX));
        let t = parse(
            200,
            r#"{"access_token":"a","expires_in":60,"refresh_in":-1}"#,
        )
        .unwrap();
        assert_eq!(t.refresh_in(), None);
    }

    #[test]
    fn malformed_successes_are_typed() {
        for (body, reason) in [
            ("not json", "not a JSON object"),
            ("[1]", "not a JSON object"),
            ("{}", "no access token"),
            (r#"{"access_token":""}"#, "non-empty string"),
            (r#"{"access_token":5}"#, "non-empty string"),
            (r#"{"access_token":"a","expires_in":"soon"}"#, "expires_in"),
            (r#"{"access_token":"a","expires_at":"x"}"#, "expires_at"),
            (r#"{"access_token":"a","token_type":7}"#, "token_type"),
            (r#"{"access_token":"a","refresh_token":7}"#, "refresh_token"),
            (r#"{"error":{"code":1}}"#, "`error` is not a string"),
        ] {
            match parse(200, body) {
                Err(TokenError::Malformed {
                    status: 200,
                    reason: r,
                    ..
                }) => {
                    assert!(r.contains(reason), "{body}: {r}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(200, r#"{"access_token":"a b"}"#),
            Err(TokenError::InvalidTokenValue)
        ));
        assert!(matches!(
            parse(200, r#"{"access_token":"a\r\nX: y"}"#),
            Err(TokenError::InvalidTokenValue)
        ));
    }

    #[test]
    fn errors_keep_code_description_uri_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        let body = br#"{"error":"temporarily_unavailable","error_description":"later","error_uri":"https://e/x"}"#;
        let e = parse_token_response(503, &headers, body).unwrap_err();
        let oauth = e.oauth().unwrap();
        assert_eq!(
            (oauth.code.as_str(), oauth.status),
            ("temporarily_unavailable", 503)
        );
        assert_eq!(oauth.description.as_deref(), Some("later"));
        assert_eq!(oauth.uri.as_deref(), Some("https://e/x"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.is_transient());

        let e = parse(200, r#"{"error":"invalid_grant"}"#).unwrap_err();
        assert_eq!(e.oauth().unwrap().status, 200);
        assert!(!e.is_transient());

        let e = parse(502, "<html>Bad Gateway</html>").unwrap_err();
        assert!(
            matches!(&e, TokenError::Http { status: 502, excerpt, .. } if excerpt == "<html>Bad Gateway</html>")
        );
    }

    #[test]
    fn error_description_and_uri_are_capped() {
        let long = "x".repeat(10_000);
        let body = serde_json::json!({
            "error": "invalid_request",
            "error_description": long,
            "error_uri": format!("https://e/{long}"),
        })
        .to_string();
        let e = parse(400, &body).unwrap_err();
        let oauth = e.oauth().unwrap();
        let description = oauth.description.as_deref().unwrap();
        assert_eq!(description.chars().count(), crate::scrub::EXCERPT_CHARS);
        assert!(description.ends_with('…'));
        let uri = oauth.uri.as_deref().unwrap();
        assert_eq!(uri.chars().count(), crate::scrub::EXCERPT_CHARS);
    }

    #[test]
    fn retry_after_as_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:20:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn secrets_are_scrubbed_from_errors() {
        let secrets = Secrets::new(["hunter2"], None);
        let parser = Parser::oauth(&secrets);
        let body =
            br#"{"error":"invalid_grant","error_description":"refresh token hunter2 revoked"}"#;
        let e = parser.parse(400, &HeaderMap::new(), body).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));
        let e = parser
            .parse(500, &HeaderMap::new(), b"echo: password=hunter2")
            .unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));
        let leaked = r#"{"access_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAA","token_type":"mac"}"#;
        let e = parse(500, leaked).unwrap_err();
        assert!(!format!("{e:?}").contains("AAAAAAAAAAAAAAAAAAAA"), "{e:?}");
    }
}
