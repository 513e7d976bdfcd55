//! OpenID discovery against the test server.

mod common;

use bearer_cache::{TokenError, TokenKey};
use bearer_oauth2::{DiscoveryError, discover};
use bearer_testkit::TestServer;
use common::fetch;

#[tokio::test]
async fn discovers_endpoints_and_builds_working_sources() {
    let server = TestServer::start().await;
    let provider = discover(&server.issuer()).await.unwrap();
    assert_eq!(provider.token_endpoint, server.token_url());
    assert_eq!(
        provider.authorization_endpoint,
        Some(server.authorize_url())
    );
    assert_eq!(
        provider.device_authorization_endpoint,
        Some(server.device_authorization_url())
    );

    let source = provider
        .client_credentials(server.client_id(), server.client_secret())
        .scope("read");
    let token = fetch(&source, &TokenKey::default(), None).await.unwrap();
    assert_eq!(token.scopes().unwrap(), ["read"]);
    assert!(
        provider
            .authorization_code(server.client_id(), |_| {})
            .is_ok()
    );
    assert!(provider.device_code(server.client_id(), |_| {}).is_ok());
}

#[tokio::test]
async fn another_issuer_in_the_document_is_refused() {
    let server = TestServer::start().await;
    // Same server, named differently: the document's issuer won't match.
    let mut alias = server.issuer();
    alias.set_host(Some("localhost")).unwrap();
    match discover(&alias).await.unwrap_err() {
        DiscoveryError::IssuerMismatch { expected, found } => {
            assert!(expected.contains("localhost"), "{expected}");
            assert_eq!(found, server.issuer().as_str());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_document_that_is_not_metadata_is_malformed() {
    let server = TestServer::start().await;
    // The other origin answers any path with an echo, not with metadata.
    match discover(&server.other_origin_url("/")).await.unwrap_err() {
        DiscoveryError::Malformed(reason) => assert!(reason.contains("missing field"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_document_is_a_fetch_error() {
    let server = TestServer::start().await;
    let err = discover(&server.api_url("/no-such-issuer"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DiscoveryError::Fetch(TokenError::Http { status: 404, .. })
        ),
        "{err:?}"
    );
}
