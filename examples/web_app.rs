//! `cargo run --example web_app`: an axum app whose users sign in at an
//! OAuth 2.0 provider (authorization code + PKCE), after which the app
//! calls an API on each signed-in user's behalf, with that user's token.
//!
//! Run as is, the in-process test kit plays the provider and the API (it
//! approves every sign-in as the `login_hint` user); open the printed URL.
//! The pieces an app of its own needs are [`Config`] and [`router`]:
//!
//! - `GET /login?user=<id>`: starts a sign-in for the app's user `<id>`,
//!   keeps the `state` and PKCE verifier in the session, redirects to the
//!   provider.
//! - `GET /callback`: the provider's redirect; the full callback URL is
//!   checked against the session's `state` and exchanged for tokens. The
//!   user's refresh token goes to the [`RefreshTokenStorage`] (in memory
//!   here; implement the trait on your database).
//! - `GET /me`: calls the API on the signed-in user's behalf. A user whose
//!   refresh token stopped working is sent to sign in again.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use reqwest_bearer::oauth2::{
    MemoryRefreshTokens, PendingSignIn, RefreshTokenStorage, UserSignIn, flow_error,
};
use reqwest_bearer::reqwest::Url;
use reqwest_bearer::reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_bearer::{
    BearerAuth, BearerError, RequestBuilderExt, TokenCache, TokenError, TokenKey, reqwest,
};

/// What the app is configured with.
pub struct Config {
    /// The provider's authorization endpoint.
    pub authorize_url: Url,
    /// The provider's token endpoint.
    pub token_url: Url,
    /// This app's client id and secret at the provider.
    pub client_id: String,
    /// The client secret (a web app is a confidential client).
    pub client_secret: String,
    /// This app's `/callback`, as registered with the provider.
    pub redirect_uri: Url,
    /// The scopes to ask for.
    pub scope: String,
    /// The API called on the users' behalf.
    pub api_url: Url,
    /// Where users' refresh tokens are kept.
    pub storage: Arc<dyn RefreshTokenStorage>,
}

/// One browser's session, keyed by its `sid` cookie.
enum Session {
    SigningIn {
        user: String,
        pending: PendingSignIn,
    },
    SignedIn {
        user: String,
        key: TokenKey,
    },
}

struct App {
    sign_in: Arc<UserSignIn>,
    cache: TokenCache,
    client: ClientWithMiddleware,
    api_url: Url,
    redirect_uri: Url,
    sessions: Mutex<HashMap<String, Session>>,
}

/// The app's routes.
pub fn router(config: Config) -> Result<Router, Box<dyn Error>> {
    let sign_in = Arc::new(
        UserSignIn::new(
            config.authorize_url,
            config.token_url,
            config.client_id,
            config.redirect_uri.clone(),
        )
        .client_secret(config.client_secret)
        .scope(config.scope)
        .storage(config.storage),
    );
    let auth = BearerAuth::new(
        TokenCache::builder(sign_in.clone()).build(),
        config.api_url.clone(),
    )?;
    let app = Arc::new(App {
        sign_in,
        cache: auth.cache().clone(),
        client: ClientBuilder::new(reqwest::Client::new())
            .with(auth)
            .build(),
        api_url: config.api_url,
        redirect_uri: config.redirect_uri,
        sessions: Mutex::default(),
    });
    Ok(Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/me", get(me))
        .with_state(app))
}

async fn login(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = query.get("user").filter(|u| !u.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "say who you are: /login?user=<id>").into_response();
    };
    let request = match app.sign_in.start() {
        Ok(request) => request.param("login_hint", user),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    };
    let (url, pending) = request.into_parts();
    let sid = new_session_id();
    app.sessions.lock().unwrap().insert(
        sid.clone(),
        Session::SigningIn {
            user: user.clone(),
            pending,
        },
    );
    let cookie = format!("sid={sid}; HttpOnly; SameSite=Lax; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to(url.as_str())).into_response()
}

async fn callback(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(sid) = session_id(&headers) else {
        return (StatusCode::BAD_REQUEST, "no session: start at /login").into_response();
    };
    let Some(Session::SigningIn { user, pending }) = app.sessions.lock().unwrap().remove(&sid)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "no sign-in under way: start at /login",
        )
            .into_response();
    };
    // The full callback URL, as the provider redirected to it.
    let mut callback_url = app.redirect_uri.clone();
    callback_url.set_query(uri.query());
    let signed_in = match app.sign_in.finish(&user, &pending, &callback_url).await {
        // Into the cache now: a user signing in again must not wait out
        // the cache's backoff after their earlier failure.
        Ok(key) => app.cache.refresh(&key).await.map(|_| key),
        Err(e) => Err(e),
    };
    match signed_in {
        Ok(key) => {
            app.sessions
                .lock()
                .unwrap()
                .insert(sid, Session::SignedIn { user, key });
            Redirect::to("/me").into_response()
        }
        // A forged or stale callback, or the user said no at the provider.
        Err(e) if flow_error(&e).is_some() => (
            StatusCode::FORBIDDEN,
            format!("sign-in failed: {}", chain(&e)),
        )
            .into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("sign-in failed: {}", chain(&e)),
        )
            .into_response(),
    }
}

async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let signed_in =
        session_id(&headers).and_then(|sid| match app.sessions.lock().unwrap().get(&sid) {
            Some(Session::SignedIn { user, key }) => Some((user.clone(), key.clone())),
            _ => None,
        });
    let Some((user, key)) = signed_in else {
        return (StatusCode::UNAUTHORIZED, "sign in first: /login?user=<id>").into_response();
    };
    let response = app
        .client
        .get(app.api_url.clone())
        .token_key(key)
        .send()
        .await;
    match response {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, response.text().await.unwrap_or_default()).into_response()
        }
        Err(e) => match BearerError::find(&e).map(BearerError::token_error) {
            Some(TokenError::ReauthenticationRequired(_)) => {
                Redirect::to(&format!("/login?user={user}")).into_response()
            }
            _ => (
                StatusCode::BAD_GATEWAY,
                format!("the API call failed: {}", chain(&e)),
            )
                .into_response(),
        },
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("sid=").map(str::to_owned))
}

fn new_session_id() -> String {
    use rand::Rng;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let provider = bearer_testkit::TestServer::builder()
        .add_user(bearer_testkit::UserConfig::new("bob", "builder"))
        .start()
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base: Url = format!("http://{}/", listener.local_addr()?).parse()?;
    let app = router(Config {
        authorize_url: provider.authorize_url(),
        token_url: provider.token_url(),
        client_id: provider.client_id().to_owned(),
        client_secret: provider.client_secret().to_owned(),
        redirect_uri: base.join("/callback")?,
        scope: "read".to_owned(),
        api_url: provider.api_url("/api/echo"),
        storage: Arc::new(MemoryRefreshTokens::default()),
    })?;
    println!("Sign in as alice: {}", base.join("/login?user=alice")?);
    println!("or as bob:        {}", base.join("/login?user=bob")?);
    println!("(the test kit approves at once; /me then shows what the API saw). Ctrl-C stops.");
    axum::serve(listener, app).await?;
    Ok(())
}

/// An error with its causes, each said once: every error here says its own
/// part and leaves the cause to `source()`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
