//! Token sources that need no HTTP.

mod static_token;

pub use static_token::StaticSource;
