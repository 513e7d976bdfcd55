//! DPoP end to end through the middleware, against the test kit's strict
//! checks: a bound token on every request with a fresh proof, nonces from
//! the token endpoint and the API answered by one resend, refused proofs
//! resent with a fresh one (the token kept), refused tokens replaced.

use bearer_testkit::{DpopFault, Endpoint, TestServer};
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{BearerAuth, DpopKey, TokenCache, TokenError};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

fn source(server: &TestServer, key: &DpopKey) -> ClientCredentials {
    ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read")
    .retries(0)
    .dpop(key.clone())
}

fn client(server: &TestServer, source: ClientCredentials) -> (ClientWithMiddleware, TokenCache) {
    let cache = TokenCache::builder(source).build();
    let auth = BearerAuth::builder(cache.clone())
        .allow_origin(server.base_url())
        .build()
        .unwrap();
    let http = bearer_testkit::client_builder()
        .redirect(BearerAuth::redirect_policy())
        .build()
        .unwrap();
    (ClientBuilder::new(http).with(auth).build(), cache)
}

async fn get(client: &ClientWithMiddleware, server: &TestServer, path: &str) -> u16 {
    client
        .get(server.api_url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_bound_token_goes_with_a_fresh_proof_on_every_request() {
    let server = TestServer::start().await;
    let key = DpopKey::generate().unwrap();
    let (client, _) = client(&server, source(&server, &key));
    assert_eq!(get(&client, &server, "/api/echo?secret=q").await, 200);
    let first = server.control().last_headers(Endpoint::Api).unwrap();
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    let second = server.control().last_headers(Endpoint::Api).unwrap();

    let authorization = first["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("DPoP "), "{authorization}");
    assert_eq!(authorization, second["authorization"].to_str().unwrap());
    assert_ne!(first["dpop"], second["dpop"], "a proof is never reused");
    let counts = server.control().dpop_counts();
    assert_eq!(counts.bound_tokens_issued, 1);
    // One proof at the token endpoint, one per API request.
    assert_eq!(counts.proofs_accepted, 3);
    assert_eq!(counts.proofs_refused + counts.binding_mismatches, 0);
    assert_eq!(server.control().counters().token_requests, 1);
    let token_request = server.control().last_headers(Endpoint::Token).unwrap();
    assert!(token_request.contains_key("dpop"));
}

#[tokio::test]
async fn nonces_from_the_token_endpoint_and_the_api_cost_one_resend_each() {
    let server = TestServer::start().await;
    server.control().require_dpop_nonce(true);
    let key = DpopKey::generate().unwrap();
    let (client, _) = client(&server, source(&server, &key));
    // The token endpoint asks for its nonce: one resend. The API shares
    // the origin, so its first proof already carries the nonce.
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    assert_eq!(server.control().counters().token_requests, 2);
    assert_eq!(server.control().dpop_counts().nonce_challenges, 1);
    // The server moves to a new nonce: the API asks, one resend, same token.
    server.control().rotate_dpop_nonce();
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    assert_eq!(server.control().dpop_counts().nonce_challenges, 2);
    assert_eq!(server.control().counters().token_requests, 2);
    assert_eq!(server.control().counters().api_requests, 3);
    assert_eq!(server.control().dpop_counts().bound_tokens_issued, 1);
}

#[tokio::test]
async fn refused_proofs_are_resent_once_with_a_fresh_proof_and_the_same_token() {
    let server = TestServer::start().await;
    let key = DpopKey::generate().unwrap();
    let (client, _) = client(&server, source(&server, &key));
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    for fault in [
        DpopFault::ReplayedJti,
        DpopFault::WrongAth,
        DpopFault::StaleNonce,
    ] {
        server.control().fail_next_dpop_proofs(1, fault);
        assert_eq!(get(&client, &server, "/api/echo").await, 200, "{fault:?}");
    }
    assert_eq!(server.control().counters().token_requests, 1);
    let counts = server.control().dpop_counts();
    assert_eq!((counts.proofs_refused, counts.nonce_challenges), (2, 1));
    // Refused twice in a row: one resend only, then the 401 is the answer,
    // and the token stays (it was never blamed).
    server
        .control()
        .fail_next_dpop_proofs(2, DpopFault::ReplayedJti);
    assert_eq!(get(&client, &server, "/api/echo").await, 401);
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    assert_eq!(server.control().counters().token_requests, 1);
}

#[tokio::test]
async fn an_invalid_token_challenge_replaces_a_bound_token() {
    let server = TestServer::start().await;
    let key = DpopKey::generate().unwrap();
    let (client, _) = client(&server, source(&server, &key));
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    server.control().revoke_all();
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    assert_eq!(server.control().counters().token_requests, 2);
    assert_eq!(server.control().dpop_counts().bound_tokens_issued, 2);
}

#[tokio::test]
async fn a_token_endpoint_that_keeps_asking_for_a_nonce_gets_one_resend() {
    let server = TestServer::start().await;
    server
        .control()
        .fail_next_dpop_proofs(2, DpopFault::StaleNonce);
    let key = DpopKey::generate().unwrap();
    let cache = TokenCache::builder(source(&server, &key))
        .max_wait(std::time::Duration::ZERO)
        .build();
    let error = cache.get(&Default::default()).await.unwrap_err();
    assert_eq!(
        error.oauth().map(|e| e.code.as_str()),
        Some("use_dpop_nonce")
    );
    assert_eq!(server.control().counters().token_requests, 2);
    // The next fetch, with the nonce it holds, succeeds.
    assert!(cache.refresh(&Default::default()).await.is_ok());
}

#[tokio::test]
async fn without_a_key_the_server_issues_a_bearer_token_and_a_dpop_one_is_refused() {
    let server = TestServer::start().await;
    let plain = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    );
    let (client, _) = client(&server, plain);
    assert_eq!(get(&client, &server, "/api/echo").await, 200);
    let headers = server.control().last_headers(Endpoint::Api).unwrap();
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    assert!(!headers.contains_key("dpop"));
    assert_eq!(server.control().dpop_counts().bound_tokens_issued, 0);

    server
        .control()
        .fail_next_token_requests(1, bearer_testkit::TokenFault::TokenType("DPoP".into()));
    let plain = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    );
    let error = TokenCache::builder(plain)
        .build()
        .get(&Default::default())
        .await
        .unwrap_err();
    assert!(matches!(error, TokenError::UnsupportedTokenType(ref t) if t == "DPoP"));
}
