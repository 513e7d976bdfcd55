//! `cargo run -p bearer-tower --example hyper_client`: hyper-util's client
//! under the bearer layer, against an in-process OAuth server and API.
//!
//! It calls the API, has the server revoke every token, and calls again:
//! the second call is refused with 401, the layer fetches a new token and
//! resends it once, and the caller sees only the answer.

use std::error::Error;

use bearer_oauth2::ClientCredentials;
use bearer_testkit::TestServer;
use bearer_tower::{BearerLayer, BearerService};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// hyper-util's client with the bearer layer around it.
pub type AuthorizedClient = BearerService<Client<HttpConnector, Full<Bytes>>>;

/// A client whose requests to `server`'s origin carry a token from its
/// client-credentials grant.
pub fn client(server: &TestServer) -> Result<AuthorizedClient> {
    let source = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read");
    let layer = BearerLayer::builder_for_source(source)
        .allow_origin(server.base_url())
        .build()?;
    let hyper = Client::builder(TokioExecutor::new()).build_http();
    Ok(tower::ServiceBuilder::new().layer(layer).service(hyper))
}

/// `GET url` through `client`: the status and the JSON body.
pub async fn get_json(
    client: &mut AuthorizedClient,
    url: &str,
) -> Result<(StatusCode, serde_json::Value)> {
    let request = Request::get(url).body(Full::new(Bytes::new()))?;
    let response = client.ready().await?.call(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&body)?))
}

#[allow(dead_code)] // the tests use the functions above, not `main`
#[tokio::main]
async fn main() -> Result<()> {
    let server = TestServer::start().await;
    let mut client = client(&server)?;
    let url = server.api_url("/api/echo").to_string();

    let (status, _) = get_json(&mut client, &url).await?;
    println!("first call: {status}");

    server.control().revoke_all();
    let (status, _) = get_json(&mut client, &url).await?;
    let counters = server.control().counters();
    println!(
        "after revoking every token: {status}, having been refused {} time(s); tokens issued: {}",
        counters.api_unauthorized, counters.issued.client_credentials
    );
    Ok(())
}
