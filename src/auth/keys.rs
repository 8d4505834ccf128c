//! Who holds which secret: the root and configured access keys (in memory), upgate's own link
//! keys (in the database, cached), tenants' access keys (in the database), the operator's admin
//! token, and the verifier of outside JWTs. One handle, [`Credentials`], answers "what is the
//! secret of this access key and what may it touch" for the S3 plane and "who is this bearer"
//! for the control plane ([`super::principal`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::SecretKey;
use super::jwt::JwtVerifier;
use super::links::{LinkKeys, is_link_key};
use super::signing::SigningKeys;
use crate::error::{Error, Result};
use crate::metadata::accounts::AccountStore;
use crate::metadata::control::ControlStore;

/// upgate's own accounts, when enabled: the keys its access tokens are signed with and the
/// store of users and sessions they are checked against.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub signing: Arc<SigningKeys>,
    pub store: Arc<dyn AccountStore>,
    /// Password hashing with the configured argon2id parameters.
    pub hasher: super::password::Hasher,
    /// The `/v1/auth/me` cache, when Redis is configured.
    pub cache: Option<Arc<super::cache::MeCache>>,
}

/// An access key pair.
#[derive(Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret: SecretKey,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The secrets the gateway verifies requests against.
#[derive(Debug)]
pub struct Credentials {
    /// Keys held in memory (root, and keys added at run time by tests or the CLI).
    keys: RwLock<HashMap<String, SecretKey>>,
    /// Keys that sign the links upgate mints.
    pub link_keys: LinkKeys,
    /// Verifier of JWT bearer tokens, if any JWT key is configured.
    pub jwt: Option<JwtVerifier>,
    /// The operator's admin token for `/v1/admin`, if enabled.
    pub admin_token: Option<String>,
    /// Where tenants' keys, API keys and tokens live.
    pub control: Arc<dyn ControlStore>,
    /// upgate's own accounts and signing keys (`[accounts] enabled`).
    pub accounts: Option<Accounts>,
}

impl Credentials {
    /// A credential set with `root` as its only in-memory key.
    pub fn new(
        root: &Credential,
        link_keys: LinkKeys,
        jwt: Option<JwtVerifier>,
        admin_token: Option<String>,
        control: Arc<dyn ControlStore>,
    ) -> Self {
        let mut keys = HashMap::new();
        keys.insert(root.access_key_id.clone(), root.secret.clone());
        Self {
            keys: RwLock::new(keys),
            link_keys,
            jwt,
            admin_token,
            control,
            accounts: None,
        }
    }

    /// The same credentials, also accepting the access tokens of upgate's own accounts.
    pub fn with_accounts(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// The secret of an in-memory access key, if it exists.
    pub fn secret_for(&self, access_key_id: &str) -> Option<SecretKey> {
        self.keys.read().ok()?.get(access_key_id).cloned()
    }

    /// Adds (or replaces) an in-memory access key.
    pub fn insert_key(&self, access_key_id: &str, secret: SecretKey) {
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(access_key_id.to_string(), secret);
        }
    }

    /// The secret of an access key and the key prefix it is confined to: a tenant's keys may
    /// only touch `{tenant_id}/...` (the layout the control API uses too); in-memory and link
    /// keys are not confined this way (link keys are confined to their links instead). Link
    /// keys unknown here are refreshed from the database once: another replica may have
    /// rotated.
    pub async fn lookup_key(&self, access_key_id: &str) -> Result<(SecretKey, Option<String>)> {
        if let Some(s) = self.secret_for(access_key_id) {
            return Ok((s, None));
        }
        if is_link_key(access_key_id) {
            if let Some(s) = self.link_keys.secret_for(access_key_id) {
                return Ok((s, None));
            }
            self.link_keys.refresh(self.control.as_ref()).await?;
            return self
                .link_keys
                .secret_for(access_key_id)
                .map(|s| (s, None))
                .ok_or(Error::InvalidAccessKeyId);
        }
        match self.control.access_key(access_key_id).await? {
            Some(k) if !k.revoked => {
                Ok((SecretKey::new(k.secret), Some(format!("{}/", k.tenant_id))))
            }
            _ => Err(Error::InvalidAccessKeyId),
        }
    }
}
