//! Nothing secret of a sign-in reaches the logs at the most verbose level:
//! not the code, `state` or PKCE verifier, nor the tokens. Alone in its
//! binary: a thread-local subscriber misses events whose callsites another
//! test's thread registered first.

mod common;

use std::sync::Arc;

use bearer_cache::TokenCache;
use bearer_oauth2::{MemoryRefreshTokens, RefreshTokenStorage};
use bearer_testkit::{TestServer, query_params};
use common::{Captured, approve, assert_hidden, user_sign_in as sign_in};

#[tokio::test]
async fn no_code_state_verifier_or_token_reaches_the_logs() {
    let captured = Captured::default();
    let _guard = captured.install();

    let server = TestServer::start().await;
    let storage = Arc::new(MemoryRefreshTokens::default());
    let source = Arc::new(sign_in(&server).storage(storage.clone()));
    let cache = TokenCache::builder(source.clone()).build();
    let (url, pending) = source.start().unwrap().into_parts();
    let callback = approve(&url).await;
    let key = source.finish("u-1", &pending, &callback).await.unwrap();
    let token = cache.refresh(&key).await.unwrap();
    let refresh = storage.load("u-1").await.unwrap().unwrap();
    cache.refresh(&key).await.unwrap();

    let logs = captured.contents();
    assert!(logs.contains("user signed in"), "{logs}");
    for secret in [
        query_params(&callback)["code"].as_str(),
        pending.state().expose_secret(),
        pending.pkce_verifier().expose_secret(),
        token.access_token().expose_secret(),
        refresh.expose_secret(),
        server.client_secret(),
    ] {
        assert_hidden(secret, &logs);
    }
}
