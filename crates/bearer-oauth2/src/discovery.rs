//! OpenID Connect discovery (and RFC 8414 metadata): endpoints from an issuer.

use serde::Deserialize;
use url::Url;

use crate::client::{ClientAuth, OAuthClient};
use crate::error::DiscoveryError;
use crate::grants::authorization_code::AuthorizationCode;
use crate::grants::client_credentials::ClientCredentials;
use crate::grants::device_code::{DeviceCode, DevicePrompt};
use crate::response::Parser;
use crate::scrub::{Secrets, shown_url, shown_url_text};
use crate::transport::HttpOptions;

/// What a provider's discovery document says, as far as token sources care.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer, checked to be the one asked for.
    pub issuer: String,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// The authorization endpoint, for the authorization code grant.
    #[serde(default)]
    pub authorization_endpoint: Option<Url>,
    /// The RFC 8628 device authorization endpoint.
    #[serde(default)]
    pub device_authorization_endpoint: Option<Url>,
    /// The RFC 7009 revocation endpoint.
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    /// The RFC 7662 introspection endpoint.
    #[serde(default)]
    pub introspection_endpoint: Option<Url>,
    /// The scopes the provider supports, if it says.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// The grant types the provider supports, if it says.
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    /// The client authentication methods of the token endpoint, if it says.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms the provider takes DPoP proofs in (RFC 9449 §5.1),
    /// if it says.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// The algorithms the token endpoint accepts for client assertions
    /// (`private_key_jwt`, `client_secret_jwt`), if it says.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
}

impl std::fmt::Debug for ProviderMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<Url>| u.as_ref().map(shown_url);
        f.debug_struct("ProviderMetadata")
            .field("issuer", &shown_url_text(&self.issuer))
            .field("token_endpoint", &shown_url(&self.token_endpoint))
            .field("authorization_endpoint", &url(&self.authorization_endpoint))
            .field(
                "device_authorization_endpoint",
                &url(&self.device_authorization_endpoint),
            )
            .field("revocation_endpoint", &url(&self.revocation_endpoint))
            .field("introspection_endpoint", &url(&self.introspection_endpoint))
            .field("scopes_supported", &self.scopes_supported)
            .field("grant_types_supported", &self.grant_types_supported)
            .field(
                "token_endpoint_auth_methods_supported",
                &self.token_endpoint_auth_methods_supported,
            )
            .field(
                "dpop_signing_alg_values_supported",
                &self.dpop_signing_alg_values_supported,
            )
            .field(
                "token_endpoint_auth_signing_alg_values_supported",
                &self.token_endpoint_auth_signing_alg_values_supported,
            )
            .finish()
    }
}

/// Reads `<issuer>/.well-known/openid-configuration` with a default client
/// and checks that it names `issuer`.
///
/// ```no_run
/// # async fn run() -> Result<(), bearer_oauth2::DiscoveryError> {
/// let provider = bearer_oauth2::discover(&"https://idp.example".parse().unwrap()).await?;
/// let source = provider.client_credentials("svc", "s3cr3t").scope("read");
/// # Ok(()) }
/// ```
pub async fn discover(issuer: &Url) -> Result<ProviderMetadata, DiscoveryError> {
    discover_with(&HttpOptions::default().http, issuer).await
}

/// [`discover`] with your HTTP client.
pub async fn discover_with(
    http: &reqwest::Client,
    issuer: &Url,
) -> Result<ProviderMetadata, DiscoveryError> {
    let expected = issuer.as_str().trim_end_matches('/');
    let url = Url::parse(&format!("{expected}/.well-known/openid-configuration"))
        .map_err(|e| DiscoveryError::Malformed(format!("cannot build the discovery URL: {e}")))?;
    let options = HttpOptions {
        http: http.clone(),
        ..HttpOptions::default()
    };
    let raw = options
        .exchange(
            "discovery",
            || {
                Ok(http
                    .get(url.clone())
                    .header(http::header::ACCEPT, "application/json"))
            },
            |raw| {
                // Reuse the token endpoint's error reading: status, excerpt, Retry-After.
                Parser::oauth(&Secrets::none()).object_or_error(
                    raw.status,
                    &raw.headers,
                    &raw.body,
                )?;
                Ok(raw)
            },
        )
        .await?;
    let metadata: ProviderMetadata =
        serde_json::from_slice(&raw.body).map_err(|e| DiscoveryError::Malformed(e.to_string()))?;
    if metadata.issuer.trim_end_matches('/') != expected {
        return Err(DiscoveryError::IssuerMismatch {
            expected: shown_url(issuer),
            found: shown_url_text(&metadata.issuer),
        });
    }
    Ok(metadata)
}

impl ProviderMetadata {
    /// A client of the token endpoint, using `client_secret_post` when the
    /// provider lists it but not `client_secret_basic`.
    pub fn client(&self, client_id: impl Into<String>) -> OAuthClient {
        let methods = &self.token_endpoint_auth_methods_supported;
        let post_only = methods.iter().any(|m| m == "client_secret_post")
            && !methods.iter().any(|m| m == "client_secret_basic");
        let auth = if post_only {
            ClientAuth::Post
        } else {
            ClientAuth::Basic
        };
        OAuthClient::new(self.token_endpoint.clone(), client_id).auth_method(auth)
    }

    /// A new DPoP key in an algorithm the provider lists in
    /// `dpop_signing_alg_values_supported` (ES256, generated); when it
    /// lists others only, [`DpopError::AlgorithmNotAccepted`](crate::DpopError::AlgorithmNotAccepted)
    /// says which, and you load such a key with [`DpopKey::new`](crate::DpopKey::new).
    pub fn dpop_key(&self) -> Result<crate::DpopKey, crate::DpopError> {
        crate::DpopKey::generate_for(&self.dpop_signing_alg_values_supported)
    }

    /// A client of the token endpoint authenticating with `auth`, checked
    /// against the document: the method must be among
    /// `token_endpoint_auth_methods_supported` and, for the JWT methods,
    /// the key's algorithm among
    /// `token_endpoint_auth_signing_alg_values_supported`. A list the
    /// provider leaves out is not checked.
    ///
    /// ```
    /// use bearer_jose::{Algorithm, SigningKey};
    /// use bearer_oauth2::{ClientAuth, ClientCredentials, DiscoveryError, ProviderMetadata};
    ///
    /// let provider: ProviderMetadata = serde_json::from_value(serde_json::json!({
    ///     "issuer": "https://idp.example",
    ///     "token_endpoint": "https://idp.example/token",
    ///     "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    ///     "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
    /// }))
    /// .unwrap();
    /// let key = SigningKey::generate(Algorithm::ES256)?;
    /// let client = provider.client_with_auth("svc", ClientAuth::PrivateKeyJwt(key)).unwrap();
    /// let source = ClientCredentials::from_client(client);
    /// assert!(matches!(
    ///     provider.client_with_auth("svc", ClientAuth::ClientSecretJwt),
    ///     Err(DiscoveryError::AuthMethodNotSupported { .. })
    /// ));
    /// # Ok::<(), bearer_jose::JoseError>(())
    /// ```
    pub fn client_with_auth(
        &self,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Result<OAuthClient, DiscoveryError> {
        let method = auth.method_name();
        let methods = &self.token_endpoint_auth_methods_supported;
        if !methods.is_empty() && !methods.iter().any(|m| m == method) {
            return Err(DiscoveryError::AuthMethodNotSupported { method });
        }
        let algorithm = match &auth {
            ClientAuth::PrivateKeyJwt(key) => Some(format!("{:?}", key.algorithm())),
            ClientAuth::ClientSecretJwt => Some("HS256".to_owned()),
            _ => None,
        };
        let algs = &self.token_endpoint_auth_signing_alg_values_supported;
        if let Some(algorithm) = algorithm.filter(|a| !algs.is_empty() && !algs.contains(a)) {
            return Err(DiscoveryError::AssertionAlgorithmNotSupported { algorithm });
        }
        Ok(OAuthClient::new(self.token_endpoint.clone(), client_id).auth_method(auth))
    }

    /// A client credentials source.
    pub fn client_credentials(
        &self,
        client_id: impl Into<String>,
        client_secret: impl Into<bearer_cache::Secret>,
    ) -> ClientCredentials {
        ClientCredentials::from_client(self.client(client_id).client_secret(client_secret))
    }

    /// An authorization code source (public client; add a secret on it if
    /// yours is confidential).
    pub fn authorization_code(
        &self,
        client_id: impl Into<String>,
        open_browser: impl Fn(&Url) + Send + Sync + 'static,
    ) -> Result<AuthorizationCode, DiscoveryError> {
        let authorize = self
            .authorization_endpoint
            .clone()
            .ok_or(DiscoveryError::MissingEndpoint("authorization_endpoint"))?;
        Ok(AuthorizationCode::from_client(
            self.client(client_id),
            authorize,
            open_browser,
        ))
    }

    /// A device authorization source.
    pub fn device_code(
        &self,
        client_id: impl Into<String>,
        on_prompt: impl Fn(&DevicePrompt) + Send + Sync + 'static,
    ) -> Result<DeviceCode, DiscoveryError> {
        let device =
            self.device_authorization_endpoint
                .clone()
                .ok_or(DiscoveryError::MissingEndpoint(
                    "device_authorization_endpoint",
                ))?;
        Ok(DeviceCode::from_client(
            self.client(client_id),
            device,
            on_prompt,
        ))
    }
}
