//! gRPC through the layer: a real tonic server on loopback
//! (`examples/tonic_client.rs`) that checks every token with the test
//! kit's introspection endpoint.
#![cfg(feature = "tonic")]

#[path = "../examples/tonic_client.rs"]
#[allow(dead_code)]
mod example;

use std::sync::atomic::Ordering;

use bearer_testkit::TestServer;
use example::Orders;

fn order_request(id: &str) -> tonic::Request<example::OrderRequest> {
    tonic::Request::new(example::OrderRequest { id: id.into() })
}

async fn setup() -> (TestServer, Orders, String) {
    let kit = TestServer::start().await;
    let orders = Orders::new(&kit);
    let origin = orders.clone().serve().await.unwrap();
    (kit, orders, origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_recovered_by_one_unary_replay() {
    let (kit, orders, origin) = setup().await;
    let (client, layer) = example::client(&kit, &origin).await.unwrap();
    let order = example::get(&client, "order-1").await.unwrap();
    assert_eq!(order.id, "order-1");
    assert_eq!(order.client_id, kit.client_id());

    kit.control().revoke_all();
    let order = example::get(&client, "order-2").await.unwrap();
    assert_eq!(order.id, "order-2");
    assert_eq!(orders.refused.load(Ordering::SeqCst), 1);
    assert_eq!(orders.calls.load(Ordering::SeqCst), 3);
    assert_eq!(kit.control().counters().issued.client_credentials, 2);
    assert_eq!(layer.cache().stats().invalidations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_streaming_call_is_not_replayed_but_the_next_call_recovers() {
    let (kit, orders, origin) = setup().await;
    let (client, layer) = example::client(&kit, &origin).await.unwrap();
    example::get(&client, "order-1").await.unwrap();
    kit.control().revoke_all();

    let refused = example::watch(&client, "order-1").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(orders.calls.load(Ordering::SeqCst), 2);
    // Refused in the headers: the token is reported at once.
    assert_eq!(layer.cache().stats().invalidations, 1);

    let mut stream = example::watch(&client, "order-1").await.unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().id, "order-1");
    assert_eq!(orders.refused.load(Ordering::SeqCst), 1);
    assert_eq!(kit.control().counters().issued.client_credentials, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_in_the_trailers_reports_the_token() {
    let (kit, orders, origin) = setup().await;
    let (client, layer) = example::client(&kit, &origin).await.unwrap();
    let mut stream = example::watch(&client, "order-1").await.unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().id, "order-1");

    kit.control().revoke_all();
    orders.resume.notify_one();
    let refused = stream.message().await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(layer.cache().stats().invalidations, 1);

    // The next call fetches a new token on its first attempt.
    let order = example::get_once(client.clone(), order_request("order-2"))
        .await
        .unwrap();
    assert_eq!(order.into_inner().id, "order-2");
    assert_eq!(orders.refused.load(Ordering::SeqCst), 1);
    assert_eq!(kit.control().counters().issued.client_credentials, 2);
}

/// A client built with `new` sends relative URIs: no origin matches, no
/// token goes (the documented reason to use `with_origin`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_its_origin_sends_no_token() {
    let (kit, orders, origin) = setup().await;
    let layer =
        bearer_tower::BearerLayer::builder_for_source(bearer_cache::StaticSource::new("t0k3n"))
            .allow_origin(origin.parse().unwrap())
            .build()
            .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(origin)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let relative = tonic::client::Grpc::new(
        tower::ServiceBuilder::new()
            .layer(layer.clone())
            .service(channel),
    );
    let refused = example::get_once(relative, order_request("order-1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(orders.refused.load(Ordering::SeqCst), 1);
    assert_eq!(layer.cache().stats().fetches, 0);
    drop(kit);
}
