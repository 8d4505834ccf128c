//! upgate's own accounts: users of a tenant who sign in with an e-mail address and a password,
//! and the sessions they hold. The front end (`api::auth`) turns requests into these calls.
//!
//! # Sessions
//!
//! A login creates a *session* and returns an access token (a JWT upgate signs, 15 minutes by
//! default, naming the session) and a refresh token (`ugr_<id>_<secret>`, opaque, 30 days, only
//! its SHA-256 stored). A refresh spends the presented token and issues a new one in the same
//! session; presenting a spent token again means two parties hold it, so the whole session is
//! revoked (OAuth 2.0 Security BCP §4.14). Logout revokes the session. Every use of an access
//! token checks its session, so a revoked session ends its access tokens at once.
//!
//! # Passwords and brute force
//!
//! argon2id (see `auth::password`), 12..=1024 bytes. An unknown e-mail, an unknown tenant, a
//! disabled user and a wrong password give the same 401 with the same body after the same
//! hashing work (a dummy hash stands in). Failures are counted per account (tenant + e-mail,
//! whether or not it exists, so the lock reveals nothing either) and per client address; past
//! the configured number within the window, that key is locked for `lockout_secs`: attempts
//! are refused with 429 and Retry-After before any hashing, right password or not. A success
//! clears the account's count, not the address's (an attacker's own account must not reset it).

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::keys::Accounts;
use crate::auth::password::Password;
use crate::auth::principal::{Principal, Via};
use crate::config::accounts::AccountsConfig;
use crate::error::{Error, Result};
use crate::metadata::accounts::{RefreshRecord, Role, SessionRecord, UserRecord};
use crate::metadata::control::{ControlStore, Tenant};
use crate::state::AppState;

/// Longest e-mail address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest display name.
pub const MAX_NAME_CHARS: usize = 100;

/// The tokens a login or refresh returns.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
}

/// A user as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    pub role: &'static str,
    pub created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            user_id: u.id.clone(),
            tenant_id: u.tenant_id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role.as_str(),
            created_at: crate::clock::iso8601(crate::clock::from_ms(u.created_at_ms)),
        }
    }
}

/// The accounts handles, or 404 when accounts are off (the routes do not exist then).
pub fn enabled(state: &AppState) -> Result<&Accounts> {
    state.credentials.accounts.as_ref().ok_or(Error::NotFound)
}

/// Normalises an e-mail address: trimmed, lower case, one `@` with text on both sides, no
/// whitespace or control characters, at most 254 bytes.
pub fn normalise_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && e.len() <= MAX_EMAIL_BYTES
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(e)
}

fn clean_name(name: Option<&str>) -> Result<String> {
    let n = name.unwrap_or("").trim();
    if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) {
        return Err(Error::InvalidJson(
            "name is at most 100 characters, without control characters.",
        ));
    }
    Ok(n.to_string())
}

fn hash_secret(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn ms(d: u64) -> i64 {
    i64::try_from(d.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Creates a user of `tenant_id` (the operator, a tenant admin, or open registration).
pub async fn create_user(
    a: &Accounts,
    tenant_id: &str,
    email: &str,
    password: Password,
    name: Option<&str>,
    role: Role,
) -> Result<UserRecord> {
    let email = normalise_email(email).ok_or(Error::InvalidJson("email is not an address."))?;
    if !password.acceptable() {
        return Err(Error::InvalidJson("password must be 12 to 1024 bytes."));
    }
    let name = clean_name(name)?;
    let password_hash = a.hasher.hash(password).await.map_err(Error::internal)?;
    let now = crate::clock::now_ms();
    let user = UserRecord {
        id: crate::id::random_hex(8),
        tenant_id: tenant_id.to_string(),
        email,
        name,
        role,
        password_hash,
        created_at_ms: now,
        updated_at_ms: now,
        disabled: false,
    };
    if !a.store.insert_user(&user).await? {
        return Err(Error::AlreadyExists);
    }
    Ok(user)
}

/// A tenant named by id or by name.
async fn find_tenant(control: &dyn ControlStore, t: &str) -> Result<Option<Tenant>> {
    if let Some(t) = control.tenant(t).await? {
        return Ok(Some(t));
    }
    Ok(control.tenant_by_name(t).await?)
}

/// `POST /v1/auth/register`: with an invitation, into its tenant and role (open registration
/// or not); otherwise open registration into the configured tenant.
pub async fn register(
    state: &AppState,
    email: &str,
    password: Password,
    name: Option<&str>,
    invite: Option<&str>,
) -> Result<UserRecord> {
    let a = enabled(state)?;
    let cfg = &state.config.accounts;
    if let Some(token) = invite {
        a.signing
            .refresh_if_stale(a.store.as_ref())
            .await
            .map_err(|e| Error::internal(format!("signing keys: {e}")))?;
        let c = a
            .signing
            .verify_invite(token)
            .map_err(|_| Error::AccessDenied("The invitation is not valid."))?;
        // An invitation is for one address: the account made with it is the only one.
        if normalise_email(email).as_deref() != Some(c.email.as_str()) {
            return Err(Error::AccessDenied(
                "The invitation is for another address.",
            ));
        }
        let role =
            Role::parse(&c.role).ok_or(Error::AccessDenied("The invitation is not valid."))?;
        return create_user(a, &c.tenant, email, password, name, role).await;
    }
    if !cfg.open_registration {
        return Err(Error::AccessDenied("Registration is closed."));
    }
    let tenant = state
        .control
        .tenant_by_name(&cfg.tenant)
        .await?
        .ok_or_else(|| Error::internal("accounts.tenant does not exist"))?;
    create_user(a, &tenant.id, email, password, name, Role::Member).await
}

fn address_key(ip: IpAddr) -> String {
    format!("address:{ip}")
}

fn account_key(tenant: &str, email: &str) -> String {
    format!("account:{tenant}:{email}")
}

/// Refuses a locked key with 429 and the seconds left.
async fn check_lock(a: &Accounts, key: &str, now: i64) -> Result<()> {
    if let Some(f) = a.store.failures(key).await?
        && f.locked_until_ms > now
    {
        let secs = (f.locked_until_ms - now).div_euclid(1000) + 1;
        return Err(Error::SlowDown(u64::try_from(secs).unwrap_or(1)));
    }
    Ok(())
}

async fn count_failure(
    a: &Accounts,
    cfg: &AccountsConfig,
    key: &str,
    max: u32,
    now: i64,
) -> Result<()> {
    let n = a
        .store
        .add_failure(key, now, now - ms(cfg.failure_window_secs))
        .await?;
    if n >= i64::from(max) {
        a.store.lock(key, now + ms(cfg.lockout_secs)).await?;
    }
    Ok(())
}

/// `POST /v1/auth/login`.
pub async fn login(
    state: &AppState,
    ip: IpAddr,
    tenant: Option<&str>,
    email: &str,
    password: Password,
) -> Result<Tokens> {
    let a = enabled(state)?;
    let cfg = &state.config.accounts;
    let now = crate::clock::now_ms();
    let addr = address_key(ip);
    check_lock(a, &addr, now).await?;
    let tenant_ref = tenant.unwrap_or(&cfg.tenant);
    let tenant = if tenant_ref.is_empty() {
        None
    } else {
        find_tenant(state.control.as_ref(), tenant_ref).await?
    };
    let email = normalise_email(email).unwrap_or_default();
    let acct = account_key(tenant.as_ref().map_or("-", |t| t.id.as_str()), &email);
    check_lock(a, &acct, now).await?;
    let user = match &tenant {
        Some(t) if !email.is_empty() => a.store.user_by_email(&t.id, &email).await?,
        _ => None,
    };
    let user = user.filter(|u| !u.disabled);
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // Too long to hash: verified against the dummy (same work), which fails.
    let (password, hash) = if password.hashable() {
        (password, hash)
    } else {
        (Password::new(String::new()), None)
    };
    let ok = a.hasher.verify(password, hash).await;
    let Some(user) = user.filter(|_| ok) else {
        count_failure(a, cfg, &acct, cfg.max_failures_per_account, now).await?;
        count_failure(a, cfg, &addr, cfg.max_failures_per_address, now).await?;
        return Err(Error::Unauthorized);
    };
    a.store.clear_failures(&acct).await?;
    let session = SessionRecord {
        id: crate::id::random_hex(16),
        user_id: user.id.clone(),
        tenant_id: user.tenant_id.clone(),
        created_at_ms: now,
        expires_at_ms: now + ms(cfg.refresh_token_ttl_secs),
        revoked: false,
    };
    a.store.insert_session(&session).await?;
    issue(a, cfg, &session, now).await
}

/// A new refresh token in `session` and a fresh access token.
async fn issue(
    a: &Accounts,
    cfg: &AccountsConfig,
    session: &SessionRecord,
    now: i64,
) -> Result<Tokens> {
    let id = crate::id::random_hex(12);
    let secret = crate::id::random_hex(32);
    let record = RefreshRecord {
        id: id.clone(),
        session_id: session.id.clone(),
        secret_hash: hash_secret(&secret),
        created_at_ms: now,
        expires_at_ms: session.expires_at_ms,
        used: false,
    };
    a.store.insert_refresh(&record).await?;
    // Sign with the newest key even if another replica or the CLI rotated a moment ago.
    a.signing
        .refresh_if_stale(a.store.as_ref())
        .await
        .map_err(|e| Error::internal(format!("signing keys: {e}")))?;
    let ttl = Duration::from_secs(cfg.access_token_ttl_secs);
    let access_token = a
        .signing
        .mint_access(&session.user_id, &session.tenant_id, &session.id, ttl)
        .map_err(|e| Error::internal(format!("signing: {e}")))?;
    Ok(Tokens {
        access_token,
        token_type: "Bearer",
        expires_in: cfg.access_token_ttl_secs,
        refresh_token: format!("ugr_{id}_{secret}"),
    })
}

/// The live session a refresh token belongs to, with the token's record; 401 otherwise.
async fn presented(a: &Accounts, token: &str) -> Result<(RefreshRecord, SessionRecord)> {
    let rest = token.strip_prefix("ugr_").ok_or(Error::Unauthorized)?;
    let (id, secret) = rest.split_once('_').ok_or(Error::Unauthorized)?;
    let rec = a
        .store
        .refresh_token(id)
        .await?
        .ok_or(Error::Unauthorized)?;
    if !bool::from(
        hash_secret(secret)
            .as_bytes()
            .ct_eq(rec.secret_hash.as_bytes()),
    ) {
        return Err(Error::Unauthorized);
    }
    let session = a
        .store
        .session(&rec.session_id)
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok((rec, session))
}

/// `POST /v1/auth/refresh`: rotates the refresh token; a spent one revokes its session.
pub async fn refresh(state: &AppState, token: &str) -> Result<Tokens> {
    let a = enabled(state)?;
    let now = crate::clock::now_ms();
    let (rec, session) = presented(a, token).await?;
    if session.revoked || session.expires_at_ms <= now || rec.expires_at_ms <= now {
        return Err(Error::Unauthorized);
    }
    if rec.used || !a.store.spend_refresh(&rec.id, now).await? {
        // Replay of a rotated token: whoever holds the family, it is not safe any more.
        a.store.revoke_session(&session.id, now).await?;
        tracing::warn!(session = %session.id, "refresh token reused; session revoked");
        return Err(Error::Unauthorized);
    }
    match a.store.user(&session.user_id).await? {
        Some(u) if !u.disabled => {}
        _ => return Err(Error::Unauthorized),
    }
    issue(a, &state.config.accounts, &session, now).await
}

/// `POST /v1/auth/logout`: revokes the session of the caller's access token, or of the given
/// refresh token.
pub async fn logout(
    state: &AppState,
    who: Option<&Principal>,
    refresh_token: Option<&str>,
) -> Result<()> {
    let a = enabled(state)?;
    let now = crate::clock::now_ms();
    let session = match (who.map(|w| &w.via), refresh_token) {
        (Some(Via::User(u)), _) => u.session_id.clone(),
        (None, Some(t)) => presented(a, t).await?.1.id,
        _ => return Err(Error::Unauthorized),
    };
    a.store.revoke_session(&session, now).await?;
    Ok(())
}

/// The signed-in user behind `who`; refuses other principals.
fn account_user(who: &Principal) -> Result<&crate::auth::principal::AccountUser> {
    match &who.via {
        Via::User(u) => Ok(u),
        _ => Err(Error::AccessDenied("This needs a user's access token.")),
    }
}

/// `GET /v1/auth/me`: the user and their tenant, from the cache when it has them. Returns the
/// JSON text and whether it came from the cache.
pub async fn me(state: &AppState, who: &Principal) -> Result<(String, bool)> {
    let a = enabled(state)?;
    let u = account_user(who)?;
    if let Some(c) = &a.cache
        && let Some(hit) = c.get(&u.user_id).await
    {
        return Ok((hit, true));
    }
    let user = a.store.user(&u.user_id).await?.ok_or(Error::Unauthorized)?;
    let tenant = state
        .control
        .tenant(&user.tenant_id)
        .await?
        .ok_or(Error::Unauthorized)?;
    let body = serde_json::json!({
        "user": UserView::from(&user),
        "tenant": { "tenant_id": tenant.id, "name": tenant.name },
    })
    .to_string();
    if let Some(c) = &a.cache {
        c.put(&user.id, &body).await;
    }
    Ok((body, false))
}

/// `PATCH /v1/auth/me {name}`: renames the caller; the cached answer is dropped.
pub async fn rename(state: &AppState, who: &Principal, name: Option<&str>) -> Result<()> {
    let a = enabled(state)?;
    let u = account_user(who)?;
    let name = clean_name(name)?;
    if !a
        .store
        .set_user_name(&u.user_id, &name, crate::clock::now_ms())
        .await?
    {
        return Err(Error::NotFound);
    }
    if let Some(c) = &a.cache {
        c.invalidate(&u.user_id).await;
    }
    Ok(())
}

/// An invitation minted by [`invite`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invitation {
    pub invite: String,
    pub email: String,
    pub role: &'static str,
    pub expires_at: String,
}

/// `POST /v1/invites`: a tenant admin (or the tenant's app) invites `email` as `role`, for
/// `ttl_secs` (default and most: `accounts.invite_ttl_secs`). The invitation is a token signed
/// by upgate; whoever holds it registers that address in this tenant.
pub async fn invite(
    state: &AppState,
    who: &Principal,
    email: &str,
    role: Option<&str>,
    ttl_secs: Option<u64>,
) -> Result<Invitation> {
    let a = enabled(state)?;
    require_admin(who)?;
    let email = normalise_email(email).ok_or(Error::InvalidJson("email is not an address."))?;
    let role = match role {
        None => Role::Member,
        Some(r) => Role::parse(r).ok_or(Error::InvalidJson("role is admin or member."))?,
    };
    let max = state.config.accounts.invite_ttl_secs;
    let ttl = ttl_secs.unwrap_or(max);
    if ttl == 0 || ttl > max {
        return Err(Error::InvalidJson(
            "ttl_secs is beyond what invitations may last.",
        ));
    }
    let (token, claims) = a
        .signing
        .mint_invite(
            &who.tenant_id,
            &email,
            role.as_str(),
            std::time::Duration::from_secs(ttl),
        )
        .map_err(|e| Error::internal(format!("signing keys: {e}")))?;
    let exp_ms = i64::try_from(claims.exp.saturating_mul(1000)).unwrap_or(i64::MAX);
    Ok(Invitation {
        invite: token,
        email,
        role: role.as_str(),
        expires_at: crate::clock::iso8601(crate::clock::from_ms(exp_ms)),
    })
}

/// Refuses principals that may not manage users: only a tenant admin or the tenant's app.
fn require_admin(who: &Principal) -> Result<()> {
    match &who.via {
        Via::User(u) if u.role == Role::Admin => Ok(()),
        Via::ApiKey(_) => Ok(()),
        _ => Err(Error::AccessDenied("Only a tenant admin may manage users.")),
    }
}

/// `POST /v1/users`: a tenant admin (or the tenant's app, with its API key) adds a user.
pub async fn admin_create_user(
    state: &AppState,
    who: &Principal,
    email: &str,
    password: Password,
    name: Option<&str>,
    role: Option<&str>,
) -> Result<UserRecord> {
    let a = enabled(state)?;
    require_admin(who)?;
    let role = match role {
        None => Role::Member,
        Some(r) => Role::parse(r).ok_or(Error::InvalidJson("role is admin or member."))?,
    };
    create_user(a, &who.tenant_id, email, password, name, role).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalise_email("  Alice@Example.COM "),
            Some("alice@example.com".into())
        );
        assert_eq!(normalise_email("a@b"), Some("a@b".into()));
        assert_eq!(normalise_email("nobody"), None);
        assert_eq!(normalise_email("@b"), None);
        assert_eq!(normalise_email("a@"), None);
        assert_eq!(normalise_email("a@b@c"), None);
        assert_eq!(normalise_email("a b@c"), None);
        assert_eq!(normalise_email(&format!("{}@b", "a".repeat(260))), None);
    }
}
