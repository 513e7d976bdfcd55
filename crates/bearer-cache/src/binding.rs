//! Sender-constrained tokens: what a token bound to a key needs per request.

use std::fmt;
use std::sync::Arc;

use crate::{AccessToken, TokenError};

/// The key a sender-constrained token is bound to (DPoP, RFC 9449), as
/// the transports need it: the `Authorization` scheme, and a fresh proof
/// per request. The cache only carries it with the token; it never looks
/// inside, so it stays free of any JOSE code. `bearer_dpop::DpopKey`
/// implements it, and a DPoP source attaches it to the tokens it gets.
///
/// ```
/// use bearer_cache::{AccessToken, Token, TokenBinding, TokenError};
/// use std::sync::Arc;
///
/// #[derive(Debug)]
/// struct Fixed;
///
/// impl TokenBinding for Fixed {
///     fn scheme(&self) -> &'static str { "DPoP" }
///     fn proof_header(&self) -> &'static str { "DPoP" }
///     fn proof(&self, _: &str, _: &str, _: Option<&AccessToken>) -> Result<String, TokenError> {
///         Ok("header.claims.signature".into())
///     }
///     fn remember_nonce(&self, _: &str, _: &str) {}
/// }
///
/// let token = Token::bearer("abc").with_token_type("DPoP").with_binding(Arc::new(Fixed));
/// assert_eq!(token.binding().map(|b| b.scheme()), Some("DPoP"));
/// ```
pub trait TokenBinding: Send + Sync + fmt::Debug + 'static {
    /// The `Authorization` scheme of a token bound this way (`DPoP`); it
    /// must equal the `token_type` the server issued, in any letter case.
    fn scheme(&self) -> &'static str;

    /// The name of the header that carries the proof (`DPoP`).
    fn proof_header(&self) -> &'static str;

    /// A new proof for one request: `method` as sent (`GET`), `target` the
    /// request URL without query or fragment, `access_token` the token the
    /// request carries (`None` for a token request). The nonce, if a server
    /// gave one for the target's origin, is the binding's to add.
    fn proof(
        &self,
        method: &str,
        target: &str,
        access_token: Option<&AccessToken>,
    ) -> Result<String, TokenError>;

    /// Keeps the nonce a server sent (`DPoP-Nonce`) for the origin of
    /// `target`, for the next proofs there.
    fn remember_nonce(&self, target: &str, nonce: &str);
}

/// A [`TokenBinding`] as a token holds it: compared by identity.
#[derive(Clone)]
pub(crate) struct Binding(pub(crate) Arc<dyn TokenBinding>);

impl PartialEq for Binding {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Binding {}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
