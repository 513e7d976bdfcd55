//! Looking up a request's header fields on the hot path.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The first `name` field of `headers`. An empty map is not searched: many
/// requests have no fields yet where the layers run (reqwest adds its
/// defaults below every middleware), and a lookup in an empty map still
/// hashes the name.
#[inline]
pub(crate) fn field<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    if headers.is_empty() {
        return None;
    }
    headers.get(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{AUTHORIZATION, CONTENT_TYPE};

    #[test]
    fn finds_the_first_field_and_nothing_in_an_empty_map() {
        let mut headers = HeaderMap::new();
        assert_eq!(field(&headers, &AUTHORIZATION), None);
        headers.append(AUTHORIZATION, HeaderValue::from_static("a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("b"));
        assert_eq!(field(&headers, &AUTHORIZATION).unwrap(), "a");
        assert_eq!(field(&headers, &CONTENT_TYPE), None);
    }
}
