//! Interop: our sources and middleware against `oidc-provider`, an OpenID
//! Certified authorization server nobody here wrote, run on Node on
//! loopback (`tests/interop/provider.mjs`). Every test sends real requests
//! through `reqwest-retry` + `BearerAuth` to the testkit's API, which
//! accepts a token only when the provider's introspection endpoint says it
//! is active.
//!
//! Needs Node.js 20+ with npm on PATH; the first test to start the
//! provider runs `npm ci` here when `node_modules` is missing. Without
//! Node the tests are compiled as ignored, with that reason in cargo's
//! summary (the build script decides), unless `BEARER_REQUIRE_EXTERNAL=1`,
//! where they run and fail.
//!
//! The provider's clock is real, so the expiry tests wait real time: until
//! deadlines the cache reports, about three seconds in all.

mod browser;
#[path = "../cli_driver/mod.rs"]
mod cli_driver;
mod client_assertion;
mod dpop;
mod provider;
mod setup;
#[path = "../../examples/web_app.rs"]
#[allow(dead_code)]
mod web_app;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use reqwest_bearer::oauth2::{ClientCredentials, DevicePrompt, discover};
use reqwest_bearer::{BearerError, Clock, SystemClock, TokenError, TokenKey, TokenSource};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};

use browser::Browser;
use provider::{CLI_ID, Options, Provider, SERVICE_ID, SERVICE_SECRET, TV_ID, WEB_ID, WEB_SECRET};
use setup::{Changes, client, echo, introspect, protected_api, short_lived_cache};

const CLIENT_CREDENTIALS: &str = "client_credentials";
const REFRESH_TOKEN: &str = "refresh_token";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Waits for a deadline the cache reported (the provider's clock is real).
async fn until(deadline: std::time::Instant) {
    sleep_until(Instant::from_std(deadline)).await;
}

#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_from_the_issuer_url_drives_a_request() {
    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let issuer = provider.issuer().clone();

    let metadata = discover(&issuer).await.expect("discovery succeeds");

    assert_eq!(
        metadata.issuer.trim_end_matches('/'),
        issuer.as_str().trim_end_matches('/')
    );
    assert_eq!(metadata.token_endpoint, issuer.join("/token").unwrap());
    assert_eq!(
        metadata.authorization_endpoint,
        Some(issuer.join("/auth").unwrap())
    );
    assert_eq!(
        metadata.device_authorization_endpoint,
        Some(issuer.join("/device/auth").unwrap())
    );
    assert_eq!(
        metadata.introspection_endpoint,
        Some(provider.introspection_url())
    );
    assert_eq!(
        metadata.revocation_endpoint,
        Some(provider.revocation_url())
    );
    assert!(
        metadata
            .grant_types_supported
            .iter()
            .any(|g| g == CLIENT_CREDENTIALS)
    );

    let source = metadata
        .client_credentials(SERVICE_ID, SERVICE_SECRET)
        .scope("api:read");
    let (_auth, client) = client(&api, short_lived_cache(source).build());
    let seen = echo(&api, &client).await;

    assert_eq!(seen.introspected("client_id"), SERVICE_ID);
    assert_eq!(seen.introspected("scope"), "api:read");
    assert_eq!(provider.issued(SERVICE_ID, CLIENT_CREDENTIALS).await, 1);
    println!("oidc-provider {} at {issuer}", provider.version());
}

/// Three lifetimes of a 3 s token (2 s usable after the margin; refresh
/// ahead from 1 s): a refresh ahead of expiry (the request keeps the
/// current token, a new one arrives in the background), then an expiry
/// (the next request waits for a new one). The provider issues exactly
/// three tokens, the API never says 401, and the first token is really dead
/// at the provider by the end. 3 s rather than 2 s leaves a second of slack
/// either side of the refresh point on a loaded 2-core machine, where a
/// fresh Node process can take a noticeable fraction of a second to answer
/// its first token request.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_refresh_ahead_and_expiry_across_lifetimes() {
    let provider = Provider::start(Options {
        access_ttl_secs: 3,
        ..Options::default()
    })
    .await;
    let api = protected_api(&provider).await;
    let changes = Changes::default();
    let source = ClientCredentials::new(
        provider.issuer().join("/token").unwrap(),
        SERVICE_ID,
        SERVICE_SECRET,
    );
    let cache = short_lived_cache(source).on_change(changes.hook()).build();
    let (auth, client) = client(&api, cache);
    let key = TokenKey::default();

    // Lifetime 1: a token on the first request.
    let first = echo(&api, &client).await.token();
    let cached = auth.cache().get(&key).await.unwrap();
    assert_eq!(cached.access_token().expose_secret(), first);
    assert!(
        cached.refresh_at() < cached.expires_at(),
        "a refresh-ahead window exists"
    );
    let first_exp = introspect(&provider, &first).await["exp"]
        .as_u64()
        .expect("active, with exp");
    // We stop sending it no later than the provider expires it (its `exp`
    // is whole seconds from an issue time rounded down: 1 s of slack).
    let our_deadline = SystemTime::now()
        + cached
            .expires_at()
            .saturating_duration_since(std::time::Instant::now());
    assert!(
        our_deadline <= UNIX_EPOCH + Duration::from_secs(first_exp + 1),
        "the cache would use the token after the provider's exp"
    );

    // Inside the refresh-ahead window: still the first token, a second one fetched behind it.
    until(cached.refresh_at()).await;
    assert_eq!(echo(&api, &client).await.token(), first);
    changes.wait_for(2).await;
    let second = auth.cache().get(&key).await.unwrap();
    assert_ne!(second.access_token().expose_secret(), first);
    assert_eq!(
        echo(&api, &client).await.token(),
        second.access_token().expose_secret()
    );

    // Past the second token's usable life: the next request gets a third.
    until(second.expires_at()).await;
    let third = echo(&api, &client).await.token();
    assert_ne!(third, first);
    assert_ne!(third, second.access_token().expose_secret());

    assert_eq!(provider.issued(SERVICE_ID, CLIENT_CREDENTIALS).await, 3);
    assert_eq!(provider.refused(SERVICE_ID).await, 0);
    let stats = auth.cache().stats();
    assert_eq!((stats.fetches, stats.background_refreshes), (3, 1));
    let counters = api.control().counters();
    assert_eq!((counters.api_requests, counters.api_unauthorized), (4, 0));
}

/// Revoked at the provider's revocation endpoint (RFC 7009) behind our
/// back: the next request meets one 401, gets a new token and succeeds on
/// its single resend.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_recovers_through_one_401_retry() {
    let provider = Provider::start(Options {
        access_ttl_secs: 60,
        ..Options::default()
    })
    .await;
    let api = protected_api(&provider).await;
    let source = ClientCredentials::new(
        provider.issuer().join("/token").unwrap(),
        SERVICE_ID,
        SERVICE_SECRET,
    );
    let (auth, client) = client(&api, short_lived_cache(source).build());

    let revoked = echo(&api, &client).await.token();
    let answer = reqwest::Client::new()
        .post(provider.revocation_url())
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .form(&[
            ("token", revoked.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(introspect(&provider, &revoked).await["active"], false);

    let seen = echo(&api, &client).await;

    assert_ne!(seen.token(), revoked);
    assert_eq!(seen.introspected("client_id"), SERVICE_ID);
    let counters = api.control().counters();
    assert_eq!(
        (counters.api_requests, counters.api_unauthorized),
        (3, 1),
        "one 401, one resend"
    );
    assert_eq!(auth.cache().stats().invalidations, 1);
    assert_eq!(provider.issued(SERVICE_ID, CLIENT_CREDENTIALS).await, 2);
    assert_eq!(
        provider
            .count("client_credentials.destroyed", SERVICE_ID, None)
            .await,
        1
    );
}

/// A wrong client secret: a typed, permanent `invalid_client`, the API
/// request never sent, the token request sent once (neither the source nor
/// `reqwest-retry` retries it), and neither secret in the error.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_a_typed_invalid_client_error_and_not_retried() {
    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let wrong_secret = "not-the-service-secret-987";
    let source = ClientCredentials::new(
        provider.issuer().join("/token").unwrap(),
        SERVICE_ID,
        wrong_secret,
    );
    let (_auth, client) = client(&api, short_lived_cache(source).build());

    let error = client
        .get(api.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();

    let bearer = BearerError::find(&error).expect("a BearerError, through reqwest-retry");
    assert!(
        matches!(bearer, BearerError::NoToken(TokenError::OAuth { .. })),
        "{bearer:?}"
    );
    let oauth = bearer.oauth().expect("the provider's RFC 6749 error");
    assert_eq!(oauth.code, "invalid_client");
    assert_eq!(oauth.status, 401);
    assert!(!bearer.is_transient());
    assert!(!bearer.request_sent());
    assert_eq!(
        provider.refused(SERVICE_ID).await,
        1,
        "the token request was not retried"
    );
    assert_eq!(provider.issued(SERVICE_ID, CLIENT_CREDENTIALS).await, 0);
    assert_eq!(api.control().counters().api_requests, 0);
    let shown = format!(
        "{error} {error:?} {bearer} {bearer:?} {:?}",
        std::error::Error::source(bearer)
    );
    assert!(!shown.contains(wrong_secret), "the secret leaked: {shown}");
    assert!(!shown.contains(SERVICE_SECRET));
}

/// Authorization code + PKCE (S256; the provider requires it of public
/// clients) on a loopback redirect with any port, the person's login and
/// consent driven by form posts. Then the access token expires twice and
/// the rotating refresh token carries on: each refresh spends the previous
/// refresh token (a reused one would make the provider revoke the whole
/// grant), and no second sign-in is needed.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_with_pkce_then_rotating_refresh_tokens() {
    let provider = Provider::start(Options {
        access_ttl_secs: 2,
        ..Options::default()
    })
    .await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    let sign_ins = Arc::new(AtomicUsize::new(0));
    let (done, mut browser_result) = mpsc::unbounded_channel();
    let opened = sign_ins.clone();
    let authorize_urls = Arc::new(std::sync::Mutex::new(Vec::<url::Url>::new()));
    let opened_urls = authorize_urls.clone();
    let source = metadata
        .authorization_code(CLI_ID, move |url| {
            opened.fetch_add(1, Ordering::SeqCst);
            opened_urls.lock().unwrap().push(url.clone());
            let (url, done) = (url.clone(), done.clone());
            tokio::spawn(async move {
                let _ = done.send(Browser::new("alice").complete(url).await);
            });
        })
        .expect("the provider has an authorization endpoint")
        .scope("openid api:read")
        .login_timeout(Duration::from_secs(20));
    let refresh_tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_refresh = refresh_tokens.clone();
    let cache = short_lived_cache(source)
        .on_change(move |_key, token| {
            if let Some(r) = token.refresh_token() {
                seen_refresh.lock().unwrap().push(r.clone());
            }
        })
        .build();
    let (auth, client) = client(&api, cache);
    let key = TokenKey::default();

    let seen = echo(&api, &client).await;
    let finished = browser_result
        .recv()
        .await
        .unwrap()
        .expect("login and consent by form posts");
    assert_eq!(
        finished.url.path(),
        "/callback",
        "the browser ended at our loopback redirect"
    );
    let authorize = authorize_urls.lock().unwrap()[0].clone();
    let param = |name: &str| {
        authorize
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("code_challenge").map(|c| c.len()), Some(43));
    assert!(
        param("code_verifier").is_none(),
        "the verifier stays with us"
    );
    assert!(
        param("redirect_uri")
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(seen.introspected("client_id"), CLI_ID);
    assert_eq!(seen.introspected("sub"), "alice");
    let mut tokens = vec![seen.token()];

    for _ in 0..2 {
        let current = auth.cache().get(&key).await.unwrap();
        until(current.expires_at()).await;
        let seen = echo(&api, &client).await;
        assert_eq!(seen.introspected("sub"), "alice");
        assert!(!tokens.contains(&seen.token()), "a new access token");
        tokens.push(seen.token());
    }

    assert_eq!(
        sign_ins.load(Ordering::SeqCst),
        1,
        "one sign-in; refreshes after that"
    );
    assert_eq!(provider.issued(CLI_ID, "authorization_code").await, 1);
    assert_eq!(provider.issued(CLI_ID, REFRESH_TOKEN).await, 2);
    assert_eq!(
        provider.count("refresh_token.consumed", CLI_ID, None).await,
        2,
        "rotation"
    );
    assert_eq!(provider.refused(CLI_ID).await, 0);
    let refresh_tokens = refresh_tokens.lock().unwrap().clone();
    assert_eq!(refresh_tokens.len(), 3);
    assert!(refresh_tokens[0] != refresh_tokens[1] && refresh_tokens[1] != refresh_tokens[2]);
    assert_eq!(api.control().counters().api_unauthorized, 0);

    // The provider really rotated: the first refresh token is spent, and
    // presenting it is a typed refusal (which also revokes the grant, as
    // OAuth 2.0 Security BCP §4.14.2 asks of a replayed refresh token).
    let replay = reqwest_bearer::oauth2::RefreshTokenGrant::new(
        metadata.token_endpoint.clone(),
        CLI_ID,
        refresh_tokens[0].clone(),
    );
    let cx = reqwest_bearer::FetchContext::new(&key, None, reqwest_bearer::FetchReason::Initial);
    let refused = replay.fetch(cx).await.unwrap_err();
    assert!(
        matches!(refused, TokenError::ReauthenticationRequired(_)),
        "{refused:?}"
    );
    let shown = format!("{refused} {refused:?} {replay:?}");
    assert!(
        !refresh_tokens
            .iter()
            .any(|r| shown.contains(r.expose_secret())),
        "a refresh token leaked"
    );
    assert_eq!(
        introspect(&provider, tokens.last().unwrap()).await["active"],
        false,
        "grant revoked"
    );
}

/// A clock whose sleep returns when the person has approved: the device flow's
/// poll interval stands for "the time the person took", so the first poll
/// finds the approval, with no real waiting and no wasted polls.
#[derive(Debug, Clone, Default)]
struct AfterApproval {
    approved: Arc<Notify>,
}

impl Clock for AfterApproval {
    fn now(&self) -> std::time::Instant {
        SystemClock.now()
    }

    fn system_now(&self) -> std::time::SystemTime {
        SystemClock.system_now()
    }

    fn sleep(&self, _interval: Duration) -> BoxFuture<'static, ()> {
        let approved = self.approved.clone();
        Box::pin(async move { approved.notified().await })
    }
}

/// The device authorization grant (RFC 8628): the person confirms the user
/// code, logs in and consents through the provider's pages, by form posts.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_approved_through_the_providers_pages() {
    let provider = Provider::start(Options {
        access_ttl_secs: 60,
        ..Options::default()
    })
    .await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    let gate = AfterApproval::default();
    let approved = gate.approved.clone();
    let prompts = Arc::new(std::sync::Mutex::new(Vec::<DevicePrompt>::new()));
    let shown = prompts.clone();
    let (done, mut browser_result) = mpsc::unbounded_channel();
    let source = metadata
        .device_code(TV_ID, move |prompt| {
            shown.lock().unwrap().push(prompt.clone());
            let url = prompt
                .verification_uri_complete
                .clone()
                .expect("oidc-provider sends it");
            let (approved, done) = (approved.clone(), done.clone());
            tokio::spawn(async move {
                let result = Browser::new("bob").complete(url.parse().unwrap()).await;
                let _ = done.send(result);
                // notify_one keeps the permit if the poll has not started waiting yet.
                approved.notify_one();
            });
        })
        .expect("the provider has a device authorization endpoint")
        .scope("api:read")
        .clock(gate);
    let (_auth, client) = client(&api, short_lived_cache(source).build());

    let seen = echo(&api, &client).await;

    let finished = browser_result
        .recv()
        .await
        .unwrap()
        .expect("confirm, login and consent by form posts");
    assert!(
        finished.body.to_lowercase().contains("sign-in success"),
        "the provider's success page"
    );
    let prompts = prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 1);
    assert!(
        prompts[0]
            .verification_uri
            .starts_with(provider.issuer().as_str().trim_end_matches('/'))
    );
    assert_eq!(seen.introspected("client_id"), TV_ID);
    assert_eq!(seen.introspected("sub"), "bob");
    assert_eq!(seen.introspected("scope"), "api:read");
    assert_eq!(
        provider
            .count("device_authorization.success", TV_ID, None)
            .await,
        1
    );
    assert_eq!(provider.issued(TV_ID, DEVICE_CODE).await, 1);
    assert_eq!(
        provider.refused(TV_ID).await,
        0,
        "no authorization_pending polls"
    );
}

/// `examples/web_app.rs` against oidc-provider: two people sign in through
/// the provider's login and consent pages, and each `/me` reaches the API
/// with that person's own token. Once the provider says a person's access
/// token has expired, their next `/me` is served through their rotating
/// refresh token, kept in the app's storage: no new sign-in.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_example_signs_people_in_and_calls_the_api_for_each() {
    use reqwest_bearer::oauth2::{MemoryRefreshTokens, RefreshTokenStorage};

    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app: url::Url = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let storage = Arc::new(MemoryRefreshTokens::default());
    let router = web_app::router(web_app::Config {
        authorize_url: metadata.authorization_endpoint.clone().unwrap(),
        token_url: metadata.token_endpoint.clone(),
        client_id: WEB_ID.to_owned(),
        client_secret: WEB_SECRET.to_owned(),
        redirect_uri: app.join("/callback").unwrap(),
        scope: "openid api:read".to_owned(),
        api_url: api.api_url("/api/echo"),
        storage: storage.clone(),
    })
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let (mut alice, mut bob) = (Browser::new("alice"), Browser::new("bob"));
    let me = async |browser: &mut Browser, start: &str| {
        let finished = browser
            .complete(app.join(start).unwrap())
            .await
            .expect("sign-in by form posts");
        assert_eq!(finished.url.path(), "/me", "{}", finished.body);
        setup::Echo(serde_json::from_str(&finished.body).expect("the API's echo"))
    };
    let seen_alice = me(&mut alice, "/login?user=alice").await;
    let seen_bob = me(&mut bob, "/login?user=bob").await;
    assert_eq!(seen_alice.introspected("sub"), "alice");
    assert_eq!(seen_bob.introspected("sub"), "bob");
    assert_eq!(seen_alice.introspected("client_id"), WEB_ID);
    assert_ne!(seen_alice.token(), seen_bob.token());
    assert_eq!(provider.issued(WEB_ID, "authorization_code").await, 2);
    let kept = storage
        .load("alice")
        .await
        .unwrap()
        .expect("alice's refresh token");

    // The provider's own word on when alice's token dies (its clock is real).
    let exp = introspect(&provider, &seen_alice.token()).await["exp"]
        .as_u64()
        .expect("an active token's exp");
    let dead_at = UNIX_EPOCH + Duration::from_secs(exp + 1);
    let wait = dead_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    until(std::time::Instant::now() + wait).await;
    assert_eq!(
        introspect(&provider, &seen_alice.token()).await["active"],
        false
    );

    let again = me(&mut alice, "/me").await;
    assert_eq!(again.introspected("sub"), "alice");
    assert_ne!(again.token(), seen_alice.token());
    assert!(provider.issued(WEB_ID, REFRESH_TOKEN).await >= 1);
    assert_eq!(
        provider.issued(WEB_ID, "authorization_code").await,
        2,
        "no new sign-in"
    );
    assert_ne!(
        storage.load("alice").await.unwrap().unwrap(),
        kept,
        "rotated and kept"
    );
    assert_eq!(provider.refused(WEB_ID).await, 0);
}

/// `examples/cli_sign_in.rs` against oidc-provider: the CLI prints the
/// authorization URL, the person signs in, their browser lands on a
/// redirect URI where nothing listens, and the URL in its address bar is
/// pasted back; the token then reaches the API.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_example_signs_in_from_a_pasted_callback_url() {
    use reqwest_bearer::RequestBuilderExt;
    use reqwest_bearer::oauth2::UserSignIn;

    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.unwrap();
    let redirect: url::Url = "http://127.0.0.1:9/callback".parse().unwrap();
    let sign_in = Arc::new(
        UserSignIn::new(
            metadata.authorization_endpoint.clone().unwrap(),
            metadata.token_endpoint.clone(),
            CLI_ID,
            redirect.clone(),
        )
        .scope("openid api:read"),
    );
    let key = cli_driver::sign_in_at_the_terminal(sign_in.clone(), async |authorize| {
        let landed = Browser::new("carol")
            .stop_at(redirect)
            .complete(authorize)
            .await
            .expect("sign-in by form posts");
        landed.url.to_string()
    })
    .await;

    let (_auth, client) = client(&api, short_lived_cache(sign_in).build());
    let response = client
        .get(api.api_url("/api/echo"))
        .token_key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = setup::Echo(response.json().await.unwrap());
    assert_eq!(seen.introspected("sub"), "carol");
    assert_eq!(seen.introspected("client_id"), CLI_ID);
    assert_eq!(provider.issued(CLI_ID, "authorization_code").await, 1);
}
