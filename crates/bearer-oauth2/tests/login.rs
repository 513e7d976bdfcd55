//! The plain login endpoint source against the test server's `/login`.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use bearer_cache::{Expiry, ManualClock, TokenCache, TokenError, TokenKey};
use bearer_oauth2::{LoginEncoding, LoginEndpoint, jwt_expiry};
use bearer_testkit::{AccessTokenFormat, LoginExpiry, TestServer, TokenFault};
use common::{assert_hidden, fast_retries, fetch};

fn login(server: &TestServer) -> LoginEndpoint {
    LoginEndpoint::new(server.login_url(), server.username(), server.password())
        .retry_backoff(fast_retries())
}

#[tokio::test]
async fn json_login_reads_token_and_expires_in() {
    let server = TestServer::start().await;
    let cache = TokenCache::builder(login(&server)).build();
    let token = cache.get(&TokenKey::default()).await.unwrap();
    assert_eq!(
        token.token().expiry(),
        Expiry::In(Duration::from_secs(3600))
    );
    let headers = server
        .control()
        .last_headers(bearer_testkit::Endpoint::Login)
        .unwrap();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let echo = bearer_testkit::client_builder()
        .build()
        .unwrap()
        .get(server.api_url("/api/echo"))
        .header("authorization", token.expose_authorization_value())
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
}

#[tokio::test]
async fn form_login_falls_back_to_access_token_and_reads_expires_at() {
    let server = TestServer::builder()
        .login_expiry(LoginExpiry::ExpiresAt)
        .start()
        .await;
    let source = LoginEndpoint::new(
        server.login_access_token_url(),
        server.username(),
        server.password(),
    )
    .encoding(LoginEncoding::Form);
    let token = fetch(&source, &TokenKey::default(), None).await.unwrap();
    assert!(matches!(token.expiry(), Expiry::At(at) if at > UNIX_EPOCH));
    let headers = server
        .control()
        .last_headers(bearer_testkit::Endpoint::Login)
        .unwrap();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn without_an_expiry_field_the_jwt_exp_then_the_default_lifetime_is_used() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .clock(clock.clone())
        .login_expiry(LoginExpiry::None)
        .access_token_format(AccessTokenFormat::JwtUnsigned)
        .start()
        .await;
    let token = fetch(&login(&server), &TokenKey::default(), None)
        .await
        .unwrap();
    let exp = jwt_expiry(token.access_token().expose_secret()).expect("a JWT");
    assert_eq!(token.expiry(), Expiry::At(exp));

    server
        .control()
        .set_access_token_format(AccessTokenFormat::Opaque);
    let source = login(&server).default_lifetime(Duration::from_secs(90));
    assert_eq!(
        fetch(&source, &TokenKey::default(), None)
            .await
            .unwrap()
            .expiry(),
        Expiry::In(Duration::from_secs(90))
    );
    assert_eq!(
        fetch(&login(&server), &TokenKey::default(), None)
            .await
            .unwrap()
            .expiry(),
        Expiry::Unknown
    );
}

#[tokio::test]
async fn a_token_missing_at_the_pointer_is_malformed() {
    let server = TestServer::start().await;
    let err = fetch(
        &login(&server).token_pointer("data/jwt"),
        &TokenKey::default(),
        None,
    )
    .await
    .unwrap_err();
    match err {
        TokenError::Malformed {
            status: 200,
            reason,
            excerpt,
        } => {
            assert!(reason.contains("/data~1jwt"), "{reason}");
            assert!(
                excerpt.contains("[redacted]"),
                "the token is scrubbed: {excerpt}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_password_is_a_typed_error_without_the_password() {
    let server = TestServer::start().await;
    let source = LoginEndpoint::new(server.login_url(), server.username(), "bad-password-77");
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    let oauth = err.oauth().unwrap();
    assert_eq!(
        (oauth.code.as_str(), oauth.status),
        ("invalid_credentials", 401)
    );
    assert_eq!(server.control().counters().login_requests, 1);
    assert_hidden("bad-password-77", &format!("{err} {err:?} {source:?}"));
}

#[tokio::test]
async fn login_faults_are_typed_and_retried_only_when_transient() {
    let server = TestServer::start().await;
    let control = server.control();
    type Check = fn(&TokenError) -> bool;
    let cases: Vec<(TokenFault, u64, Check)> = vec![
        (TokenFault::InternalError, 3, |e| {
            matches!(e, TokenError::Http { status: 500, .. })
        }),
        (TokenFault::Html { status: 503 }, 3, |e| {
            matches!(e, TokenError::Http { status: 503, .. })
        }),
        (TokenFault::MalformedJson, 3, |e| {
            matches!(e, TokenError::Malformed { status: 200, .. })
        }),
        (TokenFault::HugeBody { bytes: 1 << 20 }, 1, |e| {
            matches!(e, TokenError::BodyTooLarge { .. })
        }),
        (
            TokenFault::ErrorIn200 {
                error: "locked".into(),
            },
            1,
            |e| e.oauth().is_some_and(|o| o.code == "locked"),
        ),
        (
            TokenFault::TokenType("mac".into()),
            1,
            |e| matches!(e, TokenError::UnsupportedTokenType(t) if t == "mac"),
        ),
        (TokenFault::DropConnection, 3, |e| {
            matches!(e, TokenError::Transport(_))
        }),
    ];
    for (fault, expected_requests, check) in cases {
        control.reset_counters();
        control.fail_next_login_requests(3, fault.clone());
        let err = fetch(&login(&server), &TokenKey::default(), None)
            .await
            .unwrap_err();
        assert!(check(&err), "{fault:?} gave {err:?}");
        assert_eq!(
            control.counters().login_requests,
            expected_requests,
            "{fault:?}"
        );
        assert_hidden(server.password(), &format!("{err} {err:?}"));
        control.clear_login_faults();
    }

    control.fail_next_login_requests(1, TokenFault::ExpiresInString);
    let token = fetch(&login(&server), &TokenKey::default(), None)
        .await
        .unwrap();
    assert_eq!(token.expiry(), Expiry::In(Duration::from_secs(3600)));
}

#[tokio::test]
async fn the_test_kit_models_a_login_with_other_field_names() {
    use bearer_testkit::LoginForm;

    let server = TestServer::builder()
        .login_form(
            LoginForm::new("/v2/session")
                .fields("email", "pass")
                .token_field("jwt"),
        )
        .start()
        .await;
    // The default field names are refused, as the real service would.
    let default_names =
        LoginEndpoint::new(server.login_url(), server.username(), server.password());
    let err = fetch(&default_names, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.oauth().map(|e| (e.code.as_str(), e.status)),
        Some(("invalid_request", 400)),
        "{err:?}"
    );

    for encoding in [LoginEncoding::Json, LoginEncoding::Form] {
        let source = LoginEndpoint::new(server.login_url(), server.username(), server.password())
            .field_names("email", "pass")
            .encoding(encoding)
            .token_pointer("jwt");
        let token = fetch(&source, &TokenKey::default(), None).await.unwrap();
        let echo = reqwest::Client::new()
            .get(server.api_url("/api/echo"))
            .header(
                "authorization",
                format!("Bearer {}", token.access_token().expose_secret()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(echo.status(), 200, "{encoding:?}");
    }
    assert_eq!(server.control().counters().login_tokens_issued, 2);
}
