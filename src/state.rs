//! The handles every front end shares, and nothing else: configuration, storage, the
//! metadata stores, credentials, the rate limiter, metrics and the tracker of background
//! cleanups. Built once by the composition root (`crate::app`); no behaviour lives here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{AuthPolicy, Credentials, SecretKey};
use crate::config::{BucketConfig, Config};
use crate::error::{Error, Result};
use crate::metadata::MetadataStore;
use crate::metadata::control::ControlStore;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::storage::Storage;

/// Counts cleanup tasks spawned from drop guards, so shutdown can wait for them before the
/// runtime goes away (otherwise a cut upload's pending row would outlive the process).
#[derive(Debug, Default)]
pub struct CleanupTracker {
    running: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl CleanupTracker {
    /// Runs `fut` in the background, tracked.
    pub fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        use std::sync::atomic::Ordering;
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.running.fetch_add(1, Ordering::SeqCst);
        let me = Arc::clone(self);
        rt.spawn(async move {
            fut.await;
            if me.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    /// Waits until no tracked task runs, or `limit` passes.
    pub async fn wait_idle(&self, limit: Duration) {
        use std::sync::atomic::Ordering;
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.idle.notified();
                if self.running.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }
}

/// Shared, immutable state of a running gateway.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub storage: Storage,
    pub meta: Arc<dyn MetadataStore>,
    /// Control-plane records (the same database as `meta`).
    pub control: Arc<dyn ControlStore>,
    /// Access keys, link keys, JWT verifier, admin token.
    pub credentials: Credentials,
    /// The malware scanner, if one is configured.
    pub clamd: Option<Arc<crate::scan::clamd::Clamd>>,
    /// Request rates and upload concurrency (in process, and across replicas via Redis).
    pub limiter: Arc<RateLimiter>,
    pub auth_policy: AuthPolicy,
    pub metrics: Arc<Metrics>,
    /// Background cleanups started by drop guards.
    pub cleanup: Arc<CleanupTracker>,
    /// Creation time (ms) of each configured bucket.
    pub bucket_created: HashMap<String, i64>,
    /// Objects whose stored bytes are being rewritten at once (a PDF disarmed, an image's
    /// metadata removed): each is held in memory while it is, so this bounds that memory.
    pub rewrites: tokio::sync::Semaphore,
    /// Text extractions running at once (`search.max_concurrent`); a permit is held by the
    /// extracting thread itself, so one that timed out still counts until it ends.
    pub extractions: Arc<tokio::sync::Semaphore>,
    /// The last readiness answer (when, ready, body), reused for [`READINESS_TTL`]: a probe
    /// storm costs the dependencies one probe round per interval, and concurrent probes wait
    /// for the one in progress.
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, bool, String)>>,
}

/// How long a readiness answer is reused ([`AppState::readiness`]).
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// How many objects may be rewritten at once ([`AppState::rewrites`]).
pub const MAX_REWRITES: usize = 4;

impl AppState {
    /// The secret for an in-memory access key, if the key exists.
    pub fn secret_for(&self, access_key_id: &str) -> Option<SecretKey> {
        self.credentials.secret_for(access_key_id)
    }

    /// Adds (or replaces) an in-memory access key.
    pub fn insert_key(&self, access_key_id: &str, secret: SecretKey) {
        self.credentials.insert_key(access_key_id, secret);
    }

    /// The configuration of `bucket`, or NoSuchBucket.
    pub fn bucket(&self, bucket: &str) -> Result<&BucketConfig> {
        self.config.bucket(bucket).ok_or(Error::NoSuchBucket)
    }

    /// How long a pending row (or a claimed link) is leased before the sweeper may take it.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.metadata.pending_lease_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX)
    }
}
