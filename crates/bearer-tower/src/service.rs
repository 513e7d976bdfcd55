//! The service: one request's way through the layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bearer_cache::{CachedToken, TokenError};
use bearer_http::{Authorizer, Step};
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower::{BoxError, Service, ServiceExt};

use crate::body::{ReplayBody, try_clone_request};
use crate::error::AuthError;
use crate::response::{ResponseBody, Sent};

/// The service [`BearerLayer`](crate::BearerLayer) wraps around `S`.
#[derive(Clone)]
pub struct BearerService<S> {
    inner: S,
    auth: Authorizer,
}

impl<S> BearerService<S> {
    pub(crate) fn new(inner: S, auth: Authorizer) -> Self {
        BearerService { inner, auth }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<Request<B>> for BearerService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
    R: Send + 'static,
{
    type Response = Response<ResponseBody<R>>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<ResponseBody<R>>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let checked = self
            .auth
            .check_uri(request.uri(), request.headers(), request.extensions());
        if let Err(skipped) = checked {
            tracing::trace!(target: "bearer_tower", reason = skipped.as_str(), "request sent without a token");
            let sent = self.inner.call(request);
            return Box::pin(async move { Ok(unwatched(sent.await.map_err(Into::into)?)) });
        }
        // The service that was made ready goes with this request; a clone
        // stays for the next (tower's usual hand-over).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(authorized(self.auth.clone(), inner, request))
    }
}

/// Sends `request` with a token; after a rejection, asks the authorizer
/// what to do, and resends while it says so.
async fn authorized<S, B, R>(
    auth: Authorizer,
    mut inner: S,
    mut request: Request<B>,
) -> Result<Response<ResponseBody<R>>, BoxError>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
{
    let key = auth.key(request.extensions()).clone();
    let mut token = match auth.cache().get_cached(&key) {
        Some(token) => token,
        None => auth.cache().get(&key).await.map_err(AuthError::NoToken)?,
    };
    let mut resends = auth.resends(request.method(), request.extensions());
    // A bound (DPoP) token's proofs name the request's URL; `None` for a
    // bearer token, the one thing its path checks.
    let target = match token.binding() {
        None => None,
        Some(_) => {
            resends.allow_reproof();
            Some(proof_target(request.uri())?)
        }
    };
    let mut spare = resends
        .keep_copy()
        .then(|| try_clone_request(&request))
        .flatten();
    let grpc_call = auth.is_grpc_call(request.headers());
    set_authorization(&mut request, &token, target.as_deref())?;
    let mut response = inner.call(request).await.map_err(Into::into)?;
    loop {
        if let Some(target) = &target {
            Authorizer::observe_answer(&token, target, response.headers());
        }
        let Some(verdict) =
            auth.rejection_for(&token, response.status(), response.headers(), grpc_call)
        else {
            if !grpc_call {
                return Ok(unwatched(response));
            }
            // A gRPC call may still be refused in its trailers.
            let sent = Box::new(Sent { auth, key, token });
            return Ok(response.map(|body| ResponseBody::new(body, Some(sent))));
        };
        let mut resend = match resends.after_rejection(verdict, spare.is_some()) {
            Step::Final(reason) => {
                tracing::debug!(target: "bearer_tower", reason, "rejection returned as is");
                return Ok(unwatched(response));
            }
            Step::Invalidate => {
                auth.cache().invalidate_if_current(&key, &token);
                tracing::debug!(
                    target: "bearer_tower",
                    rejected = %token.fingerprint(),
                    "token rejected; not resending (retries used up, disabled, or body not replayable)"
                );
                return Ok(unwatched(response));
            }
            Step::Resend => match spare.take() {
                Some(resend) => resend,
                None => return Ok(unwatched(response)),
            },
            Step::Reprove => {
                // The proof was refused, not the token: same token, a
                // fresh proof with the nonce the answer gave.
                let Some(mut resend) = spare.take() else {
                    return Ok(unwatched(response));
                };
                if resends.keep_copy() {
                    spare = try_clone_request(&resend);
                }
                tracing::debug!(
                    target: "bearer_tower",
                    token = %token.fingerprint(),
                    "DPoP proof refused; resending with a fresh one"
                );
                set_authorization(&mut resend, &token, target.as_deref())?;
                drop(response);
                response = inner
                    .ready()
                    .await
                    .map_err(Into::into)?
                    .call(resend)
                    .await
                    .map_err(Into::into)?;
                continue;
            }
            // `Return`: the token was replaced already, and stays.
            _ => return Ok(unwatched(response)),
        };
        if resends.keep_copy() {
            spare = try_clone_request(&resend);
        }
        let rejected = token.fingerprint();
        token = auth
            .cache()
            .replace_rejected(&key, &token)
            .await
            .map_err(AuthError::RefreshFailed)?;
        tracing::debug!(
            target: "bearer_tower",
            rejected = %rejected,
            token = %token.fingerprint(),
            "token rejected; resending with a fresh one"
        );
        let target = match token.binding() {
            None => None,
            Some(_) => Some(proof_target(resend.uri())?),
        };
        set_authorization(&mut resend, &token, target.as_deref())?;
        drop(response);
        response = inner
            .ready()
            .await
            .map_err(Into::into)?
            .call(resend)
            .await
            .map_err(Into::into)?;
    }
}

/// A response handed on without watching its trailers: its rejection, if
/// any, has been dealt with.
fn unwatched<R>(response: Response<R>) -> Response<ResponseBody<R>> {
    response.map(|body| ResponseBody::new(body, None))
}

/// Sets `Authorization`, and for a bound token (`target` known) a fresh
/// proof.
fn set_authorization<B>(
    request: &mut Request<B>,
    token: &CachedToken,
    target: Option<&str>,
) -> Result<(), AuthError> {
    let value = Authorizer::header_value(token).map_err(AuthError::NoToken)?;
    request.headers_mut().insert(AUTHORIZATION, value);
    if let Some(target) = target {
        if let Some((name, proof)) =
            Authorizer::proof_header(token, request.method(), target).map_err(AuthError::NoToken)?
        {
            request.headers_mut().insert(name, proof);
        }
    }
    Ok(())
}

/// The proof target of an absolute URI (the origin check admits no other).
fn proof_target(uri: &http::Uri) -> Result<String, AuthError> {
    bearer_http::proof_target_of_uri(uri).ok_or_else(|| {
        AuthError::NoToken(TokenError::source(
            "a DPoP proof needs an absolute request URI",
            false,
        ))
    })
}

impl<S> fmt::Debug for BearerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerService")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
