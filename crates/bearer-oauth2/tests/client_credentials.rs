//! The client credentials grant against the test server, over real HTTP.

mod common;

use std::time::Duration;

use bearer_cache::{Expiry, ManualClock, TokenCache, TokenError, TokenKey};
use bearer_oauth2::{ClientAuth, ClientCredentials};
use bearer_testkit::{ClientAuthMethod, Endpoint, TestServer};
use common::{assert_hidden, fast_retries, fetch};

fn source(server: &TestServer) -> ClientCredentials {
    ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .retry_backoff(fast_retries())
}

#[tokio::test]
async fn fetches_through_the_cache_and_refetches_after_expiry() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(60))
        .start()
        .await;
    let cache = TokenCache::builder(source(&server))
        .clock(clock.clone())
        .build();
    let key = TokenKey::default();

    let first = cache.get(&key).await.unwrap();
    assert_eq!(first.token().expiry(), Expiry::In(Duration::from_secs(60)));
    let again = cache.get(&key).await.unwrap();
    assert!(again.same_fetch(&first));
    assert_eq!(server.control().counters().issued.client_credentials, 1);

    clock.advance(Duration::from_secs(61));
    let next = cache.get(&key).await.unwrap();
    assert_ne!(next.access_token(), first.access_token());
    assert_eq!(server.control().counters().issued.client_credentials, 2);
    // The server accepts what we got.
    let echo = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .get(server.api_url("/api/echo"))
        .header("authorization", next.expose_authorization_value())
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
}

#[tokio::test]
async fn basic_auth_form_encodes_id_and_secret() {
    let id = "svc:1 a%b+c/é";
    let secret = "s:e c%r+e/t é";
    let server = TestServer::builder().client(id, secret).start().await;
    let source =
        ClientCredentials::new(server.token_url(), id, secret).auth_method(ClientAuth::Basic);
    fetch(&source, &TokenKey::default(), None).await.unwrap();

    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.client_auth, ClientAuthMethod::ClientSecretBasic);
    assert_eq!(request.client_id.as_deref(), Some(id));
    assert_eq!(request.param("client_secret"), None);
    assert_eq!(request.grant_type(), Some("client_credentials"));
    let headers = server.control().last_headers(Endpoint::Token).unwrap();
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

#[tokio::test]
async fn post_auth_puts_credentials_in_the_form() {
    let server = TestServer::start().await;
    let source = source(&server).auth_method(ClientAuth::Post);
    fetch(&source, &TokenKey::default(), None).await.unwrap();
    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.client_auth, ClientAuthMethod::ClientSecretPost);
    assert_eq!(request.param("client_id"), Some(server.client_id()));
    assert_eq!(request.param("client_secret"), Some(server.client_secret()));
    assert!(
        server
            .control()
            .last_headers(Endpoint::Token)
            .unwrap()
            .get("authorization")
            .is_none()
    );
}

#[tokio::test]
async fn key_parameters_override_defaults_and_are_sent_every_time() {
    let server = TestServer::start().await;
    let source = source(&server)
        .scopes(["read", "write"])
        .audience("https://default.example")
        .param("tenant", "t1");

    fetch(&source, &TokenKey::default(), None).await.unwrap();
    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.scope(), Some("read write"));
    assert_eq!(request.audience(), ["https://default.example"]);
    assert_eq!(request.param("tenant"), Some("t1"));

    let key = TokenKey::new()
        .scope("admin")
        .audience("https://orders.example")
        .resource("https://r1.example/")
        .resource("https://r2.example/")
        .param("tenant", "t2");
    let token = fetch(&source, &key, None).await.unwrap();
    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.scope(), Some("admin"));
    assert_eq!(request.audience(), ["https://orders.example"]);
    assert_eq!(
        request.resource(),
        ["https://r1.example/", "https://r2.example/"]
    );
    assert_eq!(request.param("tenant"), Some("t2"));
    assert_eq!(token.scopes().unwrap(), ["admin"]);

    // Through a cache, two keys are two tokens, each re-requested as it was.
    let cache = TokenCache::builder(source).build();
    let a = cache.get(&TokenKey::new().scope("read")).await.unwrap();
    let b = cache.get(&TokenKey::new().scope("write")).await.unwrap();
    assert_ne!(a.access_token(), b.access_token());
    assert_eq!(
        server.control().last_token_request().unwrap().scope(),
        Some("write")
    );
}

#[tokio::test]
async fn a_key_cannot_override_protocol_parameters() {
    let server = TestServer::start().await;
    let key = TokenKey::new().param("grant_type", "password");
    let err = fetch(&source(&server), &key, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Source {
                transient: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.control().counters().token_requests, 0);
}

#[tokio::test]
async fn wrong_secret_is_a_permanent_oauth_error_sent_once() {
    let server = TestServer::start().await;
    let wrong = "not-the-secret-9f8e7d";
    let source = ClientCredentials::new(server.token_url(), server.client_id(), wrong)
        .retry_backoff(fast_retries());
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    let oauth = err.oauth().expect("an OAuth error");
    assert_eq!((oauth.code.as_str(), oauth.status), ("invalid_client", 401));
    assert!(oauth.description.is_some() && oauth.uri.is_some());
    assert!(!err.is_transient());
    assert_eq!(server.control().counters().token_requests, 1);
    assert_hidden(wrong, &format!("{err} {err:?} {source:?}"));
}

#[tokio::test]
async fn an_invalid_scope_is_permanent() {
    let server = TestServer::start().await;
    let err = fetch(&source(&server), &TokenKey::new().scope("root"), None)
        .await
        .unwrap_err();
    assert_eq!(err.oauth().unwrap().code, "invalid_scope");
    assert_eq!(server.control().counters().token_requests, 1);
}

#[tokio::test]
async fn unreachable_endpoint_is_a_transient_transport_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    drop(listener);
    let source =
        ClientCredentials::new(url.parse().unwrap(), "c", "s").retry_backoff(fast_retries());
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::Transport(_)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_secrecy_secret_string_is_accepted_as_the_client_secret() {
    use bearer_cache::secrecy::SecretString;

    let server = TestServer::start().await;
    let secret = SecretString::from(server.client_secret().to_owned());
    let source = ClientCredentials::new(server.token_url(), server.client_id(), secret);
    assert_hidden(server.client_secret(), &format!("{source:?}"));
    fetch(&source, &TokenKey::default(), None).await.unwrap();
    assert_eq!(server.control().counters().issued.client_credentials, 1);
}
