//! The metrics an operator watches, recorded by `metrics-util`'s debugging
//! recorder while the layer talks to the test kit over loopback.
#![cfg(feature = "metrics")]

mod support;

use std::time::Duration;

use bearer_testkit::{TestServer, TokenFault};
use bearer_tower::BearerLayer;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{Service, ServiceExt};

/// `GET /api/echo` through `layer`: the status, or `None` for an error.
async fn get(layer: &BearerLayer, server: &TestServer) -> Option<u16> {
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut client = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper);
    let request = Request::get(server.api_url("/api/echo").to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    Some(status)
}

/// One metric as recorded: name, labels, kind, value.
type Metric = (String, Vec<(String, String)>, MetricKind, DebugValue);

struct Seen(Vec<Metric>);

impl Seen {
    fn take(snapshotter: &Snapshotter) -> Seen {
        Seen(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(key, _, _, value)| {
                    let (kind, key) = key.into_parts();
                    let labels = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    (key.name().to_owned(), labels, kind, value)
                })
                .collect(),
        )
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.0
            .iter()
            .find(|(n, l, _, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, _, value)| value)
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }
}

#[test]
fn fetches_hits_rejections_and_resends_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A local recorder: this test's figures are its own, whatever runs
    // beside it. The current-thread runtime keeps every task on this thread.
    let secret = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let server = TestServer::start().await;
            let good = support::layer(&server, support::WAIT);
            assert_eq!(get(&good, &server).await, Some(200)); // miss, initial fetch
            assert_eq!(get(&good, &server).await, Some(200)); // hit
            server.control().revoke_all();
            assert_eq!(get(&good, &server).await, Some(200)); // hit, 401, resend
            let token = good.cache().get(&Default::default()).await.unwrap();

            server.control().fail_next_token_requests(
                1,
                TokenFault::OAuthError {
                    status: 401,
                    error: "invalid_client".into(),
                    description: None,
                },
            );
            let refused = support::layer(&server, Duration::ZERO);
            assert_eq!(get(&refused, &server).await, None);
            (
                token.expose_authorization_value().to_owned(),
                server.client_secret().to_owned(),
            )
        })
    });

    let seen = Seen::take(&snapshotter);
    let fetches = "bearer_token_fetches_total";
    assert_eq!(
        seen.counter(fetches, &[("reason", "initial"), ("outcome", "success")]),
        1
    );
    assert_eq!(
        seen.counter(fetches, &[("reason", "rejected"), ("outcome", "success")]),
        1
    );
    assert_eq!(
        seen.counter(
            fetches,
            &[("reason", "initial"), ("outcome", "permanent_error")]
        ),
        1
    );
    // Two good lookups, the one after the revocation, and the test's own `get`.
    assert_eq!(seen.counter("bearer_cache_hits_total", &[]), 3);
    assert_eq!(seen.counter("bearer_cache_misses_total", &[]), 3);
    assert_eq!(seen.counter("bearer_cache_invalidations_total", &[]), 1);
    assert_eq!(
        seen.counter("bearer_auth_rejections_total", &[("verdict", "refresh")]),
        1
    );
    assert_eq!(seen.counter("bearer_auth_resends_total", &[]), 1);
    match seen.find(
        "bearer_token_fetch_duration_seconds",
        &[("outcome", "success")],
    ) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(samples.len(), 2);
            assert!(samples.iter().all(|s| s.0 >= 0.0));
        }
        other => panic!("no fetch durations: {other:?}"),
    }
    match seen.find("bearer_token_time_to_expiry_seconds", &[]) {
        Some(DebugValue::Gauge(left)) => assert!(left.0 > 0.0 && left.0 <= 3600.0, "{left:?}"),
        other => panic!("no time to expiry: {other:?}"),
    }

    // Names follow the `metrics` conventions; no label holds a secret.
    let (token, client_secret) = secret;
    for (name, labels, kind, _) in &seen.0 {
        assert!(name.starts_with("bearer_"), "{name}");
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
        if *kind == MetricKind::Counter {
            assert!(name.ends_with("_total"), "{name}");
        } else {
            assert!(name.ends_with("_seconds"), "{name}");
        }
        for (key, value) in labels {
            for secret in [token.as_str(), client_secret.as_str()] {
                assert!(!value.contains(secret) && !key.contains(secret));
            }
        }
    }
}
