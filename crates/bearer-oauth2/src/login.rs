//! A plain login endpoint: POST credentials, read a token from the answer.

use std::time::Duration;

use async_trait::async_trait;
use bearer_cache::{FetchContext, Secret, Token, TokenError, TokenSource};
use url::Url;

use crate::response::Parser;
use crate::scrub::{Secrets, shown_url};
use crate::transport::HttpOptions;

/// How the credentials are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoginEncoding {
    /// A JSON object (the default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// A non-OAuth login endpoint (`POST /login {"username", "password"}` →
/// `{"token": "…"}`), as many internal APIs have.
///
/// The Python most teams start from,
///
/// ```text
/// resp = requests.post("https://api.example.com/auth/token",
///                      data={"username": "alice", "password": password})
/// token = resp.json()["token"]
/// ```
///
/// is this source (`data=` is a form; `json=` would be
/// [`LoginEncoding::Json`], the default), and the cache then logs in again
/// only when the token nears its expiry:
///
/// ```
/// use bearer_cache::TokenCache;
/// use bearer_oauth2::{LoginEncoding, LoginEndpoint};
///
/// # fn run(password: String) -> Result<(), Box<dyn std::error::Error>> {
/// let source = LoginEndpoint::new("https://api.example.com/auth/token".parse()?, "alice", password)
///     .encoding(LoginEncoding::Form)
///     .token_pointer("token");
/// let cache = TokenCache::builder(source).build();
/// # let _ = cache; Ok(()) }
/// ```
///
/// With another service's field names and answer:
///
/// The token is read by JSON pointer: by default `/token`, else
/// `/access_token`. Its expiry comes from `expires_in` or `expires_at`
/// beside it (or at the top), else from the token's own JWT `exp`, else
/// the [`default_lifetime`](Self::default_lifetime). Answers are read with
/// the same care as an OAuth token endpoint: a body cap, a deadline,
/// retries of transient failures only, typed and scrubbed errors.
///
/// ```
/// use bearer_cache::TokenSource;
/// use bearer_oauth2::{LoginEncoding, LoginEndpoint};
/// use std::time::Duration;
///
/// let source = LoginEndpoint::new("https://api.example/auth/login".parse().unwrap(), "alice", "wonderland")
///     .field_names("email", "password")
///     .encoding(LoginEncoding::Json)
///     .token_pointer("/data/jwt")
///     .default_lifetime(Duration::from_secs(900));
/// assert_eq!(source.id(), "login:alice@https://api.example/auth/login");
/// assert!(!format!("{source:?}").contains("wonderland"));
/// ```
#[derive(Clone)]
pub struct LoginEndpoint {
    url: Url,
    id: String,
    username: String,
    password: Secret,
    username_field: String,
    password_field: String,
    fields: Vec<(String, String)>,
    encoding: LoginEncoding,
    token_pointers: Vec<String>,
    default_lifetime: Option<Duration>,
    options: HttpOptions,
}

impl std::fmt::Debug for LoginEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginEndpoint")
            .field("url", &shown_url(&self.url))
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("username_field", &self.username_field)
            .field("password_field", &self.password_field)
            .field("fields", &self.fields)
            .field("encoding", &self.encoding)
            .field("token_pointers", &self.token_pointers)
            .field("default_lifetime", &self.default_lifetime)
            .field("options", &self.options)
            .finish()
    }
}

impl LoginEndpoint {
    /// Logs in at `url` as `username`.
    pub fn new(url: Url, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        let username = username.into();
        LoginEndpoint {
            id: format!("login:{username}@{}", shown_url(&url)),
            url,
            username,
            password: password.into(),
            username_field: "username".to_owned(),
            password_field: "password".to_owned(),
            fields: Vec::new(),
            encoding: LoginEncoding::default(),
            token_pointers: vec!["/token".to_owned(), "/access_token".to_owned()],
            default_lifetime: None,
            options: HttpOptions::default(),
        }
    }

    /// The names of the credential fields (default `username`, `password`).
    pub fn field_names(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username_field = username.into();
        self.password_field = password.into();
        self
    }

    /// Another field sent with the credentials (e.g. a tenant).
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// JSON (default) or form encoding.
    pub fn encoding(mut self, encoding: LoginEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Where the token is in the answer: a JSON pointer (`/data/token`),
    /// or a plain top-level field name (`jwt`, read as `/jwt`).
    pub fn token_pointer(mut self, pointer: impl Into<String>) -> Self {
        let pointer = pointer.into();
        let pointer = if pointer.starts_with('/') {
            pointer
        } else {
            format!("/{}", pointer.replace('~', "~0").replace('/', "~1"))
        };
        self.token_pointers = vec![pointer];
        self
    }

    /// The lifetime of a token whose answer says nothing of its expiry and
    /// which is not a JWT (default: the cache's default lifetime).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = Some(lifetime);
        self
    }

    crate::transport::http_options!("", "login", "retries");

    /// Names the source in shared stores (default `login:<user>@<url>`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    fn request(&self) -> reqwest::RequestBuilder {
        let request = self
            .options
            .http
            .post(self.url.clone())
            .header(http::header::ACCEPT, "application/json");
        let mut fields: Vec<(&str, &str)> = vec![
            (&self.username_field, &self.username),
            (&self.password_field, self.password.expose_secret()),
        ];
        fields.extend(self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        match self.encoding {
            LoginEncoding::Form => request.form(&fields),
            LoginEncoding::Json => {
                let object: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                request.json(&object)
            }
        }
    }
}

#[async_trait]
impl TokenSource for LoginEndpoint {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let secrets = Secrets::new([self.password.expose_secret()], None);
        let pointers: Vec<&str> = self.token_pointers.iter().map(String::as_str).collect();
        let parser = Parser {
            secrets: &secrets,
            token_pointers: &pointers,
            default_lifetime: self.default_lifetime,
            now: self.options.clock.system_now(),
            binding: None,
        };
        self.options
            .exchange(
                "login",
                || Ok(self.request()),
                |raw| parser.parse(raw.status, &raw.headers, &raw.body),
            )
            .await
    }
}
