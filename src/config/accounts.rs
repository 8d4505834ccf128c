//! `[accounts]`: users and sessions built into upgate (`/v1/auth/...`, `/v1/users`), the
//! tokens upgate signs itself, and signed upload receipts. Plain data; the defaults and what
//! each setting guards against are documented in `config/upgate.toml`.

use serde::Deserialize;

/// `[accounts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// Accounts, upgate's signing keys, the JWKS and receipts. Off: `/v1/auth/...` and
    /// `/v1/users` answer 404 and uploads carry no receipt. Needs master keys
    /// (`storage.encryption`), which seal the signing keys in the database.
    pub enabled: bool,
    /// Anyone may register through `POST /v1/auth/register` (into `tenant`). Default off.
    pub open_registration: bool,
    /// Name of the tenant open registration puts users in, and login uses when the request
    /// names none. Empty: logins must name their tenant; open registration impossible.
    pub tenant: String,
    /// `iss` of the access tokens upgate signs.
    pub issuer: String,
    /// Access-token lifetime (default 900 s).
    pub access_token_ttl_secs: u64,
    /// Refresh-token (and session) lifetime (default 30 days).
    pub refresh_token_ttl_secs: u64,
    /// How long a rotated-out signing key keeps verifying (at least the access-token
    /// lifetime, so tokens it signed stay good until they expire).
    pub signing_key_grace_secs: u64,
    /// argon2id memory cost, KiB (OWASP: 19456 with 2 iterations).
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Failed logins on one account (within `failure_window_secs`) before it is locked.
    pub max_failures_per_account: u32,
    /// Failed logins from one client address (within the window) before it is locked.
    pub max_failures_per_address: u32,
    /// The window failures are counted in.
    pub failure_window_secs: u64,
    /// How long a lock lasts.
    pub lockout_secs: u64,
    /// TTL of the `/v1/auth/me` answer cached in Redis (when `[redis] url` is set); 0: no cache.
    pub me_cache_ttl_secs: u64,
    /// Longest an invitation (`POST /v1/invites`) may be valid, and its default lifetime.
    pub invite_ttl_secs: u64,
}

/// Shortest password accepted, in bytes (OWASP ASVS: at least 12 characters).
pub const MIN_PASSWORD_BYTES: usize = 12;
/// Longest password accepted, in bytes: bounds the hashing work one request can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

impl AccountsConfig {
    /// Problems that need nothing but the values.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.enabled {
            return p;
        }
        if self.invite_ttl_secs == 0 || self.invite_ttl_secs > 30 * 24 * 3600 {
            p.push("accounts.invite_ttl_secs must be 1..=2592000".into());
        }
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > 24 * 3600 {
            p.push("accounts.access_token_ttl_secs must be 1..=86400".into());
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            p.push("accounts.refresh_token_ttl_secs must be at least access_token_ttl_secs".into());
        }
        if self.signing_key_grace_secs < self.access_token_ttl_secs {
            p.push("accounts.signing_key_grace_secs must be at least access_token_ttl_secs".into());
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism.max(1)
            || self.argon2_iterations == 0
            || self.argon2_parallelism == 0
        {
            p.push("accounts.argon2_*: memory >= 8 KiB per lane, iterations and lanes >= 1".into());
        }
        if self.max_failures_per_account == 0 || self.max_failures_per_address == 0 {
            p.push("accounts.max_failures_per_account/_per_address must be at least 1".into());
        }
        if self.open_registration && self.tenant.is_empty() {
            p.push("accounts.open_registration needs accounts.tenant".into());
        }
        if self.issuer.is_empty() {
            p.push("accounts.issuer must not be empty".into());
        }
        p
    }
}
