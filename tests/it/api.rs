//! The control API end to end over HTTP: links, tokens, files, downloads, versions, isolation
//! (SECURITY-TESTS section F).

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use upgate::api::admin::{NewTenant, create_tenant};

fn status_of<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

pub(crate) async fn tenant(app: &TestApp, name: &str) -> NewTenant {
    create_tenant(app.state.control.as_ref(), name)
        .await
        .expect("tenant")
}

pub(crate) async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut headers = vec![("authorization".to_string(), format!("Bearer {bearer}"))];
    let bytes = match body {
        Some(v) => {
            headers.push(("content-type".to_string(), "application/json".to_string()));
            serde_json::to_vec(&v).expect("json")
        }
        None => Vec::new(),
    };
    let (status, _, resp) = send(
        method,
        &format!("{}{path}", app.endpoint()),
        &headers,
        bytes,
    )
    .await;
    let v = if resp.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&resp)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&resp)}))
    };
    (status, v)
}

/// The headers a minted link says to send.
fn link_headers(link: &Value) -> Vec<(String, String)> {
    link["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("str").to_string()))
        .collect()
}

/// PUTs `body` to a minted link with the headers it asks for.
pub(crate) async fn upload(link: &Value, body: Vec<u8>) -> (u16, String) {
    let headers = link_headers(link);
    let (status, _, resp) = send("PUT", link["url"].as_str().expect("url"), &headers, body).await;
    (status, error_code(&resp))
}

pub(crate) fn new_upload(name: &str, data: &[u8]) -> Value {
    json!({"filename": name, "content_type": "application/pdf", "size": data.len(), "sha256": sha256_hex(data), "metadata": {"case": "c-1"}})
}

#[tokio::test]
async fn a_link_upload_completes_without_a_confirm_call_and_downloads_safely() {
    let app = spawn_app().await;
    let t = tenant(&app, "acme").await;
    let data = pdf(300_000);
    let (status, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("Quarterly Report.pdf", &data)),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().expect("url");
    // T-F5: nothing identifying in the URL; the key is random ids only.
    assert!(
        !url.contains("Quarterly") && !url.contains("Report"),
        "{url}"
    );
    assert!(url.contains(&format!("/uploads/{}/", t.tenant_id)), "{url}");
    let upload_id = link["upload_id"].as_str().expect("id").to_string();
    let file_id = link["file_id"].as_str().expect("file").to_string();

    let (s, before) = call(
        &app,
        "GET",
        &format!("/v1/uploads/{upload_id}"),
        &t.api_key,
        None,
    )
    .await;
    assert_eq!((s, before["status"].as_str()), (200, Some("pending")));
    assert_eq!(upload(&link, data.clone()).await.0, 200);
    // upgate knows the upload completed: no confirm call.
    let (_, after) = call(
        &app,
        "GET",
        &format!("/v1/uploads/{upload_id}"),
        &t.api_key,
        None,
    )
    .await;
    assert_eq!(after["status"], "complete");
    assert_eq!(after["sha256"], sha256_hex(&data));
    assert_eq!(after["content_type"], "application/pdf");

    let (_, file) = call(
        &app,
        "GET",
        &format!("/v1/files/{file_id}"),
        &t.api_key,
        None,
    )
    .await;
    assert_eq!(file["status"], "complete");
    assert_eq!(file["size"], data.len());
    assert_eq!(file["filename"], "Quarterly Report.pdf");
    assert_eq!(file["metadata"]["case"], "c-1");

    let (s, dl) = call(
        &app,
        "POST",
        &format!("/v1/files/{file_id}/download-url"),
        &t.api_key,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{dl}");
    let (s, headers, got) = send("GET", dl["url"].as_str().expect("url"), &[], Vec::new()).await;
    assert_eq!(s, 200);
    assert_eq!(got, data);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let cd = headers["content-disposition"].to_str().expect("cd");
    assert!(
        cd.starts_with("attachment;") && cd.contains("Quarterly"),
        "{cd}"
    );
    // Every download link and download is audited.
    let audit = app
        .state
        .control
        .audit_of_file(&file_id)
        .await
        .expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"download.link") && actions.contains(&"download"),
        "{actions:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_mints_commit_in_groups_and_each_link_works_once() {
    // Mints that arrive together share transactions: each still gets its own file and link,
    // usable once, and a failed one takes none of the others with it.
    let lifted = "{ rate = 0.0, burst = 1 }";
    let app = spawn_app_with(&format!(
        "[ratelimit.mint]\nprincipal = {lifted}\nip = {lifted}\nglobal = {lifted}\n"
    ))
    .await;
    let t = tenant(&app, "burst").await;
    let data = pdf(20_000);
    let mut tasks = Vec::new();
    for i in 0..48 {
        let app_url = app.endpoint();
        let key = t.api_key.clone();
        // Every eighth asks for a type the bucket refuses: it fails alone, before the insert.
        let body = if i % 8 == 7 {
            json!({"filename": "x.exe", "content_type": "application/x-msdownload", "size": 10})
        } else {
            new_upload(&format!("b{i}.pdf"), &data)
        };
        tasks.push(tokio::spawn(async move {
            let (status, _, resp) = send(
                "POST",
                &format!("{app_url}/v1/uploads"),
                &[
                    ("authorization".to_string(), format!("Bearer {key}")),
                    ("content-type".to_string(), "application/json".to_string()),
                ],
                serde_json::to_vec(&body).expect("json"),
            )
            .await;
            (
                status,
                serde_json::from_slice::<Value>(&resp).unwrap_or(Value::Null),
            )
        }));
    }
    let mut links = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (status, v) = task.await.expect("join");
        match status {
            201 => links.push(v),
            415 => refused += 1,
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((links.len(), refused), (42, 6));
    let mut files: Vec<&str> = links
        .iter()
        .map(|l| l["file_id"].as_str().expect("id"))
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 42, "a file per mint");
    for link in &links {
        assert_eq!(upload(link, data.clone()).await.0, 200, "{link}");
        assert_eq!(
            upload(link, data.clone()).await,
            (403, "AccessDenied".to_string()),
            "used once"
        );
    }
    let (status, listed) = call(&app, "GET", "/v1/files?limit=100", &t.api_key, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["files"].as_array().expect("files").len(), 42);
    // Fewer transactions than links: some shared one.
    let metrics = metrics_text(&app).await;
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("upgate_mint_batch_size_count "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("mint batch count");
    assert!(
        (1..42).contains(&count),
        "{count} transactions for 42 links"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_link_works_once_even_under_50_concurrent_attempts() {
    // T-F1, T-F2.
    let app = spawn_app().await;
    let t = tenant(&app, "race").await;
    let data = pdf(200_000);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("r.pdf", &data)),
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let link = link.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move { upload(&link, data).await }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, code) = t.await.expect("join");
        match status {
            200 => ok += 1,
            409 => assert_eq!(code, "Conflict"),
            403 => assert_eq!(code, "AccessDenied"),
            other => panic!("unexpected {other} {code}"),
        }
    }
    assert_eq!(ok, 1, "exactly one upload through a single-use link");
    // Later reuse is refused too.
    assert_eq!(
        upload(&link, data.clone()).await,
        (403, "AccessDenied".to_string())
    );
    // Exactly one object and one committed record.
    let prefix = format!("{}/", t.tenant_id);
    let objects = app
        .state
        .meta
        .list(BUCKET, &prefix, "", false, 100)
        .await
        .expect("list");
    assert_eq!(objects.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_held_by_an_attempt_that_died_is_free_again_after_its_own_deadline() {
    // 100 KB at 1 MiB/s is no time at all: the claim lasts twice the 1 s slack, not the
    // deadline of the bucket's largest object (20 MiB: 21 s).
    let app = spawn_app_with(
        "[server]\nmin_upload_rate_bytes_per_sec = 1048576\nupload_deadline_slack_secs = 1\n",
    )
    .await;
    let t = tenant(&app, "crash").await;
    let data = pdf(100_000);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("c.pdf", &data)),
    )
    .await;
    let id = link["upload_id"].as_str().expect("id");
    let rec = app
        .state
        .control
        .link(id)
        .await
        .expect("meta")
        .expect("link");
    // An attempt claims the link and its process dies: the guard that would give it back never
    // runs.
    let claimed = std::time::Instant::now();
    let guard = upgate::upload::link::claim(&app.state, id, &rec.bucket, &rec.key, 100_000)
        .await
        .expect("claim");
    std::mem::forget(guard);
    let headers = link_headers(&link);
    let url = link["url"].as_str().expect("url");
    let (status, h, body) = send("PUT", url, &headers, data.clone()).await;
    assert_eq!((status, error_code(&body).as_str()), (409, "Conflict"));
    assert_eq!(h.get("retry-after").map(|v| v.to_str().unwrap()), Some("5"));
    // Retried as Retry-After says, the upload goes through once the claim ran out.
    let status = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, _, _) = send("PUT", url, &headers, data.clone()).await;
        if status != 409 || claimed.elapsed() > Duration::from_secs(15) {
            break status;
        }
    };
    assert_eq!(status, 200);
    let waited = claimed.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(6),
        "the claim lasted {waited:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn links_pin_size_type_and_hash_and_a_failed_upload_can_be_retried() {
    // T-A9, T-F3, T-F4.
    let app = spawn_app().await;
    let t = tenant(&app, "pins").await;
    let data = pdf(50_000);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("p.pdf", &data)),
    )
    .await;
    let url = link["url"].as_str().expect("url").to_string();
    let hdr = |ct: &str, len: usize, sha: &str| {
        vec![
            ("content-type".to_string(), ct.to_string()),
            ("content-length".to_string(), len.to_string()),
            ("x-amz-content-sha256".to_string(), sha.to_string()),
        ]
    };
    let sha = sha256_hex(&data);
    // Another type, another size: the signature does not match.
    let (s, _, r) = send(
        "PUT",
        &url,
        &hdr("image/png", data.len(), &sha),
        data.clone(),
    )
    .await;
    assert_eq!((s, error_code(&r).as_str()), (403, "SignatureDoesNotMatch"));
    let mut bigger = data.clone();
    bigger.push(b'x');
    let (s, _, r) = send(
        "PUT",
        &url,
        &hdr("application/pdf", bigger.len(), &sha),
        bigger,
    )
    .await;
    assert_eq!((s, error_code(&r).as_str()), (403, "SignatureDoesNotMatch"));
    // Right headers, wrong bytes: the signed hash catches it; the link is released...
    let mut other = data.clone();
    other[1000] ^= 1;
    let (s, _, r) = send(
        "PUT",
        &url,
        &hdr("application/pdf", other.len(), &sha),
        other,
    )
    .await;
    assert_eq!(
        (s, error_code(&r).as_str()),
        (400, "XAmzContentSHA256Mismatch")
    );
    // ...so the client can retry with the right bytes before expiry.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, _, r) = send(
        "PUT",
        &url,
        &hdr("application/pdf", data.len(), &sha),
        data.clone(),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&r));
    // Size and type are checked when the link is minted too.
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(json!({"content_type": "application/pdf", "size": 21 * 1024 * 1024})),
    )
    .await;
    assert_eq!(s, 413);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(json!({"content_type": "text/html", "size": 10})),
    )
    .await;
    assert_eq!(s, 415);
    app.stop().await;
}

#[tokio::test]
async fn expired_links_are_refused() {
    let app = spawn_app_with("[api]\nupload_link_ttl_secs = 1\n").await;
    let t = tenant(&app, "late").await;
    let data = pdf(1000);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("l.pdf", &data)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, _) = upload(&link, data).await;
    assert_eq!(s, 403);
    let (_, st) = call(
        &app,
        "GET",
        &format!("/v1/uploads/{}", link["upload_id"].as_str().expect("id")),
        &t.api_key,
        None,
    )
    .await;
    assert_eq!(st["status"], "expired");
    app.stop().await;
}

#[tokio::test]
async fn anonymous_tokens_are_exchanged_consumed_and_revoked() {
    // This test makes more token calls in a burst than the default token-exchange limit allows
    // (see tests/limits.rs for the limits themselves).
    let app =
        spawn_app_with("[ratelimit.token_exchange]\nprincipal = { rate = 100.0, burst = 100 }\n")
            .await;
    let t = tenant(&app, "tok").await;
    let (s, tok) = call(&app, "POST", "/v1/upload-tokens", &t.api_key, Some(json!({"client_id": "kiosk-7", "expires_in": 600, "max_uploads": 1, "max_bytes": 100_000, "allowed_types": ["application/pdf"]}))).await;
    assert_eq!(s, 201, "{tok}");
    let token = tok["token"].as_str().expect("token").to_string();
    // The token may not list files or mint tokens.
    assert_eq!(call(&app, "GET", "/v1/files", &token, None).await.0, 403);
    assert_eq!(
        call(
            &app,
            "POST",
            "/v1/upload-tokens",
            &token,
            Some(json!({"client_id": "x"}))
        )
        .await
        .0,
        403
    );
    // Outside its scope: another type, too many bytes.
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &token,
        Some(json!({"content_type": "image/png", "size": 100})),
    )
    .await;
    assert_eq!(s, 415);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &token,
        Some(json!({"content_type": "application/pdf", "size": 100_001})),
    )
    .await;
    assert_eq!(s, 413);
    // Exchange, upload: consumed.
    let data = pdf(5000);
    let (s, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &token,
        Some(new_upload("kiosk.pdf", &data)),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(upload(&link, data.clone()).await.0, 200);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &token,
        Some(new_upload("again.pdf", &data)),
    )
    .await;
    assert_eq!(s, 403, "a used-up token cannot mint more links");
    // The upload belongs to the app that issued the token, tagged with the client id.
    let (_, files) = call(&app, "GET", "/v1/files", &t.api_key, None).await;
    let f = &files["files"][0];
    assert_eq!(f["metadata"]["client_id"], "kiosk-7");
    // A second token, revoked before use.
    let (_, tok2) = call(
        &app,
        "POST",
        "/v1/upload-tokens",
        &t.api_key,
        Some(json!({"client_id": "k2", "max_uploads": 2})),
    )
    .await;
    let token2 = tok2["token"].as_str().expect("t").to_string();
    let (_, link2) = call(
        &app,
        "POST",
        "/v1/uploads",
        &token2,
        Some(new_upload("k2.pdf", &data)),
    )
    .await;
    let path = format!(
        "/v1/upload-tokens/{}",
        tok2["token_id"].as_str().expect("id")
    );
    assert_eq!(call(&app, "DELETE", &path, &t.api_key, None).await.0, 204);
    assert_eq!(
        call(
            &app,
            "POST",
            "/v1/uploads",
            &token2,
            Some(new_upload("k3.pdf", &data))
        )
        .await
        .0,
        401
    );
    // A link minted before the revocation cannot commit either: the token is checked at commit.
    assert_eq!(upload(&link2, data).await.0, 403);
    // Garbage tokens.
    for bad in ["ugt_nope_nope", "ugk_x_y", "not-a-token", "a.b.c"] {
        assert_eq!(
            call(&app, "GET", "/v1/files", bad, None).await.0,
            401,
            "{bad}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn files_are_isolated_between_tenants_and_owners() {
    // T-F3 and owner isolation: every cross-tenant access is the same 404.
    let app = spawn_app().await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;
    let data = pdf(3000);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &a.api_key,
        Some(new_upload("a.pdf", &data)),
    )
    .await;
    assert_eq!(upload(&link, data.clone()).await.0, 200);
    let file = link["file_id"].as_str().expect("file").to_string();
    let upload_id = link["upload_id"].as_str().expect("id").to_string();
    let (_, nf) = call(&app, "GET", "/v1/files/nonexistent00000", &b.api_key, None).await;
    for (m, p, body) in [
        ("GET", format!("/v1/files/{file}"), None),
        ("DELETE", format!("/v1/files/{file}"), None),
        (
            "POST",
            format!("/v1/files/{file}/download-url"),
            Some(json!({})),
        ),
        ("GET", format!("/v1/files/{file}/versions"), None),
        (
            "POST",
            format!("/v1/files/{file}/versions"),
            Some(new_upload("x.pdf", &data)),
        ),
        ("GET", format!("/v1/uploads/{upload_id}"), None),
    ] {
        let (s, v) = call(&app, m, &p, &b.api_key, body).await;
        assert_eq!(s, 404, "{m} {p}");
        assert_eq!(
            v["error"]["code"], nf["error"]["code"],
            "same answer as a missing file"
        );
    }
    let (_, list) = call(&app, "GET", "/v1/files", &b.api_key, None).await;
    assert_eq!(list["files"].as_array().expect("files").len(), 0);
    // The S3 plane: tenant access keys are confined to their tenant's prefix.
    let key = app
        .state
        .meta
        .list(BUCKET, &format!("{}/", a.tenant_id), "", false, 10)
        .await
        .expect("list")[0]
        .key
        .clone();
    let s3a = client_for(&app.endpoint(), &a.access_key_id, &a.secret_access_key);
    let s3b = client_for(&app.endpoint(), &b.access_key_id, &b.secret_access_key);
    let got = s3a
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .expect("A reads its own");
    assert_eq!(
        got.body.collect().await.expect("b").into_bytes().as_ref(),
        data.as_slice()
    );
    assert_eq!(
        status_of(
            &s3b.get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .expect_err("B")
        ),
        Some(403)
    );
    assert_eq!(
        status_of(
            &s3b.delete_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .expect_err("B")
        ),
        Some(403)
    );
    // Tags of another tenant's object are out of reach too.
    let err = s3b
        .get_object_tagging()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .expect_err("B reads A's tags");
    assert_eq!(status_of(&err), Some(403));
    let tags = aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("k")
                .value("v")
                .build()
                .expect("tag"),
        )
        .build()
        .expect("tagging");
    let err = s3b
        .put_object_tagging()
        .bucket(BUCKET)
        .key(&key)
        .tagging(tags.clone())
        .send()
        .await
        .expect_err("B tags A's object");
    assert_eq!(status_of(&err), Some(403));
    s3a.put_object_tagging()
        .bucket(BUCKET)
        .key(&key)
        .tagging(tags)
        .send()
        .await
        .expect("A tags its own");
    let err = s3b
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("{}/", a.tenant_id))
        .send()
        .await
        .expect_err("B lists A");
    assert_eq!(status_of(&err), Some(403));
    let err = s3b
        .put_object()
        .bucket(BUCKET)
        .key("outside.pdf")
        .body(pdf(100).into())
        .send()
        .await
        .expect_err("B writes outside its prefix");
    assert_eq!(status_of(&err), Some(403));
    s3b.put_object()
        .bucket(BUCKET)
        .key(format!("{}/own.pdf", b.tenant_id))
        .body(pdf(100).into())
        .send()
        .await
        .expect("B writes under its own prefix");
    app.stop().await;
}

#[tokio::test]
async fn versions_keep_the_file_id_and_old_versions_stay_downloadable() {
    let app = spawn_app().await;
    let t = tenant(&app, "ver").await;
    let v1 = pdf(4000);
    let mut v2 = pdf(6000);
    v2[100] = b'Z';
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("v.pdf", &v1)),
    )
    .await;
    assert_eq!(upload(&link, v1.clone()).await.0, 200);
    let file = link["file_id"].as_str().expect("f").to_string();
    let (s, link2) = call(
        &app,
        "POST",
        &format!("/v1/files/{file}/versions"),
        &t.api_key,
        Some(new_upload("v.pdf", &v2)),
    )
    .await;
    assert_eq!(s, 201, "{link2}");
    assert_eq!(link2["file_id"], file.as_str());
    assert_eq!(upload(&link2, v2.clone()).await.0, 200);
    let (_, f) = call(&app, "GET", &format!("/v1/files/{file}"), &t.api_key, None).await;
    assert_eq!(
        (f["versions"].as_i64(), f["size"].as_u64()),
        (Some(2), Some(6000))
    );
    let (_, vs) = call(
        &app,
        "GET",
        &format!("/v1/files/{file}/versions"),
        &t.api_key,
        None,
    )
    .await;
    let list = vs["versions"].as_array().expect("versions");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["current"], true);
    // Latest by default, any version on request.
    let (_, dl) = call(
        &app,
        "POST",
        &format!("/v1/files/{file}/download-url"),
        &t.api_key,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        send("GET", dl["url"].as_str().expect("u"), &[], vec![])
            .await
            .2,
        v2
    );
    let old = list[1]["version_id"].as_str().expect("v").to_string();
    let (_, dl) = call(
        &app,
        "POST",
        &format!("/v1/files/{file}/download-url"),
        &t.api_key,
        Some(json!({"version_id": old})),
    )
    .await;
    assert_eq!(
        send("GET", dl["url"].as_str().expect("u"), &[], vec![])
            .await
            .2,
        v1
    );
    // Deleting removes every version; links stop working.
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/v1/files/{file}"),
            &t.api_key,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, "GET", &format!("/v1/files/{file}"), &t.api_key, None)
            .await
            .0,
        404
    );
    assert_eq!(
        send("GET", dl["url"].as_str().expect("u"), &[], vec![])
            .await
            .0,
        404
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
async fn file_listing_filters_and_paginates() {
    let app = spawn_app().await;
    let t = tenant(&app, "list").await;
    for i in 0..7 {
        let data = if i % 2 == 0 {
            pdf(1000 + i)
        } else {
            png(1000 + i)
        };
        let ct = if i % 2 == 0 {
            "application/pdf"
        } else {
            "image/png"
        };
        let ext = if i % 2 == 0 { "pdf" } else { "png" };
        let body = json!({"filename": format!("doc-{i}.{ext}"), "content_type": ct, "size": data.len(), "metadata": {"batch": if i < 4 {"a"} else {"b"}}});
        let (_, link) = call(&app, "POST", "/v1/uploads", &t.api_key, Some(body)).await;
        assert_eq!(upload(&link, data).await.0, 200);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/files?limit=3&cursor={c}"),
            None => "/v1/files?limit=3".to_string(),
        };
        let (s, page) = call(&app, "GET", &q, &t.api_key, None).await;
        assert_eq!(s, 200, "{page}");
        for f in page["files"].as_array().expect("files") {
            seen.push(f["filename"].as_str().expect("n").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..7)
        .rev()
        .map(|i| format!("doc-{i}.{}", if i % 2 == 0 { "pdf" } else { "png" }))
        .collect();
    expected.dedup();
    assert_eq!(seen.len(), 7);
    assert_eq!(seen, expected, "newest first, each once");
    let count = |v: &Value| v["files"].as_array().expect("f").len();
    let (_, v) = call(
        &app,
        "GET",
        "/v1/files?content_type=image/png",
        &t.api_key,
        None,
    )
    .await;
    assert_eq!(count(&v), 3);
    let (_, v) = call(&app, "GET", "/v1/files?filename=doc-1", &t.api_key, None).await;
    assert_eq!(count(&v), 1);
    let (_, v) = call(&app, "GET", "/v1/files?metadata=batch:b", &t.api_key, None).await;
    assert_eq!(count(&v), 3);
    let (_, v) = call(
        &app,
        "GET",
        "/v1/files?created_after=2000-01-01T00:00:00Z&created_before=2001-01-01T00:00:00Z",
        &t.api_key,
        None,
    )
    .await;
    assert_eq!(count(&v), 0);
    // Impossible dates are a 400, not a silently shifted filter.
    for bad in [
        "2026-02-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-01-01T24:00:00Z",
    ] {
        let (s, v) = call(
            &app,
            "GET",
            &format!("/v1/files?created_after={bad}"),
            &t.api_key,
            None,
        )
        .await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    app.stop().await;
}

#[tokio::test]
async fn errors_are_json_and_openapi_matches_the_routes() {
    let app = spawn_app().await;
    let (s, v) = call(&app, "GET", "/v1/files", "", None).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "Unauthorized");
    let (s, doc) = call(&app, "GET", "/v1/openapi.json", "", None).await;
    assert_eq!(s, 200);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for m in ops.as_object().expect("ops").keys() {
            documented.push((m.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut implemented: Vec<(String, String)> = upgate::api::ROUTES
        .iter()
        .chain(upgate::tus::ROUTES)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    implemented.sort();
    assert_eq!(
        documented, implemented,
        "OpenAPI document and router disagree"
    );
    // Every implemented route answers something other than 404/405 for its method.
    let t = tenant(&app, "doc").await;
    for (m, p) in upgate::api::ROUTES {
        let path = p.replace("{id}", "0123456789abcdef");
        let (s, _) = call(&app, &m.to_uppercase(), &path, &t.api_key, Some(json!({}))).await;
        assert_ne!(s, 405, "{m} {p}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_runs_on_postgresql_too() {
    let pg = PgSchema::new();
    let app = spawn_app_with(&pg.config()).await;
    a_link_is_claimed_once(&app).await;
    app.stop().await;
    pg.drop().await;
}

#[tokio::test]
async fn the_api_runs_on_mysql_too() {
    let db = MySqlDatabase::new().await;
    let app = spawn_app_with(&db.config()).await;
    a_link_is_claimed_once(&app).await;
    app.stop().await;
    db.drop().await;
}

/// Ten concurrent uploads through one link: one succeeds, and the file is complete.
async fn a_link_is_claimed_once(app: &TestApp) {
    let t = tenant(app, "pg").await;
    let data = pdf(2000);
    let (_, link) = call(
        app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("pg.pdf", &data)),
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (link, data) = (link.clone(), data.clone());
        tasks.push(tokio::spawn(async move { upload(&link, data).await.0 }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("join") == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    let (_, files) = call(app, "GET", "/v1/files", &t.api_key, None).await;
    assert_eq!(files["files"][0]["status"], "complete");
}

fn jwt(sub: &str, tenant: &str, lifetime: i64) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".to_string());
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/jwt/rs256-private.pem"
    ))
    .expect("key");
    let claims = json!({"sub": sub, "tenant": tenant, "iat": now - 10, "exp": now + lifetime});
    encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&pem).expect("pem"),
    )
    .expect("sign")
}

#[tokio::test]
async fn jwt_users_own_their_files() {
    let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt/jwks.json");
    let app = spawn_app_with(&format!("[jwt]\njwks_file = {jwks:?}\n")).await;
    let t = tenant(&app, "users").await;
    let alice = jwt("alice", &t.tenant_id, 600);
    let bob = jwt("bob", &t.tenant_id, 600);
    let data = pdf(2500);
    let (s, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &alice,
        Some(new_upload("a.pdf", &data)),
    )
    .await;
    assert_eq!(s, 201, "{link}");
    assert_eq!(upload(&link, data).await.0, 200);
    let file = link["file_id"].as_str().expect("f").to_string();
    let count = |v: &Value| v["files"].as_array().map(Vec::len).unwrap_or(usize::MAX);
    assert_eq!(
        count(&call(&app, "GET", "/v1/files", &alice, None).await.1),
        1
    );
    assert_eq!(
        count(&call(&app, "GET", "/v1/files", &bob, None).await.1),
        0
    );
    assert_eq!(
        count(&call(&app, "GET", "/v1/files", &t.api_key, None).await.1),
        0
    );
    assert_eq!(
        call(&app, "GET", &format!("/v1/files/{file}"), &bob, None)
            .await
            .0,
        404
    );
    // Expired, too long-lived, or naming an unknown tenant: refused.
    assert_eq!(
        call(
            &app,
            "GET",
            "/v1/files",
            &jwt("alice", &t.tenant_id, -100),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(
            &app,
            "GET",
            "/v1/files",
            &jwt("alice", &t.tenant_id, 86_400),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(
            &app,
            "GET",
            "/v1/files",
            &jwt("alice", "no-such-tenant", 600),
            None
        )
        .await
        .0,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn a_configured_grant_lets_an_auditor_read_and_every_use_is_audited() {
    // Grants name tenant ids, so the tenant is created first; the gateway then restarts on the
    // same data directory with the grant in its config.
    let app0 = spawn_app().await;
    let t = tenant(&app0, "audited").await;
    let data = pdf(1500);
    let (_, link) = call(
        &app0,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("g.pdf", &data)),
    )
    .await;
    assert_eq!(upload(&link, data.clone()).await.0, 200);
    let file = link["file_id"].as_str().expect("f").to_string();
    let dir = app0.stop_keep_dir().await;
    let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt/jwks.json");
    let app = spawn_app_in(
        dir,
        &format!(
            "[jwt]\njwks_file = {jwks:?}\n[[api.grants]]\ntenant = {:?}\nprincipal = \"user:auditor\"\n",
            t.tenant_id
        ),
    )
    .await;
    let auditor = jwt("auditor", &t.tenant_id, 600);
    let other = jwt("mallory", &t.tenant_id, 600);
    assert_eq!(
        call(&app, "GET", &format!("/v1/files/{file}"), &other, None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&app, "GET", &format!("/v1/files/{file}"), &auditor, None)
            .await
            .0,
        200
    );
    let (s, dl) = call(
        &app,
        "POST",
        &format!("/v1/files/{file}/download-url"),
        &auditor,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        send("GET", dl["url"].as_str().expect("u"), &[], vec![])
            .await
            .2,
        data
    );
    // A read grant does not allow deleting.
    assert_eq!(
        call(&app, "DELETE", &format!("/v1/files/{file}"), &auditor, None)
            .await
            .0,
        404
    );
    let audit = app.state.control.audit_of_file(&file).await.expect("audit");
    let grants = audit
        .iter()
        .filter(|e| e.action == "grant.read" && e.actor == "user:auditor")
        .count();
    assert!(grants >= 2, "{audit:?}");
    assert!(audit.iter().any(|e| e.action == "download"));
    app.stop().await;
}

/// A webhook receiver on `port` that records (event header, signature ok, body).
pub(crate) async fn receiver(
    port: u16,
    secret: &'static str,
) -> (
    Arc<std::sync::Mutex<Vec<(String, bool, Value)>>>,
    tokio::task::JoinHandle<()>,
) {
    use http_body_util::BodyExt;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let s2 = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&s2);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            let h = req.headers().clone();
                            let body = req.into_body().collect().await.expect("body").to_bytes();
                            let get = |n: &str| {
                                h.get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string()
                            };
                            let ts: u64 = get("x-upgate-timestamp").parse().unwrap_or(0);
                            let ok = upgate::events::verify(
                                secret.as_bytes(),
                                ts,
                                &body,
                                &get("x-upgate-signature"),
                            );
                            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            seen.lock()
                                .expect("lock")
                                .push((get("x-upgate-event"), ok, v));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Empty::<bytes::Bytes>::new(),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (seen, task)
}

#[tokio::test]
async fn webhooks_are_signed_and_survive_a_gateway_restart() {
    const SECRET: &str = "webhook-secret-0123456789abcdefghijklmnop";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let cfg = format!(
        "[webhooks]\npoll_interval_ms = 50\nbackoff_base_ms = 50\nbackoff_max_ms = 200\ntimeout_ms = 1000\n\
         [[webhooks.endpoints]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = {SECRET:?}\n"
    );
    // The receiver is down while the upload completes: the event waits in the outbox.
    let app = spawn_app_with(&cfg).await;
    let t = tenant(&app, "hooks").await;
    let data = pdf(1200);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("h.pdf", &data)),
    )
    .await;
    assert_eq!(upload(&link, data).await.0, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = app.stop_keep_dir().await;

    // After a restart, with the receiver up, it is delivered, signed.
    let (seen, rx) = receiver(port, SECRET).await;
    let app = spawn_app_in(dir, &cfg).await;
    let file = link["file_id"].as_str().expect("f").to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if seen
            .lock()
            .expect("l")
            .iter()
            .any(|(e, _, _)| e == "upload.completed")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "upload.completed never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/v1/files/{file}"),
            &t.api_key,
            None
        )
        .await
        .0,
        204
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if seen
            .lock()
            .expect("l")
            .iter()
            .any(|(e, _, _)| e == "file.deleted")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "file.deleted never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = seen.lock().expect("l").clone();
    assert!(
        got.iter().all(|(_, ok, _)| *ok),
        "every delivery is signed: {got:?}"
    );
    let completed = got
        .iter()
        .find(|(e, _, _)| e == "upload.completed")
        .expect("c");
    assert_eq!(completed.2["file_id"], file.as_str());
    assert_eq!(completed.2["size"], 1200);
    // The content verdict travels with it.
    assert_eq!(completed.2["scan"]["result"], "clean", "{:?}", completed.2);
    assert_eq!(
        completed.2["scan"]["checks"],
        serde_json::json!(["type", "pdf"])
    );
    // No filename, e-mail or secret in the payloads.
    assert!(
        !serde_json::to_string(&got.iter().map(|g| &g.2).collect::<Vec<_>>())
            .expect("j")
            .contains("h.pdf")
    );
    app.stop().await;
    rx.abort();
}

#[tokio::test]
async fn a_tenant_quota_holds_under_50_concurrent_uploads_and_is_released_on_delete() {
    let app = spawn_app().await;
    let t = tenant(&app, "quota").await;
    // 10 objects of 10,000 bytes fit; 50 race for them.
    assert!(
        app.state
            .control
            .set_quota(&t.tenant_id, Some(100_000), None)
            .await
            .expect("quota")
    );
    let s3 = client_for(&app.endpoint(), &t.access_key_id, &t.secret_access_key);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s3 = s3.clone();
        let key = format!("{}/q/{i}.pdf", t.tenant_id);
        tasks.push(tokio::spawn(async move {
            match s3
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(pdf(10_000).into())
                .send()
                .await
            {
                Ok(_) => Some(key),
                Err(e) => {
                    let code = e.into_service_error().meta().code().map(str::to_string);
                    assert!(
                        matches!(code.as_deref(), Some("QuotaExceeded") | Some("SlowDown")),
                        "{code:?}"
                    );
                    None
                }
            }
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        if let Some(k) = task.await.expect("join") {
            accepted.push(k);
        }
    }
    assert!(
        !accepted.is_empty() && accepted.len() <= 10,
        "{}",
        accepted.len()
    );
    let (bytes, objects) = app.state.control.usage(&t.tenant_id).await.expect("usage");
    assert!(bytes <= 100_000);
    assert_eq!(
        objects as usize,
        accepted.len(),
        "exactly the accepted uploads are committed"
    );
    let listed = app
        .state
        .meta
        .list(BUCKET, &format!("{}/", t.tenant_id), "", false, 100)
        .await
        .expect("list");
    assert_eq!(listed.len(), accepted.len());
    // Links count against the same quota: fill it up, then a link upload is refused.
    while app.state.control.usage(&t.tenant_id).await.expect("u").0 + 10_000 <= 100_000 {
        let k = format!("{}/fill/{}.pdf", t.tenant_id, upgate::id::random_hex(4));
        s3.put_object()
            .bucket(BUCKET)
            .key(&k)
            .body(pdf(10_000).into())
            .send()
            .await
            .expect("fill");
    }
    let data = pdf(10_000);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(new_upload("q.pdf", &data)),
    )
    .await;
    let (s, code) = upload(&link, data.clone()).await;
    assert_eq!((s, code.as_str()), (403, "QuotaExceeded"));
    // Deleting frees room; the link (released after the refusal) now works.
    s3.delete_object()
        .bucket(BUCKET)
        .key(&accepted[0])
        .send()
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(upload(&link, data).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_link_can_be_uploaded_in_parts_and_completed_once() {
    let app = spawn_app_with("[s3]\nmin_part_bytes = 1000\n").await;
    let t = tenant(&app, "parts").await;
    let data = pdf(25_000);
    let mut body = new_upload("big.pdf", &data);
    body["parts"] = json!(3);
    let (s, link) = call(&app, "POST", "/v1/uploads", &t.api_key, Some(body)).await;
    assert_eq!(s, 201, "{link}");
    let parts = link["parts"].as_array().expect("parts").clone();
    assert_eq!(parts.len(), 3);
    let id = link["upload_id"].as_str().expect("id").to_string();
    let mut done = Vec::new();
    let mut offset = 0;
    for p in &parts {
        let len: usize = p["headers"]["Content-Length"]
            .as_str()
            .expect("len")
            .parse()
            .expect("n");
        let chunk = data[offset..offset + len].to_vec();
        offset += len;
        // A part URL pins its size: another length does not verify.
        let bad = vec![("content-length".to_string(), (len + 1).to_string())];
        let mut longer = chunk.clone();
        longer.push(0);
        assert_eq!(
            send("PUT", p["url"].as_str().expect("u"), &bad, longer)
                .await
                .0,
            403
        );
        let h = vec![("content-length".to_string(), len.to_string())];
        let (s, headers, _) = send("PUT", p["url"].as_str().expect("u"), &h, chunk).await;
        assert_eq!(s, 200);
        done.push(
            json!({"part_number": p["part_number"], "etag": headers["etag"].to_str().expect("e")}),
        );
    }
    assert_eq!(offset, data.len());
    // Nothing is visible before completion; another tenant cannot complete it.
    let other = tenant(&app, "other").await;
    let path = format!("/v1/uploads/{id}/complete");
    assert_eq!(
        call(
            &app,
            "POST",
            &path,
            &other.api_key,
            Some(json!({"parts": done}))
        )
        .await
        .0,
        404
    );
    let (s, r) = call(
        &app,
        "POST",
        &path,
        &t.api_key,
        Some(json!({"parts": done})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (_, st) = call(&app, "GET", &format!("/v1/uploads/{id}"), &t.api_key, None).await;
    assert_eq!(st["status"], "complete");
    assert_eq!(st["sha256"], sha256_hex(&data));
    // Once only.
    assert_eq!(
        call(
            &app,
            "POST",
            &path,
            &t.api_key,
            Some(json!({"parts": done}))
        )
        .await
        .0,
        403
    );
    let file = link["file_id"].as_str().expect("f");
    let (_, dl) = call(
        &app,
        "POST",
        &format!("/v1/files/{file}/download-url"),
        &t.api_key,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        send("GET", dl["url"].as_str().expect("u"), &[], vec![])
            .await
            .2,
        data
    );

    // A declared hash the parts do not match: completion fails and releases the link.
    let mut body = new_upload("bad.pdf", &data);
    body["parts"] = json!(2);
    body["sha256"] = json!(sha256_hex(b"something else"));
    let (_, link) = call(&app, "POST", "/v1/uploads", &t.api_key, Some(body)).await;
    let id = link["upload_id"].as_str().expect("id").to_string();
    let mut done = Vec::new();
    let mut offset = 0;
    for p in link["parts"].as_array().expect("parts") {
        let len: usize = p["headers"]["Content-Length"]
            .as_str()
            .expect("len")
            .parse()
            .expect("n");
        let h = vec![("content-length".to_string(), len.to_string())];
        let (s, headers, _) = send(
            "PUT",
            p["url"].as_str().expect("u"),
            &h,
            data[offset..offset + len].to_vec(),
        )
        .await;
        assert_eq!(s, 200);
        offset += len;
        done.push(
            json!({"part_number": p["part_number"], "etag": headers["etag"].to_str().expect("e")}),
        );
    }
    let (s, r) = call(
        &app,
        "POST",
        &format!("/v1/uploads/{id}/complete"),
        &t.api_key,
        Some(json!({"parts": done})),
    )
    .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (400, Some("XAmzContentSHA256Mismatch"))
    );
    let (_, st) = call(&app, "GET", &format!("/v1/uploads/{id}"), &t.api_key, None).await;
    assert_eq!(st["status"], "pending", "released for another attempt");
    // Too many parts for the minimum part size.
    let mut body = new_upload("x.pdf", &data);
    body["parts"] = json!(100);
    assert_eq!(
        call(&app, "POST", "/v1/uploads", &t.api_key, Some(body))
            .await
            .0,
        400
    );
    app.stop().await;
}
