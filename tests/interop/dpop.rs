//! DPoP against oidc-provider with nonces required: a client-credentials
//! token bound to our key, used on the kit's API, which checks the proof
//! and the binding (`cnf.jkt` from the provider's introspection).

use reqwest_bearer::oauth2::{ClientCredentials, discover};
use reqwest_bearer::{BearerError, TokenError};

use crate::provider::{DPOP_ID, DPOP_SECRET, Options, Provider};
use crate::setup::{client, introspect, protected_api, short_lived_cache};

const CLIENT_CREDENTIALS: &str = "client_credentials";

#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_is_used_on_an_api_that_checks_the_binding() {
    let provider = Provider::start(Options {
        access_ttl_secs: 60,
        ..Options::default()
    })
    .await;
    let api = protected_api(&provider).await;
    let metadata = discover(provider.issuer()).await.expect("discovery");
    assert!(
        metadata
            .dpop_signing_alg_values_supported
            .iter()
            .any(|a| a == "ES256")
    );
    let key = metadata
        .dpop_key()
        .expect("the provider takes ES256 proofs");
    let source = ClientCredentials::new(metadata.token_endpoint.clone(), DPOP_ID, DPOP_SECRET)
        .scope("api:read")
        .dpop(key.clone());
    let (auth, client) = client(&api, short_lived_cache(source).build());

    for _ in 0..2 {
        let response = client.get(api.api_url("/api/echo")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let echo: serde_json::Value = response.json().await.unwrap();
        let authorization = echo["headers"]["authorization"].as_str().unwrap();
        let token = authorization
            .strip_prefix("DPoP ")
            .expect("the DPoP scheme");
        let introspected = introspect(&provider, token).await;
        assert_eq!(introspected["active"], true);
        assert_eq!(
            introspected["cnf"]["jkt"],
            key.thumbprint(),
            "bound to our key"
        );
    }
    // The provider asked for its nonce once; one resend got the token.
    assert_eq!(provider.issued(DPOP_ID, CLIENT_CREDENTIALS).await, 1);
    assert_eq!(provider.refused(DPOP_ID).await, 1, "use_dpop_nonce, once");
    assert_eq!(auth.cache().stats().fetches, 1);
    let counts = api.control().dpop_counts();
    assert_eq!(counts.proofs_accepted, 2, "one proof per API request");
    assert_eq!(counts.binding_mismatches + counts.proofs_refused, 0);
}

/// The same client without a key: the provider requires DPoP-bound tokens
/// for it, and says so in a typed error.
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js 20+ and npm on PATH (https://nodejs.org)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_must_use_dpop_is_refused_without_a_key() {
    let provider = Provider::start(Options::default()).await;
    let api = protected_api(&provider).await;
    let source = ClientCredentials::new(
        provider.issuer().join("/token").unwrap(),
        DPOP_ID,
        DPOP_SECRET,
    )
    .scope("api:read");
    let cache = short_lived_cache(source)
        .max_wait(std::time::Duration::ZERO)
        .build();
    let (_, client) = client(&api, cache);
    let error = client
        .get(api.api_url("/api/echo"))
        .send()
        .await
        .unwrap_err();
    let error = BearerError::find(&error).expect("a BearerError");
    assert!(
        matches!(error.token_error(), TokenError::OAuth { .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert_eq!(api.control().counters().api_requests, 0);
}
