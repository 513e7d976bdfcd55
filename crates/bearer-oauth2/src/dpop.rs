//! Token requests with a DPoP proof (RFC 9449 §5, §8).

use std::sync::Arc;

use bearer_cache::{Token, TokenBinding, TokenError};
use bearer_dpop::DpopKey;
use url::Url;

use crate::client::OAuthClient;
use crate::response::Parser;
use crate::scrub::Secrets;

/// The proof header, and the answer header a server's nonce comes in.
const DPOP: &str = "DPoP";
const DPOP_NONCE: &str = "DPoP-Nonce";

/// The token endpoint as a proof names it: no userinfo, query or fragment.
fn proof_target(url: &Url) -> String {
    let mut target = url.clone();
    target.set_query(None);
    target.set_fragment(None);
    let _ = target.set_username("");
    let _ = target.set_password(None);
    target.into()
}

/// Whether an error is the server asking for a proof with its nonce.
fn asks_for_nonce(error: &TokenError) -> bool {
    error.oauth().is_some_and(|e| e.code == "use_dpop_nonce")
}

/// One token request with a fresh proof per send (retries included), the
/// answer's nonce kept, and one resend when the server asks for a nonce
/// it has just given. A `DPoP` token comes back bound to `dpop`.
pub(crate) async fn request_token(
    client: &OAuthClient,
    dpop: &DpopKey,
    grant_type: &str,
    form: &[(String, String)],
    secrets: &Secrets,
) -> Result<Token, TokenError> {
    let target = proof_target(client.token_url());
    let binding: Arc<dyn TokenBinding> = Arc::new(dpop.clone());
    let mut resent = false;
    loop {
        let result = client
            .options
            .exchange(
                grant_type,
                || {
                    let proof = dpop.proof("POST", &target, None)?;
                    Ok(client
                        .authenticated_post(client.token_url(), form.to_vec())?
                        .header(DPOP, proof))
                },
                |raw| {
                    if let Some(nonce) = raw.headers.get(DPOP_NONCE).and_then(|v| v.to_str().ok()) {
                        dpop.remember_nonce(&target, nonce);
                    }
                    Parser::oauth(secrets)
                        .at(client.options.clock.system_now())
                        .bound(binding.clone())
                        .parse(raw.status, &raw.headers, &raw.body)
                },
            )
            .await;
        match result {
            Err(e) if asks_for_nonce(&e) && !resent && dpop.nonce_for(&target).is_some() => {
                tracing::debug!(target: "bearer_oauth2", "token endpoint asked for a DPoP nonce; resending once with it");
                resent = true;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_drops_what_a_proof_must_not_name() {
        let url = Url::parse("https://u:p@idp.example/oauth/token?tenant=x#f").unwrap();
        assert_eq!(proof_target(&url), "https://idp.example/oauth/token");
    }
}
