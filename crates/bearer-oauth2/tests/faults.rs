//! Every fault the test server can inject → the exact typed error, and
//! exactly as many token requests as the retry rules allow.

mod common;

use std::time::Duration;

use bearer_cache::{Expiry, TokenError, TokenKey};
use bearer_oauth2::{ClientCredentials, DEFAULT_MAX_BODY};
use bearer_testkit::{TestServer, TokenFault};
use common::{RecordingClock, assert_hidden, fast_retries, fetch};

async fn fetch_with(source: ClientCredentials) -> Result<bearer_cache::Token, TokenError> {
    fetch(&source, &TokenKey::default(), None).await
}

fn source(server: &TestServer) -> ClientCredentials {
    ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .retry_backoff(fast_retries())
}

/// Every request fails with `fault`; returns the error and the request count.
async fn always(fault: TokenFault) -> (TokenError, u64) {
    let server = TestServer::start().await;
    server.control().fail_next_token_requests(100, fault);
    let err = fetch_with(source(&server)).await.unwrap_err();
    (err, server.control().counters().token_requests)
}

#[tokio::test]
async fn server_errors_are_retried_twice_then_reported() {
    let (err, requests) = always(TokenFault::InternalError).await;
    assert!(
        matches!(&err, TokenError::Http { status: 500, excerpt, .. } if excerpt == "internal server error"),
        "{err:?}"
    );
    assert_eq!(requests, 3);

    let (err, requests) = always(TokenFault::Html { status: 502 }).await;
    match &err {
        TokenError::Http {
            status: 502,
            excerpt,
            ..
        } => {
            assert!(
                excerpt.starts_with("<!DOCTYPE html>") && excerpt.chars().count() <= 200,
                "{excerpt}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(requests, 3);
}

#[tokio::test]
async fn a_transient_failure_then_success_yields_the_token() {
    let server = TestServer::start().await;
    server
        .control()
        .fail_next_token_requests(2, TokenFault::InternalError);
    fetch_with(source(&server)).await.unwrap();
    assert_eq!(server.control().counters().token_requests, 3);
    assert_eq!(server.control().counters().issued.client_credentials, 1);
}

#[tokio::test]
async fn retry_after_is_honoured_and_kept() {
    let server = TestServer::start().await;
    let clock = RecordingClock::default();
    server.control().fail_next_token_requests(
        1,
        TokenFault::ServiceUnavailable {
            retry_after: Some(7),
        },
    );
    server.control().fail_next_token_requests(
        1,
        TokenFault::TooManyRequests {
            retry_after: Some(3),
        },
    );
    fetch_with(source(&server).clock(clock.clone()))
        .await
        .unwrap();
    assert_eq!(
        clock.waits(),
        [Duration::from_secs(7), Duration::from_secs(3)]
    );
    assert_eq!(server.control().counters().token_requests, 3);

    // A Retry-After longer than the policy allows goes back to the cache at once.
    server.control().fail_next_token_requests(
        1,
        TokenFault::TooManyRequests {
            retry_after: Some(60),
        },
    );
    let err = fetch_with(source(&server)).await.unwrap_err();
    assert!(
        matches!(err, TokenError::Http { status: 429, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(server.control().counters().token_requests, 4);
}

#[tokio::test]
async fn retries_stop_at_the_fetch_deadline() {
    let server = TestServer::start().await;
    server.control().fail_next_token_requests(
        1,
        TokenFault::ServiceUnavailable {
            retry_after: Some(5),
        },
    );
    let clock = RecordingClock::default();
    let source = source(&server)
        .timeout(Duration::from_secs(2))
        .clock(clock.clone());
    let err = fetch_with(source).await.unwrap_err();
    assert!(
        matches!(err, TokenError::Http { status: 503, .. }),
        "{err:?}"
    );
    assert!(clock.waits().is_empty());
    assert_eq!(server.control().counters().token_requests, 1);
}

#[tokio::test]
async fn oauth_errors_keep_their_code_and_only_transient_ones_retry() {
    let fault = |status: u16, error: &str| TokenFault::OAuthError {
        status,
        error: error.into(),
        description: Some("injected".into()),
    };
    for code in [
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "invalid_scope",
        "unsupported_grant_type",
    ] {
        let (err, requests) = always(fault(400, code)).await;
        let oauth = err.oauth().unwrap();
        assert_eq!((oauth.code.as_str(), oauth.status), (code, 400));
        assert_eq!(oauth.description.as_deref(), Some("injected"));
        assert!(!err.is_transient(), "{code}");
        assert_eq!(requests, 1, "{code} must not be retried");
    }
    for code in ["server_error", "temporarily_unavailable"] {
        let (err, requests) = always(fault(400, code)).await;
        assert_eq!(err.oauth().unwrap().code, code);
        assert!(err.is_transient(), "{code}");
        assert_eq!(requests, 3, "{code} is retried");
    }
}

#[tokio::test]
async fn an_error_in_a_200_is_an_error() {
    let (err, requests) = always(TokenFault::ErrorIn200 {
        error: "invalid_grant".into(),
    })
    .await;
    let oauth = err.oauth().unwrap();
    assert_eq!((oauth.code.as_str(), oauth.status), ("invalid_grant", 200));
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn truncated_json_is_malformed_and_scrubbed() {
    let (err, requests) = always(TokenFault::MalformedJson).await;
    match &err {
        TokenError::Malformed {
            status: 200,
            reason,
            excerpt,
        } => {
            assert!(reason.contains("not a JSON object"), "{reason}");
            assert!(excerpt.contains("\"access_token\""), "{excerpt}");
        }
        other => panic!("{other:?}"),
    }
    // Malformed counts as transient (a proxy mid-deploy): retried.
    assert_eq!(requests, 3);
}

#[tokio::test]
async fn reshaped_but_valid_answers_are_accepted() {
    let server = TestServer::start().await;
    let control = server.control();

    control.fail_next_token_requests(1, TokenFault::ExpiresInString);
    let token = fetch_with(source(&server)).await.unwrap();
    assert_eq!(token.expiry(), Expiry::In(Duration::from_secs(3600)));

    control.fail_next_token_requests(1, TokenFault::MissingTokenType);
    assert_eq!(
        fetch_with(source(&server)).await.unwrap().token_type(),
        "Bearer"
    );

    control.fail_next_token_requests(1, TokenFault::LowercaseTokenType);
    assert_eq!(
        fetch_with(source(&server)).await.unwrap().token_type(),
        "Bearer"
    );

    control.fail_next_token_requests(1, TokenFault::MissingExpiresIn);
    assert_eq!(
        fetch_with(source(&server)).await.unwrap().expiry(),
        Expiry::Unknown
    );
    assert_eq!(control.counters().token_requests, 4);
}

#[tokio::test]
async fn non_bearer_token_types_are_refused_once() {
    for kind in ["DPoP", "mac", "N_A"] {
        let (err, requests) = always(TokenFault::TokenType(kind.into())).await;
        assert!(
            matches!(&err, TokenError::UnsupportedTokenType(t) if t == kind),
            "{err:?}"
        );
        assert_eq!(requests, 1);
    }
}

#[tokio::test]
async fn a_huge_body_is_refused_after_the_cap() {
    let (err, requests) = always(TokenFault::HugeBody {
        bytes: 8 * 1024 * 1024,
    })
    .await;
    assert!(
        matches!(
            err,
            TokenError::BodyTooLarge {
                limit: DEFAULT_MAX_BODY
            }
        ),
        "{err:?}"
    );
    assert_eq!(requests, 1);

    let server = TestServer::start().await;
    server
        .control()
        .fail_next_token_requests(1, TokenFault::HugeBody { bytes: 2048 });
    let err = fetch_with(source(&server).max_body_bytes(1024))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TokenError::BodyTooLarge { limit: 1024 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_transient_and_retried() {
    let (err, requests) = always(TokenFault::DropConnection).await;
    assert!(matches!(err, TokenError::Transport(_)), "{err:?}");
    assert_eq!(requests, 3);
}

#[tokio::test]
async fn a_hanging_endpoint_times_out() {
    let server = TestServer::start().await;
    server
        .control()
        .fail_next_token_requests(1, TokenFault::Hang);
    let source = source(&server).timeout(Duration::from_millis(300));
    let err = fetch_with(source).await.unwrap_err();
    assert!(
        matches!(err, TokenError::Timeout(d) if d == Duration::from_millis(300)),
        "{err:?}"
    );
    assert_eq!(server.control().counters().token_requests, 1);
}

#[tokio::test]
async fn no_retries_means_one_request() {
    let server = TestServer::start().await;
    server
        .control()
        .fail_next_token_requests(5, TokenFault::InternalError);
    fetch_with(source(&server).retries(0)).await.unwrap_err();
    assert_eq!(server.control().counters().token_requests, 1);
}

#[tokio::test]
async fn secrets_never_reach_errors() {
    let server = TestServer::start().await;
    let secret = server.client_secret().to_owned();
    for fault in [
        TokenFault::InternalError,
        TokenFault::Html { status: 502 },
        TokenFault::MalformedJson,
        TokenFault::ErrorIn200 {
            error: "invalid_client".into(),
        },
        TokenFault::TokenType("DPoP".into()),
        TokenFault::DropConnection,
    ] {
        server.control().fail_next_token_requests(3, fault.clone());
        let source = source(&server);
        let err = fetch_with(source.clone()).await.unwrap_err();
        assert_hidden(&secret, &format!("{err} {err:?} {source:?}"));
        server.control().clear_token_faults();
    }
}
