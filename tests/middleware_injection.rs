//! Where tokens go and where they don't: origins, schemes, redirects,
//! pre-set headers, per-request extensions, and no token → no request.

#[path = "middleware_support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use bearer_testkit::{Endpoint, TestServer, TokenFault};
use http::header::AUTHORIZATION;
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{
    BearerAuth, BearerError, BuildError, RedirectRefused, RequestBuilderExt, SkipAuth, TokenCache,
    TokenKey,
};
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use support::{auth_builder, echo, echoed_token, get_echo, setup, setup_fail_fast, with_to};
use url::Url;

fn url(s: &str) -> Url {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origin_gets_the_token_and_one_fetch_serves_many() {
    let (server, auth, client) = setup().await;
    for _ in 0..3 {
        let body = get_echo(&client, server.api_url("/api/echo")).await;
        assert!(echoed_token(&body).is_some());
        assert_eq!(body["token"]["scope"], "read");
    }
    let counters = server.control().counters();
    assert_eq!(counters.issued.client_credentials, 1);
    assert_eq!(counters.api_unauthorized, 0);
    assert_eq!(auth.cache().stats().fetches, 1);
}

/// Records, below the bearer middleware, whether the request left with a
/// sensitive `Authorization` header.
#[derive(Default, Clone)]
struct SeenBelow(Arc<Mutex<Vec<Option<bool>>>>);

#[async_trait::async_trait]
impl Middleware for SeenBelow {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let sensitive = req.headers().get(AUTHORIZATION).map(|v| v.is_sensitive());
        self.0.lock().unwrap().push(sensitive);
        next.run(req, extensions).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_is_marked_sensitive() {
    let server = TestServer::start().await;
    let seen = SeenBelow::default();
    let client = ClientBuilder::new(bearer_testkit::client_builder().build().unwrap())
        .with(auth_builder(&server).build().unwrap())
        .with(seen.clone())
        .build();
    let response = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(*seen.0.lock().unwrap(), vec![Some(true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_pass_through_untouched() {
    let (server, auth, client) = setup().await;
    let control = server.control();

    // The other origin (another port) gets nothing.
    let body = get_echo(&client, server.other_origin_url("/x")).await;
    assert_eq!(echoed_token(&body), None);
    let headers = control.last_headers(Endpoint::OtherOrigin).unwrap();
    assert!(!headers.contains_key(AUTHORIZATION));

    // Same server, but `localhost` is another host than 127.0.0.1: another
    // origin. Its 401 passes through too: no fetch, no retry.
    let mut url = server.api_url("/api/echo");
    url.set_host(Some("localhost")).unwrap();
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        !control
            .last_headers(Endpoint::Api)
            .unwrap()
            .contains_key(AUTHORIZATION)
    );
    assert_eq!(control.counters().api_requests, 1);
    assert_eq!(auth.cache().stats().fetches, 0);
    assert_eq!(control.counters().token_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_is_part_of_the_origin() {
    let server = TestServer::start().await;
    // Allow only https on the server's host and port: its plain-http URL
    // is another origin and must not get the token.
    let mut https = server.base_url();
    https.set_scheme("https").unwrap();
    let auth = BearerAuth::builder(support::cache(&server))
        .allow_origin(https)
        .build()
        .unwrap();
    let client = support::client(auth.clone());
    let response = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        !server
            .control()
            .last_headers(Endpoint::Api)
            .unwrap()
            .contains_key(AUTHORIZATION)
    );
    assert_eq!(auth.cache().stats().fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_to_loopback_unless_allowed() {
    let server = TestServer::start().await;
    let cache = support::cache(&server);
    let refused = BearerAuth::builder(cache.clone())
        .allow_origin(url("http://api.example.com"))
        .build()
        .unwrap_err();
    assert_eq!(
        refused,
        BuildError::PlainHttp {
            origin: "http://api.example.com".into()
        }
    );
    for loopback in [
        "http://127.0.0.1:1",
        "http://127.1.2.3",
        "http://[::1]:8080",
        "http://localhost:3000",
    ] {
        BearerAuth::new(cache.clone(), url(loopback)).unwrap_or_else(|e| panic!("{loopback}: {e}"));
    }
    BearerAuth::builder(cache.clone())
        .allow_origin(url("http://api.example.com"))
        .allow_plain_http(true)
        .build()
        .unwrap();
    // What is no URL at all is refused by the parse, with a typed error.
    for bad in ["", "api.example.com", "https://", "::not a url"] {
        assert!(bad.parse::<Url>().is_err(), "{bad:?}");
    }
    // What parses but cannot hold a token is refused by the build.
    for bad in ["ftp://api.example.com", "mailto:ops@example.com", "data:,x"] {
        assert!(
            matches!(
                BearerAuth::new(cache.clone(), url(bad)),
                Err(BuildError::InvalidOrigin { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        BearerAuth::builder(cache).build().unwrap_err(),
        BuildError::NoAllowedOrigin
    );
}

/// A wildcard parses as a URL host but never equals a request's: refused
/// at build time, naming the form that works, instead of 401s later.
#[test]
fn wildcard_origins_are_refused_with_the_supported_form() {
    let cache = TokenCache::builder(reqwest_bearer::StaticSource::new("t")).build();
    // A bare `*` is not even a URL: `parse` refuses it.
    assert!("*".parse::<Url>().is_err());
    for pattern in ["https://*.example.com", "https://api-*.example.com"] {
        let err = BearerAuth::builder(cache.clone())
            .allow_origin(url("https://api.example.com"))
            .allow_origin(url(pattern))
            .build()
            .unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidOrigin { .. }),
            "{pattern}: {err:?}"
        );
        assert!(
            err.to_string().contains("scheme://host[:port]"),
            "{pattern}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_redirect_drops_the_token() {
    let (server, _auth, client) = setup().await;
    let control = server.control();
    let response = client
        .get(server.api_url("/api/redirect-cross?to=/landing"))
        .send()
        .await
        .unwrap();
    // The API accepted the token (else no redirect), then reqwest followed
    // the 302 to the other origin without it.
    assert_eq!(response.url().port(), server.other_origin_url("/").port());
    let body = echo(response).await;
    assert_eq!(body["path"], "/landing");
    assert_eq!(echoed_token(&body), None);
    let counters = control.counters();
    assert_eq!(counters.other_origin_requests, 1);
    assert_eq!(counters.api_unauthorized, 0);
    assert!(
        control
            .last_headers(Endpoint::Api)
            .unwrap()
            .contains_key(AUTHORIZATION)
    );
    assert!(
        !control
            .last_headers(Endpoint::OtherOrigin)
            .unwrap()
            .contains_key(AUTHORIZATION)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_origin_redirect_keeps_the_token() {
    let (server, auth, client) = setup().await;
    let response = client
        .get(server.api_url("/api/redirect?to=/api/echo/after"))
        .send()
        .await
        .unwrap();
    let body = echo(response).await;
    assert_eq!(body["path"], "/api/echo/after");
    assert!(echoed_token(&body).is_some());
    let counters = server.control().counters();
    assert_eq!(counters.api_requests, 2);
    assert_eq!(counters.api_unauthorized, 0);
    assert_eq!(auth.cache().stats().fetches, 1);
}

/// `A → B → A`: reqwest drops the token at the hop to `B` and does not
/// restore it on the way back, so `A`'s 401 answers a request without our
/// token. It must neither cost a token fetch nor be resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_through_another_origin_costs_no_token() {
    let server = TestServer::start().await;
    let bounce = with_to(
        &server,
        "/api/redirect-cross",
        "/redirect-back?to=/api/echo",
    );
    // With the layer's redirect policy (which records the hops), and with
    // reqwest's default one (the changed final URL is enough not to blame
    // the token).
    let default_policy = bearer_testkit::client_builder().build().unwrap();
    for http in [support::http(), default_policy] {
        let auth = auth_builder(&server).build().unwrap();
        let client = ClientBuilder::new(http).with(auth.clone()).build();
        for _ in 0..10 {
            let response = client.get(bounce.clone()).send().await.unwrap();
            assert_eq!(response.status(), 401);
            assert_eq!(response.url().path(), "/api/echo");
        }
        assert_eq!(auth.cache().stats().fetches, 1);
    }
    let counters = server.control().counters();
    assert_eq!(counters.issued.client_credentials, 2);
    // Each request reached A twice (the token's hop, the bounce's end): no resend.
    assert_eq!(counters.api_requests, 40);
}

/// A redirect within the origin keeps the token, so its 401 is the
/// token's: replaced and resent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_after_a_same_origin_redirect_still_counts() {
    let (server, auth, client) = setup().await;
    let challenge =
        "/api/challenge?status=401&www_authenticate=Bearer%20error%3D%22invalid_token%22";
    let response = client
        .get(with_to(&server, "/api/redirect", challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.url().path(), "/api/challenge");
    // The challenge route authenticated the token before answering 401, so
    // the final hop carried it; the 401 replaced it and the request went again.
    assert_eq!(auth.cache().stats().fetches, 2);
    assert_eq!(server.control().counters().api_requests, 4);
}

/// reqwest restores `Authorization` on a hop within an origin even after the
/// chain left the token's origin: `A → B → B` would hand `B` the token. The
/// layer's redirect policy refuses that hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hop_on_another_origin_never_gets_the_token() {
    let (server, _auth, client) = setup().await;
    let control = server.control();
    let err = client
        .get(with_to(
            &server,
            "/api/redirect-cross",
            "/redirect?to=/landed",
        ))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Reqwest(err) = err else {
        panic!("expected a reqwest error, got {err:?}");
    };
    assert!(err.is_redirect());
    let refused = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<RedirectRefused>())
        .expect("the policy's reason");
    assert!(matches!(
        refused,
        RedirectRefused::TokenToOtherOrigin { .. }
    ));
    // B saw its first hop, without the token, and never a second one.
    assert_eq!(control.counters().other_origin_requests, 1);
    assert!(
        !control
            .last_headers(Endpoint::OtherOrigin)
            .unwrap()
            .contains_key(AUTHORIZATION)
    );
    // A request without our token follows the same chain as reqwest would.
    let body = get_echo(&client, server.other_origin_url("/redirect?to=/landed")).await;
    assert_eq!(body["path"], "/landed");

    // Why the policy is needed: under reqwest's default policy the token
    // reaches the other origin on that second hop. (Should reqwest change
    // this, this check fails and the docs saying so are to be updated.)
    let default_policy = bearer_testkit::client_builder().build().unwrap();
    let client = ClientBuilder::new(default_policy)
        .with(auth_builder(&server).build().unwrap())
        .build();
    let url = with_to(&server, "/api/redirect-cross", "/redirect?to=/landed");
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.url().path(), "/landed");
    assert!(
        control
            .last_headers(Endpoint::OtherOrigin)
            .unwrap()
            .contains_key(AUTHORIZATION),
        "reqwest's default policy no longer restores the token on a second hop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preset_authorization_is_left_alone_unless_configured() {
    let (server, auth, client) = setup().await;
    let response = client
        .get(server.api_url("/api/echo"))
        .bearer_auth("caller-chosen")
        .send()
        .await
        .unwrap();
    // The caller's (unknown) token went as it was: 401, and no refresh or
    // retry on the caller's behalf.
    assert_eq!(response.status(), 401);
    assert_eq!(auth.cache().stats().fetches, 0);
    assert_eq!(server.control().counters().api_requests, 1);

    let replacing = support::client(
        auth_builder(&server)
            .replace_existing_authorization(true)
            .build()
            .unwrap(),
    );
    let body = echo(
        replacing
            .get(server.api_url("/api/echo"))
            .bearer_auth("caller-chosen")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(echoed_token(&body).as_deref(), Some("caller-chosen"));
    assert!(echoed_token(&body).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_auth_sends_no_token() {
    let (server, auth, client) = setup().await;
    for request in [
        client.get(server.api_url("/api/echo")).skip_auth(),
        client
            .get(server.api_url("/api/echo"))
            .with_extension(SkipAuth),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    assert!(
        !server
            .control()
            .last_headers(Endpoint::Api)
            .unwrap()
            .contains_key(AUTHORIZATION)
    );
    assert_eq!(auth.cache().stats().fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_key_extension_picks_the_token() {
    let (server, auth, client) = setup().await;
    let control = server.control();
    let admin = echo(
        client
            .get(server.api_url("/api/scoped/admin"))
            .token_key(TokenKey::new().scope("admin"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(admin["scope"], "admin");
    assert_eq!(control.last_token_request().unwrap().scope(), Some("admin"));

    // The default key still gets the source's default scope, and its token
    // is refused on the admin route (403, passed through, no retry).
    let response = client
        .get(server.api_url("/api/scoped/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(control.last_token_request().unwrap().scope(), Some("read"));
    assert_eq!(auth.cache().stats().fetches, 2);
    assert_eq!(control.counters().api_requests, 2);

    // A configured default key applies to requests without the extension.
    let admin_default = support::client(
        auth_builder(&server)
            .default_key(TokenKey::new().scope("admin"))
            .build()
            .unwrap(),
    );
    let body = get_echo(&admin_default, server.api_url("/api/scoped/admin")).await;
    assert_eq!(body["scope"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_client_means_request_not_sent() {
    let server = TestServer::start().await;
    let wrong =
        ClientCredentials::new(server.token_url(), server.client_id(), "wrong-secret").retries(0);
    let auth = BearerAuth::new(TokenCache::builder(wrong).build(), server.base_url()).unwrap();
    let client = support::client(auth);
    let err = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let bearer = BearerError::find(&err).expect("a BearerError inside");
    assert!(matches!(bearer, BearerError::NoToken(_)));
    assert!(!bearer.is_transient());
    assert!(!bearer.request_sent());
    assert_eq!(
        bearer.oauth().map(|e| e.code.as_str()),
        Some("invalid_client")
    );
    assert!(!err.to_string().contains("wrong-secret"));
    assert!(!format!("{err:?}").contains("wrong-secret"));
    let counters = server.control().counters();
    assert_eq!(counters.api_requests, 0);
    assert_eq!(counters.token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_token_endpoint_means_transient_error_and_no_request() {
    let (server, _auth, client) = setup_fail_fast().await;
    server
        .control()
        .fail_next_token_requests(1, TokenFault::ServiceUnavailable { retry_after: None });
    let err = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let bearer = BearerError::find(&err).expect("a BearerError inside");
    assert!(bearer.is_transient());
    assert_eq!(bearer.oauth(), None);
    assert!(err.to_string().contains("request was not sent"), "{err}");
    assert_eq!(server.control().counters().api_requests, 0);
}
