//! Files: the owner's records, search, download links and versions.
//!
//! Owner isolation: a principal sees a file only if it is the file's owner in the same tenant,
//! or a configured grant (`[[api.grants]]`) lets it read that tenant's files — and every use of
//! a grant is written to the audit log, as is every download link. A file that does not exist
//! and a file that is not yours get the same 404.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Response, StatusCode};
use serde::Deserialize;

use super::json;
use crate::auth::links::{self, DOWNLOAD_PARAM, Mint};
use crate::auth::principal::Principal;
use crate::clock::iso8601;
use crate::error::{Error, Result};
use crate::http::Body;
use crate::metadata::control::{
    AuditEntry, FileQuery, FileRecord, FileStatus, LinkStatus, MARK_END, MARK_START, TextSearch,
};
use crate::state::AppState;

/// The file if the caller may read it; records the use of a grant.
pub async fn owned_file(state: &AppState, who: &Principal, id: &str) -> Result<FileRecord> {
    let f = state.control.file(id).await?.ok_or(Error::NotFound)?;
    if f.tenant_id != who.tenant_id || f.status == FileStatus::Deleted {
        return Err(Error::NotFound);
    }
    if f.owner == who.subject {
        return Ok(f);
    }
    let granted = state
        .config
        .api
        .grants
        .iter()
        .any(|g| g.tenant == who.tenant_id && g.principal == who.subject);
    if !granted {
        return Err(Error::NotFound);
    }
    audit(
        state,
        who,
        "grant.read",
        Some(&f.id),
        &format!("owner={}", f.owner),
    )
    .await?;
    Ok(f)
}

/// Writes an audit entry.
pub async fn audit(
    state: &AppState,
    who: &Principal,
    action: &str,
    file_id: Option<&str>,
    detail: &str,
) -> Result<()> {
    state
        .control
        .audit(&AuditEntry {
            id: crate::id::random_hex(12),
            at_ms: crate::clock::now_ms(),
            tenant_id: who.tenant_id.clone(),
            actor: who.actor(),
            action: action.to_string(),
            file_id: file_id.map(str::to_string),
            detail: detail.to_string(),
        })
        .await?;
    Ok(())
}

/// The JSON view of a file.
pub fn file_json(f: &FileRecord) -> serde_json::Value {
    let metadata: serde_json::Value =
        serde_json::from_str(&f.metadata).unwrap_or_else(|_| serde_json::json!({}));
    serde_json::json!({
        "file_id": f.id,
        "filename": f.filename,
        "status": f.status.as_str(),
        "content_type": f.content_type,
        "size": f.size,
        "sha256": f.sha256,
        "versions": f.versions,
        "metadata": metadata,
        "scan": verdict_json(f.scan.as_deref()),
        "expires_at": f.expires_at_ms.map(|ms| iso8601(crate::clock::from_ms(ms))),
        "legal_hold": f.legal_hold,
        "created_at": iso8601(crate::clock::from_ms(f.created_at_ms)),
        "updated_at": iso8601(crate::clock::from_ms(f.updated_at_ms)),
    })
}

/// A recorded content verdict as JSON (`null` when none was recorded).
pub fn verdict_json(scan: Option<&str>) -> serde_json::Value {
    scan.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn parse_time(s: &str) -> Result<i64> {
    // RFC 3339 (`2026-11-23T10:00:00Z`, fraction allowed) or Unix milliseconds.
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = crate::clock::parse_rfc3339(s).ok_or(Error::InvalidArgument("Invalid time filter."))?;
    Ok(crate::clock::to_ms(t))
}

/// Most words in a content search, and characters in one word.
const MAX_WORDS: usize = 16;
const MAX_WORD: usize = 64;

/// The words of a content search (`q`): whitespace-separated, no query syntax.
fn search_words(q: &str) -> Result<Vec<String>> {
    let words: Vec<String> = q.split_whitespace().map(str::to_string).collect();
    if words.is_empty()
        || words.len() > MAX_WORDS
        || words
            .iter()
            .any(|w| w.chars().count() > MAX_WORD || w.chars().any(char::is_control))
    {
        return Err(Error::InvalidArgument(
            "q is 1 to 16 words of at most 64 characters each.",
        ));
    }
    Ok(words)
}

/// A snippet with its marked words as segments: `[{"text": …, "match": bool}, …]`, so that a
/// page renders it as text, never as markup.
fn snippet_json(snippet: &str) -> serde_json::Value {
    let mut out = Vec::new();
    for (i, piece) in snippet.split(MARK_START).enumerate() {
        let (hit, rest) = match piece.split_once(MARK_END) {
            Some((hit, rest)) if i > 0 => (Some(hit), rest),
            _ => (None, piece),
        };
        if let Some(h) = hit.filter(|h| !h.is_empty()) {
            out.push(serde_json::json!({ "text": h, "match": true }));
        }
        let rest = rest.replace(MARK_END, "");
        if !rest.is_empty() {
            out.push(serde_json::json!({ "text": rest, "match": false }));
        }
    }
    serde_json::Value::Array(out)
}

/// `GET /v1/files?q=words`: the caller's live files whose contents hold every word, best
/// first, each with a passage of its text; paged by an opaque cursor.
async fn search(
    state: &Arc<AppState>,
    who: &Principal,
    q: &crate::http::Query,
    words: Vec<String>,
    limit: u32,
) -> Result<Response<Body>> {
    for other in [
        "content_type",
        "status",
        "created_after",
        "created_before",
        "filename",
        "metadata",
        "tag",
    ] {
        if q.get(other)?.is_some() {
            return Err(Error::InvalidArgument(
                "q cannot be combined with other filters.",
            ));
        }
    }
    let offset = match q.get("cursor")? {
        None => 0,
        Some(c) => URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("q:").and_then(|n| n.parse::<u32>().ok()))
            .filter(|n| *n <= 10_000)
            .ok_or(Error::InvalidArgument("Invalid cursor."))?,
    };
    let hits = state
        .control
        .search_files(&TextSearch {
            tenant_id: who.tenant_id.clone(),
            owner: who.subject.clone(),
            words,
            limit: limit + 1,
            offset,
        })
        .await?;
    let more = hits.len() > limit as usize;
    let files: Vec<serde_json::Value> = hits
        .iter()
        .take(limit as usize)
        .map(|h| {
            let mut f = file_json(&h.file);
            f["rank"] = h.rank.into();
            f["snippet"] = snippet_json(&h.snippet);
            f
        })
        .collect();
    let next = more.then(|| URL_SAFE_NO_PAD.encode(format!("q:{}", offset + limit)));
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "files": files, "next_cursor": next }),
    ))
}

/// `GET /v1/files`: the caller's files, newest first, filtered, cursor-paginated; with `q`, a
/// search of their contents instead.
pub async fn list(
    state: &Arc<AppState>,
    who: &Principal,
    query: Option<&str>,
) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let q = crate::http::Query::parse(query)?;
    let max = state.config.api.max_page;
    let limit = match q.get("limit")? {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or(Error::InvalidArgument("limit is out of range."))?,
    };
    if let Some(text) = q.get("q")? {
        return search(state, who, &q, search_words(text)?, limit).await;
    }
    let before = match q.get("cursor")? {
        None => None,
        Some(c) => {
            let raw = URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(Error::InvalidArgument("Invalid cursor."))?;
            let (at, id) = raw
                .split_once(':')
                .ok_or(Error::InvalidArgument("Invalid cursor."))?;
            Some((
                at.parse::<i64>()
                    .map_err(|_| Error::InvalidArgument("Invalid cursor."))?,
                id.to_string(),
            ))
        }
    };
    let metadata = match q.get("metadata")? {
        None => None,
        Some(kv) => {
            let (k, v) = kv
                .split_once(':')
                .ok_or(Error::InvalidArgument("metadata filter is key:value."))?;
            Some((k.to_string(), v.to_string()))
        }
    };
    let tag = match q.get("tag")? {
        None => None,
        Some(kv) => {
            let (k, v) = kv
                .split_once(':')
                .ok_or(Error::InvalidArgument("tag filter is key:value."))?;
            Some((k.to_string(), v.to_string()))
        }
    };
    let status = match q.get("status")? {
        None => None,
        Some(s) => Some(FileStatus::parse(s).ok_or(Error::InvalidArgument("Unknown status."))?),
    };
    let fq = FileQuery {
        tenant_id: who.tenant_id.clone(),
        owner: who.subject.clone(),
        content_type: q.get("content_type")?.map(str::to_string),
        status,
        created_from_ms: q.get("created_after")?.map(parse_time).transpose()?,
        created_to_ms: q.get("created_before")?.map(parse_time).transpose()?,
        filename_contains: q.get("filename")?.map(str::to_string),
        metadata,
        tag,
        before,
        limit: limit + 1,
    };
    let mut rows = state.control.list_files(&fq).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last()
            .map(|f| URL_SAFE_NO_PAD.encode(format!("{}:{}", f.created_at_ms, f.id)))
    } else {
        None
    };
    let files: Vec<serde_json::Value> = rows.iter().map(file_json).collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "files": files, "next_cursor": next }),
    ))
}

/// `GET /v1/files/{id}`.
pub async fn get(state: &Arc<AppState>, who: &Principal, id: &str) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let f = owned_file(state, who, id).await?;
    Ok(json(StatusCode::OK, &file_json(&f)))
}

/// `DELETE /v1/files/{id}`: the record is marked deleted and every version's bytes go.
pub async fn delete(state: &Arc<AppState>, who: &Principal, id: &str) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let f = owned_file(state, who, id).await?;
    if f.owner != who.subject {
        // A read grant does not allow deleting.
        return Err(Error::NotFound);
    }
    if f.legal_hold {
        return Err(Error::AccessDenied(
            "The file is under legal hold; release the hold first.",
        ));
    }
    if !crate::upload::delete::delete_file(state, &f, crate::events::FILE_DELETED).await? {
        return Err(Error::NotFound);
    }
    audit(state, who, "file.delete", Some(&f.id), "").await?;
    let mut r = json(StatusCode::NO_CONTENT, &serde_json::json!({}));
    *r.body_mut() = crate::http::empty();
    Ok(r)
}

/// `PATCH /v1/files/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateFile {
    /// Set or release the legal hold.
    pub legal_hold: Option<bool>,
}

/// `PATCH /v1/files/{id}`: the owner sets or releases the file's legal hold (audited).
pub async fn update(
    state: &Arc<AppState>,
    who: &Principal,
    id: &str,
    req: UpdateFile,
) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let f = owned_file(state, who, id).await?;
    if f.owner != who.subject {
        return Err(Error::NotFound);
    }
    if let Some(hold) = req.legal_hold {
        if !state
            .control
            .set_legal_hold(&f.id, hold, crate::clock::now_ms())
            .await?
        {
            return Err(Error::NotFound);
        }
        let action = if hold { "file.hold" } else { "file.release" };
        audit(state, who, action, Some(&f.id), "").await?;
    }
    get(state, who, id).await
}

/// `POST /v1/files/{id}/download-url` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// Lifetime in seconds (default: `api.download_link_ttl_secs`).
    pub expires_in: Option<u64>,
    /// A version id from `GET /v1/files/{id}/versions` (default: the current version).
    pub version_id: Option<String>,
}

/// RFC 6266 `attachment` with an RFC 5987 UTF-8 name.
fn disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Mints a short-lived download link for a file (or one of its versions).
pub async fn download_url(
    state: &Arc<AppState>,
    who: &Principal,
    id: &str,
    req: DownloadRequest,
    base_url: &str,
) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let f = owned_file(state, who, id).await?;
    let key = match &req.version_id {
        None => f.current_key.clone().ok_or(Error::NotFound)?,
        Some(v) => {
            let link = state
                .control
                .links_of_file(&f.id)
                .await?
                .into_iter()
                .find(|l| {
                    l.status == LinkStatus::Complete && l.key.rsplit('/').next() == Some(v.as_str())
                })
                .ok_or(Error::NotFound)?;
            link.key
        }
    };
    let obj = state
        .meta
        .current(&f.bucket, &key)
        .await?
        .ok_or(Error::NotFound)?;
    let api = &state.config.api;
    let ttl = Duration::from_secs(
        req.expires_in
            .unwrap_or(api.download_link_ttl_secs)
            .clamp(1, api.download_link_ttl_secs.max(1)),
    );
    let url = links::mint(
        &state.credentials.link_keys,
        &state.config.s3.region,
        Mint {
            base_url,
            method: http::Method::GET,
            bucket: &f.bucket,
            key: &key,
            query: vec![
                (DOWNLOAD_PARAM.to_string(), f.id.clone()),
                (
                    "response-content-disposition".to_string(),
                    disposition(&f.filename),
                ),
                (
                    "response-content-type".to_string(),
                    obj.content_type.clone(),
                ),
            ],
            headers: Vec::new(),
            ttl,
        },
    )?;
    let version = key.rsplit('/').next().unwrap_or("").to_string();
    audit(
        state,
        who,
        "download.link",
        Some(&f.id),
        &format!("version={version}"),
    )
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "url": url,
            "version_id": version,
            "expires_at": iso8601(std::time::SystemTime::now() + ttl),
        }),
    ))
}

/// `GET /v1/files/{id}/versions`: committed versions, newest first.
pub async fn versions(state: &Arc<AppState>, who: &Principal, id: &str) -> Result<Response<Body>> {
    who.require_app_or_user()?;
    let f = owned_file(state, who, id).await?;
    let mut out = Vec::new();
    for link in state.control.links_of_file(&f.id).await? {
        if link.status != LinkStatus::Complete {
            continue;
        }
        if let Some(obj) = state.meta.current(&link.bucket, &link.key).await? {
            out.push(serde_json::json!({
                "version_id": link.key.rsplit('/').next().unwrap_or(""),
                "size": obj.size,
                "sha256": obj.sha256,
                "content_type": obj.content_type,
                "created_at": iso8601(crate::clock::from_ms(obj.committed_at_ms)),
                "current": f.current_key.as_deref() == Some(link.key.as_str()),
            }));
        }
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "file_id": f.id, "versions": out }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_is_attachment_with_a_safe_ascii_fallback() {
        assert_eq!(
            disposition("Résumé 2026.pdf"),
            "attachment; filename=\"R_sum__2026.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026%2Epdf"
        );
        assert!(!disposition("a\"b.pdf").contains("a\"b"));
    }
}
