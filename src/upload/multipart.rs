//! Multipart uploads, under the same guarantees as a single upload.
//!
//! - Every part streams through the ingest pipe (limit, SHA-256, per-part checksums) into its own
//!   hidden blob. Before the blob is written it is registered as *loose* (with a lease), so a
//!   process that dies mid-part leaves nothing the sweeper does not find.
//! - The bucket's byte limit applies to the whole object: a part is admitted only if the sizes
//!   of the upload's other parts plus its own stay within it, checked atomically when the part
//!   is recorded (two parts streamed concurrently cannot both squeeze under the budget).
//! - Completion streams the listed parts, in order, into a fresh staged object (computing the
//!   object's SHA-256 on the way, holding one backend read chunk at a time), then commits it
//!   exactly like a single upload. Until that commit nothing is visible at the key; a failed
//!   completion leaves the upload open and nothing behind.

use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ingest::aws_chunked::Decoder;
use crate::ingest::checksum::{self, ChecksumAlgorithm, ChecksumType, MultipartChecksummer};
use crate::ingest::{self, Ingested};
use crate::metadata::control::UploadLink;
use crate::metadata::{
    CommitInfo, MultipartUpload, ObjectHeaders, ObjectTags, PartRecord, WriteCondition,
};
use crate::state::AppState;
use crate::storage::Storage;

use super::put::{after_commit, commit_object, stream_body};

/// A part as the client lists it for completion, whatever the protocol's wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    pub part_number: u32,
    /// The ETag the part's upload returned, without quotes.
    pub etag: String,
    /// `(algorithm name, base64 value)` of each checksum the client lists for the part (for
    /// example `("CRC32", "…")`); each must be the one verified when the part arrived.
    pub checksums: Vec<(String, String)>,
}

/// A part that was stored and admitted within the upload's budget.
#[derive(Debug, Clone)]
pub struct StoredPart {
    pub etag: String,
    pub ingested: Ingested,
    /// `(algorithm name, base64 value)` of the verified client checksum, if one was sent.
    pub checksum: Option<(String, String)>,
}

/// The part ETag: the MD5 when it was computed (Content-MD5 sent, or `etag = "md5"`), else the
/// first half of the SHA-256 — never claimed to be an MD5 when it is not.
fn part_etag(i: &ingest::Ingested) -> String {
    match i.md5 {
        Some(md5) => hex::encode(md5),
        None => hex::encode(&i.sha256[..16]),
    }
}

/// Streams one part of `upload` through `pipe` into a hidden blob and records it, if the
/// upload's total stays within `max_bytes` (checked atomically with the other parts).
pub async fn store_part<S>(
    state: &Arc<AppState>,
    upload: &MultipartUpload,
    part_number: u32,
    frames: S,
    decoder: Option<Decoder>,
    pipe: ingest::Pipe,
    max_bytes: u64,
) -> Result<StoredPart>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
{
    let bucket = upload.bucket.as_str();
    let _inflight = state.metrics.upload_started();
    let blob_id = crate::id::object_id();
    let now = crate::clock::now_ms();
    state
        .meta
        .register_loose_blob(&blob_id, bucket, now.saturating_add(state.lease_ms()))
        .await?;
    let path = Storage::path_for(bucket, &blob_id);
    let mut staging = state.storage.begin_part(&path).await?;
    let ingested = match stream_body(state, frames, decoder, pipe, max_bytes, &mut staging).await {
        Ok(i) => i,
        Err(e) => {
            staging.abort().await;
            let _ = state.meta.forget_loose_blob(&blob_id).await;
            return Err(e);
        }
    };
    staging.commit().await?;
    let etag = part_etag(&ingested);
    let checksum = ingested
        .checksum
        .as_ref()
        .map(|(a, v)| (a.algorithm_name().to_string(), checksum::encode_b64(v)));
    let record = PartRecord {
        part_number,
        blob_id: blob_id.clone(),
        size: ingested.size,
        etag: etag.clone(),
        sha256: hex::encode(ingested.sha256),
        checksum: checksum.clone(),
        detected_type: ingested.content_type.map(str::to_string),
        created_at_ms: crate::clock::now_ms(),
    };
    let admitted = match state
        .meta
        .put_part(
            &upload.upload_id,
            &record,
            max_bytes,
            crate::clock::now_ms(),
        )
        .await
    {
        Ok(a) => a,
        Err(e) => {
            discard_blob(state, bucket, &blob_id).await;
            return Err(e.into());
        }
    };
    if !admitted {
        discard_blob(state, bucket, &blob_id).await;
        return Err(Error::EntityTooLarge);
    }
    Ok(StoredPart {
        etag,
        ingested,
        checksum,
    })
}

/// Ends `upload` without completing it: the record goes and its parts are freed now (or by the
/// sweeper).
pub async fn abort(state: &AppState, upload: &MultipartUpload) -> Result<()> {
    let parts = all_parts(state, &upload.upload_id).await?;
    state
        .meta
        .remove_multipart(&upload.upload_id, crate::clock::now_ms())
        .await?;
    for p in &parts {
        discard_blob(state, &upload.bucket, &p.blob_id).await;
    }
    Ok(())
}

/// Removes a blob nothing points to, now; the loose-blob row lets the sweeper retry.
pub async fn discard_blob(state: &AppState, bucket: &str, blob_id: &str) {
    let path = Storage::path_for(bucket, blob_id);
    if state.storage.delete(&path).await.is_ok() {
        let _ = state.meta.forget_loose_blob(blob_id).await;
    }
}

/// Every stored part of an upload, in order.
pub async fn all_parts(state: &AppState, upload_id: &str) -> Result<Vec<PartRecord>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = state.meta.parts(upload_id, after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = last.part_number;
        out.extend(page);
    }
}

/// Completes `upload` with the `listed` parts: validates the list (order, ETags, checksums,
/// sizes, budget, type of the first bytes), assembles the object, and commits it — through
/// `link` (object, link, file, token, quota and event in one transaction) when the upload was
/// made through a control-API link — if `condition` holds for the key's current version
/// (judged before assembling and again at commit). Returns the object's ETag.
pub async fn complete(
    state: &Arc<AppState>,
    upload: &MultipartUpload,
    listed: &[PartRef],
    tenant: Option<&str>,
    link: Option<&UploadLink>,
    condition: Option<WriteCondition>,
    started: std::time::Instant,
) -> Result<String> {
    if upload.completed_etag.is_some() {
        return Err(Error::NoSuchUpload);
    }
    let bucket = upload.bucket.as_str();
    let key = upload.key.as_str();
    let bcfg = state.bucket(bucket)?;
    super::put::precheck(state, bucket, key, condition.as_ref()).await?;
    let stored = all_parts(state, &upload.upload_id).await?;

    // Validate the list against what was stored, in S3's order of checks.
    let mut chosen: Vec<&PartRecord> = Vec::with_capacity(listed.len());
    let mut previous = 0;
    for l in listed {
        if l.part_number <= previous {
            return Err(Error::InvalidPartOrder);
        }
        previous = l.part_number;
        let p = stored
            .iter()
            .find(|p| p.part_number == l.part_number)
            .ok_or(Error::InvalidPart)?;
        if l.etag.trim_matches('"') != p.etag {
            return Err(Error::InvalidPart);
        }
        // A checksum listed for a part must be the one verified when the part arrived.
        for (alg_name, value) in &l.checksums {
            match &p.checksum {
                Some((alg, v)) if alg == alg_name && v == value => {}
                _ => return Err(Error::InvalidPart),
            }
        }
        chosen.push(p);
    }
    let min = state.config.s3.min_part_bytes;
    if let Some((_, init)) = chosen.split_last()
        && init.iter().any(|p| p.size < min)
    {
        return Err(Error::EntityTooSmall);
    }
    let total: u64 = chosen.iter().map(|p| p.size).sum();
    if total > bcfg.max_object_bytes {
        return Err(Error::EntityTooLarge);
    }
    // The object's first bytes are the first listed part's (an opaque bucket stores the
    // declared type unchecked).
    let first_type = if bcfg.types == crate::config::TypesMode::Any {
        upload
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_string())
    } else {
        let sniffed = chosen
            .first()
            .and_then(|p| p.detected_type.clone())
            .ok_or(Error::ContentTypeMismatch)?;
        match &upload.content_type {
            Some(declared) if *declared != sniffed => return Err(Error::ContentTypeMismatch),
            None if !bcfg.allowed_types.contains(&sniffed) => {
                return Err(Error::ContentTypeNotAllowed);
            }
            _ => {}
        }
        sniffed
    };

    let etag = assemble_and_commit(
        state,
        Assembly {
            bucket,
            key,
            owner: &upload.owner,
            parts: &chosen,
            content_type: first_type,
            tenant,
            link,
            headers: upload.headers.clone(),
            tags: upload.tags.clone(),
            condition,
            checksum: checksum_of(upload),
        },
        started,
    )
    .await?;
    // The upload is done: its parts become loose blobs, removed now (or by the sweeper); its
    // row remembers the result for a retried completion.
    state
        .meta
        .finish_multipart(&upload.upload_id, &etag, crate::clock::now_ms())
        .await?;
    for p in &stored {
        discard_blob(state, bucket, &p.blob_id).await;
    }
    Ok(etag)
}

/// What [`assemble_and_commit`] makes an object of.
pub struct Assembly<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub owner: &'a str,
    /// The parts, in object order.
    pub parts: &'a [&'a PartRecord],
    /// The object's type: what its first bytes were checked to be.
    pub content_type: String,
    /// The tenant whose quota the object counts against.
    pub tenant: Option<&'a str>,
    /// The link the object completes (the size and any pinned SHA-256 are checked).
    pub link: Option<&'a UploadLink>,
    /// Headers stored with the object.
    pub headers: ObjectHeaders,
    /// The object's tags.
    pub tags: ObjectTags,
    /// A conditional write's condition, judged at commit.
    pub condition: Option<WriteCondition>,
    /// The checksum the object gets (computed while assembling), and how it covers it.
    pub checksum: Option<(ChecksumAlgorithm, ChecksumType)>,
}

/// The checksum a multipart upload announced (`x-amz-checksum-algorithm`, `-type`), if any; an
/// upload recorded without a type gets the algorithm's default.
pub fn checksum_of(upload: &MultipartUpload) -> Option<(ChecksumAlgorithm, ChecksumType)> {
    let alg = ChecksumAlgorithm::from_algorithm_name(upload.checksum_algorithm.as_deref()?)?;
    let kind = upload
        .checksum_type
        .as_deref()
        .and_then(ChecksumType::parse)
        .unwrap_or_else(|| ChecksumType::default_for(alg));
    Some((alg, kind))
}

/// Streams `a.parts` into a fresh, invisible object (computing its SHA-256), checks it against
/// the link, and commits it like a single upload. Returns the object's ETag (a digest of the
/// part digests, `-N`, the multipart convention). The parts themselves are the caller's to
/// free. On failure nothing is visible and the assembled bytes are gone.
pub async fn assemble_and_commit(
    state: &Arc<AppState>,
    a: Assembly<'_>,
    started: std::time::Instant,
) -> Result<String> {
    let Assembly {
        bucket,
        key,
        owner,
        parts: chosen,
        content_type,
        tenant,
        link,
        headers,
        tags,
        condition,
        checksum,
    } = a;
    let total: u64 = chosen.iter().map(|p| p.size).sum();
    if let Some(link) = link
        && total != u64::try_from(link.size).unwrap_or(0)
    {
        return Err(Error::IncompleteBody);
    }
    let bcfg = state.bucket(bucket)?;
    if total < bcfg.min_object_bytes {
        return Err(Error::EntityTooSmall);
    }
    // Assemble into a fresh, invisible object; commit like a PUT.
    let quota = match tenant {
        Some(t) => Some(super::quota::quota_for(state, t).await?),
        None => None,
    };
    let id = super::put::insert_pending(state, bucket, key, owner, tenant).await?;
    let path = Storage::path_for(bucket, &id);
    // The content checks follow what the first bytes are (in an opaque bucket the stored type
    // is only what the client declared).
    let inspect_as = chosen
        .first()
        .and_then(|p| p.detected_type.clone())
        .unwrap_or_else(|| content_type.clone());
    let inspector = crate::scan::Inspector::for_object(&crate::scan::Policy::of(bcfg), &inspect_as);
    let assembled = assemble(state, bucket, &path, chosen, inspector, checksum).await;
    let refused = super::verdict::Refused {
        bucket,
        key,
        owner,
        id: &id,
    };
    let (sha256, passed, object_checksum) = match assembled {
        Ok((sha, size, passed, sum)) if size == total => (sha, passed, sum),
        Ok(_) => {
            super::put::abandon(state, &id, &path).await;
            return Err(Error::internal(
                "assembled size differs from the parts' sizes",
            ));
        }
        Err(e) => {
            // A content check's refusal comes with the assembled bytes published (to be
            // quarantined or removed); any other failure left a staged write at most.
            if matches!(e, Error::ContentRejected(_)) {
                super::verdict::dispose(state, &refused, &path, &e).await;
            } else {
                let _ = state.storage.remove_staging(&path).await;
            }
            let _ = state.meta.discard_pending(&id).await;
            super::verdict::count_refusal(state, &e);
            return Err(e);
        }
    };
    // A SHA-256 pinned by the link is of the bytes as uploaded.
    if let Some(link) = link
        && let Some(want) = &link.sha256
        && *want != hex::encode(sha256)
    {
        super::put::abandon(state, &id, &path).await;
        return Err(Error::ContentSha256Mismatch);
    }
    let typed = bcfg.types != crate::config::TypesMode::Any;
    let finalized = match super::verdict::finalize(state, bcfg, &path, passed.as_ref(), typed).await
    {
        Ok(f) => f,
        Err(e) => {
            super::verdict::dispose(state, &refused, &path, &e).await;
            let _ = state.meta.discard_pending(&id).await;
            super::verdict::count_refusal(state, &e);
            return Err(e);
        }
    };
    // Multipart ETag convention: a digest of the part digests, "-N".
    let mut of_parts = Sha256::new();
    for p in chosen {
        of_parts.update(hex::decode(&p.sha256).unwrap_or_default());
    }
    let etag = format!(
        "{}-{}",
        hex::encode(&of_parts.finalize()[..16]),
        chosen.len()
    );
    // Bytes a content check rewrote no longer split at the parts' sizes, nor have the
    // checksum of the bytes uploaded.
    let (size, sha256, part_sizes, object_checksum) = match finalized.stored {
        Some(s) => (s.size, s.sha256, Vec::new(), None),
        None => (
            total,
            sha256,
            chosen.iter().map(|p| p.size).collect(),
            checksum.map(|(alg, _)| alg).zip(object_checksum),
        ),
    };
    let info = CommitInfo {
        size,
        sha256: hex::encode(sha256),
        etag: etag.clone(),
        content_type,
        checksum: object_checksum.map(|(alg, v)| (alg.header_name().to_string(), v)),
        committed_at_ms: crate::clock::now_ms(),
        quota: quota.clone(),
        scan: Some(finalized.verdict.to_json()),
        headers,
        tags,
        condition,
        part_sizes,
        storage_class: state.storage.storage_class(bucket).to_string(),
    };
    let retired = commit_object(state, &id, &path, &info, link).await?;
    after_commit(state, bucket, retired, &info, started).await;
    Ok(etag)
}

/// What [`assemble`] wrote: its SHA-256 and size, the content check that passed, and the
/// checksum asked for (S3's form: base64, `-N` when composite).
type Assembled = ([u8; 32], u64, Option<crate::scan::Passed>, Option<String>);

/// Streams the parts, in order, into a staged object at `path` and publishes it, computing
/// `checksum` on the way.
async fn assemble(
    state: &AppState,
    bucket: &str,
    path: &object_store::path::Path,
    parts: &[&PartRecord],
    mut inspector: Option<crate::scan::Inspector>,
    checksum: Option<(ChecksumAlgorithm, ChecksumType)>,
) -> Result<Assembled> {
    let mut staging = state.storage.begin(path).await?;
    let mut summer = checksum.map(|(alg, kind)| MultipartChecksummer::new(alg, kind));
    let mut sha = Sha256::new();
    let mut size = 0u64;
    for p in parts {
        let mut part_sha = Sha256::new();
        let mut body = state
            .storage
            .get(&Storage::path_for(bucket, &p.blob_id), None)
            .await?
            .stream;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            sha.update(&chunk);
            part_sha.update(&chunk);
            if let Some(s) = &mut summer {
                s.update(&chunk);
            }
            if let Some(i) = &mut inspector {
                i.push(&chunk);
            }
            size += chunk.len() as u64;
            staging.write(chunk).await?;
        }
        if let Some(s) = &mut summer {
            s.end_part();
        }
        // The stored bytes must still be the ones that were verified on upload.
        if hex::encode(part_sha.finalize()) != p.sha256 {
            staging.abort().await;
            return Err(Error::internal(
                "a stored part changed since it was uploaded",
            ));
        }
    }
    // The whole object's content check, before anything is published.
    // Published before the verdict: a refused object's bytes are the caller's to quarantine
    // or remove (nothing points to them).
    staging.commit().await?;
    match inspector.map(crate::scan::Inspector::finish) {
        Some(Err(refusal)) => Err(Error::ContentRejected(refusal.reason)),
        passed => Ok((
            sha.finalize().into(),
            size,
            passed.and_then(Result::ok),
            summer.map(MultipartChecksummer::finalize),
        )),
    }
}
