//! What the layer costs per request, and what its metrics add.
//!
//! `cargo bench -p bearer-tower --bench layer [-- --quick]`
//!
//! The layer (warm token, allowed origin) over an in-memory service, so
//! only the layer's own work is timed, in alternating batches:
//!
//! - `impl=no-layer`: the bare service, for scale;
//! - `impl=layer-no-recorder`: the layer with the `metrics` feature compiled
//!   in (benches always have it) but no recorder installed, which is what
//!   the calls cost when nobody collects them (the baseline);
//! - `impl=layer-recorder`: the same with a recorder that keeps every
//!   metric in atomics, as exporters do (`metrics-util`'s registry).
//!
//! Without the feature the calls are compiled out (empty `#[inline(always)]`
//! functions), so the hit path is the code it was before metrics existed.
//! Prints the medians of batches; asserts nothing about them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bearer_cache::StaticSource;
use bearer_tower::BearerLayer;
use http::{Request, Response};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use tower::{Service, ServiceExt};

/// A recorder that keeps each metric in atomics, as an exporter would.
struct Atomic(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for Atomic {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

const BATCH: u32 = 20_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 21 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let layer = BearerLayer::builder_for_source(StaticSource::new("t0k3n"))
        .allow_origin("https://api.example.com".parse().expect("a URL"))
        .build()
        .expect("valid configuration");
    let recorder = Atomic(Arc::new(Registry::atomic()));

    let mut bare = Vec::new();
    let mut plain = Vec::new();
    let mut recorded = Vec::new();
    for _ in 0..rounds {
        bare.push(runtime.block_on(batch(None)));
        plain.push(runtime.block_on(batch(Some(layer.clone()))));
        recorded.push(metrics::with_local_recorder(&recorder, || {
            runtime.block_on(batch(Some(layer.clone())))
        }));
    }
    let (bare, plain, recorded) = (median(bare), median(plain), median(recorded));
    println!("RESULT layer_request impl=no-layer ns_per_request={bare:.1}");
    println!("RESULT layer_request impl=layer-no-recorder ns_per_request={plain:.1}");
    println!(
        "RESULT layer_request impl=layer-recorder ns_per_request={recorded:.1} metrics_cost_ns={:.1}",
        recorded - plain
    );
}

/// Nanoseconds per request over one batch, through `layer` if any.
async fn batch(layer: Option<BearerLayer>) -> f64 {
    let inner =
        tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    match layer {
        Some(layer) => timed(tower::ServiceBuilder::new().layer(layer).service(inner)).await,
        None => timed(inner).await,
    }
}

async fn timed<S, R>(mut service: S) -> f64
where
    S: Service<Request<()>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..BATCH {
        let request = Request::get("https://api.example.com/orders")
            .body(())
            .expect("a request");
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("a response");
        std::hint::black_box(response);
    }
    nanos(start.elapsed()) / f64::from(BATCH)
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
