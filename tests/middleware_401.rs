//! The 401 policy: which challenges refresh and resend, how often, which
//! requests may be resent, and the thousand-request storm.

#[path = "middleware_support/mod.rs"]
mod support;

use bearer_testkit::{TestServer, TokenFault};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use reqwest_bearer::{BearerError, NoAuthRetry, RequestBuilderExt};
use reqwest_middleware::{Middleware, Next};
use support::{auth_builder, echo, get_echo, setup, setup_fail_fast};

/// `/api/challenge` answering 401 with these `WWW-Authenticate` fields.
fn challenge_url(server: &TestServer, fields: &[&str]) -> url::Url {
    let mut url = server.api_url("/api/challenge");
    for f in fields {
        url.query_pairs_mut().append_pair("www_authenticate", f);
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_token_refreshes_and_resends_once() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    get_echo(&client, server.api_url("/api/echo")).await;
    control.reject_next_api_requests(1);
    let body = get_echo(&client, server.api_url("/api/echo")).await;
    assert!(support::echoed_token(&body).is_some());
    let counters = control.counters();
    assert_eq!(counters.api_requests, 3);
    assert_eq!(counters.api_unauthorized, 1);
    assert_eq!(counters.issued.client_credentials, 2);
    let stats = auth.cache().stats();
    assert_eq!(stats.fetches, 2);
    assert_eq!(stats.invalidations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_recovers() {
    let (server, _auth, client) = setup().await;
    let control = server.control();
    let first = get_echo(&client, server.api_url("/api/echo")).await;
    control.revoke_all();
    let second = get_echo(&client, server.api_url("/api/echo")).await;
    assert_ne!(
        support::echoed_token(&first),
        support::echoed_token(&second)
    );
    assert_eq!(control.counters().issued.client_credentials, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_401_is_the_response_not_an_error() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    control.reject_next_api_requests(2);
    let response = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(control.counters().api_requests, 2);
    assert_eq!(auth.cache().stats().fetches, 2);
    // The next request uses the token from the retry, which is good.
    get_echo(&client, server.api_url("/api/echo")).await;
    assert_eq!(auth.cache().stats().fetches, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_auth_retries_is_configurable() {
    let server = TestServer::start().await;
    let control = server.control();
    let twice = support::client(auth_builder(&server).max_auth_retries(2).build().unwrap());
    control.reject_next_api_requests(2);
    get_echo(&twice, server.api_url("/api/echo")).await;
    assert_eq!(control.counters().api_requests, 3);

    let never = support::client(auth_builder(&server).max_auth_retries(0).build().unwrap());
    control.reject_next_api_requests(1);
    let response = never.get(server.api_url("/api/echo")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(control.counters().api_requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_and_request_errors_are_returned_as_is() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    for field in [
        r#"Bearer realm="testkit", error="insufficient_scope", scope="admin""#,
        r#"Bearer error="invalid_request", error_description="missing parameter""#,
        // Across fields, with another scheme first and junk in between.
        "Basic realm=\"x\", Bearer error=\"insufficient_scope\"",
    ] {
        let before = control.counters().api_requests;
        let response = client
            .get(challenge_url(&server, &[field]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{field}");
        assert_eq!(control.counters().api_requests - before, 1, "{field}");
    }
    let response = client
        .get(challenge_url(
            &server,
            &[
                "Basic realm=\"x\"",
                "\"junk",
                "bearer ERROR=invalid_request",
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let stats = auth.cache().stats();
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.invalidations, 0);
    assert_eq!(control.counters().api_requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_token_challenge_in_second_field_refreshes() {
    let (server, auth, client) = setup().await;
    let response = client
        .get(challenge_url(
            &server,
            &["Basic realm=\"x\"", "Bearer error=\"invalid_token\""],
        ))
        .send()
        .await
        .unwrap();
    // The route always answers 401: refreshed, resent once, then returned.
    assert_eq!(response.status(), 401);
    assert_eq!(server.control().counters().api_requests, 2);
    assert_eq!(auth.cache().stats().fetches, 2);
    assert_eq!(auth.cache().stats().invalidations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_401_refreshes_by_default_and_not_when_configured() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    let response = client
        .get(challenge_url(&server, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(control.counters().api_requests, 2);
    assert_eq!(auth.cache().stats().fetches, 2);

    for fields in [&[][..], &["Basic realm=\"x\""][..]] {
        let strict = auth_builder(&server)
            .refresh_without_challenge(false)
            .build()
            .unwrap();
        let client = support::client(strict.clone());
        let before = control.counters().api_requests;
        let response = client
            .get(challenge_url(&server, fields))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(control.counters().api_requests - before, 1, "{fields:?}");
        assert_eq!(strict.cache().stats().fetches, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_retry_extension_returns_the_first_401() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    for request in [
        client.get(server.api_url("/api/echo")).no_auth_retry(),
        client
            .get(server.api_url("/api/echo"))
            .with_extension(NoAuthRetry),
    ] {
        control.reject_next_api_requests(1);
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(control.counters().api_requests, 2);
    // Each rejected token was still dropped, so each next request brought a
    // new one.
    assert_eq!(auth.cache().stats().invalidations, 2);
    get_echo(&client, server.api_url("/api/echo")).await;
    assert_eq!(auth.cache().stats().fetches, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_body_is_not_resent_but_its_token_is_replaced() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    control.reject_next_api_requests(1);
    let chunks = futures::stream::iter(["a", "b", "c"])
        .map(|c| Ok::<_, std::io::Error>(c.as_bytes().to_vec()));
    let response = client
        .post(server.api_url("/api/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(control.counters().api_requests, 1);
    assert_eq!(auth.cache().stats().invalidations, 1);

    // A replayable body is resent after a 401.
    control.reject_next_api_requests(1);
    let body = echo(
        client
            .post(server.api_url("/api/echo"))
            .body("abc")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["body"], "abc");
    assert_eq!(control.counters().api_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_only_policy() {
    let server = TestServer::start().await;
    let control = server.control();
    let client = support::client(
        auth_builder(&server)
            .retry_non_idempotent(false)
            .build()
            .unwrap(),
    );

    control.reject_next_api_requests(1);
    let response = client
        .post(server.api_url("/api/echo"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(control.counters().api_requests, 1);

    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::GET,
    ] {
        control.reject_next_api_requests(1);
        let before = control.counters().api_requests;
        let response = client
            .request(method.clone(), server.api_url("/api/echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        assert_eq!(control.counters().api_requests - before, 2, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_requests_are_resent_by_default() {
    let (server, _auth, client) = setup().await;
    server.control().reject_next_api_requests(1);
    let body = echo(
        client
            .post(server.api_url("/api/echo"))
            .body("once")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["method"], "POST");
    assert_eq!(server.control().counters().api_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_refresh_after_401_is_a_typed_error() {
    let (server, _auth, client) = setup_fail_fast().await;
    let control = server.control();
    get_echo(&client, server.api_url("/api/echo")).await;
    control.reject_next_api_requests(1);
    control.fail_next_token_requests(1, TokenFault::ServiceUnavailable { retry_after: None });
    let err = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let bearer = BearerError::find(&err).unwrap();
    assert!(matches!(bearer, BearerError::RefreshFailed(_)));
    assert!(bearer.request_sent());
    assert!(bearer.is_transient());
    assert_eq!(control.counters().api_requests, 2);
}

/// Holds the first `n` requests below the bearer layer until all `n` are
/// there, so every one of them carries the token it took before any 401
/// came back; later requests (the resends) pass at once.
struct HoldFirst {
    held: AtomicUsize,
    n: usize,
    barrier: tokio::sync::Barrier,
}

#[async_trait::async_trait]
impl Middleware for HoldFirst {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if self.held.fetch_add(1, Ordering::SeqCst) < self.n {
            self.barrier.wait().await;
        }
        next.run(req, extensions).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_401s_cause_one_fetch() {
    const N: usize = 1000;
    let server = TestServer::start().await;
    let auth = auth_builder(&server).build().unwrap();
    let control = server.control();
    get_echo(&support::client(auth.clone()), server.api_url("/api/echo")).await;
    let before = control.counters();
    let stats_before = auth.cache().stats();
    control.revoke_all();

    let client =
        reqwest_middleware::ClientBuilder::new(bearer_testkit::client_builder().build().unwrap())
            .with(auth.clone())
            .with(HoldFirst {
                held: AtomicUsize::new(0),
                n: N,
                barrier: tokio::sync::Barrier::new(N),
            })
            .build();
    let url = server.api_url("/api/echo");
    let statuses = futures::future::join_all((0..N).map(|_| {
        let request = client.get(url.clone());
        async move { request.send().await.map(|r| r.status().as_u16()) }
    }))
    .await;

    let ok = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
    assert_eq!(
        ok,
        N,
        "{:?}",
        statuses.iter().find(|s| !matches!(s, Ok(200)))
    );
    let counters = control.counters();
    assert_eq!(
        counters.issued.client_credentials - before.issued.client_credentials,
        1
    );
    assert_eq!(
        counters.api_unauthorized - before.api_unauthorized,
        N as u64
    );
    assert_eq!(counters.api_requests - before.api_requests, 2 * N as u64);
    let stats = auth.cache().stats();
    assert_eq!(stats.fetches - stats_before.fetches, 1);
    assert_eq!(stats.invalidations - stats_before.invalidations, 1);
    assert_eq!(stats.failures, 0);
}

/// gRPC's `UNAUTHENTICATED` (`grpc-status: 16` in the headers of a `200`
/// answer) rejects the token like a 401: it is replaced and the request
/// resent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unauthenticated_replaces_the_token_and_resends() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    control.reject_next_api_requests(1);
    let answer = client
        .post(server.api_url("/api/grpc"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["grpc-status"],
        "0",
        "resent with a fresh token"
    );
    assert_eq!(auth.cache().stats().invalidations, 1);
    let counters = control.counters();
    assert_eq!(counters.issued.client_credentials, 2);
    assert_eq!(counters.api_requests, 2);
}

/// Only a gRPC call's answer speaks gRPC: a `grpc-status: 16` in the
/// answer to any other request says nothing about the token, which is
/// kept, and the answer is returned as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_in_the_answer_to_a_plain_request_is_not_a_rejection() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    // Both answers carry `grpc-status: 16`.
    control.reject_next_api_requests(2);
    for content_type in [None, Some("application/json")] {
        let mut request = client.post(server.api_url("/api/grpc")).body("{}");
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(
            answer.headers()["grpc-status"],
            "16",
            "{content_type:?}: returned as it is"
        );
    }
    assert_eq!(auth.cache().stats().invalidations, 0);
    let counters = control.counters();
    assert_eq!(counters.issued.client_credentials, 1, "the token was kept");
    assert_eq!(counters.api_requests, 2, "neither was resent");
}
