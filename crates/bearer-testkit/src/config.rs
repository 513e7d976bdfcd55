//! Static configuration: clients, users, token formats, login response shapes.

use std::fmt;

/// An OAuth 2.0 grant type the token endpoint understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// `password` (RFC 6749 §4.3).
    Password,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `authorization_code` with PKCE (RFC 6749 §4.1, RFC 7636).
    AuthorizationCode,
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628).
    DeviceCode,
}

impl GrantType {
    /// Every grant type, in a stable order.
    pub const ALL: [GrantType; 5] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
        GrantType::DeviceCode,
    ];

    /// The `grant_type` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    /// Parses a `grant_type` value.
    pub fn parse(value: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == value)
    }
}

/// A registered client.
///
/// ```
/// use bearer_testkit::{ClientConfig, GrantType};
/// let client = ClientConfig::confidential("svc", "s3cret")
///     .scopes("read")
///     .grant_types(&[GrantType::ClientCredentials]);
/// assert_eq!(client.id(), "svc");
/// assert!(!format!("{client:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) grants: Vec<GrantType>,
    /// Set for clients that authenticate by JWT assertion.
    pub(crate) assertion: Option<crate::client_assertion::AssertionRegistration>,
}

impl ClientConfig {
    /// A client authenticating with a secret (basic or post), allowed scopes
    /// `read write admin` and every grant type.
    pub fn confidential(id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientConfig {
            id: id.into(),
            secret: Some(secret.into()),
            scopes: split_scope("read write admin"),
            grants: GrantType::ALL.to_vec(),
            assertion: None,
        }
    }

    /// A public client (no secret; it sends only `client_id`), e.g. for PKCE
    /// or device flows.
    pub fn public(id: impl Into<String>) -> Self {
        ClientConfig {
            secret: None,
            ..ClientConfig::confidential(id, "")
        }
    }

    /// Replaces the allowed scopes (space-separated).
    pub fn scopes(mut self, scopes: &str) -> Self {
        self.scopes = split_scope(scopes);
        self
    }

    /// Replaces the allowed grant types.
    pub fn grant_types(mut self, grants: &[GrantType]) -> Self {
        self.grants = grants.to_vec();
        self
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The client secret, if confidential.
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("scopes", &self.scopes)
            .field("grants", &self.grants)
            .field("assertion", &self.assertion.as_ref().map(|a| &a.algorithms))
            .finish()
    }
}

/// A resource owner (for the password grant, the authorize endpoint, device
/// approval and `/login`).
#[derive(Clone)]
pub struct UserConfig {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl UserConfig {
    /// A user with these credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        UserConfig {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How access tokens look on the wire.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum AccessTokenFormat {
    /// 32 random bytes, base64url (the default).
    #[default]
    Opaque,
    /// A JWT with `alg: none` carrying `iss`, `sub`, `aud`, `exp`, `iat`,
    /// `scope`, `client_id`, `jti`.
    JwtUnsigned,
    /// The same claims, signed with HS256 under this key.
    JwtHs256 {
        /// The HMAC key.
        key: Vec<u8>,
    },
}

impl fmt::Debug for AccessTokenFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessTokenFormat::Opaque => f.write_str("Opaque"),
            AccessTokenFormat::JwtUnsigned => f.write_str("JwtUnsigned"),
            AccessTokenFormat::JwtHs256 { .. } => f.write_str("JwtHs256 { key: <redacted> }"),
        }
    }
}

/// The shape of the plain login endpoint (`/login` by default): where it
/// listens, which form or JSON fields carry the credentials, and which
/// field of the answer carries the token. Model your own service's login
/// with it.
///
/// ```
/// use bearer_testkit::LoginForm;
/// // `POST /auth/token` with `email` and `pass`, answering `{"jwt": "…"}`.
/// let form = LoginForm::new("/auth/token").fields("email", "pass").token_field("jwt");
/// assert_eq!(form.path(), "/auth/token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginForm {
    pub(crate) path: String,
    pub(crate) username_field: String,
    pub(crate) password_field: String,
    pub(crate) token_field: String,
}

impl Default for LoginForm {
    /// `POST /login` with `username` and `password`, answering `{"token": …}`.
    fn default() -> Self {
        LoginForm::new("/login")
    }
}

impl LoginForm {
    /// A login endpoint at `path` (a leading `/` is added if missing), with
    /// the default field names `username`, `password` and `token`.
    pub fn new(path: impl Into<String>) -> Self {
        let path = path.into();
        LoginForm {
            path: if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            },
            username_field: "username".to_owned(),
            password_field: "password".to_owned(),
            token_field: "token".to_owned(),
        }
    }

    /// The names of the credential fields in the form or JSON body.
    pub fn fields(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username_field = username.into();
        self.password_field = password.into();
        self
    }

    /// The answer's field that carries the token.
    pub fn token_field(mut self, name: impl Into<String>) -> Self {
        self.token_field = name.into();
        self
    }

    /// The endpoint's path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Which expiry field `/login` writes next to the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginExpiry {
    /// No expiry field (the token still expires server-side after the token
    /// lifetime).
    None,
    /// `"expires_in": <seconds>` (the default).
    #[default]
    ExpiresIn,
    /// `"expires_at": <unix seconds>`, computed from the server's clock
    /// (including any clock offset).
    ExpiresAt,
}

pub(crate) fn split_scope(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}
