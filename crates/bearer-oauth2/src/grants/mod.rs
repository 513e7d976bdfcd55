//! The OAuth 2.0 grants, each a [`TokenSource`](bearer_cache::TokenSource).

pub(crate) mod authorization_code;
mod callback;
pub(crate) mod client_credentials;
pub(crate) mod device_code;
pub(crate) mod password;
pub(crate) mod refresh;
pub(crate) mod user_sign_in;

/// Builder methods every grant forwards to its [`OAuthClient`](crate::OAuthClient).
macro_rules! client_options {
    () => {
        /// How the client authenticates (default `client_secret_basic`);
        /// see [`ClientAuth`]($crate::ClientAuth).
        pub fn auth_method(mut self, auth: $crate::ClientAuth) -> Self {
            self.client = self.client.auth_method(auth);
            self
        }

        /// What a client assertion's `aud` names (default: the token
        /// endpoint); see [`OAuthClient::assertion_audience`]($crate::OAuthClient::assertion_audience).
        pub fn assertion_audience(mut self, audience: $crate::AssertionAudience) -> Self {
            self.client = self.client.assertion_audience(audience);
            self
        }

        /// How long a client assertion is valid (default 60 s).
        pub fn assertion_lifetime(mut self, lifetime: std::time::Duration) -> Self {
            self.client = self.client.assertion_lifetime(lifetime);
            self
        }

        /// Adds a default scope, used when the cache's key names none.
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            self.client = self.client.scope(scope);
            self
        }

        /// Adds default scopes, used when the cache's key names none.
        pub fn scopes<I, S>(mut self, scopes: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.client = self.client.scopes(scopes);
            self
        }

        /// Sets the default `audience`.
        pub fn audience(mut self, audience: impl Into<String>) -> Self {
            self.client = self.client.audience(audience);
            self
        }

        /// Adds a default `resource` indicator (RFC 8707).
        pub fn resource(mut self, resource: impl Into<String>) -> Self {
            self.client = self.client.resource(resource);
            self
        }

        /// Adds a parameter sent with every token request.
        pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.client = self.client.param(name, value);
            self
        }

        /// The HTTP client (default: reqwest's, following no redirects).
        pub fn http_client(mut self, http: reqwest::Client) -> Self {
            self.client = self.client.http_client(http);
            self
        }

        /// The deadline of one token request, retries included (default 10 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.client = self.client.timeout(timeout);
            self
        }

        /// The largest answer read (default 64 KiB).
        pub fn max_body_bytes(mut self, limit: usize) -> Self {
            self.client = self.client.max_body_bytes(limit);
            self
        }

        /// How many times a transient failure is retried within one token
        /// request (default 2); see [`OAuthClient::retries`](crate::OAuthClient::retries).
        pub fn retries(mut self, retries: u32) -> Self {
            self.client = self.client.retries(retries);
            self
        }

        /// How retries within one token request are spaced (default from
        /// 200 ms, at most 2 s apart); see [`OAuthClient::retry_backoff`](crate::OAuthClient::retry_backoff).
        pub fn retry_backoff(mut self, backoff: bearer_cache::Backoff) -> Self {
            self.client = self.client.retry_backoff(backoff);
            self
        }

        /// The clock that waits between retries and polls (default:
        /// tokio's timer).
        pub fn clock(mut self, clock: impl bearer_cache::Clock) -> Self {
            self.client = self.client.clock(clock);
            self
        }

        /// Binds the tokens to a DPoP key (RFC 9449); see
        /// [`OAuthClient::dpop`](crate::OAuthClient::dpop).
        pub fn dpop(mut self, key: bearer_dpop::DpopKey) -> Self {
            self.client = self.client.dpop(key);
            self
        }

        /// Names the source in shared stores (default
        /// `<grant>:<client id>@<token url>`); never put a secret in it.
        pub fn with_id(mut self, id: impl Into<String>) -> Self {
            self.id = id.into();
            self
        }

        /// The client configuration.
        pub fn client(&self) -> &$crate::OAuthClient {
            &self.client
        }
    };
    (with_secret) => {
        $crate::grants::client_options!();

        /// The client secret, for a confidential client.
        pub fn client_secret(mut self, secret: impl Into<bearer_cache::Secret>) -> Self {
            self.client = self.client.client_secret(secret);
            self
        }
    };
}

pub(crate) use client_options;
