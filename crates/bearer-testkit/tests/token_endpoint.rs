//! The token endpoint: grants, client authentication, errors, scopes.

mod common;

use bearer_testkit::{
    AccessTokenFormat, ClientAuthMethod, ClientConfig, Endpoint, TestServer, basic_authorization,
};
use common::{api_get, challenge, json, password_grant, token};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn client_credentials_issues_a_scoped_token_without_refresh() {
    let server = TestServer::start().await;
    let response = token(
        &server,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    )
    .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().unwrap();
    assert!(access.len() >= 43, "32 random bytes, base64url");
    assert_eq!(api_get(&server, "/api/echo", access).await.status(), 200);

    let counters = server.control().counters();
    assert_eq!(counters.token_requests, 1);
    assert_eq!(counters.issued.client_credentials, 1);
    assert_eq!(counters.issued.total(), 1);
    assert_eq!(counters.client_auth.basic, 1);
    assert_eq!(counters.api_requests, 1);
}

#[tokio::test]
async fn absent_scope_grants_all_of_the_clients_scopes() {
    let server = TestServer::start().await;
    let (_, body) = json(token(&server, &[("grant_type", "client_credentials")]).await).await;
    assert_eq!(body["scope"], "read write admin");
}

#[tokio::test]
async fn password_grant_checks_the_user_and_issues_a_refresh_token() {
    let server = TestServer::start().await;
    let body = password_grant(&server, &[]).await;
    assert!(body["refresh_token"].is_string());

    let (status, body) = json(
        token(
            &server,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wrong"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    let counters = server.control().counters();
    assert_eq!(counters.issued.password, 1);
    assert_eq!(counters.token_errors, 1);
}

async fn password_tokens(server: &TestServer) -> (String, String) {
    let body = password_grant(server, &[]).await;
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_old_refresh_token_working() {
    let server = TestServer::start().await;
    let (_, refresh) = password_tokens(&server).await;
    for _ in 0..2 {
        let (status, body) = json(
            token(
                &server,
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert!(body.get("refresh_token").is_none());
    }
    assert_eq!(server.control().counters().issued.refresh_token, 2);
}

#[tokio::test]
async fn refresh_with_rotation_retires_the_old_refresh_token() {
    let server = TestServer::builder()
        .rotate_refresh_tokens(true)
        .start()
        .await;
    let (_, old) = password_tokens(&server).await;
    let refresh = |rt: String| {
        let server = &server;
        async move {
            json(
                token(
                    server,
                    &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                )
                .await,
            )
            .await
        }
    };
    let (status, body) = refresh(old.clone()).await;
    assert_eq!(status, 200);
    let new = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let (status, body) = refresh(old).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(refresh(new).await.0, 200);
}

#[tokio::test]
async fn refresh_may_narrow_but_not_widen_the_scope() {
    let server = TestServer::start().await;
    let body = password_grant(&server, &[("scope", "read write")]).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let (status, body) = json(
        token(
            &server,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", "read"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["scope"].as_str()),
        (200, Some("read"))
    );
    let (status, body) = json(
        token(
            &server,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", "admin"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_before_base64() {
    let id = "id:with space%+é";
    let secret = "sec:ret %+ü+";
    let server = TestServer::builder().client(id, secret).start().await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.token_url())
        .header("authorization", basic_authorization(id, secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = server.control().last_token_request().unwrap();
    assert_eq!(record.client_auth, ClientAuthMethod::ClientSecretBasic);
    assert_eq!(record.client_id.as_deref(), Some(id));

    // Not encoding first (as a naive client would) fails for this id.
    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.token_url())
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn client_secret_post_is_accepted_and_recorded() {
    let server = TestServer::start().await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "test-client"),
            ("client_secret", "test-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = server.control().last_token_request().unwrap();
    assert_eq!(record.client_auth, ClientAuthMethod::ClientSecretPost);
    assert_eq!(server.control().counters().client_auth.post, 1);
}

#[tokio::test]
async fn invalid_client_over_basic_is_401_with_a_basic_challenge() {
    let server = TestServer::start().await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.token_url())
        .basic_auth("test-client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenge(&response).as_deref(),
        Some("Basic realm=\"testkit\"")
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());
    assert!(body["error_uri"].is_string());
}

#[tokio::test]
async fn invalid_client_over_post_is_400_without_a_challenge() {
    let server = TestServer::start().await;
    let response = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(server.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "test-client"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert!(challenge(&response).is_none());
    let (status, body) = json(response).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_client"))
    );
}

#[tokio::test]
async fn malformed_requests_get_the_rfc_error_codes() {
    let server = TestServer::builder()
        .add_client(
            ClientConfig::confidential("narrow", "s")
                .scopes("read")
                .grant_types(&[bearer_testkit::GrantType::ClientCredentials]),
        )
        .start()
        .await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "invalid_request"),
        (&[("grant_type", "magic")], "unsupported_grant_type"),
        (
            &[("grant_type", "client_credentials"), ("scope", "root")],
            "invalid_scope",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("resource", "not a uri"),
            ],
            "invalid_target",
        ),
        (&[("grant_type", "password")], "invalid_request"),
        (
            &[("grant_type", "refresh_token"), ("refresh_token", "nope")],
            "invalid_grant",
        ),
    ];
    for (form, error) in cases {
        let (status, body) = json(token(&server, form).await).await;
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some(*error)),
            "{form:?}"
        );
    }
    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.token_url())
            .basic_auth("narrow", Some("s"))
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wonderland"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let (status, body) = json(
        bearer_testkit::client_builder()
            .build()
            .unwrap()
            .post(server.token_url())
            .basic_auth("test-client", Some("test-secret"))
            .json(&json!({"grant_type": "client_credentials"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(server.control().counters().token_errors, 9);
}

#[tokio::test]
async fn last_token_request_shows_the_wire_and_debug_redacts_secrets() {
    let server = TestServer::start().await;
    token(
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
            ("audience", "https://api.example"),
            ("resource", "https://r1.example/"),
            ("resource", "https://r2.example/"),
            ("client_secret_extra", "x"),
        ],
    )
    .await;
    let record = server.control().last_token_request().unwrap();
    assert_eq!(record.grant_type(), Some("client_credentials"));
    assert_eq!(record.scope(), Some("read write"));
    assert_eq!(record.audience(), ["https://api.example"]);
    assert_eq!(
        record.resource(),
        ["https://r1.example/", "https://r2.example/"]
    );
    assert!(!record.has_code_verifier());
    let headers = server.control().last_headers(Endpoint::Token).unwrap();
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(!format!("{headers:?}").contains("Basic "));

    token(
        &server,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wonderland"),
        ],
    )
    .await;
    let record = server.control().last_token_request().unwrap();
    assert_eq!(record.param("password"), Some("wonderland"));
    let debug = format!("{record:?}");
    assert!(!debug.contains("wonderland"), "{debug}");
    assert!(debug.contains("alice"));
}

#[tokio::test]
async fn audience_and_resource_are_recorded_in_the_token() {
    let server = TestServer::start().await;
    let (_, body) = json(
        token(
            &server,
            &[
                ("grant_type", "client_credentials"),
                ("audience", "aud-a"),
                ("resource", "https://r.example/"),
            ],
        )
        .await,
    )
    .await;
    let access = body["access_token"].as_str().unwrap();
    let (_, echo) = json(api_get(&server, "/api/echo", access).await).await;
    assert_eq!(echo["token"]["aud"], json!(["aud-a", "https://r.example/"]));
}

#[tokio::test]
async fn jwt_access_tokens_carry_exp_iat_aud_scope() {
    use base64::Engine;
    let server = TestServer::builder()
        .access_token_format(AccessTokenFormat::JwtHs256 { key: b"k".to_vec() })
        .start()
        .await;
    let (_, body) = json(
        token(
            &server,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("audience", "api"),
            ],
        )
        .await,
    )
    .await;
    let access = body["access_token"].as_str().unwrap();
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |p: &str| -> serde_json::Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode(parts[0])["alg"], "HS256");
    let claims = decode(parts[1]);
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["aud"], "api");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    assert!(!parts[2].is_empty());
    assert_eq!(api_get(&server, "/api/echo", access).await.status(), 200);

    server
        .control()
        .set_access_token_format(AccessTokenFormat::JwtUnsigned);
    let (_, body) = json(token(&server, &[("grant_type", "client_credentials")]).await).await;
    let access = body["access_token"].as_str().unwrap();
    assert!(access.ends_with('.'), "alg none has an empty signature");
    assert_eq!(decode(access.split('.').next().unwrap())["alg"], "none");
}
