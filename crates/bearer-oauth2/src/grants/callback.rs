//! The loopback listener that receives the authorization redirect
//! (RFC 8252 §7.3), built on hyper's HTTP/1 server.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use url::Url;

use bearer_cache::Secret;

use crate::error::FlowError;

/// How long a browser's connection may stay open.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// A bound listener and the redirect URI that reaches it.
pub(crate) struct Callback {
    listener: TcpListener,
    redirect_uri: Url,
}

impl Callback {
    /// Binds `ip:port` (port 0: an ephemeral one).
    pub async fn bind(ip: IpAddr, port: u16, path: &str) -> Result<Callback, FlowError> {
        let listener = TcpListener::bind(SocketAddr::new(ip, port))
            .await
            .map_err(|e| FlowError::Listener(e.to_string()))?;
        let local = listener
            .local_addr()
            .map_err(|e| FlowError::Listener(e.to_string()))?;
        let redirect_uri = Url::parse(&format!("http://{local}{path}"))
            .map_err(|e| FlowError::Listener(format!("bad callback path {path:?}: {e}")))?;
        Ok(Callback {
            listener,
            redirect_uri,
        })
    }

    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Serves until a request reaches the callback path; returns its code
    /// if its `state` is `expected_state`. Other paths (a browser's
    /// favicon request) get a 404 and the wait goes on.
    pub async fn wait(self, expected_state: &str) -> Result<Secret, FlowError> {
        let (tx, mut rx) = mpsc::channel::<Result<Secret, FlowError>>(1);
        let path: Arc<str> = self.redirect_uri.path().into();
        let expected: Arc<str> = expected_state.into();
        loop {
            tokio::select! {
                outcome = rx.recv() => {
                    if let Some(outcome) = outcome {
                        return outcome;
                    }
                }
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let (tx, path, expected) = (tx.clone(), path.clone(), expected.clone());
                    let service = hyper::service::service_fn(move |request| {
                        let outcome = handle(&request, &path, &expected);
                        let tx = tx.clone();
                        async move {
                            let response = match outcome {
                                None => page(StatusCode::NOT_FOUND, "Not found."),
                                Some(outcome) => {
                                    let ok = outcome.is_ok();
                                    let _ = tx.try_send(outcome);
                                    if ok {
                                        page(StatusCode::OK, "Signed in. You can close this window.")
                                    } else {
                                        page(StatusCode::BAD_REQUEST, "Sign-in failed. You can close this window.")
                                    }
                                }
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                    // Detached so the answer reaches the browser after we return;
                    // no keep-alive, and a time limit, so it ends by itself.
                    tokio::spawn(async move {
                        let connection = hyper::server::conn::http1::Builder::new()
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(stream), service);
                        let _ = tokio::time::timeout(CONNECTION_LIMIT, connection).await;
                    });
                }
            }
        }
    }
}

/// The outcome of a request to the callback path, `None` for other paths.
fn handle(
    request: &Request<Incoming>,
    path: &str,
    expected_state: &str,
) -> Option<Result<Secret, FlowError>> {
    if request.uri().path() != path {
        return None;
    }
    Some(parse_callback(
        request.uri().query().unwrap_or(""),
        expected_state,
    ))
}

/// The authorization code in a redirect's query (RFC 6749 §4.1.2), once
/// its `state` is `expected_state` (compared in constant time); the
/// provider's `error` (§4.1.2.1) as [`FlowError::AuthorizationFailed`].
pub(crate) fn parse_callback(query: &str, expected_state: &str) -> Result<Secret, FlowError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let state_matches =
        param("state").is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected_state.as_bytes())));
    if !state_matches {
        Err(FlowError::StateMismatch)
    } else if let Some(code) = param("error") {
        Err(FlowError::AuthorizationFailed {
            code: code.chars().take(100).collect(),
            description: param("error_description").map(|d| d.chars().take(300).collect()),
        })
    } else {
        param("code")
            .filter(|c| !c.is_empty())
            .map(Secret::new)
            .ok_or(FlowError::MissingCode)
    }
}

fn page(status: StatusCode, message: &'static str) -> Response<String> {
    let mut response = Response::new(format!(
        "<!DOCTYPE html><html><body><p>{message}</p></body></html>"
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
