//! Fleet benchmark: 20 cache instances (each with its own Redis connections)
//! share one Redis and one token endpoint under continuous load, in real
//! time, across several short token lifetimes. Prints
//!
//! `RESULT fleet instances=20 lifetimes=N fetches=M`
//!
//! where `N` is the number of tokens one instance *alone* needed over the
//! same run (a store-less instance running alongside against its own token
//! server: the token lifetimes the run spanned), and `M` is what the whole
//! fleet fetched. Target: `M = N`, one fleet costs what one instance costs.
//!
//! Needs `redis-server` on the PATH (prints `SKIPPED` otherwise).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bearer_cache::{TokenCache, TokenKey};
use bearer_redis::RedisStore;
use bearer_testkit::TestServer;
use support::{Grant, HttpSource};

const INSTANCES: usize = 20;
const LIFETIME: Duration = Duration::from_secs(2);
const RUN: Duration = Duration::from_secs(12);

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
        let fleet_server = TestServer::builder().token_lifetime(LIFETIME).start().await;
        let solo_server = TestServer::builder().token_lifetime(LIFETIME).start().await;
        let mut caches = Vec::new();
        for _ in 0..INSTANCES {
            let store = RedisStore::builder(redis.url()).build().await.unwrap();
            caches.push(
                TokenCache::builder(source(&fleet_server))
                    .store(store)
                    .store_call_timeout(Duration::from_secs(1))
                    .store_lease_ttl(Duration::from_secs(1))
                    .store_wait_timeout(Duration::from_secs(2))
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
            "fleet: {} requests over {:?} with {:?} tokens, {} failed",
            gets.load(Ordering::Relaxed),
            RUN,
            LIFETIME,
            errors.load(Ordering::Relaxed)
        );
        println!("RESULT fleet instances={INSTANCES} lifetimes={lifetimes} fetches={fetches}");
    });
}
