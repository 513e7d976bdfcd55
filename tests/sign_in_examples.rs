//! The two sign-in examples, driven end to end against the test kit over
//! loopback: `examples/web_app.rs` (axum, a token per signed-in user) and
//! `examples/cli_sign_in.rs` (print the URL, paste the callback URL back).
//! The test plays the browser: it follows the redirects by hand, carrying
//! the app's session cookie.

mod cli_driver;
#[path = "../examples/web_app.rs"]
#[allow(dead_code)]
mod web_app;

use std::sync::Arc;

use bearer_testkit::{TestServer, UserConfig, query_params};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode, redirect};
use reqwest_bearer::oauth2::{MemoryRefreshTokens, RefreshTokenStorage, UserSignIn};
use reqwest_bearer::{BearerAuth, RequestBuilderExt, TokenCache};
use reqwest_middleware::ClientBuilder;
use serde_json::Value;
use url::Url;

/// The test kit as provider and API, with a second user.
async fn provider() -> TestServer {
    TestServer::builder()
        .add_user(UserConfig::new("bob", "builder"))
        .rotate_refresh_tokens(true)
        .start()
        .await
}

/// The web app on an ephemeral loopback port, and its refresh-token storage.
async fn start_web_app(provider: &TestServer) -> (Url, Arc<MemoryRefreshTokens>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base: Url = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let storage = Arc::new(MemoryRefreshTokens::default());
    let app = web_app::router(web_app::Config {
        authorize_url: provider.authorize_url(),
        token_url: provider.token_url(),
        client_id: provider.client_id().to_owned(),
        client_secret: provider.client_secret().to_owned(),
        redirect_uri: base.join("/callback").unwrap(),
        scope: "read".to_owned(),
        api_url: provider.api_url("/api/echo"),
        storage: storage.clone(),
    })
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, storage)
}

/// A browser that follows no redirect by itself and keeps the app's cookie.
struct Browser {
    http: Client,
    cookie: Option<String>,
}

impl Browser {
    fn new() -> Self {
        Browser {
            http: Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn get(&mut self, url: &Url) -> reqwest::Response {
        let mut request = self.http.get(url.clone());
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let set = set.to_str().unwrap();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        response
    }

    /// GETs `url`, expecting a redirect: where to.
    async fn redirected(&mut self, url: &Url) -> Url {
        let response = self.get(url).await;
        assert!(
            response.status().is_redirection(),
            "{url} answered {}",
            response.status()
        );
        let location = response.headers()[LOCATION].to_str().unwrap();
        url.join(location).unwrap()
    }

    /// Signs in at the app as `user`: the app's redirect to the provider,
    /// the provider's back to the app's callback, and the callback's to /me.
    async fn sign_in(&mut self, app: &Url, user: &str) -> Url {
        let authorize = self
            .redirected(&app.join(&format!("/login?user={user}")).unwrap())
            .await;
        let q = query_params(&authorize);
        assert_eq!(q["login_hint"], user);
        assert_eq!(q["code_challenge_method"], "S256");
        let callback = self.redirected(&authorize).await;
        assert_eq!(callback.path(), "/callback");
        self.redirected(&callback).await
    }

    /// `/me`: what the API saw, on this session's user's behalf.
    async fn me(&mut self, app: &Url) -> Value {
        let response = self.get(&app.join("/me").unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

fn bearer(echo: &Value) -> &str {
    echo["headers"]["authorization"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_calls_the_api_with_each_signed_in_users_own_token() {
    let provider = provider().await;
    let (app, storage) = start_web_app(&provider).await;
    let (mut alice, mut bob) = (Browser::new(), Browser::new());

    assert_eq!(alice.sign_in(&app, "alice").await.path(), "/me");
    assert_eq!(bob.sign_in(&app, "bob").await.path(), "/me");
    let (seen_alice, seen_bob) = (alice.me(&app).await, bob.me(&app).await);
    assert_eq!(seen_alice["token"]["sub"], "alice");
    assert_eq!(seen_bob["token"]["sub"], "bob");
    assert_ne!(bearer(&seen_alice), bearer(&seen_bob));
    // Each token was fetched once: the sign-in's, served from the cache.
    assert_eq!(bearer(&alice.me(&app).await), bearer(&seen_alice));
    assert_eq!(provider.control().counters().issued.authorization_code, 2);
    let alice_refresh = storage.load("alice").await.unwrap().expect("kept");
    assert!(storage.load("bob").await.unwrap().is_some());

    // The API revokes every access token: each user's next call is
    // refreshed with their own refresh token, which rotates in storage.
    provider.control().revoke_all();
    let again = alice.me(&app).await;
    assert_eq!(again["token"]["sub"], "alice");
    assert_ne!(bearer(&again), bearer(&seen_alice));
    assert_eq!(provider.control().counters().issued.refresh_token, 1);
    let rotated = storage.load("alice").await.unwrap().expect("kept");
    assert_ne!(rotated, alice_refresh);
    assert_eq!(bob.me(&app).await["token"]["sub"], "bob");
    assert_eq!(provider.control().counters().issued.refresh_token, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_sends_a_user_whose_refresh_token_died_to_sign_in_again() {
    let provider = provider().await;
    let (app, storage) = start_web_app(&provider).await;
    let mut alice = Browser::new();
    alice.sign_in(&app, "alice").await;
    alice.me(&app).await;

    provider.control().revoke_all();
    provider.control().revoke_all_refresh_tokens();
    let to = alice.redirected(&app.join("/me").unwrap()).await;
    assert_eq!(to.path(), "/login");
    assert_eq!(query_params(&to)["user"], "alice");
    assert!(storage.load("alice").await.unwrap().is_none(), "forgotten");

    assert_eq!(alice.sign_in(&app, "alice").await.path(), "/me");
    assert_eq!(alice.me(&app).await["token"]["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_refuses_a_forged_callback_and_reports_a_denied_sign_in() {
    let provider = provider().await;
    let (app, storage) = start_web_app(&provider).await;

    // A callback whose state is not the session's: no token request.
    let mut victim = Browser::new();
    let authorize = victim
        .redirected(&app.join("/login?user=alice").unwrap())
        .await;
    let genuine = Browser::new().redirected(&authorize).await;
    let mut forged = genuine.clone();
    forged.set_query(Some(&format!(
        "code={}&state=forged",
        query_params(&genuine)["code"]
    )));
    let response = victim.get(&forged).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let text = response.text().await.unwrap();
    assert!(text.contains("state does not match"), "{text}");
    assert_eq!(provider.control().counters().token_requests, 0);

    // The user says no at the provider: a typed error, shown.
    provider.control().deny_next_authorizations(1);
    let mut refuser = Browser::new();
    let authorize = refuser
        .redirected(&app.join("/login?user=bob").unwrap())
        .await;
    let callback = refuser.redirected(&authorize).await;
    let response = refuser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let text = response.text().await.unwrap();
    assert!(text.contains("access_denied"), "{text}");
    assert!(!text.contains(&query_params(&authorize)["state"]), "{text}");
    assert_eq!(provider.control().counters().token_requests, 0);
    assert!(storage.load("bob").await.unwrap().is_none());
}

/// Runs the CLI's sign-in with `paste` deciding what to paste back, given
/// the callback URL the provider redirected to; then calls the API with the
/// key it returned.
async fn cli_sign_in(paste: impl FnOnce(&Url) -> String) -> (TestServer, Value) {
    let provider = provider().await;
    let sign_in = Arc::new(
        UserSignIn::new(
            provider.authorize_url(),
            provider.token_url(),
            provider.client_id(),
            "http://localhost:9/callback".parse().unwrap(),
        )
        .client_secret(provider.client_secret())
        .scope("read"),
    );
    let key = cli_driver::sign_in_at_the_terminal(sign_in.clone(), async |authorize| {
        let callback = Browser::new().redirected(&authorize).await;
        assert_eq!(
            callback.as_str().split('?').next(),
            Some("http://localhost:9/callback")
        );
        paste(&callback)
    })
    .await;

    let auth = BearerAuth::new(TokenCache::builder(sign_in).build(), provider.base_url()).unwrap();
    let client = ClientBuilder::new(Client::new()).with(auth).build();
    let echo = client
        .get(provider.api_url("/api/echo"))
        .token_key(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (provider, echo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_signs_in_from_the_pasted_callback_url() {
    let (provider, echo) = cli_sign_in(|callback| callback.to_string()).await;
    assert_eq!(echo["token"]["sub"], "alice");
    assert_eq!(provider.control().counters().issued.authorization_code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_signs_in_from_the_pasted_code_alone() {
    let (provider, echo) = cli_sign_in(|callback| query_params(callback)["code"].clone()).await;
    assert_eq!(echo["token"]["sub"], "alice");
    assert_eq!(provider.control().counters().issued.authorization_code, 1);
}
