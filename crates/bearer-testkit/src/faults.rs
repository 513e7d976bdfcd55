//! Injected faults for the token and login endpoints.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::RngExt;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use crate::server::ConnectionHandle;

/// A way for a token (or login) response to go wrong.
///
/// Variants up to `HugeBody` describe the response; `DropConnection` and
/// `Hang` describe the transport. The reshaping variants
/// (`ExpiresInString`, `MissingTokenType`, `LowercaseTokenType`,
/// `TokenType`, `MissingExpiresIn`) still issue a real, working token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFault {
    /// `500 Internal Server Error`, plain-text body.
    InternalError,
    /// `503 Service Unavailable`, with `Retry-After: S` when given.
    ServiceUnavailable {
        /// `Retry-After` in seconds.
        retry_after: Option<u64>,
    },
    /// `429 Too Many Requests`, with `Retry-After: S` when given.
    TooManyRequests {
        /// `Retry-After` in seconds.
        retry_after: Option<u64>,
    },
    /// A well-formed RFC 6749 §5.2 error with this status and code.
    OAuthError {
        /// The HTTP status.
        status: u16,
        /// The `error` code.
        error: String,
        /// The `error_description`.
        description: Option<String>,
    },
    /// `200 OK` whose JSON body carries `{"error": ...}` and no token.
    ErrorIn200 {
        /// The `error` code.
        error: String,
    },
    /// An HTML page (as a proxy or load balancer would send) with this status.
    Html {
        /// The HTTP status.
        status: u16,
    },
    /// `200 OK`, `Content-Type: application/json`, truncated JSON.
    MalformedJson,
    /// A real token whose `expires_in` is a string (`"3600"`).
    ExpiresInString,
    /// A real token without `token_type`.
    MissingTokenType,
    /// A real token with `"token_type": "bearer"`.
    LowercaseTokenType,
    /// A real token with this `token_type` (e.g. `"DPoP"`, `"mac"`, `"N_A"`).
    TokenType(String),
    /// A real token without `expires_in` (login: without its expiry field).
    MissingExpiresIn,
    /// A real token with one field of the answer set to this JSON value,
    /// for the numbers real servers send: `expires_in` of
    /// `9223372036854775807` ("never"), `0` or `-5`, a huge `refresh_in`.
    Field {
        /// The field's name (`expires_in`, `refresh_in`, …).
        name: String,
        /// Its value.
        value: serde_json::Value,
    },
    /// `200 OK` with a JSON body of about `bytes` bytes, streamed without a
    /// `Content-Length`.
    HugeBody {
        /// The body size.
        bytes: usize,
    },
    /// This status with a plain-text body that echoes the request, as a
    /// debugging error page might: `padding` spaces, then the
    /// `Authorization` header's value, then the request body (form or JSON,
    /// as received), so credentials land wherever a test wants them.
    EchoRequest {
        /// The HTTP status.
        status: u16,
        /// Spaces before the echo.
        padding: usize,
    },
    /// Closes the TCP connection without any HTTP answer.
    DropConnection,
    /// Never answers (until the server is dropped).
    Hang,
}

impl TokenFault {
    /// Whether this fault keeps the grant and only reshapes the success body.
    pub(crate) fn is_reshape(&self) -> bool {
        matches!(
            self,
            TokenFault::ExpiresInString
                | TokenFault::MissingTokenType
                | TokenFault::LowercaseTokenType
                | TokenFault::TokenType(_)
                | TokenFault::MissingExpiresIn
                | TokenFault::Field { .. }
        )
    }

    /// Applies a reshaping fault to a success body.
    pub(crate) fn reshape(&self, body: &mut Map<String, Value>, expiry_field: &str) {
        match self {
            TokenFault::ExpiresInString => {
                if let Some(v) = body.get_mut(expiry_field) {
                    *v = Value::String(v.to_string());
                }
            }
            TokenFault::MissingTokenType => {
                body.remove("token_type");
            }
            TokenFault::LowercaseTokenType => {
                body.insert("token_type".into(), "bearer".into());
            }
            TokenFault::TokenType(t) => {
                body.insert("token_type".into(), t.clone().into());
            }
            TokenFault::MissingExpiresIn => {
                body.remove(expiry_field);
            }
            TokenFault::Field { name, value } => {
                body.insert(name.clone(), value.clone());
            }
            _ => {}
        }
    }

    /// Answers a request (its headers and body) with a non-reshaping fault.
    pub(crate) async fn respond(
        &self,
        connection: Option<&ConnectionHandle>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        match self {
            TokenFault::InternalError => {
                plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
            TokenFault::ServiceUnavailable { retry_after } => with_retry_after(
                plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable"),
                *retry_after,
            ),
            TokenFault::TooManyRequests { retry_after } => with_retry_after(
                plain(StatusCode::TOO_MANY_REQUESTS, "too many requests"),
                *retry_after,
            ),
            TokenFault::OAuthError {
                status,
                error,
                description,
            } => {
                let mut body = json!({ "error": error });
                if let Some(d) = description {
                    body["error_description"] = d.clone().into();
                }
                crate::oauth::no_store_json(status_or_500(*status), &body)
            }
            TokenFault::ErrorIn200 { error } => crate::oauth::no_store_json(
                StatusCode::OK,
                &json!({ "error": error, "error_description": "injected fault" }),
            ),
            TokenFault::Html { status } => (
                status_or_500(*status),
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!DOCTYPE html>\n<html><head><title>Bad Gateway</title></head>\
                 <body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>\n",
            )
                .into_response(),
            TokenFault::MalformedJson => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"access_token": "truncated", "token_type": "Bearer", "expires_in": 36"#,
            )
                .into_response(),
            TokenFault::HugeBody { bytes } => huge_body(*bytes),
            TokenFault::EchoRequest { status, padding } => {
                let mut echo = vec![b' '; *padding];
                if let Some(authorization) = headers.get(header::AUTHORIZATION) {
                    echo.extend_from_slice(authorization.as_bytes());
                }
                echo.push(b'\n');
                echo.extend_from_slice(body);
                (
                    status_or_500(*status),
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    echo,
                )
                    .into_response()
            }
            TokenFault::DropConnection => {
                if let Some(connection) = connection {
                    connection.drop_connection();
                }
                // The connection task drops the socket; this answer never goes out.
                std::future::pending().await
            }
            TokenFault::Hang => std::future::pending().await,
            // Reshaping faults never get here; answer something harmless.
            _ => plain(StatusCode::INTERNAL_SERVER_ERROR, "unexpected fault"),
        }
    }
}

fn status_or_500(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn with_retry_after(mut response: Response, retry_after: Option<u64>) -> Response {
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn huge_body(bytes: usize) -> Response {
    const CHUNK: usize = 64 * 1024;
    let head = Bytes::from_static(br#"{"access_token":""#);
    let tail = Bytes::from_static(br#"","token_type":"Bearer","expires_in":3600}"#);
    let filler_len = bytes.saturating_sub(head.len() + tail.len());
    let filler = Bytes::from(vec![b'x'; CHUNK.min(filler_len.max(1))]);
    let fillers = (0..filler_len.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(filler_len - i * CHUNK);
        filler.slice(..len)
    });
    let chunks = std::iter::once(head)
        .chain(fillers)
        .chain(std::iter::once(tail))
        .map(Ok::<_, Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Queued faults first, then random ones.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    queued: VecDeque<(TokenFault, u64)>,
    random: Vec<(TokenFault, f64)>,
}

impl FaultPlan {
    pub(crate) fn push(&mut self, n: u64, fault: TokenFault) {
        if n > 0 {
            self.queued.push_back((fault, n));
        }
    }

    pub(crate) fn add_random(&mut self, fault: TokenFault, probability: f64) {
        self.random.push((fault, probability.clamp(0.0, 1.0)));
    }

    pub(crate) fn clear(&mut self) {
        self.queued.clear();
        self.random.clear();
    }

    /// The fault for the next request, if any.
    pub(crate) fn next(&mut self, rng: &mut StdRng) -> Option<TokenFault> {
        if let Some((fault, left)) = self.queued.front_mut() {
            let fault = fault.clone();
            *left -= 1;
            if *left == 0 {
                self.queued.pop_front();
            }
            return Some(fault);
        }
        if self.random.is_empty() {
            return None;
        }
        // One draw per request; the faults' probabilities stack up in [0, 1).
        let draw: f64 = rng.random();
        let mut cumulative = 0.0;
        for (fault, p) in &self.random {
            cumulative += p;
            if draw < cumulative {
                return Some(fault.clone());
            }
        }
        None
    }
}
