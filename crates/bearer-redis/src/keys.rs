//! Redis key names: namespaced, derived from the cache key by hashing so
//! no caller-supplied text (let alone a secret) ends up in a key name, and
//! hash-tagged so a key's names share a cluster slot.

use sha2::{Digest, Sha256};

/// The names one store uses under its prefix.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    prefix: String,
}

/// The Redis names belonging to one cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// What travels in notifications: the hash alone.
    pub id: String,
    /// Holds the (possibly encrypted) token.
    pub value: String,
    /// Holds the fencing value of the instance fetching this key.
    pub lease: String,
}

impl KeySpace {
    pub fn new(prefix: impl Into<String>) -> Self {
        KeySpace {
            prefix: prefix.into(),
        }
    }

    pub fn names(&self, cache_key: &str) -> Names {
        let digest = Sha256::digest(cache_key.as_bytes());
        let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        // `{id}` is a hash tag: in a cluster, a key's value and lease live
        // in one slot, so each script touches one node.
        Names {
            value: format!("{}token:{{{id}}}", self.prefix),
            lease: format!("{}lease:{{{id}}}", self.prefix),
            id,
        }
    }

    /// The one pub/sub channel all keys' updates go out on.
    pub fn channel(&self) -> String {
        format!("{}updates", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_hashed_and_distinct() {
        let ks = KeySpace::new("app:");
        let a = ks.names("client-secret-would-never-be-here");
        assert!(a.value.starts_with("app:token:"));
        assert!(a.lease.starts_with("app:lease:"));
        assert!(!a.value.contains("client-secret"));
        assert_eq!(a.id.len(), 32);
        assert_ne!(a, ks.names("another"));
        assert_eq!(a, ks.names("client-secret-would-never-be-here"));
        assert_eq!(ks.channel(), "app:updates");
        // One hash tag, the same in both names: one cluster slot per key.
        let tag = |name: &str| {
            name.split_once('{')
                .unwrap()
                .1
                .split_once('}')
                .unwrap()
                .0
                .to_owned()
        };
        assert_eq!(tag(&a.value), a.id);
        assert_eq!(tag(&a.lease), a.id);
    }
}
