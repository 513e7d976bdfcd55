//! Certificate-bound tokens (RFC 8705) through the middleware: the token
//! passes through unchanged, and the API accepts it only from a client
//! presenting the certificate it was issued over.

use bearer_testkit::{ClientCertificate, ClientConfig, TestPki, TestServer, TlsSubject};
use reqwest_bearer::oauth2::{ClientAuth, ClientCredentials, OAuthClient};
use reqwest_bearer::{BearerAuth, TokenCache};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

struct Setup {
    server: TestServer,
    pki: TestPki,
    cert: ClientCertificate,
}

async fn setup() -> Setup {
    let pki = TestPki::new();
    let cert = pki.client_certificate("svc");
    let server = TestServer::builder()
        .mutual_tls(&pki)
        .add_client(ClientConfig::tls_client_auth(
            "svc",
            TlsSubject::Dn(cert.subject_dn().to_owned()),
        ))
        .start()
        .await;
    Setup { server, pki, cert }
}

/// The README's shape: the token source and the API client built from the
/// same identity; `api_identity` is the one the API client presents.
fn client(s: &Setup, api_identity: &ClientCertificate) -> (BearerAuth, ClientWithMiddleware) {
    let source = ClientCredentials::from_client(
        OAuthClient::new(s.server.mtls_url("/token"), "svc")
            .auth_method(ClientAuth::TlsClientAuth)
            .tls_identity(s.cert.identity())
            .tls_root_certificate(s.pki.root_certificate())
            .retries(0),
    );
    let auth = BearerAuth::builder(TokenCache::builder(source).build())
        .allow_origin(s.server.mtls_url("/"))
        .build()
        .unwrap();
    let http = s
        .pki
        .client_builder()
        .identity(api_identity.identity())
        .redirect(BearerAuth::redirect_policy())
        .build()
        .unwrap();
    (auth.clone(), ClientBuilder::new(http).with(auth).build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_passes_through_with_the_same_identity() {
    let s = setup().await;
    let (auth, client) = client(&s, &s.cert);
    for _ in 0..3 {
        let response = client
            .get(s.server.mtls_url("/api/echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(auth.cache().stats().fetches, 1);
    assert_eq!(s.server.control().counters().api_unauthorized, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_identity_at_the_api_is_refused_after_one_refetch() {
    let s = setup().await;
    let stranger = s.pki.client_certificate("stranger");
    let (auth, client) = client(&s, &stranger);
    let response = client
        .get(s.server.mtls_url("/api/echo"))
        .send()
        .await
        .unwrap();
    // The 401 policy takes it for a stale token once, then hands the
    // refusal over: typed through the challenge it carries.
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    let challenges = reqwest_bearer::parse_www_authenticate(challenge).unwrap();
    assert_eq!(
        challenges[0].bearer_error(),
        Some(reqwest_bearer::BearerErrorCode::InvalidToken)
    );
    assert_eq!(
        challenges[0].param("error_description"),
        Some("the access token is bound to another client certificate")
    );
    assert_eq!(auth.cache().stats().fetches, 2);
    assert_eq!(s.server.control().counters().api_unauthorized, 2);
}
