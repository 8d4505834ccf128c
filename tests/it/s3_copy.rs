//! CopyObject and UploadPartCopy through aws-sdk-s3: what is carried over (bytes, type,
//! metadata, tags) or replaced, the source conditions, the destination's checks, tenant
//! confinement on both sides, and parts copied by range.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};

use crate::api::tenant;
use crate::common::*;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: E) -> String {
    e.code().unwrap_or("").to_string()
}

const BUCKETS: &str = "[buckets.uploads]\n\
    [buckets.small]\nmax_object_bytes = 100000\n\
    [buckets.images]\nallowed_types = [\"image/png\"]\n";

#[tokio::test]
async fn copy_object_carries_or_replaces_and_checks_the_destination() {
    let app = spawn_app_with(BUCKETS).await;
    let s3 = app.s3();
    let data = pdf(300_000);
    s3.put_object()
        .bucket(BUCKET)
        .key("src/report.pdf")
        .content_type("application/pdf")
        .metadata("case", "c-41")
        .cache_control("max-age=60")
        .tagging("team=legal")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");

    // COPY (default): bytes, type, metadata, standard headers and tags carried over.
    let out = s3
        .copy_object()
        .bucket(BUCKET)
        .key("dst/copy.pdf")
        .copy_source(format!("{BUCKET}/src/report.pdf"))
        .send()
        .await
        .expect("copy");
    let result = out.copy_object_result().expect("result");
    assert!(result.e_tag().is_some_and(|e| e.starts_with('"')));
    assert!(result.last_modified().is_some());
    assert_eq!(get_bytes(&app, "dst/copy.pdf").await, data);
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("dst/copy.pdf")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("application/pdf"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("case"))
            .map(String::as_str),
        Some("c-41")
    );
    assert_eq!(head.cache_control(), Some("max-age=60"));
    let tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key("dst/copy.pdf")
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.tag_set().len(), 1);
    // The destination's record is its own, hashed from the bytes.
    let rec = app
        .state
        .meta
        .current(BUCKET, "dst/copy.pdf")
        .await
        .expect("meta")
        .expect("rec");
    assert_eq!(rec.sha256, sha256_hex(&data));

    // REPLACE: the request's metadata instead; a key with spaces and unicode in the source.
    s3.put_object()
        .bucket(BUCKET)
        .key("src/a b/é.pdf")
        .content_type("application/pdf")
        .body(ByteStream::from(pdf(5000)))
        .send()
        .await
        .expect("put");
    s3.copy_object()
        .bucket(BUCKET)
        .key("dst/replaced.pdf")
        .copy_source(format!("{BUCKET}/src/a%20b/%C3%A9.pdf"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/pdf")
        .metadata("case", "c-42")
        .send()
        .await
        .expect("copy replace");
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("dst/replaced.pdf")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("case"))
            .map(String::as_str),
        Some("c-42")
    );
    assert!(head.cache_control().is_none());

    // Source conditions.
    let err = s3
        .copy_object()
        .bucket(BUCKET)
        .key("dst/x.pdf")
        .copy_source(format!("{BUCKET}/src/report.pdf"))
        .copy_source_if_match("\"0000\"")
        .send()
        .await
        .expect_err("if-match");
    assert_eq!(code(err.into_service_error()), "PreconditionFailed");
    let err = s3
        .copy_object()
        .bucket(BUCKET)
        .key("dst/x.pdf")
        .copy_source(format!("{BUCKET}/src/report.pdf"))
        .copy_source_if_none_match(rec.etag.clone())
        .send()
        .await
        .expect_err("if-none-match");
    assert_eq!(code(err.into_service_error()), "PreconditionFailed");
    s3.copy_object()
        .bucket(BUCKET)
        .key("dst/x.pdf")
        .copy_source(format!("{BUCKET}/dst/copy.pdf"))
        .copy_source_if_match(format!("\"{}\"", rec.etag))
        .send()
        .await
        .expect("if-match holds");

    // Onto itself without a change: refused as S3 does; with REPLACE it is allowed.
    let err = s3
        .copy_object()
        .bucket(BUCKET)
        .key("src/report.pdf")
        .copy_source(format!("{BUCKET}/src/report.pdf"))
        .send()
        .await
        .expect_err("self copy");
    assert_eq!(code(err.into_service_error()), "InvalidRequest");
    s3.copy_object()
        .bucket(BUCKET)
        .key("src/report.pdf")
        .copy_source(format!("{BUCKET}/src/report.pdf"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/pdf")
        .metadata("case", "c-43")
        .send()
        .await
        .expect("self copy with new metadata");

    // A missing source; the destination bucket's size limit and type policy.
    let err = s3
        .copy_object()
        .bucket(BUCKET)
        .key("dst/y.pdf")
        .copy_source(format!("{BUCKET}/src/nope.pdf"))
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(err.into_service_error()), "NoSuchKey");
    let err = s3
        .copy_object()
        .bucket("small")
        .key("big.pdf")
        .copy_source(format!("{BUCKET}/src/report.pdf"))
        .send()
        .await
        .expect_err("too large for the destination");
    assert_eq!(code(err.into_service_error()), "EntityTooLarge");
    let err = s3
        .copy_object()
        .bucket("images")
        .key("doc.pdf")
        .copy_source(format!("{BUCKET}/src/report.pdf"))
        .send()
        .await
        .expect_err("a type the destination refuses");
    assert_eq!(code(err.into_service_error()), "InvalidContentType");
    // Nothing of the refused copies is visible.
    for (b, k) in [
        ("small", "big.pdf"),
        ("images", "doc.pdf"),
        (BUCKET, "dst/y.pdf"),
    ] {
        assert!(app.state.meta.current(b, k).await.expect("meta").is_none());
    }
    // Within the small bucket's limit, across buckets.
    s3.copy_object()
        .bucket("small")
        .key("small.pdf")
        .copy_source(format!("{BUCKET}/dst/replaced.pdf"))
        .send()
        .await
        .expect("cross-bucket copy");
}

#[tokio::test]
async fn tenant_keys_copy_only_within_their_prefix() {
    let app = spawn_app().await;
    let a = tenant(&app, "copy-a").await;
    let b = tenant(&app, "copy-b").await;
    let s3a = client_for(&app.endpoint(), &a.access_key_id, &a.secret_access_key);
    let mine = format!("{}/doc.pdf", a.tenant_id);
    let theirs = format!("{}/doc.pdf", b.tenant_id);
    let s3b = client_for(&app.endpoint(), &b.access_key_id, &b.secret_access_key);
    for (c, k) in [(&s3a, &mine), (&s3b, &theirs)] {
        c.put_object()
            .bucket(BUCKET)
            .key(k.as_str())
            .content_type("application/pdf")
            .body(ByteStream::from(pdf(5000)))
            .send()
            .await
            .expect("put");
    }
    let err = s3a
        .copy_object()
        .bucket(BUCKET)
        .key(format!("{}/stolen.pdf", a.tenant_id))
        .copy_source(format!("{BUCKET}/{theirs}"))
        .send()
        .await
        .expect_err("other tenant's source");
    assert_eq!(code(err.into_service_error()), "AccessDenied");
    let err = s3a
        .copy_object()
        .bucket(BUCKET)
        .key(format!("{}/planted.pdf", b.tenant_id))
        .copy_source(format!("{BUCKET}/{mine}"))
        .send()
        .await
        .expect_err("other tenant's destination");
    assert_eq!(code(err.into_service_error()), "AccessDenied");
    s3a.copy_object()
        .bucket(BUCKET)
        .key(format!("{}/copy.pdf", a.tenant_id))
        .copy_source(format!("{BUCKET}/{mine}"))
        .send()
        .await
        .expect("within the prefix");
}

#[tokio::test]
async fn upload_part_copy_assembles_an_object_from_ranges() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let data = pdf(7_000_000);
    s3.put_object()
        .bucket(BUCKET)
        .key("src/big.pdf")
        .content_type("application/pdf")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    let up = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("dst/assembled.pdf")
        .content_type("application/pdf")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    let split = 5 * 1024 * 1024;
    let mut parts = Vec::new();
    for (n, range) in [
        (1, format!("bytes=0-{}", split - 1)),
        (2, format!("bytes={split}-{}", data.len() - 1)),
    ] {
        let out = s3
            .upload_part_copy()
            .bucket(BUCKET)
            .key("dst/assembled.pdf")
            .upload_id(id)
            .part_number(n)
            .copy_source(format!("{BUCKET}/src/big.pdf"))
            .copy_source_range(range)
            .send()
            .await
            .expect("part copy");
        let etag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .expect("etag")
            .to_string();
        parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    let err = s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("dst/assembled.pdf")
        .upload_id(id)
        .part_number(3)
        .copy_source(format!("{BUCKET}/src/big.pdf"))
        .copy_source_range(format!("bytes=0-{}", data.len()))
        .send()
        .await
        .expect_err("past the end");
    assert_eq!(code(err.into_service_error()), "InvalidRange");
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("dst/assembled.pdf")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(get_bytes(&app, "dst/assembled.pdf").await, data);
    let rec = app
        .state
        .meta
        .current(BUCKET, "dst/assembled.pdf")
        .await
        .expect("meta")
        .expect("rec");
    assert_eq!(rec.sha256, sha256_hex(&data));
}

#[tokio::test]
async fn get_object_attributes_reports_etag_checksum_parts_and_size() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectAttributes};
    let app = spawn_app().await;
    let s3 = app.s3();
    let data = pdf(200_000);
    s3.put_object()
        .bucket(BUCKET)
        .key("attr/one.pdf")
        .content_type("application/pdf")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    let out = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attr/one.pdf")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::StorageClass)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    let rec = app
        .state
        .meta
        .current(BUCKET, "attr/one.pdf")
        .await
        .expect("meta")
        .expect("rec");
    assert_eq!(out.e_tag(), Some(rec.etag.as_str()));
    assert_eq!(out.object_size(), Some(data.len() as i64));
    assert_eq!(out.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    let sum = out.checksum().expect("checksum");
    let b64 = |raw: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    assert_eq!(
        sum.checksum_sha256(),
        Some(b64(&hex::decode(sha256_hex(&data)).expect("hex")).as_str())
    );
    assert!(
        sum.checksum_crc32().is_some(),
        "the CRC32 the upload was checked with"
    );
    assert!(out.object_parts().is_none(), "a single PUT has no parts");
    // A multipart object reports its part count.
    let big = pdf(6_000_000);
    let (a, b) = big.split_at(5 * 1024 * 1024);
    multipart_put(&s3, "attr/multi.pdf", "application/pdf", &[a, b])
        .await
        .expect("multipart");
    let out = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attr/multi.pdf")
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect("attributes");
    assert_eq!(
        out.object_parts().and_then(|p| p.total_parts_count()),
        Some(2)
    );
    assert_eq!(out.object_size(), Some(big.len() as i64));
    // Unknown attributes and missing keys answer as S3 does.
    let err = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attr/nope.pdf")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(err.into_service_error()), "NoSuchKey");
}
