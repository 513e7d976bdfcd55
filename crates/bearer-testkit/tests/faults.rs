//! Every injected fault, over real HTTP.

mod common;

use std::time::Duration;

use bearer_testkit::{LoginExpiry, TestServer, TokenFault};
use common::{api_get, json, token};
use serde_json::Value;

const CC: &[(&str, &str)] = &[("grant_type", "client_credentials")];

async fn faulted(fault: TokenFault) -> (TestServer, reqwest::Response) {
    let server = TestServer::start().await;
    server.control().fail_next_token_requests(1, fault);
    let response = token(&server, CC).await;
    (server, response)
}

/// After the fault, the next request succeeds and the counters say one fault.
async fn recovers(server: &TestServer) {
    assert_eq!(token(server, CC).await.status(), 200);
    let counters = server.control().counters();
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.token_faults, 1);
}

#[tokio::test]
async fn internal_error() {
    let (server, response) = faulted(TokenFault::InternalError).await;
    assert_eq!(response.status(), 500);
    recovers(&server).await;
    assert_eq!(server.control().counters().issued.client_credentials, 1);
}

#[tokio::test]
async fn service_unavailable_with_retry_after() {
    let (server, response) = faulted(TokenFault::ServiceUnavailable {
        retry_after: Some(2),
    })
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    recovers(&server).await;

    let (_, response) = faulted(TokenFault::ServiceUnavailable { retry_after: None }).await;
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    let (server, response) = faulted(TokenFault::TooManyRequests {
        retry_after: Some(7),
    })
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    recovers(&server).await;
}

#[tokio::test]
async fn oauth_error_with_chosen_status() {
    let (server, response) = faulted(TokenFault::OAuthError {
        status: 400,
        error: "invalid_grant".into(),
        description: Some("nope".into()),
    })
    .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, body) = json(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_grant", "error_description": "nope"})
    );
    recovers(&server).await;
}

#[tokio::test]
async fn error_in_a_200() {
    let (server, response) = faulted(TokenFault::ErrorIn200 {
        error: "server_error".into(),
    })
    .await;
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["error"], "server_error");
    assert!(body.get("access_token").is_none());
    recovers(&server).await;
}

#[tokio::test]
async fn html_page() {
    let (server, response) = faulted(TokenFault::Html { status: 502 }).await;
    assert_eq!(response.status(), 502);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("<html>"));
    recovers(&server).await;
}

#[tokio::test]
async fn malformed_json() {
    let (server, response) = faulted(TokenFault::MalformedJson).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err());
    recovers(&server).await;
}

async fn reshaped(fault: TokenFault) -> (TestServer, Value) {
    let (server, response) = faulted(fault).await;
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    // The token is real.
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(api_get(&server, "/api/echo", access).await.status(), 200);
    assert_eq!(server.control().counters().token_faults, 1);
    assert_eq!(server.control().counters().issued.client_credentials, 1);
    (server, body)
}

#[tokio::test]
async fn expires_in_as_a_string() {
    let (_, body) = reshaped(TokenFault::ExpiresInString).await;
    assert_eq!(body["expires_in"], "3600");
}

#[tokio::test]
async fn missing_token_type() {
    let (_, body) = reshaped(TokenFault::MissingTokenType).await;
    assert!(body.get("token_type").is_none());
}

#[tokio::test]
async fn lowercase_token_type() {
    let (_, body) = reshaped(TokenFault::LowercaseTokenType).await;
    assert_eq!(body["token_type"], "bearer");
}

#[tokio::test]
async fn non_bearer_token_types() {
    for kind in ["DPoP", "mac", "N_A"] {
        let (_, body) = reshaped(TokenFault::TokenType(kind.into())).await;
        assert_eq!(body["token_type"], kind);
    }
}

#[tokio::test]
async fn missing_expires_in() {
    let (_, body) = reshaped(TokenFault::MissingExpiresIn).await;
    assert!(body.get("expires_in").is_none());
}

#[tokio::test]
async fn huge_streamed_body() {
    let bytes = 8 * 1024 * 1024;
    let (server, response) = faulted(TokenFault::HugeBody { bytes }).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed"
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), bytes);
    assert!(serde_json::from_slice::<Value>(&body).is_ok());
    recovers(&server).await;
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() {
    let server = TestServer::start().await;
    server
        .control()
        .fail_next_token_requests(1, TokenFault::DropConnection);
    let error = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.token_url())
        .basic_auth("test-client", Some("test-secret"))
        .form(CC)
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout());
    assert!(error.status().is_none(), "no HTTP answer: {error:?}");
    recovers(&server).await;
}

#[tokio::test]
async fn hang_never_answers() {
    let server = TestServer::start().await;
    server
        .control()
        .fail_next_token_requests(1, TokenFault::Hang);
    // The timeout is the point of the test, not a timing threshold.
    let error = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.token_url())
        .basic_auth("test-client", Some("test-secret"))
        .form(CC)
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    recovers(&server).await;
}

#[tokio::test]
async fn faults_queue_in_order_and_count() {
    let server = TestServer::start().await;
    let control = server.control();
    control.fail_next_token_requests(2, TokenFault::InternalError);
    control.fail_next_token_requests(1, TokenFault::TooManyRequests { retry_after: None });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(token(&server, CC).await.status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 429, 200]);
    assert_eq!(control.counters().token_faults, 3);

    control.fail_next_token_requests(5, TokenFault::InternalError);
    control.clear_token_faults();
    assert_eq!(token(&server, CC).await.status(), 200);
}

#[tokio::test]
async fn random_faults_are_reproducible_from_the_seed() {
    let server = TestServer::start().await;
    let control = server.control();
    control.fail_token_requests_randomly(TokenFault::ServiceUnavailable { retry_after: None }, 0.3);
    control.fail_token_requests_randomly(TokenFault::InternalError, 0.2);
    let mut runs = Vec::new();
    for _ in 0..2 {
        control.set_seed(42);
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(token(&server, CC).await.status().as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let count = |code| runs[0].iter().filter(|s| **s == code).count() as u64;
    assert!(
        count(503) > 0 && count(500) > 0 && count(200) > 0,
        "{:?}",
        runs[0]
    );
    assert_eq!(
        control.counters().token_faults,
        2 * (count(503) + count(500))
    );
}

#[tokio::test]
async fn token_latency_delays_the_answer() {
    let server = TestServer::start().await;
    server.control().set_token_latency(Duration::from_secs(30));
    let error = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.token_url())
        .form(CC)
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    server.control().set_token_latency(Duration::ZERO);
    assert_eq!(token(&server, CC).await.status(), 200);
}

#[tokio::test]
async fn token_lifetime_is_switchable() {
    let server = TestServer::start().await;
    server.control().set_token_lifetime(Duration::from_secs(5));
    let (_, body) = json(token(&server, CC).await).await;
    assert_eq!(body["expires_in"], 5);
}

#[tokio::test]
async fn login_faults_use_the_same_vocabulary() {
    let server = TestServer::builder()
        .login_expiry(LoginExpiry::ExpiresAt)
        .start()
        .await;
    let control = server.control();
    control.fail_next_login_requests(
        1,
        TokenFault::ServiceUnavailable {
            retry_after: Some(1),
        },
    );
    control.fail_next_login_requests(1, TokenFault::ExpiresInString);
    let login = || {
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.login_url())
            .json(&serde_json::json!({"username": "alice", "password": "wonderland"}))
            .send()
    };
    assert_eq!(login().await.unwrap().status(), 503);
    let (_, body) = json(login().await.unwrap()).await;
    assert!(body["expires_at"].is_string(), "{body}");
    let counters = control.counters();
    assert_eq!((counters.login_requests, counters.login_faults), (2, 2));
    assert_eq!(counters.token_requests, 0);
}
