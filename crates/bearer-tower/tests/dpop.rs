//! DPoP through the tower layer (hyper), against the test kit's strict
//! checks: the layer needs no key of its own, the token brings it.

mod support;

use bearer_cache::TokenCache;
use bearer_oauth2::DpopKey;
use bearer_testkit::{DpopFault, Endpoint, TestServer};
use bearer_tower::{BearerLayer, BearerService};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};

fn client(server: &TestServer) -> BearerService<Client<HttpConnector, Full<Bytes>>> {
    let source = support::source(server).dpop(DpopKey::generate().unwrap());
    let layer = BearerLayer::builder(TokenCache::builder(source).build())
        .allow_origin(server.base_url())
        .build()
        .unwrap();
    let hyper = Client::builder(TokioExecutor::new()).build_http();
    tower::ServiceBuilder::new().layer(layer).service(hyper)
}

async fn get(
    client: &mut BearerService<Client<HttpConnector, Full<Bytes>>>,
    server: &TestServer,
) -> StatusCode {
    let request = Request::get(server.api_url("/api/echo?q=1").to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    client
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_tokens_nonces_and_refused_proofs_through_the_layer() {
    let server = TestServer::start().await;
    let mut client = client(&server);
    assert_eq!(get(&mut client, &server).await, StatusCode::OK);
    let sent = server.control().last_headers(Endpoint::Api).unwrap();
    assert!(sent["authorization"].to_str().unwrap().starts_with("DPoP "));
    assert!(sent.contains_key("dpop"));

    server.control().require_dpop_nonce(true);
    server.control().rotate_dpop_nonce();
    assert_eq!(get(&mut client, &server).await, StatusCode::OK);
    server
        .control()
        .fail_next_dpop_proofs(1, DpopFault::WrongAth);
    assert_eq!(get(&mut client, &server).await, StatusCode::OK);
    let counts = server.control().dpop_counts();
    assert_eq!((counts.nonce_challenges, counts.proofs_refused), (1, 1));
    assert_eq!(server.control().counters().token_requests, 1);

    server.control().revoke_all();
    assert_eq!(get(&mut client, &server).await, StatusCode::OK);
    assert_eq!(server.control().counters().token_requests, 2);
    assert_eq!(server.control().dpop_counts().bound_tokens_issued, 2);
}
