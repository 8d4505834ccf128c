//! Who is calling the control API: `Authorization: Bearer <credential>`.
//!
//! | credential | form | principal |
//! |---|---|---|
//! | API key | `ugk_<id>_<secret>` | the tenant's app (`subject = "app"`) |
//! | JWT | three base64url segments | a user of the tenant (`subject = "user:<sub>"`) |
//! | upload token | `ugt_<id>_<secret>` | may only exchange itself for upload links |
//! | admin token | configured secret | operator; may only call `/v1/admin/...` |
//! | account access token | JWT, `kid` `ugs_…` (signed by upgate) | a user of upgate's own accounts (`subject = "user:<id>"`), while their session is live |
//!
//! Key and token secrets are 256-bit random; only their SHA-256 is stored, and comparisons are
//! constant-time. Every failure is the same 401, so the answer does not tell which part was
//! wrong.

use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{Accounts, Credentials};
use super::signing::{KID_PREFIX, SigningError};
use crate::error::{Error, Result};
use crate::metadata::accounts::Role;
use crate::metadata::control::UploadToken;

/// A signed-in user of upgate's own accounts, as their access token and the database say.
#[derive(Debug, Clone)]
pub struct AccountUser {
    pub user_id: String,
    pub session_id: String,
    pub role: Role,
    /// The key that verified the token.
    pub key_id: String,
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A tenant API key (its id).
    ApiKey(String),
    /// A JWT (the key id that verified it).
    Jwt(String),
    /// An upload token.
    Token(Box<UploadToken>),
    /// The operator's admin token.
    Admin,
    /// An access token upgate signed for one of its users.
    User(Box<AccountUser>),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: String,
    /// The owner name files of this principal carry.
    pub subject: String,
    pub via: Via,
}

impl Principal {
    /// The name written to the audit log.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::ApiKey(id) => format!("api-key:{id}"),
            Via::Jwt(_) | Via::User(_) => self.subject.clone(),
            Via::Token(t) => format!("token:{}", t.id),
            Via::Admin => "admin".to_string(),
        }
    }

    /// Refuses principals that may only upload (tokens) or only administer.
    pub fn require_app_or_user(&self) -> Result<()> {
        match self.via {
            Via::ApiKey(_) | Via::Jwt(_) | Via::User(_) => Ok(()),
            Via::Token(_) | Via::Admin => Err(Error::AccessDenied(
                "This credential cannot be used for this operation.",
            )),
        }
    }

    /// Refuses everyone but the operator.
    pub fn require_admin(&self) -> Result<()> {
        match self.via {
            Via::Admin => Ok(()),
            _ => Err(Error::AccessDenied("This operation needs the admin token.")),
        }
    }
}

/// Hex SHA-256 of a credential secret, as stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Splits `<prefix>_<id>_<secret>`.
fn split_credential<'a>(token: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = token.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// The one `Authorization: Bearer` credential of a request.
pub fn bearer_credential(headers: &http::HeaderMap) -> Result<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Error::Unauthorized)?;
    if values.next().is_some() {
        return Err(Error::Unauthorized);
    }
    let value = value.to_str().map_err(|_| Error::Unauthorized)?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(Error::Unauthorized)
}

/// Authenticates the bearer credential of a control API request.
pub async fn authenticate(creds: &Credentials, headers: &http::HeaderMap) -> Result<Principal> {
    authenticate_credential(creds, bearer_credential(headers)?).await
}

/// The upload token `credential` names, if its secret is right — whether or not it is still
/// usable (expired, revoked or used up): its holder may learn why it no longer works.
pub async fn token_holder(creds: &Credentials, credential: &str) -> Result<UploadToken> {
    let (id, secret) = split_credential(credential, "ugt").ok_or(Error::Unauthorized)?;
    let token = creds.control.token(id).await?.ok_or(Error::Unauthorized)?;
    if !same(&hash_secret(secret), &token.secret_hash) {
        return Err(Error::Unauthorized);
    }
    Ok(token)
}

/// Authenticates one credential (as `Authorization: Bearer` carries it, or as a token-scoped
/// path does).
pub async fn authenticate_credential(creds: &Credentials, bearer: &str) -> Result<Principal> {
    if let Some((id, secret)) = split_credential(bearer, "ugk") {
        let key = creds
            .control
            .api_key(id)
            .await?
            .ok_or(Error::Unauthorized)?;
        if key.revoked || !same(&hash_secret(secret), &key.secret_hash) {
            return Err(Error::Unauthorized);
        }
        return Ok(Principal {
            tenant_id: key.tenant_id,
            subject: "app".to_string(),
            via: Via::ApiKey(key.id),
        });
    }
    if let Some((id, secret)) = split_credential(bearer, "ugt") {
        let token = creds.control.token(id).await?.ok_or(Error::Unauthorized)?;
        if token.revoked
            || token.expires_at_ms < crate::clock::now_ms()
            || !same(&hash_secret(secret), &token.secret_hash)
        {
            return Err(Error::Unauthorized);
        }
        return Ok(Principal {
            tenant_id: token.tenant_id.clone(),
            subject: token.owner.clone(),
            via: Via::Token(Box::new(token)),
        });
    }
    if let Some(admin) = &creds.admin_token
        && same(bearer, admin)
    {
        return Ok(Principal {
            tenant_id: String::new(),
            subject: "admin".to_string(),
            via: Via::Admin,
        });
    }
    if bearer.split('.').count() == 3 && is_account_token(bearer) {
        return match &creds.accounts {
            Some(a) => account_principal(a, bearer).await,
            None => Err(Error::Unauthorized),
        };
    }
    if bearer.split('.').count() == 3
        && let Some(jwt) = &creds.jwt
    {
        let p = jwt
            .verify(bearer, SystemTime::now())
            .map_err(|_| Error::Unauthorized)?;
        if creds.control.tenant(&p.tenant).await?.is_none() {
            return Err(Error::Unauthorized);
        }
        return Ok(Principal {
            tenant_id: p.tenant,
            subject: format!("user:{}", p.subject),
            via: Via::Jwt(p.key_id),
        });
    }
    Err(Error::Unauthorized)
}

/// Whether a JWT names one of upgate's own keys (`kid` with [`KID_PREFIX`]); those are never
/// handed to the verifier of outside tokens.
fn is_account_token(token: &str) -> bool {
    token.len() <= super::signing::MAX_TOKEN_BYTES
        && jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .is_some_and(|k| k.starts_with(KID_PREFIX))
}

/// Verifies an access token upgate signed, then its session and user in the database: a
/// revoked or expired session, a disabled user, or a user no longer of the token's tenant
/// ends the token at once.
async fn account_principal(a: &Accounts, token: &str) -> Result<Principal> {
    let claims = match a.signing.verify_access(token) {
        Err(SigningError::UnknownKey) => {
            // Another replica (or the CLI) may have rotated: look once more.
            a.signing
                .refresh_if_stale(a.store.as_ref())
                .await
                .map_err(|e| Error::internal(format!("signing keys: {e}")))?;
            a.signing.verify_access(token)
        }
        other => other,
    }
    .map_err(|_| Error::Unauthorized)?;
    let now = crate::clock::now_ms();
    let session = a
        .store
        .session(&claims.sid)
        .await?
        .ok_or(Error::Unauthorized)?;
    if session.revoked
        || session.expires_at_ms <= now
        || session.user_id != claims.sub
        || session.tenant_id != claims.tenant
    {
        return Err(Error::Unauthorized);
    }
    let user = a
        .store
        .user(&claims.sub)
        .await?
        .ok_or(Error::Unauthorized)?;
    if user.disabled || user.tenant_id != claims.tenant {
        return Err(Error::Unauthorized);
    }
    let key_id = jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.kid)
        .unwrap_or_default();
    Ok(Principal {
        tenant_id: user.tenant_id,
        subject: format!("user:{}", user.id),
        via: Via::User(Box::new(AccountUser {
            user_id: user.id,
            session_id: session.id,
            role: user.role,
            key_id,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_split_into_id_and_secret() {
        assert_eq!(split_credential("ugk_ab_cd", "ugk"), Some(("ab", "cd")));
        assert_eq!(
            split_credential("ugk_ab_cd_ef", "ugk"),
            Some(("ab", "cd_ef"))
        );
        assert_eq!(split_credential("ugk__cd", "ugk"), None);
        assert_eq!(split_credential("ugk_ab_", "ugk"), None);
        assert_eq!(split_credential("ugt_ab_cd", "ugk"), None);
        assert_eq!(split_credential("ugkab_cd", "ugk"), None);
    }
}
