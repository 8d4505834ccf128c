//! The handles every front end shares, and nothing else: configuration, storage, the
//! metadata stores, credentials, the rate limiter, metrics and the tracker of background
//! cleanups. Built once by the composition root (`crate::app`); no behaviour lives here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{AuthPolicy, Credentials, SecretKey};
use crate::config::{BucketConfig, Config};
use crate::error::{Error, Result};
use crate::metadata::batch::Batcher;
use crate::metadata::control::{ControlStore, Minted};
use crate::metadata::{CommitInfo, MetadataStore, NewPending, RuntimeBucket};
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
    /// Minted links, committed in groups ([`crate::metadata::batch`]).
    pub mints: Batcher<Minted>,
    /// The pending records of starting uploads, committed in groups.
    pub pendings: Batcher<NewPending>,
    /// Object commits, grouped on a single writer (SQLite); `None`: each its own transaction.
    pub commits: Option<Batcher<(String, CommitInfo), Vec<String>>>,
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
    /// The run-time buckets (S3 CreateBucket) this replica has seen.
    pub runtime_buckets: RuntimeBuckets,
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

/// How long a replica trusts what it last read of a run-time bucket before it asks the
/// metadata database again: a bucket deleted on another replica stops working here within it.
/// A bucket this replica has not seen is always looked up, so one created elsewhere works at
/// once.
pub const RUNTIME_BUCKET_TTL: Duration = Duration::from_secs(2);

/// Where a bucket is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketSource {
    /// A `[buckets.NAME]` table of the configuration.
    Config,
    /// Created at run time (its policy is `[bucket_template]`).
    Runtime(RuntimeBucket),
}

/// The run-time buckets a replica has seen, each with when it was last read from the metadata
/// database. An entry is used however old it is by the synchronous [`AppState::bucket`] (an
/// upload that started in a bucket finishes in it); [`AppState::resolve_bucket`], at the start
/// of each request, reads it again once it is older than [`RUNTIME_BUCKET_TTL`].
#[derive(Debug, Default)]
pub struct RuntimeBuckets(std::sync::RwLock<HashMap<String, (Instant, RuntimeBucket)>>);

impl RuntimeBuckets {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (Instant, RuntimeBucket)>> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (Instant, RuntimeBucket)>> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bucket as last read, if it was read less than `ttl` ago.
    fn fresh(&self, name: &str, ttl: Duration) -> Option<RuntimeBucket> {
        self.read()
            .get(name)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, b)| b.clone())
    }

    /// Whether the bucket is known here (however old the entry).
    fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Remembers a bucket just read (or created).
    pub fn remember(&self, bucket: RuntimeBucket) {
        self.write()
            .insert(bucket.name.clone(), (Instant::now(), bucket));
    }

    /// Forgets a bucket (deleted, or no longer in the database).
    pub fn forget(&self, name: &str) {
        self.write().remove(name);
    }
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

    /// The policy of `bucket` (configured, or `[bucket_template]` for a run-time bucket this
    /// replica has resolved), or NoSuchBucket.
    pub fn bucket(&self, bucket: &str) -> Result<&BucketConfig> {
        if let Some(b) = self.config.bucket(bucket) {
            Ok(b)
        } else if self.runtime_buckets.contains(bucket) {
            Ok(&self.config.bucket_template)
        } else {
            Err(Error::NoSuchBucket)
        }
    }

    /// Where `bucket` is defined (`None`: nowhere), reading the metadata database for a
    /// run-time bucket not read in the last [`RUNTIME_BUCKET_TTL`]; afterwards
    /// [`AppState::bucket`] answers for it without a database round trip.
    pub async fn resolve_bucket(&self, bucket: &str) -> Result<Option<BucketSource>> {
        if self.config.bucket(bucket).is_some() {
            return Ok(Some(BucketSource::Config));
        }
        if let Some(b) = self.runtime_buckets.fresh(bucket, RUNTIME_BUCKET_TTL) {
            return Ok(Some(BucketSource::Runtime(b)));
        }
        match self.meta.runtime_bucket(bucket).await? {
            Some(b) => {
                self.runtime_buckets.remember(b.clone());
                Ok(Some(BucketSource::Runtime(b)))
            }
            None => {
                self.runtime_buckets.forget(bucket);
                Ok(None)
            }
        }
    }

    /// How long a pending row (or a claimed link) is leased before the sweeper may take it.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.metadata.pending_lease_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX)
    }
}
