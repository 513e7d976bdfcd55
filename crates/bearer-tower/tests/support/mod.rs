//! Set-up shared by the layer's tests: a client-credentials layer for the
//! test kit's origin.
#![allow(dead_code)]

use std::time::Duration;

use bearer_cache::TokenCache;
use bearer_oauth2::ClientCredentials;
use bearer_testkit::TestServer;
use bearer_tower::BearerLayer;

/// The kit's default client, scope `read`, with no retries inside the
/// source so the kit's counters are exact.
pub fn source(server: &TestServer) -> ClientCredentials {
    ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read")
    .retries(0)
}

/// A layer for `server`'s origin whose callers wait up to `max_wait` for a
/// fetch after a failed one.
pub fn layer(server: &TestServer, max_wait: Duration) -> BearerLayer {
    BearerLayer::builder(
        TokenCache::builder(source(server))
            .max_wait(max_wait)
            .build(),
    )
    .allow_origin(server.base_url())
    .build()
    .expect("valid configuration")
}

/// The cache's default wait.
pub const WAIT: Duration = Duration::from_secs(10);
