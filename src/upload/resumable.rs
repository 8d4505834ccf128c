//! Resumable uploads, protocol-neutral: the tus front end (and the IETF draft on the same
//! resources) translate their requests into these calls.
//!
//! - **Create**: a record (creator, length or deferred, declared type, metadata, pinned hash,
//!   concatenation) and an empty multipart upload with the same id that holds the bytes. The
//!   upload belongs to its creator; to any other principal it does not exist.
//! - **Append**: under a lease in the database (one append at a time, across replicas), the
//!   body streams through the ingest pipe into a new part: the bytes counted against the
//!   declared length (and the bucket limit, atomically with the other parts), the first bytes
//!   type-checked, a chunk checksum verified if one was sent. The offset is the sum of the
//!   stored parts; an append that fails stores nothing and leaves the offset where it was.
//! - **Complete**: when the last byte arrived, the parts are assembled into a fresh object
//!   (full SHA-256, checked against a pinned hash) and committed through an upload link, in the
//!   same transaction as every single-use link (object, file record, token, quota, event). If
//!   that fails, the last append's bytes stay stored and the next offset query completes the
//!   upload before it answers ([`settle`]).
//! - **Concatenate**: a final upload is the concatenation of completed partial uploads of the
//!   same creator; it completes at creation.
//! - **Terminate / expire**: the parts are freed; the record answers "gone" until it expires.

use std::sync::Arc;

use crate::auth::principal::{Principal, Via};
use crate::error::{Error, Result};
use crate::ingest;
use crate::ingest::checksum::ChecksumAlgorithm;
use crate::metadata::control::{FileRecord, FileStatus, LinkStatus, UploadLink};
use crate::metadata::resumable::{Concat, ResumableStatus, ResumableUpload};
use crate::metadata::{MultipartUpload, PartRecord};
use crate::state::AppState;

use super::multipart::{
    Assembly, PartRef, all_parts, assemble_and_commit, discard_blob, store_part,
};

/// The owner recorded on a resumable upload's multipart upload: no S3 principal is called
/// this, so the S3 plane can never address it.
pub fn parts_owner(id: &str) -> String {
    format!("resumable:{id}")
}

/// The key a principal's resumable uploads are recorded under (see
/// [`super::admit::principal_key`]): the only principal that may use the upload.
pub fn creator_of(who: &Principal) -> Result<String> {
    match &who.via {
        Via::Admin => Err(Error::AccessDenied("The admin token cannot upload.")),
        Via::Token(_) | Via::ApiKey(_) | Via::Jwt(_) | Via::User(_) => {
            Ok(super::admit::principal_key(who))
        }
    }
}

/// What a new resumable upload declares.
#[derive(Debug, Clone)]
pub struct NewResumable {
    /// Total length; `None` to defer it.
    pub length: Option<u64>,
    /// Declared content type (as sent; normalised here).
    pub content_type: Option<String>,
    /// Display name (sanitised by the caller).
    pub filename: String,
    /// The protocol's metadata, as the client sent it (echoed back verbatim).
    pub metadata: String,
    /// Hex SHA-256 the whole upload must have.
    pub sha256: Option<String>,
    pub concat: Concat,
}

/// The upload `id` as `who` may see it: NotFound for an unknown id or another principal's
/// upload (the same answer), Gone for a terminated one.
pub async fn get(state: &AppState, who: &Principal, id: &str) -> Result<ResumableUpload> {
    let creator = creator_of(who)?;
    let u = state.meta.resumable(id).await?.ok_or(Error::NotFound)?;
    if u.creator != creator || u.tenant_id != who.tenant_id {
        return Err(Error::NotFound);
    }
    if u.status == ResumableStatus::Terminated || expired(state, &u) {
        return Err(Error::Gone);
    }
    Ok(u)
}

/// When the upload expires (ms): its creation plus `api.resumable_expiry_secs`.
pub fn expires_at_ms(state: &AppState, u: &ResumableUpload) -> i64 {
    u.created_at_ms.saturating_add(lifetime_ms(state))
}

/// How long a resumable upload may take, in milliseconds (`api.resumable_expiry_secs`).
fn lifetime_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.api.resumable_expiry_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn expired(state: &AppState, u: &ResumableUpload) -> bool {
    u.status == ResumableStatus::Uploading && expires_at_ms(state, u) < crate::clock::now_ms()
}

/// Creates a resumable upload for `who` in the control API's bucket. `link`, when given, is a
/// link minted for this upload (pinning size, type and hash); otherwise one is recorded when
/// the upload completes.
pub async fn create(
    state: &Arc<AppState>,
    who: &Principal,
    new: NewResumable,
    link: Option<&UploadLink>,
) -> Result<ResumableUpload> {
    let creator = creator_of(who)?;
    // Each unfinished upload holds parts and a record until it expires: bounded per principal.
    if state.meta.unfinished_resumable(&creator).await?
        >= u64::from(state.config.api.max_unfinished_resumable)
    {
        return Err(Error::AccessDenied(
            "Too many unfinished resumable uploads; finish or terminate one first.",
        ));
    }
    let bucket = state.config.api.bucket.clone();
    let bcfg = state.bucket(&bucket)?;
    let declared_type = match new.content_type.as_deref() {
        None => None,
        Some(ct) if crate::mime::is_generic(ct) => None,
        Some(ct) => Some(super::declared_type_for(bcfg, ct)?),
    };
    let mut length = new.length;
    let mut partials = Vec::new();
    if let Concat::Final(ids) = &new.concat {
        if ids.is_empty() {
            return Err(Error::InvalidArgument(
                "A final upload names its partial uploads.",
            ));
        }
        let mut total = 0u64;
        for pid in ids {
            let p = state.meta.resumable(pid).await?.ok_or(Error::NotFound)?;
            if p.creator != creator || p.tenant_id != who.tenant_id {
                return Err(Error::NotFound);
            }
            if p.concat != Concat::Partial || p.status != ResumableStatus::Complete {
                return Err(Error::InvalidArgument(
                    "A final upload concatenates completed partial uploads only.",
                ));
            }
            total = total.saturating_add(p.length.unwrap_or(0));
            partials.push(p);
        }
        length = Some(total);
    }
    if let Some(n) = length {
        if n > bcfg.max_object_bytes {
            return Err(Error::EntityTooLarge);
        }
        if n == 0 && new.concat != Concat::Partial {
            return Err(Error::InvalidArgument(
                "An upload carries at least one byte.",
            ));
        }
    }
    if new.concat != Concat::Partial {
        super::admit::token_allows(who, declared_type.as_deref(), length)?;
    }
    // With the type declared, the name is checked now (a refusal under the `reject` policy
    // comes before any byte is sent).
    let filename = match &declared_type {
        Some(t) => {
            super::names::file_name(bcfg, state.config.api.filename_extension, &new.filename, t)?
        }
        None => super::names::sanitize_filename(&new.filename),
    };
    if let Some(l) = link
        && (Some(u64::try_from(l.size).unwrap_or(0)) != length
            || declared_type
                .as_deref()
                .is_some_and(|t| t != l.content_type))
    {
        return Err(Error::InvalidArgument(
            "The upload does not match the link it was minted for.",
        ));
    }
    let id = crate::id::random_hex(16);
    let key = match link {
        Some(l) => l.key.clone(),
        None => format!(
            "{}/{}/{}",
            who.tenant_id,
            crate::id::random_hex(16),
            crate::id::random_hex(16)
        ),
    };
    let now = crate::clock::now_ms();
    let upload = ResumableUpload {
        id: id.clone(),
        tenant_id: who.tenant_id.clone(),
        creator,
        owner: who.subject.clone(),
        bucket: bucket.clone(),
        key: key.clone(),
        link_id: link.map(|l| l.id.clone()),
        token_id: match &who.via {
            Via::Token(t) => Some(t.id.clone()),
            _ => None,
        },
        length,
        declared_type: declared_type
            .clone()
            .or_else(|| link.map(|l| l.content_type.clone())),
        filename,
        metadata: new.metadata,
        sha256: new.sha256.or_else(|| link.and_then(|l| l.sha256.clone())),
        concat: new.concat,
        status: ResumableStatus::Uploading,
        locked_until_ms: 0,
        created_at_ms: now,
        updated_at_ms: now,
    };
    state
        .meta
        .create_multipart(&MultipartUpload {
            upload_id: id.clone(),
            bucket,
            key,
            owner: parts_owner(&id),
            content_type: upload.declared_type.clone(),
            checksum_algorithm: None,
            checksum_type: None,
            created_at_ms: now,
            last_activity_ms: now,
            headers: Default::default(),
            completed_etag: None,
            tags: Default::default(),
        })
        .await?;
    state.meta.create_resumable(&upload).await?;
    if !partials.is_empty() {
        let mut parts = Vec::new();
        for p in &partials {
            parts.extend(all_parts(state, &p.id).await?);
        }
        complete(state, &upload, who, &parts, std::time::Instant::now()).await?;
        // The partials' bytes are in the object now; their records go with the final's.
        for p in &partials {
            free_parts(state, &p.id, &p.bucket).await?;
        }
        return state.meta.resumable(&id).await?.ok_or(Error::NotFound);
    }
    Ok(upload)
}

/// How many bytes of `u` are stored.
pub async fn offset(state: &AppState, u: &ResumableUpload) -> Result<u64> {
    if let Concat::Final(_) = u.concat {
        // A final upload exists only once it is complete (it completes at creation).
        return Ok(u.length.unwrap_or(0));
    }
    if u.status == ResumableStatus::Complete && u.concat == Concat::None {
        return Ok(u.length.unwrap_or(0));
    }
    Ok(all_parts(state, &u.id).await?.iter().map(|p| p.size).sum())
}

/// `u` and its offset as an offset query should report them. A client takes "every byte
/// stored" for "done", so an upload whose last byte arrived but whose completion failed (the
/// backend or the database away when the last append finished, the replica killed mid-commit)
/// is completed here first; until that succeeds the query fails (503, or 423 while another
/// request holds the upload), and never reports an uncommitted upload as whole.
pub async fn settle(
    state: &Arc<AppState>,
    who: &Principal,
    u: &ResumableUpload,
) -> Result<(ResumableUpload, u64)> {
    let stored = offset(state, u).await?;
    let unfinished = u.status == ResumableStatus::Uploading
        && !matches!(u.concat, Concat::Final(_))
        && u.length == Some(stored);
    if !unfinished {
        return Ok((u.clone(), stored));
    }
    let empty = Append {
        offset: stored,
        length: None,
        content_length: Some(0),
        checksum: None,
        md5: None,
        last: false,
        frames: futures_util::stream::empty(),
    };
    match append(state, who, u, empty, std::time::Instant::now()).await {
        Ok(done) => Ok((done.upload, done.offset)),
        // Completed meanwhile by another request.
        Err(Error::UploadComplete) => {
            let fresh = state.meta.resumable(&u.id).await?.ok_or(Error::Gone)?;
            let n = offset(state, &fresh).await?;
            Ok((fresh, n))
        }
        Err(e) => Err(e),
    }
}

/// One append: where it starts, what it declares, and its bytes.
pub struct Append<S> {
    /// The offset the client says it appends at.
    pub offset: u64,
    /// A length declared now (deferred uploads).
    pub length: Option<u64>,
    /// The body's declared length, when known (refused early if it cannot fit).
    pub content_length: Option<u64>,
    /// A checksum of this body (`Upload-Checksum`).
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
    /// An MD5 of this body (`Upload-Checksum: md5 …`).
    pub md5: Option<[u8; 16]>,
    /// This body is the last: the upload's length is its offset after it (the IETF draft's
    /// `Upload-Complete: ?1`).
    pub last: bool,
    pub frames: S,
}

/// What an append achieved.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The upload's offset after it.
    pub offset: u64,
    /// The upload after it (length set, completed).
    pub upload: ResumableUpload,
}

/// Gives the append lease back if an append ends early (client gone, shutdown).
struct Lease {
    state: Arc<AppState>,
    id: Option<String>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let state = Arc::clone(&self.state);
            self.state.cleanup.spawn(async move {
                if let Err(e) = state
                    .meta
                    .unlock_resumable(&id, crate::clock::now_ms())
                    .await
                {
                    tracing::warn!(error = %e, "releasing an upload lease failed; it expires");
                }
            });
        }
    }
}

/// Appends a body to `u` (see the module docs); completes the upload when its last byte
/// arrived.
pub async fn append<S>(
    state: &Arc<AppState>,
    who: &Principal,
    u: &ResumableUpload,
    a: Append<S>,
    started: std::time::Instant,
) -> Result<Appended>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
{
    if let Concat::Final(_) = u.concat {
        return Err(Error::AccessDenied("A final upload cannot be appended to."));
    }
    if u.status == ResumableStatus::Complete {
        return Err(Error::UploadComplete);
    }
    let bcfg = state.bucket(&u.bucket)?;
    // As long as an upload of the largest object may take; a dead holder's lease runs out.
    let lease_ms = i64::try_from(state.config.upload_deadline_secs(bcfg).saturating_mul(1000))
        .unwrap_or(i64::MAX);
    let now = crate::clock::now_ms();
    if !state
        .meta
        .lock_resumable(&u.id, now, now.saturating_add(lease_ms))
        .await?
    {
        let fresh = state.meta.resumable(&u.id).await?.ok_or(Error::Gone)?;
        return Err(match fresh.status {
            ResumableStatus::Uploading => Error::UploadLocked,
            ResumableStatus::Complete => Error::UploadComplete,
            ResumableStatus::Terminated => Error::Gone,
        });
    }
    let mut lease = Lease {
        state: Arc::clone(state),
        id: Some(u.id.clone()),
    };
    let result = append_locked(state, who, u, a, started).await;
    lease.id = None;
    if let Ok(done) = &result
        && done.upload.status != ResumableStatus::Uploading
    {
        return result; // Finishing released the lease.
    }
    state
        .meta
        .unlock_resumable(&u.id, crate::clock::now_ms())
        .await?;
    result
}

async fn append_locked<S>(
    state: &Arc<AppState>,
    who: &Principal,
    u: &ResumableUpload,
    a: Append<S>,
    started: std::time::Instant,
) -> Result<Appended>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
{
    let bcfg = state.bucket(&u.bucket)?;
    let mut upload = u.clone();
    let mut parts = all_parts(state, &u.id).await?;
    let current: u64 = parts.iter().map(|p| p.size).sum();
    if a.offset != current {
        return Err(Error::OffsetMismatch {
            expected: current,
            provided: a.offset,
        });
    }
    if let Some(n) = a.length {
        match upload.length {
            Some(l) if l != n => return Err(Error::InconsistentLength),
            Some(_) => {}
            None => {
                if n > bcfg.max_object_bytes {
                    return Err(Error::EntityTooLarge);
                }
                if n < current {
                    return Err(Error::InconsistentLength);
                }
                if upload.concat != Concat::Partial {
                    super::admit::token_allows(who, None, Some(n))?;
                }
                state
                    .meta
                    .set_resumable_length(&u.id, n, crate::clock::now_ms())
                    .await?;
                upload.length = Some(n);
            }
        }
    }
    // A deferred length is bounded by what the uploader may store in one file.
    let total_max = upload
        .length
        .unwrap_or_else(|| super::admit::file_limit(who, bcfg.max_object_bytes));
    let remaining = total_max.saturating_sub(current);
    if a.content_length.is_some_and(|n| n > remaining) {
        return Err(Error::EntityTooLarge);
    }
    let empty = a.content_length == Some(0);
    let mut offset = current;
    if !empty && remaining > 0 {
        // The first bytes of a plain upload are the object's: type-checked as they arrive. A
        // partial upload's may be mid-file; the final upload checks its first partial's.
        let first = current == 0 && upload.concat == Concat::None;
        let mut exp = super::expectations(bcfg, upload.declared_type.clone());
        exp.max_bytes = remaining;
        // (An opaque bucket checks no type at all.)
        exp.enforce_type = first && bcfg.types == crate::config::TypesMode::Checked;
        // An append is a piece of the object: its content and its size are checked whole,
        // when assembled.
        exp.checks = None;
        exp.min_bytes = 0;
        exp.checksum = a.checksum;
        exp.md5 = a.md5;
        let pipe = ingest::Pipe::new(exp)?;
        let multipart = state.meta.multipart(&u.id).await?.ok_or(Error::Gone)?;
        let _permit = super::admit::upload_permit(state, &upload.creator).await?;
        let number = u32::try_from(parts.len() + 1)
            .map_err(|_| Error::InvalidArgument("Too many appends."))?;
        let stored = store_part(state, &multipart, number, a.frames, None, pipe, total_max).await?;
        offset += stored.ingested.size;
        parts = all_parts(state, &u.id).await?;
    }
    if a.last {
        match upload.length {
            Some(n) if n != offset => return Err(Error::InconsistentLength),
            Some(_) => {}
            None => {
                if upload.concat != Concat::Partial {
                    super::admit::token_allows(who, None, Some(offset))?;
                }
                state
                    .meta
                    .set_resumable_length(&u.id, offset, crate::clock::now_ms())
                    .await?;
                upload.length = Some(offset);
            }
        }
    }
    if upload.length == Some(offset) {
        complete(state, &upload, who, &parts, started).await?;
        upload = state.meta.resumable(&u.id).await?.ok_or(Error::Gone)?;
    }
    Ok(Appended { offset, upload })
}

/// Completes `u` whose bytes are `parts`: a partial upload is only marked complete; anything
/// else is assembled and committed through its link (recorded now if none was minted).
async fn complete(
    state: &Arc<AppState>,
    u: &ResumableUpload,
    who: &Principal,
    parts: &[PartRecord],
    started: std::time::Instant,
) -> Result<()> {
    let now = crate::clock::now_ms();
    if u.concat == Concat::Partial {
        state
            .meta
            .finish_resumable(&u.id, ResumableStatus::Complete, None, now)
            .await?;
        return Ok(());
    }
    let bcfg = state.bucket(&u.bucket)?;
    let first_type = if bcfg.types == crate::config::TypesMode::Any {
        // Opaque data: stored as declared (the content checks still follow the bytes).
        super::opaque_type(u.declared_type.as_deref())
    } else {
        // The object's first bytes are the first part's.
        let sniffed = parts
            .first()
            .and_then(|p| p.detected_type.clone())
            .ok_or(Error::ContentTypeMismatch)?;
        match &u.declared_type {
            Some(declared) if *declared != sniffed => return Err(Error::ContentTypeMismatch),
            None if !bcfg.allowed_types.contains(&sniffed) => {
                return Err(Error::ContentTypeNotAllowed);
            }
            _ => {}
        }
        sniffed
    };
    let total: u64 = parts.iter().map(|p| p.size).sum();
    super::admit::token_allows(who, Some(&first_type), Some(total))?;
    let link = match &u.link_id {
        Some(id) => claim_minted(state, id).await?,
        None => record_link(state, u, &first_type).await?,
    };
    let chosen: Vec<&PartRecord> = parts.iter().collect();
    let outcome = assemble_and_commit(
        state,
        Assembly {
            bucket: &u.bucket,
            key: &u.key,
            owner: &link.owner,
            parts: &chosen,
            content_type: first_type,
            tenant: Some(&u.tenant_id),
            link: Some(&link),
            headers: Default::default(),
            tags: Default::default(),
            condition: None,
            checksum: None,
        },
        started,
    )
    .await;
    if let Err(e) = outcome {
        super::link::release_after_failure(state, &link, &e).await?;
        return Err(e);
    }
    state
        .meta
        .finish_resumable(&u.id, ResumableStatus::Complete, Some(&link.id), now)
        .await?;
    // The object holds the bytes now; the parts go (or the sweeper takes them).
    free_parts(state, &u.id, &u.bucket).await
}

/// Claims the link a resumable upload commits through (a concurrent completion: 423, which tus
/// clients retry).
async fn claim_minted(state: &AppState, link_id: &str) -> Result<UploadLink> {
    super::link::claim_for_completion(state, link_id)
        .await
        .map_err(|e| match e {
            Error::LinkInUse => Error::UploadLocked,
            other => other,
        })
}

/// Records the file and the link a resumable upload without a minted link completes through,
/// and claims the link: from here the commit is the one every link upload makes.
async fn record_link(
    state: &AppState,
    u: &ResumableUpload,
    content_type: &str,
) -> Result<UploadLink> {
    let now = crate::clock::now_ms();
    let file_id = u
        .key
        .split('/')
        .nth(1)
        .ok_or(Error::internal("resumable key without a file id"))?
        .to_string();
    let mut metadata = std::collections::BTreeMap::new();
    let mut file_ttl = None;
    if let Some(token_id) = &u.token_id
        && let Some(t) = state.control.token(token_id).await?
    {
        // Uploads through a token are tagged with the client id it was issued for.
        metadata.insert("client_id".to_string(), t.client_id);
        file_ttl = t.file_ttl_secs;
    }
    let size = i64::try_from(u.length.unwrap_or(0)).map_err(|_| Error::EntityTooLarge)?;
    // A completion retried after a failed one reuses the file recorded then.
    if state.control.file(&file_id).await?.is_none() {
        state
            .control
            .insert_file(&FileRecord {
                id: file_id.clone(),
                tenant_id: u.tenant_id.clone(),
                owner: u.owner.clone(),
                bucket: u.bucket.clone(),
                // The type is known now: the name gets an extension that agrees with it.
                filename: super::names::file_name(
                    state.bucket(&u.bucket)?,
                    crate::config::ExtensionPolicy::Fix,
                    &u.filename,
                    content_type,
                )?,
                metadata: serde_json::to_string(&metadata).map_err(Error::internal)?,
                status: FileStatus::Pending,
                current_key: None,
                content_type: None,
                size: None,
                sha256: None,
                versions: 0,
                created_at_ms: now,
                updated_at_ms: now,
                scan: None,
                expires_at_ms: super::file_expiry(state.bucket(&u.bucket)?, file_ttl, now),
                legal_hold: false,
            })
            .await?;
    }
    let link = UploadLink {
        id: crate::id::random_hex(16),
        tenant_id: u.tenant_id.clone(),
        owner: u.owner.clone(),
        file_id,
        bucket: u.bucket.clone(),
        key: u.key.clone(),
        size,
        content_type: content_type.to_string(),
        sha256: u.sha256.clone(),
        token_id: u.token_id.clone(),
        status: LinkStatus::Pending,
        expires_at_ms: now.saturating_add(state.lease_ms()),
        claimed_until_ms: None,
        created_at_ms: now,
        completed_at_ms: None,
    };
    state.control.insert_link(&link).await?;
    claim_minted(state, &link.id).await
}

/// Frees the bytes of resumable upload `id` (its multipart upload and parts).
async fn free_parts(state: &AppState, id: &str, bucket: &str) -> Result<()> {
    let parts = all_parts(state, id).await?;
    state
        .meta
        .remove_multipart(id, crate::clock::now_ms())
        .await?;
    for p in &parts {
        discard_blob(state, bucket, &p.blob_id).await;
    }
    Ok(())
}

/// Stores part `number` of `u` when its pieces arrive in any order and in parallel, as S3
/// multipart parts do (Uppy's multipart uploads through the Companion routes): the part
/// replaces an earlier one of the same number; the upload's parts together stay within what
/// `who` may store in one file (checked atomically as each part is recorded); part 1's first
/// bytes are type-checked as they arrive. Returns the part's ETag.
pub async fn put_part<S>(
    state: &Arc<AppState>,
    who: &Principal,
    u: &ResumableUpload,
    number: u32,
    frames: S,
    content_length: Option<u64>,
) -> Result<String>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
{
    if u.concat != Concat::None || u.length.is_some() {
        return Err(Error::AccessDenied(
            "This upload takes its bytes in order (PATCH at an offset).",
        ));
    }
    if u.status != ResumableStatus::Uploading {
        return Err(Error::UploadComplete);
    }
    if number == 0 || number > state.config.s3.max_parts {
        return Err(Error::InvalidArgument("The part number is out of range."));
    }
    let bcfg = state.bucket(&u.bucket)?;
    let budget = super::admit::file_limit(who, bcfg.max_object_bytes);
    if content_length.is_some_and(|n| n > budget) {
        return Err(Error::EntityTooLarge);
    }
    let mut exp = super::expectations(bcfg, u.declared_type.clone());
    exp.max_bytes = budget;
    exp.enforce_type = number == 1 && bcfg.types == crate::config::TypesMode::Checked;
    exp.checks = None;
    exp.min_bytes = 0;
    let pipe = ingest::Pipe::new(exp)?;
    let multipart = state.meta.multipart(&u.id).await?.ok_or(Error::Gone)?;
    let _permit = super::admit::upload_permit(state, &u.creator).await?;
    let stored = store_part(state, &multipart, number, frames, None, pipe, budget).await?;
    Ok(stored.etag)
}

/// Completes `u` from the parts `listed` (ascending numbers, each with the ETag its upload
/// returned): the length becomes their sum and the upload commits like any other — one
/// assembled, checked object through its link, the token charged — or nothing is visible.
pub async fn finish_parts(
    state: &Arc<AppState>,
    who: &Principal,
    u: &ResumableUpload,
    listed: &[PartRef],
    started: std::time::Instant,
) -> Result<()> {
    if u.concat != Concat::None || u.length.is_some() {
        return Err(Error::AccessDenied(
            "This upload takes its bytes in order (PATCH at an offset).",
        ));
    }
    if u.status != ResumableStatus::Uploading {
        return Err(Error::UploadComplete);
    }
    if listed.is_empty()
        || listed
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
    {
        return Err(Error::InvalidPartOrder);
    }
    let now = crate::clock::now_ms();
    if !state
        .meta
        .lock_resumable(&u.id, now, now.saturating_add(state.lease_ms()))
        .await?
    {
        return Err(Error::UploadLocked);
    }
    let mut lease = Lease {
        state: Arc::clone(state),
        id: Some(u.id.clone()),
    };
    let result: Result<()> = async {
        let stored = all_parts(state, &u.id).await?;
        let mut chosen = Vec::with_capacity(listed.len());
        for l in listed {
            let p = stored
                .iter()
                .find(|p| p.part_number == l.part_number)
                .ok_or(Error::InvalidPart)?;
            if p.etag != l.etag.trim_matches('"') {
                return Err(Error::InvalidPart);
            }
            chosen.push(p.clone());
        }
        let total: u64 = chosen.iter().map(|p| p.size).sum();
        if total == 0 {
            return Err(Error::InvalidArgument(
                "An upload carries at least one byte.",
            ));
        }
        let mut upload = u.clone();
        upload.length = Some(total);
        complete(state, &upload, who, &chosen, started).await?;
        // The record states the length the parts came to (it was deferred until now).
        state
            .meta
            .set_resumable_length(&u.id, total, crate::clock::now_ms())
            .await?;
        Ok(())
    }
    .await;
    lease.id = None;
    if result.is_err() {
        // Open again, as it was: the client may retry the completion (or abort).
        state
            .meta
            .unlock_resumable(&u.id, crate::clock::now_ms())
            .await?;
    }
    result
}

/// Terminates `u`: its bytes are freed and it answers Gone from now on. A completed upload's
/// file is not touched (files are deleted through the files API).
pub async fn terminate(state: &AppState, u: &ResumableUpload) -> Result<()> {
    if u.status == ResumableStatus::Uploading {
        state
            .meta
            .finish_resumable(
                &u.id,
                ResumableStatus::Terminated,
                None,
                crate::clock::now_ms(),
            )
            .await?;
        free_parts(state, &u.id, &u.bucket).await?;
    }
    Ok(())
}

/// Removes expired resumable uploads and their bytes, in batches; returns how many.
pub async fn sweep(state: &AppState) -> Result<usize> {
    let ttl = lifetime_ms(state);
    let mut removed = 0;
    loop {
        let before = crate::clock::now_ms().saturating_sub(ttl);
        let due = state.meta.expired_resumable(before, 100).await?;
        if due.is_empty() {
            return Ok(removed);
        }
        for id in &due {
            if let Some(u) = state.meta.resumable(id).await? {
                free_parts(state, id, &u.bucket).await?;
            }
            state.meta.delete_resumable(id).await?;
            removed += 1;
        }
    }
}
