//! Mutual TLS (RFC 8705) against oidc-provider: `tls_client_auth` and
//! `self_signed_tls_client_auth` at the endpoint discovery's
//! `mtls_endpoint_aliases` names, and the token bound to the certificate
//! (`cnf.x5t#S256`, as the provider's introspection reports it).
//!
//! Node serves the TLS port itself (provider.mjs reads the certificate off
//! the socket), with certificates the test kit makes at run time.

use std::path::PathBuf;

use bearer_testkit::{ClientCertificate, TestPki};
use reqwest_bearer::oauth2::{ClientAuth, ClientCredentials, ProviderMetadata, discover};
use reqwest_bearer::{TokenCache, TokenError, TokenKey};

use crate::provider::{Options, Provider};
use crate::setup::introspect;

/// A fresh directory with the PEMs provider.mjs reads; removed on drop.
struct Pems(PathBuf);

impl Pems {
    fn write(pki: &TestPki, own: &ClientCertificate) -> Pems {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("interop-mtls-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = pki.server_certificate();
        for (name, pem) in [
            ("server.crt", server.certificate_pem()),
            ("server.key", server.private_key_pem()),
            ("ca.crt", pki.ca_pem()),
            ("self.crt", own.certificate_pem()),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Pems(dir)
    }
}

impl Drop for Pems {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn token(
    provider: &ProviderMetadata,
    pki: &TestPki,
    client_id: &str,
    auth: ClientAuth,
    cert: &ClientCertificate,
) -> Result<String, TokenError> {
    let client = provider
        .client(client_id)
        .auth_method(auth)
        .tls_identity(cert.identity())
        .tls_root_certificate(pki.root_certificate())
        .scope("api:read")
        .retries(0);
    let cache = TokenCache::builder(ClientCredentials::from_client(client)).build();
    let token = cache.get(&TokenKey::new()).await?;
    Ok(token.token().access_token().expose_secret().to_owned())
}

#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_certificate_methods_get_bound_tokens_at_the_mtls_alias() {
    let pki = TestPki::new();
    let issued = pki.client_certificate("mtls-pki");
    let own = ClientCertificate::self_signed("mtls-self");
    let pems = Pems::write(&pki, &own);
    let provider = Provider::start_with_mtls(
        Options {
            access_ttl_secs: 60,
            ..Options::default()
        },
        &pems.0,
    )
    .await;

    let metadata = discover(provider.issuer()).await.expect("discovery");
    let mtls = metadata.for_mutual_tls();
    assert_eq!(mtls.token_endpoint.scheme(), "https");
    assert_ne!(mtls.token_endpoint, metadata.token_endpoint);

    for (client_id, auth, cert) in [
        ("mtls-pki", ClientAuth::TlsClientAuth, &issued),
        ("mtls-self", ClientAuth::SelfSignedTlsClientAuth, &own),
    ] {
        let token = token(&mtls, &pki, client_id, auth, cert)
            .await
            .unwrap_or_else(|e| panic!("{client_id}: {e:?}"));
        let seen = introspect(&provider, &token).await;
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["client_id"], client_id);
        assert_eq!(seen["cnf"]["x5t#S256"], cert.thumbprint(), "{seen}");
    }

    // Another certificate than the one registered: invalid_client.
    for (client_id, auth, cert) in [
        ("mtls-pki", ClientAuth::TlsClientAuth, &own),
        ("mtls-self", ClientAuth::SelfSignedTlsClientAuth, &issued),
    ] {
        let err = token(&mtls, &pki, client_id, auth, cert).await.unwrap_err();
        assert_eq!(
            err.oauth().map(|o| o.code.as_str()),
            Some("invalid_client"),
            "{client_id}: {err:?}"
        );
    }
    assert_eq!(provider.issued("mtls-pki", "client_credentials").await, 1);
    assert_eq!(provider.issued("mtls-self", "client_credentials").await, 1);
}
