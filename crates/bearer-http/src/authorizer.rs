//! The decisions every adapter takes per request, in one place.

use std::fmt;
use std::sync::Arc;

use bearer_cache::{CachedToken, TokenCache, TokenError, TokenKey};
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use url::Url;

use crate::builder::AuthBuilder;
use crate::extensions::{NoAuthRetry, SkipAuth};
use crate::fields::field;
use crate::origin::AllowedOrigins;
use crate::rejection::{Verdict, grpc_unauthenticated, is_grpc, rejection, verdict};
use crate::resend::Resends;

/// A token cache and the rules for using its tokens over HTTP: which
/// requests get a token, what a 401 means, whether a request may be resent.
/// Adapters (the reqwest middleware, the tower layer) hold one and ask it;
/// they decide nothing themselves. Cheap to clone.
///
/// ```
/// use bearer_cache::{StaticSource, TokenCache};
/// use bearer_http::{Authorizer, Skipped};
/// use http::{Extensions, HeaderMap};
///
/// let cache = TokenCache::builder(StaticSource::new("t0k3n")).build();
/// let auth = Authorizer::builder(cache)
///     .allow_origin("https://api.example.com".parse()?)
///     .build()?;
/// let (headers, extensions) = (HeaderMap::new(), Extensions::new());
/// let api = "https://api.example.com/orders".parse()?;
/// assert_eq!(auth.check_uri(&api, &headers, &extensions), Ok(()));
/// let elsewhere = "https://evil.example.com/".parse()?;
/// assert_eq!(
///     auth.check_uri(&elsewhere, &headers, &extensions),
///     Err(Skipped::OriginNotAllowed)
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

struct Inner {
    cache: TokenCache,
    origins: AllowedOrigins,
    settings: Settings,
}

/// The knobs besides origins, with their defaults (documented on
/// [`AuthBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) default_key: TokenKey,
    pub(crate) max_auth_retries: u32,
    pub(crate) retry_non_idempotent: bool,
    pub(crate) refresh_without_challenge: bool,
    pub(crate) replace_authorization: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_key: TokenKey::new(),
            max_auth_retries: 1,
            retry_non_idempotent: true,
            refresh_without_challenge: true,
            replace_authorization: false,
        }
    }
}

/// Why a request goes without a token ([`Authorizer::check_url`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skipped {
    /// The request carries [`SkipAuth`].
    SkipAuth,
    /// Its origin is not allowed.
    OriginNotAllowed,
    /// It already carries `Authorization`, and replacing it is off.
    AuthorizationPresent,
}

impl Skipped {
    /// A short snake_case name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::SkipAuth => "skip_auth",
            Skipped::OriginNotAllowed => "origin_not_allowed",
            Skipped::AuthorizationPresent => "authorization_present",
        }
    }
}

impl Authorizer {
    /// Starts configuring an authorizer over `cache`; adapters offer the
    /// same builder under their own `builder`.
    pub fn builder(cache: TokenCache) -> AuthBuilder<Authorizer> {
        AuthBuilder::new(cache)
    }

    pub(crate) fn new(cache: TokenCache, origins: AllowedOrigins, settings: Settings) -> Self {
        Authorizer {
            inner: Arc::new(Inner {
                cache,
                origins,
                settings,
            }),
        }
    }

    /// The cache tokens come from.
    pub fn cache(&self) -> &TokenCache {
        &self.inner.cache
    }

    /// Whether a request to `url` with these headers and extensions gets a
    /// token, or why not.
    // Once per request in the reqwest adapter (again for a resend's URL): inlined.
    #[inline]
    pub fn check_url(
        &self,
        url: &Url,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), Skipped> {
        self.check(|o| o.allows(url), headers, extensions)
    }

    /// [`check_url`](Self::check_url) for an `http::Uri`, which must be
    /// absolute (scheme and authority) to match an origin.
    pub fn check_uri(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), Skipped> {
        self.check(|o| o.allows_uri(uri), headers, extensions)
    }

    fn check(
        &self,
        allowed: impl FnOnce(&AllowedOrigins) -> bool,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), Skipped> {
        if extensions.get::<SkipAuth>().is_some() {
            return Err(Skipped::SkipAuth);
        }
        if !allowed(&self.inner.origins) {
            return Err(Skipped::OriginNotAllowed);
        }
        if !self.inner.settings.replace_authorization && field(headers, &AUTHORIZATION).is_some() {
            return Err(Skipped::AuthorizationPresent);
        }
        Ok(())
    }

    /// The key for requests without a [`TokenKey`] extension.
    pub fn default_key(&self) -> &TokenKey {
        &self.inner.settings.default_key
    }

    /// The key a request's token is for: its [`TokenKey`] extension, else
    /// the default key.
    pub fn key<'a>(&'a self, extensions: &'a Extensions) -> &'a TokenKey {
        extensions
            .get::<TokenKey>()
            .unwrap_or(&self.inner.settings.default_key)
    }

    /// The resend budget of a request with this method and extensions:
    /// none with [`NoAuthRetry`], none for a non-idempotent method unless
    /// allowed, else `max_auth_retries`.
    // Once per request in every adapter: inlined there.
    #[inline]
    pub fn resends(&self, method: &Method, extensions: &Extensions) -> Resends {
        let settings = &self.inner.settings;
        let allowed = extensions.get::<NoAuthRetry>().is_none()
            && (settings.retry_non_idempotent || method.is_idempotent());
        Resends::new(if allowed {
            settings.max_auth_retries
        } else {
            0
        })
    }

    /// What a 401's headers say about the token it carried.
    pub fn verdict(&self, headers: &HeaderMap) -> Verdict {
        verdict(headers, self.inner.settings.refresh_without_challenge)
    }

    /// Whether a response (its status and headers) rejects the token the
    /// request carried, and the verdict: a 401, judged by
    /// [`verdict`](Self::verdict), or, when the request was a gRPC call
    /// (`grpc_call`, from [`is_grpc_call`](Self::is_grpc_call) before the
    /// send), a gRPC `UNAUTHENTICATED` in the headers, which blames the
    /// token. `None`: not a rejection.
    // Once per answer in the reqwest adapter's bearer path: inlined there.
    #[inline]
    pub fn rejection(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        grpc_call: bool,
    ) -> Option<Verdict> {
        rejection(
            status,
            headers,
            self.inner.settings.refresh_without_challenge,
            false,
            grpc_call,
        )
    }

    /// [`rejection`](Self::rejection) of the answer to a request that
    /// carried `token`: for a bound (DPoP) token, `DPoP` challenges count
    /// too, and a refused proof (`use_dpop_nonce`, `invalid_dpop_proof`)
    /// is [`Verdict::Reprove`].
    // Once per answer in every adapter (twice for a 401): inlined there.
    #[inline]
    pub fn rejection_for(
        &self,
        token: &CachedToken,
        status: StatusCode,
        headers: &HeaderMap,
        grpc_call: bool,
    ) -> Option<Verdict> {
        rejection(
            status,
            headers,
            self.inner.settings.refresh_without_challenge,
            token.binding().is_some(),
            grpc_call,
        )
    }

    /// Whether a request with these headers is a gRPC call
    /// (`content-type: application/grpc…`): only its answer can reject the
    /// token with a gRPC status, in the headers
    /// ([`rejection`](Self::rejection)) or in the trailers, which an
    /// adapter should then watch
    /// ([`rejected_in_trailers`](Self::rejected_in_trailers)). Asked before
    /// the send: free for a request without fields of its own yet.
    ///
    /// ```
    /// use bearer_cache::{StaticSource, TokenCache};
    /// use bearer_http::{Authorizer, Verdict};
    /// use http::header::{CONTENT_TYPE, HeaderValue};
    /// use http::{HeaderMap, StatusCode};
    ///
    /// let cache = TokenCache::builder(StaticSource::new("t0k3n")).build();
    /// let auth = Authorizer::builder(cache)
    ///     .allow_origin("https://api.example.com".parse()?)
    ///     .build()?;
    /// let mut request = HeaderMap::new();
    /// assert!(!auth.is_grpc_call(&request));
    /// request.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc+proto"));
    /// let grpc_call = auth.is_grpc_call(&request);
    /// assert!(grpc_call);
    ///
    /// let mut answer = HeaderMap::new();
    /// answer.insert("grpc-status", HeaderValue::from_static("16"));
    /// assert_eq!(auth.rejection(StatusCode::OK, &answer, grpc_call), Some(Verdict::Refresh));
    /// assert_eq!(auth.rejection(StatusCode::OK, &answer, false), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn is_grpc_call(&self, request_headers: &HeaderMap) -> bool {
        is_grpc(request_headers)
    }

    /// Whether the trailers of the answer to a gRPC call reject the token
    /// (`UNAUTHENTICATED` after the headers; watched when
    /// [`is_grpc_call`](Self::is_grpc_call)). The answer has
    /// been handed on by then: the token can only be reported, not the
    /// request resent.
    pub fn rejected_in_trailers(&self, trailers: &HeaderMap) -> bool {
        let rejected = grpc_unauthenticated(trailers);
        if rejected {
            crate::metrics::rejection(Verdict::Refresh);
        }
        rejected
    }

    /// The `Authorization` value for `token`, marked sensitive; built once
    /// per token and thread and shared by the requests that send it, so
    /// cloning it writes no count another thread writes.
    pub fn header_value(token: &CachedToken) -> Result<HeaderValue, TokenError> {
        token
            .derived_per_thread(|authorization| {
                HeaderValue::from_str(authorization).ok().map(|mut value| {
                    value.set_sensitive(true);
                    value
                })
            })
            // The cache admits only header-safe tokens, so this cannot fail
            // today; it stays a typed error should that rule change.
            .ok_or(TokenError::InvalidTokenValue)
    }
}

impl Authorizer {
    /// For a bound (DPoP) token, the proof header of one request: a fresh
    /// proof for `method` and `target` ([`proof_target`](crate::proof_target)
    /// of its URL) with the token's hash and the origin's latest nonce.
    /// `Ok(None)` for a bearer token. Proofs are never reused.
    pub fn proof_header(
        token: &CachedToken,
        method: &Method,
        target: &str,
    ) -> Result<Option<(HeaderName, HeaderValue)>, TokenError> {
        match token.binding() {
            None => Ok(None),
            Some(binding) => {
                crate::proof::proof_header(&**binding, token, method.as_str(), target).map(Some)
            }
        }
    }

    /// For a bound (DPoP) token, keeps the `DPoP-Nonce` an answer to a
    /// request for `target` carries; a server may send a new one with any
    /// answer, not only with its `use_dpop_nonce` challenge.
    pub fn observe_answer(token: &CachedToken, target: &str, headers: &HeaderMap) {
        if let Some(binding) = token.binding() {
            crate::proof::remember_nonce(&**binding, target, headers);
        }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Inner {
            cache,
            origins,
            settings,
        } = &*self.inner;
        f.debug_struct("Authorizer")
            .field("cache", cache)
            .field("allowed_origins", &origins.sorted())
            .field("default_key", &settings.default_key)
            .field("max_auth_retries", &settings.max_auth_retries)
            .field("retry_non_idempotent", &settings.retry_non_idempotent)
            .field(
                "refresh_without_challenge",
                &settings.refresh_without_challenge,
            )
            .field(
                "replace_existing_authorization",
                &settings.replace_authorization,
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bearer_cache::StaticSource;

    fn auth() -> Authorizer {
        Authorizer::builder(TokenCache::builder(StaticSource::new("t")).build())
            .allow_origin(Url::parse("https://api.example.com").unwrap())
            .build()
            .unwrap()
    }

    /// The idempotent-only policy leans on `http`'s RFC 9110 §9.2.2 list.
    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(m.parse::<Method>().unwrap().is_idempotent(), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PROPFIND"] {
            assert!(!m.parse::<Method>().unwrap().is_idempotent(), "{m}");
        }
    }

    #[test]
    fn skip_auth_and_existing_authorization_are_left_alone() {
        let a = auth();
        let uri: Uri = "https://api.example.com/x".parse().unwrap();
        let mut ext = Extensions::new();
        let mut headers = HeaderMap::new();
        assert_eq!(a.check_uri(&uri, &headers, &ext), Ok(()));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert_eq!(
            a.check_uri(&uri, &headers, &ext),
            Err(Skipped::AuthorizationPresent)
        );
        ext.insert(SkipAuth);
        assert_eq!(a.check_uri(&uri, &headers, &ext), Err(Skipped::SkipAuth));
    }

    #[test]
    fn resend_budget_follows_method_and_markers() {
        let a = auth();
        let mut ext = Extensions::new();
        assert!(a.resends(&Method::POST, &ext).keep_copy());
        ext.insert(NoAuthRetry);
        assert!(!a.resends(&Method::GET, &ext).keep_copy());
        let strict = Authorizer::builder(a.cache().clone())
            .allow_origin(Url::parse("https://api.example.com").unwrap())
            .retry_non_idempotent(false)
            .build()
            .unwrap();
        let none = Extensions::new();
        assert!(!strict.resends(&Method::POST, &none).keep_copy());
        assert!(strict.resends(&Method::PUT, &none).keep_copy());
    }

    #[test]
    fn key_comes_from_the_extension_or_the_default() {
        let a = auth();
        let mut ext = Extensions::new();
        assert_eq!(a.key(&ext), a.default_key());
        let scoped = TokenKey::new().scope("admin");
        ext.insert(scoped.clone());
        assert_eq!(a.key(&ext), &scoped);
    }
}
