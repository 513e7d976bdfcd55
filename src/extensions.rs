//! Per-request control, through `reqwest-middleware`'s request extensions.

use bearer_cache::TokenKey;

use crate::{NoAuthRetry, SkipAuth};

/// Per-request settings on a `reqwest_middleware::RequestBuilder`.
///
/// A [`TokenKey`] extension picks the token (scopes, audience) for one
/// request instead of the middleware's default key.
///
/// ```
/// # use reqwest_middleware::ClientWithMiddleware;
/// # fn f(client: &ClientWithMiddleware) {
/// use reqwest_bearer::{RequestBuilderExt, TokenKey};
///
/// let admin = client
///     .delete("https://api.example.com/users/7")
///     .token_key(TokenKey::new().scope("admin"))
///     .no_auth_retry();
/// let public = client.get("https://api.example.com/status").skip_auth();
/// # }
/// ```
pub trait RequestBuilderExt: Sized {
    /// Sends the request without a token ([`SkipAuth`]).
    fn skip_auth(self) -> Self;
    /// Uses this key's token for the request.
    fn token_key(self, key: TokenKey) -> Self;
    /// Returns the first response even if it is a 401 ([`NoAuthRetry`]).
    fn no_auth_retry(self) -> Self;
}

impl RequestBuilderExt for reqwest_middleware::RequestBuilder {
    fn skip_auth(self) -> Self {
        self.with_extension(SkipAuth)
    }

    fn token_key(self, key: TokenKey) -> Self {
        self.with_extension(key)
    }

    fn no_auth_retry(self) -> Self {
        self.with_extension(NoAuthRetry)
    }
}
