//! Shared set-up for the middleware tests: a testkit server, a
//! client-credentials source pointed at it, and a client with the middleware.
#![allow(dead_code)]

use bearer_testkit::TestServer;
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{BearerAuth, BearerAuthBuilder, TokenCache};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// The default client's credentials at `server`, scope `read`, with no
/// retries inside the source so the server's counters are exact.
pub fn source(server: &TestServer) -> ClientCredentials {
    ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read")
    .retries(0)
}

pub fn cache(server: &TestServer) -> TokenCache {
    TokenCache::builder(source(server)).build()
}

/// A builder allowing the server's origin.
pub fn auth_builder(server: &TestServer) -> BearerAuthBuilder {
    BearerAuth::builder(cache(server)).allow_origin(server.base_url())
}

/// The `reqwest::Client` under the layer, as the docs ask for it: the
/// layer's redirect policy, and no proxy from the environment.
pub fn http() -> reqwest::Client {
    bearer_testkit::client_builder()
        .redirect(BearerAuth::redirect_policy())
        .build()
        .expect("a client")
}

pub fn client(auth: BearerAuth) -> ClientWithMiddleware {
    ClientBuilder::new(http()).with(auth).build()
}

/// `path` on `server`'s API with `to` as its `?to=` parameter.
pub fn with_to(server: &TestServer, path: &str, to: &str) -> url::Url {
    let mut url = server.api_url(path);
    url.query_pairs_mut().append_pair("to", to);
    url
}

/// Like [`setup`], with a cache whose callers never wait for a next
/// attempt (`max_wait` zero): the error of one failed fetch reaches them.
pub async fn setup_fail_fast() -> (TestServer, BearerAuth, ClientWithMiddleware) {
    let server = TestServer::start().await;
    let cache = TokenCache::builder(source(&server))
        .max_wait(std::time::Duration::ZERO)
        .build();
    let auth = BearerAuth::builder(cache)
        .allow_origin(server.base_url())
        .build()
        .expect("valid configuration");
    let client = client(auth.clone());
    (server, auth, client)
}

/// A server, the default middleware for it, and a client with it.
pub async fn setup() -> (TestServer, BearerAuth, ClientWithMiddleware) {
    let server = TestServer::start().await;
    let auth = auth_builder(&server).build().expect("valid configuration");
    let client = client(auth.clone());
    (server, auth, client)
}

/// The bearer token the echo endpoint saw, from its JSON answer.
pub fn echoed_token(echo: &serde_json::Value) -> Option<String> {
    echo["headers"]["authorization"]
        .as_str()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

pub async fn echo(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(
        response.status(),
        200,
        "expected a 200 from the echo endpoint"
    );
    response.json().await.expect("echo answers JSON")
}

/// GET url and return the echo endpoint's JSON, asserting a 200.
pub async fn get_echo(client: &ClientWithMiddleware, url: url::Url) -> serde_json::Value {
    echo(client.get(url).send().await.unwrap()).await
}
