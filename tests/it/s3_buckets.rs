//! Bucket management (issue 17): CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation and
//! ListBuckets for buckets created at run time, through aws-sdk-s3, answered as S3 answers them.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use crate::common::*;

async fn create(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), (u16, String)> {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map(|_| ())
        .map_err(failure)
}

async fn delete(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), (u16, String)> {
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map(|_| ())
        .map_err(failure)
}

async fn head(s3: &aws_sdk_s3::Client, bucket: &str) -> u16 {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => 200,
        Err(e) => failure(e).0,
    }
}

async fn put_in(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), (u16, String)> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/pdf")
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(failure)
}

async fn bucket_names(s3: &aws_sdk_s3::Client) -> Vec<String> {
    s3.list_buckets()
        .send()
        .await
        .expect("list buckets")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect()
}

async fn delete_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("delete object");
}

fn conflict(code: &str) -> Result<(), (u16, String)> {
    Err((409, code.to_string()))
}

#[tokio::test]
async fn a_created_bucket_is_served_listed_and_deleted_once_empty() {
    let app = spawn_app().await;
    let s3 = app.s3();
    assert_eq!(head(&s3, "made-at-runtime").await, 404);
    create(&s3, "made-at-runtime").await.expect("create");
    assert_eq!(head(&s3, "made-at-runtime").await, 200);
    let location = s3
        .get_bucket_location()
        .bucket("made-at-runtime")
        .send()
        .await
        .expect("location");
    assert_eq!(
        location.location_constraint().map_or("", |c| c.as_str()),
        "",
        "us-east-1 is named by no constraint"
    );
    assert_eq!(
        bucket_names(&s3).await,
        ["made-at-runtime", BUCKET],
        "ListBuckets lists both, by name"
    );
    // The bucket takes objects and lists them like a configured one.
    put_in(&s3, "made-at-runtime", "a.pdf", pdf(300))
        .await
        .expect("put");
    let got = s3
        .get_object()
        .bucket("made-at-runtime")
        .key("a.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(got.body.collect().await.expect("body").to_vec(), pdf(300));
    let listed = s3
        .list_objects_v2()
        .bucket("made-at-runtime")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(1));
    // Creating it again: S3's answer to its owner.
    assert_eq!(
        create(&s3, "made-at-runtime").await,
        conflict("BucketAlreadyOwnedByYou")
    );
    // Not empty: kept.
    assert_eq!(
        delete(&s3, "made-at-runtime").await,
        conflict("BucketNotEmpty")
    );
    assert_eq!(head(&s3, "made-at-runtime").await, 200);
    delete_object(&s3, "made-at-runtime", "a.pdf").await;
    delete(&s3, "made-at-runtime").await.expect("delete bucket");
    assert_eq!(head(&s3, "made-at-runtime").await, 404);
    assert_eq!(
        put_in(&s3, "made-at-runtime", "b.pdf", pdf(100)).await,
        Err((404, "NoSuchBucket".to_string()))
    );
    assert_eq!(
        delete(&s3, "made-at-runtime").await,
        Err((404, "NoSuchBucket".to_string()))
    );
    assert_eq!(bucket_names(&s3).await, [BUCKET]);
    app.stop().await;
}

#[tokio::test]
async fn configured_buckets_are_acknowledged_and_never_deleted() {
    let app = spawn_app().await;
    let s3 = app.s3();
    assert_eq!(
        create(&s3, BUCKET).await,
        conflict("BucketAlreadyOwnedByYou")
    );
    assert_eq!(
        delete(&s3, BUCKET).await,
        Err((403, "AccessDenied".to_string()))
    );
    put_in(&s3, BUCKET, "still.pdf", pdf(100))
        .await
        .expect("the configured bucket still works");
    app.stop().await;
}

#[tokio::test]
async fn bucket_names_follow_s3_rules_and_stay_clear_of_the_pages() {
    let app = spawn_app().await;
    let s3 = app.s3();
    for bad in [
        "ab",
        &"a".repeat(64),
        "a..b",
        "-abc",
        "abc-",
        "192.168.10.20",
        "xn--abc",
        "abc-s3alias",
        // The probes' paths.
        "healthz",
        "readyz",
    ] {
        assert_eq!(
            create(&s3, bad).await,
            Err((400, "InvalidBucketName".to_string())),
            "{bad}"
        );
    }
    // Upper case and underscores never reach a path-style bucket through the SDK; sent raw.
    for bad in ["Upper", "under_score"] {
        let url = format!("{}/{bad}", app.endpoint());
        let (status, _, body) = signed_bodiless("PUT", &url).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "InvalidBucketName".to_string()),
            "{bad}"
        );
    }
    // With the web pages under "/", their first segments are the pages' paths, never buckets.
    for page in ["drop", "files", "uppy", "static"] {
        let outcome = create(&s3, page).await;
        assert!(outcome.is_err(), "{page}: {outcome:?}");
    }
    assert_eq!(bucket_names(&s3).await, [BUCKET], "nothing was created");
    app.stop().await;

    // Under another prefix, its first segment is refused and the page names are free.
    let app = spawn_app_with("[web]\nprefix = \"/site/\"\n").await;
    let s3 = app.s3();
    assert_eq!(
        create(&s3, "site").await,
        Err((400, "InvalidBucketName".to_string()))
    );
    create(&s3, "files").await.expect("files is free");
    app.stop().await;
}

#[tokio::test]
async fn a_location_constraint_must_name_the_gateways_region() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let elsewhere = CreateBucketConfiguration::builder()
        .location_constraint(BucketLocationConstraint::EuWest1)
        .build();
    let refused = s3
        .create_bucket()
        .bucket("far-away")
        .create_bucket_configuration(elsewhere)
        .send()
        .await
        .map_err(failure);
    assert_eq!(
        refused.map(|_| ()),
        Err((400, "InvalidLocationConstraint".to_string()))
    );
    assert_eq!(head(&s3, "far-away").await, 404);
    let here = CreateBucketConfiguration::builder()
        .location_constraint(BucketLocationConstraint::from("us-east-1"))
        .build();
    s3.create_bucket()
        .bucket("near-by")
        .create_bucket_configuration(here)
        .send()
        .await
        .expect("the gateway's own region");
    assert_eq!(head(&s3, "near-by").await, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_template_governs_runtime_buckets_and_creation_can_be_switched_off() {
    let app = spawn_app_with("[bucket_template]\nmax_object_bytes = 1000\n").await;
    let s3 = app.s3();
    create(&s3, "small-things").await.expect("create");
    assert_eq!(
        put_in(&s3, "small-things", "big.pdf", pdf(2000)).await,
        Err((400, "EntityTooLarge".to_string()))
    );
    put_in(&s3, "small-things", "small.pdf", pdf(900))
        .await
        .expect("within the template's limit");
    // The configured bucket keeps its own policy.
    put_in(&s3, BUCKET, "big.pdf", pdf(2000))
        .await
        .expect("configured bucket");
    app.stop().await;

    let app = spawn_app_with("[s3]\ncreate_buckets = false\n").await;
    let s3 = app.s3();
    assert_eq!(
        create(&s3, "not-allowed").await,
        Err((403, "AccessDenied".to_string()))
    );
    assert_eq!(head(&s3, "not-allowed").await, 404);
    app.stop().await;
}

#[tokio::test]
async fn tenant_keys_create_within_their_quota_and_keep_to_their_own_buckets() {
    let app = spawn_app_with("[s3]\ntenant_max_buckets = 1\n").await;
    let operator = app.s3();
    let a = upgate::api::admin::create_tenant(app.state.control.as_ref(), "alpha")
        .await
        .expect("tenant a");
    let b = upgate::api::admin::create_tenant(app.state.control.as_ref(), "beta")
        .await
        .expect("tenant b");
    let sa = client_for(&app.endpoint(), &a.access_key_id, &a.secret_access_key);
    let sb = client_for(&app.endpoint(), &b.access_key_id, &b.secret_access_key);
    create(&sa, "alpha-data").await.expect("a creates");
    assert_eq!(
        create(&sa, "alpha-more").await,
        Err((400, "TooManyBuckets".to_string()))
    );
    // Another owner's name.
    assert_eq!(
        create(&sb, "alpha-data").await,
        conflict("BucketAlreadyExists")
    );
    assert_eq!(
        create(&sa, "alpha-data").await,
        conflict("BucketAlreadyOwnedByYou")
    );
    // Keys stay under the tenant's prefix in its own bucket too.
    let own_key = format!("{}/report.pdf", a.tenant_id);
    put_in(&sa, "alpha-data", &own_key, pdf(100))
        .await
        .expect("a writes under its prefix");
    assert_eq!(
        put_in(&sa, "alpha-data", "elsewhere.pdf", pdf(100)).await,
        Err((403, "AccessDenied".to_string()))
    );
    // Another tenant neither sees nor reaches it.
    assert_eq!(bucket_names(&sb).await, [BUCKET]);
    assert_eq!(bucket_names(&sa).await, ["alpha-data", BUCKET]);
    assert_eq!(head(&sb, "alpha-data").await, 403);
    let b_key = format!("{}/x.pdf", b.tenant_id);
    assert_eq!(
        put_in(&sb, "alpha-data", &b_key, pdf(100)).await,
        Err((403, "AccessDenied".to_string()))
    );
    assert_eq!(
        delete(&sb, "alpha-data").await,
        Err((403, "AccessDenied".to_string()))
    );
    // The operator sees every bucket; an operator's bucket is shared like a configured one.
    assert_eq!(bucket_names(&operator).await, ["alpha-data", BUCKET]);
    create(&operator, "shared-by-op")
        .await
        .expect("operator creates");
    assert_eq!(
        create(&sb, "shared-by-op").await,
        conflict("BucketAlreadyOwnedByYou")
    );
    assert_eq!(head(&sb, "shared-by-op").await, 200);
    put_in(&sb, "shared-by-op", &b_key, pdf(100))
        .await
        .expect("b writes under its prefix in the operator's bucket");
    assert_eq!(
        delete(&sb, "shared-by-op").await,
        Err((403, "AccessDenied".to_string()))
    );
    delete_object(&sa, "alpha-data", &own_key).await;
    delete(&sa, "alpha-data")
        .await
        .expect("a deletes its bucket");
    create(&sa, "alpha-more")
        .await
        .expect("room again after the delete");
    app.stop().await;

    // By default tenant keys may not create buckets at all.
    let app = spawn_app().await;
    let t = upgate::api::admin::create_tenant(app.state.control.as_ref(), "gamma")
        .await
        .expect("tenant");
    let st = client_for(&app.endpoint(), &t.access_key_id, &t.secret_access_key);
    assert_eq!(
        create(&st, "gamma-data").await,
        Err((403, "AccessDenied".to_string()))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bucket_made_on_one_replica_works_on_another_and_its_deletion_reaches_it() {
    let pg = PgSchema::new();
    let a = spawn_app_with(&pg.config()).await;
    let b = spawn_app_with(&pg.config()).await;
    let (sa, sb) = (a.s3(), b.s3());
    create(&sa, "shared-bucket").await.expect("create on a");
    // At once on the other replica: nothing is cached there yet.
    put_in(&sb, "shared-bucket", "from-b.pdf", pdf(200))
        .await
        .expect("put on b");
    assert_eq!(bucket_names(&sb).await, ["shared-bucket", BUCKET]);
    assert_eq!(
        delete(&sb, "shared-bucket").await,
        conflict("BucketNotEmpty"),
        "the object written through b is seen by a's bucket"
    );
    delete_object(&sb, "shared-bucket", "from-b.pdf").await;
    assert_eq!(head(&sb, "shared-bucket").await, 200, "b has it cached");
    delete(&sa, "shared-bucket").await.expect("delete on a");
    // b stops serving it within its cache's lifetime.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match put_in(&sb, "shared-bucket", "late.pdf", pdf(100)).await {
            Err((404, code)) => {
                assert_eq!(code, "NoSuchBucket");
                break;
            }
            other => {
                // Accepted while b's entry is fresh.
                assert!(other.is_ok(), "{other:?}");
                assert!(Instant::now() < deadline, "b kept serving a deleted bucket");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    assert_eq!(head(&sb, "shared-bucket").await, 404);
    a.stop().await;
    b.stop().await;
    pg.drop().await;
}

#[tokio::test]
async fn runtime_buckets_work_on_mysql_too() {
    let db = MySqlDatabase::new().await;
    let app = spawn_app_with(&db.config()).await;
    let s3 = app.s3();
    create(&s3, "on-mysql").await.expect("create");
    assert_eq!(
        create(&s3, "on-mysql").await,
        conflict("BucketAlreadyOwnedByYou")
    );
    put_in(&s3, "on-mysql", "a.pdf", pdf(200))
        .await
        .expect("put");
    assert_eq!(bucket_names(&s3).await, ["on-mysql", BUCKET]);
    assert_eq!(delete(&s3, "on-mysql").await, conflict("BucketNotEmpty"));
    delete_object(&s3, "on-mysql", "a.pdf").await;
    delete(&s3, "on-mysql").await.expect("delete bucket");
    assert_eq!(head(&s3, "on-mysql").await, 404);
    app.stop().await;
    db.drop().await;
}
