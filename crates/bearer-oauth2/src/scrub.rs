//! Making server answers safe to put in an error message.

use aho_corasick::AhoCorasick;
use url::Url;

/// The longest excerpt of a body kept in an error.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// Runs of token characters at least this long, with a digit or both
/// letter cases (as random base64 has and identifiers like
/// `unsupported_grant_type` have not), are treated as secrets.
const TOKEN_LIKE_LEN: usize = 20;

const REDACTED: &str = "[redacted]";

/// The exact secret values one request sends (client secret, password,
/// refresh token, authorization code, PKCE verifier, device code), in every
/// form it sends them: raw, form-urlencoded, JSON-escaped, and the whole
/// `Basic` credentials. Matched without regard to ASCII case (percent
/// escapes come in both), overlapping matches merged, so no part of one
/// survives next to another.
#[derive(Clone)]
pub(crate) struct Secrets {
    /// Before whitespace is collapsed.
    raw: Option<AhoCorasick>,
    /// The same forms with their whitespace collapsed, for the collapsed text.
    collapsed: Option<AhoCorasick>,
}

impl Secrets {
    /// No secrets (discovery, and answers parsed without a request).
    pub(crate) fn none() -> Self {
        Secrets {
            raw: None,
            collapsed: None,
        }
    }

    /// `values` in each form sent, plus `basic`, the `Basic` credentials as
    /// sent (base64), when the request carried them.
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a str>, basic: Option<&str>) -> Self {
        let mut forms: Vec<String> = Vec::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            forms.push(value.to_owned());
            forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
            if let Ok(json) = serde_json::to_string(value) {
                forms.push(json[1..json.len() - 1].to_owned());
            }
        }
        forms.extend(basic.map(str::to_owned));
        let collapsed: Vec<String> = forms.iter().map(|f| collapse(f)).collect();
        Secrets {
            raw: matcher(&forms),
            collapsed: matcher(&collapsed),
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The automaton would show the patterns.
        f.write_str("Secrets([redacted])")
    }
}

fn matcher(forms: &[String]) -> Option<AhoCorasick> {
    let forms: Vec<&String> = forms.iter().filter(|f| !f.is_empty()).collect();
    if forms.is_empty() {
        return None;
    }
    // Standard match semantics, for overlapping search; a handful of short
    // patterns, so building cannot hit a size limit.
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(forms)
        .ok()
}

/// `body` as text, scrubbed of `secrets` and of anything that looks like a
/// token, whitespace collapsed, then cut to [`EXCERPT_CHARS`] characters.
/// The whole body is scrubbed (it is already capped by the source's body
/// limit), and again after collapsing, so neither padding nor whitespace
/// inside a secret moves part of one into the excerpt.
pub(crate) fn excerpt(body: &[u8], secrets: &Secrets) -> String {
    cap(&scrub(&String::from_utf8_lossy(body), secrets), secrets)
}

/// `text` (already scrubbed) with whitespace collapsed, scrubbed of the
/// collapsed forms of `secrets`, and cut to [`EXCERPT_CHARS`] characters.
pub(crate) fn cap(text: &str, secrets: &Secrets) -> String {
    let collapsed = redact(&collapse(text), secrets.collapsed.as_ref());
    truncate(&collapsed, EXCERPT_CHARS)
}

/// Runs of whitespace as one space, none at the ends.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` with `secrets` and token-like runs replaced.
pub(crate) fn scrub(text: &str, secrets: &Secrets) -> String {
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

/// `text` with every form of `secrets` replaced.
pub(crate) fn scrub_secrets(text: &str, secrets: &Secrets) -> String {
    redact(text, secrets.raw.as_ref())
}

/// Replaces every stretch of `text` covered by a match of `patterns`,
/// overlapping matches merged into one `[redacted]`.
fn redact(text: &str, patterns: Option<&AhoCorasick>) -> String {
    let Some(patterns) = patterns else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut cover: Option<(usize, usize)> = None;
    // Overlapping matches come ordered by end; merge those that touch.
    let mut spans: Vec<(usize, usize)> = patterns
        .find_overlapping_iter(text)
        .map(|m| (m.start(), m.end()))
        .collect();
    spans.sort_unstable();
    for (start, end) in spans {
        match cover {
            Some((s, e)) if start <= e => cover = Some((s, e.max(end))),
            _ => {
                if let Some((s, e)) = cover.replace((start, end)) {
                    out.push_str(&text[done..s]);
                    out.push_str(REDACTED);
                    done = e;
                }
            }
        }
    }
    if let Some((s, e)) = cover {
        out.push_str(&text[done..s]);
        out.push_str(REDACTED);
        done = e;
    }
    out.push_str(&text[done..]);
    out
}

/// `url` as it may be printed: without userinfo, query or fragment, any
/// of which may carry a key (`?api_key=…`, `https://user:pass@…`).
pub(crate) fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
}

/// [`shown_url`] for text that should be a URL; text that is not one with
/// a host is cut at its first `?` or `#`, and hidden if it may hold userinfo.
pub(crate) fn shown_url_text(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if url.has_host() => shown_url(&url),
        _ => {
            let head = text.split(['?', '#']).next().unwrap_or("");
            if head.contains('@') {
                "[redacted]".to_owned()
            } else {
                cap(head, &Secrets::none())
            }
        }
    }
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
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    #[test]
    fn secrets_and_token_like_runs_are_redacted() {
        let body = b"<p>bad secret p@ss w0rd+/x and p%40ss+w0rd%2B%2Fx, token eyJhbGciOi.eyJzdWIiOiJ4In0.abc</p>";
        let e = excerpt(body, &Secrets::new(["p@ss w0rd+/x"], None));
        assert!(!e.contains("p@ss") && !e.contains("p%40ss"), "{e}");
        assert!(!e.contains("eyJ"), "{e}");
        assert!(e.contains("bad secret"), "{e}");
        let json = r#"{"access_token" : "aaaa\"bbbb", "token_type":"mac", "refresh_token":"cut-sh"#;
        assert_eq!(
            excerpt(json.as_bytes(), &Secrets::none()),
            r#"{"access_token" : "[redacted]", "token_type":"mac", "refresh_token":"[redacted]"#
        );
        let words = "unsupported_grant_type authorization_pending";
        assert_eq!(excerpt(words.as_bytes(), &Secrets::none()), words);
        assert_eq!(
            excerpt(b"id 0123456789abcdefghij", &Secrets::none()),
            "id [redacted]"
        );
        let e = excerpt(b"x a \t b y", &Secrets::new(["a \t b"], None));
        assert!(!e.contains("a b") && !e.contains("a \t b"), "{e}");
        assert_eq!(e, "x [redacted] y");
    }

    #[test]
    fn excerpt_is_short_and_cut_on_a_char_boundary() {
        let body = "é ".repeat(5000);
        let e = excerpt(body.as_bytes(), &Secrets::none());
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with('…'));
        assert_eq!(
            excerpt(b"  short\n\n body ", &Secrets::none()),
            "short body"
        );
    }

    /// Every stretch of `len` characters of `needle`.
    fn windows(needle: &str, len: usize) -> Vec<String> {
        let chars: Vec<char> = needle.chars().collect();
        chars
            .windows(len)
            .map(|w| w.iter().collect::<String>())
            .collect()
    }

    fn assert_no_part(excerpt: &str, needle: &str) {
        for part in windows(&collapse(needle), 6) {
            assert!(
                !excerpt.contains(&part),
                "{part:?} of a secret survives in {excerpt:?}"
            );
        }
    }

    #[test]
    fn urls_are_shown_without_userinfo_query_or_fragment() {
        let url = Url::parse("https://u:p4ss@idp.example:8443/t/token?api_key=k3y#frag").unwrap();
        assert_eq!(shown_url(&url), "https://idp.example:8443/t/token");
        assert_eq!(
            shown_url_text("https://idp.example/x?api_key=k3y"),
            "https://idp.example/x"
        );
        assert_eq!(shown_url_text("not a url?api_key=k3y"), "not a url");
        assert_eq!(shown_url_text("u:p4ss@idp?x"), "[redacted]");
    }

    #[test]
    fn padding_before_the_secret_leaves_no_part_of_it() {
        let secret = "correct horse+battery/staple";
        let secrets = Secrets::new([secret], None);
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        // Whitespace padding collapses away, so whatever its size the
        // secret lands in the excerpt: every offset around the old 4 KiB
        // prefix, and far past it.
        for padding in (4000..4200).chain([0, 1, 199, 60_000]) {
            for (needle, pad) in [(secret, " "), (form.as_str(), "\n"), (secret, "\t ")] {
                let body = format!("{}error: {needle} was refused", pad.repeat(padding));
                let e = excerpt(body.as_bytes(), &secrets);
                assert_no_part(&e, needle);
                assert!(e.contains("[redacted] was refused"), "{e}");
            }
        }
    }

    #[test]
    fn split_and_re_encoded_secrets_are_caught() {
        let secret = "p@ss w\"ord é/x";
        let basic = STANDARD.encode("client:p%40ss+w%22ord+%C3%A9%2Fx");
        let secrets = Secrets::new([secret], Some(&basic));
        let json = serde_json::to_string(secret).unwrap();
        for body in [
            // Split by a run of whitespace: collapsing joins it again.
            "was p@ss \n\t  w\"ord é/x!".to_owned(),
            format!("json {json} end"),
            "form P%40SS+W%22ORD+%C3%A9%2FX end".to_owned(),
            "lower p%40ss+w%22ord+%c3%a9%2fx end".to_owned(),
            format!("header Basic {basic} end"),
        ] {
            let e = excerpt(body.as_bytes(), &secrets);
            assert!(e.contains("[redacted]"), "{body:?} → {e:?}");
            for needle in ["p@ss", "w\"ord", "%40ss", "%22ord", &basic[..8]] {
                assert!(
                    !e.to_lowercase().contains(&needle.to_lowercase()),
                    "{needle} in {e}"
                );
            }
        }
    }

    #[test]
    fn overlapping_secrets_are_redacted_as_one() {
        let secrets = Secrets::new(["abcdef", "defghi", "zz"], None);
        assert_eq!(
            scrub_secrets("x abcdefghi zzz y", &secrets),
            "x [redacted] [redacted] y"
        );
        assert_eq!(scrub_secrets("nothing", &Secrets::none()), "nothing");
    }

    #[test]
    fn the_cut_comes_after_scrubbing() {
        let secret = "kept out of the excerpt";
        let secrets = Secrets::new([secret], None);
        // The secret straddles the excerpt's end.
        for lead in 170..EXCERPT_CHARS {
            let body = format!("{}{secret}", "-".repeat(lead));
            let e = excerpt(body.as_bytes(), &secrets);
            assert!(e.chars().count() <= EXCERPT_CHARS);
            assert_no_part(&e, secret);
            for cut in 1..secret.len() {
                assert!(!e.trim_end_matches('…').ends_with(&secret[..cut]), "{e}");
            }
        }
    }

    /// Characters a secret is made of: lower case without the letters of
    /// `[redacted]` (so a match of the marker is not taken for a leak), no
    /// digits (so the token-like heuristic stays out of it), symbols that
    /// encode differently in a form and in JSON.
    const SECRET_CHARS: &[char] = &[
        'b', 'f', 'g', 'h', 'j', 'k', 'm', 'o', 'p', 'q', 's', 'u', 'v', 'w', 'y', 'z', ' ', '+',
        '/', '%', '&', '=', '"', '\\', 'é', '-', ':',
    ];
    const PAD_CHARS: &[char] = &[' ', '\n', '\t', '<', '>', '#', ',', ';', '.'];

    fn text(chars: &'static [char], len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(chars), len)
            .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A body of any size and whitespace holding one secret in one of
        /// the forms sent (whitespace inside it possibly re-spaced) gives an
        /// excerpt with no 6-character stretch of that form.
        #[test]
        fn no_part_of_a_secret_survives(
            secret in text(SECRET_CHARS, 8..40),
            filler in text(PAD_CHARS, 0..100),
            // Mostly around the 4 KiB an excerpt was once scrubbed within.
            spaces in prop_oneof![4000..4100usize, 0..70_000usize],
            space in prop::sample::select(vec![" ", "\n", "\r\n", "\t"]),
            after in text(PAD_CHARS, 0..300),
            form in 0..4usize,
            respace in prop::sample::select(vec![" ", "  ", "\n", "\t \r\n"]),
        ) {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            let json = serde_json::to_string(&secret).unwrap();
            let basic = STANDARD.encode(format!("id:{encoded}"));
            let needle = match form {
                0 => secret.clone(),
                1 => encoded,
                2 => json[1..json.len() - 1].to_owned(),
                _ => basic.clone(),
            };
            let placed = if form == 0 { needle.replace(' ', respace) } else { needle.clone() };
            let body = format!("{filler}{}{placed}{after}", space.repeat(spaces));
            let e = excerpt(body.as_bytes(), &Secrets::new([secret.as_str()], Some(&basic)));
            prop_assert!(e.chars().count() <= EXCERPT_CHARS);
            for part in windows(&collapse(&needle), 6) {
                prop_assert!(!e.contains(&part), "{:?} survives in {:?}", part, e);
            }
        }
    }
}
