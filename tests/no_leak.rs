//! Tokens never go where they were not allowed, and no secret (access or
//! refresh token, client secret, private key, client assertion, password,
//! PKCE verifier, authorization or device code) reaches `Debug`, `Display`, an error, or any tracing or
//! `log` output at any level, from any crate (reqwest, hyper included).
//! Every grant and every failure path runs under one capturing subscriber.

#[path = "capture_support/mod.rs"]
mod capture_support;
#[path = "../crates/bearer-jose/tests/fixtures/mod.rs"]
mod key_fixtures;

use std::sync::OnceLock;
use std::time::Duration;

use bearer_testkit::{Endpoint, TestServer, TokenFault};
use capture_support::Captured;
use http::header::AUTHORIZATION;
use reqwest_bearer::jose::{Algorithm, SigningKey};
use reqwest_bearer::oauth2::{
    AuthorizationCode, ClientAuth, ClientCredentials, DeviceCode, LoginEndpoint, OAuthClient,
    PasswordGrant, RefreshTokenGrant,
};
use reqwest_bearer::{
    BearerAuth, BearerError, BuildError, ManualClock, StaticSource, TokenCache, TokenError,
    TokenKey, TokenSource,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::fmt::format::FmtSpan;

const CLIENT_ID: &str = "leak-test-client";
const CLIENT_SECRET: &str = "cs-Q7v2Zk9pLx4Wm8Rt";
const USERNAME: &str = "alice";
const PASSWORD: &str = "pw-H3nB6yT1cV5sJ0qE";

// --- capture ------------------------------------------------------------------

/// One process-wide subscriber at TRACE for every target, span events
/// included, with `log` records (reqwest's) bridged in.
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::FULL)
            .with_ansi(false)
            .try_init()
            .expect("the only global subscriber");
        captured
    })
}

/// The secrets one test handled, and everything it printed.
#[derive(Default)]
struct Audit {
    secrets: Vec<String>,
    shown: Vec<String>,
}

impl Audit {
    fn new() -> Self {
        captured();
        let mut audit = Audit::default();
        audit.secret(CLIENT_SECRET);
        audit.secret(PASSWORD);
        // The client secret as `client_secret_basic` carries it.
        let basic = bearer_testkit::basic_authorization(CLIENT_ID, CLIENT_SECRET);
        audit.secret(basic.trim_start_matches("Basic ").to_owned());
        audit
    }

    fn secret(&mut self, s: impl Into<String>) {
        let s = s.into();
        assert!(s.len() >= 8, "too short to search for: {s:?}");
        self.secrets.push(s);
    }

    fn show(&mut self, what: impl std::fmt::Debug) {
        self.shown.push(format!("{what:?}"));
    }

    fn show_error(&mut self, e: &reqwest_middleware::Error) {
        self.shown.push(format!("{e} {e:?}"));
        if let Some(b) = BearerError::find(e) {
            self.shown.push(format!("{b} {b:?} {}", b.token_error()));
        }
    }

    /// Checks everything shown and everything captured so far (by every
    /// test in this binary).
    fn check(&self) {
        let log = captured().text();
        assert!(
            log.contains("bearer_auth"),
            "the capture works: the middleware's span is there"
        );
        for secret in &self.secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a secret ({} chars) is in the tracing output",
                secret.len()
            );
            for shown in &self.shown {
                assert!(
                    !shown.contains(secret.as_str()),
                    "a secret is shown in {shown}"
                );
            }
        }
    }
}

fn server_builder() -> bearer_testkit::TestServerBuilder {
    TestServer::builder()
        .client(CLIENT_ID, CLIENT_SECRET)
        .user(USERNAME, PASSWORD)
}

fn client(server: &TestServer, cache: TokenCache) -> ClientWithMiddleware {
    let auth = BearerAuth::builder(cache)
        .allow_origin(server.base_url())
        .build()
        .unwrap();
    ClientBuilder::new(bearer_testkit::client_builder().build().unwrap())
        .with(auth)
        .build()
}

/// The token the echo endpoint saw.
async fn echoed_token(client: &ClientWithMiddleware, server: &TestServer) -> String {
    let response = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    echo["headers"]["authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

// --- DPoP ------------------------------------------------------------------------

/// A test-only P-256 key as a private JWK; its `d` is the secret searched for.
const DPOP_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"PJsuatQzVFBZL0dcS4BbB8HaD910mhHjdgGqKkbatLQ","y":"mMuaQw_L_GdHo2UfWWwMgp8IWdjtupzvyka_KoDY8tE","d":"KQiyJ7ZyEA2d2CRuYu972Wustgeu0nLd9IXR5AscQKs"}"#;
const DPOP_D: &str = "KQiyJ7ZyEA2d2CRuYu972Wustgeu0nLd9IXR5AscQKs";

/// The DPoP private key, the bound token and its proofs reach no output,
/// through nonce challenges, refused proofs and a replaced token.
#[tokio::test]
async fn dpop_keys_tokens_and_proofs_leak_nothing() {
    let mut audit = Audit::new();
    audit.secret(DPOP_D);
    let server = server_builder().start().await;
    server.control().require_dpop_nonce(true);
    let signing = bearer_jose::SigningKey::from_jwk(DPOP_JWK).unwrap();
    audit.show(&signing);
    let key = reqwest_bearer::DpopKey::new(signing).unwrap();
    audit.show(&key);
    let source = ClientCredentials::new(server.token_url(), CLIENT_ID, CLIENT_SECRET)
        .scope("read")
        .retries(0)
        .dpop(key);
    audit.show(&source);
    let cache = TokenCache::builder(source).build();
    let client = client(&server, cache.clone());
    for step in 0..3 {
        match step {
            1 => server
                .control()
                .fail_next_dpop_proofs(1, bearer_testkit::DpopFault::WrongAth),
            2 => server.control().revoke_all(),
            _ => {}
        }
        let response = client
            .get(server.api_url("/api/echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let echo: serde_json::Value = response.json().await.unwrap();
        let headers = &echo["headers"];
        let token = headers["authorization"].as_str().unwrap();
        audit.secret(token.strip_prefix("DPoP ").unwrap());
        audit.secret(headers["dpop"].as_str().unwrap());
    }
    let cached = cache.get(&TokenKey::new()).await.unwrap();
    audit.show(&cached);
    audit.show(cached.token());
    audit.show(&cache);
    audit.check();
}

// --- where tokens go ----------------------------------------------------------

#[tokio::test]
async fn another_port_gets_no_token_and_no_token_is_fetched_for_it() {
    let server = TestServer::start().await;
    let cc = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    );
    let client = client(&server, TokenCache::builder(cc).build());
    let response = client
        .get(server.other_origin_url("/api/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = server
        .control()
        .last_headers(Endpoint::OtherOrigin)
        .expect("the other origin was called");
    assert!(seen.get(AUTHORIZATION).is_none());
    assert_eq!(server.control().counters().token_requests, 0);

    // The observation can fail: a header set by hand does arrive there.
    client
        .get(server.other_origin_url("/x"))
        .header(AUTHORIZATION, "Bearer by-hand")
        .send()
        .await
        .unwrap();
    let seen = server
        .control()
        .last_headers(Endpoint::OtherOrigin)
        .unwrap();
    assert_eq!(seen[AUTHORIZATION], "Bearer by-hand");
}

#[tokio::test]
async fn cross_origin_redirect_drops_the_token() {
    let server = TestServer::start().await;
    let cc = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    );
    let client = client(&server, TokenCache::builder(cc).build());
    let mut url = server.api_url("/api/redirect-cross");
    url.query_pairs_mut().append_pair("to", "/landing");
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.url().origin(),
        server.other_origin_url("/").origin()
    );
    let api = server.control().last_headers(Endpoint::Api).unwrap();
    assert!(
        api.get(AUTHORIZATION).is_some(),
        "the allowed origin got the token"
    );
    let other = server
        .control()
        .last_headers(Endpoint::OtherOrigin)
        .unwrap();
    assert!(
        other.get(AUTHORIZATION).is_none(),
        "the redirect target got it too"
    );
    assert_eq!(server.control().counters().other_origin_requests, 1);
}

/// `http://192.0.2.1/` (TEST-NET-1, never routed) is not loopback: the
/// middleware refuses to allow it, and a request there passes through
/// without a token. The request goes to a proxy on loopback (the test
/// kit's other origin), so nothing leaves the machine and the absent
/// header can be observed.
#[tokio::test]
async fn plain_http_to_a_non_loopback_host_never_carries_the_token() {
    let server = TestServer::start().await;
    let cc = || {
        ClientCredentials::new(
            server.token_url(),
            server.client_id(),
            server.client_secret(),
        )
    };
    let refused = BearerAuth::builder(TokenCache::builder(cc()).build())
        .allow_origin("http://192.0.2.1/".parse().unwrap())
        .build()
        .unwrap_err();
    assert_eq!(
        refused,
        BuildError::PlainHttp {
            origin: "http://192.0.2.1".into()
        }
    );

    let proxy = reqwest::Proxy::http(server.other_origin_url("/").as_str()).unwrap();
    let via_loopback = reqwest::Client::builder().proxy(proxy).build().unwrap();
    let auth = BearerAuth::builder(TokenCache::builder(cc()).build())
        .allow_origin(server.base_url())
        .allow_origin("https://192.0.2.1".parse().unwrap())
        .build()
        .unwrap();
    let client = ClientBuilder::new(via_loopback).with(auth).build();
    let response = client
        .get("http://192.0.2.1/api/echo")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let counters = server.control().counters();
    assert_eq!(
        counters.other_origin_requests, 1,
        "the request went to the loopback proxy"
    );
    let seen = server
        .control()
        .last_headers(Endpoint::OtherOrigin)
        .unwrap();
    assert!(
        seen.get(AUTHORIZATION).is_none(),
        "http is not https: no token"
    );
    assert_eq!(counters.token_requests, 0);
}

/// An https origin does not authorize plain http to the same host: a
/// downgraded request carries no token. A name resolved to loopback keeps
/// the traffic on the machine.
#[tokio::test]
async fn https_origin_does_not_cover_plain_http_on_the_same_host() {
    let server = TestServer::start().await;
    let other = server.other_origin_url("/");
    let addr = format!("127.0.0.1:{}", other.port().unwrap())
        .parse()
        .unwrap();
    let http = reqwest::Client::builder()
        .resolve("api.example.test", addr)
        .no_proxy()
        .build()
        .unwrap();
    let cc = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    );
    let auth = BearerAuth::builder(TokenCache::builder(cc).build())
        .allow_origin("https://api.example.test".parse().unwrap())
        .build()
        .unwrap();
    let client = ClientBuilder::new(http).with(auth).build();
    let url = format!("http://api.example.test:{}/api/echo", other.port().unwrap());
    assert_eq!(client.get(url).send().await.unwrap().status(), 200);
    let seen = server
        .control()
        .last_headers(Endpoint::OtherOrigin)
        .unwrap();
    assert!(seen.get(AUTHORIZATION).is_none());
    assert_eq!(server.control().counters().token_requests, 0);
}

// --- values that cannot go in a header ---------------------------------------------

#[tokio::test]
async fn token_with_control_characters_is_refused_not_sent() {
    let server = TestServer::start().await;
    for bad in [
        "abc\r\nX-Injected: 1",
        "abc\ndef",
        "two words",
        "t\u{f6}k\u{e9}n",
        "nul\0byte",
        "tab\tbed",
    ] {
        let cache = TokenCache::builder(StaticSource::new(bad)).build();
        let error = client(&server, cache)
            .get(server.api_url("/api/echo"))
            .send()
            .await
            .expect_err("a token that cannot be a header is never sent");
        let bearer = BearerError::find(&error).expect("a BearerError");
        assert!(
            matches!(bearer, BearerError::NoToken(TokenError::InvalidTokenValue)),
            "{bad:?}: {bearer:?}"
        );
        assert!(!bearer.is_transient());
        assert!(!format!("{error} {error:?}").contains(bad));
    }
    assert_eq!(server.control().counters().api_requests, 0);
}

#[tokio::test]
async fn token_file_with_an_inner_line_break_is_refused() {
    let server = TestServer::start().await;
    let path = std::env::temp_dir().join(format!(
        "reqwest-bearer-no-leak-{}.token",
        std::process::id()
    ));
    std::fs::write(&path, "first-line\r\nX-Injected: 1\n").unwrap();
    let cache = TokenCache::builder(reqwest_bearer::cache::FileSource::new(&path)).build();
    let error = client(&server, cache)
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        BearerError::find(&error),
        Some(BearerError::NoToken(TokenError::InvalidTokenValue))
    ));
    assert_eq!(server.control().counters().api_requests, 0);
}

// --- secrets: every grant, every failure ------------------------------------------

/// `private_key_jwt` and `client_secret_jwt`: neither the private key (as
/// PEM or JWK), the secret, nor any assertion sent shows anywhere, through
/// successes, an injected refusal and token endpoint faults.
#[tokio::test]
async fn client_assertions_and_their_failures_leak_nothing() {
    let mut audit = Audit::new();
    let jwk: serde_json::Value = serde_json::from_str(key_fixtures::RSA_JWK).unwrap();
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        audit.secret(jwk[member].as_str().unwrap());
    }
    for line in key_fixtures::RSA_PKCS8
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        audit.secret(line);
    }
    let key = SigningKey::from_pem(Algorithm::PS256, key_fixtures::RSA_PKCS8.as_bytes())
        .unwrap()
        .with_kid("leak-test-key");
    audit.show(&key);
    let secret_jwt_id = "leak-test-jwt-secret-client";
    let server = server_builder()
        .add_client(bearer_testkit::ClientConfig::private_key_jwt(
            "leak-test-pk-client",
            key.public_jwk().unwrap(),
        ))
        .add_client(bearer_testkit::ClientConfig::client_secret_jwt(
            secret_jwt_id,
            CLIENT_SECRET,
        ))
        .start()
        .await;
    let clients = [
        OAuthClient::new(server.token_url(), "leak-test-pk-client")
            .auth_method(ClientAuth::PrivateKeyJwt(key.clone())),
        OAuthClient::new(server.token_url(), secret_jwt_id)
            .client_secret(CLIENT_SECRET)
            .auth_method(ClientAuth::ClientSecretJwt),
    ];
    let mut assertions = Vec::new();
    for oauth in clients {
        audit.show(&oauth);
        let source = ClientCredentials::from_client(oauth.clone().retries(0));
        audit.show(&source);
        let cache = TokenCache::builder(source).build();
        let client = client(&server, cache);
        audit.secret(echoed_token(&client, &server).await);
        let sent = server.control().last_token_request().unwrap();
        assertions.push(sent.param("client_assertion").unwrap().to_owned());
        audit.show(&sent);

        server.control().reject_next_client_assertions(1);
        for fault in [
            None,
            Some(TokenFault::InternalError),
            Some(TokenFault::Html { status: 502 }),
        ] {
            if let Some(fault) = fault {
                server.control().fail_next_token_requests(1, fault);
            }
            let source = ClientCredentials::from_client(oauth.clone().retries(0));
            let cache = TokenCache::builder(source).max_wait(Duration::ZERO).build();
            let error = self::client(&server, cache)
                .get(server.api_url("/api/echo"))
                .send()
                .await
                .unwrap_err();
            audit.show_error(&error);
        }
    }
    for assertion in assertions {
        // The whole assertion and its signature, which alone would let
        // nobody in but is still what proves the key.
        audit.secret(assertion.rsplit('.').next().unwrap().to_owned());
        audit.secret(assertion);
    }
    audit.check();
}

#[tokio::test]
async fn client_credentials_and_its_failures_leak_nothing() {
    let mut audit = Audit::new();
    let server = server_builder().start().await;
    for auth_method in [ClientAuth::Basic, ClientAuth::Post] {
        let source = ClientCredentials::new(server.token_url(), CLIENT_ID, CLIENT_SECRET)
            .auth_method(auth_method.clone())
            .scope("read")
            .retries(0)
            .timeout(Duration::from_millis(300));
        audit.show(&source);
        let cache = TokenCache::builder(source).build();
        let auth = BearerAuth::builder(cache.clone())
            .allow_origin(server.base_url())
            .build()
            .unwrap();
        let client = ClientBuilder::new(bearer_testkit::client_builder().build().unwrap())
            .with(auth.clone())
            .build();
        audit.secret(echoed_token(&client, &server).await);
        // A rejected token: the middleware refreshes and resends.
        server.control().reject_next_api_requests(1);
        audit.secret(echoed_token(&client, &server).await);
        // A cross-origin redirect with the token on the first hop.
        let mut url = server.api_url("/api/redirect-cross");
        url.query_pairs_mut().append_pair("to", "/x");
        client.get(url).send().await.unwrap();
        let cached = cache.get(&TokenKey::new()).await.unwrap();
        audit.show(&cached);
        audit.show(cached.token());
        audit.show(&cache);
        audit.show(&auth);
        audit.show(cache.stats());

        // Every fault of the token endpoint, on a fresh cache each.
        for fault in [
            TokenFault::InternalError,
            TokenFault::ServiceUnavailable {
                retry_after: Some(1),
            },
            TokenFault::OAuthError {
                status: 400,
                error: "invalid_scope".into(),
                description: Some("no".into()),
            },
            TokenFault::ErrorIn200 {
                error: "invalid_grant".into(),
            },
            TokenFault::Html { status: 502 },
            TokenFault::MalformedJson,
            TokenFault::TokenType("DPoP".into()),
            TokenFault::HugeBody { bytes: 1 << 20 },
            TokenFault::DropConnection,
            TokenFault::Hang,
        ] {
            server.control().fail_next_token_requests(1, fault);
            let source = ClientCredentials::new(server.token_url(), CLIENT_ID, CLIENT_SECRET)
                .auth_method(auth_method.clone())
                .retries(0)
                .timeout(Duration::from_millis(300));
            let cache = TokenCache::builder(source).max_wait(Duration::ZERO).build();
            let client = self::client(&server, cache);
            let error = client
                .get(server.api_url("/api/echo"))
                .send()
                .await
                .unwrap_err();
            audit.show_error(&error);
        }
    }
    // A wrong secret: the server refuses the client.
    let wrong = "cs-WRONG-a8Kd03Lq";
    audit.secret(wrong);
    let source = ClientCredentials::new(server.token_url(), CLIENT_ID, wrong).retries(0);
    let error = client(&server, TokenCache::builder(source).build())
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        BearerError::find(&error)
            .and_then(BearerError::oauth)
            .map(|o| o.code.as_str()),
        Some("invalid_client")
    );
    audit.show_error(&error);
    audit.check();
}

#[tokio::test]
async fn password_and_refresh_grants_leak_nothing() {
    let mut audit = Audit::new();
    let clock = ManualClock::new();
    let server = server_builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(60))
        .rotate_refresh_tokens(true)
        .start()
        .await;
    let source = PasswordGrant::new(server.token_url(), CLIENT_ID, USERNAME, PASSWORD)
        .client_secret(CLIENT_SECRET)
        .scope("read")
        .retries(0);
    audit.show(&source);
    let cache = TokenCache::builder(source).clock(clock.clone()).build();
    let client = client(&server, cache.clone());
    let mut latest_refresh = String::new();
    for round in 0..3 {
        if round == 2 {
            // Refresh tokens revoked: invalid_grant, then the password again.
            server.control().revoke_all_refresh_tokens();
        }
        audit.secret(echoed_token(&client, &server).await);
        let cached = cache.get(&TokenKey::new()).await.unwrap();
        let refresh = cached
            .token()
            .refresh_token()
            .expect("a refresh token")
            .expose_secret()
            .to_owned();
        audit.secret(refresh.clone());
        latest_refresh = refresh;
        audit.show(cached.token());
        clock.advance(Duration::from_secs(61));
    }
    assert!(
        server.control().counters().issued.refresh_token >= 1,
        "the refresh grant ran"
    );
    assert!(
        server.control().counters().issued.password >= 2,
        "the password grant ran again"
    );

    // A wrong password.
    let wrong = "pw-WRONG-Zx81Nc0q";
    audit.secret(wrong);
    let bad = PasswordGrant::new(server.token_url(), CLIENT_ID, USERNAME, wrong)
        .client_secret(CLIENT_SECRET)
        .retries(0);
    let error = self::client(
        &server,
        TokenCache::builder(bad).clock(clock.clone()).build(),
    )
    .get(server.api_url("/api/echo"))
    .send()
    .await
    .unwrap_err();
    audit.show_error(&error);

    // A refresh token on its own: works, then is refused for good.
    let grant = RefreshTokenGrant::new(server.token_url(), CLIENT_ID, latest_refresh.as_str())
        .client_secret(CLIENT_SECRET)
        .retries(0);
    audit.show(&grant);
    assert!(!grant.id().contains(&latest_refresh));
    let cache = TokenCache::builder(grant).clock(clock.clone()).build();
    let client = self::client(&server, cache.clone());
    audit.secret(echoed_token(&client, &server).await);
    if let Some(r) = cache
        .get(&TokenKey::new())
        .await
        .unwrap()
        .token()
        .refresh_token()
    {
        audit.secret(r.expose_secret());
    }
    server.control().revoke_all_refresh_tokens();
    clock.advance(Duration::from_secs(61));
    let error = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        BearerError::find(&error).map(BearerError::token_error),
        Some(TokenError::ReauthenticationRequired(_))
    ));
    audit.show_error(&error);
    audit.check();
}

/// Plays the browser without logging the callback URL (which carries the
/// code): the authorize request through reqwest without redirects, the
/// callback over a raw socket.
async fn browse(authorize: reqwest::Url) {
    let http = bearer_testkit::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(authorize).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let callback = reqwest::Url::parse(&location).unwrap();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", callback.port().unwrap()))
        .await
        .unwrap();
    let path = &location[location.find(callback.path()).unwrap()..];
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
}

#[tokio::test]
async fn authorization_code_with_pkce_leaks_nothing() {
    let mut audit = Audit::new();
    let server = server_builder().start().await;
    let source = AuthorizationCode::new(
        server.authorize_url(),
        server.token_url(),
        CLIENT_ID,
        |url| {
            tokio::spawn(browse(url.clone()));
        },
    )
    .client_secret(CLIENT_SECRET)
    .scope("read")
    .login_timeout(Duration::from_secs(20));
    audit.show(&source);
    let cache = TokenCache::builder(source).build();
    let client = client(&server, cache.clone());
    audit.secret(echoed_token(&client, &server).await);
    let exchange = server
        .control()
        .last_token_request()
        .expect("the code was exchanged");
    assert_eq!(exchange.grant_type(), Some("authorization_code"));
    audit.secret(exchange.param("code_verifier").expect("PKCE"));
    audit.secret(exchange.param("code").unwrap());
    audit.show(&exchange);
    let cached = cache.get(&TokenKey::new()).await.unwrap();
    let refresh = cached.token().refresh_token();
    audit.secret(
        refresh
            .expect("the kit issues a refresh token")
            .expose_secret(),
    );
    // A forced refresh uses the refresh token.
    audit.secret(
        cache
            .refresh(&TokenKey::new())
            .await
            .unwrap()
            .access_token()
            .expose_secret(),
    );
    audit.check();
}

#[tokio::test]
async fn device_code_leaks_nothing() {
    let mut audit = Audit::new();
    let clock = ManualClock::new();
    let server = server_builder().clock(clock.clone()).start().await;
    let control = server.control();
    let source = DeviceCode::new(
        server.device_authorization_url(),
        server.token_url(),
        CLIENT_ID,
        move |prompt| {
            assert!(control.approve_device(&prompt.user_code));
        },
    )
    .client_secret(CLIENT_SECRET)
    .scope("read")
    .clock(clock.clone());
    audit.show(&source);
    let cache = TokenCache::builder(source).clock(clock.clone()).build();
    let client = client(&server, cache.clone());
    audit.secret(echoed_token(&client, &server).await);
    let exchange = server.control().last_token_request().unwrap();
    audit.secret(
        exchange
            .param("device_code")
            .expect("the device code was polled"),
    );
    if let Some(r) = cache
        .get(&TokenKey::new())
        .await
        .unwrap()
        .token()
        .refresh_token()
    {
        audit.secret(r.expose_secret());
    }
    audit.check();
}

#[tokio::test]
async fn login_endpoint_and_its_failures_leak_nothing() {
    let mut audit = Audit::new();
    let server = server_builder().start().await;
    let login = || LoginEndpoint::new(server.login_url(), USERNAME, PASSWORD).retries(0);
    audit.show(login());
    let client = client(&server, TokenCache::builder(login()).build());
    audit.secret(echoed_token(&client, &server).await);
    for fault in [
        TokenFault::InternalError,
        TokenFault::MalformedJson,
        TokenFault::Html { status: 500 },
    ] {
        server.control().fail_next_login_requests(1, fault);
        let cache = TokenCache::builder(login())
            .max_wait(Duration::ZERO)
            .build();
        let client = self::client(&server, cache);
        audit.show_error(
            &client
                .get(server.api_url("/api/echo"))
                .send()
                .await
                .unwrap_err(),
        );
    }
    let wrong = "pw-WRONG-login-77Hq";
    audit.secret(wrong);
    let bad = LoginEndpoint::new(server.login_url(), USERNAME, wrong).retries(0);
    let error = self::client(&server, TokenCache::builder(bad).build())
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    audit.show_error(&error);
    audit.check();
}

/// Secrets that do not look random, so only their exact values can catch
/// them (the token-like heuristic would hide a random one anyway).
const PLAIN_SECRET: &str = "correct horse+battery/staple";
const PLAIN_PASSWORD: &str = "mossy \"gnome\" & wolf";

/// Every stretch of eight characters of `secret` in each form it is sent
/// in (raw, form-encoded, JSON, and the `Basic` credentials).
fn parts_of(secret: &str, basic: Option<&str>) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap();
    let forms = [secret.to_owned(), form, json[1..json.len() - 1].to_owned()];
    let chars = |s: &str| s.chars().collect::<Vec<char>>();
    forms
        .iter()
        .map(String::as_str)
        .chain(basic)
        .flat_map(|f| {
            chars(f)
                .windows(8)
                .map(|w| w.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A token or login endpoint that echoes the request in its error page,
/// padded so that the credentials fall at every offset around 4 KiB (where
/// excerpts were once cut before scrubbing) and far past it: no part of a
/// secret reaches the error, the caller, or the log.
#[tokio::test]
async fn endpoints_echoing_credentials_leave_no_part_of_them() {
    let _audit = Audit::new();
    let server = TestServer::builder()
        .client(CLIENT_ID, PLAIN_SECRET)
        .user(USERNAME, PLAIN_PASSWORD)
        .start()
        .await;
    let basic = bearer_testkit::basic_authorization(CLIENT_ID, PLAIN_SECRET);
    let basic = basic.trim_start_matches("Basic ");
    let mut parts = parts_of(PLAIN_SECRET, Some(basic));
    parts.extend(parts_of(PLAIN_PASSWORD, None));
    let mut shown = Vec::new();
    // 60,000: far past 4 KiB, within the 64 KiB body cap.
    let paddings = (4000..4110).step_by(3).chain([0, 60_000]);
    for padding in paddings {
        let echo = || TokenFault::EchoRequest {
            status: 400,
            padding,
        };
        let control = server.control();
        let sources: Vec<Box<dyn Fn() -> TokenCache>> = vec![
            Box::new(|| {
                let source =
                    ClientCredentials::new(server.token_url(), CLIENT_ID, PLAIN_SECRET).retries(0);
                TokenCache::builder(source).build()
            }),
            Box::new(|| {
                let source = ClientCredentials::new(server.token_url(), CLIENT_ID, PLAIN_SECRET)
                    .auth_method(ClientAuth::Post)
                    .retries(0);
                TokenCache::builder(source).build()
            }),
            Box::new(|| {
                let source =
                    PasswordGrant::new(server.token_url(), CLIENT_ID, USERNAME, PLAIN_PASSWORD)
                        .client_secret(PLAIN_SECRET)
                        .retries(0);
                TokenCache::builder(source).build()
            }),
        ];
        for cache in sources {
            control.fail_next_token_requests(1, echo());
            let error = client(&server, cache())
                .get(server.api_url("/api/echo"))
                .send()
                .await
                .unwrap_err();
            let token_error = BearerError::find(&error).unwrap().token_error().clone();
            assert!(
                matches!(token_error, TokenError::Http { status: 400, .. }),
                "{token_error:?}"
            );
            shown.push(format!("{error} {error:?} {token_error}"));
        }
        let login = LoginEndpoint::new(server.login_url(), USERNAME, PLAIN_PASSWORD).retries(0);
        control.fail_next_login_requests(1, echo());
        let error = client(&server, TokenCache::builder(login).build())
            .get(server.api_url("/api/echo"))
            .send()
            .await
            .unwrap_err();
        shown.push(format!("{error} {error:?}"));
    }
    // The echo arrived: the scrubbed excerpts say so.
    assert!(shown.iter().all(|s| s.contains("[redacted]")), "{shown:?}");
    let log = captured().text();
    for part in &parts {
        assert!(
            !log.contains(part.as_str()),
            "{part:?} is in the tracing output"
        );
        for s in &shown {
            assert!(!s.contains(part.as_str()), "{part:?} is shown in {s}");
        }
    }
}

/// Keys in URL query strings (and userinfo) are never printed: not in a
/// source's `Debug` or id, the cache's or the middleware's `Debug`, a
/// transport error (reqwest's own message names the URL), nor any log.
#[tokio::test]
async fn urls_with_keys_in_their_query_are_never_printed() {
    let mut audit = Audit::new();
    let key = "QK-url-key-7731";
    let user_info = "UI-pass-3318";
    audit.secret(key);
    audit.secret(user_info);
    let server = server_builder().start().await;
    let keyed = |mut url: reqwest::Url| {
        url.query_pairs_mut().append_pair("api_key", key);
        url
    };
    let with_user = |url: reqwest::Url| {
        let mut url = keyed(url);
        url.set_username("svc").unwrap();
        url.set_password(Some(user_info)).unwrap();
        url
    };
    // A closed port: the transport error is reqwest's, naming the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url: reqwest::Url = format!("http://{}/token", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);

    let working =
        ClientCredentials::new(keyed(server.token_url()), CLIENT_ID, CLIENT_SECRET).retries(0);
    let cache = TokenCache::builder(working).build();
    audit.secret(echoed_token(&client(&server, cache.clone()), &server).await);
    audit.show(&cache);
    // An allowed origin given with a key in its query.
    let auth = BearerAuth::builder(cache)
        .allow_origin(keyed(server.base_url()))
        .build()
        .unwrap();
    audit.show(&auth);

    let sources: Vec<Box<dyn TokenSource>> = vec![
        Box::new(
            ClientCredentials::new(keyed(closed_url.clone()), CLIENT_ID, CLIENT_SECRET).retries(0),
        ),
        Box::new(
            PasswordGrant::new(keyed(server.token_url()), CLIENT_ID, USERNAME, PASSWORD).retries(0),
        ),
        Box::new(LoginEndpoint::new(keyed(server.login_url()), USERNAME, PASSWORD).retries(0)),
        Box::new(LoginEndpoint::new(keyed(closed_url.clone()), USERNAME, PASSWORD).retries(0)),
        Box::new(ClientCredentials::new(
            with_user(server.token_url()),
            CLIENT_ID,
            CLIENT_SECRET,
        )),
        Box::new(AuthorizationCode::new(
            with_user(server.authorize_url()),
            keyed(server.token_url()),
            CLIENT_ID,
            |_| {},
        )),
        Box::new(DeviceCode::new(
            with_user(server.device_authorization_url()),
            keyed(server.token_url()),
            CLIENT_ID,
            |_| {},
        )),
        Box::new(RefreshTokenGrant::new(
            keyed(server.token_url()),
            CLIENT_ID,
            "rt-not-a-real-one-5521",
        )),
    ];
    for source in sources {
        audit.show(source.id());
        audit.show(&source);
    }
    // Transport failures, through the cache and the middleware.
    let unreachable =
        ClientCredentials::new(keyed(closed_url.clone()), CLIENT_ID, CLIENT_SECRET).retries(0);
    let cache = TokenCache::builder(unreachable).build();
    audit.show(&cache);
    let error = self::client(&server, cache)
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let token_error = BearerError::find(&error).unwrap().token_error();
    assert!(
        matches!(token_error, TokenError::Transport(_)),
        "{token_error:?}"
    );
    audit.show_error(&error);
    let mut source = std::error::Error::source(token_error);
    while let Some(cause) = source {
        audit.show(cause.to_string());
        audit.show(cause);
        source = cause.source();
    }
    let login_error = LoginEndpoint::new(keyed(closed_url.clone()), USERNAME, PASSWORD).retries(0);
    let error = self::client(&server, TokenCache::builder(login_error).build())
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    audit.show_error(&error);
    let discovery = reqwest_bearer::oauth2::discover(&keyed(closed_url))
        .await
        .unwrap_err();
    audit.show(discovery.to_string());
    audit.show(&discovery);
    audit.check();
}

// --- keys -------------------------------------------------------------------------

/// Source ids, cache keys and the store keys derived from them hold no
/// secret: they name entries in shared stores and appear in logs.
#[tokio::test]
async fn source_ids_and_store_keys_contain_no_secret() {
    let server = server_builder().start().await;
    let refresh = "rt-SECRET-f9D2kL7pQ";
    let ids = [
        ClientCredentials::new(server.token_url(), CLIENT_ID, CLIENT_SECRET)
            .id()
            .to_owned(),
        PasswordGrant::new(server.token_url(), CLIENT_ID, USERNAME, PASSWORD)
            .client_secret(CLIENT_SECRET)
            .id()
            .to_owned(),
        RefreshTokenGrant::new(server.token_url(), CLIENT_ID, refresh)
            .client_secret(CLIENT_SECRET)
            .id()
            .to_owned(),
        LoginEndpoint::new(server.login_url(), USERNAME, PASSWORD)
            .id()
            .to_owned(),
        DeviceCode::new(
            server.device_authorization_url(),
            server.token_url(),
            CLIENT_ID,
            |_| {},
        )
        .client_secret(CLIENT_SECRET)
        .id()
        .to_owned(),
        AuthorizationCode::new(
            server.authorize_url(),
            server.token_url(),
            CLIENT_ID,
            |_| {},
        )
        .client_secret(CLIENT_SECRET)
        .id()
        .to_owned(),
    ];
    let key = TokenKey::new()
        .scope("read")
        .audience("api://orders")
        .param("tenant", "t1");
    for id in &ids {
        let digest = key.digest(id);
        for secret in [CLIENT_SECRET, PASSWORD, refresh] {
            assert!(!id.contains(secret), "{id}");
            assert!(!digest.contains(secret));
        }
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(
        key.to_string(),
        "scope=read audience=api://orders tenant=t1"
    );
    let cache = TokenCache::builder(StaticSource::new("st-SECRET-x81Lm2Qa")).build();
    assert!(!format!("{cache:?}").contains("st-SECRET"));
    assert_eq!(cache.source_id(), "static");
}
