//! Content checks before commit, on every way in: a PDF with active content is refused on
//! S3 PUT, a single-use link, S3 multipart and tus (the POST form case is in `s3_post`), and
//! leaves nothing behind; a clean PDF passes; a bucket that allows active content stores it.

use std::io::Write;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use upgate::api::admin::create_tenant;

use crate::common::{
    BUCKET, TestApp, multipart_put, pdf, send, sha256_hex, spawn_app, spawn_app_with,
};

/// A PDF of about `len` bytes whose catalog runs JavaScript on open.
pub(crate) fn js_pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction 2 0 R >> endobj\n\
                  2 0 obj << /S /JavaScript /JS (app.alert\\(1\\)) >> endobj\n"
        .to_vec();
    v.extend_from_slice(&pdf(len)[9..]);
    v
}

/// A PDF whose only active name is hex-escaped.
fn escaped_pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n1 0 obj << /S /J#61vaScript /J#53 (x) >> endobj\n".to_vec();
    v.extend_from_slice(&pdf(len)[9..]);
    v
}

/// A PDF 1.5 file that keeps a /Launch action inside a compressed object stream.
pub(crate) fn objstm_pdf(len: usize) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"1 0 2 40 << /Type /Catalog /OpenAction 2 0 R >> << /S /Launch /F (calc.exe) >>")
        .expect("deflate");
    let inner = e.finish().expect("deflate");
    let mut v = format!(
        "%PDF-1.5\n3 0 obj << /Type /ObjStm /N 2 /First 8 /Filter /FlateDecode /Length {} >>\nstream\n",
        inner.len()
    )
    .into_bytes();
    v.extend_from_slice(&inner);
    v.extend_from_slice(b"\nendstream\nendobj\n");
    v.extend_from_slice(&pdf(len)[9..]);
    v
}

#[tokio::test]
async fn an_active_pdf_is_refused_on_put_and_a_clean_one_stored() {
    let app = spawn_app().await;
    let s3 = app.s3();
    for (key, body) in [
        ("a/js.pdf", js_pdf(50_000)),
        ("a/escaped.pdf", escaped_pdf(50_000)),
        ("a/objstm.pdf", objstm_pdf(50_000)),
    ] {
        let err = s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/pdf")
            .body(ByteStream::from(body))
            .send()
            .await
            .expect_err(key);
        let code = err.into_service_error().meta().code().map(str::to_string);
        assert_eq!(code.as_deref(), Some("ContentRejected"), "{key}");
        assert!(
            s3.head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .is_err(),
            "{key} visible"
        );
    }
    assert!(app.object_files().is_empty(), "{:?}", app.object_files());
    // Words in text, and names inside a page's content stream, are not active content.
    let mut clean = b"%PDF-1.7\n1 0 obj << /Title (On JavaScript and Launch) /Length 24 >>\n\
                      stream\nBT /JS 12 Tf /AA Do ET\nendstream\nendobj\n"
        .to_vec();
    clean.extend_from_slice(&pdf(40_000)[9..]);
    s3.put_object()
        .bucket(BUCKET)
        .key("a/clean.pdf")
        .body(ByteStream::from(clean.clone()))
        .send()
        .await
        .expect("clean");
    let rec = app
        .state
        .meta
        .current(BUCKET, "a/clean.pdf")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.sha256, sha256_hex(&clean));
    app.stop().await;
}

#[tokio::test]
async fn an_active_pdf_is_refused_through_multipart_assembly() {
    let app = spawn_app().await;
    let s3 = app.s3();
    // The active part is the second one: only the assembled object shows it.
    let mut body = pdf(5 * 1024 * 1024);
    body.extend_from_slice(&objstm_pdf(300_000));
    let key = "mp/active.pdf";
    let (a, b) = body.split_at(5 * 1024 * 1024);
    let code = multipart_put(&s3, key, "application/pdf", &[a, b])
        .await
        .expect_err("active");
    assert_eq!(code, "ContentRejected");
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .is_err()
    );
    app.stop().await;
}

/// Uploads `body` through a minted link (its URL and headers): the status and the reply body.
pub(crate) async fn put_through(link: &Value, body: Vec<u8>) -> (u16, Vec<u8>) {
    let headers: Vec<(String, String)> = link["headers"]
        .as_object()
        .expect("h")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("s").to_string()))
        .collect();
    let (s, _, b) = send("PUT", link["url"].as_str().expect("url"), &headers, body).await;
    (s, b)
}

pub(crate) async fn api(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let (s, _, b) = send(
        method,
        &format!("{}{path}", app.endpoint()),
        &[("authorization".to_string(), format!("Bearer {key}"))],
        serde_json::to_vec(&body).expect("json"),
    )
    .await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_active_pdf_is_refused_through_a_link_and_tus_and_the_failure_is_recorded() {
    let app = spawn_app().await;
    let t = create_tenant(app.state.control.as_ref(), "content")
        .await
        .expect("tenant");
    let body = escaped_pdf(80_000);
    let (s, link) = api(
        &app,
        &t.api_key,
        "POST",
        "/v1/uploads",
        json!({"filename": "x.pdf", "content_type": "application/pdf", "size": body.len()}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, b) = put_through(&link, body.clone()).await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("ContentRejected"));
    let (_, st) = api(
        &app,
        &t.api_key,
        "GET",
        &format!("/v1/uploads/{}", link["upload_id"].as_str().expect("id")),
        Value::Null,
    )
    .await;
    assert_ne!(st["status"], "complete");

    // tus: refused when the last byte arrived (the check sees the whole object).
    let body = js_pdf(200_000);
    let url = crate::tus::create(&app, &t.api_key, body.len(), "").await;
    let (s, _, _) = crate::tus::patch(&app, &t.api_key, &url, 0, &body[..100_000], &[]).await;
    assert_eq!(s, 204);
    let (s, _, b) = crate::tus::patch(&app, &t.api_key, &url, 100_000, &body[100_000..], &[]).await;
    assert_eq!(s, 422, "{b}");
    let (_, files) = api(&app, &t.api_key, "GET", "/v1/files", Value::Null).await;
    assert!(
        files["files"]
            .as_array()
            .expect("files")
            .iter()
            .all(|f| f["status"] != "complete"),
        "{files}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bucket_may_allow_active_pdfs() {
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 20971520\nallowed_types = [\"application/pdf\"]\n\
         etag = \"auto\"\npdf_active_content = \"allow\"\n",
    )
    .await;
    let body = js_pdf(30_000);
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("allowed.pdf")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("allowed");
    let rec = app
        .state
        .meta
        .current(BUCKET, "allowed.pdf")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.sha256, sha256_hex(&body));
    app.stop().await;
}

/// Mints a link for `filename` and uploads `body` through it; returns the file id.
async fn upload_named(app: &TestApp, key: &str, filename: &str, body: &[u8]) -> (u16, Value) {
    let (s, link) = api(
        app,
        key,
        "POST",
        "/v1/uploads",
        json!({"filename": filename, "content_type": "application/pdf", "size": body.len()}),
    )
    .await;
    if s != 201 {
        return (s, link);
    }
    let (s, _) = put_through(&link, body.to_vec()).await;
    assert_eq!(s, 200);
    (201, link)
}

#[tokio::test]
async fn downloads_carry_the_extension_of_the_type_the_bytes_are() {
    let app = spawn_app().await;
    let t = create_tenant(app.state.control.as_ref(), "names")
        .await
        .expect("tenant");
    let body = pdf(10_000);
    for (raw, want) in [
        ("invoice.exe", "invoice.pdf"),
        ("x.pdf.exe", "x.pdf"),
        ("C:\\Windows\\system32\\calc.exe", "calc.pdf"),
        ("invoice\u{202E}fdp.exe", "invoicefdp.pdf"),
        ("page.html", "page.pdf"),
        ("re\u{301}sume\u{301}.pdf", "résumé.pdf"),
    ] {
        let (s, link) = upload_named(&app, &t.api_key, raw, &body).await;
        assert_eq!(s, 201, "{raw:?}");
        let file = link["file_id"].as_str().expect("id");
        let (s, dl) = api(
            &app,
            &t.api_key,
            "POST",
            &format!("/v1/files/{file}/download-url"),
            json!({}),
        )
        .await;
        assert_eq!(s, 200);
        let (s, h, got) = send("GET", dl["url"].as_str().expect("url"), &[], Vec::new()).await;
        assert_eq!(s, 200);
        assert_eq!(got, body);
        let cd = h["content-disposition"].to_str().expect("cd").to_string();
        let encoded =
            percent_encoding::utf8_percent_encode(want, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert!(cd.ends_with(&format!("UTF-8''{encoded}")), "{raw:?}: {cd}");
        assert!(!cd.to_ascii_lowercase().contains(".exe"), "{cd}");
    }
    app.stop().await;

    // Under the reject policy, and with an extension allow-list, such names are refused at
    // mint time.
    let app = spawn_app_with(
        "[api]\nfilename_extension = \"reject\"\n[buckets.uploads]\nmax_object_bytes = 20971520\n\
         allowed_types = [\"application/pdf\"]\netag = \"auto\"\nallowed_extensions = [\"pdf\", \"txt\"]\n",
    )
    .await;
    let t = create_tenant(app.state.control.as_ref(), "names2")
        .await
        .expect("tenant");
    let (s, v) = upload_named(&app, &t.api_key, "invoice.exe", &body).await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = upload_named(&app, &t.api_key, "invoice.docx", &body).await;
    assert_eq!(s, 400);
    let (s, _) = upload_named(&app, &t.api_key, "invoice.pdf", &body).await;
    assert_eq!(s, 201);
    app.stop().await;
}

/// A PNG whose header declares `w` × `h` pixels, padded to `len` bytes.
fn png_of(w: u32, h: u32, len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0]);
    v.resize(len, 0);
    v
}

#[tokio::test]
async fn decompression_bombs_are_refused_from_the_header() {
    let app = spawn_app().await;
    let s3 = app.s3();
    // 100,000 × 100,000 pixels in a 4 KiB file: refused before anything decodes it.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("img/bomb.png")
        .content_type("image/png")
        .body(ByteStream::from(png_of(100_000, 100_000, 4096)))
        .send()
        .await
        .expect_err("bomb");
    let code = err.into_service_error().meta().code().map(str::to_string);
    assert_eq!(code.as_deref(), Some("ContentRejected"));
    // A JPEG whose start-of-frame declares 65,535 × 65,535.
    let mut jpeg = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03,
    ];
    jpeg.resize(2048, 0);
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("img/bomb.jpg")
        .content_type("image/jpeg")
        .body(ByteStream::from(jpeg))
        .send()
        .await
        .expect_err("jpeg bomb");
    let code = err.into_service_error().meta().code().map(str::to_string);
    assert_eq!(code.as_deref(), Some("ContentRejected"));
    assert!(app.object_files().is_empty());
    // An ordinary photo's dimensions pass.
    s3.put_object()
        .bucket(BUCKET)
        .key("img/photo.png")
        .body(ByteStream::from(png_of(4032, 3024, 10_000)))
        .send()
        .await
        .expect("photo");
    app.stop().await;
}

#[tokio::test]
async fn a_text_only_bucket_takes_half_a_kilobyte_to_two_of_real_text() {
    // Seed 001's bucket: .txt only, 0.5 KB to 2 KB.
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 2048\nmin_object_bytes = 512\n\
         allowed_types = [\"text/plain\"]\netag = \"auto\"\nallowed_extensions = [\"txt\"]\n",
    )
    .await;
    let s3 = app.s3();
    let put = |key: &'static str, ct: &'static str, body: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .content_type(ct)
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    e.into_service_error()
                        .meta()
                        .code()
                        .unwrap_or("")
                        .to_string()
                })
        }
    };
    let line = "Zoë's note: fine UTF-8 text, tabs\tand\r\nline ends.\n";
    let text = line.repeat(1000 / line.len() + 1).into_bytes();
    assert_eq!(
        put("t/ok.txt", "text/plain; charset=utf-8", text.clone()).await,
        Ok(())
    );
    let rec = app
        .state
        .meta
        .current(BUCKET, "t/ok.txt")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.content_type, "text/plain");
    assert_eq!(rec.sha256, sha256_hex(&text));
    // Too small, too large.
    assert_eq!(
        put("t/small.txt", "text/plain", b"too short".to_vec()).await,
        Err("EntityTooSmall".to_string())
    );
    assert_eq!(
        put("t/big.txt", "text/plain", vec![b'a'; 3000]).await,
        Err("EntityTooLarge".to_string())
    );
    // Binary dressed as text: a NUL byte, invalid UTF-8, or a PDF's magic.
    let mut nul = text.clone();
    nul[700] = 0;
    assert_eq!(
        put("t/nul.txt", "text/plain", nul).await,
        Err("ContentRejected".to_string())
    );
    let mut latin1 = text.clone();
    latin1[600] = 0xE9;
    assert_eq!(
        put("t/latin1.txt", "text/plain", latin1).await,
        Err("ContentRejected".to_string())
    );
    assert_eq!(
        put("t/pdf.txt", "text/plain", pdf(1000)).await,
        Err("ContentTypeMismatch".to_string())
    );
    // Text has no magic: undeclared, it is not accepted.
    assert_eq!(
        put("t/undeclared.txt", "application/octet-stream", text.clone()).await,
        Err("ContentTypeMismatch".to_string())
    );
    assert_eq!(app.object_files().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_opaque_bucket_stores_any_type_and_serves_it_as_a_sandboxed_attachment() {
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 100000\nallowed_types = []\netag = \"auto\"\n\
         types = \"any\"\n",
    )
    .await;
    let s3 = app.s3();
    let html = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    s3.put_object()
        .bucket(BUCKET)
        .key("o/page.html")
        .content_type("text/html")
        .body(ByteStream::from(html.clone()))
        .send()
        .await
        .expect("html stored");
    s3.put_object()
        .bucket(BUCKET)
        .key("o/blob")
        .body(ByteStream::from(vec![7u8; 5000]))
        .send()
        .await
        .expect("untyped stored");
    let rec = app
        .state
        .meta
        .current(BUCKET, "o/blob")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.content_type, "application/octet-stream");
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("o/page.html")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("text/html"));
    assert_eq!(got.content_disposition(), Some("attachment"));
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), html.as_slice());
    // Through a presigned GET a browser would follow: the headers that keep it from rendering.
    let url = s3
        .get_object()
        .bucket(BUCKET)
        .key("o/page.html")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .expect("cfg"),
        )
        .await
        .expect("presign");
    let (s, h, _) = send("GET", url.uri(), &[], Vec::new()).await;
    assert_eq!(s, 200);
    assert_eq!(h["content-disposition"], "attachment");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("sandbox")
    );
    // Every other check still runs: the size limit, and the checks of what the bytes are.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("o/big")
        .body(ByteStream::from(vec![1u8; 100_001]))
        .send()
        .await
        .expect_err("too big");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("EntityTooLarge")
    );
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("o/active.bin")
        .content_type("application/octet-stream")
        .body(ByteStream::from(js_pdf(20_000)))
        .send()
        .await
        .expect_err("active pdf");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ContentRejected")
    );
    app.stop().await;
}
