//! `[storage]`: which backends hold the bytes, how upgate talks to them, and what it does to the
//! bytes on the way (spooling, envelope encryption). Plain data: the key files are read by
//! `crate::storage::problems` (and at start).
//!
//! Every setting, its default and what it protects is documented in `config/upgate.toml`; the
//! defaults of named backends (`[storage.backends.NAME]`) are the serde defaults below, which a
//! test keeps equal to the documented `[storage.s3]` / `[storage.local]` tables.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

/// A secret setting (access key, account key): zeroized on drop, redacted in `Debug`.
#[derive(Clone, Default)]
pub struct ConfigSecret(Zeroizing<String>);

impl ConfigSecret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }
    /// The secret itself. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl<'de> Deserialize<'de> for ConfigSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(ConfigSecret::new)
    }
}

/// Reads a secret: from `file` (first line, whitespace trimmed) when set, else `inline`.
/// `Ok(None)` when neither is configured.
pub fn resolve_secret(
    inline: &ConfigSecret,
    file: &Path,
    what: &str,
) -> Result<Option<ConfigSecret>, String> {
    if !file.as_os_str().is_empty() {
        let text = Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(|e| format!("{what}_file {}: {e}", file.display()))?,
        );
        let line = text.lines().next().unwrap_or("").trim();
        if line.is_empty() {
            return Err(format!("{what}_file {} is empty", file.display()));
        }
        return Ok(Some(ConfigSecret::new(line)));
    }
    if inline.is_empty() {
        Ok(None)
    } else {
        Ok(Some(inline.clone()))
    }
}

/// Names the built-in backends answer to; named backends may not reuse them.
pub const BUILTIN_BACKENDS: [&str; 3] = ["local", "memory", "s3"];

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Root of local data: objects of the local backend, the spool, the SQLite database.
    pub data_dir: PathBuf,
    /// Backend of buckets that name none: "local", "memory", "s3" (`[storage.s3]`) or the name
    /// of a `[storage.backends.NAME]` table.
    pub backend: String,
    /// Remote backends: most milliseconds to open a connection.
    pub connect_timeout_ms: u64,
    /// Remote backends: most seconds one write request (a part, a PUT, a complete) may take.
    pub request_timeout_secs: u64,
    /// Remote backends: most seconds a read waits for the next bytes from the backend.
    pub read_idle_timeout_secs: u64,
    /// Remote backends: retries of a failed request (5xx, timeout, connection error).
    pub max_retries: usize,
    /// Remote backends: no retry starts after this many seconds since the first try.
    pub retry_timeout_secs: u64,
    /// Remote backends: size of a multipart part (all but the last).
    pub part_bytes: u64,
    /// Remote backends: most bytes all uploads together may hold in `data_dir/spool`.
    pub spool_max_bytes: u64,
    /// Remote backends: most bytes of parts held in memory while being sent, all uploads together.
    pub upload_buffer_bytes: u64,
    /// Local backends: most body bytes all uploads together hold gathered into file writes of
    /// 64 KiB (a quarter of the writes of 16 KiB socket reads); past it, frames are written as
    /// they come. 0: no gathering.
    pub gather_bytes: u64,
    /// The built-in "local" backend.
    pub local: LocalBackendConfig,
    /// The built-in "s3" backend (what the Helm chart sets through `UPGATE__STORAGE__S3__*`).
    pub s3: S3BackendConfig,
    /// Envelope encryption keys.
    pub encryption: EncryptionConfig,
    /// Further backends by name.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
}

/// `[storage.encryption]`: master keys of the envelope encryption (backends with `encrypt`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Master keys inline (`id:base64key`, separated by commas or whitespace); meant for the
    /// environment (`UPGATE__STORAGE__ENCRYPTION__KEYS`), never a file in version control.
    pub keys: ConfigSecret,
    /// File holding master keys, one `id:base64key` per line (`#` comments).
    pub keys_file: PathBuf,
    /// Id of the key that wraps new data keys; empty: the last key listed.
    pub active_key: String,
    /// Plaintext bytes per encrypted chunk (the unit of random access and of authentication).
    pub chunk_bytes: u32,
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field("keys", &self.keys)
            .field("keys_file", &self.keys_file)
            .field("active_key", &self.active_key)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish()
    }
}

impl EncryptionConfig {
    /// Whether any key source is configured.
    pub fn configured(&self) -> bool {
        !self.keys.is_empty() || !self.keys_file.as_os_str().is_empty()
    }
}

/// One backend, by kind (`kind = "..."` in `[storage.backends.NAME]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// A directory.
    Local(LocalBackendConfig),
    /// Process memory (tests).
    Memory(MemoryBackendConfig),
    /// Amazon S3 or an S3-compatible service.
    S3(S3BackendConfig),
    /// Google Cloud Storage.
    Gcs(GcsBackendConfig),
    /// Azure Blob Storage.
    Azure(AzureBackendConfig),
}

impl BackendConfig {
    /// The kind's name, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Local(_) => "local",
            BackendConfig::Memory(_) => "memory",
            BackendConfig::S3(_) => "s3",
            BackendConfig::Gcs(_) => "gcs",
            BackendConfig::Azure(_) => "azure",
        }
    }

    /// Whether upgate encrypts objects (envelope encryption) before they reach this backend.
    pub fn encrypt(&self) -> bool {
        match self {
            BackendConfig::Local(c) => c.encrypt,
            BackendConfig::Memory(c) => c.encrypt,
            BackendConfig::S3(c) => c.encrypt,
            BackendConfig::Gcs(c) => c.encrypt,
            BackendConfig::Azure(c) => c.encrypt,
        }
    }

    /// Whether the backend is reached over the network (spooled writes, timeouts, retries).
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            BackendConfig::S3(_) | BackendConfig::Gcs(_) | BackendConfig::Azure(_)
        )
    }
}

/// A local directory backend.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LocalBackendConfig {
    /// Directory of the objects; empty: `data_dir/objects`.
    pub root: PathBuf,
    /// Envelope-encrypt objects with the `[storage.encryption]` keys.
    pub encrypt: bool,
    /// Flush each object and its directory entry to the disk before the upload commits, so an
    /// acknowledged upload survives a power loss.
    pub fsync: bool,
    /// Write staged bytes from the upload's own task (into the page cache; the flush and the
    /// rename at the commit still run on the blocking pool). `false` sends every write to the
    /// blocking pool: for a root on a network filesystem, whose writes can wait on the network.
    pub direct_writes: bool,
}

impl Default for LocalBackendConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::new(),
            encrypt: false,
            fsync: true,
            direct_writes: true,
        }
    }
}

/// The in-memory backend (tests).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryBackendConfig {
    /// Envelope-encrypt objects (tests of the encryption).
    pub encrypt: bool,
}

/// Server-side encryption requested from S3 on every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum S3Sse {
    /// SSE-S3 (`AES256`).
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS (`aws:kms`), with `kms_key_id` or the account's default key.
    #[serde(rename = "aws:kms")]
    Kms,
    /// No header: the bucket's default applies (MinIO without a KMS, for instance).
    #[serde(rename = "none")]
    None,
}

/// An S3 or S3-compatible backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3BackendConfig {
    /// Endpoint URL (`https://minio.internal:9000`); empty: AWS for `region`.
    pub endpoint: String,
    /// Region of the bucket (the signing region).
    pub region: String,
    /// Bucket that holds the objects.
    pub bucket: String,
    /// Key prefix inside the bucket (`upgate/`), so a bucket can be shared.
    pub prefix: String,
    /// Static credentials; empty: the AWS environment / web identity / instance metadata chain.
    pub access_key_id: ConfigSecret,
    /// Secret of `access_key_id`.
    pub secret_access_key: ConfigSecret,
    /// File holding the access key id (wins over `access_key_id`).
    pub access_key_id_file: PathBuf,
    /// File holding the secret access key (wins over `secret_access_key`).
    pub secret_access_key_file: PathBuf,
    /// Virtual-hosted-style addressing (`bucket.host`); false: path style (`host/bucket`).
    pub virtual_hosted_style: bool,
    /// Server-side encryption requested on every write.
    pub sse: S3Sse,
    /// KMS key for `sse = "aws:kms"`; empty: the account's default `aws/s3` key.
    pub kms_key_id: String,
    /// Use an S3 Bucket Key with SSE-KMS (fewer KMS calls, see T-I9).
    pub bucket_key: bool,
    /// Envelope-encrypt in upgate too (on top of SSE).
    pub encrypt: bool,
}

impl Default for S3BackendConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: ConfigSecret::default(),
            secret_access_key: ConfigSecret::default(),
            access_key_id_file: PathBuf::new(),
            secret_access_key_file: PathBuf::new(),
            virtual_hosted_style: false,
            sse: S3Sse::Aes256,
            kms_key_id: String::new(),
            bucket_key: false,
            encrypt: false,
        }
    }
}

/// A Google Cloud Storage backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsBackendConfig {
    /// Bucket that holds the objects.
    pub bucket: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Service URL; empty: Google's. For emulators and private endpoints.
    pub base_url: String,
    /// Service-account JSON key file; empty: application default credentials.
    pub service_account_file: PathBuf,
    /// Send unauthenticated requests (emulators only).
    pub anonymous: bool,
    /// Envelope-encrypt objects with the `[storage.encryption]` keys.
    pub encrypt: bool,
}

/// An Azure Blob Storage backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureBackendConfig {
    /// Storage account name.
    pub account: String,
    /// Container that holds the objects.
    pub container: String,
    /// Key prefix inside the container.
    pub prefix: String,
    /// Account URL (`http://127.0.0.1:10000/devstoreaccount1` for Azurite); empty: Azure's.
    pub endpoint: String,
    /// Shared account key; empty: the Azure environment / managed identity chain.
    pub access_key: ConfigSecret,
    /// File holding the account key (wins over `access_key`).
    pub access_key_file: PathBuf,
    /// Envelope-encrypt objects with the `[storage.encryption]` keys.
    pub encrypt: bool,
}

/// Smallest part S3 accepts (except the last).
pub const MIN_PART_BYTES: u64 = 5 << 20;

impl StorageConfig {
    /// A local backend under `data_dir` with every other setting at its documented default.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        let mut c = Self::documented_defaults();
        c.data_dir = data_dir.into();
        c.backend = "local".into();
        c
    }

    /// The `[storage]` table of the embedded `config/upgate.toml`.
    pub fn documented_defaults() -> Self {
        let text = crate::config::DEFAULT_TOML;
        let parsed = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("storage"))
            .and_then(|v| v.try_into::<StorageConfig>().ok());
        match parsed {
            Some(c) => c,
            // The embedded defaults are checked by tests; this is only reached if they are broken.
            None => Self {
                data_dir: PathBuf::from("./data"),
                backend: "local".into(),
                connect_timeout_ms: 5000,
                request_timeout_secs: 60,
                read_idle_timeout_secs: 30,
                max_retries: 3,
                retry_timeout_secs: 20,
                part_bytes: 8 << 20,
                spool_max_bytes: 4 << 30,
                upload_buffer_bytes: 128 << 20,
                gather_bytes: 2 << 20,
                local: LocalBackendConfig::default(),
                s3: S3BackendConfig::default(),
                encryption: EncryptionConfig {
                    keys: ConfigSecret::default(),
                    keys_file: PathBuf::new(),
                    active_key: String::new(),
                    chunk_bytes: 65536,
                },
                backends: BTreeMap::new(),
            },
        }
    }

    /// The backend called `name`, if there is one (built-ins included).
    pub fn backend_config(&self, name: &str) -> Option<BackendConfig> {
        match name {
            "local" => Some(BackendConfig::Local(self.local.clone())),
            "memory" => Some(BackendConfig::Memory(MemoryBackendConfig::default())),
            "s3" => Some(BackendConfig::S3(self.s3.clone())),
            other => self.backends.get(other).cloned(),
        }
    }

    /// Whether `name` names a backend; the empty name is the default backend.
    pub fn knows(&self, name: &str) -> bool {
        name.is_empty() || self.backend_config(name).is_some()
    }

    /// The backend a bucket configured with `backend = name` uses.
    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        if name.is_empty() { &self.backend } else { name }
    }

    /// Every problem with `[storage]`; `used` are the backend names buckets refer to (the
    /// default backend is always checked).
    pub fn validate<'a>(
        &self,
        used: impl IntoIterator<Item = &'a str>,
        problems: &mut Vec<String>,
    ) {
        if self.connect_timeout_ms == 0 || self.connect_timeout_ms > 60_000 {
            problems.push("storage.connect_timeout_ms must be 1..=60000".into());
        }
        if self.request_timeout_secs == 0 || self.request_timeout_secs > 3600 {
            problems.push("storage.request_timeout_secs must be 1..=3600".into());
        }
        if self.read_idle_timeout_secs == 0 || self.read_idle_timeout_secs > 3600 {
            problems.push("storage.read_idle_timeout_secs must be 1..=3600".into());
        }
        if self.max_retries > 20 {
            problems.push("storage.max_retries must be at most 20".into());
        }
        if self.retry_timeout_secs == 0 {
            problems.push("storage.retry_timeout_secs must be at least 1".into());
        }
        if !(MIN_PART_BYTES..=1 << 30).contains(&self.part_bytes) {
            problems.push(
                "storage.part_bytes must be 5242880..=1073741824 (S3's minimum part size is 5 MiB)"
                    .into(),
            );
        }
        if self.upload_buffer_bytes < self.part_bytes {
            problems.push("storage.upload_buffer_bytes must be at least storage.part_bytes".into());
        }
        if self.spool_max_bytes < self.part_bytes {
            problems.push("storage.spool_max_bytes must be at least storage.part_bytes".into());
        }
        let enc = &self.encryption;
        if !(4096..=16 << 20).contains(&enc.chunk_bytes) {
            problems.push("storage.encryption.chunk_bytes must be 4096..=16777216".into());
        }
        for name in self.backends.keys() {
            if BUILTIN_BACKENDS.contains(&name.as_str()) {
                problems.push(format!(
                    "storage.backends.{name}: the name is reserved for the built-in backend"
                ));
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                problems.push(format!(
                    "storage.backends.{name:?}: names use a-z, 0-9, - and _"
                ));
            }
        }
        let mut names: Vec<&str> = vec![self.backend.as_str()];
        names.extend(used.into_iter().map(|n| self.resolve(n)));
        names.sort_unstable();
        names.dedup();
        for name in names {
            match self.backend_config(name) {
                None => problems.push(format!(
                    "storage backend {name:?} is not defined (built-ins: local, memory, s3; or add [storage.backends.{name}])"
                )),
                Some(b) => self.validate_backend(name, &b, problems),
            }
        }
    }

    fn validate_backend(&self, name: &str, b: &BackendConfig, problems: &mut Vec<String>) {
        let at = if BUILTIN_BACKENDS.contains(&name) {
            format!("storage.{name}")
        } else {
            format!("storage.backends.{name}")
        };
        if b.encrypt() && !self.encryption.configured() {
            problems.push(format!(
                "{at}.encrypt needs master keys: set storage.encryption.keys_file or storage.encryption.keys"
            ));
        }
        match b {
            BackendConfig::Local(_) | BackendConfig::Memory(_) => {}
            BackendConfig::S3(s) => {
                if s.bucket.is_empty() {
                    problems.push(format!("{at}.bucket must be set"));
                }
                if s.region.is_empty() {
                    problems.push(format!("{at}.region must be set"));
                }
                let scheme_ok =
                    s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://");
                if !s.endpoint.is_empty() && !scheme_ok {
                    problems.push(format!("{at}.endpoint must be an http:// or https:// URL"));
                }
                if !s.kms_key_id.is_empty() && s.sse != S3Sse::Kms {
                    problems.push(format!("{at}.kms_key_id needs sse = \"aws:kms\""));
                }
                check_pair(
                    &at,
                    "access_key_id",
                    &s.access_key_id,
                    &s.access_key_id_file,
                    "secret_access_key",
                    &s.secret_access_key,
                    &s.secret_access_key_file,
                    problems,
                );
            }
            BackendConfig::Gcs(g) => {
                if g.bucket.is_empty() {
                    problems.push(format!("{at}.bucket must be set"));
                }
                if !g.service_account_file.as_os_str().is_empty()
                    && !g.service_account_file.is_file()
                {
                    problems.push(format!(
                        "{at}.service_account_file {} is not a readable file",
                        g.service_account_file.display()
                    ));
                }
            }
            BackendConfig::Azure(a) => {
                if a.account.is_empty() {
                    problems.push(format!("{at}.account must be set"));
                }
                if a.container.is_empty() {
                    problems.push(format!("{at}.container must be set"));
                }
                if let Err(e) = resolve_secret(&a.access_key, &a.access_key_file, "access_key") {
                    problems.push(format!("{at}.{e}"));
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_pair(
    at: &str,
    a_name: &str,
    a: &ConfigSecret,
    a_file: &Path,
    b_name: &str,
    b: &ConfigSecret,
    b_file: &Path,
    problems: &mut Vec<String>,
) {
    let ra = resolve_secret(a, a_file, a_name);
    let rb = resolve_secret(b, b_file, b_name);
    match (&ra, &rb) {
        (Err(e), _) | (_, Err(e)) => problems.push(format!("{at}.{e}")),
        (Ok(Some(_)), Ok(None)) | (Ok(None), Ok(Some(_))) => problems.push(format!(
            "{at}: set both {a_name} and {b_name} (or their _file settings), or neither"
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn named_backend_defaults_match_the_documented_builtin_tables() {
        let c = StorageConfig::documented_defaults();
        let s3 = S3BackendConfig::default();
        assert_eq!(c.s3.region, s3.region);
        assert_eq!(c.s3.sse, s3.sse);
        assert_eq!(c.s3.virtual_hosted_style, s3.virtual_hosted_style);
        assert_eq!(c.s3.bucket_key, s3.bucket_key);
        assert_eq!(c.s3.encrypt, s3.encrypt);
        assert!(c.s3.endpoint.is_empty() && c.s3.bucket.is_empty() && c.s3.prefix.is_empty());
        assert_eq!(c.local, LocalBackendConfig::default());
        assert_eq!(c.backend, "local");
    }

    #[test]
    fn helm_chart_environment_selects_the_default_s3_backend() {
        let c = Config::from_layers(
            None,
            env(&[
                ("UPGATE__STORAGE__BACKEND", "s3"),
                ("UPGATE__STORAGE__S3__ENDPOINT", "http://minio:9000"),
                ("UPGATE__STORAGE__S3__REGION", "eu-west-1"),
                ("UPGATE__STORAGE__S3__BUCKET", "uploads-prod"),
                ("UPGATE__STORAGE__S3__ACCESS_KEY_ID", "12345"),
                ("UPGATE__STORAGE__S3__SECRET_ACCESS_KEY", "true"),
            ]),
        )
        .expect("config");
        assert_eq!(c.storage.backend, "s3");
        assert_eq!(c.storage.s3.endpoint, "http://minio:9000");
        assert_eq!(c.storage.s3.bucket, "uploads-prod");
        // Secrets that look like numbers or booleans stay strings.
        assert_eq!(c.storage.s3.access_key_id.expose(), "12345");
        assert_eq!(c.storage.s3.secret_access_key.expose(), "true");
        assert!(!format!("{:?}", c.storage).contains("12345"));
    }

    #[test]
    fn buckets_name_backends_and_unknown_names_are_reported() {
        let file = "[storage.backends.archive]\nkind = \"s3\"\nbucket = \"arch\"\n\
                    endpoint = \"http://127.0.0.1:1\"\n\
                    [buckets.docs]\nbackend = \"archive\"\n[buckets.imgs]\n";
        let c = Config::from_layers(Some(file), Vec::new()).expect("config");
        assert_eq!(c.storage.resolve(&c.buckets["docs"].backend), "archive");
        assert_eq!(c.storage.resolve(&c.buckets["imgs"].backend), "local");
        let err = Config::from_layers(Some("[buckets.docs]\nbackend = \"nope\"\n"), Vec::new())
            .expect_err("unknown backend");
        assert!(err.to_string().contains("\"nope\" is not defined"), "{err}");
    }

    #[test]
    fn storage_problems_are_reported_together() {
        let file = "[storage]\nbackend = \"s3\"\npart_bytes = 1024\n\
                    [storage.s3]\naccess_key_id = \"x\"\nkms_key_id = \"k\"\n\
                    [storage.backends.s3]\nkind = \"memory\"\n\
                    [storage.backends.g]\nkind = \"gcs\"\nbogus = 1\n";
        let err = Config::from_layers(Some(file), Vec::new()).expect_err("bad");
        let text = err.to_string();
        assert!(text.contains("bogus"), "{text}");
        let file = "[storage]\nbackend = \"s3\"\npart_bytes = 1024\n\
                    [storage.s3]\naccess_key_id = \"x\"\nkms_key_id = \"k\"\n\
                    [storage.backends.s3]\nkind = \"memory\"\n\
                    [storage.local]\nencrypt = true\n";
        let err = Config::from_layers(Some(file), Vec::new()).expect_err("bad");
        let text = err.to_string();
        for needle in [
            "part_bytes",
            "storage.s3.bucket must be set",
            "kms_key_id needs",
            "set both access_key_id and secret_access_key",
            "reserved",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }

    #[test]
    fn secrets_are_read_from_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("sk");
        std::fs::write(&f, "s3cr3t\n").expect("write");
        let got = resolve_secret(&ConfigSecret::new("inline"), &f, "secret_access_key")
            .expect("read")
            .expect("some");
        assert_eq!(got.expose(), "s3cr3t");
        let err = resolve_secret(
            &ConfigSecret::default(),
            &dir.path().join("missing"),
            "secret_access_key",
        )
        .expect_err("missing");
        assert!(err.starts_with("secret_access_key_file"), "{err}");
    }
}
