//! CopyObject (`PUT` with `x-amz-copy-source`): within and across buckets, through the same
//! lifecycle as an upload — the source's bytes stream through the destination bucket's pipe
//! (its size limit, type policy and content checks, its quota) into an invisible staging write
//! that commits only when every check passed. The SHA-256 and the record are the destination's
//! own, computed again from the bytes, never copied from the source's record.
//!
//! - `x-amz-metadata-directive`: `COPY` (default: the source's type and stored headers) or
//!   `REPLACE` (the request's); `x-amz-tagging-directive` likewise for tags.
//! - `x-amz-copy-source-if-match` / `-if-none-match` / `-if-modified-since` /
//!   `-if-unmodified-since`: 412 when they do not hold, as S3 answers.
//! - A tenant key is confined to its prefix on both sides.
//! - Copying an object onto itself without changing anything is refused (400 InvalidRequest),
//!   as S3 does.

use std::sync::Arc;

use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Response, header};

use super::Ctx;
use super::object::{declared_type, refuse_client_encryption, write_condition};
use crate::error::{Error, Result};
use crate::http::{Body, full, header_str};
use crate::ingest;
use crate::metadata::ObjectRecord;
use crate::storage::Storage;
use crate::upload::put::{Committed, Target, ingest_and_commit};

/// The source an `x-amz-copy-source` header names: `[/]bucket/key`, percent-encoded.
pub(crate) fn copy_source(h: &HeaderMap) -> Result<(String, String)> {
    let raw = header_str(h, "x-amz-copy-source")
        .ok_or(Error::InvalidArgument("x-amz-copy-source is required."))?;
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    if query.split('&').any(|p| {
        p.strip_prefix("versionId=")
            .is_some_and(|v| !v.is_empty() && v != "null")
    }) {
        return Err(Error::NotImplemented);
    }
    let decoded = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| Error::InvalidArgument("x-amz-copy-source is not valid UTF-8."))?;
    let (bucket, key) = decoded
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or(Error::InvalidArgument(
            "x-amz-copy-source must be bucket/key.",
        ))?;
    crate::upload::validate_key(key)?;
    Ok((bucket.to_string(), key.to_string()))
}

/// `x-amz-copy-source-if-*` against the source version: 412 when one does not hold.
pub(crate) fn source_conditions(h: &HeaderMap, rec: &ObjectRecord) -> Result<()> {
    let etag_in = |list: &str| super::object::etag_matches(list, &rec.etag);
    let secs = |ms: i64| ms / 1000;
    let date = |name: &str| {
        header_str(h, name)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(|t| secs(crate::clock::to_ms(t)))
    };
    let modified = secs(rec.committed_at_ms);
    let if_match = header_str(h, "x-amz-copy-source-if-match");
    let if_none = header_str(h, "x-amz-copy-source-if-none-match");
    if if_match.is_some_and(|v| !etag_in(v)) || if_none.is_some_and(etag_in) {
        return Err(Error::PreconditionFailed);
    }
    // As S3: a matching If-Match wins over If-Unmodified-Since, and a non-matching
    // If-None-Match over If-Modified-Since.
    if if_match.is_none()
        && date("x-amz-copy-source-if-unmodified-since").is_some_and(|t| modified > t)
    {
        return Err(Error::PreconditionFailed);
    }
    if if_none.is_none()
        && date("x-amz-copy-source-if-modified-since").is_some_and(|t| modified <= t)
    {
        return Err(Error::PreconditionFailed);
    }
    Ok(())
}

/// Whether a directive header says `REPLACE` (`COPY`, the default, otherwise).
fn replaces(h: &HeaderMap, name: &str) -> Result<bool> {
    match header_str(h, name).map(str::to_ascii_uppercase).as_deref() {
        None | Some("COPY") => Ok(false),
        Some("REPLACE") => Ok(true),
        Some(_) => Err(Error::InvalidArgument("A directive is COPY or REPLACE.")),
    }
}

/// The source's committed version, after the caller's scope and the conditions.
pub(crate) async fn source(ctx: &Ctx) -> Result<(String, String, ObjectRecord)> {
    let h = &ctx.parts.headers;
    let (src_bucket, src_key) = copy_source(h)?;
    super::check_scope(ctx.scope.as_deref(), &src_key)?;
    ctx.state.bucket(&src_bucket)?;
    let rec = ctx
        .state
        .meta
        .current(&src_bucket, &src_key)
        .await?
        .ok_or(Error::NoSuchKey)?;
    source_conditions(h, &rec)?;
    Ok((src_bucket, src_key, rec))
}

/// The source's bytes (or a range of them) as body frames for the pipe.
pub(crate) async fn source_frames(
    state: &crate::state::AppState,
    bucket: &str,
    rec: &ObjectRecord,
    range: Option<std::ops::Range<u64>>,
) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin + use<>> {
    let obj = state
        .storage
        .get(&Storage::path_for(bucket, &rec.id), range)
        .await?;
    Ok(obj.stream.map_err(Error::from))
}

/// CopyObject.
pub async fn copy_object(ctx: Ctx, bucket: &str, key: &str) -> Result<Response<Body>> {
    let started = std::time::Instant::now();
    let state = Arc::clone(&ctx.state);
    let h = &ctx.parts.headers;
    refuse_client_encryption(h)?;
    let condition = write_condition(h)?;
    let (src_bucket, src_key, rec) = source(&ctx).await?;
    let replace_meta = replaces(h, "x-amz-metadata-directive")?;
    let replace_tags = replaces(h, "x-amz-tagging-directive")?;
    if src_bucket == bucket && src_key == key && !replace_meta && !replace_tags {
        return Err(Error::InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata or tags.",
        ));
    }
    let bcfg = state.bucket(bucket)?;
    let opaque = bcfg.types == crate::config::TypesMode::Any;
    // The type the destination is asked to hold: the source's, or the request's.
    let asked = if replace_meta {
        declared_type(h)?
    } else {
        Some(rec.content_type.clone())
    };
    let headers = if replace_meta {
        super::object_headers::from_request(h)?
    } else {
        rec.headers.clone()
    };
    let tags = if replace_tags {
        super::tagging::from_header(h)?
    } else {
        rec.tags.clone()
    };
    let mut exp = if opaque {
        crate::upload::expectations(bcfg, None)
    } else {
        crate::upload::expectations(bcfg, asked.clone())
    };
    exp.length = Some(rec.size);
    let stored_type = opaque.then(|| crate::upload::opaque_type(asked.as_deref()));
    let pipe = ingest::Pipe::new(exp)?;
    let owner = ctx.verified.access_key_id().to_string();
    let _permit = crate::upload::admit::upload_permit(&state, &owner).await?;
    crate::upload::put::precheck(&state, bucket, key, condition.as_ref()).await?;
    let frames = source_frames(&state, &src_bucket, &rec, None).await?;
    let Committed { etag, .. } = ingest_and_commit(
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
        frames,
        None,
        pipe,
        bcfg.max_object_bytes,
        started,
    )
    .await?;
    let committed = state
        .meta
        .current(bucket, key)
        .await?
        .map(|r| r.committed_at_ms)
        .unwrap_or_else(crate::clock::now_ms);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag></CopyObjectResult>",
        crate::clock::iso8601(crate::clock::from_ms(committed)),
        super::xml::escape(&etag)
    );
    Ok(xml_ok(xml))
}

/// `x-amz-copy-source-range: bytes=first-last` (both inclusive, within the source).
fn copy_range(h: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>> {
    let Some(v) = header_str(h, "x-amz-copy-source-range") else {
        return Ok(None);
    };
    let bad = || Error::InvalidArgument("x-amz-copy-source-range must be bytes=first-last.");
    let (a, b) = v
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(Error::InvalidRange);
    }
    Ok(Some(first..last + 1))
}

/// UploadPartCopy: part `part_number` of `upload` from a committed object (or a range of it),
/// through the part's pipe and budget like any part.
pub(crate) async fn upload_part_copy(
    ctx: &Ctx,
    upload: &crate::metadata::MultipartUpload,
    part_number: u32,
    mut exp: ingest::Expectations,
) -> Result<Response<Body>> {
    let state = Arc::clone(&ctx.state);
    let (src_bucket, _, rec) = source(ctx).await?;
    let range = copy_range(&ctx.parts.headers, rec.size)?;
    exp.length = Some(range.as_ref().map_or(rec.size, |r| r.end - r.start));
    let pipe = ingest::Pipe::new(exp)?;
    let _permit = crate::upload::admit::upload_permit(&state, &upload.owner).await?;
    let frames = source_frames(&state, &src_bucket, &rec, range).await?;
    let bcfg = state.bucket(&upload.bucket)?;
    let stored = crate::upload::multipart::store_part(
        &state,
        upload,
        part_number,
        frames,
        None,
        pipe,
        bcfg.max_object_bytes,
    )
    .await?;
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyPartResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag></CopyPartResult>",
        crate::clock::iso8601(std::time::SystemTime::now()),
        super::xml::escape(&stored.etag)
    );
    Ok(xml_ok(xml))
}

fn xml_ok(xml: String) -> Response<Body> {
    let mut resp = Response::new(full(xml));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn copy_sources_are_parsed_like_s3() {
        let h = with("x-amz-copy-source", "/src/a%20b/c%C3%A9.pdf");
        assert_eq!(
            copy_source(&h).unwrap(),
            ("src".to_string(), "a b/cé.pdf".to_string())
        );
        let h = with("x-amz-copy-source", "src/k?versionId=null");
        assert_eq!(copy_source(&h).unwrap().1, "k");
        let h = with("x-amz-copy-source", "src/k?versionId=3HL4kqtJ");
        assert!(matches!(copy_source(&h), Err(Error::NotImplemented)));
        for bad in ["/src", "src/", "/"] {
            assert!(
                copy_source(&with("x-amz-copy-source", bad)).is_err(),
                "{bad}"
            );
        }
    }
}
