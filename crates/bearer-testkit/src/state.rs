//! The state every handler and the control handle share.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use bearer_cache::SharedClock;
use http::HeaderMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};
use url::Url;

use crate::config::{AccessTokenFormat, ClientConfig, LoginExpiry, LoginForm, UserConfig};
use crate::counters::{Counters, Endpoint, TokenRequestRecord, redacted_copy};
use crate::faults::FaultPlan;
use crate::store::{AccessRecord, Grant, Now, RefreshRecord, Store, random_token};
use crate::validator::ApiValidator;

/// Locks a mutex; a panicking test thread must not poison the server.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings the control handle can change at run time.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) token_lifetime: Duration,
    pub(crate) token_latency: Duration,
    pub(crate) clock_offset_secs: i64,
    pub(crate) rotate_refresh_tokens: bool,
    pub(crate) access_token_format: AccessTokenFormat,
    pub(crate) login_expiry: LoginExpiry,
    /// Read once for the route's path; the field names at each request.
    pub(crate) login_form: LoginForm,
    pub(crate) required_audience: Option<String>,
    pub(crate) reject_api_requests: u64,
    pub(crate) revoke_presented_probability: f64,
    pub(crate) forced_slow_downs: u64,
    pub(crate) denied_authorizations: u64,
    pub(crate) device_interval: Duration,
    pub(crate) device_lifetime: Duration,
    pub(crate) code_lifetime: Duration,
    pub(crate) require_pkce: bool,
    pub(crate) validator: ApiValidator,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_lifetime: Duration::from_secs(3600),
            token_latency: Duration::ZERO,
            clock_offset_secs: 0,
            rotate_refresh_tokens: false,
            access_token_format: AccessTokenFormat::Opaque,
            login_expiry: LoginExpiry::ExpiresIn,
            login_form: LoginForm::default(),
            required_audience: None,
            reject_api_requests: 0,
            revoke_presented_probability: 0.0,
            forced_slow_downs: 0,
            denied_authorizations: 0,
            device_interval: Duration::from_secs(5),
            device_lifetime: Duration::from_secs(600),
            code_lifetime: Duration::from_secs(60),
            require_pkce: true,
            validator: ApiValidator::Local,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(crate) base_url: Url,
    pub(crate) other_origin_url: Url,
    pub(crate) clients: Vec<ClientConfig>,
    pub(crate) users: Vec<UserConfig>,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) store: Mutex<Store>,
    pub(crate) token_faults: Mutex<FaultPlan>,
    pub(crate) login_faults: Mutex<FaultPlan>,
    pub(crate) counters: Mutex<Counters>,
    pub(crate) last_headers: Mutex<HashMap<Endpoint, HeaderMap>>,
    pub(crate) last_token_request: Mutex<Option<TokenRequestRecord>>,
    pub(crate) dpop: Mutex<crate::dpop::DpopState>,
    /// Seen client assertion `jti`s and assertion faults.
    pub(crate) assertions: Mutex<crate::client_assertion::AssertionBook>,
    /// Seedable, for reproducible probabilistic faults.
    pub(crate) rng: Mutex<StdRng>,
    /// For the introspection validator.
    pub(crate) http: reqwest::Client,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        clock: SharedClock,
        base_url: Url,
        other_origin_url: Url,
        clients: Vec<ClientConfig>,
        users: Vec<UserConfig>,
        settings: Settings,
        seed: u64,
    ) -> Self {
        Shared {
            clock,
            base_url,
            other_origin_url,
            clients,
            users,
            settings: Mutex::new(settings),
            store: Mutex::default(),
            token_faults: Mutex::default(),
            login_faults: Mutex::default(),
            counters: Mutex::default(),
            last_headers: Mutex::default(),
            last_token_request: Mutex::default(),
            dpop: Mutex::default(),
            assertions: Mutex::default(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            http: crate::client_builder().build().unwrap_or_default(),
        }
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// The server's now: the injected clock shifted by the clock offset.
    pub(crate) fn now(&self) -> Now {
        let offset = lock(&self.settings).clock_offset_secs;
        let shift = Duration::from_secs(offset.unsigned_abs());
        let (mono, system) = (self.clock.now(), self.clock.system_now());
        let (mono, system) = if offset >= 0 {
            (mono + shift, system + shift)
        } else {
            (
                mono.checked_sub(shift).unwrap_or(mono),
                system.checked_sub(shift).unwrap_or(system),
            )
        };
        let unix = system
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Now { mono, unix }
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.counters));
    }

    pub(crate) fn record_headers(&self, endpoint: Endpoint, headers: &HeaderMap) {
        lock(&self.last_headers).insert(endpoint, redacted_copy(headers));
    }

    pub(crate) fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.id == id)
    }

    pub(crate) fn user(&self, username: &str, password: &str) -> Option<&UserConfig> {
        self.users
            .iter()
            .find(|u| u.username == username && u.password == password)
    }

    pub(crate) fn issuer(&self) -> &str {
        self.base_url.as_str()
    }

    /// Stores a new access token for `grant` and answers its token and
    /// lifetime in seconds.
    pub(crate) fn mint_access_token(&self, store: &mut Store, grant: &Grant) -> (String, u64) {
        let settings = self.settings();
        let now = self.now();
        let lifetime = settings.token_lifetime;
        let exp_unix = now.unix + lifetime.as_secs();
        let token = match &settings.access_token_format {
            AccessTokenFormat::Opaque => random_token(),
            AccessTokenFormat::JwtUnsigned => self.jwt(grant, now, exp_unix, None),
            AccessTokenFormat::JwtHs256 { key } => self.jwt(grant, now, exp_unix, Some(key)),
        };
        store.access.insert(
            token.clone(),
            AccessRecord {
                grant: grant.clone(),
                expires_at: now.mono + lifetime,
                exp_unix,
                iat_unix: now.unix,
                revoked: false,
                jkt: None,
            },
        );
        (token, lifetime.as_secs())
    }

    fn jwt(&self, grant: &Grant, now: Now, exp: u64, key: Option<&[u8]>) -> String {
        let mut claims = json!({
            "iss": self.issuer(),
            "client_id": grant.client_id,
            "scope": grant.scope.join(" "),
            "iat": now.unix,
            "exp": exp,
            "jti": random_token(),
        });
        if let Some(subject) = &grant.subject {
            claims["sub"] = subject.clone().into();
        }
        match grant.audience.as_slice() {
            [] => {}
            [one] => claims["aud"] = one.clone().into(),
            many => claims["aud"] = many.to_vec().into(),
        }
        crate::jwt::encode(&claims, key)
    }

    pub(crate) fn mint_refresh_token(&self, store: &mut Store, grant: &Grant) -> String {
        let token = random_token();
        store.refresh.insert(
            token.clone(),
            RefreshRecord {
                grant: grant.clone(),
                iat_unix: self.now().unix,
                active: true,
            },
        );
        token
    }

    /// A token endpoint success body (RFC 6749 §5.1).
    pub(crate) fn token_response(
        &self,
        store: &mut Store,
        grant: &Grant,
        refresh_token: Option<String>,
    ) -> Map<String, Value> {
        let (access_token, expires_in) = self.mint_access_token(store, grant);
        let mut body = Map::new();
        body.insert("access_token".into(), access_token.into());
        body.insert("token_type".into(), "Bearer".into());
        body.insert("expires_in".into(), expires_in.into());
        body.insert("scope".into(), grant.scope.join(" ").into());
        if let Some(refresh_token) = refresh_token {
            body.insert("refresh_token".into(), refresh_token.into());
        }
        body
    }
}
