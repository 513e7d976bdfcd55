//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bearer_testkit::TestServer;
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use url::Url;

/// A client that does not follow redirects.
pub fn no_redirects() -> Client {
    bearer_testkit::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A form POST to `url` from the default client over `client_secret_basic`.
pub async fn post_form(server: &TestServer, url: Url, form: &[(&str, &str)]) -> Response {
    bearer_testkit::client_builder()
        .build()
        .unwrap()
        .post(url)
        .basic_auth(server.client_id(), Some(server.client_secret()))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// A token request from the default client over `client_secret_basic`.
pub async fn token(server: &TestServer, form: &[(&str, &str)]) -> Response {
    post_form(server, server.token_url(), form).await
}

/// A password grant for the kit's user; asserts 200 and returns the JSON body.
pub async fn password_grant(server: &TestServer, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", server.username()),
        ("password", server.password()),
    ];
    form.extend_from_slice(extra);
    let (status, body) = json(token(server, &form).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A successful client-credentials access token.
pub async fn access_token(server: &TestServer, scope: &str) -> String {
    let response = token(
        server,
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Status and JSON body.
pub async fn json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The `WWW-Authenticate` header.
pub fn challenge(response: &Response) -> Option<String> {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// GET an API path with a bearer token.
pub async fn api_get(server: &TestServer, path: &str, token: &str) -> Response {
    bearer_testkit::client_builder()
        .build()
        .unwrap()
        .get(server.api_url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}
