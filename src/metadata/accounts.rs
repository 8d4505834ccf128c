//! Accounts and sessions (users, login sessions, refresh tokens, failed-login counters) and
//! upgate's own signing keys, behind [`AccountStore`].
//!
//! Like `control`, the SQL is written once with `$N` placeholders (introduced in ascending
//! order) and instantiated for SQLite and PostgreSQL by [`impl_account_store!`]. State changes
//! that must happen once — rotating a refresh token, revoking a session — are conditional
//! `UPDATE … WHERE <expected state>`, so two replicas racing on one token cannot both win.

use async_trait::async_trait;

use super::MetaError;

/// A user's role in their tenant: admins manage the tenant's users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    /// Database (and API) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses the spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A stored user. `password_hash` is an argon2id PHC string; `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub tenant_id: String,
    /// Normalised (trimmed, lower case); unique per tenant.
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub disabled: bool,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A login session: the family its refresh tokens rotate within.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked: bool,
}

/// A refresh token (only the SHA-256 of its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub id: String,
    pub session_id: String,
    pub secret_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// Rotated (or otherwise spent) already.
    pub used: bool,
}

/// Failed sign-ins counted under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub failures: i64,
    pub first_at_ms: i64,
    pub locked_until_ms: i64,
}

/// A signing key as stored: the private key sealed, the public JWK as JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub id: String,
    pub alg: String,
    pub private_key: String,
    pub public_jwk: String,
    pub created_at_ms: i64,
    /// When it stopped signing (a newer key took over).
    pub retired_at_ms: Option<i64>,
    /// After this instant it verifies nothing (None: it still signs).
    pub verify_until_ms: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("id", &self.id)
            .field("alg", &self.alg)
            .field("retired_at_ms", &self.retired_at_ms)
            .field("verify_until_ms", &self.verify_until_ms)
            .finish_non_exhaustive()
    }
}

/// The account store. Implemented by the SQLite and PostgreSQL metadata stores.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a user; false if the tenant already has a user with this e-mail address.
    async fn insert_user(&self, u: &UserRecord) -> Result<bool, MetaError>;
    async fn user(&self, id: &str) -> Result<Option<UserRecord>, MetaError>;
    async fn user_by_email(
        &self,
        tenant_id: &str,
        email: &str,
    ) -> Result<Option<UserRecord>, MetaError>;
    /// Renames a user; false if there is no such user.
    async fn set_user_name(&self, id: &str, name: &str, now_ms: i64) -> Result<bool, MetaError>;

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), MetaError>;
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, MetaError>;
    /// Revokes a session (and so every token of its family); false if it was revoked already.
    async fn revoke_session(&self, id: &str, now_ms: i64) -> Result<bool, MetaError>;

    async fn insert_refresh(&self, r: &RefreshRecord) -> Result<(), MetaError>;
    async fn refresh_token(&self, id: &str) -> Result<Option<RefreshRecord>, MetaError>;
    /// Marks a refresh token spent; false if it was spent already (a replay).
    async fn spend_refresh(&self, id: &str, now_ms: i64) -> Result<bool, MetaError>;

    /// Counts a failed sign-in under `key`: a window older than `window_start_ms` starts over
    /// at one. Returns the count.
    async fn add_failure(
        &self,
        key: &str,
        now_ms: i64,
        window_start_ms: i64,
    ) -> Result<i64, MetaError>;
    /// Locks `key` until `until_ms`.
    async fn lock(&self, key: &str, until_ms: i64) -> Result<(), MetaError>;
    async fn failures(&self, key: &str) -> Result<Option<Failures>, MetaError>;
    async fn clear_failures(&self, key: &str) -> Result<(), MetaError>;

    /// Every signing key, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, MetaError>;
    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), MetaError>;
    /// Retires every signing key except `keep_id` that still signs: each verifies until
    /// `verify_until_ms`. Returns how many were retired.
    async fn retire_signing_keys_except(
        &self,
        keep_id: &str,
        now_ms: i64,
        verify_until_ms: i64,
    ) -> Result<u64, MetaError>;
}

/// Implements [`AccountStore`] for a store type whose rows are `$row`; `$w` is the pool for
/// writes, `$r` for reads.
#[macro_export]
macro_rules! impl_account_store {
    ($ty:ty, $row:ty, $w:ident, $r:ident) => {
        const _: () = {
            #[allow(unused_imports)]
            use $crate::metadata::sql::{Dialect, Field, query};
            type Db = <$row as sqlx::Row>::Database;
            use $crate::metadata::MetaError;
            use $crate::metadata::accounts::*;

            const USER_COLS: &str = "id, tenant_id, email, name, role, password_hash, \
                created_at, updated_at, disabled_at";

            fn user_row(row: &$row) -> Result<UserRecord, MetaError> {
                let role: String = row.field("role")?;
                let disabled: Option<i64> = row.field("disabled_at")?;
                Ok(UserRecord {
                    id: row.field("id")?,
                    tenant_id: row.field("tenant_id")?,
                    email: row.field("email")?,
                    name: row.field("name")?,
                    role: Role::parse(&role).ok_or(MetaError::Corrupt("user role"))?,
                    password_hash: row.field("password_hash")?,
                    created_at_ms: row.field("created_at")?,
                    updated_at_ms: row.field("updated_at")?,
                    disabled: disabled.is_some(),
                })
            }

            #[async_trait::async_trait]
            impl AccountStore for $ty {
                async fn insert_user(&self, u: &UserRecord) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "INSERT INTO users (id, tenant_id, email, name, role, password_hash, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (tenant_id, email) DO NOTHING",
                    )
                    .bind(&u.id)
                    .bind(&u.tenant_id)
                    .bind(&u.email)
                    .bind(&u.name)
                    .bind(u.role.as_str())
                    .bind(&u.password_hash)
                    .bind(u.created_at_ms)
                    .bind(u.updated_at_ms)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn user(&self, id: &str) -> Result<Option<UserRecord>, MetaError> {
                    let row = query::<Db>(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&self.$r)
                        .await?;
                    row.as_ref().map(user_row).transpose()
                }

                async fn user_by_email(
                    &self,
                    tenant_id: &str,
                    email: &str,
                ) -> Result<Option<UserRecord>, MetaError> {
                    let row = query::<Db>(&format!(
                        "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND email = $2"
                    ))
                    .bind(tenant_id)
                    .bind(email)
                    .fetch_optional(&self.$r)
                    .await?;
                    row.as_ref().map(user_row).transpose()
                }

                async fn set_user_name(
                    &self,
                    id: &str,
                    name: &str,
                    now_ms: i64,
                ) -> Result<bool, MetaError> {
                    let n = query::<Db>("UPDATE users SET name = $1, updated_at = $2 WHERE id = $3")
                        .bind(name)
                        .bind(now_ms)
                        .bind(id)
                        .execute(&self.$w)
                        .await?
                        .rows_affected();
                    Ok(n == 1)
                }

                async fn insert_session(&self, s: &SessionRecord) -> Result<(), MetaError> {
                    query::<Db>(
                        "INSERT INTO sessions (id, user_id, tenant_id, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&s.id)
                    .bind(&s.user_id)
                    .bind(&s.tenant_id)
                    .bind(s.created_at_ms)
                    .bind(s.expires_at_ms)
                    .execute(&self.$w)
                    .await?;
                    Ok(())
                }

                async fn session(&self, id: &str) -> Result<Option<SessionRecord>, MetaError> {
                    let row = query::<Db>(
                        "SELECT id, user_id, tenant_id, created_at, expires_at, revoked_at \
                         FROM sessions WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.$r)
                    .await?;
                    row.map(|r| {
                        let revoked: Option<i64> = r.field("revoked_at")?;
                        Ok(SessionRecord {
                            id: r.field("id")?,
                            user_id: r.field("user_id")?,
                            tenant_id: r.field("tenant_id")?,
                            created_at_ms: r.field("created_at")?,
                            expires_at_ms: r.field("expires_at")?,
                            revoked: revoked.is_some(),
                        })
                    })
                    .transpose()
                }

                async fn revoke_session(&self, id: &str, now_ms: i64) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn insert_refresh(&self, t: &RefreshRecord) -> Result<(), MetaError> {
                    query::<Db>(
                        "INSERT INTO refresh_tokens (id, session_id, secret_hash, created_at, \
                         expires_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&t.id)
                    .bind(&t.session_id)
                    .bind(&t.secret_hash)
                    .bind(t.created_at_ms)
                    .bind(t.expires_at_ms)
                    .execute(&self.$w)
                    .await?;
                    Ok(())
                }

                async fn refresh_token(&self, id: &str) -> Result<Option<RefreshRecord>, MetaError> {
                    // The writer: a rotation just made on this replica must be seen.
                    let row = query::<Db>(
                        "SELECT id, session_id, secret_hash, created_at, expires_at, used_at \
                         FROM refresh_tokens WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.$w)
                    .await?;
                    row.map(|r| {
                        let used: Option<i64> = r.field("used_at")?;
                        Ok(RefreshRecord {
                            id: r.field("id")?,
                            session_id: r.field("session_id")?,
                            secret_hash: r.field("secret_hash")?,
                            created_at_ms: r.field("created_at")?,
                            expires_at_ms: r.field("expires_at")?,
                            used: used.is_some(),
                        })
                    })
                    .transpose()
                }

                async fn spend_refresh(&self, id: &str, now_ms: i64) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
                    )
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn add_failure(
                    &self,
                    key: &str,
                    now_ms: i64,
                    window_start_ms: i64,
                ) -> Result<i64, MetaError> {
                    // `failures` is assigned first: MySQL's upsert assigns left to right, and
                    // both expressions must see the old `first_at`.
                    let upsert = format!(
                        "INSERT INTO login_failures (key, failures, first_at, locked_until) \
                         VALUES ($1, 1, $2, 0) ON CONFLICT (key) DO UPDATE SET \
                         failures = CASE WHEN login_failures.first_at < $3 THEN 1 \
                                    ELSE login_failures.failures + 1 END, \
                         first_at = CASE WHEN login_failures.first_at < $3 THEN $2 \
                                    ELSE login_failures.first_at END{}",
                        if Db::RETURNING { " RETURNING failures" } else { "" }
                    );
                    let upsert = query::<Db>(&upsert).bind(key).bind(now_ms).bind(window_start_ms);
                    if Db::RETURNING {
                        return Ok(upsert.fetch_one(&self.$w).await?.field("failures")?);
                    }
                    let mut tx = self.$w.begin().await?;
                    upsert.execute(&mut *tx).await?;
                    let failures = query::<Db>("SELECT failures FROM login_failures WHERE key = $1")
                        .bind(key)
                        .scalar_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(failures)
                }

                async fn lock(&self, key: &str, until_ms: i64) -> Result<(), MetaError> {
                    query::<Db>("UPDATE login_failures SET locked_until = $1 WHERE key = $2")
                        .bind(until_ms)
                        .bind(key)
                        .execute(&self.$w)
                        .await?;
                    Ok(())
                }

                async fn failures(&self, key: &str) -> Result<Option<Failures>, MetaError> {
                    let row = query::<Db>(
                        "SELECT failures, first_at, locked_until FROM login_failures WHERE key = $1",
                    )
                    .bind(key)
                    .fetch_optional(&self.$w)
                    .await?;
                    row.map(|r| {
                        Ok(Failures {
                            failures: r.field("failures")?,
                            first_at_ms: r.field("first_at")?,
                            locked_until_ms: r.field("locked_until")?,
                        })
                    })
                    .transpose()
                }

                async fn clear_failures(&self, key: &str) -> Result<(), MetaError> {
                    query::<Db>("DELETE FROM login_failures WHERE key = $1")
                        .bind(key)
                        .execute(&self.$w)
                        .await?;
                    Ok(())
                }

                async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, MetaError> {
                    let rows = query::<Db>(
                        "SELECT id, alg, private_key, public_jwk, created_at, retired_at, \
                         verify_until FROM signing_keys ORDER BY created_at DESC, id DESC",
                    )
                    .fetch_all(&self.$w)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(SigningKeyRecord {
                                id: r.field("id")?,
                                alg: r.field("alg")?,
                                private_key: r.field("private_key")?,
                                public_jwk: r.field("public_jwk")?,
                                created_at_ms: r.field("created_at")?,
                                retired_at_ms: r.field("retired_at")?,
                                verify_until_ms: r.field("verify_until")?,
                            })
                        })
                        .collect()
                }

                async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), MetaError> {
                    query::<Db>(
                        "INSERT INTO signing_keys (id, alg, private_key, public_jwk, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&k.id)
                    .bind(&k.alg)
                    .bind(&k.private_key)
                    .bind(&k.public_jwk)
                    .bind(k.created_at_ms)
                    .execute(&self.$w)
                    .await?;
                    Ok(())
                }

                async fn retire_signing_keys_except(
                    &self,
                    keep_id: &str,
                    now_ms: i64,
                    verify_until_ms: i64,
                ) -> Result<u64, MetaError> {
                    Ok(query::<Db>(
                        "UPDATE signing_keys SET retired_at = $1, verify_until = $2 \
                         WHERE id != $3 AND retired_at IS NULL",
                    )
                    .bind(now_ms)
                    .bind(verify_until_ms)
                    .bind(keep_id)
                    .execute(&self.$w)
                    .await?
                    .rows_affected())
                }
            }
        };
    };
}
