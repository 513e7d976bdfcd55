//! One HTTP exchange with a size cap, and the options every endpoint shares.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bearer_cache::{Backoff, SharedClock, SystemClock, TokenError};
use http::HeaderMap;

use crate::retry;

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
    pub retries: u32,
    pub backoff: Backoff,
    pub clock: SharedClock,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            http: DEFAULT_CLIENT.clone(),
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            retries: retry::DEFAULT_RETRIES,
            backoff: retry::default_backoff(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl HttpOptions {
    /// Sends `request()` and reads the answer with `read`, retrying
    /// transient failures within the deadline. `request` is called per
    /// attempt (a client assertion is signed anew) and may fail.
    pub(crate) async fn exchange<T>(
        &self,
        what: &str,
        request: impl Fn() -> Result<reqwest::RequestBuilder, TokenError>,
        read: impl Fn(RawResponse) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        retry::run(
            self.retries,
            &self.backoff,
            self.clock.as_ref(),
            self.timeout,
            what,
            || async { read(send(request()?, self.max_body).await?) },
        )
        .await
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// The process-wide client that never follows redirects: a token request
/// carries credentials, and a redirect must not carry them elsewhere.
/// Built once (TLS setup, connection pool) and cloned (an `Arc` inside).
static DEFAULT_CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
});

/// The HTTP option setters of a source with an `options: HttpOptions`
/// field. `$redirect_note` ends the `http_client` doc; `$deadline` names
/// what the timeout bounds; `$sleeps` what the clock waits between.
macro_rules! http_options {
    ($redirect_note:literal, $deadline:literal, $sleeps:literal) => {
        #[doc = concat!("The HTTP client (default: reqwest's, following no redirects).", $redirect_note)]
        pub fn http_client(mut self, http: reqwest::Client) -> Self {
            self.options.http = http;
            self
        }

        #[doc = concat!("The deadline of one ", $deadline, ", retries included (default 10 s).")]
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.timeout = timeout;
            self
        }

        /// The largest answer read (default 64 KiB).
        pub fn max_body_bytes(mut self, limit: usize) -> Self {
            self.options.max_body = limit;
            self
        }

        /// How many times a transient failure (5xx, 429, 408, a broken
        /// connection, `server_error`, `temporarily_unavailable`, a garbled
        /// answer) is retried within one fetch (default 2; 0 leaves all
        /// retrying to the cache). Permanent failures never are.
        pub fn retries(mut self, retries: u32) -> Self {
            self.options.retries = retries;
            self
        }

        /// How retries within one fetch are spaced: the same [`Backoff`]
        /// the cache spaces its attempts with (default from 200 ms, at most
        /// 2 s apart). A wait that would end past the fetch's deadline,
        /// such as a long `Retry-After`, ends the retries and leaves the
        /// wait to the cache.
        ///
        /// [`Backoff`]: bearer_cache::Backoff
        pub fn retry_backoff(mut self, backoff: bearer_cache::Backoff) -> Self {
            self.options.backoff = backoff;
            self
        }

        #[doc = concat!("The clock that waits between ", $sleeps, " (default: tokio's timer): the cache's [`Clock`](bearer_cache::Clock), so one [`ManualClock`](bearer_cache::ManualClock) can drive both in tests.")]
        pub fn clock(mut self, clock: impl bearer_cache::Clock) -> Self {
            self.options.clock = std::sync::Arc::new(clock);
            self
        }
    };
}
pub(crate) use http_options;

/// An answer read in full (within the cap).
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A reqwest failure as a [`TokenError`], without the URL reqwest puts in
/// its message (a query may carry a key); its kind (`is_timeout`,
/// `is_connect`) and its sources stay.
fn transport_error(error: reqwest::Error) -> TokenError {
    TokenError::transport(error.without_url())
}

/// Sends `request` and reads the body with a running count, so a huge
/// answer is refused after `max_body` bytes instead of being buffered.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    max_body: usize,
) -> Result<RawResponse, TokenError> {
    let mut response = request.send().await.map_err(transport_error)?;
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
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
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
