//! expiry: steady load across many token lifetimes, with a slow (100 ms)
//! token endpoint. Who waits on a renewal, and what renewal does to latency.

use std::path::Path;
use std::time::{Duration, Instant};

use bearer_testkit::TestServer;

use crate::common::{
    Impl, Line, Mode, Recorded, Report, client, get_ok, http_client, ms, percentile, source,
};
use crate::peer;

const WORKERS: usize = 16;
const TOKEN_LATENCY: Duration = Duration::from_millis(100);

struct Figures {
    waited: u64,
    requests: usize,
    failures: u64,
    window: Vec<f64>,
    steady: Vec<f64>,
}

/// "n/a" when no request ran outside a fetch (no cache: every one waits).
fn ratio(window: f64, steady: f64) -> String {
    if steady > 0.0 {
        format!("{:.2}", window / steady)
    } else {
        "n/a".to_owned()
    }
}

fn line(imp: &str, lifetimes: u32, mut f: Figures) -> Line {
    let (w50, w99) = (
        percentile(&mut f.window, 0.5),
        percentile(&mut f.window, 0.99),
    );
    let (s50, s99) = (
        percentile(&mut f.steady, 0.5),
        percentile(&mut f.steady, 0.99),
    );
    Line::new("expiry", imp)
        .field("lifetimes", lifetimes)
        .field("waited", f.waited)
        .field("p50_ratio", ratio(w50, s50))
        .field("p99_ratio", ratio(w99, s99))
        .field("requests", f.requests)
        .field("window_requests", f.window.len())
        .field("failures", f.failures)
        .field("p99_window_ms", format!("{w99:.2}"))
        .field("p99_steady_ms", format!("{s99:.2}"))
}

pub async fn run(mode: Mode, report: &mut Report, python: Option<&Path>) {
    let lifetime = Duration::from_secs(mode.pick(2, 3));
    let lifetimes: u32 = mode.pick(3, 10);
    let period = lifetime * lifetimes;
    for imp in Impl::ALL {
        let server = TestServer::builder()
            .token_lifetime(lifetime)
            .token_latency(TOKEN_LATENCY)
            .start()
            .await;
        let recorded = Recorded::new(source(&server));
        let c = client(imp, &server, &http_client(), recorded.clone(), None);
        let url = server.api_url("/api/echo");
        assert!(get_ok(&c.http, &url).await, "expiry: warm-up failed");
        let waits_before = c.probe.waits();
        let start = Instant::now();
        let deadline = start + period;
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (http, url) = (c.http.clone(), url.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let ok = get_ok(&http, &url).await;
                        seen.push((ok, t, Instant::now()));
                    }
                    seen
                })
            })
            .collect();
        let mut seen = Vec::new();
        for w in workers {
            seen.extend(w.await.expect("worker"));
        }
        let windows: Vec<_> = recorded
            .windows()
            .into_iter()
            .filter(|(_, end)| *end > start)
            .collect();
        let mut f = Figures {
            waited: c.probe.waits() - waits_before,
            requests: seen.len(),
            failures: seen.iter().filter(|(ok, ..)| !ok).count() as u64,
            window: Vec::new(),
            steady: Vec::new(),
        };
        for (_, s, e) in &seen {
            let during_fetch = windows.iter().any(|(ws, we)| s <= we && e >= ws);
            let latency = ms(*e - *s);
            if during_fetch {
                f.window.push(latency)
            } else {
                f.steady.push(latency)
            }
        }
        report.push(line(imp.name(), lifetimes, f));
    }
    if let Some(python) = python {
        let server = TestServer::builder()
            .token_lifetime(lifetime)
            .token_latency(TOKEN_LATENCY)
            .start()
            .await;
        // authlib's default 60 s leeway would renew a 3 s token on every
        // request; a tenth of the lifetime, as every implementation here.
        let leeway = (lifetime.as_secs_f64() / 10.0).ceil() as u64;
        let extra = [
            "--callers".to_owned(),
            WORKERS.to_string(),
            "--seconds".to_owned(),
            period.as_secs_f64().to_string(),
            "--leeway".to_owned(),
            leeway.to_string(),
        ];
        match peer::run_scenario(python, &server, "expiry", &extra, || {}).await {
            Ok(v) => {
                let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                report.push(
                    Line::new("expiry", "authlib")
                        .field("lifetimes", lifetimes)
                        .field("waited", v["waited"].as_u64().unwrap_or(0))
                        .field(
                            "p50_ratio",
                            ratio(num("p50_window_ms"), num("p50_steady_ms")),
                        )
                        .field(
                            "p99_ratio",
                            ratio(num("p99_window_ms"), num("p99_steady_ms")),
                        )
                        .field("requests", v["requests"].as_u64().unwrap_or(0))
                        .field(
                            "window_requests",
                            v["window_requests"].as_u64().unwrap_or(0),
                        )
                        .field("failures", v["failures"].as_u64().unwrap_or(0))
                        .field("p99_window_ms", format!("{:.2}", num("p99_window_ms")))
                        .field("p99_steady_ms", format!("{:.2}", num("p99_steady_ms"))),
                );
            }
            Err(e) => report.note(format!("SKIPPED: authlib peer expiry ({e})")),
        }
    }
}
