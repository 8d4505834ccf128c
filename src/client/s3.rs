//! `upgate upload` with S3 keys (from the environment) instead of a token or an API key: a
//! presigned PUT pinning the SHA-256 for a small file, an S3 multipart upload with parts sent in
//! parallel for a larger one — resumable from the state file (the upload id and the parts the
//! gateway lists) — and, at the end, the object's SHA-256 read back with
//! `x-amz-checksum-mode: ENABLED` and compared with the local one.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ::http::Method;
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use indicatif::ProgressBar;

use super::http::{CallError, Http, full, xml_value};
use super::{Failure, Job, Kept, State, UploadOptions, file_body, key_of, with_retries as retried};
use crate::auth::{PresignParams, SecretKey, presign_url};

/// S3 credentials and where the objects go.
pub struct S3Target {
    pub access_key_id: String,
    pub secret: SecretKey,
    pub region: String,
    pub bucket: String,
    /// Prepended to each file's name to make its key.
    pub prefix: String,
    /// Parts sent at once.
    pub parallel: usize,
}

impl S3Target {
    /// A presigned URL for one S3 request (query auth; the listed headers are signed).
    fn url(
        &self,
        http: &Http,
        method: Method,
        key: &str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
    ) -> String {
        let host = http
            .endpoint
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(&http.endpoint)
            .to_string();
        let params = PresignParams {
            method,
            host,
            path: format!("/{}/{key}", self.bucket),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
            expires: Duration::from_secs(900),
            region: self.region.clone(),
            time: SystemTime::now(),
            access_key_id: self.access_key_id.clone(),
        };
        format!(
            "{}{}?{}",
            http.endpoint,
            params.encoded_path(),
            presign_url(&params, &self.secret)
        )
    }
}

/// The parts an S3 ListParts answer names: (number, ETag without quotes, size).
fn listed_parts(xml: &str) -> Vec<(u32, String, u64)> {
    xml.split("<Part>")
        .skip(1)
        .filter_map(|p| {
            Some((
                xml_value(p, "PartNumber")?.parse().ok()?,
                xml_value(p, "ETag")?
                    .replace("&quot;", "")
                    .trim_matches('"')
                    .to_string(),
                xml_value(p, "Size")?.parse().ok()?,
            ))
        })
        .collect()
}

pub(super) async fn upload_one(
    http: &Http,
    s3: &S3Target,
    o: &UploadOptions,
    state: &mut State,
    job: Job<'_>,
) -> Result<serde_json::Value, Failure> {
    let (path, size, sha, bar, total) = (job.path, job.size, job.sha, job.bar, job.total);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Failure::Local(format!("{}: no file name", path.display())))?;
    let key = format!("{}{name}", s3.prefix);
    let ctype = super::type_of(path).to_string();
    let started = Instant::now();
    let part = o.chunk_bytes.max(5 * 1024 * 1024);
    let etag = if size <= part {
        // One PUT; the signed x-amz-content-sha256 pins the bytes.
        let url = s3.url(
            http,
            Method::PUT,
            &key,
            &[],
            &[
                ("content-type", ctype.clone()),
                ("x-amz-content-sha256", sha.to_string()),
            ],
        );
        let a = retried(o.retries, || async {
            let body = file_body(path, 0, size, bar.clone())
                .await
                .map_err(|e| CallError::Network(e.to_string()))?;
            bar.set_position(0);
            http.send(
                Method::PUT,
                &url,
                &[
                    ("content-type", ctype.clone()),
                    ("x-amz-content-sha256", sha.to_string()),
                    ("content-length", size.to_string()),
                ],
                body,
            )
            .await
        })
        .await?;
        total.inc(size);
        a.header("etag").unwrap_or("").trim_matches('"').to_string()
    } else {
        multipart(
            http, s3, o, state, path, &key, &ctype, size, sha, part, bar, total,
        )
        .await?
    };
    // What the gateway stored, read back: its SHA-256 must be ours.
    let head = s3.url(
        http,
        Method::HEAD,
        &key,
        &[],
        &[("x-amz-checksum-mode", "ENABLED".into())],
    );
    let mode = [("x-amz-checksum-mode", "ENABLED".to_string())];
    let a = retried(o.retries, || {
        http.send(Method::HEAD, &head, &mode, full(Bytes::new()))
    })
    .await?;
    let stored = a
        .header("x-amz-checksum-sha256")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(hex::encode);
    if stored.as_deref() != Some(sha) {
        return Err(Failure::Refused(format!(
            "the gateway stored {} bytes with another SHA-256 ({})",
            size,
            stored.unwrap_or_default()
        )));
    }
    Ok(serde_json::json!({
        "file": path.display().to_string(),
        "bucket": s3.bucket,
        "key": key,
        "etag": etag,
        "size": size,
        "sha256": sha,
        "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        "verified": true,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn multipart(
    http: &Http,
    s3: &S3Target,
    o: &UploadOptions,
    state: &mut State,
    path: &Path,
    key: &str,
    ctype: &str,
    size: u64,
    sha: &str,
    part: u64,
    bar: &ProgressBar,
    total: &ProgressBar,
) -> Result<String, Failure> {
    let skey = format!(
        "s3 {}/{key} {}",
        s3.bucket,
        key_of(&http.endpoint, path, size, sha)
    );
    let count = u32::try_from(size.div_ceil(part))
        .map_err(|_| Failure::Local("the file has too many parts".into()))?;
    // A kept upload: the parts the gateway lists (with the right size) need not be sent again.
    let mut done: std::collections::BTreeMap<u32, String> = Default::default();
    let mut upload_id = None;
    if let Some(k) = state.entries.get(&skey).cloned() {
        let url = s3.url(
            http,
            Method::GET,
            key,
            &[("uploadId", k.upload_id.clone())],
            &[],
        );
        match retried(o.retries, || {
            http.send(Method::GET, &url, &[], full(Bytes::new()))
        })
        .await
        {
            Ok(a) => {
                for (n, etag, psize) in listed_parts(&String::from_utf8_lossy(&a.body)) {
                    let want = part.min(size - u64::from(n - 1) * part);
                    if n >= 1 && n <= count && psize == want {
                        done.insert(n, etag);
                    }
                }
                upload_id = Some(k.upload_id);
            }
            Err(CallError::Refused { status, .. }) if status.as_u16() == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let upload_id = match upload_id {
        Some(id) => id,
        None => {
            let url = s3.url(
                http,
                Method::POST,
                key,
                &[("uploads", String::new())],
                &[("content-type", ctype.to_string())],
            );
            let ct = [("content-type", ctype.to_string())];
            let a = retried(o.retries, || {
                http.send(Method::POST, &url, &ct, full(Bytes::new()))
            })
            .await?;
            let id = xml_value(&String::from_utf8_lossy(&a.body), "UploadId")
                .ok_or(Failure::Refused("no UploadId in the answer".into()))?
                .to_string();
            state.entries.insert(
                skey.clone(),
                Kept {
                    url: key.to_string(),
                    upload_id: id.clone(),
                    file_id: String::new(),
                },
            );
            state.save()?;
            id
        }
    };
    let already: u64 = done
        .keys()
        .map(|n| part.min(size - u64::from(n - 1) * part))
        .sum();
    bar.set_position(already);
    total.inc(already);
    let missing: Vec<u32> = (1..=count).filter(|n| !done.contains_key(n)).collect();
    let sent = futures_util::stream::iter(missing.into_iter().map(|n| {
        let uid = upload_id.clone();
        async move {
            if o.stop_after
                .is_some_and(|stop| u64::from(n - 1) * part >= stop)
            {
                return Err(Failure::Interrupted);
            }
            let offset = u64::from(n - 1) * part;
            let len = part.min(size - offset);
            let url = s3.url(
                http,
                Method::PUT,
                key,
                &[("partNumber", n.to_string()), ("uploadId", uid.clone())],
                &[],
            );
            let piece = ProgressBar::hidden();
            let a = retried(o.retries, || async {
                let body = file_body(path, offset, len, piece.clone())
                    .await
                    .map_err(|e| CallError::Network(e.to_string()))?;
                http.send(
                    Method::PUT,
                    &url,
                    &[("content-length", len.to_string())],
                    body,
                )
                .await
            })
            .await?;
            bar.inc(len);
            total.inc(len);
            Ok::<_, Failure>((
                n,
                a.header("etag").unwrap_or("").trim_matches('"').to_string(),
            ))
        }
    }))
    .buffer_unordered(s3.parallel.max(1))
    .collect::<Vec<_>>()
    .await;
    for r in sent {
        let (n, etag) = r?;
        done.insert(n, etag);
    }
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (n, etag) in &done {
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>\"{etag}\"</ETag></Part>"
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let url = s3.url(
        http,
        Method::POST,
        key,
        &[("uploadId", upload_id.clone())],
        &[],
    );
    let ct = [("content-type", "application/xml".to_string())];
    let a = retried(o.retries, || {
        http.send(Method::POST, &url, &ct, full(Bytes::from(xml.clone())))
    })
    .await?;
    let text = String::from_utf8_lossy(&a.body).into_owned();
    if let Some(code) = xml_value(&text, "Code") {
        // S3 may report a failed completion inside a 200.
        return Err(Failure::Refused(format!(
            "{code}: {}",
            xml_value(&text, "Message").unwrap_or("")
        )));
    }
    state.entries.remove(&skey);
    state.save()?;
    Ok(xml_value(&text, "ETag")
        .unwrap_or("")
        .replace("&quot;", "")
        .trim_matches('"')
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parts_answers_are_read() {
        let xml = "<ListPartsResult><Part><PartNumber>2</PartNumber><ETag>&quot;ab&quot;</ETag>\
                   <Size>10</Size></Part><Part><PartNumber>1</PartNumber><ETag>\"cd\"</ETag>\
                   <Size>5</Size></Part></ListPartsResult>";
        assert_eq!(
            listed_parts(xml),
            vec![(2, "ab".to_string(), 10), (1, "cd".to_string(), 5)]
        );
        assert_eq!(
            xml_value("<a><UploadId>x1</UploadId></a>", "UploadId"),
            Some("x1")
        );
    }
}
