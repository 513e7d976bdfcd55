//! Authorization code with PKCE on a loopback redirect, and the device
//! flow, driven without a person: the test server auto-approves
//! `/authorize`, and device approval goes through its control handle.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_cache::{Clock, ManualClock, TokenCache, TokenError, TokenKey};
use bearer_oauth2::{AuthorizationCode, DeviceCode, DevicePrompt, FlowError, flow_error};
use bearer_testkit::{Control, TestServer, pkce_s256_challenge, query_params};
use common::{assert_hidden, fast_retries, fetch};
use futures::future::BoxFuture;
use url::Url;

/// An `open_browser` that records the URL and follows it like a browser.
fn browser(seen: Arc<Mutex<Vec<Url>>>) -> impl Fn(&Url) + Send + Sync + 'static {
    move |url: &Url| {
        seen.lock().unwrap().push(url.clone());
        let url = url.clone();
        tokio::spawn(async move { reqwest::get(url).await });
    }
}

fn auth_code(
    server: &TestServer,
    open: impl Fn(&Url) + Send + Sync + 'static,
) -> AuthorizationCode {
    AuthorizationCode::new(
        server.authorize_url(),
        server.token_url(),
        server.client_id(),
        open,
    )
    .client_secret(server.client_secret())
    .scope("read")
    .retry_backoff(fast_retries())
}

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh_without_a_new_prompt() {
    let server = TestServer::start().await;
    let seen: Arc<Mutex<Vec<Url>>> = Arc::default();
    let cache = TokenCache::builder(auth_code(&server, browser(seen.clone()))).build();
    let key = TokenKey::default();

    let token = cache.get(&key).await.unwrap();
    assert!(token.token().refresh_token().is_some());
    let url = seen.lock().unwrap()[0].clone();
    let q = query_params(&url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["scope"], "read");
    assert!(q["state"].len() >= 43);
    let redirect = Url::parse(&q["redirect_uri"]).unwrap();
    assert_eq!(
        (redirect.host_str(), redirect.path()),
        (Some("127.0.0.1"), "/callback")
    );

    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.grant_type(), Some("authorization_code"));
    assert_eq!(
        request.param("redirect_uri"),
        Some(q["redirect_uri"].as_str())
    );
    let verifier = request.param("code_verifier").unwrap();
    assert_eq!(pkce_s256_challenge(verifier), q["code_challenge"]);

    // A forced refresh uses the refresh token: nobody is prompted again.
    cache.refresh(&key).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        server.control().last_token_request().unwrap().grant_type(),
        Some("refresh_token")
    );
    let counters = server.control().counters();
    assert_eq!(
        (counters.authorize_requests, counters.issued.refresh_token),
        (1, 1)
    );

    // When the refresh token dies, the person is asked again.
    server.control().revoke_all_refresh_tokens();
    cache.refresh(&key).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_forged_state_is_refused_before_any_token_request() {
    let server = TestServer::start().await;
    let open = |url: &Url| {
        let redirect = query_params(url)["redirect_uri"].clone();
        tokio::spawn(
            async move { reqwest::get(format!("{redirect}?code=stolen&state=forged")).await },
        );
    };
    let err = fetch(&auth_code(&server, open), &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert_eq!(flow_error(&err), Some(&FlowError::StateMismatch));
    assert!(!err.is_transient());
    assert_eq!(server.control().counters().token_requests, 0);
}

#[tokio::test]
async fn a_denied_authorization_is_a_typed_error() {
    let server = TestServer::start().await;
    server.control().deny_next_authorizations(1);
    let source = auth_code(&server, browser(Arc::default()));
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    match flow_error(&err) {
        Some(FlowError::AuthorizationFailed { code, .. }) => assert_eq!(code, "access_denied"),
        other => panic!("{other:?} from {err:?}"),
    }
    assert_eq!(server.control().counters().token_requests, 0);
}

#[tokio::test]
async fn nobody_signing_in_times_out() {
    let server = TestServer::start().await;
    let source = auth_code(&server, |_: &Url| {}).login_timeout(Duration::from_millis(200));
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert_eq!(
        flow_error(&err),
        Some(&FlowError::CallbackTimeout(Duration::from_millis(200)))
    );
}

#[tokio::test]
async fn the_verifier_and_secret_stay_out_of_debug() {
    let server = TestServer::start().await;
    let source = auth_code(&server, browser(Arc::default()));
    fetch(&source, &TokenKey::default(), None).await.unwrap();
    let verifier = server
        .control()
        .last_token_request()
        .unwrap()
        .param("code_verifier")
        .unwrap()
        .to_owned();
    let shown = format!("{source:?}");
    assert_hidden(&verifier, &shown);
    assert_hidden(server.client_secret(), &shown);
}

// --- device flow ---------------------------------------------------------

/// Sleeps on the shared manual clock; approves the device after `approve_after` polls.
#[derive(Debug)]
struct ApprovingClock {
    clock: ManualClock,
    control: Control,
    user_code: Arc<Mutex<Option<String>>>,
    approve_after: u32,
    sleeps: AtomicU32,
}

impl Clock for ApprovingClock {
    fn now(&self) -> std::time::Instant {
        self.clock.now()
    }

    fn system_now(&self) -> std::time::SystemTime {
        self.clock.system_now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        if self.sleeps.fetch_add(1, Ordering::SeqCst) + 1 == self.approve_after {
            let code = self.user_code.lock().unwrap().clone().unwrap();
            assert!(self.control.approve_device(&code));
        }
        self.clock.sleep(duration)
    }
}

async fn device_server(clock: &ManualClock) -> TestServer {
    TestServer::builder()
        .clock(clock.clone())
        .device_poll_interval(Duration::from_secs(5))
        .device_code_lifetime(Duration::from_secs(20))
        .start()
        .await
}

fn device(
    server: &TestServer,
    on_prompt: impl Fn(&DevicePrompt) + Send + Sync + 'static,
) -> DeviceCode {
    DeviceCode::new(
        server.device_authorization_url(),
        server.token_url(),
        server.client_id(),
        on_prompt,
    )
    .client_secret(server.client_secret())
    .retry_backoff(fast_retries())
}

#[tokio::test]
async fn device_flow_polls_while_pending_then_gets_a_token() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let user_code: Arc<Mutex<Option<String>>> = Arc::default();
    let prompt_code = user_code.clone();
    let source = device(&server, move |prompt| {
        assert!(!prompt.verification_uri.is_empty());
        *prompt_code.lock().unwrap() = Some(prompt.user_code.clone());
    })
    .scope("read")
    .clock(ApprovingClock {
        clock: clock.clone(),
        control: server.control(),
        user_code,
        approve_after: 3,
        sleeps: AtomicU32::new(0),
    });
    let token = fetch(&source, &TokenKey::default(), None).await.unwrap();
    assert!(token.refresh_token().is_some());
    // Two pending polls, then the approved one, each after the 5 s interval.
    assert_eq!(clock.elapsed(), Duration::from_secs(15));
    let counters = server.control().counters();
    assert_eq!(
        (counters.token_requests, counters.issued.device_code),
        (3, 1)
    );
    assert_eq!(
        server.control().last_token_request().unwrap().grant_type(),
        Some("urn:ietf:params:oauth:grant-type:device_code")
    );
}

#[tokio::test]
async fn slow_down_adds_five_seconds() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    server.control().force_slow_down(1);
    let control = server.control();
    let source = device(&server, move |prompt| {
        assert!(control.approve_device(&prompt.user_code))
    })
    .clock(clock.clone());
    fetch(&source, &TokenKey::default(), None).await.unwrap();
    // 5 s, slow_down, then 10 s.
    assert_eq!(clock.elapsed(), Duration::from_secs(15));
    assert_eq!(server.control().counters().token_requests, 2);
}

#[tokio::test]
async fn denied_and_expired_device_codes_are_permanent_errors() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let control = server.control();
    let denied = device(&server, move |prompt| {
        assert!(control.deny_device(&prompt.user_code))
    })
    .clock(clock.clone());
    let err = fetch(&denied, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert_eq!(err.oauth().unwrap().code, "access_denied");
    assert!(!err.is_transient());
    assert_eq!(server.control().counters().token_requests, 1);

    let ignored = device(&server, |_| {}).clock(clock.clone());
    let err = fetch(&ignored, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert_eq!(err.oauth().unwrap().code, "expired_token");
    // Polls at 5, 10 and 15 s are pending; at 20 s the code has expired.
    assert_eq!(server.control().counters().token_requests, 1 + 4);
}

#[tokio::test]
async fn a_device_code_outliving_its_lifetime_locally_stops_polling() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    // The server's clock does not move: only our own count can end the flow.
    let clock = common::RecordingClock::default();
    let source = device(&server, |_| {}).clock(clock.clone());
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(flow_error(&err), Some(FlowError::DeviceCodeExpired)),
        "{err:?}"
    );
    // Pending, then slow_down (the server sees polls at one instant), then
    // 20 s have been waited: the code's lifetime.
    let secs: Vec<u64> = clock.waits().iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, [5, 5, 10]);
    assert!(matches!(
        err,
        TokenError::Source {
            transient: false,
            ..
        }
    ));
}

#[tokio::test]
async fn authorize_params_go_to_the_authorize_url_only() {
    let server = TestServer::start().await;
    let seen: Arc<Mutex<Vec<Url>>> = Arc::default();
    let source = auth_code(&server, browser(seen.clone())).authorize_param("prompt", "consent");
    let cache = TokenCache::builder(source).build();
    cache.get(&TokenKey::default()).await.unwrap();

    let url = seen.lock().unwrap()[0].clone();
    assert_eq!(query_params(&url)["prompt"], "consent");
    let request = server.control().last_token_request().unwrap();
    assert_eq!(request.grant_type(), Some("authorization_code"));
    assert_eq!(request.param("prompt"), None);
}
