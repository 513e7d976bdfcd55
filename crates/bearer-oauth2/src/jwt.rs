//! The JWT `exp` reader, shared with the file and env sources.

/// The expiry (`exp`) of a JWT-shaped token, decoded but not verified.
///
/// ```
/// use bearer_oauth2::jwt_expiry;
/// assert_eq!(jwt_expiry("opaque"), None);
/// assert!(jwt_expiry("eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.").is_some());
/// ```
pub use bearer_cache::jwt_expiry;
