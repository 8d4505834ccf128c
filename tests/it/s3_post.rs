//! Browser POST-policy uploads and CORS (SECURITY-TESTS section D), over HTTP. Policies are
//! signed here with an independent HMAC implementation, not the gateway's.

use std::time::{Duration, SystemTime};

use crate::common::*;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const CORS: &str = r#"
[[buckets.uploads.cors]]
allowed_origins = ["https://app.example.com"]
allowed_methods = ["POST", "PUT"]
allowed_headers = ["content-type", "x-amz-*"]
max_age_secs = 600
"#;

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn amz_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let days = secs / 86_400;
    // Civil date from days (same algorithm as everywhere; kept local to stay independent).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let rem = secs % 86_400;
    let day = format!("{y:04}{m:02}{d:02}");
    let stamp = format!(
        "{day}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    (day, stamp)
}

/// A signed SigV4 POST form: the policy from `conditions` plus the signature fields, ready to
/// receive more fields; `expiration` is an ISO date.
fn signed_form(
    conditions: serde_json::Value,
    expiration: &str,
    secret: &str,
) -> Vec<(String, String)> {
    let (day, stamp) = amz_now();
    let credential = format!("{ACCESS_KEY}/{day}/us-east-1/s3/aws4_request");
    let mut conds = conditions.as_array().cloned().unwrap_or_default();
    conds.push(serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}));
    conds.push(serde_json::json!({"x-amz-credential": credential}));
    conds.push(serde_json::json!({"x-amz-date": stamp}));
    let policy = serde_json::json!({"expiration": expiration, "conditions": conds});
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let k = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    let k = hmac(&k, b"us-east-1");
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    let sig = hex::encode(hmac(&k, policy_b64.as_bytes()));
    vec![
        ("policy".into(), policy_b64),
        ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("x-amz-credential".into(), credential),
        ("x-amz-date".into(), stamp),
        ("x-amz-signature".into(), sig),
    ]
}

fn soon() -> String {
    upgate::clock::iso8601(SystemTime::now() + Duration::from_secs(600))
}

/// Encodes a multipart/form-data body: fields in order, then the file.
fn form_body(fields: &[(String, String)], filename: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----upgateTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post(
    app: &TestApp,
    fields: &[(String, String)],
    file: &[u8],
) -> (u16, reqwest::header::HeaderMap, String) {
    post_named(app, fields, "scan.pdf", file, &[]).await
}

async fn post_named(
    app: &TestApp,
    fields: &[(String, String)],
    filename: &str,
    file: &[u8],
    extra: &[(String, String)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let (ct, body) = form_body(fields, filename, file);
    let mut headers = vec![("content-type".to_string(), ct)];
    headers.extend_from_slice(extra);
    let (status, h, b) = send(
        "POST",
        &format!("{}/{BUCKET}", app.endpoint()),
        &headers,
        body,
    )
    .await;
    (status, h, String::from_utf8_lossy(&b).into())
}

fn with(mut form: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        form.push((k.to_string(), v.to_string()));
    }
    form
}

fn standard_conditions() -> serde_json::Value {
    serde_json::json!([
        {"bucket": BUCKET},
        ["starts-with", "$key", "user/"],
        ["starts-with", "$Content-Type", ""],
        ["content-length-range", 10, 100_000],
        {"success_action_status": "201"},
    ])
}

#[tokio::test]
async fn a_signed_form_upload_is_stored_through_the_pipe() {
    let app = spawn_app().await;
    let form = with(
        signed_form(standard_conditions(), &soon(), SECRET_KEY),
        &[
            ("key", "user/${filename}"),
            ("Content-Type", "application/pdf"),
            ("success_action_status", "201"),
        ],
    );
    let body = pdf(50_000);
    let (status, _, resp) = post(&app, &form, &body).await;
    assert_eq!(status, 201, "{resp}");
    assert!(resp.contains("<Key>user/scan.pdf</Key>"), "{resp}");
    let rec = app
        .state
        .meta
        .current(BUCKET, "user/scan.pdf")
        .await
        .expect("m")
        .expect("stored");
    assert_eq!(rec.sha256, sha256_hex(&body));
    assert_eq!(rec.content_type, "application/pdf");
    app.stop().await;
}

#[tokio::test]
async fn form_metadata_and_headers_are_stored_and_returned() {
    let app = spawn_app().await;
    let conds = serde_json::json!([
        {"bucket": BUCKET},
        ["starts-with", "$key", "user/"],
        ["starts-with", "$x-amz-meta-color", ""],
        {"x-amz-meta-tag": "=?UTF-8?B?w6l0w6k=?="},
        {"Cache-Control": "max-age=60"},
        ["starts-with", "$Content-Disposition", "attachment"],
        ["starts-with", "$tagging", ""],
    ]);
    let tagging =
        "<Tagging><TagSet><Tag><Key>via</Key><Value>form</Value></Tag></TagSet></Tagging>";
    let form = with(
        signed_form(conds, &soon(), SECRET_KEY),
        &[
            ("key", "user/meta.pdf"),
            ("x-amz-meta-color", "green"),
            ("x-amz-meta-tag", "=?UTF-8?B?w6l0w6k=?="),
            ("Cache-Control", "max-age=60"),
            ("Content-Disposition", "attachment; filename=\"m.pdf\""),
            ("tagging", tagging),
        ],
    );
    let (status, _, resp) = post(&app, &form, &pdf(1000)).await;
    assert_eq!(status, 204, "{resp}");
    let head = app
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key("user/meta.pdf")
        .send()
        .await
        .expect("head");
    let meta = head.metadata().expect("metadata");
    assert_eq!(meta.get("color").map(String::as_str), Some("green"));
    assert_eq!(
        meta.get("tag").map(String::as_str),
        Some("=?UTF-8?B?w6l0w6k=?=")
    );
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"m.pdf\"")
    );
    // The form's tagging field (a Tagging document) tags the object.
    let tags = app
        .s3()
        .get_object_tagging()
        .bucket(BUCKET)
        .key("user/meta.pdf")
        .send()
        .await
        .expect("tagging");
    let tags: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, vec![("via", "form")]);
    // The 2 KB limit holds for forms too.
    let big = "v".repeat(2048);
    let conds = serde_json::json!([
        {"bucket": BUCKET},
        ["starts-with", "$key", "user/"],
        ["starts-with", "$x-amz-meta-a", ""],
    ]);
    let form = with(
        signed_form(conds, &soon(), SECRET_KEY),
        &[("key", "user/big.pdf"), ("x-amz-meta-a", &big)],
    );
    let (status, _, resp) = post(&app, &form, &pdf(1000)).await;
    assert_eq!(
        (status, error_code(resp.as_bytes()).as_str()),
        (400, "MetadataTooLarge"),
        "{resp}"
    );
    app.stop().await;
}

#[tokio::test]
async fn redirect_after_upload_carries_bucket_key_and_etag() {
    let app = spawn_app().await;
    let conds = serde_json::json!([
        {"bucket": BUCKET},
        {"key": "user/r.pdf"},
        ["eq", "$success_action_redirect", "https://app.example.com/done"],
    ]);
    let form = with(
        signed_form(conds, &soon(), SECRET_KEY),
        &[
            ("key", "user/r.pdf"),
            ("success_action_redirect", "https://app.example.com/done"),
        ],
    );
    let (status, headers, _) = post(&app, &form, &pdf(1000)).await;
    assert_eq!(status, 303);
    let loc = headers["location"].to_str().expect("loc");
    assert!(
        loc.starts_with("https://app.example.com/done?bucket=uploads&key=user%2Fr%2Epdf&etag="),
        "{loc}"
    );
    app.stop().await;
}

#[tokio::test]
async fn policy_violations_are_refused_and_store_nothing() {
    // T-D1, T-D2, T-D3 and the 400/403 split of the catalogue.
    let app = spawn_app().await;
    let base = || signed_form(standard_conditions(), &soon(), SECRET_KEY);
    type Case<'a> = (Vec<(String, String)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        // Key outside the starts-with prefix.
        (
            with(
                base(),
                &[
                    ("key", "admin/x.pdf"),
                    ("Content-Type", "application/pdf"),
                    ("success_action_status", "201"),
                ],
            ),
            pdf(1000),
            403,
            "AccessDenied",
        ),
        // A field the policy does not cover.
        (
            with(
                base(),
                &[
                    ("key", "user/x.pdf"),
                    ("Content-Type", "application/pdf"),
                    ("success_action_status", "201"),
                    ("x-amz-meta-foo", "bar"),
                ],
            ),
            pdf(1000),
            403,
            "AccessDenied",
        ),
        // One byte over the content-length-range maximum; one under the minimum.
        (
            with(
                base(),
                &[
                    ("key", "user/x.pdf"),
                    ("Content-Type", "application/pdf"),
                    ("success_action_status", "201"),
                ],
            ),
            pdf(100_001),
            400,
            "EntityTooLarge",
        ),
        (
            with(
                base(),
                &[
                    ("key", "user/x.pdf"),
                    ("Content-Type", "application/pdf"),
                    ("success_action_status", "201"),
                ],
            ),
            pdf(9),
            400,
            "EntityTooSmall",
        ),
        // Declared type not matching the content.
        (
            with(
                base(),
                &[
                    ("key", "user/x.pdf"),
                    ("Content-Type", "image/png"),
                    ("success_action_status", "201"),
                ],
            ),
            pdf(1000),
            415,
            "ContentTypeMismatch",
        ),
        // Wrong bucket in the policy.
        (
            with(
                signed_form(
                    serde_json::json!([{"bucket": "other"}, ["starts-with", "$key", ""]]),
                    &soon(),
                    SECRET_KEY,
                ),
                &[("key", "user/x.pdf")],
            ),
            pdf(1000),
            403,
            "AccessDenied",
        ),
        // Expired policy.
        (
            with(
                signed_form(
                    standard_conditions(),
                    "2001-01-01T00:00:00.000Z",
                    SECRET_KEY,
                ),
                &[
                    ("key", "user/x.pdf"),
                    ("Content-Type", "application/pdf"),
                    ("success_action_status", "201"),
                ],
            ),
            pdf(1000),
            403,
            "AccessDenied",
        ),
        // Bad signature.
        (
            with(
                signed_form(standard_conditions(), &soon(), "wrong-secret"),
                &[
                    ("key", "user/x.pdf"),
                    ("Content-Type", "application/pdf"),
                    ("success_action_status", "201"),
                ],
            ),
            pdf(1000),
            403,
            "SignatureDoesNotMatch",
        ),
        // Missing conditions / malformed range.
        (
            with(
                signed_form(serde_json::json!([]), &soon(), SECRET_KEY),
                &[("key", "user/x.pdf")],
            ),
            pdf(1000),
            403,
            "AccessDenied",
        ),
        (
            with(
                signed_form(
                    serde_json::json!([{"bucket": BUCKET}, ["content-length-range", 5]]),
                    &soon(),
                    SECRET_KEY,
                ),
                &[("key", "user/x.pdf")],
            ),
            pdf(1000),
            400,
            "InvalidPolicyDocument",
        ),
        // An empty condition object is a malformed policy (400), not a failed one.
        (
            with(
                signed_form(
                    serde_json::json!([{"bucket": BUCKET}, {}]),
                    &soon(),
                    SECRET_KEY,
                ),
                &[("key", "user/x.pdf")],
            ),
            pdf(1000),
            400,
            "InvalidPolicyDocument",
        ),
    ];
    for (i, (form, file, status, code)) in cases.into_iter().enumerate() {
        let (got, _, resp) = post(&app, &form, &file).await;
        assert_eq!(
            (got, error_code(resp.as_bytes()).as_str()),
            (status, code),
            "case {i}: {resp}"
        );
    }
    // A signature without a policy is an anonymous upload; a policy without its signature is a
    // malformed one.
    let (got, _, _) = post(
        &app,
        &[("key".to_string(), "user/x.pdf".to_string())],
        &pdf(100),
    )
    .await;
    assert_eq!(got, 403);
    let mut nosig = base();
    nosig.retain(|(k, _)| k != "x-amz-signature");
    let (got, _, _) = post(&app, &with(nosig, &[("key", "user/x.pdf")]), &pdf(100)).await;
    assert_eq!(got, 400);
    assert!(
        app.state
            .meta
            .list(BUCKET, "", "", false, 10)
            .await
            .expect("m")
            .is_empty()
    );
    for _ in 0..50 {
        if app.object_files().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.object_files().is_empty(), "{:?}", app.object_files());
    app.stop().await;
}

#[tokio::test]
async fn hostile_forms_are_bounded() {
    let app = spawn_app().await;
    let signed = || {
        with(
            signed_form(standard_conditions(), &soon(), SECRET_KEY),
            &[("key", "user/x.pdf")],
        )
    };
    // Too many fields.
    let mut many = signed();
    for i in 0..70 {
        many.push((format!("x-ignore-{i}"), "v".into()));
    }
    let (status, _, resp) = post(&app, &many, &pdf(100)).await;
    assert_eq!(
        (status, error_code(resp.as_bytes()).as_str()),
        (400, "MalformedPOSTRequest")
    );
    // One huge field.
    let big = with(signed(), &[("x-ignore-big", &"a".repeat(30_000))]);
    let (status, _, _) = post(&app, &big, &pdf(100)).await;
    assert_eq!(status, 400);
    // A repeated field.
    let dup = with(signed(), &[("key", "user/y.pdf")]);
    let (status, _, resp) = post(&app, &dup, &pdf(100)).await;
    assert_eq!(
        (status, error_code(resp.as_bytes()).as_str()),
        (400, "MalformedPOSTRequest")
    );
    // No file part at all.
    let (ct, mut body) = form_body(&signed(), "x", b"");
    let cut = body
        .windows(14)
        .position(|w| w == b"name=\"file\"; f")
        .expect("file part");
    body.truncate(cut);
    body.extend_from_slice(b"\r\n");
    let (status, _, _) = send(
        "POST",
        &format!("{}/{BUCKET}", app.endpoint()),
        &[("content-type".to_string(), ct)],
        body,
    )
    .await;
    assert_eq!(status, 400);
    // Not a form at all.
    let (status, _, _) = send(
        "POST",
        &format!("{}/{BUCKET}", app.endpoint()),
        &[("content-type".to_string(), "application/json".to_string())],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn cors_preflight_and_response_headers_follow_the_bucket_rules() {
    let app = spawn_app_with(CORS).await;
    let url = format!("{}/{BUCKET}/user/a.pdf", app.endpoint());
    let pre = |origin: &str, method: &str, headers: &str| {
        let mut h = vec![
            ("origin".to_string(), origin.to_string()),
            (
                "access-control-request-method".to_string(),
                method.to_string(),
            ),
        ];
        if !headers.is_empty() {
            h.push((
                "access-control-request-headers".to_string(),
                headers.to_string(),
            ));
        }
        h
    };
    // Allowed preflight: no credentials needed.
    let (status, h, _) = send(
        "OPTIONS",
        &url,
        &pre("https://app.example.com", "PUT", "content-type,x-amz-date"),
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-expose-headers"], "ETag");
    assert_eq!(h["access-control-max-age"], "600");
    // Refused preflights.
    for (o, m, hd) in [
        ("https://evil.example", "PUT", ""),
        ("https://app.example.com", "DELETE", ""),
        ("https://app.example.com", "PUT", "authorization"),
    ] {
        let (status, h, _) = send("OPTIONS", &url, &pre(o, m, hd), vec![]).await;
        assert_eq!(status, 403, "{o} {m} {hd}");
        assert!(h.get("access-control-allow-origin").is_none());
    }
    // An OPTIONS that is no preflight: 400 BadRequest, as S3 answers.
    let no_origin = vec![(
        "access-control-request-method".to_string(),
        "PUT".to_string(),
    )];
    let no_method = vec![("origin".to_string(), "https://app.example.com".to_string())];
    for h in [no_origin, no_method] {
        let (status, _, body) = send("OPTIONS", &url, &h, vec![]).await;
        assert_eq!(status, 400, "{h:?}");
        assert_eq!(error_code(&body), "BadRequest", "{h:?}");
    }
    // Actual responses to an allowed origin carry CORS headers, errors included.
    let origin = vec![("origin".to_string(), "https://app.example.com".to_string())];
    let (status, h, _) = send("PUT", &url, &origin, pdf(10)).await;
    assert_eq!(status, 403, "unsigned PUT is refused");
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let evil = vec![("origin".to_string(), "https://evil.example".to_string())];
    let (_, h, _) = send("PUT", &url, &evil, pdf(10)).await;
    assert!(h.get("access-control-allow-origin").is_none());
    // A successful cross-origin form upload exposes the ETag.
    let form = with(
        signed_form(standard_conditions(), &soon(), SECRET_KEY),
        &[
            ("key", "user/c.pdf"),
            ("Content-Type", "application/pdf"),
            ("success_action_status", "201"),
        ],
    );
    let (status, h, _) = post_named(&app, &form, "c.pdf", &pdf(1000), &origin).await;
    assert_eq!(status, 201);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-expose-headers"], "ETag");
    app.stop().await;
}

#[tokio::test]
async fn a_form_upload_of_an_active_pdf_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    let form = with(
        signed_form(standard_conditions(), &soon(), SECRET_KEY),
        &[
            ("key", "user/${filename}"),
            ("Content-Type", "application/pdf"),
            ("success_action_status", "201"),
        ],
    );
    let mut body = b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction << /S /Launch /F (cmd.exe) >> >> endobj\n".to_vec();
    body.extend_from_slice(&pdf(20_000));
    let (status, _, resp) = post(&app, &form, &body).await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp.contains("<Code>ContentRejected</Code>"), "{resp}");
    assert!(
        app.state
            .meta
            .current(BUCKET, "user/scan.pdf")
            .await
            .expect("m")
            .is_none()
    );
    assert!(app.object_files().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_policy_expiring_on_an_impossible_date_is_malformed() {
    let app = spawn_app().await;
    let form = with(
        signed_form(
            standard_conditions(),
            "2099-02-31T12:00:00.000Z",
            SECRET_KEY,
        ),
        &[
            ("key", "user/${filename}"),
            ("Content-Type", "application/pdf"),
            ("success_action_status", "201"),
        ],
    );
    let (status, _, resp) = post(&app, &form, &pdf(20_000)).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp.contains("<Code>InvalidPolicyDocument</Code>"),
        "{resp}"
    );
    app.stop().await;
}
