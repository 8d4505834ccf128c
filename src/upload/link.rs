//! Single-use upload links: the claim (atomic, in the database), the commit (object, link,
//! file record, token usage, quota and event in one transaction, see [`super::put`]) and the
//! release that gives a link back when an attempt fails, so it can be retried until it expires.
//! Also the check a download link's request must pass.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ingest::{self, aws_chunked::Decoder};
use crate::metadata::control::{AuditEntry, Claim, FileStatus, LinkStatus, UploadLink};
use crate::state::AppState;

use super::event::link_event;
use super::put::{Committed, Target, ingest_and_commit};

/// Gives a claimed link back if the upload attempt ends without committing (failure, client
/// gone, shutdown), and reports the failure; a retry may use the link until it expires.
pub struct LinkGuard {
    state: Arc<AppState>,
    link: Option<UploadLink>,
    reason: Option<Error>,
}

impl LinkGuard {
    pub fn fail(&mut self, e: Error) -> Error {
        let code = match &e {
            Error::Internal(_) => Error::internal("upload failed"),
            Error::ServiceUnavailable(_) => Error::unavailable("upload failed"),
            other => clone_for_event(other),
        };
        self.reason = Some(code);
        e
    }

    pub fn disarm(&mut self) {
        self.link = None;
    }
}

/// A copy of a client-caused error good enough for an event's `reason` code.
fn clone_for_event(e: &Error) -> Error {
    match e {
        Error::EntityTooLarge => Error::EntityTooLarge,
        Error::BadDigest => Error::BadDigest,
        Error::ContentSha256Mismatch => Error::ContentSha256Mismatch,
        Error::ContentTypeMismatch => Error::ContentTypeMismatch,
        Error::IncompleteBody => Error::IncompleteBody,
        Error::RequestTimeout => Error::RequestTimeout,
        _ => Error::InvalidRequest("upload failed"),
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            let state = Arc::clone(&self.state);
            let reason = self.reason.take().unwrap_or(Error::IncompleteBody);
            self.state.cleanup.spawn(async move {
                let event = link_event(&link, crate::events::UPLOAD_FAILED, None, Some(&reason));
                if let Err(e) = state.control.release_link(&link.id).await {
                    tracing::warn!(error = %e, "releasing an upload link failed");
                }
                if let Err(e) = state.control.enqueue(&event, crate::clock::now_ms()).await {
                    tracing::warn!(error = %e, "recording an upload.failed event failed");
                }
            });
        }
    }
}

impl LinkGuard {
    /// Uploads the body through the claimed link: the link owner's upload permit, then the
    /// single-object path committing with the link (object, link, file record, token, quota
    /// and event in one transaction). Success consumes the link; a failure releases it for a
    /// retry and records why.
    pub async fn put<S>(
        mut self,
        state: &Arc<AppState>,
        frames: S,
        decoder: Option<Decoder>,
        pipe: ingest::Pipe,
        started: std::time::Instant,
    ) -> Result<Committed>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
    {
        let link = self.link()?.clone();
        let size = u64::try_from(link.size).map_err(|_| Error::internal("negative link size"))?;
        let _permit =
            super::admit::upload_permit(state, &format!("{}:{}", link.tenant_id, link.owner))
                .await
                .map_err(|e| self.fail(e))?;
        let outcome = ingest_and_commit(
            state,
            Target {
                bucket: &link.bucket,
                key: &link.key,
                owner: &link.owner,
                link: Some(&link),
                tenant: Some(&link.tenant_id),
                // An opaque bucket stores the type the link was minted for.
                stored_type: (state.bucket(&link.bucket)?.types == crate::config::TypesMode::Any)
                    .then(|| link.content_type.clone()),
                headers: Default::default(),
                tags: Default::default(),
                condition: None,
            },
            frames,
            decoder,
            pipe,
            size,
            started,
        )
        .await;
        let committed = outcome.map_err(|e| self.fail(e))?;
        self.disarm();
        Ok(committed)
    }

    /// The claimed link.
    pub fn link(&self) -> Result<&UploadLink> {
        self.link
            .as_ref()
            .ok_or(Error::internal("upload link guard already disarmed"))
    }
}

/// Claims the single-use link `link_id` for one upload attempt of `size` bytes (the length the
/// link signs) into `bucket`/`key`. The claim lasts as long as that upload may take (its body
/// deadline, plus the same slack again for the checks and the commit), so an attempt cut off by
/// a crash blocks a retry only that long; a concurrent attempt gets [`Error::LinkInUse`] (with
/// Retry-After), a used or expired link AccessDenied. Overlapping attempts after a claim ran
/// out cannot both complete the link: its commit requires it still unused. The returned guard
/// gives the link back if the attempt ends without committing.
pub async fn claim(
    state: &Arc<AppState>,
    link_id: &str,
    bucket: &str,
    key: &str,
    size: u64,
) -> Result<LinkGuard> {
    let bcfg = state.bucket(bucket)?;
    let secs = state
        .config
        .upload_deadline_for(size.min(bcfg.max_object_bytes))
        + state.config.server.upload_deadline_slack_secs;
    let deadline_ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let now = crate::clock::now_ms();
    let link = claimed(
        state
            .control
            .claim_link(link_id, now, now.saturating_add(deadline_ms))
            .await?,
    )?;
    let mut guard = LinkGuard {
        state: Arc::clone(state),
        link: Some(link),
        reason: None,
    };
    let matches = guard
        .link
        .as_ref()
        .is_some_and(|l| l.bucket == bucket && l.key == key);
    if !matches {
        return Err(guard.fail(Error::AccessDenied("This upload link is for another key.")));
    }
    Ok(guard)
}

/// The owner under which a multipart upload made through link `link_id` is recorded
/// (`link:<id>`), if the link is still open for uploads.
pub async fn open_link_owner(state: &AppState, link_id: &str) -> Result<String> {
    let link = state
        .control
        .link(link_id)
        .await?
        .ok_or(Error::NoSuchUpload)?;
    if link.status != LinkStatus::Pending || link.expires_at_ms < crate::clock::now_ms() {
        return Err(Error::AccessDenied("This upload link is no longer valid."));
    }
    Ok(format!("link:{link_id}"))
}

/// The link uploaded in parts that `tenant_id`/`owner` may complete: NotFound for an unknown
/// id or another owner's link (the same answer), AccessDenied once it is used or expired.
pub async fn completable(
    state: &AppState,
    link_id: &str,
    tenant_id: &str,
    owner: &str,
) -> Result<UploadLink> {
    let link = state.control.link(link_id).await?.ok_or(Error::NotFound)?;
    if link.tenant_id != tenant_id || link.owner != owner {
        return Err(Error::NotFound);
    }
    if matches!(link.status, LinkStatus::Complete | LinkStatus::Expired)
        || link.expires_at_ms < crate::clock::now_ms()
    {
        return Err(Error::AccessDenied("This upload link is no longer valid."));
    }
    Ok(link)
}

/// Claims link `link_id` for one completion attempt and returns it as claimed (a concurrent
/// attempt gets LinkInUse; a used or expired link AccessDenied).
pub async fn claim_for_completion(state: &AppState, link_id: &str) -> Result<UploadLink> {
    let now = crate::clock::now_ms();
    claimed(
        state
            .control
            .claim_link(link_id, now, now.saturating_add(state.lease_ms()))
            .await?,
    )
}

/// What a claim attempt means for the request that made it.
fn claimed(c: Claim) -> Result<UploadLink> {
    match c {
        Claim::Claimed(l) => Ok(*l),
        Claim::InProgress => Err(Error::LinkInUse),
        Claim::Used | Claim::Expired | Claim::Unknown => {
            Err(Error::AccessDenied("This upload link is no longer valid."))
        }
    }
}

/// Gives a link claimed for completion back after a failed attempt and records the failure.
pub async fn release_after_failure(state: &AppState, link: &UploadLink, e: &Error) -> Result<()> {
    state.control.release_link(&link.id).await?;
    let event = link_event(link, crate::events::UPLOAD_FAILED, None, Some(e));
    state
        .control
        .enqueue(&event, crate::clock::now_ms())
        .await?;
    Ok(())
}

/// A download link names its file; the key must be one of that file's versions and the file
/// must not be deleted. Each download is recorded in the audit log.
pub async fn check_download(
    state: &AppState,
    file_id: &str,
    key: &str,
    head_only: bool,
) -> Result<()> {
    let f = state.control.file(file_id).await?.ok_or(Error::NoSuchKey)?;
    let prefix = format!("{}/{}/", f.tenant_id, f.id);
    if f.status == FileStatus::Deleted || !key.starts_with(&prefix) {
        return Err(Error::NoSuchKey);
    }
    if !head_only {
        state
            .control
            .audit(&AuditEntry {
                id: crate::id::random_hex(12),
                at_ms: crate::clock::now_ms(),
                tenant_id: f.tenant_id.clone(),
                actor: "download-link".into(),
                action: "download".into(),
                file_id: Some(f.id.clone()),
                detail: format!("version={}", key.rsplit('/').next().unwrap_or("")),
            })
            .await?;
    }
    Ok(())
}
