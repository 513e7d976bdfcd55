//! The kit's DPoP checks, one by one, with proofs made by hand: each rule
//! a strict server applies refuses the proof that breaks it.

use bearer_cache::ManualClock;
use bearer_jose::{Algorithm, SigningKey, new_jti};
use bearer_testkit::{AccessTokenFormat, DpopFault, TestServer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ath(token: &str) -> String {
    b64(&Sha256::digest(token.as_bytes()))
}

fn now(clock: &ManualClock) -> u64 {
    bearer_jose::numeric_date(bearer_cache::Clock::system_now(clock))
}

/// A proof of `claims` by `key`, with its public JWK in the header.
fn proof(key: &SigningKey, claims: Value) -> String {
    let mut header = Map::new();
    header.insert("typ".into(), "dpop+jwt".into());
    header.insert("jwk".into(), key.public_jwk().unwrap());
    key.sign(&header, &claims).unwrap()
}

/// A change to a proof's claims.
type Edit = Box<dyn Fn(&mut Value)>;

struct Kit {
    server: TestServer,
    clock: ManualClock,
    http: reqwest::Client,
    key: SigningKey,
}

impl Kit {
    async fn start() -> Kit {
        let clock = ManualClock::new();
        let server = TestServer::builder().clock(clock.clone()).start().await;
        Kit {
            server,
            clock,
            http: bearer_testkit::client_builder().build().unwrap(),
            key: SigningKey::generate(Algorithm::ES256).unwrap(),
        }
    }

    fn claims(&self, htm: &str, htu: &str, token: Option<&str>) -> Value {
        let mut claims =
            json!({ "jti": new_jti(), "htm": htm, "htu": htu, "iat": now(&self.clock) });
        if let Some(token) = token {
            claims["ath"] = ath(token).into();
        }
        claims
    }

    async fn token_with(&self, proof: &str) -> reqwest::Response {
        self.http
            .post(self.server.token_url())
            .basic_auth(self.server.client_id(), Some(self.server.client_secret()))
            .header("DPoP", proof)
            .form(&[("grant_type", "client_credentials"), ("scope", "read")])
            .send()
            .await
            .unwrap()
    }

    /// A token bound to the kit's key.
    async fn bound_token(&self) -> String {
        let claims = self.claims("POST", self.server.token_url().as_str(), None);
        let body: Value = self
            .token_with(&proof(&self.key, claims))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["token_type"], "DPoP", "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn api(&self, token: &str, proof: Option<&str>) -> (u16, String, Option<String>) {
        let mut request = self
            .http
            .get(self.server.api_url("/api/echo"))
            .header("Authorization", format!("DPoP {token}"));
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (challenge, nonce) = (
            header("www-authenticate").unwrap_or_default(),
            header("dpop-nonce"),
        );
        (response.status().as_u16(), challenge, nonce)
    }

    fn api_url(&self) -> String {
        self.server.api_url("/api/echo").to_string()
    }
}

#[tokio::test]
async fn a_good_proof_passes_and_each_broken_rule_is_refused() {
    let kit = Kit::start().await;
    let token = kit.bound_token().await;
    let good = kit.claims("GET", &kit.api_url(), Some(&token));
    assert_eq!(
        kit.api(&token, Some(&proof(&kit.key, good.clone())))
            .await
            .0,
        200
    );
    // `htu` is compared without the query.
    let mut query = good.clone();
    query["jti"] = new_jti().into();
    query["htu"] = format!("{}?x=1", kit.api_url()).into();
    assert_eq!(kit.api(&token, Some(&proof(&kit.key, query))).await.0, 200);

    let broken: Vec<(&str, Edit)> = vec![
        ("htm", Box::new(|c| c["htm"] = "POST".into())),
        (
            "htu",
            Box::new(|c| c["htu"] = "http://127.0.0.1:1/api/echo".into()),
        ),
        (
            "iat",
            Box::new(|c| c["iat"] = (c["iat"].as_u64().unwrap() - 120).into()),
        ),
        (
            "iat",
            Box::new(|c| c["iat"] = (c["iat"].as_u64().unwrap() + 120).into()),
        ),
        ("iat", Box::new(|c| c["iat"] = "soon".into())),
        ("ath", Box::new(|c| c["ath"] = ath("another-token").into())),
        (
            "ath",
            Box::new(|c| drop(c.as_object_mut().unwrap().remove("ath"))),
        ),
        (
            "jti",
            Box::new(|c| drop(c.as_object_mut().unwrap().remove("jti"))),
        ),
    ];
    for (rule, edit) in broken {
        let mut claims = kit.claims("GET", &kit.api_url(), Some(&token));
        edit(&mut claims);
        let (status, challenge, _) = kit.api(&token, Some(&proof(&kit.key, claims))).await;
        assert_eq!(status, 401, "{rule}");
        assert!(
            challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
            "{rule}: {challenge}"
        );
        assert!(challenge.contains(rule), "{rule}: {challenge}");
    }
    // Replay: the claims that passed, signed again (same jti).
    let (status, challenge, _) = kit.api(&token, Some(&proof(&kit.key, good))).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("jti was used before"), "{challenge}");
    // The jti is forgotten only once its iat is out of the window.
    let again = proof(&kit.key, kit.claims("GET", &kit.api_url(), Some(&token)));
    assert_eq!(kit.api(&token, Some(&again)).await.0, 200);
    assert_eq!(kit.api(&token, Some(&again)).await.0, 401);
    // No proof at all.
    let (status, challenge, _) = kit.api(&token, None).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
}

#[tokio::test]
async fn headers_and_keys_are_checked() {
    let kit = Kit::start().await;
    let token = kit.bound_token().await;
    let claims = || kit.claims("GET", &kit.api_url(), Some(&token));
    let refused = |(status, challenge, _): (u16, String, Option<String>), why: &str| {
        assert_eq!(status, 401, "{why}");
        assert!(challenge.contains(why), "{why}: {challenge}");
    };
    let sign = |header: Map<String, Value>, key: &SigningKey| key.sign(&header, &claims()).unwrap();
    let mut header = Map::new();
    header.insert("typ".into(), "JWT".into());
    header.insert("jwk".into(), kit.key.public_jwk().unwrap());
    refused(
        kit.api(&token, Some(&sign(header.clone(), &kit.key))).await,
        "typ",
    );
    header.insert("typ".into(), "dpop+jwt".into());
    // A private key in the header.
    let private = SigningKey::generate(Algorithm::ES256).unwrap();
    let mut leaked = kit.key.public_jwk().unwrap();
    leaked["d"] = "AAAA".into();
    let mut with_d = header.clone();
    with_d.insert("jwk".into(), leaked);
    refused(
        kit.api(&token, Some(&sign(with_d, &kit.key))).await,
        "private key",
    );
    // Signed by a key other than the one in the header.
    refused(
        kit.api(&token, Some(&sign(header.clone(), &private))).await,
        "does not verify",
    );
    // HMAC is not an allowed algorithm.
    let mut hmac_header = header.clone();
    hmac_header.remove("jwk");
    hmac_header.insert("jwk".into(), json!({"kty": "oct", "k": "c2VjcmV0"}));
    refused(
        kit.api(
            &token,
            Some(&sign(hmac_header, &SigningKey::hmac(b"secret"))),
        )
        .await,
        "invalid_dpop_proof",
    );
    // A good proof by another key: the token is bound to the kit's key.
    let other = proof(&private, claims());
    refused(kit.api(&token, Some(&other)).await, "bound to another key");
    assert_eq!(kit.server.control().dpop_counts().binding_mismatches, 1);
    // The bound token as a bearer token.
    let response = kit
        .http
        .get(kit.server.api_url("/api/echo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(kit.server.control().dpop_counts().binding_mismatches, 2);
}

#[tokio::test]
async fn nonces_are_issued_required_and_rotated() {
    let kit = Kit::start().await;
    kit.server.control().require_dpop_nonce(true);
    let token_url = kit.server.token_url().to_string();
    let response = kit
        .token_with(&proof(&kit.key, kit.claims("POST", &token_url, None)))
        .await;
    assert_eq!(response.status(), 400);
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");
    let mut claims = kit.claims("POST", &token_url, None);
    claims["nonce"] = nonce.clone().into();
    let response = kit.token_with(&proof(&kit.key, claims)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["dpop-nonce"].to_str().unwrap(), nonce);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let with_nonce = |nonce: &str| {
        let mut claims = kit.claims("GET", &kit.api_url(), Some(&token));
        claims["nonce"] = nonce.into();
        proof(&kit.key, claims)
    };
    assert_eq!(kit.api(&token, Some(&with_nonce(&nonce))).await.0, 200);
    kit.server.control().rotate_dpop_nonce();
    let (status, challenge, new_nonce) = kit.api(&token, Some(&with_nonce(&nonce))).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("DPoP error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let new_nonce = new_nonce.unwrap();
    assert_ne!(new_nonce, nonce);
    assert_eq!(kit.api(&token, Some(&with_nonce(&new_nonce))).await.0, 200);
    assert_eq!(kit.server.control().dpop_counts().nonce_challenges, 2);
}

#[tokio::test]
async fn faults_refuse_good_proofs_and_jwt_tokens_carry_cnf() {
    let kit = Kit::start().await;
    kit.server
        .control()
        .set_access_token_format(AccessTokenFormat::JwtUnsigned);
    let token = kit.bound_token().await;
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["jkt"], kit.key.thumbprint().unwrap());

    let good = || proof(&kit.key, kit.claims("GET", &kit.api_url(), Some(&token)));
    for (fault, error) in [
        (DpopFault::ReplayedJti, "invalid_dpop_proof"),
        (DpopFault::WrongAth, "invalid_dpop_proof"),
        (DpopFault::StaleNonce, "use_dpop_nonce"),
    ] {
        kit.server.control().fail_next_dpop_proofs(1, fault);
        let (status, challenge, _) = kit.api(&token, Some(&good())).await;
        assert_eq!(status, 401, "{fault:?}");
        assert!(challenge.contains(error), "{fault:?}: {challenge}");
    }
    // The stale-nonce fault left nonces required: a proof without one is asked for it.
    assert!(
        kit.api(&token, Some(&good()))
            .await
            .1
            .contains("use_dpop_nonce")
    );
}
