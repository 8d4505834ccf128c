//! S3 behaviours an independent conformance suite found missing (issue 17), through aws-sdk-s3
//! and, where the SDK cannot send what a client sends, hand-signed requests.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;
use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::common::*;

/// The stored-header set every test below uploads with.
fn with_headers(
    req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    req.metadata("color", "blue")
        .metadata("Project-Name", "upgate")
        // One RFC 2047 word: stored decoded, returned encoded (as S3 does).
        .metadata("word", "=?UTF-8?B?w6l0w6k=?=")
        .cache_control("max-age=3600, public")
        .content_disposition("attachment; filename=\"report.pdf\"")
        .content_encoding("identity")
        .content_language("fr-CH")
        .expires(aws_sdk_s3::primitives::DateTime::from_secs(1_900_000_000))
}

#[tokio::test]
async fn user_metadata_and_standard_headers_are_stored_and_returned() {
    let app = spawn_app().await;
    let s3 = app.s3();
    with_headers(s3.put_object())
        .bucket(BUCKET)
        .key("m/report.pdf")
        .content_type("application/pdf")
        .body(ByteStream::from(pdf(1000)))
        .send()
        .await
        .expect("put");
    let head = head_of(&s3, "m/report.pdf").await;
    let meta = head.metadata().expect("metadata");
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("project-name").map(String::as_str), Some("upgate"));
    assert_eq!(
        meta.get("word").map(String::as_str),
        Some("=?UTF-8?B?w6l0w6k=?=")
    );
    assert_eq!(head.cache_control(), Some("max-age=3600, public"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"report.pdf\"")
    );
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(head.content_language(), Some("fr-CH"));
    assert_eq!(head.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("m/report.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(got.metadata(), head.metadata());
    assert_eq!(got.cache_control(), Some("max-age=3600, public"));
    assert_eq!(got.content_language(), Some("fr-CH"));
    // The record holds the decoded text.
    let rec = app
        .state
        .meta
        .current(BUCKET, "m/report.pdf")
        .await
        .expect("meta")
        .expect("record");
    assert!(
        rec.headers
            .0
            .contains(&("x-amz-meta-word".to_string(), "été".to_string())),
        "{:?}",
        rec.headers
    );
    // A signed response-* override still wins over the stored value.
    let url = presign_url(
        "GET",
        &format!(
            "{}/{BUCKET}/m/report.pdf?response-cache-control=no-store",
            app.endpoint()
        ),
        &[("host", &app.addr.to_string())],
        Duration::from_secs(60),
        SystemTime::now(),
    );
    let (status, h, _) = send("GET", &url, &[], Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["content-language"], "fr-CH");
    // An overwrite without headers drops them (S3 replaces the whole object).
    put_pdf(&s3, "m/report.pdf", pdf(1000)).await;
    let head = head_of(&s3, "m/report.pdf").await;
    assert!(head.metadata().is_none_or(|m| m.is_empty()));
    assert_eq!(head.cache_control(), None);
    app.stop().await;
}

/// A PUT signed with aws-sigv4 carrying `headers`: (status, response headers, body).
async fn signed_put(
    app: &TestApp,
    key: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let url = format!("{}/{BUCKET}/{key}", app.endpoint());
    let host = app.addr.to_string();
    let mut all: Vec<(&str, &str)> = vec![("host", &host), ("content-type", "application/pdf")];
    all.extend_from_slice(headers);
    let mut h: Vec<(String, String)> = all
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.extend(sign_headers(
        "PUT",
        &url,
        &all,
        Payload::Bytes(&body),
        SystemTime::now(),
        SECRET_KEY,
    ));
    send("PUT", &url, &h, body).await
}

#[tokio::test]
async fn raw_utf8_metadata_is_returned_as_s3_encodes_it() {
    let app = spawn_app().await;
    let (status, _, body) = signed_put(
        &app,
        "m/raw.pdf",
        &[
            ("x-amz-meta-city", "Zürich"),
            ("x-amz-meta-q", "=?utf-8?Q?caf=C3=A9_cr=C3=A8me?="),
        ],
        pdf(100),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let head = head_of(&app.s3(), "m/raw.pdf").await;
    let meta = head.metadata().expect("metadata");
    assert_eq!(
        meta.get("city").map(String::as_str),
        Some("=?UTF-8?B?WsO8cmljaA==?=")
    );
    assert_eq!(
        meta.get("q").map(String::as_str),
        Some("=?UTF-8?B?Y2Fmw6kgY3LDqG1l?=")
    );
    app.stop().await;
}

#[tokio::test]
async fn user_metadata_over_2_kb_is_refused() {
    let app = spawn_app().await;
    let s3 = app.s3();
    // Names (without the prefix) and values count: 1 + 2047 bytes is the limit.
    let put = |key: &'static str, value: String| {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/pdf")
            .metadata("a", value)
            .body(ByteStream::from(pdf(100)))
            .send()
    };
    put("m/at-limit.pdf", "v".repeat(2047))
        .await
        .expect("2 KB fits");
    let err = put("m/over.pdf", "v".repeat(2048))
        .await
        .expect_err("over 2 KB");
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(400));
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("MetadataTooLarge")
    );
    assert!(
        app.state
            .meta
            .current(BUCKET, "m/over.pdf")
            .await
            .expect("meta")
            .is_none()
    );
    // The same limit on CreateMultipartUpload.
    let err = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("m/over-mp.pdf")
        .content_type("application/pdf")
        .metadata("a", "v".repeat(2048))
        .send()
        .await
        .expect_err("over 2 KB");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("MetadataTooLarge")
    );
    app.stop().await;
}

/// A one-part multipart upload of `key` created with stored headers: its id and parts.
async fn one_part_with_headers(
    s3: &aws_sdk_s3::Client,
    key: &str,
) -> (String, CompletedMultipartUpload) {
    let create = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .content_type("application/pdf")
        .metadata("origin", "scanner-7")
        .content_disposition("inline");
    one_part_upload(s3, create, 2000).await
}

#[tokio::test]
async fn multipart_objects_keep_the_headers_given_at_creation() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let (id, done) = one_part_with_headers(&s3, "m/mp.pdf").await;
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("m/mp.pdf")
        .upload_id(&id)
        .multipart_upload(done)
        .send()
        .await
        .expect("complete");
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("m/mp.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("scanner-7")
    );
    assert_eq!(got.content_disposition(), Some("inline"));
    app.stop().await;
}

#[tokio::test]
async fn a_retried_completion_answers_the_same_result() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let (id, done) = one_part_with_headers(&s3, "m/retry.pdf").await;
    let complete = || {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("m/retry.pdf")
            .upload_id(&id)
            .multipart_upload(done.clone())
            .send()
    };
    let first = complete().await.expect("complete");
    let again = complete().await.expect("a retry answers 200");
    assert_eq!(again.e_tag(), first.e_tag());
    assert_eq!(again.key(), Some("m/retry.pdf"));
    assert_eq!(again.bucket(), Some(BUCKET));
    // The upload is done for everything else: no parts, no abort, not listed.
    let err = s3
        .upload_part()
        .bucket(BUCKET)
        .key("m/retry.pdf")
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from(pdf(10)))
        .send()
        .await
        .expect_err("completed");
    assert_eq!(err.into_service_error().meta().code(), Some("NoSuchUpload"));
    let err = s3
        .list_parts()
        .bucket(BUCKET)
        .key("m/retry.pdf")
        .upload_id(&id)
        .send()
        .await
        .expect_err("completed");
    assert_eq!(err.into_service_error().meta().code(), Some("NoSuchUpload"));
    let listed = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert!(listed.uploads().is_empty(), "{:?}", listed.uploads());
    // Nobody else learns of it either.
    let other = client_for(&app.endpoint(), "AKIDSOMEONEELSE00001", "x");
    assert!(
        other
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("m/retry.pdf")
            .upload_id(&id)
            .multipart_upload(done.clone())
            .send()
            .await
            .is_err()
    );
    // The object is the one the first completion made, and the parts are gone.
    let head = head_of(&s3, "m/retry.pdf").await;
    assert_eq!(head.e_tag(), first.e_tag());
    assert_eq!(head.content_length(), Some(2000));
    app.stop().await;
}

#[tokio::test]
async fn list_objects_v2_returns_the_owner_when_asked() {
    let app = spawn_app().await;
    let s3 = app.s3();
    put_pdf(&s3, "o/a.pdf", pdf(100)).await;
    let plain = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert!(plain.contents()[0].owner().is_none());
    let with_owner = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .fetch_owner(true)
        .send()
        .await
        .expect("list");
    let owner = with_owner.contents()[0].owner().expect("owner");
    assert_eq!(owner.id(), Some(ACCESS_KEY));
    assert_eq!(owner.display_name(), Some(ACCESS_KEY));
    app.stop().await;
}

// ---- request dates --------------------------------------------------------------------------

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A SigV4 header-auth GET of `/BUCKET/key` signed by hand (the spec's formula), dated
/// `amz_date` in the string to sign, with `extra` headers (all signed, lowercase names).
fn sigv4_get(
    app: &TestApp,
    key: &str,
    amz_date: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let host = app.addr.to_string();
    let empty = sha_hex(b"");
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        ("x-amz-content-sha256".into(), empty.clone()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!("GET\n/{BUCKET}/{key}\n\n{canonical_headers}\n{signed}\n{empty}");
    let day = &amz_date[..8];
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha_hex(canonical.as_bytes())
    );
    let k = hmac_sha256(format!("AWS4{SECRET_KEY}").as_bytes(), day.as_bytes());
    let k = hmac_sha256(
        &hmac_sha256(&hmac_sha256(&k, b"us-east-1"), b"s3"),
        b"aws4_request",
    );
    let sig = hex::encode(hmac_sha256(&k, sts.as_bytes()));
    headers.push((
        "authorization".into(),
        format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed}, Signature={sig}"),
    ));
    headers
}

/// `t` as botocore's `Date` header (`email.utils.formatdate`, zone `-0000`), and as
/// `YYYYMMDDTHHMMSSZ`.
fn dates(t: SystemTime) -> (String, String) {
    let http = httpdate::fmt_http_date(t).replace(" GMT", " -0000");
    let iso = upgate::clock::iso8601(t);
    let basic: String = iso[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    (http, format!("{basic}Z"))
}

#[tokio::test]
async fn sigv4_accepts_a_date_header_and_x_amz_date_wins_over_it() {
    let app = spawn_app().await;
    put_pdf(&app.s3(), "d/x.pdf", pdf(100)).await;
    let url = format!("{}/{BUCKET}/d/x.pdf", app.endpoint());
    let now = SystemTime::now();
    let (http, basic) = dates(now);
    // Only a Date header, as botocore sends it when an application set one.
    let h = sigv4_get(&app, "d/x.pdf", &basic, &[("date", &http)]);
    let (status, _, body) = send("GET", &url, &h, Vec::new()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Both: X-Amz-Date is the request date, even with a stale Date beside it.
    let (stale, _) = dates(now - Duration::from_secs(86_400));
    let h = sigv4_get(
        &app,
        "d/x.pdf",
        &basic,
        &[("date", &stale), ("x-amz-date", &basic)],
    );
    let (status, _, body) = send("GET", &url, &h, Vec::new()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // A Date outside the skew window is skewed, whatever its spelling.
    let (old_http, old_basic) = dates(now - Duration::from_secs(3_600));
    let h = sigv4_get(&app, "d/x.pdf", &old_basic, &[("date", &old_http)]);
    let (status, _, body) = send("GET", &url, &h, Vec::new()).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "RequestTimeTooSkewed")
    );
    app.stop().await;
}

/// A SigV2 header-auth GET of `/BUCKET/key` dated `date` (the Date header, signed).
fn sigv2_get(key: &str, date: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let sts = format!("GET\n\n\n{date}\n/{BUCKET}/{key}");
    let mut m = hmac::Hmac::<sha1::Sha1>::new_from_slice(SECRET_KEY.as_bytes()).expect("key");
    m.update(sts.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
    vec![
        ("date".into(), date.to_string()),
        ("authorization".into(), format!("AWS {ACCESS_KEY}:{sig}")),
    ]
}

#[tokio::test]
async fn sigv2_dates_outside_the_skew_are_too_skewed() {
    let app = spawn_app().await;
    put_pdf(&app.s3(), "d/v2.pdf", pdf(100)).await;
    let url = format!("{}/{BUCKET}/d/v2.pdf", app.endpoint());
    let now = httpdate::fmt_http_date(SystemTime::now());
    let (status, _, body) = send("GET", &url, &sigv2_get("d/v2.pdf", &now), Vec::new()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The dates of the ceph suite: past and future, with weekdays that do not match the day.
    for date in [
        "Tue, 07 Jul 2010 21:53:04 GMT",
        "Tue, 07 Jul 2030 21:53:04 GMT",
        "Tue, 07 Jul 9999 21:53:04 GMT",
    ] {
        let (status, _, body) = send("GET", &url, &sigv2_get("d/v2.pdf", date), Vec::new()).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (403, "RequestTimeTooSkewed"),
            "{date}"
        );
    }
    // Before 1970 is no date S3 takes at all.
    let (status, _, body) = send(
        "GET",
        &url,
        &sigv2_get("d/v2.pdf", "Tue, 07 Jul 1950 21:53:04 GMT"),
        Vec::new(),
    )
    .await;
    assert_eq!((status, error_code(&body).as_str()), (403, "AccessDenied"));
    app.stop().await;
}
