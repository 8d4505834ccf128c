//! upgate's own signing keys: Ed25519 keys that sign the access tokens of its accounts (JWTs,
//! `alg: EdDSA`, `kid` starting with [`KID_PREFIX`]) and the receipts of committed uploads
//! (detached JWS over canonical JSON, see [`SigningKeys::sign_receipt`]).
//!
//! # Keys
//!
//! The keys live in the metadata database, shared by every replica: the private key (PKCS#8)
//! sealed with the master keys of `storage.encryption` (AES-256-GCM, bound to the key id), the
//! public key as a JWK. The newest live key signs. Rotation ([`rotate`]) adds a key and retires
//! the others with a deadline: a retired key keeps verifying until then (the access tokens it
//! signed expire first) and is published in the JWKS until then; after it, it verifies nothing.
//! A replica that meets an unknown `kid` re-reads the keys, at most once a second.
//!
//! # What an access token must be
//!
//! At most 8 KiB; header `alg` exactly `EdDSA` (so `none`, HS256 signed with the public key and
//! every other algorithm are refused before any signature work: the `Validation` allows
//! EdDSA only and the key is an Ed25519 key); `kid` naming a key still verifying; a valid
//! signature; `iss` equal to the configured issuer; `exp` in the future (30 s leeway), `iat`,
//! `sub`, `tenant`, `sid` present. Whether the session is live and the user still belongs to
//! the tenant is checked by the caller against the database.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::metadata::MetaError;
use crate::metadata::accounts::{AccountStore, SigningKeyRecord};
use crate::storage::crypto::Keyring;

/// Key ids of upgate's signing keys start with this (external JWKS keys must not).
pub const KID_PREFIX: &str = "ugs_";
/// Longest token accepted.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock leeway for `exp` and `iat`.
pub const LEEWAY_SECS: u64 = 30;
/// The only algorithm upgate signs with.
pub const ALG: &str = "EdDSA";
/// The `typ` of receipts' JWS header.
const RECEIPT_TYP: &str = "upgate-receipt+jws";
/// Ed25519 PKCS#8 v1 prefix (RFC 8410): the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// How often, at most, an unknown `kid` makes this replica re-read the keys.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The claims of an access token upgate signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The user's tenant id.
    pub tenant: String,
    /// The session (refresh-token family) the token belongs to.
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
}

/// The header type of an invitation token.
pub const INVITE_TYP: &str = "upgate-invite+jwt";

/// What an invitation says: who may join which tenant, as what, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteClaims {
    pub iss: String,
    pub tenant: String,
    /// The normalised address the account must be registered with.
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
    pub iat: u64,
    pub exp: u64,
}

/// Why a token or receipt was refused; never shown to clients (they see 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("malformed")]
    Malformed,
    #[error("algorithm other than EdDSA")]
    Algorithm,
    #[error("unknown or expired key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("claims rejected")]
    Claims,
    #[error("no signing key")]
    NoKey,
    #[error("{0}")]
    Setup(String),
}

struct LiveKey {
    id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
    retired: bool,
    verify_until_ms: Option<i64>,
}

impl LiveKey {
    fn verifies_at(&self, now_ms: i64) -> bool {
        self.verify_until_ms.is_none_or(|t| now_ms < t)
    }
}

/// The signing keys in use, cached from the database.
pub struct SigningKeys {
    keyring: Arc<Keyring>,
    keys: RwLock<Vec<LiveKey>>,
    issuer: String,
    last_refresh: Mutex<Option<Instant>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self
            .keys
            .read()
            .map(|k| k.iter().map(|k| k.id.clone()).collect())
            .unwrap_or_default();
        f.debug_struct("SigningKeys")
            .field("kids", &ids)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn pkcs8(seed: &[u8; 32]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut der = zeroize::Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PKCS8_ED25519_PREFIX);
    der.extend_from_slice(seed);
    der
}

fn aad(id: &str) -> Vec<u8> {
    format!("upgate signing key {id}").into_bytes()
}

/// A new key: its record (private key sealed) for the database.
pub fn generate(keyring: &Keyring, now_ms: i64) -> Result<SigningKeyRecord, SigningError> {
    let id = format!("{KID_PREFIX}{}", crate::id::random_hex(8));
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut *seed).map_err(|e| SigningError::Setup(format!("no randomness: {e}")))?;
    let der = pkcs8(&seed);
    let encoding = EncodingKey::from_ed_der(&der);
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)
        .map_err(|e| SigningError::Setup(format!("public key: {e}")))?;
    jwk.common.key_id = Some(id.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
    let public_jwk = serde_json::to_string(&jwk).map_err(|e| SigningError::Setup(e.to_string()))?;
    let private_key = keyring.seal(&der, &aad(&id)).map_err(SigningError::Setup)?;
    Ok(SigningKeyRecord {
        id,
        alg: ALG.to_string(),
        private_key,
        public_jwk,
        created_at_ms: now_ms,
        retired_at_ms: None,
        verify_until_ms: None,
    })
}

/// Adds a new signing key (it signs from now on) and retires the others: they verify for
/// `grace` more. Returns the new key id and how many were retired.
pub async fn rotate(
    store: &dyn AccountStore,
    keyring: &Keyring,
    grace: Duration,
) -> Result<(String, u64), SigningError> {
    let now = crate::clock::now_ms();
    let rec = generate(keyring, now)?;
    store.insert_signing_key(&rec).await.map_err(setup)?;
    let until = now.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let retired = store
        .retire_signing_keys_except(&rec.id, now, until)
        .await
        .map_err(setup)?;
    Ok((rec.id, retired))
}

fn setup(e: MetaError) -> SigningError {
    SigningError::Setup(e.to_string())
}

fn open(keyring: &Keyring, r: &SigningKeyRecord) -> Result<LiveKey, SigningError> {
    if r.alg != ALG {
        return Err(SigningError::Setup(format!(
            "key {}: algorithm {}",
            r.id, r.alg
        )));
    }
    let der = keyring
        .open(&r.private_key, &aad(&r.id))
        .map_err(|e| SigningError::Setup(format!("key {}: {e}", r.id)))?;
    let jwk: serde_json::Value = serde_json::from_str(&r.public_jwk)
        .map_err(|_| SigningError::Setup(format!("key {}: bad public JWK", r.id)))?;
    let x = jwk["x"]
        .as_str()
        .ok_or_else(|| SigningError::Setup(format!("key {}: JWK without x", r.id)))?;
    let decoding = DecodingKey::from_ed_components(x)
        .map_err(|e| SigningError::Setup(format!("key {}: {e}", r.id)))?;
    Ok(LiveKey {
        id: r.id.clone(),
        encoding: EncodingKey::from_ed_der(&der),
        decoding,
        jwk,
        retired: r.retired_at_ms.is_some(),
        verify_until_ms: r.verify_until_ms,
    })
}

impl SigningKeys {
    /// Loads the keys, creating the first one if there is none.
    pub async fn load(
        store: &dyn AccountStore,
        keyring: Arc<Keyring>,
        issuer: &str,
    ) -> Result<Self, SigningError> {
        let me = Self {
            keyring,
            keys: RwLock::new(Vec::new()),
            issuer: issuer.to_string(),
            last_refresh: Mutex::new(None),
        };
        if store.signing_keys().await.map_err(setup)?.is_empty() {
            let rec = generate(&me.keyring, crate::clock::now_ms())?;
            store.insert_signing_key(&rec).await.map_err(setup)?;
        }
        me.refresh(store).await?;
        Ok(me)
    }

    /// Re-reads the keys (another replica or the CLI may have rotated).
    pub async fn refresh(&self, store: &dyn AccountStore) -> Result<(), SigningError> {
        let now = crate::clock::now_ms();
        let mut live = Vec::new();
        for r in store.signing_keys().await.map_err(setup)? {
            if r.verify_until_ms.is_some_and(|t| t <= now) {
                continue;
            }
            live.push(open(&self.keyring, &r)?);
        }
        if let Ok(mut keys) = self.keys.write() {
            *keys = live;
        }
        if let Ok(mut t) = self.last_refresh.lock() {
            *t = Some(Instant::now());
        }
        Ok(())
    }

    /// Re-reads the keys unless that happened less than a second ago.
    pub async fn refresh_if_stale(&self, store: &dyn AccountStore) -> Result<(), SigningError> {
        let stale = self
            .last_refresh
            .lock()
            .map(|t| t.is_none_or(|t| t.elapsed() >= REFRESH_EVERY))
            .unwrap_or(false);
        if stale {
            self.refresh(store).await?;
        }
        Ok(())
    }

    /// Whether `kid` names a key that verifies now.
    pub fn knows(&self, kid: &str) -> bool {
        let now = crate::clock::now_ms();
        self.keys
            .read()
            .map(|k| k.iter().any(|k| k.id == kid && k.verifies_at(now)))
            .unwrap_or(false)
    }

    /// The id of the key that signs.
    pub fn current_kid(&self) -> Option<String> {
        let keys = self.keys.read().ok()?;
        keys.iter().find(|k| !k.retired).map(|k| k.id.clone())
    }

    /// The public keys that verify now, as a JWK Set.
    pub fn jwks(&self) -> serde_json::Value {
        let now = crate::clock::now_ms();
        let keys: Vec<serde_json::Value> = self
            .keys
            .read()
            .map(|k| {
                k.iter()
                    .filter(|k| k.verifies_at(now))
                    .map(|k| k.jwk.clone())
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({ "keys": keys })
    }

    fn with_current<T>(
        &self,
        f: impl FnOnce(&LiveKey) -> Result<T, SigningError>,
    ) -> Result<T, SigningError> {
        let keys = self.keys.read().map_err(|_| SigningError::NoKey)?;
        let key = keys
            .iter()
            .find(|k| !k.retired)
            .ok_or(SigningError::NoKey)?;
        f(key)
    }

    /// Signs an access token for `sub` of `tenant` in session `sid`, valid for `ttl`.
    pub fn mint_access(
        &self,
        sub: &str,
        tenant: &str,
        sid: &str,
        ttl: Duration,
    ) -> Result<String, SigningError> {
        let now = crate::clock::now_ms().max(0) as u64 / 1000;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            tenant: tenant.to_string(),
            sid: sid.to_string(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        self.with_current(|k| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(k.id.clone());
            jsonwebtoken::encode(&header, &claims, &k.encoding)
                .map_err(|e| SigningError::Setup(e.to_string()))
        })
    }

    /// Signs an invitation for `email` to join `tenant` as `role`, valid for `ttl`. Its header
    /// names its own type ([`INVITE_TYP`]), so it is never taken for an access token.
    pub fn mint_invite(
        &self,
        tenant: &str,
        email: &str,
        role: &str,
        ttl: Duration,
    ) -> Result<(String, InviteClaims), SigningError> {
        let now = crate::clock::now_ms().max(0) as u64 / 1000;
        let claims = InviteClaims {
            iss: self.issuer.clone(),
            tenant: tenant.to_string(),
            email: email.to_string(),
            role: role.to_string(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        let token = self.with_current(|k| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(k.id.clone());
            header.typ = Some(INVITE_TYP.to_string());
            jsonwebtoken::encode(&header, &claims, &k.encoding)
                .map_err(|e| SigningError::Setup(e.to_string()))
        })?;
        Ok((token, claims))
    }

    /// Verifies an invitation upgate signed: its type, key, signature, issuer and expiry.
    pub fn verify_invite(&self, token: &str) -> Result<InviteClaims, SigningError> {
        // No leeway: an invitation lasts days, and ends when it says.
        let c: InviteClaims = self.verify(token, Some(INVITE_TYP), &["exp", "iat", "iss"], 0)?;
        if c.tenant.is_empty() || c.email.is_empty() {
            return Err(SigningError::Claims);
        }
        Ok(c)
    }

    /// Verifies an access token upgate signed (see the module docs for the checks).
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, SigningError> {
        let c: AccessClaims =
            self.verify(token, None, &["exp", "iat", "iss", "sub"], LEEWAY_SECS)?;
        let now_s = crate::clock::now_ms().max(0) as u64 / 1000;
        if c.sub.is_empty()
            || c.tenant.is_empty()
            || c.sid.is_empty()
            || c.iat > now_s + LEEWAY_SECS
        {
            return Err(SigningError::Claims);
        }
        Ok(c)
    }

    /// The checks every token upgate signed gets: size, EdDSA only, a `kid` naming a key that
    /// verifies now, the header type (`typ`: `None` means an access token, which carries no
    /// type or `JWT`), the signature, the issuer, `required` claims, and the expiry with
    /// `leeway` seconds of clock skew.
    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: Option<&str>,
        required: &[&str],
        leeway: u64,
    ) -> Result<T, SigningError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(SigningError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| SigningError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(SigningError::Algorithm);
        }
        let type_ok = match (typ, header.typ.as_deref()) {
            (None, None | Some("JWT")) => true,
            (Some(want), Some(got)) => want == got,
            _ => false,
        };
        if !type_ok {
            return Err(SigningError::Claims);
        }
        let kid = header.kid.ok_or(SigningError::UnknownKey)?;
        let now = crate::clock::now_ms();
        let keys = self.keys.read().map_err(|_| SigningError::UnknownKey)?;
        let key = keys
            .iter()
            .find(|k| k.id == kid && k.verifies_at(now))
            .ok_or(SigningError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.leeway = leeway;
        v.validate_aud = false;
        v.set_issuer(&[self.issuer.as_str()]);
        v.set_required_spec_claims(required);
        let data =
            jsonwebtoken::decode::<T>(token, &key.decoding, &v).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => SigningError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => SigningError::Algorithm,
                _ => SigningError::Claims,
            })?;
        Ok(data.claims)
    }

    /// Signs `receipt` with the current key: a detached JWS (`header..signature`) over its
    /// canonical JSON.
    pub fn sign_receipt(&self, receipt: &ReceiptClaims) -> Result<SignedReceipt, SigningError> {
        let payload = receipt.canonical();
        self.with_current(|k| {
            let header = serde_json::json!({ "alg": ALG, "kid": k.id, "typ": RECEIPT_TYP });
            let h = URL_SAFE_NO_PAD.encode(header.to_string());
            let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(&payload));
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &k.encoding, Algorithm::EdDSA)
                .map_err(|e| SigningError::Setup(e.to_string()))?;
            Ok(SignedReceipt {
                claims: receipt.clone(),
                jws: format!("{h}..{sig}"),
            })
        })
    }
}

/// What a receipt states about one committed upload. Fields are declared in sorted order:
/// serialised as they are (no whitespace, integers plain, strings escaped by `serde_json`),
/// that is the canonical form (RFC 8785 for these types).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptClaims {
    /// RFC 3339, UTC, milliseconds.
    pub committed_at: String,
    /// The detected (sniffed) type the upload was stored as.
    pub content_type: String,
    pub file_id: String,
    /// The storage key of this version.
    pub key: String,
    /// The content checks' verdict.
    pub scan: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: u64,
    /// The principal the file belongs to (`app`, `user:<id>`).
    pub uploader: String,
    /// The version id (the last segment of `key`).
    pub version: String,
}

impl ReceiptClaims {
    /// The canonical JSON bytes the signature covers.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A receipt and its detached JWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    #[serde(flatten)]
    pub claims: ReceiptClaims,
    /// `BASE64URL(header)..BASE64URL(signature)`; the payload is the canonical JSON of the
    /// other members.
    pub jws: String,
}

impl SignedReceipt {
    /// Reads a receipt from JSON, refusing missing, extra or mistyped members (an added
    /// member is not covered by the signature, so it must not ride along).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, SigningError> {
        let mut obj = v.as_object().ok_or(SigningError::Malformed)?.clone();
        let jws = obj
            .remove("jws")
            .and_then(|j| j.as_str().map(str::to_string))
            .ok_or(SigningError::Malformed)?;
        let claims: ReceiptClaims = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|_| SigningError::Malformed)?;
        Ok(Self { claims, jws })
    }
}

/// Verifies a receipt against a JWK Set (the document `/.well-known/jwks.json` serves):
/// 1. take the members other than `jws` and serialise them canonically (keys sorted, no
///    whitespace); 2. the JWS header must say `alg: EdDSA` and name a `kid` of the set;
/// 3. the Ed25519 signature must verify over `header "." BASE64URL(canonical)`.
pub fn verify_receipt(
    receipt: &SignedReceipt,
    jwks: &serde_json::Value,
) -> Result<(), SigningError> {
    let (h, sig) = receipt
        .jws
        .split_once("..")
        .ok_or(SigningError::Malformed)?;
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| SigningError::Malformed)?,
    )
    .map_err(|_| SigningError::Malformed)?;
    if header["alg"] != ALG {
        return Err(SigningError::Algorithm);
    }
    let kid = header["kid"].as_str().ok_or(SigningError::UnknownKey)?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or(SigningError::UnknownKey)?;
    if jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" {
        return Err(SigningError::Algorithm);
    }
    let x = jwk["x"].as_str().ok_or(SigningError::Malformed)?;
    let key = DecodingKey::from_ed_components(x).map_err(|_| SigningError::Malformed)?;
    let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(receipt.claims.canonical()));
    match jsonwebtoken::crypto::verify(sig, input.as_bytes(), &key, Algorithm::EdDSA) {
        Ok(true) => Ok(()),
        _ => Err(SigningError::BadSignature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_canonical_form_has_sorted_keys_and_no_whitespace() {
        let r = ReceiptClaims {
            committed_at: "2026-12-01T10:00:00.000Z".into(),
            content_type: "application/pdf".into(),
            file_id: "f1".into(),
            key: "t/f1/v1".into(),
            scan: "checked".into(),
            sha256: "ab".into(),
            size: 5,
            uploader: "user:u1".into(),
            version: "v1".into(),
        };
        assert_eq!(
            String::from_utf8(r.canonical()).expect("utf8"),
            r#"{"committed_at":"2026-12-01T10:00:00.000Z","content_type":"application/pdf","file_id":"f1","key":"t/f1/v1","scan":"checked","sha256":"ab","size":5,"uploader":"user:u1","version":"v1"}"#
        );
    }

    #[test]
    fn pkcs8_of_a_seed_is_48_bytes() {
        assert_eq!(pkcs8(&[7u8; 32]).len(), 48);
    }
}
