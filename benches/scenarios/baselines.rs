//! The baselines: the same `ClientCredentials` source, other caching
//! policies. Both are what people write by hand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue};
use reqwest::{Request, Response};
use reqwest_bearer::reqwest_middleware::{self, Middleware, Next};
use reqwest_bearer::{Expiry, FetchContext, FetchReason, Token, TokenKey, TokenSource};

use crate::common::Recorded;

fn set_token(req: &mut Request, token: &str) -> reqwest_middleware::Result<()> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(reqwest_middleware::Error::middleware)?;
    value.set_sensitive(true);
    req.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

async fn fetch(source: &Recorded) -> reqwest_middleware::Result<Token> {
    let key = TokenKey::new();
    source
        .fetch(FetchContext::new(&key, None, FetchReason::Initial))
        .await
        .map_err(reqwest_middleware::Error::middleware)
}

/// A token fetched for every request (`impl=no-cache`).
#[derive(Debug)]
pub struct NoCache {
    source: Recorded,
    waits: AtomicU64,
}

impl NoCache {
    pub fn new(source: Recorded) -> Self {
        NoCache {
            source,
            waits: AtomicU64::new(0),
        }
    }

    pub fn waits(&self) -> u64 {
        self.waits.load(Relaxed)
    }
}

#[async_trait::async_trait]
impl Middleware for NoCache {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.waits.fetch_add(1, Relaxed);
        let token = fetch(&self.source).await?;
        set_token(&mut req, token.access_token().expose_secret())?;
        next.run(req, extensions).await
    }
}

/// Go x/oauth2's `ReuseTokenSource` pattern (`impl=mutex-cache`): one
/// mutex, taken by every request and held across the fetch; a token is
/// renewed when less than `expiryDelta` remains (Go's 10 s, scaled to a
/// tenth of the lifetime for the short tokens of these scenarios); errors
/// are not cached; a 401 is passed to the caller.
#[derive(Debug)]
pub struct MutexCache {
    source: Recorded,
    current: tokio::sync::Mutex<Option<(String, Instant)>>,
    fetching: AtomicBool,
    waits: AtomicU64,
}

impl MutexCache {
    pub fn new(source: Recorded) -> Self {
        MutexCache {
            source,
            current: tokio::sync::Mutex::new(None),
            fetching: AtomicBool::new(false),
            waits: AtomicU64::new(0),
        }
    }

    pub fn waits(&self) -> u64 {
        self.waits.load(Relaxed)
    }

    async fn token(&self) -> reqwest_middleware::Result<String> {
        if self.fetching.load(Relaxed) {
            self.waits.fetch_add(1, Relaxed);
        }
        let mut current = self.current.lock().await;
        if let Some((token, renew_at)) = &*current {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        if !self.fetching.swap(true, Relaxed) {
            self.waits.fetch_add(1, Relaxed);
        }
        let started = Instant::now();
        let fetched = fetch(&self.source).await;
        self.fetching.store(false, Relaxed);
        let token = fetched?;
        let lifetime = match token.expiry() {
            Expiry::In(d) => d,
            _ => Duration::from_secs(3600),
        };
        let delta = Duration::from_secs(10).min(lifetime / 10);
        let value = token.access_token().expose_secret().to_owned();
        *current = Some((value.clone(), started + lifetime - delta));
        Ok(value)
    }
}

#[async_trait::async_trait]
impl Middleware for MutexCache {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let token = self.token().await?;
        set_token(&mut req, &token)?;
        next.run(req, extensions).await
    }
}
