//! What the bearer middleware costs per request, and what a 401 storm costs.
//!
//! `cargo bench --bench middleware [-- --quick]`
//!
//! - Overhead: throughput of a client with the middleware (warm token)
//!   against the same client without it sending the same token as a fixed
//!   header, both to the testkit's `/api/echo` (so the server does the same
//!   work), at concurrency 1 and 64, in alternating rounds; prints the median
//!   of the per-round ratios (1.0 = free).
//! - Storm: the server revokes every token, then 1000 concurrent requests;
//!   prints how many token fetches that caused and how many requests failed.
//!
//! - Allocations: per request through the middleware and through the
//!   nothing-middleware, counted by a global allocator over the same number
//!   of sequential requests (the in-process server's allocations are in
//!   both and cancel out in the difference).
//!
//! Prints the figures; asserts nothing about them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bearer_testkit::TestServer;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{BearerAuth, TokenCache, TokenKey};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// The system allocator, counting allocations process-wide.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The cache's clock in production: bench builds enable tokio's
/// `test-util` (a dev-dependency feature), whose clock takes a lock on
/// every read, which no release build has.
#[derive(Debug)]
struct StdClock;

impl reqwest_bearer::Clock for StdClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn system_now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}

struct Settings {
    rounds: usize,
    round: Duration,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        Settings {
            rounds: 5,
            round: Duration::from_millis(200),
        }
    } else {
        Settings {
            rounds: 15,
            round: Duration::from_millis(700),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(settings));
}

async fn run(settings: Settings) {
    let server = TestServer::start().await;
    let source = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read");
    let auth = BearerAuth::new(
        TokenCache::builder(source).clock(StdClock).build(),
        server.base_url(),
    )
    .expect("valid origin");
    let token = auth.cache().get(&TokenKey::new()).await.expect("a token");
    let mut fixed = HeaderValue::from_str(token.expose_authorization_value()).expect("header-safe");
    fixed.set_sensitive(true);

    let with = ClientBuilder::new(reqwest::Client::new())
        .with(auth.clone())
        .build();
    let without = ClientBuilder::new(reqwest::Client::new()).build();
    // The floor any middleware pays in reqwest-middleware: one that does
    // nothing, with the token preset like the baseline's.
    let noop = ClientBuilder::new(reqwest::Client::new())
        .with(Noop)
        .build();
    let url = server.api_url("/api/echo");

    for concurrency in [1, 64] {
        // Warm both connection pools.
        throughput(&with, &url, None, concurrency, settings.round / 4).await;
        throughput(
            &without,
            &url,
            Some(&fixed),
            concurrency,
            settings.round / 4,
        )
        .await;
        throughput(&noop, &url, Some(&fixed), concurrency, settings.round / 4).await;
        let mut ratios = Vec::with_capacity(settings.rounds);
        let mut floor = Vec::with_capacity(settings.rounds);
        for round in 0..settings.rounds {
            // Rotate which goes first so drift hurts none of them.
            let mut rps = [0.0; 3];
            for i in 0..3 {
                let which = (round + i) % 3;
                rps[which] = match which {
                    0 => throughput(&with, &url, None, concurrency, settings.round).await,
                    1 => {
                        throughput(&without, &url, Some(&fixed), concurrency, settings.round).await
                    }
                    _ => throughput(&noop, &url, Some(&fixed), concurrency, settings.round).await,
                };
            }
            ratios.push(rps[0] / rps[1]);
            floor.push(rps[2] / rps[1]);
        }
        ratios.sort_by(f64::total_cmp);
        floor.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let floor = floor[floor.len() / 2];
        println!("RESULT overhead concurrency={concurrency} ratio={median:.3}");
        println!("RESULT overhead concurrency={concurrency} ratio={floor:.3} impl=noop-middleware");
    }

    // Allocations per request, sequential, after the rounds above warmed
    // everything (pools, the token's header value).
    // The same layer with resends off shows what the resend copy costs.
    let no_resend = ClientBuilder::new(reqwest::Client::new())
        .with(
            BearerAuth::builder(auth.cache().clone())
                .allow_origin(server.base_url())
                .max_auth_retries(0)
                .build()
                .expect("valid origin"),
        )
        .build();
    throughput(&no_resend, &url, None, 1, settings.round / 4).await;
    let requests = 2_000u64;
    let mut per_request = [0.0; 3];
    for (i, (client, header)) in [(&with, None), (&noop, Some(&fixed)), (&no_resend, None)]
        .into_iter()
        .enumerate()
    {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..requests {
            let mut request = client.get(url.clone());
            if let Some(h) = header {
                request = request.header(AUTHORIZATION, h.clone());
            }
            let response = request.send().await.expect("request sent");
            response.bytes().await.expect("body read");
        }
        per_request[i] = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / requests as f64;
    }
    println!(
        "RESULT allocations_per_request impl=reqwest-bearer value={:.2} minus_noop={:.2}",
        per_request[0],
        per_request[0] - per_request[1]
    );
    println!(
        "RESULT allocations_per_request impl=noop-middleware value={:.2}",
        per_request[1]
    );
    println!(
        "RESULT allocations_per_request impl=reqwest-bearer-no-resend value={:.2} minus_noop={:.2}",
        per_request[2],
        per_request[2] - per_request[1]
    );

    let control = server.control();
    let issued_before = control.counters().issued.total();
    control.revoke_all();
    let responses =
        futures::future::join_all((0..1000).map(|_| with.get(url.clone()).send())).await;
    let failures = responses
        .iter()
        .filter(|r| !r.as_ref().is_ok_and(|r| r.status().is_success()))
        .count();
    let fetches = control.counters().issued.total() - issued_before;
    println!("RESULT storm requests=1000 fetches={fetches} failures={failures}");
}

/// Requests per second over `duration`, with `concurrency` workers each
/// sending one request at a time and reading the whole answer.
async fn throughput(
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
                    let mut request = client.get(url.clone());
                    if let Some(h) = &header {
                        request = request.header(AUTHORIZATION, h.clone());
                    }
                    let response = request.send().await.expect("request sent");
                    assert!(response.status().is_success(), "{}", response.status());
                    response.bytes().await.expect("body read");
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

/// Does nothing: measures what reqwest-middleware itself costs per request.
struct Noop;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Noop {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        next.run(req, extensions).await
    }
}
