//! Upload links (`POST /v1/uploads`, new versions via `POST /v1/files/{id}/versions`) and
//! anonymous upload tokens (`/v1/upload-tokens`).
//!
//! A link is a presigned PUT that pins the method, the key (`{tenant}/{file}/{version}`, all
//! random: no filename, e-mail or user id ever appears in a URL or key), the expiry, the exact
//! size and content type (signed headers) and, when given, the SHA-256 (signed
//! `x-amz-content-sha256`, checked against the bytes at the end of the stream). It works once:
//! see `crate::upload::link` for the claim/commit/release cycle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode};
use serde::Deserialize;

use super::{files, json};
use crate::auth::links::{self, Mint, UPLOAD_PARAM};
use crate::auth::principal::{Principal, Via, hash_secret};
use crate::clock::iso8601;
use crate::error::{Error, Result};
use crate::http::Body;
use crate::metadata::control::{FileRecord, FileStatus, LinkStatus, UploadLink, UploadToken};
use crate::state::AppState;
use crate::upload::multipart::PartRef;

/// `POST /v1/uploads` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// Display name; sanitized, kept in the record, used only for `Content-Disposition`.
    pub filename: Option<String>,
    pub content_type: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content, if the client knows it.
    pub sha256: Option<String>,
    /// String metadata (at most 32 keys).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Upload in this many parts (presigned part URLs plus a completion call) instead of one
    /// PUT. Every part but the last must be at least `s3.min_part_bytes`.
    pub parts: Option<u32>,
    /// How the bytes are sent: `"put"` (default: one presigned PUT, or `parts`) or `"tus"` (a
    /// tus upload URL, already created and pinned to this request's size, type and hash;
    /// resumable, authenticated with the same credential).
    pub protocol: Option<String>,
    /// Days the file is kept (1..=36500), never longer than the bucket's `retention_days`.
    pub retain_days: Option<u32>,
}

use crate::upload::names;
pub use crate::upload::{MAX_FILENAME, sanitize_filename};

fn check_metadata(m: &BTreeMap<String, String>) -> Result<String> {
    if m.len() > 32 {
        return Err(Error::InvalidJson("At most 32 metadata keys are allowed."));
    }
    for (k, v) in m {
        if k.is_empty()
            || k.len() > 64
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidJson(
                "Metadata keys are 1-64 characters of a-z, 0-9, - and _.",
            ));
        }
        if v.len() > 256 || v.chars().any(char::is_control) {
            return Err(Error::InvalidJson(
                "Metadata values are at most 256 characters, no control characters.",
            ));
        }
    }
    serde_json::to_string(m).map_err(Error::internal)
}

fn hex_sha256(s: &str) -> Result<String> {
    let s = s.to_ascii_lowercase();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err(Error::InvalidJson("sha256 must be 64 hex characters."))
    }
}

/// Creates a link for a new file, or for a new version of `version_of`.
pub async fn create_upload(
    state: &Arc<AppState>,
    who: &Principal,
    req: CreateUpload,
    base_url: &str,
    version_of: Option<&str>,
) -> Result<Response<Body>> {
    if matches!(who.via, Via::Admin) {
        return Err(Error::AccessDenied("The admin token cannot upload."));
    }
    let api = &state.config.api;
    let bcfg = state
        .config
        .bucket(&api.bucket)
        .ok_or(Error::NoSuchBucket)?;
    let content_type = crate::upload::declared_type_for(bcfg, &req.content_type)?;
    if req.size == 0 {
        return Err(Error::InvalidJson("size must be at least 1."));
    }
    if req.size > bcfg.max_object_bytes {
        return Err(Error::EntityTooLarge);
    }
    if req.size < bcfg.min_object_bytes {
        return Err(Error::EntityTooSmall);
    }
    let sha256 = req.sha256.as_deref().map(hex_sha256).transpose()?;
    let metadata = check_metadata(&req.metadata.unwrap_or_default())?;
    let size = i64::try_from(req.size).map_err(|_| Error::EntityTooLarge)?;
    let token_id = match &who.via {
        Via::Token(t) => {
            if version_of.is_some() {
                return Err(Error::AccessDenied(
                    "An upload token cannot create versions.",
                ));
            }
            crate::upload::admit::token_allows(who, Some(&content_type), Some(req.size))?;
            Some(t.id.clone())
        }
        _ => None,
    };
    let now = crate::clock::now_ms();
    let file = match version_of {
        Some(file_id) => {
            let f = files::owned_file(state, who, file_id).await?;
            if f.status == FileStatus::Deleted {
                return Err(Error::NotFound);
            }
            f
        }
        None => {
            let mut meta = metadata;
            if let Via::Token(t) = &who.via {
                // Uploads through a token are tagged with the client id it was issued for.
                let mut m: BTreeMap<String, String> =
                    serde_json::from_str(&meta).unwrap_or_default();
                m.insert("client_id".into(), t.client_id.clone());
                meta = serde_json::to_string(&m).map_err(Error::internal)?;
            }
            FileRecord {
                id: crate::id::random_hex(16),
                tenant_id: who.tenant_id.clone(),
                owner: who.subject.clone(),
                bucket: api.bucket.clone(),
                filename: names::file_name(
                    bcfg,
                    api.filename_extension,
                    req.filename.as_deref().unwrap_or("file"),
                    &content_type,
                )?,
                metadata: meta,
                status: FileStatus::Pending,
                current_key: None,
                content_type: None,
                size: None,
                sha256: None,
                versions: 0,
                created_at_ms: now,
                updated_at_ms: now,
                scan: None,
                expires_at_ms: crate::upload::file_expiry(
                    bcfg,
                    match &who.via {
                        Via::Token(t) => t.file_ttl_secs,
                        _ => retain_secs(req.retain_days, "retain_days must be 1..=36500.")?,
                    },
                    now,
                ),
                legal_hold: false,
            }
        }
    };
    // A new file is inserted with its link (one transaction, shared with concurrent mints).
    let new_file = version_of.is_none().then(|| file.clone());
    let tus = match req.protocol.as_deref() {
        None | Some("put") => false,
        Some("tus") if req.parts.is_some() => {
            return Err(Error::InvalidJson("parts and protocol tus do not combine."));
        }
        Some("tus") if version_of.is_some() => {
            return Err(Error::InvalidJson("New versions are uploaded with PUT."));
        }
        Some("tus") => true,
        Some(_) => return Err(Error::InvalidJson("protocol is \"put\" or \"tus\".")),
    };
    // A resumable upload may take as long as resumable uploads may; a PUT link is short.
    let ttl = Duration::from_secs(if tus {
        api.resumable_expiry_secs
    } else {
        api.upload_link_ttl_secs
    });
    let link = UploadLink {
        id: crate::id::random_hex(16),
        tenant_id: who.tenant_id.clone(),
        owner: who.subject.clone(),
        file_id: file.id.clone(),
        bucket: api.bucket.clone(),
        key: format!(
            "{}/{}/{}",
            who.tenant_id,
            file.id,
            crate::id::random_hex(16)
        ),
        size,
        content_type: content_type.clone(),
        sha256: sha256.clone(),
        token_id,
        status: LinkStatus::Pending,
        expires_at_ms: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        claimed_until_ms: None,
        created_at_ms: now,
        completed_at_ms: None,
    };
    state
        .mints
        .write(crate::metadata::control::Minted {
            file: new_file,
            link: link.clone(),
        })
        .await?;
    if tus {
        let upload = crate::upload::resumable::create(
            state,
            who,
            crate::upload::resumable::NewResumable {
                length: Some(req.size),
                content_type: Some(content_type.clone()),
                filename: file.filename.clone(),
                metadata: String::new(),
                sha256: sha256.clone(),
                concat: crate::metadata::resumable::Concat::None,
            },
            Some(&link),
        )
        .await?;
        return Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({
                "upload_id": link.id,
                "file_id": file.id,
                "protocol": "tus",
                "url": format!("{base_url}/v1/tus/{}", upload.id),
                "headers": { "Tus-Resumable": "1.0.0" },
                "expires_at": iso8601(crate::clock::from_ms(link.expires_at_ms)),
            }),
        ));
    }
    if let Some(n) = req.parts.filter(|n| *n > 1) {
        return multipart_link(state, &link, n, base_url, ttl, &file.id).await;
    }
    let mut headers = vec![
        ("content-length".to_string(), req.size.to_string()),
        ("content-type".to_string(), content_type.clone()),
    ];
    if let Some(h) = &sha256 {
        headers.push(("x-amz-content-sha256".to_string(), h.clone()));
    }
    let url = links::mint(
        &state.credentials.link_keys,
        &state.config.s3.region,
        Mint {
            base_url,
            method: http::Method::PUT,
            bucket: &link.bucket,
            key: &link.key,
            query: vec![(UPLOAD_PARAM.to_string(), link.id.clone())],
            headers: headers.clone(),
            ttl,
        },
    )?;
    let send: BTreeMap<String, String> = headers
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "content-length" => ("Content-Length".to_string(), v),
            "content-type" => ("Content-Type".to_string(), v),
            _ => (k, v),
        })
        .collect();
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({
            "upload_id": link.id,
            "file_id": file.id,
            "url": url,
            "method": "PUT",
            "headers": send,
            "expires_at": iso8601(crate::clock::from_ms(link.expires_at_ms)),
        }),
    ))
}

/// The part sizes of a `size`-byte object split into `n` parts of equal size (the last smaller).
fn part_sizes(size: u64, n: u32) -> Vec<u64> {
    let n = u64::from(n);
    let each = size.div_ceil(n);
    (0..n)
        .map(|i| each.min(size.saturating_sub(i * each)))
        .filter(|s| *s > 0)
        .collect()
}

/// A link uploaded in parts: an S3 multipart upload owned by the link (`link:<id>`, same id),
/// one presigned URL per part pinning its number and exact size, and a completion call.
async fn multipart_link(
    state: &Arc<AppState>,
    link: &UploadLink,
    n: u32,
    base_url: &str,
    ttl: Duration,
    file_id: &str,
) -> Result<Response<Body>> {
    let size = u64::try_from(link.size).map_err(|_| Error::internal("negative size"))?;
    let sizes = part_sizes(size, n);
    let min = state.config.s3.min_part_bytes;
    if n > state.config.s3.max_parts
        || sizes.len() != n as usize
        || sizes[..sizes.len() - 1].iter().any(|s| *s < min)
    {
        return Err(Error::InvalidJson(
            "parts: every part but the last must be at least s3.min_part_bytes.",
        ));
    }
    let now = crate::clock::now_ms();
    state
        .meta
        .create_multipart(&crate::metadata::MultipartUpload {
            upload_id: link.id.clone(),
            bucket: link.bucket.clone(),
            key: link.key.clone(),
            owner: format!("link:{}", link.id),
            content_type: Some(link.content_type.clone()),
            checksum_algorithm: None,
            checksum_type: None,
            created_at_ms: now,
            last_activity_ms: now,
            headers: Default::default(),
            completed_etag: None,
            tags: Default::default(),
        })
        .await?;
    let mut parts = Vec::new();
    for (i, part_size) in sizes.iter().enumerate() {
        let number = (i + 1).to_string();
        let url = links::mint(
            &state.credentials.link_keys,
            &state.config.s3.region,
            Mint {
                base_url,
                method: http::Method::PUT,
                bucket: &link.bucket,
                key: &link.key,
                query: vec![
                    ("partNumber".to_string(), number.clone()),
                    ("uploadId".to_string(), link.id.clone()),
                    (UPLOAD_PARAM.to_string(), link.id.clone()),
                ],
                headers: vec![("content-length".to_string(), part_size.to_string())],
                ttl,
            },
        )?;
        parts.push(serde_json::json!({
            "part_number": i + 1,
            "url": url,
            "method": "PUT",
            "headers": { "Content-Length": part_size.to_string() },
        }));
    }
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({
            "upload_id": link.id,
            "file_id": file_id,
            "parts": parts,
            "complete": { "method": "POST", "path": format!("/v1/uploads/{}/complete", link.id) },
            "expires_at": iso8601(crate::clock::from_ms(link.expires_at_ms)),
        }),
    ))
}

/// `POST /v1/uploads/{id}/complete` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    pub parts: Vec<CompletedPart>,
}

/// One uploaded part: its number and the ETag its PUT returned.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// Completes a link uploaded in parts: the link is claimed (once), the parts assembled and
/// checked (size, type, hash), and everything commits in one transaction; on failure the link
/// is released for another completion attempt before it expires.
pub async fn complete_upload(
    state: &Arc<AppState>,
    who: &Principal,
    id: &str,
    req: CompleteUpload,
) -> Result<Response<Body>> {
    let link = crate::upload::link::completable(state, id, &who.tenant_id, &who.subject).await?;
    let upload = state.meta.multipart(id).await?.ok_or(Error::NotFound)?;
    if req.parts.is_empty() || req.parts.len() > state.config.s3.max_parts as usize {
        return Err(Error::InvalidJson("parts must list the uploaded parts."));
    }
    crate::upload::link::claim_for_completion(state, &link.id).await?;
    let listed: Vec<PartRef> = req
        .parts
        .into_iter()
        .map(|p| PartRef {
            part_number: p.part_number,
            etag: p.etag.trim_matches('"').to_string(),
            checksums: Vec::new(),
        })
        .collect();
    let started = std::time::Instant::now();
    match crate::upload::multipart::complete(
        state,
        &upload,
        &listed,
        Some(&link.tenant_id),
        Some(&link),
        None,
        started,
    )
    .await
    {
        Ok(etag) => {
            let mut out = serde_json::json!({
                "upload_id": link.id,
                "file_id": link.file_id,
                "status": "complete",
                "etag": etag,
            });
            if let Some(obj) = state.meta.current(&link.bucket, &link.key).await? {
                let claims = crate::upload::receipt::claims(
                    &link,
                    obj.size,
                    &obj.sha256,
                    &obj.content_type,
                    obj.committed_at_ms,
                    obj.scan.as_deref(),
                );
                if let Some(r) = crate::upload::receipt::sign(state, &claims) {
                    out["receipt"] = serde_json::to_value(r).unwrap_or_default();
                }
            }
            Ok(json(StatusCode::OK, &out))
        }
        Err(e) => {
            crate::upload::link::release_after_failure(state, &link, &e).await?;
            Err(e)
        }
    }
}

/// `GET /v1/uploads/{id}`: the link's state, as its owner sees it.
pub async fn get_upload(
    state: &Arc<AppState>,
    who: &Principal,
    id: &str,
) -> Result<Response<Body>> {
    let link = state.control.link(id).await?.ok_or(Error::NotFound)?;
    if link.tenant_id != who.tenant_id || link.owner != who.subject {
        return Err(Error::NotFound);
    }
    // A token holder sees the links of its own token, not every link of its issuer.
    if let Via::Token(t) = &who.via
        && link.token_id.as_deref() != Some(t.id.as_str())
    {
        return Err(Error::NotFound);
    }
    let now = crate::clock::now_ms();
    let status = match link.status {
        LinkStatus::Pending if link.expires_at_ms < now => "expired",
        LinkStatus::Uploading
            if link.claimed_until_ms.unwrap_or(0) < now && link.expires_at_ms < now =>
        {
            "expired"
        }
        s => s.as_str(),
    };
    let mut out = serde_json::json!({
        "upload_id": link.id,
        "file_id": link.file_id,
        "status": status,
        "size": link.size,
        "declared_content_type": link.content_type,
        "expires_at": iso8601(crate::clock::from_ms(link.expires_at_ms)),
    });
    if link.status == LinkStatus::Complete
        && let Some(obj) = state.meta.current(&link.bucket, &link.key).await?
    {
        let claims = crate::upload::receipt::claims(
            &link,
            obj.size,
            &obj.sha256,
            &obj.content_type,
            obj.committed_at_ms,
            obj.scan.as_deref(),
        );
        if let Some(r) = crate::upload::receipt::sign(state, &claims) {
            out["receipt"] = serde_json::to_value(r).unwrap_or_default();
        }
        out["sha256"] = obj.sha256.into();
        out["size"] = obj.size.into();
        out["content_type"] = obj.content_type.into();
        out["scan"] = files::verdict_json(obj.scan.as_deref());
        out["completed_at"] = iso8601(crate::clock::from_ms(obj.committed_at_ms)).into();
    }
    Ok(json(StatusCode::OK, &out))
}

/// `POST /v1/upload-tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The client the token is for; tags its uploads.
    pub client_id: String,
    /// Lifetime in seconds (default 900).
    pub expires_in: Option<u64>,
    /// Uploads allowed (default 1).
    pub max_uploads: Option<i64>,
    /// Total bytes allowed over all uploads (default: the bucket limit).
    pub max_bytes: Option<i64>,
    /// Allowed content types (default: the bucket's).
    pub allowed_types: Option<Vec<String>>,
    /// Most bytes of one file (default: the bucket limit).
    pub max_file_bytes: Option<i64>,
    /// A note to the holder, shown on the drop page (plain text, at most 500 characters).
    pub note: Option<String>,
    /// Who asks for the files, as the drop page names them (plain text, at most 100
    /// characters; default: the issuing user's name, or the tenant's).
    pub requester: Option<String>,
    /// An address to notify about uploads through the token.
    pub notify_email: Option<String>,
    /// Days each file uploaded through the token is kept (1..=36500), never longer than the
    /// bucket's `retention_days`.
    pub file_retain_days: Option<u32>,
}

/// Checks a retention in days and gives it in seconds.
fn retain_secs(days: Option<u32>, what: &'static str) -> Result<Option<i64>> {
    match days {
        None => Ok(None),
        Some(d) if (1..=36_500).contains(&d) => Ok(Some(i64::from(d) * 86_400)),
        Some(_) => Err(Error::InvalidJson(what)),
    }
}

/// Most characters of a token's note.
const MAX_NOTE: usize = 500;
/// Most characters of a token's requester name.
const MAX_REQUESTER: usize = 100;

/// Checks a plain-text field shown on the drop page: at most `max` characters, no control
/// characters but line breaks (the page renders it as text, never as markup).
fn page_text(v: Option<String>, max: usize, what: &'static str) -> Result<String> {
    let v = v.unwrap_or_default().trim().to_string();
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::InvalidJson(what));
    }
    Ok(v)
}

/// Whether `s` is one e-mail address as accounts take them (`accounts::normalise_email`), with
/// a dotted domain and none of the characters that would split a mail header into several
/// addresses.
fn plausible_email(s: &str) -> bool {
    crate::accounts::normalise_email(s).is_some()
        && s.split_once('@')
            .is_some_and(|(_, d)| d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !s.chars().any(|c| matches!(c, '<' | '>' | ',' | ';' | '"'))
}

/// The drop page URL of a token (the token in the fragment, which no request line carries).
fn drop_url(state: &AppState, base_url: &str, token: &str) -> Option<String> {
    let web = &state.config.web;
    web.enabled
        .then(|| format!("{base_url}{}drop#{token}", web.prefix))
}

/// What a token still allows, in words the drop page shows.
fn token_status(t: &UploadToken, now_ms: i64) -> &'static str {
    if t.revoked {
        "revoked"
    } else if t.expires_at_ms < now_ms {
        "expired"
    } else if t.uploads_used >= t.max_uploads || t.bytes_used >= t.max_bytes {
        "exhausted"
    } else {
        "active"
    }
}

/// The JSON view of a token (never its secret, which only the creation answer holds).
fn token_json(t: &UploadToken, now_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "token_id": t.id,
        "client_id": t.client_id,
        "status": token_status(t, now_ms),
        "requester": t.requester,
        "note": t.note,
        "expires_at": iso8601(crate::clock::from_ms(t.expires_at_ms)),
        "created_at": iso8601(crate::clock::from_ms(t.created_at_ms)),
        "max_uploads": t.max_uploads,
        "uploads_used": t.uploads_used,
        "max_bytes": t.max_bytes,
        "bytes_used": t.bytes_used,
        "max_file_bytes": t.max_file_bytes,
        "allowed_types": t.allowed_types,
        "notify_email": t.notify_email,
        "file_retain_days": t.file_ttl_secs.map(|s| s / 86_400),
    })
}

/// Issues an upload token for an anonymous client.
pub async fn create_token(
    state: &Arc<AppState>,
    who: &Principal,
    req: CreateToken,
    base_url: &str,
) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let api = &state.config.api;
    let bcfg = state
        .config
        .bucket(&api.bucket)
        .ok_or(Error::NoSuchBucket)?;
    if req.client_id.is_empty()
        || req.client_id.len() > 128
        || !req
            .client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(Error::InvalidJson(
            "client_id is 1-128 characters of A-Z a-z 0-9 . _ : -",
        ));
    }
    let expires_in = req.expires_in.unwrap_or(900);
    if expires_in == 0 || expires_in > api.max_token_ttl_secs {
        return Err(Error::InvalidJson("expires_in is out of range."));
    }
    let max_uploads = req.max_uploads.unwrap_or(1);
    if !(1..=10_000).contains(&max_uploads) {
        return Err(Error::InvalidJson("max_uploads must be 1..=10000."));
    }
    let max_bytes = req
        .max_bytes
        .unwrap_or(i64::try_from(bcfg.max_object_bytes).unwrap_or(i64::MAX));
    if max_bytes < 1 {
        return Err(Error::InvalidJson("max_bytes must be at least 1."));
    }
    let allowed_types = match req.allowed_types {
        None => bcfg.allowed_types.clone(),
        Some(types) => {
            let mut out = Vec::new();
            for t in types {
                out.push(crate::upload::declared_type_for(bcfg, &t)?);
            }
            out
        }
    };
    let max_file_bytes = match req.max_file_bytes {
        None => None,
        Some(n) if n >= 1 => Some(n.min(max_bytes)),
        Some(_) => return Err(Error::InvalidJson("max_file_bytes must be at least 1.")),
    };
    let note = page_text(
        req.note,
        MAX_NOTE,
        "note is at most 500 characters of text.",
    )?;
    let mut requester = page_text(
        req.requester,
        MAX_REQUESTER,
        "requester is at most 100 characters of text.",
    )?;
    if requester.is_empty() {
        requester = default_requester(state, who).await?;
    }
    let notify_email = match req.notify_email.map(|e| e.trim().to_string()) {
        None => None,
        Some(e) if e.is_empty() => None,
        Some(e) if plausible_email(&e) => Some(e),
        Some(_) => return Err(Error::InvalidJson("notify_email is not an e-mail address.")),
    };
    let now = crate::clock::now_ms();
    let secret = crate::id::random_hex(32);
    let token = UploadToken {
        id: crate::id::random_hex(8),
        tenant_id: who.tenant_id.clone(),
        client_id: req.client_id,
        owner: who.subject.clone(),
        secret_hash: hash_secret(&secret),
        expires_at_ms: now
            .saturating_add(i64::try_from(expires_in.saturating_mul(1000)).unwrap_or(i64::MAX)),
        max_uploads,
        uploads_used: 0,
        max_bytes,
        bytes_used: 0,
        allowed_types: allowed_types.clone(),
        revoked: false,
        created_at_ms: now,
        max_file_bytes,
        note,
        requester,
        notify_email,
        file_ttl_secs: retain_secs(req.file_retain_days, "file_retain_days must be 1..=36500.")?,
    };
    state.control.insert_token(&token).await?;
    let credential = format!("ugt_{}_{}", token.id, secret);
    let mut out = token_json(&token, now);
    out["token"] = credential.clone().into();
    out["drop_url"] = drop_url(state, base_url, &credential).into();
    Ok(json(StatusCode::CREATED, &out))
}

/// Who a token's page says asks for the files, when its issuer named nobody: the signed-in
/// user's name (or address), else the tenant's name.
async fn default_requester(state: &AppState, who: &Principal) -> Result<String> {
    if let Via::User(u) = &who.via
        && let Some(accounts) = &state.credentials.accounts
        && let Some(user) = accounts.store.user(&u.user_id).await?
    {
        return Ok(if user.name.is_empty() {
            user.email
        } else {
            user.name
        });
    }
    Ok(state
        .control
        .tenant(&who.tenant_id)
        .await?
        .map(|t| t.name)
        .unwrap_or_default())
}

/// Most tokens `GET /v1/upload-tokens` lists.
const MAX_LISTED_TOKENS: u32 = 200;

/// `GET /v1/upload-tokens`: the caller's drop links, newest first (without their secrets).
pub async fn list_tokens(
    state: &Arc<AppState>,
    who: &Principal,
    _base_url: &str,
) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let now = crate::clock::now_ms();
    let tokens = state
        .control
        .tokens_of_owner(&who.tenant_id, &who.subject, MAX_LISTED_TOKENS)
        .await?;
    let list: Vec<serde_json::Value> = tokens.iter().map(|t| token_json(t, now)).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "tokens": list })))
}

/// Most uploads `GET /v1/upload-tokens/self` lists.
const MAX_LISTED_UPLOADS: u32 = 100;

/// `GET /v1/upload-tokens/self`: what the holder of a token may see — its policy, what is
/// left, why it no longer works, and the files it uploaded (name, size, SHA-256, receipt).
pub async fn token_self(state: &Arc<AppState>, t: &UploadToken) -> Result<Response<Body>> {
    let now = crate::clock::now_ms();
    let mut out = token_json(t, now);
    // The holder does not learn the issuer's notification address.
    out.as_object_mut().map(|o| o.remove("notify_email"));
    let bcfg = state.bucket(&state.config.api.bucket)?;
    out["bucket_max_file_bytes"] = bcfg.max_object_bytes.into();
    let mut uploads = Vec::new();
    for link in state
        .control
        .links_of_token(&t.id, MAX_LISTED_UPLOADS)
        .await?
        .into_iter()
        .filter(|l| l.status == LinkStatus::Complete)
    {
        let Some(obj) = state.meta.current(&link.bucket, &link.key).await? else {
            continue;
        };
        let filename = state
            .control
            .file(&link.file_id)
            .await?
            .map(|f| f.filename)
            .unwrap_or_default();
        let mut u = serde_json::json!({
            "upload_id": link.id,
            "file_id": link.file_id,
            "filename": filename,
            "size": obj.size,
            "sha256": obj.sha256,
            "content_type": obj.content_type,
            "scan": files::verdict_json(obj.scan.as_deref()),
            "completed_at": iso8601(crate::clock::from_ms(obj.committed_at_ms)),
        });
        let claims = crate::upload::receipt::claims(
            &link,
            obj.size,
            &obj.sha256,
            &obj.content_type,
            obj.committed_at_ms,
            obj.scan.as_deref(),
        );
        if let Some(r) = crate::upload::receipt::sign(state, &claims) {
            u["receipt"] = serde_json::to_value(r).unwrap_or_default();
        }
        uploads.push(u);
    }
    out["uploads"] = uploads.into();
    Ok(json(StatusCode::OK, &out))
}

/// `DELETE /v1/upload-tokens/{id}`.
pub async fn revoke_token(
    state: &Arc<AppState>,
    who: &Principal,
    id: &str,
) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let token = state.control.token(id).await?.ok_or(Error::NotFound)?;
    if token.tenant_id != who.tenant_id || token.owner != who.subject {
        return Err(Error::NotFound);
    }
    if !state
        .control
        .revoke_token(&who.tenant_id, id, crate::clock::now_ms())
        .await?
    {
        return Err(Error::NotFound);
    }
    let mut r = json(StatusCode::NO_CONTENT, &serde_json::json!({}));
    *r.body_mut() = crate::http::empty();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_evenly_with_a_smaller_last_part() {
        assert_eq!(part_sizes(20, 3), vec![7, 7, 6]);
        assert_eq!(part_sizes(21, 3), vec![7, 7, 7]);
        assert_eq!(part_sizes(3, 5), vec![1, 1, 1]);
    }

    #[test]
    fn display_names_are_sanitized() {
        // T-G2.
        let cases = [
            ("a.jpg.php", "a.jpg.php"),
            ("a.php\u{0}.jpg", "a.php.jpg"),
            ("a.php.", "a.php"),
            ("a.php ", "a.php"),
            ("..%2f..%2fetc%2fpasswd", "_2f.._2fetc_2fpasswd"),
            ("..\\..\\x", "x"),
            ("CON.pdf", "_CON.pdf"),
            ("report\u{202E}fdp.exe", "reportfdp.exe"),
            ("-rf.pdf", "rf.pdf"),
            ("../../etc/passwd", "passwd"),
            ("", "file"),
            ("....", "file"),
            ("a<b>c\"d.pdf", "a_b_c_d.pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize_filename(raw), want, "{raw:?}");
        }
        assert_eq!(sanitize_filename(&"x".repeat(300)).len(), MAX_FILENAME);
    }
}
