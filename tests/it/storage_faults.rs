//! Backend faults seen through the gateway's S3 interface (T-I4, T-I5, T-I8, T-I9): the backend
//! killed mid-upload, answering 500/503, resetting, or too slow. Every case: 503 with
//! Retry-After, nothing visible at the key or in the backend bucket, no spool file left, no
//! multipart upload left open, and the same upload succeeds once the backend is back.
//! Also: client SSE headers cannot change the configured SSE, and envelope encryption end to end.

use crate::backends;
use crate::common;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::backends::{Fault, FaultProxy, Target};
use crate::common::{ACCESS_KEY, BUCKET, Payload, TestApp, pdf, sign_headers, spawn_app_with};
use bytes::Bytes;

const S3_BUCKET: &str = "gateway";

fn s3_toml(endpoint: &str, extra: &str) -> String {
    format!(
        r#"
[storage]
backend = "s3"
connect_timeout_ms = 500
request_timeout_secs = 2
read_idle_timeout_secs = 2
max_retries = 2
retry_timeout_secs = 2
part_bytes = 5242880
upload_buffer_bytes = 16777216
spool_max_bytes = 67108864
[storage.s3]
endpoint = "{endpoint}"
bucket = "{S3_BUCKET}"
access_key_id = "{key}"
secret_access_key = "{secret}"
{extra}
"#,
        key = backends::MOTO_KEY,
        secret = backends::MOTO_SECRET,
    )
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

/// PUTs `body` to `key` through the gateway, streamed in 256 KiB frames; `on_frame(i)` runs
/// before frame `i` is sent (to inject a fault mid-stream).
async fn put(
    app: &TestApp,
    key: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
    on_frame: impl FnMut(usize) + Send + 'static,
) -> Reply {
    let url = format!("{}/{BUCKET}/{key}", app.endpoint());
    let host = app.addr.to_string();
    let len = body.len().to_string();
    let mut headers: Vec<(&str, &str)> =
        vec![("host", host.as_str()), ("content-type", "application/pdf")];
    headers.extend_from_slice(extra);
    let signed = sign_headers(
        "PUT",
        &url,
        &headers,
        Payload::Unsigned,
        SystemTime::now(),
        common::SECRET_KEY,
    );
    let frames: Vec<Bytes> = body.chunks(256 << 10).map(Bytes::copy_from_slice).collect();
    let on_frame = std::sync::Arc::new(std::sync::Mutex::new(on_frame));
    let stream = futures_util::stream::iter(frames.into_iter().enumerate()).then(move |(i, f)| {
        let on_frame = std::sync::Arc::clone(&on_frame);
        async move {
            if let Ok(mut cb) = on_frame.lock() {
                cb(i);
            }
            // A little pacing so faults land mid-stream.
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, std::io::Error>(f)
        }
    });
    let mut req = reqwest::Client::new()
        .put(&url)
        .header("content-length", len)
        .body(reqwest::Body::wrap_stream(stream));
    for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
        req = req.header(*k, *v);
    }
    for (k, v) in signed {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    Reply {
        status,
        retry_after,
        body,
    }
}

use futures_util::StreamExt;

fn spool_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(app.dir.path().join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// 503 + Retry-After, and nothing anywhere: not at the key, not in the bucket, not in the spool.
async fn assert_failed_cleanly(app: &TestApp, reply: &Reply, key: &str, moto: &str) {
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.retry_after.is_some(), "503 without Retry-After");
    assert!(
        reply.body.contains("<Code>ServiceUnavailable</Code>")
            || reply.body.contains("<Code>SlowDown</Code>"),
        "{}",
        reply.body
    );
    let got = app.s3().head_object().bucket(BUCKET).key(key).send().await;
    assert!(got.is_err(), "{key} visible after a failed upload");
    let listed = app
        .s3()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert!(
        listed.contents().iter().all(|o| o.key() != Some(key)),
        "record committed"
    );
    // Cleanup of the staged write runs right after the response; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        backends::list_keys(moto, S3_BUCKET).await.is_empty(),
        "bytes reached the bucket"
    );
    assert_eq!(
        backends::open_multipart_uploads(moto, S3_BUCKET).await,
        0,
        "multipart upload left open"
    );
    assert!(
        spool_files(app).is_empty(),
        "spool files left: {:?}",
        spool_files(app)
    );
}

async fn assert_works_again(app: &TestApp, key: &str, len: usize) {
    let body = pdf(len);
    let reply = put(app, key, body.clone(), &[], |_| {}).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let bytes = crate::common::get_bytes(app, key).await;
    assert!(bytes == body, "read back differs");
    app.s3()
        .delete_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("delete");
}

fn moto_addr(moto: &backends::Server) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], moto.port))
}

#[tokio::test]
async fn backend_5xx_and_resets_fail_uploads_cleanly_with_503() {
    let Some(moto) = backends::start_moto() else {
        return;
    };
    backends::create_bucket(&moto.endpoint(), S3_BUCKET).await;
    let proxy = FaultProxy::start(moto_addr(&moto));
    let app = spawn_app_with(&s3_toml(&proxy.endpoint(), "")).await;
    let cases: [(&str, Target, Fault, usize); 7] = [
        // Single PUT at commit (small object): every request fails.
        ("small-503.pdf", Target::All, Fault::Status(503), 100_000),
        ("small-500.pdf", Target::All, Fault::Status(500), 100_000),
        ("small-reset.pdf", Target::All, Fault::Reset, 100_000),
        // Multipart: the first part fails (T-I5, after CreateMultipartUpload).
        (
            "part-503.pdf",
            Target::Query("PUT", "partNumber="),
            Fault::Status(503),
            12 << 20,
        ),
        (
            "part-reset.pdf",
            Target::Query("PUT", "partNumber="),
            Fault::Reset,
            12 << 20,
        ),
        // Multipart: CompleteMultipartUpload fails after every part was stored (T-I5).
        (
            "complete-500.pdf",
            Target::Query("POST", "uploadId="),
            Fault::Status(500),
            12 << 20,
        ),
        // CreateMultipartUpload refused (e.g. KMS throttled, T-I9).
        (
            "create-503.pdf",
            Target::Query("POST", "uploads"),
            Fault::Status(503),
            12 << 20,
        ),
    ];
    for (key, target, fault, len) in cases {
        proxy.set(target, fault);
        let reply = put(&app, key, pdf(len), &[], |_| {}).await;
        assert_failed_cleanly(&app, &reply, key, &moto.endpoint()).await;
        proxy.set(Target::All, Fault::Pass);
        assert_works_again(&app, key, len).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_slow_backend_times_out_into_503() {
    let Some(moto) = backends::start_moto() else {
        return;
    };
    backends::create_bucket(&moto.endpoint(), S3_BUCKET).await;
    let proxy = FaultProxy::start(moto_addr(&moto));
    let app = spawn_app_with(&s3_toml(&proxy.endpoint(), "")).await;
    for (key, target, len) in [
        ("slow-put.pdf", Target::All, 100_000),
        (
            "slow-part.pdf",
            Target::Query("PUT", "partNumber="),
            12 << 20,
        ),
    ] {
        proxy.set(target, Fault::Delay(Duration::from_secs(4)));
        let started = std::time::Instant::now();
        let reply = put(&app, key, pdf(len), &[], |_| {}).await;
        // request_timeout 2 s, retries stop after 2 s: bounded, well under the client's patience.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        proxy.set(Target::All, Fault::Pass);
        // The delayed request may still land after the timeout fired (the proxy forwards it
        // late); the gateway removes it once the retry window is over (2 x request_timeout).
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_failed_cleanly(&app, &reply, key, &moto.endpoint()).await;
        assert_works_again(&app, key, len).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn killing_the_backend_mid_upload_fails_cleanly_with_503() {
    let Some(mut moto) = backends::start_moto() else {
        return;
    };
    let endpoint = moto.endpoint();
    backends::create_bucket(&endpoint, S3_BUCKET).await;
    let app = spawn_app_with(&s3_toml(&endpoint, "")).await;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Kill moto once 7 MiB (more than one 5 MiB part) have been sent.
    let reply = put(&app, "killed.pdf", pdf(12 << 20), &[], move |i| {
        if i == 28 {
            let _ = tx.send(());
        }
    });
    let killer = tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
        moto.kill();
        moto
    });
    let reply = reply.await;
    let moto = killer.await.expect("killer");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.retry_after.is_some());
    assert!(
        app.s3()
            .head_object()
            .bucket(BUCKET)
            .key("killed.pdf")
            .send()
            .await
            .is_err(),
        "visible after the backend died"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(spool_files(&app).is_empty(), "{:?}", spool_files(&app));
    drop(moto);
    app.stop().await;
}

/// A tus upload whose last append stored every byte but whose completion failed (the backend
/// refusing the reads that assemble it) must not look finished: tus clients take an offset equal
/// to the length for "done". HEAD completes it once the backend is back, exactly once.
#[tokio::test]
async fn a_tus_upload_whose_completion_failed_is_finished_by_head_not_reported_done() {
    use crate::tus::{b64, create, download, files, header, patch, tus};
    let Some(moto) = backends::start_moto() else {
        return;
    };
    backends::create_bucket(&moto.endpoint(), S3_BUCKET).await;
    let proxy = FaultProxy::start(moto_addr(&moto));
    let app = spawn_app_with(&s3_toml(&proxy.endpoint(), "")).await;
    let t = crate::api::tenant(&app, "tus-fault").await;
    let data = pdf(700_000);
    let meta = format!(
        "filename {},filetype {}",
        b64("t.pdf"),
        b64("application/pdf")
    );
    let url = create(&app, &t.api_key, data.len(), &meta).await;
    let half = data.len() / 2;
    let (s, _, b) = patch(&app, &t.api_key, &url, 0, &data[..half], &[]).await;
    assert_eq!(s, 204, "{b}");

    // The last append's part is stored (a PUT), assembling the object (GETs of the parts) fails.
    proxy.set(Target::Query("GET", "/"), Fault::Status(503));
    let (s, _, b) = patch(&app, &t.api_key, &url, half, &data[half..], &[]).await;
    assert_eq!(s, 503, "{b}");
    for _ in 0..2 {
        let (s, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
        assert_eq!(s, 503, "HEAD of an uncommitted whole upload");
        assert_ne!(header(&h, "upload-offset"), data.len().to_string());
    }
    let list = files(&app, &t.api_key).await;
    assert!(list.iter().all(|f| f["status"] != "committed"), "{list:?}");

    // Backend back: the next HEAD commits it and says so; later HEADs change nothing.
    proxy.set(Target::All, Fault::Pass);
    for _ in 0..2 {
        let (s, h, _) = tus(&app, "HEAD", &url, &t.api_key, &[], Vec::new()).await;
        assert_eq!(s, 200);
        assert_eq!(header(&h, "upload-offset"), data.len().to_string());
    }
    let list = files(&app, &t.api_key).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["sha256"], crate::common::sha256_hex(&data));
    let id = list[0]["file_id"].as_str().expect("id");
    assert!(download(&app, &t.api_key, id).await == data, "bytes differ");
    app.stop().await;
}

#[tokio::test]
async fn client_sse_headers_cannot_override_the_configured_encryption() {
    let Some(moto) = backends::start_moto() else {
        return;
    };
    let ep = moto.endpoint();
    backends::create_bucket(&ep, S3_BUCKET).await;
    let app = spawn_app_with(&s3_toml(&ep, "sse = \"AES256\"")).await;
    for (key, len) in [("sse-small.pdf", 10_000), ("sse-multi.pdf", 11 << 20)] {
        let reply = put(
            &app,
            key,
            pdf(len),
            &[
                ("x-amz-server-side-encryption", "aws:kms"),
                (
                    "x-amz-server-side-encryption-aws-kms-key-id",
                    "attacker-key",
                ),
            ],
            |_| {},
        )
        .await;
        // Whether the gateway refuses the header or ignores it, the backend must show ours.
        if reply.status == 200 {
            let stored = backends::list_keys(&ep, S3_BUCKET).await;
            assert_eq!(stored.len(), 1, "{stored:?}");
            let head = backends::s3_client(&ep)
                .head_object()
                .bucket(S3_BUCKET)
                .key(&stored[0])
                .send()
                .await
                .expect("head");
            assert_eq!(
                head.server_side_encryption().map(|s| s.as_str()),
                Some("AES256")
            );
            assert_eq!(head.ssekms_key_id(), None);
            app.s3()
                .delete_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .expect("delete");
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            assert!(backends::list_keys(&ep, S3_BUCKET).await.is_empty());
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn encrypted_local_backend_round_trips_ranges_and_refuses_tampered_bytes() {
    let toml = r#"
[storage.local]
encrypt = true
[storage.encryption]
keys = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
"#;
    let app = spawn_app_with(toml).await;
    let body = pdf(300_000);
    let reply = put(&app, "enc.pdf", body.clone(), &[], |_| {}).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = app
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key("enc.pdf")
        .range("bytes=70000-200000")
        .send()
        .await
        .expect("ranged get");
    assert_eq!(got.content_length(), Some(130_001));
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert!(bytes.as_ref() == &body[70_000..=200_000]);
    let head = app
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key("enc.pdf")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(300_000));
    // On disk: ciphertext (plus its key sidecar), no plaintext.
    let files = app.object_files();
    assert_eq!(files.len(), 2, "{files:?}");
    let object = files
        .iter()
        .find(|p| !p.to_string_lossy().ends_with(".dek"))
        .expect("object");
    let mut raw = std::fs::read(object).expect("read");
    assert!(
        !raw.windows(8).any(|w| w == &body[..8]),
        "plaintext on disk"
    );
    // Flip a bit: the download fails (500), it never returns altered bytes.
    raw[100] ^= 1;
    std::fs::write(object, &raw).expect("write");
    let err = app
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key("enc.pdf")
        .send()
        .await;
    let err = err.expect_err("tampered object must not download");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(500), "{err:?}");
    let _ = ACCESS_KEY;
    app.stop().await;
}
