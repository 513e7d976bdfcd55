//! A login endpoint exactly as a team has it in Python:
//!
//! ```python
//! token = requests.post(f"{base}/auth/token",
//!                       data={"username": user, "password": password}).json()["token"]
//! requests.get(f"{base}/api/echo", headers={"Authorization": f"Bearer {token}"})
//! ```
//!
//! modelled with the test kit (`POST /auth/token`, form fields `username` and
//! `password`, the token in `"token"`) and called through the middleware,
//! using only what `reqwest_bearer` re-exports.

use std::collections::HashMap;

use bearer_testkit::{Endpoint, LoginForm, TestServer};
use reqwest_bearer::oauth2::{LoginEncoding, LoginEndpoint};
use reqwest_bearer::reqwest_middleware::ClientBuilder;
use reqwest_bearer::secrecy::SecretString;
use reqwest_bearer::{BearerAuth, TokenCache, reqwest};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_login_snippet_through_the_middleware() {
    let server = TestServer::builder()
        .login_form(LoginForm::new("/auth/token"))
        .start()
        .await;
    assert_eq!(server.login_url().path(), "/auth/token");

    let password = SecretString::from(server.password().to_owned());
    let source = LoginEndpoint::new(server.login_url(), server.username(), password)
        .encoding(LoginEncoding::Form)
        .token_pointer("token");
    let auth = BearerAuth::new(TokenCache::builder(source).build(), server.base_url()).unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth.clone())
        .build();

    let order = HashMap::from([("sku", "A-1")]);
    let response = client
        .post(server.api_url("/api/echo"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    let token = auth.cache().get(&Default::default()).await.unwrap();
    assert_eq!(
        echo["headers"]["authorization"].as_str(),
        Some(token.expose_authorization_value())
    );
    assert_eq!(echo["body"], r#"{"sku":"A-1"}"#);

    let login = server.control().last_headers(Endpoint::Login).unwrap();
    assert!(
        login["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    assert_eq!(server.control().counters().login_tokens_issued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_login_path_is_gone_once_another_is_configured() {
    let server = TestServer::builder()
        .login_form(LoginForm::new("auth/token"))
        .start()
        .await;
    let old = reqwest::Client::new()
        .post(server.api_url("/login"))
        .form(&[
            ("username", server.username()),
            ("password", server.password()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 404);
    assert_eq!(server.login_url().path(), "/auth/token");
}
