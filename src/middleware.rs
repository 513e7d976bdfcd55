//! The middleware: inject the token, and on a 401 refresh it and resend once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bearer_cache::{CachedToken, TokenCache, TokenKey, TokenSource};
use bearer_http::{Adapter, AuthBuilder, Authorizer, Resends, Step, Verdict};
use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next, Result};
use tracing::field::{Empty, display};
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::{Instrument, Level, Span};
use url::Url;

use crate::BuildError;
use crate::error::BearerError;
use crate::redirect::{Hops, Sent};
use crate::spare::Spare;

/// A `reqwest-middleware` middleware that adds `Authorization: Bearer …`
/// from a [`TokenCache`] to requests for the origins you allow, and on a
/// 401 that blames the token replaces it and resends the request once.
///
/// Cheap to clone; clones share the cache.
///
/// ```
/// use reqwest_bearer::{BearerAuth, StaticSource};
///
/// let http = reqwest::Client::builder()
///     .redirect(BearerAuth::redirect_policy())
///     .build()?;
/// let auth = BearerAuth::builder_for_source(StaticSource::new("t0k3n"))
///     .allow_origin("https://api.example.com".parse()?)
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(http)
///     .with(auth)
///     .build();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # What the origin check cannot see
///
/// The origin is checked on the request as this layer hands it on, and on
/// nothing after that:
///
/// - **Middlewares that rewrite URLs** (failover to another host, mirrors,
///   base-URL rewriting) must sit *outside* this layer, that is, be added to
///   the `ClientBuilder` *before* it, so the check sees the URL that will be
///   sent. One added after it sends the token to wherever it rewrites to.
/// - **Redirects** are followed by the `reqwest::Client` under every
///   middleware. Build it with [`redirect_policy`](Self::redirect_policy)
///   (or `Policy::none()`): reqwest's default policy drops the token when a
///   hop changes origin but restores it on the next hop within the new one.
/// - **A proxy from the environment** (`HTTP_PROXY`, `ALL_PROXY`): reqwest
///   sends a plain-`http` request to the proxy as it is, `Authorization`
///   included, so a token for a loopback origin (allowed over plain `http`
///   because it never leaves the machine) then travels in clear to the
///   proxy. Build the client with `.no_proxy()`, or a `NO_PROXY` that covers
///   loopback, when you allow such an origin. An `https` origin goes through
///   a proxy as a `CONNECT` tunnel: the proxy sees the host, not the token.
#[derive(Clone)]
pub struct BearerAuth {
    auth: Authorizer,
}

/// Configures a [`BearerAuth`]; see [`BearerAuth::builder`]. Its knobs, with
/// their defaults, are those of every adapter ([`AuthBuilder`]).
pub type BearerAuthBuilder = AuthBuilder<BearerAuth>;

impl Adapter for BearerAuth {
    fn from_authorizer(auth: Authorizer) -> Self {
        BearerAuth { auth }
    }
}

impl BearerAuth {
    /// Starts configuring a middleware over `cache`.
    pub fn builder(cache: TokenCache) -> BearerAuthBuilder {
        AuthBuilder::new(cache)
    }

    /// Like [`builder`](Self::builder), over a cache with default settings.
    pub fn builder_for_source(source: impl TokenSource) -> BearerAuthBuilder {
        Self::builder(TokenCache::builder(source).build())
    }

    /// The common case: tokens from `cache` for `base_url`'s origin only,
    /// default settings.
    ///
    /// ```
    /// use reqwest_bearer::{BearerAuth, StaticSource, TokenCache};
    ///
    /// let cache = TokenCache::builder(StaticSource::new("t")).build();
    /// let auth = BearerAuth::new(cache, "https://api.example.com/v1/".parse()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(cache: TokenCache, base_url: Url) -> std::result::Result<Self, BuildError> {
        Self::builder(cache).allow_origin(base_url).build()
    }

    /// The redirect policy to build the `reqwest::Client` under this layer
    /// with. It follows redirects as reqwest's default does (up to 10),
    /// except for requests this layer gave a token:
    ///
    /// - a hop that would send the token to another origin is refused
    ///   ([`RedirectRefused`](crate::RedirectRefused), the cause of a `reqwest::Error` with
    ///   `is_redirect()`). reqwest drops `Authorization` when a hop changes
    ///   origin, but restores it on the next hop within the new origin, so
    ///   without this policy `A → B → B` hands the token to `B`;
    /// - it records whether the hop that answered carried the token, so a
    ///   401 from `A` after `A → B → A` (where reqwest dropped the token)
    ///   neither costs a token fetch nor is resent, while a 401 after a
    ///   redirect within the origin still does.
    ///
    /// With any other policy, the layer sees a redirect only as a final URL
    /// that differs from the one sent: such a 401 is returned as it is (it
    /// cannot tell which hops carried the token), while a bounce back to the
    /// very URL sent looks like no redirect and its 401 counts. reqwest's
    /// own rule then decides where the token goes.
    /// [`Policy::none`](reqwest::redirect::Policy::none) is safe too.
    ///
    /// ```
    /// use reqwest_bearer::{BearerAuth, StaticSource};
    ///
    /// let http = reqwest::Client::builder()
    ///     .redirect(BearerAuth::redirect_policy())
    ///     .build()?;
    /// let auth = BearerAuth::builder_for_source(StaticSource::new("t0k3n"))
    ///     .allow_origin("https://api.example.com".parse()?)
    ///     .build()?;
    /// let client = reqwest_middleware::ClientBuilder::new(http).with(auth).build();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redirect_policy() -> reqwest::redirect::Policy {
        reqwest::redirect::Policy::custom(|attempt| {
            match crate::redirect::follow(attempt.previous(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    }

    /// The cache, e.g. for its [`stats`](TokenCache::stats).
    pub fn cache(&self) -> &TokenCache {
        self.auth.cache()
    }
}

// The trait's method is written out rather than through `async_trait`, so
// the one box per request (which every middleware pays) holds only what
// the request needs after it is handed on, and the request is moved once
// into it (`async_trait` would keep the request twice, the argument and its
// rebinding, beside the resend copy, past the 1032 bytes glibc serves from
// its per-thread cache). The rest allocates nothing: the token comes from
// the cache's synchronous hit path (this thread's handle, no shared write),
// the default key is borrowed, the header value is the one derived once per
// token and thread, the resend copy keeps a few headers inline and shares
// the body's bytes (`Spare`), no span is built unless a subscriber may want
// it, and the miss path and the bearer 401 path are boxed on their own.
impl Middleware for BearerAuth {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> BoxFuture<'async_trait, Result<Response>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let auth = &self.auth;
        if let Err(skipped) = auth.check_url(req.url(), req.headers(), extensions) {
            tracing::trace!(target: "reqwest_bearer", reason = skipped.as_str(), "request sent without a token");
            // Handed on as it is: no box of ours.
            return next.run(req, extensions);
        }
        let custom_key = extensions.get::<TokenKey>().map(|k| Box::new(k.clone()));
        // No span at all unless a subscriber may want one: even a disabled
        // span costs work per request and per poll (with `tracing`'s `log`
        // feature, which axum turns on, a check of `log`'s level each time,
        // and again when it is dropped).
        let span = debug_enabled()
            .then(|| {
                tracing::debug_span!(
                    target: "reqwest_bearer",
                    "bearer_auth",
                    method = %req.method(),
                    origin = Empty,
                    key = Empty,
                    token = Empty,
                    cache_hit = Empty,
                    auth_retry = false,
                )
            })
            .filter(|span| !span.is_disabled());
        let request = Authorized {
            custom_key,
            span,
            extensions,
            next,
        };
        // Formatted only for a subscriber that wants the span: these cost
        // allocations on every request otherwise.
        if let Some(span) = &request.span {
            span.record("origin", display(req.url().origin().ascii_serialization()));
            span.record("key", display(request.key(auth)));
        }
        let cached = auth.cache().get_cached(request.key(auth));
        match cached {
            // The request goes straight into the box it is sent from.
            Some(token) if token.binding().is_none() => Box::pin(self.bearer(req, request, token)),
            Some(token) => Box::pin(self.bound(req, request, token)),
            None => Box::pin(async move {
                let key = request.key(&self.auth);
                let token = self.auth.cache().get(key);
                let token = match &request.span {
                    Some(span) => token.instrument(span.clone()).await,
                    None => token.await,
                }
                .map_err(|e| fail(BearerError::NoToken(e)))?;
                match token.binding() {
                    None => self.bearer(req, request, token).await,
                    Some(_) => self.bound(req, request, token).await,
                }
            }),
        }
    }
}

/// What the sends of a request that gets a token need besides the request
/// (which is passed on its own, so that it is moved once, into the future).
struct Authorized<'a> {
    /// The request's own [`TokenKey`], when it has one.
    custom_key: Option<Box<TokenKey>>,
    /// `None` when no subscriber wants the span.
    span: Option<Span>,
    extensions: &'a mut Extensions,
    next: Next<'a>,
}

impl Authorized<'_> {
    fn key<'k>(&'k self, auth: &'k Authorizer) -> &'k TokenKey {
        self.custom_key.as_deref().unwrap_or(auth.default_key())
    }

    /// Records the token on the span, if any.
    fn record(&self, token: &CachedToken) {
        if let Some(span) = &self.span {
            span.record("token", display(token.fingerprint()));
            span.record("cache_hit", token.was_hit());
        }
    }
}

impl BearerAuth {
    /// A request with a bearer token: made ready, sent, and resent after a
    /// 401. Made ready at the first poll, inside the box, so the request is
    /// not moved again on the way. A block rather than an `async fn`, whose
    /// arguments would each take a second slot in the future (their
    /// rebinding).
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store each argument twice"
    )]
    fn bearer<'a>(
        &'a self,
        mut req: Request,
        request: Authorized<'a>,
        token: CachedToken,
    ) -> impl Future<Output = Result<Response>> + Send + 'a {
        async move {
            request.record(&token);
            let resends = self.auth.resends(req.method(), request.extensions);
            // Written where it lies in this future: returned, it would be
            // copied in whole.
            let mut spare = None;
            take_spare(&mut req, resends, &mut spare);
            let grpc_call = self.auth.is_grpc_call(req.headers());
            let sent = Sent::new(req.url());
            set_authorization(&mut req, &token)?;
            let span = request.span.as_ref();
            // The send and its answer live in this block only: the layout
            // of this future keeps whatever is in scope across an await,
            // so had they been in scope while the 401 path runs, every
            // request's future would have had room for them twice.
            let mut after = {
                let mut send = sent.track(request.next.clone().run(req, request.extensions));
                let answer = InSpan::new(&mut send, span).await;
                // A bearer token, so not `rejection_for`: asking the token
                // whether it is bound would read its lines for every answer.
                let verdict = answer.as_ref().ok().and_then(|response| {
                    (self.auth).rejection(response.status(), response.headers(), grpc_call)
                });
                let Some(verdict) = verdict else {
                    // Handed back whole: taken apart and put together
                    // again, the answer (136 bytes) was copied each time.
                    return answer;
                };
                let response = answer?;
                let hops = send.hops();
                let key = request.key(&self.auth);
                let rejected = Rejected::new(key, token, spare, resends, hops, verdict, grpc_call);
                self.boxed_after_unauthorized(
                    response,
                    rejected,
                    span,
                    request.extensions,
                    request.next,
                )
            };
            InSpan::new(&mut after, span).await
        }
    }
}

impl BearerAuth {
    /// A request with a bound (DPoP) token: the bearer path plus a fresh
    /// proof per send, the nonces answers carry, and one resend with a new
    /// proof when the server refuses the proof rather than the token.
    fn bound<'a>(
        &'a self,
        mut req: Request,
        mut request: Authorized<'a>,
        token: CachedToken,
    ) -> impl Future<Output = Result<Response>> + Send + 'a {
        request.record(&token);
        let span = request.span.take().unwrap_or_else(Span::none);
        let on_401 = span.clone();
        async move {
            let mut resends = self.auth.resends(req.method(), request.extensions);
            resends.allow_reproof();
            let mut spare = None;
            take_spare(&mut req, resends, &mut spare);
            let grpc_call = self.auth.is_grpc_call(req.headers());
            let sent = Sent::new(req.url());
            set_authorization(&mut req, &token)?;
            let target = prove(&mut req, &token)?;
            let mut send = sent.track(request.next.clone().run(req, request.extensions));
            let response = (&mut send).await?;
            Authorizer::observe_answer(&token, &target, response.headers());
            let Some(verdict) =
                (self.auth).rejection_for(&token, response.status(), response.headers(), grpc_call)
            else {
                return Ok(response);
            };
            let hops = send.hops();
            let key = request.key(&self.auth);
            let rejected = Rejected::new(key, token, spare, resends, hops, verdict, grpc_call);
            self.after_unauthorized(response, rejected, on_401, request.extensions, request.next)
                .await
        }
        .instrument(span)
    }

    /// [`after_unauthorized`](Self::after_unauthorized) for the bearer
    /// path, boxed and out of line: neither its future nor the code that
    /// builds it is part of every request's.
    #[cold]
    #[inline(never)]
    fn boxed_after_unauthorized<'a>(
        &'a self,
        response: Response,
        rejected: Rejected,
        span: Option<&Span>,
        extensions: &'a mut Extensions,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<Response>> {
        let span = span.cloned().unwrap_or_else(Span::none);
        Box::pin(self.after_unauthorized(response, rejected, span, extensions, next))
    }

    /// The 401 path: the authorizer decides; this replaces the token and
    /// resends while it says so. Records on `span`, the request's own
    /// (`Span::none()` when nobody listens): never on the caller's.
    async fn after_unauthorized(
        &self,
        mut response: Response,
        mut state: Rejected,
        span: Span,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let auth = &self.auth;
        loop {
            // The first answer was judged by the send that got it; a
            // resend's answer is judged here.
            let Some(verdict) = state.verdict.take().or_else(|| {
                let (status, headers) = (response.status(), response.headers());
                auth.rejection_for(&state.token, status, headers, state.grpc_call)
            }) else {
                return Ok(response);
            };
            if !state.hops.carried(&response) {
                // A redirect dropped the token before this hop (or may
                // have, unseen): the 401 says nothing about the token.
                tracing::debug!(target: "reqwest_bearer", "401 to a redirected request that did not carry the token; returned as is");
                return Ok(response);
            }
            let has_copy = state.spare.is_some() && state.find_url(&response, auth, extensions);
            let resend = match state.resends.after_rejection(verdict, has_copy) {
                Step::Final(reason) => {
                    tracing::debug!(target: "reqwest_bearer", reason, "401 returned as is");
                    return Ok(response);
                }
                Step::Reprove => {
                    // The proof was refused, not the token: same token,
                    // a fresh proof (with the nonce the answer gave).
                    let Some(resend) = state.resend_copy() else {
                        return Ok(response);
                    };
                    span.record("auth_retry", true);
                    tracing::debug!(
                        target: "reqwest_bearer",
                        token = %state.token.fingerprint(),
                        "DPoP proof refused (401); resending with a fresh one"
                    );
                    drop(response);
                    let sent = state.hops.sent();
                    (response, state.hops) =
                        send_again(resend, &state.token, sent, extensions, &next).await?;
                    continue;
                }
                Step::Resend => state.resend_copy(),
                Step::Invalidate => {
                    auth.cache().invalidate_if_current(&state.key, &state.token);
                    None
                }
                // `Return`: the token was replaced already, and stays.
                _ => None,
            };
            let Some(resend) = resend else {
                tracing::debug!(
                    target: "reqwest_bearer",
                    rejected = %state.token.fingerprint(),
                    "token rejected; not resending (retries used up, disabled, or body not replayable)"
                );
                return Ok(response);
            };
            let rejected = state.token.fingerprint();
            state.token = auth
                .cache()
                .replace_rejected(&state.key, &state.token)
                .await
                .map_err(|e| fail(BearerError::RefreshFailed(e)))?;
            span.record("auth_retry", true);
            span.record("token", display(state.token.fingerprint()));
            tracing::debug!(
                target: "reqwest_bearer",
                rejected = %rejected,
                token = %state.token.fingerprint(),
                "token rejected (401); resending with a fresh one"
            );
            drop(response);
            let sent = state.hops.sent();
            (response, state.hops) =
                send_again(resend, &state.token, sent, extensions, &next).await?;
        }
    }
}

/// One resend of the 401 loop: `resend` (a copy taken before any proof was
/// added) with `token`, and a fresh proof when the token is bound, whose
/// answer's nonce is kept.
async fn send_again(
    mut resend: Request,
    token: &CachedToken,
    sent: Sent,
    extensions: &mut Extensions,
    next: &Next<'_>,
) -> Result<(Response, Hops)> {
    set_authorization(&mut resend, token)?;
    let target = match token.binding() {
        Some(_) => Some(prove(&mut resend, token)?),
        None => None,
    };
    let mut send = sent.track(next.clone().run(resend, extensions));
    let response = (&mut send).await?;
    let hops = send.hops();
    if let Some(target) = target {
        Authorizer::observe_answer(token, &target, response.headers());
    }
    Ok((response, hops))
}

/// What the 401 path needs from the first attempt.
struct Rejected {
    key: TokenKey,
    token: CachedToken,
    /// A copy of the request for resending, if it could be copied.
    spare: Option<Spare>,
    resends: Resends,
    /// What became of the last send (redirects, the URL sent).
    hops: Hops,
    /// The URL to resend to, once found.
    url: Option<Url>,
    /// The verdict on the first answer, until the loop takes it.
    verdict: Option<Verdict>,
    /// Whether the request is a gRPC call, whose answers can reject the
    /// token with a gRPC status.
    grpc_call: bool,
}

impl Rejected {
    /// What the 401 path takes from the first attempt, whose answer
    /// rejected `token` with `verdict`.
    fn new(
        key: &TokenKey,
        token: CachedToken,
        spare: Option<Spare>,
        resends: Resends,
        hops: Hops,
        verdict: Verdict,
        grpc_call: bool,
    ) -> Self {
        Rejected {
            key: key.clone(),
            token,
            spare,
            resends,
            hops,
            url: None,
            verdict: Some(verdict),
            grpc_call,
        }
    }

    /// Finds the URL sent, for resending; `false` when it is not known
    /// (then the request is not resent). It is the URL that passed the
    /// origin check before the first send; checked again all the same, so
    /// that no digest, however unlikely a collision, can send a token
    /// anywhere else.
    fn find_url(
        &mut self,
        response: &Response,
        auth: &Authorizer,
        extensions: &Extensions,
    ) -> bool {
        if self.url.is_none() {
            self.url = self.hops.sent_url(response).filter(|url| {
                auth.check_url(url, &http::HeaderMap::new(), extensions)
                    .is_ok()
            });
        }
        self.url.is_some()
    }

    /// A request to resend, from the copy; the copy is kept only while
    /// another resend may follow.
    fn resend_copy(&mut self) -> Option<Request> {
        let resend = match (&self.spare, &self.url) {
            (Some(spare), Some(url)) => Some(spare.request(url.clone())),
            _ => None,
        };
        if !self.resends.keep_copy() {
            self.spare = None;
        }
        resend
    }
}

/// A future with a span entered around each of its polls, when there is
/// one: unlike `Instrumented` over `Span::none()`, no span means no work
/// per poll (with `tracing`'s `log` feature, `Instrumented` checks `log`'s
/// level on every enter and exit even of an empty span). Unlike
/// `Instrumented`, it does not own the future, so a future dropped before
/// it finishes (its caller gave up) is dropped outside the span.
struct InSpan<'s, 'f, F> {
    // Borrowed, and polled through the borrow: a future that is itself
    // `&mut F` costs a call of its own per poll, which this one inlines.
    future: &'f mut F,
    span: Option<&'s Span>,
}

impl<'s, 'f, F> InSpan<'s, 'f, F> {
    fn new(future: &'f mut F, span: Option<&'s Span>) -> Self {
        InSpan { future, span }
    }
}

impl<F: Future + Unpin> Future for InSpan<'_, '_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _entered = this.span.map(Span::enter);
        Pin::new(&mut *this.future).poll(cx)
    }
}

/// The future `Middleware::handle` returns (as `async_trait` spells it).
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether any subscriber may take `DEBUG` spans (the level the macros
/// check first, before asking the subscriber about this span).
fn debug_enabled() -> bool {
    Level::DEBUG <= STATIC_MAX_LEVEL && Level::DEBUG <= LevelFilter::current()
}

fn fail(error: BearerError) -> Error {
    Error::middleware(error)
}

/// The copy of `req` for a resend, into `into`, when one may follow. Taken
/// before the token (and a proof) are added, so a resend gets its own; the
/// only way to resend is a copy taken before sending, and a streaming body
/// has none (then its 401 is simply returned).
fn take_spare(req: &mut Request, resends: Resends, into: &mut Option<Spare>) {
    if resends.keep_copy() {
        Spare::take_into(req, into);
    }
}

// Once per send: inlined.
#[inline]
fn set_authorization(req: &mut Request, token: &CachedToken) -> Result<()> {
    let value = Authorizer::header_value(token).map_err(|e| fail(BearerError::NoToken(e)))?;
    req.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// Adds a fresh proof for a bound token to `req`; answers the proof's
/// target, where the answer's nonce belongs.
fn prove(req: &mut Request, token: &CachedToken) -> Result<String> {
    let target = bearer_http::proof_target(req.url()).into_owned();
    if let Some((name, value)) = Authorizer::proof_header(token, req.method(), &target)
        .map_err(|e| fail(BearerError::NoToken(e)))?
    {
        req.headers_mut().insert(name, value);
    }
    Ok(target)
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BearerAuth").field(&self.auth).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_needs_an_origin_and_rejects_bad_ones() {
        let cache = || TokenCache::builder(bearer_cache::StaticSource::new("t")).build();
        assert_eq!(
            BearerAuth::builder(cache()).build().unwrap_err(),
            BuildError::NoAllowedOrigin
        );
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(matches!(
            BearerAuth::new(cache(), url("ftp://api.example.com")),
            Err(BuildError::InvalidOrigin { .. })
        ));
        assert!(matches!(
            BearerAuth::new(cache(), url("http://api.example.com")),
            Err(BuildError::PlainHttp { .. })
        ));
        let ok = BearerAuth::builder(cache())
            .allow_origin(url("http://api.example.com"))
            .allow_plain_http(true)
            .build()
            .unwrap();
        assert!(format!("{ok:?}").contains("http://api.example.com"));
    }
}
