//! S3 multipart uploads, under the same guarantees as a single PUT.
//!
//! - Every part streams through the ingest pipe (limit, SHA-256, per-part checksums) into its own
//!   hidden blob. Before the blob is written it is registered as *loose* (with a lease), so a
//!   process that dies mid-part leaves nothing the sweeper does not find.
//! - The bucket's byte limit applies to the whole object: a part is admitted only if the sizes
//!   of the upload's other parts plus its own stay within it, checked atomically when the part
//!   is recorded (two parts streamed concurrently cannot both squeeze under the budget).
//! - Part 1 is type-checked on arrival (its first bytes are the object's); at completion the
//!   first listed part's type is checked again, whatever its number.
//! - Completion streams the listed parts, in order, into a fresh staged object (computing the
//!   object's SHA-256 on the way, holding one backend read chunk at a time), then commits it
//!   exactly like a PUT. Until that commit nothing is visible at the key; a failed completion
//!   leaves the upload open and nothing behind.
//! - Only the principal that created an upload can use it; to anyone else it does not exist.

use std::sync::Arc;

use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::object::{BodyPlan, declared_type, plan_body, stream_body};
use super::xml::{self, ListPartsResult, ListUploadsResult, PartEntry, UploadEntry};
use super::{Body, Ctx, header_str, status_response, xml_response};
use crate::app::AppState;
use crate::config::{BucketConfig, EtagMode};
use crate::error::{Error, Result};
use crate::ingest::checksum::{self, ChecksumAlgorithm};
use crate::ingest::{self, Expectations};
use crate::metadata::control::LinkStatus;
use crate::metadata::{CommitInfo, MultipartUpload, NewPending, PartRecord};
use crate::storage::Storage;

fn bucket_config<'a>(state: &'a AppState, bucket: &str) -> Result<&'a BucketConfig> {
    state.config.bucket(bucket).ok_or(Error::NoSuchBucket)
}

/// The upload, if it exists at this bucket/key and belongs to the caller.
async fn owned_upload(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<MultipartUpload> {
    // Parts of a multipart upload link are signed by a link key and name their link; such an
    // upload belongs to `link:<id>` and only while the link is still open.
    let owner = if crate::api::links::is_link_key(ctx.verified.access_key_id()) {
        let link_id = ctx
            .query
            .get(crate::api::links::UPLOAD_PARAM)?
            .ok_or(Error::NoSuchUpload)?;
        let link = ctx
            .state
            .control
            .link(link_id)
            .await?
            .ok_or(Error::NoSuchUpload)?;
        if link.status != LinkStatus::Pending || link.expires_at_ms < crate::clock::now_ms() {
            return Err(Error::AccessDenied("This upload link is no longer valid."));
        }
        format!("link:{link_id}")
    } else {
        ctx.verified.access_key_id().to_string()
    };
    match ctx.state.meta.multipart(upload_id).await? {
        Some(u) if u.bucket == bucket && u.key == key && u.owner == owner => Ok(u),
        _ => Err(Error::NoSuchUpload),
    }
}

fn lease_ms(state: &AppState) -> i64 {
    i64::try_from(
        state
            .config
            .metadata
            .pending_lease_secs
            .saturating_mul(1000),
    )
    .unwrap_or(i64::MAX)
}

/// CreateMultipartUpload.
pub async fn create(ctx: &Ctx, bucket: &str, key: &str) -> Result<Response<Body>> {
    let bcfg = bucket_config(&ctx.state, bucket)?;
    let h = &ctx.parts.headers;
    let content_type = declared_type(h)?;
    if let Some(t) = &content_type
        && !bcfg.allowed_types.contains(t)
    {
        return Err(Error::ContentTypeNotAllowed);
    }
    let checksum_algorithm = match header_str(h, "x-amz-checksum-algorithm") {
        None => None,
        Some(a) => Some(
            ChecksumAlgorithm::from_algorithm_name(a)
                .ok_or(Error::InvalidArgument(
                    "unsupported x-amz-checksum-algorithm",
                ))?
                .algorithm_name()
                .to_string(),
        ),
    };
    let now = crate::clock::now_ms();
    let upload = MultipartUpload {
        upload_id: crate::id::random_hex(16),
        bucket: bucket.to_string(),
        key: key.to_string(),
        owner: ctx.verified.access_key_id().to_string(),
        content_type,
        checksum_algorithm,
        created_at_ms: now,
        last_activity_ms: now,
    };
    ctx.state.meta.create_multipart(&upload).await?;
    let mut resp = xml_response(
        StatusCode::OK,
        xml::initiate_multipart(bucket, key, &upload.upload_id),
    );
    if let Some(a) = &upload.checksum_algorithm
        && let Ok(v) = HeaderValue::from_str(a)
    {
        resp.headers_mut().insert("x-amz-checksum-algorithm", v);
    }
    Ok(resp)
}

/// The part ETag: the MD5 when it was computed (Content-MD5 sent, or `etag = "md5"`), else the
/// first half of the SHA-256 — never claimed to be an MD5 when it is not.
fn part_etag(i: &ingest::Ingested) -> String {
    match i.md5 {
        Some(md5) => hex::encode(md5),
        None => hex::encode(&i.sha256[..16]),
    }
}

/// UploadPart.
pub async fn upload_part(
    ctx: Ctx,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: u32,
    body: Incoming,
) -> Result<Response<Body>> {
    let state = Arc::clone(&ctx.state);
    let bcfg = bucket_config(&state, bucket)?;
    let upload = owned_upload(&ctx, bucket, key, upload_id).await?;
    if part_number > state.config.s3.max_parts {
        return Err(Error::InvalidArgument(
            "Part number exceeds the maximum number of parts.",
        ));
    }
    let h = &ctx.parts.headers;
    if h.contains_key("x-amz-copy-source") {
        return Err(Error::NotImplemented);
    }
    super::object::refuse_client_encryption(h)?;
    let first = part_number == 1;
    let base = Expectations {
        max_bytes: bcfg.max_object_bytes,
        allowed_types: bcfg.allowed_types.clone(),
        declared_type: if first {
            upload.content_type.clone()
        } else {
            None
        },
        enforce_type: first,
        want_md5: bcfg.etag == EtagMode::Md5,
        ..Default::default()
    };
    let BodyPlan { decoder, exp } = plan_body(
        h,
        ctx.verified.into_payload(),
        base,
        state.config.s3.max_signed_chunk_bytes,
    )?;
    if let (Some(alg), Some(want)) = (
        exp.checksum
            .as_ref()
            .map(|(a, _)| *a)
            .or(exp.trailer_checksum),
        upload.checksum_algorithm.as_deref(),
    ) && alg.algorithm_name() != want
    {
        return Err(Error::InvalidRequest(
            "The part checksum algorithm differs from the upload's.",
        ));
    }
    let pipe = ingest::Pipe::new(exp)?;
    let _permit = super::object::upload_permit(&state, &upload.owner)?;

    let _inflight = state.metrics.upload_started();
    let blob_id = crate::id::object_id();
    let now = crate::clock::now_ms();
    state
        .meta
        .register_loose_blob(&blob_id, bucket, now.saturating_add(lease_ms(&state)))
        .await?;
    let path = Storage::path_for(bucket, &blob_id);
    let mut staging = state.storage.begin(&path).await?;
    let frames = super::object::incoming_frames(body);
    let ingested = match stream_body(
        &state,
        frames,
        decoder,
        pipe,
        bcfg.max_object_bytes,
        &mut staging,
    )
    .await
    {
        Ok(i) => i,
        Err(e) => {
            staging.abort().await;
            let _ = state.meta.forget_loose_blob(&blob_id).await;
            return Err(e);
        }
    };
    staging.commit().await?;
    let etag = part_etag(&ingested);
    let part_checksum = ingested
        .checksum
        .as_ref()
        .map(|(a, v)| (a.algorithm_name().to_string(), checksum::encode_b64(v)));
    let record = PartRecord {
        part_number,
        blob_id: blob_id.clone(),
        size: ingested.size,
        etag: etag.clone(),
        sha256: hex::encode(ingested.sha256),
        checksum: part_checksum.clone(),
        detected_type: ingested.content_type.map(str::to_string),
        created_at_ms: crate::clock::now_ms(),
    };
    let admitted = match state
        .meta
        .put_part(
            upload_id,
            &record,
            bcfg.max_object_bytes,
            crate::clock::now_ms(),
        )
        .await
    {
        Ok(a) => a,
        Err(e) => {
            discard_blob(&state, bucket, &blob_id).await;
            return Err(e.into());
        }
    };
    if !admitted {
        discard_blob(&state, bucket, &blob_id).await;
        return Err(Error::EntityTooLarge);
    }
    let mut resp = status_response(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let (Some((alg, _)), Some((_, v))) = (&ingested.checksum, &part_checksum)
        && let Ok(val) = HeaderValue::from_str(v)
    {
        resp.headers_mut().insert(alg.header_name(), val);
    }
    Ok(resp)
}

/// Removes a blob nothing points to, now; the loose-blob row lets the sweeper retry.
async fn discard_blob(state: &AppState, bucket: &str, blob_id: &str) {
    let path = Storage::path_for(bucket, blob_id);
    if state.storage.delete(&path).await.is_ok() {
        let _ = state.meta.forget_loose_blob(blob_id).await;
    }
}

/// Every stored part of an upload, in order.
async fn all_parts(state: &AppState, upload_id: &str) -> Result<Vec<PartRecord>> {
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

/// CompleteMultipartUpload.
pub async fn complete(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    upload_id: &str,
    body: Incoming,
) -> Result<Response<Body>> {
    let started = std::time::Instant::now();
    let state = &ctx.state;
    bucket_config(state, bucket)?;
    let upload = owned_upload(ctx, bucket, key, upload_id).await?;
    if ctx.parts.headers.contains_key(header::IF_NONE_MATCH)
        || ctx.parts.headers.contains_key(header::IF_MATCH)
    {
        return Err(Error::NotImplemented);
    }
    let data = super::bucket::read_small_body(ctx, body).await?;
    let listed = xml::parse_complete_multipart(&data, state.config.s3.max_parts as usize)
        .map_err(|_| Error::MalformedXml)?;
    let tenant = crate::quota::tenant_of_scope(ctx.scope.as_deref());
    let etag = complete_upload(state, &upload, &listed, tenant, None, started).await?;
    let location = format!("/{bucket}/{key}");
    Ok(xml_response(
        StatusCode::OK,
        xml::complete_multipart(&location, bucket, key, &etag, None),
    ))
}

/// Completes `upload` with the `listed` parts: validates the list (order, ETags, checksums,
/// sizes, budget, type of the first bytes), assembles the object, and commits it — through
/// `link` (object, link, file, token, quota and event in one transaction) when the upload was
/// made through a control-API link. Returns the object's ETag.
pub(crate) async fn complete_upload(
    state: &Arc<AppState>,
    upload: &MultipartUpload,
    listed: &[xml::CompletePart],
    tenant: Option<&str>,
    link: Option<&crate::metadata::control::UploadLink>,
    started: std::time::Instant,
) -> Result<String> {
    let bucket = upload.bucket.as_str();
    let key = upload.key.as_str();
    let bcfg = bucket_config(state, bucket)?;
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
        for (name, value) in &l.checksums {
            let listed = ChecksumAlgorithm::from_xml_element(name).map(|a| a.algorithm_name());
            match &p.checksum {
                Some((alg, v)) if Some(alg.as_str()) == listed && v == value => {}
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
    // The object's first bytes are the first listed part's.
    let first_type = chosen
        .first()
        .and_then(|p| p.detected_type.clone())
        .ok_or(Error::ContentTypeMismatch)?;
    match &upload.content_type {
        Some(declared) if *declared != first_type => return Err(Error::ContentTypeMismatch),
        None if !bcfg.allowed_types.contains(&first_type) => {
            return Err(Error::ContentTypeNotAllowed);
        }
        _ => {}
    }

    if let Some(link) = link
        && total != u64::try_from(link.size).unwrap_or(0)
    {
        return Err(Error::IncompleteBody);
    }
    // Assemble into a fresh, invisible object; commit like a PUT.
    let quota = match tenant {
        Some(t) => Some(crate::quota::quota_for(state, t).await?),
        None => None,
    };
    let id = crate::id::object_id();
    let now = crate::clock::now_ms();
    state
        .meta
        .insert_pending(&NewPending {
            id: id.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            owner: upload.owner.clone(),
            created_at_ms: now,
            lease_until_ms: now.saturating_add(lease_ms(state)),
            tenant_id: tenant.map(str::to_string),
        })
        .await?;
    let path = Storage::path_for(bucket, &id);
    let assembled = assemble(state, bucket, &path, &chosen).await;
    let sha256 = match assembled {
        Ok((sha, size)) if size == total => sha,
        Ok(_) => {
            let _ = state.storage.delete(&path).await;
            let _ = state.meta.discard_pending(&id).await;
            return Err(Error::internal(
                "assembled size differs from the parts' sizes",
            ));
        }
        Err(e) => {
            let _ = state.storage.remove_staging(&path).await;
            let _ = state.meta.discard_pending(&id).await;
            return Err(e);
        }
    };
    // Multipart ETag convention: a digest of the part digests, "-N".
    let mut of_parts = Sha256::new();
    for p in &chosen {
        of_parts.update(hex::decode(&p.sha256).unwrap_or_default());
    }
    let etag = format!(
        "{}-{}",
        hex::encode(&of_parts.finalize()[..16]),
        chosen.len()
    );
    let info = CommitInfo {
        size: total,
        sha256: hex::encode(sha256),
        etag: etag.clone(),
        content_type: first_type,
        checksum: None,
        committed_at_ms: crate::clock::now_ms(),
        quota: quota.clone(),
    };
    if let Some(link) = link
        && let Some(want) = &link.sha256
        && *want != info.sha256
    {
        let _ = state.storage.delete(&path).await;
        let _ = state.meta.discard_pending(&id).await;
        return Err(Error::ContentSha256Mismatch);
    }
    let committed = match link {
        None => state.meta.commit(&id, &info).await,
        Some(link) => state
            .control
            .commit_link(&crate::metadata::control::LinkCommit {
                object_id: id.clone(),
                object: info.clone(),
                link_id: link.id.clone(),
                event: super::object::link_event(
                    link,
                    crate::events::UPLOAD_COMPLETED,
                    Some(&info),
                    None,
                ),
            })
            .await
            .map(|()| Vec::new()),
    };
    let retired = match committed {
        Ok(r) => r,
        Err(e) => {
            let _ = state.storage.delete(&path).await;
            return Err(e.into());
        }
    };
    state
        .metrics
        .upload_committed(total, started.elapsed().as_secs_f64());
    super::object::remove_versions(state, bucket, retired).await;
    if let Some(q) = &quota
        && let Err(e) =
            crate::quota::warn_if_crossed(state, q, i64::try_from(total).unwrap_or(i64::MAX)).await
    {
        tracing::warn!(error = %e, "quota warning not recorded");
    }
    // The upload is done: its parts become loose blobs, removed now (or by the sweeper).
    state
        .meta
        .remove_multipart(&upload.upload_id, crate::clock::now_ms())
        .await?;
    for p in &stored {
        discard_blob(state, bucket, &p.blob_id).await;
    }
    Ok(etag)
}

/// Streams the parts, in order, into a staged object at `path` and publishes it. Returns the
/// SHA-256 and size of what was written.
async fn assemble(
    state: &AppState,
    bucket: &str,
    path: &object_store::path::Path,
    parts: &[&PartRecord],
) -> Result<([u8; 32], u64)> {
    let mut staging = state.storage.begin(path).await?;
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
            size += chunk.len() as u64;
            staging.write(chunk).await?;
        }
        // The stored bytes must still be the ones that were verified on upload.
        if hex::encode(part_sha.finalize()) != p.sha256 {
            staging.abort().await;
            return Err(Error::internal(
                "a stored part changed since it was uploaded",
            ));
        }
    }
    staging.commit().await?;
    Ok((sha.finalize().into(), size))
}

/// AbortMultipartUpload: the parts are freed now.
pub async fn abort(ctx: &Ctx, bucket: &str, key: &str, upload_id: &str) -> Result<Response<Body>> {
    bucket_config(&ctx.state, bucket)?;
    owned_upload(ctx, bucket, key, upload_id).await?;
    let parts = all_parts(&ctx.state, upload_id).await?;
    ctx.state
        .meta
        .remove_multipart(upload_id, crate::clock::now_ms())
        .await?;
    for p in &parts {
        discard_blob(&ctx.state, bucket, &p.blob_id).await;
    }
    Ok(status_response(StatusCode::NO_CONTENT))
}

fn parse_u32_param(ctx: &Ctx, name: &str, default: u32, max: u32) -> Result<u32> {
    match ctx.query.get(name)? {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .map(|n| n.min(max))
            .map_err(|_| Error::InvalidArgument("invalid integer parameter")),
    }
}

/// ListParts.
pub async fn list_parts(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Response<Body>> {
    bucket_config(&ctx.state, bucket)?;
    let upload = owned_upload(ctx, bucket, key, upload_id).await?;
    let marker = parse_u32_param(ctx, "part-number-marker", 0, u32::MAX)?;
    let max = parse_u32_param(ctx, "max-parts", 1000, 1000)?;
    let mut parts = ctx.state.meta.parts(upload_id, marker, max + 1).await?;
    let truncated = parts.len() > max as usize;
    parts.truncate(max as usize);
    let entries: Vec<PartEntry<'_>> = parts
        .iter()
        .map(|p| PartEntry {
            part_number: p.part_number,
            last_modified: crate::clock::from_ms(p.created_at_ms),
            etag: &p.etag,
            size: p.size,
            checksum: p.checksum.as_ref().and_then(|(a, v)| {
                ChecksumAlgorithm::from_algorithm_name(a).map(|a| (a.xml_element(), v.as_str()))
            }),
        })
        .collect();
    let body = xml::list_parts(&ListPartsResult {
        bucket,
        key,
        upload_id,
        owner: &upload.owner,
        part_number_marker: marker,
        next_part_number_marker: if truncated {
            parts.last().map(|p| p.part_number)
        } else {
            None
        },
        max_parts: max,
        is_truncated: truncated,
        checksum_algorithm: upload.checksum_algorithm.as_deref(),
        parts: &entries,
    });
    Ok(xml_response(StatusCode::OK, body))
}

/// ListMultipartUploads: the caller's open uploads in the bucket.
pub async fn list_uploads(ctx: &Ctx, bucket: &str) -> Result<Response<Body>> {
    bucket_config(&ctx.state, bucket)?;
    let prefix = ctx.query.get("prefix")?.unwrap_or("");
    let key_marker = ctx.query.get("key-marker")?.unwrap_or("");
    let upload_id_marker = ctx.query.get("upload-id-marker")?.unwrap_or("");
    let max = parse_u32_param(ctx, "max-uploads", 1000, 1000)?;
    let mut uploads = ctx
        .state
        .meta
        .list_multipart(
            bucket,
            ctx.verified.access_key_id(),
            prefix,
            key_marker,
            upload_id_marker,
            max + 1,
        )
        .await?;
    let truncated = uploads.len() > max as usize;
    uploads.truncate(max as usize);
    let entries: Vec<UploadEntry<'_>> = uploads
        .iter()
        .map(|u| UploadEntry {
            key: &u.key,
            upload_id: &u.upload_id,
            owner: &u.owner,
            initiated: crate::clock::from_ms(u.created_at_ms),
        })
        .collect();
    let body = xml::list_uploads(&ListUploadsResult {
        bucket,
        prefix,
        key_marker,
        upload_id_marker,
        next_markers: if truncated {
            uploads
                .last()
                .map(|u| (u.key.as_str(), u.upload_id.as_str()))
        } else {
            None
        },
        max_uploads: max,
        is_truncated: truncated,
        uploads: &entries,
    });
    Ok(xml_response(StatusCode::OK, body))
}
