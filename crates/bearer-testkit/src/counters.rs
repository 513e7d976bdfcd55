//! What the server saw: counters, last headers, the last token request.

use std::fmt;

use http::HeaderMap;

/// A snapshot of the server's counters; see [`crate::Control::counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Requests to the token endpoint, whatever their outcome.
    pub token_requests: u64,
    /// Token requests answered by an injected [`crate::TokenFault`]
    /// (including reshaped successes such as `LowercaseTokenType`).
    pub token_faults: u64,
    /// OAuth error responses the token endpoint produced itself (not injected).
    pub token_errors: u64,
    /// Access tokens issued by the token endpoint, per grant type.
    pub issued: GrantCounts,
    /// The client authentication method of each token request.
    pub client_auth: ClientAuthCounts,
    /// Client assertions refused (any reason, injected faults included).
    pub assertions_rejected: u64,
    /// Client assertions refused because their `jti` was used before.
    pub assertion_replays: u64,
    /// Requests to `/authorize`.
    pub authorize_requests: u64,
    /// Requests to the device authorization endpoint.
    pub device_authorizations: u64,
    /// Requests to the revocation endpoint.
    pub revocations: u64,
    /// Requests to the introspection endpoint.
    pub introspections: u64,
    /// Requests to `/login` (both shapes).
    pub login_requests: u64,
    /// Tokens issued by `/login`.
    pub login_tokens_issued: u64,
    /// Login requests answered by an injected fault.
    pub login_faults: u64,
    /// Requests to `/api/...`.
    pub api_requests: u64,
    /// 401 answers from the API.
    pub api_unauthorized: u64,
    /// 403 answers from the API.
    pub api_forbidden: u64,
    /// Requests seen by the other origin (the second listener).
    pub other_origin_requests: u64,
}

/// Access tokens issued per grant type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantCounts {
    /// `client_credentials`.
    pub client_credentials: u64,
    /// `password`.
    pub password: u64,
    /// `refresh_token`.
    pub refresh_token: u64,
    /// `authorization_code`.
    pub authorization_code: u64,
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub device_code: u64,
}

impl GrantCounts {
    /// The sum over all grant types.
    pub fn total(&self) -> u64 {
        self.client_credentials
            + self.password
            + self.refresh_token
            + self.authorization_code
            + self.device_code
    }
}

/// Token requests per client authentication method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientAuthCounts {
    /// `client_secret_basic` (an `Authorization: Basic` header).
    pub basic: u64,
    /// `client_secret_post` (`client_secret` in the form).
    pub post: u64,
    /// Only `client_id` in the form (public clients), or nothing at all.
    pub none: u64,
    /// `private_key_jwt` (an asymmetric `client_assertion`).
    pub private_key_jwt: u64,
    /// `client_secret_jwt` (an HMAC `client_assertion`).
    pub client_secret_jwt: u64,
}

/// How a client authenticated at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`.
    ClientSecretBasic,
    /// `client_secret_post`.
    ClientSecretPost,
    /// No secret presented.
    None,
    /// `private_key_jwt`: a `client_assertion` with an asymmetric `alg`.
    PrivateKeyJwt,
    /// `client_secret_jwt`: a `client_assertion` with an HMAC `alg`.
    ClientSecretJwt,
}

/// The endpoints whose last request headers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint.
    Token,
    /// Any `/api/...` route.
    Api,
    /// The other origin (second listener).
    OtherOrigin,
    /// `/login` (both shapes).
    Login,
    /// `/authorize`.
    Authorize,
    /// The device authorization endpoint.
    DeviceAuthorization,
    /// The revocation endpoint.
    Revocation,
    /// The introspection endpoint.
    Introspection,
}

/// The last token request, as received: every form parameter (secrets
/// included — it is a test tool), and the client authentication used.
///
/// `Debug` redacts secret-bearing parameters:
///
/// ```
/// # use bearer_testkit::TokenRequestRecord;
/// # fn check(record: &TokenRequestRecord) {
/// assert!(!format!("{record:?}").contains("test-secret"));
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// All form parameters in order, repeated ones included.
    pub params: Vec<(String, String)>,
    /// The client authentication method presented.
    pub client_auth: ClientAuthMethod,
    /// The client id (from the Basic header or the form), if any.
    pub client_id: Option<String>,
}

const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "password",
    "refresh_token",
    "code_verifier",
    "code",
    "device_code",
    "assertion",
    "client_assertion",
];

impl TokenRequestRecord {
    /// The first value of a form parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a (possibly repeated) form parameter.
    pub fn params_named(&self, name: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `grant_type`.
    pub fn grant_type(&self) -> Option<&str> {
        self.param("grant_type")
    }

    /// `scope`.
    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }

    /// Every `audience` value.
    pub fn audience(&self) -> Vec<&str> {
        self.params_named("audience")
    }

    /// Every `resource` value (RFC 8707).
    pub fn resource(&self) -> Vec<&str> {
        self.params_named("resource")
    }

    /// Whether a PKCE `code_verifier` was sent.
    pub fn has_code_verifier(&self) -> bool {
        self.param("code_verifier").is_some()
    }
}

impl fmt::Debug for TokenRequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| {
                let shown = if SECRET_PARAMS.contains(&k.as_str()) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("TokenRequestRecord")
            .field("params", &params)
            .field("client_auth", &self.client_auth)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// Copies headers, marking credentials sensitive so `HeaderMap`'s `Debug`
/// prints `Sensitive` instead of them.
pub(crate) fn redacted_copy(headers: &HeaderMap) -> HeaderMap {
    let mut copy = headers.clone();
    for name in [
        http::header::AUTHORIZATION,
        http::header::COOKIE,
        http::header::PROXY_AUTHORIZATION,
    ] {
        if let http::header::Entry::Occupied(mut entry) = copy.entry(name) {
            for value in entry.iter_mut() {
                value.set_sensitive(true);
            }
        }
    }
    copy
}
