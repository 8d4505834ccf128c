//! The pages and their routes over HTTP: page headers, drop links (policy, status, per-file
//! limit, what a holder sees), and Uppy's Companion S3 routes driven the way the plugin calls
//! them. The pages themselves are driven in a real browser by `tests/compat/test_web.py`.

use serde_json::{Value, json};

use crate::api::{call, tenant};
use crate::common::*;
use crate::tus::{create, patch};

/// Token holders call `/self` often in these tests: the token-exchange limits are lifted.
const LIMITS: &str = "[ratelimit.token_exchange]\nprincipal = { rate = 0.0, burst = 1 }\n\
    ip = { rate = 0.0, burst = 1 }\nglobal = { rate = 0.0, burst = 1 }\n";

async fn get(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    send("GET", &format!("{}{path}", app.endpoint()), &[], Vec::new()).await
}

fn h<'a>(hm: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    hm.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn pages_and_assets_carry_strict_headers_and_can_be_turned_off() {
    let app = spawn_app().await;
    for (path, ct) in [
        ("/drop", "text/html; charset=utf-8"),
        ("/files", "text/html; charset=utf-8"),
        ("/static/drop.js", "text/javascript; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
    ] {
        let (s, hm, body) = get(&app, path).await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(h(&hm, "content-type"), ct, "{path}");
        let csp = h(&hm, "content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h(&hm, "x-frame-options"), "DENY");
        assert_eq!(h(&hm, "referrer-policy"), "no-referrer");
        assert_eq!(h(&hm, "x-content-type-options"), "nosniff");
        assert!(hm.get("set-cookie").is_none());
        assert!(!body.is_empty());
    }
    // Assets revalidate by ETag.
    let (_, hm, _) = get(&app, "/static/drop.js").await;
    let etag = h(&hm, "etag").to_string();
    let (s, _, body) = send(
        "GET",
        &format!("{}/static/drop.js", app.endpoint()),
        &[("if-none-match".into(), etag)],
        Vec::new(),
    )
    .await;
    assert_eq!((s, body.len()), (304, 0));
    let (s, _, _) = get(&app, "/static/nope.js").await;
    assert_eq!(s, 404);
    let (s, _, _) = send("POST", &format!("{}/drop", app.endpoint()), &[], Vec::new()).await;
    assert_eq!(s, 405);
    // Turned off, the paths are S3 paths again (an unsigned S3 request: AccessDenied XML).
    let off = spawn_app_with("[web]\nenabled = false\n").await;
    let (s, hm, body) = get(&off, "/drop").await;
    assert_ne!(s, 200);
    assert!(hm.get("content-security-policy").is_none());
    assert!(String::from_utf8_lossy(&body).contains("<Error>"));
    // Under another prefix.
    let moved = spawn_app_with("[web]\nprefix = \"/ui/\"\n").await;
    let (s, _, _) = get(&moved, "/ui/drop").await;
    assert_eq!(s, 200);
    let (s, _, _) = get(&moved, "/drop").await;
    assert_ne!(s, 200);
}

#[test]
fn a_bucket_the_pages_would_hide_is_refused_at_load() {
    let err = upgate::config::Config::from_layers(
        Some("[buckets.files]\n[buckets.uploads]\n"),
        Vec::<(String, String)>::new(),
    )
    .expect_err("hidden bucket");
    assert!(err.to_string().contains("bucket \"files\""), "{err}");
    // Another prefix, or the pages off, make the name usable.
    for extra in ["[web]\nprefix = \"/ui/\"\n", "[web]\nenabled = false\n"] {
        upgate::config::Config::from_layers(
            Some(&format!("{extra}[buckets.files]\n")),
            Vec::<(String, String)>::new(),
        )
        .expect(extra);
    }
    let err = upgate::config::Config::from_layers(
        Some("[web]\nprefix = \"ui\"\n"),
        Vec::<(String, String)>::new(),
    )
    .expect_err("bad prefix");
    assert!(err.to_string().contains("web.prefix"), "{err}");
}

async fn token(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, v) = call(app, "POST", "/v1/upload-tokens", key, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v
}

#[tokio::test]
async fn a_drop_link_tells_its_holder_what_is_allowed_and_why_it_stopped() {
    let app = spawn_app_with(LIMITS).await;
    let t = tenant(&app, "acme-drop").await;
    let made = token(
        &app,
        &t.api_key,
        json!({
            "client_id": "drop-link", "max_uploads": 2, "max_bytes": 300_000,
            "max_file_bytes": 200_000, "allowed_types": ["application/pdf"],
            "note": "Your signed contract, please.\n<b>not markup</b>",
            "requester": "Acme Legal", "notify_email": "legal@acme.example",
        }),
    )
    .await;
    let secret = made["token"].as_str().expect("token").to_string();
    let url = made["drop_url"].as_str().expect("drop_url");
    // The token rides in the fragment: no request line carries it.
    let (before, frag) = url.split_once('#').expect("fragment");
    assert!(before.ends_with("/drop"), "{url}");
    assert_eq!(frag, secret);
    assert_eq!(made["status"], "active");
    // Fields the drop page shows are plain text; a control character is refused.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/upload-tokens",
        &t.api_key,
        Some(json!({"client_id": "x", "note": "a\u{7}b"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = call(
        &app,
        "POST",
        "/v1/upload-tokens",
        &t.api_key,
        Some(json!({"client_id": "x", "notify_email": "a@b.c, evil@x.y"})),
    )
    .await;
    assert_eq!(s, 400);

    // The holder's view: the policy, no notification address, no secret.
    let (s, me) = call(&app, "GET", "/v1/upload-tokens/self", &secret, None).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["requester"], "Acme Legal");
    assert_eq!(
        me["note"],
        "Your signed contract, please.\n<b>not markup</b>"
    );
    assert_eq!(me["max_file_bytes"], 200_000);
    assert_eq!(me["uploads_used"], 0);
    assert!(me.get("notify_email").is_none() && me.get("token").is_none());
    assert_eq!(me["uploads"], json!([]));
    // A wrong secret learns nothing.
    let id = made["token_id"].as_str().expect("id");
    let (s, _) = call(
        &app,
        "GET",
        "/v1/upload-tokens/self",
        &format!("ugt_{id}_{}", "0".repeat(64)),
        None,
    )
    .await;
    assert_eq!(s, 401);

    // Over the per-file limit: refused at creation (tus) and by a minted link.
    let big = pdf(200_001);
    let (s, _, _) = send(
        "POST",
        &format!("{}/v1/tus/", app.endpoint()),
        &[
            ("authorization".into(), format!("Bearer {secret}")),
            ("tus-resumable".into(), "1.0.0".into()),
            ("upload-length".into(), big.len().to_string()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 413);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &secret,
        Some(crate::api::new_upload("big.pdf", &big)),
    )
    .await;
    assert_eq!(s, 413);
    // A deferred-length upload is cut at the per-file limit while it streams.
    let (s, hm, _) = send(
        "POST",
        &format!("{}/v1/tus/", app.endpoint()),
        &[
            ("authorization".into(), format!("Bearer {secret}")),
            ("tus-resumable".into(), "1.0.0".into()),
            ("upload-defer-length".into(), "1".into()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 201);
    let deferred = h(&hm, "location").to_string();
    let (s, _, _) = patch(&app, &secret, &deferred, 0, &big, &[]).await;
    assert_eq!(s, 413);

    // One upload within the limits: the holder sees its name, size and SHA-256.
    let data = pdf(150_000);
    let meta = format!(
        "filename {},filetype {},sha256 {}",
        crate::tus::b64("contract.pdf"),
        crate::tus::b64("application/pdf"),
        crate::tus::b64(&sha256_hex(&data))
    );
    let url = create(&app, &secret, data.len(), &meta).await;
    let (s, _, b) = patch(&app, &secret, &url, 0, &data, &[]).await;
    assert_eq!(s, 204, "{b}");
    let (_, me) = call(&app, "GET", "/v1/upload-tokens/self", &secret, None).await;
    assert_eq!(me["uploads_used"], 1);
    assert_eq!(me["bytes_used"], 150_000);
    let up = &me["uploads"][0];
    assert_eq!(up["filename"], "contract.pdf");
    assert_eq!(up["size"], 150_000);
    assert_eq!(up["sha256"], sha256_hex(&data));
    // 150,000 of 300,000 bytes used: a second file of 150,001 bytes is over the total.
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &secret,
        Some(crate::api::new_upload("second.pdf", &pdf(150_001))),
    )
    .await;
    assert_eq!(s, 413);

    // A holder reads the links of its own token only, not the issuer's others.
    let (s, own) = call(
        &app,
        "POST",
        "/v1/uploads",
        &t.api_key,
        Some(crate::api::new_upload("app.pdf", &pdf(1000))),
    )
    .await;
    assert_eq!(s, 201, "{own}");
    let (s, _) = call(
        &app,
        "GET",
        &format!("/v1/uploads/{}", own["upload_id"].as_str().expect("id")),
        &secret,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, mine) = call(
        &app,
        "GET",
        &format!("/v1/uploads/{}", up["upload_id"].as_str().expect("id")),
        &secret,
        None,
    )
    .await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(mine["sha256"], sha256_hex(&data));

    // The issuer lists its links, without secrets.
    let (s, list) = call(&app, "GET", "/v1/upload-tokens", &t.api_key, None).await;
    assert_eq!(s, 200);
    let listed = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|x| x["token_id"] == made["token_id"])
        .expect("listed");
    assert_eq!(listed["uploads_used"], 1);
    assert_eq!(listed["notify_email"], "legal@acme.example");
    assert!(!list.to_string().contains(&secret[secret.len() - 20..]));
    // Another tenant's key does not see it; a token cannot list.
    let other = tenant(&app, "other-drop").await;
    let (_, list) = call(&app, "GET", "/v1/upload-tokens", &other.api_key, None).await;
    assert_eq!(list["tokens"], json!([]));
    let (s, _) = call(&app, "GET", "/v1/upload-tokens", &secret, None).await;
    assert_eq!(s, 403);

    // Revoked: uploads stop, and the holder learns why.
    let (s, _) = call(
        &app,
        "DELETE",
        &format!("/v1/upload-tokens/{id}"),
        &t.api_key,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, me) = call(&app, "GET", "/v1/upload-tokens/self", &secret, None).await;
    assert_eq!((s, me["status"].as_str()), (200, Some("revoked")));
    let (s, _) = call(
        &app,
        "POST",
        "/v1/uploads",
        &secret,
        Some(crate::api::new_upload("late.pdf", &pdf(1000))),
    )
    .await;
    assert_eq!(s, 401);

    // Used up, and expired.
    let once = token(
        &app,
        &t.api_key,
        json!({"client_id": "once", "max_uploads": 1}),
    )
    .await;
    let once = once["token"].as_str().expect("t").to_string();
    let data = pdf(10_000);
    let url = create(&app, &once, data.len(), "").await;
    let (s, _, _) = patch(&app, &once, &url, 0, &data, &[]).await;
    assert_eq!(s, 204);
    let (_, me) = call(&app, "GET", "/v1/upload-tokens/self", &once, None).await;
    assert_eq!(me["status"], "exhausted");
    let brief = token(
        &app,
        &t.api_key,
        json!({"client_id": "brief", "expires_in": 1}),
    )
    .await;
    let brief = brief["token"].as_str().expect("t").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, me) = call(&app, "GET", "/v1/upload-tokens/self", &brief, None).await;
    assert_eq!((s, me["status"].as_str()), (200, Some("expired")));
}

/// The Companion S3 routes of a token: `/uppy/{token}/s3`.
fn uppy(app: &TestApp, token: &str) -> String {
    format!("{}/uppy/{token}/s3", app.endpoint())
}

async fn json_call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let (headers, bytes) = match body {
        Some(v) => (
            vec![("content-type".to_string(), "application/json".to_string())],
            serde_json::to_vec(&v).expect("json"),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let (s, _, b) = send(method, url, &headers, bytes).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// A multipart/form-data body: the fields, then `file`.
fn form(fields: &Value, name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----upgate-test-boundary-7d1";
    let mut body = Vec::new();
    for (k, v) in fields.as_object().expect("fields") {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{}\r\n",
                v.as_str().expect("str")
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn uppy_companion_routes_upload_single_and_multipart_within_the_token() {
    let app = spawn_app().await;
    let t = tenant(&app, "acme-uppy").await;
    let made = token(
        &app,
        &t.api_key,
        json!({"client_id": "uppy", "max_uploads": 3, "max_file_bytes": 12_000_000,
               "allowed_types": ["application/pdf"]}),
    )
    .await;
    let tok = made["token"].as_str().expect("token").to_string();
    let base = uppy(&app, &tok);

    // Single file: params, then the form they describe.
    let (s, params) = json_call(
        "GET",
        &format!("{base}/params?filename=My+Report.pdf&type=application%2Fpdf"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{params}");
    assert_eq!(params["method"], "POST");
    assert_eq!(params["fields"]["key"], "My Report.pdf");
    let data = pdf(300_000);
    let (ct, body) = form(&params["fields"], "My Report.pdf", &data);
    let (s, hm, b) = send(
        "POST",
        params["url"].as_str().expect("url"),
        &[("content-type".into(), ct)],
        body,
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert!(!h(&hm, "etag").is_empty());
    let done: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(done["sha256"], sha256_hex(&data));

    // Multipart: create, sign and PUT the parts (out of order), list, complete.
    let big = pdf(11_000_000);
    let (s, created) = json_call(
        "POST",
        &format!("{base}/multipart"),
        Some(json!({"filename": "scan.pdf", "type": "application/pdf", "metadata": {"name": "scan.pdf"}})),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    let id = created["uploadId"].as_str().expect("uploadId").to_string();
    let key = created["key"].as_str().expect("key").to_string();
    let chunk = 5 * 1024 * 1024;
    let pieces: Vec<&[u8]> = big.chunks(chunk).collect();
    let mut etags = vec![String::new(); pieces.len()];
    for i in (0..pieces.len()).rev() {
        let n = i + 1;
        let (s, signed) =
            json_call("GET", &format!("{base}/multipart/{id}/{n}?key={key}"), None).await;
        assert_eq!(s, 200, "{signed}");
        let (s, hm, b) = send(
            "PUT",
            signed["url"].as_str().expect("url"),
            &[],
            pieces[i].to_vec(),
        )
        .await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        etags[i] = h(&hm, "etag").to_string();
        assert!(etags[i].starts_with('"'));
    }
    let (s, listed) = json_call("GET", &format!("{base}/multipart/{id}?key={key}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(listed.as_array().expect("parts").len(), pieces.len());
    assert_eq!(listed[0]["PartNumber"], 1);
    // A wrong ETag is refused, and the upload stays open for a correct completion.
    let mut wrong: Vec<Value> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"PartNumber": i + 1, "ETag": e}))
        .collect();
    wrong[0]["ETag"] = json!("\"0000\"");
    let (s, _) = json_call(
        "POST",
        &format!("{base}/multipart/{id}/complete?key={key}"),
        Some(json!({ "parts": wrong })),
    )
    .await;
    assert_eq!(s, 400);
    let parts: Vec<Value> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"PartNumber": i + 1, "ETag": e}))
        .collect();
    let (s, done) = json_call(
        "POST",
        &format!("{base}/multipart/{id}/complete?key={key}"),
        Some(json!({ "parts": parts })),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert!(done["location"].as_str().expect("location").ends_with(&key));
    assert_eq!(done["sha256"], sha256_hex(&big));
    let list = crate::tus::files(&app, &t.api_key).await;
    let names: Vec<&str> = list.iter().filter_map(|f| f["filename"].as_str()).collect();
    assert!(
        names.contains(&"scan.pdf") && names.contains(&"My Report.pdf"),
        "{names:?}"
    );
    let scan = list
        .iter()
        .find(|f| f["filename"] == "scan.pdf")
        .expect("scan");
    assert_eq!(scan["sha256"], sha256_hex(&big));
    assert_eq!(scan["metadata"]["client_id"], "uppy");

    // Abort: the upload is gone.
    let (_, created) = json_call(
        "POST",
        &format!("{base}/multipart"),
        Some(json!({"filename": "gone.pdf", "type": "application/pdf"})),
    )
    .await;
    let gone = created["uploadId"].as_str().expect("id").to_string();
    let (s, _) = json_call("DELETE", &format!("{base}/multipart/{gone}?key=k"), None).await;
    assert_eq!(s, 200);
    let (s, _) = json_call("GET", &format!("{base}/multipart/{gone}?key=k"), None).await;
    assert_eq!(s, 410);

    // The token's limits hold: a file over its per-file size, a type it does not take.
    let (s, params) = json_call(
        "GET",
        &format!("{base}/params?filename=big.pdf&type=application%2Fpdf"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (ct, body) = form(&params["fields"], "big.pdf", &pdf(12_000_001));
    let (s, _, _) = send(
        "POST",
        params["url"].as_str().expect("url"),
        &[("content-type".into(), ct)],
        body,
    )
    .await;
    assert_eq!(s, 413);
    let (s, _) = json_call(
        "GET",
        &format!("{base}/params?filename=a.png&type=image%2Fpng"),
        None,
    )
    .await;
    assert_eq!(s, 415);
    let (ct, body) = form(
        &json!({"key": "disguised.pdf", "content-type": "application/pdf"}),
        "disguised.pdf",
        &png(5000),
    );
    let (s, _, _) = send(
        "POST",
        &format!("{base}/form"),
        &[("content-type".into(), ct)],
        body,
    )
    .await;
    assert_eq!(s, 415);
    assert_eq!(
        crate::tus::files(&app, &t.api_key).await.len(),
        2,
        "refusals left nothing"
    );
    // Three uploads were allowed: two were used; the third succeeds and then the token is done.
    let (ct, body) = form(&json!({"key": "third.pdf"}), "third.pdf", &pdf(1000));
    let (s, _, _) = send(
        "POST",
        &format!("{base}/form"),
        &[("content-type".into(), ct.clone())],
        body.clone(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = send(
        "POST",
        &format!("{base}/form"),
        &[("content-type".into(), ct)],
        body,
    )
    .await;
    assert_eq!(s, 403);

    // Only upload tokens: an API key or a bad token in the path is refused.
    let (s, _) = json_call(
        "GET",
        &format!("{}/params?filename=a.pdf", uppy(&app, &t.api_key)),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = json_call(
        "GET",
        &format!("{}/params?filename=a.pdf", uppy(&app, "ugt_x_y")),
        None,
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn uppy_and_tus_answer_other_origins_under_the_api_buckets_cors_rules() {
    let app = spawn_app_with(
        "[buckets.uploads]\ncors = [{allowed_origins = [\"https://app.example\"], \
         allowed_methods = [\"GET\", \"POST\", \"PUT\", \"PATCH\", \"HEAD\", \"DELETE\"], \
         allowed_headers = [\"*\"]}]\n",
    )
    .await;
    let t = tenant(&app, "acme-cors").await;
    let made = token(&app, &t.api_key, json!({"client_id": "cors"})).await;
    let tok = made["token"].as_str().expect("token").to_string();
    let preflight = |path: String, origin: &'static str, method: &'static str| async move {
        send(
            "OPTIONS",
            &path,
            &[
                ("origin".into(), origin.into()),
                ("access-control-request-method".into(), method.into()),
                (
                    "access-control-request-headers".into(),
                    "content-type,upload-offset,tus-resumable,authorization".into(),
                ),
            ],
            Vec::new(),
        )
        .await
    };
    for path in [
        format!("{}/multipart", uppy(&app, &tok)),
        format!("{}/v1/tus/0123abcd", app.endpoint()),
    ] {
        let (s, hm, _) = preflight(path.clone(), "https://app.example", "PATCH").await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(h(&hm, "access-control-allow-origin"), "https://app.example");
        let (s, hm, _) = preflight(path.clone(), "https://evil.example", "PATCH").await;
        assert_eq!(s, 403, "{path}");
        assert!(hm.get("access-control-allow-origin").is_none());
    }
    // Actual answers name the origin and expose the headers the clients read.
    let (s, hm, _) = send(
        "GET",
        &format!(
            "{}/params?filename=a.pdf&type=application%2Fpdf",
            uppy(&app, &tok)
        ),
        &[("origin".into(), "https://app.example".into())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h(&hm, "access-control-allow-origin"), "https://app.example");
    assert!(h(&hm, "access-control-expose-headers").contains("ETag"));
    let (s, hm, _) = send(
        "POST",
        &format!("{}/v1/tus/", app.endpoint()),
        &[
            ("origin".into(), "https://app.example".into()),
            ("authorization".into(), format!("Bearer {tok}")),
            ("tus-resumable".into(), "1.0.0".into()),
            ("upload-length".into(), "1000".into()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(h(&hm, "access-control-allow-origin"), "https://app.example");
    let exposed = h(&hm, "access-control-expose-headers");
    assert!(
        exposed.contains("Location") && exposed.contains("Upload-Offset"),
        "{exposed}"
    );
}
