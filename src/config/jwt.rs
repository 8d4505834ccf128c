//! `[jwt]`: the keys outside identity providers sign bearer tokens with. Plain data; the
//! verifier (`crate::auth::jwt`) reads the secret files and the JWKS.

use std::fmt;

use serde::Deserialize;
use zeroize::Zeroize;

/// `[jwt]`: bearer tokens for the control API.
///
/// A missing field takes the default named in its documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Shared HS256 keys (default: none). Several may be valid at once for rotation; each is
    /// `{ kid, secret | secret_file, tenant }`, see [`Hs256Key`].
    pub hs256: Vec<Hs256Key>,
    /// Path of a JWK Set (RFC 7517) with RS256 (`kty = "RSA"`, 2048–8192 bits) and ES256
    /// (`kty = "EC"`, `crv = "P-256"`) public keys, each with a unique `kid` (default `""`: none).
    /// Keys with a `use` other than `"sig"` or `key_ops` without `"verify"` are skipped; private
    /// key members, other key types and other `alg`s are configuration errors. Re-read when the
    /// file changes; a broken new file is logged and the previous keys stay in use.
    pub jwks_file: String,
    /// The claim naming the tenant (default `"tenant"`). Required (a non-empty string) in tokens
    /// verified by a JWKS key; in HS256 tokens it is optional and, if present, must equal the
    /// key's `tenant`.
    pub tenant_claim: String,
    /// Required `iss` claim (default `""`: not checked).
    pub issuer: String,
    /// Required `aud` claim, a string or an array containing it (default `""`: not checked). Set it
    /// when the identity provider also issues tokens for other services.
    pub audience: String,
    /// Allowed clock skew between issuer and gateway for `exp`, `nbf` and `iat`, in seconds
    /// (default 60).
    pub leeway_secs: u64,
    /// Longest accepted token lifetime (`exp - iat`), in seconds (default 3600). Refuses
    /// long-lived bearer tokens, which stay useful to whoever steals one. At least 1.
    pub max_lifetime_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256: Vec::new(),
            jwks_file: String::new(),
            tenant_claim: "tenant".into(),
            issuer: String::new(),
            audience: String::new(),
            leeway_secs: 60,
            max_lifetime_secs: 3600,
        }
    }
}

/// One `[[jwt.hs256]]` key. Exactly one of `secret` and `secret_file` is set.
///
/// `Debug` redacts the secret; the secret is zeroized when the value is dropped.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hs256Key {
    /// The key id tokens name in their `kid` header; unique across all keys.
    pub kid: String,
    /// The secret itself, at least [`MIN_HS256_SECRET_BYTES`] bytes, used as written
    /// (default `""`). Prefer `secret_file`.
    #[serde(default)]
    pub secret: String,
    /// A file holding the secret on its first line; surrounding whitespace is trimmed
    /// (default `""`).
    #[serde(default)]
    pub secret_file: String,
    /// The tenant every token verified with this key acts for.
    pub tenant: String,
}

impl fmt::Debug for Hs256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.secret.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("Hs256Key")
            .field("kid", &self.kid)
            .field("secret", &secret)
            .field("secret_file", &self.secret_file)
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl Drop for Hs256Key {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}
