//! What each fuzz target checks. Every function takes the raw fuzz input,
//! runs one parser on it and panics if a documented invariant breaks;
//! `tests/fuzz_corpus.rs` includes this file and replays the committed
//! corpus through the same functions on a stable toolchain.
//!
//! Input formats (hand-writable, so seeds can be reviewed):
//! - `token_response`: a status line (`200`; unparsable means 200), then
//!   `Name: value` header lines, then an empty line, then the body.
//! - `www_authenticate`: one header value (bytes read lossily as UTF-8, as
//!   the middleware reads them).
//! - `jwt_exp`: the token text.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, HeaderName, HeaderValue};
use reqwest_bearer::cache::{jwt_expiry, transient_status};
use reqwest_bearer::oauth2::parse_token_response;
use reqwest_bearer::{
    ChallengeParseError, Token, TokenError, parse_www_authenticate, parse_www_authenticate_all,
};
use serde_json::Value;

/// The longest excerpt of an answer an error may carry (bearer-oauth2's cap).
const EXCERPT_CHARS: usize = 200;
/// The longest token type an `UnsupportedTokenType` error shows.
const TOKEN_TYPE_CHARS: usize = 40;
/// Tokens longer than this are never read as JWTs.
const MAX_JWT_LEN: usize = 16 * 1024;

// --- token_response ---------------------------------------------------------

/// Splits a `token_response` input into status, headers and body.
pub fn decode_token_response(data: &[u8]) -> (u16, HeaderMap, &[u8]) {
    let (status_line, mut rest) = split_line(data);
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(200);
    let mut headers = HeaderMap::new();
    while let Some(remaining) = rest {
        let (line, after) = split_line(remaining);
        if line.is_empty() {
            return (status, headers, after.unwrap_or_default());
        }
        rest = after;
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = HeaderName::from_bytes(&line[..colon]);
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
    }
    (status, headers, &[])
}

fn split_line(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

/// `parse_token_response` never panics; a success is a header-safe bearer
/// token from a 2xx; an error is the typed kind its status allows, with a
/// short excerpt, and never shows the token values the body carried.
pub fn token_response(data: &[u8]) {
    let (status, headers, body) = decode_token_response(data);
    let secrets = secret_values(body);
    match parse_token_response(status, &headers, body) {
        Ok(token) => check_token(&token, status, &secrets),
        Err(error) => check_token_error(&error, status, &secrets),
    }
}

fn check_token(token: &Token, status: u16, secrets: &[String]) {
    assert!((200..300).contains(&status), "a token from HTTP {status}");
    let value = token.access_token().expose_secret();
    assert!(
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()),
        "the access token is not header-safe"
    );
    let mut header = HeaderValue::from_str(&format!("Bearer {value}"))
        .expect("a parsed token makes a valid Authorization value");
    header.set_sensitive(true);
    assert!(token.token_type().eq_ignore_ascii_case("bearer"));
    if let Some(refresh) = token.refresh_token() {
        assert!(
            !refresh.expose_secret().is_empty(),
            "an empty refresh token"
        );
    }
    if let Some(scopes) = token.scopes() {
        assert!(
            scopes
                .iter()
                .all(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        );
    }
    let shown = format!("{token:?}");
    for secret in secrets {
        assert!(
            !shown.contains(secret.as_str()),
            "Debug of a token shows a secret"
        );
    }
}

fn check_token_error(error: &TokenError, status: u16, secrets: &[String]) {
    let success = (200..300).contains(&status);
    match error {
        TokenError::OAuth { error: oauth, .. } => assert_eq!(oauth.status, status),
        TokenError::Http {
            status: s, excerpt, ..
        } => {
            assert_eq!(*s, status);
            assert!(!success, "an HTTP error for a {status}");
            assert!(excerpt.chars().count() <= EXCERPT_CHARS, "excerpt too long");
            assert_eq!(error.is_transient(), transient_status(status));
        }
        TokenError::Malformed {
            status: s, excerpt, ..
        } => {
            assert_eq!(*s, status);
            assert!(success, "a malformed success from HTTP {status}");
            assert!(excerpt.chars().count() <= EXCERPT_CHARS, "excerpt too long");
            assert!(error.is_transient());
        }
        TokenError::UnsupportedTokenType(t) => {
            assert!(success);
            assert!(
                t.chars().count() <= TOKEN_TYPE_CHARS,
                "token type shown in full"
            );
        }
        TokenError::InvalidTokenValue => assert!(success),
        other => panic!("a pure parser returned {other:?}"),
    }
    let shown = format!("{error} {error:?}");
    for secret in secrets {
        assert!(!shown.contains(secret.as_str()), "an error shows a secret");
    }
}

/// The values of the body's secret fields that look like real secrets
/// (long, varied) and occur nowhere else in it, so finding one in an
/// error or a `Debug` means it leaked (not that another field echoed it).
fn secret_values(body: &[u8]) -> Vec<String> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut strings = Vec::new();
    collect_strings(&json, &mut strings);
    let mut found = Vec::new();
    collect_secret_fields(&json, &mut found);
    let body_text = String::from_utf8_lossy(body);
    found
        .into_iter()
        .filter(|s| looks_secret(s))
        .filter(|s| strings.iter().filter(|o| o.contains(s.as_str())).count() == 1)
        .filter(|s| body_text.matches(s.as_str()).count() == 1)
        .collect()
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

fn collect_secret_fields(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_secret_fields(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s)
                        if matches!(k.as_str(), "access_token" | "refresh_token" | "id_token") =>
                    {
                        out.push(s.clone())
                    }
                    _ => collect_secret_fields(v, out),
                }
            }
        }
        _ => {}
    }
}

/// Long, in a token alphabet, with at least three different letters: no
/// fixed text of a `Debug` or an error message looks like this.
fn looks_secret(s: &str) -> bool {
    let letters: BTreeSet<char> = s.chars().filter(char::is_ascii_alphabetic).collect();
    s.len() >= 20
        && letters.len() >= 3
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

// --- www_authenticate ------------------------------------------------------

/// `parse_www_authenticate` never panics; what it returns obeys the
/// grammar; its errors point where they say.
pub fn www_authenticate(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let input = input.as_ref();
    let only_separators = input.bytes().all(|b| matches!(b, b' ' | b'\t' | b','));
    match parse_www_authenticate(input) {
        Ok(challenges) => {
            assert!(!challenges.is_empty());
            assert!(!only_separators);
            for c in &challenges {
                assert!(is_token(c.scheme()), "scheme {:?}", c.scheme());
                if let Some(t68) = c.token68() {
                    assert_eq!(c.params().len(), 0, "token68 and params together");
                    let body = t68.trim_end_matches('=');
                    assert!(!body.is_empty(), "empty token68 {t68:?}");
                    assert!(
                        body.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
                    );
                }
                for (name, value) in c.params() {
                    assert!(is_token(name), "param name {name:?}");
                    assert!(
                        value.chars().all(|ch| ch == '\t' || !ch.is_control()),
                        "control in {value:?}"
                    );
                }
                let code = c.param("error").filter(|_| c.is_bearer());
                assert_eq!(
                    c.bearer_error().map(|e| e.as_str().to_owned()),
                    code.map(str::to_owned)
                );
            }
            assert_eq!(parse_www_authenticate_all([input]), challenges);
        }
        Err(error) => {
            match &error {
                ChallengeParseError::Empty => assert!(only_separators),
                ChallengeParseError::Unexpected { at, found, .. } => {
                    let rest = input.get(*at..).expect("the offset is a char boundary");
                    assert!(rest.starts_with(*found), "{found:?} is not at byte {at}");
                }
                ChallengeParseError::UnterminatedQuotedString { at } => {
                    assert_eq!(input.as_bytes().get(*at), Some(&b'"'));
                }
                _ => {}
            }
            assert!(!error.to_string().is_empty());
            assert!(parse_www_authenticate_all([input]).is_empty());
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

// --- jwt_exp -------------------------------------------------------------

/// `jwt_expiry` never panics and agrees with a reference built on the
/// `base64` crate and `serde_json`.
pub fn jwt_exp(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let got = jwt_expiry(&input);
    assert_eq!(got, reference_jwt_expiry(&input), "{input:?}");
    if let Some(at) = got {
        assert!(at >= UNIX_EPOCH);
        assert!(input.len() <= MAX_JWT_LEN);
    }
}

/// base64url without padding, trailing `=` tolerated, stray bits allowed.
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

fn reference_jwt_expiry(token: &str) -> Option<SystemTime> {
    if token.len() > MAX_JWT_LEN {
        return None;
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return None;
    };
    let bytes = LENIENT_URL_SAFE
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.as_object()?.get("exp")?;
    let secs = match exp.as_u64() {
        Some(s) => s as f64,
        None => exp.as_f64()?,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(secs).ok()?)
}
