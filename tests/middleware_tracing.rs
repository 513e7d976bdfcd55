//! The per-request span, and secrets kept out of tracing, `Debug` and errors.

#[path = "middleware_support/mod.rs"]
mod support;

#[path = "capture_support/mod.rs"]
mod capture_support;

use bearer_testkit::{TestServer, TokenFault};
use capture_support::Captured;
use reqwest_bearer::{BearerError, fingerprint};
use support::{echoed_token, get_echo, setup};
use tracing_subscriber::fmt::format::FmtSpan;

impl Captured {
    /// The fields of each closed `bearer_auth` span, in order.
    fn closed_spans(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains("bearer_auth{") && l.contains(" close "))
            .map(str::to_owned)
            .collect()
    }
}

/// Everything at TRACE, span closes included, on this thread: the test
/// runs on a current-thread runtime so the server and the cache's fetch
/// tasks log here too.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

#[tokio::test(flavor = "current_thread")]
async fn span_records_fingerprint_cache_hit_and_retry() {
    let (captured, _guard) = capture();
    let (server, _auth, client) = setup().await;
    let first = echoed_token(&get_echo(&client, server.api_url("/api/echo")).await).unwrap();
    get_echo(&client, server.api_url("/api/echo")).await;
    server.control().reject_next_api_requests(1);
    let second = echoed_token(&get_echo(&client, server.api_url("/api/echo")).await).unwrap();
    assert_ne!(first, second);

    let spans = captured.closed_spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let fp1 = fingerprint(&first).to_string();
    let fp2 = fingerprint(&second).to_string();
    assert!(spans[0].contains(&format!("token={fp1}")), "{}", spans[0]);
    assert!(spans[0].contains("cache_hit=false"), "{}", spans[0]);
    assert!(spans[0].contains("auth_retry=false"), "{}", spans[0]);
    assert!(spans[1].contains(&format!("token={fp1}")), "{}", spans[1]);
    assert!(spans[1].contains("cache_hit=true"), "{}", spans[1]);
    assert!(spans[2].contains(&format!("token={fp2}")), "{}", spans[2]);
    assert!(spans[2].contains("auth_retry=true"), "{}", spans[2]);
    // Requests that pass through open no span.
    client
        .get(server.other_origin_url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(captured.closed_spans().len(), 3);
}

/// With this layer's target filtered out, the layer opens no span of its
/// own; the 401 path must then record nothing on the caller's span, even
/// one that has fields of the same names.
#[tokio::test(flavor = "current_thread")]
async fn the_401_path_never_records_on_the_callers_span() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_env_filter("trace,reqwest_bearer=off")
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (server, _auth, client) = setup().await;
    get_echo(&client, server.api_url("/api/echo")).await;
    server.control().reject_next_api_requests(1);
    {
        let caller = tracing::info_span!(
            target: "caller",
            "caller",
            token = tracing::field::Empty,
            auth_retry = tracing::field::Empty,
            cache_hit = tracing::field::Empty,
        );
        let _entered = caller.enter();
        let echoed = get_echo(&client, server.api_url("/api/echo")).await;
        assert!(echoed_token(&echoed).is_some(), "resent with a new token");
    }
    let text = captured.text();
    let closed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("caller") && l.contains(" close"))
        .collect();
    assert_eq!(closed.len(), 1, "{text}");
    for field in ["token=", "auth_retry=", "cache_hit="] {
        assert!(!closed[0].contains(field), "{}", closed[0]);
    }
    assert!(!text.contains("bearer_auth"), "no span of the layer's own");
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_stay_out_of_logs_debug_and_errors() {
    let (captured, _guard) = capture();
    let server = TestServer::builder()
        .client("svc", "client-secret-9f8e7d")
        .start()
        .await;
    let auth = support::auth_builder(&server).build().unwrap();
    let client = support::client(auth.clone());
    let control = server.control();

    let mut tokens = Vec::new();
    let body = get_echo(&client, server.api_url("/api/echo")).await;
    tokens.push(echoed_token(&body).unwrap());
    control.revoke_all();
    let body = get_echo(&client, server.api_url("/api/echo")).await;
    tokens.push(echoed_token(&body).unwrap());
    // A failure on the way: a 401 whose refresh fails.
    control.reject_next_api_requests(1);
    control.fail_next_token_requests(
        1,
        TokenFault::OAuthError {
            status: 400,
            error: "invalid_scope".into(),
            description: Some("nope".into()),
        },
    );
    let err = client
        .get(server.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let bearer = BearerError::find(&err).unwrap();
    assert_eq!(bearer.oauth().unwrap().code, "invalid_scope");

    let token = auth.cache().get(&Default::default()).await;
    let seen = [
        captured.text(),
        format!("{auth:?}"),
        format!("{token:?}"),
        format!("{client:?}"),
        err.to_string(),
        format!("{err:?}"),
        format!("{bearer:?}"),
    ]
    .join("\n");
    // The capture did see the requests (so the check below means something).
    assert!(seen.contains(&fingerprint(&tokens[0]).to_string()));
    assert!(seen.contains(&fingerprint(&tokens[1]).to_string()));
    for secret in tokens
        .iter()
        .map(String::as_str)
        .chain(["client-secret-9f8e7d"])
    {
        assert!(!seen.contains(secret), "secret {secret:?} leaked");
    }
}
