//! Bearer-token (JWT) verification for the JSON control API.
//!
//! The control API accepts `Authorization: Bearer <token>` where the token is a compact JWS
//! (RFC 7515) carrying JWT claims (RFC 7519). [`JwtVerifier::verify`] is the only way to turn such
//! a token into a [`JwtPrincipal`] (tenant, subject, key id, expiry); handlers act on that.
//!
//! The `jsonwebtoken` crate parses the header, verifies the signature, decodes the payload and
//! compares `iss` and `aud`. This module holds upgate's policy around it: which key a token may
//! name and with which algorithm, the token size, the duplicate-member guard, the required claims,
//! the time and lifetime bounds, and the tenant binding.
//!
//! # Keys
//!
//! Every token must name its key in the `kid` header; the key decides which algorithm is allowed:
//!
//! - `[[jwt.hs256]]` entries are shared secrets (HS256 only). Several may be valid at once, so a
//!   secret is rotated by adding the new `kid`, moving issuers over, then removing the old one.
//!   Each entry is bound to one tenant.
//! - `jwt.jwks_file` is a JWK Set (RFC 7517) of public keys: `kty = "RSA"` keys verify RS256 only,
//!   `kty = "EC"` / `crv = "P-256"` keys verify ES256 only. The file is re-read when its
//!   modification time or size changes (checked at most every [`JWKS_RECHECK_INTERVAL`], on the
//!   verification path) or when [`JwtVerifier::reload`] is called; a file that fails to load is
//!   logged and the previous keys stay in use.
//!
//! The header's `alg` is never trusted to pick the algorithm: each key is verified with a
//! `Validation` allowing only its own algorithm, which the crate compares with `alg` before any
//! signature work. That refuses `alg: none`, every algorithm other than HS256/RS256/ES256, and
//! algorithm confusion (an HS256 token whose `kid` names an RSA key is refused before any MAC is
//! computed, so a public key can never act as an HMAC secret). Header parameters that point at
//! other keys (`jku`, `jwk`, `x5u`, `x5c`) are ignored; a `crit` header is refused, since no
//! extension is understood.
//!
//! # Tenants
//!
//! - HS256: the tenant is the key's configured `tenant`. If the token also carries the
//!   `tenant_claim` claim, it must be a string equal to it ([`JwtError::WrongTenant`]).
//! - JWKS: the tenant is the `tenant_claim` claim (default `"tenant"`), a required non-empty
//!   string. The identity provider holding the private key is trusted to state the tenant.
//!
//! # Check order
//!
//! Each step's rejection is tested by name below. Nothing from the payload is looked at before
//! the signature verifies.
//!
//! 1. Shape: at most [`MAX_TOKEN_BYTES`], three dot-separated parts ([`JwtError::Malformed`]).
//! 2. Header: base64url without padding, a JSON object without duplicate members and without
//!    `crit`, standard members of their standard types (`Malformed`); `alg` one of
//!    HS256/RS256/ES256 ([`JwtError::UnsupportedAlgorithm`]); `kid` present
//!    (`MissingClaim("kid")`).
//! 3. Key: `kid` names a configured key ([`JwtError::UnknownKey`]) whose algorithm is `alg`
//!    (`UnsupportedAlgorithm`).
//! 4. Signature ([`JwtError::BadSignature`]; HMAC tags compared in constant time by the crypto
//!    backend), then the payload: base64url JSON object (`Malformed`), `iss` equal to `issuer` and
//!    `aud` (a string or an array of strings) containing `audience` when configured and present
//!    ([`JwtError::WrongIssuer`], [`JwtError::WrongAudience`]).
//! 5. Payload: no duplicate members, NumericDates non-negative numbers, `sub` and `iss` strings,
//!    `aud` a string or an array of strings (`Malformed`); `exp`, `iat` and a non-empty `sub`
//!    present ([`JwtError::MissingClaim`]).
//! 6. Time, with `leeway_secs` either way: `now < exp + leeway` ([`JwtError::Expired`]);
//!    `nbf <= now + leeway` and `iat <= now + leeway` ([`JwtError::NotYetValid`]).
//! 7. Lifetime: `iat <= exp` (`Malformed`) and `exp - iat <= max_lifetime_secs`
//!    ([`JwtError::LifetimeTooLong`]), so a leaked token is useful for a bounded time only.
//! 8. `iss` and `aud` present when configured (`MissingClaim("iss")`, `MissingClaim("aud")`).
//! 9. Tenant, as above (`MissingClaim("tenant")` names the configured claim).
//!
//! # Secrets
//!
//! HS256 secrets are at least [`MIN_HS256_SECRET_BYTES`] bytes, zeroized on drop and printed as
//! `<redacted>`; errors never contain a secret, a signature or token contents.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
    RSAKeyParameters,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Number, Value};
use zeroize::Zeroizing;

/// Longest accepted token, in bytes. Bounds the base64/JSON work an unauthenticated caller can
/// cause; real tokens are a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Shortest accepted HS256 secret (RFC 7518 §3.2: a key of at least the hash size). Shorter
/// secrets can be brute-forced offline from a single token.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// How often, at most, the verification path looks at the JWKS file for changes.
pub const JWKS_RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The algorithms a key can have; a token naming any other is refused before its key is looked up.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256];

/// RSA modulus sizes accepted from the JWKS (the verifier refuses anything else at use).
const RSA_MODULUS_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

pub use crate::config::jwt::{Hs256Key, JwtConfig};

/// Who a verified token speaks for. Only [`JwtVerifier::verify`] produces one from a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPrincipal {
    /// The tenant: the HS256 key's binding, or the JWKS token's tenant claim.
    pub tenant: String,
    /// The `sub` claim (non-empty).
    pub subject: String,
    /// The `kid` of the key that verified the token.
    pub key_id: String,
    /// The `exp` claim (without leeway).
    pub expires_at: SystemTime,
}

/// Why a token (or the configuration) was refused. Messages carry no secret and no token content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed compact JWS/JWT (shape, size, base64url, JSON, claim types).
    #[error("malformed token")]
    Malformed,
    /// The `kid` names no configured key (or a retired one).
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify with the named key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` (plus leeway) has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` lies in the future (beyond leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` differs from the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// An HS256 token's tenant claim differs from its key's tenant.
    #[error("tenant claim does not match the key's tenant")]
    WrongTenant,
    /// A required claim (or the `kid` header) is absent or empty. `"tenant"` stands for the
    /// configured tenant claim, whatever its name.
    #[error("missing claim `{0}`")]
    MissingClaim(&'static str),
    /// `exp - iat` exceeds `max_lifetime_secs`.
    #[error("token lifetime exceeds the allowed maximum")]
    LifetimeTooLong,
    /// `alg` is `none`, unknown, or not the algorithm of the named key.
    #[error("unsupported algorithm for this key")]
    UnsupportedAlgorithm,
    /// The `[jwt]` configuration or a key file is unusable; every problem, `; `-separated.
    #[error("jwt configuration: {0}")]
    Config(String),
}

/// Verifies bearer tokens against the configured keys. Build it once and share it behind an
/// `Arc`: `verify` takes `&self` and may run on many tasks at once.
pub struct JwtVerifier {
    hs256: HashMap<String, HmacKey>,
    jwks: Option<JwksSource>,
    /// What the crate checks, one entry per key algorithm: a key is only ever handed to the
    /// crate with the `Validation` that allows its own algorithm and no other.
    validations: HashMap<Algorithm, Validation>,
    tenant_claim: String,
    issuer: String,
    audience: String,
    leeway: Duration,
    max_lifetime: Duration,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hs256: Vec<&str> = self.hs256.keys().map(String::as_str).collect();
        hs256.sort_unstable();
        f.debug_struct("JwtVerifier")
            .field("hs256_kids", &hs256)
            .field("jwks", &self.jwks)
            .field("tenant_claim", &self.tenant_claim)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Checks the configuration and loads the secret files and the JWKS file. Every problem is
    /// reported at once in one [`JwtError::Config`].
    pub fn new(cfg: &JwtConfig) -> Result<Self, JwtError> {
        // Pin the backend: if feature unification ever enables a second jsonwebtoken backend, its
        // automatic choice would panic at the first verification. An error only means a provider
        // is already installed, which is what we need.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );

        let mut problems = Vec::new();
        if cfg.tenant_claim.is_empty() {
            problems.push("jwt.tenant_claim must not be empty".to_string());
        }
        if cfg.max_lifetime_secs == 0 {
            problems.push("jwt.max_lifetime_secs must be at least 1".to_string());
        }

        let mut hs256 = HashMap::new();
        let mut kids = HashSet::new();
        for (i, key) in cfg.hs256.iter().enumerate() {
            let at = format!("jwt.hs256[{i}] (kid {:?})", key.kid);
            if key.kid.is_empty() {
                problems.push(format!("{at}: kid must not be empty"));
            } else if !kids.insert(key.kid.as_str()) {
                problems.push(format!("{at}: duplicate kid"));
            }
            if key.tenant.is_empty() {
                problems.push(format!("{at}: tenant must not be empty"));
            }
            match load_hs256_secret(key) {
                Ok(secret) => {
                    if !key.kid.is_empty() {
                        let entry = HmacKey {
                            key: DecodingKey::from_secret(&secret),
                            tenant: key.tenant.clone(),
                        };
                        hs256.entry(key.kid.clone()).or_insert(entry);
                    }
                }
                Err(p) => problems.push(format!("{at}: {p}")),
            }
        }

        let mut jwks = None;
        if !cfg.jwks_file.is_empty() {
            let reserved: HashSet<String> = cfg.hs256.iter().map(|k| k.kid.clone()).collect();
            match JwksSource::open(PathBuf::from(&cfg.jwks_file), reserved) {
                Ok(source) => jwks = Some(source),
                Err(mut p) => problems.append(&mut p),
            }
        }

        if !problems.is_empty() {
            return Err(JwtError::Config(problems.join("; ")));
        }
        Ok(Self {
            hs256,
            jwks,
            validations: ALGORITHMS
                .iter()
                .map(|&alg| (alg, validation(alg, &cfg.issuer, &cfg.audience)))
                .collect(),
            tenant_claim: cfg.tenant_claim.clone(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: Duration::from_secs(cfg.leeway_secs),
            max_lifetime: Duration::from_secs(cfg.max_lifetime_secs),
        })
    }

    /// Whether any key is configured; if not, the control API has no bearer-token access.
    pub fn is_enabled(&self) -> bool {
        !self.hs256.is_empty() || self.jwks.is_some()
    }

    /// Re-reads the JWKS file now (e.g. on SIGHUP). On error the previous keys stay in use.
    /// Without a JWKS file this does nothing.
    pub fn reload(&self) -> Result<(), JwtError> {
        match &self.jwks {
            Some(source) => source.reload().map_err(|p| JwtError::Config(p.join("; "))),
            None => Ok(()),
        }
    }

    /// Verifies `token` (the text after `Bearer `) at wall-clock time `now`, in the order given in
    /// the module documentation.
    ///
    /// With a JWKS file, at most one call per [`JWKS_RECHECK_INTERVAL`] also stats the file (and
    /// re-reads it if it changed): a small blocking read, rare enough for an async handler.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<JwtPrincipal, JwtError> {
        // 1. Shape.
        let (header_segment, payload_segment) = segments(token)?;

        // 2. Header. The crate parses it; the raw members are read only for what its `Header`
        //    cannot tell: a repeated member, a `crit` of any form (even `null`), and whether a
        //    header it refuses names an unknown algorithm or is malformed.
        let raw_header = unique_members(header_segment)?;
        if raw_header.contains_key("crit") {
            return Err(JwtError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_error(&raw_header))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(JwtError::UnsupportedAlgorithm);
        }
        let kid = match header.kid.as_deref() {
            Some(kid) if !kid.is_empty() => kid,
            _ => return Err(JwtError::MissingClaim("kid")),
        };

        // 3. Key. `jwks_keys` keeps the loaded set alive while its key is in use.
        let jwks_keys: Arc<JwksKeys>;
        let (alg, key, binding) = if let Some(key) = self.hs256.get(kid) {
            (Algorithm::HS256, &key.key, TenantBinding::Key(&key.tenant))
        } else if let Some(source) = &self.jwks {
            source.refresh_if_due();
            jwks_keys = source.current();
            let key = jwks_keys.by_kid.get(kid).ok_or(JwtError::UnknownKey)?;
            (key.alg, &key.key, TenantBinding::Claim)
        } else {
            return Err(JwtError::UnknownKey);
        };
        let validation = self
            .validations
            .get(&alg)
            .ok_or(JwtError::UnsupportedAlgorithm)?;

        // 4. The key's algorithm against `alg`, the signature, the payload JSON, `iss`, `aud`.
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(crate_error)?
            .claims;

        // 5. Payload and required claims. serde_json keeps the last of repeated members, so a
        //    repeated claim would go unnoticed in `claims`; the signed segment itself is checked.
        unique_members(payload_segment)?;
        let registered = Registered::deserialize(&claims).map_err(|_| JwtError::Malformed)?;
        let exp = registered.exp.ok_or(JwtError::MissingClaim("exp"))?;
        let iat = registered.iat.ok_or(JwtError::MissingClaim("iat"))?;
        let subject = match registered.sub {
            Some(sub) if !sub.is_empty() => sub,
            _ => return Err(JwtError::MissingClaim("sub")),
        };

        // 6. Time, against the caller's `now`: the crate's own `exp`/`nbf` check reads the system
        //    clock and rounds to whole seconds, so it is switched off (see `validation`). A sum
        //    that overflows lies beyond any real clock.
        let far_future = |t: Option<SystemTime>| t.unwrap_or(SystemTime::UNIX_EPOCH + MAX_SECS);
        if now >= far_future(exp.checked_add(self.leeway)) {
            return Err(JwtError::Expired);
        }
        let latest_start = far_future(now.checked_add(self.leeway));
        if registered.nbf.is_some_and(|nbf| nbf > latest_start) || iat > latest_start {
            return Err(JwtError::NotYetValid);
        }

        // 7. Lifetime.
        let lifetime = exp.duration_since(iat).map_err(|_| JwtError::Malformed)?;
        if lifetime > self.max_lifetime {
            return Err(JwtError::LifetimeTooLong);
        }

        // 8. Issuer and audience: the crate compared them if present; here they must be.
        if !self.issuer.is_empty() && registered.iss.is_none() {
            return Err(JwtError::MissingClaim("iss"));
        }
        if !self.audience.is_empty() && !registered.has_aud {
            return Err(JwtError::MissingClaim("aud"));
        }

        // 9. Tenant.
        let claimed = match claims.get(&self.tenant_claim) {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(JwtError::Malformed),
        };
        let tenant = match binding {
            TenantBinding::Key(tenant) => match claimed {
                Some(claimed) if claimed != tenant => return Err(JwtError::WrongTenant),
                _ => tenant,
            },
            TenantBinding::Claim => match claimed {
                Some(claimed) if !claimed.is_empty() => claimed,
                _ => return Err(JwtError::MissingClaim("tenant")),
            },
        };

        Ok(JwtPrincipal {
            tenant: tenant.to_string(),
            subject,
            key_id: kid.to_string(),
            expires_at: exp,
        })
    }
}

/// What the crate checks for keys of algorithm `alg`.
fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    // `verify` checks the times against its `now` argument with sub-second precision; the
    // crate can only compare whole seconds with the system clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    // Presence is checked after decoding, in a fixed order: the crate walks a `HashSet`, so with
    // two claims missing it would name either.
    v.required_spec_claims.clear();
    if !issuer.is_empty() {
        v.set_issuer(&[issuer]);
    }
    if audience.is_empty() {
        // The crate refuses any token with an `aud` when no audience is set; upgate then ignores it.
        v.validate_aud = false;
    } else {
        v.set_audience(&[audience]);
    }
    v
}

/// The crate's refusal as upgate's. Everything not named is a token that does not parse.
fn crate_error(e: jsonwebtoken::errors::Error) -> JwtError {
    match e.kind() {
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            JwtError::UnsupportedAlgorithm
        }
        // Key errors surface at verification (key material is parsed lazily); the key cannot
        // verify this token either way.
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidKeyFormat => JwtError::BadSignature,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        _ => JwtError::Malformed,
    }
}

/// Why the crate refused a header that is a JSON object: no `alg`, or an `alg` that names no
/// algorithm, is an unsupported algorithm (as `none` is); anything else is malformed.
fn header_error(raw: &Map<String, Value>) -> JwtError {
    match raw.get("alg") {
        None => JwtError::UnsupportedAlgorithm,
        Some(Value::String(name)) if name.parse::<Algorithm>().is_err() => {
            JwtError::UnsupportedAlgorithm
        }
        Some(_) => JwtError::Malformed,
    }
}

/// Largest NumericDate accepted, well past any real expiry (year 9999); keeps time sums finite.
const MAX_SECS: Duration = Duration::from_secs(253_402_300_799);

/// Where a verified token's tenant comes from.
enum TenantBinding<'a> {
    /// The HS256 key's configured tenant.
    Key(&'a str),
    /// The configured tenant claim (JWKS keys).
    Claim,
}

/// The encoded header and payload of a token, which must have exactly three parts. The crate
/// splits from the right (`a.b.c.d` would give it the header `a.b`); three parts make sure the
/// duplicate check reads the same segments the crate does.
fn segments(token: &str) -> Result<(&str, &str), JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(_signature), None) => Ok((header, payload)),
        _ => Err(JwtError::Malformed),
    }
}

/// A JSON object whose members are unique: a duplicate `alg`, `kid` or claim would let two
/// parsers disagree about what was signed, so it is refused rather than resolved.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut members = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if members.contains_key(&name) {
                        return Err(de::Error::custom("duplicate member"));
                    }
                    members.insert(name, value);
                }
                Ok(UniqueObject(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// base64url (no padding, canonical) → JSON object with unique members.
fn unique_members(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .map(|o| o.0)
        .map_err(|_| JwtError::Malformed)
}

/// The registered claims upgate reads, typed. A claim present with another type (`null`
/// included) makes the token malformed rather than counting as absent.
#[derive(Deserialize)]
struct Registered {
    #[serde(default, deserialize_with = "present")]
    sub: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<SystemTime>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<SystemTime>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<SystemTime>,
    #[serde(default, deserialize_with = "present")]
    iss: Option<String>,
    /// The crate compares the audience but lets an `aud` it cannot read pass; this refuses it.
    #[serde(rename = "aud", default, deserialize_with = "audience")]
    has_aud: bool,
}

/// A claim that, when present, must deserialize as `T`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A NumericDate (seconds since the epoch, fractions allowed, not negative, at most
/// [`MAX_SECS`]).
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
    let n = Number::deserialize(d)?;
    let since_epoch = match n.as_u64() {
        Some(secs) => Duration::from_secs(secs),
        None => n
            .as_f64()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| de::Error::custom("not a NumericDate"))?,
    };
    if since_epoch > MAX_SECS {
        return Err(de::Error::custom("NumericDate out of range"));
    }
    Ok(Some(UNIX_EPOCH + since_epoch))
}

/// `aud`: a string or an array of strings.
fn audience<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::String(_) => Ok(true),
        Value::Array(auds) if auds.iter().all(Value::is_string) => Ok(true),
        _ => Err(de::Error::custom(
            "aud is not a string or an array of strings",
        )),
    }
}

/// An HS256 key and the tenant it is bound to. `DecodingKey` zeroizes the secret on drop and
/// redacts it in `Debug`.
struct HmacKey {
    key: DecodingKey,
    tenant: String,
}

/// The secret of one `[[jwt.hs256]]` entry, or what is wrong with it.
fn load_hs256_secret(key: &Hs256Key) -> Result<Zeroizing<Vec<u8>>, String> {
    let secret = match (key.secret.is_empty(), key.secret_file.is_empty()) {
        (false, false) => return Err("set only one of secret and secret_file".into()),
        (true, true) => return Err("set secret or secret_file".into()),
        (false, true) => Zeroizing::new(key.secret.as_bytes().to_vec()),
        (true, false) => {
            let text = std::fs::read_to_string(&key.secret_file)
                .map(Zeroizing::new)
                .map_err(|e| format!("cannot read secret_file {:?}: {e}", key.secret_file))?;
            let line = text.lines().next().unwrap_or("").trim();
            Zeroizing::new(line.as_bytes().to_vec())
        }
    };
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(format!(
            "secret is {} bytes, HS256 needs at least {MIN_HS256_SECRET_BYTES}",
            secret.len()
        ));
    }
    Ok(secret)
}

/// A public key from the JWKS and the one algorithm it verifies.
struct PublicKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// One loaded JWK Set.
#[derive(Default)]
struct JwksKeys {
    by_kid: HashMap<String, PublicKey>,
}

/// What identifies a version of the JWKS file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// When the JWKS file was last looked at, and which version was last loaded (or tried).
struct Poll {
    checked_at: Instant,
    seen: Option<FileStamp>,
}

/// The JWKS file and the keys last loaded from it.
struct JwksSource {
    path: PathBuf,
    /// HS256 kids; a JWKS key may not reuse one (the key would be ambiguous).
    reserved: HashSet<String>,
    current: RwLock<Arc<JwksKeys>>,
    poll: Mutex<Poll>,
    recheck_every: Duration,
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.current();
        let mut kids: Vec<&str> = keys.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("JwksSource")
            .field("path", &self.path)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    fn open(path: PathBuf, reserved: HashSet<String>) -> Result<Self, Vec<String>> {
        let seen = stamp(&path);
        let keys = load_jwks(&path, &reserved)?;
        Ok(Self {
            path,
            reserved,
            current: RwLock::new(Arc::new(keys)),
            poll: Mutex::new(Poll {
                checked_at: Instant::now(),
                seen,
            }),
            recheck_every: JWKS_RECHECK_INTERVAL,
        })
    }

    /// The keys in use. The lock only guards an `Arc` swap, so a poisoned lock still holds a
    /// complete key set.
    fn current(&self) -> Arc<JwksKeys> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn reload(&self) -> Result<(), Vec<String>> {
        let mut poll = self.poll.lock().unwrap_or_else(PoisonError::into_inner);
        poll.checked_at = Instant::now();
        poll.seen = stamp(&self.path);
        self.load_and_swap()
    }

    /// Reloads if the interval has passed and the file changed. One caller checks at a time;
    /// the others go on with the current keys instead of waiting.
    fn refresh_if_due(&self) {
        let Ok(mut poll) = self.poll.try_lock() else {
            return;
        };
        if poll.checked_at.elapsed() < self.recheck_every {
            return;
        }
        poll.checked_at = Instant::now();
        let now_seen = stamp(&self.path);
        if now_seen == poll.seen {
            return;
        }
        // Remember the version even if it fails to load: a broken file is reported once, and
        // the fixed file will carry a new stamp.
        poll.seen = now_seen;
        if let Err(problems) = self.load_and_swap() {
            tracing::warn!(
                path = %self.path.display(),
                problems = %problems.join("; "),
                "jwt: JWKS file changed but cannot be loaded; keeping the previous keys"
            );
        }
    }

    fn load_and_swap(&self) -> Result<(), Vec<String>> {
        let keys = load_jwks(&self.path, &self.reserved)?;
        tracing::info!(
            path = %self.path.display(),
            keys = keys.by_kid.len(),
            "jwt: JWKS loaded"
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(())
    }
}

/// Reads and checks a JWK Set; every problem is listed.
fn load_jwks(path: &Path, reserved: &HashSet<String>) -> Result<JwksKeys, Vec<String>> {
    let at = format!("jwt.jwks_file {}", path.display());
    let text = std::fs::read(path).map_err(|e| vec![format!("{at}: cannot read: {e}")])?;
    let json: Value =
        serde_json::from_slice(&text).map_err(|e| vec![format!("{at}: not JSON: {e}")])?;
    let set = JwkSet::deserialize(&json).map_err(|e| vec![format!("{at}: not a JWK Set: {e}")])?;
    // The same keys as JSON objects, for the members `Jwk` does not keep (see `parse_jwk`).
    // `JwkSet` parsed, so `keys` is an array with one object per `Jwk`, in order.
    let raw_keys = json.get("keys").and_then(Value::as_array);

    let mut problems = Vec::new();
    let mut keys = JwksKeys::default();
    for (i, (jwk, raw)) in set
        .keys
        .iter()
        .zip(raw_keys.into_iter().flatten())
        .enumerate()
    {
        let kid = jwk.common.key_id.as_deref().unwrap_or("");
        let key_at = format!("{at}: keys[{i}] (kid {kid:?})");
        let Some(raw) = raw.as_object() else {
            problems.push(format!("{key_at}: not a JSON object"));
            continue;
        };
        match parse_jwk(jwk, raw) {
            Ok(None) => {}
            Ok(Some((kid, key))) => {
                if reserved.contains(&kid) {
                    problems.push(format!("{key_at}: kid is also an HS256 key id"));
                } else if let Entry::Vacant(slot) = keys.by_kid.entry(kid) {
                    slot.insert(key);
                } else {
                    problems.push(format!("{key_at}: duplicate kid"));
                }
            }
            Err(p) => problems.push(format!("{key_at}: {p}")),
        }
    }
    if problems.is_empty() && keys.by_kid.is_empty() {
        problems.push(format!("{at}: no RS256 or ES256 signing key"));
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

/// One JWK (and the same key as raw JSON): `Ok(None)` for a key not meant for verifying
/// signatures (skipped), otherwise the kid and key, or why it cannot be used.
fn parse_jwk(jwk: &Jwk, raw: &Map<String, Value>) -> Result<Option<(String, PublicKey)>, String> {
    // `Jwk` has no field for private key members and drops them, so they are looked for in the
    // raw key: their presence means a private key was published, which must not pass silently.
    if let Some(found) = PRIVATE_JWK_MEMBERS.iter().find(|m| raw.contains_key(**m)) {
        return Err(format!(
            "holds private or symmetric key material ({found:?}); publish public keys only"
        ));
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return Ok(None);
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Ok(None);
    }
    let kid = match jwk.common.key_id.as_deref() {
        Some(kid) if !kid.is_empty() => kid.to_string(),
        _ => return Err("kid is required".into()),
    };
    let (alg, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => (Algorithm::RS256, rsa_key(params)?),
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, ec_key(jwk)?)
        }
        AlgorithmParameters::EllipticCurve(_) => {
            return Err(format!(
                "curve {:?} is not supported (P-256 only)",
                raw_str(raw, "crv")
            ));
        }
        _ => return Err(unsupported_key_type(raw)),
    };
    if let Some(declared) = jwk.common.key_algorithm
        && declared != KeyAlgorithm::from(alg)
    {
        return Err(format!(
            "alg {:?} is not supported for this key (only {alg:?})",
            raw_str(raw, "alg")
        ));
    }
    Ok(Some((kid, PublicKey { alg, key })))
}

/// A string member of a raw JWK as written (`""` if absent), for messages: the crate's enums
/// spell some values differently or fold unknown ones together.
fn raw_str<'a>(raw: &'a Map<String, Value>, name: &str) -> &'a str {
    raw.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Why a JWK the crate did not read as an RSA or EC key is unusable.
fn unsupported_key_type(raw: &Map<String, Value>) -> String {
    match raw.get("kty").and_then(Value::as_str) {
        None => "kty is required (RSA or EC)".into(),
        Some("RSA") => "an RSA key needs string members n and e".into(),
        Some("EC") => "an EC key needs crv \"P-256\" and string members x and y".into(),
        Some(other) => format!("key type {other:?} is not supported (RSA or EC)"),
    }
}

/// The RSA key, within the size bounds. The components are decoded here rather than by
/// `DecodingKey::from_jwk` to measure the modulus and to name a member that is not base64url.
fn rsa_key(params: &RSAKeyParameters) -> Result<DecodingKey, String> {
    let decode = |name: &str, text: &str| {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| format!("{name} is not base64url without padding"))
    };
    let n = decode("n", &params.n)?;
    let e = decode("e", &params.e)?;
    let significant = n.iter().skip_while(|b| **b == 0).count();
    let bits = match n.iter().find(|b| **b != 0) {
        Some(top) => significant * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if !RSA_MODULUS_BITS.contains(&bits) {
        return Err(format!(
            "RSA modulus is {bits} bits, accepted {}..={}",
            RSA_MODULUS_BITS.start(),
            RSA_MODULUS_BITS.end()
        ));
    }
    if e.iter().all(|b| *b == 0) || e.len() > 4 {
        return Err("RSA exponent is not usable".into());
    }
    Ok(DecodingKey::from_rsa_raw_components(&n, &e))
}

/// The P-256 key of `jwk`, whose curve has been checked.
fn ec_key(jwk: &Jwk) -> Result<DecodingKey, String> {
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "x or y is not base64url without padding")?;
    // `from_jwk` builds the uncompressed SEC1 point (0x04, x, y) without checking the coordinate
    // sizes; a wrong size would only fail later, at every verification.
    match key.kind() {
        DecodingKeyKind::SecretOrDer(point) if point.len() == 1 + 2 * 32 => Ok(key),
        _ => Err("P-256 coordinates must be 32 bytes each".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use hmac::{Hmac, Mac};
    use jsonwebtoken::EncodingKey;
    use serde_json::json;
    use sha2::Sha256;

    const T: u64 = 1_700_000_000;
    const SECRET_1: &str = "first-rotation-secret-0123456789abcdef";
    const SECRET_2: &str = "second-rotation-secret-0123456789abcdef";
    const RETIRED: &str = "retired-rotation-secret-0123456789abcdef";

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/jwt")
            .join(name)
    }

    /// The DER body of a PEM fixture.
    fn pem_der(name: &str) -> Vec<u8> {
        let text = std::fs::read_to_string(fixture(name)).expect("fixture");
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("pem base64")
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn now() -> SystemTime {
        at(T)
    }

    fn hs_key(kid: &str, secret: &str, tenant: &str) -> Hs256Key {
        Hs256Key {
            kid: kid.into(),
            secret: secret.into(),
            secret_file: String::new(),
            tenant: tenant.into(),
        }
    }

    fn config() -> JwtConfig {
        JwtConfig {
            hs256: vec![
                hs_key("k1", SECRET_1, "acme"),
                hs_key("k2", SECRET_2, "acme"),
            ],
            jwks_file: fixture("jwks.json").display().to_string(),
            ..JwtConfig::default()
        }
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&config()).expect("config")
    }

    fn claims() -> Value {
        json!({ "sub": "alice", "iat": T - 10, "exp": T + 600 })
    }

    fn with(mut base: Value, extra: Value) -> Value {
        for (k, v) in extra.as_object().expect("object") {
            base[k] = v.clone();
        }
        base
    }

    fn without(mut base: Value, name: &str) -> Value {
        base.as_object_mut().expect("object").remove(name);
        base
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    enum Sig<'a> {
        Hmac(&'a [u8]),
        Rs256,
        Es256,
        Literal(&'a str),
    }

    fn token_raw(header: &str, payload: &str, sig: Sig<'_>) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature = match sig {
            Sig::Hmac(secret) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac");
                mac.update(input.as_bytes());
                b64(&mac.finalize().into_bytes())
            }
            Sig::Rs256 => {
                let key = EncodingKey::from_rsa_der(&pem_der("rs256-private.pem"));
                jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).expect("rs")
            }
            Sig::Es256 => {
                let key = EncodingKey::from_ec_der(&pem_der("es256-private.pem"));
                jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::ES256).expect("es")
            }
            Sig::Literal(s) => s.to_string(),
        };
        format!("{input}.{signature}")
    }

    fn token(header: Value, claims: Value, sig: Sig<'_>) -> String {
        token_raw(&header.to_string(), &claims.to_string(), sig)
    }

    fn hs(kid: &str, secret: &str, claims: Value) -> String {
        token(
            json!({ "alg": "HS256", "typ": "JWT", "kid": kid }),
            claims,
            Sig::Hmac(secret.as_bytes()),
        )
    }

    fn rs(claims: Value) -> String {
        token(
            json!({ "alg": "RS256", "kid": "rsa-1" }),
            claims,
            Sig::Rs256,
        )
    }

    fn es(claims: Value) -> String {
        token(json!({ "alg": "ES256", "kid": "ec-1" }), claims, Sig::Es256)
    }

    fn config_error(cfg: &JwtConfig) -> String {
        match JwtVerifier::new(cfg) {
            Err(JwtError::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    // --- HS256 and rotation ---

    #[test]
    fn hs256_accepts_each_rotating_key() {
        let v = verifier();
        for (kid, secret) in [("k1", SECRET_1), ("k2", SECRET_2)] {
            let p = v.verify(&hs(kid, secret, claims()), now()).expect("valid");
            assert_eq!(
                p,
                JwtPrincipal {
                    tenant: "acme".into(),
                    subject: "alice".into(),
                    key_id: kid.into(),
                    expires_at: at(T + 600),
                }
            );
        }
    }

    #[test]
    fn hs256_rejects_retired_key() {
        let v = verifier();
        // The retired kid is gone from the config.
        assert_eq!(
            v.verify(&hs("k0", RETIRED, claims()), now()),
            Err(JwtError::UnknownKey)
        );
        // A live kid with the retired secret.
        assert_eq!(
            v.verify(&hs("k1", RETIRED, claims()), now()),
            Err(JwtError::BadSignature)
        );
        // The other key's secret under this kid.
        assert_eq!(
            v.verify(&hs("k1", SECRET_2, claims()), now()),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let v = verifier();
        let good = hs("k1", SECRET_1, claims());
        let (header, rest) = good.split_once('.').expect("dot");
        let (_, sig) = rest.split_once('.').expect("dot");
        let forged = b64(with(claims(), json!({ "sub": "root" }))
            .to_string()
            .as_bytes());
        assert_eq!(
            v.verify(&format!("{header}.{forged}.{sig}"), now()),
            Err(JwtError::BadSignature)
        );
        // Same for a JWKS key.
        let good = rs(with(claims(), json!({ "tenant": "acme" })));
        let (header, rest) = good.split_once('.').expect("dot");
        let (_, sig) = rest.split_once('.').expect("dot");
        let forged = b64(with(claims(), json!({ "tenant": "evil" }))
            .to_string()
            .as_bytes());
        assert_eq!(
            v.verify(&format!("{header}.{forged}.{sig}"), now()),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let v = verifier();
        for good in [
            hs("k1", SECRET_1, claims()),
            rs(with(claims(), json!({ "tenant": "acme" }))),
            es(with(claims(), json!({ "tenant": "acme" }))),
        ] {
            let (input, sig) = good.rsplit_once('.').expect("dot");
            let mut raw = URL_SAFE_NO_PAD.decode(sig).expect("b64");
            raw[0] ^= 1;
            let flipped = format!("{input}.{}", b64(&raw));
            assert_eq!(v.verify(&flipped, now()), Err(JwtError::BadSignature));
            let truncated = format!("{input}.{}", b64(&raw[..raw.len() - 1]));
            assert_eq!(v.verify(&truncated, now()), Err(JwtError::BadSignature));
            let empty = format!("{input}.");
            assert_eq!(v.verify(&empty, now()), Err(JwtError::BadSignature));
        }
    }

    #[test]
    fn tampered_header_kid_is_refused() {
        let v = verifier();
        let good = hs("k1", SECRET_1, claims());
        let (_, rest) = good.split_once('.').expect("dot");
        let header = b64(json!({ "alg": "HS256", "kid": "k2" })
            .to_string()
            .as_bytes());
        assert_eq!(
            v.verify(&format!("{header}.{rest}"), now()),
            Err(JwtError::BadSignature)
        );
    }

    // --- Algorithms ---

    #[test]
    fn alg_none_is_refused() {
        let v = verifier();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let t = token(
                json!({ "alg": alg, "kid": "k1" }),
                claims(),
                Sig::Literal(""),
            );
            assert_eq!(
                v.verify(&t, now()),
                Err(JwtError::UnsupportedAlgorithm),
                "{alg}"
            );
            // Even with a valid HS256 MAC attached.
            let t = token(
                json!({ "alg": alg, "kid": "k1" }),
                claims(),
                Sig::Hmac(SECRET_1.as_bytes()),
            );
            assert_eq!(
                v.verify(&t, now()),
                Err(JwtError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        let t = token(json!({ "kid": "k1" }), claims(), Sig::Literal(""));
        assert_eq!(v.verify(&t, now()), Err(JwtError::UnsupportedAlgorithm));
    }

    #[test]
    fn alg_confusion_rsa_public_key_as_hmac_secret_is_refused() {
        let v = verifier();
        let public_pem = std::fs::read(fixture("rs256-public.pem")).expect("pem");
        let public_der = pem_der("rs256-public.pem");
        for secret in [&public_pem, &public_der] {
            let t = token(
                json!({ "alg": "HS256", "kid": "rsa-1" }),
                with(claims(), json!({ "tenant": "acme" })),
                Sig::Hmac(secret),
            );
            assert_eq!(v.verify(&t, now()), Err(JwtError::UnsupportedAlgorithm));
        }
    }

    #[test]
    fn alg_must_match_the_key_type() {
        let v = verifier();
        let c = with(claims(), json!({ "tenant": "acme" }));
        // An RSA signature claimed as ES256 for the RSA key, and vice versa.
        let t = token(
            json!({ "alg": "ES256", "kid": "rsa-1" }),
            c.clone(),
            Sig::Rs256,
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::UnsupportedAlgorithm));
        let t = token(
            json!({ "alg": "RS256", "kid": "ec-1" }),
            c.clone(),
            Sig::Es256,
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::UnsupportedAlgorithm));
        // An RS256 token naming an HS256 kid.
        let t = token(json!({ "alg": "RS256", "kid": "k1" }), c, Sig::Rs256);
        assert_eq!(v.verify(&t, now()), Err(JwtError::UnsupportedAlgorithm));
    }

    #[test]
    fn unknown_algorithms_are_refused() {
        let v = verifier();
        for alg in [
            "HS384", "HS512", "RS512", "PS256", "ES384", "EdDSA", "hs256", "HS256 ", "",
        ] {
            let t = token(
                json!({ "alg": alg, "kid": "k1" }),
                claims(),
                Sig::Hmac(SECRET_1.as_bytes()),
            );
            assert_eq!(
                v.verify(&t, now()),
                Err(JwtError::UnsupportedAlgorithm),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn crit_header_is_refused() {
        let t = token(
            json!({ "alg": "HS256", "kid": "k1", "crit": ["exp"] }),
            claims(),
            Sig::Hmac(SECRET_1.as_bytes()),
        );
        assert_eq!(verifier().verify(&t, now()), Err(JwtError::Malformed));
    }

    #[test]
    fn embedded_jwk_header_is_ignored() {
        // A `jwk` header naming an attacker key changes nothing: the kid's key is used.
        let t = token(
            json!({ "alg": "HS256", "kid": "k1", "jwk": { "kty": "oct", "k": b64(b"attacker") } }),
            claims(),
            Sig::Hmac(b"attacker-chosen-secret-0123456789abcdef"),
        );
        assert_eq!(verifier().verify(&t, now()), Err(JwtError::BadSignature));
    }

    // --- Time ---

    #[test]
    fn expiry_honours_leeway_edges() {
        let v = verifier(); // leeway 60
        let t = hs("k1", SECRET_1, claims()); // exp = T + 600
        assert!(v.verify(&t, at(T + 659)).is_ok());
        assert!(
            v.verify(&t, at(T + 659) + Duration::from_millis(999))
                .is_ok()
        );
        assert_eq!(v.verify(&t, at(T + 660)), Err(JwtError::Expired));
        assert_eq!(v.verify(&t, at(T + 10_000)), Err(JwtError::Expired));

        let strict = JwtVerifier::new(&JwtConfig {
            leeway_secs: 0,
            ..config()
        })
        .expect("config");
        assert!(strict.verify(&t, at(T + 599)).is_ok());
        assert_eq!(strict.verify(&t, at(T + 600)), Err(JwtError::Expired));
    }

    #[test]
    fn not_before_honours_leeway_edges() {
        let v = verifier();
        let t = hs("k1", SECRET_1, with(claims(), json!({ "nbf": T + 100 })));
        assert!(v.verify(&t, at(T + 40)).is_ok());
        assert_eq!(v.verify(&t, at(T + 39)), Err(JwtError::NotYetValid));
        assert!(v.verify(&t, at(T + 100)).is_ok());
    }

    #[test]
    fn issued_in_the_future_is_refused() {
        let v = verifier();
        let t = hs(
            "k1",
            SECRET_1,
            json!({ "sub": "alice", "iat": T + 120, "exp": T + 700 }),
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::NotYetValid));
        assert!(v.verify(&t, at(T + 60)).is_ok());
    }

    #[test]
    fn fractional_numeric_dates_are_accepted() {
        let t = hs(
            "k1",
            SECRET_1,
            json!({ "sub": "alice", "iat": (T as f64) - 0.5, "exp": (T as f64) + 600.25 }),
        );
        let p = verifier().verify(&t, now()).expect("valid");
        assert_eq!(p.expires_at, at(T + 600) + Duration::from_millis(250));
    }

    #[test]
    fn bad_numeric_dates_are_malformed() {
        let v = verifier();
        for exp in [
            json!("1700000600"),
            json!(-1),
            json!(1e300),
            json!(null),
            json!(true),
        ] {
            let t = hs("k1", SECRET_1, with(claims(), json!({ "exp": exp })));
            assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed), "{exp}");
        }
        let t = hs("k1", SECRET_1, with(claims(), json!({ "nbf": "soon" })));
        assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed));
    }

    // --- Required claims ---

    #[test]
    fn missing_required_claims_are_named() {
        let v = verifier();
        for (name, c) in [
            ("sub", without(claims(), "sub")),
            ("sub", with(claims(), json!({ "sub": "" }))),
            ("exp", without(claims(), "exp")),
            ("iat", without(claims(), "iat")),
        ] {
            let t = hs("k1", SECRET_1, c);
            assert_eq!(v.verify(&t, now()), Err(JwtError::MissingClaim(name)));
        }
        let t = hs("k1", SECRET_1, with(claims(), json!({ "sub": 42 })));
        assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed));
    }

    #[test]
    fn missing_kid_is_refused() {
        let v = verifier();
        for header in [
            json!({ "alg": "HS256" }),
            json!({ "alg": "HS256", "kid": "" }),
        ] {
            let t = token(header, claims(), Sig::Hmac(SECRET_1.as_bytes()));
            assert_eq!(v.verify(&t, now()), Err(JwtError::MissingClaim("kid")));
        }
        let t = token(
            json!({ "alg": "HS256", "kid": 1 }),
            claims(),
            Sig::Hmac(SECRET_1.as_bytes()),
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed));
    }

    #[test]
    fn lifetime_over_the_maximum_is_refused() {
        let v = verifier(); // max 3600
        let ok = hs(
            "k1",
            SECRET_1,
            json!({ "sub": "a", "iat": T, "exp": T + 3600 }),
        );
        assert!(v.verify(&ok, now()).is_ok());
        let long = hs(
            "k1",
            SECRET_1,
            json!({ "sub": "a", "iat": T, "exp": T + 3601 }),
        );
        assert_eq!(v.verify(&long, now()), Err(JwtError::LifetimeTooLong));
        let year = hs(
            "k1",
            SECRET_1,
            json!({ "sub": "a", "iat": T, "exp": T + 365 * 86400 }),
        );
        assert_eq!(v.verify(&year, now()), Err(JwtError::LifetimeTooLong));
        let backwards = hs(
            "k1",
            SECRET_1,
            json!({ "sub": "a", "iat": T + 30, "exp": T + 20 }),
        );
        assert_eq!(v.verify(&backwards, now()), Err(JwtError::Malformed));
    }

    // --- Issuer and audience ---

    #[test]
    fn issuer_is_checked_when_configured() {
        let v = JwtVerifier::new(&JwtConfig {
            issuer: "https://idp.example".into(),
            ..config()
        })
        .expect("config");
        let t = |c| hs("k1", SECRET_1, c);
        let good = with(claims(), json!({ "iss": "https://idp.example" }));
        assert!(v.verify(&t(good), now()).is_ok());
        let wrong = with(claims(), json!({ "iss": "https://evil.example" }));
        assert_eq!(v.verify(&t(wrong), now()), Err(JwtError::WrongIssuer));
        assert_eq!(
            v.verify(&t(claims()), now()),
            Err(JwtError::MissingClaim("iss"))
        );
        // Unconfigured: any issuer.
        let wrong = with(claims(), json!({ "iss": "https://evil.example" }));
        assert!(verifier().verify(&t(wrong), now()).is_ok());
    }

    #[test]
    fn audience_is_checked_when_configured() {
        let v = JwtVerifier::new(&JwtConfig {
            audience: "upgate".into(),
            ..config()
        })
        .expect("config");
        let t = |aud: Value| hs("k1", SECRET_1, with(claims(), json!({ "aud": aud })));
        assert!(v.verify(&t(json!("upgate")), now()).is_ok());
        assert!(v.verify(&t(json!(["other", "upgate"])), now()).is_ok());
        assert_eq!(
            v.verify(&t(json!("other")), now()),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            v.verify(&t(json!(["other"])), now()),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(v.verify(&t(json!([])), now()), Err(JwtError::WrongAudience));
        assert_eq!(
            v.verify(&t(json!(["upgate", 7])), now()),
            Err(JwtError::Malformed)
        );
        let none = hs("k1", SECRET_1, claims());
        assert_eq!(v.verify(&none, now()), Err(JwtError::MissingClaim("aud")));
    }

    // --- JWKS ---

    #[test]
    fn rs256_from_jwks_is_accepted() {
        let p = verifier()
            .verify(&rs(with(claims(), json!({ "tenant": "globex" }))), now())
            .expect("valid");
        assert_eq!(p.tenant, "globex");
        assert_eq!(p.subject, "alice");
        assert_eq!(p.key_id, "rsa-1");
    }

    #[test]
    fn es256_from_jwks_is_accepted() {
        let p = verifier()
            .verify(&es(with(claims(), json!({ "tenant": "globex" }))), now())
            .expect("valid");
        assert_eq!(p.tenant, "globex");
        assert_eq!(p.key_id, "ec-1");
    }

    #[test]
    fn jwks_token_requires_the_tenant_claim() {
        let v = verifier();
        assert_eq!(
            v.verify(&rs(claims()), now()),
            Err(JwtError::MissingClaim("tenant"))
        );
        let empty = with(claims(), json!({ "tenant": "" }));
        assert_eq!(
            v.verify(&es(empty), now()),
            Err(JwtError::MissingClaim("tenant"))
        );
        let number = with(claims(), json!({ "tenant": 5 }));
        assert_eq!(v.verify(&es(number), now()), Err(JwtError::Malformed));
    }

    #[test]
    fn tenant_claim_name_is_configurable() {
        let v = JwtVerifier::new(&JwtConfig {
            tenant_claim: "org".into(),
            ..config()
        })
        .expect("config");
        let p = v
            .verify(
                &rs(with(claims(), json!({ "org": "initech", "tenant": "x" }))),
                now(),
            )
            .expect("valid");
        assert_eq!(p.tenant, "initech");
        let only_default_name = with(claims(), json!({ "tenant": "initech" }));
        assert_eq!(
            v.verify(&rs(only_default_name), now()),
            Err(JwtError::MissingClaim("tenant"))
        );
    }

    #[test]
    fn jwks_encryption_keys_are_not_used_for_signatures() {
        // `rsa-enc` holds the same public key as `rsa-1`, but with `use = "enc"`.
        let t = token(
            json!({ "alg": "RS256", "kid": "rsa-enc" }),
            with(claims(), json!({ "tenant": "acme" })),
            Sig::Rs256,
        );
        assert_eq!(verifier().verify(&t, now()), Err(JwtError::UnknownKey));
    }

    #[test]
    fn hs256_tenant_claim_must_match_the_key() {
        let v = verifier();
        let same = with(claims(), json!({ "tenant": "acme" }));
        assert_eq!(
            v.verify(&hs("k1", SECRET_1, same), now())
                .expect("ok")
                .tenant,
            "acme"
        );
        let other = with(claims(), json!({ "tenant": "globex" }));
        assert_eq!(
            v.verify(&hs("k1", SECRET_1, other), now()),
            Err(JwtError::WrongTenant)
        );
        let number = with(claims(), json!({ "tenant": 1 }));
        assert_eq!(
            v.verify(&hs("k1", SECRET_1, number), now()),
            Err(JwtError::Malformed)
        );
    }

    // --- Shape ---

    #[test]
    fn malformed_tokens_are_refused() {
        let v = verifier();
        let good = hs("k1", SECRET_1, claims());
        let (header, rest) = good.split_once('.').expect("dot");
        let (payload, sig) = rest.split_once('.').expect("dot");
        let cases = [
            String::new(),
            "abc".into(),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.{sig}.{sig}"),
            format!("{header}=.{payload}.{sig}"),
            format!("{header}.{payload}.{sig}="),
            format!("{header}.{payload}.{}", sig.replace(|_: char| true, "+")),
            format!("{}.{payload}.{sig}", b64(b"[1,2]")),
            format!("{}.{payload}.{sig}", b64(b"not json")),
            format!("{}.{}", good, "x".repeat(MAX_TOKEN_BYTES)),
        ];
        for t in cases {
            assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed), "{t:.60}");
        }
        // A signed payload that is not a JSON object.
        let t = token_raw(
            &json!({ "alg": "HS256", "kid": "k1" }).to_string(),
            "[]",
            Sig::Hmac(SECRET_1.as_bytes()),
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed));
    }

    #[test]
    fn duplicate_members_are_refused() {
        let v = verifier();
        let t = token_raw(
            r#"{"alg":"HS256","kid":"k2","kid":"k1"}"#,
            &claims().to_string(),
            Sig::Hmac(SECRET_1.as_bytes()),
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed));
        let t = token_raw(
            r#"{"alg":"HS256","kid":"k1"}"#,
            &format!(
                r#"{{"sub":"alice","sub":"root","iat":{},"exp":{}}}"#,
                T,
                T + 60
            ),
            Sig::Hmac(SECRET_1.as_bytes()),
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed));
    }

    // --- Configuration ---

    #[test]
    fn default_config_has_no_keys() {
        let v = JwtVerifier::new(&JwtConfig::default()).expect("config");
        assert!(!v.is_enabled());
        assert_eq!(
            v.verify(&hs("k1", SECRET_1, claims()), now()),
            Err(JwtError::UnknownKey)
        );
        assert!(v.reload().is_ok());
        assert!(verifier().is_enabled());
        let jwks_only = JwtVerifier::new(&JwtConfig {
            hs256: Vec::new(),
            ..config()
        })
        .expect("config");
        assert!(jwks_only.is_enabled());
    }

    #[test]
    fn config_parses_from_toml_with_documented_defaults() {
        let cfg: JwtConfig = toml::from_str(
            r#"
            jwks_file = ""
            [[hs256]]
            kid = "k1"
            secret = "first-rotation-secret-0123456789abcdef"
            tenant = "acme"
            "#,
        )
        .expect("toml");
        assert_eq!(cfg.tenant_claim, "tenant");
        assert_eq!(cfg.leeway_secs, 60);
        assert_eq!(cfg.max_lifetime_secs, 3600);
        assert!(cfg.issuer.is_empty() && cfg.audience.is_empty());
        assert_eq!(cfg.hs256.len(), 1);
        assert!(JwtVerifier::new(&cfg).expect("config").is_enabled());

        assert!(toml::from_str::<JwtConfig>("leeway = 5").is_err());
        assert!(
            toml::from_str::<JwtConfig>("[[hs256]]\nkid = \"k\"\ntenant = \"t\"\nalg = \"x\"")
                .is_err()
        );
    }

    #[test]
    fn short_secret_is_a_config_error() {
        let msg = config_error(&JwtConfig {
            hs256: vec![hs_key("k1", &"s".repeat(31), "acme")],
            ..JwtConfig::default()
        });
        assert!(msg.contains("31 bytes"), "{msg}");
        let exactly = JwtConfig {
            hs256: vec![hs_key("k1", &"s".repeat(32), "acme")],
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::new(&exactly).is_ok());
    }

    #[test]
    fn every_config_problem_is_reported_at_once() {
        let mut both = hs_key("k3", SECRET_1, "acme");
        both.secret_file = "/nonexistent".into();
        let msg = config_error(&JwtConfig {
            hs256: vec![
                hs_key("k1", SECRET_1, "acme"),
                hs_key("k1", SECRET_2, "acme"),
                hs_key("", SECRET_1, "acme"),
                hs_key("k2", SECRET_1, ""),
                both,
                hs_key("k4", "", "acme"),
            ],
            jwks_file: "/nonexistent/jwks.json".into(),
            tenant_claim: String::new(),
            max_lifetime_secs: 0,
            ..JwtConfig::default()
        });
        for needle in [
            "tenant_claim",
            "max_lifetime_secs",
            "duplicate kid",
            "kid must not be empty",
            "tenant must not be empty",
            "only one of secret and secret_file",
            "set secret or secret_file",
            "/nonexistent/jwks.json",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
        assert!(!msg.contains(SECRET_1) && !msg.contains(SECRET_2), "{msg}");
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k1.secret");
        std::fs::write(&path, format!("  {SECRET_1}\n")).expect("write");
        let mut key = hs_key("k1", "", "acme");
        key.secret_file = path.display().to_string();
        let v = JwtVerifier::new(&JwtConfig {
            hs256: vec![key],
            ..JwtConfig::default()
        })
        .expect("config");
        assert!(v.verify(&hs("k1", SECRET_1, claims()), now()).is_ok());

        std::fs::write(&path, "short\n").expect("write");
        let mut key = hs_key("k1", "", "acme");
        key.secret_file = path.display().to_string();
        let msg = config_error(&JwtConfig {
            hs256: vec![key],
            ..JwtConfig::default()
        });
        assert!(msg.contains("5 bytes") && !msg.contains("short"), "{msg}");
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let cfg = config();
        let v = verifier();
        for text in [
            format!("{cfg:?}"),
            format!("{v:?}"),
            format!("{:?}", cfg.hs256[0]),
        ] {
            assert!(
                !text.contains(SECRET_1) && !text.contains(SECRET_2),
                "{text}"
            );
        }
        assert!(format!("{:?}", cfg.hs256[0]).contains("<redacted>"));
        assert!(format!("{v:?}").contains("rsa-1"));
    }

    #[test]
    fn verifier_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<JwtVerifier>();
    }

    // --- JWKS file checks ---

    fn jwks_fixture() -> Value {
        serde_json::from_slice(&std::fs::read(fixture("jwks.json")).expect("jwks")).expect("json")
    }

    fn rsa_jwk() -> Value {
        jwks_fixture()["keys"][0].clone()
    }

    fn ec_jwk() -> Value {
        jwks_fixture()["keys"][1].clone()
    }

    /// The config error for a JWKS file holding `keys`.
    fn jwks_error(keys: Vec<Value>) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({ "keys": keys }).to_string()).expect("write");
        config_error(&JwtConfig {
            jwks_file: path.display().to_string(),
            ..config()
        })
    }

    #[test]
    fn jwks_with_unusable_keys_is_a_config_error() {
        let cases = [
            (
                with(rsa_jwk(), json!({ "d": "AQAB" })),
                "private or symmetric key material",
            ),
            (
                json!({ "kty": "oct", "kid": "o", "k": b64(SECRET_1.as_bytes()) }),
                "private or symmetric key material",
            ),
            (with(rsa_jwk(), json!({ "alg": "RS512" })), "alg \"RS512\""),
            (with(rsa_jwk(), json!({ "alg": "PS256" })), "alg \"PS256\""),
            (with(ec_jwk(), json!({ "alg": "RS256" })), "alg \"RS256\""),
            (
                with(rsa_jwk(), json!({ "n": b64(&[0xff; 128]) })),
                "1024 bits",
            ),
            (
                with(
                    ec_jwk(),
                    json!({ "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[2; 48]) }),
                ),
                "curve \"P-384\"",
            ),
            (with(ec_jwk(), json!({ "x": b64(&[1; 31]) })), "32 bytes"),
            (without(rsa_jwk(), "kid"), "kid is required"),
            (with(rsa_jwk(), json!({ "kty": "OKP" })), "key type \"OKP\""),
            (
                with(rsa_jwk(), json!({ "n": "not+base64" })),
                "n is not base64url",
            ),
            (
                with(rsa_jwk(), json!({ "kid": "k1" })),
                "also an HS256 key id",
            ),
        ];
        for (jwk, needle) in cases {
            let msg = jwks_error(vec![jwk]);
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
        let msg = jwks_error(vec![rsa_jwk(), rsa_jwk()]);
        assert!(msg.contains("duplicate kid"), "{msg}");
        let msg = jwks_error(vec![with(rsa_jwk(), json!({ "use": "enc" }))]);
        assert!(msg.contains("no RS256 or ES256 signing key"), "{msg}");
    }

    #[test]
    fn jwks_reload_swaps_keys_and_keeps_them_on_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        let write = |keys: Value| std::fs::write(&path, keys.to_string()).expect("write");
        write(json!({ "keys": [rsa_jwk()] }));
        let v = JwtVerifier::new(&JwtConfig {
            hs256: Vec::new(),
            jwks_file: path.display().to_string(),
            ..JwtConfig::default()
        })
        .expect("config");
        let c = with(claims(), json!({ "tenant": "acme" }));
        assert!(v.verify(&rs(c.clone()), now()).is_ok());
        assert_eq!(v.verify(&es(c.clone()), now()), Err(JwtError::UnknownKey));

        // Rotation: the EC key replaces the RSA key.
        write(json!({ "keys": [ec_jwk()] }));
        v.reload().expect("reload");
        assert!(v.verify(&es(c.clone()), now()).is_ok());
        assert_eq!(v.verify(&rs(c.clone()), now()), Err(JwtError::UnknownKey));

        // A broken file is reported and the previous keys stay.
        write(json!({ "keys": "nope" }));
        assert!(matches!(v.reload(), Err(JwtError::Config(_))));
        assert!(v.verify(&es(c.clone()), now()).is_ok());
    }

    #[test]
    fn jwks_file_change_is_picked_up_on_the_verification_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({ "keys": [rsa_jwk()] }).to_string()).expect("write");
        let mut v = JwtVerifier::new(&JwtConfig {
            hs256: Vec::new(),
            jwks_file: path.display().to_string(),
            ..JwtConfig::default()
        })
        .expect("config");
        let c = with(claims(), json!({ "tenant": "acme" }));
        assert_eq!(v.verify(&es(c.clone()), now()), Err(JwtError::UnknownKey));

        // Both keys now; the file's size changed, so the stamp differs even within one mtime tick.
        std::fs::write(&path, json!({ "keys": [rsa_jwk(), ec_jwk()] }).to_string()).expect("write");
        // Within the interval nothing is re-read.
        assert_eq!(v.verify(&es(c.clone()), now()), Err(JwtError::UnknownKey));
        if let Some(source) = v.jwks.as_mut() {
            source.recheck_every = Duration::ZERO;
        }
        assert!(v.verify(&es(c.clone()), now()).is_ok());
        assert!(v.verify(&rs(c.clone()), now()).is_ok());

        // A broken rewrite keeps the loaded keys.
        std::fs::write(&path, "{").expect("write");
        assert!(v.verify(&es(c), now()).is_ok());
    }

    // --- Rules the crate does not cover (kept in this module) ---

    #[test]
    fn repeated_members_the_crate_would_resolve_are_refused() {
        // serde_json keeps the last of repeated members, and the crate's types only refuse
        // repeats of the fields they name; these are caught by the check on the raw segments.
        let v = verifier();
        let payload = |tenant: &str| {
            format!(
                r#"{{"sub":"alice","iat":{},"exp":{},{tenant}}}"#,
                T - 10,
                T + 600
            )
        };
        let rs256 = r#"{"alg":"RS256","kid":"rsa-1"}"#;
        let once = token_raw(rs256, &payload(r#""tenant":"acme""#), Sig::Rs256);
        assert_eq!(v.verify(&once, now()).expect("valid").tenant, "acme");
        let twice = token_raw(
            rs256,
            &payload(r#""tenant":"acme","tenant":"globex""#),
            Sig::Rs256,
        );
        assert_eq!(v.verify(&twice, now()), Err(JwtError::Malformed));

        let iat_twice = format!(
            r#"{{"sub":"alice","iat":{},"iat":{},"exp":{}}}"#,
            T - 10,
            T + 5_000,
            T + 600
        );
        let t = token_raw(
            r#"{"alg":"HS256","kid":"k1"}"#,
            &iat_twice,
            Sig::Hmac(SECRET_1.as_bytes()),
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed));

        // An extension header member, which the crate's `Header` collects into a map.
        let claims = claims().to_string();
        for (header, ok) in [
            (r#"{"alg":"HS256","kid":"k1","x":1}"#, true),
            (r#"{"alg":"HS256","kid":"k1","x":1,"x":2}"#, false),
        ] {
            let t = token_raw(header, &claims, Sig::Hmac(SECRET_1.as_bytes()));
            assert_eq!(v.verify(&t, now()).is_ok(), ok, "{header}");
        }
    }

    #[test]
    fn crit_header_is_refused_in_any_form() {
        let v = verifier();
        for crit in [json!(null), json!([]), json!("exp"), json!(5)] {
            let t = token(
                json!({ "alg": "HS256", "kid": "k1", "crit": crit }),
                claims(),
                Sig::Hmac(SECRET_1.as_bytes()),
            );
            assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed), "{crit}");
        }
    }

    #[test]
    fn header_members_of_the_wrong_type_are_malformed() {
        let v = verifier();
        for header in [
            json!({ "alg": 256, "kid": "k1" }),
            json!({ "alg": "HS256", "kid": "k1", "typ": 5 }),
            json!({ "alg": "HS256", "kid": "k1", "x5c": "not-an-array" }),
        ] {
            let t = token(header.clone(), claims(), Sig::Hmac(SECRET_1.as_bytes()));
            assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed), "{header}");
        }
        // Any other algorithm name, even a crate-supported one, is refused before the key.
        let t = token(
            json!({ "alg": "HS512", "kid": "no-such-key" }),
            claims(),
            Sig::Literal(""),
        );
        assert_eq!(v.verify(&t, now()), Err(JwtError::UnsupportedAlgorithm));
    }

    #[test]
    fn token_size_is_bounded() {
        let v = verifier();
        let sized = |pad: usize| {
            hs(
                "k1",
                SECRET_1,
                with(claims(), json!({ "pad": "x".repeat(pad) })),
            )
        };
        let mut pad = 5_900;
        while sized(pad + 1).len() <= MAX_TOKEN_BYTES {
            pad += 1;
        }
        let largest = sized(pad);
        assert!(largest.len() <= MAX_TOKEN_BYTES && largest.len() + 4 > MAX_TOKEN_BYTES);
        assert!(v.verify(&largest, now()).is_ok());
        assert_eq!(v.verify(&sized(pad + 1), now()), Err(JwtError::Malformed));
    }

    #[test]
    fn claims_of_the_wrong_type_are_malformed() {
        let v = JwtVerifier::new(&JwtConfig {
            issuer: "https://idp.example".into(),
            audience: "upgate".into(),
            ..config()
        })
        .expect("config");
        let good = with(
            claims(),
            json!({ "iss": "https://idp.example", "aud": "upgate" }),
        );
        assert!(v.verify(&hs("k1", SECRET_1, good.clone()), now()).is_ok());
        for bad in [
            json!({ "aud": null }),
            json!({ "aud": 7 }),
            json!({ "iss": null }),
            json!({ "iss": ["https://idp.example"] }),
            json!({ "sub": null }),
            json!({ "iat": "yesterday" }),
            json!({ "nbf": null }),
        ] {
            let t = hs("k1", SECRET_1, with(good.clone(), bad.clone()));
            assert_eq!(v.verify(&t, now()), Err(JwtError::Malformed), "{bad}");
        }
    }

    #[test]
    fn audience_is_not_checked_when_unconfigured() {
        // The crate refuses every `aud` unless told to ignore it.
        let v = verifier();
        for aud in [json!("other"), json!(["a", "b"]), json!([])] {
            let t = hs("k1", SECRET_1, with(claims(), json!({ "aud": aud })));
            assert!(v.verify(&t, now()).is_ok(), "{aud}");
        }
    }

    #[test]
    fn issuer_and_audience_apply_to_jwks_keys() {
        let v = JwtVerifier::new(&JwtConfig {
            issuer: "https://idp.example".into(),
            audience: "upgate".into(),
            ..config()
        })
        .expect("config");
        let good = with(
            claims(),
            json!({ "tenant": "acme", "iss": "https://idp.example", "aud": ["upgate"] }),
        );
        assert!(v.verify(&rs(good.clone()), now()).is_ok());
        assert!(v.verify(&es(good.clone()), now()).is_ok());
        let wrong_iss = with(good.clone(), json!({ "iss": "https://evil.example" }));
        assert_eq!(v.verify(&rs(wrong_iss), now()), Err(JwtError::WrongIssuer));
        let wrong_aud = with(good.clone(), json!({ "aud": "other" }));
        assert_eq!(
            v.verify(&es(wrong_aud), now()),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            v.verify(&rs(without(good.clone(), "iss")), now()),
            Err(JwtError::MissingClaim("iss"))
        );
        assert_eq!(
            v.verify(&es(without(good, "aud")), now()),
            Err(JwtError::MissingClaim("aud"))
        );
    }

    #[test]
    fn time_is_judged_at_the_given_instant_not_the_system_clock() {
        let v = verifier();
        // Valid by the system clock, expired at the given instant.
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let t = hs(
            "k1",
            SECRET_1,
            json!({ "sub": "alice", "iat": real - 10, "exp": real + 600 }),
        );
        assert!(v.verify(&t, at(real)).is_ok());
        assert_eq!(v.verify(&t, at(real + 3_600)), Err(JwtError::Expired));
        assert_eq!(v.verify(&t, at(real - 3_600)), Err(JwtError::NotYetValid));
    }

    #[test]
    fn jwks_key_ops_rsa_exponent_and_types_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        let load = |keys: Value| {
            std::fs::write(&path, json!({ "keys": keys }).to_string()).expect("write");
            JwtVerifier::new(&JwtConfig {
                hs256: Vec::new(),
                jwks_file: path.display().to_string(),
                ..JwtConfig::default()
            })
        };
        let c = with(claims(), json!({ "tenant": "acme" }));
        let v = load(json!([
            with(rsa_jwk(), json!({ "key_ops": ["verify"] })),
            with(ec_jwk(), json!({ "key_ops": ["encrypt"] })),
        ]))
        .expect("config");
        assert!(v.verify(&rs(c.clone()), now()).is_ok());
        assert_eq!(v.verify(&es(c), now()), Err(JwtError::UnknownKey));

        for (jwk, needle) in [
            (
                with(rsa_jwk(), json!({ "e": "AA" })),
                "exponent is not usable",
            ),
            (
                with(rsa_jwk(), json!({ "e": b64(&[1; 5]) })),
                "exponent is not usable",
            ),
            (without(rsa_jwk(), "e"), "needs string members n and e"),
            (
                with(ec_jwk(), json!({ "crv": "secp256k1" })),
                "crv \"P-256\"",
            ),
            (without(rsa_jwk(), "kty"), "kty is required"),
            (with(rsa_jwk(), json!({ "kid": 5 })), "not a JWK Set"),
        ] {
            let msg = jwks_error(vec![jwk]);
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
    }
}
