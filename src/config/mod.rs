//! Typed configuration: embedded defaults, an optional TOML file on top, then `UPGATE__*`
//! environment overrides. Read once at start; every problem is reported at once.
//!
//! The defaults live in `config/upgate.toml`, which documents each setting and the attack or
//! failure it bounds; that file is compiled into the binary, so the documentation and the
//! defaults cannot drift apart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};

use crate::mime;
use crate::net::Cidr;

pub mod accounts;
pub mod jwt;
pub mod mail;
pub mod search;
pub mod secret;
pub mod storage;
pub mod web;
pub mod webhooks;

/// The documented defaults (`config/upgate.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../config/upgate.toml");

/// Hard upper bound for `s3.max_presign_expiry_secs` (7 days, as S3).
pub const MAX_PRESIGN_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// Prefix of environment overrides; `__` separates path segments.
pub const ENV_PREFIX: &str = "UPGATE__";

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub quotas: QuotaConfig,
    pub admin: AdminConfig,
    pub tls: TlsConfig,
    pub s3: S3Config,
    pub storage: StorageConfig,
    pub metadata: MetadataConfig,
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub jwt: jwt::JwtConfig,
    /// `[accounts]`: users, sessions, upgate's signing keys, receipts.
    pub accounts: accounts::AccountsConfig,
    /// `[webhooks]`: event delivery (see `crate::events`).
    pub webhooks: webhooks::WebhookConfig,
    pub mail: mail::MailConfig,
    pub log: LogConfig,
    pub ratelimit: RateLimitConfig,
    pub redis: RedisConfig,
    /// `[scan]`: the malware scanner.
    pub scan: ScanConfig,
    /// `[web]`: the drop and files pages, and the Uppy routes.
    pub web: web::WebConfig,
    pub search: search::SearchConfig,
    /// Buckets by name.
    pub buckets: BTreeMap<String, BucketConfig>,
    /// `[bucket_template]`: the policy of every bucket created at run time (S3 CreateBucket);
    /// each setting defaults to the default bucket's.
    pub bucket_template: BucketConfig,
}

/// `[server]`: the listener and its connection-level limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_connections: usize,
    /// Threads for blocking work (local file reads and writes, text extraction, password
    /// hashing): a fixed pool, whatever the number of uploads in flight.
    pub blocking_threads: usize,
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may sit with no request in flight before it is closed.
    pub idle_timeout_secs: u64,
    pub body_idle_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub max_connections_per_ip: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub min_upload_rate_bytes_per_sec: u64,
    pub upload_deadline_slack_secs: u64,
    pub http2_max_concurrent_streams: u32,
    pub http2_stream_window_bytes: u32,
    pub http2_connection_window_bytes: u32,
}

/// `[quotas]`: default per-tenant storage limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// 0: unlimited.
    pub max_bytes: u64,
    /// 0: unlimited.
    pub max_objects: u64,
    pub warn_percent: u8,
}

/// `[admin]`: the operators' listener (metrics, probes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Empty disables the admin listener.
    pub listen: String,
}

impl AdminConfig {
    /// The parsed address, `None` when disabled.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[tls]`: TLS on the main listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub reload_interval_secs: u64,
    pub hsts_max_age_secs: u64,
    pub handshake_timeout_secs: u64,
}

/// `[s3]`: protocol settings of the S3 data plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub region: String,
    pub max_presign_expiry_secs: u64,
    pub max_clock_skew_secs: u64,
    pub allow_sigv2: bool,
    pub max_signed_chunk_bytes: usize,
    pub max_xml_body_bytes: usize,
    pub min_part_bytes: u64,
    pub max_parts: u32,
    pub multipart_max_idle_secs: u64,
    /// Whether operator keys may create buckets at run time (CreateBucket).
    pub create_buckets: bool,
    /// Most run-time buckets one tenant may create; 0: tenant keys may not create buckets.
    pub tenant_max_buckets: u32,
}

pub use storage::{
    AzureBackendConfig, BackendConfig, ConfigSecret, EncryptionConfig, GcsBackendConfig,
    LocalBackendConfig, MemoryBackendConfig, S3BackendConfig, S3Sse, StorageConfig,
};

/// One CORS rule (`[[buckets.NAME.cors]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CorsRule {
    /// Origins allowed, e.g. `["https://app.example.com"]`; `*` allows any (no credentials).
    pub allowed_origins: Vec<String>,
    /// Methods allowed: GET, PUT, POST, DELETE, HEAD.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for (default: none). `*` allows any.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may read. Default `["ETag"]`: browser multipart needs the
    /// part ETags.
    #[serde(default = "default_expose")]
    pub expose_headers: Vec<String>,
    /// Seconds a browser may cache the preflight answer (default: none sent).
    #[serde(default)]
    pub max_age_secs: Option<u64>,
}

/// The default `expose_headers` of a CORS rule.
pub fn default_expose() -> Vec<String> {
    vec!["ETag".to_string()]
}

impl CorsRule {
    /// Problems with the rule, for config validation.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.allowed_origins.is_empty() {
            out.push("allowed_origins must not be empty".to_string());
        }
        for o in &self.allowed_origins {
            if o.matches('*').count() > 1 {
                out.push(format!("origin {o:?} has more than one *"));
            }
        }
        if self.allowed_methods.is_empty() {
            out.push("allowed_methods must not be empty".to_string());
        }
        for m in &self.allowed_methods {
            // PATCH: tus appends (the API bucket's rules also cover /v1/tus/ and the Uppy routes).
            if !["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"]
                .contains(&m.to_ascii_uppercase().as_str())
            {
                out.push(format!(
                    "method {m:?} is not one of GET, PUT, POST, DELETE, HEAD, PATCH"
                ));
            }
        }
        out
    }
}

/// `[metadata]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    pub url: String,
    pub schema: String,
    pub pending_lease_secs: u64,
    /// Seconds between two passes of the sweeper.
    pub sweep_interval_secs: u64,
    /// Seconds between two reconciliations of stored bytes with records (0: never).
    pub reconcile_interval_secs: u64,
    /// Seconds a blob no record refers to is left alone before the reconciler removes it.
    pub reconcile_grace_secs: u64,
    /// SQLite: every commit is flushed to the disk before it is acknowledged
    /// (`synchronous=FULL`); off: `NORMAL` (a power loss may undo the last commits, never
    /// corrupt the database). PostgreSQL and MySQL follow their servers' own settings.
    pub fsync: bool,
}

/// A read grant (`[[api.grants]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub tenant: String,
    pub principal: String,
}

/// `[api]`: the JSON control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub bucket: String,
    pub public_url: String,
    pub upload_link_ttl_secs: u64,
    /// How long a resumable upload may take from its creation, seconds.
    pub resumable_expiry_secs: u64,
    /// Most resumable uploads one principal may have unfinished at once.
    pub max_unfinished_resumable: u32,
    /// What happens to a display name whose extension disagrees with the file's type.
    pub filename_extension: ExtensionPolicy,
    pub download_link_ttl_secs: u64,
    pub max_token_ttl_secs: u64,
    pub max_page: u32,
    pub admin_token_file: String,
    pub grants: Vec<Grant>,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub root_access_key_file: String,
    pub root_secret_key_file: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

/// How the ETag of a single-part upload is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EtagMode {
    /// MD5 only when the client sent `Content-MD5`; otherwise SHA-256-derived `<hex>-1`.
    Auto,
    /// Always the MD5 of the body.
    Md5,
}

/// `[buckets.NAME]`: per-bucket ingest policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Days a file (every version) is kept after its creation before the sweeper deletes it;
    /// 0 (default): kept until deleted. Per-file retention chosen at minting is capped by it.
    #[serde(default)]
    pub retention_days: u32,
    /// Versions of a file kept (the newest ones); older versions are deleted by the sweeper.
    /// 0 (default): every version.
    #[serde(default)]
    pub keep_versions: u32,
    /// Days a replaced (non-current) version is kept after it was uploaded; 0 (default): kept.
    #[serde(default)]
    pub noncurrent_version_days: u32,
    /// S3 storage class of new objects (`STANDARD_IA`, …; one of [`STORAGE_CLASSES`]); empty:
    /// the backend's default (STANDARD). S3 backends only.
    #[serde(default)]
    pub storage_class: String,
    /// Days after its upload when an object moves to `transition_storage_class`; 0: never.
    #[serde(default)]
    pub transition_days: u32,
    /// The colder class objects move to after `transition_days` (one of [`STORAGE_CLASSES`]).
    #[serde(default)]
    pub transition_storage_class: String,
    pub max_object_bytes: u64,
    pub allowed_types: Vec<String>,
    pub etag: EtagMode,
    /// CORS rules for browser uploads (none: cross-origin browser requests are refused).
    #[serde(default)]
    pub cors: Vec<CorsRule>,
    /// Backend holding this bucket's objects (a name from `[storage]`); empty: `storage.backend`.
    #[serde(default)]
    pub backend: String,
    /// What happens to a PDF with active content (JavaScript, launch actions, embedded files…).
    #[serde(default)]
    pub pdf_active_content: PdfPolicy,
    /// File-name extensions accepted in display names (case-insensitive); empty: any.
    #[serde(default)]
    pub allowed_extensions: Vec<String>,
    /// Whether every object is scanned for malware (by `[scan] clamd`) before it is committed.
    #[serde(default)]
    pub scan: ScanMode,
    /// Most pixels (width × height) an image's header may declare.
    #[serde(default = "default_max_image_pixels")]
    pub max_image_pixels: u64,
    /// Smallest object accepted, in bytes (0: any).
    #[serde(default)]
    pub min_object_bytes: u64,
    /// Whether types are checked (`checked`) or the bucket holds opaque data (`any`).
    #[serde(default)]
    pub types: TypesMode,
    /// Whether EXIF, XMP, GPS and other metadata blocks are removed from JPEG, PNG and WebP
    /// images before they are stored (the pixels and the visual orientation stay).
    #[serde(default = "default_true")]
    pub strip_image_metadata: bool,
    /// Whether Office documents may carry macros (`vbaProject.bin`) or ActiveX controls.
    #[serde(default)]
    pub allow_macros: bool,
    /// Whether the bytes of an upload a content check refused (malware, active content, a
    /// bomb…) are kept for the operator in the bucket's quarantine area instead of removed.
    #[serde(default)]
    pub quarantine: bool,
}

/// The S3 storage classes a bucket may use: those whose objects are read directly (GET answers
/// at once). The archive classes (`GLACIER`, `DEEP_ARCHIVE`) need a restore before any read,
/// and upgate serves every committed object on request, so they are refused.
pub const STORAGE_CLASSES: [&str; 6] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "REDUCED_REDUNDANCY",
];

impl BucketConfig {
    /// The storage class of new objects, `None` for the backend's default.
    pub fn new_object_class(&self) -> Option<&str> {
        (!self.storage_class.is_empty()).then_some(self.storage_class.as_str())
    }

    /// The class objects move to and the age (ms) after which they do, if the bucket has a
    /// transition.
    pub fn transition(&self) -> Option<(&str, i64)> {
        (self.transition_days > 0 && !self.transition_storage_class.is_empty()).then(|| {
            (
                self.transition_storage_class.as_str(),
                i64::from(self.transition_days) * 86_400_000,
            )
        })
    }

    /// Problems with the storage-class settings of the bucket at `at`, stored on a backend of
    /// kind `kind`.
    fn storage_class_problems(&self, at: &str, kind: &str, problems: &mut Vec<String>) {
        let named = [
            ("storage_class", &self.storage_class),
            ("transition_storage_class", &self.transition_storage_class),
        ];
        if named.iter().all(|(_, v)| v.is_empty()) && self.transition_days == 0 {
            return;
        }
        if kind != "s3" {
            problems.push(format!(
                "{at}: storage classes need an S3 backend (this bucket is on a {kind} backend)"
            ));
            return;
        }
        for (field, value) in named {
            if !value.is_empty() && !STORAGE_CLASSES.contains(&value.as_str()) {
                problems.push(format!(
                    "{at}.{field} {value:?} is not one of {} (archive classes need a restore \
                     before a read, and upgate serves every object directly)",
                    STORAGE_CLASSES.join(", ")
                ));
            }
        }
        if (self.transition_days > 0) == self.transition_storage_class.is_empty() {
            problems.push(format!(
                "{at}: transition_days and transition_storage_class go together"
            ));
        } else if self.transition_days > 0
            && self.transition_storage_class
                == self.new_object_class().unwrap_or(STORAGE_CLASSES[0])
        {
            problems.push(format!(
                "{at}.transition_storage_class is the class new objects already get"
            ));
        }
    }
}

fn default_true() -> bool {
    true
}

/// `buckets.NAME.types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypesMode {
    /// The declared type must be allowed and match the first bytes (the default).
    #[default]
    Checked,
    /// Opaque data: no sniffing, the declared type is stored as given (octet-stream when none),
    /// every other check still runs, and downloads are always attachments in a sandbox.
    Any,
}

fn default_max_image_pixels() -> u64 {
    100_000_000
}

/// `buckets.NAME.scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// No malware scan.
    #[default]
    Off,
    /// Every object is scanned; no verdict (scanner down, slow, size refused) refuses it.
    Required,
}

/// `[scan]`: the malware scanner (ClamAV's clamd).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// `tcp://HOST:PORT` or `unix:///PATH`; empty: no scanner.
    pub clamd: String,
    /// Most seconds one scan may take, waiting for a slot included.
    pub timeout_secs: u64,
    /// Most scans at once (clamd has a thread pool of its own).
    pub max_concurrent: usize,
}

/// `api.filename_extension`: a display name whose extension disagrees with the file's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtensionPolicy {
    /// Give it the type's extension (`invoice.exe` holding a PDF is stored as `invoice.pdf`).
    #[default]
    Fix,
    /// Refuse the upload when its link is minted.
    Reject,
}

/// `buckets.NAME.pdf_active_content`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdfPolicy {
    /// Refuse it (the default): nothing is stored.
    #[default]
    Reject,
    /// Store it with every active name neutralised in place (no byte moves); refused when the
    /// names are where they cannot be changed in place (compressed object streams, encryption).
    Disarm,
    /// Store it as it is (for buckets whose readers never open files, e.g. archives).
    Allow,
}

/// What the rate limiter does while the shared store (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Decide with in-process limits, each the configured limit divided by `replicas`.
    Local,
    /// Refuse every rate-limited request with SlowDown until Redis answers again.
    Closed,
}

/// One limit: a sustained `rate` (requests per second, fractions allowed) and a `burst` (requests
/// accepted at once from an idle state). `rate = 0` disables the limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub rate: f64,
    pub burst: u32,
}

impl Limit {
    /// Whether this limit is switched on (`rate > 0`).
    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }
}

/// The three limits of one route class: per principal, per client address (IPv6 by /64), and
/// for everyone together.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassLimits {
    pub principal: Limit,
    pub ip: Limit,
    pub global: Limit,
}

/// `[ratelimit]`: request rates per route class, upload concurrency and bandwidth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub replicas: u32,
    pub failure_mode: FailureMode,
    pub trusted_proxies: Vec<String>,
    pub retain_interval_secs: u64,
    pub max_concurrent_uploads_per_principal: usize,
    /// Most milliseconds an upload waits for one of its principal's slots (then 503 SlowDown).
    pub upload_slot_wait_ms: u64,
    pub upload_bytes_per_sec: u64,
    pub mint: ClassLimits,
    pub s3_write: ClassLimits,
    pub s3_read: ClassLimits,
    pub download: ClassLimits,
    pub token_exchange: ClassLimits,
}

impl RateLimitConfig {
    /// Every class's limits with the config key naming it.
    pub fn classes(&self) -> [(&'static str, &ClassLimits); 5] {
        [
            ("mint", &self.mint),
            ("s3_write", &self.s3_write),
            ("s3_read", &self.s3_read),
            ("download", &self.download),
            ("token_exchange", &self.token_exchange),
        ]
    }
}

/// `[redis]`: the shared store of rate-limit counters. Never holds security state.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; empty: no Redis.
    pub url: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
    pub key_prefix: String,
}

impl RedisConfig {
    /// Whether a Redis URL is configured.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

/// Redacts the URL's credentials (`redis://user:***@host`).
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***{}", &self.url[..scheme], &self.url[at..])
            }
            _ => self.url.clone(),
        };
        f.debug_struct("RedisConfig")
            .field("url", &url)
            .field("timeout_ms", &self.timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown_ms", &self.breaker_cooldown_ms)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl S3Config {
    /// `max_presign_expiry_secs` as a duration.
    pub fn max_presign_expiry(&self) -> Duration {
        Duration::from_secs(self.max_presign_expiry_secs)
    }
    /// `max_clock_skew_secs` as a duration.
    pub fn max_clock_skew(&self) -> Duration {
        Duration::from_secs(self.max_clock_skew_secs)
    }
}

impl MetadataConfig {
    /// The database URL, with the SQLite default resolved against `data_dir`.
    pub fn resolved_url(&self, data_dir: &Path) -> String {
        if self.url.is_empty() {
            format!("sqlite://{}?mode=rwc", data_dir.join("upgate.db").display())
        } else {
            self.url.clone()
        }
    }
}

/// Every problem found while loading, one line each.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The probe paths (`/healthz`, `/readyz`) answered before S3 routing: no bucket can be named so.
pub const PROBE_SEGMENTS: [&str; 2] = ["healthz", "readyz"];

impl Config {
    /// The absolute deadline of an upload of `bytes`, in seconds: that many bytes at the slowest
    /// tolerated rate, plus the slack.
    pub fn upload_deadline_for(&self, bytes: u64) -> u64 {
        bytes / self.server.min_upload_rate_bytes_per_sec.max(1)
            + self.server.upload_deadline_slack_secs
    }

    /// The absolute deadline of one upload into bucket `b`, in seconds: its largest object's.
    pub fn upload_deadline_secs(&self, b: &BucketConfig) -> u64 {
        self.upload_deadline_for(b.max_object_bytes)
    }

    /// The longest upload deadline of any bucket (run-time buckets' template included), in
    /// seconds.
    pub fn longest_upload_deadline_secs(&self) -> u64 {
        self.policies()
            .map(|(_, b)| self.upload_deadline_secs(b))
            .max()
            .unwrap_or(self.server.upload_deadline_slack_secs)
    }

    /// The embedded defaults alone.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_layers(None, std::iter::empty())
    }

    /// Loads defaults, then `file` (if any), then the `UPGATE__*` pairs in `env`.
    /// Tests pass their own `env` instead of mutating the process environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", p.display())]))?,
            ),
            None => None,
        };
        Self::from_layers(text.as_deref(), env)
    }

    /// Loads defaults, then the TOML text `overlay`, then `env` overrides.
    pub fn from_layers(
        overlay: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut root: Table = DEFAULT_TOML
            .parse()
            .map_err(|e| ConfigError(vec![format!("embedded defaults: {e}")]))?;
        // Every bucket a file defines, and the run-time buckets' template, start from the
        // default bucket's settings.
        let template = root
            .get("buckets")
            .and_then(|b| b.get("uploads"))
            .cloned()
            .unwrap_or(Value::Table(Table::new()));
        if let Some(text) = overlay {
            match text.parse::<Table>() {
                Ok(user) => {
                    // A user-defined bucket list replaces the default bucket set entirely.
                    let mut user = user;
                    if let Some(Value::Table(buckets)) = user.get_mut("buckets") {
                        for (_, b) in buckets.iter_mut() {
                            let mut base = template.clone();
                            merge(&mut base, std::mem::replace(b, Value::Boolean(false)));
                            *b = base;
                        }
                        root.remove("buckets");
                    }
                    merge_table(&mut root, user);
                }
                Err(e) => problems.push(format!("config file: {e}")),
            }
        }
        let mut bucket_template = template;
        if let Some(given) = root.remove("bucket_template") {
            merge(&mut bucket_template, given);
        }
        root.insert("bucket_template".into(), bucket_template);
        for (k, v) in env {
            if let Some(rest) = k.strip_prefix(ENV_PREFIX) {
                apply_env(&mut root, rest, &v, &mut problems);
            }
        }
        let mut cfg = Self::from_table(root, &mut problems);
        if let Some(c) = &mut cfg
            && c.api.bucket.is_empty()
            && let Some(first) = c.buckets.keys().next()
        {
            c.api.bucket = first.clone();
        }
        match cfg {
            Some(cfg) if problems.is_empty() => {
                cfg.validate(&mut problems);
                if problems.is_empty() {
                    Ok(cfg)
                } else {
                    Err(ConfigError(problems))
                }
            }
            _ => Err(ConfigError(problems)),
        }
    }

    fn from_table(mut root: Table, problems: &mut Vec<String>) -> Option<Self> {
        fn section<T: for<'de> Deserialize<'de>>(
            root: &mut Table,
            name: &str,
            problems: &mut Vec<String>,
        ) -> Option<T> {
            let v = root.remove(name).unwrap_or(Value::Table(Table::new()));
            match v.try_into::<T>() {
                Ok(t) => Some(t),
                Err(e) => {
                    problems.push(format!("[{name}]: {}", e.message().trim()));
                    None
                }
            }
        }
        let server = section::<ServerConfig>(&mut root, "server", problems);
        let admin = section::<AdminConfig>(&mut root, "admin", problems);
        let quotas = section::<QuotaConfig>(&mut root, "quotas", problems);
        let tls = section::<TlsConfig>(&mut root, "tls", problems);
        let s3 = section::<S3Config>(&mut root, "s3", problems);
        let storage = section::<StorageConfig>(&mut root, "storage", problems);
        let metadata = section::<MetadataConfig>(&mut root, "metadata", problems);
        let auth = section::<AuthConfig>(&mut root, "auth", problems);
        let api = section::<ApiConfig>(&mut root, "api", problems);
        let jwt = section::<jwt::JwtConfig>(&mut root, "jwt", problems);
        let accounts = section::<accounts::AccountsConfig>(&mut root, "accounts", problems);
        let webhooks = section::<webhooks::WebhookConfig>(&mut root, "webhooks", problems);
        let mail = section::<mail::MailConfig>(&mut root, "mail", problems);
        let log = section::<LogConfig>(&mut root, "log", problems);
        let ratelimit = section::<RateLimitConfig>(&mut root, "ratelimit", problems);
        let redis = section::<RedisConfig>(&mut root, "redis", problems);
        let scan = section::<ScanConfig>(&mut root, "scan", problems);
        let web = section::<web::WebConfig>(&mut root, "web", problems);
        let search = section::<search::SearchConfig>(&mut root, "search", problems);
        let bucket_template = match root.remove("bucket_template").map(Value::try_into) {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                problems.push(format!("[bucket_template]: {}", e.message().trim()));
                None
            }
            None => None,
        };
        let mut buckets = BTreeMap::new();
        match root.remove("buckets") {
            Some(Value::Table(t)) => {
                for (name, v) in t {
                    match v.try_into::<BucketConfig>() {
                        Ok(b) => {
                            buckets.insert(name, b);
                        }
                        Err(e) => {
                            problems.push(format!("[buckets.{name}]: {}", e.message().trim()))
                        }
                    }
                }
            }
            Some(_) => problems.push("[buckets] must be a table of tables".into()),
            None => {}
        }
        for unknown in root.keys() {
            problems.push(format!("unknown section [{unknown}]"));
        }
        Some(Config {
            server: server?,
            admin: admin?,
            quotas: quotas?,
            tls: tls?,
            s3: s3?,
            storage: storage?,
            metadata: metadata?,
            auth: auth?,
            api: api?,
            jwt: jwt?,
            accounts: accounts?,
            webhooks: webhooks?,
            mail: mail?,
            log: log?,
            ratelimit: ratelimit?,
            redis: redis?,
            scan: scan?,
            web: web?,
            search: search?,
            buckets,
            bucket_template: bucket_template?,
        })
    }

    fn validate(&self, problems: &mut Vec<String>) {
        self.web.validate(self.buckets.keys(), problems);
        for b in self
            .buckets
            .keys()
            .filter(|b| PROBE_SEGMENTS.contains(&b.as_str()))
        {
            problems.push(format!(
                "bucket {b:?} would be hidden by the /{b} probe, answered before S3 routing: \
                 rename the bucket"
            ));
        }
        self.search.validate(problems);
        problems.extend(self.accounts.problems());
        if self.accounts.enabled && !self.storage.encryption.configured() {
            problems.push(
                "accounts.enabled needs master keys to seal the signing keys: set \
                 storage.encryption.keys_file or storage.encryption.keys"
                    .into(),
            );
        }
        if self.scan.timeout_secs == 0 || self.scan.max_concurrent == 0 {
            problems.push("scan.timeout_secs and scan.max_concurrent must be at least 1".into());
        }
        for (at, b) in self.policies() {
            if let Some(backend) = self
                .storage
                .backend_config(self.storage.resolve(&b.backend))
            {
                b.storage_class_problems(&at, backend.kind(), problems);
            }
            if b.scan == ScanMode::Required && self.scan.clamd.is_empty() {
                problems.push(format!(
                    "{at}.scan = \"required\" needs a scanner: set scan.clamd"
                ));
            }
        }
        if self.quotas.warn_percent == 0 || self.quotas.warn_percent > 100 {
            problems.push("quotas.warn_percent must be 1..=100".into());
        }
        if self.server.max_connections == 0 {
            problems.push("server.max_connections must be at least 1".into());
        }
        if !(1..=1024).contains(&self.server.blocking_threads) {
            problems.push("server.blocking_threads must be 1..=1024".into());
        }
        if self.server.idle_timeout_secs == 0 {
            problems.push("server.idle_timeout_secs must be at least 1".into());
        }
        if self.server.header_read_timeout_secs == 0 {
            problems.push("server.header_read_timeout_secs must be at least 1".into());
        }
        if self.server.max_connections_per_ip == 0 {
            problems.push("server.max_connections_per_ip must be at least 1".into());
        }
        if !(8..=1000).contains(&self.server.max_headers) {
            problems.push("server.max_headers must be 8..=1000".into());
        }
        if !(8192..=1 << 20).contains(&self.server.max_header_bytes) {
            problems.push("server.max_header_bytes must be 8192..=1048576".into());
        }
        if self.server.min_upload_rate_bytes_per_sec == 0 {
            problems.push("server.min_upload_rate_bytes_per_sec must be at least 1".into());
        }
        if self.server.http2_stream_window_bytes < 65535
            || self.server.http2_connection_window_bytes < self.server.http2_stream_window_bytes
        {
            problems.push(
                "server.http2_stream_window_bytes must be >= 65535 and <= http2_connection_window_bytes"
                    .into(),
            );
        }
        if !self.admin.listen.is_empty() && self.admin.addr().is_none() {
            problems.push(format!(
                "admin.listen {:?} is not an address",
                self.admin.listen
            ));
        }
        if self.tls.enabled {
            if self.tls.cert_file.as_os_str().is_empty() || self.tls.key_file.as_os_str().is_empty()
            {
                problems.push("tls.enabled requires tls.cert_file and tls.key_file".into());
            }
            if self.tls.reload_interval_secs == 0 || self.tls.handshake_timeout_secs == 0 {
                problems.push(
                    "tls.reload_interval_secs and tls.handshake_timeout_secs must be at least 1"
                        .into(),
                );
            }
        }
        if self.server.body_idle_timeout_secs == 0 {
            problems.push("server.body_idle_timeout_secs must be at least 1".into());
        }
        if self.s3.max_presign_expiry_secs == 0
            || self.s3.max_presign_expiry_secs > MAX_PRESIGN_EXPIRY_SECS
        {
            problems.push(format!(
                "s3.max_presign_expiry_secs must be 1..={MAX_PRESIGN_EXPIRY_SECS}"
            ));
        }
        if self.s3.max_clock_skew_secs > 3600 {
            problems.push("s3.max_clock_skew_secs must be at most 3600".into());
        }
        if self.s3.region.is_empty()
            || !self
                .s3
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            problems.push("s3.region must be non-empty and contain only a-z, 0-9 and -".into());
        }
        if self.s3.max_signed_chunk_bytes < 8192 || self.s3.max_signed_chunk_bytes > 16 << 20 {
            problems.push("s3.max_signed_chunk_bytes must be 8192..=16777216".into());
        }
        for (at, b) in self.policies() {
            let deadline = self.upload_deadline_secs(b);
            if deadline >= self.metadata.pending_lease_secs {
                problems.push(format!(
                    "metadata.pending_lease_secs ({}) must exceed the longest upload deadline \
                     ({deadline} s for {at}: max_object_bytes / \
                     min_upload_rate_bytes_per_sec + upload_deadline_slack_secs), or the \
                     sweeper could remove an upload that is still running",
                    self.metadata.pending_lease_secs
                ));
            }
        }
        self.validate_ratelimit(problems);
        if !self.metadata.schema.is_empty() && self.metadata.url.starts_with("mysql://") {
            problems.push(
                "metadata.schema applies to PostgreSQL only; a MySQL URL names its database".into(),
            );
        }
        if !(1..=3600).contains(&self.metadata.sweep_interval_secs) {
            problems.push("metadata.sweep_interval_secs must be 1..=3600".into());
        }
        let reconcile = self.metadata.reconcile_interval_secs;
        if reconcile != 0 && !(60..=30 * 86400).contains(&reconcile) {
            problems
                .push("metadata.reconcile_interval_secs must be 0 (off) or 60..=2592000".into());
        }
        // A blob younger than this may belong to a write whose record is being read or written.
        if self.metadata.reconcile_grace_secs < 60 {
            problems.push("metadata.reconcile_grace_secs must be at least 60".into());
        }
        if self.s3.max_parts == 0 || self.s3.max_parts > 10_000 {
            problems.push("s3.max_parts must be 1..=10000".into());
        }
        if self.s3.multipart_max_idle_secs == 0 {
            problems.push("s3.multipart_max_idle_secs must be at least 1".into());
        }
        if self.bucket(&self.api.bucket).is_none() {
            problems.push(format!(
                "api.bucket {:?} is not a configured bucket",
                self.api.bucket
            ));
        }
        let url = &self.api.public_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            problems.push("api.public_url must start with https:// or http://".into());
        }
        if self.api.max_unfinished_resumable == 0 {
            problems.push("api.max_unfinished_resumable must be at least 1".into());
        }
        if !(60..=7 * 24 * 3600).contains(&self.api.resumable_expiry_secs) {
            problems.push("api.resumable_expiry_secs must be 60..=604800".into());
        }
        if self.api.upload_link_ttl_secs == 0
            || self.api.upload_link_ttl_secs > self.s3.max_presign_expiry_secs
            || self.api.download_link_ttl_secs == 0
            || self.api.download_link_ttl_secs > self.s3.max_presign_expiry_secs
        {
            problems.push(
                "api.upload_link_ttl_secs and api.download_link_ttl_secs must be 1..=s3.max_presign_expiry_secs"
                    .into(),
            );
        }
        if self.api.max_page == 0 || self.api.max_page > 10_000 {
            problems.push("api.max_page must be 1..=10000".into());
        }
        if self.buckets.is_empty() {
            problems.push("at least one [buckets.NAME] table is required".into());
        }
        self.storage
            .validate(self.policies().map(|(_, b)| b.backend.as_str()), problems);
        for name in self.buckets.keys() {
            if !valid_bucket_name(name) {
                problems.push(format!(
                    "bucket name {name:?} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"
                ));
            }
        }
        for (at, b) in self.policies() {
            if b.max_object_bytes == 0 || b.max_object_bytes > 5 << 30 {
                problems.push(format!("{at}.max_object_bytes must be 1..=5368709120"));
            }
            for (i, rule) in b.cors.iter().enumerate() {
                for p in rule.problems() {
                    problems.push(format!("{at}.cors[{i}]: {p}"));
                }
            }
            if b.allowed_types.is_empty() && b.types == TypesMode::Checked {
                problems.push(format!("{at}.allowed_types must not be empty"));
            }
            for t in &b.allowed_types {
                if !mime::is_accepted(t) {
                    problems.push(format!(
                        "{at}.allowed_types: {t:?} is not a type upgate can verify (known: {}, {})",
                        mime::known_types().join(", "),
                        mime::declared_only_types().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if b.min_object_bytes > b.max_object_bytes {
                problems.push(format!(
                    "{at}.min_object_bytes must not exceed max_object_bytes"
                ));
            }
        }
    }

    fn validate_ratelimit(&self, problems: &mut Vec<String>) {
        let rl = &self.ratelimit;
        if rl.replicas == 0 {
            problems.push("ratelimit.replicas must be at least 1".into());
        }
        if rl.retain_interval_secs == 0 {
            problems.push("ratelimit.retain_interval_secs must be at least 1".into());
        }
        if rl.upload_bytes_per_sec != 0
            && rl.upload_bytes_per_sec < self.server.min_upload_rate_bytes_per_sec
        {
            problems.push(
                "ratelimit.upload_bytes_per_sec must be 0 or at least server.min_upload_rate_bytes_per_sec"
                    .into(),
            );
        }
        for p in &rl.trusted_proxies {
            if p.parse::<Cidr>().is_err() {
                problems.push(format!(
                    "ratelimit.trusted_proxies: {p:?} is not an address or CIDR (a.b.c.d/n, x::/n)"
                ));
            }
        }
        for (class, limits) in rl.classes() {
            for (dim, l) in [
                ("principal", limits.principal),
                ("ip", limits.ip),
                ("global", limits.global),
            ] {
                if !l.rate.is_finite() || !(l.rate == 0.0 || (0.001..=1e6).contains(&l.rate)) {
                    problems.push(format!(
                        "ratelimit.{class}.{dim}.rate must be 0 (off) or 0.001..=1000000"
                    ));
                } else if l.rate > 0.0 && !(1..=1_000_000).contains(&l.burst) {
                    problems.push(format!(
                        "ratelimit.{class}.{dim}.burst must be 1..=1000000 when rate > 0"
                    ));
                }
            }
        }
        let r = &self.redis;
        if r.enabled() {
            let scheme_ok = ["redis://", "redis+unix://", "unix://"]
                .iter()
                .any(|s| r.url.starts_with(s));
            if !scheme_ok || redis::Client::open(r.url.as_str()).is_err() {
                // The URL may carry a password: never echo it.
                problems.push("redis.url is not a valid redis:// or unix:// URL".into());
            }
        }
        if !(1..=10_000).contains(&r.timeout_ms) {
            problems.push("redis.timeout_ms must be 1..=10000".into());
        }
        if !(1..=60_000).contains(&r.connect_timeout_ms) {
            problems.push("redis.connect_timeout_ms must be 1..=60000".into());
        }
        if r.breaker_failures == 0 {
            problems.push("redis.breaker_failures must be at least 1".into());
        }
        if !(1..=600_000).contains(&r.breaker_cooldown_ms) {
            problems.push("redis.breaker_cooldown_ms must be 1..=600000".into());
        }
        if r.key_prefix.is_empty() || r.key_prefix.len() > 64 {
            problems.push("redis.key_prefix must be 1..=64 bytes".into());
        }
    }

    /// Every bucket policy with the config path naming it: each `[buckets.NAME]`, then
    /// `[bucket_template]`.
    fn policies(&self) -> impl Iterator<Item = (String, &BucketConfig)> {
        self.buckets
            .iter()
            .map(|(name, b)| (format!("buckets.{name}"), b))
            .chain(std::iter::once((
                "bucket_template".to_string(),
                &self.bucket_template,
            )))
    }

    /// The policy of a bucket, if it is configured.
    pub fn bucket(&self, name: &str) -> Option<&BucketConfig> {
        self.buckets.get(name)
    }
}

/// S3 bucket naming rules (the subset that matters for path-style addressing).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Table(b), Value::Table(o)) => merge_table(b, o),
        (b, o) => *b = o,
    }
}

fn merge_table(base: &mut Table, over: Table) {
    for (k, v) in over {
        match base.get_mut(&k) {
            Some(existing) => merge(existing, v),
            None => {
                base.insert(k, v);
            }
        }
    }
}

fn apply_env(root: &mut Table, path: &str, raw: &str, problems: &mut Vec<String>) {
    let segs: Vec<String> = path.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if segs.iter().any(|s| s.is_empty()) {
        problems.push(format!(
            "environment override {ENV_PREFIX}{path}: empty path segment"
        ));
        return;
    }
    // Parse the value as a TOML value when it is one, else take it as a string. Where the
    // setting is a string (per the value already there, i.e. the documented default), the raw
    // text is kept: a secret or URL that happens to look like a number stays a string.
    let existing_is_string = {
        let mut cur: Option<&Value> = None;
        let mut table: Option<&Table> = Some(root);
        for seg in &segs {
            cur = table.and_then(|t| t.get(seg.as_str()));
            table = cur.and_then(Value::as_table);
        }
        matches!(cur, Some(Value::String(_)))
    };
    let value = if existing_is_string {
        Value::String(raw.to_string())
    } else {
        format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(raw.to_string()))
    };
    let mut cur = root;
    for seg in &segs[..segs.len() - 1] {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(t) => cur = t,
            _ => {
                problems.push(format!(
                    "environment override {ENV_PREFIX}{path}: {seg} is not a section"
                ));
                return;
            }
        }
    }
    if let Some(last) = segs.last() {
        cur.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_defines_buckets_defines_the_whole_set_from_the_default_template() {
        let c = Config::from_layers(
            Some("[buckets.docs]\nmax_object_bytes = 1000\n"),
            Vec::new(),
        )
        .expect("config");
        assert_eq!(c.buckets.keys().collect::<Vec<_>>(), ["docs"]);
        let docs = &c.buckets["docs"];
        assert_eq!(docs.max_object_bytes, 1000);
        let defaults = Config::from_layers(None, Vec::new()).expect("defaults");
        assert_eq!(
            docs.allowed_types,
            defaults.buckets["uploads"].allowed_types
        );
        assert_eq!(c.api.bucket, "docs");
        // Any other section changes only the keys it sets.
        let c = Config::from_layers(Some("[server]\nmax_connections = 7\n"), Vec::new())
            .expect("config");
        assert_eq!(c.server.max_connections, 7);
        assert_eq!(c.server.listen, defaults.server.listen);
        assert_eq!(c.buckets.keys().collect::<Vec<_>>(), ["uploads"]);
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load_and_are_safe() {
        let c = Config::defaults().expect("defaults");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9000");
        let b = c.bucket("uploads").expect("default bucket");
        assert_eq!(b.max_object_bytes, 20 * 1024 * 1024);
        assert!(
            b.allowed_types
                .iter()
                .all(|t| !t.contains("svg") && !t.contains("html"))
        );
        assert_eq!(c.s3.max_presign_expiry_secs, MAX_PRESIGN_EXPIRY_SECS);
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let file = "[server]\nlisten = \"127.0.0.1:1234\"\n[s3]\nregion = \"eu-west-1\"\n";
        let c = Config::from_layers(
            Some(file),
            env(&[
                ("UPGATE__S3__REGION", "eu-central-1"),
                ("UPGATE__BUCKETS__UPLOADS__MAX_OBJECT_BYTES", "1024"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("config");
        assert_eq!(c.server.listen.port(), 1234);
        assert_eq!(c.s3.region, "eu-central-1");
        assert_eq!(c.buckets["uploads"].max_object_bytes, 1024);
    }

    #[test]
    fn string_settings_from_the_environment_stay_strings() {
        let c = Config::from_layers(
            None,
            env(&[
                ("UPGATE__METADATA__SCHEMA", "12345"),
                ("UPGATE__LOG__FILTER", "true"),
            ]),
        )
        .expect("config");
        assert_eq!(c.metadata.schema, "12345");
        assert_eq!(c.log.filter, "true");
    }

    #[test]
    fn user_buckets_replace_defaults_and_inherit_settings() {
        let file = "[buckets.docs]\nmax_object_bytes = 10\n";
        let c = Config::from_layers(Some(file), Vec::new()).expect("config");
        assert!(c.bucket("uploads").is_none());
        let docs = c.bucket("docs").expect("docs");
        assert_eq!(docs.max_object_bytes, 10);
        assert!(docs.allowed_types.contains(&"application/pdf".to_string()));
    }

    #[test]
    fn buckets_named_like_a_probe_are_refused() {
        for name in PROBE_SEGMENTS {
            let err = Config::from_layers(Some(&format!("[buckets.{name}]\n")), Vec::new())
                .expect_err("must fail");
            assert!(err.to_string().contains(&format!("/{name} probe")), "{err}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let file = "[server]\nlisten = \"nope\"\n[s3]\nmax_presign_expiry_secs = 604801\n\
                    [buckets.Bad_Name]\nallowed_types = [\"text/html\"]\n[bogus]\nx = 1\n";
        let err = Config::from_layers(Some(file), Vec::new()).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("[server]"), "{text}");
        assert!(text.contains("unknown section [bogus]"), "{text}");
        // Validation problems are reported once the sections parse; fix the parse errors and
        // the remaining problems all show up together.
        let file = "[s3]\nmax_presign_expiry_secs = 604801\n\
                    [buckets.Bad_Name]\nallowed_types = [\"text/html\"]\n";
        let err = Config::from_layers(Some(file), Vec::new()).expect_err("must fail");
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_layers(Some("[server]\nlisten_addr = \"x\"\n"), Vec::new())
            .expect_err("unknown key");
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn the_bucket_template_starts_from_the_default_bucket_and_is_checked_like_one() {
        let defaults = Config::defaults().expect("defaults");
        assert_eq!(
            defaults.bucket_template.allowed_types,
            defaults.buckets["uploads"].allowed_types
        );
        assert_eq!(
            defaults.bucket_template.max_object_bytes,
            defaults.buckets["uploads"].max_object_bytes
        );
        let c = Config::from_layers(
            Some("[bucket_template]\ntypes = \"any\"\n[buckets.docs]\nmax_object_bytes = 9\n"),
            env(&[("UPGATE__BUCKET_TEMPLATE__MAX_OBJECT_BYTES", "1234")]),
        )
        .expect("config");
        assert_eq!(c.bucket_template.types, TypesMode::Any);
        assert_eq!(c.bucket_template.max_object_bytes, 1234);
        assert_eq!(c.buckets["docs"].max_object_bytes, 9);
        assert_eq!(c.buckets["docs"].types, TypesMode::Checked);
        let err = Config::from_layers(
            Some("[bucket_template]\nscan = \"required\"\nmax_object_bytes = 0\nbogus = 1\n"),
            Vec::new(),
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("[bucket_template]"), "{err}");
        let err = Config::from_layers(
            Some("[bucket_template]\nscan = \"required\"\nmax_object_bytes = 0\n"),
            Vec::new(),
        )
        .expect_err("bad template");
        let text = err.to_string();
        assert!(text.contains("bucket_template.scan"), "{text}");
        assert!(text.contains("bucket_template.max_object_bytes"), "{text}");
    }

    #[test]
    fn storage_classes_need_an_s3_backend_and_a_class_read_directly() {
        let s3 = "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\n";
        let ok = Config::from_layers(
            Some(&format!(
                "{s3}[buckets.docs]\nstorage_class = \"STANDARD_IA\"\ntransition_days = 30\n\
                 transition_storage_class = \"GLACIER_IR\"\n"
            )),
            Vec::new(),
        )
        .expect("config");
        assert_eq!(ok.buckets["docs"].new_object_class(), Some("STANDARD_IA"));
        assert_eq!(
            ok.buckets["docs"].transition(),
            Some(("GLACIER_IR", 30 * 86_400_000))
        );
        assert_eq!(ok.bucket_template.transition(), None);
        let refused = |toml: &str, want: &str| {
            let err = Config::from_layers(Some(toml), Vec::new()).expect_err(toml);
            assert!(err.to_string().contains(want), "{err}");
        };
        refused(
            "[buckets.docs]\nstorage_class = \"STANDARD_IA\"\n",
            "buckets.docs: storage classes need an S3 backend (this bucket is on a local backend)",
        );
        refused(
            &format!("{s3}[buckets.docs]\nstorage_class = \"GLACIER\"\n"),
            "buckets.docs.storage_class \"GLACIER\" is not one of",
        );
        refused(
            &format!("{s3}[bucket_template]\ntransition_storage_class = \"DEEP_ARCHIVE\"\n"),
            "bucket_template.transition_storage_class \"DEEP_ARCHIVE\"",
        );
        refused(
            &format!("{s3}[buckets.docs]\ntransition_days = 3\n"),
            "buckets.docs: transition_days and transition_storage_class go together",
        );
        refused(
            &format!(
                "{s3}[buckets.docs]\ntransition_days = 3\ntransition_storage_class = \"STANDARD\"\n"
            ),
            "buckets.docs.transition_storage_class is the class new objects already get",
        );
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(valid_bucket_name("uploads"));
        assert!(valid_bucket_name("my.bucket-1"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("Uploads"));
        assert!(!valid_bucket_name("-abc"));
        assert!(!valid_bucket_name("a..b"));
    }
}
