//! Nothing secret reaches the logs, at the most verbose level, across
//! successes, rotation, refusals and injected faults.

mod common;

use std::time::Duration;

use bearer_cache::{ManualClock, TokenCache, TokenKey};
use bearer_oauth2::PasswordGrant;
use bearer_testkit::{TestServer, TokenFault};
use common::{Captured, assert_hidden, fast_retries};

#[tokio::test]
async fn logs_carry_fingerprints_not_secrets() {
    let captured = Captured::default();
    let _guard = captured.install();

    let clock = ManualClock::new();
    let server = TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(60))
        .rotate_refresh_tokens(true)
        .start()
        .await;
    let source = PasswordGrant::new(
        server.token_url(),
        server.client_id(),
        server.username(),
        server.password(),
    )
    .client_secret(server.client_secret())
    .retry_backoff(fast_retries());
    let cache = TokenCache::builder(source).clock(clock.clone()).build();
    let key = TokenKey::default();

    let mut secrets = vec![
        server.password().to_owned(),
        server.client_secret().to_owned(),
    ];
    let first = cache.get(&key).await.unwrap();
    secrets.push(first.access_token().expose_secret().to_owned());
    secrets.push(
        first
            .token()
            .refresh_token()
            .unwrap()
            .expose_secret()
            .to_owned(),
    );

    server
        .control()
        .fail_next_token_requests(1, TokenFault::InternalError);
    server
        .control()
        .fail_next_token_requests(1, TokenFault::MalformedJson);
    clock.advance(Duration::from_secs(61));
    let second = cache.get(&key).await.unwrap();
    secrets.push(second.access_token().expose_secret().to_owned());

    server.control().revoke_all_refresh_tokens();
    clock.advance(Duration::from_secs(61));
    cache.get(&key).await.unwrap();

    let logs = captured.contents();
    assert!(
        logs.contains("refresh token refused"),
        "the events ran: {logs}"
    );
    assert!(logs.contains("retrying"), "the events ran: {logs}");
    for secret in &secrets {
        assert_hidden(secret, &logs);
    }
}
