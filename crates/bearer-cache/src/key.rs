//! What makes one token different from another.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sha2::{Digest, Sha256};

/// The parameters a token is requested with: scopes, audience, resource and
/// any extra parameters, and the user it is for when a source holds tokens
/// per user. Two requests with equal keys share a token.
///
/// It never holds a secret, so it is safe to log and to derive store keys
/// from. The empty key means "the source's configured defaults".
///
/// ```
/// use bearer_cache::TokenKey;
/// let a = TokenKey::new().scope("write").scope("read").audience("api://orders");
/// let b = TokenKey::new().scopes(["read", "write"]).audience("api://orders");
/// assert_eq!(a, b); // scope order does not matter
/// assert_ne!(a, TokenKey::new());
/// ```
///
/// A key hashes its strings once and keeps the result, so a key built once
/// (or the default key) and looked up many times costs one word to hash.
#[derive(Clone, Default, Eq, PartialOrd, Ord)]
pub struct TokenKey {
    scopes: Sorted,
    audience: Option<String>,
    resources: Sorted,
    extra: BTreeMap<String, String>,
    user: Option<String>,
    digest: MemoHash,
}

/// The key's strings hashed once (0: not yet). Not part of the key's value:
/// it compares equal to every other and is reset by every builder method.
#[derive(Default)]
struct MemoHash(AtomicU64);

impl Clone for MemoHash {
    fn clone(&self) -> Self {
        MemoHash(AtomicU64::new(self.0.load(Relaxed)))
    }
}

impl PartialEq for MemoHash {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for MemoHash {}

impl PartialOrd for MemoHash {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MemoHash {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

/// A fixed seed: the memo must not depend on the process it was made in
/// only by chance, and keys are ours, not an attacker's.
const SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6265_6172_6572);

impl TokenKey {
    /// The hash of the key's strings, computed on first use and kept.
    pub(crate) fn memo_hash(&self) -> u64 {
        let known = self.digest.0.load(Relaxed);
        if known != 0 {
            return known;
        }
        let mut h = SEED.build_hasher();
        self.scopes.hash(&mut h);
        self.audience.hash(&mut h);
        self.resources.hash(&mut h);
        self.extra.hash(&mut h);
        self.user.hash(&mut h);
        // 0 means "not yet".
        let value = h.finish().max(1);
        self.digest.0.store(value, Relaxed);
        value
    }

    fn changed(mut self) -> Self {
        self.digest = MemoHash::default();
        self
    }
}

/// A small sorted set of strings: a vector sized to fit, where a
/// `BTreeSet` would take a 288-byte node for one scope (a million keys each
/// hold one). Compares and orders as the set it stands for.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Sorted(Vec<String>);

impl Sorted {
    fn insert(&mut self, value: String) {
        if let Err(at) = self.0.binary_search(&value) {
            self.0.insert(at, value);
            self.0.shrink_to_fit();
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Sorted {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

// By hand for speed: the hit path compares its memo's key with the
// caller's, and the empty map's `==` alone costs more than all the rest.
impl PartialEq for TokenKey {
    fn eq(&self, other: &Self) -> bool {
        // Shapes first (all but free), then the strings.
        let shape = |k: &TokenKey| {
            (
                k.scopes.0.len(),
                k.resources.0.len(),
                k.extra.len(),
                k.audience.is_some(),
                k.user.is_some(),
            )
        };
        let (this, that) = (shape(self), shape(other));
        if this != that {
            return false;
        }
        if this == (0, 0, 0, false, false) {
            return true;
        }
        self.scopes == other.scopes
            && self.resources == other.resources
            && self.audience == other.audience
            && self.user == other.user
            && (self.extra.is_empty() || self.extra == other.extra)
    }
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.memo_hash());
    }
}

impl TokenKey {
    /// The empty key: the source's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.insert(scope.into());
        self.changed()
    }

    /// Adds scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for scope in scopes {
            self.scopes.insert(scope.into());
        }
        self.changed()
    }

    /// Sets the `audience` parameter.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self.changed()
    }

    /// Adds a `resource` indicator (RFC 8707).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.insert(resource.into());
        self.changed()
    }

    /// Adds any other parameter sent with the token request.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(name.into(), value.into());
        self.changed()
    }

    /// Names the user the token is for, with sources that keep a token per
    /// signed-in user (such as `bearer_oauth2::UserSignIn`). Not a request
    /// parameter: the source looks the user's grant up by it. Use an opaque
    /// id rather than an e-mail address: keys appear in logs.
    ///
    /// ```
    /// use bearer_cache::TokenKey;
    /// let alice = TokenKey::new().user("u-1041");
    /// assert_eq!(alice.user_id(), Some("u-1041"));
    /// assert_ne!(alice, TokenKey::new().user("u-2203"));
    /// assert_eq!(alice.to_string(), "user=u-1041");
    /// ```
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.changed()
    }

    /// The user the token is for, if the key names one.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The requested scopes, sorted.
    pub fn requested_scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.scopes.iter().map(String::as_str)
    }

    /// The `audience`, if set.
    pub fn requested_audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The resource indicators, sorted.
    pub fn requested_resources(&self) -> impl ExactSizeIterator<Item = &str> {
        self.resources.iter().map(String::as_str)
    }

    /// The extra parameters, sorted by name.
    pub fn params(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether this is the empty key.
    pub fn is_default(&self) -> bool {
        self.scopes.is_empty()
            && self.audience.is_none()
            && self.resources.is_empty()
            && self.extra.is_empty()
            && self.user.is_none()
    }

    /// A stable digest of the source identity and this key, for naming
    /// entries in a shared store. Contains no secret and no raw parameter.
    ///
    /// ```
    /// use bearer_cache::TokenKey;
    /// let k = TokenKey::new().scope("read");
    /// assert_eq!(k.digest("src"), k.clone().digest("src"));
    /// assert_ne!(k.digest("src"), k.digest("other"));
    /// assert_eq!(k.digest("src").len(), 64);
    /// ```
    pub fn digest(&self, source_id: &str) -> String {
        let mut h = Sha256::new();
        // Length-prefix every field so no two keys encode alike.
        let mut field = |tag: &str, v: &str| {
            h.update(tag.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        };
        field("source", source_id);
        for s in &self.scopes {
            field("scope", s);
        }
        if let Some(a) = &self.audience {
            field("audience", a);
        }
        for r in &self.resources {
            field("resource", r);
        }
        for (k, v) in &self.extra {
            field("param", k);
            field("value", v);
        }
        if let Some(user) = &self.user {
            field("user", user);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({self})")
    }
}

impl fmt::Display for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default() {
            return f.write_str("default");
        }
        let mut sep = "";
        if !self.scopes.is_empty() {
            let scopes: Vec<&str> = self.requested_scopes().collect();
            write!(f, "scope={}", scopes.join(" "))?;
            sep = " ";
        }
        if let Some(a) = &self.audience {
            write!(f, "{sep}audience={a}")?;
            sep = " ";
        }
        for r in &self.resources {
            write!(f, "{sep}resource={r}")?;
            sep = " ";
        }
        for (k, v) in &self.extra {
            write!(f, "{sep}{k}={v}")?;
            sep = " ";
        }
        if let Some(user) = &self.user {
            write!(f, "{sep}user={user}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> TokenKey {
        TokenKey::new()
            .scope("write")
            .scope("read")
            .scope("read")
            .audience("api://orders")
            .resource("https://b.example")
            .resource("https://a.example")
            .param("tenant", "t-1")
            .param("acr", "gold")
            .param("tenant", "t-2")
            .user("u-1041")
    }

    #[test]
    fn the_parts_read_back_sorted_and_deduplicated() {
        let k = full();
        assert_eq!(k.requested_scopes().collect::<Vec<_>>(), ["read", "write"]);
        assert_eq!(k.requested_scopes().len(), 2);
        assert_eq!(k.requested_audience(), Some("api://orders"));
        assert_eq!(
            k.requested_resources().collect::<Vec<_>>(),
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            k.params().collect::<Vec<_>>(),
            [("acr", "gold"), ("tenant", "t-2")]
        );
        assert_eq!(k.params().len(), 2);
        assert_eq!(k.user_id(), Some("u-1041"));
        assert!(!k.is_default());
        assert!(TokenKey::new().is_default());
        assert_eq!(
            k.to_string(),
            "scope=read write audience=api://orders resource=https://a.example \
             resource=https://b.example acr=gold tenant=t-2 user=u-1041"
        );
        // A later audience or user replaces the earlier one.
        let k = k.audience("api://other").user("u-2");
        assert_eq!(k.requested_audience(), Some("api://other"));
        assert_eq!(k.user_id(), Some("u-2"));
    }

    #[test]
    fn odd_strings_keep_their_bounds() {
        // Digits, separators and multi-byte text inside values must not be
        // read as part of the layout.
        let k = TokenKey::new()
            .scope("12:34")
            .scope("")
            .param("a:1", "")
            .param("", "x")
            .audience("ü:3ß")
            .user("7");
        assert_eq!(k.requested_scopes().collect::<Vec<_>>(), ["", "12:34"]);
        assert_eq!(k.params().collect::<Vec<_>>(), [("", "x"), ("a:1", "")]);
        assert_eq!(k.requested_audience(), Some("ü:3ß"));
        assert_eq!(k.user_id(), Some("7"));
        assert_ne!(
            TokenKey::new().scope("ab"),
            TokenKey::new().scope("a").scope("b")
        );
        assert_ne!(TokenKey::new().scope("a"), TokenKey::new().resource("a"));
    }

    #[test]
    fn the_store_digest_is_the_one_stores_already_hold() {
        // Fixed values: stored entries are named by them across versions.
        assert_eq!(
            TokenKey::new().digest("src"),
            "fa293459d25cea60d443265cc364095c26629d336539d9cda5e9b7192155a5c8"
        );
        assert_eq!(
            full().digest("src"),
            "e4212694eb81f16108bf29f278eecc5a1540a3282785e40043ef42df9aa8a1a5"
        );
    }

    #[test]
    fn keys_order_by_scopes_then_audience_resources_params_and_user() {
        let mut keys = vec![
            TokenKey::new().user("b"),
            TokenKey::new().scope("b"),
            TokenKey::new().param("k", "v"),
            TokenKey::new().scope("a").scope("c"),
            TokenKey::new().audience("z"),
            TokenKey::new().scope("a").audience("a"),
            TokenKey::new().resource("r"),
            TokenKey::new(),
            TokenKey::new().scope("a"),
            TokenKey::new().user("a"),
            TokenKey::new().audience("z").resource("r"),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "default",
                "user=a",
                "user=b",
                "k=v",
                "resource=r",
                "audience=z",
                "audience=z resource=r",
                "scope=a",
                "scope=a audience=a",
                "scope=a c",
                "scope=b",
            ]
        );
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j));
                assert_eq!(a == b, i == j);
            }
        }
    }
}
