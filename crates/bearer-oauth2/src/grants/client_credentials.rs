use async_trait::async_trait;
use bearer_cache::{FetchContext, Secret, Token, TokenError, TokenSource};
use url::Url;

use crate::client::{Grant, OAuthClient};

/// The client credentials grant (RFC 6749 §4.4): a service's own token,
/// fetched again whenever the cache needs one.
///
/// ```
/// use bearer_cache::{TokenCache, TokenKey, TokenSource};
/// use bearer_oauth2::{ClientAuth, ClientCredentials};
///
/// let source = ClientCredentials::new(
///     "https://idp.example/oauth2/token".parse().unwrap(),
///     "orders-service",
///     "s3cr3t",
/// )
/// .scope("orders:read")
/// .auth_method(ClientAuth::Basic);
/// assert_eq!(source.id(), "client_credentials:orders-service@https://idp.example/oauth2/token");
/// assert!(!format!("{source:?}").contains("s3cr3t"));
/// let cache = TokenCache::builder(source).build();
/// // cache.get(&TokenKey::default()).await? — or a key naming other scopes.
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    client: OAuthClient,
    id: String,
}

impl ClientCredentials {
    /// A confidential client of `token_url`.
    pub fn new(
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::from_client(OAuthClient::new(token_url, client_id).client_secret(client_secret))
    }

    /// The grant over an already configured client.
    pub fn from_client(client: OAuthClient) -> Self {
        ClientCredentials {
            id: client.source_id("client_credentials"),
            client,
        }
    }

    crate::grants::client_options!();
}

#[async_trait]
impl TokenSource for ClientCredentials {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let token = self
            .client
            .request_token(Grant::new("client_credentials"), cx.key)
            .await?;
        // A refresh token here is against RFC 6749 §4.4.3 and of no use:
        // the client's own credentials get a new token.
        Ok(token.with_refresh_token_opt(None))
    }
}
