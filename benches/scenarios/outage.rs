//! outage: the token endpoint answers 503 from before the refresh point to
//! past hard expiry, then comes back. Failures while the token in hand was
//! still usable, failures after, time to recover, and how hard the
//! endpoint was hit meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bearer_testkit::{TestServer, TokenFault};

use crate::common::{
    Impl, Line, Mode, Recorded, Report, client, get_ok, http_client, ms, percentile, source,
};

/// 200 requests a second, arriving whatever happens to earlier ones.
const ARRIVAL_EVERY: Duration = Duration::from_millis(5);

pub async fn run(mode: Mode, report: &mut Report) {
    let lifetime = Duration::from_secs(mode.pick(3, 4));
    for imp in Impl::ALL {
        let server = TestServer::builder().token_lifetime(lifetime).start().await;
        let control = server.control();
        let c = client(
            imp,
            &server,
            &http_client(),
            Recorded::new(source(&server)),
            None,
        );
        let url = server.api_url("/api/echo");
        let t0 = Instant::now();
        assert!(get_ok(&c.http, &url).await, "outage: warm-up failed");
        // Every implementation stops using a token a tenth of its lifetime
        // before the server's expiry; before that it is "valid".
        let usable_until = t0 + lifetime.mul_f64(0.9);
        let outage_from = t0 + lifetime.mul_f64(0.2);
        let outage_until = t0 + lifetime.mul_f64(1.4);
        let give_up = outage_until + Duration::from_secs(40);
        // Open loop: arrivals keep their pace whatever the answers, so a
        // layer that fails fast and one that blocks are counted alike.
        let recovered = Arc::new(AtomicBool::new(false));
        let load = {
            let (http, url, recovered) = (c.http.clone(), url.clone(), recovered.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(ARRIVAL_EVERY);
                let mut requests = Vec::new();
                loop {
                    let now = tick.tick().await.into_std();
                    let done =
                        recovered.load(Relaxed) && now > outage_until + Duration::from_secs(1);
                    if done || now > give_up {
                        break;
                    }
                    let (http, url, recovered) = (http.clone(), url.clone(), recovered.clone());
                    requests.push(tokio::spawn(async move {
                        let t = Instant::now();
                        let ok = get_ok(&http, &url).await;
                        let end = Instant::now();
                        if ok && t >= usable_until && end >= outage_until {
                            recovered.store(true, Relaxed);
                        }
                        (ok, t, end)
                    }));
                }
                let mut seen = Vec::new();
                for r in requests {
                    seen.push(r.await.expect("request"));
                }
                seen
            })
        };
        tokio::time::sleep_until(outage_from.into()).await;
        let before = control.counters().token_requests;
        control.fail_next_token_requests(
            u64::MAX / 2,
            TokenFault::ServiceUnavailable { retry_after: None },
        );
        tokio::time::sleep_until(outage_until.into()).await;
        control.clear_token_faults();
        let during = control.counters().token_requests - before;
        let seen = load.await.expect("load");
        let mut latencies: Vec<f64> = seen.iter().map(|(_, t, end)| ms(*end - *t)).collect();
        let failed = |from: Instant, to: Instant| {
            seen.iter()
                .filter(|(ok, t, _)| !ok && *t >= from && *t < to)
                .count()
        };
        let recovered = seen
            .iter()
            .filter(|(ok, t, end)| *ok && *t >= usable_until && *end >= outage_until)
            .map(|(_, _, end)| *end)
            .min();
        let recover_ms = recovered.map_or(f64::NAN, |end| ms(end - outage_until));
        report.push(
            Line::new("outage", imp.name())
                .field("failures_valid", failed(t0, usable_until))
                .field("failures_expired", failed(usable_until, outage_until))
                .field("recover_ms", format!("{recover_ms:.0}"))
                .field(
                    "failures_after",
                    failed(outage_until, give_up + Duration::from_secs(60)),
                )
                .field("endpoint_requests", during)
                .field("p99_ms", format!("{:.0}", percentile(&mut latencies, 0.99)))
                .field("max_ms", format!("{:.0}", percentile(&mut latencies, 1.0)))
                .field(
                    "outage_ms",
                    format!("{:.0}", ms(outage_until - outage_from)),
                ),
        );
    }
}
