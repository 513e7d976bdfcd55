//! What every scenario shares: the run mode, result lines, the clients
//! under test and the measuring helpers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bearer_testkit::TestServer;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{BearerAuth, FetchContext, Token, TokenCache, TokenError, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tokio::sync::Semaphore;

use crate::baselines::{MutexCache, NoCache};

/// `--quick` (CI smoke) or full (the figures BENCHMARKS.md quotes).
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub quick: bool,
}

impl Mode {
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// The implementations the Rust side can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Ours,
    NoCache,
    MutexCache,
}

impl Impl {
    pub const ALL: [Impl; 3] = [Impl::Ours, Impl::MutexCache, Impl::NoCache];

    pub fn name(self) -> &'static str {
        match self {
            Impl::Ours => "reqwest-bearer",
            Impl::NoCache => "no-cache",
            Impl::MutexCache => "mutex-cache",
        }
    }
}

/// One `RESULT` line.
#[derive(Debug, Clone)]
pub struct Line {
    pub scenario: &'static str,
    pub fields: Vec<(&'static str, String)>,
    pub imp: String,
}

impl Line {
    pub fn new(scenario: &'static str, imp: &str) -> Self {
        Line {
            scenario,
            fields: Vec::new(),
            imp: imp.to_owned(),
        }
    }

    pub fn field(mut self, key: &'static str, value: impl ToString) -> Self {
        self.fields.push((key, value.to_string()));
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Collects result lines, printing each as it comes.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<Line>,
    pub notes: Vec<String>,
    pub failed_checks: Vec<String>,
}

impl Report {
    pub fn push(&mut self, line: Line) {
        let fields: Vec<String> = line
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "RESULT {} {} impl={}",
            line.scenario,
            fields.join(" "),
            line.imp
        );
        self.lines.push(line);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("{note}");
        self.notes.push(note);
    }

    /// A correctness check (never a timing): printed, and the run exits
    /// non-zero at the end if any failed.
    pub fn check(&mut self, what: &str, ok: bool, detail: &str) {
        println!(
            "CHECK {what}: {} ({detail})",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            self.failed_checks.push(format!("{what}: {detail}"));
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile (nearest rank) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

pub fn median(values: &mut [f64]) -> f64 {
    percentile(values, 0.5)
}

/// `(VmRSS, VmHWM)` in kB, from /proc/self/status (0 where unavailable).
pub fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A token source that records when each fetch ran, so latencies can be
/// split into "a fetch was under way" and "steady".
#[derive(Debug, Clone)]
pub struct Recorded {
    inner: Arc<dyn TokenSource>,
    pub windows: Arc<Mutex<Vec<(Instant, Instant)>>>,
}

impl Recorded {
    pub fn new(inner: impl TokenSource) -> Self {
        Recorded {
            inner: Arc::new(inner),
            windows: Arc::default(),
        }
    }

    pub fn windows(&self) -> Vec<(Instant, Instant)> {
        self.windows.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl TokenSource for Recorded {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let started = Instant::now();
        let result = self.inner.fetch(cx).await;
        self.windows.lock().unwrap().push((started, Instant::now()));
        result
    }
}

/// The source every implementation fetches with: only caching differs.
pub fn source(server: &TestServer) -> ClientCredentials {
    ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
}

/// Caps connections in flight (innermost, the same for every
/// implementation), so 10,000 concurrent callers stay within the file
/// descriptor limit: callers still all reach the token layer at once.
#[derive(Debug, Clone)]
pub struct ConnectionLimit(pub Arc<Semaphore>);

impl ConnectionLimit {
    pub fn new(n: usize) -> Self {
        ConnectionLimit(Arc::new(Semaphore::new(n)))
    }
}

#[async_trait::async_trait]
impl Middleware for ConnectionLimit {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let _permit = self.0.acquire().await.expect("never closed");
        next.run(req, extensions).await
    }
}

/// A client under test and what can be read from it afterwards.
pub struct Client {
    pub http: ClientWithMiddleware,
    pub probe: Probe,
}

pub enum Probe {
    Ours(BearerAuth),
    NoCache(Arc<NoCache>),
    MutexCache(Arc<MutexCache>),
}

impl Probe {
    /// Callers that waited on a token fetch so far.
    pub fn waits(&self) -> u64 {
        match self {
            Probe::Ours(auth) => auth.cache().stats().waits,
            Probe::NoCache(m) => m.waits(),
            Probe::MutexCache(m) => m.waits(),
        }
    }
}

/// Builds `imp` over `http` for `server`, with `limit` connections at most.
pub fn client(
    imp: Impl,
    server: &TestServer,
    http: &reqwest::Client,
    source: Recorded,
    limit: Option<usize>,
) -> Client {
    client_within(None, imp, server, http, source, limit)
}

/// [`client`], with `outer` (a retry layer) outside the token layer.
pub fn client_within(
    outer: Option<Arc<dyn Middleware>>,
    imp: Impl,
    server: &TestServer,
    http: &reqwest::Client,
    source: Recorded,
    limit: Option<usize>,
) -> Client {
    let mut builder = ClientBuilder::new(http.clone());
    if let Some(outer) = outer {
        builder = builder.with_arc(outer);
    }
    let probe = match imp {
        Impl::Ours => {
            let auth = BearerAuth::new(TokenCache::builder(source).build(), server.base_url())
                .expect("loopback origin");
            builder = builder.with(auth.clone());
            Probe::Ours(auth)
        }
        Impl::NoCache => {
            let m = Arc::new(NoCache::new(source));
            builder = builder.with_arc(m.clone());
            Probe::NoCache(m)
        }
        Impl::MutexCache => {
            let m = Arc::new(MutexCache::new(source));
            builder = builder.with_arc(m.clone());
            Probe::MutexCache(m)
        }
    };
    if let Some(n) = limit {
        builder = builder.with(ConnectionLimit::new(n));
    }
    Client {
        http: builder.build(),
        probe,
    }
}

/// One GET of the echo endpoint: whether it answered 200, body read.
pub async fn get_ok(client: &ClientWithMiddleware, url: &url::Url) -> bool {
    match client.get(url.clone()).send().await {
        Ok(response) => {
            let ok = response.status() == reqwest::StatusCode::OK;
            ok && response.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

/// A reqwest client sized for many concurrent connections.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()
        .expect("reqwest client")
}
