//! What DPoP costs: signing one proof, and requests per second through the
//! middleware with a DPoP-bound token against a bearer token, same run.
//!
//! `cargo bench --bench dpop [-- --quick]`
//!
//! - Proof: the median time to sign one ES256 proof (with `ath` and a
//!   nonce, as on a resource request), over rounds of many proofs.
//! - Throughput: the middleware with a DPoP source against the same
//!   middleware with a bearer source, in alternating rounds, at concurrency
//!   1 and 64; prints the median of the per-round ratios (1.0 = free). Two
//!   targets: the test kit's other origin, which checks nothing (what the
//!   client pays), and its `/api/echo`, which verifies every proof (what a
//!   round trip to a checking server costs, the server's share included).
//!
//! Prints the figures; asserts nothing about them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bearer_testkit::TestServer;
use reqwest_bearer::cache::TokenBinding;
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{AccessToken, BearerAuth, DpopKey, TokenCache, TokenKey};
use reqwest_middleware::ClientBuilder;

#[path = "shared/throughput.rs"]
mod shared;
use shared::throughput;

struct Settings {
    rounds: usize,
    round: Duration,
    proofs: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        Settings {
            rounds: 5,
            round: Duration::from_millis(200),
            proofs: 500,
        }
    } else {
        Settings {
            rounds: 11,
            round: Duration::from_millis(600),
            proofs: 5_000,
        }
    };
    proof_cost(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(throughput_ratio(settings));
}

fn proof_cost(settings: &Settings) {
    let key = DpopKey::generate().expect("a key");
    key.remember_nonce("https://api.example.com/", "server-nonce-0123456789");
    let token = AccessToken::new("an-access-token-of-typical-length-0123456789abcdef");
    let mut per_proof = Vec::with_capacity(settings.rounds);
    for _ in 0..settings.rounds {
        let start = Instant::now();
        for _ in 0..settings.proofs {
            black_box(
                key.proof("GET", "https://api.example.com/v1/orders", Some(&token))
                    .expect("signed"),
            );
        }
        per_proof.push(start.elapsed().as_nanos() as f64 / settings.proofs as f64);
    }
    per_proof.sort_by(f64::total_cmp);
    let median = per_proof[per_proof.len() / 2] / 1_000.0;
    println!("RESULT dpop_proof alg=ES256 sign_us={median:.1}");
}

async fn throughput_ratio(settings: Settings) {
    let server = TestServer::start().await;
    let key = DpopKey::generate().expect("a key");
    // One reqwest client under both, so they send over the same pooled
    // connection (see `benches/middleware.rs`).
    let http = reqwest::Client::new();
    let client = |dpop: bool| {
        let source = ClientCredentials::new(
            server.token_url(),
            server.client_id(),
            server.client_secret(),
        )
        .scope("read");
        let source = if dpop {
            source.dpop(key.clone())
        } else {
            source
        };
        let auth = BearerAuth::builder(TokenCache::builder(source).build())
            .allow_origin(server.base_url())
            .allow_origin(server.other_origin_url("/"))
            .build()
            .expect("loopback origins");
        (
            auth.clone(),
            ClientBuilder::new(http.clone()).with(auth).build(),
        )
    };
    let (bound_auth, bound) = client(true);
    let (bearer_auth, bearer) = client(false);
    for auth in [&bound_auth, &bearer_auth] {
        auth.cache().get(&TokenKey::new()).await.expect("a token");
    }

    for (target, url) in [
        ("unchecked", server.other_origin_url("/echo")),
        ("checked", server.api_url("/api/echo")),
    ] {
        for concurrency in [1, 64] {
            throughput(&bound, &url, None, concurrency, settings.round / 4).await;
            throughput(&bearer, &url, None, concurrency, settings.round / 4).await;
            let mut ratios = Vec::with_capacity(settings.rounds);
            for round in 0..settings.rounds {
                let (dpop, plain) = if round % 2 == 0 {
                    let d = throughput(&bound, &url, None, concurrency, settings.round).await;
                    (
                        d,
                        throughput(&bearer, &url, None, concurrency, settings.round).await,
                    )
                } else {
                    let p = throughput(&bearer, &url, None, concurrency, settings.round).await;
                    (
                        throughput(&bound, &url, None, concurrency, settings.round).await,
                        p,
                    )
                };
                ratios.push(dpop / plain);
            }
            ratios.sort_by(f64::total_cmp);
            let median = ratios[ratios.len() / 2];
            println!(
                "RESULT dpop_throughput target={target} concurrency={concurrency} ratio={median:.3} baseline=bearer"
            );
        }
    }
}
