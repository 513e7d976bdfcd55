//! The tower layer over hyper-util's client, against the test kit's
//! authorization server and protected API on loopback.

#[path = "../examples/hyper_client.rs"]
#[allow(dead_code)]
mod example;
mod support;

use std::convert::Infallible;
use std::time::Duration;

use bearer_testkit::{TestServer, TokenFault};
use bearer_tower::{AuthError, BearerLayer, BearerService, NoAuthRetry, SkipAuth};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};

/// A client whose bodies are streams: read once, never resent.
fn streaming_client(
    layer: BearerLayer,
) -> BearerService<Client<HttpConnector, BoxBody<Bytes, Infallible>>> {
    let hyper = Client::builder(TokioExecutor::new()).build_http();
    tower::ServiceBuilder::new().layer(layer).service(hyper)
}

fn full_client(layer: BearerLayer) -> BearerService<Client<HttpConnector, Full<Bytes>>> {
    let hyper = Client::builder(TokioExecutor::new()).build_http();
    tower::ServiceBuilder::new().layer(layer).service(hyper)
}

async fn send<S, B>(client: &mut S, request: Request<B>) -> (StatusCode, serde_json::Value)
where
    S: Service<
            Request<B>,
            Response = http::Response<bearer_tower::ResponseBody<hyper::body::Incoming>>,
            Error = tower::BoxError,
        >,
{
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn echoed_token(echo: &serde_json::Value) -> Option<&str> {
    echo["headers"]["authorization"]
        .as_str()
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn get(url: impl ToString) -> Request<Full<Bytes>> {
    Request::get(url.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_goes_to_the_allowed_origin_only() {
    let server = TestServer::start().await;
    let mut client = full_client(support::layer(&server, support::WAIT));
    let (status, echo) = send(&mut client, get(server.api_url("/api/echo"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(echoed_token(&echo).is_some());

    let (status, echo) = send(&mut client, get(server.other_origin_url("/api/echo"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echoed_token(&echo), None);

    let mut skipped = get(server.api_url("/api/echo"));
    skipped.extensions_mut().insert(SkipAuth);
    let (status, _) = send(&mut client, skipped).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut own = get(server.api_url("/api/echo"));
    own.headers_mut()
        .insert(http::header::AUTHORIZATION, "Bearer mine".parse().unwrap());
    // The server refuses "mine"; the layer neither replaced it nor resends.
    let before = server.control().counters().api_requests;
    let (status, _) = send(&mut client, own).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.control().counters().api_requests, before + 1);
    assert_eq!(server.control().counters().issued.client_credentials, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_replaced_and_the_request_resent_once() {
    let server = TestServer::start().await;
    let layer = support::layer(&server, support::WAIT);
    let mut client = full_client(layer.clone());
    let (_, first) = send(&mut client, get(server.api_url("/api/echo"))).await;
    server.control().revoke_all();
    let post = Request::post(server.api_url("/api/echo").to_string())
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .unwrap();
    let (status, second) = send(&mut client, post).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(echoed_token(&first), echoed_token(&second));
    let counters = server.control().counters();
    assert_eq!(counters.api_requests, 3);
    assert_eq!(counters.api_unauthorized, 1);
    assert_eq!(counters.issued.client_credentials, 2);
    assert_eq!(layer.cache().stats().invalidations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_not_resent_but_its_token_is_replaced() {
    let server = TestServer::start().await;
    let layer = support::layer(&server, support::WAIT);
    let mut client = streaming_client(layer.clone());
    let body = || Full::new(Bytes::from_static(b"x")).boxed();
    let post = |body| {
        Request::post(server.api_url("/api/echo").to_string())
            .body(body)
            .unwrap()
    };
    let (_, first) = send(&mut client, post(body())).await;
    server.control().revoke_all();
    let (status, _) = send(&mut client, post(body())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.control().counters().api_requests, 2);
    assert_eq!(layer.cache().stats().invalidations, 1);
    let (status, third) = send(&mut client, post(body())).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(echoed_token(&first), echoed_token(&third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_retry_and_insufficient_scope_return_the_401() {
    let server = TestServer::start().await;
    let layer = support::layer(&server, support::WAIT);
    let mut client = full_client(layer.clone());
    send(&mut client, get(server.api_url("/api/echo"))).await;

    server.control().reject_next_api_requests(1);
    let mut once = get(server.api_url("/api/echo"));
    once.extensions_mut().insert(NoAuthRetry);
    let (status, _) = send(&mut client, once).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.control().counters().api_requests, 2);
    // Not resent, but reported: the next request fetches a new token.
    assert_eq!(layer.cache().stats().invalidations, 1);

    let fetches = layer.cache().stats().fetches;
    let mut scoped = server.api_url("/api/challenge");
    scoped
        .query_pairs_mut()
        .append_pair("www_authenticate", "Bearer error=\"insufficient_scope\"");
    let (status, _) = send(&mut client, get(scoped)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // One fetch for the token invalidated above, none for the scope error,
    // which is returned as is: not resent, token kept.
    assert_eq!(layer.cache().stats().fetches, fetches + 1);
    assert_eq!(layer.cache().stats().invalidations, 1);
    assert_eq!(server.control().counters().api_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_means_no_request_and_a_typed_error() {
    let server = TestServer::start().await;
    server.control().fail_next_token_requests(
        1,
        TokenFault::OAuthError {
            status: 401,
            error: "invalid_client".into(),
            description: None,
        },
    );
    let layer = support::layer(&server, Duration::ZERO);
    let mut client = full_client(layer);
    let error = client
        .ready()
        .await
        .unwrap()
        .call(get(server.api_url("/api/echo")))
        .await
        .unwrap_err();
    let auth = error.downcast_ref::<AuthError>().expect("an AuthError");
    assert!(!auth.request_sent());
    assert_eq!(auth.token_error().oauth().unwrap().code, "invalid_client");
    assert!(!format!("{error:?}").contains(server.client_secret()));
    assert_eq!(server.control().counters().api_requests, 0);
}

/// The `hyper_client` example, driven: a revocation recovered by one resend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_example_recovers_from_a_revocation() {
    let server = TestServer::start().await;
    let mut client = example::client(&server).unwrap();
    let url = server.api_url("/api/echo").to_string();
    let (status, first) = example::get_json(&mut client, &url).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    server.control().revoke_all();
    let (status, second) = example::get_json(&mut client, &url).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_ne!(echoed_token(&first), echoed_token(&second));
    let counters = server.control().counters();
    assert_eq!(counters.api_unauthorized, 1);
    assert_eq!(counters.issued.client_credentials, 2);
}
