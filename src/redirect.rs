//! What a redirect chain did with the token.
//!
//! reqwest follows redirects below every middleware, so the layer sees only
//! the final response. Which hops carried the token is decided by reqwest's
//! rule (measured on reqwest 0.13): each hop starts from the original
//! headers and drops `Authorization` when it changes origin from the *hop
//! before it*. So `A → B → A` reaches `A` without the token, and
//! `A → B → B` hands the token to `B` on its second hop.
//!
//! [`BearerAuth::redirect_policy`](crate::BearerAuth::redirect_policy)
//! closes both: for a request that carries our token, it refuses a hop that
//! would resend the token to another origin, and records whether the last
//! hop carried it. The record travels in a task-local around the inner
//! request, since reqwest runs the policy inside that future's poll.

use std::cell::Cell;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use url::Url;

tokio::task_local! {
    static TRAIL: Cell<Trail>;
}

/// What the policy saw of one authorized request's redirects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Trail {
    /// Whether the policy followed at least one hop.
    followed: bool,
    /// Whether the last hop followed kept the token.
    carried: bool,
    /// The URL the chain started from, as reqwest gives it to the policy
    /// (taken on the first hop only: redirects are rare).
    first: Option<Url>,
}

/// One authorized request on its way: its URL's digest, for telling a
/// redirect apart when no policy reported one, and for knowing the URL sent
/// again when an answer gives it back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    url: u64,
}

impl Sent {
    pub(crate) fn new(url: &Url) -> Self {
        Sent { url: digest(url) }
    }

    /// Runs `send` (the rest of the chain) with a trail the policy can
    /// write; what the chain did is asked of the [`Hops`] only when the
    /// answer needs it (a rejection).
    pub(crate) async fn track(
        self,
        send: impl Future<Output = reqwest_middleware::Result<reqwest::Response>>,
    ) -> reqwest_middleware::Result<(reqwest::Response, Hops)> {
        let (result, trail) = TRAIL
            .scope(Cell::new(Trail::default()), async {
                let result = send.await;
                (result, TRAIL.with(Cell::take))
            })
            .await;
        Ok((result?, Hops { sent: self, trail }))
    }
}

/// What became of one send: the request sent, and what the policy saw.
#[derive(Debug)]
pub(crate) struct Hops {
    sent: Sent,
    trail: Trail,
}

impl Hops {
    /// The request as it was sent, for sending it again.
    pub(crate) fn sent(&self) -> Sent {
        self.sent
    }

    /// Whether the hop that answered with `response` carried the token.
    pub(crate) fn carried(&self, response: &reqwest::Response) -> bool {
        carried(&self.trail, self.sent.url == digest(response.url()))
    }

    /// The URL sent, when it is known without a copy: the policy's record
    /// of where the chain started, or the answer's URL when no redirect was
    /// seen; either only if it is the very URL sent (its digest).
    pub(crate) fn sent_url(&self, response: &reqwest::Response) -> Option<Url> {
        url_sent(&self.trail, self.sent, response.url())
    }
}

fn url_sent(trail: &Trail, sent: Sent, answered: &Url) -> Option<Url> {
    let candidate = if trail.followed {
        trail.first.as_ref()?
    } else {
        answered
    };
    (digest(candidate) == sent.url).then(|| candidate.clone())
}

/// Whether the final hop carried the token: as the policy recorded it, or,
/// without a record, only if the answer is for the URL sent (no redirect
/// seen). A redirect the policy did not see may have crossed origins, so
/// its 401 is not blamed on the token.
fn carried(trail: &Trail, same_url: bool) -> bool {
    if trail.followed {
        trail.carried
    } else {
        same_url
    }
}

/// A URL's digest, keyed once per process with random keys: the URL a
/// redirect leads to cannot be chosen to match another's digest.
fn digest(url: &Url) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one(url.as_str())
}

/// Why [`BearerAuth::redirect_policy`](crate::BearerAuth::redirect_policy)
/// did not follow a redirect. Reaches the caller as the source of a
/// `reqwest::Error` whose `is_redirect()` is true.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectRefused {
    /// The chain reached the hop limit (10, as reqwest's default policy).
    #[error("too many redirects (more than {limit})")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// Following would have sent the bearer token to another origin: reqwest
    /// keeps `Authorization` on a hop within one origin even after the chain
    /// has left the token's origin.
    #[error("redirect not followed: it would send the bearer token to {origin}")]
    TokenToOtherOrigin {
        /// The origin the hop leads to (scheme, host, port; no path or query).
        origin: String,
    },
}

/// reqwest's default hop limit.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// What the policy does with one hop, `previous` being the URLs already
/// visited (the first is the request's own) and `next` the `Location`.
/// `authorized` says whether the request carries our token.
pub(crate) fn decide(
    previous: &[Url],
    next: &Url,
    authorized: bool,
) -> Result<bool, RedirectRefused> {
    // reqwest's own count: the first URL is the request, not a redirect.
    if previous.len() > MAX_REDIRECTS {
        return Err(RedirectRefused::TooMany {
            limit: MAX_REDIRECTS,
        });
    }
    let (Some(first), Some(last)) = (previous.first(), previous.last()) else {
        return Ok(false);
    };
    // reqwest's rule: the hop keeps the original headers unless it changes
    // origin from the hop before.
    let keeps_token = same_origin(last, next);
    if authorized && keeps_token && !same_origin(first, next) {
        return Err(RedirectRefused::TokenToOtherOrigin {
            origin: next.origin().ascii_serialization(),
        });
    }
    Ok(keeps_token)
}

/// The policy's step: [`decide`], recorded for the middleware when the
/// request is one it authorized.
pub(crate) fn follow(previous: &[Url], next: &Url) -> Result<(), RedirectRefused> {
    let trail = TRAIL.try_with(|trail| {
        let carried = decide(previous, next, true)?;
        let mut seen = trail.take();
        if seen.first.is_none() {
            seen.first = previous.first().cloned();
        }
        seen.followed = true;
        seen.carried = carried;
        trail.set(seen);
        Ok(())
    });
    match trail {
        Ok(result) => result,
        // Not a request this layer authorized.
        Err(_) => decide(previous, next, false).map(|_| ()),
    }
}

/// Scheme, host and port, compared as reqwest compares them on a redirect.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter().map(|u| Url::parse(u).unwrap()).collect()
    }

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    #[test]
    fn hops_within_the_origin_keep_the_token() {
        let prev = urls(&["https://a.example/x"]);
        assert_eq!(
            decide(&prev, &url("https://a.example:443/y"), true),
            Ok(true)
        );
        let prev = urls(&["https://a.example/x", "https://a.example/y"]);
        assert_eq!(decide(&prev, &url("https://a.example/z"), true), Ok(true));
    }

    #[test]
    fn a_hop_to_another_origin_drops_it_and_a_bounce_back_arrives_without() {
        let prev = urls(&["https://a.example/x"]);
        for other in [
            "https://b.example/",
            "http://a.example/",
            "https://a.example:8443/",
        ] {
            assert_eq!(decide(&prev, &url(other), true), Ok(false), "{other}");
        }
        let prev = urls(&["https://a.example/x", "https://b.example/r"]);
        assert_eq!(decide(&prev, &url("https://a.example/x"), true), Ok(false));
        // Back home, one more hop within it: reqwest restores the token,
        // to the origin it was for.
        let prev = urls(&[
            "https://a.example/x",
            "https://b.example/r",
            "https://a.example/y",
        ]);
        assert_eq!(decide(&prev, &url("https://a.example/z"), true), Ok(true));
    }

    #[test]
    fn a_second_hop_on_another_origin_is_refused_for_authorized_requests_only() {
        let prev = urls(&["https://a.example/x", "https://b.example/r?k=secret"]);
        let next = url("https://b.example/landing?k=secret");
        let refused = decide(&prev, &next, true).unwrap_err();
        assert_eq!(
            refused,
            RedirectRefused::TokenToOtherOrigin {
                origin: "https://b.example".into()
            }
        );
        assert!(!refused.to_string().contains("secret"));
        assert_eq!(decide(&prev, &next, false), Ok(true));
    }

    #[test]
    fn the_hop_limit_is_reqwests() {
        let mut prev = urls(&["https://a.example/0"]);
        for i in 1..=MAX_REDIRECTS {
            assert!(decide(&prev, &url("https://a.example/n"), false).is_ok());
            prev.push(url(&format!("https://a.example/{i}")));
        }
        assert_eq!(
            decide(&prev, &url("https://a.example/n"), false),
            Err(RedirectRefused::TooMany {
                limit: MAX_REDIRECTS
            })
        );
    }

    #[test]
    fn without_a_record_only_the_url_sent_counts() {
        let none = Trail::default();
        assert!(carried(&none, true));
        assert!(!carried(&none, false));
        let dropped = Trail {
            followed: true,
            carried: false,
            first: None,
        };
        assert!(!carried(&dropped, true));
        let kept = Trail {
            followed: true,
            carried: true,
            first: None,
        };
        assert!(carried(&kept, false));
    }

    #[test]
    fn the_policy_records_where_the_chain_started_and_its_last_hop() {
        let trail = TRAIL.sync_scope(Cell::new(Trail::default()), || {
            let start = urls(&["https://a.example/x"]);
            follow(&start, &url("https://b.example/r")).unwrap();
            let two = urls(&["https://a.example/x", "https://b.example/r"]);
            follow(&two, &url("https://a.example/y")).unwrap();
            TRAIL.with(Cell::take)
        });
        assert_eq!(
            trail,
            Trail {
                followed: true,
                carried: false,
                first: Some(url("https://a.example/x")),
            }
        );
        // Outside a tracked request nothing is recorded, and nothing fails.
        assert!(follow(&urls(&["https://a.example/x"]), &url("https://a.example/y")).is_ok());
    }

    #[test]
    fn the_url_sent_is_given_back_only_when_it_is_the_one_sent() {
        let sent_url = url("https://a.example/x?q=1");
        let sent = Sent::new(&sent_url);
        let none = Trail::default();
        assert_eq!(url_sent(&none, sent, &sent_url), Some(sent_url.clone()));
        // An answer from elsewhere (a redirect no policy reported) is not it.
        assert_eq!(url_sent(&none, sent, &url("https://a.example/y")), None);
        assert_eq!(url_sent(&none, sent, &url("https://a.example/x?q=2")), None);
        // After redirects the policy saw, the chain's start, not the answer.
        let redirected = Trail {
            followed: true,
            carried: true,
            first: Some(sent_url.clone()),
        };
        assert_eq!(
            url_sent(&redirected, sent, &url("https://a.example/z")),
            Some(sent_url.clone())
        );
        let unrecorded = Trail {
            first: None,
            ..redirected.clone()
        };
        assert_eq!(url_sent(&unrecorded, sent, &sent_url), None);
        let elsewhere = Trail {
            first: Some(url("https://a.example/other")),
            ..redirected
        };
        assert_eq!(url_sent(&elsewhere, sent, &sent_url), None);
    }
}
