//! Fleet benchmark: 20 cache instances (each with its own Redis connections)
//! share one Redis and one token endpoint under continuous load, in real
//! time, across several short token lifetimes. Prints
//!
//! `RESULT fleet instances=20 lifetimes=N fetches=M`
//! `RESULT fleet_slow_holder instances=20 lease_ms=400 fetch_ms=1200 lifetimes=N fetches=M`
//! `RESULT fleet_cluster instances=20 lifetimes=N fetches=M`
//!
//! where `N` is the number of tokens one instance *alone* needed over the
//! same run (a store-less instance running alongside against its own token
//! server: the token lifetimes the run spanned), and `M` is what the whole
//! fleet fetched. Target: `M = N`, one fleet costs what one instance costs.
//! The second line is the slow-holder case: every fetch takes three times
//! the fetch lease, so single flight holds only because the holder renews
//! its lease while it waits. The third is the first run again on a Redis
//! Cluster of three primaries and three replicas.
//!
//! Needs `redis-server` and `redis-cli` on the PATH (prints `SKIPPED` otherwise).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bearer_cache::{TokenCache, TokenKey};
use bearer_testkit::TestServer;
use support::{Grant, HttpSource};

const INSTANCES: usize = 20;
const RUN: Duration = Duration::from_secs(12);

/// One run's settings.
struct Setup {
    name: &'static str,
    lifetime: Duration,
    /// How long the token endpoint takes to answer.
    latency: Duration,
    lease: Duration,
}

const FLEET: Setup = Setup {
    name: "fleet",
    lifetime: Duration::from_secs(2),
    latency: Duration::ZERO,
    lease: Duration::from_secs(1),
};

const FLEET_CLUSTER: Setup = Setup {
    name: "fleet_cluster",
    ..FLEET
};

const SLOW_HOLDER: Setup = Setup {
    name: "fleet_slow_holder",
    lifetime: Duration::from_secs(4),
    latency: Duration::from_millis(1200),
    lease: Duration::from_millis(400),
};

fn source(server: &TestServer) -> HttpSource {
    HttpSource::new(
        server.token_url().as_str(),
        server.client_id(),
        server.client_secret(),
        Grant::ClientCredentials,
    )
}

/// Calls `get` back to back until `until`; counts requests and failures.
async fn load(cache: TokenCache, until: Instant, gets: Arc<AtomicU64>, errors: Arc<AtomicU64>) {
    let key = TokenKey::new();
    while Instant::now() < until {
        if cache.get(&key).await.is_err() {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        gets.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
    }
}

/// Runs 20 instances on the Redis at `redis_url` and one store-less
/// instance beside them; prints the run's `RESULT` line.
async fn run(redis_url: &str, setup: &Setup) {
    let server = || {
        TestServer::builder()
            .token_lifetime(setup.lifetime)
            .token_latency(setup.latency)
            .start()
    };
    let (fleet_server, solo_server) = (server().await, server().await);
    let mut caches = Vec::new();
    for _ in 0..INSTANCES {
        let store = support::store_builder(redis_url).build().await.unwrap();
        caches.push(
            TokenCache::builder(source(&fleet_server))
                .store(store)
                .store_call_timeout(Duration::from_secs(1))
                .store_lease_ttl(setup.lease)
                .store_wait_timeout(setup.latency + Duration::from_secs(2))
                // No jitter: every instance reaches the refresh point at
                // the same instant (the hardest case for single flight),
                // and the fleet refreshes on the same schedule as `solo`.
                .refresh_jitter(0.0)
                .build(),
        );
    }
    let solo = TokenCache::builder(source(&solo_server))
        .refresh_jitter(0.0)
        .build();

    let until = Instant::now() + RUN;
    let gets = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks: Vec<_> = caches
        .into_iter()
        .map(|c| tokio::spawn(load(c, until, gets.clone(), errors.clone())))
        .collect();
    tasks.push(tokio::spawn(load(
        solo,
        until,
        Arc::new(AtomicU64::new(0)),
        errors.clone(),
    )));
    for t in tasks {
        t.await.unwrap();
    }

    let lifetimes = solo_server.control().counters().token_requests;
    let fetches = fleet_server.control().counters().token_requests;
    eprintln!(
        "{}: {} requests over {:?} with {:?} tokens from a {:?} endpoint, {} failed",
        setup.name,
        gets.load(Ordering::Relaxed),
        RUN,
        setup.lifetime,
        setup.latency,
        errors.load(Ordering::Relaxed)
    );
    let slow = if setup.latency.is_zero() {
        String::new()
    } else {
        format!(
            " lease_ms={} fetch_ms={}",
            setup.lease.as_millis(),
            setup.latency.as_millis()
        )
    };
    println!(
        "RESULT {} instances={INSTANCES}{slow} lifetimes={lifetimes} fetches={fetches}",
        setup.name
    );
}

fn main() {
    let Some(redis) = support::redis_or_skip() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        run(&redis.url(), &FLEET).await;
        run(&redis.url(), &SLOW_HOLDER).await;
        drop(redis);
        let Some(cluster) = support::cluster_or_skip() else {
            return;
        };
        run(&cluster.urls().join(","), &FLEET_CLUSTER).await;
    });
}
