//! Every public error reads once when printed with its chain: each
//! `Display` says its own part, and the cause comes from `source()`.

use std::error::Error;
use std::time::Duration;

use bearer_testkit::TestServer;
use reqwest_bearer::cache::{Cause, StoreError};
use reqwest_bearer::jose::{self, Algorithm, JoseError, SigningKey};
use reqwest_bearer::oauth2::{
    ClientAuth, ClientCredentials, DiscoveryError, DpopError, FlowError, OAuthClient, discover_with,
};
use reqwest_bearer::{
    BearerAuth, BearerError, BuildError, OAuthError, RedirectRefused, StaticSource, TokenCache,
    TokenError, TokenKey, parse_www_authenticate,
};

/// The messages of `error` and its sources, outermost first.
fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        messages.push(e.to_string());
        next = e.source();
    }
    messages
}

/// Asserts that no message in the chain repeats the one after it.
fn reads_once(error: &(dyn Error + 'static)) {
    let messages = chain(error);
    for pair in messages.windows(2) {
        assert!(!pair[1].is_empty(), "an empty source in {messages:?}");
        assert!(
            !pair[0].contains(&pair[1]),
            "{:?} repeats its source {:?}",
            pair[0],
            pair[1]
        );
    }
}

/// A transport error as the token sources produce it: a refused connection.
async fn transport_error() -> TokenError {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", closed.local_addr().unwrap());
    drop(closed);
    let source = ClientCredentials::new(url.parse().unwrap(), "c", "s").retries(0);
    let err = TokenCache::builder(source)
        .build()
        .get(&TokenKey::new())
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::Transport(_)), "{err:?}");
    err
}

fn token_errors(transport: TokenError) -> Vec<TokenError> {
    let oauth = OAuthError {
        code: "invalid_client".into(),
        description: Some("bad secret".into()),
        uri: None,
        status: 401,
    };
    vec![
        TokenError::OAuth {
            error: oauth,
            retry_after: Some(Duration::from_secs(3)),
        },
        TokenError::Http {
            status: 502,
            excerpt: "<html>Bad Gateway</html>".into(),
            retry_after: None,
        },
        TokenError::Malformed {
            status: 200,
            reason: "the body is not a JSON object".into(),
            excerpt: "<html>".into(),
        },
        TokenError::UnsupportedTokenType("mac".into()),
        TokenError::InvalidTokenValue,
        TokenError::ProofFailed(Cause::new(JoseError::NoBackend)),
        TokenError::BodyTooLarge { limit: 65536 },
        TokenError::Timeout(Duration::from_secs(10)),
        transport,
        TokenError::SourcePanicked,
        TokenError::Interrupted,
        TokenError::AlreadyExpired,
        TokenError::ReauthenticationRequired("the refresh token was refused".into()),
        TokenError::source("custom failure", false),
        FlowError::StateMismatch.into(),
        FlowError::AuthorizationFailed {
            code: "access_denied".into(),
            description: Some("the user said no".into()),
        }
        .into(),
        TokenError::Source {
            message: "cannot read token file /run/token".into(),
            transient: true,
            cause: Some(Cause::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "No such file or directory",
            ))),
        },
    ]
}

#[tokio::test]
async fn every_error_chain_reads_once() {
    let transport = transport_error().await;
    let mut checked = 0;
    for token_error in token_errors(transport.clone()) {
        reads_once(&token_error);
        reads_once(&BearerError::NoToken(token_error.clone()));
        reads_once(&BearerError::RefreshFailed(token_error.clone()));
        reads_once(&DiscoveryError::Fetch(token_error));
        checked += 4;
    }
    // The transport error's chain goes on into reqwest's and the OS's.
    assert!(chain(&BearerError::NoToken(transport)).len() >= 3);

    let server = TestServer::start().await;
    let http = bearer_testkit::client_builder().build().unwrap();
    let issuer = server.other_origin_url("/");
    let discovery = discover_with(&http, &issuer).await.unwrap_err();
    let others: Vec<Box<dyn Error + 'static>> = vec![
        Box::new(discovery),
        Box::new(DiscoveryError::Malformed("missing field `issuer`".into())),
        Box::new(DiscoveryError::MissingEndpoint(
            "device_authorization_endpoint",
        )),
        Box::new(FlowError::CallbackTimeout(Duration::from_secs(300))),
        Box::new(StoreError::new("redis unavailable")),
        Box::new(StoreError::with_cause(
            "unreadable stored token",
            reqwest_bearer_redis_value_error(),
        )),
        Box::new(RedirectRefused::TooMany { limit: 10 }),
        Box::new(parse_www_authenticate("Bearer realm=\"x").unwrap_err()),
        Box::new(
            BearerAuth::builder_for_source(StaticSource::new("t"))
                .build()
                .unwrap_err(),
        ),
        Box::new(BuildError::NoAllowedOrigin),
        Box::new(DpopError::NotAsymmetric),
        Box::new(DpopError::AlgorithmNotAccepted {
            alg: Algorithm::ES256,
            offered: "RS256 PS256".into(),
        }),
        Box::new(DpopError::Key(JoseError::Generate(Algorithm::ES256))),
        Box::new(DiscoveryError::AuthMethodNotSupported {
            method: "private_key_jwt",
        }),
        Box::new(DiscoveryError::AssertionAlgorithmNotSupported {
            algorithm: "EdDSA".into(),
        }),
        Box::new(client_secret_jwt_without_a_secret().await),
    ];
    let jose: Vec<JoseError> = vec![
        SigningKey::from_pem(Algorithm::RS256, b"not a key").unwrap_err(),
        SigningKey::from_jwk(r#"{"kty":"EC","crv":"P-256"}"#).unwrap_err(),
        SigningKey::from_pem(Algorithm::HS256, b"x").unwrap_err(),
        SigningKey::generate(Algorithm::RS256).unwrap_err(),
        JoseError::NoBackend,
        JoseError::Generate(Algorithm::ES256),
        jose::verify("a.b", &jose::VerifyingKey::hmac(b"k"), &[Algorithm::HS256]).unwrap_err(),
        JoseError::AlgorithmNotAllowed("none".into()),
        JoseError::BadSignature,
    ];
    let others: Vec<Box<dyn Error + 'static>> = others
        .into_iter()
        .chain(jose.into_iter().map(|e| Box::new(e) as Box<dyn Error>))
        .collect();
    for error in &others {
        reads_once(error.as_ref());
        checked += 1;
    }
    assert_eq!(checked, 17 * 4 + 16 + 9);
}

/// `client_secret_jwt` configured without the secret it signs with.
async fn client_secret_jwt_without_a_secret() -> TokenError {
    let source = ClientCredentials::from_client(
        OAuthClient::new("http://127.0.0.1:9/token".parse().unwrap(), "c")
            .auth_method(ClientAuth::ClientSecretJwt),
    );
    let err = TokenCache::builder(source)
        .build()
        .get(&TokenKey::new())
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::Source { .. }), "{err:?}");
    err
}

fn reqwest_bearer_redis_value_error() -> bearer_redis::ValueError {
    bearer_redis::ValueError::Truncated
}

/// The README's example of a chain, printed the way a reporter walks it.
#[test]
fn a_chain_prints_each_part_once() {
    let err = BearerError::NoToken(TokenError::UnsupportedTokenType("mac".into()));
    assert_eq!(
        chain(&err).join(": "),
        "no bearer token could be obtained; the request was not sent: \
         unsupported token type \"mac\": only Bearer, and DPoP with a DPoP key, are supported"
    );
}
