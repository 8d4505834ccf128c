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

use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;

use super::object::{BodyPlan, declared_type, plan_body};
use super::xml::{self, ListPartsResult, ListUploadsResult, PartEntry, UploadEntry};
use super::{Ctx, xml_response};
use crate::auth::links::{UPLOAD_PARAM, is_link_key};
use crate::error::{Error, Result};
use crate::http::{Body, header_str, incoming_frames, status_response};
use crate::ingest;
use crate::ingest::checksum::{ChecksumAlgorithm, ChecksumType};
use crate::metadata::MultipartUpload;
use crate::upload::multipart::{PartRef, StoredPart};

/// The open upload, if it exists at this bucket/key and belongs to the caller.
async fn owned_upload(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<MultipartUpload> {
    let upload = owned_or_completed(ctx, bucket, key, upload_id).await?;
    if upload.completed_etag.is_some() {
        return Err(Error::NoSuchUpload);
    }
    Ok(upload)
}

/// The upload, open or completed (and not yet forgotten), if it exists at this bucket/key and
/// belongs to the caller.
async fn owned_or_completed(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<MultipartUpload> {
    // Parts of a multipart upload link are signed by a link key and name their link; such an
    // upload belongs to `link:<id>` and only while the link is still open.
    let owner = if is_link_key(ctx.verified.access_key_id()) {
        let link_id = ctx.query.get(UPLOAD_PARAM)?.ok_or(Error::NoSuchUpload)?;
        crate::upload::link::open_link_owner(&ctx.state, link_id).await?
    } else {
        ctx.verified.access_key_id().to_string()
    };
    match ctx.state.meta.multipart(upload_id).await? {
        Some(u) if u.bucket == bucket && u.key == key && u.owner == owner => Ok(u),
        _ => Err(Error::NoSuchUpload),
    }
}

/// CreateMultipartUpload.
pub async fn create(ctx: &Ctx, bucket: &str, key: &str) -> Result<Response<Body>> {
    let bcfg = ctx.state.bucket(bucket)?;
    let h = &ctx.parts.headers;
    let opaque = bcfg.types == crate::config::TypesMode::Any;
    let content_type = if opaque {
        Some(crate::upload::opaque_type(header_str(h, "content-type")))
    } else {
        declared_type(h)?
    };
    if let Some(t) = &content_type
        && !opaque
        && !bcfg.allowed_types.contains(t)
    {
        return Err(Error::ContentTypeNotAllowed);
    }
    let algorithm = match header_str(h, "x-amz-checksum-algorithm") {
        None => None,
        Some(a) => Some(ChecksumAlgorithm::from_algorithm_name(a).ok_or(
            Error::InvalidArgument("unsupported x-amz-checksum-algorithm"),
        )?),
    };
    let checksum_type = checksum_type(h, algorithm)?;
    let headers = super::object_headers::from_request(h)?;
    let tags = super::tagging::from_header(h)?;
    let now = crate::clock::now_ms();
    let upload = MultipartUpload {
        upload_id: crate::id::random_hex(16),
        bucket: bucket.to_string(),
        key: key.to_string(),
        owner: ctx.verified.access_key_id().to_string(),
        content_type,
        checksum_algorithm: algorithm.map(|a| a.algorithm_name().to_string()),
        checksum_type: checksum_type.map(|t| t.as_str().to_string()),
        created_at_ms: now,
        last_activity_ms: now,
        headers,
        completed_etag: None,
        tags,
    };
    ctx.state.meta.create_multipart(&upload).await?;
    let mut resp = xml_response(
        StatusCode::OK,
        xml::initiate_multipart(bucket, key, &upload.upload_id),
    );
    if let (Some(a), Some(t)) = (algorithm, checksum_type) {
        let h = resp.headers_mut();
        h.insert(
            "x-amz-checksum-algorithm",
            HeaderValue::from_static(a.algorithm_name()),
        );
        h.insert("x-amz-checksum-type", HeaderValue::from_static(t.as_str()));
    }
    Ok(resp)
}

/// The checksum type a CreateMultipartUpload asks for (`x-amz-checksum-type`) with `algorithm`,
/// or that algorithm's default; refused as S3 refuses a type without an algorithm, or one the
/// algorithm has no form of (composite CRC-64/NVME, full-object SHA).
fn checksum_type(
    h: &http::HeaderMap,
    algorithm: Option<ChecksumAlgorithm>,
) -> Result<Option<ChecksumType>> {
    let asked = match header_str(h, "x-amz-checksum-type") {
        None => None,
        Some(t) => Some(
            ChecksumType::parse(t).ok_or(Error::InvalidArgument("invalid x-amz-checksum-type"))?,
        ),
    };
    match (algorithm, asked) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::InvalidRequest(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
        )),
        (Some(a), None) => Ok(Some(ChecksumType::default_for(a))),
        (Some(a), Some(t)) if t.supports(a) => Ok(Some(t)),
        (Some(_), Some(_)) => Err(Error::InvalidRequest(
            "The checksum type is not supported with this checksum algorithm.",
        )),
    }
}

/// The CompleteMultipartUpload answer for the object `etag` names: with the checksum it was
/// completed with, read back from the key's current version (the checksum of a multipart object
/// is known once its parts are assembled; a version that replaced it since has another ETag).
async fn completed(
    ctx: &Ctx,
    location: &str,
    bucket: &str,
    key: &str,
    etag: &str,
) -> Result<Response<Body>> {
    let current = ctx.state.meta.current(bucket, key).await?;
    let sum = current
        .filter(|r| r.etag == etag)
        .and_then(|r| r.checksum)
        .and_then(|(name, value)| Some((ChecksumAlgorithm::from_header_name(&name)?, value)));
    let element = sum.as_ref().map(|(alg, v)| (alg.xml_element(), v.as_str()));
    let kind = sum
        .as_ref()
        .map(|(_, v)| ChecksumType::of_value(v).as_str());
    Ok(xml_response(
        StatusCode::OK,
        xml::complete_multipart(location, bucket, key, etag, element, kind),
    ))
}

/// What a part's bytes are held to. Part 1's first bytes are the object's: type-checked on
/// arrival. Later parts start mid-file; their sniffed type is only recorded (completion checks
/// the first listed part). A part's content and size are checked whole, when assembled.
pub(crate) fn part_expectations(
    bcfg: &crate::config::BucketConfig,
    upload: &crate::metadata::MultipartUpload,
    part_number: u32,
) -> ingest::Expectations {
    let first = part_number == 1;
    let opaque = bcfg.types == crate::config::TypesMode::Any;
    let mut base = if opaque {
        crate::upload::expectations(bcfg, None)
    } else {
        crate::upload::expectations(bcfg, first.then(|| upload.content_type.clone()).flatten())
    };
    base.enforce_type = first && !opaque;
    base.checks = None;
    base.min_bytes = 0;
    base
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
    let bcfg = state.bucket(bucket)?;
    let upload = owned_upload(&ctx, bucket, key, upload_id).await?;
    if part_number > state.config.s3.max_parts {
        return Err(Error::InvalidArgument(
            "Part number exceeds the maximum number of parts.",
        ));
    }
    let h = &ctx.parts.headers;
    super::object::refuse_client_encryption(h)?;
    let base = part_expectations(bcfg, &upload, part_number);
    if h.contains_key("x-amz-copy-source") {
        return super::copy::upload_part_copy(&ctx, &upload, part_number, base).await;
    }
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
    let _permit = crate::upload::put::upload_permit(&state, &upload.owner).await?;

    let StoredPart {
        etag,
        ingested,
        checksum: part_checksum,
    } = crate::upload::multipart::store_part(
        &state,
        &upload,
        part_number,
        incoming_frames(body),
        decoder,
        pipe,
        bcfg.max_object_bytes,
    )
    .await?;
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
    state.bucket(bucket)?;
    let condition = super::object::write_condition(&ctx.parts.headers)?;
    let upload = owned_or_completed(ctx, bucket, key, upload_id).await?;
    let location = format!("/{bucket}/{key}");
    if let Some(etag) = &upload.completed_etag {
        // A retry (the client timed out waiting for the first answer): the same result.
        return completed(ctx, &location, bucket, key, etag).await;
    }
    // The type is the upload's; a completion naming another is refused, as in S3 (an upload
    // created without a checksum has none to contradict).
    if let Some(asked) = header_str(&ctx.parts.headers, "x-amz-checksum-type")
        && let Some((_, kind)) = crate::upload::multipart::checksum_of(&upload)
        && !kind.as_str().eq_ignore_ascii_case(asked)
    {
        return Err(Error::InvalidRequest(
            "The upload was created using a different checksum type.",
        ));
    }
    let data = super::bucket::read_small_body(ctx, body).await?;
    let listed = xml::parse_complete_multipart(&data, state.config.s3.max_parts as usize)
        .map_err(|_| Error::MalformedXml)?;
    let listed: Vec<PartRef> = listed
        .into_iter()
        .map(|p| PartRef {
            part_number: p.part_number,
            etag: p.etag,
            // S3 lists checksums by XML element; an unknown element never matches a part.
            checksums: p
                .checksums
                .into_iter()
                .map(|(element, value)| {
                    let alg = ChecksumAlgorithm::from_xml_element(&element)
                        .map_or(element, |a| a.algorithm_name().to_string());
                    (alg, value)
                })
                .collect(),
        })
        .collect();
    let tenant = crate::upload::quota::tenant_of_scope(ctx.scope.as_deref());
    let etag = crate::upload::multipart::complete(
        state, &upload, &listed, tenant, None, condition, started,
    )
    .await?;
    completed(ctx, &location, bucket, key, &etag).await
}

/// AbortMultipartUpload: the parts are freed now.
pub async fn abort(ctx: &Ctx, bucket: &str, key: &str, upload_id: &str) -> Result<Response<Body>> {
    ctx.state.bucket(bucket)?;
    let upload = owned_upload(ctx, bucket, key, upload_id).await?;
    crate::upload::multipart::abort(&ctx.state, &upload).await?;
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
    ctx.state.bucket(bucket)?;
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
    ctx.state.bucket(bucket)?;
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
