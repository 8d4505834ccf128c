//! Retention: a bucket's `retention_days`, shorter lives asked for at minting (links and drop
//! links), legal hold blocking deletion and expiry, and the sweeper's expiry pass — audited,
//! reported as `file.expired`, bytes gone, quota released. Time is advanced by passing the
//! sweep a later "now".

use serde_json::{Value, json};

use crate::api::{call, new_upload, tenant, upload};
use crate::common::*;

const DAY_MS: i64 = 86_400_000;

/// Uploads `name` through a link minted with `bearer`; returns the file as `reader` sees it.
async fn upload_as(app: &TestApp, bearer: &str, reader: &str, name: &str, extra: Value) -> Value {
    let data = pdf(20_000 + name.len());
    let mut body = new_upload(name, &data);
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, link) = call(app, "POST", "/v1/uploads", bearer, Some(body)).await;
    assert_eq!(s, 201, "{link}");
    assert_eq!(upload(&link, data).await.0, 200);
    let (_, f) = call(
        app,
        "GET",
        &format!("/v1/files/{}", link["file_id"].as_str().expect("id")),
        reader,
        None,
    )
    .await;
    f
}

async fn upload_file(app: &TestApp, bearer: &str, name: &str, extra: Value) -> Value {
    upload_as(app, bearer, bearer, name, extra).await
}

/// `upgate admin expiring --in-days DAYS` on the app's data directory, with `config`.
async fn dry_run(app: &TestApp, days: &str, config: &str) -> Value {
    let file = app.dir.path().join("dry-run.toml");
    std::fs::write(&file, config).expect("config");
    let file = file.display().to_string();
    let plan = admin_json(app, &["expiring", "--in-days", days, "--config", &file]).await;
    assert_eq!(plan["dry_run"], true);
    plan
}

fn expires_in_days(f: &Value) -> i64 {
    let at =
        upgate::clock::parse_rfc3339(f["expires_at"].as_str().expect("expires_at")).expect("time");
    (upgate::clock::to_ms(at) - upgate::clock::now_ms() + DAY_MS / 2) / DAY_MS
}

#[tokio::test]
async fn files_expire_unless_held_and_leave_nothing_behind() {
    let app = spawn_app_with("[buckets.uploads]\nretention_days = 30\n").await;
    let t = tenant(&app, "retention").await;
    // The bucket's rule, a shorter life asked for, and a longer one capped by the bucket.
    let plain = upload_file(&app, &t.api_key, "plain.pdf", json!({})).await;
    assert_eq!(expires_in_days(&plain), 30);
    let short = upload_file(&app, &t.api_key, "short.pdf", json!({"retain_days": 1})).await;
    assert_eq!(expires_in_days(&short), 1);
    let long = upload_file(&app, &t.api_key, "long.pdf", json!({"retain_days": 90})).await;
    assert_eq!(
        expires_in_days(&long),
        30,
        "never later than the bucket allows"
    );
    let (s, _) = call(&app, "POST", "/v1/uploads", &t.api_key, Some(json!({"filename": "x.pdf", "content_type": "application/pdf", "size": 10, "retain_days": 0}))).await;
    assert_eq!(s, 400);
    // A drop link's files get the life it was made with.
    let (s, tok) = call(
        &app,
        "POST",
        "/v1/upload-tokens",
        &t.api_key,
        Some(json!({"client_id": "r", "file_retain_days": 2})),
    )
    .await;
    assert_eq!(s, 201, "{tok}");
    assert_eq!(tok["file_retain_days"], 2);
    let dropped = upload_as(
        &app,
        tok["token"].as_str().expect("token"),
        &t.api_key,
        "dropped.pdf",
        json!({}),
    )
    .await;
    assert_eq!(expires_in_days(&dropped), 2);

    // A legal hold: no delete, no expiry.
    let held_id = short["file_id"].as_str().expect("id").to_string();
    let (s, f) = call(
        &app,
        "PATCH",
        &format!("/v1/files/{held_id}"),
        &t.api_key,
        Some(json!({"legal_hold": true})),
    )
    .await;
    assert_eq!((s, f["legal_hold"].as_bool()), (200, Some(true)), "{f}");
    let (s, v) = call(
        &app,
        "DELETE",
        &format!("/v1/files/{held_id}"),
        &t.api_key,
        None,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let other = tenant(&app, "retention-other").await;
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/v1/files/{held_id}"),
        &other.api_key,
        Some(json!({"legal_hold": false})),
    )
    .await;
    assert_eq!(s, 404, "another tenant cannot release it");

    // The dry run names what a sweep three days on would delete: the 2-day file, not the held one.
    let plan = dry_run(&app, "3", "").await;
    assert_eq!(plan["dry_run"], true);
    let named: Vec<&str> = plan["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["filename"].as_str())
        .collect();
    assert_eq!(named, ["dropped.pdf"]);
    let (used_before, objects_before) = app.state.control.usage(&t.tenant_id).await.expect("usage");
    // Three days on: the 2-day file expires; the held 1-day file does not.
    let n =
        upgate::upload::delete::expire_files(&app.state, upgate::clock::now_ms() + 3 * DAY_MS, 10)
            .await
            .expect("expire");
    assert_eq!(n, 1);
    let state_of = |f: &Value| {
        let app = &app;
        let id = f["file_id"].as_str().unwrap_or_default().to_string();
        let key = t.api_key.clone();
        async move { call(app, "GET", &format!("/v1/files/{id}"), &key, None).await }
    };
    assert_eq!(state_of(&dropped).await.0, 404);
    assert_eq!(state_of(&short).await.1["status"], "complete");
    // The expired file's bytes and quota are gone, its expiry audited and reported.
    let dropped_id = dropped["file_id"].as_str().expect("id").to_string();
    let links = app
        .state
        .control
        .links_of_file(&dropped_id)
        .await
        .expect("links");
    assert!(
        app.state
            .meta
            .current(BUCKET, &links[0].key)
            .await
            .expect("meta")
            .is_none()
    );
    let (used_after, objects_after) = app.state.control.usage(&t.tenant_id).await.expect("usage");
    assert_eq!(objects_after, objects_before - 1);
    assert!(used_after < used_before);
    let audit = app
        .state
        .control
        .audit_of_file(&dropped_id)
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "file.expired" && e.actor == "retention"),
        "{audit:?}"
    );
    let events = app
        .state
        .control
        .due_events(upgate::clock::now_ms() + DAY_MS, i64::MAX, 100)
        .await
        .expect("events");
    let expired: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "file.expired")
        .map(|e| e.payload.as_str())
        .collect();
    assert!(
        expired.iter().any(|p| p.contains(&dropped_id)),
        "{expired:?}"
    );

    // Released, the held file expires on the next pass; the 30-day ones stay.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/v1/files/{held_id}"),
        &t.api_key,
        Some(json!({"legal_hold": false})),
    )
    .await;
    assert_eq!(s, 200);
    let n =
        upgate::upload::delete::expire_files(&app.state, upgate::clock::now_ms() + 3 * DAY_MS, 10)
            .await
            .expect("expire");
    assert_eq!(n, 1);
    assert_eq!(state_of(&short).await.0, 404);
    assert_eq!(state_of(&plain).await.1["status"], "complete");
    assert_eq!(state_of(&long).await.1["status"], "complete");
    // Thirty-one days on, everything has gone; a second pass finds nothing.
    let n =
        upgate::upload::delete::expire_files(&app.state, upgate::clock::now_ms() + 31 * DAY_MS, 1)
            .await
            .expect("expire");
    assert_eq!(n, 2, "in batches of one");
    assert_eq!(
        upgate::upload::delete::expire_files(&app.state, upgate::clock::now_ms() + 31 * DAY_MS, 10)
            .await
            .expect("expire"),
        0
    );
    // Without a bucket rule files are kept.
    let keep = spawn_app().await;
    let k = tenant(&keep, "keep").await;
    let f = upload_file(&keep, &k.api_key, "kept.pdf", json!({})).await;
    assert!(f["expires_at"].is_null());
}

/// A file with `n` versions (the first upload and `n - 1` new versions); returns its id and
/// the keys of its versions, oldest first.
async fn versioned(app: &TestApp, key: &str, name: &str, n: usize) -> (String, Vec<String>) {
    let first = upload_file(app, key, name, json!({})).await;
    let id = first["file_id"].as_str().expect("id").to_string();
    for i in 1..n {
        let data = pdf(30_000 + i);
        let (s, link) = call(
            app,
            "POST",
            &format!("/v1/files/{id}/versions"),
            key,
            Some(new_upload(name, &data)),
        )
        .await;
        assert_eq!(s, 201, "{link}");
        assert_eq!(upload(&link, data).await.0, 200);
    }
    let mut links = app.state.control.links_of_file(&id).await.expect("links");
    links.reverse();
    (id, links.into_iter().map(|l| l.key).collect())
}

async fn version_count(app: &TestApp, key: &str, id: &str) -> usize {
    let (s, v) = call(app, "GET", &format!("/v1/files/{id}/versions"), key, None).await;
    assert_eq!(s, 200, "{v}");
    v["versions"].as_array().expect("versions").len()
}

#[tokio::test]
async fn old_versions_go_by_count_and_by_age_but_never_the_current_one() {
    let app = spawn_app_with("[buckets.uploads]\nkeep_versions = 2\n").await;
    let t = tenant(&app, "versions").await;
    let (id, keys) = versioned(&app, &t.api_key, "contract.pdf", 4).await;
    let (held, _) = versioned(&app, &t.api_key, "held.pdf", 3).await;
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/v1/files/{held}"),
        &t.api_key,
        Some(json!({"legal_hold": true})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(version_count(&app, &t.api_key, &id).await, 4);
    // The dry run names the two versions, and deletes nothing.
    let plan = dry_run(&app, "0", "[buckets.uploads]\nkeep_versions = 2\n").await;
    let named: Vec<&str> = plan["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["file_id"].as_str())
        .collect();
    assert_eq!(named, [id.as_str(), id.as_str()]);
    assert_eq!(version_count(&app, &t.api_key, &id).await, 4);
    let n = upgate::upload::delete::retire_versions(&app.state, upgate::clock::now_ms(), 1)
        .await
        .expect("retire");
    assert_eq!(n, 2, "the two oldest of four, in batches of one");
    assert_eq!(version_count(&app, &t.api_key, &id).await, 2);
    assert_eq!(
        version_count(&app, &t.api_key, &held).await,
        3,
        "a held file keeps every version"
    );
    for (i, k) in keys.iter().enumerate() {
        let live = app
            .state
            .meta
            .current(BUCKET, k)
            .await
            .expect("meta")
            .is_some();
        assert_eq!(live, i >= 2, "version {i}");
    }
    let audit = app.state.control.audit_of_file(&id).await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "version.expired")
            .count(),
        2
    );
    assert_eq!(
        upgate::upload::delete::retire_versions(&app.state, upgate::clock::now_ms(), 10)
            .await
            .expect("again"),
        0
    );

    // By age: replaced versions go after a day; the current one stays however old.
    let aged = spawn_app_with("[buckets.uploads]\nnoncurrent_version_days = 1\n").await;
    let a = tenant(&aged, "aged").await;
    let (id, keys) = versioned(&aged, &a.api_key, "report.pdf", 2).await;
    let (single, _) = versioned(&aged, &a.api_key, "single.pdf", 1).await;
    assert_eq!(
        upgate::upload::delete::retire_versions(&aged.state, upgate::clock::now_ms(), 10)
            .await
            .expect("now"),
        0,
        "not a day old yet"
    );
    let later = upgate::clock::now_ms() + 2 * DAY_MS;
    assert_eq!(
        upgate::upload::delete::retire_versions(&aged.state, later, 10)
            .await
            .expect("later"),
        1
    );
    assert!(
        aged.state
            .meta
            .current(BUCKET, &keys[0])
            .await
            .expect("meta")
            .is_none()
    );
    assert!(
        aged.state
            .meta
            .current(BUCKET, &keys[1])
            .await
            .expect("meta")
            .is_some()
    );
    assert_eq!(version_count(&aged, &a.api_key, &id).await, 1);
    assert_eq!(version_count(&aged, &a.api_key, &single).await, 1);
}
