//! One HTTP exchange with a size cap, and the options every endpoint shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bearer_cache::TokenError;
use http::HeaderMap;

use crate::retry::{RetryPolicy, Sleeper, TokioSleeper};

/// The default cap on an answer's body.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The default deadline of one fetch, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every HTTP-talking source is configured with.
#[derive(Clone)]
pub(crate) struct HttpOptions {
    pub http: reqwest::Client,
    pub timeout: Duration,
    pub max_body: usize,
    pub retry: RetryPolicy,
    pub sleeper: Arc<dyn Sleeper>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            http: default_client(),
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            retry: RetryPolicy::default(),
            sleeper: Arc::new(TokioSleeper),
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A client that never follows redirects: a token request carries
/// credentials, and a redirect must not carry them elsewhere.
pub(crate) fn default_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// An answer read in full (within the cap).
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends `request` and reads the body with a running count, so a huge
/// answer is refused after `max_body` bytes instead of being buffered.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    max_body: usize,
) -> Result<RawResponse, TokenError> {
    let mut response = request.send().await.map_err(TokenError::transport)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let too_large = TokenError::BodyTooLarge { limit: max_body };
    if response
        .content_length()
        .is_some_and(|n| n > max_body as u64)
    {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(TokenError::transport)? {
        if body.len() + chunk.len() > max_body {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}
