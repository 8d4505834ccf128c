//! `upgate` as a client of a gateway: resumable uploads with progress, files and drop links.
//!
//! - `upload FILE...`: each file's SHA-256 is computed locally and pinned; the upload is a tus
//!   upload minted by `POST /v1/uploads` (`"protocol": "tus"`), sent in chunks with retries and
//!   backoff; its URL is kept in a small state file, so an upload stopped by Ctrl-C or a lost
//!   network continues where it stopped when the same command runs again. When it is done the
//!   receipt is fetched, checked against the file's size and hash, and its signature verified
//!   against the gateway's JWKS.
//! - `files ls|get|rm|versions`, `link create|ls|revoke`: the control API, one line per error
//!   with its code.
//!
//! Exit codes: 0 done; 1 the gateway refused something (the code is printed); 2 a local
//! problem (usage, a file that cannot be read); 3 the gateway could not be reached (retries
//! spent); 130 interrupted (state kept: run again to resume).

pub mod http;
pub mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::http::Method;
use bytes::Bytes;
use http_body_util::BodyExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use self::http::{CallError, Http, full};

/// How a command ended.
#[derive(Debug)]
pub enum Failure {
    Refused(String),
    Local(String),
    Unreachable(String),
    Interrupted,
}

impl Failure {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::Local(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::Interrupted => 130,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Local(m) | Failure::Unreachable(m) => f.write_str(m),
            Failure::Interrupted => {
                f.write_str("interrupted; run the same command again to resume")
            }
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Network(_) => Failure::Unreachable(e.to_string()),
            CallError::Refused { .. } => Failure::Refused(e.to_string()),
        }
    }
}

/// What `upload` is told.
pub struct UploadOptions {
    pub files: Vec<PathBuf>,
    pub json: bool,
    pub chunk_bytes: u64,
    pub state_file: PathBuf,
    pub retries: u32,
    /// Stop after this many bytes of each file were sent (testing an interrupted upload).
    pub stop_after: Option<u64>,
    /// Upload with S3 keys (presigned PUT / multipart) instead of tus through the control API.
    pub s3: Option<s3::S3Target>,
}

/// The default state file: `$XDG_STATE_HOME/upgate/uploads.json` (or `~/.local/state/...`).
pub fn default_state_file() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("upgate").join("uploads.json")
}

/// One kept upload: where it goes and which link it completes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Kept {
    url: String,
    upload_id: String,
    file_id: String,
}

/// The state file: kept uploads by (endpoint, path, size, SHA-256).
struct State {
    path: PathBuf,
    entries: BTreeMap<String, Kept>,
}

impl State {
    fn load(path: &Path) -> Self {
        let entries = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Self {
            path: path.to_path_buf(),
            entries,
        }
    }

    fn save(&self) -> Result<(), Failure> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Local(format!("{}: {e}", dir.display())))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.entries)
            .map_err(|e| Failure::Local(e.to_string()))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| Failure::Local(format!("{}: {e}", self.path.display())))
    }
}

fn key_of(endpoint: &str, file: &Path, size: u64, sha: &str) -> String {
    format!("{endpoint} {} {size} {sha}", file.display())
}

/// The type a file's name says (the gateway checks the bytes; this is only the declaration).
fn type_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" | "heif" => "image/heic",
        "avif" => "image/avif",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

async fn sha256_file(path: &Path) -> Result<(u64, String), Failure> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Failure::Local(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let r = f
            .read(&mut buf)
            .await
            .map_err(|e| Failure::Local(format!("{}: {e}", path.display())))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// A body of `len` bytes of `path` from `offset`, counting each piece into `bar`.
async fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    bar: ProgressBar,
) -> Result<http::ReqBody, Failure> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Failure::Local(format!("{}: {e}", path.display())))?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| Failure::Local(e.to_string()))?;
    let stream = futures_util::stream::unfold((f, len), move |(mut f, left)| {
        let bar = bar.clone();
        async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; usize::try_from(left.min(64 * 1024)).unwrap_or(64 * 1024)];
            match f.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank",
                    )),
                    (f, 0),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    bar.inc(n as u64);
                    Some((
                        Ok(hyper::body::Frame::data(Bytes::from(buf))),
                        (f, left - n as u64),
                    ))
                }
                Err(e) => Some((Err(e), (f, 0))),
            }
        }
    });
    Ok(http_body_util::StreamBody::new(stream).boxed_unsync())
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `upgate upload`.
pub async fn upload(http: &Http, o: UploadOptions) -> Result<(), Failure> {
    let mut state = State::load(&o.state_file);
    let multi = MultiProgress::with_draw_target(if o.json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let mut plan = Vec::new();
    for path in &o.files {
        let (size, sha) = sha256_file(path).await?;
        if size == 0 {
            return Err(Failure::Local(format!(
                "{}: the file is empty",
                path.display()
            )));
        }
        plan.push((path.clone(), size, sha));
    }
    let total_bytes: u64 = plan.iter().map(|p| p.1).sum();
    let total = multi.add(ProgressBar::new(total_bytes));
    total.set_style(bar_style(
        "total {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ));
    let mut worst: Option<Failure> = None;
    for (path, size, sha) in plan {
        let bar = multi.insert_before(&total, ProgressBar::new(size));
        bar.set_style(bar_style(
            "{msg:24!} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ));
        bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let job = Job {
            path: &path,
            size,
            sha: &sha,
            bar: &bar,
            total: &total,
        };
        let one = async {
            match &o.s3 {
                Some(target) => s3::upload_one(http, target, &o, &mut state, job).await,
                None => upload_one(http, &o, &mut state, job).await,
            }
        };
        let outcome = tokio::select! {
            r = one => r,
            _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
        };
        match outcome {
            Ok(report) => {
                bar.finish();
                if o.json {
                    println!("{report}");
                } else {
                    multi.suspend(|| {
                        eprintln!(
                            "{}: stored, sha256 {}{}",
                            path.display(),
                            sha,
                            if report["receipt_verified"] == true {
                                ", receipt verified"
                            } else {
                                ""
                            }
                        );
                    });
                }
            }
            Err(Failure::Interrupted) => {
                bar.abandon();
                return Err(Failure::Interrupted);
            }
            Err(e) => {
                bar.abandon();
                let line = format!("{}: {e}", path.display());
                if o.json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "error": e.to_string()})
                    );
                } else {
                    multi.suspend(|| eprintln!("{line}"));
                }
                // The worst outcome decides the exit code (unreachable over refused).
                let replace = matches!(
                    (&worst, &e),
                    (None, _)
                        | (
                            Some(Failure::Refused(_)),
                            Failure::Unreachable(_) | Failure::Local(_)
                        )
                );
                if replace {
                    worst = Some(match e {
                        Failure::Refused(_) => Failure::Refused(line),
                        Failure::Local(_) => Failure::Local(line),
                        Failure::Unreachable(_) => Failure::Unreachable(line),
                        Failure::Interrupted => Failure::Interrupted,
                    });
                }
            }
        }
    }
    total.finish();
    worst.map_or(Ok(()), Err)
}

/// The wait before retry number `attempt + 1`: 0.5 s, 1 s, 2 s, … at most 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// Retries `f` with [`backoff`] while it fails in a way worth retrying.
async fn with_retries<T, F, Fut>(retries: u32, mut f: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && attempt < retries => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One file being uploaded: where it is, what it is, and its progress bars.
struct Job<'a> {
    path: &'a Path,
    size: u64,
    sha: &'a str,
    bar: &'a ProgressBar,
    total: &'a ProgressBar,
}

async fn upload_one(
    http: &Http,
    o: &UploadOptions,
    state: &mut State,
    job: Job<'_>,
) -> Result<serde_json::Value, Failure> {
    let Job {
        path,
        size,
        sha,
        bar,
        total,
    } = job;
    let key = key_of(
        &http.endpoint,
        &std::fs::canonicalize(path).unwrap_or(path.to_path_buf()),
        size,
        sha,
    );
    let tus = [("tus-resumable", "1.0.0".to_string())];
    // A kept upload continues from the offset the gateway has; a gone one starts again.
    let mut kept = state.entries.get(&key).cloned();
    let mut offset = 0;
    if let Some(k) = &kept {
        match with_retries(o.retries, || {
            http.send(Method::HEAD, &k.url, &tus, full(Bytes::new()))
        })
        .await
        {
            Ok(a) => {
                offset = a
                    .header("upload-offset")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            }
            Err(CallError::Refused { status, .. })
                if matches!(status.as_u16(), 403 | 404 | 410) =>
            {
                kept = None;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let kept = match kept {
        Some(k) => k,
        None => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            let body = serde_json::json!({
                "filename": name, "content_type": type_of(path), "size": size,
                "sha256": sha, "protocol": "tus",
            });
            let link = with_retries(o.retries, || {
                http.json(Method::POST, "/v1/uploads", Some(&body))
            })
            .await?;
            let k = Kept {
                url: link["url"].as_str().unwrap_or_default().to_string(),
                upload_id: link["upload_id"].as_str().unwrap_or_default().to_string(),
                file_id: link["file_id"].as_str().unwrap_or_default().to_string(),
            };
            if k.url.is_empty() || k.upload_id.is_empty() {
                return Err(Failure::Refused("the gateway gave no tus upload".into()));
            }
            state.entries.insert(key.clone(), k.clone());
            state.save()?;
            k
        }
    };
    bar.set_position(offset);
    total.inc(offset);
    let started = Instant::now();
    let mut attempt = 0u32;
    while offset < size {
        if o.stop_after.is_some_and(|n| offset >= n) {
            return Err(Failure::Interrupted);
        }
        let len = o.chunk_bytes.min(size - offset);
        let body = file_body(path, offset, len, bar.clone()).await?;
        let headers = [
            ("tus-resumable", "1.0.0".to_string()),
            ("upload-offset", offset.to_string()),
            (
                "content-type",
                "application/offset+octet-stream".to_string(),
            ),
            ("content-length", len.to_string()),
        ];
        match http.send(Method::PATCH, &kept.url, &headers, body).await {
            Ok(a) => {
                let next = a
                    .header("upload-offset")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(offset + len);
                total.inc(next - offset);
                bar.set_position(next);
                offset = next;
                attempt = 0;
            }
            Err(e) if e.retryable() && attempt < o.retries => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                // The gateway's offset is the truth after a failed append.
                let a = with_retries(o.retries, || {
                    http.send(Method::HEAD, &kept.url, &tus, full(Bytes::new()))
                })
                .await?;
                let now: u64 = a
                    .header("upload-offset")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(offset);
                total.set_position(total.position().saturating_sub(bar.position()) + now);
                bar.set_position(now);
                offset = now;
            }
            Err(e) => {
                if let CallError::Refused { .. } = e {
                    // A refused upload cannot be resumed: forget it.
                    state.entries.remove(&key);
                    state.save()?;
                }
                return Err(e.into());
            }
        }
    }
    state.entries.remove(&key);
    state.save()?;
    let secs = started.elapsed().as_secs_f64();
    // The receipt: what the gateway states it stored, checked here.
    let record_path = format!("/v1/uploads/{}", kept.upload_id);
    let record = with_retries(o.retries, || http.json(Method::GET, &record_path, None)).await?;
    if record["sha256"].as_str() != Some(sha) || record["size"].as_u64() != Some(size) {
        return Err(Failure::Refused(format!(
            "the gateway reports sha256 {} and size {} for what was sent",
            record["sha256"], record["size"]
        )));
    }
    let verified = match record.get("receipt") {
        Some(r) if !r.is_null() => {
            verify_receipt_value(http, r).await?;
            if r["sha256"].as_str() != Some(sha) {
                return Err(Failure::Refused("the receipt names another SHA-256".into()));
            }
            true
        }
        _ => false,
    };
    Ok(serde_json::json!({
        "file": path.display().to_string(),
        "file_id": kept.file_id,
        "upload_id": kept.upload_id,
        "size": size,
        "sha256": sha,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "receipt_verified": verified,
        "receipt": record.get("receipt").cloned().unwrap_or(serde_json::Value::Null),
    }))
}

/// Verifies a receipt against the gateway's JWKS.
async fn verify_receipt_value(http: &Http, r: &serde_json::Value) -> Result<(), Failure> {
    let receipt = crate::auth::signing::SignedReceipt::from_json(r)
        .map_err(|e| Failure::Refused(format!("the receipt is malformed: {e}")))?;
    let jwks = http
        .json(Method::GET, "/.well-known/jwks.json", None)
        .await?;
    crate::auth::signing::verify_receipt(&receipt, &jwks)
        .map_err(|e| Failure::Refused(format!("the receipt does not verify: {e}")))
}

/// `upgate files ls`.
pub async fn files_ls(
    http: &Http,
    name: Option<&str>,
    ctype: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let mut q = vec!["status=complete".to_string(), "limit=100".to_string()];
    if let Some(n) = name {
        q.push(format!("filename={}", enc(n)));
    }
    if let Some(t) = ctype {
        q.push(format!("content_type={}", enc(t)));
    }
    let mut cursor: Option<String> = None;
    loop {
        let mut query = q.clone();
        if let Some(c) = &cursor {
            query.push(format!("cursor={c}"));
        }
        let page = http
            .json(Method::GET, &format!("/v1/files?{}", query.join("&")), None)
            .await?;
        for f in page["files"].as_array().into_iter().flatten() {
            if json {
                println!("{f}");
            } else {
                println!(
                    "{}  {:>10}  {}  {}  {}",
                    f["file_id"].as_str().unwrap_or(""),
                    f["size"].as_u64().unwrap_or(0),
                    f["created_at"].as_str().unwrap_or(""),
                    f["content_type"].as_str().unwrap_or(""),
                    f["filename"].as_str().unwrap_or("")
                );
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(()),
        }
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `upgate files get`: downloads through a short-lived link and checks the SHA-256.
pub async fn files_get(
    http: &Http,
    id: &str,
    out: Option<&Path>,
    version: Option<&str>,
) -> Result<(), Failure> {
    let file = http
        .json(Method::GET, &format!("/v1/files/{}", enc(id)), None)
        .await?;
    let body = match version {
        Some(v) => serde_json::json!({ "version_id": v }),
        None => serde_json::json!({}),
    };
    let link = http
        .json(
            Method::POST,
            &format!("/v1/files/{}/download-url", enc(id)),
            Some(&body),
        )
        .await?;
    let url = link["url"]
        .as_str()
        .ok_or(Failure::Refused("no download link".into()))?;
    let target = match out {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(crate::upload::sanitize_filename(
            file["filename"].as_str().unwrap_or("download"),
        )),
    };
    let plain = Http::new(&http.endpoint, None).map_err(Failure::Local)?;
    let a = plain.download(url).await?;
    let sha = hex::encode(Sha256::digest(&a));
    if version.is_none() && file["sha256"].as_str().is_some_and(|s| s != sha) {
        return Err(Failure::Refused(
            "the downloaded bytes do not have the file's SHA-256".into(),
        ));
    }
    std::fs::write(&target, &a)
        .map_err(|e| Failure::Local(format!("{}: {e}", target.display())))?;
    eprintln!("{}: {} bytes, sha256 {sha}", target.display(), a.len());
    Ok(())
}

/// `upgate files rm`.
pub async fn files_rm(http: &Http, id: &str) -> Result<(), Failure> {
    http.json(Method::DELETE, &format!("/v1/files/{}", enc(id)), None)
        .await?;
    Ok(())
}

/// `upgate files versions`.
pub async fn files_versions(http: &Http, id: &str) -> Result<(), Failure> {
    let v = http
        .json(
            Method::GET,
            &format!("/v1/files/{}/versions", enc(id)),
            None,
        )
        .await?;
    for x in v["versions"].as_array().into_iter().flatten() {
        println!("{x}");
    }
    Ok(())
}

/// `upgate link create`: prints the drop link (its URL, with the token in the fragment).
pub async fn link_create(
    http: &Http,
    policy: serde_json::Value,
    json: bool,
) -> Result<(), Failure> {
    let t = http
        .json(Method::POST, "/v1/upload-tokens", Some(&policy))
        .await?;
    if json {
        println!("{t}");
    } else {
        println!(
            "{}",
            t["drop_url"].as_str().or(t["token"].as_str()).unwrap_or("")
        );
    }
    Ok(())
}

/// `upgate link ls`.
pub async fn link_ls(http: &Http) -> Result<(), Failure> {
    let v = http.json(Method::GET, "/v1/upload-tokens", None).await?;
    for t in v["tokens"].as_array().into_iter().flatten() {
        println!("{t}");
    }
    Ok(())
}

/// `upgate link revoke`.
pub async fn link_revoke(http: &Http, id: &str) -> Result<(), Failure> {
    http.json(
        Method::DELETE,
        &format!("/v1/upload-tokens/{}", enc(id)),
        None,
    )
    .await?;
    Ok(())
}
