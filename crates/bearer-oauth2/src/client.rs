//! The token endpoint and the client that talks to it, shared by every grant.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bearer_cache::{Secret, Token, TokenError, TokenKey};
use bearer_dpop::DpopKey;
use bearer_jose::SigningKey;
use http::HeaderValue;
use url::Url;

use crate::assertion::{self, AssertionAudience, AssertionOptions};
use crate::response::Parser;
use crate::scrub::{Secrets, shown_url};
use crate::transport::HttpOptions;

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1,
/// RFC 7523 §2.2, OpenID Connect Core §9).
///
/// The JWT kinds send a fresh `client_assertion` on every token request of
/// every grant (and on each retry): `iss` = `sub` = the client id, `aud`
/// per [`AssertionAudience`] (default: the token endpoint), `exp` a short
/// [lifetime](OAuthClient::assertion_lifetime) away, a unique `jti`, and
/// the key's `kid` in the header.
///
/// ```
/// use bearer_jose::{Algorithm, SigningKey};
/// use bearer_oauth2::{ClientAuth, ClientCredentials, OAuthClient};
///
/// fn orders_source(pem: &[u8]) -> Result<ClientCredentials, bearer_jose::JoseError> {
///     let key = SigningKey::from_pem(Algorithm::RS256, pem)?.with_kid("svc-2026");
///     let client = OAuthClient::new("https://idp.example/oauth2/token".parse().unwrap(), "svc")
///         .auth_method(ClientAuth::PrivateKeyJwt(key));
///     Ok(ClientCredentials::from_client(client).scope("orders:read"))
/// }
/// assert!(orders_source(b"not a key").is_err());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: an `Authorization: Basic` header, id and
    /// secret form-encoded before base64 as the RFC requires (the default).
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
    /// `private_key_jwt`: an assertion signed with this key (RS256, PS256,
    /// ES256, EdDSA, …); register its
    /// [public JWK](bearer_jose::SigningKey::public_jwk) with the provider.
    PrivateKeyJwt(SigningKey),
    /// `client_secret_jwt`: an HS256 assertion keyed with the client
    /// secret, which itself never leaves the process.
    ClientSecretJwt,
}

impl ClientAuth {
    /// The method's registered name (`token_endpoint_auth_method`), e.g.
    /// `private_key_jwt`.
    pub fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
            ClientAuth::ClientSecretJwt => "client_secret_jwt",
        }
    }
}

/// Parameters that belong to the protocol; a [`TokenKey`] may not set them.
const RESERVED: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "audience",
    "resource",
    "refresh_token",
    "username",
    "password",
    "code",
    "code_verifier",
    "redirect_uri",
    "device_code",
    "client_assertion",
    "client_assertion_type",
];

/// A token endpoint and the client credentials used there, with the HTTP
/// options (timeout, body cap, retries) and the default request
/// parameters. Every grant is built on one; their builder methods forward
/// here.
///
/// Scopes, `audience`, `resource` and extra parameters come from the
/// cache's [`TokenKey`] when it names them, else from these defaults, so
/// they are part of the cache key and sent on every fetch.
///
/// ```
/// use bearer_oauth2::{ClientAuth, OAuthClient};
/// use std::time::Duration;
///
/// let client = OAuthClient::new("https://idp.example/token".parse().unwrap(), "svc")
///     .client_secret("s3cr3t")
///     .auth_method(ClientAuth::Post)
///     .scope("orders:read")
///     .audience("api://orders")
///     .timeout(Duration::from_secs(5));
/// assert_eq!(client.client_id(), "svc");
/// assert!(!format!("{client:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    token_url: Url,
    client_id: String,
    client_secret: Option<Secret>,
    auth: ClientAuth,
    assertion: AssertionOptions,
    defaults: TokenKey,
    pub(crate) options: HttpOptions,
    dpop: Option<DpopKey>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &shown_url(&self.token_url))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("auth", &self.auth)
            .field("assertion", &self.assertion)
            .field("defaults", &self.defaults)
            .field("options", &self.options)
            .field("dpop", &self.dpop)
            .finish()
    }
}

/// One token request's grant-specific parameters.
#[derive(Default)]
pub(crate) struct Grant<'a> {
    pub params: Vec<(&'static str, &'a str)>,
    pub secrets: Vec<(&'static str, &'a str)>,
    /// Whether the key's scopes go with it (not when the first leg of an
    /// interactive flow already carried them).
    pub send_scope: bool,
}

impl<'a> Grant<'a> {
    pub fn new(grant_type: &'static str) -> Self {
        Grant {
            params: vec![("grant_type", grant_type)],
            secrets: Vec::new(),
            send_scope: true,
        }
    }

    pub fn param(mut self, name: &'static str, value: &'a str) -> Self {
        self.params.push((name, value));
        self
    }

    pub fn secret(mut self, name: &'static str, value: &'a str) -> Self {
        self.secrets.push((name, value));
        self
    }

    pub fn without_scope(mut self) -> Self {
        self.send_scope = false;
        self
    }
}

impl OAuthClient {
    /// A public client (no secret) of `token_url`; add a secret with
    /// [`client_secret`](Self::client_secret).
    pub fn new(token_url: Url, client_id: impl Into<String>) -> Self {
        OAuthClient {
            token_url,
            client_id: client_id.into(),
            client_secret: None,
            auth: ClientAuth::default(),
            assertion: AssertionOptions::default(),
            defaults: TokenKey::new(),
            options: HttpOptions::default(),
            dpop: None,
        }
    }

    /// The client secret (makes this a confidential client).
    pub fn client_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How the client authenticates (default `client_secret_basic`); see
    /// [`ClientAuth`].
    pub fn auth_method(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// What a client assertion's `aud` names (default: the token
    /// endpoint's URL). Only the JWT kinds of [`ClientAuth`] use it.
    pub fn assertion_audience(mut self, audience: AssertionAudience) -> Self {
        self.assertion.audience = audience;
        self
    }

    /// How long a client assertion is valid (default 60 s,
    /// [`DEFAULT_ASSERTION_LIFETIME`](crate::DEFAULT_ASSERTION_LIFETIME)).
    /// Each token request signs a new one.
    pub fn assertion_lifetime(mut self, lifetime: std::time::Duration) -> Self {
        self.assertion.lifetime = Some(lifetime);
        self
    }

    /// Adds a default scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.defaults = self.defaults.scope(scope);
        self
    }

    /// Adds default scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.defaults = self.defaults.scopes(scopes);
        self
    }

    /// Sets the default `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.defaults = self.defaults.audience(audience);
        self
    }

    /// Adds a default `resource` indicator (RFC 8707).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.defaults = self.defaults.resource(resource);
        self
    }

    /// Adds a parameter sent with every token request.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.defaults = self.defaults.param(name, value);
        self
    }

    /// Binds the tokens to a DPoP key (RFC 9449; default: none, bearer
    /// tokens). Every token request then carries a proof (`htm=POST`,
    /// `htu` the token endpoint), a `use_dpop_nonce` answer is resent once
    /// with the server's nonce, and a `token_type: DPoP` answer is taken
    /// with the key attached, so the middleware and the tower layer send
    /// `Authorization: DPoP …` with a fresh proof per request. Without a
    /// key, a DPoP token is refused ([`TokenError::UnsupportedTokenType`]).
    /// A bearer token from a server that ignores DPoP stays a bearer token.
    ///
    /// ```
    /// use bearer_dpop::DpopKey;
    /// use bearer_oauth2::ClientCredentials;
    ///
    /// let source = ClientCredentials::new("https://idp.example/token".parse()?, "svc", "s3cr3t")
    ///     .dpop(DpopKey::generate()?);
    /// assert!(format!("{source:?}").contains("DpopKey"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// The DPoP key tokens are bound to, if any.
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.dpop.as_ref()
    }

    crate::transport::http_options!(
        " Turn redirects off on yours too: a redirected token request may carry the client secret elsewhere.",
        "fetch",
        "retries and polls"
    );

    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The default parameters, as a key.
    pub fn defaults(&self) -> &TokenKey {
        &self.defaults
    }

    /// `<grant>:<client id>@<token url>`: names a source without a secret
    /// (the URL without userinfo or query, which may carry keys).
    pub(crate) fn source_id(&self, grant: &str) -> String {
        format!("{grant}:{}@{}", self.client_id, shown_url(&self.token_url))
    }

    /// The parameters `key` asks for over the defaults: a part the key
    /// names replaces the default; extra parameters are merged.
    pub(crate) fn key_params(
        &self,
        key: &TokenKey,
        send_scope: bool,
    ) -> Result<Vec<(String, String)>, TokenError> {
        let d = &self.defaults;
        let mut out = Vec::new();
        let scopes: Vec<&str> = if key.requested_scopes().len() > 0 {
            key.requested_scopes().collect()
        } else {
            d.requested_scopes().collect()
        };
        if send_scope && !scopes.is_empty() {
            out.push(("scope".to_owned(), scopes.join(" ")));
        }
        if let Some(audience) = key.requested_audience().or(d.requested_audience()) {
            out.push(("audience".to_owned(), audience.to_owned()));
        }
        let resources = if key.requested_resources().len() > 0 {
            key.requested_resources()
        } else {
            d.requested_resources()
        };
        out.extend(resources.map(|r| ("resource".to_owned(), r.to_owned())));
        let mut extra: std::collections::BTreeMap<&str, &str> = d.params().collect();
        extra.extend(key.params());
        for (name, value) in extra {
            if RESERVED.contains(&name) {
                return Err(TokenError::source(
                    format!("the parameter `{name}` is set by the grant and cannot be overridden"),
                    false,
                ));
            }
            out.push((name.to_owned(), value.to_owned()));
        }
        Ok(out)
    }

    /// How the client authenticates.
    pub fn auth(&self) -> &ClientAuth {
        &self.auth
    }

    /// A fresh client assertion signed with `key`.
    fn client_assertion(&self, key: &SigningKey) -> Result<String, TokenError> {
        let audience = match &self.assertion.audience {
            AssertionAudience::TokenEndpoint => self.token_url.as_str(),
            AssertionAudience::Issuer(issuer) => issuer.as_str(),
        };
        let lifetime = self
            .assertion
            .lifetime
            .unwrap_or(assertion::DEFAULT_ASSERTION_LIFETIME);
        assertion::client_assertion(
            key,
            &self.client_id,
            audience,
            self.options.clock.system_now(),
            lifetime,
        )
        .map_err(|e| crate::error::source_error("cannot sign the client assertion", e, false))
    }

    /// Authenticates a form POST to `url` as this client. A JWT assertion
    /// is signed here, so each attempt of a request carries a new one.
    pub(crate) fn authenticated_post(
        &self,
        url: &Url,
        mut form: Vec<(String, String)>,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        let mut request = self
            .options
            .http
            .post(url.clone())
            .header(http::header::ACCEPT, "application/json");
        let assertion_key = match (&self.client_secret, &self.auth) {
            (_, ClientAuth::PrivateKeyJwt(key)) => Some(key.clone()),
            (Some(secret), ClientAuth::ClientSecretJwt) => {
                Some(SigningKey::hmac(secret.expose_secret().as_bytes()))
            }
            (None, ClientAuth::ClientSecretJwt) => {
                return Err(TokenError::source(
                    "client_secret_jwt needs a client secret",
                    false,
                ));
            }
            _ => None,
        };
        if let Some(key) = assertion_key {
            form.push(("client_id".to_owned(), self.client_id.clone()));
            form.push((
                "client_assertion_type".to_owned(),
                assertion::JWT_BEARER_TYPE.to_owned(),
            ));
            form.push(("client_assertion".to_owned(), self.client_assertion(&key)?));
            return Ok(request.form(&form));
        }
        match (&self.client_secret, &self.auth) {
            (Some(secret), ClientAuth::Basic) => {
                request = request.header(
                    http::header::AUTHORIZATION,
                    basic_auth(&self.client_id, secret),
                );
            }
            (Some(secret), ClientAuth::Post) => {
                form.push(("client_id".to_owned(), self.client_id.clone()));
                form.push((
                    "client_secret".to_owned(),
                    secret.expose_secret().to_owned(),
                ));
            }
            _ => form.push(("client_id".to_owned(), self.client_id.clone())),
        }
        Ok(request.form(&form))
    }

    /// Sends one token request (with retries) and parses the answer.
    pub(crate) async fn request_token(
        &self,
        grant: Grant<'_>,
        key: &TokenKey,
    ) -> Result<Token, TokenError> {
        let mut form: Vec<(String, String)> = grant
            .params
            .iter()
            .chain(&grant.secrets)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        form.extend(self.key_params(key, grant.send_scope)?);
        let secrets = self.request_secrets(&grant.secrets);
        let grant_type = grant.params.first().map_or("", |(_, v)| *v);
        let Some(dpop) = &self.dpop else {
            return self
                .options
                .exchange(
                    grant_type,
                    || self.authenticated_post(&self.token_url, form.clone()),
                    |raw| {
                        Parser::oauth(&secrets)
                            .at(self.options.clock.system_now())
                            .parse(raw.status, &raw.headers, &raw.body)
                    },
                )
                .await;
        };
        crate::dpop::request_token(self, dpop, grant_type, &form, &secrets).await
    }

    /// The values scrubbed from a request's answers: the grant's own
    /// secrets and the client secret, as sent (the `Basic` credentials too).
    pub(crate) fn request_secrets(&self, grant_secrets: &[(&str, &str)]) -> Secrets {
        let client_secret = self.client_secret.as_ref().map(Secret::expose_secret);
        let basic = match (&self.client_secret, &self.auth) {
            (Some(secret), ClientAuth::Basic) => Some(basic_credentials(&self.client_id, secret)),
            _ => None,
        };
        Secrets::new(
            grant_secrets.iter().map(|(_, v)| *v).chain(client_secret),
            basic.as_deref(),
        )
    }
}

/// `base64(urlencode(id) ":" urlencode(secret))`, the credentials of a
/// `Basic` header (RFC 6749 §2.3.1).
fn basic_credentials(client_id: &str, secret: &Secret) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    STANDARD.encode(format!(
        "{}:{}",
        encode(client_id),
        encode(secret.expose_secret())
    ))
}

/// `Basic <credentials>`, marked sensitive.
fn basic_auth(client_id: &str, secret: &Secret) -> HeaderValue {
    let credentials = basic_credentials(client_id, secret);
    let mut value = HeaderValue::from_str(&format!("Basic {credentials}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let value = basic_auth("a:b c%", &Secret::new("s+x é"));
        let encoded = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "a%3Ab+c%25:s%2Bx+%C3%A9");
        assert!(value.is_sensitive());
    }

    #[test]
    fn key_overrides_defaults_and_reserved_names_are_refused() {
        let client = OAuthClient::new("http://x/token".parse().unwrap(), "c")
            .scopes(["a", "b"])
            .audience("aud")
            .param("tenant", "t1");
        let params = client.key_params(&TokenKey::new(), true).unwrap();
        assert_eq!(
            params,
            [("scope", "a b"), ("audience", "aud"), ("tenant", "t1")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let key = TokenKey::new()
            .scope("z")
            .resource("r1")
            .param("extra", "e");
        let params = client.key_params(&key, true).unwrap();
        assert_eq!(
            params,
            [
                ("scope", "z"),
                ("audience", "aud"),
                ("resource", "r1"),
                ("extra", "e"),
                ("tenant", "t1")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let bad = TokenKey::new().param("client_secret", "x");
        assert!(matches!(
            client.key_params(&bad, true),
            Err(TokenError::Source {
                transient: false,
                ..
            })
        ));
    }
}
