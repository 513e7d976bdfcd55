//! Mutual TLS (RFC 8705): the client certificate a token request is sent
//! with, and why a request cannot be sent without one.

use bearer_cache::TokenError;

/// Why a client that authenticates by certificate (or was given one)
/// cannot send its token request. Reaches the cache as a permanent
/// [`TokenError::Source`] with this error as its cause; no message holds
/// any of the key or certificate.
///
/// ```
/// use bearer_cache::TokenError;
/// use bearer_oauth2::MtlsError;
///
/// let e: TokenError = MtlsError::MissingIdentity.into();
/// assert!(!e.is_transient());
/// let TokenError::Source { cause: Some(cause), .. } = &e else { unreachable!() };
/// assert!(matches!(cause.downcast_ref::<MtlsError>(), Some(MtlsError::MissingIdentity)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MtlsError {
    /// `tls_client_auth` or `self_signed_tls_client_auth` was chosen, but
    /// no client certificate: neither
    /// [`OAuthClient::tls_identity`](crate::OAuthClient::tls_identity) nor
    /// an HTTP client of your own (which may carry one).
    #[error(
        "client authentication by certificate needs a client certificate: \
         set `tls_identity`, or an HTTP client built with your identity"
    )]
    MissingIdentity,
    /// Both a TLS identity and an HTTP client of your own were given: the
    /// identity would not be on the client that sends. Put it on yours
    /// (`reqwest::ClientBuilder::identity`) and drop `tls_identity`.
    #[error(
        "both `tls_identity` and your own HTTP client were given; \
         build your client with the identity instead"
    )]
    IdentityWithOwnClient,
    /// The PEM given to
    /// [`tls_identity_from_pem`](crate::tls_identity_from_pem) holds no
    /// usable certificate or private key.
    #[error("cannot read the client certificate and private key PEM")]
    UnreadablePem(#[source] reqwest::Error),
    /// reqwest refused to build an HTTP client with the identity (a key
    /// that does not fit the certificate, or a TLS backend that cannot
    /// use it).
    #[error("cannot build the HTTP client with the client certificate")]
    ClientBuild(#[source] reqwest::Error),
}

impl From<MtlsError> for TokenError {
    fn from(error: MtlsError) -> Self {
        TokenError::Source {
            message: "the client's TLS certificate setup is unusable".to_owned(),
            transient: false,
            cause: Some(bearer_cache::Cause::new(error)),
        }
    }
}

/// What the client presents at the TLS layer, kept so the HTTP client can
/// be built again when another setting (a root certificate) is added.
#[derive(Clone, Default)]
pub(crate) struct TlsSetup {
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    identity: Option<reqwest::Identity>,
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    roots: Vec<reqwest::Certificate>,
    /// Whether `tls_identity` was called.
    has_identity: bool,
    /// Why the client with the identity could not be built.
    failure: Option<bearer_cache::Cause>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whether there is an identity, never what it holds.
        f.debug_struct("TlsSetup")
            .field("identity", &self.has_identity.then_some("[redacted]"))
            .field("failed", &self.failure.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "rustls", feature = "native-tls"))]
impl TlsSetup {
    pub(crate) fn set_identity(&mut self, identity: reqwest::Identity) {
        self.identity = Some(identity);
        self.has_identity = true;
    }

    pub(crate) fn add_root(&mut self, root: reqwest::Certificate) {
        self.roots.push(root);
    }

    /// The HTTP client presenting the identity, or `None` without one (a
    /// failure to build is kept and reported at the next request).
    pub(crate) fn build(&mut self) -> Option<reqwest::Client> {
        let identity = self.identity.clone()?;
        let mut builder = crate::transport::client_builder().identity(identity);
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        match builder.build() {
            Ok(client) => {
                self.failure = None;
                Some(client)
            }
            Err(e) => {
                self.failure = Some(bearer_cache::Cause::new(MtlsError::ClientBuild(
                    e.without_url(),
                )));
                None
            }
        }
    }
}

impl TlsSetup {
    /// Whether a token request may be sent: the rule of [`readiness`] plus
    /// a kept build failure.
    pub(crate) fn check(&self, by_certificate: bool, own_client: bool) -> Result<(), TokenError> {
        if let Some(failure) = &self.failure {
            return Err(TokenError::Source {
                message: "the client's TLS certificate setup is unusable".to_owned(),
                transient: false,
                cause: Some(failure.clone()),
            });
        }
        readiness(by_certificate, self.has_identity, own_client).map_err(TokenError::from)
    }
}

/// Whether a client may send: one that authenticates by certificate needs
/// one (from `tls_identity` or on its own client, which we cannot look
/// into), and an identity is never silently left off a client of the
/// user's.
fn readiness(by_certificate: bool, has_identity: bool, own_client: bool) -> Result<(), MtlsError> {
    match (by_certificate, has_identity, own_client) {
        (_, true, true) => Err(MtlsError::IdentityWithOwnClient),
        (true, false, false) => Err(MtlsError::MissingIdentity),
        _ => Ok(()),
    }
}

/// A reqwest [`Identity`](reqwest::Identity) from a PEM certificate
/// (chain) and its PEM private key, on either TLS backend: rustls reads
/// PKCS #8, PKCS #1 (RSA) and SEC1 (EC) keys; native-tls (also chosen by
/// reqwest when both features are on) only PKCS #8
/// (`-----BEGIN PRIVATE KEY-----`). The pair is tried on a TLS client
/// at once, so a key that is not one, or does not fit the certificate,
/// fails here rather than at the first request. The error shows none of
/// either.
///
/// ```
/// let refused = bearer_oauth2::tls_identity_from_pem(b"not a certificate", b"not a key");
/// assert!(matches!(refused, Err(bearer_oauth2::MtlsError::UnreadablePem(_))));
/// ```
#[cfg(any(feature = "rustls", feature = "native-tls"))]
pub fn tls_identity_from_pem(
    certificate_pem: &[u8],
    private_key_pem: &[u8],
) -> Result<reqwest::Identity, MtlsError> {
    let unreadable = |e: reqwest::Error| MtlsError::UnreadablePem(e.without_url());
    let identity = identity_from_pem(certificate_pem, private_key_pem).map_err(unreadable)?;
    // Both backends parse the key only when a client is built.
    crate::transport::client_builder()
        .identity(identity.clone())
        .build()
        .map_err(unreadable)?;
    Ok(identity)
}

// With both backends on, reqwest's clients use native-tls, so its kind of
// identity is the one made.
#[cfg(all(feature = "rustls", not(feature = "native-tls")))]
fn identity_from_pem(certificate: &[u8], key: &[u8]) -> reqwest::Result<reqwest::Identity> {
    // rustls reads one buffer holding both; zeroized once read.
    let mut both = zeroize::Zeroizing::new(Vec::with_capacity(certificate.len() + key.len() + 1));
    both.extend_from_slice(certificate);
    both.push(b'\n');
    both.extend_from_slice(key);
    reqwest::Identity::from_pem(&both)
}

#[cfg(feature = "native-tls")]
fn identity_from_pem(certificate: &[u8], key: &[u8]) -> reqwest::Result<reqwest::Identity> {
    reqwest::Identity::from_pkcs8_pem(certificate, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_client_needs_an_identity_somewhere_and_never_two_clients() {
        assert!(readiness(false, false, false).is_ok());
        assert!(readiness(false, false, true).is_ok());
        assert!(readiness(true, true, false).is_ok());
        // Their own client may carry the identity: trusted.
        assert!(readiness(true, false, true).is_ok());
        assert!(matches!(
            readiness(true, false, false),
            Err(MtlsError::MissingIdentity)
        ));
        for by_certificate in [false, true] {
            assert!(matches!(
                readiness(by_certificate, true, true),
                Err(MtlsError::IdentityWithOwnClient)
            ));
        }
    }
}
