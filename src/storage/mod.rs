//! The backend seam: where object bytes live, behind `object_store`.
//!
//! upgate never writes a client's bytes at a path a reader can see before every check passed.
//! Each upload gets a fresh, random *storage path* (`{bucket}/{id[..2]}/{id}`); the metadata
//! record maps the S3 key to it only at commit. Writes go through a [`Staging`] handle built on
//! `object_store`'s multipart upload, which on the local backend writes a hidden staging file
//! and renames it into place on `complete`; an unfinished handle aborts itself when dropped, so
//! a failed or interrupted upload leaves nothing behind.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
};

use std::time::Instant;

use crate::config::{BackendKind, StorageConfig};
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
    /// Anything else the backend reported (I/O, network, throttling).
    #[error("backend error: {0}")]
    Backend(#[source] object_store::Error),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound,
            other => StorageError::Backend(other),
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidRange => Error::InvalidRange,
            // A committed record whose bytes are gone is an inconsistency, not a client error.
            StorageError::NotFound => Error::internal(e),
            StorageError::Backend(_) => Error::unavailable(e),
        }
    }
}

/// Handle to the object backend.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    metrics: Option<Arc<Metrics>>,
    /// Root directory of the local backend: its staging files (`{path}#{n}`) are invisible to
    /// `object_store` listings, so leftovers of a dead process are removed by name.
    local_root: Option<std::path::PathBuf>,
    /// Smallest part the backend accepts (except the last); 0 = any size. Staged writes are
    /// coalesced up to this size.
    min_part: usize,
}

/// A readable object range.
pub struct ObjectBody {
    /// The bytes, streamed from the backend.
    pub stream: BoxStream<'static, Result<Bytes, StorageError>>,
    /// Which bytes of the object the stream carries.
    pub range: Range<u64>,
}

impl Storage {
    /// Opens the backend described by the config.
    pub fn open(cfg: &StorageConfig) -> Result<Self, StorageError> {
        let mut local_root = None;
        let store: Arc<dyn ObjectStore> = match cfg.backend {
            BackendKind::Local => {
                let root = cfg.data_dir.join("objects");
                local_root = Some(root.clone());
                std::fs::create_dir_all(&root).map_err(|e| {
                    StorageError::Backend(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    })
                })?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(root)?
                        .with_automatic_cleanup(true),
                )
            }
            BackendKind::Memory => Arc::new(object_store::memory::InMemory::new()),
        };
        Ok(Self {
            store,
            min_part: 0,
            metrics: None,
            local_root,
        })
    }

    /// Wraps an existing store (tests, benches).
    pub fn from_store(store: Arc<dyn ObjectStore>, min_part: usize) -> Self {
        Self {
            store,
            min_part,
            metrics: None,
            local_root: None,
        }
    }

    /// Records backend latency and errors into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn observe<T, E>(&self, op: &'static str, started: Instant, r: &Result<T, E>) {
        if let Some(m) = &self.metrics {
            m.backend(op, started.elapsed().as_secs_f64(), r.is_ok());
        }
    }

    /// The storage path for object id `id` in `bucket`. Ids are random hex, so they spread over
    /// 256 directories per bucket on disk.
    pub fn path_for(bucket: &str, id: &str) -> Path {
        let fan = id.get(..2).unwrap_or("00");
        Path::from(format!("{bucket}/{fan}/{id}"))
    }

    /// Starts a hidden, abortable write at `path`.
    pub async fn begin(&self, path: &Path) -> Result<Staging, StorageError> {
        let started = Instant::now();
        let r = self.store.put_multipart(path).await;
        self.observe("begin", started, &r);
        let upload = r?;
        Ok(Staging {
            upload: Some(upload),
            pending: Vec::new(),
            pending_len: 0,
            min_part: self.min_part,
        })
    }

    /// Streams `range` (or the whole object) from `path`.
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
        let res = self.store.get_opts(path, opts).await;
        self.observe("get", started, &res);
        let res = res.map_err(|e| match e {
            object_store::Error::NotModified { .. } => StorageError::InvalidRange,
            other => StorageError::from(other),
        })?;
        let range = res.range.clone();
        let stream = res.into_stream().map_err(StorageError::from).boxed();
        Ok(ObjectBody { stream, range })
    }

    /// Deletes the bytes at `path`; deleting nothing is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        let started = Instant::now();
        let r = self.store.delete(path).await;
        self.observe("delete", started, &r);
        match r {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes what an interrupted staged write at `path` may have left (local backend: the
    /// `{path}#{n}` staging file; object_store numbers them from 1, and paths are unique per
    /// upload, so the first few suffixes cover it). Idempotent.
    pub async fn remove_staging(&self, path: &Path) -> Result<(), StorageError> {
        let Some(root) = &self.local_root else {
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
            Ok(Err(e)) => Err(StorageError::Backend(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })),
            Err(e) => Err(StorageError::Backend(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })),
        }
    }

    /// Whether anything exists at `path` (tests and the sweeper).
    pub async fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// An in-progress, invisible write. Call [`Staging::commit`] to publish or [`Staging::abort`] to
/// discard; dropping it unfinished discards it too (best effort, in the background).
pub struct Staging {
    upload: Option<Box<dyn MultipartUpload>>,
    pending: Vec<Bytes>,
    pending_len: usize,
    min_part: usize,
}

impl Staging {
    /// Appends bytes. With `min_part == 0` each call becomes one backend write, so at most one
    /// body frame per upload is held in memory; otherwise frames are coalesced to `min_part`.
    pub async fn write(&mut self, data: Bytes) -> Result<(), StorageError> {
        if data.is_empty() {
            return Ok(());
        }
        self.pending_len += data.len();
        self.pending.push(data);
        if self.pending_len >= self.min_part {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
        self.pending_len = 0;
        let upload = self.upload.as_mut().ok_or(StorageError::NotFound)?;
        upload.put_part(payload).await?;
        Ok(())
    }

    /// Makes the object visible at its storage path (atomically, from a reader's view).
    pub async fn commit(mut self) -> Result<(), StorageError> {
        self.flush().await?;
        let mut upload = self.upload.take().ok_or(StorageError::NotFound)?;
        if let Err(e) = upload.complete().await {
            let _ = upload.abort().await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Discards everything written so far.
    pub async fn abort(mut self) {
        if let Some(mut upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(error = %e, "staged upload abort failed");
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}
