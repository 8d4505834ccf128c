//! Multipart uploads with the real aws-sdk-s3 client: same guarantees as a single PUT.

use std::time::Duration;

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use upgate::auth::SecretKey;

const MIB: usize = 1024 * 1024;

async fn create(s3: &aws_sdk_s3::Client, key: &str, alg: Option<ChecksumAlgorithm>) -> String {
    s3.create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .set_checksum_algorithm(alg)
        .send()
        .await
        .expect("create")
        .upload_id()
        .expect("upload id")
        .to_string()
}

async fn part(
    s3: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    n: i32,
    data: &[u8],
    alg: Option<ChecksumAlgorithm>,
) -> Result<CompletedPart, String> {
    let out = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .set_checksum_algorithm(alg)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .map_err(|e| {
            e.into_service_error()
                .meta()
                .code()
                .unwrap_or("?")
                .to_string()
        })?;
    Ok(CompletedPart::builder()
        .part_number(n)
        .e_tag(out.e_tag().unwrap_or_default())
        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
        .build())
}

/// Completes multipart upload `id` of `key` in the test bucket with `parts`: its ETag, or the
/// S3 error code.
pub(crate) async fn complete(
    s3: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> Result<String, String> {
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|o| o.e_tag().unwrap_or_default().to_string())
        .map_err(|e| {
            e.into_service_error()
                .meta()
                .code()
                .unwrap_or("?")
                .to_string()
        })
}

/// Waits for background cleanups, then checks that no part or object bytes remain.
async fn assert_no_files(app: &TestApp) {
    for _ in 0..50 {
        if app.object_files().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("files left: {:?}", app.object_files());
}

#[tokio::test]
async fn multipart_with_crc32_parts_assembles_the_exact_object() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let data = pdf(12 * MIB + 123);
    let id = create(&s3, "mp/doc.pdf", Some(ChecksumAlgorithm::Crc32)).await;
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(5 * MIB).enumerate() {
        parts.push(
            part(
                &s3,
                "mp/doc.pdf",
                &id,
                i as i32 + 1,
                chunk,
                Some(ChecksumAlgorithm::Crc32),
            )
            .await
            .expect("part"),
        );
    }
    // Nothing is visible before completion.
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key("mp/doc.pdf")
            .send()
            .await
            .is_err()
    );
    let listed = s3
        .list_parts()
        .bucket(BUCKET)
        .key("mp/doc.pdf")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.parts().len(), 3);
    let uploads = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("uploads");
    assert_eq!(uploads.uploads().len(), 1);

    let etag = complete(&s3, "mp/doc.pdf", &id, parts)
        .await
        .expect("complete");
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("mp/doc.pdf")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("application/pdf"));
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(bytes.len(), data.len());
    assert!(bytes.as_ref() == data.as_slice());
    let rec = app
        .state
        .meta
        .current(BUCKET, "mp/doc.pdf")
        .await
        .expect("m")
        .expect("rec");
    assert_eq!(rec.sha256, sha256_hex(&data));
    // The upload is gone and only the assembled object's bytes remain.
    let uploads = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("uploads");
    assert!(uploads.uploads().is_empty());
    for _ in 0..50 {
        if app.object_files().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.object_files().len(), 1, "{:?}", app.object_files());
    app.stop().await;
}

#[tokio::test]
async fn the_part_that_crosses_the_object_budget_is_refused() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let data = pdf(21 * MIB);
    let id = create(&s3, "big.pdf", None).await;
    let mut refused_at = None;
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(5 * MIB).enumerate() {
        match part(&s3, "big.pdf", &id, i as i32 + 1, chunk, None).await {
            Ok(p) => parts.push(p),
            Err(code) => {
                assert_eq!(code, "EntityTooLarge");
                refused_at = Some(i + 1);
                break;
            }
        }
    }
    assert_eq!(refused_at, Some(5), "20 MiB fit, the 21st MiB does not");
    // The refused part's bytes are gone; completing what fits would be a different object, so
    // the client aborts: nothing is left.
    s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("big.pdf")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key("big.pdf")
            .send()
            .await
            .is_err()
    );
    assert_no_files(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn completion_rejects_bad_part_lists_and_leaves_nothing() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let id = create(&s3, "bad.pdf", None).await;
    let p1 = part(&s3, "bad.pdf", &id, 1, &pdf(5 * MIB), None)
        .await
        .expect("p1");
    let p2 = part(&s3, "bad.pdf", &id, 2, &pdf(1000), None)
        .await
        .expect("p2");
    let p3 = part(&s3, "bad.pdf", &id, 3, &pdf(1000), None)
        .await
        .expect("p3");
    // Out of order.
    let r = complete(&s3, "bad.pdf", &id, vec![p2.clone(), p1.clone()]).await;
    assert_eq!(r.unwrap_err(), "InvalidPartOrder");
    // Unknown part / wrong ETag.
    let fake = CompletedPart::builder()
        .part_number(7)
        .e_tag("\"00\"")
        .build();
    assert_eq!(
        complete(&s3, "bad.pdf", &id, vec![p1.clone(), fake])
            .await
            .unwrap_err(),
        "InvalidPart"
    );
    let wrong = CompletedPart::builder()
        .part_number(2)
        .e_tag("\"0000\"")
        .build();
    assert_eq!(
        complete(&s3, "bad.pdf", &id, vec![p1.clone(), wrong])
            .await
            .unwrap_err(),
        "InvalidPart"
    );
    // A small part that is not the last.
    let r = complete(
        &s3,
        "bad.pdf",
        &id,
        vec![p1.clone(), p2.clone(), p3.clone()],
    )
    .await;
    assert_eq!(r.unwrap_err(), "EntityTooSmall");
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key("bad.pdf")
            .send()
            .await
            .is_err()
    );
    // The upload is still open: a correct list completes it.
    complete(&s3, "bad.pdf", &id, vec![p1, p3])
        .await
        .expect("complete");
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("bad.pdf")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some((5 * MIB + 1000) as i64));
    // Unknown upload ids.
    let r = part(
        &s3,
        "bad.pdf",
        "0123456789abcdef0123456789abcdef",
        1,
        &pdf(10),
        None,
    )
    .await;
    assert_eq!(r.unwrap_err(), "NoSuchUpload");
    app.stop().await;
}

#[tokio::test]
async fn part_one_is_type_checked() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let id = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("img.png")
        .content_type("image/png")
        .send()
        .await
        .expect("create")
        .upload_id()
        .expect("id")
        .to_string();
    let r = part(&s3, "img.png", &id, 1, &pdf(6 * MIB), None).await;
    assert_eq!(r.unwrap_err(), "ContentTypeMismatch");
    // A disallowed declared type is refused at creation.
    let err = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("x.html")
        .content_type("text/html")
        .send()
        .await
        .expect_err("html");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("InvalidContentType")
    );
    // A first listed part that is not a recognisable file cannot complete.
    let id = create(&s3, "junk.pdf", None).await;
    let junk = vec![b'z'; 5 * MIB];
    let p1 = part(&s3, "junk.pdf", &id, 1, &junk, None).await;
    assert_eq!(p1.unwrap_err(), "ContentTypeMismatch");
    let p2 = part(&s3, "junk.pdf", &id, 2, &junk, None)
        .await
        .expect("later parts are not sniffed");
    assert_eq!(
        complete(&s3, "junk.pdf", &id, vec![p2]).await.unwrap_err(),
        "ContentTypeMismatch"
    );
    app.stop().await;
}

#[tokio::test]
async fn only_the_initiator_can_use_an_upload() {
    let app = spawn_app().await;
    app.state.insert_key(
        "AKIDOTHERPRINCIPAL01",
        SecretKey::new("other-secret".into()),
    );
    let owner = app.s3();
    let other = client_for(&app.endpoint(), "AKIDOTHERPRINCIPAL01", "other-secret");
    let id = create(&owner, "mine.pdf", None).await;
    let p1 = part(&owner, "mine.pdf", &id, 1, &pdf(1000), None)
        .await
        .expect("p1");
    assert_eq!(
        part(&other, "mine.pdf", &id, 2, &pdf(1000), None)
            .await
            .unwrap_err(),
        "NoSuchUpload"
    );
    assert_eq!(
        complete(&other, "mine.pdf", &id, vec![p1.clone()])
            .await
            .unwrap_err(),
        "NoSuchUpload"
    );
    let err = other
        .list_parts()
        .bucket(BUCKET)
        .key("mine.pdf")
        .upload_id(&id)
        .send()
        .await
        .expect_err("list");
    assert_eq!(err.into_service_error().meta().code(), Some("NoSuchUpload"));
    let err = other
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("mine.pdf")
        .upload_id(&id)
        .send()
        .await
        .expect_err("abort");
    assert_eq!(err.into_service_error().meta().code(), Some("NoSuchUpload"));
    let uploads = other
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("uploads");
    assert!(uploads.uploads().is_empty());
    // Also under another key: the id is bound to its key.
    assert_eq!(
        part(&owner, "other-key.pdf", &id, 2, &pdf(10), None)
            .await
            .unwrap_err(),
        "NoSuchUpload"
    );
    complete(&owner, "mine.pdf", &id, vec![p1])
        .await
        .expect("owner completes");
    app.stop().await;
}

#[tokio::test]
async fn presigned_part_urls_work() {
    use aws_sdk_s3::presigning::PresigningConfig;
    let app = spawn_app().await;
    let s3 = app.s3();
    let id = create(&s3, "pre.pdf", None).await;
    let data = pdf(7000);
    let req = s3
        .upload_part()
        .bucket(BUCKET)
        .key("pre.pdf")
        .upload_id(&id)
        .part_number(1)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("cfg"))
        .await
        .expect("presign");
    let (status, headers, body) = send("PUT", req.uri(), &[], data.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let etag = headers["etag"].to_str().expect("etag").to_string();
    let p = CompletedPart::builder().part_number(1).e_tag(etag).build();
    complete(&s3, "pre.pdf", &id, vec![p])
        .await
        .expect("complete");
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("pre.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("b").into_bytes().as_ref(),
        data.as_slice()
    );
    app.stop().await;
}

#[tokio::test]
async fn abandoned_uploads_are_swept() {
    let app = spawn_app_with("[s3]\nmultipart_max_idle_secs = 1\n").await;
    let s3 = app.s3();
    let id = create(&s3, "old.pdf", None).await;
    part(&s3, "old.pdf", &id, 1, &pdf(5000), None)
        .await
        .expect("p1");
    part(&s3, "old.pdf", &id, 2, &pdf(5000), None)
        .await
        .expect("p2");
    assert_eq!(app.object_files().len(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    upgate::sweeper::sweep_once(&app.state)
        .await
        .expect("sweep");
    assert!(app.state.meta.multipart(&id).await.expect("m").is_none());
    assert_no_files(&app).await;
    app.stop().await;
}

/// GetObject/HeadObject with `partNumber` (issue 17), answered as S3 answers them.
mod by_part_number {
    use crate::common::*;

    const SMALL_PARTS: &str = "[s3]\nmin_part_bytes = 1000\n";

    async fn get_part(
        s3: &aws_sdk_s3::Client,
        key: &str,
        n: i32,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, (u16, String)> {
        s3.get_object()
            .bucket(BUCKET)
            .key(key)
            .part_number(n)
            .send()
            .await
            .map_err(failure)
    }

    #[tokio::test]
    async fn each_part_of_a_multipart_object_is_read_alone() {
        let app = spawn_app_with(SMALL_PARTS).await;
        let s3 = app.s3();
        let data = pdf(5_500);
        let parts: [&[u8]; 3] = [&data[..2_000], &data[2_000..4_000], &data[4_000..]];
        let etag = multipart_put(&s3, "mp/three.pdf", "application/pdf", &parts)
            .await
            .expect("complete");
        let mut start = 0;
        for (n, part) in (1..).zip(parts) {
            let got = get_part(&s3, "mp/three.pdf", n).await.expect("part");
            let end = start + part.len();
            assert_eq!(got.content_length(), Some(part.len() as i64), "part {n}");
            assert_eq!(
                got.content_range(),
                Some(format!("bytes {start}-{}/5500", end - 1).as_str()),
                "part {n}"
            );
            assert_eq!(got.parts_count(), Some(3), "part {n}");
            assert_eq!(got.e_tag(), Some(etag.as_str()), "the object's ETag");
            assert_eq!(
                got.body.collect().await.expect("body").to_vec(),
                part,
                "part {n}"
            );
            let head = s3
                .head_object()
                .bucket(BUCKET)
                .key("mp/three.pdf")
                .part_number(n)
                .send()
                .await
                .expect("head part");
            assert_eq!(head.content_length(), Some(part.len() as i64));
            assert_eq!(head.parts_count(), Some(3));
            start = end;
        }
        // A raw GET shows S3's status: 206 Partial Content.
        let url = format!("{}/{BUCKET}/mp/three.pdf?partNumber=2", app.endpoint());
        let (status, h, body) = signed_bodiless("GET", &url).await;
        assert_eq!(status, 206);
        assert_eq!(h["content-range"], "bytes 2000-3999/5500");
        assert_eq!(h["x-amz-mp-parts-count"], "3");
        assert_eq!(body, parts[1]);
        // A whole GET reports no part count (as S3).
        let whole = s3
            .get_object()
            .bucket(BUCKET)
            .key("mp/three.pdf")
            .send()
            .await
            .expect("whole");
        assert_eq!(whole.parts_count(), None);
        assert_eq!(whole.content_length(), Some(5_500));
        // Past the last part.
        assert_eq!(
            get_part(&s3, "mp/three.pdf", 4).await.map(|_| ()),
            Err((416, "InvalidPartNumber".to_string()))
        );
        // With a Range too: refused.
        let both = s3
            .get_object()
            .bucket(BUCKET)
            .key("mp/three.pdf")
            .part_number(1)
            .range("bytes=0-9")
            .send()
            .await
            .map(|_| ())
            .map_err(failure);
        assert_eq!(both, Err((400, "InvalidRequest".to_string())));
        app.stop().await;
    }

    #[tokio::test]
    async fn part_one_of_a_single_part_object_is_the_whole_object() {
        let app = spawn_app().await;
        let s3 = app.s3();
        put_pdf(&s3, "single.pdf", pdf(1_234)).await;
        let got = get_part(&s3, "single.pdf", 1).await.expect("part 1");
        assert_eq!(got.content_length(), Some(1_234));
        assert_eq!(got.content_range(), Some("bytes 0-1233/1234"));
        assert_eq!(
            got.parts_count(),
            None,
            "no part count for a single-part object"
        );
        assert_eq!(got.body.collect().await.expect("body").to_vec(), pdf(1_234));
        assert_eq!(
            get_part(&s3, "single.pdf", 2).await.map(|_| ()),
            Err((416, "InvalidPartNumber".to_string()))
        );
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key("single.pdf")
            .part_number(2)
            .send()
            .await
            .map(|_| ())
            .map_err(failure);
        assert_eq!(head.map_err(|(status, _)| status), Err(416));
        assert_eq!(
            get_part(&s3, "missing.pdf", 1).await.map(|_| ()),
            Err((404, "NoSuchKey".to_string()))
        );
        app.stop().await;
    }
}

/// Checksums of multipart objects (issue 17): full-object and composite, as aws-sdk-s3 asks for
/// them and reads them back.
mod checksums {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, ObjectAttributes};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use sha2::{Digest, Sha256};

    use crate::common::*;

    const SMALL_PARTS: &str = "[s3]\nmin_part_bytes = 1000\n";

    /// Uploads `parts` with `alg` (and `kind`, if given) and completes; returns the completion.
    async fn upload(
        s3: &aws_sdk_s3::Client,
        key: &str,
        parts: &[&[u8]],
        alg: ChecksumAlgorithm,
        kind: Option<ChecksumType>,
    ) -> aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput {
        multipart_put_checked(s3, key, "application/pdf", parts, Some(alg), kind)
            .await
            .expect("complete")
    }

    /// Reads `key` whole with checksum mode on: the SDK validates a full-object checksum
    /// against the bytes as it reads them (and skips a composite one).
    async fn read_checked(
        s3: &aws_sdk_s3::Client,
        key: &str,
    ) -> (aws_sdk_s3::operation::get_object::GetObjectOutput, Vec<u8>) {
        let mut got = s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        let body = std::mem::replace(&mut got.body, ByteStream::from_static(b""));
        let bytes = body.collect().await.expect("validated body").to_vec();
        (got, bytes)
    }

    #[tokio::test]
    async fn a_sha256_upload_is_composite_by_default_and_reported_so_everywhere() {
        let app = spawn_app_with(SMALL_PARTS).await;
        let s3 = app.s3();
        let data = pdf(4_200);
        let parts: [&[u8]; 2] = [&data[..2_500], &data[2_500..]];
        // The composite SHA-256: of the parts' SHA-256s, then "-<parts>".
        let mut of_parts = Sha256::new();
        for p in parts {
            of_parts.update(Sha256::digest(p));
        }
        let composite = format!("{}-2", STANDARD.encode(of_parts.finalize()));
        let done = upload(&s3, "ck/sha.pdf", &parts, ChecksumAlgorithm::Sha256, None).await;
        assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
        assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
        let (got, bytes) = read_checked(&s3, "ck/sha.pdf").await;
        assert_eq!(bytes, data);
        assert_eq!(got.checksum_sha256(), Some(composite.as_str()));
        assert_eq!(got.checksum_type(), Some(&ChecksumType::Composite));
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key("ck/sha.pdf")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("head");
        assert_eq!(head.checksum_sha256(), Some(composite.as_str()));
        let attrs = s3
            .get_object_attributes()
            .bucket(BUCKET)
            .key("ck/sha.pdf")
            .object_attributes(ObjectAttributes::Checksum)
            .send()
            .await
            .expect("attributes");
        let sum = attrs.checksum().expect("checksum");
        assert_eq!(sum.checksum_type(), Some(&ChecksumType::Composite));
        assert_eq!(
            sum.checksum_sha256(),
            composite.split('-').next(),
            "GetObjectAttributes leaves the part count out"
        );
        // Without checksum mode, no checksum headers.
        let plain = s3
            .head_object()
            .bucket(BUCKET)
            .key("ck/sha.pdf")
            .send()
            .await
            .expect("head");
        assert_eq!(plain.checksum_sha256(), None);
        app.stop().await;
    }

    #[tokio::test]
    async fn full_object_crc_checksums_are_of_the_whole_object() {
        let app = spawn_app_with(SMALL_PARTS).await;
        let s3 = app.s3();
        let data = pdf(3_100);
        let parts: [&[u8]; 2] = [&data[..2_000], &data[2_000..]];
        for (key, alg, kind) in [
            ("ck/crc64.pdf", ChecksumAlgorithm::Crc64Nvme, None),
            (
                "ck/crc32.pdf",
                ChecksumAlgorithm::Crc32,
                Some(ChecksumType::FullObject),
            ),
        ] {
            let done = upload(&s3, key, &parts, alg, kind).await;
            assert_eq!(
                done.checksum_type(),
                Some(&ChecksumType::FullObject),
                "{key}"
            );
            let value = done
                .checksum_crc64_nvme()
                .or(done.checksum_crc32())
                .expect("a checksum")
                .to_string();
            assert!(!value.contains('-'), "{key}: {value}");
            // The SDK checks the full-object CRC against the bytes it reads.
            let (got, bytes) = read_checked(&s3, key).await;
            assert_eq!(bytes, data, "{key}");
            assert_eq!(
                got.checksum_type(),
                Some(&ChecksumType::FullObject),
                "{key}"
            );
            assert_eq!(
                got.checksum_crc64_nvme().or(got.checksum_crc32()),
                Some(value.as_str()),
                "{key}"
            );
        }
        // The CRC-32 of the whole object is not the composite of its parts.
        let composite = upload(
            &s3,
            "ck/crc32-c.pdf",
            &parts,
            ChecksumAlgorithm::Crc32,
            None,
        )
        .await;
        assert_eq!(composite.checksum_type(), Some(&ChecksumType::Composite));
        assert!(
            composite
                .checksum_crc32()
                .is_some_and(|v| v.ends_with("-2")),
            "{:?}",
            composite.checksum_crc32()
        );
        app.stop().await;
    }

    #[tokio::test]
    async fn a_completion_naming_another_checksum_type_is_refused() {
        let app = spawn_app().await;
        let s3 = app.s3();
        let create = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("ck/typed.pdf")
            .content_type("application/pdf")
            .checksum_algorithm(ChecksumAlgorithm::Crc32);
        let (id, done) = one_part_upload(&s3, create, 1_500).await;
        let complete = |kind: ChecksumType| {
            s3.complete_multipart_upload()
                .bucket(BUCKET)
                .key("ck/typed.pdf")
                .upload_id(&id)
                .multipart_upload(done.clone())
                .checksum_type(kind)
                .send()
        };
        let refused = complete(ChecksumType::FullObject)
            .await
            .map(|_| ())
            .map_err(failure);
        assert_eq!(refused, Err((400, "InvalidRequest".to_string())));
        let out = complete(ChecksumType::Composite)
            .await
            .expect("the upload's own type");
        assert_eq!(out.checksum_type(), Some(&ChecksumType::Composite));
        assert!(out.checksum_crc32().is_some_and(|v| v.ends_with("-1")));
        app.stop().await;
    }

    #[tokio::test]
    async fn checksum_types_an_algorithm_has_no_form_of_are_refused() {
        let app = spawn_app_with(SMALL_PARTS).await;
        let s3 = app.s3();
        for (alg, kind) in [
            (Some(ChecksumAlgorithm::Crc64Nvme), ChecksumType::Composite),
            (Some(ChecksumAlgorithm::Sha256), ChecksumType::FullObject),
            (None, ChecksumType::FullObject),
        ] {
            let refused = s3
                .create_multipart_upload()
                .bucket(BUCKET)
                .key("ck/refused.pdf")
                .set_checksum_algorithm(alg.clone())
                .checksum_type(kind.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(failure);
            assert_eq!(
                refused,
                Err((400, "InvalidRequest".to_string())),
                "{alg:?} {kind:?}"
            );
        }
        let open = s3
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
        assert!(open.uploads().is_empty(), "nothing was created");
        app.stop().await;
    }
}
