//! Authorization code + PKCE, device flow, login, revocation,
//! introspection, discovery, and the server's lifecycle.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bearer_cache::ManualClock;
use bearer_testkit::{
    ClientConfig, LoginExpiry, TestServer, TokenFault, pkce_s256_challenge, query_params,
};
use common::{api_get, json, no_redirects, password_grant, post_form, token};
use serde_json::{Value, json};
use url::Url;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:1/callback?keep=1";

async fn authorize(server: &TestServer, extra: &[(&str, &str)]) -> Url {
    let mut url = server.authorize_url();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", server.client_id())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "xyz")
        .append_pair("scope", "read");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    let response = no_redirects().get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

fn pkce() -> [(&'static str, String); 2] {
    [
        ("code_challenge", pkce_s256_challenge(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

async fn exchange(server: &TestServer, code: &str, verifier: &str) -> (u16, Value) {
    let (status, body) = json(
        token(
            server,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await,
    )
    .await;
    (status.as_u16(), body)
}

#[tokio::test]
async fn authorization_code_with_pkce() {
    assert_eq!(
        pkce_s256_challenge(VERIFIER),
        "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc",
        "BASE64URL(SHA256(verifier)), computed independently with Python's hashlib"
    );
    let server = TestServer::start().await;
    let [c, m] = pkce();
    let location = authorize(&server, &[(c.0, &c.1), (m.0, &m.1)]).await;
    assert!(
        location
            .as_str()
            .starts_with("http://127.0.0.1:1/callback?keep=1&")
    );
    let params = query_params(&location);
    assert_eq!(params["state"], "xyz");
    assert_eq!(params["iss"], server.issuer().as_str());
    let code = &params["code"];

    let (status, body) = exchange(&server, code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    assert_eq!(body["scope"], "read");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let (_, echo) = json(api_get(&server, "/api/echo", &access).await).await;
    assert_eq!(echo["token"]["sub"], "alice");
    assert!(
        server
            .control()
            .last_token_request()
            .unwrap()
            .has_code_verifier()
    );

    // Reuse fails and revokes what the code issued.
    let (status, body) = exchange(&server, code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(api_get(&server, "/api/echo", &access).await.status(), 401);
    let counters = server.control().counters();
    assert_eq!(
        (
            counters.authorize_requests,
            counters.issued.authorization_code
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn wrong_or_missing_verifier_is_invalid_grant() {
    let server = TestServer::start().await;
    let [c, m] = pkce();
    for verifier in ["x".repeat(43), String::new()] {
        let location = authorize(&server, &[(c.0, &c.1), (m.0, &m.1)]).await;
        let code = &query_params(&location)["code"];
        let (status, body) = if verifier.is_empty() {
            let (s, b) = json(
                token(
                    &server,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", code),
                        ("redirect_uri", REDIRECT),
                    ],
                )
                .await,
            )
            .await;
            (s.as_u16(), b)
        } else {
            exchange(&server, code, &verifier).await
        };
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
}

#[tokio::test]
async fn authorize_errors_redirect_with_error_and_state() {
    let server = TestServer::start().await;
    let location = authorize(&server, &[]).await;
    let params = query_params(&location);
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "xyz");
    let location = authorize(
        &server,
        &[
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ],
    )
    .await;
    assert_eq!(query_params(&location)["error"], "invalid_request");

    server.control().deny_next_authorizations(1);
    let [c, m] = pkce();
    let location = authorize(&server, &[(c.0, &c.1), (m.0, &m.1)]).await;
    assert_eq!(query_params(&location)["error"], "access_denied");

    let response = no_redirects()
        .get(server.authorize_url())
        .query(&[("client_id", "nobody"), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "unknown clients are not redirected");
}

#[tokio::test]
async fn pkce_is_optional_when_configured_so() {
    let server = TestServer::builder().require_pkce(false).start().await;
    let location = authorize(&server, &[]).await;
    let code = &query_params(&location)["code"];
    let (status, _) = json(
        token(
            &server,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
}

async fn device_start(server: &TestServer) -> Value {
    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.device_authorization_url())
            .form(&[("client_id", "tv"), ("scope", "read")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn device_poll(server: &TestServer, device_code: &str) -> (u16, Value) {
    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.token_url())
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
                ("client_id", "tv"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    (status.as_u16(), body)
}

async fn device_server(clock: &ManualClock) -> TestServer {
    TestServer::builder()
        .clock(clock.clone())
        .add_client(ClientConfig::public("tv"))
        .start()
        .await
}

#[tokio::test]
async fn device_flow_pending_slow_down_approval() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let control = server.control();
    let start = device_start(&server).await;
    assert_eq!(start["interval"], 5);
    assert_eq!(start["expires_in"], 600);
    assert_eq!(
        start["verification_uri"],
        server.device_verification_url().as_str()
    );
    let device_code = start["device_code"].as_str().unwrap();
    let user_code = start["user_code"].as_str().unwrap();
    assert_eq!(control.pending_device_codes(), [user_code]);

    let error = |r: (u16, Value)| (r.0, r.1["error"].as_str().unwrap_or("").to_owned());
    let pending = (400, "authorization_pending".to_owned());
    let slow = (400, "slow_down".to_owned());
    assert_eq!(error(device_poll(&server, device_code).await), pending);
    assert_eq!(error(device_poll(&server, device_code).await), slow);
    clock.advance(Duration::from_secs(5));
    // The interval grew to 10 s after slow_down.
    assert_eq!(error(device_poll(&server, device_code).await), slow);
    clock.advance(Duration::from_secs(15));
    assert_eq!(error(device_poll(&server, device_code).await), pending);
    control.force_slow_down(1);
    clock.advance(Duration::from_secs(60));
    assert_eq!(error(device_poll(&server, device_code).await), slow);

    assert!(control.approve_device(&user_code.to_lowercase()));
    assert!(!control.approve_device(user_code), "already decided");
    let (status, body) = device_poll(&server, device_code).await;
    assert_eq!(status, 200);
    assert!(body["refresh_token"].is_string());
    assert_eq!(
        error(device_poll(&server, device_code).await).1,
        "invalid_grant"
    );
    assert!(control.pending_device_codes().is_empty());
    assert_eq!(control.counters().issued.device_code, 1);
    assert_eq!(control.counters().client_auth.none, 7);
}

#[tokio::test]
async fn device_flow_denied_expired_and_verification_page() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let denied = device_start(&server).await;
    assert!(
        server
            .control()
            .deny_device(denied["user_code"].as_str().unwrap())
    );
    let (_, body) = device_poll(&server, denied["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "access_denied");

    let visited = device_start(&server).await;
    let page = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .get(visited["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let (status, _) = device_poll(&server, visited["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200);

    let expired = device_start(&server).await;
    clock.advance(Duration::from_secs(600));
    let (_, body) = device_poll(&server, expired["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "expired_token");
}

#[tokio::test]
async fn login_shapes_and_expiry_fields() {
    let clock = ManualClock::starting_at(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let server = TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(Duration::from_secs(100))
        .start()
        .await;
    let control = server.control();
    let creds = json!({"username": "alice", "password": "wonderland"});
    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.login_url())
            .json(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 100);
    let token = body["token"].as_str().unwrap();
    assert_eq!(api_get(&server, "/api/echo", token).await.status(), 200);

    control.set_login_expiry(LoginExpiry::ExpiresAt);
    control.set_clock_offset_secs(10);
    let (_, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.login_access_token_url())
            .form(&[("username", "alice"), ("password", "wonderland")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["expires_at"], 1_000_110);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].is_string());

    control.set_login_expiry(LoginExpiry::None);
    let (_, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.login_url())
            .json(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");

    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.login_url())
            .json(&json!({"username": "alice", "password": "no"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, _) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.login_url())
            .body("garbage")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    let counters = control.counters();
    assert_eq!(
        (counters.login_requests, counters.login_tokens_issued),
        (5, 3)
    );
    assert!(
        control
            .last_headers(bearer_testkit::Endpoint::Login)
            .is_some()
    );
}

#[tokio::test]
async fn revocation_of_access_and_refresh_tokens() {
    let server = TestServer::start().await;
    let body = password_grant(&server, &[]).await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();

    let revoked = post_form(&server, server.revocation_url(), &[("token", access)]).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(api_get(&server, "/api/echo", access).await.status(), 401);
    let unknown = post_form(&server, server.revocation_url(), &[("token", "nope")]).await;
    assert_eq!(unknown.status(), 200, "RFC 7009 §2.2");

    let (_, body) = json(
        token(
            &server,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await,
    )
    .await;
    let second = body["access_token"].as_str().unwrap();
    let revoked = post_form(
        &server,
        server.revocation_url(),
        &[("token", refresh), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(api_get(&server, "/api/echo", second).await.status(), 401);
    let (_, body) = json(
        token(
            &server,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");

    let unauthenticated = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.revocation_url())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 400);
    assert_eq!(server.control().counters().revocations, 4);
}

#[tokio::test]
async fn introspection_describes_tokens() {
    let clock = ManualClock::new();
    let server = TestServer::builder().clock(clock.clone()).start().await;
    let body = password_grant(&server, &[("scope", "read write"), ("audience", "api")]).await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let (status, body) =
        json(post_form(&server, server.introspection_url(), &[("token", access)]).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["client_id"], "test-client");
    assert_eq!(body["aud"], "api");
    assert_eq!(body["sub"], "alice");
    assert_eq!(
        body["exp"].as_u64().unwrap() - body["iat"].as_u64().unwrap(),
        3600
    );

    let (_, body) =
        json(post_form(&server, server.introspection_url(), &[("token", refresh)]).await).await;
    assert_eq!(
        (body["active"].as_bool(), body["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );

    clock.advance(Duration::from_secs(3600));
    let (_, body) =
        json(post_form(&server, server.introspection_url(), &[("token", access)]).await).await;
    assert_eq!(body, json!({"active": false}));

    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.introspection_url())
            .basic_auth("test-client", Some("bad"))
            .form(&[("token", access)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(server.control().counters().introspections, 4);
}

#[tokio::test]
async fn discovery_document() {
    let server = TestServer::start().await;
    let (status, doc) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .get(server.discovery_url())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], server.issuer().as_str());
    assert_eq!(doc["token_endpoint"], server.token_url().as_str());
    assert_eq!(
        doc["authorization_endpoint"],
        server.authorize_url().as_str()
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        server.device_authorization_url().as_str()
    );
    assert_eq!(doc["revocation_endpoint"], server.revocation_url().as_str());
    assert_eq!(
        doc["introspection_endpoint"],
        server.introspection_url().as_str()
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["grant_types_supported"].as_array().unwrap().len(), 5);
    let rfc8414 = server
        .base_url()
        .join(".well-known/oauth-authorization-server")
        .unwrap();
    let (_, again) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .get(rfc8414)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doc, again);
}

#[tokio::test]
async fn dropping_the_server_stops_it_even_mid_hang() {
    let server = TestServer::start().await;
    server
        .control()
        .fail_next_token_requests(1, TokenFault::Hang);
    let url = server.token_url();
    let hanging = tokio::spawn(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(url.clone())
            .form(&[("a", "b")])
            .send(),
    );
    // Make sure the hanging request reached the server before dropping it.
    while server.control().counters().token_requests == 0 {
        tokio::task::yield_now().await;
    }
    drop(server);
    let error = hanging.await.unwrap().unwrap_err();
    assert!(!error.is_timeout());
    let refused = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(url)
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
}

#[tokio::test]
async fn control_is_usable_from_other_tasks() {
    let server = TestServer::start().await;
    let control = server.control();
    tokio::spawn(async move { control.fail_next_token_requests(1, TokenFault::InternalError) })
        .await
        .unwrap();
    assert_eq!(
        token(&server, &[("grant_type", "client_credentials")])
            .await
            .status(),
        500
    );
}

#[test]
fn the_binary_serves_until_killed() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bearer-testkit"))
        .args([
            "serve",
            "--port",
            "0",
            "--client-id",
            "c",
            "--client-secret",
            "s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref().take(8) {
        printed.push(line.unwrap());
    }
    let base = printed[0].strip_prefix("base_url=").unwrap().to_owned();
    assert!(printed.contains(&"client_id=c".to_owned()));
    assert!(printed.contains(&"client_secret=s".to_owned()));
    assert!(printed.contains(&"username=alice".to_owned()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(format!("{base}token"))
            .basic_auth("c", Some("s"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn debug_output_never_shows_secrets() {
    let server = TestServer::builder()
        .access_token_format(bearer_testkit::AccessTokenFormat::JwtHs256 {
            key: b"hmac-key".to_vec(),
        })
        .start()
        .await;
    let body = password_grant(&server, &[]).await;
    let debug = format!("{server:?} {:?}", server.control());
    for secret in [
        "test-secret",
        "wonderland",
        "hmac-key",
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
}
