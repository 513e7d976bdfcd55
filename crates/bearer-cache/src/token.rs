//! The vocabulary: secret values, tokens and their fingerprints.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::TokenBinding;
use crate::binding::Binding;

/// A short, non-reversible name for a secret, safe to log.
///
/// It is the first 6 bytes of the secret's SHA-256, in hex, so two log lines
/// can be matched to the same token without revealing it.
///
/// ```
/// let fp = bearer_cache::fingerprint("my-secret-token");
/// assert_eq!(fp.to_string().len(), 12);
/// assert!(!fp.to_string().contains("secret"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 6]);

/// Computes the [`Fingerprint`] of a secret value.
pub fn fingerprint(secret: &str) -> Fingerprint {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = [0u8; 6];
    out.copy_from_slice(&digest[..6]);
    Fingerprint(out)
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// What every secret type shares, given its `new` and `expose_secret`.
macro_rules! secret_common {
    ($name:ident) => {
        impl $name {
            /// A loggable fingerprint of the value.
            pub fn fingerprint(&self) -> Fingerprint {
                fingerprint(self.expose_secret())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    concat!(stringify!($name), "([redacted] fp={})"),
                    self.fingerprint()
                )
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "[redacted] fp={}", self.fingerprint())
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose_secret() == other.expose_secret()
            }
        }

        impl Eq for $name {}

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }
    };
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// `Debug` and `Display` print only a fingerprint; the value is wiped
        /// from memory when dropped.
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret value itself. Call this only to put it on the wire.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        secret_common!($name);

        /// Takes a [`secrecy::SecretString`](https://docs.rs/secrecy/0.10/secrecy/type.SecretString.html) as it is, without a copy.
        impl From<SecretString> for $name {
            fn from(value: SecretString) -> Self {
                Self(value)
            }
        }
    };
}

/// An access token's value.
///
/// `Debug` and `Display` print only a fingerprint; the value is wiped
/// from memory when dropped.
///
/// ```
/// let t = bearer_cache::AccessToken::new("s3cr3t");
/// assert!(!format!("{t:?} {t}").contains("s3cr3t"));
/// assert_eq!(t.expose_secret(), "s3cr3t");
/// ```
#[derive(Clone)]
pub struct AccessToken {
    value: SecretString,
    /// How many bytes of `value` come before the token: a scheme and a
    /// space once the cache has made the token a view of its
    /// `Authorization` value (one copy of the secret, not two), else 0.
    skip: usize,
}

impl AccessToken {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self::from(SecretString::from(value.into()))
    }

    /// The secret value itself. Call this only to put it on the wire.
    pub fn expose_secret(&self) -> &str {
        &self.value.expose_secret()[self.skip..]
    }

    /// The same token as a view of `"<scheme> <token>"`, which
    /// [`authorization`](Self::authorization) then returns.
    pub(crate) fn with_scheme(&self, scheme: &str) -> Self {
        let token = self.expose_secret();
        let mut value = String::with_capacity(scheme.len() + 1 + token.len());
        value.push_str(scheme);
        value.push(' ');
        value.push_str(token);
        AccessToken {
            value: SecretString::from(value),
            skip: scheme.len() + 1,
        }
    }

    /// The value with the scheme [`with_scheme`](Self::with_scheme) put
    /// before it (just the token if none was).
    pub(crate) fn authorization(&self) -> &str {
        self.value.expose_secret()
    }
}

secret_common!(AccessToken);

/// Takes a [`secrecy::SecretString`](https://docs.rs/secrecy/0.10/secrecy/type.SecretString.html) as it is, without a copy.
impl From<SecretString> for AccessToken {
    fn from(value: SecretString) -> Self {
        AccessToken { value, skip: 0 }
    }
}

secret_type!(
    /// A refresh token's value.
    RefreshToken
);
secret_type!(
    /// Any other secret: a client secret, a password, a PKCE verifier.
    ///
    /// Every secret type converts from `&str`, `String` and a
    /// [`secrecy::SecretString`](https://docs.rs/secrecy/0.10/secrecy/type.SecretString.html) (re-exported as `bearer_cache::secrecy`), so
    /// a secret already held in `secrecy` is passed on as it is.
    ///
    /// ```
    /// use bearer_cache::secrecy::SecretString;
    ///
    /// let s = bearer_cache::Secret::new("hunter2");
    /// assert!(!format!("{s:?}").contains("hunter2"));
    ///
    /// let from_secrecy: bearer_cache::Secret = SecretString::from("hunter2").into();
    /// assert_eq!(from_secrecy, s);
    /// ```
    Secret
);

/// When a token stops being valid, as the authorization server said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A lifetime counted from when the token request was sent
    /// (OAuth's `expires_in`).
    In(Duration),
    /// An absolute wall-clock time (`expires_at`, a JWT's `exp`).
    At(SystemTime),
    /// The server did not say; the cache applies its default lifetime.
    Unknown,
}

/// An access token with what the cache needs to know about it.
///
/// ```
/// use bearer_cache::{Expiry, Token};
/// use std::time::Duration;
///
/// let token = Token::bearer("abc")
///     .with_expiry(Expiry::In(Duration::from_secs(3600)))
///     .with_refresh_token("r-123")
///     .with_scopes(["read", "write"]);
/// assert_eq!(token.token_type(), "Bearer");
/// assert_eq!(token.scopes(), Some(&["read".to_string(), "write".to_string()][..]));
/// assert!(!format!("{token:?}").contains("r-123"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    access_token: AccessToken,
    expiry: Expiry,
    /// Inline: a transport reads it on every request.
    binding: Option<Binding>,
    /// What a plain bearer token from a client-credentials grant lacks:
    /// boxed, so such a token (most of what a cache with many keys holds)
    /// does not carry room for it. `None` when all of it is the default.
    more: Option<Box<More>>,
}

/// The parts of a [`Token`] many tokens do without.
#[derive(Clone, PartialEq, Eq, Default)]
struct More {
    /// `None`: `Bearer`.
    token_type: Option<TokenType>,
    refresh_token: Option<RefreshToken>,
    scopes: Option<Vec<String>>,
    refresh_in: Option<Duration>,
}

/// A token type other than `Bearer`: the spellings servers use need no
/// allocation.
#[derive(Clone, PartialEq, Eq)]
enum TokenType {
    Known(&'static str),
    Other(Box<str>),
}

impl TokenType {
    fn as_str(&self) -> &str {
        match self {
            TokenType::Known(name) => name,
            TokenType::Other(name) => name,
        }
    }
}

impl Token {
    /// A bearer token with an unknown expiry.
    pub fn bearer(access_token: impl Into<AccessToken>) -> Self {
        Token {
            access_token: access_token.into(),
            expiry: Expiry::Unknown,
            binding: None,
            more: None,
        }
    }

    /// Changes the rarely set parts, keeping `more` empty when they are
    /// all defaults, so that equal tokens are equal field by field.
    fn more(mut self, change: impl FnOnce(&mut More)) -> Self {
        let mut more = self.more.take().unwrap_or_default();
        change(&mut more);
        if *more != More::default() {
            self.more = Some(more);
        }
        self
    }

    /// Sets when the token expires.
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets the refresh token that came with it.
    pub fn with_refresh_token(self, refresh_token: impl Into<RefreshToken>) -> Self {
        self.with_refresh_token_opt(Some(refresh_token.into()))
    }

    /// Sets or clears the refresh token.
    pub fn with_refresh_token_opt(self, refresh_token: Option<RefreshToken>) -> Self {
        self.more(|m| m.refresh_token = refresh_token)
    }

    /// Sets the scopes the server granted.
    pub fn with_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.more(|m| m.scopes = Some(scopes))
    }

    /// Sets the server's hint of when to refresh (Azure's `refresh_in`),
    /// counted like [`Expiry::In`] from when the request was sent.
    pub fn with_refresh_in(self, refresh_in: Duration) -> Self {
        self.more(|m| m.refresh_in = Some(refresh_in))
    }

    /// Binds the token to a key (DPoP): the cache then admits a token
    /// whose type is the binding's scheme, and transports send it with
    /// that scheme and a fresh proof per request. Set by the source that
    /// made the proof of the token request.
    pub fn with_binding(mut self, binding: Arc<dyn TokenBinding>) -> Self {
        self.binding = Some(Binding(binding));
        self
    }

    /// The key the token is bound to; `None` for a bearer token.
    pub fn binding(&self) -> Option<&Arc<dyn TokenBinding>> {
        self.binding.as_ref().map(|b| &b.0)
    }

    /// Sets the token type as the server named it. The cache admits
    /// `Bearer`, and the scheme of the token's [`binding`](Self::binding).
    pub fn with_token_type(self, token_type: impl Into<String>) -> Self {
        const KNOWN: [&str; 4] = ["bearer", "BEARER", "DPoP", "dpop"];
        let token_type = token_type.into();
        let token_type = if token_type == "Bearer" {
            None
        } else if let Some(known) = KNOWN.into_iter().find(|k| *k == token_type) {
            Some(TokenType::Known(known))
        } else {
            Some(TokenType::Other(token_type.into_boxed_str()))
        };
        self.more(|m| m.token_type = token_type)
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The token type: `Bearer`, or the bound scheme (`DPoP`).
    pub fn token_type(&self) -> &str {
        self.more
            .as_ref()
            .and_then(|m| m.token_type.as_ref())
            .map_or("Bearer", TokenType::as_str)
    }

    /// When it expires.
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The refresh token, if the server gave one.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.more.as_ref()?.refresh_token.as_ref()
    }

    /// The granted scopes, if the server said.
    pub fn scopes(&self) -> Option<&[String]> {
        self.more.as_ref()?.scopes.as_deref()
    }

    /// The server's refresh hint.
    pub fn refresh_in(&self) -> Option<Duration> {
        self.more.as_ref()?.refresh_in
    }

    /// The same token with its access token a view of `"<scheme> <token>"`
    /// (see [`AccessToken::authorization`]).
    pub(crate) fn with_scheme(mut self, scheme: &str) -> Self {
        self.access_token = self.access_token.with_scheme(scheme);
        self
    }

    pub(crate) fn header_safe(&self) -> bool {
        is_header_safe(self.access_token.expose_secret())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type())
            .field("expiry", &self.expiry)
            .field("refresh_token", &self.refresh_token())
            .field("scopes", &self.scopes())
            .field("refresh_in", &self.refresh_in())
            .field("binding", &self.binding)
            .finish()
    }
}

/// Whether a token value can travel in an `Authorization` header: visible
/// ASCII only, no spaces, no CR/LF (header injection). The cache refuses
/// any other token; sources may check it early for a better error.
///
/// ```
/// assert!(bearer_cache::is_header_safe("abc.DEF-123_~+/="));
/// assert!(!bearer_cache::is_header_safe("abc\r\nX-Evil: 1"));
/// assert!(!bearer_cache::is_header_safe(""));
/// ```
pub fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_token_viewed_in_its_header_value_is_the_same_token() {
        let plain = AccessToken::new("abc.def");
        let viewed = plain.with_scheme("DPoP");
        assert_eq!(viewed.expose_secret(), "abc.def");
        assert_eq!(viewed.authorization(), "DPoP abc.def");
        assert_eq!(plain.authorization(), "abc.def");
        assert_eq!(viewed, plain);
        assert_eq!(viewed.fingerprint(), plain.fingerprint());
        assert_eq!(viewed.clone().expose_secret(), "abc.def");
        assert!(!format!("{viewed:?} {viewed}").contains("abc"));
        let token = Token::bearer("xyz").with_scheme("Bearer");
        assert_eq!(token.access_token().expose_secret(), "xyz");
        assert_eq!(token, Token::bearer("xyz"));
    }

    #[test]
    fn token_types_read_back_as_given() {
        for name in ["Bearer", "bearer", "BEARER", "DPoP", "dpop", "mac", "N_A"] {
            assert_eq!(Token::bearer("a").with_token_type(name).token_type(), name);
        }
        assert_eq!(Token::bearer("a").token_type(), "Bearer");
    }

    #[test]
    fn tokens_with_the_same_parts_are_equal_however_they_were_built() {
        let plain = Token::bearer("a");
        assert_eq!(
            plain
                .clone()
                .with_token_type("mac")
                .with_refresh_token("r")
                .with_token_type("Bearer")
                .with_refresh_token_opt(None),
            plain
        );
        assert!(plain.more.is_none(), "nothing boxed for a plain token");
        let full = Token::bearer("a")
            .with_refresh_token("r")
            .with_scopes(["x"])
            .with_refresh_in(Duration::from_secs(5))
            .with_token_type("bearer");
        assert_ne!(full, plain);
        assert_eq!(full.refresh_token().map(|r| r.expose_secret()), Some("r"));
        assert_eq!(full.scopes(), Some(&["x".to_owned()][..]));
        assert_eq!(full.refresh_in(), Some(Duration::from_secs(5)));
        assert_eq!(full.token_type(), "bearer");
        let shown = format!("{full:?}");
        assert!(shown.contains("token_type: \"bearer\"") && shown.contains("refresh_in"));
        assert!(!shown.contains("\"r\""), "no secret in Debug: {shown}");
    }
}
