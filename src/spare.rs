//! The resend copy: what a request needs to be sent again after a 401,
//! taken before the first send and turned back into a request only when a
//! resend happens.
//!
//! `reqwest::Request::try_clone` costs four allocations on every request
//! (the URL, and three for the timeout slot it writes into a fresh request's
//! extensions), all thrown away when the answer is not a 401. This copy
//! allocates nothing of its own for a request with few headers: the headers
//! are kept inline, header values and the body are shared by reference
//! count (a buffer the caller handed over as owned gets its count on the
//! first share, as with any clone of it), and the URL is not copied at all,
//! since the answer (or the redirect policy) gives it back when the hop
//! that answered is known to be the one sent ([`Hops::sent_url`]).
//!
//! The request's own extensions are not copied: reqwest keeps them private,
//! and the only one its client reads is the timeout, which is copied.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use http_body::Body as _;
use reqwest::{Body, Request};
use smallvec::SmallVec;
use url::Url;

#[cfg(doc)]
use crate::redirect::Hops;

/// Headers kept inline (`smallvec`); a request with more spills them to
/// the heap.
const INLINE: usize = 3;

/// A copy of a request for resending it (see the module's docs).
pub(crate) struct Spare {
    method: Method,
    version: Version,
    timeout: Option<Duration>,
    headers: Pairs,
    body: Option<Bytes>,
}

impl Spare {
    /// [`take_into`](Self::take_into) a fresh slot: the copy, or `None`
    /// for a streaming body.
    #[cfg(test)]
    pub(crate) fn take(req: &mut Request) -> Option<Spare> {
        let mut slot = None;
        Spare::take_into(req, &mut slot);
        slot
    }

    /// Takes a copy of `req` as it is now into `slot`, which is left as it
    /// is when the body is a stream (which cannot be sent twice). Built
    /// where it lies: a copy built apart and moved in is copied whole, the
    /// unused inline room for fields (216 bytes) included.
    pub(crate) fn take_into(req: &mut Request, slot: &mut Option<Spare>) {
        let Some(body) = share_body(req.body_mut()) else {
            return;
        };
        let spare = slot.insert(Spare {
            method: req.method().clone(),
            version: req.version(),
            timeout: req.timeout().copied(),
            headers: Pairs::new(),
            body,
        });
        copy_fields(req.headers(), &mut spare.headers);
    }

    /// A request as the copy was taken, to `url` (the one sent: see
    /// [`Hops::sent_url`]).
    pub(crate) fn request(&self, url: Url) -> Request {
        let mut req = Request::new(self.method.clone(), url);
        *req.version_mut() = self.version;
        if self.timeout.is_some() {
            *req.timeout_mut() = self.timeout;
        }
        *req.headers_mut() = to_map(&self.headers);
        *req.body_mut() = self.body.clone().map(Body::from);
        req
    }
}

/// The body's bytes, shared by reference count, leaving `body` holding the
/// same bytes; `None` for a streaming body, `Some(None)` without a body.
fn share_body(body: &mut Option<Body>) -> Option<Option<Bytes>> {
    let Some(body) = body else {
        return Some(None);
    };
    // A body with bytes is reqwest's in-memory kind: polled, it hands out
    // all its bytes at once (no copy) and then ends, without waiting.
    body.as_bytes()?;
    let mut cx = Context::from_waker(Waker::noop());
    let bytes = match Pin::new(&mut *body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().ok()?,
        Poll::Ready(None) => Bytes::new(),
        // Not reqwest's in-memory body after all (a reqwest whose body
        // changed): not resent, and the body polled may be spent, so the
        // tests, which run debug builds, are told.
        _ => {
            debug_assert!(false, "reqwest's in-memory body answered otherwise");
            return None;
        }
    };
    *body = Body::from(bytes.clone());
    Some(Some(bytes))
}

/// Header fields in order, inline when few.
type Pairs = SmallVec<[(HeaderName, HeaderValue); INLINE]>;

/// Copies the fields of `headers` into `pairs`, repeated names included,
/// in order.
fn copy_fields(headers: &HeaderMap, pairs: &mut Pairs) {
    // Many requests have none yet (reqwest adds its defaults below every
    // middleware), and extending by even an empty iterator costs a reserve.
    if headers.is_empty() {
        return;
    }
    pairs.extend(
        headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
}

/// A header map of `pairs`, with room for the `Authorization` and `DPoP`
/// fields added next.
fn to_map(pairs: &Pairs) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(pairs.len() + 2);
    for (name, value) in pairs {
        map.append(name.clone(), value.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, CONTENT_TYPE};

    fn request(headers: usize, body: Option<Body>) -> Request {
        let mut req = Request::new(
            Method::PUT,
            Url::parse("https://api.example.com/x?y=1").unwrap(),
        );
        for i in 0..headers {
            let name = HeaderName::try_from(format!("x-h{}", i % 3)).unwrap();
            req.headers_mut()
                .append(name, HeaderValue::from_str(&i.to_string()).unwrap());
        }
        *req.body_mut() = body;
        *req.version_mut() = Version::HTTP_11;
        req
    }

    fn rebuilt(spare: &Spare, url: &str) -> Request {
        spare.request(Url::parse(url).unwrap())
    }

    #[test]
    fn a_rebuilt_request_is_the_one_copied() {
        for headers in [0, 1, INLINE, INLINE + 1, 9] {
            let mut req = request(headers, Some(Body::from(b"payload".to_vec())));
            *req.timeout_mut() = Some(Duration::from_secs(3));
            let before = req.headers().clone();
            let spare = Spare::take(&mut req).unwrap();
            // The original keeps its body.
            assert_eq!(req.body().unwrap().as_bytes(), Some(&b"payload"[..]));
            let copy = rebuilt(&spare, req.url().as_str());
            assert_eq!(copy.method(), Method::PUT);
            assert_eq!(copy.url(), req.url());
            assert_eq!(copy.version(), Version::HTTP_11);
            assert_eq!(copy.timeout(), Some(&Duration::from_secs(3)));
            assert_eq!(copy.headers(), &before, "{headers} headers");
            let repeated: Vec<_> = copy.headers().get_all("x-h0").iter().collect();
            let expected: Vec<_> = before.get_all("x-h0").iter().collect();
            assert_eq!(repeated, expected, "repeated values keep their order");
            assert_eq!(copy.body().unwrap().as_bytes(), Some(&b"payload"[..]));
            // Each resend gets its own request from the one copy.
            let again = rebuilt(&spare, req.url().as_str());
            assert_eq!(again.body().unwrap().as_bytes(), Some(&b"payload"[..]));
        }
    }

    #[test]
    fn sensitive_marks_and_missing_bodies_survive() {
        let mut req = request(0, None);
        let mut secret = HeaderValue::from_static("s3cr3t");
        secret.set_sensitive(true);
        req.headers_mut().insert(CONTENT_TYPE, secret);
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("*/*"));
        let spare = Spare::take(&mut req).unwrap();
        let copy = rebuilt(&spare, "https://api.example.com/x");
        assert!(copy.headers()[CONTENT_TYPE].is_sensitive());
        assert!(!copy.headers()[ACCEPT].is_sensitive());
        assert!(copy.body().is_none());
        assert!(copy.timeout().is_none());

        let mut empty = request(0, Some(Body::from(Vec::new())));
        let spare = Spare::take(&mut empty).unwrap();
        assert_eq!(empty.body().unwrap().as_bytes(), Some(&b""[..]));
        let copy = rebuilt(&spare, "https://api.example.com/x");
        assert_eq!(copy.body().unwrap().as_bytes(), Some(&b""[..]));
    }

    #[test]
    fn a_streaming_body_is_not_copied_and_stays_as_it_was() {
        let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from("chunk"))]);
        let mut req = request(2, Some(Body::wrap_stream(stream)));
        assert!(Spare::take(&mut req).is_none());
        assert!(req.body().is_some_and(|b| b.as_bytes().is_none()));
    }
}
