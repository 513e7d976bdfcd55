//! overhead: requests per second with a token layer vs the same client
//! sending the same header by hand, warm token, in alternating rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bearer_testkit::TestServer;
use http::header::AUTHORIZATION;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

use crate::common::{
    Impl, Line, Mode, Recorded, Report, client, get_ok, http_client, median, source,
};

/// Completed requests per second over `period` with `concurrency` workers.
async fn throughput(
    client: &ClientWithMiddleware,
    url: &url::Url,
    header: Option<&str>,
    concurrency: usize,
    period: Duration,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + period;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.clone(), done.clone());
            let header = header.map(str::to_owned);
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let mut request = client.get(url.clone());
                    if let Some(h) = &header {
                        request = request.header(AUTHORIZATION, h.as_str());
                    }
                    let ok = match request.send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    assert!(ok, "overhead: a request failed");
                    done.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    done.load(Relaxed) as f64 / started.elapsed().as_secs_f64()
}

pub async fn run(mode: Mode, report: &mut Report) {
    let server = TestServer::start().await;
    let url = server.api_url("/api/echo");
    let http = http_client();
    // The baseline: no token layer at all, a valid token set by hand.
    let bare = ClientBuilder::new(http.clone()).build();
    let by_hand = format!("Bearer {}", server.control().mint_access_token("read"));
    let layers = [Impl::Ours, Impl::MutexCache].map(|imp| {
        (
            imp,
            client(imp, &server, &http, Recorded::new(source(&server)), None),
        )
    });
    for (_, c) in &layers {
        assert!(get_ok(&c.http, &url).await, "overhead: warm-up failed");
    }
    let rounds = mode.pick(7, 21);
    let period = Duration::from_millis(mode.pick(300, 1000));
    for concurrency in [1usize, 64] {
        // Warm the connection pool to this concurrency first.
        throughput(&bare, &url, Some(&by_hand), concurrency, period / 2).await;
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); layers.len()];
        let mut base_rps = Vec::new();
        for round in 0..rounds {
            // Alternate the order so neither side always runs first.
            let mut order: Vec<Option<usize>> = std::iter::once(None)
                .chain((0..layers.len()).map(Some))
                .collect();
            if round % 2 == 1 {
                order.reverse();
            }
            let mut rps = vec![0.0; layers.len()];
            let mut base = 0.0;
            for who in order {
                match who {
                    None => {
                        base = throughput(&bare, &url, Some(&by_hand), concurrency, period).await
                    }
                    Some(i) => {
                        rps[i] =
                            throughput(&layers[i].1.http, &url, None, concurrency, period).await
                    }
                }
            }
            base_rps.push(base);
            for (i, r) in rps.iter().enumerate() {
                ratios[i].push(r / base);
            }
        }
        for (i, (imp, _)) in layers.iter().enumerate() {
            report.push(
                Line::new("overhead", imp.name())
                    .field("concurrency", concurrency)
                    .field("ratio", format!("{:.3}", median(&mut ratios[i])))
                    .field(
                        "baseline_rps",
                        format!("{:.0}", median(&mut base_rps.clone())),
                    )
                    .field("rounds", rounds),
            );
        }
    }
}
