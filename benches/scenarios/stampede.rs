//! stampede: N concurrent first requests on an empty cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bearer_testkit::TestServer;
use tokio::sync::Barrier;

use crate::common::{
    Impl, Line, Mode, Recorded, Report, client, get_ok, http_client, ms, percentile, source,
};
use crate::peer;

/// Connections in flight at most, for every implementation (authlib's too).
const CONNECTIONS: usize = 1000;

pub async fn run(mode: Mode, report: &mut Report, python: Option<&Path>) {
    let callers = mode.pick(2_000, 10_000);
    for imp in Impl::ALL {
        let server = TestServer::start().await;
        let c = client(
            imp,
            &server,
            &http_client(),
            Recorded::new(source(&server)),
            Some(CONNECTIONS),
        );
        let url = server.api_url("/api/echo");
        let barrier = Arc::new(Barrier::new(callers + 1));
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (http, url, barrier) = (c.http.clone(), url.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let started = Instant::now();
                    let ok = get_ok(&http, &url).await;
                    (ok, ms(started.elapsed()))
                })
            })
            .collect();
        barrier.wait().await;
        let mut latencies = Vec::with_capacity(callers);
        let mut failures = 0;
        for t in tasks {
            let (ok, latency) = t.await.expect("caller");
            failures += u64::from(!ok);
            latencies.push(latency);
        }
        let fetches = server.control().counters().issued.total();
        report.push(
            Line::new("stampede", imp.name())
                .field("callers", callers)
                .field("fetches", fetches)
                .field("p99_ms", format!("{:.1}", percentile(&mut latencies, 0.99)))
                .field("failures", failures),
        );
    }
    if let Some(python) = python {
        let server = TestServer::start().await;
        let extra = vec!["--callers".to_owned(), callers.to_string()];
        match peer::run_scenario(python, &server, "stampede", &extra, || {}).await {
            Ok(v) => report.push(
                Line::new("stampede", "authlib")
                    .field("callers", callers)
                    .field("fetches", server.control().counters().issued.total())
                    .field(
                        "p99_ms",
                        format!("{:.1}", v["p99_ms"].as_f64().unwrap_or(f64::NAN)),
                    )
                    .field("failures", v["failures"].as_u64().unwrap_or(0)),
            ),
            Err(e) => report.note(format!("SKIPPED: authlib peer stampede ({e})")),
        }
    }
}
