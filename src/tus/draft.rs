//! The IETF "Resumable Uploads for HTTP" draft (draft-ietf-httpbis-resumable-upload) on the
//! same resources as tus, selected by `Upload-Draft-Interop-Version`: interop version 6
//! (drafts -04/-05, what today's iOS and tus-js-client `ietf-draft-05` speak) and 8 (drafts
//! -09 to -11).
//!
//! - Creation: `POST /v1/tus/` with `Upload-Complete: ?0|?1`, optionally `Upload-Length`, the
//!   representation's `Content-Type` (and `Content-Disposition` filename) and `Repr-Digest`
//!   (`sha-256`, pinned), with or without the first bytes.
//! - Offset: `HEAD` → 204 with `Upload-Offset`, `Upload-Complete`, `Upload-Length`, `Upload-Limit`.
//! - Append: `PATCH` with `Content-Type: application/partial-upload`, `Upload-Offset`,
//!   `Upload-Complete`; `?1` ends the upload at the offset after this body.
//! - Cancel: `DELETE` → 204.
//!
//! hyper cannot send the interim `104 Upload Resumption Supported` response, so a client
//! learns the upload's URL only from the final creation response: clients should create with
//! `Upload-Complete: ?0` and an empty body (the draft's "careful creation"), then append.
//! Errors of the draft's own kinds are RFC 9457 problem documents.

use std::sync::Arc;

use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;

use super::{PREFIX, number};
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::http::{Body, ConnInfo, full, header_str, incoming_frames, status_response};
use crate::metadata::resumable::{Concat, ResumableStatus, ResumableUpload};
use crate::state::AppState;
use crate::upload::resumable::{self, Append, NewResumable};

/// The media type of an append body.
const PARTIAL_UPLOAD: &str = "application/partial-upload";
/// Problem types (RFC 9457) the draft registers.
const MISMATCHING_OFFSET: &str =
    "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";
const COMPLETED_UPLOAD: &str = "https://iana.org/assignments/http-problem-types#completed-upload";
const INCONSISTENT_LENGTH: &str =
    "https://iana.org/assignments/http-problem-types#inconsistent-upload-length";

/// The interop versions spoken.
pub const VERSIONS: [u8; 2] = [6, 8];

/// A structured-field Boolean (`?1`, `?0`).
fn boolean(h: &HeaderMap, name: &str) -> Result<Option<bool>> {
    match header_str(h, name).map(str::trim) {
        None if h.contains_key(name) => Err(Error::InvalidArgument("A boolean header is invalid.")),
        None => Ok(None),
        Some("?1") => Ok(Some(true)),
        Some("?0") => Ok(Some(false)),
        Some(_) => Err(Error::InvalidArgument("A boolean header is invalid.")),
    }
}

fn sf_bool(b: bool) -> HeaderValue {
    HeaderValue::from_static(if b { "?1" } else { "?0" })
}

/// `Upload-Limit`: the most bytes an upload may have and how long it has left; the lifetime
/// key is `expires` in interop 6 and `max-age` in 8.
pub fn limit(state: &AppState, version: u8, u: Option<&ResumableUpload>) -> Option<HeaderValue> {
    let max = state
        .config
        .bucket(&state.config.api.bucket)?
        .max_object_bytes;
    let left_ms = match u {
        Some(u) => resumable::expires_at_ms(state, u).saturating_sub(crate::clock::now_ms()),
        None => i64::try_from(state.config.api.resumable_expiry_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX),
    };
    let key = if version == 6 { "expires" } else { "max-age" };
    HeaderValue::from_str(&format!("max-size={max}, {key}={}", left_ms.max(0) / 1000)).ok()
}

fn common(h: &mut HeaderMap, version: u8) {
    h.insert(
        "upload-draft-interop-version",
        HeaderValue::from(u16::from(version)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// `OPTIONS`: the limits, and that appends are `application/partial-upload`.
pub fn options(state: &AppState, version: u8) -> Response<Body> {
    let mut resp = status_response(StatusCode::NO_CONTENT);
    let h = resp.headers_mut();
    common(h, version);
    h.insert("accept-patch", HeaderValue::from_static(PARTIAL_UPLOAD));
    if let Some(v) = limit(state, version, None) {
        h.insert("upload-limit", v);
    }
    resp
}

/// The `sha-256` member of a `Repr-Digest` (`sha-256=:BASE64:`), as hex.
fn repr_digest(h: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = header_str(h, "repr-digest") else {
        return Ok(None);
    };
    for member in v.split(',') {
        let Some((alg, value)) = member.trim().split_once('=') else {
            return Err(Error::InvalidDigest);
        };
        if alg.trim() != "sha-256" {
            continue; // Other algorithms are not checked (the SHA-256 always is).
        }
        let b64 = value
            .trim()
            .strip_prefix(':')
            .and_then(|s| s.strip_suffix(':'))
            .ok_or(Error::InvalidDigest)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Error::InvalidDigest)?;
        if raw.len() != 32 {
            return Err(Error::InvalidDigest);
        }
        return Ok(Some(hex::encode(raw)));
    }
    Ok(None)
}

/// The `filename` parameter of a `Content-Disposition`, if any (quoted or token form).
fn disposition_filename(h: &HeaderMap) -> Option<String> {
    let v = header_str(h, "content-disposition")?;
    v.split(';').skip(1).find_map(|p| {
        let (k, val) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| val.trim().trim_matches('"').to_string())
    })
}

fn created(
    state: &AppState,
    version: u8,
    base: &str,
    u: &ResumableUpload,
    offset: u64,
) -> Response<Body> {
    let mut resp = status_response(StatusCode::CREATED);
    let h = resp.headers_mut();
    common(h, version);
    if let Ok(v) = HeaderValue::from_str(&format!("{base}{PREFIX}{}", u.id)) {
        h.insert(header::LOCATION, v);
    }
    h.insert("upload-offset", HeaderValue::from(offset));
    h.insert(
        "upload-complete",
        sf_bool(u.status == ResumableStatus::Complete),
    );
    if let Some(v) = limit(state, version, Some(u)) {
        h.insert("upload-limit", v);
    }
    resp
}

/// Creation (`POST /v1/tus/`).
pub async fn create(
    state: &Arc<AppState>,
    version: u8,
    who: &Principal,
    h: &HeaderMap,
    body: Incoming,
    conn: ConnInfo,
    started: std::time::Instant,
) -> Result<Response<Body>> {
    let complete = boolean(h, "upload-complete")?
        .ok_or(Error::InvalidArgument("Upload-Complete is required."))?;
    let mut length = number(h, "upload-length")?;
    let content_length = crate::http::known_length(&body);
    if complete && let Some(n) = content_length {
        match length {
            Some(l) if l != n => return Err(Error::InconsistentLength),
            _ => length = Some(n),
        }
    }
    let content_type = header_str(h, "content-type").map(str::to_string);
    let filename =
        crate::upload::sanitize_filename(disposition_filename(h).as_deref().unwrap_or("file"));
    let u = resumable::create(
        state,
        who,
        NewResumable {
            length,
            content_type,
            filename,
            metadata: String::new(),
            sha256: repr_digest(h)?,
            concat: Concat::None,
        },
        None,
    )
    .await?;
    let base = crate::http::base_url(&state.config.api.public_url, h, conn)?;
    if content_length == Some(0) && !complete {
        return Ok(created(state, version, &base, &u, 0));
    }
    let done = resumable::append(
        state,
        who,
        &u,
        Append {
            offset: 0,
            length: None,
            content_length,
            checksum: None,
            md5: None,
            last: complete,
            frames: incoming_frames(body),
        },
        started,
    )
    .await?;
    Ok(created(state, version, &base, &done.upload, done.offset))
}

/// Offset retrieval (`HEAD`), for `u` at `offset` (see [`resumable::settle`]).
pub fn head(state: &AppState, version: u8, u: &ResumableUpload, offset: u64) -> Response<Body> {
    let mut resp = status_response(StatusCode::NO_CONTENT);
    let h = resp.headers_mut();
    common(h, version);
    h.insert("upload-offset", HeaderValue::from(offset));
    h.insert(
        "upload-complete",
        sf_bool(u.status == ResumableStatus::Complete),
    );
    if let Some(n) = u.length {
        h.insert("upload-length", HeaderValue::from(n));
    }
    if let Some(v) = limit(state, version, Some(u)) {
        h.insert("upload-limit", v);
    }
    resp
}

/// Append (`PATCH`).
pub async fn append(
    state: &Arc<AppState>,
    version: u8,
    who: &Principal,
    u: &ResumableUpload,
    h: &HeaderMap,
    body: Incoming,
    started: std::time::Instant,
) -> Result<Response<Body>> {
    let partial = header_str(h, "content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(PARTIAL_UPLOAD))
    });
    if !partial {
        return Err(Error::ContentTypeNotAllowed);
    }
    let offset =
        number(h, "upload-offset")?.ok_or(Error::InvalidArgument("Upload-Offset is required."))?;
    // Interop 8 requires Upload-Complete on every append; 6 only on the last.
    let complete = match boolean(h, "upload-complete")? {
        Some(b) => b,
        None if version == 6 => false,
        None => return Err(Error::InvalidArgument("Upload-Complete is required.")),
    };
    let length = number(h, "upload-length")?;
    let done = resumable::append(
        state,
        who,
        u,
        Append {
            offset,
            length,
            content_length: crate::http::known_length(&body),
            checksum: None,
            md5: None,
            last: complete,
            frames: incoming_frames(body),
        },
        started,
    )
    .await?;
    let mut resp = status_response(StatusCode::NO_CONTENT);
    let rh = resp.headers_mut();
    common(rh, version);
    rh.insert("upload-offset", HeaderValue::from(done.offset));
    rh.insert(
        "upload-complete",
        sf_bool(done.upload.status == ResumableStatus::Complete),
    );
    Ok(resp)
}

/// Errors as a draft client reads them: the draft's own kinds as problem documents, anything
/// else with its status and a one-line text.
pub fn error_response(
    version: u8,
    limit: Option<HeaderValue>,
    e: &Error,
    method: &Method,
    request_id: &str,
) -> Response<Body> {
    let problem = match e {
        Error::OffsetMismatch { expected, provided } => Some(serde_json::json!({
            "type": MISMATCHING_OFFSET,
            "title": "offset from request does not match offset of resource",
            "expected-offset": expected,
            "provided-offset": provided,
        })),
        Error::UploadComplete => Some(serde_json::json!({
            "type": COMPLETED_UPLOAD,
            "title": "upload is already completed",
        })),
        Error::InconsistentLength => Some(serde_json::json!({
            "type": INCONSISTENT_LENGTH,
            "title": "inconsistent length values for upload",
        })),
        _ => None,
    };
    let status = match e {
        Error::BadDigest | Error::ContentSha256Mismatch => StatusCode::BAD_REQUEST,
        other => other.api_status(),
    };
    let (content_type, body) = match (&problem, *method == Method::HEAD) {
        (_, true) => ("text/plain; charset=utf-8", String::new()),
        (Some(p), false) => ("application/problem+json", p.to_string()),
        (None, false) => (
            "text/plain; charset=utf-8",
            format!("{}: {} (request {request_id})\n", e.code(), e.message()),
        ),
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    common(h, version);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Error::OffsetMismatch { expected, .. } = e {
        h.insert("upload-offset", HeaderValue::from(*expected));
        h.insert("upload-complete", sf_bool(false));
    }
    if matches!(e, Error::EntityTooLarge)
        && let Some(v) = limit
    {
        h.insert("upload-limit", v);
    }
    if matches!(e, Error::Unauthorized) {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(secs) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_booleans_and_digests() {
        let mut h = HeaderMap::new();
        h.insert("upload-complete", HeaderValue::from_static("?1"));
        assert_eq!(boolean(&h, "upload-complete").expect("b"), Some(true));
        h.insert("upload-complete", HeaderValue::from_static("true"));
        assert!(boolean(&h, "upload-complete").is_err());
        let sha = [7u8; 32];
        let v = format!(
            "sha-512=:AAAA:, sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(sha)
        );
        h.insert("repr-digest", HeaderValue::from_str(&v).expect("v"));
        assert_eq!(repr_digest(&h).expect("d"), Some(hex::encode(sha)));
        h.insert("repr-digest", HeaderValue::from_static("sha-256=:AAAA:"));
        assert!(matches!(repr_digest(&h), Err(Error::InvalidDigest)));
        h.insert(
            "content-disposition",
            HeaderValue::from_static("attachment; filename=\"scan.pdf\""),
        );
        assert_eq!(disposition_filename(&h).as_deref(), Some("scan.pdf"));
    }
}
