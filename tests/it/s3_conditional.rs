//! Conditional writes (issue 17): `If-None-Match: *` and `If-Match: <etag>` on PutObject and
//! CompleteMultipartUpload, through aws-sdk-s3, answered as S3 answers them.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;

use crate::common::*;

/// Room for every racer below at once (the per-principal cap would otherwise make the SDK wait
/// and retry).
const ROOMY: &str = "[ratelimit]\nmax_concurrent_uploads_per_principal = 64\n";

async fn put(
    s3: &aws_sdk_s3::Client,
    key: &str,
    body: Vec<u8>,
    if_none_match: Option<&str>,
    if_match: Option<&str>,
) -> Result<String, (u16, String)> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type("application/pdf")
        .set_if_none_match(if_none_match.map(str::to_string))
        .set_if_match(if_match.map(str::to_string))
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|o| o.e_tag().unwrap_or_default().to_string())
        .map_err(failure)
}

#[tokio::test]
async fn if_none_match_star_writes_only_if_the_key_is_free() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let first = pdf(1000);
    put(&s3, "c/once.pdf", first.clone(), Some("*"), None)
        .await
        .expect("a free key takes it");
    assert_eq!(
        put(&s3, "c/once.pdf", pdf(2000), Some("*"), None).await,
        Err((412, "PreconditionFailed".to_string()))
    );
    assert_eq!(get_bytes(&app, "c/once.pdf").await, first);
    // A deleted key is free again.
    s3.delete_object()
        .bucket(BUCKET)
        .key("c/once.pdf")
        .send()
        .await
        .expect("delete");
    put(&s3, "c/once.pdf", pdf(3000), Some("*"), None)
        .await
        .expect("free again");
    // Forms S3 does not offer on writes are refused, not ignored.
    assert_eq!(
        put(&s3, "c/once.pdf", pdf(10), Some("\"abc\""), None)
            .await
            .map_err(|(_, c)| c),
        Err("NotImplemented".to_string())
    );
    // Nothing of the refused writes is left behind.
    assert!(
        app.state
            .meta
            .sweepable(i64::MAX, 10)
            .await
            .expect("m")
            .len()
            <= 1
    );
    app.stop().await;
}

#[tokio::test]
async fn if_match_replaces_only_the_version_named() {
    let app = spawn_app().await;
    let s3 = app.s3();
    assert_eq!(
        put(&s3, "c/v.pdf", pdf(100), None, Some("\"0123\"")).await,
        Err((404, "NoSuchKey".to_string()))
    );
    let v1 = put(&s3, "c/v.pdf", pdf(100), None, None).await.expect("v1");
    assert_eq!(
        put(&s3, "c/v.pdf", pdf(200), None, Some("\"0123\"")).await,
        Err((412, "PreconditionFailed".to_string()))
    );
    let v2 = put(&s3, "c/v.pdf", pdf(300), None, Some(&v1))
        .await
        .expect("the current ETag");
    assert_ne!(v1, v2);
    // v1 is gone: naming it again fails.
    assert_eq!(
        put(&s3, "c/v.pdf", pdf(400), None, Some(&v1)).await,
        Err((412, "PreconditionFailed".to_string()))
    );
    assert_eq!(get_bytes(&app, "c/v.pdf").await, pdf(300));
    app.stop().await;
}

/// Starts `N` PUTs of one key with `If-None-Match: *` at once: exactly one succeeds, every other
/// one is refused with 412, and the key holds the winner's bytes.
async fn race_if_none_match(app: &TestApp) {
    const N: usize = 20;
    let s3 = app.s3();
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            let s3 = s3.clone();
            tokio::spawn(async move {
                let body = pdf(50_000 + n);
                put(&s3, "c/race.pdf", body, Some("*"), None)
                    .await
                    .map(|_| n)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            Ok(n) => winners.push(n),
            Err(e) => assert_eq!(e, (412, "PreconditionFailed".to_string())),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(get_bytes(app, "c/race.pdf").await, pdf(50_000 + winners[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_if_none_match_writers_leave_one_winner() {
    let app = spawn_app_with(ROOMY).await;
    race_if_none_match(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_if_none_match_writers_leave_one_winner_on_postgresql() {
    let pg = PgSchema::new();
    let app = spawn_app_with(&format!("{ROOMY}{}", pg.config())).await;
    race_if_none_match(&app).await;
    app.stop().await;
    pg.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_if_none_match_writers_leave_one_winner_on_mysql() {
    let db = MySqlDatabase::new().await;
    let app = spawn_app_with(&format!("{ROOMY}{}", db.config())).await;
    race_if_none_match(&app).await;
    app.stop().await;
    db.drop().await;
}

/// A one-part multipart upload of `key`: its id and parts.
async fn one_part(s3: &aws_sdk_s3::Client, key: &str) -> (String, CompletedMultipartUpload) {
    let create = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .content_type("application/pdf");
    one_part_upload(s3, create, 5000).await
}

#[tokio::test]
async fn complete_multipart_upload_honours_write_conditions() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let existing = put(&s3, "c/mp.pdf", pdf(100), None, None)
        .await
        .expect("put");
    let (id, done) = one_part(&s3, "c/mp.pdf").await;
    let complete = |none: Option<&str>, matching: Option<&str>| {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("c/mp.pdf")
            .upload_id(&id)
            .multipart_upload(done.clone())
            .set_if_none_match(none.map(str::to_string))
            .set_if_match(matching.map(str::to_string))
            .send()
    };
    assert_eq!(
        complete(Some("*"), None).await.map(|_| ()).map_err(failure),
        Err((412, "PreconditionFailed".to_string()))
    );
    assert_eq!(
        complete(None, Some("\"0123\""))
            .await
            .map(|_| ())
            .map_err(failure),
        Err((412, "PreconditionFailed".to_string()))
    );
    // The refused completions left the upload open and the object as it was.
    assert_eq!(get_bytes(&app, "c/mp.pdf").await, pdf(100));
    let etag = complete(None, Some(&existing))
        .await
        .expect("the current ETag")
        .e_tag()
        .unwrap_or_default()
        .to_string();
    assert!(etag.ends_with("-1\""), "{etag}");
    assert_eq!(get_bytes(&app, "c/mp.pdf").await, pdf(5000));
    // On a free key, If-None-Match: * completes.
    let (id2, done2) = one_part(&s3, "c/mp-new.pdf").await;
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("c/mp-new.pdf")
        .upload_id(&id2)
        .multipart_upload(done2)
        .if_none_match("*")
        .send()
        .await
        .expect("free key");
    app.stop().await;
}
