//! Requests through a client, one at a time or per second, for the benches
//! that compare middlewares (`middleware.rs`, `dpop.rs`, and the scenario
//! harness's `overhead`).

use std::time::{Duration, Instant};

use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION};
use reqwest_middleware::ClientWithMiddleware;

/// Requests per second over `duration`, with `concurrency` workers each
/// sending one request at a time (with `header` as `Authorization`, if
/// given) and reading the whole answer.
pub(crate) async fn throughput(
    client: &ClientWithMiddleware,
    url: &url::Url,
    header: Option<&HeaderValue>,
    concurrency: usize,
    duration: Duration,
) -> f64 {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            let header = header.cloned();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    send_one(&client, &url, header.as_ref()).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker finished");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// One request (with `header` as `Authorization`, if given), its answer
/// checked for success and read whole.
pub(crate) async fn send_one(
    client: &ClientWithMiddleware,
    url: &url::Url,
    header: Option<&HeaderValue>,
) {
    send_one_with(client, url, header, None).await;
}

/// [`send_one`], with `accept` as the request's own `Accept` field, if
/// given.
pub(crate) async fn send_one_with(
    client: &ClientWithMiddleware,
    url: &url::Url,
    header: Option<&HeaderValue>,
    accept: Option<&HeaderValue>,
) {
    let mut request = client.get(url.clone());
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept.clone());
    }
    if let Some(h) = header {
        request = request.header(AUTHORIZATION, h.clone());
    }
    let response = request.send().await.expect("request sent");
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.expect("body read");
}
