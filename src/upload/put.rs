//! The single-object upload path every front end shares: a pending row, an invisible staged
//! write fed by the ingest pipe, and a commit only if every check passed. A failure, or a
//! request future dropped midway (client gone, shutdown), removes the staged bytes and the
//! pending row; a crash leaves a leased row the sweeper finds.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::ingest::aws_chunked::Decoder;
use crate::ingest::checksum;
use crate::ingest::{self, Ingested};
use crate::metadata::control::{LinkCommit, UploadLink};
use crate::metadata::{CommitInfo, NewPending, ObjectHeaders, ObjectTags, WriteCondition};
use crate::state::AppState;
use crate::storage::Storage;

pub use super::admit::upload_permit;
use super::delete::remove_versions;
use super::event::link_event;
use super::verdict::{Refused, dispose};

/// Removes a pending row if the upload future is dropped before it commits or aborts (client
/// disconnect, shutdown). The staging write cleans itself up the same way.
struct PendingGuard {
    state: Arc<AppState>,
    bucket: String,
    id: Option<String>,
}

impl PendingGuard {
    fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let state = Arc::clone(&self.state);
            let path = Storage::path_for(&self.bucket, &id);
            self.state.cleanup.spawn(async move {
                // The staged write aborts itself on drop; this makes sure of it before the row
                // (the sweeper's only pointer to it) goes.
                if let Err(e) = state.storage.remove_staging(&path).await {
                    tracing::warn!(error = %e, "removing staged bytes failed; the sweeper will");
                    return;
                }
                if let Err(e) = state.meta.discard_pending(&id).await {
                    tracing::warn!(error = %e, "discarding pending record failed; the sweeper will");
                }
            });
        }
    }
}

/// Streams `frames` through `decoder` and `pipe` into `staging`, bounded by the idle timeout
/// between reads and by an absolute deadline derived from the size limit.
pub async fn stream_body<S>(
    state: &AppState,
    frames: S,
    decoder: Option<Decoder>,
    pipe: ingest::Pipe,
    max_bytes: u64,
    staging: &mut crate::storage::Staging,
) -> Result<Ingested>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
{
    let server = &state.config.server;
    let idle = Duration::from_secs(server.body_idle_timeout_secs);
    // The absolute bound on an upload: the presigned expiry is checked only at the start, so
    // without it a client trickling just above the idle timeout could hold a slot for hours.
    let deadline = Duration::from_secs(state.config.upload_deadline_for(max_bytes));
    // Optional per-upload bandwidth cap: frames are released no faster than the configured
    // rate (config validation keeps it above the minimum upload rate, so pacing never trips the
    // idle timeout).
    let pacer = state.limiter.pacer();
    let paced = Box::pin(futures_util::stream::unfold(
        (frames, pacer),
        |(mut s, mut p)| async move {
            let item = s.next().await?;
            if let Ok(b) = &item {
                p.pace(b.len()).await;
            }
            Some((item, (s, p)))
        },
    ));
    let run = ingest::run_pipe(paced, decoder, pipe, staging, idle);
    match tokio::time::timeout(deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(Error::RequestTimeout),
    }
}

/// Where a new object goes and who uploads it.
pub struct Target<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub owner: &'a str,
    /// The upload link the object completes, if it came through one: the object, the link,
    /// the file record, the token and the event then commit in one transaction.
    pub link: Option<&'a UploadLink>,
    /// The tenant whose quota the object counts against.
    pub tenant: Option<&'a str>,
    /// The type to store instead of the sniffed one (opaque buckets: the declared type).
    pub stored_type: Option<String>,
    /// Headers stored with the object.
    pub headers: ObjectHeaders,
    /// The object's tags.
    pub tags: ObjectTags,
    /// A conditional write's condition, judged again at commit (see [`precheck`]).
    pub condition: Option<WriteCondition>,
}

/// Judges a conditional write against the key's current version before any byte is read (a
/// write that cannot commit should not be uploaded): `If-Match` on a missing key is `NoSuchKey`
/// (as S3), a condition that does not hold `PreconditionFailed`. The commit judges it again,
/// atomically; what changed in between is refused there.
pub async fn precheck(
    state: &AppState,
    bucket: &str,
    key: &str,
    condition: Option<&WriteCondition>,
) -> Result<()> {
    let Some(c) = condition else {
        return Ok(());
    };
    let current = state.meta.current(bucket, key).await?;
    match (c, current) {
        (WriteCondition::EtagIs(_), None) => Err(Error::NoSuchKey),
        (c, current) => Ok(c.check(current.as_ref().map(|r| r.etag.as_str()))?),
    }
}

/// A committed upload.
pub struct Committed {
    /// What arrived (its digests are of the bytes as uploaded).
    pub ingested: Ingested,
    pub etag: String,
    /// The record as committed (size and SHA-256 of the bytes as stored).
    pub info: CommitInfo,
}

/// The single-object upload path shared by PutObject and POST Object: a pending row, an
/// invisible staged write fed by the pipe, and a commit only if every check passed. On any
/// failure (or if the request future is dropped) the staged bytes and the pending row go.
#[allow(clippy::too_many_arguments)]
pub async fn ingest_and_commit<S>(
    state: &Arc<AppState>,
    target: Target<'_>,
    frames: S,
    decoder: Option<Decoder>,
    pipe: ingest::Pipe,
    max_bytes: u64,
    started: std::time::Instant,
) -> Result<Committed>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
{
    let Target {
        bucket,
        key,
        owner,
        link,
        tenant,
        stored_type,
        headers,
        tags,
        condition,
    } = target;
    let quota = match tenant {
        Some(t) => Some(super::quota::quota_for(state, t).await?),
        None => None,
    };
    let _inflight = state.metrics.upload_started();
    let id = insert_pending(state, bucket, key, owner, tenant).await?;
    let mut guard = PendingGuard {
        state: Arc::clone(state),
        bucket: bucket.to_string(),
        id: Some(id.clone()),
    };
    let path = Storage::path_for(bucket, &id);
    let mut staging = state.storage.begin(&path).await?;
    let outcome = stream_body(state, frames, decoder, pipe, max_bytes, &mut staging).await;
    let ingested = match outcome {
        Ok(i) => i,
        Err(e) => {
            let refused = Refused {
                bucket,
                key,
                owner,
                id: &id,
            };
            // Bytes a content check refused may be kept for the operator (the body arrived
            // whole); anything else goes.
            if super::verdict::quarantines(state, bucket, &e) {
                if staging.commit().await.is_ok() {
                    dispose(state, &refused, &path, &e).await;
                }
            } else {
                staging.abort().await;
            }
            state.meta.discard_pending(&id).await?;
            guard.disarm();
            super::verdict::count_refusal(state, &e);
            return Err(e);
        }
    };
    staging.commit().await?;
    let typed = stored_type.is_none();
    let finalized = super::verdict::finalize(
        state,
        state.bucket(bucket)?,
        &path,
        ingested.passed.as_ref(),
        typed,
    )
    .await;
    let finalized = match finalized {
        Ok(f) => f,
        Err(e) => {
            // Published at a path nothing points to: removed (or quarantined) now, with the
            // pending row.
            let refused = Refused {
                bucket,
                key,
                owner,
                id: &id,
            };
            dispose(state, &refused, &path, &e).await;
            let _ = state.meta.discard_pending(&id).await;
            guard.disarm();
            super::verdict::count_refusal(state, &e);
            return Err(e);
        }
    };
    let (size, sha256, etag) = match finalized.stored {
        None => (ingested.size, ingested.sha256, etag_for(&ingested)),
        // Rewritten bytes: their own digest, and a tag that does not pretend to be an MD5.
        Some(s) => (
            s.size,
            s.sha256,
            format!("{}-1", hex::encode(&s.sha256[..16])),
        ),
    };
    let info = CommitInfo {
        size,
        sha256: hex::encode(sha256),
        etag: etag.clone(),
        content_type: match stored_type {
            Some(t) => t,
            None => ingested
                .content_type
                .ok_or(Error::ContentTypeMismatch)?
                .to_string(),
        },
        // A client checksum is of the bytes as uploaded: kept only if those are stored.
        checksum: ingested
            .checksum
            .as_ref()
            .filter(|_| finalized.stored.is_none())
            .map(|(a, v)| (a.header_name().to_string(), checksum::encode_b64(v))),
        committed_at_ms: crate::clock::now_ms(),
        quota: quota.clone(),
        scan: Some(finalized.verdict.to_json()),
        headers,
        tags,
        condition,
        part_sizes: Vec::new(),
        storage_class: state.storage.storage_class(bucket).to_string(),
    };
    // Whatever the commit's outcome, it is settled there (or left to the sweeper when unknown):
    // the guard must not remove bytes a landed commit points to.
    let committed = commit_object(state, &id, &path, &info, link).await;
    guard.disarm();
    let retired = committed?;
    after_commit(state, bucket, retired, &info, started).await;
    Ok(Committed {
        ingested,
        etag,
        info,
    })
}

/// Records a pending row for a new object at `bucket`/`key` (leased, so that the sweeper finds
/// it if this process dies before the commit) and returns its id, the object's storage id.
pub async fn insert_pending(
    state: &AppState,
    bucket: &str,
    key: &str,
    owner: &str,
    tenant: Option<&str>,
) -> Result<String> {
    let id = crate::id::object_id();
    let now = crate::clock::now_ms();
    state
        .pendings
        .write(NewPending {
            id: id.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            owner: owner.to_string(),
            created_at_ms: now,
            lease_until_ms: now.saturating_add(state.lease_ms()),
            tenant_id: tenant.map(str::to_string),
        })
        .await?;
    Ok(id)
}

/// Commits the pending row `id` with `info` — through `link` when given (object, link, file
/// record, token usage, quota and event in one transaction) — and returns the ids of the
/// versions it retired.
///
/// A failed commit may still have committed: the database can apply a transaction and lose the
/// connection before it says so (a restart, a network cut). So the row is read back first. If
/// it is committed (or already retired by a newer version), the upload succeeded and is
/// answered as such; the versions it retired, if any, are garbage rows the sweeper removes. If
/// it is still pending, the commit did not happen: the bytes published at `path` (which nothing
/// points to) are removed and the row discarded. If the database cannot say, nothing is
/// touched: the row's lease lets the sweeper decide once it can.
pub async fn commit_object(
    state: &Arc<AppState>,
    id: &str,
    path: &object_store::path::Path,
    info: &CommitInfo,
    link: Option<&UploadLink>,
) -> Result<Vec<String>> {
    let committed = match link {
        None => match &state.commits {
            Some(group) => group.write((id.to_string(), info.clone())).await,
            None => state.meta.commit(id, info).await,
        },
        Some(link) => state
            .control
            .commit_link(&LinkCommit {
                object_id: id.to_string(),
                object: info.clone(),
                link_id: link.id.clone(),
                event: link_event(link, crate::events::UPLOAD_COMPLETED, Some(info), None),
            })
            .await
            .map(|()| Vec::new()),
    };
    // A file's new version: its text is indexed for search, off the request.
    let index = || {
        if let Some(link) = link {
            super::text_index::index_later(
                state,
                super::text_index::Version {
                    file_id: link.file_id.clone(),
                    bucket: link.bucket.clone(),
                    key: link.key.clone(),
                    path: path.clone(),
                    content_type: info.content_type.clone(),
                },
            );
        }
    };
    let e = match committed {
        Ok(retired) => {
            index();
            return Ok(retired);
        }
        Err(e) => e,
    };
    match state.meta.object_status(id).await {
        Ok(Some(status)) if status != "pending" => {
            tracing::warn!(error = %e, "the commit was reported failed but had landed");
            index();
            Ok(Vec::new())
        }
        Ok(Some(_)) => {
            abandon(state, id, path).await;
            Err(e.into())
        }
        // Gone: the sweeper took the row (its lease ended) and removes the bytes.
        Ok(None) => Err(e.into()),
        Err(check) => {
            tracing::warn!(error = %check, "commit outcome unknown; the sweeper settles it");
            Err(e.into())
        }
    }
}

/// Gives up an upload that did not commit: removes the bytes at `path`, then the pending row
/// `id`. The row goes only once the bytes are gone; if either step fails, the row's lease lets
/// the sweeper finish the job (and the reconciler finds bytes that land later).
pub async fn abandon(state: &AppState, id: &str, path: &object_store::path::Path) {
    if let Err(e) = state.storage.delete(path).await {
        tracing::warn!(error = %e, "removing an abandoned upload's bytes failed; the sweeper will");
        return;
    }
    if let Err(e) = state.meta.discard_pending(id).await {
        tracing::warn!(error = %e, "discarding a pending record failed; the sweeper will");
    }
}

/// After a commit: the upload is counted, the bytes of the versions it retired are removed
/// (failures are the sweeper's), and a quota warning is recorded if usage crossed its
/// threshold.
pub async fn after_commit(
    state: &AppState,
    bucket: &str,
    retired: Vec<String>,
    info: &CommitInfo,
    started: std::time::Instant,
) {
    state
        .metrics
        .upload_committed(info.size, started.elapsed().as_secs_f64());
    remove_versions(state, bucket, retired).await;
    if let Some(q) = &info.quota {
        let added = i64::try_from(info.size).unwrap_or(i64::MAX);
        if let Err(e) = super::quota::warn_if_crossed(state, q, added).await {
            tracing::warn!(error = %e, "quota warning not recorded");
        }
    }
}

/// The ETag policy (see `etag` in the bucket config): the MD5 when it was computed anyway,
/// otherwise `hex(sha256[..16])-1`, which S3 tools treat as "not an MD5" (like a multipart tag).
pub fn etag_for(i: &Ingested) -> String {
    match i.md5 {
        Some(md5) => hex::encode(md5),
        None => format!("{}-1", hex::encode(&i.sha256[..16])),
    }
}
