//! storm: the server revokes every token while 1,000 concurrent callers
//! are sending; how many token fetches and failed requests follow.

use std::path::Path;
use std::time::Duration;

use bearer_testkit::{Control, TestServer};

use crate::common::{Impl, Line, Mode, Recorded, Report, client, get_ok, http_client, source};
use crate::peer;

const CALLERS: usize = 1000;

/// Revokes all tokens once the API has seen `after` more requests than now.
fn revoke_when(control: Control, after: u64) -> impl FnOnce() + Send + 'static {
    move || {
        let target = control.counters().api_requests + after;
        while control.counters().api_requests < target {
            std::thread::sleep(Duration::from_micros(200));
        }
        control.revoke_all();
    }
}

pub async fn run(mode: Mode, report: &mut Report, python: Option<&Path>) {
    let rounds = mode.pick(2, 5);
    let requests = CALLERS * rounds;
    for imp in Impl::ALL {
        let server = TestServer::start().await;
        let c = client(
            imp,
            &server,
            &http_client(),
            Recorded::new(source(&server)),
            Some(CALLERS),
        );
        let url = server.api_url("/api/echo");
        assert!(get_ok(&c.http, &url).await, "storm: warm-up failed");
        let issued_before = server.control().counters().issued.total();
        let revoker = std::thread::spawn(revoke_when(server.control(), (CALLERS / 2) as u64));
        let workers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (http, url) = (c.http.clone(), url.clone());
                tokio::spawn(async move {
                    let mut failures = 0u64;
                    for _ in 0..rounds {
                        failures += u64::from(!get_ok(&http, &url).await);
                    }
                    failures
                })
            })
            .collect();
        let mut failures = 0;
        for w in workers {
            failures += w.await.expect("worker");
        }
        revoker.join().expect("revoker");
        let fetches = server.control().counters().issued.total() - issued_before;
        report.push(
            Line::new("storm", imp.name())
                .field("requests", requests)
                .field("fetches", fetches)
                .field("failures", failures),
        );
    }
    if let Some(python) = python {
        let server = TestServer::start().await;
        let extra = [
            "--callers",
            &CALLERS.to_string(),
            "--rounds",
            &rounds.to_string(),
        ]
        .map(str::to_owned);
        let revoke = revoke_when(server.control(), (CALLERS / 2) as u64);
        match peer::run_scenario(python, &server, "storm", &extra, revoke).await {
            Ok(v) => report.push(
                Line::new("storm", "authlib")
                    .field("requests", v["requests"].as_u64().unwrap_or(0))
                    // Minus the warm-up fetch.
                    .field(
                        "fetches",
                        server.control().counters().issued.total().saturating_sub(1),
                    )
                    .field("failures", v["failures"].as_u64().unwrap_or(0)),
            ),
            Err(e) => report.note(format!("SKIPPED: authlib peer storm ({e})")),
        }
    }
}
