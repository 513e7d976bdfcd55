//! Issued tokens, authorization codes and device grants.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;

/// The server's idea of now (the injected clock plus the clock offset).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) mono: Instant,
    pub(crate) unix: u64,
}

/// What a token grants; shared by access and refresh tokens of one grant.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) id: u64,
    pub(crate) client_id: String,
    pub(crate) subject: Option<String>,
    pub(crate) scope: Vec<String>,
    pub(crate) audience: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) grant: Grant,
    pub(crate) expires_at: Instant,
    pub(crate) exp_unix: u64,
    pub(crate) iat_unix: u64,
    pub(crate) revoked: bool,
    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    pub(crate) jkt: Option<String>,
}

#[derive(Debug)]
pub(crate) struct RefreshRecord {
    pub(crate) grant: Grant,
    pub(crate) iat_unix: u64,
    pub(crate) active: bool,
}

#[derive(Debug)]
pub(crate) struct AuthCode {
    pub(crate) grant: Grant,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: Option<String>,
    pub(crate) expires_at: Instant,
    pub(crate) used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    Consumed,
}

#[derive(Debug)]
pub(crate) struct DeviceGrant {
    pub(crate) user_code: String,
    pub(crate) grant: Grant,
    pub(crate) expires_at: Instant,
    pub(crate) interval: Duration,
    pub(crate) last_poll: Option<Instant>,
    pub(crate) status: DeviceStatus,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unknown,
    Revoked,
    Expired,
}

impl Refusal {
    pub(crate) fn description(self) -> &'static str {
        match self {
            Refusal::Unknown => "the access token is not known",
            Refusal::Revoked => "the access token was revoked",
            Refusal::Expired => "the access token expired",
        }
    }
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) access: HashMap<String, AccessRecord>,
    pub(crate) refresh: HashMap<String, RefreshRecord>,
    pub(crate) codes: HashMap<String, AuthCode>,
    /// Keyed by device code.
    pub(crate) devices: HashMap<String, DeviceGrant>,
    next_grant_id: u64,
}

/// Counts only: the keys are live secrets.
impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("access_tokens", &self.access.len())
            .field("refresh_tokens", &self.refresh.len())
            .field("codes", &self.codes.len())
            .field("device_grants", &self.devices.len())
            .finish()
    }
}

impl Store {
    pub(crate) fn new_grant_id(&mut self) -> u64 {
        self.next_grant_id += 1;
        self.next_grant_id
    }

    /// A live access token's grant, or why not.
    pub(crate) fn check_access(&self, token: &str, now: Now) -> Result<&AccessRecord, Refusal> {
        let record = self.access.get(token).ok_or(Refusal::Unknown)?;
        if record.revoked {
            Err(Refusal::Revoked)
        } else if now.mono >= record.expires_at {
            Err(Refusal::Expired)
        } else {
            Ok(record)
        }
    }

    /// Revokes every access token of a grant (refresh-token revocation and
    /// authorization-code reuse, RFC 7009 §2.1 and RFC 6749 §4.1.2).
    pub(crate) fn revoke_grant(&mut self, grant_id: u64) {
        for record in self.access.values_mut() {
            if record.grant.id == grant_id {
                record.revoked = true;
            }
        }
        for record in self.refresh.values_mut() {
            if record.grant.id == grant_id {
                record.active = false;
            }
        }
    }

    pub(crate) fn device_by_user_code(&mut self, user_code: &str) -> Option<&mut DeviceGrant> {
        let wanted = normalize_user_code(user_code);
        self.devices
            .values_mut()
            .find(|d| normalize_user_code(&d.user_code) == wanted)
    }
}

/// 32 random bytes, base64url without padding.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RFC 8628 §6.1 style user code: `BCDF-GHJK` from an unambiguous alphabet.
pub(crate) fn random_user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::rng();
    let mut code = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        let pick = (rng.next_u32() as usize) % ALPHABET.len();
        code.push(char::from(ALPHABET[pick]));
    }
    code
}

/// User codes compare case-insensitively and without punctuation (RFC 8628 §6.1).
fn normalize_user_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}
