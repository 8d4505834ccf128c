//! Bad inputs from ../shared/SECURITY-TESTS.md (sections A, B, C, H8), end to end over HTTP.
//! After each rejection the invariants are checked: no object at the key (or the previous one
//! unchanged), no pending row, no file left in the object store.

use std::time::{Duration, SystemTime};

use crate::common::*;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn url(app: &TestApp, key: &str) -> String {
    format!("{}/{BUCKET}/{key}", app.endpoint())
}

fn host(app: &TestApp) -> String {
    app.addr.to_string()
}

/// INV-1/INV-2: nothing visible at `key`, no pending row, no stray file.
async fn assert_nothing_stored(app: &TestApp, key: &str) {
    // Background cleanup (drop guards) may take a moment.
    for _ in 0..50 {
        let pending = app.state.meta.sweepable(i64::MAX, 10).await.expect("meta");
        if pending.is_empty() && app.object_files().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        app.state
            .meta
            .current(BUCKET, key)
            .await
            .expect("meta")
            .is_none(),
        "object visible at {key}"
    );
    assert!(
        app.state
            .meta
            .sweepable(i64::MAX, 10)
            .await
            .expect("meta")
            .is_empty(),
        "pending/garbage rows left"
    );
    assert!(
        app.object_files().is_empty(),
        "files left: {:?}",
        app.object_files()
    );
}

async fn signed_put(
    app: &TestApp,
    key: &str,
    extra: &[(&str, &str)],
    payload: Payload<'_>,
    body: Vec<u8>,
) -> (u16, String) {
    let u = url(app, key);
    let len = body.len().to_string();
    let h = host(app);
    let mut headers: Vec<(&str, &str)> =
        vec![("host", h.as_str()), ("content-length", len.as_str())];
    headers.extend_from_slice(extra);
    let mut all: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| *k != "host" && *k != "content-length")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.extend(sign_headers(
        "PUT",
        &u,
        &headers,
        payload,
        SystemTime::now(),
        SECRET_KEY,
    ));
    let (status, _, resp) = send("PUT", &u, &all, body).await;
    (status, error_code(&resp))
}

#[tokio::test]
async fn anonymous_and_badly_signed_writes_are_refused_on_every_write_route() {
    // T-B1, T-B7: no route that writes runs without a verified signature.
    let app = spawn_app().await;
    let base = app.endpoint();
    let routes = [
        ("PUT", format!("{base}/{BUCKET}/k.pdf")),
        ("DELETE", format!("{base}/{BUCKET}/k.pdf")),
        ("POST", format!("{base}/{BUCKET}?delete")),
        ("PUT", format!("{base}/{BUCKET}")),
        ("PUT", format!("{base}/{BUCKET}/k.pdf?tagging")),
        ("DELETE", format!("{base}/{BUCKET}/k.pdf?tagging")),
    ];
    for (m, u) in &routes {
        let (status, _, body) = send(m, u, &[], pdf(100)).await;
        assert_eq!(status, 403, "{m} {u}");
        assert_eq!(error_code(&body), "AccessDenied", "{m} {u}");
        // A valid access key with a wrong secret.
        let h = host(&app);
        let signed = sign_headers(
            m,
            u,
            &[("host", &h)],
            Payload::Unsigned,
            SystemTime::now(),
            "wrong-secret",
        );
        let (status, _, body) = send(m, u, &signed, pdf(100)).await;
        assert_eq!(status, 403, "{m} {u}");
        assert_eq!(error_code(&body), "SignatureDoesNotMatch", "{m} {u}");
    }
    assert_nothing_stored(&app, "k.pdf").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_access_key_is_refused() {
    let app = spawn_app().await;
    let s3 = client_for(&app.endpoint(), "AKIDNOSUCHKEY", SECRET_KEY);
    let err = s3.list_buckets().send().await.expect_err("unknown key");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("InvalidAccessKeyId")
    );
    app.stop().await;
}

#[tokio::test]
async fn header_auth_rejects_dates_outside_the_skew() {
    // T-B2.
    let app = spawn_app().await;
    let u = url(&app, "k.pdf");
    let h = host(&app);
    for t in [
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_262_304_000), // 2010
        SystemTime::now() + Duration::from_secs(16 * 60),
    ] {
        let signed = sign_headers(
            "PUT",
            &u,
            &[("host", &h)],
            Payload::Bytes(&pdf(10)),
            t,
            SECRET_KEY,
        );
        let (status, _, body) = send("PUT", &u, &signed, pdf(10)).await;
        assert_eq!(status, 403);
        assert_eq!(error_code(&body), "RequestTimeTooSkewed");
    }
    assert_nothing_stored(&app, "k.pdf").await;
    app.stop().await;
}

#[tokio::test]
async fn signed_payload_hash_is_checked_against_the_bytes_received() {
    // T-B3: the signature is valid, but the body is not the one that was hashed.
    let app = spawn_app().await;
    let other = sha256_hex(&pdf(999));
    let (status, code) = signed_put(&app, "k.pdf", &[], Payload::Literal(&other), pdf(1000)).await;
    assert_eq!((status, code.as_str()), (400, "XAmzContentSHA256Mismatch"));
    assert_nothing_stored(&app, "k.pdf").await;
    // And the right hash works.
    let body = pdf(1000);
    let (status, _) = signed_put(&app, "k.pdf", &[], Payload::Bytes(&body), body.clone()).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn digests_are_checked_and_a_failed_overwrite_keeps_the_previous_object() {
    // T-B4 + INV-1 (previous object unchanged).
    let app = spawn_app().await;
    let s3 = app.s3();
    let original = pdf(4000);
    s3.put_object()
        .bucket(BUCKET)
        .key("keep.pdf")
        .body(original.clone().into())
        .send()
        .await
        .expect("put");
    let before = app
        .state
        .meta
        .current(BUCKET, "keep.pdf")
        .await
        .expect("m")
        .expect("rec");
    let body = pdf(5000);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("content-md5", "not-base64!")], "InvalidDigest"),
        (
            vec![("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            "BadDigest",
        ),
        (
            vec![(
                "x-amz-checksum-sha256",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )],
            "BadDigest",
        ),
        (vec![("x-amz-checksum-crc32", "AAAAAA==")], "BadDigest"),
        (vec![("x-amz-checksum-crc32", "AAAA")], "InvalidDigest"),
    ];
    for (headers, want) in cases {
        let (status, code) =
            signed_put(&app, "keep.pdf", &headers, Payload::Unsigned, body.clone()).await;
        assert_eq!((status, code.as_str()), (400, want), "{headers:?}");
    }
    let after = app
        .state
        .meta
        .current(BUCKET, "keep.pdf")
        .await
        .expect("m")
        .expect("rec");
    assert_eq!(before, after);
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("keep.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("b").into_bytes().as_ref(),
        original.as_slice()
    );
    // Only the original's file remains.
    assert_eq!(app.object_files().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn disguised_and_disallowed_types_are_refused() {
    let app = spawn_app().await;
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("image/png", pdf(2000), "ContentTypeMismatch"), // declared PNG, is a PDF
        ("application/pdf", html.clone(), "ContentTypeMismatch"),
        (
            "application/octet-stream",
            html.clone(),
            "ContentTypeMismatch",
        ), // sniffs as nothing allowed
        ("text/html", html.clone(), "InvalidContentType"), // refused before the body
        ("image/svg+xml", b"<svg/>".to_vec(), "InvalidContentType"),
    ];
    for (ct, body, want) in cases {
        let (status, code) = signed_put(
            &app,
            "t.bin",
            &[("content-type", ct)],
            Payload::Unsigned,
            body,
        )
        .await;
        assert_eq!((status, code.as_str()), (415, want), "{ct}");
    }
    // An empty body is not a PDF (raw request: HTTP clients drop `content-length: 0`).
    let head = signed_head(
        &app,
        "t.bin",
        &[("content-length", "0"), ("content-type", "application/pdf")],
        Payload::Bytes(b""),
    );
    let resp = raw_exchange(&app, &head, &[], false).await;
    assert!(resp.starts_with("HTTP/1.1 415"), "{resp}");
    assert!(resp.contains("ContentTypeMismatch"), "{resp}");
    assert_nothing_stored(&app, "t.bin").await;
    app.stop().await;
}

#[tokio::test]
async fn invalid_keys_are_refused() {
    // T-A7 / T-G9: no write ever lands at a key other than the one signed.
    let app = spawn_app().await;
    // Raw requests: URL libraries would normalise these paths before sending.
    for raw in [
        "a/./x.pdf",
        "a/../x.pdf",
        "a/%2E%2E/x.pdf",
        "a%5Cb",
        "%2E%2E",
    ] {
        let head = format!(
            "PUT /{BUCKET}/{raw} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\r\n",
            host(&app)
        );
        let resp = raw_exchange(&app, &head, &[], false).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{raw}: {resp}");
        assert!(resp.contains("InvalidObjectName"), "{raw}: {resp}");
    }
    // S3's codes for keys it cannot take: control characters, and more than 1024 bytes.
    let long = "k".repeat(1025);
    for (raw, code) in [
        ("a%00b", "InvalidURI"),
        ("a%0Db", "InvalidURI"),
        ("a%1Fb", "InvalidURI"),
        (long.as_str(), "KeyTooLongError"),
    ] {
        let head = format!(
            "PUT /{BUCKET}/{raw} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\r\n",
            host(&app)
        );
        let resp = raw_exchange(&app, &head, &[], false).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{raw}: {resp}");
        assert!(
            resp.contains(&format!("<Code>{code}</Code>")),
            "{raw}: {resp}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn presigned_urls_are_bound_to_path_method_and_time() {
    let app = spawn_app().await;
    let h = host(&app);
    let u = url(&app, "a/x.pdf");
    let now = SystemTime::now();
    // T-A7: the same signature on a different spelling of the path.
    let good = presign_url("PUT", &u, &[("host", &h)], Duration::from_secs(300), now);
    let bad_path = good.replace("/a/x.pdf", "/a//x.pdf");
    let (status, _, body) = send("PUT", &bad_path, &[], pdf(10)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    // T-A13: wrong method.
    let (status, _, body) = send("DELETE", &good, &[], Vec::new()).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    // T-A11: an extra unsigned parameter is part of the canonical query.
    let (status, _, body) = send("PUT", &format!("{good}&x-id=PutObject"), &[], pdf(10)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    // T-A3: expired.
    let old = presign_url(
        "PUT",
        &u,
        &[("host", &h)],
        Duration::from_secs(60),
        now - Duration::from_secs(61),
    );
    let (status, _, body) = send("PUT", &old, &[], pdf(10)).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "AccessDenied"));
    // T-A4: lifetime above 7 days.
    let long = presign_url(
        "PUT",
        &u,
        &[("host", &h)],
        Duration::from_secs(604_801),
        now,
    );
    let (status, _, body) = send("PUT", &long, &[], pdf(10)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "AuthorizationQueryParametersError")
    );
    // T-A10: a duplicated signature parameter, and header + query auth together.
    let sig = good
        .split("X-Amz-Signature=")
        .nth(1)
        .expect("sig")
        .to_string();
    let (status, _, body) = send(
        "PUT",
        &format!("{good}&X-Amz-Signature={sig}"),
        &[],
        pdf(10),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let both = vec![(
        "authorization".to_string(),
        "AWS4-HMAC-SHA256 Credential=x".to_string(),
    )];
    let (status, _, _) = send("PUT", &good, &both, pdf(10)).await;
    assert_eq!(status, 400);
    // T-A2: a missing parameter.
    let missing = good.replace("X-Amz-Date=", "X-Amz-Datum=");
    let (status, _, body) = send("PUT", &missing, &[], pdf(10)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "AuthorizationQueryParametersError")
    );
    assert_nothing_stored(&app, "a/x.pdf").await;
    // And the untampered URL works.
    let (status, _, body) = send("PUT", &good, &[], pdf(10)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    app.stop().await;
}

/// Sends raw bytes and reads until the server answers or closes.
async fn raw_exchange(
    app: &TestApp,
    head: &str,
    body: &[u8],
    wait_for_response_before_body: bool,
) -> String {
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    if !wait_for_response_before_body {
        let _ = s.write_all(body).await;
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("server answered in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

fn signed_head(app: &TestApp, key: &str, extra: &[(&str, &str)], payload: Payload<'_>) -> String {
    let u = url(app, key);
    let h = host(app);
    let mut headers: Vec<(&str, &str)> = vec![("host", h.as_str())];
    headers.extend_from_slice(extra);
    let signed = sign_headers("PUT", &u, &headers, payload, SystemTime::now(), SECRET_KEY);
    let mut out = format!("PUT /{BUCKET}/{key} HTTP/1.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in signed {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out
}

#[tokio::test]
async fn oversize_declared_length_is_refused_before_the_body_is_sent() {
    // T-H8: with Expect: 100-continue the client never gets the go-ahead.
    let app = spawn_app().await;
    let len = (21 * 1024 * 1024).to_string();
    let head = signed_head(
        &app,
        "big.pdf",
        &[("content-length", &len), ("expect", "100-continue")],
        Payload::Unsigned,
    );
    let resp = raw_exchange(&app, &head, &[], true).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("EntityTooLarge"), "{resp}");
    assert!(!resp.contains("100 Continue"), "{resp}");
    assert_nothing_stored(&app, "big.pdf").await;
    app.stop().await;
}

#[tokio::test]
async fn bad_signature_with_expect_continue_is_refused_before_the_body() {
    // T-B8.
    let app = spawn_app().await;
    let head = format!(
        "PUT /{BUCKET}/x.pdf HTTP/1.1\r\nhost: {}\r\ncontent-length: 20971520\r\nexpect: 100-continue\r\n\
         x-amz-date: 20260101T000000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\
         authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}\r\n\r\n",
        host(&app),
        "0".repeat(64)
    );
    let resp = raw_exchange(&app, &head, &[], true).await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(!resp.contains("100 Continue"), "{resp}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_body_leaves_nothing() {
    // T-I13 / INV-1..2.
    let app = spawn_app().await;
    let head = signed_head(
        &app,
        "cut.pdf",
        &[("content-length", "100000")],
        Payload::Unsigned,
    );
    {
        let mut s = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        s.write_all(head.as_bytes()).await.expect("head");
        s.write_all(&pdf(50_000)).await.expect("half");
        // Let the server start the staging write, then vanish.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_nothing_stored(&app, "cut.pdf").await;
    app.stop().await;
}

// ---- aws-chunked (section C) ----------------------------------------------------------

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Independent chunk signer for tests (the spec's formula, not the gateway's code).
struct TestChunkSigner {
    key: Vec<u8>,
    date: String,
    scope: String,
    prev: String,
}

impl TestChunkSigner {
    fn new(amz_date: &str, seed: &str) -> Self {
        let day = &amz_date[..8];
        let k = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), day.as_bytes());
        let k = hmac(&k, b"us-east-1");
        let k = hmac(&k, b"s3");
        let key = hmac(&k, b"aws4_request");
        Self {
            key,
            date: amz_date.to_string(),
            scope: format!("{day}/us-east-1/s3/aws4_request"),
            prev: seed.to_string(),
        }
    }

    fn sign(&mut self, data: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{}\n{}",
            self.date,
            self.scope,
            self.prev,
            hex::encode(Sha256::digest(b"")),
            hex::encode(Sha256::digest(data))
        );
        self.prev = hex::encode(hmac(&self.key, sts.as_bytes()));
        self.prev.clone()
    }
}

/// Builds a signed aws-chunked PUT: returns (headers, body). `tamper` edits the body after
/// signing; `decoded_len` overrides x-amz-decoded-content-length.
fn streaming_put(
    app: &TestApp,
    key: &str,
    data: &[u8],
    chunk: usize,
    decoded_len: Option<usize>,
) -> (Vec<(String, String)>, Vec<u8>) {
    let u = url(app, key);
    let h = host(app);
    let decoded = decoded_len.unwrap_or(data.len()).to_string();
    // Encoded length: computed from the framing.
    let mut sizes: Vec<usize> = data.chunks(chunk).map(<[u8]>::len).collect();
    sizes.push(0);
    let enc_len: usize = sizes
        .iter()
        .map(|n| format!("{n:x}").len() + ";chunk-signature=".len() + 64 + 2 + n + 2)
        .sum();
    let enc = enc_len.to_string();
    let headers = [
        ("host", h.as_str()),
        ("content-encoding", "aws-chunked"),
        ("content-length", enc.as_str()),
        ("x-amz-decoded-content-length", decoded.as_str()),
    ];
    let signed = sign_headers(
        "PUT",
        &u,
        &headers,
        Payload::Literal("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        SystemTime::now(),
        SECRET_KEY,
    );
    let auth = signed
        .iter()
        .find(|(k, _)| k == "authorization")
        .expect("auth")
        .1
        .clone();
    let amz_date = signed
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .expect("date")
        .1
        .clone();
    let seed = auth.rsplit("Signature=").next().expect("sig").to_string();
    let mut signer = TestChunkSigner::new(&amz_date, &seed);
    let mut body = Vec::new();
    for piece in data.chunks(chunk).chain(std::iter::once(&[][..])) {
        let sig = signer.sign(piece);
        body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    let mut all: Vec<(String, String)> = headers[1..]
        .iter()
        .filter(|(k, _)| *k != "content-length")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.extend(signed);
    (all, body)
}

#[tokio::test]
async fn signed_streaming_upload_is_decoded_and_stored_without_framing() {
    // T-C1 (shape of the AWS golden example: 64 KiB + 1 KiB + final chunk).
    let app = spawn_app().await;
    let data = pdf(66_560);
    let (headers, body) = streaming_put(&app, "chunked.pdf", &data, 65_536, None);
    let (status, _, resp) = send("PUT", &url(&app, "chunked.pdf"), &headers, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let got = app
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key("chunked.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("b").into_bytes().as_ref(),
        data.as_slice()
    );
    app.stop().await;
}

#[tokio::test]
async fn tampered_streaming_uploads_are_refused() {
    let app = spawn_app().await;
    let data = pdf(66_560);
    let u = url(&app, "c.pdf");
    // T-C2: one data byte flipped in chunk 1.
    let (headers, mut body) = streaming_put(&app, "c.pdf", &data, 65_536, None);
    let pos = body.iter().position(|&b| b == b'\n').expect("line") + 100;
    body[pos] ^= 1;
    let (status, _, resp) = send("PUT", &u, &headers, body).await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    // T-C3: the final chunk's signature forged.
    let (headers, mut body) = streaming_put(&app, "c.pdf", &data, 65_536, None);
    let n = body.len();
    body[n - 5] = if body[n - 5] == b'0' { b'1' } else { b'0' };
    let (status, _, resp) = send("PUT", &u, &headers, body).await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    // T-C4: decoded length off by one either way.
    for d in [data.len() - 1, data.len() + 1] {
        let (headers, body) = streaming_put(&app, "c.pdf", &data, 65_536, Some(d));
        let (status, _, _) = send("PUT", &u, &headers, body).await;
        assert_eq!(status, 400, "decoded length {d}");
    }
    // T-C5: a chunk above the signed-chunk cap (1 MiB by default).
    let big = pdf(1_100_000);
    let (headers, body) = streaming_put(&app, "c.pdf", &big, 1_100_000, None);
    let (status, _, _) = send("PUT", &u, &headers, body).await;
    assert_eq!(status, 400);
    assert_nothing_stored(&app, "c.pdf").await;
    app.stop().await;
}

#[tokio::test]
async fn aws_chunked_encoding_with_a_plain_payload_hash_is_refused() {
    // T-C8: the framing must never be stored as content.
    let app = spawn_app().await;
    let body = b"5\r\n%PDF-\r\n0\r\n\r\n".to_vec();
    let (status, code) = signed_put(
        &app,
        "c8.pdf",
        &[("content-encoding", "aws-chunked")],
        Payload::Bytes(&body),
        body.clone(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"));
    assert_nothing_stored(&app, "c8.pdf").await;
    app.stop().await;
}

fn unsigned_trailer_put(
    app: &TestApp,
    key: &str,
    data: &[u8],
    trailer: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let u = url(app, key);
    let h = host(app);
    let mut body = format!("{:x}\r\n", data.len()).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n0\r\n");
    body.extend_from_slice(trailer.as_bytes());
    body.extend_from_slice(b"\r\n");
    let decoded = data.len().to_string();
    let enc = body.len().to_string();
    let headers = [
        ("host", h.as_str()),
        ("content-encoding", "aws-chunked"),
        ("content-length", enc.as_str()),
        ("x-amz-decoded-content-length", decoded.as_str()),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
    ];
    let signed = sign_headers(
        "PUT",
        &u,
        &headers,
        Payload::Literal("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        SystemTime::now(),
        SECRET_KEY,
    );
    let mut all: Vec<(String, String)> = headers[1..]
        .iter()
        .filter(|(k, _)| *k != "content-length")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.extend(signed);
    (all, body)
}

#[tokio::test]
async fn unsigned_trailer_checksum_is_enforced() {
    // T-C7.
    let app = spawn_app().await;
    let data = pdf(1000);
    let crc = {
        let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
        d.update(&data);
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode((d.finalize() as u32).to_be_bytes())
    };
    let u = url(&app, "t.pdf");
    for (trailer, want) in [
        ("x-amz-checksum-crc32:AAAAAA==\r\n".to_string(), 400), // wrong value
        (String::new(), 400),                                   // announced but missing
        (
            format!("x-amz-checksum-crc32:{crc}\r\nx-amz-checksum-sha1:AAAA\r\n"),
            400,
        ), // undeclared extra
    ] {
        let (headers, body) = unsigned_trailer_put(&app, "t.pdf", &data, &trailer);
        let (status, _, resp) = send("PUT", &u, &headers, body).await;
        assert_eq!(
            status,
            want,
            "{trailer:?}: {}",
            String::from_utf8_lossy(&resp)
        );
    }
    assert_nothing_stored(&app, "t.pdf").await;
    let (headers, body) = unsigned_trailer_put(
        &app,
        "t.pdf",
        &data,
        &format!("x-amz-checksum-crc32:{crc}\r\n"),
    );
    let (status, _, resp) = send("PUT", &u, &headers, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_the_idle_timeout() {
    // T-H2: one write, then silence.
    let app = spawn_app_with("[server]\nbody_idle_timeout_secs = 1\n").await;
    let head = signed_head(
        &app,
        "slow.pdf",
        &[("content-length", "100000")],
        Payload::Unsigned,
    );
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&pdf(1000)).await.expect("some body");
    let mut buf = vec![0u8; 4096];
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    let resp = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("RequestTimeout"), "{resp}");
    assert_nothing_stored(&app, "slow.pdf").await;
    app.stop().await;
}

impl TestChunkSigner {
    fn sign_trailer(&mut self, canonical: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.date,
            self.scope,
            self.prev,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        self.prev = hex::encode(hmac(&self.key, sts.as_bytes()));
        self.prev.clone()
    }
}

fn crc32_b64(data: &[u8]) -> String {
    use base64::Engine;
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
    d.update(data);
    base64::engine::general_purpose::STANDARD.encode((d.finalize() as u32).to_be_bytes())
}

#[tokio::test]
async fn signed_streaming_with_a_signed_checksum_trailer() {
    // STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: chunk signatures, then a signed trailer.
    let app = spawn_app().await;
    let data = pdf(70_000);
    let u = url(&app, "st.pdf");
    let build = |crc: &str, tamper_trailer_sig: bool| {
        let h = host(&app);
        let decoded = data.len().to_string();
        let headers = [
            ("host", h.as_str()),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ];
        let signed = sign_headers(
            "PUT",
            &u,
            &headers,
            Payload::Literal("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
            SystemTime::now(),
            SECRET_KEY,
        );
        let auth = signed
            .iter()
            .find(|(k, _)| k == "authorization")
            .expect("auth")
            .1
            .clone();
        let amz_date = signed
            .iter()
            .find(|(k, _)| k == "x-amz-date")
            .expect("date")
            .1
            .clone();
        let seed = auth.rsplit("Signature=").next().expect("sig").to_string();
        let mut signer = TestChunkSigner::new(&amz_date, &seed);
        let mut body = Vec::new();
        for piece in data.chunks(65_536).chain(std::iter::once(&[][..])) {
            let sig = signer.sign(piece);
            body.extend_from_slice(
                format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes(),
            );
            body.extend_from_slice(piece);
            if !piece.is_empty() {
                body.extend_from_slice(b"\r\n");
            }
        }
        let canonical = format!("x-amz-checksum-crc32:{crc}\n");
        let mut tsig = signer.sign_trailer(&canonical);
        if tamper_trailer_sig {
            // Flip the first hex digit: always a different signature (a replace of one digit
            // by another changes nothing when the signature happens not to hold it).
            let first = if tsig.starts_with('0') { "1" } else { "0" };
            tsig.replace_range(..1, first);
        }
        body.extend_from_slice(
            format!("x-amz-checksum-crc32:{crc}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n")
                .as_bytes(),
        );
        let mut all: Vec<(String, String)> = headers[1..]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.extend(signed);
        (all, body)
    };
    let good = crc32_b64(&data);
    let (headers, body) = build(&good, true);
    let (status, _, resp) = send("PUT", &u, &headers, body).await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    let (headers, body) = build("AAAAAA==", false);
    let (status, _, resp) = send("PUT", &u, &headers, body).await;
    assert_eq!((status, error_code(&resp).as_str()), (400, "BadDigest"));
    assert_nothing_stored(&app, "st.pdf").await;
    let (headers, body) = build(&good, false);
    let (status, _, resp) = send("PUT", &u, &headers, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    app.stop().await;
}

#[tokio::test]
async fn the_sweeper_removes_what_a_dead_upload_left_behind() {
    // T-I6(a): a pending row whose lease ran out, with bytes staged at its path.
    use upgate::metadata::NewPending;
    use upgate::storage::Storage;
    let app = spawn_app().await;
    let id = upgate::id::object_id();
    app.state
        .meta
        .insert_pending(&NewPending {
            id: id.clone(),
            bucket: BUCKET.into(),
            key: "dead.pdf".into(),
            owner: ACCESS_KEY.into(),
            created_at_ms: 0,
            lease_until_ms: 1,
            tenant_id: None,
        })
        .await
        .expect("pending");
    let path = Storage::path_for(BUCKET, &id);
    let mut staging = app.state.storage.begin(&path).await.expect("begin");
    staging
        .write(bytes::Bytes::from(pdf(100)))
        .await
        .expect("write");
    staging.commit().await.expect("publish");
    assert!(app.state.storage.exists(&path).await.expect("exists"));
    // A second upload that died mid-stream: its staging file is still on disk (the process
    // never ran its drop guards).
    let id2 = upgate::id::object_id();
    app.state
        .meta
        .insert_pending(&NewPending {
            id: id2.clone(),
            bucket: BUCKET.into(),
            key: "dead2.pdf".into(),
            owner: ACCESS_KEY.into(),
            created_at_ms: 0,
            lease_until_ms: 1,
            tenant_id: None,
        })
        .await
        .expect("pending");
    let mut half = app
        .state
        .storage
        .begin(&Storage::path_for(BUCKET, &id2))
        .await
        .expect("begin");
    half.write(bytes::Bytes::from(pdf(100)))
        .await
        .expect("write");
    // The client paused: what was gathered went to the staging file.
    half.settle().await.expect("settle");
    std::mem::forget(half);
    assert_eq!(app.object_files().len(), 2, "{:?}", app.object_files());
    let purged = upgate::sweeper::sweep_once(&app.state)
        .await
        .expect("sweep");
    assert_eq!(purged, 2);
    assert!(!app.state.storage.exists(&path).await.expect("exists"));
    assert_nothing_stored(&app, "dead.pdf").await;
    app.stop().await;
}

#[tokio::test]
async fn unauthenticated_conditional_requests_reveal_nothing() {
    // T-F6: the same 403 for an existing and a missing key, whatever the conditional headers.
    let app = spawn_app().await;
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("exists.pdf")
        .body(pdf(100).into())
        .send()
        .await
        .expect("put");
    let strip = |b: Vec<u8>| {
        let s = String::from_utf8_lossy(&b).to_string();
        s.split("<RequestId>").next().unwrap_or("").to_string()
    };
    for (name, value) in [
        ("if-match", "\"abc\""),
        ("if-none-match", "*"),
        ("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT"),
    ] {
        let h = vec![(name.to_string(), value.to_string())];
        for method in ["GET", "HEAD"] {
            let a = send(method, &url(&app, "exists.pdf"), &h, vec![]).await;
            let b = send(method, &url(&app, "missing.pdf"), &h, vec![]).await;
            assert_eq!((a.0, b.0), (403, 403), "{method} {name}");
            assert_eq!(strip(a.2), strip(b.2), "{method} {name}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn client_encryption_headers_cannot_steer_storage() {
    // T-F7: SSE-C is refused; a plain SSE header does not change what upgate stores.
    let app = spawn_app().await;
    let body = pdf(1000);
    let (status, code) = signed_put(
        &app,
        "ssec.pdf",
        &[
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            (
                "x-amz-server-side-encryption-customer-key",
                "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
            ),
        ],
        Payload::Unsigned,
        body.clone(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));
    assert_nothing_stored(&app, "ssec.pdf").await;
    let (status, _) = signed_put(
        &app,
        "sse.pdf",
        &[
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-meta-owner", "someone@example.com"),
        ],
        Payload::Unsigned,
        body,
    )
    .await;
    assert_eq!(status, 200);
    let head = app
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key("sse.pdf")
        .send()
        .await
        .expect("head");
    // The plain SSE header is ignored; user metadata is kept as S3 keeps it (issue 17).
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("someone@example.com")
    );
    assert_ne!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    app.stop().await;
}

#[tokio::test]
async fn no_endpoint_leaks_secrets() {
    // T-F8: crawl the public and admin endpoints, error pages included.
    let app = spawn_app().await;
    let t = upgate::api::admin::create_tenant(app.state.control.as_ref(), "crawl")
        .await
        .expect("t");
    let link_secret = app
        .state
        .control
        .link_keys()
        .await
        .expect("keys")
        .first()
        .expect("key")
        .secret
        .clone();
    let admin = format!("http://{}", app.admin.expect("admin"));
    let public = app.endpoint();
    let urls = [
        format!("{public}/healthz"),
        format!("{public}/readyz"),
        format!("{public}/v1/openapi.json"),
        format!("{public}/v1/files"),
        format!("{public}/v1/nope"),
        format!("{public}/"),
        format!("{public}/{BUCKET}/missing"),
        format!("{public}/nosuchbucket"),
        format!("{admin}/metrics"),
        format!("{admin}/readyz"),
        format!("{admin}/nope"),
    ];
    let data_dir = app.dir.path().display().to_string();
    for u in urls {
        let r = reqwest::get(&u).await.expect("get");
        let headers = format!("{:?}", r.headers());
        let body = r.text().await.expect("body");
        for secret in [
            SECRET_KEY,
            link_secret.as_str(),
            t.secret_access_key.as_str(),
            t.api_key.as_str(),
            data_dir.as_str(),
        ] {
            assert!(
                !body.contains(secret) && !headers.contains(secret),
                "{u} leaks a secret"
            );
        }
    }
    // The admin listener is not the public one.
    assert_ne!(
        reqwest::get(format!("{public}/metrics"))
            .await
            .expect("m")
            .status(),
        200
    );
    app.stop().await;
}
