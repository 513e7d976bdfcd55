//! Client authentication: `client_secret_basic`, `client_secret_post`, none,
//! and JWT assertions (checked in [`crate::client_assertion`]).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::HeaderMap;

use crate::client_assertion;
use crate::config::ClientConfig;
use crate::counters::ClientAuthMethod;
use crate::oauth::{OAuthError, param};
use crate::state::Shared;

/// The credentials a request presented, before checking them.
#[derive(Debug)]
pub(crate) struct Presented {
    pub(crate) method: ClientAuthMethod,
    pub(crate) client_id: Option<String>,
    secret: Option<String>,
    /// `client_assertion_type` and `client_assertion`, when sent.
    assertion: Option<(Option<String>, String)>,
    /// A malformed or contradictory presentation.
    problem: Option<OAuthError>,
}

impl Presented {
    pub(crate) fn from_request(headers: &HeaderMap, params: &[(String, String)]) -> Presented {
        let form_id = param(params, "client_id").map(str::to_owned);
        let form_secret = param(params, "client_secret").map(str::to_owned);
        if let Some(assertion) = param(params, "client_assertion") {
            return Self::from_assertion(headers, params, form_id, form_secret, assertion);
        }
        let Some(basic) = basic_credentials(headers) else {
            return Presented {
                method: if form_secret.is_some() {
                    ClientAuthMethod::ClientSecretPost
                } else {
                    ClientAuthMethod::None
                },
                client_id: form_id,
                secret: form_secret,
                assertion: None,
                problem: None,
            };
        };
        let mut presented = Presented {
            method: ClientAuthMethod::ClientSecretBasic,
            client_id: None,
            secret: None,
            assertion: None,
            problem: None,
        };
        match basic {
            Err(why) => presented.problem = Some(OAuthError::invalid_client(why, true)),
            Ok((id, secret)) => {
                if form_secret.is_some() {
                    presented.problem = Some(OAuthError::invalid_request(
                        "more than one client authentication method was used",
                    ));
                } else if form_id.as_ref().is_some_and(|f| *f != id) {
                    presented.problem = Some(OAuthError::invalid_request(
                        "client_id in the form differs from the Basic credentials",
                    ));
                }
                presented.client_id = Some(id);
                presented.secret = Some(secret);
            }
        }
        presented
    }

    /// A `client_assertion` presentation: the client is the assertion's
    /// `sub`; a form `client_id` must agree; no other method may be mixed in.
    fn from_assertion(
        headers: &HeaderMap,
        params: &[(String, String)],
        form_id: Option<String>,
        form_secret: Option<String>,
        assertion: &str,
    ) -> Presented {
        let subject = client_assertion::subject_of(assertion);
        let problem = if basic_credentials(headers).is_some() || form_secret.is_some() {
            Some(OAuthError::invalid_request(
                "more than one client authentication method was used",
            ))
        } else if subject.is_none() {
            Some(OAuthError::invalid_client(
                "the client assertion is not a JWT with a sub",
                false,
            ))
        } else if form_id.is_some() && form_id != subject {
            Some(OAuthError::invalid_request(
                "client_id in the form differs from the assertion's sub",
            ))
        } else {
            None
        };
        Presented {
            method: client_assertion::method_of(assertion)
                .unwrap_or(ClientAuthMethod::PrivateKeyJwt),
            client_id: subject,
            secret: None,
            assertion: Some((
                param(params, "client_assertion_type").map(str::to_owned),
                assertion.to_owned(),
            )),
            problem,
        }
    }

    /// Checks the credentials against the registered clients.
    pub(crate) fn authenticate<'a>(
        &mut self,
        shared: &'a Shared,
    ) -> Result<&'a ClientConfig, OAuthError> {
        if let Some(problem) = self.problem.take() {
            return Err(problem);
        }
        if let Some((assertion_type, assertion)) = &self.assertion {
            let id = self.client_id.as_deref().unwrap_or_default();
            let client = shared
                .client(id)
                .ok_or_else(|| OAuthError::invalid_client("unknown client", false))?;
            client_assertion::verify(shared, client, assertion_type.as_deref(), assertion)?;
            return Ok(client);
        }
        let basic = self.method == ClientAuthMethod::ClientSecretBasic;
        let id = self.client_id.as_deref().ok_or_else(|| {
            OAuthError::invalid_client("no client authentication included", basic)
        })?;
        let client = shared
            .client(id)
            .ok_or_else(|| OAuthError::invalid_client("unknown client", basic))?;
        if client.assertion.is_some() {
            return Err(OAuthError::invalid_client(
                "this client must authenticate with a client assertion",
                basic,
            ));
        }
        match (client.secret(), self.secret.as_deref()) {
            (Some(_), None) => Err(OAuthError::invalid_client(
                "client authentication required",
                basic,
            )),
            (Some(expected), Some(given)) if expected != given => {
                Err(OAuthError::invalid_client("wrong client secret", basic))
            }
            (None, Some(_)) => Err(OAuthError::invalid_client(
                "a public client has no secret",
                basic,
            )),
            _ => Ok(client),
        }
    }
}

/// `Some` when an `Authorization: Basic` header is present: the decoded
/// id and secret, which RFC 6749 §2.3.1 form-urlencodes before base64.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), &'static str>> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    Some(decode_basic(encoded.trim()))
}

fn decode_basic(encoded: &str) -> Result<(String, String), &'static str> {
    let bytes = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| "malformed Basic credentials: not base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "malformed Basic credentials: not UTF-8")?;
    let (id, secret) = text
        .split_once(':')
        .ok_or("malformed Basic credentials: no ':'")?;
    Ok((form_decode(id)?, form_decode(secret)?))
}

/// `application/x-www-form-urlencoded` decoding of one component.
fn form_decode(component: &str) -> Result<String, &'static str> {
    let plus_as_space = component.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "malformed Basic credentials: percent-decoding is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_components_are_form_decoded() {
        let encoded = STANDARD.encode("a%3Ab+c%25:s%2Bx+%C3%A9");
        assert_eq!(
            decode_basic(&encoded),
            Ok(("a:b c%".to_owned(), "s+x é".to_owned()))
        );
    }
}
