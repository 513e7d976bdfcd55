//! Making server answers safe to put in an error message.

/// The longest excerpt of a body kept in an error.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// Runs of token characters at least this long, with a digit or both
/// letter cases (as random base64 has and identifiers like
/// `unsupported_grant_type` have not), are treated as secrets.
const TOKEN_LIKE_LEN: usize = 20;

const REDACTED: &str = "[redacted]";

/// The start of `body` as text, with the request's own `secrets` and
/// anything that looks like a token value replaced, then whitespace
/// collapsed (so a secret containing whitespace is still matched), cut to
/// [`EXCERPT_CHARS`] characters.
pub(crate) fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    // Scrub a generous head first, so a secret straddling the cut is caught.
    let head = &body[..body.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    cap(&scrub(&text, secrets))
}

/// `text` (already scrubbed) with whitespace collapsed, cut to
/// [`EXCERPT_CHARS`] characters.
pub(crate) fn cap(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, EXCERPT_CHARS)
}

/// `text` with `secrets` (raw and form-encoded) and token-like runs replaced.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    redact_token_like(&redact_secret_fields(&scrub_secrets(text, secrets)))
}

/// JSON fields whose string values are secrets whatever they look like.
const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "device_code",
    "code",
    "client_secret",
    "password",
];

/// Replaces the string value of every [`SECRET_FIELDS`] member, in JSON
/// text that may be cut short.
fn redact_secret_fields(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(quote) = rest.find('"') {
        let (before, from_quote) = rest.split_at(quote);
        out.push_str(before);
        let Some(name_len) = from_quote[1..].find('"') else {
            out.push_str(from_quote);
            return out;
        };
        let name = &from_quote[1..1 + name_len];
        let after_name = &from_quote[name_len + 2..];
        out.push_str(&from_quote[..name_len + 2]);
        rest = after_name;
        if !SECRET_FIELDS.contains(&name) {
            continue;
        }
        let trimmed = after_name.trim_start();
        let Some(value) = trimmed.strip_prefix(':').map(str::trim_start) else {
            continue;
        };
        let Some(value) = value.strip_prefix('"') else {
            continue;
        };
        out.push_str(&after_name[..after_name.len() - value.len()]);
        out.push_str(REDACTED);
        // Skip to the closing quote (escapes honoured), or the end if cut.
        let mut escaped = false;
        let end = value
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(value.len(), |(i, _)| i);
        // Past the closing quote, so it is not taken for an opening one.
        out.push_str(&value[end..(end + 1).min(value.len())]);
        rest = &value[(end + 1).min(value.len())..];
    }
    out.push_str(rest);
    out
}

/// `text` with `secrets` (raw and form-encoded) replaced.
pub(crate) fn scrub_secrets(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, REDACTED);
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != *secret {
            out = out.replace(&encoded, REDACTED);
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=')
}

/// Replaces every run of token characters (base64, base64url, JWTs) that
/// [looks random](looks_random).
fn looks_random(run: &str) -> bool {
    run.len() >= TOKEN_LIKE_LEN
        && (run.bytes().any(|b| b.is_ascii_digit())
            || (run.bytes().any(|b| b.is_ascii_uppercase())
                && run.bytes().any(|b| b.is_ascii_lowercase())))
}

fn redact_token_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if looks_random(run) {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => {
            let mut short: String = text[..cut].chars().take(max_chars - 1).collect();
            short.push('…');
            short
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_token_like_runs_are_redacted() {
        let body = b"<p>bad secret p@ss w0rd+/x and p%40ss+w0rd%2B%2Fx, token eyJhbGciOi.eyJzdWIiOiJ4In0.abc</p>";
        let e = excerpt(body, &["p@ss w0rd+/x"]);
        assert!(!e.contains("p@ss") && !e.contains("p%40ss"), "{e}");
        assert!(!e.contains("eyJ"), "{e}");
        assert!(e.contains("bad secret"), "{e}");
        let json = r#"{"access_token" : "aaaa\"bbbb", "token_type":"mac", "refresh_token":"cut-sh"#;
        assert_eq!(
            excerpt(json.as_bytes(), &[]),
            r#"{"access_token" : "[redacted]", "token_type":"mac", "refresh_token":"[redacted]"#
        );
        let words = "unsupported_grant_type authorization_pending";
        assert_eq!(excerpt(words.as_bytes(), &[]), words);
        assert_eq!(excerpt(b"id 0123456789abcdefghij", &[]), "id [redacted]");
        let e = excerpt(b"x a \t b y", &["a \t b"]);
        assert!(!e.contains("a b") && !e.contains("a \t b"), "{e}");
        assert_eq!(e, "x [redacted] y");
    }

    #[test]
    fn excerpt_is_short_and_cut_on_a_char_boundary() {
        let body = "é ".repeat(5000);
        let e = excerpt(body.as_bytes(), &[]);
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(b"  short\n\n body ", &[]), "short body");
    }
}
