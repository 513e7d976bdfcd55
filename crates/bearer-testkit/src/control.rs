//! The control handle: faults, time, device approval, counters.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::{AccessTokenFormat, LoginExpiry};
use crate::counters::{Counters, Endpoint, TokenRequestRecord};
use crate::faults::TokenFault;
use crate::state::{Shared, lock};
use crate::store::{DeviceStatus, Grant};
use crate::validator::ApiValidator;

/// Changes a running [`crate::TestServer`] and reads what it saw.
///
/// Cheap to clone; `Send + Sync`; usable from any task while the server runs.
#[derive(Debug, Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Control { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    // --- DPoP (RFC 9449) --------------------------------------------------

    /// Whether proofs must carry the server's current nonce, at the token
    /// endpoint and the API (default off). Answers then carry it in
    /// `DPoP-Nonce`, and a proof without it gets `use_dpop_nonce`.
    pub fn require_dpop_nonce(&self, require: bool) {
        lock(&self.shared.dpop).set_require_nonce(require);
    }

    /// Makes a new nonce current; proofs with the old one get
    /// `use_dpop_nonce` and the new one.
    pub fn rotate_dpop_nonce(&self) {
        lock(&self.shared.dpop).rotate_nonce();
    }

    /// The next `n` proofs checked (token endpoint or API) meet `fault`.
    pub fn fail_next_dpop_proofs(&self, n: u64, fault: crate::DpopFault) {
        lock(&self.shared.dpop).push_faults(n, fault);
    }

    /// What the DPoP checks saw so far.
    pub fn dpop_counts(&self) -> crate::DpopCounts {
        lock(&self.shared.dpop).counts()
    }

    // --- token endpoint -------------------------------------------------

    /// Lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.shared.settings).token_lifetime = lifetime;
    }

    /// Real-time delay before every token response.
    pub fn set_token_latency(&self, latency: Duration) {
        lock(&self.shared.settings).token_latency = latency;
    }

    /// Turns refresh-token rotation on or off.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        lock(&self.shared.settings).rotate_refresh_tokens = rotate;
    }

    /// Opaque or JWT-shaped access tokens from now on.
    pub fn set_access_token_format(&self, format: AccessTokenFormat) {
        lock(&self.shared.settings).access_token_format = format;
    }

    /// The next `n` token requests are answered by `fault` (queued after
    /// faults already pending).
    pub fn fail_next_token_requests(&self, n: u64, fault: TokenFault) {
        lock(&self.shared.token_faults).push(n, fault);
    }

    /// Each token request (with no queued fault) is answered by `fault` with
    /// `probability`; several calls stack (e.g. 5 % 503 and 1 % dropped
    /// connections). Draws come from the seeded RNG ([`Control::set_seed`]).
    pub fn fail_token_requests_randomly(&self, fault: TokenFault, probability: f64) {
        lock(&self.shared.token_faults).add_random(fault, probability);
    }

    /// Forgets queued and random token faults.
    pub fn clear_token_faults(&self) {
        lock(&self.shared.token_faults).clear();
    }

    /// The next `n` login requests are answered by `fault`.
    pub fn fail_next_login_requests(&self, n: u64, fault: TokenFault) {
        lock(&self.shared.login_faults).push(n, fault);
    }

    /// Each login request is answered by `fault` with `probability`.
    pub fn fail_login_requests_randomly(&self, fault: TokenFault, probability: f64) {
        lock(&self.shared.login_faults).add_random(fault, probability);
    }

    /// Forgets queued and random login faults.
    pub fn clear_login_faults(&self) {
        lock(&self.shared.login_faults).clear();
    }

    /// The expiry field `/login` writes.
    pub fn set_login_expiry(&self, expiry: LoginExpiry) {
        lock(&self.shared.settings).login_expiry = expiry;
    }

    /// Reseeds the RNG behind the probabilistic faults.
    pub fn set_seed(&self, seed: u64) {
        *lock(&self.shared.rng) = StdRng::seed_from_u64(seed);
    }

    // --- tokens and time ------------------------------------------------

    /// Revokes every access token issued so far (refresh tokens keep
    /// working, so a client can recover; see
    /// [`Control::revoke_all_refresh_tokens`]).
    pub fn revoke_all(&self) {
        let mut store = lock(&self.shared.store);
        for record in store.access.values_mut() {
            record.revoked = true;
        }
    }

    /// Retires every refresh token issued so far.
    pub fn revoke_all_refresh_tokens(&self) {
        let mut store = lock(&self.shared.store);
        for record in store.refresh.values_mut() {
            record.active = false;
        }
    }

    /// Issues an access token directly (no HTTP, no counters) for the
    /// default client and user with these space-separated scopes.
    pub fn mint_access_token(&self, scope: &str) -> String {
        let shared = &self.shared;
        let mut store = lock(&shared.store);
        let grant = Grant {
            id: store.new_grant_id(),
            client_id: shared.clients[0].id.clone(),
            subject: Some(shared.users[0].username.clone()),
            scope: crate::config::split_scope(scope),
            audience: Vec::new(),
        };
        shared.mint_access_token(&mut store, &grant).0
    }

    /// Shifts the server's idea of now by `secs` (positive: the server runs
    /// ahead of the client). Affects expiry checks and the `expires_at` /
    /// JWT `exp` / `iat` it writes.
    pub fn set_clock_offset_secs(&self, secs: i64) {
        lock(&self.shared.settings).clock_offset_secs = secs;
    }

    // --- protected API --------------------------------------------------

    /// The next `n` API requests that carry a bearer token get a 401
    /// `invalid_token` challenge whatever the token.
    pub fn reject_next_api_requests(&self, n: u64) {
        lock(&self.shared.settings).reject_api_requests = n;
    }

    /// The API revokes the presented (otherwise valid) token and answers 401
    /// on `probability` of requests, drawn from the seeded RNG.
    pub fn revoke_presented_token_with_probability(&self, probability: f64) {
        lock(&self.shared.settings).revoke_presented_probability = probability.clamp(0.0, 1.0);
    }

    /// Makes the API require this audience (`None`: any).
    pub fn set_required_audience(&self, audience: Option<String>) {
        lock(&self.shared.settings).required_audience = audience;
    }

    /// Switches the API's token validation mode.
    pub fn set_api_validator(&self, validator: ApiValidator) {
        lock(&self.shared.settings).validator = validator;
    }

    // --- authorization code and device flows ---------------------------

    /// The next `n` authorize requests redirect with `error=access_denied`.
    pub fn deny_next_authorizations(&self, n: u64) {
        lock(&self.shared.settings).denied_authorizations = n;
    }

    /// Approves a pending device grant as the default user; `false` if no
    /// pending grant has this user code.
    pub fn approve_device(&self, user_code: &str) -> bool {
        let user = self.shared.users[0].username.clone();
        self.decide_device(user_code, DeviceStatus::Approved(user))
    }

    /// Denies a pending device grant; `false` if no pending grant has this
    /// user code.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.decide_device(user_code, DeviceStatus::Denied)
    }

    fn decide_device(&self, user_code: &str, decision: DeviceStatus) -> bool {
        let mut store = lock(&self.shared.store);
        match store.device_by_user_code(user_code) {
            Some(device) if device.status == DeviceStatus::Pending => {
                device.status = decision;
                true
            }
            _ => false,
        }
    }

    /// User codes of device grants awaiting a decision.
    pub fn pending_device_codes(&self) -> Vec<String> {
        let store = lock(&self.shared.store);
        let mut codes: Vec<String> = store
            .devices
            .values()
            .filter(|d| d.status == DeviceStatus::Pending)
            .map(|d| d.user_code.clone())
            .collect();
        codes.sort();
        codes
    }

    /// The next `n` device-code polls answer `slow_down` whatever their timing.
    pub fn force_slow_down(&self, n: u64) {
        lock(&self.shared.settings).forced_slow_downs = n;
    }

    /// The next `n` client assertions are refused with `invalid_client`
    /// although valid (a key the server no longer trusts, a registration
    /// changed under the client). Counted in
    /// [`Counters::assertions_rejected`].
    pub fn reject_next_client_assertions(&self, n: u64) {
        lock(&self.shared.assertions).reject_next(n);
    }

    // --- observations -----------------------------------------------------

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Zeroes the counters and forgets last headers and the last token request.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
        lock(&self.shared.last_headers).clear();
        *lock(&self.shared.last_token_request) = None;
    }

    /// The headers of the last request `endpoint` saw (credential headers
    /// are marked sensitive, so `Debug` hides them).
    pub fn last_headers(&self, endpoint: Endpoint) -> Option<HeaderMap> {
        lock(&self.shared.last_headers).get(&endpoint).cloned()
    }

    /// The last token request's form parameters and client authentication.
    pub fn last_token_request(&self) -> Option<TokenRequestRecord> {
        lock(&self.shared.last_token_request).clone()
    }
}
