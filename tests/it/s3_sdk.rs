//! End to end with the real aws-sdk-s3 client against an in-process gateway.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, Delete, ObjectIdentifier};

#[tokio::test]
async fn put_get_head_delete_round_trip() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let body = pdf(2 * 1024 * 1024);
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("docs/report.pdf")
        .content_type("application/pdf")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();

    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("docs/report.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("application/pdf"));
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());

    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("docs/report.pdf")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(body.len() as i64));

    // The metadata record carries size, SHA-256, detected type and owner.
    let rec = app
        .state
        .meta
        .current(BUCKET, "docs/report.pdf")
        .await
        .expect("meta")
        .expect("record");
    assert_eq!(rec.size, body.len() as u64);
    assert_eq!(rec.sha256, sha256_hex(&body));
    assert_eq!(rec.content_type, "application/pdf");
    assert_eq!(rec.owner, ACCESS_KEY);

    s3.delete_object()
        .bucket(BUCKET)
        .key("docs/report.pdf")
        .send()
        .await
        .expect("delete");
    let err = s3
        .get_object()
        .bucket(BUCKET)
        .key("docs/report.pdf")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(err.into_service_error().meta().code(), Some("NoSuchKey"));
    // Deleting removed the bytes too.
    assert!(app.object_files().is_empty(), "{:?}", app.object_files());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_run_together_share_sqlite_transactions() {
    // The pending record every upload writes before its first byte, and its commit, are
    // group-committed: with one SQLite writer, a burst of uploads would otherwise queue a
    // transaction each, twice.
    const N: usize = 32;
    let app = spawn_app().await;
    let s3 = app.s3();
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            let s3 = s3.clone();
            tokio::spawn(async move {
                s3.put_object()
                    .bucket(BUCKET)
                    .key(format!("burst/{n}.pdf"))
                    .content_type("application/pdf")
                    .body(ByteStream::from(pdf(4096 + n)))
                    .send()
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("put");
    }
    for n in 0..N {
        let rec = app
            .state
            .meta
            .current(BUCKET, &format!("burst/{n}.pdf"))
            .await
            .expect("meta")
            .expect("committed");
        assert_eq!(rec.sha256, sha256_hex(&pdf(4096 + n)), "burst/{n}.pdf");
    }
    let metrics = metrics_text(&app).await;
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    // Every record and every commit went through a committed transaction, and some shared
    // one.
    assert_eq!(value("upgate_pending_batch_size_sum "), N as f64);
    assert_eq!(value("upgate_commit_batch_size_sum "), N as f64);
    let starts = value("upgate_pending_batch_size_count ");
    let commits = value("upgate_commit_batch_size_count ");
    eprintln!("{N} uploads: {starts} pending-record and {commits} commit transactions");
    assert!(
        (1.0..N as f64).contains(&starts),
        "{starts} transactions for {N} pending records"
    );
    assert!(
        (1.0..=N as f64).contains(&commits),
        "{commits} transactions for {N} commits"
    );
    app.stop().await;
}

#[tokio::test]
async fn generic_content_type_is_replaced_by_the_sniffed_type() {
    let app = spawn_app().await;
    let s3 = app.s3();
    s3.put_object()
        .bucket(BUCKET)
        .key("img")
        .content_type("application/octet-stream")
        .body(ByteStream::from(png(5000)))
        .send()
        .await
        .expect("put");
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("img")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("image/png"));
    app.stop().await;
}

#[tokio::test]
async fn checksums_are_verified_and_returned_in_checksum_mode() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let body = pdf(300_000);
    for alg in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let key = format!("sum-{}", alg.as_str());
        s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .checksum_algorithm(alg.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {alg:?}: {e:?}"));
        // The SDK validates the returned checksum against the bytes it reads.
        let got = s3
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        assert_eq!(
            got.body.collect().await.expect("read").into_bytes().len(),
            body.len()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn range_and_conditional_gets() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let body = pdf(10_000);
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("r.pdf")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("r.pdf")
        .range("bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(got.content_range(), Some("bytes 100-199/10000"));
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(bytes.as_ref(), &body[100..200]);

    let err = s3
        .get_object()
        .bucket(BUCKET)
        .key("r.pdf")
        .if_none_match(put.e_tag().expect("etag"))
        .send()
        .await
        .expect_err("304");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(304));

    let err = s3
        .get_object()
        .bucket(BUCKET)
        .key("r.pdf")
        .if_match("\"nope\"")
        .send()
        .await
        .expect_err("412");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));

    let err = s3
        .get_object()
        .bucket(BUCKET)
        .key("r.pdf")
        .range("bytes=20000-")
        .send()
        .await
        .expect_err("416");
    assert_eq!(err.into_service_error().meta().code(), Some("InvalidRange"));
    app.stop().await;
}

#[tokio::test]
async fn list_objects_v2_with_prefix_delimiter_and_pages() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let keys = [
        "a/1.pdf",
        "a/2.pdf",
        "a/b/3.pdf",
        "a0.pdf",
        "b/4.pdf",
        "c.pdf",
        "c/5.pdf",
    ];
    for k in keys {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(ByteStream::from(pdf(100)))
            .send()
            .await
            .expect("put");
    }
    // Flat listing, paged by 2: every key exactly once, in order.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list");
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if page.is_truncated() == Some(true) {
            token = page.next_continuation_token().map(str::to_string);
        } else {
            break;
        }
    }
    assert_eq!(seen, keys.to_vec());

    // Delimiter: objects and common prefixes at the top level, paged by 1.
    let mut entries = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .delimiter("/")
            .max_keys(1)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list");
        entries.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        entries.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        if page.is_truncated() == Some(true) {
            token = page.next_continuation_token().map(str::to_string);
        } else {
            break;
        }
    }
    assert_eq!(entries, vec!["a/", "a0.pdf", "b/", "c.pdf", "c/"]);

    // Prefix + delimiter.
    let page = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("a/")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let objs: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
    let cps: Vec<_> = page
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(objs, vec!["a/1.pdf", "a/2.pdf"]);
    assert_eq!(cps, vec!["a/b/"]);
    assert_eq!(page.key_count(), Some(3));

    // start-after.
    let page = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .start_after("b/4.pdf")
        .send()
        .await
        .expect("list");
    let objs: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objs, vec!["c.pdf", "c/5.pdf"]);
    app.stop().await;
}

#[tokio::test]
async fn list_objects_v1_pages_with_marker() {
    let app = spawn_app().await;
    let s3 = app.s3();
    for k in ["k1", "k2", "k3"] {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(ByteStream::from(pdf(64)))
            .send()
            .await
            .expect("put");
    }
    let page = s3
        .list_objects()
        .bucket(BUCKET)
        .max_keys(2)
        .send()
        .await
        .expect("v1");
    let objs: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objs, vec!["k1", "k2"]);
    assert_eq!(page.is_truncated(), Some(true));
    let page = s3
        .list_objects()
        .bucket(BUCKET)
        .marker("k2")
        .send()
        .await
        .expect("v1");
    let objs: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objs, vec!["k3"]);
    app.stop().await;
}

#[tokio::test]
async fn delete_objects_in_one_batch() {
    let app = spawn_app().await;
    let s3 = app.s3();
    for k in ["d1", "d2"] {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(ByteStream::from(pdf(64)))
            .send()
            .await
            .expect("put");
    }
    let ids = ["d1", "d2", "never-existed"]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
        .collect::<Vec<_>>();
    let out = s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .set_objects(Some(ids))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    assert_eq!(out.deleted().len(), 3);
    assert!(out.errors().is_empty());
    let page = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert_eq!(page.key_count(), Some(0));
    assert!(app.object_files().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn buckets_location_and_head_bucket() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let out = s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<_> = out.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec![BUCKET]);
    s3.head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("head bucket");
    let err = s3
        .head_bucket()
        .bucket("nope-bucket")
        .send()
        .await
        .expect_err("404");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    let loc = s3
        .get_bucket_location()
        .bucket(BUCKET)
        .send()
        .await
        .expect("location");
    assert!(
        loc.location_constraint()
            .is_none_or(|c| c.as_str().is_empty())
    );
    let err = s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("exists");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("BucketAlreadyOwnedByYou")
    );
    app.stop().await;
}

#[tokio::test]
async fn sdk_presigned_put_and_get_work_with_a_plain_http_client() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use std::time::Duration;
    let app = spawn_app().await;
    let s3 = app.s3();
    let body = pdf(50_000);
    let req = s3
        .put_object()
        .bucket(BUCKET)
        .key("pre/signed.pdf")
        .content_type("application/pdf")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("cfg"))
        .await
        .expect("presign put");
    let headers: Vec<(String, String)> = req
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (status, _, resp) = send("PUT", req.uri(), &headers, body.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));

    let req = s3
        .get_object()
        .bucket(BUCKET)
        .key("pre/signed.pdf")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("cfg"))
        .await
        .expect("presign get");
    let (status, headers, got) = send("GET", req.uri(), &[], Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(got, body);
    assert_eq!(headers["x-content-type-options"], "nosniff");

    // The download URL does not work for an upload (method is signed).
    let (status, _, resp) = send("PUT", req.uri(), &[], body).await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&resp), "SignatureDoesNotMatch");
    app.stop().await;
}

#[tokio::test]
async fn the_gateway_runs_on_postgresql_metadata() {
    let pg = PgSchema::new();
    runs_on_metadata(&pg.config()).await;
    pg.drop().await;
}

#[tokio::test]
async fn the_gateway_runs_on_mysql_metadata() {
    let db = MySqlDatabase::new().await;
    runs_on_metadata(&db.config()).await;
    db.drop().await;
}

/// PUT, GET, a paged listing and a DELETE through a gateway with the `[metadata]` config given.
async fn runs_on_metadata(metadata: &str) {
    let app = spawn_app_with(metadata).await;
    let s3 = app.s3();
    let body = pdf(100_000);
    for k in ["db/a.pdf", "db/b.pdf"] {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
    }
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("db/a.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("b").into_bytes().as_ref(),
        body.as_slice()
    );
    let page = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("db/")
        .max_keys(1)
        .send()
        .await
        .expect("list");
    assert_eq!(page.is_truncated(), Some(true));
    s3.delete_object()
        .bucket(BUCKET)
        .key("db/a.pdf")
        .send()
        .await
        .expect("delete");
    assert!(
        app.state
            .meta
            .current(BUCKET, "db/a.pdf")
            .await
            .expect("m")
            .is_none()
    );
    app.stop().await;
}
