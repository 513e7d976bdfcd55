//! What the bearer middleware costs per request, and what a 401 storm costs.
//!
//! `cargo bench --bench middleware [-- --quick]`
//!
//! - Overhead: throughput of a client with the middleware (warm token)
//!   against the same client without it sending the same token as a fixed
//!   header, both to the testkit's `/api/echo` (so the server does the same
//!   work), at concurrency 1 and 64. Many short rounds, each measuring all
//!   four clients (ours, none, the nothing-middleware, the essentials
//!   layer) back to back, the rounds cycling through all 24 orders, so
//!   load that comes and goes on a shared machine hits them alike; prints
//!   the median of the per-round ratios and their interquartile range
//!   (`iqr=p25..p75`: how noisy the run was), and the ratio of the summed
//!   throughputs (`pooled=`), for ours, for the nothing-middleware and for
//!   the essentials layer from the same rounds (1.0 = free).
//! - The essentials layer (`Essentials`) does only what any token layer
//!   must: check the origin, take the cached token's header value, set it,
//!   send, and look at the status for a 401. Its ratio is the floor a
//!   token layer reaches on the machine at hand; ours beyond it is what
//!   the rest of ours (resend copy, redirect record, gRPC and challenge
//!   reading, spans, per-request options) costs.
//! - Overhead in turns, at 1 caller: the four clients take turns request
//!   by request, each request timed (see `interleaved`), in as many rounds
//!   of 1,000 turns as the overhead above has rounds.
//! - Allocations: per request through the middleware, through the
//!   nothing-middleware and through the middleware with resends off, and
//!   through the first two for requests with a field of their own,
//!   counted by a global allocator over blocks of sequential requests, the
//!   five interleaved; the median block of each. The in-process server's
//!   allocations are in all of them and cancel out in the differences.
//! - Future size: the bytes of the future the middleware returns, which
//!   `async_trait` boxes on every request (glibc serves up to 1032 bytes
//!   from a per-thread cache).
//! - Storm: the server revokes every token, then 1000 concurrent requests;
//!   prints how many token fetches that caused and how many requests failed.
//!
//! `-- --callers N` measures the overhead at N callers only (1 and 64
//! otherwise; the turns only with 1), `-- --rounds N --round-ms M` sets
//! the rounds and their length (61 of 120 ms; 25 of 50 with `--quick`;
//! the turns' rounds are 1,000 turns long whatever `--round-ms` says).
//!
//! `-- --one-thread` runs everything on one current-thread runtime (no
//! task changes core).
//!
//! `-- --requests-only ours|noop|essentials|none N` sends only N warm
//! requests through one client (`none`: the one without a middleware), for
//! instruction counts under `valgrind --tool=callgrind`: the difference
//! between two N, divided by the difference in N, is the cost of one
//! request (ours minus the nothing-middleware's is the middleware's), and
//! does not move with the machine's load (it runs on one thread, server
//! included, so the path is the same every run). Sequential, or spread
//! over `--callers C` tasks that run at once (N/C each).
//!
//! Prints the figures; asserts nothing about them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bearer_http::Authorizer;
use bearer_testkit::TestServer;
use http::{HeaderValue, StatusCode};
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{BearerAuth, TokenCache, TokenKey};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

#[path = "shared/throughput.rs"]
mod shared;
use shared::{send_one, send_one_with, throughput};

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

struct Settings {
    rounds: usize,
    round: Duration,
    /// `--requests-only`: which client, and how many requests.
    requests_only: Option<(String, u64)>,
    /// `--callers N`: measure the overhead at N callers only.
    callers: Option<usize>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let requests_only = args.iter().position(|a| a == "--requests-only").map(|i| {
        let which = args
            .get(i + 1)
            .expect("--requests-only ours|noop|essentials|none N")
            .clone();
        let n = args
            .get(i + 2)
            .and_then(|n| n.parse().ok())
            .expect("--requests-only ours|noop|essentials|none N");
        (which, n)
    });
    let number = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1)?.parse::<u64>().ok())
    };
    let (rounds, round_ms) = if quick { (25, 50) } else { (61, 120) };
    let settings = Settings {
        rounds: number("--rounds").unwrap_or(rounds).max(1) as usize,
        round: Duration::from_millis(number("--round-ms").unwrap_or(round_ms)),
        requests_only,
        callers: number("--callers").map(|n| n.max(1) as usize),
    };
    // Instruction counts want one thread: no work stealing, no spinning
    // workers, the same path every run (and `--one-thread` asks for one).
    let one_thread = args.iter().any(|a| a == "--one-thread");
    let mut runtime = if settings.requests_only.is_some() || one_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = runtime.enable_all().build().expect("a tokio runtime");
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
    let auth = BearerAuth::new(TokenCache::builder(source).build(), server.base_url())
        .expect("valid origin");
    let token = auth.cache().get(&TokenKey::new()).await.expect("a token");
    let mut fixed = HeaderValue::from_str(token.expose_authorization_value()).expect("header-safe");
    fixed.set_sensitive(true);

    // One reqwest client under all of them, so every variant sends over the
    // same pooled connection: with a client each, each had a connection of
    // its own, whose tasks tokio placed on its workers differently, and the
    // nothing-middleware's ratio read anywhere from 0.978 to 1.005 from one
    // run to the next.
    let http = reqwest::Client::new();
    let with = ClientBuilder::new(http.clone()).with(auth.clone()).build();
    let without = ClientBuilder::new(http.clone()).build();
    // The floor any middleware pays in reqwest-middleware: one that does
    // nothing, with the token preset like the baseline's.
    let noop = ClientBuilder::new(http.clone()).with(Noop).build();
    // The least any token layer does, on the same cache.
    let essentials = ClientBuilder::new(http.clone())
        .with(Essentials::new(auth.cache().clone(), &server.base_url()))
        .build();
    let url = server.api_url("/api/echo");
    // Each measurement's clients, by the indices of `OURS`, `NONE`, `NOOP`
    // and `ESSENTIALS`, with the fixed header for the two without a layer
    // of ours.
    let clients = [
        (&with, None),
        (&without, Some(&fixed)),
        (&noop, Some(&fixed)),
        (&essentials, None),
    ];
    let orders = orders();

    // The same layer with resends off shows what the resend copy costs.
    let no_resend = ClientBuilder::new(http.clone())
        .with(
            BearerAuth::builder(auth.cache().clone())
                .allow_origin(server.base_url())
                .max_auth_retries(0)
                .build()
                .expect("valid origin"),
        )
        .build();

    let measured = ClientBuilder::new(http.clone())
        .with(FutureSize)
        .with(auth.clone())
        .build();
    sequential(&measured, &url, None, None, 1).await;
    println!(
        "RESULT future_bytes impl=reqwest-bearer value={}",
        FUTURE_BYTES.load(Ordering::Relaxed)
    );

    if let Some((which, n)) = settings.requests_only.clone() {
        let (client, header) = match which.as_str() {
            "ours" => (&with, None),
            "noop" => (&noop, Some(&fixed)),
            "essentials" => (&essentials, None),
            "none" => (&without, Some(&fixed)),
            other => panic!("--requests-only ours|noop|essentials|none N, not {other}"),
        };
        sequential(client, &url, header, None, 200).await;
        let callers = settings.callers.unwrap_or(1) as u64;
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (client, url, header) = (client.clone(), url.clone(), header.cloned());
                tokio::spawn(async move {
                    sequential(&client, &url, header.as_ref(), None, n / callers).await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("requests sent");
        }
        println!("RESULT requests_only impl={which} requests={n}");
        return;
    }

    let callers = match settings.callers {
        Some(n) => vec![n],
        None => vec![1, 64],
    };
    for concurrency in callers {
        // Warm the connection pools.
        for (client, header) in clients {
            throughput(client, &url, header, concurrency, settings.round).await;
        }
        let mut samples: [Vec<f64>; 3] = Default::default();
        let mut sums = [0.0; CLIENTS];
        for round in 0..settings.rounds {
            // Through all orders, so drift hurts none of them and each
            // follows each of the others equally often.
            let mut rps = [0.0; CLIENTS];
            for which in orders[round % orders.len()] {
                let (client, header) = clients[which];
                rps[which] = throughput(client, &url, header, concurrency, settings.round).await;
            }
            for (samples, which) in samples.iter_mut().zip([OURS, NOOP, ESSENTIALS]) {
                samples.push(rps[which] / rps[NONE]);
            }
            for (sum, rps) in sums.iter_mut().zip(rps) {
                *sum += rps;
            }
        }
        let [ours, noop, least] = samples.map(Spread::of);
        println!(
            "RESULT overhead concurrency={concurrency} ratio={:.3} iqr={:.3}..{:.3} pooled={:.3} rounds={} noop_ratio={:.3} noop_iqr={:.3}..{:.3} noop_pooled={:.3} essentials_ratio={:.3} essentials_iqr={:.3}..{:.3} essentials_pooled={:.3}",
            ours.median,
            ours.p25,
            ours.p75,
            sums[OURS] / sums[NONE],
            settings.rounds,
            noop.median,
            noop.p25,
            noop.p75,
            sums[NOOP] / sums[NONE],
            least.median,
            least.p25,
            least.p75,
            sums[ESSENTIALS] / sums[NONE],
        );
    }

    // One caller again, the four clients taking turns request by request.
    if settings.callers.is_none_or(|n| n == 1) {
        let [ours, noop, least] = interleaved(clients, &url, &orders, settings.rounds).await;
        println!(
            "RESULT overhead_interleaved concurrency=1 ratio={:.3} iqr={:.3}..{:.3} rounds={} noop_ratio={:.3} noop_iqr={:.3}..{:.3} essentials_ratio={:.3} essentials_iqr={:.3}..{:.3}",
            ours.median,
            ours.p25,
            ours.p75,
            settings.rounds,
            noop.median,
            noop.p25,
            noop.p75,
            least.median,
            least.p25,
            least.p75,
        );
    }

    // Allocations per request, sequential, after the rounds above warmed
    // everything (pools, the token's header value): blocks of requests,
    // the clients interleaved, the median block of each. Then the same
    // for requests with a field of their own (`Accept`), which the layer
    // copies for a resend.
    let accept = HeaderValue::from_static("application/json");
    let variants = [
        (&with, None, None),
        (&noop, Some(&fixed), None),
        (&no_resend, None, None),
        (&with, None, Some(&accept)),
        (&noop, Some(&fixed), Some(&accept)),
    ];
    sequential(&no_resend, &url, None, None, 200).await;
    let block = 500u64;
    let mut samples: [Vec<f64>; 5] = Default::default();
    for round in 0..9 {
        for i in 0..variants.len() {
            let which = (round + i) % variants.len();
            let (client, header, field) = variants[which];
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            sequential(client, &url, header, field, block).await;
            let count = ALLOCATIONS.load(Ordering::Relaxed) - before;
            samples[which].push(count as f64 / block as f64);
        }
    }
    let [ours, noop, no_resend, ours_field, noop_field] = samples.map(|s| Spread::of(s).median);
    println!(
        "RESULT allocations_per_request impl=reqwest-bearer value={ours:.2} minus_noop={:.2}",
        ours - noop
    );
    println!("RESULT allocations_per_request impl=noop-middleware value={noop:.2}");
    println!(
        "RESULT allocations_per_request impl=reqwest-bearer-no-resend value={no_resend:.2} minus_noop={:.2}",
        no_resend - noop
    );
    println!(
        "RESULT allocations_per_request impl=reqwest-bearer-one-field value={ours_field:.2} minus_noop={:.2}",
        ours_field - noop_field
    );
    println!("RESULT allocations_per_request impl=noop-middleware-one-field value={noop_field:.2}");

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

/// The median and quartiles of some samples.
struct Spread {
    p25: f64,
    median: f64,
    p75: f64,
}

impl Spread {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Spread {
            p25: at(0.25),
            median: at(0.5),
            p75: at(0.75),
        }
    }
}

/// The clients the overhead compares, by their index in each round and
/// turn: ours, the one without a layer, the nothing-middleware, the
/// essentials layer.
const CLIENTS: usize = 4;
const OURS: usize = 0;
const NONE: usize = 1;
const NOOP: usize = 2;
const ESSENTIALS: usize = 3;

/// Every order of the clients (24), for the rounds and the turns to cycle
/// through.
fn orders() -> Vec<[usize; CLIENTS]> {
    let mut all = Vec::new();
    for code in 0..CLIENTS.pow(CLIENTS as u32) {
        let order: [usize; CLIENTS] =
            std::array::from_fn(|i| code / CLIENTS.pow(i as u32) % CLIENTS);
        if (0..CLIENTS).all(|which| order.contains(&which)) {
            all.push(order);
        }
    }
    all
}

/// The throughput ratios at one caller (ours, the nothing-middleware and
/// the essentials layer, each ÷ without) with the clients taking turns
/// request by request, each request timed on its own, in `rounds` rounds of
/// 1,000 turns: the ratio of a round is that of the time its requests took.
/// A change in the machine's speed that lasts longer than a turn (~0.1 ms)
/// then slows them alike, where rounds of one client at a time each meet
/// it at a different moment. The turns go through all `orders` in a cycle:
/// each client follows each other one equally often, so whatever a request
/// leaves behind for the next one falls on all alike. One caller only:
/// with many, each request's time is mostly waiting for the others,
/// whichever client they go through.
async fn interleaved(
    clients: [(&ClientWithMiddleware, Option<&HeaderValue>); CLIENTS],
    url: &url::Url,
    orders: &[[usize; CLIENTS]],
    rounds: usize,
) -> [Spread; 3] {
    const TURNS: usize = 1_000;
    let (clients, url) = (clients.map(|(c, h)| (c.clone(), h.cloned())), url.clone());
    let orders = orders.to_vec();
    // On a runtime worker, as the throughput rounds' callers are.
    tokio::spawn(async move {
        let mut samples: [Vec<f64>; 3] = Default::default();
        for _ in 0..rounds {
            let mut spent = [Duration::ZERO; CLIENTS];
            for turn in 0..TURNS {
                for which in orders[turn % orders.len()] {
                    let (client, header) = &clients[which];
                    let start = Instant::now();
                    send_one(client, &url, header.as_ref()).await;
                    spent[which] += start.elapsed();
                }
            }
            // Throughput is the inverse of the time a request takes.
            for (samples, which) in samples.iter_mut().zip([OURS, NOOP, ESSENTIALS]) {
                samples.push(spent[NONE].as_secs_f64() / spent[which].as_secs_f64());
            }
        }
        samples.map(Spread::of)
    })
    .await
    .expect("the interleaved rounds finished")
}

/// `n` requests, one after the other (with `accept` as their own `Accept`
/// field, if given), each answer read whole.
async fn sequential(
    client: &ClientWithMiddleware,
    url: &url::Url,
    header: Option<&HeaderValue>,
    accept: Option<&HeaderValue>,
    n: u64,
) {
    for _ in 0..n {
        send_one_with(client, url, header, accept).await;
    }
}

/// Sits outside another middleware and notes the size of the future that
/// middleware returns (the box `async_trait` allocates per request): past
/// glibc's per-thread cache (1032 bytes) each request takes the arena's
/// locked path instead.
struct FutureSize;

static FUTURE_BYTES: AtomicU64 = AtomicU64::new(0);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for FutureSize {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let inner = next.run(req, extensions);
        FUTURE_BYTES.store(std::mem::size_of_val(&*inner) as u64, Ordering::Relaxed);
        inner.await
    }
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

/// The least a token layer does per request, for the floor beside ours:
/// checks the origin, takes the cached token and the header value derived
/// from it once per thread (the same as ours), sets the header, sends, and
/// on a 401 invalidates the token. No resend copy, no redirect record, no
/// gRPC or challenge reading, no spans, no per-request key or options.
struct Essentials {
    cache: TokenCache,
    key: TokenKey,
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Essentials {
    fn new(cache: TokenCache, origin: &url::Url) -> Self {
        Essentials {
            cache,
            key: TokenKey::new(),
            scheme: origin.scheme().to_owned(),
            host: origin.host_str().expect("a host").to_owned(),
            port: origin.port_or_known_default(),
        }
    }

    fn allows(&self, url: &url::Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == self.port
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Essentials {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let token = (self.allows(req.url()))
            .then(|| self.cache.get_cached(&self.key))
            .flatten();
        if let Some(token) = &token {
            let value = Authorizer::header_value(token).expect("a header-safe token");
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        let answer = next.run(req, extensions).await?;
        if answer.status() == StatusCode::UNAUTHORIZED {
            if let Some(token) = &token {
                self.cache.invalidate_if_current(&self.key, token);
            }
        }
        Ok(answer)
    }
}
