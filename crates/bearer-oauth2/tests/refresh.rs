//! Password grant, refresh with rotation, and the `invalid_grant` fallback.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_cache::{ManualClock, Token, TokenCache, TokenError, TokenKey};
use bearer_oauth2::{PasswordGrant, RefreshTokenGrant};
use bearer_testkit::TestServer;
use common::{assert_hidden, fast_retries, fetch};

async fn server(clock: &ManualClock, rotate: bool) -> TestServer {
    TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(60))
        .rotate_refresh_tokens(rotate)
        .start()
        .await
}

fn password(server: &TestServer) -> PasswordGrant {
    PasswordGrant::new(
        server.token_url(),
        server.client_id(),
        server.username(),
        server.password(),
    )
    .client_secret(server.client_secret())
    .retry_backoff(fast_retries())
}

#[tokio::test]
async fn password_grant_then_refresh_with_rotation_reported_by_on_change() {
    let clock = ManualClock::new();
    let server = server(&clock, true).await;
    let seen: Arc<Mutex<Vec<Token>>> = Arc::default();
    let hook = seen.clone();
    let cache = TokenCache::builder(password(&server))
        .clock(clock.clone())
        .on_change(move |_, token| hook.lock().unwrap().push(token.clone()))
        .build();
    let key = TokenKey::default();

    let first = cache.get(&key).await.unwrap();
    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.grant_type(), Some("password"));
    assert_eq!(request.param("username"), Some(server.username()));
    let first_refresh = first.token().refresh_token().unwrap().clone();

    clock.advance(Duration::from_secs(61));
    let second = cache.get(&key).await.unwrap();
    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.grant_type(), Some("refresh_token"));
    assert_eq!(
        request.param("refresh_token"),
        Some(first_refresh.expose_secret())
    );
    let rotated = second.token().refresh_token().unwrap();
    assert_ne!(rotated, &first_refresh);

    clock.advance(Duration::from_secs(61));
    cache.get(&key).await.unwrap();
    // The rotated refresh token was used, not the spent one.
    let request = server.control().last_token_request().unwrap();
    assert_eq!(
        request.param("refresh_token"),
        Some(rotated.expose_secret())
    );

    let counters = server.control().counters();
    assert_eq!(
        (counters.issued.password, counters.issued.refresh_token),
        (1, 2)
    );
    let hook_refresh: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.refresh_token().cloned())
        .collect();
    assert_eq!(hook_refresh.len(), 3);
    assert_eq!(hook_refresh[1].as_ref(), Some(rotated));
}

#[tokio::test]
async fn without_rotation_the_refresh_token_is_kept() {
    let clock = ManualClock::new();
    let server = server(&clock, false).await;
    let cache = TokenCache::builder(password(&server))
        .clock(clock.clone())
        .build();
    let key = TokenKey::default();
    let first = cache.get(&key).await.unwrap();
    clock.advance(Duration::from_secs(61));
    let second = cache.get(&key).await.unwrap();
    assert_ne!(second.access_token(), first.access_token());
    assert_eq!(
        second.token().refresh_token(),
        first.token().refresh_token()
    );
    clock.advance(Duration::from_secs(61));
    cache.get(&key).await.unwrap();
    assert_eq!(server.control().counters().issued.refresh_token, 2);
}

#[tokio::test]
async fn a_refused_refresh_token_falls_back_to_the_password() {
    let clock = ManualClock::new();
    let server = server(&clock, true).await;
    let cache = TokenCache::builder(password(&server))
        .clock(clock.clone())
        .build();
    let key = TokenKey::default();
    cache.get(&key).await.unwrap();

    server.control().revoke_all_refresh_tokens();
    clock.advance(Duration::from_secs(61));
    let token = cache.get(&key).await.unwrap();
    assert!(token.token().refresh_token().is_some());
    let counters = server.control().counters();
    // One refused refresh (never retried), then the password grant again.
    assert_eq!(counters.token_requests, 3);
    assert_eq!(counters.issued.password, 2);
    assert_eq!(
        server.control().last_token_request().unwrap().grant_type(),
        Some("password")
    );
}

#[tokio::test]
async fn refresh_token_grant_alone_requires_reauthentication_when_refused() {
    let clock = ManualClock::new();
    let server = server(&clock, true).await;
    let initial = fetch(&password(&server), &TokenKey::default(), None)
        .await
        .unwrap();
    let refresh = initial.refresh_token().unwrap().clone();

    let source = RefreshTokenGrant::new(server.token_url(), server.client_id(), refresh.clone())
        .client_secret(server.client_secret())
        .retry_backoff(fast_retries());
    assert_hidden(refresh.expose_secret(), &format!("{source:?}"));
    let cache = TokenCache::builder(source).clock(clock.clone()).build();
    let key = TokenKey::default();
    let token = cache.get(&key).await.unwrap();
    assert_ne!(token.token().refresh_token(), Some(&refresh), "rotated");

    server.control().revoke_all_refresh_tokens();
    let requests_before = server.control().counters().token_requests;
    clock.advance(Duration::from_secs(61));
    let err = cache.get(&key).await.unwrap_err();
    assert!(
        matches!(err, TokenError::ReauthenticationRequired(_)),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(
        server.control().counters().token_requests,
        requests_before + 1
    );
    assert_hidden(refresh.expose_secret(), &format!("{err} {err:?}"));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let clock = ManualClock::new();
    let server = server(&clock, false).await;
    let wrong = PasswordGrant::new(
        server.token_url(),
        server.client_id(),
        server.username(),
        "wrong-pass-5521",
    )
    .client_secret(server.client_secret());
    let err = fetch(&wrong, &TokenKey::default(), None).await.unwrap_err();
    assert_eq!(err.oauth().unwrap().code, "invalid_grant");
    let shown = format!("{err} {err:?} {wrong:?}");
    assert_hidden("wrong-pass-5521", &shown);
    assert_hidden(server.client_secret(), &shown);
}
