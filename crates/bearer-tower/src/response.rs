//! The response body: handed on untouched, watched for a gRPC rejection in
//! the trailers.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bearer_cache::{CachedToken, TokenKey};
use bearer_http::Authorizer;
use http_body::{Body, Frame, SizeHint};

pin_project_lite::pin_project! {
    /// The body of a response that came through [`BearerService`]: the
    /// inner body's frames as they are. When the request carried a token
    /// and the trailers say gRPC `UNAUTHENTICATED`, the token is reported
    /// rejected (the answer is already the caller's, so nothing is resent):
    /// the next request gets a new one.
    ///
    /// [`BearerService`]: crate::BearerService
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        sent: Option<Box<Sent>>,
    }
}

/// The token a request carried, for reporting it from the trailers.
pub(crate) struct Sent {
    pub(crate) auth: Authorizer,
    pub(crate) key: TokenKey,
    pub(crate) token: CachedToken,
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, sent: Option<Box<Sent>>) -> Self {
        ResponseBody { inner, sent }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(trailers) = frame.trailers_ref() {
                if let Some(sent) = this.sent.take() {
                    if sent.auth.rejected_in_trailers(trailers) {
                        sent.auth
                            .cache()
                            .invalidate_if_current(&sent.key, &sent.token);
                        tracing::debug!(
                            target: "bearer_tower",
                            rejected = %sent.token.fingerprint(),
                            "token rejected (gRPC UNAUTHENTICATED in trailers); the next request gets a new one"
                        );
                    }
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("watched", &self.sent.is_some())
            .finish_non_exhaustive()
    }
}
