//! Links upgate mints to itself: SigV4 presigned URLs signed with a *link key* (access key id
//! `UGLINK<id>`), so the S3 data plane verifies them with the same code as any presigned URL.
//!
//! A link key signs nothing else: a request signed by one must carry `x-upgate-upload` (an
//! upload link, claimed once in the database) or `x-upgate-download` (a download link). Those
//! parameters are part of the signed canonical query, so they cannot be added or swapped.
//! Link keys live in the database, shared by every replica; several can be valid at once so
//! they rotate without breaking links in flight.

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use crate::auth::{PresignParams, SecretKey, presign_url};
use crate::error::{Error, Result};
use crate::metadata::MetaError;
use crate::metadata::control::{ControlStore, LinkKey};

/// Access key ids of link keys start with this.
pub const LINK_KEY_PREFIX: &str = "UGLINK";
/// Query parameter naming the upload link a PUT uses.
pub const UPLOAD_PARAM: &str = "x-upgate-upload";
/// Query parameter naming the file a download link is for.
pub const DOWNLOAD_PARAM: &str = "x-upgate-download";

/// Whether an access key id is a link key's.
pub fn is_link_key(access_key_id: &str) -> bool {
    access_key_id.starts_with(LINK_KEY_PREFIX)
}

/// The live link keys, newest first, cached from the database.
#[derive(Debug, Default)]
pub struct LinkKeys {
    keys: RwLock<Vec<LinkKey>>,
}

impl LinkKeys {
    /// Loads the keys, creating the first one if there is none.
    pub async fn load(control: &dyn ControlStore) -> Result<Self, MetaError> {
        let me = Self::default();
        me.refresh(control).await?;
        let empty = me.keys.read().map(|k| k.is_empty()).unwrap_or(true);
        if empty {
            rotate(control).await?;
            me.refresh(control).await?;
        }
        Ok(me)
    }

    /// Re-reads the keys (another replica may have rotated).
    pub async fn refresh(&self, control: &dyn ControlStore) -> Result<(), MetaError> {
        let live: Vec<LinkKey> = control
            .link_keys()
            .await?
            .into_iter()
            .filter(|k| !k.retired)
            .collect();
        if let Ok(mut keys) = self.keys.write() {
            *keys = live;
        }
        Ok(())
    }

    /// The key new links are signed with.
    pub fn current(&self) -> Option<(String, SecretKey)> {
        let keys = self.keys.read().ok()?;
        keys.first().map(|k| {
            (
                format!("{LINK_KEY_PREFIX}{}", k.id),
                SecretKey::new(k.secret.clone()),
            )
        })
    }

    /// The secret of a live link key.
    pub fn secret_for(&self, access_key_id: &str) -> Option<SecretKey> {
        let id = access_key_id.strip_prefix(LINK_KEY_PREFIX)?;
        let keys = self.keys.read().ok()?;
        keys.iter()
            .find(|k| k.id == id)
            .map(|k| SecretKey::new(k.secret.clone()))
    }
}

/// Adds a new link key (the newest signs from now on); older keys stay valid until retired.
pub async fn rotate(control: &dyn ControlStore) -> Result<String, MetaError> {
    let key = LinkKey {
        id: crate::id::random_hex(6).to_ascii_uppercase(),
        secret: crate::id::random_hex(32),
        created_at_ms: crate::clock::now_ms(),
        retired: false,
    };
    control.insert_link_key(&key).await?;
    Ok(key.id)
}

/// What a minted link must pin.
pub struct Mint<'a> {
    pub base_url: &'a str,
    pub method: http::Method,
    pub bucket: &'a str,
    pub key: &'a str,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub ttl: Duration,
}

/// Signs a link; returns the full URL.
pub fn mint(keys: &LinkKeys, region: &str, m: Mint<'_>) -> Result<String> {
    let (access_key_id, secret) = keys
        .current()
        .ok_or(Error::internal("no link signing key loaded"))?;
    let host = m
        .base_url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(m.base_url)
        .trim_end_matches('/');
    let params = PresignParams {
        method: m.method,
        host: host.to_string(),
        path: format!("/{}/{}", m.bucket, m.key),
        query: m.query,
        headers: m.headers,
        expires: m.ttl,
        region: region.to_string(),
        time: SystemTime::now(),
        access_key_id,
    };
    let query = presign_url(&params, &secret);
    Ok(format!(
        "{}{}?{}",
        m.base_url.trim_end_matches('/'),
        params.encoded_path(),
        query
    ))
}
