//! gRPC with tonic (feature `tonic`).
//!
//! Put [`BearerLayer`](crate::BearerLayer) around a tonic `Channel` and build
//! the client **with its origin** (`with_origin`, on generated clients and
//! on `tonic::client::Grpc`): a client built with `new` sends relative URIs,
//! which match no allowed origin and so get no token.
//!
//! - The token goes in the `authorization` metadata.
//! - `UNAUTHENTICATED` in the response headers (a trailers-only answer, as
//!   tonic and grpc-go send for a refused call) reports the token sent, so
//!   the next call gets a new one; in the trailers, likewise.
//! - The layer never resends a gRPC call itself: tonic's request body is a
//!   stream it cannot copy, so **streaming calls are never replayed**. Wrap a
//!   **unary** call in [`unary`], which replays it once after
//!   `UNAUTHENTICATED`: the replay goes through the layer again and carries
//!   a fresh token.
//!
//! ```no_run
//! use bearer_cache::StaticSource;
//! use bearer_tower::BearerLayer;
//! use tonic::transport::Endpoint;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let origin: http::Uri = "https://grpc.example.com".parse()?;
//! let layer = BearerLayer::builder_for_source(StaticSource::new("t0k3n"))
//!     .allow_origin("https://grpc.example.com".parse()?)
//!     .build()?;
//! let channel = Endpoint::from(origin.clone()).connect().await?;
//! let authorized = tower::ServiceBuilder::new().layer(layer).service(channel);
//! let client = tonic::client::Grpc::with_origin(authorized, origin);
//! # Ok(()) }
//! ```

use std::future::Future;

use crate::body::ReplayBody;

/// tonic's request body is a stream, read once: never resent by the layer.
impl ReplayBody for tonic::body::Body {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

/// Makes a unary call, and if the server answers `UNAUTHENTICATED` makes
/// it once more with a copy of the request (message, metadata and
/// extensions): under [`BearerLayer`](crate::BearerLayer) the first answer
/// reported the token, so the replay carries a fresh one. Any other answer,
/// and the replay's, is returned as it is.
///
/// ```no_run
/// # async fn run(mut client: tonic::client::Grpc<tonic::transport::Channel>) -> Result<(), tonic::Status> {
/// # let (path, codec) = (http::uri::PathAndQuery::from_static("/demo.Orders/Get"), tonic_prost::ProstCodec::<String, String>::default());
/// let answer: tonic::Response<String> = bearer_tower::grpc::unary(
///     tonic::Request::new(String::from("order-7")),
///     |request| {
///         let mut client = client.clone();
///         let (path, codec) = (path.clone(), codec.clone());
///         async move {
///             client.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
///             client.unary(request, path, codec).await
///         }
///     },
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub async fn unary<M, R, F, Fut>(
    request: tonic::Request<M>,
    mut call: F,
) -> Result<tonic::Response<R>, tonic::Status>
where
    M: Clone,
    F: FnMut(tonic::Request<M>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let (metadata, extensions, message) = request.into_parts();
    let copy = tonic::Request::from_parts(metadata.clone(), extensions.clone(), message.clone());
    match call(copy).await {
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            tracing::debug!(target: "bearer_tower", "unary call refused with UNAUTHENTICATED; replaying once");
            call(tonic::Request::from_parts(metadata, extensions, message)).await
        }
        answer => answer,
    }
}
