//! Hot-path figures for the cache, each beside a baseline that holds a mutex
//! across the fetch (the pattern of Go's `oauth2.ReuseTokenSource`).
//!
//! Prints `RESULT` lines first (median of batches, measured here), then runs
//! criterion for the full statistics. `--quick` skips criterion.
//!
//! Allocations are counted by a global allocator that counts per thread;
//! memory per key is measured in a child process (this binary again) so that
//! each figure starts from a fresh heap.
//!
//! `--stampedes-only N` runs only the stampede, N alternating runs of each;
//! `--stampedes-only N ours|mutex` only that one's runs, with a 5 s source
//! so that every caller waits even under callgrind (for instruction counts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bearer_cache::{Expiry, FetchContext, Token, TokenCache, TokenError, TokenKey, TokenSource};
use criterion::Criterion;

/// The system allocator, counting the calling thread's allocations and,
/// in the memory child only, the bytes live in the whole process.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Whether `LIVE_BYTES` is kept (the memory child turns it on).
static TRACK_LIVE: AtomicBool = AtomicBool::new(false);
/// Bytes requested and not yet freed, while tracked: what the program
/// holds, whatever the allocator around it makes of it.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

fn track(delta: i64) {
    if TRACK_LIVE.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// count is a const-initialized thread-local with no destructor, so touching
// it never allocates, and the live-byte count is a static atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        track(layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as i64));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        track(new_size as i64 - layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[derive(Debug, Default)]
struct SlowSource {
    delay: Duration,
    fetches: AtomicU64,
}

#[async_trait]
impl TokenSource for SlowSource {
    fn id(&self) -> &str {
        "bench"
    }
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(Token::bearer(format!("token-{n}")).with_expiry(Expiry::In(Duration::from_secs(3600))))
    }
}

/// Answers at once with a 40-byte token, for memory and first-fetch figures.
#[derive(Debug, Default)]
struct FortyByteSource {
    fetches: AtomicU64,
}

#[async_trait]
impl TokenSource for FortyByteSource {
    fn id(&self) -> &str {
        "forty"
    }
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let n = self.fetches.fetch_add(1, Ordering::Relaxed);
        Ok(Token::bearer(format!("{n:040}")).with_expiry(Expiry::In(Duration::from_secs(3600))))
    }
}

/// VmRSS in kB, from /proc/self/status (0 where unavailable).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// In a child process: fills a cache with `n` keys (a short scope each,
/// a 40-byte token) and prints the RSS delta per key, then the delta of the
/// bytes the program holds per key (without the allocator's headers,
/// rounding and reuse: what RSS would be with a perfect allocator).
fn memory_child(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = TokenCache::builder(FortyByteSource::default())
        .max_keys(n as u64 * 2)
        .build();
    TRACK_LIVE.store(true, Ordering::Relaxed);
    let live_before = LIVE_BYTES.load(Ordering::Relaxed);
    let before = rss_kb();
    rt.block_on(async {
        for i in 0..n {
            // Built and dropped here: only what the cache keeps counts.
            let key = TokenKey::new().scope(format!("s{i}"));
            cache.get(&key).await.unwrap();
        }
    });
    let after = rss_kb();
    let live = LIVE_BYTES.load(Ordering::Relaxed) - live_before;
    println!(
        "{} {}",
        (after.saturating_sub(before) * 1024) as f64 / n as f64,
        live as f64 / n as f64
    );
    black_box(&cache);
}

/// For instruction counts (`valgrind --tool=callgrind`): `n` warm lookups
/// of `which` (`ours`, `ours-sync` for `get_cached`, `mutex`, or
/// `uniform` over 100,000 keys after filling them) on one runtime worker
/// and nothing else; the
/// difference between two `n` is the cost of the lookups alone.
fn lookups_only(which: &str, n: u64) {
    // One worker, and the loop a task on it, as the timed figures run.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let source = Arc::new(SlowSource::default());
    let cache = TokenCache::builder(Arc::clone(&source)).build();
    let baseline = MutexCache {
        source,
        slot: tokio::sync::Mutex::new(None),
    };
    let key = TokenKey::default();
    if which == "uniform" {
        // Over 100,000 keys in the bench's order: for cache-miss counts
        // (`valgrind --tool=callgrind --cache-sim=yes`).
        let keys: Vec<TokenKey> = (0..100_000)
            .map(|i| TokenKey::new().scope(format!("s{i}")))
            .collect();
        let cache = TokenCache::builder(SlowSource::default())
            .max_keys(200_000)
            .build();
        rt.block_on(rt.spawn(async move {
            for k in &keys {
                cache.get(k).await.unwrap();
            }
            for i in 0..n as usize {
                let k = &keys[(i * 7919) % keys.len()];
                drop(black_box(cache.get(k).await.unwrap()));
            }
        }))
        .unwrap();
        return;
    }
    let which = which.to_owned();
    rt.block_on(rt.spawn(async move {
        cache.get(&key).await.unwrap();
        baseline.get().await;
        for _ in 0..n {
            match which.as_str() {
                "ours" => drop(black_box(cache.get(&key).await.unwrap())),
                "ours-sync" => drop(black_box(cache.get_cached(&key).unwrap())),
                _ => drop(black_box(baseline.get().await)),
            }
        }
    }))
    .unwrap();
}

/// RSS delta and live-heap delta per key, from a child process.
fn memory_per_key(n: usize) -> (f64, f64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--memory-child")
        .arg(n.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = text
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(f64::NAN));
    (
        figures.next().unwrap_or(f64::NAN),
        figures.next().unwrap_or(f64::NAN),
    )
}

/// The baseline: one async mutex held across the fetch; every caller
/// queues behind it while a fetch runs.
struct MutexCache {
    source: Arc<SlowSource>,
    slot: tokio::sync::Mutex<Option<(Arc<Token>, Instant)>>,
}

impl MutexCache {
    async fn get(&self) -> Arc<Token> {
        let mut slot = self.slot.lock().await;
        if let Some((t, exp)) = &*slot {
            if Instant::now() < *exp {
                return Arc::clone(t);
            }
        }
        let key = TokenKey::default();
        let t = Arc::new(
            self.source
                .fetch(FetchContext::new(
                    &key,
                    None,
                    bearer_cache::FetchReason::Initial,
                ))
                .await
                .unwrap(),
        );
        *slot = Some((Arc::clone(&t), Instant::now() + Duration::from_secs(3600)));
        t
    }
}

/// The runtime every figure but memory is measured on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// 10,000 concurrent callers on a cold key, 50 ms source, in `runs`
/// alternating runs of ours and the mutex baseline (one run's p99 swings
/// by milliseconds here); the callers share one key, as the callers of one
/// middleware do. Prints the median p99 of each, and every run's. `only`:
/// ours (`true`) or the baseline's runs alone.
fn stampedes(rt: &tokio::runtime::Runtime, runs: usize, only: Option<bool>) {
    let mut p99s = [Vec::new(), Vec::new()];
    let key = Arc::new(TokenKey::default());
    for run in 0..2 * runs {
        let ours = run % 2 == 0;
        if only.is_none_or(|only| only == ours) {
            // Under callgrind, starting the callers takes longer than 50 ms.
            let delay = Duration::from_millis(if only.is_some() { 5000 } else { 50 });
            p99s[usize::from(!ours)].push(stampede(rt, ours, &key, delay));
        }
    }
    for (name, p99s) in ["reqwest-bearer", "mutex-baseline"].iter().zip(p99s) {
        if p99s.is_empty() {
            continue;
        }
        let runs: Vec<String> = p99s.iter().map(|p| format!("{p:.1}")).collect();
        println!(
            "RESULT stampede callers=10000 fetches=1 p99_ms={:.1} impl={name} runs={}",
            median(p99s.clone()),
            runs.join(",")
        );
    }
}

/// One stampede over a source that takes `delay`: the p99 of the callers'
/// latencies in ms.
fn stampede(rt: &tokio::runtime::Runtime, ours: bool, key: &Arc<TokenKey>, delay: Duration) -> f64 {
    let source = Arc::new(SlowSource {
        delay,
        ..SlowSource::default()
    });
    let cache = TokenCache::builder(Arc::clone(&source)).build();
    let baseline = Arc::new(MutexCache {
        source: Arc::clone(&source),
        slot: tokio::sync::Mutex::new(None),
    });
    let mut latencies: Vec<f64> = rt.block_on(async {
        let tasks: Vec<_> = (0..10_000)
            .map(|_| {
                let (cache, baseline, key) =
                    (cache.clone(), Arc::clone(&baseline), Arc::clone(key));
                tokio::spawn(async move {
                    let start = Instant::now();
                    if ours {
                        cache.get(&key).await.unwrap();
                    } else {
                        baseline.get().await;
                    }
                    start.elapsed().as_secs_f64() * 1000.0
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "one fetch");
    // A caller that came after the fetch measured a hit, not the wake.
    let late = cache.stats().hits;
    assert!(
        delay < Duration::from_secs(1) || late == 0,
        "{late} callers came late"
    );
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    latencies[latencies.len() * 99 / 100]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Spins until `step` reaches `at_least`: the two tasks of the two-thread
/// figure each hold a runtime worker of their own and take their turns by
/// it. Panics after 10 s rather than measure tasks that never ran at once
/// (both on one worker).
fn wait_for(step: &AtomicUsize, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while step.load(Ordering::SeqCst) < at_least {
        assert!(Instant::now() < deadline, "the two tasks never ran at once");
        std::hint::spin_loop();
    }
}

/// Median ns per call over `batches` batches of `per_batch` sequential
/// calls, each batch run as a task on a runtime worker (where a service's
/// requests run); `batch(n)` makes the future that does `n` calls.
fn per_call_ns<F, Fut>(
    rt: &tokio::runtime::Runtime,
    batches: usize,
    per_batch: u32,
    batch: F,
) -> f64
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let calls = batch(per_batch);
        let took = rt
            .block_on(rt.spawn(async move {
                let start = Instant::now();
                calls.await;
                start.elapsed()
            }))
            .unwrap();
        samples.push(took.as_nanos() as f64 / f64::from(per_batch));
    }
    median(samples)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        memory_child(args[i + 1].parse().unwrap());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--lookups-only") {
        lookups_only(&args[i + 1], args[i + 2].parse().unwrap());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--stampedes-only") {
        // `cargo bench` appends `--bench`: only a named side counts.
        let only = args
            .get(i + 2)
            .filter(|which| !which.starts_with("--"))
            .map(|which| which == "ours");
        stampedes(&runtime(), args[i + 1].parse().unwrap(), only);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    println!(
        "RESULT machine load_average={}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(",")
    );
    let rt = runtime();
    let (batches, per_batch) = if quick { (15, 20_000) } else { (51, 200_000) };

    // Warm single key.
    let source = Arc::new(SlowSource::default());
    // The default clock, as in production (tokio's test-util, which bench
    // builds enable, costs nothing while no runtime has paused time).
    let cache = TokenCache::builder(Arc::clone(&source)).build();
    let key = TokenKey::default();
    rt.block_on(cache.get(&key)).unwrap();
    let ours = per_call_ns(&rt, batches, per_batch, |n| {
        let (c, k) = (cache.clone(), key.clone());
        async move {
            for _ in 0..n {
                black_box(c.get(&k).await.unwrap());
            }
        }
    });
    let baseline = Arc::new(MutexCache {
        source: Arc::clone(&source),
        slot: tokio::sync::Mutex::new(None),
    });
    rt.block_on(baseline.get());
    let theirs = per_call_ns(&rt, batches, per_batch, |n| {
        let b = Arc::clone(&baseline);
        async move {
            for _ in 0..n {
                black_box(b.get().await);
            }
        }
    });
    // The synchronous half, as the middleware and the tower layer call it.
    let ours_sync = per_call_ns(&rt, batches, per_batch, |n| {
        let (c, k) = (cache.clone(), key.clone());
        async move {
            for _ in 0..n {
                black_box(c.get_cached(&k).unwrap());
            }
        }
    });
    println!("RESULT warm_lookup impl=reqwest-bearer median_ns={ours:.1}");
    println!("RESULT warm_lookup impl=reqwest-bearer api=get_cached median_ns={ours_sync:.1}");
    println!(
        "RESULT warm_lookup impl=mutex-baseline median_ns={theirs:.1} ratio_to_ours={:.2}",
        theirs / ours
    );

    // Allocations on the hit path, counted on the worker that runs the
    // task (nothing in the loop yields), after the warm-up above.
    let lookups = 100_000u64;
    let (c, k, b) = (cache.clone(), key.clone(), Arc::clone(&baseline));
    let (ours_allocs, theirs_allocs) = rt
        .block_on(rt.spawn(async move {
            let start = allocations();
            for _ in 0..lookups {
                black_box(c.get(&k).await.unwrap());
            }
            let mid = allocations();
            for _ in 0..lookups {
                black_box(b.get().await);
            }
            (mid - start, allocations() - mid)
        }))
        .unwrap();
    println!(
        "RESULT allocations_per_lookup impl=reqwest-bearer value={:.3}",
        ours_allocs as f64 / lookups as f64
    );
    println!(
        "RESULT allocations_per_lookup impl=mutex-baseline value={:.3}",
        theirs_allocs as f64 / lookups as f64
    );

    // Warm lookups from both worker threads at once: where a mutex serializes.
    let shared_baseline = Arc::new(MutexCache {
        source: Arc::clone(&source),
        slot: tokio::sync::Mutex::new(None),
    });
    rt.block_on(shared_baseline.get());
    // Each batch, two tasks hold one worker each; each runs its lookups
    // alone (the other waiting) and then both at once, timed inside the
    // task. A thread at once is compared with itself alone, milliseconds
    // before: on a shared host a worker's speed at this loop can differ
    // from the other's by a third, and change over time, alone or not, so
    // comparing the slower thread at once with a one-thread figure taken
    // earlier read 1.4 where neither thread slowed down at all.
    let both_threads = |ours: bool| {
        let (mut at_once, mut ratios) = (Vec::new(), Vec::new());
        for _ in 0..batches {
            let step = Arc::new(AtomicUsize::new(0));
            let times = rt.block_on(async {
                let tasks: Vec<_> = (0..2)
                    .map(|me| {
                        let cache = cache.clone();
                        let baseline = Arc::clone(&shared_baseline);
                        let step = Arc::clone(&step);
                        tokio::spawn(async move {
                            let key = TokenKey::default();
                            let lookups = || async {
                                let start = Instant::now();
                                for _ in 0..per_batch {
                                    if ours {
                                        black_box(cache.get(&key).await.unwrap());
                                    } else {
                                        black_box(baseline.get().await);
                                    }
                                }
                                start.elapsed()
                            };
                            // Steps: 2 both hold a worker, 3 the first ran
                            // alone, 4 the second did; then both at once.
                            step.fetch_add(1, Ordering::SeqCst);
                            wait_for(&step, 2 + me);
                            let alone = lookups().await;
                            step.fetch_add(1, Ordering::SeqCst);
                            wait_for(&step, 4);
                            (alone, lookups().await)
                        })
                    })
                    .collect();
                let mut times = Vec::with_capacity(2);
                for task in tasks {
                    times.push(task.await.unwrap());
                }
                times
            });
            let per_lookup = |d: Duration| d.as_nanos() as f64 / f64::from(per_batch);
            // The slower thread's time at once, and the worse thread's
            // slowdown against itself alone.
            at_once.push(times.iter().map(|t| per_lookup(t.1)).fold(0.0, f64::max));
            ratios.push(
                times
                    .iter()
                    .map(|(alone, both)| per_lookup(*both) / per_lookup(*alone))
                    .fold(0.0, f64::max),
            );
        }
        (median(at_once), median(ratios))
    };
    let (ours_2, ours_2_ratio) = both_threads(true);
    let (theirs_2, _) = both_threads(false);
    println!(
        "RESULT warm_lookup_2_threads impl=reqwest-bearer ns_per_lookup={ours_2:.1} ratio_to_one_thread={ours_2_ratio:.2}"
    );
    println!(
        "RESULT warm_lookup_2_threads impl=mutex-baseline ns_per_lookup={theirs_2:.1} ratio_to_ours={:.2}",
        theirs_2 / ours_2
    );

    // One warm key among 100,000.
    let keys: Arc<Vec<TokenKey>> = Arc::new(
        (0..100_000)
            .map(|i| TokenKey::new().scope(format!("s{i}")))
            .collect(),
    );
    let many = TokenCache::builder(Arc::clone(&source))
        .max_keys(200_000)
        .build();
    rt.block_on(async {
        for k in keys.iter() {
            many.get(k).await.unwrap();
        }
    });
    let spread = per_call_ns(&rt, batches, per_batch, |n| {
        let (c, keys) = (many.clone(), Arc::clone(&keys));
        async move {
            for i in 0..n {
                let k = &keys[(i as usize * 7919) % keys.len()];
                black_box(c.get(k).await.unwrap());
            }
        }
    });
    let one_of_many = per_call_ns(&rt, batches, per_batch, |n| {
        let (c, keys) = (many.clone(), Arc::clone(&keys));
        async move {
            let hot = &keys[4242];
            for _ in 0..n {
                black_box(c.get(hot).await.unwrap());
            }
        }
    });
    let stats = many.stats();
    println!(
        "RESULT lookup_100k_keys impl=reqwest-bearer pattern=hot_key median_ns={one_of_many:.1} ratio_to_warm={:.2}",
        one_of_many / ours
    );
    println!(
        "RESULT lookup_100k_keys impl=reqwest-bearer pattern=uniform median_ns={spread:.1} ratio_to_warm={:.2} misses={}",
        spread / ours,
        stats.misses
    );

    // First fetch of a new key: a source that answers at once, its own
    // time measured alone and subtracted.
    let first = |n: usize| {
        let fresh = Arc::new(FortyByteSource::default());
        let cache = TokenCache::builder(Arc::clone(&fresh))
            .max_keys(n as u64 * 2)
            .build();
        let keys: Vec<TokenKey> = (0..n)
            .map(|i| TokenKey::new().scope(format!("f{i}")))
            .collect();
        // Callers run as tasks on the runtime's workers, as in a service
        // (from `block_on`'s thread every hand-off would wake a parked
        // worker, which measures the futex rather than the cache).
        let keys = Arc::new(keys);
        let (c, k) = (cache.clone(), Arc::clone(&keys));
        let through_cache = rt
            .block_on(rt.spawn(async move {
                let start = Instant::now();
                for k in k.iter() {
                    black_box(c.get(k).await.unwrap());
                }
                start.elapsed()
            }))
            .unwrap();
        let (f, k) = (Arc::clone(&fresh), Arc::clone(&keys));
        let alone = rt
            .block_on(rt.spawn(async move {
                let start = Instant::now();
                for k in k.iter() {
                    let cx = FetchContext::new(k, None, bearer_cache::FetchReason::Initial);
                    black_box(f.fetch(cx).await.unwrap());
                }
                start.elapsed()
            }))
            .unwrap();
        (through_cache.saturating_sub(alone)).as_secs_f64() * 1e6 / n as f64
    };
    let first_fetch = median(
        (0..5)
            .map(|_| first(if quick { 2_000 } else { 20_000 }))
            .collect(),
    );
    println!("RESULT first_fetch impl=reqwest-bearer overhead_us_per_key={first_fetch:.2}");

    if !args.iter().any(|a| a == "--no-memory") {
        for n in [100_000, 1_000_000] {
            let (rss, live) = memory_per_key(n);
            println!(
                "RESULT memory_per_key keys={n} impl=reqwest-bearer bytes={rss:.0} live_heap_bytes={live:.0}"
            );
        }
    }

    stampedes(&rt, if quick { 5 } else { 21 }, None);

    if quick {
        return;
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    c.bench_function("warm_lookup/reqwest-bearer", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cache.get(&key).await.unwrap()) })
    });
    c.bench_function("warm_lookup/mutex-baseline", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(baseline.get().await) })
    });
    c.bench_function("lookup_100k_keys/reqwest-bearer", |b| {
        let mut i = 0usize;
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % keys.len();
            let k = &keys[i];
            let c = &many;
            async move { black_box(c.get(k).await.unwrap()) }
        })
    });
    c.final_summary();
}
