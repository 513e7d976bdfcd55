//! Listeners, the accept loop, and [`TestServer`] itself.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bearer_cache::{ManualClock, SharedClock, SystemClock};
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;
use url::Url;

use crate::config::{AccessTokenFormat, ClientConfig, LoginExpiry, LoginForm, UserConfig};
use crate::control::Control;
use crate::mtls::{PeerCertificate, TestPki};
use crate::state::{Settings, Shared};
use crate::validator::ApiValidator;

/// Lets a handler close its own TCP connection without answering
/// ([`crate::TokenFault::DropConnection`]).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle(Arc<Notify>);

impl ConnectionHandle {
    pub(crate) fn drop_connection(&self) {
        self.0.notify_one();
    }
}

/// Anything the server can take as its clock.
///
/// Implemented for [`SharedClock`] and for bearer-cache's concrete clocks, so
/// `.clock(manual.clone())` and `.clock(shared)` both work.
pub trait IntoSharedClock {
    /// Converts into a [`SharedClock`].
    fn into_shared_clock(self) -> SharedClock;
}

impl IntoSharedClock for SharedClock {
    fn into_shared_clock(self) -> SharedClock {
        self
    }
}

impl IntoSharedClock for ManualClock {
    fn into_shared_clock(self) -> SharedClock {
        Arc::new(self)
    }
}

impl IntoSharedClock for SystemClock {
    fn into_shared_clock(self) -> SharedClock {
        Arc::new(self)
    }
}

/// Configures a [`TestServer`]; see [`TestServer::builder`].
#[derive(Debug)]
pub struct TestServerBuilder {
    clients: Vec<ClientConfig>,
    users: Vec<UserConfig>,
    settings: Settings,
    clock: Option<SharedClock>,
    seed: u64,
    port: u16,
    other_origin_port: u16,
    mtls: Option<MtlsSetup>,
}

/// The mutual-TLS listener asked for.
#[derive(Debug)]
struct MtlsSetup {
    pki: TestPki,
    required: bool,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            clients: vec![ClientConfig::confidential("test-client", "test-secret")],
            users: vec![UserConfig::new("alice", "wonderland")],
            settings: Settings::default(),
            clock: None,
            seed: 0x7e57_c0de,
            port: 0,
            other_origin_port: 0,
            mtls: None,
        }
    }
}

impl TestServerBuilder {
    /// Replaces the default client (`test-client` / `test-secret`); it gets
    /// scopes `read write admin` and every grant type.
    pub fn client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.clients[0] = ClientConfig::confidential(id, secret);
        self
    }

    /// Replaces the default client with a fully configured one.
    pub fn primary_client(mut self, client: ClientConfig) -> Self {
        self.clients[0] = client;
        self
    }

    /// Registers one more client.
    pub fn add_client(mut self, client: ClientConfig) -> Self {
        self.clients.push(client);
        self
    }

    /// Replaces the default user (`alice` / `wonderland`), who is also the
    /// one the authorize endpoint and device approval act as.
    pub fn user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.users[0] = UserConfig::new(username, password);
        self
    }

    /// Registers one more user.
    pub fn add_user(mut self, user: UserConfig) -> Self {
        self.users.push(user);
        self
    }

    /// Lifetime of issued access tokens (default one hour).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.token_lifetime = lifetime;
        self
    }

    /// Real-time delay before every token response (default none).
    pub fn token_latency(mut self, latency: Duration) -> Self {
        self.settings.token_latency = latency;
        self
    }

    /// Whether a refresh issues a new refresh token and retires the old one
    /// (default `false`: the response carries no `refresh_token` and the old
    /// one stays valid).
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.settings.rotate_refresh_tokens = rotate;
        self
    }

    /// The clock for expiry checks and issued lifetimes (default
    /// [`SystemClock`]). Share a [`ManualClock`] with the client under test
    /// to move time without sleeping.
    pub fn clock(mut self, clock: impl IntoSharedClock) -> Self {
        self.clock = Some(clock.into_shared_clock());
        self
    }

    /// Opaque (default) or JWT-shaped access tokens.
    pub fn access_token_format(mut self, format: AccessTokenFormat) -> Self {
        self.settings.access_token_format = format;
        self
    }

    /// The expiry field `/login` writes (default `expires_in`).
    pub fn login_expiry(mut self, expiry: LoginExpiry) -> Self {
        self.settings.login_expiry = expiry;
        self
    }

    /// The plain login endpoint's path, credential fields and token field
    /// (default `POST /login` with `username` and `password`, answering
    /// `{"token": …}`); see [`LoginForm`]. [`TestServer::login_url`] follows it.
    ///
    /// # Panics
    /// [`start`](Self::start) panics if the path is one the server already
    /// serves (such as `/token`).
    pub fn login_form(mut self, form: LoginForm) -> Self {
        self.settings.login_form = form;
        self
    }

    /// Makes the API accept only tokens whose audience includes `audience`.
    pub fn require_audience(mut self, audience: impl Into<String>) -> Self {
        self.settings.required_audience = Some(audience.into());
        self
    }

    /// The device flow's polling interval (default 5 s).
    pub fn device_poll_interval(mut self, interval: Duration) -> Self {
        self.settings.device_interval = interval;
        self
    }

    /// Lifetime of device codes (default 600 s).
    pub fn device_code_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.device_lifetime = lifetime;
        self
    }

    /// Whether `/authorize` demands a PKCE `code_challenge` (default `true`).
    pub fn require_pkce(mut self, require: bool) -> Self {
        self.settings.require_pkce = require;
        self
    }

    /// How the API validates tokens (default: its own store).
    pub fn api_validator(mut self, validator: ApiValidator) -> Self {
        self.settings.validator = validator;
        self
    }

    /// Seeds the RNG behind the probabilistic faults.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Listens on this port instead of an ephemeral one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The other origin listens on this port instead of an ephemeral one.
    pub fn other_origin_port(mut self, port: u16) -> Self {
        self.other_origin_port = port;
        self
    }

    /// Also serves everything over TLS on a third loopback port
    /// ([`TestServer::mtls_url`]), with `pki`'s server certificate, asking
    /// each client for a certificate (RFC 8705): clients registered with
    /// [`ClientConfig::tls_client_auth`] or
    /// [`ClientConfig::self_signed_tls_client_auth`] authenticate there,
    /// and every access token issued over a connection with a certificate
    /// is bound to it (`cnf.x5t#S256`): the API then accepts it only over a
    /// connection presenting that certificate. Discovery lists the TLS
    /// endpoints as `mtls_endpoint_aliases`. Default: off.
    ///
    /// ```
    /// use bearer_testkit::{ClientConfig, TestPki, TestServer, TlsSubject};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pki = TestPki::new();
    /// let cert = pki.client_certificate("svc");
    /// let server = TestServer::builder()
    ///     .mutual_tls(&pki)
    ///     .add_client(ClientConfig::tls_client_auth("svc", TlsSubject::Dn(cert.subject_dn().into())))
    ///     .start()
    ///     .await;
    /// let http = pki.client_builder().identity(cert.identity()).build().unwrap();
    /// let form = [("grant_type", "client_credentials"), ("client_id", "svc")];
    /// let answer = http.post(server.mtls_url("/token")).form(&form).send().await.unwrap();
    /// assert_eq!(answer.status(), 200);
    /// # }
    /// ```
    pub fn mutual_tls(mut self, pki: &TestPki) -> Self {
        self.mtls = Some(MtlsSetup {
            pki: pki.clone(),
            required: self.mtls.as_ref().is_none_or(|m| m.required),
        });
        self
    }

    /// Whether the TLS listener of [`mutual_tls`](Self::mutual_tls)
    /// refuses a handshake without a client certificate (default `true`;
    /// call it after `mutual_tls`).
    /// With `false` such a client connects and is answered
    /// `invalid_client` by the token endpoint if it is registered for a
    /// certificate.
    pub fn client_certificate_required(mut self, required: bool) -> Self {
        if let Some(mtls) = &mut self.mtls {
            mtls.required = required;
        }
        self
    }

    /// Binds both listeners on 127.0.0.1 and starts serving.
    ///
    /// # Panics
    /// If a listener cannot be bound; see [`TestServerBuilder::try_start`].
    pub async fn start(self) -> TestServer {
        match self.try_start().await {
            Ok(server) => server,
            Err(e) => panic!("bearer-testkit: cannot bind a loopback listener: {e}"),
        }
    }

    /// Like [`TestServerBuilder::start`], reporting bind errors.
    pub async fn try_start(self) -> io::Result<TestServer> {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        let other = TcpListener::bind(("127.0.0.1", self.other_origin_port)).await?;
        let base_url = loopback_url(&listener)?;
        let other_origin_url = loopback_url(&other)?;
        let mut shared = Shared::new(
            self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            base_url.clone(),
            other_origin_url.clone(),
            self.clients,
            self.users,
            self.settings,
            self.seed,
        );
        let tls = match &self.mtls {
            Some(setup) => {
                let (listener, acceptor, state) =
                    crate::mtls::bind(&setup.pki, setup.required, 0).await?;
                shared.mtls = Some(state);
                Some((listener, acceptor))
            }
            None => None,
        };
        let mtls_base_url = shared.mtls.as_ref().map(|m| m.base_url().clone());
        let shared = Arc::new(shared);
        let main = crate::routes::main(shared.clone());
        let plain = main.clone();
        let other_router = crate::routes::other_origin(shared.clone());
        let mut tasks = vec![
            tokio::spawn(serve(listener, move |stream| {
                serve_plain(stream, plain.clone())
            })),
            tokio::spawn(serve(other, move |stream| {
                serve_plain(stream, other_router.clone())
            })),
        ];
        if let Some((listener, acceptor)) = tls {
            tasks.push(tokio::spawn(serve(listener, move |stream| {
                crate::mtls::serve_connection(stream, acceptor.clone(), main.clone())
            })));
        }
        Ok(TestServer {
            control: Control::new(shared),
            base_url,
            other_origin_url,
            mtls_base_url,
            tasks,
        })
    }
}

fn loopback_url(listener: &TcpListener) -> io::Result<Url> {
    let port = listener.local_addr()?.port();
    Url::parse(&format!("http://127.0.0.1:{port}/")).map_err(io::Error::other)
}

/// Accepts connections until aborted, each served by `connection`;
/// aborting drops the `JoinSet`, which aborts every connection (and every
/// hanging handler) with it.
async fn serve<F, C>(listener: TcpListener, connection: C)
where
    C: Fn(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "bearer-testkit: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_plain(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    serve_connection(stream, router, None).await;
}

/// Serves HTTP/1 on one connection, plain or TLS; `peer` (the client's
/// certificate) goes on every request.
pub(crate) async fn serve_connection<S>(stream: S, router: Router, peer: Option<PeerCertificate>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let handle = ConnectionHandle(kill.clone());
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        if let Some(peer) = &peer {
            request.extensions_mut().insert(peer.clone());
        }
        router.clone().oneshot(request)
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // Dropping the connection future closes the socket with no answer.
        _ = kill.notified() => {}
    }
}

/// A running authorization server, protected API and second origin, on
/// loopback. Stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    control: Control,
    base_url: Url,
    other_origin_url: Url,
    mtls_base_url: Option<Url>,
    tasks: Vec<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the defaults: client `test-client` /
    /// `test-secret`, user `alice` / `wonderland`, one-hour tokens, the
    /// system clock.
    pub async fn start() -> TestServer {
        TestServer::builder().start().await
    }

    /// A builder for a configured server.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// The control handle (cheap to clone, usable from any task).
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// The issuer (the base URL); discovery lives under
    /// `/.well-known/openid-configuration`.
    pub fn issuer(&self) -> Url {
        self.base_url.clone()
    }

    fn url(&self, path: &str) -> Url {
        join(&self.base_url, path)
    }

    /// The token endpoint.
    pub fn token_url(&self) -> Url {
        self.url("/token")
    }

    /// The authorization endpoint.
    pub fn authorize_url(&self) -> Url {
        self.url("/authorize")
    }

    /// The RFC 8628 device authorization endpoint.
    pub fn device_authorization_url(&self) -> Url {
        self.url("/device_authorization")
    }

    /// The device flow's verification URI (a `GET` with `user_code` approves
    /// as the default user).
    pub fn device_verification_url(&self) -> Url {
        self.url("/device")
    }

    /// The RFC 7009 revocation endpoint.
    pub fn revocation_url(&self) -> Url {
        self.url("/revoke")
    }

    /// The RFC 7662 introspection endpoint.
    pub fn introspection_url(&self) -> Url {
        self.url("/introspect")
    }

    /// The discovery document.
    pub fn discovery_url(&self) -> Url {
        self.url("/.well-known/openid-configuration")
    }

    /// The plain login endpoint answering `{"token": ...}` (at the path
    /// [`TestServerBuilder::login_form`] set, `/login` by default).
    pub fn login_url(&self) -> Url {
        self.url(&self.control.shared().settings().login_form.path)
    }

    /// The plain login endpoint answering `{"access_token": ...}`.
    pub fn login_access_token_url(&self) -> Url {
        self.url("/login/access-token")
    }

    /// A URL on the protected API, e.g. `api_url("/api/echo")`.
    pub fn api_url(&self, path: &str) -> Url {
        self.url(path)
    }

    /// A URL on the other origin (another port), e.g.
    /// `other_origin_url("/api/echo")`.
    pub fn other_origin_url(&self, path: &str) -> Url {
        join(&self.other_origin_url, path)
    }

    /// A URL on the mutual-TLS listener, e.g. `mtls_url("/token")`:
    /// `https://127.0.0.1:PORT/...`, trusted through
    /// [`TestPki::client_builder`].
    ///
    /// # Panics
    /// If the server was built without [`TestServerBuilder::mutual_tls`].
    pub fn mtls_url(&self, path: &str) -> Url {
        let base = self.mtls_base_url.as_ref().unwrap_or_else(|| {
            panic!("bearer-testkit: mutual TLS is off; call TestServerBuilder::mutual_tls")
        });
        join(base, path)
    }

    /// The default client's id.
    pub fn client_id(&self) -> &str {
        self.control.shared().clients[0].id()
    }

    /// The default client's secret (empty for a public default client).
    pub fn client_secret(&self) -> &str {
        self.control.shared().clients[0].secret().unwrap_or("")
    }

    /// The default user's name.
    pub fn username(&self) -> &str {
        &self.control.shared().users[0].username
    }

    /// The default user's password.
    pub fn password(&self) -> &str {
        &self.control.shared().users[0].password
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Joins a path (with or without a leading `/`, with or without a query)
/// onto a base URL.
pub(crate) fn join(base: &Url, path: &str) -> Url {
    base.join(path).unwrap_or_else(|_| base.clone())
}
