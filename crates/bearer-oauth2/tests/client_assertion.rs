//! Client authentication by JWT assertion (`private_key_jwt`,
//! `client_secret_jwt`) for every grant, against the test kit, which checks
//! each assertion as a strict server does.

mod common;

#[path = "../../bearer-jose/tests/fixtures/mod.rs"]
mod fixtures;

use std::time::Duration;

use bearer_cache::{TokenCache, TokenError, TokenKey};
use bearer_jose::{Algorithm, SigningKey};
use bearer_oauth2::{
    AssertionAudience, AuthorizationCode, ClientAuth, ClientCredentials, DeviceCode,
    DiscoveryError, OAuthClient, PasswordGrant, RefreshTokenGrant, UserSignIn,
};
use bearer_testkit::{ClientAuthMethod, ClientConfig, TestServer, TokenRequestRecord};
use common::{RecordingClock, assert_hidden, fast_retries, fetch};
use serde_json::Value;
use url::Url;

const CLIENT: &str = "jwt-client";
const SECRET: &str = "a client secret long enough for HS256 keys!";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The two assertion kinds: how the server registers the client and how
/// the client authenticates.
#[derive(Clone, Copy, Debug)]
enum Kind {
    PrivateKey,
    Secret,
}

fn es256_key() -> SigningKey {
    SigningKey::from_pem(Algorithm::ES256, fixtures::P256_PKCS8.as_bytes())
        .unwrap()
        .with_kid("es-1")
}

async fn server(kind: Kind) -> TestServer {
    let client = match kind {
        Kind::PrivateKey => {
            ClientConfig::private_key_jwt(CLIENT, es256_key().public_jwk().unwrap())
        }
        Kind::Secret => ClientConfig::client_secret_jwt(CLIENT, SECRET),
    };
    TestServer::builder()
        .primary_client(client)
        .device_poll_interval(Duration::from_secs(5))
        .start()
        .await
}

fn client(server: &TestServer, kind: Kind) -> OAuthClient {
    let client = OAuthClient::new(server.token_url(), CLIENT).retry_backoff(fast_retries());
    match kind {
        Kind::PrivateKey => client.auth_method(ClientAuth::PrivateKeyJwt(es256_key())),
        Kind::Secret => client
            .client_secret(SECRET)
            .auth_method(ClientAuth::ClientSecretJwt),
    }
}

fn claims_of(jws: &str) -> (Value, Value) {
    use base64::Engine as _;
    let part = |i: usize| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jws.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    (part(0), part(1))
}

/// The last token request carried an assertion of `kind` and no secret,
/// with the RFC 7523 claims; returns its `jti`.
fn assert_assertion(record: &TokenRequestRecord, kind: Kind, audience: &str) -> String {
    let method = match kind {
        Kind::PrivateKey => ClientAuthMethod::PrivateKeyJwt,
        Kind::Secret => ClientAuthMethod::ClientSecretJwt,
    };
    assert_eq!(record.client_auth, method);
    assert_eq!(record.param("client_assertion_type"), Some(JWT_BEARER));
    assert_eq!(record.param("client_secret"), None);
    let (header, claims) = claims_of(record.param("client_assertion").unwrap());
    match kind {
        Kind::PrivateKey => assert_eq!(
            (&header["alg"], &header["kid"]),
            (&"ES256".into(), &"es-1".into())
        ),
        Kind::Secret => assert_eq!(header["alg"], "HS256"),
    }
    assert_eq!(
        (&claims["iss"], &claims["sub"]),
        (&CLIENT.into(), &CLIENT.into())
    );
    assert_eq!(claims["aud"], audience);
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 60);
    claims["jti"].as_str().unwrap().to_owned()
}

/// Follows the authorize URL like a browser (the kit approves at once).
fn browser() -> impl Fn(&Url) + Send + Sync + 'static {
    |url: &Url| {
        let url = url.clone();
        tokio::spawn(async move {
            bearer_testkit::client_builder()
                .build()
                .unwrap()
                .get(url)
                .send()
                .await
        });
    }
}

#[tokio::test]
async fn every_grant_authenticates_with_each_assertion_kind() {
    for kind in [Kind::PrivateKey, Kind::Secret] {
        let server = server(kind).await;
        let audience = server.token_url().to_string();
        let last = || server.control().last_token_request().unwrap();
        let mut jtis = Vec::new();

        // Client credentials.
        let source = ClientCredentials::from_client(client(&server, kind)).scope("read");
        fetch(&source, &TokenKey::default(), None).await.unwrap();
        jtis.push(assert_assertion(&last(), kind, &audience));

        // Password, then refresh through the same source.
        let source =
            PasswordGrant::from_client(client(&server, kind), server.username(), server.password());
        let cache = TokenCache::builder(source).build();
        let first = cache.get(&TokenKey::default()).await.unwrap();
        jtis.push(assert_assertion(&last(), kind, &audience));
        cache.refresh(&TokenKey::default()).await.unwrap();
        assert_eq!(last().grant_type(), Some("refresh_token"));
        jtis.push(assert_assertion(&last(), kind, &audience));

        // A refresh token on its own.
        let refresh = first.token().refresh_token().unwrap().clone();
        let source = RefreshTokenGrant::from_client(client(&server, kind), refresh);
        fetch(&source, &TokenKey::default(), None).await.unwrap();
        jtis.push(assert_assertion(&last(), kind, &audience));

        // Authorization code with PKCE on a loopback redirect.
        let source = AuthorizationCode::from_client(
            client(&server, kind),
            server.authorize_url(),
            browser(),
        )
        .scope("read");
        fetch(&source, &TokenKey::default(), None).await.unwrap();
        assert_eq!(last().grant_type(), Some("authorization_code"));
        jtis.push(assert_assertion(&last(), kind, &audience));

        // The same exchange driven by a web app.
        let redirect: Url = common::REDIRECT.parse().unwrap();
        let sign_in =
            UserSignIn::from_client(client(&server, kind), server.authorize_url(), redirect)
                .scope("read");
        let (url, pending) = sign_in.start().unwrap().into_parts();
        let callback = common::approve(&url).await;
        sign_in.finish("alice", &pending, &callback).await.unwrap();
        jtis.push(assert_assertion(&last(), kind, &audience));

        // Device authorization: the assertion goes to both endpoints.
        let control = server.control();
        let source = DeviceCode::from_client(
            client(&server, kind),
            server.device_authorization_url(),
            move |prompt| assert!(control.approve_device(&prompt.user_code)),
        )
        .scope("read")
        .clock(RecordingClock::default());
        fetch(&source, &TokenKey::default(), None).await.unwrap();
        assert_eq!(
            last().grant_type(),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        jtis.push(assert_assertion(&last(), kind, &audience));

        let counters = server.control().counters();
        assert_eq!(counters.assertions_rejected, 0, "{kind:?}");
        let by_kind = match kind {
            Kind::PrivateKey => counters.client_auth.private_key_jwt,
            Kind::Secret => counters.client_auth.client_secret_jwt,
        };
        assert_eq!(
            by_kind, counters.token_requests,
            "{kind:?}: every token request"
        );
        jtis.sort();
        jtis.dedup();
        assert_eq!(jtis.len(), 7, "{kind:?}: a fresh jti each time");
    }
}

#[tokio::test]
async fn every_key_algorithm_is_accepted() {
    for (alg, pem) in [
        (Algorithm::RS256, fixtures::RSA_PKCS8),
        (Algorithm::PS256, fixtures::RSA_PKCS8),
        (Algorithm::ES256, fixtures::P256_PKCS8),
        (Algorithm::EdDSA, fixtures::ED25519_PKCS8),
    ] {
        let key = SigningKey::from_pem(alg, pem.as_bytes()).unwrap();
        let server = TestServer::builder()
            .primary_client(ClientConfig::private_key_jwt(
                CLIENT,
                key.public_jwk().unwrap(),
            ))
            .start()
            .await;
        let source = ClientCredentials::from_client(
            OAuthClient::new(server.token_url(), CLIENT)
                .auth_method(ClientAuth::PrivateKeyJwt(key)),
        );
        fetch(&source, &TokenKey::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let record = server.control().last_token_request().unwrap();
        let (header, _) = claims_of(record.param("client_assertion").unwrap());
        assert_eq!(header["alg"], format!("{alg:?}"));
        assert!(header.get("kid").is_none(), "no kid unless the key has one");
    }
}

#[tokio::test]
async fn the_audience_can_be_the_issuer() {
    let server = server(Kind::PrivateKey).await;
    let issuer = server.issuer().to_string();
    let source = ClientCredentials::from_client(client(&server, Kind::PrivateKey))
        .assertion_audience(AssertionAudience::Issuer(issuer.clone()));
    fetch(&source, &TokenKey::default(), None).await.unwrap();
    assert_assertion(
        &server.control().last_token_request().unwrap(),
        Kind::PrivateKey,
        &issuer,
    );

    // An audience the server does not answer to is refused, permanently.
    let source = ClientCredentials::from_client(client(&server, Kind::PrivateKey))
        .assertion_audience(AssertionAudience::Issuer(
            "https://elsewhere.example".into(),
        ));
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert_invalid_client(&err);
}

fn assert_invalid_client(err: &TokenError) {
    match err {
        TokenError::OAuth { error, .. } => assert_eq!(error.code, "invalid_client", "{err}"),
        other => panic!("expected invalid_client, got {other:?}"),
    }
    assert!(!err.is_transient(), "{err}");
}

#[tokio::test]
async fn a_refused_assertion_is_a_permanent_invalid_client_and_the_next_works() {
    for kind in [Kind::PrivateKey, Kind::Secret] {
        let server = server(kind).await;
        let source = ClientCredentials::from_client(client(&server, kind));
        server.control().reject_next_client_assertions(1);
        let err = fetch(&source, &TokenKey::default(), None)
            .await
            .unwrap_err();
        assert_invalid_client(&err);
        // Not retried: a permanent refusal costs one request.
        assert_eq!(server.control().counters().token_requests, 1);
        assert_eq!(server.control().counters().assertions_rejected, 1);
        fetch(&source, &TokenKey::default(), None).await.unwrap();
    }
}

#[tokio::test]
async fn an_unregistered_key_or_a_disallowed_algorithm_is_refused() {
    let server = server(Kind::PrivateKey).await;
    let stranger = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("es-1");
    let source = ClientCredentials::from_client(
        OAuthClient::new(server.token_url(), CLIENT)
            .auth_method(ClientAuth::PrivateKeyJwt(stranger)),
    );
    assert_invalid_client(
        &fetch(&source, &TokenKey::default(), None)
            .await
            .unwrap_err(),
    );

    let key = SigningKey::from_pem(Algorithm::ES256, fixtures::P256_PKCS8.as_bytes()).unwrap();
    let server = TestServer::builder()
        .primary_client(
            ClientConfig::private_key_jwt(CLIENT, key.public_jwk().unwrap())
                .assertion_algorithms(&[Algorithm::RS256]),
        )
        .start()
        .await;
    let source = ClientCredentials::from_client(
        OAuthClient::new(server.token_url(), CLIENT).auth_method(ClientAuth::PrivateKeyJwt(key)),
    );
    assert_invalid_client(
        &fetch(&source, &TokenKey::default(), None)
            .await
            .unwrap_err(),
    );

    // client_secret_jwt keyed with the wrong secret.
    let server = server_with(ClientConfig::client_secret_jwt(CLIENT, SECRET)).await;
    let source = ClientCredentials::from_client(
        OAuthClient::new(server.token_url(), CLIENT)
            .client_secret("not the registered secret, but long enough")
            .auth_method(ClientAuth::ClientSecretJwt),
    );
    assert_invalid_client(
        &fetch(&source, &TokenKey::default(), None)
            .await
            .unwrap_err(),
    );
}

async fn server_with(client: ClientConfig) -> TestServer {
    TestServer::builder().primary_client(client).start().await
}

/// A failure of the source itself (nothing sent), not worth retrying.
fn assert_permanent_source_error(err: &TokenError) {
    assert!(
        matches!(
            err,
            TokenError::Source {
                transient: false,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_secret_jwt_without_a_secret_fails_before_sending() {
    let server = server(Kind::Secret).await;
    let source = ClientCredentials::from_client(
        OAuthClient::new(server.token_url(), CLIENT).auth_method(ClientAuth::ClientSecretJwt),
    );
    let err = fetch(&source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    assert_permanent_source_error(&err);
    assert!(
        err.to_string()
            .contains("client_secret_jwt needs a client secret"),
        "{err}"
    );
    assert_eq!(server.control().counters().token_requests, 0);
}

#[tokio::test]
async fn a_key_parameter_may_not_override_the_assertion() {
    let server = server(Kind::PrivateKey).await;
    let source = ClientCredentials::from_client(client(&server, Kind::PrivateKey));
    for name in ["client_assertion", "client_assertion_type"] {
        let key = TokenKey::new().param(name, "forged");
        assert_permanent_source_error(&fetch(&source, &key, None).await.unwrap_err());
    }
    assert_eq!(server.control().counters().token_requests, 0);
}

#[tokio::test]
async fn discovery_offers_and_checks_the_assertion_methods() {
    let server = server(Kind::PrivateKey).await;
    let provider = bearer_oauth2::discover(&server.issuer()).await.unwrap();
    assert!(
        provider
            .token_endpoint_auth_methods_supported
            .iter()
            .any(|m| m == "private_key_jwt")
    );
    let client = provider
        .client_with_auth(CLIENT, ClientAuth::PrivateKeyJwt(es256_key()))
        .unwrap();
    fetch(
        &ClientCredentials::from_client(client),
        &TokenKey::default(),
        None,
    )
    .await
    .unwrap();

    let mut narrow = provider.clone();
    narrow.token_endpoint_auth_signing_alg_values_supported = vec!["RS256".into()];
    let err = narrow
        .client_with_auth(CLIENT, ClientAuth::PrivateKeyJwt(es256_key()))
        .unwrap_err();
    assert!(
        matches!(err, DiscoveryError::AssertionAlgorithmNotSupported { ref algorithm } if algorithm == "ES256")
    );
    narrow.token_endpoint_auth_methods_supported = vec!["client_secret_basic".into()];
    let err = narrow
        .client_with_auth(CLIENT, ClientAuth::ClientSecretJwt)
        .unwrap_err();
    assert!(matches!(
        err,
        DiscoveryError::AuthMethodNotSupported {
            method: "client_secret_jwt"
        }
    ));
}

#[tokio::test]
async fn keys_and_secrets_stay_out_of_debug_and_errors() {
    let key = SigningKey::from_jwk(fixtures::RSA_JWK).unwrap();
    let jwk: Value = serde_json::from_str(fixtures::RSA_JWK).unwrap();
    let server = server(Kind::Secret).await;
    let pk_source = ClientCredentials::from_client(
        OAuthClient::new(server.token_url(), CLIENT).auth_method(ClientAuth::PrivateKeyJwt(key)),
    );
    let secret_source = ClientCredentials::from_client(client(&server, Kind::Secret));
    let mut shown = format!("{pk_source:?} {secret_source:?} {:?}", pk_source.client());
    // The RSA client is not registered: the refusal's text is checked too.
    let err = fetch(&pk_source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    shown.push_str(&format!("{err} {err:?}"));
    server.control().reject_next_client_assertions(1);
    let err = fetch(&secret_source, &TokenKey::default(), None)
        .await
        .unwrap_err();
    shown.push_str(&format!("{err} {err:?}"));
    let assertion = server
        .control()
        .last_token_request()
        .unwrap()
        .param("client_assertion")
        .unwrap()
        .to_owned();
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        assert_hidden(&jwk[member].as_str().unwrap()[..16], &shown);
    }
    assert_hidden(SECRET, &shown);
    assert_hidden(&assertion, &shown);
    assert_hidden(assertion.rsplit('.').next().unwrap(), &shown);
}
