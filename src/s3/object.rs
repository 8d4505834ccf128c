//! Object operations: PutObject (the ingest path), GetObject/HeadObject, DeleteObject.

use std::ops::Range;
use std::sync::Arc;

use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::Ctx;
use crate::auth::PayloadMode;
use crate::auth::links::{DOWNLOAD_PARAM, UPLOAD_PARAM, is_link_key};
use crate::config::BucketConfig;
use crate::error::{Error, Result};
use crate::http::{Body, empty, header_str, incoming_frames, status_response};
use crate::ingest::aws_chunked::{ChunkMode, Decoder};
use crate::ingest::checksum::{self, ChecksumAlgorithm, ChecksumType};
use crate::ingest::{self, Expectations, sniff};
use crate::metadata::{ObjectRecord, WriteCondition};
use crate::storage::Storage;
use crate::upload::put::{Committed, Target, ingest_and_commit, upload_permit};

/// The single checksum header (`x-amz-checksum-*`) of a request, decoded.
fn header_checksum(h: &HeaderMap) -> Result<Option<(ChecksumAlgorithm, Vec<u8>)>> {
    let mut found = None;
    for (name, value) in h {
        let Some(alg) = ChecksumAlgorithm::from_header_name(name.as_str()) else {
            continue;
        };
        if found.is_some() {
            return Err(Error::InvalidRequest(
                "Expecting a single x-amz-checksum- header.",
            ));
        }
        let v = value.to_str().map_err(|_| Error::InvalidDigest)?;
        found = Some((alg, alg.decode(v).map_err(|_| Error::InvalidDigest)?));
    }
    Ok(found)
}

fn parse_len(h: &HeaderMap, name: &str) -> Result<Option<u64>> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(crate::http::parse_decimal)
            .map(Some)
            .ok_or(Error::InvalidArgument("invalid length header")),
    }
}

/// Refuses client-chosen encryption: the object's encryption at rest is upgate's decision
/// (T-F7). Customer-provided keys (SSE-C) cannot be honoured through a gateway that must read
/// the bytes, so they are refused instead of silently ignored; a plain
/// `x-amz-server-side-encryption` request header is ignored (upgate's own setting applies).
pub(crate) fn refuse_client_encryption(h: &HeaderMap) -> Result<()> {
    if h.keys().any(|k| {
        k.as_str()
            .starts_with("x-amz-server-side-encryption-customer-")
    }) {
        return Err(Error::InvalidArgument(
            "Customer-provided encryption keys are not supported; upgate encrypts at rest itself.",
        ));
    }
    Ok(())
}

/// The condition of a conditional write, in the forms S3 offers on PutObject and
/// CompleteMultipartUpload: `If-None-Match: *` (write only if the key has no object) or
/// `If-Match: <etag>` (only if its object has that ETag). Anything else conditional (another
/// `If-None-Match` value, an ETag list, both headers) answers NotImplemented, as S3 does, rather
/// than being ignored.
pub(crate) fn write_condition(h: &HeaderMap) -> Result<Option<WriteCondition>> {
    let none_match = h.contains_key(header::IF_NONE_MATCH);
    let if_match = h.contains_key(header::IF_MATCH);
    match (none_match, if_match) {
        (false, false) => Ok(None),
        (true, false) => match header_str(h, "if-none-match").map(str::trim) {
            Some("*") => Ok(Some(WriteCondition::Absent)),
            _ => Err(Error::NotImplemented),
        },
        (false, true) => {
            let v = header_str(h, "if-match")
                .map(str::trim)
                .ok_or(Error::InvalidArgument("invalid If-Match header"))?;
            if v == "*" || v.contains(',') || v.is_empty() {
                return Err(Error::NotImplemented);
            }
            let tag = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
            Ok(Some(WriteCondition::EtagIs(tag.to_string())))
        }
        (true, true) => Err(Error::NotImplemented),
    }
}

/// What a body-carrying request (PutObject, UploadPart) declared, checked before any byte of
/// the body is read (with `Expect: 100-continue` the client has not even sent it).
pub(crate) struct BodyPlan {
    /// The aws-chunked decoder, for STREAMING-* payload modes.
    pub decoder: Option<Decoder>,
    /// What the pipe must enforce.
    pub exp: Expectations,
}

/// Builds the body plan from the request head and the verified payload mode.
pub(crate) fn plan_body(
    h: &HeaderMap,
    payload: PayloadMode,
    base: Expectations,
    max_signed_chunk: usize,
) -> Result<BodyPlan> {
    let content_length = parse_len(h, "content-length")?;
    let chunked_encoding = header_str(h, "content-encoding")
        .map(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("aws-chunked"))
        })
        .unwrap_or(false);
    let mut exp = Expectations {
        checksum: header_checksum(h)?,
        ..base
    };
    if let Some(md5) = header_str(h, "content-md5") {
        exp.md5 = Some(checksum::decode_content_md5(md5).map_err(|_| Error::InvalidDigest)?);
    } else if h.contains_key("content-md5") {
        return Err(Error::InvalidDigest);
    }
    let decoder = match payload {
        mode @ (PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer) => {
            let decoded =
                parse_len(h, "x-amz-decoded-content-length")?.ok_or(Error::MissingContentLength)?;
            exp.length = Some(decoded);
            let trailer = header_str(h, "x-amz-trailer").map(str::to_ascii_lowercase);
            let (chunk_mode, wants_trailer) = match mode {
                PayloadMode::StreamingSigned { signer, trailer } => {
                    (ChunkMode::Signed(signer), trailer)
                }
                _ => (ChunkMode::Unsigned, true),
            };
            match (&trailer, wants_trailer) {
                (Some(t), true) => {
                    let alg = ChecksumAlgorithm::from_header_name(t)
                        .ok_or(Error::InvalidArgument("unsupported x-amz-trailer"))?;
                    if exp.checksum.is_some() {
                        return Err(Error::InvalidRequest(
                            "checksum given both as header and trailer",
                        ));
                    }
                    exp.trailer_checksum = Some(alg);
                }
                (Some(_), false) => {
                    return Err(Error::InvalidRequest(
                        "x-amz-trailer requires a -TRAILER payload mode",
                    ));
                }
                (None, _) => {}
            }
            Some(Decoder::new(chunk_mode, trailer, decoded, max_signed_chunk))
        }
        PayloadMode::Sha256(_) | PayloadMode::Unsigned if chunked_encoding => {
            return Err(Error::InvalidRequest(
                "aws-chunked encoding requires a STREAMING-* payload mode",
            ));
        }
        PayloadMode::Sha256(hash) => {
            exp.sha256 = Some(hash);
            exp.length = Some(content_length.ok_or(Error::MissingContentLength)?);
            None
        }
        PayloadMode::Unsigned => {
            exp.length = Some(content_length.ok_or(Error::MissingContentLength)?);
            None
        }
    };
    Ok(BodyPlan { decoder, exp })
}

/// The declared Content-Type, normalised; `None` when absent or generic.
pub(crate) fn declared_type(h: &HeaderMap) -> Result<Option<String>> {
    match header_str(h, "content-type") {
        None => Ok(None),
        Some(ct) if sniff::is_generic(ct) => Ok(None),
        Some(ct) => Ok(Some(
            sniff::normalize(ct).ok_or(Error::ContentTypeNotAllowed)?,
        )),
    }
}

/// PutObject: authenticate (done), check everything knowable from the head, then stream the
/// body through the ingest pipe into an invisible staging write, and commit only if it passed.
pub async fn put(ctx: Ctx, bucket: &str, key: &str, body: Incoming) -> Result<Response<Body>> {
    // Link keys sign only minted links, and minted links are signed only by link keys.
    let link_id = ctx.query.get(UPLOAD_PARAM)?.map(str::to_string);
    // The link upload and the copy run on allocations of their own: inline, their larger
    // futures would size every plain PUT's too (each held upload carries its future).
    match (is_link_key(ctx.verified.access_key_id()), link_id) {
        (true, Some(id)) => return Box::pin(put_via_link(ctx, bucket, key, body, id)).await,
        (false, None) => {}
        _ => {
            return Err(Error::AccessDenied(
                "Upload links are minted by upgate only.",
            ));
        }
    }
    let started = std::time::Instant::now();
    let state = Arc::clone(&ctx.state);
    let bcfg = state.bucket(bucket)?;
    let h = &ctx.parts.headers;
    if h.contains_key("x-amz-copy-source") {
        return Box::pin(super::copy::copy_object(ctx, bucket, key)).await;
    }
    let condition = write_condition(h)?;
    refuse_client_encryption(h)?;
    let headers = super::object_headers::from_request(h)?;
    let tags = super::tagging::from_header(h)?;
    let owner = ctx.verified.access_key_id().to_string();
    let opaque = bcfg.types == crate::config::TypesMode::Any;
    let base = if opaque {
        crate::upload::expectations(bcfg, None)
    } else {
        crate::upload::expectations(bcfg, declared_type(h)?)
    };
    let stored_type = opaque.then(|| crate::upload::opaque_type(header_str(h, "content-type")));
    let BodyPlan { decoder, exp } = plan_body(
        h,
        ctx.verified.into_payload(),
        base,
        state.config.s3.max_signed_chunk_bytes,
    )?;
    // Everything knowable before the body is checked here, before a byte is read.
    let pipe = ingest::Pipe::new(exp)?;
    let _permit = upload_permit(&state, &owner).await?;
    crate::upload::put::precheck(&state, bucket, key, condition.as_ref()).await?;

    let Committed { ingested, etag, .. } = ingest_and_commit(
        &state,
        Target {
            bucket,
            key,
            owner: &owner,
            link: None,
            tenant: crate::upload::quota::tenant_of_scope(ctx.scope.as_deref()),
            stored_type,
            headers,
            tags,
            condition,
        },
        incoming_frames(body),
        decoder,
        pipe,
        bcfg.max_object_bytes,
        started,
    )
    .await?;

    let mut resp = status_response(StatusCode::OK);
    let rh = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        rh.insert(header::ETAG, v);
    }
    if let Some((alg, v)) = &ingested.checksum
        && let Ok(val) = HeaderValue::from_str(&checksum::encode_b64(v))
    {
        rh.insert(alg.header_name(), val);
    }
    Ok(resp)
}

/// PutObject through a single-use upload link: claim it atomically, hold the body to what the
/// link pins (exact size, type, hash — all signed), commit with the link, or release it.
async fn put_via_link(
    ctx: Ctx,
    bucket: &str,
    key: &str,
    body: Incoming,
    link_id: String,
) -> Result<Response<Body>> {
    let started = std::time::Instant::now();
    let state = Arc::clone(&ctx.state);
    let signed = ctx.verified.signed_headers();
    // T-A9: a link that does not sign its size and type is not one of ours.
    if !signed.iter().any(|h| h == "content-length") || !signed.iter().any(|h| h == "content-type")
    {
        return Err(Error::AccessDenied(
            "Upload links must sign content-length and content-type.",
        ));
    }
    let bcfg = state.bucket(bucket)?;
    // The signed length (the link's size; a different one fails below, after the claim).
    let declared = ctx
        .parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(bcfg.max_object_bytes);
    let mut guard = crate::upload::link::claim(&state, &link_id, bucket, key, declared).await?;
    let link = guard.link()?.clone();
    let size = u64::try_from(link.size).map_err(|_| Error::internal("negative link size"))?;
    let base = crate::upload::link_expectations(bcfg, size, &link.content_type);
    let h = &ctx.parts.headers;
    let plan = plan_body(
        h,
        ctx.verified.into_payload(),
        base,
        state.config.s3.max_signed_chunk_bytes,
    );
    let BodyPlan { decoder, exp } = plan.map_err(|e| guard.fail(e))?;
    if exp.length != Some(size) {
        return Err(guard.fail(Error::IncompleteBody));
    }
    let pipe = ingest::Pipe::new(exp).map_err(|e| guard.fail(e))?;
    let Committed { etag, .. } = guard
        .put(&state, incoming_frames(body), decoder, pipe, started)
        .await?;
    let mut resp = status_response(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// DeleteObject: always 204 (S3 semantics), whether or not the key existed.
pub async fn delete(ctx: &Ctx, bucket: &str, key: &str) -> Result<Response<Body>> {
    ctx.state.bucket(bucket)?;
    crate::upload::delete::delete_key(&ctx.state, bucket, key).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

/// A byte range request, resolved against the object size.
fn parse_range(value: &str, size: u64) -> Result<Option<Range<u64>>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None); // Unknown units are ignored (RFC 9110).
    };
    if spec.contains(',') {
        return Ok(None); // Multiple ranges: S3 serves the whole object.
    }
    let (a, b) = spec.split_once('-').ok_or(Error::InvalidRange)?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().map_err(|_| Error::InvalidRange);
    let range = if a.is_empty() {
        let n = num(b)?;
        if n == 0 || size == 0 {
            return Err(Error::InvalidRange);
        }
        size.saturating_sub(n)..size
    } else {
        let start = num(a)?;
        let end = if b.is_empty() {
            size
        } else {
            num(b)?.saturating_add(1).min(size)
        };
        if start >= size || end <= start {
            return Err(Error::InvalidRange);
        }
        start..end
    };
    Ok(Some(range))
}

fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(crate::clock::from_ms(ms))
}

/// Whether an `If-Match`-style list (`"a", W/"b"`, or `*`) names `etag`.
pub(crate) fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == etag
    })
}

/// Evaluates conditional headers (RFC 9110 order). `Ok(Some(304))` means "not modified".
fn preconditions(h: &HeaderMap, rec: &ObjectRecord) -> Result<Option<StatusCode>> {
    let modified = crate::clock::from_ms(rec.committed_at_ms);
    let parse_date = |v: &str| httpdate::parse_http_date(v).ok();
    // Second granularity, as HTTP dates.
    let secs = |t: std::time::SystemTime| crate::clock::to_ms(t) / 1000;
    if let Some(v) = header_str(h, "if-match") {
        if !etag_matches(v, &rec.etag) {
            return Err(Error::PreconditionFailed);
        }
    } else if let Some(t) = header_str(h, "if-unmodified-since").and_then(parse_date)
        && secs(modified) > secs(t)
    {
        return Err(Error::PreconditionFailed);
    }
    if let Some(v) = header_str(h, "if-none-match") {
        if etag_matches(v, &rec.etag) {
            return Ok(Some(StatusCode::NOT_MODIFIED));
        }
    } else if let Some(t) = header_str(h, "if-modified-since").and_then(parse_date)
        && secs(modified) <= secs(t)
    {
        return Ok(Some(StatusCode::NOT_MODIFIED));
    }
    Ok(None)
}

/// Response-header overrides S3 allows on signed GETs. Every query parameter is covered by
/// the signature, so these were chosen by a key holder; the content type may still only be
/// one the bucket accepts (or octet-stream), so a link cannot turn a file into HTML.
/// The `response-*` overrides of a GET. A type override must be one the bucket allows, the
/// object's own type (`stored`), or `application/octet-stream`.
fn apply_overrides(ctx: &Ctx, bcfg: &BucketConfig, stored: &str, h: &mut HeaderMap) -> Result<()> {
    let pairs = [
        ("response-cache-control", header::CACHE_CONTROL),
        ("response-content-disposition", header::CONTENT_DISPOSITION),
        ("response-content-encoding", header::CONTENT_ENCODING),
        ("response-content-language", header::CONTENT_LANGUAGE),
        ("response-expires", header::EXPIRES),
    ];
    for (param, name) in pairs {
        if let Some(v) = ctx.query.get(param)? {
            let v = HeaderValue::from_str(v)
                .map_err(|_| Error::InvalidArgument("invalid response header override"))?;
            h.insert(name, v);
        }
    }
    if let Some(ct) = ctx.query.get("response-content-type")? {
        let norm =
            sniff::normalize(ct).ok_or(Error::InvalidArgument("invalid response-content-type"))?;
        let own = sniff::normalize(stored).is_some_and(|s| s == norm);
        if norm != "application/octet-stream" && !own && !bcfg.allowed_types.contains(&norm) {
            return Err(Error::InvalidArgument(
                "response-content-type is not allowed",
            ));
        }
        let v = HeaderValue::from_str(&norm)
            .map_err(|_| Error::InvalidArgument("invalid response-content-type"))?;
        h.insert(header::CONTENT_TYPE, v);
    }
    Ok(())
}

/// The checksums S3 reports for `rec` (GET/HEAD with checksum mode, GetObjectAttributes), and
/// their type. A multipart object completed with a composite checksum has that one only (its
/// value ends in `-N`); any other object has the SHA-256 upgate computes of every object, and
/// the client checksum of another algorithm its upload was verified with, both of the whole
/// object.
pub(crate) fn checksums_of(rec: &ObjectRecord) -> (Vec<(ChecksumAlgorithm, String)>, ChecksumType) {
    let client = rec.checksum.as_ref().and_then(|(name, value)| {
        Some((ChecksumAlgorithm::from_header_name(name)?, value.clone()))
    });
    if let Some((alg, value)) = &client
        && ChecksumType::of_value(value) == ChecksumType::Composite
    {
        return (vec![(*alg, value.clone())], ChecksumType::Composite);
    }
    let mut sums: Vec<(ChecksumAlgorithm, String)> = client
        .into_iter()
        .filter(|(alg, _)| *alg != ChecksumAlgorithm::Sha256)
        .collect();
    if let Ok(raw) = hex::decode(&rec.sha256) {
        sums.push((ChecksumAlgorithm::Sha256, checksum::encode_b64(&raw)));
    }
    (sums, ChecksumType::FullObject)
}

/// The bytes of part `n` of `rec` (GET/HEAD by `partNumber`), as S3 reads them: a part of a
/// multipart object, or the whole of a single-part object as its part 1 (`None` for an empty
/// one, which has no byte range). Also the part count to report, for a multipart object.
fn part_range(rec: &ObjectRecord, n: u32) -> Result<(Option<Range<u64>>, Option<usize>)> {
    let sizes = &rec.part_sizes;
    let index = usize::try_from(n).map_err(|_| Error::InvalidPartNumber)?;
    // Part sizes that do not add up to the object would describe other bytes: unknown.
    if sizes.is_empty() || sizes.iter().sum::<u64>() != rec.size {
        return match n {
            1 => Ok(((rec.size > 0).then_some(0..rec.size), None)),
            _ => Err(Error::InvalidPartNumber),
        };
    }
    let size = *sizes
        .get(index.wrapping_sub(1))
        .ok_or(Error::InvalidPartNumber)?;
    let start: u64 = sizes[..index - 1].iter().sum();
    Ok(((size > 0).then_some(start..start + size), Some(sizes.len())))
}

/// GetObject / HeadObject; with `part_number`, only that part (`?partNumber=N`).
pub async fn get(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    part_number: Option<u32>,
    head_only: bool,
) -> Result<Response<Body>> {
    let state = &ctx.state;
    let bcfg = state.bucket(bucket)?;
    let download = ctx.query.get(DOWNLOAD_PARAM)?.map(str::to_string);
    match (is_link_key(ctx.verified.access_key_id()), &download) {
        (true, Some(file_id)) => {
            crate::upload::link::check_download(state, file_id, key, head_only).await?
        }
        (false, None) => {}
        _ => {
            return Err(Error::AccessDenied(
                "Download links are minted by upgate only.",
            ));
        }
    }
    let rec = state
        .meta
        .current(bucket, key)
        .await?
        .ok_or(Error::NoSuchKey)?;
    let h = &ctx.parts.headers;

    let mut resp = status_response(StatusCode::OK);
    let rh = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", rec.etag)) {
        rh.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(rec.committed_at_ms)) {
        rh.insert(header::LAST_MODIFIED, v);
    }
    if let Some(code) = preconditions(h, &rec)? {
        *resp.status_mut() = code;
        return Ok(resp);
    }
    rh.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    rh.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&rec.content_type) {
        rh.insert(header::CONTENT_TYPE, v);
    }
    super::object_headers::write(&rec.headers, rh);
    if !rec.tags.0.is_empty() {
        rh.insert("x-amz-tagging-count", HeaderValue::from(rec.tags.0.len()));
    }
    // As S3: the class is named unless it is STANDARD.
    if rec.storage_class != crate::storage::DEFAULT_CLASS
        && let Ok(v) = HeaderValue::from_str(&rec.storage_class)
    {
        rh.insert("x-amz-storage-class", v);
    }
    apply_overrides(ctx, bcfg, &rec.content_type, rh)?;
    if bcfg.types == crate::config::TypesMode::Any {
        // Opaque data is never rendered: whatever it is (HTML, SVG, script), a browser saves
        // it, and a sandbox keeps it from running should it be shown anyway. An attachment
        // disposition asked for (with a file name) stays; anything else becomes one.
        let attachment = rh
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("attachment")
            });
        if !attachment {
            rh.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            );
        }
        rh.insert(
            "content-security-policy",
            HeaderValue::from_static("sandbox; default-src 'none'"),
        );
    }

    let (range, parts_count) = match (header_str(h, "range"), part_number) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidRequest(
                "Cannot specify both Range header and partNumber query parameter.",
            ));
        }
        (Some(r), None) => (parse_range(r, rec.size)?, None),
        (None, Some(n)) => part_range(&rec, n)?,
        (None, None) => (None, None),
    };
    if let Some(count) = parts_count {
        rh.insert("x-amz-mp-parts-count", HeaderValue::from(count));
    }
    let checksum_mode = header_str(h, "x-amz-checksum-mode")
        .map(|v| v.eq_ignore_ascii_case("enabled"))
        .unwrap_or(false);
    if checksum_mode && range.is_none() && part_number.is_none() {
        let (sums, kind) = checksums_of(&rec);
        for (alg, value) in sums {
            if let Ok(v) = HeaderValue::from_str(&value) {
                rh.insert(alg.header_name(), v);
            }
        }
        rh.insert(
            "x-amz-checksum-type",
            HeaderValue::from_static(kind.as_str()),
        );
    }
    let (status, len) = match &range {
        // A part is a range even when it is the whole object (S3 answers 206).
        Some(r) => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, rec.size))
            {
                rh.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, r.end - r.start)
        }
        None => (StatusCode::OK, rec.size),
    };
    rh.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    *resp.status_mut() = status;
    if head_only || len == 0 {
        *resp.body_mut() = empty();
        return Ok(resp);
    }
    let obj = state
        .storage
        .get(&Storage::path_for(bucket, &rec.id), range)
        .await?;
    state.metrics.sent(len);
    let stream = obj
        .stream
        .map_ok(Frame::data)
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
    *resp.body_mut() = StreamBody::new(stream).boxed_unsync();
    Ok(resp)
}

/// GetObjectAttributes: the attributes `x-amz-object-attributes` names (ETag, Checksum,
/// ObjectParts, StorageClass, ObjectSize), without reading the bytes. The checksums are those
/// of [`checksums_of`] (a composite one without its part count, as S3 writes it here);
/// ObjectParts gives the part count of a multipart object of two parts or more.
pub async fn attributes(ctx: &Ctx, bucket: &str, key: &str) -> Result<Response<Body>> {
    let state = &ctx.state;
    state.bucket(bucket)?;
    let h = &ctx.parts.headers;
    let mut wanted: Vec<String> = Vec::new();
    for v in h.get_all("x-amz-object-attributes") {
        let v = v
            .to_str()
            .map_err(|_| Error::InvalidArgument("Invalid x-amz-object-attributes."))?;
        for a in v.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if ![
                "ETag",
                "Checksum",
                "ObjectParts",
                "StorageClass",
                "ObjectSize",
            ]
            .contains(&a)
            {
                return Err(Error::InvalidArgument("Invalid attribute name specified."));
            }
            wanted.push(a.to_string());
        }
    }
    if wanted.is_empty() {
        return Err(Error::InvalidArgument(
            "x-amz-object-attributes names at least one attribute.",
        ));
    }
    let rec = state
        .meta
        .current(bucket, key)
        .await?
        .ok_or(Error::NoSuchKey)?;
    preconditions(h, &rec)?;
    let want = |a: &str| wanted.iter().any(|w| w == a);
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetObjectAttributesResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    if want("ETag") {
        xml.push_str(&format!("<ETag>{}</ETag>", super::xml::escape(&rec.etag)));
    }
    if want("Checksum") {
        xml.push_str("<Checksum>");
        let (sums, kind) = checksums_of(&rec);
        for (alg, value) in sums {
            // GetObjectAttributes writes a composite checksum without its part count.
            let value = value.split('-').next().unwrap_or_default();
            let tag = alg.xml_element();
            xml.push_str(&format!("<{tag}>{}</{tag}>", super::xml::escape(value)));
        }
        xml.push_str(&format!(
            "<ChecksumType>{}</ChecksumType></Checksum>",
            kind.as_str()
        ));
    }
    if want("ObjectParts")
        && let Some(n) = rec
            .etag
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            // `-1` also ends the ETag of a single upload sent without Content-MD5 (so that it
            // never passes for an MD5): only two parts or more tell a multipart object.
            .filter(|n| *n > 1)
    {
        xml.push_str(&format!(
            "<ObjectParts><PartsCount>{n}</PartsCount></ObjectParts>"
        ));
    }
    if want("StorageClass") {
        xml.push_str(&format!(
            "<StorageClass>{}</StorageClass>",
            super::xml::escape(&rec.storage_class)
        ));
    }
    if want("ObjectSize") {
        xml.push_str(&format!("<ObjectSize>{}</ObjectSize>", rec.size));
    }
    xml.push_str("</GetObjectAttributesResponse>");
    let mut resp = Response::new(crate::http::full(xml));
    let rh = resp.headers_mut();
    rh.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(&http_date(rec.committed_at_ms)) {
        rh.insert(header::LAST_MODIFIED, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_s3() {
        assert_eq!(parse_range("bytes=0-9", 100).expect("r"), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100).expect("r"), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100).expect("r"), Some(90..100));
        assert_eq!(parse_range("bytes=-200", 100).expect("r"), Some(0..100));
        assert_eq!(parse_range("bytes=50-500", 100).expect("r"), Some(50..100));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).expect("r"), None);
        assert_eq!(parse_range("items=0-1", 100).expect("r"), None);
        assert!(matches!(
            parse_range("bytes=100-", 100),
            Err(Error::InvalidRange)
        ));
        assert!(matches!(
            parse_range("bytes=5-2", 100),
            Err(Error::InvalidRange)
        ));
        assert!(matches!(
            parse_range("bytes=-0", 100),
            Err(Error::InvalidRange)
        ));
        assert!(matches!(
            parse_range("bytes=x-1", 100),
            Err(Error::InvalidRange)
        ));
    }

    #[test]
    fn etag_lists_match() {
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("W/\"abc\", \"def\"", "def"));
        assert!(etag_matches("*", "abc"));
        assert!(!etag_matches("\"abd\"", "abc"));
    }
}
