//! The latest nonce of each server, per origin, bounded.

use std::sync::{Mutex, PoisonError};

/// How many origins' nonces a key keeps; past it, the least recently used
/// is forgotten (its next request gets a `use_dpop_nonce` and one resend).
pub const MAX_ORIGINS: usize = 64;

/// The longest nonce kept: a server's value, so bounded; longer ones are
/// ignored.
const MAX_NONCE_LEN: usize = 1024;

/// Nonces by origin, most recently used last.
#[derive(Debug, Default)]
pub(crate) struct NonceBook {
    entries: Mutex<Vec<(String, String)>>,
}

/// The origin part of a proof target: `scheme://authority`.
pub(crate) fn origin_of(target: &str) -> &str {
    let after_scheme = target.find("://").map_or(0, |i| i + 3);
    match target[after_scheme..].find('/') {
        Some(slash) => &target[..after_scheme + slash],
        None => target,
    }
}

/// Whether a `DPoP-Nonce` value is one RFC 9449 §8.1 allows (`NQCHAR`:
/// visible ASCII but `"` and `\`), within the length cap.
pub(crate) fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

impl NonceBook {
    /// The nonce for `target`'s origin, if a server gave one.
    pub(crate) fn get(&self, target: &str) -> Option<String> {
        let origin = origin_of(target);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .rev()
            .find(|(o, _)| o == origin)
            .map(|(_, n)| n.clone())
    }

    /// Keeps `nonce` for `target`'s origin; an invalid one is ignored.
    pub(crate) fn remember(&self, target: &str, nonce: &str) {
        if !valid_nonce(nonce) {
            return;
        }
        let origin = origin_of(target);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = entries.iter().position(|(o, _)| o == origin) {
            entries.remove(i);
        } else if entries.len() >= MAX_ORIGINS {
            entries.remove(0);
        }
        entries.push((origin.to_owned(), nonce.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin_of("https://a.example:8443/x/y"),
            "https://a.example:8443"
        );
        assert_eq!(origin_of("https://a.example"), "https://a.example");
        assert_eq!(origin_of("weird"), "weird");
    }

    #[test]
    fn latest_nonce_per_origin_bounded() {
        let book = NonceBook::default();
        assert_eq!(book.get("https://a.example/token"), None);
        book.remember("https://a.example/token", "n1");
        book.remember("https://a.example/other", "n2");
        assert_eq!(book.get("https://a.example/api").as_deref(), Some("n2"));
        assert_eq!(book.get("https://b.example/api"), None);
        for bad in [
            "",
            "a\"b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(MAX_NONCE_LEN + 1),
        ] {
            book.remember("https://a.example/", bad);
        }
        assert_eq!(book.get("https://a.example/").as_deref(), Some("n2"));
        for i in 0..MAX_ORIGINS + 10 {
            book.remember(&format!("https://h{i}.example/"), "n");
        }
        assert_eq!(book.entries.lock().unwrap().len(), MAX_ORIGINS);
        // The least recently used went first.
        assert_eq!(book.get("https://a.example/"), None);
        assert!(
            book.get(&format!("https://h{}.example/", MAX_ORIGINS + 9))
                .is_some()
        );
    }
}
