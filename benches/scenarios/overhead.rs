//! overhead: requests per second with a token layer vs the same client
//! sending the same header by hand, warm token, in alternating rounds.

use std::time::Duration;

use bearer_testkit::TestServer;
use http::HeaderValue;
use reqwest_middleware::ClientBuilder;

use crate::common::{
    Impl, Line, Mode, Recorded, Report, client, get_ok, http_client, median, source,
};
use crate::shared::throughput;

pub async fn run(mode: Mode, report: &mut Report) {
    let server = TestServer::start().await;
    let url = server.api_url("/api/echo");
    let http = http_client();
    // The baseline: no token layer at all, a valid token set by hand.
    let bare = ClientBuilder::new(http.clone()).build();
    let mut by_hand = HeaderValue::try_from(format!(
        "Bearer {}",
        server.control().mint_access_token("read")
    ))
    .expect("a header-safe token");
    by_hand.set_sensitive(true);
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
