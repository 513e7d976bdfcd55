//! Mutual TLS (RFC 8705) against the test kit's TLS listener: client
//! authentication by certificate, certificate-bound tokens at the API,
//! discovery's endpoint aliases, and every way the setup can be wrong.

mod common;

use std::error::Error;

use bearer_cache::{TokenError, TokenKey};
use bearer_oauth2::{
    ClientAuth, ClientCredentials, MtlsError, OAuthClient, discover_with, tls_identity_from_pem,
};
use bearer_testkit::{ClientCertificate, ClientConfig, TestPki, TestServer, TlsSubject};
use common::{assert_hidden, fast_retries, fetch};
use serde_json::Value;

/// A server with mutual TLS, its CA, and one client of each kind:
/// `pki-client` (tls_client_auth by subject DN), `dns-client` (by DNS SAN)
/// and `own-client` (self-signed).
struct Setup {
    server: TestServer,
    pki: TestPki,
    issued: ClientCertificate,
    by_dns: ClientCertificate,
    own: ClientCertificate,
}

async fn setup(required: bool) -> Setup {
    let pki = TestPki::new();
    let issued = pki.client_certificate("pki-client");
    let by_dns = pki.client_certificate_for_dns("dns-client", "dns-client.clients.example");
    let own = ClientCertificate::self_signed("own-client");
    let server = TestServer::builder()
        .mutual_tls(&pki)
        .client_certificate_required(required)
        .add_client(ClientConfig::tls_client_auth(
            "pki-client",
            TlsSubject::Dn(issued.subject_dn().to_owned()),
        ))
        .add_client(ClientConfig::tls_client_auth(
            "dns-client",
            TlsSubject::SanDns("dns-client.clients.example".to_owned()),
        ))
        .add_client(ClientConfig::self_signed_tls_client_auth(
            "own-client",
            &own,
        ))
        .start()
        .await;
    Setup {
        server,
        pki,
        issued,
        by_dns,
        own,
    }
}

/// A client credentials source at the TLS token endpoint, presenting `cert`.
fn source(
    s: &Setup,
    client_id: &str,
    auth: ClientAuth,
    cert: &ClientCertificate,
) -> ClientCredentials {
    let client = OAuthClient::new(s.server.mtls_url("/token"), client_id)
        .auth_method(auth)
        .tls_identity(cert.identity())
        .tls_root_certificate(s.pki.root_certificate())
        .retry_backoff(fast_retries());
    ClientCredentials::from_client(client)
}

/// One client credentials fetch at the TLS token endpoint, presenting `cert`.
async fn fetch_as(
    s: &Setup,
    client_id: &str,
    auth: ClientAuth,
    cert: &ClientCertificate,
) -> Result<bearer_cache::Token, TokenError> {
    let source = source(s, client_id, auth, cert);
    fetch(&source, &TokenKey::default(), None).await
}

/// One client credentials fetch through `client`.
async fn fetch_with(client: OAuthClient) -> Result<bearer_cache::Token, TokenError> {
    fetch(
        &ClientCredentials::from_client(client),
        &TokenKey::default(),
        None,
    )
    .await
}

/// An API client over TLS presenting `cert` (or none).
fn api_client(s: &Setup, cert: Option<&ClientCertificate>) -> reqwest::Client {
    let builder = s.pki.client_builder();
    match cert {
        Some(cert) => builder.identity(cert.identity()),
        None => builder,
    }
    .build()
    .unwrap()
}

async fn call_api(http: &reqwest::Client, url: url::Url, token: &str) -> reqwest::Response {
    http.get(url).bearer_auth(token).send().await.unwrap()
}

/// The `error` of the response's Bearer challenge, typed.
fn bearer_error(response: &reqwest::Response) -> Option<bearer_http::BearerErrorCode> {
    let header = response.headers().get("www-authenticate")?.to_str().ok()?;
    bearer_http::parse_www_authenticate(header)
        .ok()?
        .into_iter()
        .find_map(|c| c.bearer_error())
}

#[tokio::test]
async fn each_certificate_method_gets_a_token_without_a_secret() {
    let s = setup(true).await;
    let cases = [
        ("pki-client", ClientAuth::TlsClientAuth, &s.issued),
        ("dns-client", ClientAuth::TlsClientAuth, &s.by_dns),
        ("own-client", ClientAuth::SelfSignedTlsClientAuth, &s.own),
    ];
    for (client_id, auth, cert) in cases {
        let token = fetch_as(&s, client_id, auth, cert)
            .await
            .unwrap_or_else(|e| panic!("{client_id}: {e:?}"));
        assert!(!token.access_token().expose_secret().is_empty());
        let sent = s.server.control().last_token_request().unwrap();
        assert_eq!(sent.param("client_id"), Some(client_id));
        assert_eq!(sent.param("client_secret"), None);
        let headers = s
            .server
            .control()
            .last_headers(bearer_testkit::Endpoint::Token)
            .unwrap();
        assert!(headers.get("authorization").is_none());
    }
    assert_eq!(s.server.control().counters().issued.client_credentials, 3);
}

#[tokio::test]
async fn a_wrong_certificate_is_invalid_client() {
    let s = setup(true).await;
    let other_ca = TestPki::new().client_certificate("pki-client");
    let cases = [
        // Right subject, another CA.
        ("pki-client", ClientAuth::TlsClientAuth, &other_ca),
        // Self-signed where a CA-issued one is registered.
        ("pki-client", ClientAuth::TlsClientAuth, &s.own),
        // Issued by the CA, but another client's subject.
        ("pki-client", ClientAuth::TlsClientAuth, &s.by_dns),
        // Not the registered self-signed certificate.
        ("own-client", ClientAuth::SelfSignedTlsClientAuth, &s.issued),
    ];
    for (client_id, auth, cert) in cases {
        let err = fetch_as(&s, client_id, auth, cert).await.unwrap_err();
        assert_eq!(
            err.oauth().map(|o| o.code.as_str()),
            Some("invalid_client"),
            "{cert:?}: {err:?}"
        );
        assert!(!err.is_transient());
    }
    assert_eq!(s.server.control().counters().issued.client_credentials, 0);
}

#[tokio::test]
async fn no_certificate_is_refused_at_the_handshake_or_as_invalid_client() {
    // Required at the handshake: the connection fails, a transport error.
    let s = setup(true).await;
    let no_cert = OAuthClient::new(s.server.mtls_url("/token"), "pki-client")
        .auth_method(ClientAuth::TlsClientAuth)
        .http_client(api_client(&s, None))
        .retries(0);
    let err = fetch_with(no_cert).await.unwrap_err();
    assert!(matches!(err, TokenError::Transport(_)), "{err:?}");
    assert_eq!(s.server.control().counters().token_requests, 0);

    // Optional at the handshake: the token endpoint says who is missing.
    let s = setup(false).await;
    let no_cert = OAuthClient::new(s.server.mtls_url("/token"), "pki-client")
        .auth_method(ClientAuth::TlsClientAuth)
        .http_client(api_client(&s, None));
    let err = fetch_with(no_cert).await.unwrap_err();
    let oauth = err.oauth().unwrap();
    assert_eq!(oauth.code, "invalid_client");
    assert_eq!(
        oauth.description.as_deref(),
        Some("no client certificate was presented")
    );
}

#[tokio::test]
async fn a_missing_identity_or_a_second_client_fails_before_any_request() {
    let s = setup(true).await;
    let missing = OAuthClient::new(s.server.mtls_url("/token"), "pki-client")
        .auth_method(ClientAuth::SelfSignedTlsClientAuth);
    let both = OAuthClient::new(s.server.mtls_url("/token"), "pki-client")
        .auth_method(ClientAuth::TlsClientAuth)
        .tls_identity(s.issued.identity())
        .http_client(api_client(&s, None));
    // A key that is no key, past reqwest's PEM reading.
    let bad_key = format!(
        "{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        s.issued.certificate_pem()
    );
    let unusable = OAuthClient::new(s.server.mtls_url("/token"), "pki-client")
        .auth_method(ClientAuth::TlsClientAuth)
        .tls_identity(reqwest::Identity::from_pem(bad_key.as_bytes()).unwrap());
    for (client, expected) in [
        (missing, "MissingIdentity"),
        (both, "IdentityWithOwnClient"),
        (unusable, "ClientBuild"),
    ] {
        let err = fetch_with(client).await.unwrap_err();
        assert!(!err.is_transient());
        let cause = err.source().unwrap();
        let mtls = cause.downcast_ref::<MtlsError>().unwrap();
        assert!(format!("{mtls:?}").starts_with(expected), "{mtls:?}");
        assert_ne!(err.to_string(), cause.to_string());
    }
    assert_eq!(s.server.control().counters().token_requests, 0);
}

#[test]
fn unreadable_pem_is_typed_and_shows_no_key() {
    let cert = ClientCertificate::self_signed("svc");
    let key_pem = cert.private_key_pem();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let cert_pem = cert.certificate_pem();
    let cases: [(&[u8], &[u8]); 3] = [
        (b"not a certificate", key_pem.as_bytes()),
        (
            cert_pem.as_bytes(),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
        (b"", b""),
    ];
    for (certificate, key) in cases {
        let err = tls_identity_from_pem(certificate, key).unwrap_err();
        assert!(matches!(err, MtlsError::UnreadablePem(_)), "{err:?}");
        let mut shown = format!("{err:?} {err}");
        let mut source = err.source();
        while let Some(cause) = source {
            shown.push_str(&format!(" {cause} {cause:?}"));
            source = cause.source();
        }
        for chunk in key_body.as_bytes().chunks(16) {
            assert_hidden(std::str::from_utf8(chunk).unwrap(), &shown);
        }
    }
    // The good pair reads.
    tls_identity_from_pem(cert.certificate_pem().as_bytes(), key_pem.as_bytes()).unwrap();
}

#[tokio::test]
async fn no_key_material_in_debug() {
    let s = setup(true).await;
    let identity = tls_identity_from_pem(
        s.own.certificate_pem().as_bytes(),
        s.own.private_key_pem().as_bytes(),
    )
    .unwrap();
    let source = source(
        &s,
        "own-client",
        ClientAuth::SelfSignedTlsClientAuth,
        &s.own,
    )
    .tls_identity(identity);
    let shown = format!("{source:?} {:?}", s.own);
    let key_body: String = s
        .own
        .private_key_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for chunk in key_body.as_bytes().chunks(16) {
        assert_hidden(std::str::from_utf8(chunk).unwrap(), &shown);
    }
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[tokio::test]
async fn a_bound_token_works_only_with_its_certificate() {
    let s = setup(true).await;
    let token = fetch_as(
        &s,
        "own-client",
        ClientAuth::SelfSignedTlsClientAuth,
        &s.own,
    )
    .await
    .unwrap();
    let token = token.access_token().expose_secret();
    let echo = s.server.mtls_url("/api/echo");

    let same = call_api(&api_client(&s, Some(&s.own)), echo.clone(), token).await;
    assert_eq!(same.status(), 200);

    let other = call_api(&api_client(&s, Some(&s.issued)), echo.clone(), token).await;
    assert_eq!(other.status(), 401);
    assert_eq!(
        bearer_error(&other),
        Some(bearer_http::BearerErrorCode::InvalidToken)
    );

    // Without TLS there is no certificate: refused too.
    let plain = bearer_testkit::client_builder().build().unwrap();
    let none = call_api(&plain, s.server.api_url("/api/echo"), token).await;
    assert_eq!(none.status(), 401);
    assert_eq!(
        bearer_error(&none),
        Some(bearer_http::BearerErrorCode::InvalidToken)
    );

    // Introspection shows the binding (RFC 8705 §3.2).
    let introspection: Value = plain
        .post(s.server.introspection_url())
        .basic_auth(s.server.client_id(), Some(s.server.client_secret()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspection["cnf"]["x5t#S256"], s.own.thumbprint());
}

#[tokio::test]
async fn discovery_aliases_lead_to_the_mutual_tls_endpoints() {
    let s = setup(true).await;
    let plain = bearer_testkit::client_builder().build().unwrap();
    let provider = discover_with(&plain, &s.server.issuer()).await.unwrap();
    assert!(provider.tls_client_certificate_bound_access_tokens);
    assert_eq!(provider.token_endpoint, s.server.token_url());
    let mtls = provider.for_mutual_tls();
    assert_eq!(mtls.token_endpoint, s.server.mtls_url("/token"));
    assert_eq!(
        mtls.device_authorization_endpoint,
        Some(s.server.mtls_url("/device_authorization"))
    );
    assert_eq!(mtls.revocation_endpoint, Some(s.server.mtls_url("/revoke")));
    // A source built from it presents the certificate at the alias.
    let client = mtls
        .client("pki-client")
        .auth_method(ClientAuth::TlsClientAuth)
        .tls_identity(s.issued.identity())
        .tls_root_certificate(s.pki.root_certificate());
    let token = fetch_with(client).await;
    assert!(token.is_ok(), "{token:?}");
    // Without aliases, nothing moves.
    let plain_provider = provider.clone();
    let mut no_aliases = plain_provider;
    no_aliases.mtls_endpoint_aliases = Default::default();
    assert_eq!(no_aliases.for_mutual_tls(), no_aliases);
}
