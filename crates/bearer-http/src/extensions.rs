//! Per-request markers, read from a request's `http::Extensions` by every
//! adapter.

/// Sends this request without a token, whatever its origin.
///
/// ```
/// use bearer_http::SkipAuth;
///
/// let mut request = http::Request::get("https://api.example.com/health").body(())?;
/// request.extensions_mut().insert(SkipAuth);
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkipAuth;

/// Never resends this request after a rejection: the first response is
/// final.
///
/// ```
/// use bearer_http::NoAuthRetry;
///
/// let mut request = http::Request::post("https://api.example.com/pay").body(())?;
/// request.extensions_mut().insert(NoAuthRetry);
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoAuthRetry;
