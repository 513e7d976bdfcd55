//! Where tokens may go: a set of origins (scheme, host, port).

use std::net::IpAddr;

use http::Uri;
use url::{Host, Position, Url};

use crate::error::BuildError;

/// The origins a token may be sent to. A request to any other origin passes
/// through the middleware untouched.
///
/// Kept as a short list of (scheme, host, port), compared with the request's
/// URL as it stands, so the check on every request allocates nothing
/// (`Url::origin` would).
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedOrigins {
    origins: Vec<AllowedOrigin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedOrigin {
    scheme: String,
    /// As `Url::host_str` gives it: lower-case, IPv6 in brackets.
    host: String,
    port: u16,
    /// `scheme://host[:port]` as a parsed `Url` begins: the port only when
    /// it is not the scheme's default.
    serialized: String,
}

impl AllowedOrigin {
    /// The check on every request: one compare of the URL's first bytes
    /// (see [`AllowedOrigins::allows`]).
    fn begins(&self, url: &Url) -> bool {
        // Where the authority ends, an http(s) URL's path begins with '/':
        // so no userinfo, and host and port are exactly these.
        let url = url.as_str().as_bytes();
        url.starts_with(self.serialized.as_bytes()) && url.get(self.serialized.len()) == Some(&b'/')
    }

    fn matches(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
    }

    /// An `http::Uri` keeps the host's letter case and has no default
    /// port; anything `url` would have normalized further (odd IPv4 forms,
    /// percent-encoding) simply does not match.
    fn matches_uri(&self, uri: &Uri) -> bool {
        let scheme = uri.scheme_str();
        let port = uri.port_u16().or(match scheme {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        scheme == Some(self.scheme.as_str())
            && uri
                .host()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && port == Some(self.port)
    }
}

impl AllowedOrigins {
    /// Parses and checks one configured origin.
    pub(crate) fn add(&mut self, input: &str, allow_plain_http: bool) -> Result<(), BuildError> {
        let invalid = |reason: &str| BuildError::InvalidOrigin {
            input: shown(input),
            reason: reason.to_owned(),
        };
        let url = Url::parse(input.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid(
                "only http and https origins can receive a bearer token",
            ));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(invalid("no host"));
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("an origin must not contain credentials"));
        }
        if !is_host_name(&url) {
            return Err(invalid(NOT_A_PATTERN));
        }
        if url.scheme() == "http" && !allow_plain_http && !is_loopback(&url) {
            return Err(BuildError::PlainHttp {
                origin: url.origin().ascii_serialization(),
            });
        }
        let origin = AllowedOrigin {
            scheme: url.scheme().to_owned(),
            host: host.to_owned(),
            port,
            serialized: url[..Position::BeforePath].to_owned(),
        };
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Whether `url` belongs to an allowed origin. A `Url`'s serialization
    /// is canonical (lower-case host, no default port), so one that begins
    /// with an allowed origin's is in it, at the cost of a byte compare;
    /// only userinfo, which sits between the scheme and the host, can make
    /// an allowed URL begin otherwise, and only such a URL is compared part
    /// by part (`host_str` and the rest are calls each).
    pub(crate) fn allows(&self, url: &Url) -> bool {
        // Userinfo is asked for only when the quick compare refused.
        self.origins.iter().any(|o| o.begins(url))
            || ((!url.username().is_empty() || url.password().is_some())
                && self.origins.iter().any(|o| o.matches(url)))
    }

    /// Whether `uri` (absolute, as an HTTP client sends it) belongs to an
    /// allowed origin. A relative URI belongs to none.
    pub(crate) fn allows_uri(&self, uri: &Uri) -> bool {
        self.origins.iter().any(|o| o.matches_uri(uri))
    }

    /// The allowed origins, serialized and sorted (for `Debug`).
    pub(crate) fn sorted(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .origins
            .iter()
            .map(|o| format!("{}://{}:{}", o.scheme, o.host, o.port))
            .collect();
        out.sort();
        out
    }
}

/// What a refused pattern is told.
const NOT_A_PATTERN: &str = "wildcards and other patterns are not supported";

/// Whether `url`'s host is an IP address or a DNS name: labels of letters,
/// digits, `-` and `_`, none empty. `*`, `api-*` and the like parse as URL
/// hosts but can never equal a request's host.
fn is_host_name(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }),
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => true,
        None => false,
    }
}

/// Whether `url` points at this machine: 127.0.0.0/8, ::1, `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The input, for an error message, unless it may hold credentials.
fn shown(input: &str) -> String {
    // A query or fragment may carry a key; credentials hide behind '@'.
    let input = input.split(['?', '#']).next().unwrap_or("");
    if input.contains('@') {
        "[redacted: contains '@']".to_owned()
    } else {
        input.chars().take(200).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(inputs: &[&str]) -> AllowedOrigins {
        let mut o = AllowedOrigins::default();
        for i in inputs {
            o.add(i, false).unwrap();
        }
        o
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn origin_is_scheme_host_and_port() {
        let o = set(&["https://api.example.com/v1/ignored?q=1"]);
        assert!(o.allows(&url("https://api.example.com/other")));
        assert!(o.allows(&url("https://API.example.com:443/")));
        assert!(!o.allows(&url("http://api.example.com/")));
        assert!(!o.allows(&url("https://api.example.com:8443/")));
        assert!(!o.allows(&url("https://evil.example.com/")));
        assert!(!o.allows(&url("https://api.example.com.evil.net/")));
    }

    #[test]
    fn userinfo_ports_and_lookalikes_compare_as_origins() {
        let o = set(&[
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "http://[::1]:9",
        ]);
        for (input, allowed) in [
            // IPv6: canonical brackets; a longer port or a userinfo
            // lookalike is another origin.
            ("http://[0:0::1]:9/x", true),
            ("http://[::1]:90/", false),
            ("http://[::1]:9@evil.example/", false),
            ("http://u@[::1]:9/", true),
            // Userinfo is not part of the origin.
            ("https://user:pw@api.example.com/x", true),
            ("https://api.example.com@evil.example/", false),
            ("https://api.example.com:443@evil.example/", false),
            ("http://127.0.0.1:8080@evil.example/", false),
            // A default port written out is the same origin; another is not.
            ("https://api.example.com:443/x", true),
            ("http://api.example.com:443/", false),
            ("https://api.example.com:80/", false),
            ("http://127.0.0.1:8080", true),
            ("http://127.0.0.1:80/", false),
            ("http://127.0.0.1:808/", false),
            ("https://api.example.co/", false),
            ("https://api.example.com./", false),
        ] {
            let u = url(input);
            assert_eq!(o.allows(&u), allowed, "{input}");
            // The quick compare never allows what the full one does not.
            assert!(o.origins.iter().all(|x| !x.begins(&u) || x.matches(&u)));
        }
        // An allowed origin with its default port written out matches
        // requests without it.
        let o = set(&["https://api.example.com:443"]);
        assert!(o.allows(&url("https://api.example.com/")));
    }

    #[test]
    fn uri_and_url_agree_on_origins() {
        let o = set(&[
            "https://api.example.com",
            "http://[::1]:9",
            "http://127.0.0.1:8080",
        ]);
        for (input, allowed) in [
            ("https://api.example.com/x?q=1", true),
            ("https://API.Example.com:443/", true),
            ("http://api.example.com/", false),
            ("https://api.example.com:8443/", false),
            ("https://api.example.com.evil.net/", false),
            ("http://[::1]:9/", true),
            ("http://127.0.0.1:8080/", true),
            ("http://127.0.0.1/", false),
        ] {
            let uri: Uri = input.parse().unwrap();
            assert_eq!(o.allows_uri(&uri), allowed, "{input}");
            assert_eq!(o.allows(&url(input)), allowed, "{input}");
        }
        assert!(!o.allows_uri(&"/relative".parse().unwrap()));
    }

    #[test]
    fn loopback_http_is_allowed_without_opt_in() {
        let o = set(&[
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "http://localhost:1",
        ]);
        assert!(o.allows(&url("http://127.0.0.1:8080/x")));
        assert!(o.allows(&url("http://[::1]:9/")));
        assert!(o.allows(&url("http://LOCALHOST:1/")));
        for u in [
            "http://127.9.9.9/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost/",
        ] {
            assert!(is_loopback(&url(u)), "{u}");
        }
        for u in [
            "http://128.0.0.1/",
            "http://localhost.evil.com/",
            "http://[::2]/",
        ] {
            assert!(!is_loopback(&url(u)), "{u}");
        }
    }

    #[test]
    fn plain_http_elsewhere_needs_opt_in() {
        let mut o = AllowedOrigins::default();
        let err = o.add("http://api.example.com", false).unwrap_err();
        assert!(
            matches!(&err, BuildError::PlainHttp { origin } if origin == "http://api.example.com")
        );
        o.add("http://api.example.com", true).unwrap();
        assert!(o.allows(&url("http://api.example.com/")));
    }

    #[test]
    fn patterns_are_refused_with_the_supported_form() {
        let mut o = AllowedOrigins::default();
        for pattern in [
            "https://*.example.com",
            "https://*",
            "https://api-*.example.com",
            "https://.example.com",
            "https://api..example.com",
            "https://api.example.com.",
            "https://%2A.example.com",
        ] {
            let err = o.add(pattern, false).unwrap_err();
            assert!(
                matches!(&err, BuildError::InvalidOrigin { reason, .. } if reason == NOT_A_PATTERN),
                "{pattern}: {err:?}"
            );
            assert!(err.to_string().contains("https://api.example.com"), "{err}");
        }
        for fine in [
            "https://api.example.com",
            "https://xn--caf-dma.example",
            "https://café.example",
            "https://under_score.example:8443",
            "https://10.0.0.1",
            "https://[2001:db8::1]",
        ] {
            o.add(fine, false).unwrap();
        }
    }

    #[test]
    fn bad_origins_get_typed_errors_without_credentials() {
        let mut o = AllowedOrigins::default();
        for bad in [
            "not a url",
            "ftp://example.com",
            "data:text/plain,x",
            "https://user:hunter2@example.com",
            "ftp://h/?k=hunter2",
            "api.example.com/#hunter2",
        ] {
            let err = o.add(bad, false).unwrap_err();
            assert!(matches!(err, BuildError::InvalidOrigin { .. }), "{bad}");
            assert!(!err.to_string().contains("hunter2"));
            assert!(!format!("{err:?}").contains("hunter2"));
        }
        assert!(o.is_empty());
    }
}
