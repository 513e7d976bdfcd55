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

            /// A loggable fingerprint of the value.
            pub fn fingerprint(&self) -> Fingerprint {
                fingerprint(self.expose_secret())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted] fp={})"), self.fingerprint())
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

        /// Takes a [`secrecy::SecretString`](https://docs.rs/secrecy/0.10/secrecy/type.SecretString.html) as it is, without a copy.
        impl From<SecretString> for $name {
            fn from(value: SecretString) -> Self {
                Self(value)
            }
        }
    };
}

secret_type!(
    /// An access token's value.
    ///
    /// ```
    /// let t = bearer_cache::AccessToken::new("s3cr3t");
    /// assert!(!format!("{t:?} {t}").contains("s3cr3t"));
    /// assert_eq!(t.expose_secret(), "s3cr3t");
    /// ```
    AccessToken
);
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    access_token: AccessToken,
    token_type: String,
    expiry: Expiry,
    refresh_token: Option<RefreshToken>,
    scopes: Option<Vec<String>>,
    refresh_in: Option<Duration>,
    binding: Option<Binding>,
}

impl Token {
    /// A bearer token with an unknown expiry.
    pub fn bearer(access_token: impl Into<AccessToken>) -> Self {
        Token {
            access_token: access_token.into(),
            token_type: "Bearer".to_owned(),
            expiry: Expiry::Unknown,
            refresh_token: None,
            scopes: None,
            refresh_in: None,
            binding: None,
        }
    }

    /// Sets when the token expires.
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets the refresh token that came with it.
    pub fn with_refresh_token(mut self, refresh_token: impl Into<RefreshToken>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// Sets or clears the refresh token.
    pub fn with_refresh_token_opt(mut self, refresh_token: Option<RefreshToken>) -> Self {
        self.refresh_token = refresh_token;
        self
    }

    /// Sets the scopes the server granted.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the server's hint of when to refresh (Azure's `refresh_in`),
    /// counted like [`Expiry::In`] from when the request was sent.
    pub fn with_refresh_in(mut self, refresh_in: Duration) -> Self {
        self.refresh_in = Some(refresh_in);
        self
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
    pub fn with_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = token_type.into();
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The token type: `Bearer`, or the bound scheme (`DPoP`).
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// When it expires.
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The refresh token, if the server gave one.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// The granted scopes, if the server said.
    pub fn scopes(&self) -> Option<&[String]> {
        self.scopes.as_deref()
    }

    /// The server's refresh hint.
    pub fn refresh_in(&self) -> Option<Duration> {
        self.refresh_in
    }

    pub(crate) fn header_safe(&self) -> bool {
        is_header_safe(self.access_token.expose_secret())
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
