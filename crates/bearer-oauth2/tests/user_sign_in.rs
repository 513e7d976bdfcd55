//! `UserSignIn` against the test server: the app drives the redirect, the
//! callback URL is checked and exchanged, tokens are kept per user.

mod common;

use std::sync::Arc;

use bearer_cache::{TokenCache, TokenError, TokenKey};
use bearer_oauth2::{
    FlowError, MemoryRefreshTokens, PendingSignIn, RefreshTokenStorage, StorageError, flow_error,
};
use bearer_testkit::{TestServer, query_params};
use common::{REDIRECT, approve, assert_hidden, fetch, user_sign_in as sign_in};

#[tokio::test]
async fn the_authorization_url_carries_state_and_pkce_and_debug_hides_them() {
    let server = TestServer::start().await;
    let request = sign_in(&server).start().unwrap();
    let q = query_params(request.url());
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["scope"], "read");
    assert_eq!(q["state"], request.pending().state().expose_secret());
    assert_eq!(
        q["code_challenge"],
        bearer_testkit::pkce_s256_challenge(request.pending().pkce_verifier().expose_secret())
    );
    let shown = format!("{request:?}");
    assert_hidden(&q["state"], &shown);
    assert_hidden(request.pending().pkce_verifier().expose_secret(), &shown);
    assert_hidden(&q["code_challenge"], &shown);
    // Two sign-ins never share a state or verifier.
    let other = sign_in(&server).start().unwrap();
    assert_ne!(other.pending(), request.pending());
}

#[tokio::test]
async fn a_callback_url_signs_the_user_in_and_the_cache_refreshes_per_user() {
    let server = TestServer::builder()
        .add_user(bearer_testkit::UserConfig::new("bob", "builder"))
        .rotate_refresh_tokens(true)
        .start()
        .await;
    let storage = Arc::new(MemoryRefreshTokens::default());
    let source = Arc::new(sign_in(&server).storage(storage.clone()));
    let cache = TokenCache::builder(source.clone()).build();

    let mut keys = Vec::new();
    for user in ["alice", "bob"] {
        let (url, pending) = source
            .start()
            .unwrap()
            .param("login_hint", user)
            .into_parts();
        let callback = approve(&url).await;
        keys.push(source.finish(user, &pending, &callback).await.unwrap());
    }
    assert_eq!(keys[0], source.key("alice"));
    let alice = cache.get(&keys[0]).await.unwrap();
    let bob = cache.get(&keys[1]).await.unwrap();
    assert_ne!(alice.access_token(), bob.access_token());
    // The sign-ins' own tokens: no token request beyond the two exchanges.
    assert_eq!(server.control().counters().token_requests, 2);

    let kept = storage.load("alice").await.unwrap().unwrap();
    let refreshed = cache.refresh(&keys[0]).await.unwrap();
    assert_ne!(refreshed.access_token(), alice.access_token());
    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.grant_type(), Some("refresh_token"));
    assert_eq!(request.param("refresh_token"), Some(kept.expose_secret()));
    assert_ne!(
        storage.load("alice").await.unwrap().unwrap(),
        kept,
        "rotated and saved"
    );
}

#[tokio::test]
async fn the_bare_code_works_too() {
    let server = TestServer::start().await;
    let source = sign_in(&server);
    let (url, pending) = source.start().unwrap().into_parts();
    let code = query_params(&approve(&url).await)["code"].clone();
    let key = source
        .finish_with_code("u-1", &pending, code)
        .await
        .unwrap();
    fetch(&source, &key, None).await.unwrap();
    assert_eq!(server.control().counters().issued.authorization_code, 1);
}

#[tokio::test]
async fn a_wrong_state_or_a_provider_error_is_typed_and_no_code_is_exchanged() {
    let server = TestServer::start().await;
    let source = sign_in(&server);
    let (url, _) = source.start().unwrap().into_parts();
    let callback = approve(&url).await;
    let other = PendingSignIn::new("another-state", "another-verifier");
    let err = source.finish("u-1", &other, &callback).await.unwrap_err();
    assert_eq!(flow_error(&err), Some(&FlowError::StateMismatch));

    server.control().deny_next_authorizations(1);
    let (url, pending) = source.start().unwrap().into_parts();
    let callback = approve(&url).await;
    let err = source.finish("u-1", &pending, &callback).await.unwrap_err();
    match flow_error(&err) {
        Some(FlowError::AuthorizationFailed { code, .. }) => assert_eq!(code, "access_denied"),
        other => panic!("{other:?} from {err:?}"),
    }
    assert!(!err.is_transient());
    assert_hidden(pending.state().expose_secret(), &format!("{err} {err:?}"));
    assert_eq!(server.control().counters().token_requests, 0);
}

#[tokio::test]
async fn a_user_who_never_signed_in_must_sign_in_and_a_key_without_a_user_is_refused() {
    let server = TestServer::start().await;
    let source = sign_in(&server);
    let err = fetch(&source, &source.key("nobody"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TokenError::ReauthenticationRequired(_)),
        "{err:?}"
    );
    let err = fetch(&source, &TokenKey::new(), None).await.unwrap_err();
    assert!(matches!(err, TokenError::Source { .. }), "{err:?}");
    assert!(
        !err.is_transient(),
        "a key without a user is a mistake, not an outage"
    );
    assert_eq!(server.control().counters().token_requests, 0);
}

#[tokio::test]
async fn a_refused_refresh_token_is_forgotten_and_the_user_must_sign_in_again() {
    let server = TestServer::start().await;
    let storage = Arc::new(MemoryRefreshTokens::default());
    let source = sign_in(&server).storage(storage.clone());
    let (url, pending) = source.start().unwrap().into_parts();
    let key = source
        .finish("u-1", &pending, &approve(&url).await)
        .await
        .unwrap();
    let first = fetch(&source, &key, None).await.unwrap();

    server.control().revoke_all_refresh_tokens();
    let err = fetch(&source, &key, Some(&first)).await.unwrap_err();
    assert!(
        matches!(err, TokenError::ReauthenticationRequired(_)),
        "{err:?}"
    );
    assert!(storage.load("u-1").await.unwrap().is_none());
}

/// A storage whose database is down.
struct Down;

#[async_trait::async_trait]
impl RefreshTokenStorage for Down {
    async fn load(&self, _: &str) -> Result<Option<bearer_cache::RefreshToken>, StorageError> {
        Err(StorageError::new("the session database is down")
            .with_source(std::io::Error::other("connection refused")))
    }
    async fn save(&self, _: &str, _: &bearer_cache::RefreshToken) -> Result<(), StorageError> {
        Err(StorageError::new("the session database is down"))
    }
    async fn remove(&self, _: &str) -> Result<(), StorageError> {
        Err(StorageError::new("the session database is down"))
    }
}

#[tokio::test]
async fn a_storage_failure_is_a_transient_error_with_its_cause() {
    let server = TestServer::start().await;
    let source = sign_in(&server).storage(Down);
    let err = fetch(&source, &source.key("u-1"), None).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let TokenError::Source {
        cause: Some(cause), ..
    } = &err
    else {
        panic!("{err:?}")
    };
    let storage = cause
        .downcast_ref::<StorageError>()
        .expect("a StorageError");
    assert_eq!(
        std::error::Error::source(storage).map(ToString::to_string),
        Some("connection refused".to_owned())
    );
}
