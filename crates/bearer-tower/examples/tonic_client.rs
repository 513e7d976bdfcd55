//! `cargo run -p bearer-tower --features tonic --example tonic_client`: a
//! tonic client under the bearer layer, calling a real tonic server on
//! loopback that checks each token with the test kit's introspection
//! endpoint (RFC 7662).
//!
//! The server's messages are written by hand with `prost`'s derive, and
//! both sides use tonic's generic codec APIs, so no `protoc` is needed.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bearer_oauth2::ClientCredentials;
use bearer_testkit::TestServer;
use bearer_tower::{BearerLayer, BearerService};
use futures::{Stream, StreamExt};
use http::uri::PathAndQuery;
use tokio::sync::Notify;
use tonic::server::{NamedService, ServerStreamingService, UnaryService};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `demo.Orders/Get`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OrderRequest {
    /// The order's id.
    #[prost(string, tag = "1")]
    pub id: String,
}

/// An order, as the server answers it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Order {
    /// The order's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The client the token was issued to, from introspection.
    #[prost(string, tag = "2")]
    pub client_id: String,
}

pub const GET: &str = "/demo.Orders/Get";
pub const WATCH: &str = "/demo.Orders/Watch";

/// The gRPC server: `Get` (unary) and `Watch` (server streaming: one order,
/// then, once `resume` is notified, the token is checked again and a second
/// order or `UNAUTHENTICATED` follows, in the trailers).
#[derive(Clone)]
pub struct Orders {
    introspection: reqwest::Url,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    /// Calls refused with `UNAUTHENTICATED`.
    pub refused: Arc<AtomicU64>,
    /// Calls received.
    pub calls: Arc<AtomicU64>,
    /// Lets `Watch` go on after its first order.
    pub resume: Arc<Notify>,
}

impl Orders {
    /// A server checking tokens with `kit`'s introspection endpoint, as its
    /// default (confidential) client.
    pub fn new(kit: &TestServer) -> Self {
        Orders {
            introspection: kit.introspection_url(),
            client_id: kit.client_id().to_owned(),
            client_secret: kit.client_secret().to_owned(),
            http: bearer_testkit::client_builder().build().expect("a client"),
            refused: Arc::default(),
            calls: Arc::default(),
            resume: Arc::default(),
        }
    }

    /// The client the call's bearer token belongs to, or `UNAUTHENTICATED`.
    async fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> std::result::Result<String, Status> {
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let active = match token {
            Some(token) => self
                .introspect(token)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?,
            None => None,
        };
        active.ok_or_else(|| {
            self.refused.fetch_add(1, Ordering::SeqCst);
            Status::unauthenticated("invalid token")
        })
    }

    async fn introspect(&self, token: &str) -> Result<Option<String>> {
        let answer: serde_json::Value = self
            .http
            .post(self.introspection.clone())
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok((answer["active"] == true)
            .then(|| answer["client_id"].as_str().unwrap_or("").to_owned()))
    }

    /// Serves on an ephemeral loopback port; returns its origin.
    pub async fn serve(self) -> Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(self)
                .serve_with_incoming(incoming),
        );
        Ok(origin)
    }
}

impl NamedService for Orders {
    const NAME: &'static str = "demo.Orders";
}

impl tower::Service<http::Request<tonic::body::Body>> for Orders {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<std::result::Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let orders = self.clone();
        let mut grpc = tonic::server::Grpc::new(ProstCodec::<Order, OrderRequest>::default());
        match request.uri().path() {
            GET => Box::pin(async move { Ok(grpc.unary(Get(orders), request).await) }),
            WATCH => {
                Box::pin(async move { Ok(grpc.server_streaming(Watch(orders), request).await) })
            }
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

struct Get(Orders);

impl UnaryService<OrderRequest> for Get {
    type Response = Order;
    type Future = BoxFuture<std::result::Result<Response<Order>, Status>>;

    fn call(&mut self, request: Request<OrderRequest>) -> Self::Future {
        let orders = self.0.clone();
        Box::pin(async move {
            let client_id = orders.authenticate(request.metadata()).await?;
            Ok(Response::new(Order {
                id: request.into_inner().id,
                client_id,
            }))
        })
    }
}

struct Watch(Orders);

type OrderStream = Pin<Box<dyn Stream<Item = std::result::Result<Order, Status>> + Send>>;

impl ServerStreamingService<OrderRequest> for Watch {
    type Response = Order;
    type ResponseStream = OrderStream;
    type Future = BoxFuture<std::result::Result<Response<OrderStream>, Status>>;

    fn call(&mut self, request: Request<OrderRequest>) -> Self::Future {
        let orders = self.0.clone();
        Box::pin(async move {
            let metadata = request.metadata().clone();
            let client_id = orders.authenticate(&metadata).await?;
            let id = request.into_inner().id;
            let first = Order {
                id: id.clone(),
                client_id,
            };
            // Later in the stream the token is checked again: a refusal
            // now goes in the trailers.
            let later = futures::stream::once(async move {
                orders.resume.notified().await;
                let client_id = orders.authenticate(&metadata).await?;
                Ok(Order { id, client_id })
            });
            let stream: OrderStream = Box::pin(futures::stream::iter([Ok(first)]).chain(later));
            Ok(Response::new(stream))
        })
    }
}

/// A channel to `origin` under the bearer layer.
pub type Authorized = BearerService<Channel>;

/// A tonic client for `origin` whose calls carry a token from `kit`'s
/// client-credentials grant; the layer, for its cache.
pub async fn client(
    kit: &TestServer,
    origin: &str,
) -> Result<(tonic::client::Grpc<Authorized>, BearerLayer)> {
    let source =
        ClientCredentials::new(kit.token_url(), kit.client_id(), kit.client_secret()).scope("read");
    let layer = BearerLayer::builder_for_source(source)
        .allow_origin(origin.parse()?)
        .build()?;
    let channel = Endpoint::from_shared(origin.to_owned())?.connect().await?;
    let authorized = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(channel);
    // `with_origin`: the layer checks absolute URIs against the origins.
    Ok((
        tonic::client::Grpc::with_origin(authorized, origin.parse()?),
        layer,
    ))
}

/// `Get`, once: a refusal is the answer.
pub async fn get_once(
    mut client: tonic::client::Grpc<Authorized>,
    request: Request<OrderRequest>,
) -> std::result::Result<Response<Order>, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    client
        .unary(
            request,
            PathAndQuery::from_static(GET),
            ProstCodec::default(),
        )
        .await
}

/// `Get`, replayed once after `UNAUTHENTICATED` ([`bearer_tower::grpc::unary`]).
pub async fn get(
    client: &tonic::client::Grpc<Authorized>,
    id: &str,
) -> std::result::Result<Order, Status> {
    let request = Request::new(OrderRequest { id: id.to_owned() });
    let answer =
        bearer_tower::grpc::unary(request, |request| get_once(client.clone(), request)).await?;
    Ok(answer.into_inner())
}

/// `Watch`: the stream of orders (never replayed).
pub async fn watch(
    client: &tonic::client::Grpc<Authorized>,
    id: &str,
) -> std::result::Result<tonic::Streaming<Order>, Status> {
    let mut client = client.clone();
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let request = Request::new(OrderRequest { id: id.to_owned() });
    let answer = client
        .server_streaming(
            request,
            PathAndQuery::from_static(WATCH),
            ProstCodec::default(),
        )
        .await?;
    Ok(answer.into_inner())
}

#[allow(dead_code)] // the tests use the items above, not `main`
#[tokio::main]
async fn main() -> Result<()> {
    let kit = TestServer::start().await;
    let orders = Orders::new(&kit);
    let origin = orders.clone().serve().await?;
    let (client, _) = client(&kit, &origin).await?;

    let order = get(&client, "order-7").await?;
    println!("Get: {} for {}", order.id, order.client_id);

    kit.control().revoke_all();
    let order = get(&client, "order-7").await?;
    println!(
        "Get after revoking every token: {} (refused {} time, replayed once with a new token)",
        order.id,
        orders.refused.load(Ordering::SeqCst)
    );
    Ok(())
}
