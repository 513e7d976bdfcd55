//! reqwest-bearer: bearer-token authentication for `reqwest-middleware`.
#![forbid(unsafe_code)]
pub use bearer_cache;
