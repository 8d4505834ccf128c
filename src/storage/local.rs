//! Staged writes straight into a local backend's files.
//!
//! `object_store`'s local multipart upload sends every part to tokio's blocking pool: a thread
//! wake-up there and another back per write, which on a busy gateway cost more than the write
//! itself (a copy into the page cache). A [`StagedFile`] writes from the upload's own task
//! instead, at its offset (`pwrite`), and creates the file there too, as `object_store` itself
//! does; the blocking pool keeps what waits on the disk: flushing the file (`fsync`) and the
//! rename that publishes it (renamed from the task when nothing is flushed), and removal. nginx
//! writes request bodies the same way, from its event loop. An object of one frame is stored the
//! same way (create, write, publish) rather than by `object_store`'s put, a blocking-pool trip
//! of its own.
//!
//! The layout is `object_store`'s, so either side can finish or clean up what the other began:
//! the staging file is `{dest}#{n}` (the smallest free `n` from 1), created with any missing
//! parent directories; the commit closes it (flushed first with `fsync`), renames it to `dest`
//! and, with `fsync`, flushes `dest`'s directory.
//!
//! A root on a network filesystem, whose writes may wait on the network, can turn this off
//! (`direct_writes = false` in the backend's table): every write then goes to the blocking pool.

use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::PutPayload;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::{StorageError, io_failure};

/// Where a local backend's staged files go, and whether they are flushed at the commit.
#[derive(Debug)]
pub struct Files {
    fs: Arc<LocalFileSystem>,
    fsync: bool,
}

impl Files {
    /// The staged files of `fs` (the backend's own store, so paths map the same way).
    pub fn new(fs: Arc<LocalFileSystem>, fsync: bool) -> Self {
        Self { fs, fsync }
    }

    /// Creates the hidden staging file of the object at `path`, from the calling task.
    pub fn create(&self, path: &Path) -> Result<StagedFile, StorageError> {
        let dest = self.fs.path_to_filesystem(path)?;
        let open = create_staging(&dest, self.fsync)?;
        Ok(StagedFile {
            open: Some(open),
            dest,
            offset: 0,
            fsync: self.fsync,
        })
    }

    /// Stores the whole object at `path` at once: create, write, publish.
    pub async fn put(&self, path: &Path, payload: &PutPayload) -> Result<(), StorageError> {
        let mut file = self.create(path)?;
        file.write(payload)?;
        file.complete().await
    }
}

/// An open staging file: written in place, published by [`StagedFile::complete`], removed by
/// [`StagedFile::abort`] or when dropped unfinished.
#[derive(Debug)]
pub struct StagedFile {
    /// The staging file and its path, until it is published or removed.
    open: Option<(std::fs::File, PathBuf)>,
    dest: PathBuf,
    offset: u64,
    fsync: bool,
}

impl StagedFile {
    /// Appends `payload` from the calling task: a copy into the page cache, durable only after
    /// the commit's flush.
    pub fn write(&mut self, payload: &PutPayload) -> Result<(), StorageError> {
        let (file, _) = self.open.as_ref().ok_or(StorageError::NotFound)?;
        for chunk in payload.iter() {
            file.write_all_at(chunk, self.offset).map_err(io_failure)?;
            self.offset += chunk.len() as u64;
        }
        Ok(())
    }

    /// Flushes (with `fsync`) and closes the file, then renames it into place; with `fsync`
    /// the directory entry is flushed too, and all of it runs on the blocking pool. Without,
    /// the rename is made from the calling task, like the create. On failure the staging file
    /// is removed.
    pub async fn complete(mut self) -> Result<(), StorageError> {
        let (file, src) = self.open.take().ok_or(StorageError::NotFound)?;
        let dest = self.dest.clone();
        let fsync = self.fsync;
        let publish_or_remove = move || {
            let published = publish(file, &src, &dest, fsync);
            if published.is_err() {
                let _ = std::fs::remove_file(&src);
            }
            published.map_err(io_failure)
        };
        if fsync {
            blocking(publish_or_remove).await
        } else {
            publish_or_remove()
        }
    }

    /// Removes the staging file.
    pub async fn abort(mut self) {
        if let Some((file, src)) = self.open.take()
            && let Err(e) = blocking(move || {
                drop(file);
                std::fs::remove_file(src).map_err(io_failure)
            })
            .await
        {
            tracing::warn!(error = %e, "staged file removal failed");
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Some((file, src)) = self.open.take() {
            drop(file);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || std::fs::remove_file(src))),
                Err(_) => drop(std::fs::remove_file(src)),
            }
        }
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_failure(std::io::Error::other(e)))?
}

/// Opens `{dest}#{n}` for the smallest free `n`, creating missing parent directories (each
/// one's own entry flushed with `fsync`, so the published object is reachable after a crash).
fn create_staging(dest: &FsPath, fsync: bool) -> Result<(std::fs::File, PathBuf), StorageError> {
    let mut n = 1u32;
    loop {
        let mut src = dest.as_os_str().to_owned();
        src.push(format!("#{n}"));
        let src = PathBuf::from(src);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&src)
        {
            Ok(file) => return Ok((file, src)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let parent = src.parent().ok_or_else(|| io_failure(e))?;
                create_dirs(parent, fsync).map_err(io_failure)?;
            }
            Err(e) => return Err(io_failure(e)),
        }
    }
}

/// `create_dir_all`, and with `fsync` a flush of the parent of each directory it created.
fn create_dirs(dir: &FsPath, fsync: bool) -> std::io::Result<()> {
    if !fsync {
        return std::fs::create_dir_all(dir);
    }
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

fn publish(file: std::fs::File, src: &FsPath, dest: &FsPath, fsync: bool) -> std::io::Result<()> {
    if fsync {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(src, dest)?;
    if fsync && let Some(dir) = dest.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &FsPath, fsync: bool) -> Files {
        let fs = LocalFileSystem::new_with_prefix(root).unwrap();
        Files::new(Arc::new(fs), fsync)
    }

    fn payload(parts: &[&'static [u8]]) -> PutPayload {
        parts.iter().map(|p| bytes::Bytes::from_static(p)).collect()
    }

    #[tokio::test]
    async fn a_staged_file_is_hidden_until_complete_and_then_holds_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        for fsync in [false, true] {
            let path = Path::from(format!("b/ab/obj-{fsync}"));
            let mut f = files(dir.path(), fsync).create(&path).unwrap();
            f.write(&payload(&[b"hello ", b"staged"])).unwrap();
            f.write(&payload(&[b" world"])).unwrap();
            let dest = dir.path().join(format!("b/ab/obj-{fsync}"));
            assert!(!dest.exists());
            assert!(dir.path().join(format!("b/ab/obj-{fsync}#1")).exists());
            f.complete().await.unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), b"hello staged world");
            assert!(!dir.path().join(format!("b/ab/obj-{fsync}#1")).exists());
        }
    }

    #[tokio::test]
    async fn a_taken_staging_name_gets_the_next_number_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let fs = files(dir.path(), false);
        let path = Path::from("b/cd/obj");
        let first = fs.create(&path).unwrap();
        let mut second = fs.create(&path).unwrap();
        second.write(&payload(&[b"two"])).unwrap();
        assert!(dir.path().join("b/cd/obj#2").exists());
        second.complete().await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("b/cd/obj")).unwrap(), b"two");
        assert!(dir.path().join("b/cd/obj#1").exists());
        first.abort().await;
        assert!(!dir.path().join("b/cd/obj#1").exists());
    }

    #[tokio::test]
    async fn a_dropped_staged_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = Path::from("b/ef/obj");
        let mut f = files(dir.path(), false).create(&path).unwrap();
        f.write(&payload(&[b"partial"])).unwrap();
        drop(f);
        let staging = dir.path().join("b/ef/obj#1");
        for _ in 0..100 {
            if !staging.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!staging.exists());
        assert!(!dir.path().join("b/ef/obj").exists());
    }
}
