//! The kit checks client assertions as a strict server does: each rule
//! has an assertion that breaks only it, sent over HTTP.

mod common;

use std::time::Duration;

use bearer_cache::{Clock, ManualClock};
use bearer_jose::{Algorithm, SigningKey};
use bearer_testkit::{ClientConfig, TestServer, basic_authorization};
use common::json;
use serde_json::{Map, Value, json};

const CLIENT: &str = "jwt-client";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A token request with no credentials but the form's.
async fn bare_post(server: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    let http = bearer_testkit::client_builder().build().unwrap();
    http.post(server.token_url())
        .form(form)
        .send()
        .await
        .unwrap()
}

struct Kit {
    server: TestServer,
    clock: ManualClock,
    key: SigningKey,
}

async fn kit() -> Kit {
    let clock = ManualClock::new();
    let key = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("k1");
    let server = TestServer::builder()
        .clock(clock.clone())
        .primary_client(ClientConfig::private_key_jwt(
            CLIENT,
            key.public_jwk().unwrap(),
        ))
        .start()
        .await;
    Kit { server, clock, key }
}

impl Kit {
    fn now(&self) -> u64 {
        bearer_jose::numeric_date(self.clock.system_now())
    }

    /// Valid claims; tests change one member.
    fn claims(&self) -> Map<String, Value> {
        let now = self.now();
        let Value::Object(claims) = json!({
            "iss": CLIENT, "sub": CLIENT, "aud": self.server.token_url().as_str(),
            "iat": now, "exp": now + 60, "jti": bearer_jose::new_jti(),
        }) else {
            unreachable!()
        };
        claims
    }

    fn sign(&self, key: &SigningKey, claims: &Map<String, Value>) -> String {
        key.sign(&Map::new(), claims).unwrap()
    }

    /// Posts a client credentials request with `assertion`; the status and
    /// the `error` / `error_description`.
    async fn present(&self, assertion: &str) -> (u16, String, String) {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ];
        let (status, body) = json(bare_post(&self.server, &form).await).await;
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        (status.as_u16(), text("error"), text("error_description"))
    }

    async fn refused_because(&self, assertion: &str, why: &str) {
        let (status, error, description) = self.present(assertion).await;
        assert_eq!(
            (status, error.as_str()),
            (400, "invalid_client"),
            "{description}"
        );
        assert!(
            description.contains(why),
            "{description:?} should say {why:?}"
        );
    }
}

#[tokio::test]
async fn a_valid_assertion_gets_a_token_and_its_replay_is_refused() {
    let kit = kit().await;
    let assertion = kit.sign(&kit.key, &kit.claims());
    let (status, error, description) = kit.present(&assertion).await;
    assert_eq!(status, 200, "{error}: {description}");
    kit.refused_because(&assertion, "already used").await;
    let counters = kit.server.control().counters();
    assert_eq!(
        (counters.assertion_replays, counters.assertions_rejected),
        (1, 1)
    );
    assert_eq!(counters.client_auth.private_key_jwt, 2);
    // A new assertion works again.
    let again = kit.sign(&kit.key, &kit.claims());
    assert_eq!(kit.present(&again).await.0, 200);
}

#[tokio::test]
async fn each_claim_rule_is_enforced() {
    let kit = kit().await;
    let with = |name: &str, value: Value| {
        let mut claims = kit.claims();
        claims.insert(name.into(), value);
        kit.sign(&kit.key, &claims)
    };
    let now = kit.now();
    kit.refused_because(&with("iss", "someone".into()), "iss and sub")
        .await;
    kit.refused_because(&with("aud", "https://elsewhere/token".into()), "aud")
        .await;
    kit.refused_because(&with("exp", (now - 1).into()), "expired")
        .await;
    kit.refused_because(&with("iat", (now + 31).into()), "in the future")
        .await;
    kit.refused_because(&with("exp", (now + 301).into()), "too long")
        .await;
    let mut no_jti = kit.claims();
    no_jti.remove("jti");
    kit.refused_because(&kit.sign(&kit.key, &no_jti), "no jti")
        .await;
    // aud as an array naming the issuer is fine.
    let issuer = kit.server.issuer().to_string();
    assert_eq!(kit.present(&with("aud", json!(["x", issuer]))).await.0, 200);

    // An assertion signed for now expires as the server's clock moves on.
    let assertion = kit.sign(&kit.key, &kit.claims());
    kit.clock.advance(Duration::from_secs(61));
    kit.refused_because(&assertion, "expired").await;
}

#[tokio::test]
async fn signature_key_and_algorithm_rules_are_enforced() {
    let kit = kit().await;
    let stranger = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("k1");
    kit.refused_because(&kit.sign(&stranger, &kit.claims()), "signature")
        .await;
    let unknown_kid = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("k2");
    kit.refused_because(&kit.sign(&unknown_kid, &kit.claims()), "kid")
        .await;
    // HS256 keyed with the public key's text: the classic algorithm confusion.
    let confused = SigningKey::hmac(kit.key.public_jwk().unwrap().to_string().as_bytes());
    kit.refused_because(&kit.sign(&confused, &kit.claims()), "not allowed")
        .await;
    // A rotated-in second key verifies too.
    let next = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("k2");
    let server = TestServer::builder()
        .clock(kit.clock.clone())
        .primary_client(
            ClientConfig::private_key_jwt(CLIENT, kit.key.public_jwk().unwrap())
                .add_jwk(next.public_jwk().unwrap()),
        )
        .start()
        .await;
    let rotated = Kit {
        server,
        clock: kit.clock.clone(),
        key: next.clone(),
    };
    assert_eq!(
        rotated
            .present(&rotated.sign(&next, &rotated.claims()))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn presentation_rules_are_enforced() {
    let kit = kit().await;
    let assertion = kit.sign(&kit.key, &kit.claims());
    let post = |form: Vec<(&'static str, String)>, basic: bool| {
        let http = bearer_testkit::client_builder().build().unwrap();
        let mut request = http.post(kit.server.token_url()).form(&form);
        if basic {
            request = request.header("authorization", basic_authorization(CLIENT, "x"));
        }
        async move { json(request.send().await.unwrap()).await }
    };
    let base = || {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_assertion", assertion.clone()),
        ]
    };
    // A wrong assertion type.
    let mut form = base();
    form.push(("client_assertion_type", "urn:other".into()));
    let (_, body) = post(form, false).await;
    assert_eq!(body["error"], "invalid_client");
    // Mixed with Basic, or with a client_secret, or a client_id that is not the sub.
    let mut form = base();
    form.push(("client_assertion_type", JWT_BEARER.into()));
    assert_eq!(post(form.clone(), true).await.1["error"], "invalid_request");
    let mut with_secret = form.clone();
    with_secret.push(("client_secret", "x".into()));
    assert_eq!(post(with_secret, false).await.1["error"], "invalid_request");
    let mut other_id = form.clone();
    other_id.push(("client_id", "someone-else".into()));
    assert_eq!(post(other_id, false).await.1["error"], "invalid_request");
    // A client registered for assertions may not use a secret instead.
    let basic = [("grant_type", "client_credentials")];
    let http = bearer_testkit::client_builder().build().unwrap();
    let response = http
        .post(kit.server.token_url())
        .header("authorization", basic_authorization(CLIENT, ""))
        .form(&basic)
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Nothing was spent: the assertion still works.
    assert_eq!(kit.present(&assertion).await.0, 200);
}

#[tokio::test]
async fn client_secret_jwt_uses_the_secret_as_hmac_key_and_an_injected_refusal_passes() {
    let clock = ManualClock::new();
    let secret = "a registered secret of at least thirty-two bytes";
    let server = TestServer::builder()
        .clock(clock.clone())
        .primary_client(ClientConfig::client_secret_jwt(CLIENT, secret))
        .start()
        .await;
    let kit = Kit {
        server,
        clock,
        key: SigningKey::hmac(secret.as_bytes()),
    };
    let good = kit.sign(&kit.key, &kit.claims());
    kit.server.control().reject_next_client_assertions(1);
    kit.refused_because(&good, "injected").await;
    assert_eq!(
        kit.present(&good).await.0,
        200,
        "the refusal did not spend the jti"
    );
    let wrong = SigningKey::hmac(b"another secret of at least thirty-two bytes");
    kit.refused_because(&kit.sign(&wrong, &kit.claims()), "signature")
        .await;
    // The secret itself is not accepted in place of an assertion.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("client_secret", secret),
    ];
    let (status, body) = json(bare_post(&kit.server, &form).await).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_client"))
    );
}
