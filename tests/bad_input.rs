//! The bad-input table: every malformed answer the test kit's token
//! endpoint can produce (each `TokenFault`), and hostile `WWW-Authenticate`
//! headers, each with the exact outcome the *caller* sees through the
//! middleware: the `BearerError` and its `TokenError`, whether it is
//! transient, the OAuth code, and that the API never saw the request.

use std::time::Duration;

use bearer_testkit::{Endpoint, TestServer, TokenFault};
use reqwest_bearer::oauth2::{ClientCredentials, DEFAULT_MAX_BODY, LoginEndpoint};
use reqwest_bearer::{BearerAuth, BearerError, TokenCache, TokenError, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// The deadline a hanging endpoint runs into; short, so the test is quick.
/// Set only where the fault is a hang: every other fault has a fixed
/// outcome, which a loaded machine must not turn into a timeout.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

/// No retries inside the source, so every count below is exact.
fn source(server: &TestServer) -> ClientCredentials {
    ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read")
    .retries(0)
}

/// Callers that do not wait for a next attempt (`max_wait` zero), so each
/// case shows the error of the one failed attempt.
fn client_for(server: &TestServer, source: impl TokenSource) -> ClientWithMiddleware {
    let cache = TokenCache::builder(source).max_wait(Duration::ZERO).build();
    let auth = BearerAuth::builder(cache)
        .allow_origin(server.base_url())
        .build()
        .expect("valid configuration");
    ClientBuilder::new(bearer_testkit::client_builder().build().unwrap())
        .with(auth)
        .build()
}

/// Queues `fault` for the first token request, sends one API request, and
/// returns the error the caller got, after checking what every failure
/// shares: the request was not sent, and exactly one token request was made.
async fn caller_error(fault: TokenFault) -> BearerError {
    let server = TestServer::start().await;
    server.control().fail_next_token_requests(1, fault.clone());
    let source = match fault {
        TokenFault::Hang => source(&server).timeout(SHORT_TIMEOUT),
        _ => source(&server),
    };
    let client = client_for(&server, source);
    let error = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .expect_err("no token, so no response");
    let bearer = BearerError::find(&error)
        .unwrap_or_else(|| panic!("{fault:?}: not a BearerError: {error:?}"))
        .clone();
    assert!(
        matches!(bearer, BearerError::NoToken(_)),
        "{fault:?}: {bearer:?}"
    );
    assert!(!bearer.request_sent());
    let counters = server.control().counters();
    assert_eq!(
        counters.api_requests, 0,
        "{fault:?}: the API saw the request"
    );
    assert_eq!(counters.token_requests, 1, "{fault:?}");
    assert_eq!(counters.token_faults, 1, "{fault:?}");
    bearer
}

/// Queues a reshaping fault (the token still works) and checks the caller
/// simply gets the API's answer.
async fn caller_succeeds(fault: TokenFault) {
    let server = TestServer::start().await;
    server.control().fail_next_token_requests(1, fault.clone());
    let source = match fault {
        TokenFault::Hang => source(&server).timeout(SHORT_TIMEOUT),
        _ => source(&server),
    };
    let client = client_for(&server, source);
    let response = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{fault:?}: {e:?}"));
    assert_eq!(response.status(), 200, "{fault:?}");
    let counters = server.control().counters();
    assert_eq!(
        (counters.token_requests, counters.token_faults),
        (1, 1),
        "{fault:?}"
    );
    assert_eq!(counters.api_requests, 1, "{fault:?}");
}

// --- every TokenFault -------------------------------------------------------

#[tokio::test]
async fn internal_error_is_a_transient_http_error() {
    let e = caller_error(TokenFault::InternalError).await;
    assert!(
        matches!(e.token_error(), TokenError::Http { status: 500, excerpt, retry_after: None }
            if excerpt == "internal server error"),
        "{e:?}"
    );
    assert!(e.is_transient());
    assert!(e.oauth().is_none());
}

#[tokio::test]
async fn service_unavailable_keeps_retry_after() {
    let e = caller_error(TokenFault::ServiceUnavailable {
        retry_after: Some(7),
    })
    .await;
    assert!(
        matches!(e.token_error(), TokenError::Http { status: 503, .. }),
        "{e:?}"
    );
    assert_eq!(e.token_error().retry_after(), Some(Duration::from_secs(7)));
    assert!(e.is_transient());
}

#[tokio::test]
async fn too_many_requests_keeps_retry_after() {
    let e = caller_error(TokenFault::TooManyRequests {
        retry_after: Some(3),
    })
    .await;
    assert!(
        matches!(e.token_error(), TokenError::Http { status: 429, .. }),
        "{e:?}"
    );
    assert_eq!(e.token_error().retry_after(), Some(Duration::from_secs(3)));
    assert!(e.is_transient());
}

#[tokio::test]
async fn oauth_error_is_typed_with_code_and_description() {
    let e = caller_error(TokenFault::OAuthError {
        status: 401,
        error: "invalid_client".into(),
        description: Some("unknown client".into()),
    })
    .await;
    let oauth = e.oauth().expect("an OAuth error");
    assert_eq!(oauth.code, "invalid_client");
    assert_eq!(oauth.status, 401);
    assert_eq!(oauth.description.as_deref(), Some("unknown client"));
    assert!(!e.is_transient(), "a refused client is never retried");
}

#[tokio::test]
async fn oauth_error_codes_decide_transience() {
    for (status, code, transient) in [
        (400, "invalid_grant", false),
        (400, "invalid_scope", false),
        (400, "unauthorized_client", false),
        (400, "temporarily_unavailable", true),
        (500, "server_error", true),
        (400, "some_new_code", false),
    ] {
        let e = caller_error(TokenFault::OAuthError {
            status,
            error: code.into(),
            description: None,
        })
        .await;
        assert_eq!(e.oauth().map(|o| o.code.as_str()), Some(code));
        assert_eq!(e.is_transient(), transient, "{code}");
    }
}

#[tokio::test]
async fn error_in_a_200_is_an_oauth_error() {
    let e = caller_error(TokenFault::ErrorIn200 {
        error: "invalid_grant".into(),
    })
    .await;
    let oauth = e.oauth().expect("an OAuth error");
    assert_eq!((oauth.code.as_str(), oauth.status), ("invalid_grant", 200));
    assert!(!e.is_transient());
}

#[tokio::test]
async fn html_page_is_an_http_error_with_an_excerpt() {
    let e = caller_error(TokenFault::Html { status: 502 }).await;
    assert!(
        matches!(e.token_error(), TokenError::Http { status: 502, excerpt, .. }
            if excerpt.contains("Bad Gateway") && excerpt.chars().count() <= 200),
        "{e:?}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn html_page_with_200_is_malformed() {
    let e = caller_error(TokenFault::Html { status: 200 }).await;
    assert!(
        matches!(e.token_error(), TokenError::Malformed { status: 200, .. }),
        "{e:?}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn truncated_json_is_malformed() {
    let e = caller_error(TokenFault::MalformedJson).await;
    let TokenError::Malformed {
        status, excerpt, ..
    } = e.token_error()
    else {
        panic!("{e:?}");
    };
    assert_eq!(*status, 200);
    assert!(
        !excerpt.contains("truncated"),
        "the token-like value is scrubbed: {excerpt}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn huge_body_is_refused_at_the_cap() {
    let e = caller_error(TokenFault::HugeBody {
        bytes: 4 * 1024 * 1024,
    })
    .await;
    assert!(
        matches!(e.token_error(), TokenError::BodyTooLarge { limit } if *limit == DEFAULT_MAX_BODY),
        "{e:?}"
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn dropped_connection_is_a_transient_transport_error() {
    let e = caller_error(TokenFault::DropConnection).await;
    assert!(matches!(e.token_error(), TokenError::Transport(_)), "{e:?}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn hanging_endpoint_times_out() {
    let e = caller_error(TokenFault::Hang).await;
    assert!(
        matches!(e.token_error(), TokenError::Timeout(d) if *d == SHORT_TIMEOUT),
        "{e:?}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn dpop_token_type_is_unsupported() {
    let e = caller_error(TokenFault::TokenType("DPoP".into())).await;
    assert!(
        matches!(e.token_error(), TokenError::UnsupportedTokenType(t) if t == "DPoP"),
        "{e:?}"
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn other_token_types_are_unsupported() {
    for t in ["mac", "N_A", "pop"] {
        let e = caller_error(TokenFault::TokenType(t.into())).await;
        assert!(
            matches!(e.token_error(), TokenError::UnsupportedTokenType(shown) if shown == t),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn expires_in_as_a_string_works() {
    caller_succeeds(TokenFault::ExpiresInString).await;
}

#[tokio::test]
async fn missing_token_type_works() {
    caller_succeeds(TokenFault::MissingTokenType).await;
}

#[tokio::test]
async fn lowercase_token_type_works() {
    caller_succeeds(TokenFault::LowercaseTokenType).await;
}

#[tokio::test]
async fn uppercase_token_type_works() {
    caller_succeeds(TokenFault::TokenType("BEARER".into())).await;
}

#[tokio::test]
async fn missing_expires_in_works() {
    caller_succeeds(TokenFault::MissingExpiresIn).await;
}

/// The login endpoint source reads answers with the same care.
#[tokio::test]
async fn login_endpoint_faults_are_typed_too() {
    type Check = fn(&TokenError) -> bool;
    let table: [(TokenFault, Check); 7] = [
        (TokenFault::InternalError, |e| {
            matches!(e, TokenError::Http { status: 500, .. })
        }),
        (TokenFault::Html { status: 502 }, |e| {
            matches!(e, TokenError::Http { status: 502, .. })
        }),
        (TokenFault::MalformedJson, |e| {
            matches!(e, TokenError::Malformed { status: 200, .. })
        }),
        (TokenFault::HugeBody { bytes: 1 << 20 }, |e| {
            matches!(e, TokenError::BodyTooLarge { .. })
        }),
        (TokenFault::DropConnection, |e| {
            matches!(e, TokenError::Transport(_))
        }),
        (TokenFault::Hang, |e| matches!(e, TokenError::Timeout(_))),
        (
            TokenFault::OAuthError {
                status: 401,
                error: "invalid_credentials".into(),
                description: None,
            },
            |e| {
                e.oauth()
                    .is_some_and(|o| o.code == "invalid_credentials" && !e.is_transient())
            },
        ),
    ];
    for (fault, expected) in table {
        let server = TestServer::start().await;
        server.control().fail_next_login_requests(1, fault.clone());
        let mut login =
            LoginEndpoint::new(server.login_url(), server.username(), server.password()).retries(0);
        if matches!(fault, TokenFault::Hang) {
            login = login.timeout(SHORT_TIMEOUT);
        }
        let error = client_for(&server, login)
            .get(server.api_url("/api/echo"))
            .send()
            .await
            .expect_err("no token, no request");
        let bearer = BearerError::find(&error).expect("a BearerError");
        assert!(expected(bearer.token_error()), "{fault:?}: {bearer:?}");
        let counters = server.control().counters();
        assert_eq!(
            (counters.login_requests, counters.api_requests),
            (1, 0),
            "{fault:?}"
        );
    }
}

// --- hostile WWW-Authenticate -----------------------------------------------

/// Sends one GET to `/api/challenge` (the URL must stay under the 64 KiB
/// an `http::Uri` holds) answering `status` with these
/// `WWW-Authenticate` fields, through a middleware with default settings
/// (or `refresh_without_challenge(false)` when `strict`).
async fn challenge(status: u16, fields: &[&str], strict: bool) -> (TestServer, reqwest::Response) {
    let server = TestServer::start().await;
    let auth = BearerAuth::builder(TokenCache::builder(source(&server)).build())
        .allow_origin(server.base_url())
        .refresh_without_challenge(!strict)
        .build()
        .unwrap();
    let client = ClientBuilder::new(bearer_testkit::client_builder().build().unwrap())
        .with(auth)
        .build();
    let mut url = server.api_url("/api/challenge");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("status", &status.to_string());
        for field in fields {
            query.append_pair("www_authenticate", field);
        }
    }
    let response = client
        .get(url)
        .send()
        .await
        .expect("a 401 is a response, not an error");
    (server, response)
}

/// The middleware's verdict, seen from outside: how many tokens were
/// fetched and how many times the API was asked.
fn fetches_and_sends(server: &TestServer) -> (u64, u64) {
    let c = server.control().counters();
    (c.token_requests, c.api_requests)
}

#[tokio::test]
async fn invalid_token_challenge_refreshes_once_then_returns_the_401() {
    let (server, response) = challenge(401, &[r#"Bearer error="invalid_token""#], false).await;
    assert_eq!(response.status(), 401);
    assert_eq!(fetches_and_sends(&server), (2, 2));
}

#[tokio::test]
async fn insufficient_scope_is_returned_without_a_new_token() {
    let (server, response) = challenge(
        401,
        &[r#"Bearer error="insufficient_scope", scope="admin""#],
        false,
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="admin""#
    );
    assert_eq!(fetches_and_sends(&server), (1, 1));
}

#[tokio::test]
async fn invalid_request_is_returned_without_a_new_token() {
    let (server, response) = challenge(401, &["Bearer error=invalid_request"], false).await;
    assert_eq!(response.status(), 401);
    assert_eq!(fetches_and_sends(&server), (1, 1));
}

#[tokio::test]
async fn bare_401_refreshes_once_by_default() {
    let (server, response) = challenge(401, &[], false).await;
    assert_eq!(response.status(), 401);
    assert_eq!(fetches_and_sends(&server), (2, 2));
}

#[tokio::test]
async fn bare_401_is_final_when_configured() {
    let (server, response) = challenge(401, &[], true).await;
    assert_eq!(response.status(), 401);
    assert_eq!(fetches_and_sends(&server), (1, 1));
}

#[tokio::test]
async fn junk_challenge_counts_as_no_challenge() {
    for junk in [
        r#"@@@ "unterminated"#,
        "Bearer realm=\"a\" junk",
        ",,,= = =",
        "Bearer a=b c",
    ] {
        let (server, response) = challenge(401, &[junk], false).await;
        assert_eq!(response.status(), 401, "{junk}");
        assert_eq!(response.headers()["www-authenticate"], junk);
        assert_eq!(fetches_and_sends(&server), (2, 2), "{junk}");
        let (server, _) = challenge(401, &[junk], true).await;
        assert_eq!(fetches_and_sends(&server), (1, 1), "{junk}");
    }
}

#[tokio::test]
async fn huge_challenge_is_handled() {
    let huge = format!(
        r#"Bearer realm="{}", error="insufficient_scope""#,
        "x".repeat(40 * 1024)
    );
    let (server, response) = challenge(401, &[&huge], false).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        fetches_and_sends(&server),
        (1, 1),
        "the huge value was read"
    );
    let junk = "\"".repeat(12 * 1024);
    let (server, response) = challenge(401, &[&junk], true).await;
    assert_eq!(response.status(), 401);
    assert_eq!(fetches_and_sends(&server), (1, 1));
}

#[tokio::test]
async fn many_challenges_in_one_field_are_all_read() {
    let mut many: Vec<String> = (0..1000)
        .map(|i| format!(r#"Scheme{i} realm="r{i}""#))
        .collect();
    many.push(r#"Bearer error="insufficient_scope""#.to_owned());
    let (server, response) = challenge(401, &[&many.join(", ")], false).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        fetches_and_sends(&server),
        (1, 1),
        "the last challenge decided"
    );
}

#[tokio::test]
async fn many_fields_with_junk_between_are_all_read() {
    let mut fields: Vec<&str> = vec!["@@junk"; 40];
    fields.push("Basic realm=\"x\"");
    fields.push("Bearer realm=\"caf\u{e9}\", error=\"insufficient_scope\"");
    let (server, response) = challenge(401, &fields, false).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .count(),
        42
    );
    assert_eq!(fetches_and_sends(&server), (1, 1));
}

#[tokio::test]
async fn non_ascii_challenge_is_read() {
    let (server, response) = challenge(
        401,
        &["Bearer realm=\"caf\u{e9}\", error=\"insufficient_scope\""],
        false,
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(fetches_and_sends(&server), (1, 1));
}

#[tokio::test]
async fn forbidden_with_insufficient_scope_is_a_plain_response() {
    let (server, response) = challenge(
        403,
        &[r#"Bearer error="insufficient_scope", scope="admin""#],
        false,
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(fetches_and_sends(&server), (1, 1));
    assert_eq!(server.control().counters().api_unauthorized, 0);
}

#[tokio::test]
async fn api_headers_show_the_token_was_sent_once_per_attempt() {
    let (server, _) = challenge(401, &[r#"Bearer error="invalid_token""#], false).await;
    let headers = server
        .control()
        .last_headers(Endpoint::Api)
        .expect("the API was called");
    assert_eq!(headers.get_all("authorization").iter().count(), 1);
}
