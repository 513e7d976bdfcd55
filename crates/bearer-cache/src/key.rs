//! What makes one token different from another.

use std::cmp::Ordering;
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
#[derive(Clone, Default, Eq)]
pub struct TokenKey {
    /// Every part in one string, in the order keys sort by (see
    /// [`Part`]): a cache holds a key per token, and one allocation for
    /// all of a key's strings is a fraction of a vector, a map and a box
    /// per string. Empty for the default key.
    text: Box<str>,
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

/// A fixed seed: the memo must not depend on the process it was made in
/// only by chance, and keys are ours, not an attacker's.
const SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6265_6172_6572);

/// The kinds of part, as the tag each has in the key's text. Their order
/// is the order of the parts: scopes (sorted), the audience, resources
/// (sorted), parameters (sorted by name, each a name then its value), the
/// user.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Part {
    Scope = b'a',
    Audience = b'b',
    Resource = b'c',
    Name = b'd',
    Value = b'e',
    User = b'f',
}

impl Part {
    fn from_tag(tag: u8) -> Self {
        match tag {
            b'a' => Part::Scope,
            b'b' => Part::Audience,
            b'c' => Part::Resource,
            b'd' => Part::Name,
            b'e' => Part::Value,
            b'f' => Part::User,
            _ => unreachable!("only `encode` writes a key's text"),
        }
    }
}

/// Writes `parts` as a key's text: each part as its tag, its length in
/// decimal, `:` and its bytes. ASCII around whole strings, so every slice
/// `Parts` takes falls on a character boundary.
fn encode(parts: &[(Part, &str)]) -> Box<str> {
    use std::fmt::Write as _;
    let len = parts.iter().map(|(_, v)| v.len() + 22).sum();
    let mut text = String::with_capacity(len);
    for (part, value) in parts {
        text.push(char::from(*part as u8));
        let _ = write!(text, "{}:", value.len());
        text.push_str(value);
    }
    text.into_boxed_str()
}

/// The parts of a key's text, in order.
#[derive(Clone)]
struct Parts<'a>(&'a str);

impl<'a> Iterator for Parts<'a> {
    type Item = (Part, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let tag = *self.0.as_bytes().first()?;
        let colon = self.0.find(':').expect("every part has its length");
        let len: usize = self.0[1..colon].parse().expect("a length in decimal");
        let (value, rest) = self.0[colon + 1..].split_at(len);
        self.0 = rest;
        Some((Part::from_tag(tag), value))
    }
}

/// The values of one kind of part, with their count.
struct Values<'a> {
    parts: Parts<'a>,
    part: Part,
    left: usize,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.left == 0 {
            return None;
        }
        let part = self.part;
        let value = self.parts.find_map(|(p, v)| (p == part).then_some(v))?;
        self.left -= 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Values<'_> {}

/// The extra parameters as (name, value), with their count.
struct Params<'a> {
    names: Values<'a>,
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let name = self.names.next()?;
        let value = match self.names.parts.next() {
            Some((Part::Value, value)) => value,
            _ => unreachable!("a name is always followed by its value"),
        };
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.names.size_hint()
    }
}

impl ExactSizeIterator for Params<'_> {}

impl TokenKey {
    /// The hash of the key's strings, computed on first use and kept.
    #[inline]
    pub(crate) fn memo_hash(&self) -> u64 {
        let known = self.digest.0.load(Relaxed);
        if known != 0 {
            return known;
        }
        let mut h = SEED.build_hasher();
        h.write(self.text.as_bytes());
        // 0 means "not yet".
        let value = h.finish().max(1);
        self.digest.0.store(value, Relaxed);
        value
    }

    fn parts(&self) -> Parts<'_> {
        Parts(&self.text)
    }

    fn values(&self, part: Part) -> Values<'_> {
        let left = self.parts().filter(|(p, _)| *p == part).count();
        Values {
            parts: self.parts(),
            part,
            left,
        }
    }

    fn single(&self, part: Part) -> Option<&str> {
        self.parts().find_map(|(p, v)| (p == part).then_some(v))
    }

    /// The key with `value` put in as `part`: added in its sorted place
    /// (once) for scopes and resources, in place of the earlier one for the
    /// audience and the user, and for a parameter (`name` given) in place
    /// of the earlier value under that name.
    fn with(self, part: Part, name: Option<&str>, value: &str) -> Self {
        let mut parts: Vec<(Part, &str)> = self.parts().collect();
        match (part, name) {
            (Part::Name, Some(name)) => {
                let at = parts
                    .iter()
                    .position(|(p, v)| (*p == Part::Name && *v >= name) || *p > Part::Value)
                    .unwrap_or(parts.len());
                if parts.get(at) == Some(&(Part::Name, name)) {
                    parts[at + 1].1 = value;
                } else {
                    parts.splice(at..at, [(Part::Name, name), (Part::Value, value)]);
                }
            }
            (Part::Scope | Part::Resource, _) => {
                let at = parts
                    .iter()
                    .position(|(p, v)| (*p == part && *v >= value) || *p > part)
                    .unwrap_or(parts.len());
                if parts.get(at) != Some(&(part, value)) {
                    parts.insert(at, (part, value));
                }
            }
            _ => {
                parts.retain(|(p, _)| *p != part);
                let at = parts
                    .iter()
                    .position(|(p, _)| *p > part)
                    .unwrap_or(parts.len());
                parts.insert(at, (part, value));
            }
        }
        TokenKey {
            text: encode(&parts),
            digest: MemoHash::default(),
        }
    }
}

// By hand: equal parts are equal texts (the text is canonical). The hit
// path compares its memo's key with the caller's: the default key answers
// without a call to `memcmp` (which costs more than the rest of a hit).
impl PartialEq for TokenKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (this, that) = (self.text.as_bytes(), other.text.as_bytes());
        this.len() == that.len() && (this.is_empty() || this == that)
    }
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.memo_hash());
    }
}

/// Scopes first, then the audience (none first), resources, parameters
/// and the user: each compared as the sorted list it is.
impl Ord for TokenKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.requested_scopes()
            .cmp(other.requested_scopes())
            .then_with(|| self.requested_audience().cmp(&other.requested_audience()))
            .then_with(|| self.requested_resources().cmp(other.requested_resources()))
            .then_with(|| self.params().cmp(other.params()))
            .then_with(|| self.user_id().cmp(&other.user_id()))
    }
}

impl PartialOrd for TokenKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl TokenKey {
    /// The empty key: the source's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a scope.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.with(Part::Scope, None, &scope.into())
    }

    /// Adds scopes.
    pub fn scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        scopes.into_iter().fold(self, |key, scope| key.scope(scope))
    }

    /// Sets the `audience` parameter.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.with(Part::Audience, None, &audience.into())
    }

    /// Adds a `resource` indicator (RFC 8707).
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.with(Part::Resource, None, &resource.into())
    }

    /// Adds any other parameter sent with the token request.
    pub fn param(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.with(Part::Name, Some(&name.into()), &value.into())
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
    pub fn user(self, user: impl Into<String>) -> Self {
        self.with(Part::User, None, &user.into())
    }

    /// The user the token is for, if the key names one.
    pub fn user_id(&self) -> Option<&str> {
        self.single(Part::User)
    }

    /// The requested scopes, sorted.
    pub fn requested_scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.values(Part::Scope)
    }

    /// The `audience`, if set.
    pub fn requested_audience(&self) -> Option<&str> {
        self.single(Part::Audience)
    }

    /// The resource indicators, sorted.
    pub fn requested_resources(&self) -> impl ExactSizeIterator<Item = &str> {
        self.values(Part::Resource)
    }

    /// The extra parameters, sorted by name.
    pub fn params(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        Params {
            names: self.values(Part::Name),
        }
    }

    /// Whether this is the empty key.
    pub fn is_default(&self) -> bool {
        self.text.is_empty()
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
        // The parts' order is the one this digest has always used.
        for (part, value) in self.parts() {
            let tag = match part {
                Part::Scope => "scope",
                Part::Audience => "audience",
                Part::Resource => "resource",
                Part::Name => "param",
                Part::Value => "value",
                Part::User => "user",
            };
            field(tag, value);
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
        let mut scopes = self.requested_scopes();
        if let Some(first) = scopes.next() {
            write!(f, "scope={first}")?;
            for scope in scopes {
                write!(f, " {scope}")?;
            }
            sep = " ";
        }
        if let Some(a) = self.requested_audience() {
            write!(f, "{sep}audience={a}")?;
            sep = " ";
        }
        for r in self.requested_resources() {
            write!(f, "{sep}resource={r}")?;
            sep = " ";
        }
        for (k, v) in self.params() {
            write!(f, "{sep}{k}={v}")?;
            sep = " ";
        }
        if let Some(user) = self.user_id() {
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

    /// What a key stands for, kept the obvious way.
    #[derive(Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
    struct Model {
        scopes: std::collections::BTreeSet<String>,
        audience: Option<String>,
        resources: std::collections::BTreeSet<String>,
        params: std::collections::BTreeMap<String, String>,
        user: Option<String>,
    }

    fn apply(key: TokenKey, model: &mut Model, op: &(u8, String, String)) -> TokenKey {
        let (which, a, b) = op;
        match which % 5 {
            0 => {
                model.scopes.insert(a.clone());
                key.scope(a.as_str())
            }
            1 => {
                model.audience = Some(a.clone());
                key.audience(a.as_str())
            }
            2 => {
                model.resources.insert(a.clone());
                key.resource(a.as_str())
            }
            3 => {
                model.params.insert(a.clone(), b.clone());
                key.param(a.as_str(), b.as_str())
            }
            _ => {
                model.user = Some(a.clone());
                key.user(a.as_str())
            }
        }
    }

    fn built(ops: &[(u8, String, String)]) -> (TokenKey, Model) {
        let mut model = Model::default();
        let key = ops
            .iter()
            .fold(TokenKey::new(), |key, op| apply(key, &mut model, op));
        (key, model)
    }

    fn read_back(key: &TokenKey) -> Model {
        Model {
            scopes: key.requested_scopes().map(str::to_owned).collect(),
            audience: key.requested_audience().map(str::to_owned),
            resources: key.requested_resources().map(str::to_owned).collect(),
            params: key
                .params()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            user: key.user_id().map(str::to_owned),
        }
    }

    use proptest::prelude::*;

    fn ops() -> impl Strategy<Value = Vec<(u8, String, String)>> {
        let text = "[a-c0-9:é]{0,4}";
        proptest::collection::vec((any::<u8>(), text, text), 0..8)
    }

    proptest! {
        #[test]
        fn a_key_holds_what_its_builders_put_in(a in ops(), b in ops()) {
            let (ka, ma) = built(&a);
            let (kb, mb) = built(&b);
            prop_assert_eq!(&read_back(&ka), &ma);
            prop_assert_eq!(ka.requested_scopes().len(), ma.scopes.len());
            prop_assert_eq!(ka.params().len(), ma.params.len());
            prop_assert_eq!(ka == kb, ma == mb);
            prop_assert_eq!(ka.cmp(&kb), ma.cmp(&mb));
            prop_assert_eq!(ka.is_default(), ma == Model::default());
            if ka == kb {
                prop_assert_eq!(ka.memo_hash(), kb.memo_hash());
            }
        }
    }
}
