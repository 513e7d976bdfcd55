//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, RFC 6750 §3).
//!
//! A pure, allocation-light parser that never panics: junk gives a typed
//! [`ChallengeParseError`], never a crash. The middleware uses it to tell an
//! expired or revoked token (`invalid_token`: refresh and resend) from a
//! request a new token cannot fix (`insufficient_scope`, `invalid_request`).

use std::fmt;

/// One authentication challenge: a scheme and either a `token68` or a list
/// of `name=value` parameters.
///
/// Scheme and parameter names compare case-insensitively (RFC 9110 §11.1,
/// §11.2); values keep their case, with quoted-string escapes undone.
///
/// ```
/// use bearer_http::parse_www_authenticate;
///
/// let challenges = parse_www_authenticate(r#"bearer Realm="api", error="invalid_token""#).unwrap();
/// assert!(challenges[0].is_bearer());
/// assert_eq!(challenges[0].param("realm"), Some("api"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    token68: Option<String>,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The auth scheme as sent (`Bearer`, `Basic`, `DPoP`…).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether the scheme is `Bearer`, in any letter case.
    pub fn is_bearer(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("bearer")
    }

    /// Whether the scheme is `DPoP` (RFC 9449 §7.1), in any letter case.
    pub fn is_dpop(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("dpop")
    }

    /// The `token68` form of the challenge's data, if it used that form.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// The parameters in the order sent, names as sent.
    pub fn params(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of parameter `name`, matched case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The RFC 6750 §3.1 `error` code of a Bearer challenge; `None` for
    /// other schemes and for a Bearer challenge without `error`.
    ///
    /// ```
    /// use bearer_http::{BearerErrorCode, parse_www_authenticate};
    ///
    /// let c = parse_www_authenticate(r#"Bearer error="insufficient_scope", scope="admin""#).unwrap();
    /// assert_eq!(c[0].bearer_error(), Some(BearerErrorCode::InsufficientScope));
    /// ```
    pub fn bearer_error(&self) -> Option<BearerErrorCode> {
        if !self.is_bearer() {
            return None;
        }
        self.param("error").map(BearerErrorCode::from_code)
    }

    /// The `error` code of a DPoP challenge (RFC 9449 §7.1: RFC 6750's
    /// codes plus `invalid_dpop_proof` and `use_dpop_nonce`); `None` for
    /// other schemes and for a DPoP challenge without `error`.
    ///
    /// ```
    /// use bearer_http::{BearerErrorCode, parse_www_authenticate};
    ///
    /// let c = parse_www_authenticate(r#"DPoP error="use_dpop_nonce", algs="ES256""#).unwrap();
    /// assert_eq!(c[0].dpop_error(), Some(BearerErrorCode::UseDpopNonce));
    /// assert_eq!(c[0].bearer_error(), None);
    /// ```
    pub fn dpop_error(&self) -> Option<BearerErrorCode> {
        if !self.is_dpop() {
            return None;
        }
        self.param("error").map(BearerErrorCode::from_code)
    }
}

/// The error codes of RFC 6750 §3.1 and RFC 9449 §7.1 (DPoP), and any
/// other a server invents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerErrorCode {
    /// `invalid_token`: expired, revoked, malformed… A new token may work.
    InvalidToken,
    /// `insufficient_scope`: the token lacks a scope; a fresh copy won't help.
    InsufficientScope,
    /// `invalid_request`: the request itself is wrong; don't resend it.
    InvalidRequest,
    /// `invalid_dpop_proof` (DPoP): the proof was refused; a fresh proof
    /// may work, a new token would not.
    InvalidDpopProof,
    /// `use_dpop_nonce` (DPoP): resend with the nonce the server gave in
    /// its `DPoP-Nonce` header.
    UseDpopNonce,
    /// Any other code, as sent.
    Other(String),
}

impl BearerErrorCode {
    /// Maps a code to its variant; matching is exact, as the codes are
    /// lower-case identifiers.
    pub fn from_code(code: &str) -> Self {
        match code {
            "invalid_token" => BearerErrorCode::InvalidToken,
            "insufficient_scope" => BearerErrorCode::InsufficientScope,
            "invalid_request" => BearerErrorCode::InvalidRequest,
            "invalid_dpop_proof" => BearerErrorCode::InvalidDpopProof,
            "use_dpop_nonce" => BearerErrorCode::UseDpopNonce,
            other => BearerErrorCode::Other(other.to_owned()),
        }
    }

    /// The code as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            BearerErrorCode::InvalidToken => "invalid_token",
            BearerErrorCode::InsufficientScope => "insufficient_scope",
            BearerErrorCode::InvalidRequest => "invalid_request",
            BearerErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            BearerErrorCode::UseDpopNonce => "use_dpop_nonce",
            BearerErrorCode::Other(code) => code,
        }
    }
}

impl fmt::Display for BearerErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `WWW-Authenticate` value could not be parsed.
///
/// ```
/// use bearer_http::{ChallengeParseError, parse_www_authenticate};
///
/// let err = parse_www_authenticate(r#"Bearer realm="unterminated"#).unwrap_err();
/// assert!(matches!(err, ChallengeParseError::UnterminatedQuotedString { at: 13 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeParseError {
    /// The value holds no challenge at all (empty, or only commas and spaces).
    #[error("no challenge in the header value")]
    Empty,
    /// A byte that cannot start or continue the expected element.
    #[error("unexpected character {found:?} at byte {at}; expected {expected}")]
    Unexpected {
        /// Byte offset in the input.
        at: usize,
        /// The character found.
        found: char,
        /// What the grammar allowed there.
        expected: &'static str,
    },
    /// The input ended where more was required.
    #[error("the value ended early; expected {expected}")]
    UnexpectedEnd {
        /// What the grammar required.
        expected: &'static str,
    },
    /// A quoted string without its closing quote.
    #[error("quoted string opened at byte {at} is not closed")]
    UnterminatedQuotedString {
        /// Byte offset of the opening quote.
        at: usize,
    },
}

/// Parses one `WWW-Authenticate` field value into its challenges.
///
/// Accepts several challenges per value, `token68` and `auth-param` forms,
/// quoted strings with `\` escapes and commas inside, optional whitespace
/// around `=` and commas, and empty list elements (`, ,`), as RFC 9110
/// requires of recipients. Never panics.
///
/// A response may carry several `WWW-Authenticate` fields; parse each (see
/// [`parse_www_authenticate_all`]).
///
/// ```
/// use bearer_http::parse_www_authenticate;
///
/// let cs = parse_www_authenticate(
///     r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", Negotiate abc+/=="#,
/// ).unwrap();
/// assert_eq!(cs.len(), 3);
/// assert_eq!(cs[0].param("title"), Some(r#"Login to "apps""#));
/// assert_eq!(cs[2].token68(), Some("abc+/=="));
/// ```
pub fn parse_www_authenticate(input: &str) -> Result<Vec<Challenge>, ChallengeParseError> {
    let mut parser = Parser { input, pos: 0 };
    let challenges = parser.challenges()?;
    if challenges.is_empty() {
        return Err(ChallengeParseError::Empty);
    }
    Ok(challenges)
}

/// Parses every value of a header's fields, in order, skipping values that
/// do not parse (so one malformed field cannot hide a good one).
///
/// ```
/// use bearer_http::parse_www_authenticate_all;
///
/// let cs = parse_www_authenticate_all(["Basic realm=\"a\"", "@@junk", "Bearer error=invalid_token"]);
/// assert_eq!(cs.len(), 2);
/// assert!(cs[1].is_bearer());
/// ```
pub fn parse_www_authenticate_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    values
        .into_iter()
        .filter_map(|v| parse_www_authenticate(v).ok())
        .flatten()
        .collect()
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_token68_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/".contains(&c)
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.input.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and empty list elements; returns whether a comma was seen.
    fn skip_separators(&mut self) -> bool {
        let mut comma = false;
        loop {
            self.skip_ows();
            if self.peek() == Some(b',') {
                comma = true;
                self.pos += 1;
            } else {
                return comma;
            }
        }
    }

    fn unexpected(&self, expected: &'static str) -> ChallengeParseError {
        match self.input[self.pos..].chars().next() {
            Some(found) => ChallengeParseError::Unexpected {
                at: self.pos,
                found,
                expected,
            },
            None => ChallengeParseError::UnexpectedEnd { expected },
        }
    }

    fn token(&mut self, expected: &'static str) -> Result<&'a str, ChallengeParseError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected(expected));
        }
        Ok(&self.input[start..self.pos])
    }

    fn challenges(&mut self) -> Result<Vec<Challenge>, ChallengeParseError> {
        let mut out = Vec::new();
        self.skip_separators();
        while self.pos < self.input.len() {
            out.push(self.challenge()?);
            let comma = self.skip_separators();
            if !comma && self.pos < self.input.len() {
                return Err(self.unexpected("a comma between challenges"));
            }
        }
        Ok(out)
    }

    fn challenge(&mut self) -> Result<Challenge, ChallengeParseError> {
        let scheme = self.token("an auth scheme")?.to_owned();
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let before_space = self.pos;
        self.skip_ows();
        if self.pos == before_space || matches!(self.peek(), None | Some(b',')) {
            // A bare scheme: `Negotiate`, or `Basic, Bearer …`.
            return Ok(challenge);
        }
        if let Some(token68) = self.try_token68() {
            challenge.token68 = Some(token68.to_owned());
            return Ok(challenge);
        }
        loop {
            let (name, value) = self.auth_param()?;
            challenge.params.push((name.to_owned(), value));
            // Another parameter of this challenge follows a comma only if it
            // looks like `name =`; otherwise the comma starts a new challenge.
            let save = self.pos;
            if !self.skip_separators() || !self.at_param_start() {
                self.pos = save;
                return Ok(challenge);
            }
        }
    }

    /// A `token68` that is the whole of the challenge's data: followed by the
    /// end or a comma. Leaves the position alone otherwise.
    fn try_token68(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let mut end = start;
        let bytes = self.bytes();
        while end < bytes.len() && is_token68_char(bytes[end]) {
            end += 1;
        }
        if end == start {
            return None;
        }
        while end < bytes.len() && bytes[end] == b'=' {
            end += 1;
        }
        let mut after = end;
        while after < bytes.len() && matches!(bytes[after], b' ' | b'\t') {
            after += 1;
        }
        if after == bytes.len() || bytes[after] == b',' {
            self.pos = end;
            Some(&self.input[start..end])
        } else {
            None
        }
    }

    /// Whether `token BWS "="` starts here (an auth-param, not a new scheme).
    fn at_param_start(&self) -> bool {
        let bytes = self.bytes();
        let mut i = self.pos;
        let start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        bytes.get(i) == Some(&b'=')
    }

    fn auth_param(&mut self) -> Result<(&'a str, String), ChallengeParseError> {
        let name = self.token("a parameter name")?;
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Err(self.unexpected("'=' after a parameter name"));
        }
        self.pos += 1;
        self.skip_ows();
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            _ => self.token("a token or quoted string")?.to_owned(),
        };
        Ok((name, value))
    }

    fn quoted_string(&mut self) -> Result<String, ChallengeParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.input[self.pos..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += offset + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) if escaped == '\t' || !escaped.is_control() => {
                        out.push(escaped)
                    }
                    Some((at, bad)) => {
                        return Err(ChallengeParseError::Unexpected {
                            at: self.pos + at,
                            found: bad,
                            expected: "a visible character after '\\'",
                        });
                    }
                    None => return Err(ChallengeParseError::UnterminatedQuotedString { at: open }),
                },
                c if c == '\t' || !c.is_control() => out.push(c),
                bad => {
                    return Err(ChallengeParseError::Unexpected {
                        at: self.pos + offset,
                        found: bad,
                        expected: "a visible character in a quoted string",
                    });
                }
            }
        }
        Err(ChallengeParseError::UnterminatedQuotedString { at: open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<Challenge> {
        parse_www_authenticate(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn rfc6750_examples() {
        let cs = parse(r#"Bearer realm="example""#);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].scheme(), "Bearer");
        assert_eq!(cs[0].param("realm"), Some("example"));
        assert_eq!(cs[0].bearer_error(), None);

        let cs = parse(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].bearer_error(), Some(BearerErrorCode::InvalidToken));
        assert_eq!(
            cs[0].param("error_description"),
            Some("The access token expired")
        );
    }

    #[test]
    fn error_codes_map_to_variants() {
        for (header, code) in [
            ("Bearer error=invalid_token", BearerErrorCode::InvalidToken),
            (
                "Bearer error=\"insufficient_scope\", scope=\"a b\"",
                BearerErrorCode::InsufficientScope,
            ),
            (
                "Bearer error=invalid_request",
                BearerErrorCode::InvalidRequest,
            ),
            ("Bearer error=use_dpop_nonce", BearerErrorCode::UseDpopNonce),
            (
                "Bearer error=\"invalid_dpop_proof\"",
                BearerErrorCode::InvalidDpopProof,
            ),
            (
                "Bearer error=mac_invalid",
                BearerErrorCode::Other("mac_invalid".into()),
            ),
        ] {
            let cs = parse(header);
            assert_eq!(cs[0].bearer_error(), Some(code.clone()), "{header}");
            assert_eq!(code.to_string(), cs[0].param("error").unwrap());
        }
    }

    #[test]
    fn error_on_non_bearer_scheme_is_not_a_bearer_error() {
        let cs = parse("DPoP error=invalid_token");
        assert_eq!(cs[0].bearer_error(), None);
        assert_eq!(cs[0].dpop_error(), Some(BearerErrorCode::InvalidToken));
    }

    #[test]
    fn dpop_challenges_rfc9449_examples() {
        let cs = parse(
            r#"DPoP error="invalid_dpop_proof", error_description="Invalid DPoP key binding", algs="ES256""#,
        );
        assert!(cs[0].is_dpop());
        assert_eq!(cs[0].dpop_error(), Some(BearerErrorCode::InvalidDpopProof));
        assert_eq!(cs[0].param("algs"), Some("ES256"));
        let cs = parse(
            r#"dpop error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
        );
        assert_eq!(cs[0].dpop_error(), Some(BearerErrorCode::UseDpopNonce));
        let cs = parse(r#"Bearer realm="api", DPoP algs="ES256 PS256""#);
        assert!(cs[1].is_dpop() && !cs[0].is_dpop());
        assert_eq!(cs[1].dpop_error(), None);
    }

    #[test]
    fn several_challenges_in_one_value() {
        let cs = parse(r#"Basic realm="x", Bearer realm="y", error="invalid_token", Negotiate"#);
        let schemes: Vec<_> = cs.iter().map(Challenge::scheme).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "Negotiate"]);
        assert_eq!(cs[1].param("error"), Some("invalid_token"));
        assert_eq!(cs[1].params().len(), 2);
        assert_eq!(cs[2].params().len(), 0);
    }

    #[test]
    fn bare_schemes_separated_by_commas() {
        let cs = parse("Negotiate, NTLM,Bearer");
        let schemes: Vec<_> = cs.iter().map(Challenge::scheme).collect();
        assert_eq!(schemes, ["Negotiate", "NTLM", "Bearer"]);
    }

    #[test]
    fn commas_and_escapes_inside_quotes() {
        let cs = parse(
            r#"Bearer error_description="a, b=\"c\", d\\e", error="invalid_token", Basic realm="r""#,
        );
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].param("error_description"), Some(r#"a, b="c", d\e"#));
        assert_eq!(cs[0].bearer_error(), Some(BearerErrorCode::InvalidToken));
    }

    #[test]
    fn odd_spacing_and_empty_elements() {
        let cs = parse(" ,  Bearer   realm = \"r\" ,, error =\tinvalid_token ,  , Basic  ,");
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].param("realm"), Some("r"));
        assert_eq!(cs[0].bearer_error(), Some(BearerErrorCode::InvalidToken));
        assert_eq!(cs[1].scheme(), "Basic");
    }

    #[test]
    fn scheme_and_param_names_are_case_insensitive() {
        let cs = parse(r#"bEaReR ERROR="invalid_token", Realm=r"#);
        assert!(cs[0].is_bearer());
        assert_eq!(cs[0].param("error"), Some("invalid_token"));
        assert_eq!(cs[0].param("REALM"), Some("r"));
        assert_eq!(cs[0].bearer_error(), Some(BearerErrorCode::InvalidToken));
    }

    #[test]
    fn token68_forms() {
        let cs = parse("Negotiate YWxhZGRpbjpvcGVuc2VzYW1l==, Basic dXNlcg");
        assert_eq!(cs[0].token68(), Some("YWxhZGRpbjpvcGVuc2VzYW1l=="));
        assert_eq!(cs[1].token68(), Some("dXNlcg"));
        assert_eq!(cs[0].params().len(), 0);
        // `a=b` is a parameter, not a token68.
        let cs = parse("Custom a=b");
        assert_eq!(cs[0].token68(), None);
        assert_eq!(cs[0].param("a"), Some("b"));
    }

    #[test]
    fn non_ascii_in_quoted_string_is_kept() {
        let cs = parse("Bearer realm=\"caf\u{e9}\"");
        assert_eq!(cs[0].param("realm"), Some("caf\u{e9}"));
    }

    #[test]
    fn duplicate_params_first_wins() {
        let cs = parse("Bearer error=invalid_request, error=invalid_token");
        assert_eq!(cs[0].bearer_error(), Some(BearerErrorCode::InvalidRequest));
        assert_eq!(cs[0].params().len(), 2);
    }

    #[test]
    fn typed_errors_for_junk() {
        assert_eq!(parse_www_authenticate(""), Err(ChallengeParseError::Empty));
        assert_eq!(
            parse_www_authenticate(" , ,"),
            Err(ChallengeParseError::Empty)
        );
        assert_eq!(
            parse_www_authenticate(r#"Bearer realm="open"#),
            Err(ChallengeParseError::UnterminatedQuotedString { at: 13 })
        );
        assert_eq!(
            parse_www_authenticate(r#"Bearer realm="ends with \"#),
            Err(ChallengeParseError::UnterminatedQuotedString { at: 13 })
        );
        assert!(matches!(
            parse_www_authenticate("@Bearer"),
            Err(ChallengeParseError::Unexpected {
                at: 0,
                found: '@',
                ..
            })
        ));
        assert!(matches!(
            parse_www_authenticate("Bearer realm=\"a\", error="),
            Err(ChallengeParseError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            parse_www_authenticate("Bearer realm=\"a\" junk"),
            Err(ChallengeParseError::Unexpected {
                at: 17,
                found: 'j',
                ..
            })
        ));
        assert!(matches!(
            parse_www_authenticate("Bearer realm=\"a\nb\""),
            Err(ChallengeParseError::Unexpected { found: '\n', .. })
        ));
        assert!(matches!(
            parse_www_authenticate("Bearer a=b c"),
            Err(ChallengeParseError::Unexpected { .. })
        ));
    }

    #[test]
    fn error_messages_say_where() {
        let e = parse_www_authenticate("Bearer realm=\"a\" junk").unwrap_err();
        assert!(e.to_string().contains("byte 17"), "{e}");
    }

    #[test]
    fn parse_all_skips_bad_fields_keeps_good_ones() {
        let cs = parse_www_authenticate_all([
            "Basic realm=\"a\"",
            "\"broken",
            "Bearer error=\"invalid_token\"",
        ]);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[1].bearer_error(), Some(BearerErrorCode::InvalidToken));
    }

    #[test]
    fn never_panics_on_junk() {
        // Every prefix and suffix of some tricky inputs, plus byte soup.
        let seeds = [
            r#"Bearer realm="a\"b", error="invalid_token", Basic x==, Negotiate"#,
            "\u{e9}\u{1F600}, =,\"\\",
            "a=\"\\\u{e9}",
            ",,,= = =\t\t\"",
        ];
        for seed in seeds {
            for (i, _) in seed.char_indices() {
                let _ = parse_www_authenticate(&seed[i..]);
                let _ = parse_www_authenticate(&seed[..i]);
            }
        }
        let alphabet = [
            'a', 'B', '=', ',', ' ', '"', '\\', '\t', '/', '+', '\u{e9}', '\0', '@',
        ];
        let mut state = 0x2545_f491_u32;
        let mut parsed_some = 0;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u32) as usize])
                .collect();
            if parse_www_authenticate(&s).is_ok() {
                parsed_some += 1;
            }
        }
        // The soup is mostly junk, but some of it is valid.
        assert!(parsed_some > 0);
    }
}
