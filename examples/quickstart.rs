//! `cargo run --example quickstart`: the bearer middleware against an
//! in-process OAuth server, in five short scenes (about 6 seconds).
//!
//! Against a real provider:
//!
//! ```text
//! cargo run --example quickstart -- \
//!     --token-url https://login.example.com/oauth2/token \
//!     --client-id my-client --client-secret "$SECRET" --scope api.read \
//!     https://api.example.com/v1/me
//! ```
//!
//! Each flag can also come from the environment: `BEARER_TOKEN_URL`,
//! `BEARER_CLIENT_ID`, `BEARER_CLIENT_SECRET`, `BEARER_SCOPE`, `BEARER_URL`.
//!
//! Proxy variables (`HTTP_PROXY`, `ALL_PROXY`, …) are ignored: the demo
//! server is plain `http` on loopback, where a proxy would read the token
//! and the client secret. Behind a proxy, drop `.no_proxy()` in `http()`
//! for an `https` provider.

use std::error::Error;
use std::time::{Duration, Instant};

use bearer_testkit::{Endpoint, TestServer, TokenFault};
use reqwest_bearer::oauth2::ClientCredentials;
use reqwest_bearer::{BearerAuth, BearerError, TokenCache, fingerprint};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let outcome = match Provider::from_args() {
        Ok(Some(provider)) => real(provider).await,
        Ok(None) => demo().await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- demo ---

async fn demo() -> Result<()> {
    const LIFETIME: Duration = Duration::from_secs(4);
    let server = TestServer::builder().token_lifetime(LIFETIME).start().await;
    let control = server.control();
    println!(
        "Test OAuth server on {} (tokens live {LIFETIME:?})\n",
        server.base_url()
    );

    let source = ClientCredentials::new(
        server.token_url(),
        server.client_id(),
        server.client_secret(),
    )
    .scope("read")
    .http_client(http(reqwest::redirect::Policy::none())?);
    // A short-lived token: refresh in the background from half its life on.
    let cache = TokenCache::builder(source)
        .refresh_ahead(Duration::from_secs(2))
        .build();
    let auth = BearerAuth::new(cache, server.base_url())?;
    let client = ClientBuilder::new(http(BearerAuth::redirect_policy())?)
        .with(auth.clone())
        .build();
    let echo = server.api_url("/api/echo");
    let token_requests = || control.counters().token_requests;

    println!("1. The first request fetches a token");
    let fp = token_of(&client, echo.clone()).await?;
    println!(
        "   200 OK with token {fp}; token requests so far: {}\n",
        token_requests()
    );

    println!("2. 100 concurrent requests share it");
    let results =
        futures::future::join_all((0..100).map(|_| token_of(&client, echo.clone()))).await;
    let ok = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|f| *f == fp))
        .count();
    println!(
        "   {ok}/100 OK with token {fp}; token requests so far: {}\n",
        token_requests()
    );

    println!("3. The token nears expiry and is refreshed ahead, with no request waiting");
    let start = Instant::now();
    let misses_before = auth.cache().stats().misses;
    let mut slowest = Duration::ZERO;
    let mut seen = vec![fp.clone()];
    while start.elapsed() < Duration::from_millis(3500) {
        let sent = Instant::now();
        let current = token_of(&client, echo.clone()).await?;
        slowest = slowest.max(sent.elapsed());
        if seen.last() != Some(&current) {
            println!(
                "   at {:.1}s the token changed to {current}",
                start.elapsed().as_secs_f64()
            );
            seen.push(current);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = auth.cache().stats();
    println!(
        "   background refreshes: {}, requests that had to wait for a token: {}, slowest request: {slowest:.1?}\n",
        stats.background_refreshes,
        stats.misses - misses_before,
    );

    println!("4. The server revokes every token; requests recover through one 401 retry");
    control.revoke_all();
    let before = control.counters();
    let results = futures::future::join_all((0..50).map(|_| token_of(&client, echo.clone()))).await;
    let after = control.counters();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!(
        "   {ok}/50 OK; 401s answered: {}; new tokens issued: {}\n",
        after.api_unauthorized - before.api_unauthorized,
        after.issued.total() - before.issued.total(),
    );

    println!("5. The token never leaves for another origin");
    let redirected = client
        .get(server.api_url("/api/redirect-cross?to=/elsewhere"))
        .send()
        .await?;
    let to = redirected.url().clone();
    let direct = client
        .get(server.other_origin_url("/direct"))
        .send()
        .await?;
    let leaked = control
        .last_headers(Endpoint::OtherOrigin)
        .is_some_and(|h| h.contains_key(http::header::AUTHORIZATION));
    println!(
        "   redirect to {to} → {}; direct request → {}; Authorization seen by the other origin: {}",
        redirected.status(),
        direct.status(),
        if leaked { "YES (bug!)" } else { "never" },
    );

    println!("\n6. The token endpoint goes down; requests wait for it instead of failing");
    control.revoke_all();
    control.fail_next_token_requests(2, TokenFault::ServiceUnavailable { retry_after: None });
    let before = control.counters().token_requests;
    let sent = Instant::now();
    let results = futures::future::join_all((0..20).map(|_| token_of(&client, echo.clone()))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!(
        "   {ok}/20 OK after {:.1?}; token requests: {} (two refused, one served everyone)",
        sent.elapsed(),
        control.counters().token_requests - before,
    );
    Ok(())
}

/// Sends a GET to the echo endpoint and returns the fingerprint of the
/// token it saw (the echo endpoint is a test server: it shows us headers).
async fn token_of(client: &ClientWithMiddleware, url: url::Url) -> Result<String> {
    let response = client.get(url).send().await?.error_for_status()?;
    let body: serde_json::Value = response.json().await?;
    let header = body["headers"]["authorization"]
        .as_str()
        .unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .ok_or("no bearer token arrived")?;
    Ok(fingerprint(token).to_string())
}

/// The example's HTTP clients: `redirect` as given, proxy variables ignored.
pub(crate) fn http(redirect: reqwest::redirect::Policy) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(redirect)
        .no_proxy()
        .build()?)
}

/// An error and its causes, each once: `a: b: c`.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// --------------------------------------------------------- real server ---

struct Provider {
    token_url: url::Url,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    url: url::Url,
}

impl Provider {
    /// `None` when no token URL is given: run the demo.
    fn from_args() -> Result<Option<Provider>> {
        let mut flags = std::collections::HashMap::new();
        let mut url = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--token-url" | "--client-id" | "--client-secret" | "--scope" => {
                    let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                    flags.insert(arg.trim_start_matches("--").to_owned(), value);
                }
                "-h" | "--help" => {
                    println!("{}", USAGE);
                    std::process::exit(0);
                }
                other if other.starts_with('-') => {
                    return Err(format!("unknown flag {other}\n{USAGE}").into());
                }
                other => url = Some(other.to_owned()),
            }
        }
        let get = |name: &str| {
            flags.get(name).cloned().or_else(|| {
                std::env::var(format!("BEARER_{}", name.replace('-', "_").to_uppercase())).ok()
            })
        };
        let Some(token_url) = get("token-url") else {
            return Ok(None);
        };
        let need = |name: &str| {
            get(name).ok_or_else(|| format!("--{name} is required with --token-url\n{USAGE}"))
        };
        Ok(Some(Provider {
            token_url: token_url.parse().map_err(|e| format!("--token-url: {e}"))?,
            client_id: need("client-id")?,
            client_secret: need("client-secret")?,
            scope: get("scope"),
            url: url
                .or_else(|| std::env::var("BEARER_URL").ok())
                .ok_or_else(|| format!("a URL to call is required\n{USAGE}"))?
                .parse()
                .map_err(|e| format!("URL: {e}"))?,
        }))
    }
}

const USAGE: &str =
    "usage: quickstart [--token-url URL --client-id ID --client-secret SECRET [--scope SCOPE] URL]";

async fn real(p: Provider) -> Result<()> {
    let mut source = ClientCredentials::new(p.token_url, p.client_id, p.client_secret)
        .http_client(http(reqwest::redirect::Policy::none())?);
    if let Some(scope) = p.scope {
        for s in scope.split_whitespace() {
            source = source.scope(s);
        }
    }
    let auth = BearerAuth::new(TokenCache::builder(source).build(), p.url.clone())?;
    let client = ClientBuilder::new(http(BearerAuth::redirect_policy())?)
        .with(auth.clone())
        .build();
    for attempt in 1..=2 {
        match client.get(p.url.clone()).send().await {
            Ok(response) => {
                let status = response.status();
                let bytes = response.bytes().await?.len();
                let stats = auth.cache().stats();
                println!(
                    "request {attempt}: {status}, {bytes} bytes (token fetches so far: {}, cache hits: {})",
                    stats.fetches, stats.hits
                );
            }
            Err(err) => {
                return Err(match BearerError::find(&err) {
                    Some(e) if e.is_transient() => {
                        format!("no token (transient, try again): {}", chain(e))
                    }
                    Some(e) => format!("no token (permanent): {}", chain(e)),
                    None => chain(&err),
                }
                .into());
            }
        }
    }
    Ok(())
}
