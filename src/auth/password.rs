//! Password hashing: argon2id (RFC 9106) through the `argon2` crate, stored as PHC strings
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so the parameters travel with each hash and can be
//! raised without invalidating old ones.
//!
//! [`Hasher::verify`] always does the full work: for an unknown account the caller verifies
//! against a dummy hash made at start with the same parameters, so "no such user"
//! and "wrong password" cost the same time. The tag comparison is the crate's, in constant
//! time. Hashing runs on the blocking pool: it is CPU work of tens of milliseconds.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::config::accounts::{AccountsConfig, MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES};

/// A password as received: zeroized on drop, never printed.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// Whether the length is acceptable for a new password (12..=1024 bytes).
    pub fn acceptable(&self) -> bool {
        (MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&self.0.len())
    }

    /// Whether it is short enough to be hashed at all (a login with a longer one fails
    /// without hashing).
    pub fn hashable(&self) -> bool {
        self.0.len() <= MAX_PASSWORD_BYTES
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Hashes and verifies passwords with one set of argon2id parameters.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    dummy: Arc<String>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("m_kib", &self.params.m_cost())
            .field("t", &self.params.t_cost())
            .field("p", &self.params.p_cost())
            .finish_non_exhaustive()
    }
}

/// What is wrong with the configured argon2 parameters, if anything (for `app::check_config`).
pub fn params_problem(cfg: &AccountsConfig) -> Option<String> {
    Params::new(
        cfg.argon2_memory_kib,
        cfg.argon2_iterations,
        cfg.argon2_parallelism,
        None,
    )
    .err()
    .map(|e| format!("accounts.argon2_*: {e}"))
}

impl Hasher {
    /// The configured parameters; also computes the dummy hash (one hash of work).
    pub fn new(cfg: &AccountsConfig) -> Result<Self, String> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("argon2 parameters: {e}"))?;
        let mut me = Self {
            params,
            dummy: Arc::new(String::new()),
        };
        let dummy = me
            .hash_now(&Password::new(crate::id::random_hex(16)))
            .map_err(|e| format!("argon2: {e}"))?;
        me.dummy = Arc::new(dummy);
        Ok(me)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// `(m KiB, t, p)`.
    pub fn params(&self) -> (u32, u32, u32) {
        (
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost(),
        )
    }

    /// A PHC string for `password` with a fresh 128-bit salt (on the calling thread).
    pub fn hash_now(&self, password: &Password) -> Result<String, String> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        self.argon2()
            .hash_password(password.bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    }

    /// Whether `password` matches `phc` (on the calling thread). `None` verifies against the
    /// dummy, which never matches, for the same cost.
    pub fn verify_now(&self, password: &Password, phc: Option<&str>) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.dummy);
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = self
            .argon2()
            .verify_password(password.bytes(), &parsed)
            .is_ok();
        ok && known
    }

    /// [`Hasher::hash_now`] on the blocking pool.
    pub async fn hash(&self, password: Password) -> Result<String, String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.hash_now(&password))
            .await
            .map_err(|e| e.to_string())?
    }

    /// [`Hasher::verify_now`] on the blocking pool.
    pub async fn verify(&self, password: Password, phc: Option<String>) -> bool {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.verify_now(&password, phc.as_deref()))
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        let mut cfg = crate::config::Config::defaults()
            .expect("defaults")
            .accounts;
        cfg.argon2_memory_kib = 64;
        cfg.argon2_iterations = 1;
        Hasher::new(&cfg).expect("hasher")
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = cheap();
        let phc = h
            .hash_now(&Password::new("correct horse battery".into()))
            .expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(h.verify_now(&Password::new("correct horse battery".into()), Some(&phc)));
        assert!(!h.verify_now(&Password::new("correct horse batterY".into()), Some(&phc)));
        // The dummy never matches, not even its own (random, forgotten) password.
        assert!(!h.verify_now(&Password::new("correct horse battery".into()), None));
        assert!(!h.verify_now(&Password::new("x".into()), Some("not a phc string")));
    }

    #[test]
    fn password_lengths_are_bounded() {
        assert!(!Password::new("a".repeat(11)).acceptable());
        assert!(Password::new("a".repeat(12)).acceptable());
        assert!(Password::new("a".repeat(1024)).acceptable());
        assert!(!Password::new("a".repeat(1025)).acceptable());
        assert!(!Password::new("a".repeat(1025)).hashable());
        assert_eq!(
            format!("{:?}", Password::new("secret".into())),
            "Password(<redacted>)"
        );
    }
}
