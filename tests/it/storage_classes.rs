//! Storage classes on an S3 backend (moto): new objects are written in their bucket's class
//! (parts of a multipart upload stay STANDARD until assembled), the sweeper moves objects past
//! their transition age to the colder class in place, the record follows (S3 HEAD, listings,
//! GetObjectAttributes, the metric), and downloads return the same bytes before and after — on
//! a plain and on an envelope-encrypted backend. A deleted object is never brought back.

use crate::backends;
use crate::common::{BUCKET, metrics_text, pdf, spawn_app_with};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use sha2::{Digest, Sha256};

const S3_BUCKET: &str = "classes";
const VAULT: &str = "vault";
const DAY_MS: i64 = 86_400_000;

fn toml(endpoint: &str) -> String {
    format!(
        r#"
[storage]
backend = "s3"
[storage.s3]
endpoint = "{endpoint}"
bucket = "{S3_BUCKET}"
access_key_id = "{key}"
secret_access_key = "{secret}"
[storage.backends.sealed]
kind = "s3"
endpoint = "{endpoint}"
bucket = "{S3_BUCKET}"
prefix = "sealed"
access_key_id = "{key}"
secret_access_key = "{secret}"
encrypt = true
[storage.encryption]
keys = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[buckets.{BUCKET}]
storage_class = "STANDARD_IA"
transition_days = 30
transition_storage_class = "GLACIER_IR"
[buckets.{VAULT}]
backend = "sealed"
transition_days = 10
transition_storage_class = "ONEZONE_IA"
"#,
        key = backends::MOTO_KEY,
        secret = backends::MOTO_SECRET,
    )
}

/// The storage class of every object in the backend bucket (data blobs and key sidecars), by
/// backend key; the class of a STANDARD object is reported as "STANDARD".
async fn backend_classes(endpoint: &str) -> Vec<(String, String)> {
    let client = backends::s3_client(endpoint);
    let mut out = Vec::new();
    for key in backends::list_keys(endpoint, S3_BUCKET).await {
        let head = client
            .head_object()
            .bucket(S3_BUCKET)
            .key(&key)
            .send()
            .await
            .expect("head");
        let class = head
            .storage_class()
            .map(|c| c.as_str().to_string())
            .unwrap_or_else(|| "STANDARD".into());
        out.push((key, class));
    }
    out.sort();
    out
}

/// Classes of the data blobs only (not the `.dek` sidecars), sorted.
fn data_classes(all: &[(String, String)]) -> Vec<&str> {
    let mut v: Vec<&str> = all
        .iter()
        .filter(|(k, _)| !k.ends_with(".dek"))
        .map(|(_, c)| c.as_str())
        .collect();
    v.sort();
    v
}

async fn sha_of(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> [u8; 32] {
    let got = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get");
    let bytes = got.body.collect().await.expect("body").into_bytes();
    Sha256::digest(&bytes).into()
}

async fn gateway_class(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("head");
    head.storage_class()
        .map(|c| c.as_str().to_string())
        .unwrap_or_else(|| "STANDARD".into())
}

#[tokio::test]
async fn objects_are_written_in_their_class_and_move_to_the_colder_one_in_place() {
    let Some(moto) = backends::start_moto() else {
        return;
    };
    let ep = moto.endpoint();
    backends::create_bucket(&ep, S3_BUCKET).await;
    let app = spawn_app_with(&toml(&ep)).await;
    let s3 = app.s3();

    // A single PUT (asking for another class: the bucket's policy decides), and a two-part
    // multipart upload (its parts stay STANDARD until assembled).
    let small = pdf(200_000);
    s3.put_object()
        .bucket(BUCKET)
        .key("small.pdf")
        .storage_class(aws_sdk_s3::types::StorageClass::DeepArchive)
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .expect("put");
    let big = pdf(6 << 20);
    let mp = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("big.pdf")
        .content_type("application/pdf")
        .send()
        .await
        .expect("create");
    let upload_id = mp.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (n, range) in [(1, 0..5 << 20), (2, 5 << 20..big.len())] {
        let part = s3
            .upload_part()
            .bucket(BUCKET)
            .key("big.pdf")
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(big[range].to_vec()))
            .send()
            .await
            .expect("part");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        );
    }
    let before_complete = backend_classes(&ep).await;
    assert_eq!(
        data_classes(&before_complete),
        ["STANDARD", "STANDARD", "STANDARD_IA"],
        "parts are temporary and stay STANDARD; the single PUT is in the bucket's class: \
         {before_complete:?}"
    );
    crate::s3_multipart::complete(&s3, "big.pdf", upload_id, parts)
        .await
        .expect("complete");
    // On the encrypted backend, in its default class.
    let sealed = pdf(300_000);
    s3.put_object()
        .bucket(VAULT)
        .key("sealed.pdf")
        .body(ByteStream::from(sealed.clone()))
        .send()
        .await
        .expect("put sealed");
    // Deleted before any transition: its bytes must never come back.
    s3.put_object()
        .bucket(BUCKET)
        .key("gone.pdf")
        .body(ByteStream::from(pdf(10_000)))
        .send()
        .await
        .expect("put gone");
    s3.delete_object()
        .bucket(BUCKET)
        .key("gone.pdf")
        .send()
        .await
        .expect("delete");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let stored = backend_classes(&ep).await;
    assert_eq!(
        data_classes(&stored),
        ["STANDARD", "STANDARD_IA", "STANDARD_IA"],
        "{stored:?}"
    );
    assert_eq!(gateway_class(&s3, BUCKET, "small.pdf").await, "STANDARD_IA");
    assert_eq!(gateway_class(&s3, BUCKET, "big.pdf").await, "STANDARD_IA");
    assert_eq!(gateway_class(&s3, VAULT, "sealed.pdf").await, "STANDARD");
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let classes: Vec<_> = listed
        .contents()
        .iter()
        .map(|o| o.storage_class().map(|c| c.as_str().to_string()))
        .collect();
    assert_eq!(
        classes,
        [
            Some("STANDARD_IA".to_string()),
            Some("STANDARD_IA".to_string())
        ]
    );
    let want_small: [u8; 32] = Sha256::digest(&small).into();
    let want_big: [u8; 32] = Sha256::digest(&big).into();
    let want_sealed: [u8; 32] = Sha256::digest(&sealed).into();

    // Eleven days on: only the vault's 10-day rule is due (batches of one).
    let now = upgate::clock::now_ms();
    let moved = upgate::upload::transition::transition_objects(&app.state, now + 11 * DAY_MS, 1)
        .await
        .expect("transition");
    assert_eq!(moved, 1);
    assert_eq!(gateway_class(&s3, VAULT, "sealed.pdf").await, "ONEZONE_IA");
    assert_eq!(gateway_class(&s3, BUCKET, "small.pdf").await, "STANDARD_IA");
    // The ciphertext moved verbatim: its key sidecar still opens it.
    assert_eq!(sha_of(&s3, VAULT, "sealed.pdf").await, want_sealed);

    // Thirty-one days on: the uploads bucket's objects move too; a second pass finds nothing.
    let moved = upgate::upload::transition::transition_objects(&app.state, now + 31 * DAY_MS, 1)
        .await
        .expect("transition");
    assert_eq!(moved, 2);
    let again = upgate::upload::transition::transition_objects(&app.state, now + 31 * DAY_MS, 10)
        .await
        .expect("transition");
    assert_eq!(again, 0);

    let after = backend_classes(&ep).await;
    assert_eq!(
        data_classes(&after),
        ["GLACIER_IR", "GLACIER_IR", "ONEZONE_IA"],
        "in place, and nothing brought back: {after:?}"
    );
    assert_eq!(
        after.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        stored.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "the same backend keys as before"
    );
    assert_eq!(gateway_class(&s3, BUCKET, "small.pdf").await, "GLACIER_IR");
    assert_eq!(gateway_class(&s3, BUCKET, "big.pdf").await, "GLACIER_IR");
    assert_eq!(sha_of(&s3, BUCKET, "small.pdf").await, want_small);
    assert_eq!(sha_of(&s3, BUCKET, "big.pdf").await, want_big);
    // A range of the moved multipart object, by part number, still reads.
    let part2 = s3
        .get_object()
        .bucket(BUCKET)
        .key("big.pdf")
        .part_number(2)
        .send()
        .await
        .expect("part 2");
    let bytes = part2.body.collect().await.expect("body").into_bytes();
    assert!(bytes.as_ref() == &big[5 << 20..]);
    let attrs = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("small.pdf")
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::StorageClass)
        .send()
        .await
        .expect("attributes");
    assert_eq!(
        attrs.storage_class().map(|c| c.as_str()),
        Some("GLACIER_IR")
    );
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("upgate_storage_transitions_total{storage_class=\"GLACIER_IR\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("upgate_storage_transitions_total{storage_class=\"ONEZONE_IA\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}
