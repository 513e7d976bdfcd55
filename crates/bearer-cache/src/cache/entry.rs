//! A token as the cache holds it, and the handle callers get.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::policy::Deadlines;
use crate::{AccessToken, Fingerprint, Token, TokenError};

/// One fetched token with what every request needs from it, built once.
pub(crate) struct Entry {
    /// Its access token is a view of the `Authorization` value (see
    /// [`Token::with_scheme`]): one copy of the secret serves both.
    pub(crate) token: Token,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) deadlines: Deadlines,
    /// One value an adapter derives from the token once (a ready header),
    /// for handles that are not a thread's own.
    pub(crate) derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Entry {
    /// Checks that `token` can be sent at all and prepares it. The one
    /// place that decides whether a token is usable, for fetched and
    /// stored tokens alike.
    pub(crate) fn new(token: Token, deadlines: Deadlines) -> Result<Self, TokenError> {
        check_usable(&token)?;
        let scheme = token.binding().map_or("Bearer", |b| b.scheme());
        let token = token.with_scheme(scheme);
        Ok(Entry {
            fingerprint: token.access_token().fingerprint(),
            token,
            deadlines,
            derived: OnceLock::new(),
        })
    }
}

/// Whether a token can go into an `Authorization` header: a bearer token,
/// or a token of its binding's scheme (a DPoP token without its key is as
/// unusable as before).
pub(crate) fn check_usable(token: &Token) -> Result<(), TokenError> {
    let scheme = token.binding().map_or("bearer", |b| b.scheme());
    if !token.token_type().eq_ignore_ascii_case(scheme) {
        return Err(TokenError::UnsupportedTokenType(
            token.token_type().to_owned(),
        ));
    }
    if !token.header_safe() {
        return Err(TokenError::InvalidTokenValue);
    }
    Ok(())
}

/// A token handed out by the cache, with what the caller may need to report
/// it rejected. Cheap to clone. `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct CachedToken {
    pub(crate) held: Held,
    pub(crate) hit: bool,
}

/// How a handed-out token refers to its entry.
#[derive(Clone)]
pub(crate) enum Held {
    /// The entry itself: cloning writes the reference count every thread
    /// that holds this entry writes.
    Shared(Arc<Entry>),
    /// This thread's own handle on the entry (see `local.rs`): cloning
    /// writes a count only this thread normally touches.
    Local(Arc<Local>),
}

/// One thread's handle on an entry, with that thread's own copy of the
/// derived value, so that handing both out writes no line other threads
/// write.
pub(crate) struct Local {
    pub(crate) entry: Arc<Entry>,
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Local {
    pub(crate) fn new(entry: Arc<Entry>) -> Self {
        Local {
            entry,
            derived: OnceLock::new(),
        }
    }
}

impl CachedToken {
    pub(crate) fn shared(entry: Arc<Entry>, hit: bool) -> Self {
        CachedToken {
            held: Held::Shared(entry),
            hit,
        }
    }

    pub(crate) fn entry(&self) -> &Arc<Entry> {
        match &self.held {
            Held::Shared(entry) => entry,
            Held::Local(local) => &local.entry,
        }
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.entry().token
    }

    /// The access token value.
    pub fn access_token(&self) -> &AccessToken {
        self.entry().token.access_token()
    }

    /// `Bearer <token>` (or `DPoP <token>` for a bound token), ready for an
    /// `Authorization` header (or gRPC `authorization` metadata). Checked at fetch time to hold only visible
    /// ASCII, so it can never inject a header.
    pub fn expose_authorization_value(&self) -> &str {
        self.entry().token.access_token().authorization()
    }

    /// A value derived from this token once and kept with it for as long as
    /// the token lives, such as a transport's ready-made header value, so a
    /// hot path clones it instead of building it per request. `make` gets
    /// [`expose_authorization_value`](Self::expose_authorization_value).
    /// One derived type per token: asking for another type builds it anew
    /// on every call.
    ///
    /// ```
    /// # use bearer_cache::{StaticSource, TokenCache, TokenKey};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let cache = TokenCache::builder(StaticSource::new("abc")).build();
    /// let token = cache.get(&TokenKey::default()).await.unwrap();
    /// let header: std::sync::Arc<str> = token.derived(|value| value.into());
    /// assert_eq!(&*header, "Bearer abc");
    /// # }
    /// ```
    pub fn derived<T>(&self, make: impl FnOnce(&str) -> T) -> T
    where
        T: Clone + Send + Sync + 'static,
    {
        derive(
            &self.entry().derived,
            self.expose_authorization_value(),
            make,
        )
    }

    /// Like [`derived`](Self::derived), but kept per thread: a token the
    /// cache handed out from a thread's own handle (a repeated hit) gets a
    /// value of that thread's, built once per token and thread. Cloning it
    /// (say, a `HeaderValue`, whose clone bumps a shared count) then writes
    /// nothing other threads write. Other tokens share the one of
    /// [`derived`](Self::derived).
    ///
    /// ```
    /// # use bearer_cache::{StaticSource, TokenCache, TokenKey};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let cache = TokenCache::builder(StaticSource::new("abc")).build();
    /// let token = cache.get(&TokenKey::default()).await.unwrap();
    /// let header: std::sync::Arc<str> = token.derived_per_thread(|value| value.into());
    /// assert_eq!(&*header, "Bearer abc");
    /// # }
    /// ```
    pub fn derived_per_thread<T>(&self, make: impl FnOnce(&str) -> T) -> T
    where
        T: Clone + Send + Sync + 'static,
    {
        let cell = match &self.held {
            Held::Shared(entry) => &entry.derived,
            Held::Local(local) => &local.derived,
        };
        derive(cell, self.expose_authorization_value(), make)
    }

    /// The key the token is bound to (DPoP); `None` for a bearer token, the
    /// one branch a transport takes on its hot path.
    #[inline]
    pub fn binding(&self) -> Option<&std::sync::Arc<dyn crate::TokenBinding>> {
        self.entry().token.binding()
    }

    /// The loggable fingerprint of the access token.
    pub fn fingerprint(&self) -> Fingerprint {
        self.entry().fingerprint
    }

    /// Whether the cache had it (no fetch was awaited).
    pub fn was_hit(&self) -> bool {
        self.hit
    }

    /// When the cache stops handing it out.
    pub fn expires_at(&self) -> Instant {
        self.entry().deadlines.expires_at
    }

    /// When the cache starts refreshing it in the background.
    pub fn refresh_at(&self) -> Instant {
        self.entry().deadlines.refresh_at
    }

    /// Whether both came from the same fetch.
    pub fn same_fetch(&self, other: &CachedToken) -> bool {
        Arc::ptr_eq(self.entry(), other.entry())
    }
}

/// The value in `cell` if it is a `T`, else `make`'s (kept if the cell
/// was empty).
fn derive<T>(
    cell: &OnceLock<Box<dyn Any + Send + Sync>>,
    authorization: &str,
    make: impl FnOnce(&str) -> T,
) -> T
where
    T: Clone + Send + Sync + 'static,
{
    if let Some(stored) = cell.get() {
        if let Some(value) = stored.downcast_ref::<T>() {
            return value.clone();
        }
        return make(authorization);
    }
    let value = make(authorization);
    // Two first callers may race; either value is the same.
    let _ = cell.set(Box::new(value.clone()));
    value
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("fingerprint", &self.entry().fingerprint)
            .field("hit", &self.hit)
            .finish_non_exhaustive()
    }
}
