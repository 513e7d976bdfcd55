//! Mutual TLS (RFC 8705): a certificate authority made at run time, a TLS
//! listener that asks every client for a certificate, client
//! authentication by certificate (`tls_client_auth`,
//! `self_signed_tls_client_auth`) and access tokens bound to the
//! certificate they were issued over (`cnf.x5t#S256`).
//!
//! The TLS layer accepts any well-formed client certificate whose key
//! signs the handshake; which certificate belongs to which client is
//! decided at the token endpoint, as RFC 8705 §2 describes, so a wrong
//! certificate is answered with `invalid_client` rather than a broken
//! connection. Only a missing certificate can be refused at the handshake
//! ([`TestServerBuilder::client_certificate_required`](crate::TestServerBuilder::client_certificate_required)).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use url::Url;
use zeroize::Zeroizing;

use crate::config::{AccessTokenFormat, ClientConfig};
use crate::counters::Endpoint;
use crate::oauth::OAuthError;
use crate::state::{Shared, lock};

/// The organisation every certificate the kit makes names.
const ORGANIZATION: &str = "bearer-testkit";

/// A certificate authority made at run time, with the server certificate
/// of the kit's TLS listener (for `127.0.0.1` and `localhost`) and client
/// certificates on demand. Cheap to clone.
///
/// ```
/// use bearer_testkit::TestPki;
///
/// let pki = TestPki::new();
/// let issued = pki.client_certificate("orders-service");
/// assert_eq!(issued.subject_dn(), "CN=orders-service,O=bearer-testkit");
/// let own = bearer_testkit::ClientCertificate::self_signed("orders-service");
/// assert_ne!(issued.thumbprint(), own.thumbprint());
/// assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
/// ```
#[derive(Clone)]
pub struct TestPki {
    inner: Arc<PkiInner>,
}

struct PkiInner {
    issuer: Issuer<'static, KeyPair>,
    ca: CertificateDer<'static>,
    server: ClientCertificate,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("ca", &thumbprint(&self.inner.ca))
            .finish_non_exhaustive()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl TestPki {
    /// A new CA (ECDSA P-256) and the listener's server certificate.
    ///
    /// # Panics
    /// If the crypto library cannot make a key (it always can).
    pub fn new() -> TestPki {
        let key = KeyPair::generate().expect("bearer-testkit: cannot generate a CA key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = distinguished_name("bearer-testkit CA");
        let ca = params
            .self_signed(&key)
            .expect("bearer-testkit: cannot sign the CA certificate")
            .der()
            .clone();
        let issuer = Issuer::new(params, key);
        let server = issue(
            "bearer-testkit server",
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            Some(&issuer),
        );
        TestPki {
            inner: Arc::new(PkiInner { issuer, ca, server }),
        }
    }

    /// A client certificate issued by this CA, subject
    /// `CN=<common_name>,O=bearer-testkit`, without alternative names; for
    /// a client registered with [`TlsSubject::Dn`].
    pub fn client_certificate(&self, common_name: &str) -> ClientCertificate {
        issue(common_name, Vec::new(), Some(&self.inner.issuer))
    }

    /// A client certificate issued by this CA with `dns_name` as its DNS
    /// subject alternative name; for a client registered with
    /// [`TlsSubject::SanDns`].
    pub fn client_certificate_for_dns(
        &self,
        common_name: &str,
        dns_name: &str,
    ) -> ClientCertificate {
        issue(
            common_name,
            vec![dns_name.to_owned()],
            Some(&self.inner.issuer),
        )
    }

    /// The certificate (for `127.0.0.1` and `localhost`) and key the kit's
    /// TLS listener serves, for another TLS server in a test to serve too.
    pub fn server_certificate(&self) -> ClientCertificate {
        self.inner.server.clone()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        pem("CERTIFICATE", &self.inner.ca)
    }

    /// The CA certificate as reqwest takes it, to trust the kit's TLS
    /// listener ([`reqwest::ClientBuilder::add_root_certificate`]).
    ///
    /// # Panics
    /// Never for a certificate this CA made.
    pub fn root_certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_der(&self.inner.ca)
            .expect("bearer-testkit: reqwest refuses the CA certificate")
    }

    /// [`crate::client_builder`] trusting this CA: add
    /// [`ClientCertificate::identity`] to present a certificate.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        crate::client_builder().add_root_certificate(self.root_certificate())
    }

    /// The TLS settings of the kit's listener: this CA's server
    /// certificate, and a request for a client certificate, required at
    /// the handshake when `required`.
    pub(crate) fn server_config(&self, required: bool) -> io::Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = AnyClientCertificate {
            required,
            algorithms: provider.signature_verification_algorithms,
        };
        let server = &self.inner.server;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der.to_vec()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(vec![server.der.clone(), self.inner.ca.clone()], key)
            .map_err(io::Error::other)?;
        Ok(Arc::new(config))
    }

    /// Checks a chain against this CA, as `tls_client_auth` requires.
    fn issued(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        let mut roots = rustls::RootCertStore::empty();
        if roots.add(self.inner.ca.clone()).is_err() {
            return false;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .is_ok_and(|v| {
                v.verify_client_cert(leaf, intermediates, UnixTime::now())
                    .is_ok()
            })
    }
}

/// `CN=<common_name>,O=bearer-testkit`, pushed in DER order (O first).
fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// A new P-256 key and its certificate, signed by `issuer` or by itself.
fn issue(
    common_name: &str,
    names: Vec<String>,
    issuer: Option<&Issuer<'_, KeyPair>>,
) -> ClientCertificate {
    let key = KeyPair::generate().expect("bearer-testkit: cannot generate a key");
    let mut params = CertificateParams::new(names)
        .expect("bearer-testkit: a subject alternative name is invalid");
    params.distinguished_name = distinguished_name(common_name);
    let certificate = match issuer {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .expect("bearer-testkit: cannot sign a certificate");
    ClientCertificate {
        der: certificate.der().clone(),
        key_der: Zeroizing::new(key.serialize_der()),
        subject: format!("CN={common_name},O={ORGANIZATION}"),
    }
}

/// A certificate and its private key, for a client to present (or for
/// the kit's listener). `Debug` shows the subject and the thumbprint; the
/// key only leaves through [`private_key_pem`](Self::private_key_pem),
/// [`identity_pem`](Self::identity_pem) and [`identity`](Self::identity).
#[derive(Clone)]
pub struct ClientCertificate {
    der: CertificateDer<'static>,
    /// PKCS #8; wiped on drop like any key, test key or not.
    key_der: Zeroizing<Vec<u8>>,
    subject: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject)
            .field("thumbprint", &self.thumbprint())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl ClientCertificate {
    /// A self-signed certificate (for `self_signed_tls_client_auth`),
    /// subject `CN=<common_name>,O=bearer-testkit`.
    pub fn self_signed(common_name: &str) -> ClientCertificate {
        issue(common_name, Vec::new(), None)
    }

    /// The subject as RFC 4514 writes it: `CN=<name>,O=bearer-testkit`.
    pub fn subject_dn(&self) -> &str {
        &self.subject
    }

    /// The certificate's SHA-256 thumbprint, base64url: its `x5t#S256`.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.der)
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    /// The private key, PKCS #8 PEM.
    pub fn private_key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.key_der)
    }

    /// Certificate then key, PEM: what `reqwest::Identity::from_pem` reads.
    pub fn identity_pem(&self) -> String {
        self.certificate_pem() + &self.private_key_pem()
    }

    /// The certificate and key as a reqwest identity, of the rustls kind
    /// (with reqwest's `native-tls` also on, its clients want
    /// `bearer_oauth2::tls_identity_from_pem` instead).
    ///
    /// # Panics
    /// Never for a certificate the kit made.
    pub fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(self.identity_pem().as_bytes())
            .expect("bearer-testkit: reqwest refuses the kit's own identity")
    }
}

/// How a `tls_client_auth` client's certificate is recognised (RFC 8705
/// §2.1.2): one subject field, checked after the chain is checked
/// against the kit's CA.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsSubject {
    /// `tls_client_auth_subject_dn`: the whole subject, RFC 4514 string
    /// (as [`ClientCertificate::subject_dn`] gives it).
    Dn(String),
    /// `tls_client_auth_san_dns`: a DNS subject alternative name.
    SanDns(String),
}

/// How a client proves itself by certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MtlsRegistration {
    /// `tls_client_auth`: issued by the kit's CA, with this subject.
    Pki(TlsSubject),
    /// `self_signed_tls_client_auth`: one of these certificate thumbprints.
    SelfSigned(Vec<String>),
}

impl ClientConfig {
    /// A `tls_client_auth` client (RFC 8705 §2.1): no secret; it sends its
    /// `client_id` and presents a certificate from the server's
    /// [`TestPki`] matching `subject`. Scopes `read write admin`, every
    /// grant type.
    ///
    /// ```
    /// use bearer_testkit::{ClientConfig, TestPki, TlsSubject};
    /// let pki = TestPki::new();
    /// let cert = pki.client_certificate("svc");
    /// let client = ClientConfig::tls_client_auth("svc", TlsSubject::Dn(cert.subject_dn().into()));
    /// assert_eq!(client.secret(), None);
    /// ```
    pub fn tls_client_auth(id: impl Into<String>, subject: TlsSubject) -> Self {
        ClientConfig::certificate_client(id, MtlsRegistration::Pki(subject))
    }

    /// A `self_signed_tls_client_auth` client (RFC 8705 §2.2): no secret;
    /// it sends its `client_id` and presents exactly `certificate`
    /// (recognised by its thumbprint, as a registered `x5c` would be).
    pub fn self_signed_tls_client_auth(
        id: impl Into<String>,
        certificate: &ClientCertificate,
    ) -> Self {
        let registered = vec![certificate.thumbprint()];
        ClientConfig::certificate_client(id, MtlsRegistration::SelfSigned(registered))
    }

    fn certificate_client(id: impl Into<String>, registration: MtlsRegistration) -> Self {
        ClientConfig {
            mtls: Some(registration),
            ..ClientConfig::public(id)
        }
    }
}

/// The certificate chain a TLS connection's client presented, put on each
/// of its requests.
#[derive(Clone)]
pub(crate) struct PeerCertificate {
    chain: Arc<[CertificateDer<'static>]>,
    thumbprint: Arc<str>,
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PeerCertificate")
            .field(&self.thumbprint)
            .finish()
    }
}

impl PeerCertificate {
    fn new(chain: Vec<CertificateDer<'static>>) -> Option<PeerCertificate> {
        let thumbprint = thumbprint(chain.first()?).into();
        Some(PeerCertificate {
            chain: chain.into(),
            thumbprint,
        })
    }
}

/// What the server keeps while mutual TLS is on.
#[derive(Debug)]
pub(crate) struct MtlsState {
    pki: TestPki,
    base_url: Url,
    /// Access token → the `x5t#S256` it is bound to.
    bindings: Mutex<HashMap<String, String>>,
}

/// Binds the kit's TLS listener; the caller serves it with [`serve`].
pub(crate) async fn bind(
    pki: &TestPki,
    required: bool,
    port: u16,
) -> io::Result<(TcpListener, TlsAcceptor, MtlsState)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let base_url = Url::parse(&format!("https://127.0.0.1:{port}/")).map_err(io::Error::other)?;
    let acceptor = TlsAcceptor::from(pki.server_config(required)?);
    let state = MtlsState {
        pki: pki.clone(),
        base_url,
        bindings: Mutex::default(),
    };
    Ok((listener, acceptor, state))
}

impl MtlsState {
    pub(crate) fn base_url(&self) -> &Url {
        &self.base_url
    }
}

/// Serves one TLS connection: the handshake, then HTTP with the client's
/// certificate (if any) on every request. A failed handshake is the
/// client's to see; the kit only logs it.
pub(crate) async fn serve_connection(
    stream: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    router: Router,
) {
    let _ = stream.set_nodelay(true);
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!(error = %e, "bearer-testkit: TLS handshake refused");
            return;
        }
    };
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    crate::server::serve_connection(tls, router, PeerCertificate::new(chain)).await;
}

/// Client authentication by certificate for a client registered with
/// one (RFC 8705 §2); the error is the token endpoint's answer.
pub(crate) fn authenticate(
    shared: &Shared,
    registration: &MtlsRegistration,
    peer: Option<&PeerCertificate>,
    secret_given: bool,
) -> Result<(), OAuthError> {
    if secret_given {
        return Err(OAuthError::invalid_request(
            "a certificate-authenticated client sent a client secret",
        ));
    }
    let (Some(mtls), Some(peer)) = (&shared.mtls, peer) else {
        return Err(OAuthError::invalid_client(
            "no client certificate was presented",
            false,
        ));
    };
    let matches = match registration {
        MtlsRegistration::SelfSigned(thumbprints) => {
            thumbprints.iter().any(|t| **t == *peer.thumbprint)
        }
        MtlsRegistration::Pki(subject) => {
            mtls.pki.issued(&peer.chain) && subject_matches(subject, &peer.chain[0])
        }
    };
    if matches {
        Ok(())
    } else {
        Err(OAuthError::invalid_client(
            "the client certificate is not the one registered for this client",
            false,
        ))
    }
}

fn subject_matches(subject: &TlsSubject, certificate: &CertificateDer<'_>) -> bool {
    let Ok(parsed) = webpki::EndEntityCert::try_from(certificate) else {
        return false;
    };
    match subject {
        TlsSubject::Dn(dn) => render_dn(parsed.subject()).is_some_and(|found| found == *dn),
        TlsSubject::SanDns(name) => ServerName::try_from(name.as_str())
            .is_ok_and(|name| parsed.verify_is_valid_for_subject_name(&name).is_ok()),
    }
}

/// Binds the access token of a token response to the certificate it was
/// issued over: recorded for the API's check and introspection, and as a
/// `cnf` claim in JWT-shaped tokens (which are re-signed with it).
pub(crate) fn bind_issued(
    shared: &Shared,
    body: &mut Map<String, Value>,
    peer: Option<&PeerCertificate>,
) {
    let (Some(mtls), Some(peer)) = (&shared.mtls, peer) else {
        return;
    };
    let Some(Value::String(issued)) = body.get("access_token") else {
        return;
    };
    let issued = issued.clone();
    let bound = with_cnf(shared, &issued, &peer.thumbprint).unwrap_or_else(|| issued.clone());
    if bound != issued {
        let mut store = lock(&shared.store);
        if let Some(record) = store.access.remove(&issued) {
            store.access.insert(bound.clone(), record);
        }
        body.insert("access_token".into(), bound.clone().into());
    }
    lock(&mtls.bindings).insert(bound, peer.thumbprint.to_string());
}

/// A JWT-shaped token re-encoded with `cnf.x5t#S256`; `None` for opaque ones.
fn with_cnf(shared: &Shared, token: &str, thumbprint: &str) -> Option<String> {
    let key = match shared.settings().access_token_format {
        AccessTokenFormat::Opaque => return None,
        AccessTokenFormat::JwtUnsigned => None,
        AccessTokenFormat::JwtHs256 { key } => Some(key),
    };
    let payload = token.split('.').nth(1)?;
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["cnf"] = cnf(thumbprint);
    Some(crate::jwt::encode(&claims, key.as_deref()))
}

fn cnf(thumbprint: &str) -> Value {
    json!({ "x5t#S256": thumbprint })
}

/// The `cnf` claim of a bound access token, for introspection (RFC 8705 §3.2).
pub(crate) fn confirmation(shared: &Shared, token: &str) -> Option<Value> {
    let mtls = shared.mtls.as_ref()?;
    lock(&mtls.bindings).get(token).map(|t| cnf(t))
}

/// A layer over every route: an API request carrying a certificate-bound
/// token must come over a connection presenting that certificate
/// (RFC 8705 §3); otherwise it is answered 401 `invalid_token`.
pub(crate) async fn check_binding(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(mtls) = &shared.mtls else {
        return next.run(request).await;
    };
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let crate::api::Presented::Token(token) = crate::api::bearer_token(request.headers()) else {
        return next.run(request).await;
    };
    let Some(bound_to) = lock(&mtls.bindings).get(&token).cloned() else {
        return next.run(request).await;
    };
    let presented = request.extensions().get::<PeerCertificate>();
    if presented.is_some_and(|p| *p.thumbprint == *bound_to) {
        return next.run(request).await;
    }
    shared.record_headers(Endpoint::Api, request.headers());
    shared.count(|c| c.api_requests += 1);
    let why = match presented {
        None => "the access token is bound to a client certificate and none was presented",
        Some(_) => "the access token is bound to another client certificate",
    };
    crate::api::unauthorized(&shared, Some(why))
}

/// Adds the RFC 8705 metadata to the discovery document when mutual TLS is on.
pub(crate) fn advertise(shared: &Shared, document: &mut Value) {
    let Some(mtls) = &shared.mtls else {
        return;
    };
    let url = |path: &str| crate::server::join(&mtls.base_url, path).to_string();
    document["mtls_endpoint_aliases"] = json!({
        "token_endpoint": url("/token"),
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "device_authorization_endpoint": url("/device_authorization"),
    });
    document["tls_client_certificate_bound_access_tokens"] = true.into();
    if let Some(Value::Array(methods)) = document.get_mut("token_endpoint_auth_methods_supported") {
        methods.push("tls_client_auth".into());
        methods.push("self_signed_tls_client_auth".into());
    }
}

/// The SHA-256 thumbprint of a certificate, base64url: `x5t#S256`.
pub(crate) fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// PEM armour around DER, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A DER name (the content of its `SEQUENCE`) as RFC 4514 writes it:
/// the last RDN first, `TYPE=value` joined by commas. Knows the types the
/// kit writes and a few common ones; `None` for anything else.
fn render_dn(mut der: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !der.is_empty() {
        let (set, rest) = read_tlv(der, 0x31)?;
        der = rest;
        let (attribute, _) = read_tlv(set, 0x30)?;
        let (oid, value) = read_tlv(attribute, 0x06)?;
        let name = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            _ => return None,
        };
        let tag = *value.first()?;
        // UTF8String, PrintableString, IA5String.
        if ![0x0c, 0x13, 0x16].contains(&tag) {
            return None;
        }
        let (text, _) = read_tlv(value, tag)?;
        let text = std::str::from_utf8(text).ok()?;
        parts.push(format!("{name}={}", escape_dn_value(text)));
    }
    parts.reverse();
    Some(parts.join(","))
}

/// RFC 4514 §2.4 escaping of the characters that would end a value.
fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One DER element with tag `tag`: its content and what follows it.
fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Asks every client for a certificate and accepts any well-formed one
/// whose key signs the handshake: the token endpoint decides whose it is.
#[derive(Debug)]
struct AnyClientCertificate {
    required: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        webpki::EndEntityCert::try_from(end_entity)
            .map(|_| ClientCertVerified::assertion())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_names_render_as_rfc_4514_strings() {
        let cert = ClientCertificate::self_signed("svc, one");
        let parsed = webpki::EndEntityCert::try_from(&cert.der).unwrap();
        assert_eq!(
            render_dn(parsed.subject()).as_deref(),
            Some("CN=svc\\, one,O=bearer-testkit")
        );
        assert_eq!(render_dn(&[0x31, 0x05, 0x30]), None);
    }

    #[test]
    fn chains_and_names_are_checked_against_the_registration() {
        let pki = TestPki::new();
        let issued = pki.client_certificate_for_dns("svc", "svc.clients.example");
        let own = ClientCertificate::self_signed("svc");
        assert!(pki.issued(std::slice::from_ref(&issued.der)));
        assert!(!pki.issued(std::slice::from_ref(&own.der)));
        assert!(!TestPki::new().issued(std::slice::from_ref(&issued.der)));
        let dns = TlsSubject::SanDns("svc.clients.example".into());
        assert!(subject_matches(&dns, &issued.der));
        assert!(!subject_matches(
            &TlsSubject::SanDns("other.example".into()),
            &issued.der
        ));
        let dn = TlsSubject::Dn("CN=svc,O=bearer-testkit".into());
        assert!(subject_matches(&dn, &issued.der));
        assert!(!subject_matches(
            &TlsSubject::Dn("CN=svc".into()),
            &issued.der
        ));
    }

    #[test]
    fn long_form_lengths_are_read_and_overruns_refused() {
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (content, rest) = read_tlv(&long, 0x04).unwrap();
        assert_eq!((content.len(), rest.len()), (0x80, 0));
        assert_eq!(read_tlv(&[0x04, 0x85, 1, 1, 1, 1, 1], 0x04), None);
        assert_eq!(read_tlv(&[0x04, 0x02, 1], 0x04), None);
    }
}
