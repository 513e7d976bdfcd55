//! Token sources that need no HTTP: a static token, a file, a variable.

mod env;
mod file;
mod jwt;
mod static_token;
mod text;

pub use env::EnvSource;
pub use file::FileSource;
pub use jwt::jwt_expiry;
pub use static_token::StaticSource;
