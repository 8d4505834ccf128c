//! The backend seam: where object bytes live, behind `object_store`.
//!
//! upgate never writes a client's bytes at a path a reader can see before every check passed.
//! Each upload gets a fresh, random *storage path* (`{bucket}/{id[..2]}/{id}`); the metadata
//! record maps the S3 key to it only at commit. Writes go through a [`Staging`] handle built on
//! `object_store`'s multipart upload; an unfinished handle aborts itself when dropped, so a
//! failed or interrupted upload leaves nothing behind.
//!
//! Each bucket is stored on one *backend* (`[buckets.X] backend = "NAME"`, else
//! `[storage] backend`), chosen by the first segment of the storage path. A backend is a stack
//! of `object_store` stores, one concern per wrapper ([`backend`] shows the stack):
//!
//! * local: a hidden `{path}#n` file renamed into place on complete; unencrypted objects'
//!   bytes are written from the upload's task ([`local`]), the rest by `LocalFileSystem`;
//! * memory: `InMemory` (tests);
//! * S3 / GCS / Azure: [`spool::SpooledStore`] spools to `data_dir/spool` and sends parts of
//!   `part_bytes` under process-wide disk and memory budgets; server-side encryption (S3) is
//!   a fixed header of every write, set from the config, never from the client;
//! * any kind with `encrypt = true`: [`crypto::EncryptedStore`] on top (envelope encryption,
//!   range reads decrypt only the chunks they need).
//!
//! Failures, by meaning ([`StorageError`]): a backend error, timeout or a full spool is
//! transient (503 with Retry-After); bytes that fail authentication are an internal error,
//! never other bytes.

pub mod backend;
/// The storage section types, owned by the config module.
pub use crate::config::storage as config;
pub mod crypto;
pub mod local;
pub mod spool;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, GetResultPayload, MultipartUpload, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
};

pub use self::backend::Backend;
pub use self::config::{BackendConfig, StorageConfig};
pub use self::crypto::RotationReport;

use crate::error::Error;
use crate::metrics::Metrics;

/// Storage failures, by meaning.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Nothing at that path.
    #[error("object not found in backend")]
    NotFound,
    /// The requested range does not overlap the object.
    #[error("range not satisfiable")]
    InvalidRange,
    /// upgate's own budgets (spool disk, part buffers) are used up: slow down and retry.
    #[error("storage busy: {0}")]
    Busy(#[source] object_store::Error),
    /// The stored bytes fail authentication, or their key cannot be unwrapped.
    #[error("stored object failed its integrity check: {0}")]
    Corrupt(#[source] object_store::Error),
    /// Anything else the backend reported (I/O, network, throttling, timeouts).
    #[error("backend error: {0}")]
    Backend(#[source] object_store::Error),
    /// The storage config cannot be turned into backends.
    #[error("storage config: {0}")]
    Config(String),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound,
            e if crypto::is_range(&e) => StorageError::InvalidRange,
            e if crypto::is_integrity(&e) => StorageError::Corrupt(e),
            e if spool::is_busy(&e) => StorageError::Busy(e),
            other => StorageError::Backend(other),
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidRange => Error::InvalidRange,
            // A committed record whose bytes are gone or altered is an inconsistency, not a
            // client error; and never worth a retry.
            StorageError::NotFound | StorageError::Corrupt(_) | StorageError::Config(_) => {
                Error::internal(e)
            }
            StorageError::Busy(e) => {
                tracing::warn!(error = %e, "storage budget exhausted; asking the client to slow down");
                Error::SlowDown(1)
            }
            StorageError::Backend(_) => Error::unavailable(e),
        }
    }
}

/// A local file operation (staging or spool files) that failed.
fn io_failure(e: std::io::Error) -> StorageError {
    StorageError::Backend(object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    })
}

/// Handle to the object backends.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The backend of buckets not in `routes`: the run-time buckets (S3 CreateBucket), on the
    /// backend `[bucket_template]` names.
    default: Arc<Backend>,
    /// Backend by bucket name (buckets not listed use `default`).
    routes: Arc<HashMap<String, Arc<Backend>>>,
    /// Every distinct backend, default first.
    all: Arc<Vec<Arc<Backend>>>,
    metrics: Option<Arc<Metrics>>,
    /// Smallest part the backend accepts (except the last); 0 = any size. Staged writes are
    /// coalesced up to this size (only for stores given to [`Storage::from_store`]; built
    /// backends handle part sizes themselves).
    min_part: usize,
    /// The storage class new objects of a bucket are written with (`[buckets.X]
    /// storage_class`); buckets not listed use `unrouted_class`.
    classes: Arc<HashMap<String, String>>,
    /// The class of new objects in buckets not in `classes` (`[bucket_template]`).
    unrouted_class: Option<String>,
    /// Bytes gathered into one write on local backends ([`LOCAL_WRITE_BYTES`]).
    local_coalesce: usize,
    /// What all staged local writes may hold gathered at once (`storage.gather_bytes`).
    gather: Arc<GatherBudget>,
}

/// The class the bytes of a bucket without a storage class are in (S3's default).
pub const DEFAULT_CLASS: &str = "STANDARD";

/// Body bytes gathered into one local file write (about; less when the client pauses).
pub const LOCAL_WRITE_BYTES: usize = 64 * 1024;

/// A frame at least this long starts a gathering by copy at once: a body of one smaller frame
/// is written as it came, without a copy.
const BURST_FRAME_BYTES: usize = 8 * 1024;

/// The gathering buffers of the staged writes of one [`Storage`]: at most `limit` bytes of
/// them in use at once (`storage.gather_bytes`). Past it, an upload writes its frames as they
/// come: gathering saves writes (and, without direct writes, thread round trips), but a
/// thousand uploads gathering at once would hold a write's worth each. A buffer given back is
/// kept for the next upload: a burst's buffer may be freed on a blocking thread, and an
/// allocator that gets a stream of large blocks freed on other threads keeps far more memory
/// than the blocks in use.
#[derive(Debug)]
struct GatherBudget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
    spare: std::sync::Mutex<Vec<BytesMut>>,
}

impl GatherBudget {
    fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: std::sync::atomic::AtomicUsize::new(0),
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Takes `n` bytes of the budget and a buffer of that size, if they are free.
    fn take(&self, n: usize) -> Option<BytesMut> {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&u| u <= self.limit)
            })
            .ok()?;
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        Some(spare.unwrap_or_else(|| BytesMut::with_capacity(n)))
    }

    /// Gives back `n` bytes of the budget, and `buf` to keep if it is still of that size.
    fn give(&self, n: usize, mut buf: BytesMut) {
        if n == 0 {
            return;
        }
        buf.clear();
        if buf.capacity() >= n
            && let Ok(mut spare) = self.spare.lock()
            && spare.len() < self.limit / n
        {
            spare.push(buf);
        }
        self.used.fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Records a backend call's latency and outcome into `metrics`, if any.
fn observe<T, E>(metrics: Option<&Metrics>, op: &'static str, started: Instant, r: &Result<T, E>) {
    if let Some(m) = metrics {
        m.backend(op, started.elapsed().as_secs_f64(), r.is_ok());
    }
}

/// `bytes` as an empty buffer to gather into again, if the write that had them let go (local
/// stores do, once the write returned); else an empty one without room.
fn reclaim(bytes: Bytes) -> BytesMut {
    match bytes.try_into_mut() {
        Ok(mut b) => {
            b.clear();
            b
        }
        Err(_) => BytesMut::new(),
    }
}

/// The most bytes one read of a local file brings (object_store's own stream reads 8 KiB at a
/// time, each a trip to the blocking pool; see [`read_file`]).
pub const LOCAL_READ_BYTES: usize = 256 * 1024;

/// A readable object range.
pub struct ObjectBody {
    /// The bytes, streamed from the backend.
    pub stream: BoxStream<'static, Result<Bytes, StorageError>>,
    /// Which bytes of the object the stream carries.
    pub range: Range<u64>,
}

/// Problems with the storage settings that need the storage mechanism to find: the envelope
/// encryption key files are read and parsed, so a bad key is reported with every other config
/// problem (never echoing a key).
pub fn problems(cfg: &config::StorageConfig) -> Vec<String> {
    let enc = &cfg.encryption;
    if !enc.configured() {
        return Vec::new();
    }
    match crypto::Keyring::load(enc) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("storage.encryption: {e}")],
    }
}

impl Storage {
    /// Opens the default backend described by the config; every bucket is stored on it.
    pub fn open(cfg: &StorageConfig) -> Result<Self, StorageError> {
        Self::open_routed(cfg, std::iter::empty::<(&str, &str)>(), "")
    }

    /// Opens the backends of a whole config: each bucket on the backend it names, every other
    /// bucket (created at run time) on the backend of `[bucket_template]`.
    pub fn for_config(config: &crate::config::Config) -> Result<Self, StorageError> {
        let mut storage = Self::open_routed(
            &config.storage,
            config
                .buckets
                .iter()
                .map(|(name, b)| (name.as_str(), b.backend.as_str())),
            &config.bucket_template.backend,
        )?;
        storage.classes = Arc::new(
            config
                .buckets
                .iter()
                .filter_map(|(name, b)| Some((name.clone(), b.new_object_class()?.to_string())))
                .collect(),
        );
        storage.unrouted_class = config.bucket_template.new_object_class().map(String::from);
        Ok(storage)
    }

    /// Opens the default backend and the backends `routes` name, as `(bucket, backend)` pairs,
    /// and `unrouted`, the backend of every other bucket (an empty backend name means the
    /// default).
    pub fn open_routed<'a>(
        cfg: &StorageConfig,
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
        unrouted: &str,
    ) -> Result<Self, StorageError> {
        let spool = Arc::new(spool::Spool::new(
            cfg.data_dir.join("spool"),
            cfg.spool_max_bytes,
            cfg.upload_buffer_bytes,
            Duration::from_secs(cfg.request_timeout_secs),
        ));
        let keys = if cfg.encryption.configured() {
            Some(Arc::new(
                crypto::Keyring::load(&cfg.encryption).map_err(StorageError::Config)?,
            ))
        } else {
            None
        };
        let mut built: HashMap<String, Arc<Backend>> = HashMap::new();
        let mut all = Vec::new();
        let mut get = |name: &str| -> Result<Arc<Backend>, StorageError> {
            if let Some(b) = built.get(name) {
                return Ok(Arc::clone(b));
            }
            let bc = cfg
                .backend_config(name)
                .ok_or_else(|| StorageError::Config(format!("backend {name:?} is not defined")))?;
            let b = Arc::new(
                backend::build(name, &bc, cfg, &spool, keys.as_ref())
                    .map_err(|e| StorageError::Config(format!("backend {name}: {e}")))?,
            );
            built.insert(name.to_string(), Arc::clone(&b));
            all.push(Arc::clone(&b));
            Ok(b)
        };
        // The default backend first (in `all`), even when no bucket uses it.
        get(&cfg.backend)?;
        let default = get(cfg.resolve(unrouted))?;
        let mut by_bucket = HashMap::new();
        for (bucket, name) in routes {
            by_bucket.insert(bucket.to_string(), get(cfg.resolve(name))?);
        }
        Ok(Self {
            default,
            routes: Arc::new(by_bucket),
            all: Arc::new(all),
            metrics: None,
            min_part: 0,
            classes: Arc::default(),
            unrouted_class: None,
            local_coalesce: LOCAL_WRITE_BYTES,
            gather: GatherBudget::new(usize::try_from(cfg.gather_bytes).unwrap_or(usize::MAX)),
        })
    }

    /// Wraps an existing store (tests, benches).
    pub fn from_store(store: Arc<dyn ObjectStore>, min_part: usize) -> Self {
        let b = Arc::new(Backend {
            name: "custom".into(),
            kind: "custom",
            raw: Arc::clone(&store),
            store,
            encrypted: false,
            local_root: None,
            spool: None,
            files: None,
        });
        Self {
            default: Arc::clone(&b),
            routes: Arc::new(HashMap::new()),
            all: Arc::new(vec![b]),
            min_part,
            metrics: None,
            classes: Arc::default(),
            unrouted_class: None,
            local_coalesce: LOCAL_WRITE_BYTES,
            // Not a local backend: its writes are never gathered by copy.
            gather: GatherBudget::new(0),
        }
    }

    /// Gathers up to `bytes` of body frames into one local file write (0: a write per frame;
    /// benches compare the two).
    pub fn with_write_coalesce(mut self, bytes: usize) -> Self {
        self.local_coalesce = bytes;
        self
    }

    /// Records backend latency and errors into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn observe<T, E>(&self, op: &'static str, started: Instant, r: &Result<T, E>) {
        observe(self.metrics.as_deref(), op, started, r);
    }

    /// The backend that stores `path` (chosen by its first segment, the bucket).
    fn backend(&self, path: &Path) -> &Arc<Backend> {
        path.parts()
            .next()
            .and_then(|bucket| self.routes.get(bucket.as_ref()))
            .unwrap_or(&self.default)
    }

    /// The backend that stores `bucket` (tests and admin tools).
    pub fn backend_for(&self, bucket: &str) -> &Arc<Backend> {
        self.routes.get(bucket).unwrap_or(&self.default)
    }

    /// Every distinct backend in use, the default first.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.all
    }

    /// The storage path for object id `id` in `bucket`. Ids are random hex, so they spread over
    /// 256 directories per bucket on disk.
    pub fn path_for(bucket: &str, id: &str) -> Path {
        let fan = id.get(..2).unwrap_or("00");
        Path::from(format!("{bucket}/{fan}/{id}"))
    }

    /// Where the refused bytes of object id `id` are kept in a bucket that quarantines them:
    /// beside the bucket's objects, under a prefix no key maps to (objects are found through
    /// their metadata rows, never by listing), so only the operator reaches them.
    pub fn quarantine_path_for(bucket: &str, id: &str) -> Path {
        Path::from(format!("{bucket}/_quarantine/{id}"))
    }

    /// Moves the bytes at `from` to `to` (paths of the same bucket, so of the same backend).
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let started = Instant::now();
        let r = self.backend(from).store.rename(from, to).await;
        self.observe("rename", started, &r);
        r.map_err(StorageError::from)
    }

    /// Writes a small object whole (a note beside quarantined bytes).
    pub async fn put_small(&self, path: &Path, data: Bytes) -> Result<(), StorageError> {
        let started = Instant::now();
        let r = self.backend(path).store.put(path, data.into()).await;
        self.observe("put", started, &r);
        r.map(|_| ()).map_err(StorageError::from)
    }

    /// The storage class new objects of `bucket` are written with ([`DEFAULT_CLASS`] unless
    /// the bucket names one).
    pub fn storage_class(&self, bucket: &str) -> &str {
        self.classes
            .get(bucket)
            .map(String::as_str)
            .or(if self.routes.contains_key(bucket) {
                None
            } else {
                self.unrouted_class.as_deref()
            })
            .unwrap_or(DEFAULT_CLASS)
    }

    /// Starts a hidden, abortable write of an object's bytes at `path`, in the storage class of
    /// its bucket (the first segment of `path`).
    pub async fn begin(&self, path: &Path) -> Result<Staging, StorageError> {
        let class = path
            .parts()
            .next()
            .map(|b| self.storage_class(b.as_ref()).to_string())
            .unwrap_or_else(|| DEFAULT_CLASS.to_string());
        self.begin_with(path, class_options(&class)).await
    }

    /// Starts a hidden, abortable write of a temporary blob (a multipart or resumable part,
    /// read back once when the object is assembled): always in the default class, since the
    /// colder classes bill a minimum storage time.
    pub async fn begin_part(&self, path: &Path) -> Result<Staging, StorageError> {
        self.begin_with(path, PutMultipartOptions::default()).await
    }

    async fn begin_with(
        &self,
        path: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Staging, StorageError> {
        let b = self.backend(path);
        // A local file write is a trip to the blocking pool: frames are gathered into fewer,
        // larger writes, and the file is created only when the first of them is due, so that
        // an object smaller than one write is stored by a single put (create, write, rename:
        // one trip). Remote backends gather whole parts in their spool already.
        let coalesce = if b.local_root.is_some() {
            self.local_coalesce
        } else {
            0
        };
        let (upload, deferred) = if coalesce > 0 {
            // A class is an attribute, which the local store refuses: its own write says so.
            let files = b.files.clone().filter(|_| opts.attributes.is_empty());
            let d = Deferred {
                store: Arc::clone(&b.store),
                path: path.clone(),
                opts,
                files,
            };
            (None, Some(d))
        } else {
            let started = Instant::now();
            let r = b.store.put_multipart_opts(path, opts).await;
            self.observe("begin", started, &r);
            (Some(Sink::Store(r?)), None)
        };
        Ok(Staging {
            upload,
            deferred,
            frames: Vec::new(),
            frames_len: 0,
            pending: BytesMut::new(),
            min_part: self.min_part,
            coalesce,
            metrics: self.metrics.clone(),
            gather: Arc::clone(&self.gather),
            share: 0,
        })
    }

    /// Streams `range` (or the whole object) from `path`. Ranges are in the object's own
    /// (plaintext) coordinates whatever the backend stores; nothing is buffered beyond one
    /// backend read (one encryption chunk on encrypted backends).
    pub async fn get(
        &self,
        path: &Path,
        range: Option<Range<u64>>,
    ) -> Result<ObjectBody, StorageError> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let started = Instant::now();
        let res = self.backend(path).store.get_opts(path, opts).await;
        self.observe("get", started, &res);
        let res = res.map_err(|e| match e {
            object_store::Error::NotModified { .. } => StorageError::InvalidRange,
            other => StorageError::from(other),
        })?;
        let range = res.range.clone();
        let stream = match res.payload {
            GetResultPayload::File(file, _) => read_file(file, range.clone()),
            GetResultPayload::Stream(s) => s.map_err(StorageError::from).boxed(),
        };
        Ok(ObjectBody { stream, range })
    }

    /// Deletes the bytes at `path`; deleting nothing is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        let started = Instant::now();
        let r = self.backend(path).store.delete(path).await;
        self.observe("delete", started, &r);
        match r {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes what an interrupted staged write at `path` may have left: the local backend's
    /// `{path}#{n}` staging file (object_store numbers them from 1, and paths are unique per
    /// upload, so the first few suffixes cover it) and a remote backend's spool file.
    /// Idempotent.
    pub async fn remove_staging(&self, path: &Path) -> Result<(), StorageError> {
        let b = self.backend(path);
        if let Some(spool) = &b.spool {
            spool.remove(path).await.map_err(io_failure)?;
        }
        let Some(root) = &b.local_root else {
            return Ok(());
        };
        let base = root.join(path.as_ref());
        let result = tokio::task::spawn_blocking(move || {
            for n in 1..=4 {
                let mut p = base.clone().into_os_string();
                p.push(format!("#{n}"));
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io_failure(e)),
            Err(e) => Err(io_failure(std::io::Error::other(e))),
        }
    }

    /// The object ids stored under fan directory `fan` of `bucket` (the paths
    /// [`Storage::path_for`] makes), with their last-modified times in milliseconds. Anything
    /// else found there (not an id of that fan) is left out: the reconciler never touches it.
    pub async fn list_fan(
        &self,
        bucket: &str,
        fan: &str,
    ) -> Result<Vec<(String, i64)>, StorageError> {
        let prefix = Path::from(format!("{bucket}/{fan}"));
        let started = Instant::now();
        let listed: Result<Vec<_>, _> = self
            .backend(&prefix)
            .store
            .list(Some(&prefix))
            .try_collect()
            .await;
        self.observe("list", started, &listed);
        let mut out = Vec::new();
        for meta in listed? {
            let mut parts = meta.location.parts();
            let (Some(b), Some(f), Some(id), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let id = id.as_ref();
            if b.as_ref() == bucket
                && f.as_ref() == fan
                && id.starts_with(fan)
                && id.len() == 32
                && id
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            {
                out.push((id.to_string(), meta.last_modified.timestamp_millis()));
            }
        }
        Ok(out)
    }

    /// Removes the spool files of every remote backend left by a process that died
    /// mid-upload (untouched for longer than `max_age`, the longest upload deadline).
    pub async fn remove_stale_spool(&self, max_age: Duration) -> Result<usize, StorageError> {
        // Remote backends share the process's one spool: each directory is swept once.
        let mut spools: Vec<&Arc<spool::Spool>> = Vec::new();
        for s in self.all.iter().filter_map(|b| b.spool.as_ref()) {
            if !spools.iter().any(|seen| Arc::ptr_eq(seen, s)) {
                spools.push(s);
            }
        }
        let mut removed = 0;
        for s in spools {
            removed += s.remove_stale(max_age).await.map_err(io_failure)?;
        }
        Ok(removed)
    }

    /// Moves the object at `path` to storage class `class`: its stored bytes (ciphertext on an
    /// encrypted backend, so its key sidecar stays valid) are streamed back into the same path
    /// with the new class. The backend replaces the object atomically, so a reader sees the same
    /// bytes before, during and after; a failure leaves the object where it was.
    pub async fn set_storage_class(&self, path: &Path, class: &str) -> Result<(), StorageError> {
        let b = self.backend(path);
        let started = Instant::now();
        let r = async {
            let mut source = b.raw.get(path).await?.into_stream();
            let mut upload = b.raw.put_multipart_opts(path, class_options(class)).await?;
            let copied = async {
                while let Some(chunk) = source.next().await {
                    upload.put_part(PutPayload::from(chunk?)).await?;
                }
                Ok::<_, object_store::Error>(())
            }
            .await;
            match copied {
                Ok(()) => upload.complete().await.map(|_| ()),
                Err(e) => {
                    let _ = upload.abort().await;
                    Err(e)
                }
            }
        }
        .await;
        self.observe("transition", started, &r);
        r.map_err(StorageError::from)
    }

    /// Whether anything exists at `path` (tests and the sweeper).
    pub async fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        match self.backend(path).store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Readiness: every backend answers a metadata request (for a path that does not exist).
    pub async fn probe(&self) -> Result<(), StorageError> {
        let probe = Path::from("_upgate/readiness-probe");
        for b in self.all.iter() {
            match b.raw.head(&probe).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Re-wraps the data keys of every encrypted backend with the active master key, rewriting
    /// only the small key sidecars (`upgate admin rotate-key`). `all`: also those already
    /// wrapped by the active key.
    pub async fn rotate_keys(
        &self,
        cfg: &StorageConfig,
        all: bool,
    ) -> Result<Vec<(String, RotationReport)>, StorageError> {
        let keys = crypto::Keyring::load(&cfg.encryption).map_err(StorageError::Config)?;
        let mut out = Vec::new();
        for b in self.all.iter().filter(|b| b.encrypted) {
            let report = crypto::rotate(&b.raw, &keys, None, all).await?;
            out.push((b.name.clone(), report));
        }
        Ok(out)
    }
}

/// Streams `range` of a local file in reads of up to [`LOCAL_READ_BYTES`]. Each read is first
/// tried from the calling task without waiting on the disk (`preadv2` with `RWF_NOWAIT`: only
/// what the page cache holds, which for a recent upload is all of it); what is not cached is
/// read on the blocking pool, and so is every read of a file system that cannot read without
/// waiting (tmpfs says so at the first try).
fn read_file(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let file = Arc::new(file);
    futures_util::stream::try_unfold(
        (file, range.start, range.end, true),
        |(file, at, end, mut nowait)| async move {
            if at >= end {
                return Ok(None);
            }
            let want = usize::try_from((end - at).min(LOCAL_READ_BYTES as u64)).unwrap_or(0);
            let mut buf = vec![0u8; want];
            let cached = if nowait {
                read_cached(&file, at, &mut buf)
            } else {
                Cached::Unsupported
            };
            match cached {
                Cached::Bytes(n) => buf.truncate(n),
                miss => {
                    nowait = !matches!(miss, Cached::Unsupported);
                    let f = Arc::clone(&file);
                    buf = tokio::task::spawn_blocking(move || read_at(&f, at, buf))
                        .await
                        .map_err(|e| io_failure(std::io::Error::other(e)))?
                        .map_err(io_failure)?;
                }
            }
            if buf.is_empty() {
                // The file is shorter than its metadata said: it changed under the read.
                return Err(io_failure(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "object file ended early",
                )));
            }
            let next = at + buf.len() as u64;
            Ok(Some((Bytes::from(buf), (file, next, end, nowait))))
        },
    )
    .boxed()
}

/// What a read that must not wait on the disk got.
#[derive(Debug)]
enum Cached {
    /// How many bytes the page cache held there (at least one).
    Bytes(usize),
    /// Nothing cached there (or the end of the file, or an error the waiting read will see).
    Miss,
    /// The file system cannot read without waiting.
    Unsupported,
}

/// Reads into `buf` what the page cache holds at `at`, without waiting on the disk; else the
/// caller reads it on the blocking pool.
fn read_cached(file: &std::fs::File, at: u64, buf: &mut [u8]) -> Cached {
    use rustix::io::{Errno, ReadWriteFlags, preadv2};
    loop {
        match preadv2(
            file,
            &mut [std::io::IoSliceMut::new(buf)],
            at,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => return Cached::Miss,
            Ok(n) => return Cached::Bytes(n),
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP) => return Cached::Unsupported,
            Err(_) => return Cached::Miss,
        }
    }
}

/// `buf` filled from `file` at `at` (shortened only at the file's end).
fn read_at(file: &std::fs::File, at: u64, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Write options that put the object in `class` (none for the default class: a backend
/// without classes never sees the attribute).
fn class_options(class: &str) -> PutMultipartOptions {
    let mut attributes = Attributes::new();
    if class != DEFAULT_CLASS {
        attributes.insert(Attribute::StorageClass, class.to_string().into());
    }
    PutMultipartOptions {
        attributes,
        ..Default::default()
    }
}

/// A staged write not started yet: its store, path and options, and the local backend's
/// files if it writes them directly.
struct Deferred {
    store: Arc<dyn ObjectStore>,
    path: Path,
    opts: PutMultipartOptions,
    files: Option<Arc<local::Files>>,
}

/// Where a started staged write's bytes go.
enum Sink {
    /// The store's multipart upload.
    Store(Box<dyn MultipartUpload>),
    /// A local backend's staging file, written from the upload's task ([`local`]).
    File(local::StagedFile),
}

/// An in-progress, invisible write. Call [`Staging::commit`] to publish or [`Staging::abort`] to
/// discard; dropping it unfinished discards it too (best effort, in the background).
///
/// Bytes are gathered into fewer, larger writes in one of two ways:
/// * `frames`: the frames as they came, written when they reach a write's worth or when no
///   next frame is ready ([`Staging::settle`]). The connection reads a frame ahead at most, so
///   this gathers one or two frames; it costs no copy and no memory beyond the frames.
/// * `pending`: a copy, for an upload that holds a share of the [`GatherBudget`]. A burst of
///   frames (started by a full frame, or by a second one) fills writes of `share` bytes, and the
///   upload waits a little for each next frame ([`Staging::wants_next`]). The copy frees the
///   connection's read buffer at once, so what all uploads hold is the budget, not a buffer
///   each; the share goes back when the upload pauses, commits or is dropped.
pub struct Staging {
    upload: Option<Sink>,
    /// Where the write goes until its first bytes are written (see [`Storage::begin`]).
    deferred: Option<Deferred>,
    frames: Vec<Bytes>,
    frames_len: usize,
    pending: BytesMut,
    /// The smallest part the store accepts (but the last): nothing smaller is ever sent.
    min_part: usize,
    /// How many bytes are gathered into one write when they arrive back to back (see
    /// [`Staging::settle`]).
    coalesce: usize,
    /// Where its backend calls are recorded (`begin`, `write`, `commit`).
    metrics: Option<Arc<Metrics>>,
    /// The budget of copied gathering, and the share of it this write holds (0: none).
    gather: Arc<GatherBudget>,
    share: usize,
}

impl Staging {
    /// Appends bytes. They are gathered into writes of about `max(min_part, coalesce)` bytes;
    /// with both 0, each call is one backend write.
    pub async fn write(&mut self, data: Bytes) -> Result<(), StorageError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.share == 0
            && self.min_part == 0
            && self.coalesce > 0
            && (!self.frames.is_empty() || data.len() >= BURST_FRAME_BYTES)
            && let Some(buf) = self.gather.take(self.coalesce)
        {
            // A full frame, or a second one before the first was written: the start of a
            // burst, gathered by copy.
            self.share = self.coalesce;
            self.pending = buf;
            for f in std::mem::take(&mut self.frames) {
                self.pending.extend_from_slice(&f);
            }
            self.frames_len = 0;
        }
        if self.share > 0 {
            if !self.pending.is_empty() && self.pending.len() + data.len() > self.share {
                self.write_pending().await?;
            }
            if self.pending.capacity() == 0 {
                self.pending.reserve(self.share.max(data.len()));
            }
            self.pending.extend_from_slice(&data);
            if self.pending.len() >= self.share {
                self.write_pending().await?;
            }
            return Ok(());
        }
        self.frames_len += data.len();
        self.frames.push(data);
        if self.frames_len >= self.min_part.max(self.coalesce) {
            self.write_frames().await?;
        }
        Ok(())
    }

    /// Whether the upload should wait a little for the client's next frame before it settles:
    /// it gathers by copy (it holds a share of the budget, none of the connection's buffers).
    pub fn wants_next(&self) -> bool {
        self.share > 0
    }

    /// Writes what is gathered when no more bytes are ready (the client paused), unless the
    /// store needs larger parts: an upload waiting on its client holds no body bytes, and no
    /// share of the gathering budget.
    pub async fn settle(&mut self) -> Result<(), StorageError> {
        if self.min_part == 0 {
            self.flush().await?;
            self.release();
        }
        Ok(())
    }

    fn release(&mut self) {
        let buf = std::mem::take(&mut self.pending);
        self.gather.give(std::mem::take(&mut self.share), buf);
    }

    fn observe<T, E>(&self, op: &'static str, started: Instant, r: &Result<T, E>) {
        observe(self.metrics.as_deref(), op, started, r);
    }

    async fn write_pending(&mut self) -> Result<(), StorageError> {
        let bytes = std::mem::take(&mut self.pending).freeze();
        let r = self.put_part(PutPayload::from(bytes.clone())).await;
        self.pending = reclaim(bytes);
        r
    }

    async fn write_frames(&mut self) -> Result<(), StorageError> {
        self.frames_len = 0;
        let payload: PutPayload = std::mem::take(&mut self.frames).into_iter().collect();
        self.put_part(payload).await
    }

    async fn flush(&mut self) -> Result<(), StorageError> {
        if !self.pending.is_empty() {
            self.write_pending().await?;
        }
        if !self.frames.is_empty() {
            self.write_frames().await?;
        }
        Ok(())
    }

    async fn put_part(&mut self, payload: PutPayload) -> Result<(), StorageError> {
        if self.upload.is_none()
            && let Some(d) = self.deferred.take()
        {
            let started = Instant::now();
            let r = match &d.files {
                Some(files) => files.create(&d.path).map(Sink::File),
                None => d
                    .store
                    .put_multipart_opts(&d.path, d.opts)
                    .await
                    .map(Sink::Store)
                    .map_err(StorageError::from),
            };
            self.observe("begin", started, &r);
            self.upload = Some(r?);
        }
        let started = Instant::now();
        let r = match self.upload.as_mut().ok_or(StorageError::NotFound)? {
            Sink::Store(upload) => upload.put_part(payload).await.map_err(StorageError::from),
            Sink::File(file) => file.write(&payload),
        };
        self.observe("write", started, &r);
        r
    }

    /// Makes the object visible at its storage path (atomically, from a reader's view).
    pub async fn commit(mut self) -> Result<(), StorageError> {
        if let Some(d) = self.deferred.take() {
            // Nothing written yet: the whole object in one put.
            let copied =
                (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending).freeze());
            let payload = match &copied {
                Some(bytes) => PutPayload::from(bytes.clone()),
                None => {
                    self.frames_len = 0;
                    std::mem::take(&mut self.frames).into_iter().collect()
                }
            };
            let started = Instant::now();
            let r = match &d.files {
                Some(files) => files.put(&d.path, &payload).await,
                None => {
                    let opts = PutOptions {
                        attributes: d.opts.attributes,
                        tags: d.opts.tags,
                        extensions: d.opts.extensions,
                        ..Default::default()
                    };
                    let r = d.store.put_opts(&d.path, payload, opts).await;
                    r.map(drop).map_err(StorageError::from)
                }
            };
            self.observe("commit", started, &r);
            if let Some(bytes) = copied {
                self.pending = reclaim(bytes);
            }
            self.release();
            r?;
            return Ok(());
        }
        self.flush().await?;
        self.release();
        let started = Instant::now();
        match self.upload.take().ok_or(StorageError::NotFound)? {
            Sink::Store(mut upload) => {
                let r = upload.complete().await;
                self.observe("commit", started, &r);
                if let Err(e) = r {
                    let _ = upload.abort().await;
                    return Err(e.into());
                }
            }
            Sink::File(file) => {
                let r = file.complete().await;
                self.observe("commit", started, &r);
                r?;
            }
        }
        Ok(())
    }

    /// Discards everything written so far.
    pub async fn abort(mut self) {
        match self.upload.take() {
            Some(Sink::Store(mut upload)) => {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "staged upload abort failed");
                }
            }
            Some(Sink::File(file)) => file.abort().await,
            None => {}
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.release();
        // A staging file removes itself when dropped.
        if let Some(Sink::Store(mut upload)) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(file: std::fs::File, range: Range<u64>) -> Vec<u8> {
        read_file(file, range)
            .try_fold(Vec::new(), |mut all, piece| async move {
                all.extend_from_slice(&piece);
                Ok(all)
            })
            .await
            .expect("read")
    }

    #[tokio::test]
    async fn a_local_read_is_the_same_from_the_page_cache_or_the_disk() {
        // /tmp is on the disk here (tmpfs pages cannot be dropped): written and flushed, the
        // file is read from the page cache by the task; with its pages dropped, the task's
        // non-waiting read finds nothing and the blocking pool reads the disk.
        let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("tempdir");
        let path = dir.path().join("object");
        let body: Vec<u8> = (0..LOCAL_READ_BYTES * 3 + 1000)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&path, &body).expect("write");
        let open = || std::fs::File::open(&path).expect("open");
        let mut buf = vec![0u8; 4096];
        assert!(matches!(
            read_cached(&open(), 0, &mut buf),
            Cached::Bytes(4096)
        ));
        assert_eq!(buf, body[..4096]);
        let whole = 0..body.len() as u64;
        assert_eq!(read_all(open(), whole.clone()).await, body);
        let mid = 1000..(LOCAL_READ_BYTES * 2 + 5) as u64;
        assert_eq!(
            read_all(open(), mid.clone()).await,
            body[mid.start as usize..mid.end as usize]
        );

        let f = open();
        f.sync_all().expect("sync");
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        let miss = read_cached(&f, 0, &mut buf);
        assert!(matches!(miss, Cached::Miss), "{miss:?}");
        assert_eq!(read_all(f, whole).await, body);
        let f = open();
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        assert_eq!(
            read_all(f, mid.clone()).await,
            body[mid.start as usize..mid.end as usize]
        );

        // tmpfs cannot read without waiting: every read goes to the pool, and the bytes match.
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() {
            let dir = tempfile::tempdir_in(shm).expect("tempdir");
            let path = dir.path().join("object");
            std::fs::write(&path, &body).expect("write");
            let f = std::fs::File::open(&path).expect("open");
            let unsupported = read_cached(&f, 0, &mut buf);
            assert!(
                matches!(unsupported, Cached::Unsupported),
                "{unsupported:?}"
            );
            assert_eq!(read_all(f, 0..body.len() as u64).await, body);
        }

        // A file shorter than the range asked for is an error, not short bytes.
        let short = 0..body.len() as u64 + 10;
        let err = read_file(open(), short)
            .try_collect::<Vec<_>>()
            .await
            .expect_err("short file");
        assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
    }
}
