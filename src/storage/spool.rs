//! Staged writes to remote backends, as a wrapper store: [`SpooledStore`] turns a stream of small
//! writes (body frames of any size) into parts the backend accepts (S3: at least 5 MiB but the
//! last), without holding a part per upload in memory.
//!
//! Each upload appends to its own spool file, `data_dir/spool/{sha256(path)}` (mode 0600). When
//! the file holds `part_bytes`, the part is read back into memory, sent, and the file emptied;
//! so a file never holds more than one part. Two budgets, shared by every upload of the
//! process, bound what this costs:
//!
//! * **disk** (`spool_max_bytes`): bytes reserved by spool files. A write that would exceed it
//!   fails at once ([`SpoolError::Full`]; the client gets 503 SlowDown with Retry-After).
//! * **memory** (`upload_buffer_bytes`): bytes of parts read back and in flight to the backend.
//!   A part waits for its share (at most `request_timeout_secs`, then 503) and gives it back when
//!   the backend has answered. A permit is only ever held by one part upload at a time and never
//!   while waiting for another, so uploads cannot deadlock on it.
//!
//! An upload smaller than one part is sent as one PUT on `complete`: nothing is visible before
//! (a multipart upload is invisible until completed, and a PUT happens only at commit). Abort,
//! failure or drop removes the spool file and aborts the backend's multipart upload; the sweeper
//! removes the spool file of a process that died ([`Spool::remove`]). A multipart upload begun
//! by a process that died is not known to anyone: give the bucket an `AbortIncompleteMultipartUpload`
//! lifecycle rule (S3 bills its parts until then).

use std::collections::VecDeque;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const STORE: &str = "Spool";

/// Why a spooled write was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The disk budget (`spool_max_bytes`) is used up.
    #[error("spool budget exhausted")]
    Full,
    /// No memory share became free within the wait (`request_timeout_secs`).
    #[error("no upload buffer became free in time")]
    Busy,
    /// The spool file could not be written or read.
    #[error("spool file: {0}")]
    Io(#[from] std::io::Error),
    /// An earlier part of this upload failed; the upload cannot continue.
    #[error("upload already failed")]
    Failed,
}

/// Runs file I/O on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, object_store::Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| err(SpoolError::Io(e))),
        Err(e) => Err(err(SpoolError::Io(std::io::Error::other(e)))),
    }
}

fn err(e: SpoolError) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

/// The process-wide spool: directory and budgets.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    disk_max: u64,
    disk_used: AtomicU64,
    memory: Arc<Semaphore>,
    memory_max: u64,
    wait: Duration,
}

impl Spool {
    /// A spool in `dir` with the two budgets; waits for memory at most `wait`.
    pub fn new(dir: PathBuf, disk_max: u64, memory_max: u64, wait: Duration) -> Self {
        let permits = usize::try_from(memory_max)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            dir,
            disk_max,
            disk_used: AtomicU64::new(0),
            memory: Arc::new(Semaphore::new(permits)),
            memory_max,
            wait,
        }
    }

    /// Bytes currently reserved on disk.
    pub fn disk_used(&self) -> u64 {
        self.disk_used.load(Ordering::Relaxed)
    }

    /// Bytes of part buffers currently in use.
    pub fn memory_used(&self) -> u64 {
        self.memory_max
            .saturating_sub(self.memory.available_permits() as u64)
    }

    /// The spool file of the upload to `path`.
    pub fn file_for(&self, path: &Path) -> PathBuf {
        self.dir
            .join(hex::encode(Sha256::digest(path.as_ref().as_bytes())))
    }

    /// Removes what an upload to `path` may have left in the spool. Idempotent.
    pub async fn remove(&self, path: &Path) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.file_for(path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes spool files untouched for longer than `max_age`: a live upload writes its file
    /// with every body frame and never outlives its deadline, so such a file was left by a
    /// process that died mid-upload (the pending row's sweep may run on another replica, which
    /// cannot reach this disk). Returns how many were removed.
    pub async fn remove_stale(&self, max_age: Duration) -> std::io::Result<usize> {
        let dir = self.dir.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let age = entry
                    .metadata()?
                    .modified()?
                    .elapsed()
                    .unwrap_or(Duration::ZERO);
                if age > max_age && entry.file_type()?.is_file() {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(removed)
        })
        .await;
        swept.map_err(std::io::Error::other)?
    }

    fn reserve(self: &Arc<Self>, n: u64) -> Result<Reservation, SpoolError> {
        let mut cur = self.disk_used.load(Ordering::Relaxed);
        loop {
            let next = cur.checked_add(n).ok_or(SpoolError::Full)?;
            if next > self.disk_max {
                return Err(SpoolError::Full);
            }
            match self.disk_used.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        spool: Arc::clone(self),
                        bytes: n,
                    });
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

/// Disk budget held by an upload; given back when dropped.
#[derive(Debug)]
struct Reservation {
    spool: Arc<Spool>,
    bytes: u64,
}

impl Reservation {
    fn absorb(&mut self, mut other: Reservation) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
    fn release(&mut self, n: u64) {
        let n = n.min(self.bytes);
        self.bytes -= n;
        self.spool.disk_used.fetch_sub(n, Ordering::AcqRel);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let n = self.bytes;
        self.release(n);
    }
}

/// The wrapper store: multipart writes go through the spool, everything else straight through.
#[derive(Debug)]
pub struct SpooledStore {
    inner: Arc<dyn ObjectStore>,
    spool: Arc<Spool>,
    part: u64,
}

impl SpooledStore {
    /// Spools multipart writes to `inner` in parts of `part` bytes.
    pub fn new(inner: Arc<dyn ObjectStore>, spool: Arc<Spool>, part: u64) -> Self {
        Self { inner, spool, part }
    }
}

impl fmt::Display for SpooledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spooled({})", self.inner)
    }
}

struct State {
    inner: Arc<dyn ObjectStore>,
    spool: Arc<Spool>,
    path: Path,
    opts: Option<PutMultipartOptions>,
    part: u64,
    file_path: PathBuf,
    /// The spool file; used only through positional reads and writes in blocking tasks, so
    /// no per-upload buffer exists besides the part being sent.
    file: Option<Arc<std::fs::File>>,
    /// Bytes in the spool file, not yet sent.
    spooled: u64,
    reserved: Option<Reservation>,
    upload: Option<Box<dyn MultipartUpload>>,
    failed: bool,
    finished: bool,
}

impl State {
    async fn append(&mut self, mut data: Bytes) -> Result<(), object_store::Error> {
        while !data.is_empty() {
            let room = usize::try_from(self.part - self.spooled).unwrap_or(usize::MAX);
            let piece = data.split_to(room.min(data.len()));
            let file = match &self.file {
                Some(f) => Arc::clone(f),
                None => {
                    let path = self.file_path.clone();
                    let f = blocking(move || {
                        let mut o = std::fs::OpenOptions::new();
                        o.create(true).truncate(true).read(true).write(true);
                        #[cfg(unix)]
                        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                        o.open(path)
                    })
                    .await?;
                    let f = Arc::new(f);
                    self.file = Some(Arc::clone(&f));
                    f
                }
            };
            let offset = self.spooled;
            let len = piece.len() as u64;
            blocking(move || {
                let mut f = &*file;
                f.seek(SeekFrom::Start(offset))?;
                f.write_all(&piece)
            })
            .await?;
            self.spooled += len;
            if self.spooled == self.part {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Reads the spooled bytes back into memory, under a share of the memory budget.
    async fn read_back(&mut self) -> Result<(Bytes, OwnedSemaphorePermit), object_store::Error> {
        let n = self.spooled;
        let permits = u32::try_from(n).map_err(|_| err(SpoolError::Busy))?;
        let wanted = Arc::clone(&self.spool.memory).acquire_many_owned(permits);
        let permit = match tokio::time::timeout(self.spool.wait, wanted).await {
            Ok(Ok(p)) => p,
            _ => return Err(err(SpoolError::Busy)),
        };
        let len = usize::try_from(n).map_err(|_| err(SpoolError::Busy))?;
        let bytes = match &self.file {
            Some(file) if len > 0 => {
                let file = Arc::clone(file);
                blocking(move || {
                    let mut buf = vec![0u8; len];
                    let mut f = &*file;
                    f.seek(SeekFrom::Start(0))?;
                    f.read_exact(&mut buf)?;
                    Ok(Bytes::from(buf))
                })
                .await?
            }
            _ => Bytes::new(),
        };
        Ok((bytes, permit))
    }

    async fn send_part(&mut self) -> Result<(), object_store::Error> {
        if self.upload.is_none() {
            let opts = self.opts.take().unwrap_or_default();
            self.upload = Some(self.inner.put_multipart_opts(&self.path, opts).await?);
        }
        let (bytes, permit) = self.read_back().await?;
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| err(SpoolError::Failed))?;
        upload.put_part(PutPayload::from(bytes)).await?;
        drop(permit);
        let file = self
            .file
            .as_ref()
            .map(Arc::clone)
            .ok_or_else(|| err(SpoolError::Failed))?;
        blocking(move || file.set_len(0)).await?;
        let sent = self.spooled;
        self.spooled = 0;
        if let Some(r) = self.reserved.as_mut() {
            r.release(sent);
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<PutResult, object_store::Error> {
        let result = if self.upload.is_none() {
            // Smaller than a part: one PUT, now.
            let (bytes, permit) = self.read_back().await?;
            let opts = self.opts.take().unwrap_or_default();
            let put = PutOptions {
                attributes: opts.attributes,
                tags: opts.tags,
                extensions: opts.extensions,
                ..Default::default()
            };
            let r = self
                .inner
                .put_opts(&self.path, PutPayload::from(bytes), put)
                .await;
            drop(permit);
            r?
        } else {
            if self.spooled > 0 {
                self.send_part().await?;
            }
            let upload = self
                .upload
                .as_mut()
                .ok_or_else(|| err(SpoolError::Failed))?;
            upload.complete().await?
        };
        self.upload = None;
        Ok(result)
    }

    /// After a failed PUT or complete, the backend may still apply a request that timed out
    /// on our side: remove whatever lands at the path, now and once the retries are over.
    /// Paths are never reused and the metadata record was not committed, so this is safe.
    fn forget_stragglers(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let path = self.path.clone();
        let later = self.spool.wait.saturating_mul(2);
        rt.spawn(async move {
            let _ = inner.delete(&path).await;
            tokio::time::sleep(later).await;
            if let Err(e) = inner.delete(&path).await {
                tracing::warn!(error = %e, %path, "removing a late-landing failed upload failed");
            }
        });
    }

    async fn cleanup(&mut self) {
        self.file = None;
        self.reserved = None;
        self.spooled = 0;
        if let Err(e) = self.spool.remove(&self.path).await {
            tracing::warn!(error = %e, "removing a spool file failed; the sweeper will retry");
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // An upload dropped unfinished: remove its file now and abort the backend's upload.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.file_path);
        }
        if let Some(mut upload) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "aborting a backend multipart upload failed");
                }
            });
        }
    }
}

/// A spooled upload. `put_part` queues the payload at once (keeping call order) and reserves
/// its disk budget; the returned future writes everything queued so far.
struct SpoolUpload {
    state: Arc<tokio::sync::Mutex<State>>,
    queue: Arc<SyncMutex<VecDeque<(PutPayload, Reservation)>>>,
    spool: Arc<Spool>,
}

impl fmt::Debug for SpoolUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpoolUpload")
    }
}

async fn drain(
    state: &mut State,
    queue: &SyncMutex<VecDeque<(PutPayload, Reservation)>>,
) -> Result<(), object_store::Error> {
    loop {
        if state.failed {
            return Err(err(SpoolError::Failed));
        }
        let next = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => return Err(err(SpoolError::Failed)),
        };
        let Some((payload, reservation)) = next else {
            return Ok(());
        };
        match state.reserved.as_mut() {
            Some(r) => r.absorb(reservation),
            None => state.reserved = Some(reservation),
        }
        for b in payload.iter() {
            if let Err(e) = state.append(b.clone()).await {
                state.failed = true;
                return Err(e);
            }
        }
    }
}

#[async_trait]
impl MultipartUpload for SpoolUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let reservation = match self.spool.reserve(data.content_length() as u64) {
            Ok(r) => r,
            Err(e) => return Box::pin(futures_util::future::ready(Err(err(e)))),
        };
        if let Ok(mut q) = self.queue.lock() {
            q.push_back((data, reservation));
        }
        let state = Arc::clone(&self.state);
        let queue = Arc::clone(&self.queue);
        Box::pin(async move {
            let mut st = state.lock().await;
            drain(&mut st, &queue).await
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let mut st = self.state.lock().await;
        if st.finished {
            return Err(err(SpoolError::Failed));
        }
        st.finished = true;
        let r = match drain(&mut st, &self.queue).await {
            Ok(()) => st.complete().await,
            Err(e) => Err(e),
        };
        if r.is_err() {
            if let Some(mut upload) = st.upload.take() {
                let _ = upload.abort().await;
            }
            st.forget_stragglers();
        }
        st.cleanup().await;
        r
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let mut st = self.state.lock().await;
        st.finished = true;
        if let Ok(mut q) = self.queue.lock() {
            q.clear();
        }
        let r = match st.upload.take() {
            Some(mut upload) => upload.abort().await,
            None => Ok(()),
        };
        st.cleanup().await;
        r
    }
}

#[async_trait]
impl ObjectStore for SpooledStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        tokio::fs::create_dir_all(&self.spool.dir)
            .await
            .map_err(|e| err(SpoolError::Io(e)))?;
        let state = State {
            inner: Arc::clone(&self.inner),
            spool: Arc::clone(&self.spool),
            path: location.clone(),
            opts: Some(opts),
            part: self.part,
            file_path: self.spool.file_for(location),
            file: None,
            spooled: 0,
            reserved: None,
            upload: None,
            failed: false,
            finished: false,
        };
        Ok(Box::new(SpoolUpload {
            state: Arc::new(tokio::sync::Mutex::new(state)),
            queue: Arc::new(SyncMutex::new(VecDeque::new())),
            spool: Arc::clone(&self.spool),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Whether `e` is a refusal by the spool's budgets (a reason to slow down, not a fault).
pub fn is_busy(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { source, .. } => matches!(
            source.downcast_ref::<SpoolError>(),
            Some(SpoolError::Full | SpoolError::Busy)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_files_untouched_past_the_deadline_are_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(
            dir.path().to_path_buf(),
            1 << 20,
            1 << 20,
            Duration::from_secs(1),
        );
        let dead = spool.file_for(&Path::from("b/aa/dead"));
        let live = spool.file_for(&Path::from("b/bb/live"));
        for f in [&dead, &live] {
            std::fs::write(f, b"part bytes").expect("write");
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(600);
        std::fs::File::options()
            .write(true)
            .open(&dead)
            .expect("open")
            .set_modified(old)
            .expect("mtime");
        assert_eq!(
            spool
                .remove_stale(Duration::from_secs(300))
                .await
                .expect("sweep"),
            1
        );
        assert!(!dead.exists() && live.exists());
        // A spool directory not created yet is nothing to sweep.
        let none = Spool::new(dir.path().join("absent"), 1, 1, Duration::from_secs(1));
        assert_eq!(none.remove_stale(Duration::ZERO).await.expect("sweep"), 0);
    }
}
