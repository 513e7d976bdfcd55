//! soak (issue 9): a million requests through the middleware against a
//! server that revokes 1 % of presented tokens, answers 5 % of token
//! requests 503 (`Retry-After: 1`) and drops 1 % of token connections,
//! with 5-second tokens. Every request is accounted for; the failures the
//! design accepts are predicted from the fault rates and checked.
//!
//! Setup, as the README recommends: reqwest-retry with
//! `BearerRetryStrategy` outside `BearerAuth`; the source retries token
//! endpoint transients itself (two retries, `Retry-After` honoured). So a
//! 503 or dropped connection costs time, never a request. What remains is
//! the case the design gives up on: the token fetched after a 401 is itself
//! revoked on the resend (`max_auth_retries` is 1). Each worker owns its
//! client and cache, so each request's two draws are independent:
//! P(failure) = p² with p = 1 %, and N·p² failures are expected. (Shared-cache
//! concurrency is what stampede and storm measure.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bearer_testkit::{TestServer, TokenFault};
use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_bearer::reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
use reqwest_bearer::{BearerAuth, BearerError, BearerRetryStrategy, TokenCache, TokenSource};
use reqwest_middleware::{ClientBuilder, Middleware, Next};

use crate::common::{Line, Mode, Report, http_client, rss_kb, source};

const WORKERS: usize = 16;
const LIFETIME: Duration = Duration::from_secs(5);
const P_REVOKE: f64 = 0.01;
const P_503: f64 = 0.05;
const P_DROP: f64 = 0.01;

/// Counts what reaches the server (innermost), to reconcile with its counters.
#[derive(Debug, Default)]
struct Wire {
    sent: AtomicU64,
    unauthorized: AtomicU64,
    errors: AtomicU64,
}

#[async_trait::async_trait]
impl Middleware for Wire {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.sent.fetch_add(1, Relaxed);
        let result = next.run(req, extensions).await;
        match &result {
            Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                self.unauthorized.fetch_add(1, Relaxed)
            }
            Ok(_) => 0,
            Err(_) => self.errors.fetch_add(1, Relaxed),
        };
        result
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    ok: u64,
    final_401: u64,
    no_token: u64,
    other_errors: u64,
}

pub async fn run(mode: Mode, report: &mut Report) {
    let requests: u64 = mode.pick(50_000, 1_000_000);
    let server = TestServer::builder()
        .token_lifetime(LIFETIME)
        .seed(9)
        .start()
        .await;
    let control = server.control();
    control.revoke_presented_token_with_probability(P_REVOKE);
    control.fail_token_requests_randomly(
        TokenFault::ServiceUnavailable {
            retry_after: Some(1),
        },
        P_503,
    );
    control.fail_token_requests_randomly(TokenFault::DropConnection, P_DROP);
    let url = server.api_url("/api/echo");
    let http = http_client();
    let source: Arc<dyn TokenSource> = Arc::new(source(&server));
    let wire = Arc::new(Wire::default());
    let clients: Vec<_> = (0..WORKERS)
        .map(|_| {
            let cache = TokenCache::builder_shared(source.clone()).build();
            let auth = BearerAuth::new(cache, server.base_url()).expect("loopback origin");
            let retry = RetryTransientMiddleware::new_with_policy_and_strategy(
                ExponentialBackoff::builder()
                    .retry_bounds(Duration::from_millis(200), Duration::from_secs(4))
                    .build_with_max_retries(4),
                BearerRetryStrategy::default(),
            );
            let client = ClientBuilder::new(http.clone())
                .with(retry)
                .with(auth.clone())
                .with_arc(wire.clone())
                .build();
            (client, auth)
        })
        .collect();
    let (rss_start, _) = rss_kb();
    let started = Instant::now();
    let per_worker = requests / WORKERS as u64;
    let requests = per_worker * WORKERS as u64;
    let tasks: Vec<_> = clients
        .iter()
        .map(|(client, _)| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut out = Outcomes::default();
                for _ in 0..per_worker {
                    match client.get(url.clone()).send().await {
                        Ok(r) => match r.status() {
                            StatusCode::OK if r.bytes().await.is_ok() => out.ok += 1,
                            StatusCode::UNAUTHORIZED => out.final_401 += 1,
                            _ => out.other_errors += 1,
                        },
                        Err(e) if BearerError::find(&e).is_some() => out.no_token += 1,
                        Err(_) => out.other_errors += 1,
                    }
                }
                out
            })
        })
        .collect();
    let mut out = Outcomes::default();
    for t in tasks {
        let o = t.await.expect("soak worker");
        out.ok += o.ok;
        out.final_401 += o.final_401;
        out.no_token += o.no_token;
        out.other_errors += o.other_errors;
    }
    let elapsed = started.elapsed();
    let (rss_end, hwm_end) = rss_kb();
    let counters = control.counters();
    let failures = out.final_401 + out.no_token + out.other_errors;
    let predicted = (requests as f64 * P_REVOKE * P_REVOKE).round() as u64;
    let fetches = counters.issued.client_credentials;
    // Fetches explained: one per revocation draw (first attempts and
    // resends both draw), one per request after a failure (the revoked
    // replacement stays cached), plus the renewals of tokens that live
    // long enough: refresh-ahead starts at half the usable 90 % of the
    // lifetime, jittered 0–20 % earlier, so every ~2.0 s per cache.
    let usable = LIFETIME.as_secs_f64() * 0.9;
    let refresh_every = usable - usable * 0.5 * (1.0 + 0.2 * 0.5);
    let rate_per_worker = requests as f64 / WORKERS as f64 / elapsed.as_secs_f64();
    let survive = (-P_REVOKE * rate_per_worker * refresh_every).exp();
    let renewals = WORKERS as f64 * elapsed.as_secs_f64() / refresh_every * survive;
    let revocations = requests as f64 * P_REVOKE * (1.0 + P_REVOKE);
    let predicted_fetches = revocations + predicted as f64 + renewals;

    let (mut clients_fetches, mut waits) = (0, 0);
    for (_, auth) in &clients {
        let s = auth.cache().stats();
        clients_fetches += s.fetches;
        waits += s.waits;
    }
    report.push(
        Line::new("soak", "reqwest-bearer")
            .field("requests", requests)
            .field("failures", failures)
            .field("predicted_failures", predicted)
            .field("fetches", fetches)
            .field("predicted_fetches", format!("{predicted_fetches:.0}"))
            .field("rss_start_kb", rss_start)
            .field("rss_end_kb", rss_end)
            .field("rss_peak_kb", hwm_end)
            .field("token_requests", counters.token_requests)
            .field("token_faults", counters.token_faults)
            .field("api_401", counters.api_unauthorized)
            .field("seconds", format!("{:.1}", elapsed.as_secs_f64())),
    );
    report.note(format!(
        "soak: ok={} final_401={} no_token={} other_errors={} cache_fetches={} waits={}",
        out.ok, out.final_401, out.no_token, out.other_errors, clients_fetches, waits
    ));
    // Every 200 the API sent must have reached a caller as a success (the
    // API answers only 200 or 401), and the outcomes must add up.
    let accounted = out.ok + out.final_401 + out.no_token + out.other_errors;
    let served_ok = counters.api_requests - counters.api_unauthorized;
    report.check(
        "soak: every request accounted for",
        accounted == requests && out.ok == served_ok,
        &format!(
            "{accounted} of {requests}; callers ok {} vs server 200s {served_ok}",
            out.ok
        ),
    );
    // The 401 count is large, so it pins the revocation fault down even in
    // --quick mode, where the predicted failures are few.
    let tolerance_401 = 4.0 * revocations.sqrt() + 2.0;
    report.check(
        "soak: 401s as the revocation rate predicts",
        (counters.api_unauthorized as f64 - revocations).abs() <= tolerance_401,
        &format!(
            "{} vs {revocations:.0} ± {tolerance_401:.0}",
            counters.api_unauthorized
        ),
    );
    let sent = wire.sent.load(Relaxed);
    report.check(
        "soak: sends match the server's API count",
        sent == counters.api_requests
            && wire.unauthorized.load(Relaxed) == counters.api_unauthorized,
        &format!(
            "client sent {sent}, server saw {}; 401s {} vs {}; transport errors {}",
            counters.api_requests,
            wire.unauthorized.load(Relaxed),
            counters.api_unauthorized,
            wire.errors.load(Relaxed)
        ),
    );
    // Failures are about Poisson(N·p²): allow four standard deviations.
    let tolerance = 4.0 * (predicted as f64).sqrt() + 2.0;
    report.check(
        "soak: failures as predicted (only a resend whose fresh token is revoked)",
        (failures as f64 - predicted as f64).abs() <= tolerance
            && out.no_token + out.other_errors == 0,
        &format!("{failures} vs {predicted} ± {tolerance:.0}"),
    );
    let off = (fetches as f64 - predicted_fetches).abs() / predicted_fetches;
    report.check(
        "soak: token fetches within 10 % of what lifetimes and revocations explain",
        off <= 0.10,
        &format!(
            "{fetches} vs {predicted_fetches:.0} ({:.1} % off)",
            off * 100.0
        ),
    );
}
