//! The upload lifecycle every front end shares, protocol-neutral: it knows nothing of XML, JSON
//! or HTTP framing. S3 (PUT, POST forms, multipart), the control API's links, and every later
//! way in (resumable uploads, web pages, content checks) go through it.
//!
//! ```text
//! expectations(bucket) ──► ingest::Pipe ──► put::ingest_and_commit ──► committed row
//!                                            │  pending row + staged write (invisible)
//!                                            └─ failure / drop: staging aborted, row removed
//! link::claim ──► put (through the link) ──► commit with link, file, token, quota, event
//!            └──► failure: LinkGuard releases the link for a retry until it expires
//! multipart::store_part … multipart::complete ──► assemble (full SHA-256) ──► commit as a put
//! delete::delete_key ──► retire current version ──► remove bytes (sweeper retries)
//! quota: limits held in the commit transaction, warning events after it
//! ```
//!
//! A new content check belongs in [`expectations`] (what the pipe enforces for a bucket) or as
//! a stage between the staged write and the commit in [`put`]; a new ingest protocol builds a
//! frame stream and calls [`put::ingest_and_commit`] (or the multipart functions).

pub mod admit;
pub mod delete;
pub mod event;
pub mod link;
pub mod malware;
pub mod multipart;
pub mod names;
pub mod put;
pub mod quota;
pub mod receipt;
pub mod reconcile;
pub mod resumable;
pub mod text_index;
pub mod transition;
pub mod verdict;

use crate::config::{BucketConfig, EtagMode};
use crate::error::{Error, Result};
use crate::ingest::Expectations;
pub use names::{MAX_FILENAME, sanitize_filename};

/// Longest key accepted, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Refuses keys that are empty, too long (`KeyTooLong`, as S3), contain control characters
/// (`InvalidUri`, as S3) or backslashes, or have `.`/`..` segments (which some backends and
/// tools would resolve to another key).
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidObjectName);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLong);
    }
    if key.chars().any(char::is_control) {
        return Err(Error::InvalidUri);
    }
    if key.contains('\\') {
        return Err(Error::InvalidObjectName);
    }
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(Error::InvalidObjectName);
    }
    Ok(())
}

/// What the ingest pipe enforces for an upload into `bucket`: its byte limit, its allowed
/// types (the first bytes must sniff as one, matching `declared_type` when one was declared),
/// and MD5 when the bucket's ETags are MD5s. The one place a bucket's rules become pipe
/// expectations; callers narrow it (a link pins size and type, a later multipart part skips
/// the type check) and add what their protocol declared (lengths, digests, checksums).
pub fn expectations(bucket: &BucketConfig, declared_type: Option<String>) -> Expectations {
    if bucket.types == crate::config::TypesMode::Any {
        // Opaque data: the type is not checked (what the bytes are still picks the content
        // checks, below).
        return Expectations {
            max_bytes: bucket.max_object_bytes,
            min_bytes: bucket.min_object_bytes,
            enforce_type: false,
            want_md5: bucket.etag == EtagMode::Md5,
            checks: Some(crate::scan::Policy::of(bucket)),
            ..Default::default()
        };
    }
    Expectations {
        max_bytes: bucket.max_object_bytes,
        allowed_types: bucket.allowed_types.clone(),
        declared_type,
        enforce_type: true,
        want_md5: bucket.etag == EtagMode::Md5,
        min_bytes: bucket.min_object_bytes,
        checks: Some(crate::scan::Policy::of(bucket)),
        ..Default::default()
    }
}

/// The type an object of an opaque (`types = "any"`) bucket is stored with: the declared one
/// as given (when it is a plausible header value), or `application/octet-stream`.
pub fn opaque_type(declared: Option<&str>) -> String {
    match declared.map(str::trim) {
        Some(t)
            if !t.is_empty()
                && t.len() <= 256
                && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            t.to_string()
        }
        _ => "application/octet-stream".to_string(),
    }
}

/// The type a client declared for an upload into `bucket`, as the upload will be held to it:
/// normalised and one the bucket allows when types are checked; as given (or
/// `application/octet-stream`) in an opaque bucket.
pub fn declared_type_for(bucket: &BucketConfig, declared: &str) -> Result<String> {
    if bucket.types == crate::config::TypesMode::Any {
        return Ok(opaque_type(Some(declared)));
    }
    crate::mime::normalize(declared)
        .filter(|t| bucket.allowed_types.contains(t))
        .ok_or(Error::ContentTypeNotAllowed)
}

/// The expectations for an upload through a link that pins `size` and `content_type`.
pub fn link_expectations(bucket: &BucketConfig, size: u64, content_type: &str) -> Expectations {
    Expectations {
        max_bytes: size,
        allowed_types: vec![content_type.to_string()],
        ..expectations(bucket, Some(content_type.to_string()))
    }
}

/// When a file created now expires: `bucket.retention_days` after `now_ms`, or sooner if the
/// minting asked (`requested_secs`); `None`: kept until deleted.
pub fn file_expiry(bucket: &BucketConfig, requested_secs: Option<i64>, now_ms: i64) -> Option<i64> {
    let cap = (bucket.retention_days > 0).then(|| i64::from(bucket.retention_days) * 86_400);
    let secs = match (cap, requested_secs) {
        (Some(c), Some(r)) => Some(c.min(r)),
        (c, r) => c.or(r),
    }?;
    Some(now_ms.saturating_add(secs.saturating_mul(1000)))
}
