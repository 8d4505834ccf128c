//! tus 1.0 over HTTP: creation, appends, resume from HEAD, every status code the protocol
//! names, the guarantees of a PUT (limit, type at the first bytes, pinned hash, nothing
//! visible before the last byte), concatenation, termination, expiry and a gateway restart.

use crate::api::tenant;
use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

use crate::common::{
    MySqlDatabase, PgSchema, TestApp, pdf, send, sha256_hex, spawn_app, spawn_app_in,
    spawn_app_with,
};

pub(crate) fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A request with a bearer and the protocol header `protocol` (tus's `Tus-Resumable`, or the
/// draft's interop version); `headers` add to or replace them. Returns (status, headers, body text).
async fn request(
    app: &TestApp,
    protocol: (&str, String),
    method: &str,
    url: &str,
    bearer: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", app.endpoint())
    };
    let mut h = vec![
        ("authorization".to_string(), format!("Bearer {bearer}")),
        (protocol.0.to_string(), protocol.1),
    ];
    for (k, v) in headers {
        h.retain(|(name, _)| name != k);
        h.push((k.to_string(), v.clone()));
    }
    let (s, hm, b) = send(method, &url, &h, body).await;
    (s, hm, String::from_utf8_lossy(&b).into_owned())
}

/// A tus request.
pub(crate) async fn tus(
    app: &TestApp,
    method: &str,
    url: &str,
    bearer: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let protocol = ("tus-resumable", "1.0.0".to_string());
    request(app, protocol, method, url, bearer, headers, body).await
}

pub(crate) fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Creates an upload of `len` bytes; returns its URL.
pub(crate) async fn create(app: &TestApp, bearer: &str, len: usize, meta: &str) -> String {
    let (s, h, b) = tus(
        app,
        "POST",
        "/v1/tus/",
        bearer,
        &[
            ("upload-length", len.to_string()),
            ("upload-metadata", meta.to_string()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(header(&h, "tus-resumable"), "1.0.0");
    assert_eq!(header(&h, "upload-offset"), "0");
    assert!(!header(&h, "upload-expires").is_empty());
    header(&h, "location").to_string()
}

pub(crate) async fn patch(
    app: &TestApp,
    bearer: &str,
    url: &str,
    offset: usize,
    body: &[u8],
    extra: &[(&str, String)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut headers = vec![
        (
            "content-type",
            "application/offset+octet-stream".to_string(),
        ),
        ("upload-offset", offset.to_string()),
    ];
    headers.extend(extra.iter().cloned());
    tus(app, "PATCH", url, bearer, &headers, body.to_vec()).await
}

pub(crate) async fn files(app: &TestApp, bearer: &str) -> Vec<Value> {
    let (s, _, b) = send(
        "GET",
        &format!("{}/v1/files", app.endpoint()),
        &[("authorization".to_string(), format!("Bearer {bearer}"))],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_slice(&b).expect("json");
    v["files"].as_array().cloned().unwrap_or_default()
}

/// The stored bytes of the only committed file of `bearer`, through a download link.
pub(crate) async fn download(app: &TestApp, bearer: &str, file_id: &str) -> Vec<u8> {
    let auth = vec![("authorization".to_string(), format!("Bearer {bearer}"))];
    let (s, _, b) = send(
        "POST",
        &format!("{}/v1/files/{file_id}/download-url", app.endpoint()),
        &auth,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let v: Value = serde_json::from_slice(&b).expect("json");
    let (s, _, body) = send("GET", v["url"].as_str().expect("url"), &[], Vec::new()).await;
    assert_eq!(s, 200);
    body
}

#[tokio::test]
async fn chunked_upload_with_resume_from_head_commits_once_with_its_sha256() {
    let app = spawn_app().await;
    let t = tenant(&app, "tus-a").await;
    let data = pdf(3 * 1024 * 1024 + 123);
    let meta = format!(
        "filename {},filetype {}",
        b64("scan.pdf"),
        b64("application/pdf")
    );
    let url = create(&app, &t.api_key, data.len(), &meta).await;

    // OPTIONS advertises the protocol without credentials.
    let (s, h, _) = send(
        "OPTIONS",
        &format!("{}/v1/tus/", app.endpoint()),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(header(&h, "tus-version"), "1.0.0");
    assert!(header(&h, "tus-extension").contains("concatenation"));
    assert_eq!(header(&h, "tus-max-size"), (20 * 1024 * 1024).to_string());
    assert_eq!(
        header(&h, "tus-checksum-algorithm"),
        "sha1,sha256,md5,crc32"
    );

    let chunk = 1024 * 1024;
    let (s, h, b) = patch(&app, &t.api_key, &url, 0, &data[..chunk], &[]).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(header(&h, "upload-offset"), chunk.to_string());
    assert!(!header(&h, "upload-expires").is_empty());
    // Nothing is visible before the last byte.
    assert!(files(&app, &t.api_key).await.is_empty());

    // A wrong offset changes nothing: 409.
    let (s, _, _) = patch(&app, &t.api_key, &url, 5, &data[5..10], &[]).await;
    assert_eq!(s, 409);
    // Resume: HEAD says where to continue, and never caches.
    let (s, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "upload-offset"), chunk.to_string());
    assert_eq!(header(&h, "upload-length"), data.len().to_string());
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert_eq!(header(&h, "upload-metadata"), meta);
    let mut off = chunk;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        let (s, h, b) = patch(&app, &t.api_key, &url, off, &data[off..end], &[]).await;
        assert_eq!(s, 204, "{b}");
        off = end;
        assert_eq!(header(&h, "upload-offset"), off.to_string());
    }
    let list = files(&app, &t.api_key).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["sha256"], sha256_hex(&data));
    assert_eq!(list[0]["filename"], "scan.pdf");
    assert_eq!(list[0]["content_type"], "application/pdf");
    let id = list[0]["file_id"].as_str().expect("id").to_string();
    assert_eq!(download(&app, &t.api_key, &id).await, data);
    // Finished: a further append is refused and creates nothing.
    let (s, _, _) = patch(&app, &t.api_key, &url, data.len(), b"x", &[]).await;
    assert_eq!(s, 400);
    assert_eq!(files(&app, &t.api_key).await.len(), 1);
}

#[tokio::test]
async fn protocol_errors_answer_the_status_codes_tus_names() {
    let app = spawn_app().await;
    let t = tenant(&app, "tus-b").await;
    let data = pdf(200_000);
    let url = create(&app, &t.api_key, data.len(), "").await;

    // Version mismatch: 412 with Tus-Version, nothing processed.
    let (s, h, _) = tus(
        &app,
        "PATCH",
        &url,
        &t.api_key,
        &[("tus-resumable", "0.2.2".to_string())],
        data.clone(),
    )
    .await;
    assert_eq!(s, 412);
    assert_eq!(header(&h, "tus-version"), "1.0.0");
    // PATCH without the offset stream type: 415.
    let (s, _, _) = tus(
        &app,
        "PATCH",
        &url,
        &t.api_key,
        &[
            ("content-type", "application/pdf".to_string()),
            ("upload-offset", "0".to_string()),
        ],
        data.clone(),
    )
    .await;
    assert_eq!(s, 415);
    // Checksum mismatch: 460, offset unchanged; a retry with the right checksum succeeds.
    let wrong = base64::engine::general_purpose::STANDARD.encode(sha1(b"other"));
    let (s, _, _) = patch(
        &app,
        &t.api_key,
        &url,
        0,
        &data[..1000],
        &[("upload-checksum", format!("sha1 {wrong}"))],
    )
    .await;
    assert_eq!(s, 460);
    let (_, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(header(&h, "upload-offset"), "0");
    let right = base64::engine::general_purpose::STANDARD.encode(sha1(&data[..1000]));
    let (s, h, _) = patch(
        &app,
        &t.api_key,
        &url,
        0,
        &data[..1000],
        &[("upload-checksum", format!("sha1 {right}"))],
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(header(&h, "upload-offset"), "1000");
    // An unsupported algorithm is a 400.
    let (s, _, _) = patch(
        &app,
        &t.api_key,
        &url,
        1000,
        &data[1000..2000],
        &[("upload-checksum", "sha3 AAAA".to_string())],
    )
    .await;
    assert_eq!(s, 400);
    // More bytes than the upload's length: 413, offset unchanged.
    let mut too_much = data[1000..].to_vec();
    too_much.push(0);
    let (s, _, _) = patch(&app, &t.api_key, &url, 1000, &too_much, &[]).await;
    assert_eq!(s, 413);
    let (_, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(header(&h, "upload-offset"), "1000");

    // Over Tus-Max-Size at creation: 413.
    let (s, _, _) = tus(
        &app,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[("upload-length", (21 * 1024 * 1024).to_string())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 413);
    // Neither or both length headers: 400.
    let (s, _, _) = tus(&app, "POST", "/v1/tus/", &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 400);
    // No credentials: 401. Another tenant's key, or an unknown id: the same 404, no offset.
    let (s, _, _) = tus(&app, "HEAD", &url, "nope", &[], Vec::new()).await;
    assert_eq!(s, 401);
    let other = tenant(&app, "tus-b2").await;
    let (s, h, _) = tus(&app, "HEAD", &url, &other.api_key, &[], Vec::new()).await;
    assert_eq!(s, 404);
    assert!(h.get("upload-offset").is_none());
    let unknown = format!("/v1/tus/{}", "ab".repeat(16));
    let (s, h, _) = tus(&app, "HEAD", &unknown, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 404);
    assert!(h.get("upload-offset").is_none());
    let (s, _, _) = patch(&app, &other.api_key, &url, 1000, &data[1000..], &[]).await;
    assert_eq!(s, 404);

    // Termination: 204, then 410 (no offset); the bytes are freed.
    let (s, _, _) = tus(&app, "DELETE", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 204);
    let (s, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 410);
    assert!(h.get("upload-offset").is_none());
    let (s, _, _) = patch(&app, &t.api_key, &url, 1000, &data[1000..], &[]).await;
    assert_eq!(s, 410);
    assert!(files(&app, &t.api_key).await.is_empty());
}

fn sha1(data: &[u8]) -> Vec<u8> {
    sha1::Sha1::digest(data).to_vec()
}

#[tokio::test]
async fn a_disguised_type_is_refused_at_the_first_bytes_and_a_pinned_hash_is_enforced() {
    let app = spawn_app().await;
    let t = tenant(&app, "tus-c").await;
    // HTML dressed as a PDF: refused on the first append, nothing stored.
    let html = b"<html><script>alert(1)</script></html>".repeat(100);
    let meta = format!("filetype {}", b64("application/pdf"));
    let url = create(&app, &t.api_key, html.len(), &meta).await;
    let (s, _, _) = patch(&app, &t.api_key, &url, 0, &html, &[]).await;
    assert_eq!(s, 415);
    let (_, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(header(&h, "upload-offset"), "0");
    // A declared type the bucket does not take: refused at creation.
    let (s, _, _) = tus(
        &app,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[
            ("upload-length", "100".to_string()),
            ("upload-metadata", format!("filetype {}", b64("text/html"))),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 415);

    // A pinned SHA-256 that the bytes do not have: the last append fails, nothing visible.
    let data = pdf(50_000);
    let meta = format!("sha256 {}", b64(&sha256_hex(b"something else")));
    let url = create(&app, &t.api_key, data.len(), &meta).await;
    let (s, _, _) = patch(&app, &t.api_key, &url, 0, &data, &[]).await;
    assert_eq!(s, 400);
    assert!(
        files(&app, &t.api_key)
            .await
            .iter()
            .all(|f| f["status"] != "committed")
    );
}

#[tokio::test]
async fn deferred_length_creation_with_upload_and_concatenation() {
    let app = spawn_app().await;
    let t = tenant(&app, "tus-d").await;
    let data = pdf(300_000);

    // creation-with-upload + creation-defer-length: the first bytes ride on the POST, the
    // length comes with the last PATCH.
    let (s, h, b) = tus(
        &app,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[
            ("upload-defer-length", "1".to_string()),
            (
                "content-type",
                "application/offset+octet-stream".to_string(),
            ),
        ],
        data[..100_000].to_vec(),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(header(&h, "upload-offset"), "100000");
    let url = header(&h, "location").to_string();
    let (_, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(header(&h, "upload-defer-length"), "1");
    let (s, h, b) = patch(
        &app,
        &t.api_key,
        &url,
        100_000,
        &data[100_000..],
        &[("upload-length", data.len().to_string())],
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(header(&h, "upload-offset"), data.len().to_string());
    assert_eq!(files(&app, &t.api_key).await.len(), 1);

    // Concatenation: two partial uploads in parallel, then the final one.
    let other = pdf(400_000);
    let (a, b2) = other.split_at(150_000);
    let mut partials = Vec::new();
    for part in [a, b2] {
        let (s, h, _) = tus(
            &app,
            "POST",
            "/v1/tus/",
            &t.api_key,
            &[
                ("upload-length", part.len().to_string()),
                ("upload-concat", "partial".to_string()),
            ],
            Vec::new(),
        )
        .await;
        assert_eq!(s, 201);
        partials.push(header(&h, "location").to_string());
    }
    let partial = [("upload-concat", "partial".to_string())];
    let (r1, r2) = tokio::join!(
        patch(&app, &t.api_key, &partials[1], 0, b2, &partial),
        patch(&app, &t.api_key, &partials[0], 0, a, &partial),
    );
    assert_eq!((r1.0, r2.0), (204, 204));
    // Partial uploads are not files.
    assert_eq!(files(&app, &t.api_key).await.len(), 1);
    let (s, h, b) = tus(
        &app,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[
            (
                "upload-concat",
                format!("final;{} {}", partials[0], partials[1]),
            ),
            ("upload-metadata", format!("filename {}", b64("joined.pdf"))),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let fin = header(&h, "location").to_string();
    let (_, h, _) = tus(&app, "HEAD", &fin, &t.api_key, &[], Vec::new()).await;
    assert_eq!(header(&h, "upload-offset"), other.len().to_string());
    assert!(header(&h, "upload-concat").starts_with("final;"));
    // A final upload cannot be appended to: 403.
    let (s, _, _) = patch(&app, &t.api_key, &fin, other.len(), b"x", &[]).await;
    assert_eq!(s, 403);
    let list = files(&app, &t.api_key).await;
    let joined = list
        .iter()
        .find(|f| f["filename"] == "joined.pdf")
        .expect("joined");
    assert_eq!(joined["sha256"], sha256_hex(&other));
    let id = joined["file_id"].as_str().expect("id");
    assert_eq!(download(&app, &t.api_key, id).await, other);
}

#[tokio::test]
async fn upload_tokens_and_minted_tus_links_are_bound_to_their_creator() {
    let app = spawn_app().await;
    let t = tenant(&app, "tus-e").await;
    let auth = vec![("authorization".to_string(), format!("Bearer {}", t.api_key))];
    let (s, _, b) = send(
        "POST",
        &format!("{}/v1/upload-tokens", app.endpoint()),
        &auth,
        serde_json::to_vec(&json!({"client_id": "c-9", "max_uploads": 1})).expect("j"),
    )
    .await;
    assert_eq!(s, 201);
    let token = serde_json::from_slice::<Value>(&b).expect("j")["token"]
        .as_str()
        .expect("t")
        .to_string();
    // A link minted for tus pins size, type and hash; the token uploads through it.
    let data = pdf(120_000);
    let (s, _, b) = send(
        "POST",
        &format!("{}/v1/uploads", app.endpoint()),
        &[("authorization".to_string(), format!("Bearer {token}"))],
        serde_json::to_vec(&json!({
            "filename": "id.pdf", "content_type": "application/pdf", "size": data.len(),
            "sha256": sha256_hex(&data), "protocol": "tus"
        }))
        .expect("j"),
    )
    .await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let link: Value = serde_json::from_slice(&b).expect("j");
    let url = link["url"].as_str().expect("url").to_string();
    assert!(url.contains("/v1/tus/"));
    // The issuing app's key, or another token of the same app, is another principal: 404.
    let (s, _, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 404);
    let (s, _, b) = send(
        "POST",
        &format!("{}/v1/upload-tokens", app.endpoint()),
        &auth,
        serde_json::to_vec(&json!({"client_id": "c-10"})).expect("j"),
    )
    .await;
    assert_eq!(s, 201);
    let other_token = serde_json::from_slice::<Value>(&b).expect("j")["token"]
        .as_str()
        .expect("t")
        .to_string();
    let (s, _, _) = tus(&app, "HEAD", &url, &other_token, &[], Vec::new()).await;
    assert_eq!(s, 404);
    let (s, _, _) = patch(&app, &other_token, &url, 0, &data, &[]).await;
    assert_eq!(s, 404);
    let (s, h, _) = tus(&app, "HEAD", &url, &token, &[], Vec::new()).await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "upload-length"), data.len().to_string());
    let (s, _, b) = patch(&app, &token, &url, 0, &data, &[]).await;
    assert_eq!(s, 204, "{b}");
    // The file belongs to the token's issuer and is tagged with its client.
    let list = files(&app, &t.api_key).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["sha256"], sha256_hex(&data));
    assert_eq!(list[0]["file_id"], link["file_id"]);
    // The token is used up: a new upload is refused.
    let (s, _, _) = tus(
        &app,
        "POST",
        "/v1/tus/",
        &token,
        &[("upload-length", "100".to_string())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn an_upload_survives_a_gateway_restart_and_expires_with_its_bytes() {
    let app = spawn_app_with("[api]\nresumable_expiry_secs = 60\n").await;
    let t = tenant(&app, "tus-f").await;
    let data = pdf(500_000);
    let url = create(&app, &t.api_key, data.len(), "").await;
    let (s, _, _) = patch(&app, &t.api_key, &url, 0, &data[..200_000], &[]).await;
    assert_eq!(s, 204);
    let dir = app.stop_keep_dir().await;
    let app = spawn_app_in(dir, "[api]\nresumable_expiry_secs = 60\n").await;
    let path = url
        .split_once("/v1/")
        .map(|(_, p)| format!("/v1/{p}"))
        .expect("path");
    let (s, h, _) = tus(&app, "HEAD", &path, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "upload-offset"), "200000");
    let (s, _, _) = patch(&app, &t.api_key, &path, 200_000, &data[200_000..], &[]).await;
    assert_eq!(s, 204);
    assert_eq!(
        files(&app, &t.api_key).await[0]["sha256"],
        sha256_hex(&data)
    );

    // An upload older than the expiry answers 410 and the sweep frees its bytes.
    let stale = create(&app, &t.api_key, data.len(), "").await;
    let (s, _, _) = patch(&app, &t.api_key, &stale, 0, &data[..100_000], &[]).await;
    assert_eq!(s, 204);
    let blobs_before = app.object_files().len();
    let id = stale.rsplit('/').next().expect("id").to_string();
    let mut u = app
        .state
        .meta
        .resumable(&id)
        .await
        .expect("db")
        .expect("row");
    u.created_at_ms -= 61_000;
    // Age the record the way time would (the store has no clock of its own).
    app.state.meta.delete_resumable(&id).await.expect("delete");
    app.state.meta.create_resumable(&u).await.expect("reinsert");
    let (s, h, _) = tus(&app, "HEAD", &stale, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 410);
    assert!(h.get("upload-offset").is_none());
    upgate::sweeper::sweep_once(&app.state)
        .await
        .expect("sweep");
    assert!(app.state.meta.resumable(&id).await.expect("db").is_none());
    assert!(
        app.object_files().len() < blobs_before,
        "the chunk's bytes are gone"
    );
}

#[tokio::test]
async fn concurrent_appends_to_one_upload_never_interleave() {
    let app = spawn_app().await;
    let t = tenant(&app, "tus-g").await;
    let data = pdf(2 * 1024 * 1024);
    let url = create(&app, &t.api_key, data.len(), "").await;
    let half = data.len() / 2;
    let results = futures_util::future::join_all(
        (0..4).map(|_| patch(&app, &t.api_key, &url, 0, &data[..half], &[])),
    )
    .await;
    let ok = results.iter().filter(|r| r.0 == 204).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(results.iter().all(|r| [204, 409, 423].contains(&r.0)));
    let (_, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
    assert_eq!(header(&h, "upload-offset"), half.to_string());
    let (s, _, _) = patch(&app, &t.api_key, &url, half, &data[half..], &[]).await;
    assert_eq!(s, 204);
    let list = files(&app, &t.api_key).await;
    assert_eq!(list[0]["sha256"], sha256_hex(&data));
}

/// A request in the IETF draft's dialect at interop version `v`.
async fn draft(
    app: &TestApp,
    v: u8,
    method: &str,
    url: &str,
    bearer: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let protocol = ("upload-draft-interop-version", v.to_string());
    request(app, protocol, method, url, bearer, headers, body).await
}

#[tokio::test]
async fn ietf_draft_interop_6_and_8_careful_creation_appends_and_problem_documents() {
    let app = spawn_app().await;
    let t = tenant(&app, "rufh").await;
    for v in [6u8, 8] {
        let data = pdf(700_000 + usize::from(v));
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data));
        let life = if v == 6 { "expires=" } else { "max-age=" };

        let (s, h, _) = draft(&app, v, "OPTIONS", "/v1/tus/", &t.api_key, &[], Vec::new()).await;
        assert_eq!(s, 204);
        assert_eq!(header(&h, "accept-patch"), "application/partial-upload");
        assert!(header(&h, "upload-limit").contains("max-size=20971520"));

        // Careful creation: no bytes, Upload-Complete: ?0, the representation's type and name.
        let (s, h, b) = draft(
            &app,
            v,
            "POST",
            "/v1/tus/",
            &t.api_key,
            &[
                ("upload-complete", "?0".to_string()),
                ("content-type", "application/pdf".to_string()),
                (
                    "content-disposition",
                    format!("attachment; filename=\"draft{v}.pdf\""),
                ),
                ("repr-digest", format!("sha-256=:{digest}:")),
            ],
            Vec::new(),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(header(&h, "upload-complete"), "?0");
        assert_eq!(header(&h, "upload-offset"), "0");
        assert_eq!(header(&h, "upload-draft-interop-version"), v.to_string());
        assert!(header(&h, "upload-limit").contains(life), "{:?}", h);
        let url = header(&h, "location").to_string();

        let (s, h, _) = draft(&app, v, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
        assert_eq!(s, 204);
        assert_eq!(header(&h, "upload-offset"), "0");
        assert_eq!(header(&h, "upload-complete"), "?0");
        assert_eq!(header(&h, "cache-control"), "no-store");
        assert!(header(&h, "upload-limit").contains(life));

        let append = |offset: usize, complete: bool| {
            vec![
                ("content-type", "application/partial-upload".to_string()),
                ("upload-offset", offset.to_string()),
                (
                    "upload-complete",
                    if complete { "?1" } else { "?0" }.to_string(),
                ),
            ]
        };
        // An offset mismatch: 409, a problem document naming both offsets.
        let (s, h, b) = draft(
            &app,
            v,
            "PATCH",
            &url,
            &t.api_key,
            &append(5, false),
            data[5..9].to_vec(),
        )
        .await;
        assert_eq!(s, 409);
        assert_eq!(header(&h, "content-type"), "application/problem+json");
        assert_eq!(header(&h, "upload-offset"), "0");
        let p: Value = serde_json::from_str(&b).expect("problem");
        assert!(
            p["type"]
                .as_str()
                .expect("type")
                .ends_with("#mismatching-upload-offset")
        );
        assert_eq!(
            (p["expected-offset"].as_u64(), p["provided-offset"].as_u64()),
            (Some(0), Some(5))
        );
        // The tus body type is not an append here.
        let mut wrong = append(0, false);
        wrong[0].1 = "application/offset+octet-stream".to_string();
        let (s, _, _) = draft(
            &app,
            v,
            "PATCH",
            &url,
            &t.api_key,
            &wrong,
            data[..10].to_vec(),
        )
        .await;
        assert_eq!(s, 415);

        let half = data.len() / 2;
        let (s, h, b) = draft(
            &app,
            v,
            "PATCH",
            &url,
            &t.api_key,
            &append(0, false),
            data[..half].to_vec(),
        )
        .await;
        assert_eq!(s, 204, "{b}");
        assert_eq!(header(&h, "upload-offset"), half.to_string());
        assert_eq!(header(&h, "upload-complete"), "?0");
        let before = files(&app, &t.api_key).await.len();
        let (s, h, b) = draft(
            &app,
            v,
            "PATCH",
            &url,
            &t.api_key,
            &append(half, true),
            data[half..].to_vec(),
        )
        .await;
        assert_eq!(s, 204, "{b}");
        assert_eq!(header(&h, "upload-complete"), "?1");
        let list = files(&app, &t.api_key).await;
        assert_eq!(list.len(), before + 1);
        let f = list
            .iter()
            .find(|f| f["filename"] == format!("draft{v}.pdf"))
            .expect("file");
        assert_eq!(f["sha256"], sha256_hex(&data));
        // Appending to a completed upload: 400, completed-upload.
        let (s, _, b) = draft(
            &app,
            v,
            "PATCH",
            &url,
            &t.api_key,
            &append(data.len(), true),
            Vec::new(),
        )
        .await;
        assert_eq!(s, 400);
        assert!(b.contains("#completed-upload"), "{b}");

        // Optimistic creation with every byte: complete at once.
        let other = pdf(40_000 + usize::from(v));
        let (s, h, b) = draft(
            &app,
            v,
            "POST",
            "/v1/tus/",
            &t.api_key,
            &[
                ("upload-complete", "?1".to_string()),
                ("content-type", "application/pdf".to_string()),
            ],
            other.clone(),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(header(&h, "upload-complete"), "?1");
        assert_eq!(header(&h, "upload-offset"), other.len().to_string());

        // Lengths that disagree: 400, inconsistent-upload-length.
        let (s, _, b) = draft(
            &app,
            v,
            "POST",
            "/v1/tus/",
            &t.api_key,
            &[
                ("upload-complete", "?1".to_string()),
                ("upload-length", "100".to_string()),
            ],
            other[..50].to_vec(),
        )
        .await;
        assert_eq!(s, 400);
        assert!(b.contains("#inconsistent-upload-length"), "{b}");

        // Cancel: 204, then gone.
        let (_, h, _) = draft(
            &app,
            v,
            "POST",
            "/v1/tus/",
            &t.api_key,
            &[("upload-complete", "?0".to_string())],
            Vec::new(),
        )
        .await;
        let url = header(&h, "location").to_string();
        let (s, _, _) = draft(&app, v, "DELETE", &url, &t.api_key, &[], Vec::new()).await;
        assert_eq!(s, 204);
        let (s, _, _) = draft(&app, v, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
        assert_eq!(s, 410);

        // Upload-Complete is required on every interop-8 append; interop 6 reads its absence as ?0.
        let (_, h, _) = draft(
            &app,
            v,
            "POST",
            "/v1/tus/",
            &t.api_key,
            &[("upload-complete", "?0".to_string())],
            Vec::new(),
        )
        .await;
        let url = header(&h, "location").to_string();
        let bare = vec![
            ("content-type", "application/partial-upload".to_string()),
            ("upload-offset", "0".to_string()),
        ];
        let (s, _, _) = draft(
            &app,
            v,
            "PATCH",
            &url,
            &t.api_key,
            &bare,
            data[..1000].to_vec(),
        )
        .await;
        assert_eq!(s, if v == 6 { 204 } else { 400 });
    }
    // A pinned Repr-Digest the bytes do not have: nothing is committed.
    let data = pdf(30_000);
    let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let complete = |list: Vec<Value>| list.iter().filter(|f| f["status"] == "complete").count();
    let before = complete(files(&app, &t.api_key).await);
    let (s, _, _) = draft(
        &app,
        8,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[
            ("upload-complete", "?1".to_string()),
            ("repr-digest", format!("sha-256=:{wrong}:")),
        ],
        data,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(complete(files(&app, &t.api_key).await), before);
    // Over the limit: 413, with the limits.
    let (s, h, _) = draft(
        &app,
        8,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[
            ("upload-complete", "?0".to_string()),
            ("upload-length", (21 * 1024 * 1024).to_string()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 413);
    assert!(
        header(&h, "upload-limit").contains("max-size=20971520"),
        "{h:?}"
    );
    // An interop version not spoken: 412.
    let (s, _, _) = draft(
        &app,
        7,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[("upload-complete", "?0".to_string())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 412);
}

#[tokio::test]
async fn an_upload_begun_on_one_replica_finishes_on_another() {
    let pg = PgSchema::new();
    finishes_on_another_replica(&pg.config()).await;
    pg.drop().await;
}

#[tokio::test]
async fn an_upload_begun_on_one_replica_finishes_on_another_on_mysql() {
    let db = MySqlDatabase::new().await;
    finishes_on_another_replica(&db.config()).await;
    db.drop().await;
}

/// Two gateways sharing `metadata` (a `[metadata]` table) and one object store: half an
/// upload through one, the rest through the other.
async fn finishes_on_another_replica(metadata: &str) {
    let shared = tempfile::tempdir().expect("shared store");
    let cfg = format!(
        "{metadata}[storage.local]\nroot = {:?}\n",
        shared.path().display().to_string()
    );
    let a = spawn_app_with(&cfg).await;
    let b = spawn_app_with(&cfg).await;
    let t = tenant(&a, "replicas").await;
    let data = pdf(1_500_000);
    let location = create(&a, &t.api_key, data.len(), "").await;
    let path = location
        .split_once("/v1/")
        .map(|(_, p)| format!("/v1/{p}"))
        .expect("path");
    let (s, _, _) = patch(&a, &t.api_key, &path, 0, &data[..700_000], &[]).await;
    assert_eq!(s, 204);
    // The other replica knows the offset and takes the rest.
    let (s, h, _) = tus(&b, "HEAD", &path, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "upload-offset"), "700000");
    let (s, _, b2) = patch(&b, &t.api_key, &path, 700_000, &data[700_000..], &[]).await;
    assert_eq!(s, 204, "{b2}");
    let list = files(&a, &t.api_key).await;
    assert_eq!(list[0]["sha256"], sha256_hex(&data));
    let id = list[0]["file_id"].as_str().expect("id").to_string();
    assert_eq!(download(&a, &t.api_key, &id).await, data);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn unfinished_uploads_per_principal_are_capped() {
    let app = spawn_app_with("[api]\nmax_unfinished_resumable = 2\n").await;
    let t = tenant(&app, "tus-cap").await;
    let first = create(&app, &t.api_key, 1000, "").await;
    create(&app, &t.api_key, 1000, "").await;
    let (s, _, b) = tus(
        &app,
        "POST",
        "/v1/tus/",
        &t.api_key,
        &[("upload-length", "1000".to_string())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    // Another principal is not affected; ending one frees a slot.
    let other = tenant(&app, "tus-cap2").await;
    create(&app, &other.api_key, 1000, "").await;
    let (s, _, _) = tus(&app, "DELETE", &first, &t.api_key, &[], Vec::new()).await;
    assert_eq!(s, 204);
    create(&app, &t.api_key, 1000, "").await;
}

#[tokio::test]
async fn a_completed_tus_upload_fires_its_webhook_once() {
    const SECRET: &str = "webhook-secret-tus-0123456789abcdefghijklm";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let (seen, _rx) = crate::api::receiver(port, SECRET).await;
    let app = spawn_app_with(&format!(
        "[webhooks]\npoll_interval_ms = 50\n[[webhooks.endpoints]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = {SECRET:?}\n"
    ))
    .await;
    let t = tenant(&app, "tus-hook").await;
    let data = pdf(600_000);
    let url = create(&app, &t.api_key, data.len(), "").await;
    for (a, b) in [(0, 300_000), (300_000, data.len())] {
        let (s, _, _) = patch(&app, &t.api_key, &url, a, &data[a..b], &[]).await;
        assert_eq!(s, 204);
    }
    let file = files(&app, &t.api_key).await[0]["file_id"]
        .as_str()
        .expect("id")
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events: Vec<(String, bool, Value)> = seen.lock().expect("l").clone();
        let done: Vec<_> = events
            .iter()
            .filter(|(e, _, p)| e == "upload.completed" && p["file_id"] == file.as_str())
            .collect();
        if !done.is_empty() {
            assert!(done.iter().all(|(_, signed, _)| *signed));
            assert_eq!(done[0].2["sha256"], sha256_hex(&data));
            // Give a duplicate the time it would need, then count.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let n = seen
                .lock()
                .expect("l")
                .iter()
                .filter(|(e, _, p)| e == "upload.completed" && p["file_id"] == file.as_str())
                .count();
            assert_eq!(n, 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no upload.completed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_sweeper_runs_on_its_configured_interval() {
    let app =
        spawn_app_with("[metadata]\nsweep_interval_secs = 1\n[api]\nresumable_expiry_secs = 60\n")
            .await;
    let t = tenant(&app, "tus-sweep").await;
    let url = create(&app, &t.api_key, 10_000, "").await;
    let id = url.rsplit('/').next().expect("id").to_string();
    let mut u = app
        .state
        .meta
        .resumable(&id)
        .await
        .expect("db")
        .expect("row");
    u.created_at_ms -= 61_000;
    app.state.meta.delete_resumable(&id).await.expect("delete");
    app.state.meta.create_resumable(&u).await.expect("reinsert");
    // No explicit sweep: the background pass removes it within a few intervals.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.state.meta.resumable(&id).await.expect("db").is_some() {
        assert!(std::time::Instant::now() < deadline, "not swept");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop().await;
}
