//! Which request bodies can be sent twice.

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{Empty, Full};

/// A request body the layer can copy before sending, so that a request
/// whose token is rejected can be resent with a new one.
///
/// Implemented for the in-memory bodies (`Full`, `Empty`, `String`,
/// `Vec<u8>`, `Bytes`, `()`), which are copied, and for the boxed ones
/// (`BoxBody`, `UnsyncBoxBody`), which are not; a streaming body answers `None` and its
/// rejection is returned as it is (the token is still replaced for the next
/// request). Implement it for your own body type:
///
/// ```
/// use bearer_tower::ReplayBody;
///
/// struct Upload(std::fs::File);
///
/// impl ReplayBody for Upload {
///     fn try_clone_body(&self) -> Option<Self> {
///         None // read once; never resent
///     }
/// }
/// ```
pub trait ReplayBody: Sized {
    /// A copy of the body that sends the same bytes, if one can be had.
    fn try_clone_body(&self) -> Option<Self>;
}

impl<D: Clone> ReplayBody for Full<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

macro_rules! replay_by_clone {
    ($($body:ty),*) => {
        $(impl ReplayBody for $body {
            fn try_clone_body(&self) -> Option<Self> {
                Some(self.clone())
            }
        })*
    };
}

replay_by_clone!(String, Vec<u8>, Bytes, ());

/// A boxed body is a stream, read once: never resent.
impl<D, E> ReplayBody for BoxBody<D, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

/// A boxed body is a stream, read once: never resent.
impl<D, E> ReplayBody for UnsyncBoxBody<D, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

/// A copy of `request`, extensions included, if its body can be copied.
pub(crate) fn try_clone_request<B: ReplayBody>(
    request: &http::Request<B>,
) -> Option<http::Request<B>> {
    let body = request.body().try_clone_body()?;
    let mut copy = http::Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_everything_but_identity() {
        let mut request = http::Request::post("http://127.0.0.1:1/x?q=1")
            .header("x-one", "1")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        request.extensions_mut().insert(7_u32);
        let copy = try_clone_request(&request).unwrap();
        assert_eq!(copy.method(), request.method());
        assert_eq!(copy.uri(), request.uri());
        assert_eq!(copy.headers(), request.headers());
        assert_eq!(copy.extensions().get::<u32>(), Some(&7));
    }

    #[test]
    fn a_body_without_a_copy_gives_no_request() {
        struct Once;
        impl ReplayBody for Once {
            fn try_clone_body(&self) -> Option<Self> {
                None
            }
        }
        let request = http::Request::new(Once);
        assert!(try_clone_request(&request).is_none());
    }
}
