//! The resend copy: what a request resent after a 401 carries (method, URL
//! with its query, every header the caller set, in order, the body, the
//! timeout), with only the token replaced.

#[path = "middleware_support/mod.rs"]
mod support;

use std::time::Duration;

use support::{echo, echoed_token, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_request_is_the_one_sent_with_a_new_token() {
    let (server, _auth, client) = setup().await;
    let control = server.control();
    let mut url = server.api_url("/api/echo");
    url.query_pairs_mut().append_pair("page", "2");
    // At and above the headers the copy keeps inline (three, which the
    // request below has of its own).
    for extra in [0, 3, 8] {
        let first = echo(client.get(url.clone()).send().await.unwrap()).await;
        control.reject_next_api_requests(1);
        let mut request = client
            .post(url.clone())
            .timeout(Duration::from_secs(30))
            .header("content-type", "application/json")
            .header("x-repeated", "one")
            .header("x-repeated", "two");
        for i in 0..extra {
            request = request.header(format!("x-extra-{i}"), format!("value {i}"));
        }
        let body = format!(r#"{{"extra":{extra}}}"#);
        let answer = echo(request.body(body.clone()).send().await.unwrap()).await;

        assert_eq!(answer["method"], "POST");
        assert_eq!(answer["path"], "/api/echo");
        assert_eq!(answer["query"], "page=2");
        assert_eq!(answer["body"], body.as_str());
        let headers = &answer["headers"];
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-repeated"], "one, two", "both values, in order");
        for i in 0..extra {
            assert_eq!(headers[format!("x-extra-{i}")], format!("value {i}"));
        }
        // Resent, with a token other than the one refused.
        assert_ne!(echoed_token(&answer), echoed_token(&first));
        assert!(echoed_token(&answer).is_some());
    }
    let counters = control.counters();
    assert_eq!(counters.api_unauthorized, 3);
    assert_eq!(counters.issued.client_credentials, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_a_fragment_is_resent_to_the_same_url() {
    let (server, _auth, client) = setup().await;
    let control = server.control();
    let mut url = server.api_url("/api/echo?q=1");
    url.set_fragment(Some("section"));
    control.reject_next_api_requests(1);
    let response = client.get(url).send().await.unwrap();
    let answer = echo(response).await;
    assert_eq!(answer["path"], "/api/echo");
    assert_eq!(answer["query"], "q=1");
    assert_eq!(control.counters().api_unauthorized, 1);
    assert_eq!(control.counters().issued.client_credentials, 2);
}
