//! Content checks that change or judge the stored bytes, end to end: a PDF disarmed in place
//! (S3 PUT, a link with a pinned hash, multipart, tus), image metadata removed (exiftool is the
//! oracle, a JPEG decoder proves the pixels unchanged), and Office documents checked for their
//! format, macros and zip bombs. The verdict is on the record and in the API.

use std::io::Cursor;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use upgate::api::admin::create_tenant;

use crate::common::{
    BUCKET, TestApp, docx_with, get_bytes, multipart_put, pdf, send, sha256_hex, spawn_app,
    spawn_app_with,
};
use crate::content::{api, js_pdf, objstm_pdf, put_through};
use crate::tus;

fn verdict(rec: &upgate::metadata::ObjectRecord) -> Value {
    serde_json::from_str(rec.scan.as_deref().expect("a verdict is recorded")).expect("json")
}

fn active_names(body: &[u8]) -> Vec<upgate::scan::pdf::Finding> {
    let mut s = upgate::scan::pdf::PdfScanner::new();
    s.push(body);
    s.finish()
}

/// Mints a link for `body` (its SHA-256 pinned) and uploads through it.
async fn through_link(app: &TestApp, key: &str, name: &str, ct: &str, body: &[u8]) -> Value {
    let (s, link) = api(
        app,
        key,
        "POST",
        "/v1/uploads",
        json!({"filename": name, "content_type": ct, "size": body.len(),
               "sha256": sha256_hex(body)}),
    )
    .await;
    assert_eq!(s, 201, "{link}");
    let (s, b) = put_through(&link, body.to_vec()).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let (s, st) = api(
        app,
        key,
        "GET",
        &format!("/v1/uploads/{}", link["upload_id"].as_str().expect("id")),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(st["status"], "complete", "{st}");
    st
}

#[tokio::test]
async fn a_disarm_bucket_stores_active_pdfs_neutralised_in_place_on_every_way_in() {
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 20971520\nallowed_types = [\"application/pdf\"]\n\
         etag = \"auto\"\npdf_active_content = \"disarm\"\n",
    )
    .await;
    let s3 = app.s3();
    let body = js_pdf(60_000);
    assert!(!active_names(&body).is_empty());

    // S3 PUT.
    s3.put_object()
        .bucket(BUCKET)
        .key("d/put.pdf")
        .content_type("application/pdf")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("disarmed, stored");
    let stored = get_bytes(&app, "d/put.pdf").await;
    assert_eq!(stored.len(), body.len(), "no byte moved");
    assert_ne!(stored, body);
    assert_eq!(active_names(&stored), vec![], "nothing active is stored");
    let differing = body.iter().zip(&stored).filter(|(a, b)| a != b).count();
    assert!(differing <= "OpenActionJavaScriptJS".len(), "{differing}");
    let rec = app
        .state
        .meta
        .current(BUCKET, "d/put.pdf")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(
        rec.sha256,
        sha256_hex(&stored),
        "the record is of the stored bytes"
    );
    let v = verdict(&rec);
    assert_eq!(v["result"], "disarmed", "{v}");
    assert_eq!(v["checks"], json!(["type", "pdf"]), "{v}");
    for name in ["OpenAction", "JavaScript", "JS"] {
        assert!(
            v["changes"]
                .as_array()
                .expect("changes")
                .contains(&json!(format!("disarmed {name}"))),
            "{name}: {v}"
        );
    }

    // A name inside a compressed object stream cannot be changed in place: refused.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("d/objstm.pdf")
        .body(ByteStream::from(objstm_pdf(40_000)))
        .send()
        .await
        .expect_err("not disarmable");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ContentRejected")
    );
    assert!(
        app.state
            .meta
            .current(BUCKET, "d/objstm.pdf")
            .await
            .expect("m")
            .is_none()
    );

    // A link whose SHA-256 was pinned to the uploaded bytes: the pin is checked against what
    // arrived, the record says what is stored.
    let t = create_tenant(app.state.control.as_ref(), "disarm")
        .await
        .expect("tenant");
    let st = through_link(&app, &t.api_key, "report.pdf", "application/pdf", &body).await;
    assert_eq!(st["scan"]["result"], "disarmed", "{st}");
    assert_ne!(st["sha256"], sha256_hex(&body));
    let (_, file) = api(
        &app,
        &t.api_key,
        "GET",
        &format!("/v1/files/{}", st["file_id"].as_str().expect("id")),
        Value::Null,
    )
    .await;
    assert_eq!(file["scan"]["result"], "disarmed", "{file}");
    assert_eq!(file["sha256"], st["sha256"]);
    assert_eq!(file["size"], json!(body.len()));

    // S3 multipart: the active names are in the second part.
    let mut big = pdf(5 * 1024 * 1024);
    big.extend_from_slice(&js_pdf(100_000));
    let key = "d/multipart.pdf";
    let (a, b) = big.split_at(5 * 1024 * 1024);
    multipart_put(&s3, key, "application/pdf", &[a, b])
        .await
        .expect("disarmed, assembled");
    let stored = get_bytes(&app, key).await;
    assert_eq!(stored.len(), big.len());
    assert_eq!(active_names(&stored), vec![]);
    let rec = app
        .state
        .meta
        .current(BUCKET, key)
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.sha256, sha256_hex(&stored));
    assert_eq!(verdict(&rec)["result"], "disarmed");

    // tus.
    let url = tus::create(&app, &t.api_key, body.len(), "").await;
    let (s, _, b) = tus::patch(&app, &t.api_key, &url, 0, &body, &[]).await;
    assert_eq!(s, 204, "{b}");
    let (_, files) = api(&app, &t.api_key, "GET", "/v1/files", Value::Null).await;
    let done: Vec<&Value> = files["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["status"] == "complete")
        .collect();
    assert_eq!(done.len(), 2, "{files}");
    assert!(
        done.iter().all(|f| f["scan"]["result"] == "disarmed"),
        "{files}"
    );
    app.stop().await;
}

/// A real 64 × 48 baseline JPEG (a gradient), encoded in process.
fn jpeg_image() -> Vec<u8> {
    let (w, h) = (64u16, 48u16);
    let mut rgb = Vec::new();
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&[(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    out
}

fn pixels(jpeg: &[u8]) -> Vec<u8> {
    jpeg_decoder::Decoder::new(Cursor::new(jpeg))
        .decode()
        .expect("decodes")
}

/// exiftool's view of a file: every tag, by group, numeric values.
fn exif_tags(dir: &std::path::Path, name: &str, bytes: &[u8]) -> serde_json::Map<String, Value> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    let out = Command::new("exiftool")
        .args(["-j", "-a", "-G1", "-n"])
        .arg(&path)
        .output()
        .expect("exiftool runs (Debian libimage-exiftool-perl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v[0].as_object().expect("tags").clone()
}

/// A JPEG with GPS, camera, XMP and comment metadata written by exiftool, rotated 90°.
fn tagged_jpeg(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("tagged.jpg");
    std::fs::write(&path, jpeg_image()).expect("write");
    let status = Command::new("exiftool")
        .args([
            "-q",
            "-overwrite_original",
            "-GPSLatitude=48.8584",
            "-GPSLatitudeRef=N",
            "-GPSLongitude=2.2945",
            "-GPSLongitudeRef=E",
            "-Make=TestCam",
            "-SerialNumber=SN-12345",
            "-XMP-dc:Creator=Someone Private",
            "-Comment=shot at home",
            "-Orientation#=6",
        ])
        .arg(&path)
        .status()
        .expect("exiftool runs");
    assert!(status.success());
    std::fs::read(&path).expect("read")
}

fn has_private_tags(tags: &serde_json::Map<String, Value>) -> Vec<String> {
    tags.iter()
        .filter(|(k, v)| {
            k.contains("GPS")
                || k.ends_with(":Make")
                || k.ends_with(":SerialNumber")
                || k.ends_with(":Creator")
                || k.ends_with(":Comment")
                || v.as_str().is_some_and(|s| s.contains("Someone Private"))
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

#[tokio::test]
async fn image_metadata_is_removed_with_the_pixels_and_orientation_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let tagged = tagged_jpeg(dir.path());
    let before = exif_tags(dir.path(), "before.jpg", &tagged);
    let private = has_private_tags(&before);
    assert!(
        private.iter().any(|t| t.contains("GPSLatitude")),
        "{private:?}"
    );
    assert!(
        private.len() >= 5,
        "the oracle sees what was written: {private:?}"
    );

    let app = spawn_app().await;
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("photos/a.jpg")
        .content_type("image/jpeg")
        .body(ByteStream::from(tagged.clone()))
        .send()
        .await
        .expect("stored");
    let stored = get_bytes(&app, "photos/a.jpg").await;
    let after = exif_tags(dir.path(), "after.jpg", &stored);
    assert_eq!(has_private_tags(&after), Vec::<String>::new(), "{after:?}");
    assert_eq!(after.get("IFD0:Orientation"), Some(&json!(6)), "{after:?}");
    assert_eq!(pixels(&stored), pixels(&tagged), "the same pixels");
    assert!(stored.len() < tagged.len());
    let rec = app
        .state
        .meta
        .current(BUCKET, "photos/a.jpg")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.sha256, sha256_hex(&stored));
    assert_eq!(rec.size, stored.len() as u64);
    let v = verdict(&rec);
    assert_eq!(v["result"], "stripped", "{v}");
    for removed in [
        "removed exif",
        "removed gps",
        "removed xmp",
        "removed comment",
    ] {
        assert!(
            v["changes"]
                .as_array()
                .expect("c")
                .contains(&json!(removed)),
            "{removed}: {v}"
        );
    }

    // Through a link with a pinned hash: the record and the API show the stored bytes.
    let t = create_tenant(app.state.control.as_ref(), "photos")
        .await
        .expect("tenant");
    let st = through_link(&app, &t.api_key, "holiday.jpg", "image/jpeg", &tagged).await;
    assert_eq!(st["scan"]["result"], "stripped", "{st}");
    assert_eq!(st["sha256"], sha256_hex(&stored), "{st}");

    // An image without metadata is stored as it came.
    let plain = jpeg_image();
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("photos/plain.jpg")
        .body(ByteStream::from(plain.clone()))
        .send()
        .await
        .expect("stored");
    assert_eq!(get_bytes(&app, "photos/plain.jpg").await, plain);
    app.stop().await;

    // A bucket that keeps metadata keeps it.
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 20971520\nallowed_types = [\"image/jpeg\"]\n\
         etag = \"auto\"\nstrip_image_metadata = false\n",
    )
    .await;
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("kept.jpg")
        .body(ByteStream::from(tagged.clone()))
        .send()
        .await
        .expect("stored");
    assert_eq!(get_bytes(&app, "kept.jpg").await, tagged);
    app.stop().await;
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn docx(extra: &[(&str, &[u8])]) -> Vec<u8> {
    docx_with(b"<w:document><w:body/></w:document>", extra)
}

#[tokio::test]
async fn office_documents_must_be_what_they_say_without_macros_or_bombs() {
    let app = spawn_app_with(&format!(
        "[buckets.uploads]\nmax_object_bytes = 20971520\n\
         allowed_types = [\"application/pdf\", \"{DOCX}\", \"{XLSX}\"]\netag = \"auto\"\n"
    ))
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
                .map_err(|e| {
                    e.into_service_error()
                        .meta()
                        .code()
                        .unwrap_or("?")
                        .to_string()
                })
        }
    };
    let clean = docx(&[]);
    put("o/letter.docx", DOCX, clean.clone())
        .await
        .expect("a clean docx");
    let rec = app
        .state
        .meta
        .current(BUCKET, "o/letter.docx")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.content_type, DOCX);
    assert_eq!(verdict(&rec)["checks"], json!(["type", "office"]));

    let zeros = vec![0u8; 6 << 20];
    for (key, ct, body) in [
        (
            "o/macro.docx",
            DOCX,
            docx(&[("word/vbaProject.bin", b"\xd0\xcf\x11\xe0 macro")]),
        ),
        (
            "o/bomb.docx",
            DOCX,
            docx(&[("word/media/zeros.bin", &zeros)]),
        ),
        ("o/wrong.xlsx", XLSX, clean.clone()),
        (
            "o/notzip.docx",
            DOCX,
            b"PK\x03\x04 but not a zip at all".to_vec(),
        ),
    ] {
        assert_eq!(
            put(key, ct, body).await.expect_err(key),
            "ContentRejected",
            "{key}"
        );
        assert!(
            app.state
                .meta
                .current(BUCKET, key)
                .await
                .expect("m")
                .is_none()
        );
    }
    // Not a zip at all: its first bytes do not match the declared type.
    assert_eq!(
        put("o/fake.docx", DOCX, pdf(3000)).await.expect_err("pdf"),
        "ContentTypeMismatch"
    );
    // Through a link too.
    let t = create_tenant(app.state.control.as_ref(), "office")
        .await
        .expect("tenant");
    let st = through_link(&app, &t.api_key, "letter.docx", DOCX, &clean).await;
    assert_eq!(st["scan"]["checks"], json!(["type", "office"]), "{st}");
    app.stop().await;

    // A bucket may allow macros.
    let app = spawn_app_with(&format!(
        "[buckets.uploads]\nmax_object_bytes = 20971520\nallowed_types = [\"{DOCX}\"]\n\
         etag = \"auto\"\nallow_macros = true\n"
    ))
    .await;
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("macro.docx")
        .content_type(DOCX)
        .body(ByteStream::from(docx(&[(
            "word/vbaProject.bin",
            b"\xd0\xcf\x11\xe0 macro",
        )])))
        .send()
        .await
        .expect("allowed");
    app.stop().await;
}

#[tokio::test]
async fn an_opaque_bucket_takes_any_type_through_links_and_tus_too() {
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 100000\nallowed_types = []\netag = \"auto\"\n\
         types = \"any\"\n",
    )
    .await;
    let t = create_tenant(app.state.control.as_ref(), "opaque")
        .await
        .expect("tenant");
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let st = through_link(&app, &t.api_key, "page.html", "text/html", &html).await;
    assert_eq!(st["content_type"], "text/html", "{st}");
    assert_eq!(
        st["scan"]["checks"],
        json!([]),
        "no type check in an opaque bucket: {st}"
    );
    let (_, file) = api(
        &app,
        &t.api_key,
        "GET",
        &format!("/v1/files/{}", st["file_id"].as_str().expect("id")),
        Value::Null,
    )
    .await;
    // A download link serves it as a sandboxed attachment, never inline.
    let (s, dl) = api(
        &app,
        &t.api_key,
        "POST",
        &format!(
            "/v1/files/{}/download-url",
            file["file_id"].as_str().expect("id")
        ),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{dl}");
    let (s, h, b) = send("GET", dl["url"].as_str().expect("url"), &[], Vec::new()).await;
    assert_eq!(s, 200, "{dl} {}", String::from_utf8_lossy(&b));
    assert_eq!(b, html);
    assert!(
        h["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment"),
        "{h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");

    // tus, with a declared type the bytes do not show; and an active PDF is still refused.
    let meta = format!(
        "filename {},filetype {}",
        tus::b64("data.bin"),
        tus::b64("application/x-telemetry")
    );
    for (body, ok) in [(vec![9u8; 3000], true), (js_pdf(20_000), false)] {
        let url = tus::create(&app, &t.api_key, body.len(), &meta).await;
        let (s, _, b) = tus::patch(&app, &t.api_key, &url, 0, &body, &[]).await;
        assert_eq!(s == 204, ok, "{s} {b}");
    }
    let (_, files) = api(&app, &t.api_key, "GET", "/v1/files", Value::Null).await;
    let types: Vec<&str> = files["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["status"] == "complete")
        .filter_map(|f| f["content_type"].as_str())
        .collect();
    assert!(types.contains(&"application/x-telemetry"), "{files}");
    app.stop().await;
}

#[tokio::test]
async fn a_quarantine_bucket_keeps_refused_bytes_where_only_the_operator_reaches_them() {
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 20971520\nallowed_types = [\"application/pdf\"]\n\
         etag = \"auto\"\nquarantine = true\n",
    )
    .await;
    let s3 = app.s3();
    let body = js_pdf(30_000);
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("q/active.pdf")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect_err("refused");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ContentRejected")
    );
    let mut big = pdf(5 * 1024 * 1024);
    big.extend_from_slice(&objstm_pdf(50_000));
    let (a, b) = big.split_at(5 * 1024 * 1024);
    let code = multipart_put(&s3, "q/active-mp.pdf", "application/pdf", &[a, b])
        .await
        .expect_err("refused");
    assert_eq!(code, "ContentRejected");
    // Not visible, and no key reaches the quarantine area.
    for key in ["q/active.pdf", "q/active-mp.pdf", "_quarantine"] {
        assert!(
            s3.head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .is_err(),
            "{key}"
        );
    }
    let mut kept: Vec<(Vec<u8>, Value)> = Vec::new();
    for f in app.object_files() {
        let name = f.to_string_lossy().to_string();
        if name.contains("/_quarantine/") && !name.ends_with(".json") {
            let note: Value =
                serde_json::from_slice(&std::fs::read(format!("{name}.json")).expect("note"))
                    .expect("json");
            kept.push((std::fs::read(&f).expect("bytes"), note));
        }
    }
    kept.sort_by_key(|(b, _)| b.len());
    assert_eq!(kept.len(), 2, "{:?}", app.object_files());
    assert_eq!(kept[0].0, body);
    assert_eq!(kept[0].1["key"], "q/active.pdf");
    assert_eq!(kept[0].1["reason"], "OpenAction");
    assert_eq!(kept[1].0, big);
    assert_eq!(kept[1].1["key"], "q/active-mp.pdf");
    assert_eq!(kept[1].1["reason"], "OpenAction");
    // Failures that are not a content check's leave nothing, quarantine or not.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("q/png.pdf")
        .content_type("application/pdf")
        .body(ByteStream::from(
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR....".to_vec(),
        ))
        .send()
        .await
        .expect_err("mismatch");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ContentTypeMismatch")
    );
    let files = app.object_files();
    let quarantined = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("_quarantine"))
        .count();
    assert_eq!(quarantined, 4, "{files:?}");
    app.stop().await;
}

#[tokio::test]
async fn svg_and_html_behind_image_magic_bytes_are_refused_on_every_way_in() {
    let app = spawn_app().await;
    let mut gif = b"GIF89a\x20\x00\x10\x00\x00\0\0".to_vec();
    gif.extend_from_slice(b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>");
    gif.extend_from_slice(&[0u8; 2000]);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
    png.extend_from_slice(b"\0\0\0\x20tEXtComment\0<html><script>alert(1)</script></html>");
    png.extend_from_slice(&[0u8; 2000]);
    let err = app
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key("poly.gif")
        .content_type("image/gif")
        .body(ByteStream::from(gif.clone()))
        .send()
        .await
        .expect_err("polyglot");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ContentRejected")
    );
    let t = create_tenant(app.state.control.as_ref(), "poly")
        .await
        .expect("tenant");
    let (s, link) = api(
        &app,
        &t.api_key,
        "POST",
        "/v1/uploads",
        json!({"filename": "x.png", "content_type": "image/png", "size": png.len()}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, b) = put_through(&link, png.clone()).await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("ContentRejected"));
    let url = tus::create(&app, &t.api_key, gif.len(), "").await;
    let (s, _, b) = tus::patch(&app, &t.api_key, &url, 0, &gif, &[]).await;
    assert_eq!(s, 422, "{b}");
    assert!(
        app.state
            .meta
            .current(BUCKET, "poly.gif")
            .await
            .expect("m")
            .is_none()
    );
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

fn bmff_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(payload.len() + 8)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(payload);
    v
}

/// A HEIC file built box by box: ftyp, mdat (a stand-in coded image, then an Exif item of
/// exiftool-written TIFF data), and a meta box whose iinf/iloc point at both items.
fn heic_with_exif(tiff: &[u8]) -> (Vec<u8>, std::ops::Range<usize>) {
    let ftyp = bmff_box(b"ftyp", b"heic\0\0\0\0mif1heic");
    let image = vec![0x42u8; 4000];
    let mut exif = 6u32.to_be_bytes().to_vec();
    exif.extend_from_slice(b"Exif\0\0");
    exif.extend_from_slice(tiff);
    let mut mdat_payload = image.clone();
    mdat_payload.extend_from_slice(&exif);
    let mdat = bmff_box(b"mdat", &mdat_payload);
    let image_at = (ftyp.len() + 8) as u32;
    let exif_at = image_at + image.len() as u32;
    let full = |v: u8, rest: &[u8]| {
        let mut p = vec![v, 0, 0, 0];
        p.extend_from_slice(rest);
        p
    };
    let hdlr = bmff_box(b"hdlr", &full(0, b"\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0"));
    let pitm = bmff_box(b"pitm", &full(0, &1u16.to_be_bytes()));
    let infe = |id: u16, kind: &[u8; 4]| {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(kind);
        p.push(0);
        bmff_box(b"infe", &full(2, &p))
    };
    let mut iinf = 2u16.to_be_bytes().to_vec();
    iinf.extend(infe(1, b"hvc1"));
    iinf.extend(infe(2, b"Exif"));
    let iinf = bmff_box(b"iinf", &full(0, &iinf));
    let mut iloc = vec![0x44, 0x00];
    iloc.extend_from_slice(&2u16.to_be_bytes());
    for (id, at, len) in [(1u16, image_at, image.len()), (2, exif_at, exif.len())] {
        iloc.extend_from_slice(&id.to_be_bytes());
        iloc.extend_from_slice(&0u16.to_be_bytes());
        iloc.extend_from_slice(&1u16.to_be_bytes());
        iloc.extend_from_slice(&at.to_be_bytes());
        iloc.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    }
    let iloc = bmff_box(b"iloc", &full(0, &iloc));
    let mut ispe = 640u32.to_be_bytes().to_vec();
    ispe.extend_from_slice(&480u32.to_be_bytes());
    let ipco = bmff_box(b"ipco", &bmff_box(b"ispe", &full(0, &ispe)));
    let ipma = bmff_box(b"ipma", &full(0, &[0, 0, 0, 1, 0, 1, 1, 0x81]));
    let mut iprp = ipco;
    iprp.extend(ipma);
    let iprp = bmff_box(b"iprp", &iprp);
    let mut meta = Vec::new();
    for b in [hdlr, pitm, iinf, iloc, iprp] {
        meta.extend(b);
    }
    let meta = bmff_box(b"meta", &full(0, &meta));
    let mut file = ftyp;
    file.extend(mdat);
    file.extend(meta);
    let exif_range = exif_at as usize..exif_at as usize + exif.len();
    (file, exif_range)
}

#[tokio::test]
async fn heic_exif_items_are_blanked_in_place() {
    // exiftool writes the TIFF data (GPS, camera) into a JPEG; its EXIF block becomes the
    // HEIC's Exif item.
    let dir = tempfile::tempdir().expect("tmp");
    let tagged = tagged_jpeg(dir.path());
    let exif = img_exif(&tagged);
    let (heic, exif_range) = heic_with_exif(&exif);
    let before = exif_tags(dir.path(), "before.heic", &heic);
    assert!(
        has_private_tags(&before)
            .iter()
            .any(|t| t.contains("GPSLatitude")),
        "the oracle reads the hand-made HEIC: {before:?}"
    );
    let app = spawn_app_with(
        "[buckets.uploads]\nmax_object_bytes = 20971520\nallowed_types = [\"image/heic\"]\n\
         etag = \"auto\"\n",
    )
    .await;
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("photo.heic")
        .content_type("image/heic")
        .body(ByteStream::from(heic.clone()))
        .send()
        .await
        .expect("stored");
    let stored = get_bytes(&app, "photo.heic").await;
    assert_eq!(stored.len(), heic.len(), "no byte moved");
    assert!(
        stored[exif_range.clone()].iter().all(|&b| b == 0),
        "the Exif bytes are gone"
    );
    // Outside the Exif bytes only the item's type changed (4 bytes, renamed so readers skip it).
    let outside = heic
        .iter()
        .zip(&stored)
        .enumerate()
        .filter(|(i, (a, b))| !exif_range.contains(i) && a != b)
        .count();
    assert_eq!(outside, 4);
    let after = exif_tags(dir.path(), "after.heic", &stored);
    assert_eq!(has_private_tags(&after), Vec::<String>::new(), "{after:?}");
    let rec = app
        .state
        .meta
        .current(BUCKET, "photo.heic")
        .await
        .expect("m")
        .expect("stored");
    let v = verdict(&rec);
    assert_eq!(v["result"], "stripped", "{v}");
    assert!(
        v["changes"]
            .as_array()
            .expect("c")
            .contains(&json!("removed gps")),
        "{v}"
    );
    app.stop().await;
}

/// The raw TIFF bytes of a JPEG's EXIF segment.
fn img_exif(jpeg: &[u8]) -> Vec<u8> {
    let at = jpeg
        .windows(6)
        .position(|w| w == b"Exif\0\0")
        .expect("an EXIF segment");
    let len = usize::from(u16::from_be_bytes([jpeg[at - 2], jpeg[at - 1]]));
    jpeg[at + 6..at - 2 + len].to_vec()
}
