//! Client authentication by assertion against oidc-provider: a
//! `private_key_jwt` client doing client credentials (ES256, with either
//! audience) and authorization code then refresh (PS256), and a
//! `client_secret_jwt` client doing client credentials. The provider checks
//! signature, `iss`, `aud`, `exp` and `jti` replay itself.

#[path = "../../crates/bearer-jose/tests/fixtures/mod.rs"]
mod fixtures;

use std::time::Duration;

use reqwest_bearer::jose::{Algorithm, SigningKey};
use reqwest_bearer::oauth2::{
    AssertionAudience, AuthorizationCode, ClientAuth, ClientCredentials, discover,
};
use reqwest_bearer::{BearerError, TokenError, TokenKey};
use tokio::sync::mpsc;

use crate::browser::Browser;
use crate::provider::{Options, PKJWT_ID, Provider, SECRETJWT_ID, SECRETJWT_SECRET};
use crate::setup::{client, echo, protected_api, short_lived_cache};

fn es256() -> SigningKey {
    SigningKey::from_pem(Algorithm::ES256, fixtures::P256_PKCS8.as_bytes())
        .unwrap()
        .with_kid("pkjwt-es256")
}

fn ps256() -> SigningKey {
    SigningKey::from_pem(Algorithm::PS256, fixtures::RSA_PKCS8.as_bytes())
        .unwrap()
        .with_kid("pkjwt-ps256")
}

#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_client_credentials_with_either_audience() {
    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    assert!(
        metadata
            .token_endpoint_auth_methods_supported
            .iter()
            .any(|m| m == "private_key_jwt")
    );

    for audience in [
        AssertionAudience::TokenEndpoint,
        AssertionAudience::Issuer(metadata.issuer.clone()),
    ] {
        let client_config = metadata
            .client_with_auth(PKJWT_ID, ClientAuth::PrivateKeyJwt(es256()))
            .expect("the provider accepts private_key_jwt with ES256")
            .assertion_audience(audience);
        let source = ClientCredentials::from_client(client_config).scope("api:read");
        let (_auth, client) = client(&api, short_lived_cache(source).build());
        let seen = echo(&api, &client).await;
        assert_eq!(seen.introspected("client_id"), PKJWT_ID);
    }
    assert_eq!(provider.issued(PKJWT_ID, "client_credentials").await, 2);
    assert_eq!(provider.refused(PKJWT_ID).await, 0);
}

#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_authorization_code_then_refresh() {
    let provider = Provider::start(Options {
        access_ttl_secs: 60,
        ..Options::default()
    })
    .await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    let (done, mut browser_result) = mpsc::unbounded_channel();
    let source = AuthorizationCode::from_client(
        metadata
            .client_with_auth(PKJWT_ID, ClientAuth::PrivateKeyJwt(ps256()))
            .unwrap(),
        metadata.authorization_endpoint.clone().unwrap(),
        move |url| {
            let (url, done) = (url.clone(), done.clone());
            tokio::spawn(async move {
                let _ = done.send(Browser::new("alice").complete(url).await);
            });
        },
    )
    .scope("openid api:read")
    .login_timeout(Duration::from_secs(20));
    let (auth, client) = client(&api, short_lived_cache(source).build());

    let seen = echo(&api, &client).await;
    browser_result
        .recv()
        .await
        .unwrap()
        .expect("login and consent by form posts");
    assert_eq!(seen.introspected("client_id"), PKJWT_ID);
    assert_eq!(seen.introspected("sub"), "alice");
    // A refresh authenticates with a new assertion (the provider refuses a
    // reused jti).
    auth.cache().refresh(&TokenKey::default()).await.unwrap();
    assert_ne!(echo(&api, &client).await.token(), seen.token());

    assert_eq!(provider.issued(PKJWT_ID, "authorization_code").await, 1);
    assert_eq!(provider.issued(PKJWT_ID, "refresh_token").await, 1);
    assert_eq!(provider.refused(PKJWT_ID).await, 0);
}

#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_client_credentials() {
    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    let source = ClientCredentials::from_client(
        metadata
            .client_with_auth(SECRETJWT_ID, ClientAuth::ClientSecretJwt)
            .unwrap()
            .client_secret(SECRETJWT_SECRET),
    )
    .scope("api:read");
    let (_auth, client) = client(&api, short_lived_cache(source).build());
    assert_eq!(
        echo(&api, &client).await.introspected("client_id"),
        SECRETJWT_ID
    );
    assert_eq!(provider.issued(SECRETJWT_ID, "client_credentials").await, 1);
}

/// An unregistered key: the provider's `invalid_client`, typed and
/// permanent, sent once, with no key material in the error.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_key_is_a_typed_invalid_client_error() {
    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    let stranger = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("pkjwt-es256");
    let source = ClientCredentials::from_client(
        metadata
            .client_with_auth(PKJWT_ID, ClientAuth::PrivateKeyJwt(stranger))
            .unwrap(),
    )
    .scope("api:read");
    let (_auth, client) = client(&api, short_lived_cache(source).build());

    let error = client
        .get(api.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let bearer = BearerError::find(&error).expect("a BearerError");
    assert!(
        matches!(bearer, BearerError::NoToken(TokenError::OAuth { .. })),
        "{bearer:?}"
    );
    assert_eq!(bearer.oauth().unwrap().code, "invalid_client");
    assert!(!bearer.is_transient());
    assert_eq!(provider.refused(PKJWT_ID).await, 1, "sent once");
    assert_eq!(api.control().counters().api_requests, 0);
    let shown = format!("{error} {error:?} {bearer:?}");
    let private: serde_json::Value = serde_json::from_str(fixtures::P256_JWK).unwrap();
    assert!(!shown.contains(private["d"].as_str().unwrap()), "{shown}");
    assert!(!shown.contains("eyJ"), "no assertion in the error: {shown}");
}
