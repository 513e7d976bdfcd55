//! Turning text read from a file or a variable into a token.

use std::time::Duration;

use crate::sources::jwt_expiry;
use crate::{Expiry, Token, TokenError};

/// The token in `text` (surrounding whitespace, such as the trailing newline
/// of a file, removed). A JWT keeps its own `exp`; anything else gets
/// `lifetime`, so the cache comes back to re-read it.
pub(crate) fn token_from_text(
    text: &str,
    lifetime: Duration,
    what: &str,
) -> Result<Token, TokenError> {
    let value = text.trim();
    if value.is_empty() {
        // A file caught mid-rotation can be empty for an instant: try again.
        return Err(TokenError::source(format!("{what} is empty"), true));
    }
    if !crate::is_header_safe(value) {
        return Err(TokenError::InvalidTokenValue);
    }
    let expiry = match jwt_expiry(value) {
        Some(at) => Expiry::At(at),
        None => Expiry::In(lifetime),
    };
    Ok(Token::bearer(value).with_expiry(expiry))
}
