//! The protected API, the other origin, and the API-side faults.

mod common;

use std::time::Duration;

use bearer_cache::ManualClock;
use bearer_testkit::{ApiValidator, ClientConfig, Endpoint, TestServer};
use common::{access_token, api_get, challenge, json, token};

#[tokio::test]
async fn missing_token_gets_a_challenge_without_error() {
    let server = TestServer::start().await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenge(&response).as_deref(),
        Some("Bearer realm=\"testkit\"")
    );
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .get(server.api_url("/api/echo"))
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenge(&response).as_deref(),
        Some("Bearer realm=\"testkit\"")
    );
    let counters = server.control().counters();
    assert_eq!((counters.api_requests, counters.api_unauthorized), (2, 2));
}

#[tokio::test]
async fn unknown_token_is_invalid_token() {
    let server = TestServer::start().await;
    let response = api_get(&server, "/api/echo", "nope").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenge(&response).as_deref(),
        Some(
            "Bearer realm=\"testkit\", error=\"invalid_token\", \
             error_description=\"the access token is not known\""
        )
    );
}

#[tokio::test]
async fn malformed_authorization_is_invalid_request() {
    let server = TestServer::start().await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .get(server.api_url("/api/echo"))
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        challenge(&response)
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
}

#[tokio::test]
async fn expiry_follows_the_injected_clock() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(60))
        .start()
        .await;
    let access = access_token(&server, "read").await;
    clock.advance(Duration::from_secs(59));
    assert_eq!(api_get(&server, "/api/echo", &access).await.status(), 200);
    clock.advance(Duration::from_secs(1));
    let response = api_get(&server, "/api/echo", &access).await;
    assert_eq!(response.status(), 401);
    assert!(
        challenge(&response)
            .unwrap()
            .contains("the access token expired")
    );
}

#[tokio::test]
async fn clock_offset_moves_the_servers_now() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(60))
        .start()
        .await;
    let access = access_token(&server, "read").await;
    server.control().set_clock_offset_secs(60);
    assert_eq!(api_get(&server, "/api/echo", &access).await.status(), 401);
    server.control().set_clock_offset_secs(-30);
    assert_eq!(api_get(&server, "/api/echo", &access).await.status(), 200);
}

#[tokio::test]
async fn revoke_all_invalidates_live_tokens_only() {
    let server = TestServer::start().await;
    let before = access_token(&server, "read").await;
    server.control().revoke_all();
    let response = api_get(&server, "/api/echo", &before).await;
    assert!(challenge(&response).unwrap().contains("revoked"));
    let after = access_token(&server, "read").await;
    assert_eq!(api_get(&server, "/api/echo", &after).await.status(), 200);
}

#[tokio::test]
async fn reject_next_api_requests() {
    let server = TestServer::start().await;
    let access = access_token(&server, "read").await;
    server.control().reject_next_api_requests(2);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            api_get(&server, "/api/echo", &access)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 200]);
    assert_eq!(server.control().counters().api_unauthorized, 2);
}

#[tokio::test]
async fn probabilistic_revocation_revokes_the_presented_token() {
    let server = TestServer::builder().seed(7).start().await;
    server
        .control()
        .revoke_presented_token_with_probability(1.0);
    let access = access_token(&server, "read").await;
    assert_eq!(api_get(&server, "/api/echo", &access).await.status(), 401);
    server
        .control()
        .revoke_presented_token_with_probability(0.0);
    let response = api_get(&server, "/api/echo", &access).await;
    assert!(challenge(&response).unwrap().contains("revoked"));

    server
        .control()
        .revoke_presented_token_with_probability(0.5);
    let mut rejected = 0;
    for _ in 0..20 {
        let access = server.control().mint_access_token("read");
        if api_get(&server, "/api/echo", &access).await.status() == 401 {
            rejected += 1;
        }
    }
    assert!(rejected > 0 && rejected < 20, "{rejected}");
}

#[tokio::test]
async fn echo_reports_the_request_and_reads_large_bodies() {
    let server = TestServer::start().await;
    let access = access_token(&server, "read").await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .put(server.api_url("/api/echo/sub/path?x=1&y=2"))
        .bearer_auth(&access)
        .header("x-test", "yes")
        .body("hello")
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["path"], "/api/echo/sub/path");
    assert_eq!(body["query"], "x=1&y=2");
    assert_eq!(body["headers"]["x-test"], "yes");
    assert_eq!(body["headers"]["authorization"], format!("Bearer {access}"));
    assert_eq!(body["body"], "hello");
    assert_eq!(body["token"]["client_id"], "test-client");
    assert_eq!(body["token"]["scope"], "read");

    let big = vec![b'a'; 3 * 1024 * 1024];
    let stream = futures::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.api_url("/api/echo"))
        .bearer_auth(&access)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["body_len"], big.len());
    assert!(body["body"].is_null(), "too large to echo back");
    let headers = server.control().last_headers(Endpoint::Api).unwrap();
    assert_eq!(headers["transfer-encoding"], "chunked");
}

#[tokio::test]
async fn slow_stream_and_status() {
    let server = TestServer::start().await;
    let access = access_token(&server, "read").await;
    let (status, body) = json(api_get(&server, "/api/slow?ms=1", &access).await).await;
    assert_eq!((status.as_u16(), body["slept_ms"].as_u64()), (200, Some(1)));
    let response = api_get(&server, "/api/stream?chunks=4", &access).await;
    assert!(response.headers().get("content-length").is_none());
    assert_eq!(
        response.text().await.unwrap(),
        "chunk 0\nchunk 1\nchunk 2\nchunk 3\n"
    );
    assert_eq!(
        api_get(&server, "/api/status/503", &access).await.status(),
        503
    );
    assert_eq!(api_get(&server, "/api/slow", "nope").await.status(), 401);
}

#[tokio::test]
async fn scoped_routes_answer_insufficient_scope() {
    let server = TestServer::start().await;
    let access = access_token(&server, "read").await;
    assert_eq!(
        api_get(&server, "/api/scoped/read", &access).await.status(),
        200
    );
    let response = api_get(&server, "/api/scoped/admin", &access).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        challenge(&response).as_deref(),
        Some(
            "Bearer realm=\"testkit\", error=\"insufficient_scope\", \
             error_description=\"the token lacks the required scope\", scope=\"admin\""
        )
    );
    assert_eq!(server.control().counters().api_forbidden, 1);
}

#[tokio::test]
async fn required_audience() {
    let server = TestServer::builder()
        .require_audience("https://api.example/")
        .start()
        .await;
    let without = access_token(&server, "read").await;
    let response = api_get(&server, "/api/echo", &without).await;
    assert!(challenge(&response).unwrap().contains("audience"));
    let (_, body) = json(
        token(
            &server,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.example/"),
            ],
        )
        .await,
    )
    .await;
    let with = body["access_token"].as_str().unwrap();
    assert_eq!(api_get(&server, "/api/echo", with).await.status(), 200);
    server.control().set_required_audience(None);
    assert_eq!(api_get(&server, "/api/echo", &without).await.status(), 200);
}

#[tokio::test]
async fn same_origin_redirect_keeps_the_token() {
    let server = TestServer::start().await;
    let access = access_token(&server, "read").await;
    let response = api_get(&server, "/api/redirect?to=/api/echo?after=1", &access).await;
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["query"], "after=1");
    assert_eq!(server.control().counters().api_requests, 2);
}

#[tokio::test]
async fn cross_origin_redirect_is_observed_by_the_other_origin() {
    let server = TestServer::start().await;
    let access = access_token(&server, "read").await;
    let response = common::no_redirects()
        .get(server.api_url("/api/redirect-cross?to=/api/echo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        server.other_origin_url("/api/echo").as_str()
    );
    // reqwest strips Authorization when the redirect changes the port.
    let (status, body) =
        json(api_get(&server, "/api/redirect-cross?to=/api/echo", &access).await).await;
    assert_eq!(status, 200);
    assert!(body["headers"].get("authorization").is_none());
    let seen = server
        .control()
        .last_headers(Endpoint::OtherOrigin)
        .unwrap();
    assert!(seen.get("authorization").is_none());
    assert_eq!(server.control().counters().other_origin_requests, 1);
}

#[tokio::test]
async fn other_origin_records_what_it_is_sent() {
    let server = TestServer::start().await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.other_origin_url("/anything"))
        .bearer_auth("leaked")
        .send()
        .await
        .unwrap();
    let (_, body) = json(response).await;
    assert_eq!(body["headers"]["authorization"], "Bearer leaked");
    let seen = server
        .control()
        .last_headers(Endpoint::OtherOrigin)
        .unwrap();
    assert_eq!(seen["authorization"], "Bearer leaked");
    assert_eq!(server.control().counters().api_requests, 0);
}

#[tokio::test]
async fn introspection_validator_asks_another_server() {
    let issuer = TestServer::builder()
        .add_client(ClientConfig::confidential("api", "api-secret"))
        .start()
        .await;
    let api = TestServer::builder()
        .api_validator(ApiValidator::Introspection {
            url: issuer.introspection_url(),
            client_id: "api".into(),
            client_secret: "api-secret".into(),
        })
        .start()
        .await;
    let access = access_token(&issuer, "read").await;
    let (status, body) = json(api_get(&api, "/api/echo", &access).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["token"]["client_id"], "test-client");
    assert_eq!(issuer.control().counters().introspections, 1);
    issuer.control().revoke_all();
    assert_eq!(api_get(&api, "/api/echo", &access).await.status(), 401);
    let local = api.control().mint_access_token("read");
    assert_eq!(api_get(&api, "/api/echo", &local).await.status(), 401);
    assert_eq!(issuer.control().counters().introspections, 3);
}

#[tokio::test]
async fn challenge_route_answers_the_requested_challenges() {
    let server = TestServer::start().await;
    let access = access_token(&server, "read").await;
    let response = api_get(
        &server,
        "/api/challenge?status=403&www_authenticate=Bearer%20error%3D%22insufficient_scope%22\
         &www_authenticate=DPoP%20algs%3D%22ES256%22",
        &access,
    )
    .await;
    assert_eq!(response.status(), 403);
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .collect();
    assert_eq!(
        challenges,
        ["Bearer error=\"insufficient_scope\"", "DPoP algs=\"ES256\""]
    );
    let response = api_get(&server, "/api/challenge", "nope").await;
    assert!(challenge(&response).unwrap().contains("invalid_token"));
    let bare = api_get(&server, "/api/challenge", &access).await;
    assert_eq!(bare.status(), 401);
    assert_eq!(server.control().counters().api_unauthorized, 2);
}
