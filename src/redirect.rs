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
//! hop carried it. reqwest runs the policy inside the poll of the inner
//! request's future, so the record travels in a thread-local swapped in
//! around each poll of that future ([`Tracked`]): a two-byte swap in and
//! out of a slot with no destructor (so no check of whether it is still
//! alive), and a URL and an allocation only when a hop is followed.

use std::cell::Cell;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use url::{Position, Url};

thread_local! {
    /// Whether the request being polled on this thread is one this layer
    /// authorized, and what the policy saw of it so far.
    static TRAIL: Cell<Scope> = const { Cell::new(Scope::Outside) };
    /// Where a chain started, left by the policy at the first hop it follows
    /// of an authorized request, for that request to take when its poll
    /// ends (the only part of the record that is not `Copy`).
    static FIRST: Cell<Option<Url>> = const { Cell::new(None) };
}

/// What the policy finds when it runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Not inside a request this layer authorized.
    #[default]
    Outside,
    /// Inside one: what the policy has seen of it.
    Inside(Seen),
}

/// An authorized request's record while it is polled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// Whether the last hop followed kept the token; `None` before any.
    carried: Option<bool>,
    /// The chain's first hop was followed in this poll: [`FIRST`] holds
    /// where it started.
    first_waiting: bool,
}

/// What the policy saw of one authorized request's redirects, once it
/// followed a hop.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trail {
    /// Whether the last hop followed kept the token.
    carried: bool,
    /// The URL the chain started from, as reqwest gives it to the policy.
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

    /// Runs `send` (the rest of the chain) with a record the policy can
    /// write; what the chain did is asked of the [`Hops`] only when the
    /// answer needs it (a rejection).
    pub(crate) fn track<F>(self, send: F) -> Tracked<F> {
        Tracked {
            send,
            sent: self,
            trail: None,
        }
    }
}

/// The future of [`Sent::track`].
pub(crate) struct Tracked<F> {
    send: F,
    sent: Sent,
    trail: Option<Box<Trail>>,
}

impl<F> Tracked<F> {
    /// What became of the send, once it has answered: asked only when the
    /// answer needs it (a rejection).
    pub(crate) fn hops(self) -> Hops {
        Hops {
            sent: self.sent,
            trail: self.trail,
        }
    }
}

impl<F> Future for Tracked<F>
where
    F: Future<Output = reqwest_middleware::Result<reqwest::Response>> + Unpin,
{
    type Output = F::Output;

    // Inlined into the request's future: the answer (136 bytes) is then
    // written where that future takes it, not returned through a copy.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _inside = Inside::enter(&mut this.trail);
        Pin::new(&mut this.send).poll(cx)
    }
}

/// A request's record in the thread's scope for one poll; on drop (the
/// poll returned or panicked) what the policy wrote goes to the request's
/// record and the scope back to what it was (an outer request's, when
/// layers nest). Entered and left on every poll, so inlined into it.
struct Inside<'a> {
    trail: &'a mut Option<Box<Trail>>,
    outer: Scope,
    /// An outer request's chain start that the policy left in [`FIRST`]
    /// and the outer request has not taken yet, kept aside meanwhile
    /// (boxed: this is on every poll, that almost never).
    outer_first: Option<Box<Url>>,
}

impl<'a> Inside<'a> {
    #[inline]
    fn enter(trail: &'a mut Option<Box<Trail>>) -> Self {
        let seen = Seen {
            carried: trail.as_deref().map(|trail| trail.carried),
            first_waiting: false,
        };
        let outer = TRAIL.replace(Scope::Inside(seen));
        let outer_first = match outer {
            Scope::Inside(Seen {
                first_waiting: true,
                ..
            }) => take_first().map(Box::new),
            _ => None,
        };
        Inside {
            trail,
            outer,
            outer_first,
        }
    }

    /// What the policy saw in this poll, into the request's record.
    fn keep(&mut self, carried: bool, first_waiting: bool) {
        match self.trail.as_deref_mut() {
            Some(trail) if !first_waiting => trail.carried = carried,
            _ => {
                *self.trail = Some(Box::new(Trail {
                    carried,
                    first: take_first(),
                }));
            }
        }
    }

    fn give_back(first: Box<Url>) {
        // A thread tearing down its locals keeps no record.
        let _ = FIRST.try_with(|slot| slot.set(Some(*first)));
    }
}

impl Drop for Inside<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Scope::Inside(Seen {
            carried: Some(carried),
            first_waiting,
        }) = TRAIL.replace(self.outer)
        {
            self.keep(carried, first_waiting);
        }
        if let Some(first) = self.outer_first.take() {
            Self::give_back(first);
        }
    }
}

/// What the policy left in [`FIRST`] (nothing once the thread's locals are
/// torn down).
fn take_first() -> Option<Url> {
    FIRST.try_with(Cell::take).ok().flatten()
}

/// What became of one send: the request sent, and what the policy saw.
#[derive(Debug)]
pub(crate) struct Hops {
    sent: Sent,
    trail: Option<Box<Trail>>,
}

impl Hops {
    /// The request as it was sent, for sending it again.
    pub(crate) fn sent(&self) -> Sent {
        self.sent
    }

    /// Whether the hop that answered with `response` carried the token.
    pub(crate) fn carried(&self, response: &reqwest::Response) -> bool {
        carried(
            self.trail.as_deref(),
            self.sent.url == digest(response.url()),
        )
    }

    /// The URL sent, when it is known without a copy: the policy's record
    /// of where the chain started, or the answer's URL when no redirect was
    /// seen; either only if it is the very URL sent (its digest).
    pub(crate) fn sent_url(&self, response: &reqwest::Response) -> Option<Url> {
        url_sent(self.trail.as_deref(), self.sent, response.url())
    }
}

fn url_sent(trail: Option<&Trail>, sent: Sent, answered: &Url) -> Option<Url> {
    let candidate = match trail {
        Some(trail) => trail.first.as_ref()?,
        None => answered,
    };
    (digest(candidate) == sent.url).then(|| candidate.clone())
}

/// Whether the final hop carried the token: as the policy recorded it, or,
/// without a record, only if the answer is for the URL sent (no redirect
/// seen). A redirect the policy did not see may have crossed origins, so
/// its 401 is not blamed on the token.
fn carried(trail: Option<&Trail>, same_url: bool) -> bool {
    match trail {
        Some(trail) => trail.carried,
        None => same_url,
    }
}

/// A URL's digest, seeded once per process at random: a redirect target
/// can't be chosen to match another URL's digest without the seed, which
/// never leaves the process (and a URL found this way is still checked
/// against the allowed origins before a resend). `foldhash`'s quality
/// hasher: taken on every authorized request, where SipHash cost ~280
/// instructions. Without the fragment, which is never sent and which the
/// answer's URL (parsed back from the request line) and the policy's do
/// not have.
fn digest(url: &Url) -> u64 {
    static SEED: OnceLock<foldhash::quality::RandomState> = OnceLock::new();
    // `fragment` reads a field; slicing at a `Position` is a call.
    let sent = match url.fragment() {
        None => url.as_str(),
        Some(_) => &url[..Position::AfterQuery],
    };
    SEED.get_or_init(Default::default).hash_one(sent)
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
    let Scope::Inside(mut seen) = TRAIL.get() else {
        // Not a request this layer authorized.
        return decide(previous, next, false).map(|_| ());
    };
    let carried = decide(previous, next, true)?;
    if seen.carried.is_none() {
        // The chain's first hop: where it started, the URL a resend goes to.
        let first = previous.first().cloned();
        if FIRST.try_with(|slot| slot.set(first)).is_ok() {
            seen.first_waiting = true;
        }
    }
    seen.carried = Some(carried);
    TRAIL.set(Scope::Inside(seen));
    Ok(())
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
        assert!(carried(None, true));
        assert!(!carried(None, false));
        let dropped = Trail {
            carried: false,
            first: None,
        };
        assert!(!carried(Some(&dropped), true));
        let kept = Trail {
            carried: true,
            first: None,
        };
        assert!(carried(Some(&kept), false));
    }

    #[test]
    fn the_policy_records_where_the_chain_started_and_its_last_hop() {
        let mut trail = None;
        {
            let _inside = Inside::enter(&mut trail);
            let start = urls(&["https://a.example/x"]);
            follow(&start, &url("https://b.example/r")).unwrap();
            let two = urls(&["https://a.example/x", "https://b.example/r"]);
            follow(&two, &url("https://a.example/y")).unwrap();
        }
        assert_eq!(
            trail.as_deref(),
            Some(&Trail {
                carried: false,
                first: Some(url("https://a.example/x")),
            })
        );
        // Outside a tracked request nothing is recorded, and nothing fails.
        assert!(follow(&urls(&["https://a.example/x"]), &url("https://a.example/y")).is_ok());
        assert!(matches!(TRAIL.with(Cell::take), Scope::Outside));
    }

    #[test]
    fn nested_requests_keep_their_own_records_and_a_panic_leaves_none_behind() {
        let (mut outer, mut inner) = (None, None);
        {
            let _outer = Inside::enter(&mut outer);
            {
                let _inner = Inside::enter(&mut inner);
                follow(&urls(&["https://a.example/x"]), &url("https://a.example/y")).unwrap();
            }
            // Back in the outer request: the inner one's hop is not its.
            follow(&urls(&["https://a.example/x"]), &url("https://b.example/y")).unwrap();
        }
        assert!(inner.as_deref().is_some_and(|t| t.carried));
        assert!(outer.as_deref().is_some_and(|t| !t.carried));

        let mut record = None;
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _inside = Inside::enter(&mut record);
            panic!("the inner future panicked");
        }));
        assert!(panicked.is_err());
        assert!(matches!(TRAIL.with(Cell::take), Scope::Outside));
    }

    #[test]
    fn a_chain_start_waiting_for_an_outer_request_is_not_taken_by_an_inner_one() {
        // A request's record as (carried, where the chain started).
        fn record(trail: &Option<Box<Trail>>) -> Option<(bool, &str)> {
            let trail = trail.as_deref()?;
            Some((trail.carried, trail.first.as_ref()?.as_str()))
        }
        let (mut outer, mut inner) = (None, None);
        {
            let _outer = Inside::enter(&mut outer);
            // The outer request's first hop, then, in the same poll, an
            // inner request polled with its own first hop.
            follow(
                &urls(&["https://a.example/outer"]),
                &url("https://a.example/o2"),
            )
            .unwrap();
            {
                let _inner = Inside::enter(&mut inner);
                follow(
                    &urls(&["https://b.example/inner"]),
                    &url("https://c.example/i2"),
                )
                .unwrap();
            }
        }
        assert_eq!(record(&outer), Some((true, "https://a.example/outer")));
        assert_eq!(record(&inner), Some((false, "https://b.example/inner")));
        assert_eq!(FIRST.with(Cell::take), None);
        // A later poll of the outer request keeps its record and updates
        // the last hop.
        {
            let _outer = Inside::enter(&mut outer);
            let chain = urls(&["https://a.example/outer", "https://a.example/o2"]);
            follow(&chain, &url("https://b.example/x")).unwrap();
        }
        assert_eq!(record(&outer), Some((false, "https://a.example/outer")));
    }

    #[test]
    fn the_url_sent_is_given_back_only_when_it_is_the_one_sent() {
        let sent_url = url("https://a.example/x?q=1");
        let sent = Sent::new(&sent_url);
        assert_eq!(url_sent(None, sent, &sent_url), Some(sent_url.clone()));
        // An answer from elsewhere (a redirect no policy reported) is not it.
        assert_eq!(url_sent(None, sent, &url("https://a.example/y")), None);
        assert_eq!(url_sent(None, sent, &url("https://a.example/x?q=2")), None);
        // The fragment is never sent, and answers come without it.
        let with_fragment = Sent::new(&url("https://a.example/x?q=1#part"));
        assert_eq!(
            url_sent(None, with_fragment, &sent_url),
            Some(sent_url.clone())
        );
        // After redirects the policy saw, the chain's start, not the answer.
        let redirected = Trail {
            carried: true,
            first: Some(sent_url.clone()),
        };
        assert_eq!(
            url_sent(Some(&redirected), sent, &url("https://a.example/z")),
            Some(sent_url.clone())
        );
        let unrecorded = Trail {
            carried: true,
            first: None,
        };
        assert_eq!(url_sent(Some(&unrecorded), sent, &sent_url), None);
        let elsewhere = Trail {
            carried: true,
            first: Some(url("https://a.example/other")),
        };
        assert_eq!(url_sent(Some(&elsewhere), sent, &sent_url), None);
    }
}
