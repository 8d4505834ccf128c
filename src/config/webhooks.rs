//! `[webhooks]`: where events go and how hard the delivery worker (`crate::events`) tries.
//! Plain data; the worker validates and resolves it (`WebhookConfig::problems`).

use serde::Deserialize;

/// An endpoint's signing secret as configured: zeroized on drop, redacted in `Debug`.
pub type WebhookSecret = super::secret::Secret;

/// One receiver (`[[webhooks.endpoints]]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Required. The `http://` or `https://` URL events are POSTed to; no `user:password@`.
    pub url: String,
    /// The signing secret, at least [`MIN_SECRET_BYTES`] bytes, used as is (not hex-decoded).
    /// Default empty; exactly one of `secret` and `secret_file` must be set. Prefer
    /// `secret_file`: secrets in config files end up in backups and diffs.
    #[serde(default)]
    pub secret: WebhookSecret,
    /// File whose first line (trimmed) is the secret, e.g. a mounted Kubernetes secret.
    /// Default empty. Read once at start.
    #[serde(default)]
    pub secret_file: String,
    /// Event names this endpoint receives (see [`EVENTS`]). Default empty = every event; an
    /// unknown name is a config error (a typo would otherwise silently subscribe to nothing).
    #[serde(default)]
    pub events: Vec<String>,
    /// Tenant id whose events this endpoint receives. Default empty = every tenant; set it when
    /// the receiver belongs to one tenant, so it never sees another tenant's files.
    #[serde(default)]
    pub tenant: String,
}

/// `[webhooks]`: where events go and how hard the worker tries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receivers. Default none: events are marked delivered without any request.
    pub endpoints: Vec<EndpointConfig>,
    /// Most milliseconds for one POST, connecting included, until the status line (default
    /// 5000). A hung receiver costs one worker slot for this long, not forever.
    pub timeout_ms: u64,
    /// Attempts after which a failing event is parked (default 12: with the default backoff the
    /// 11 retries span at most ~27 min, ~14 min on average; enough for a receiver's deploy or a
    /// short outage, while a dead receiver stops costing requests). Each extra attempt adds up to
    /// `backoff_max_ms`.
    pub max_attempts: u32,
    /// Ceiling of the first retry delay in milliseconds; doubles per failure (default 1000).
    pub backoff_base_ms: u64,
    /// Cap of the retry delay ceiling in milliseconds (default 600000 = 10 min), so a receiver
    /// that comes back is caught up within minutes rather than hours.
    pub backoff_max_ms: u64,
    /// Milliseconds between outbox polls when nothing was due (default 1000): the worst-case
    /// delivery latency of a new event, against one cheap indexed query per interval.
    pub poll_interval_ms: u64,
    /// Most events fetched per poll (default 100). Bounds the memory of one pass; a full batch is
    /// followed by the next poll at once.
    pub batch: u32,
    /// Most events delivered at once (default 8), so one slow receiver does not serialise the
    /// others behind its timeout; bounds the sockets the worker opens.
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            timeout_ms: 5_000,
            max_attempts: 12,
            backoff_base_ms: 1_000,
            backoff_max_ms: 600_000,
            poll_interval_ms: 1_000,
            batch: 100,
            concurrency: 8,
        }
    }
}
