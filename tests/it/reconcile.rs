//! Reconciling stored bytes with records (`upgate admin reconcile`, and the pass the sweeper
//! runs): orphaned blobs are removed once older than the grace period, everything a record
//! refers to stays (committed versions, open multipart parts), foreign files are never touched,
//! and committed records whose bytes are gone are reported, not removed.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::*;

/// Writes a blob where an object of id `id` would live, last modified `age` ago.
fn plant(app: &TestApp, id: &str, age: Duration) -> PathBuf {
    let path = app
        .dir
        .path()
        .join("objects")
        .join(BUCKET)
        .join(&id[..2])
        .join(id);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, b"%PDF-1.7\nstray bytes").expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_modified(SystemTime::now() - age).expect("mtime");
    path
}

/// `upgate admin reconcile ARGS`: the report of the test bucket.
async fn reconcile(app: &TestApp, args: &[&str]) -> Value {
    let report = admin_json(app, &[&["reconcile"], args].concat()).await;
    let buckets = report["buckets"].as_array().expect("buckets");
    buckets
        .iter()
        .find(|b| b["bucket"] == BUCKET)
        .cloned()
        .expect("the test bucket is reported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_go_after_the_grace_period_and_referenced_bytes_stay() {
    let app = spawn_app().await;
    let s3 = app.s3();
    put_pdf(&s3, "kept.pdf", pdf(10_000)).await;
    put_pdf(&s3, "lost.pdf", pdf(12_000)).await;
    // An open multipart upload: its part is bytes no object row points to yet.
    let create = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("open.pdf")
        .content_type("application/pdf");
    let (upload_id, done) = one_part_upload(&s3, create, 9_000).await;

    let lost = app
        .state
        .meta
        .current(BUCKET, "lost.pdf")
        .await
        .expect("meta")
        .expect("lost.pdf committed");
    let lost_path = app
        .dir
        .path()
        .join("objects")
        .join(BUCKET)
        .join(&lost.id[..2])
        .join(&lost.id);
    std::fs::remove_file(&lost_path).expect("remove lost.pdf's bytes");

    let old = plant(
        &app,
        "ab00000000000000000000000000000a",
        Duration::from_secs(7200),
    );
    let young = plant(
        &app,
        "ab00000000000000000000000000000b",
        Duration::from_secs(5),
    );
    // Not an object id of that fan: somebody else's file, never touched.
    let foreign = plant(&app, "abnot-an-object-id", Duration::from_secs(7200));
    let before = app.object_files().len();

    let dry = reconcile(&app, &["--dry-run"]).await;
    assert_eq!(dry["orphans"], 1, "{dry}");
    assert_eq!(dry["young"], 1, "{dry}");
    assert_eq!(dry["removed"], 0, "{dry}");
    assert_eq!(
        dry["orphan_ids"],
        serde_json::json!([old.file_name().unwrap().to_str()])
    );
    assert_eq!(dry["missing"], 1, "{dry}");
    assert_eq!(dry["missing_records"][0]["key"], "lost.pdf");
    assert_eq!(dry["missing_records"][0]["id"], lost.id.as_str());
    // kept.pdf, the part, the two planted blobs (the foreign file is not listed as an id).
    assert_eq!(dry["listed"], 4, "{dry}");
    assert_eq!(
        app.object_files().len(),
        before,
        "a dry run removes nothing"
    );

    let real = reconcile(&app, &[]).await;
    assert_eq!(
        (real["orphans"].as_u64(), real["removed"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(!old.exists(), "the old orphan is removed");
    assert!(young.exists(), "a young one is left for the grace period");
    assert!(foreign.exists(), "foreign files are never touched");
    assert_eq!(
        real["missing"], 1,
        "a record is never removed, only reported"
    );

    // What records refer to still works: the committed object and the open upload.
    assert_eq!(get_bytes(&app, "kept.pdf").await, pdf(10_000));
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("open.pdf")
        .upload_id(&upload_id)
        .multipart_upload(done)
        .send()
        .await
        .expect("the open upload completes after reconciling");
    assert_eq!(get_bytes(&app, "open.pdf").await, pdf(9_000));

    // With no grace (nothing in flight), the young orphan goes too.
    let now = reconcile(&app, &["--grace-secs", "0"]).await;
    assert_eq!(now["removed"], 1, "{now}");
    assert!(!young.exists());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweepers_pass_counts_what_it_found_in_metrics() {
    let app = spawn_app().await;
    put_pdf(&app.s3(), "a.pdf", pdf(5_000)).await;
    let orphan = plant(
        &app,
        "cd0000000000000000000000000000ff",
        Duration::from_secs(7200),
    );
    let reports = upgate::sweeper::reconcile_all(&app.state, false)
        .await
        .expect("pass");
    let r = reports.iter().find(|r| r.bucket == BUCKET).expect("bucket");
    assert_eq!((r.orphans, r.removed, r.missing), (1, 1, 0));
    assert!(!orphan.exists());
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("upgate_reconciled_blobs_total{reason=\"orphan_removed\"} 1"),
        "{metrics}"
    );
    assert_eq!(get_bytes(&app, "a.pdf").await, pdf(5_000));
    app.stop().await;
}
