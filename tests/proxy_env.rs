//! Proxy variables are ignored where a proxy would see tokens in clear:
//! the test kit's clients and the quickstart's, which talk plain `http` to
//! loopback. The variables are process-wide, so the check runs in a child
//! process of this test binary with them set to a proxy that is not there:
//! the same test, which sees `CHILD_MARK` and checks instead of spawning.

use std::process::Command;

use bearer_testkit::{ApiValidator, TestServer};
use reqwest_bearer::BearerAuth;

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

const TEST: &str = "proxy_variables_are_ignored";
const CHILD_MARK: &str = "BEARER_PROXY_ENV_CHILD";

#[test]
fn proxy_variables_are_ignored() {
    if std::env::var_os(CHILD_MARK).is_some() {
        return clients_under_proxy_variables();
    }
    // A port nothing listens on: a client that used the proxy fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", TEST, "--test-threads=1"])
        .env(CHILD_MARK, "1");
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        child.env(name, &proxy);
    }
    let status = child
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .status()
        .unwrap();
    assert!(status.success(), "the child test failed: {status}");
}

#[tokio::main(flavor = "current_thread")]
async fn clients_under_proxy_variables() {
    assert!(std::env::var("HTTP_PROXY").is_ok(), "run as the child");
    let server = TestServer::start().await;
    let echo = server.other_origin_url("/echo");
    // The control: reqwest's default client goes through the dead proxy.
    let default = reqwest::Client::new().get(echo.clone()).send().await;
    assert!(default.is_err(), "the proxy variables are not in effect");

    let kit = bearer_testkit::client_builder().build().unwrap();
    assert_eq!(kit.get(echo.clone()).send().await.unwrap().status(), 200);
    for policy in [
        reqwest::redirect::Policy::none(),
        BearerAuth::redirect_policy(),
    ] {
        let http = quickstart::http(policy).unwrap();
        assert_eq!(http.get(echo.clone()).send().await.unwrap().status(), 200);
    }
    // The kit's own client: the API checks tokens by introspection at the
    // kit's own endpoint, over loopback.
    let token = server.control().mint_access_token("read");
    server
        .control()
        .set_api_validator(ApiValidator::Introspection {
            url: server.introspection_url(),
            client_id: server.client_id().to_owned(),
            client_secret: server.client_secret().to_owned(),
        });
    let response = kit
        .get(server.api_url("/api/echo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
