//! Full-text search of document contents (`GET /v1/files?q=`) through the public API, on SQLite,
//! PostgreSQL and MySQL: the text of PDFs, Word documents and plain text is found for its owner
//! only, ranked with a marked passage, bounded for long documents, gone with a deleted file.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{call, tenant, upload};
use crate::common::*;

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

fn types() -> String {
    format!(
        "[buckets.uploads]\nallowed_types = [\"application/pdf\", \"text/plain\", \"{DOCX}\"]\n"
    )
}

/// Uploads `data` through a minted link as `name` of `content_type`; returns the file id.
async fn upload_doc(
    app: &TestApp,
    key: &str,
    name: &str,
    content_type: &str,
    data: Vec<u8>,
) -> String {
    let req = json!({"filename": name, "content_type": content_type, "size": data.len(),
                     "sha256": sha256_hex(&data)});
    let (status, link) = call(app, "POST", "/v1/uploads", key, Some(req)).await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(upload(&link, data).await.0, 200, "{name}");
    link["file_id"].as_str().expect("file id").to_string()
}

/// `GET /v1/files?q=QUERY` as `key` (the query percent-encoded).
async fn search(app: &TestApp, key: &str, q: &str) -> (u16, Value) {
    let q: String = url_escape(q);
    call(app, "GET", &format!("/v1/files?q={q}"), key, None).await
}

fn url_escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["filename"].as_str().expect("name").to_string())
        .collect();
    n.sort();
    n
}

/// Waits until `q` finds `want` files for `key` (indexing runs right after the commit, off the
/// request).
async fn found(app: &TestApp, key: &str, q: &str, want: usize) -> Value {
    let started = Instant::now();
    loop {
        let (status, v) = search(app, key, q).await;
        assert_eq!(status, 200, "{v}");
        if v["files"].as_array().map(Vec::len) == Some(want)
            || started.elapsed() > Duration::from_secs(20)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn contents_are_found_for_their_owner_only(app: &TestApp) {
    let a = tenant(app, "a").await;
    let b = tenant(app, "b").await;
    let lease = upload_doc(
        app,
        &a.api_key,
        "lease.pdf",
        "application/pdf",
        pdf_with_text("Tenancy lease for Zyzzogeton Street", 40_000),
    )
    .await;
    let body = b"<w:document><w:body><w:p><w:r><w:t>Board minutes</w:t></w:r></w:p>\
        <w:p><w:r><w:t>The zyzzogeton budget was approved.</w:t></w:r></w:p></w:body></w:document>";
    upload_doc(app, &a.api_key, "minutes.docx", DOCX, docx_with(body, &[])).await;
    upload_doc(
        app,
        &a.api_key,
        "notes.txt",
        "text/plain",
        b"nothing about it here".to_vec(),
    )
    .await;
    upload_doc(
        app,
        &b.api_key,
        "theirs.pdf",
        "application/pdf",
        pdf_with_text("Zyzzogeton is mentioned by tenant b", 20_000),
    )
    .await;

    // Words match whatever their case; another tenant's file is never found.
    let hits = found(app, &a.api_key, "ZYZZOGETON", 2).await;
    assert_eq!(names(&hits), ["lease.pdf", "minutes.docx"], "{hits}");
    for f in hits["files"].as_array().expect("files") {
        let marked: Vec<&str> = f["snippet"]
            .as_array()
            .expect("snippet")
            .iter()
            .filter(|s| s["match"] == true)
            .map(|s| s["text"].as_str().expect("text"))
            .collect();
        assert!(
            marked.iter().any(|m| m.eq_ignore_ascii_case("zyzzogeton")),
            "the matched word is marked: {f}"
        );
        assert!(f["rank"].as_f64().expect("rank") > 0.0);
    }
    let theirs = found(app, &b.api_key, "zyzzogeton", 1).await;
    assert_eq!(names(&theirs), ["theirs.pdf"]);

    // Every word must occur.
    assert_eq!(
        names(&found(app, &a.api_key, "zyzzogeton lease", 1).await),
        ["lease.pdf"]
    );
    assert!(names(&search(app, &a.api_key, "zyzzogeton unicorn").await.1).is_empty());
    // Query syntax is text: quotes, operators and wildcards find nothing odd and break nothing.
    for q in [
        "\"zyzzogeton",
        "zyzzo*",
        "NOT zyzzogeton",
        "a:b OR (c",
        "-zyzzogeton",
    ] {
        let (status, v) = search(app, &a.api_key, q).await;
        assert_eq!(status, 200, "{q}: {v}");
    }
    // Bad searches are refused.
    let long = "x".repeat(65);
    for q in ["   ", long.as_str()] {
        assert_eq!(search(app, &a.api_key, q).await.0, 400, "{q:?}");
    }
    let (status, _) = call(
        app,
        "GET",
        "/v1/files?q=zyzzogeton&filename=lease",
        &a.api_key,
        None,
    )
    .await;
    assert_eq!(status, 400, "q with another filter");

    // A deleted file's text goes with it.
    let (status, _) = call(
        app,
        "DELETE",
        &format!("/v1/files/{lease}"),
        &a.api_key,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        names(&search(app, &a.api_key, "zyzzogeton").await.1),
        ["minutes.docx"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_contents_are_searchable_by_their_owner_on_sqlite() {
    let app = spawn_app_with(&types()).await;
    contents_are_found_for_their_owner_only(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_contents_are_searchable_by_their_owner_on_postgresql() {
    let pg = PgSchema::new();
    let app = spawn_app_with(&format!("{}{}", pg.config(), types())).await;
    contents_are_found_for_their_owner_only(&app).await;
    app.stop().await;
    pg.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_contents_are_searchable_by_their_owner_on_mysql() {
    let db = MySqlDatabase::new().await;
    let app = spawn_app_with(&format!("{}{}", db.config(), types())).await;
    contents_are_found_for_their_owner_only(&app).await;
    app.stop().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_text_file_is_indexed_within_its_limits() {
    let app = spawn_app_with(&format!("{}[search]\nmax_text_chars = 100000\n", types())).await;
    let t = tenant(&app, "big").await;
    // Opening words, then 20 MB of filler, then a word far past the indexed beginning.
    let mut text = String::from("Firstword opens the report. ");
    while text.len() < 20_000_000 {
        text.push_str("filler text of a long report ");
    }
    text.push_str("Lastword");
    let started = Instant::now();
    upload_doc(&app, &t.api_key, "big.txt", "text/plain", text.into_bytes()).await;
    let hits = found(&app, &t.api_key, "firstword", 1).await;
    assert_eq!(
        names(&hits),
        ["big.txt"],
        "indexed after {:?}",
        started.elapsed()
    );
    assert!(
        names(&search(&app, &t.api_key, "lastword").await.1).is_empty(),
        "only the first 100,000 characters are indexed"
    );
    app.stop().await;
}
