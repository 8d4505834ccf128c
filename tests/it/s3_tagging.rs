//! Object tagging (issue 17): Get/Put/DeleteObjectTagging and `x-amz-tagging` on uploads,
//! through aws-sdk-s3.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};

use crate::common::*;

fn tag_set(pairs: &[(&str, &str)]) -> Tagging {
    let tags = pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"))
        .collect();
    Tagging::builder()
        .set_tag_set(Some(tags))
        .build()
        .expect("tagging")
}

async fn tags_of(s3: &aws_sdk_s3::Client, key: &str) -> Vec<(String, String)> {
    s3.get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get tagging")
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn tags_given_on_put_are_read_replaced_and_deleted() {
    let app = spawn_app().await;
    let s3 = app.s3();
    s3.put_object()
        .bucket(BUCKET)
        .key("t/a.pdf")
        .content_type("application/pdf")
        .tagging("project=upgate&team=data%20eng")
        .body(ByteStream::from(pdf(100)))
        .send()
        .await
        .expect("put");
    assert_eq!(
        tags_of(&s3, "t/a.pdf").await,
        pairs(&[("project", "upgate"), ("team", "data eng")])
    );
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("t/a.pdf")
        .send()
        .await
        .expect("get");
    assert_eq!(got.tag_count(), Some(2));
    s3.put_object_tagging()
        .bucket(BUCKET)
        .key("t/a.pdf")
        .tagging(tag_set(&[("stage", "reviewed"), ("owner", "é@x")]))
        .send()
        .await
        .expect("put tagging");
    assert_eq!(
        tags_of(&s3, "t/a.pdf").await,
        pairs(&[("stage", "reviewed"), ("owner", "é@x")])
    );
    s3.delete_object_tagging()
        .bucket(BUCKET)
        .key("t/a.pdf")
        .send()
        .await
        .expect("delete tagging");
    assert!(tags_of(&s3, "t/a.pdf").await.is_empty());
    assert!(head_of(&s3, "t/a.pdf").await.e_tag().is_some());
    // A missing object has no tags to read or write.
    let err = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key("t/none.pdf")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Some("NoSuchKey"));
    let err = s3
        .put_object_tagging()
        .bucket(BUCKET)
        .key("t/none.pdf")
        .tagging(tag_set(&[("a", "b")]))
        .send()
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Some("NoSuchKey"));
    app.stop().await;
}

#[tokio::test]
async fn tags_that_break_s3_rules_are_refused() {
    let app = spawn_app().await;
    let s3 = app.s3();
    put_pdf(&s3, "t/b.pdf", pdf(100)).await;
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (tags, status, code) in [
        (eleven.clone(), 400, "BadRequest"),
        (vec![("k", "v"), ("k", "w")], 400, "InvalidTag"),
        (vec![("k", "<script>")], 400, "InvalidTag"),
    ] {
        let err = s3
            .put_object_tagging()
            .bucket(BUCKET)
            .key("t/b.pdf")
            .tagging(tag_set(&tags))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(status)
        );
        assert_eq!(err.code(), Some(code), "{tags:?}");
    }
    // The same rules for the header on PutObject; nothing is stored.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("t/c.pdf")
        .content_type("application/pdf")
        .tagging("a=1&a=2")
        .body(ByteStream::from(pdf(100)))
        .send()
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("InvalidTag"));
    assert!(
        app.state
            .meta
            .current(BUCKET, "t/c.pdf")
            .await
            .expect("meta")
            .is_none()
    );
    assert!(tags_of(&s3, "t/b.pdf").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn multipart_objects_get_the_tags_given_at_creation() {
    let app = spawn_app().await;
    let s3 = app.s3();
    let create = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("t/mp.pdf")
        .content_type("application/pdf")
        .tagging("source=scanner");
    let (id, done) = one_part_upload(&s3, create, 3000).await;
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("t/mp.pdf")
        .upload_id(&id)
        .multipart_upload(done)
        .send()
        .await
        .expect("complete");
    assert_eq!(
        tags_of(&s3, "t/mp.pdf").await,
        pairs(&[("source", "scanner")])
    );
    app.stop().await;
}

#[tokio::test]
async fn files_are_found_by_the_tags_of_their_current_version() {
    use crate::api::{call, new_upload, tenant, upload};
    let app = spawn_app().await;
    let t = tenant(&app, "tag-search").await;
    let mut ids = Vec::new();
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        let data = pdf(10_000 + ids.len());
        let (s, link) = call(
            &app,
            "POST",
            "/v1/uploads",
            &t.api_key,
            Some(new_upload(name, &data)),
        )
        .await;
        assert_eq!(s, 201, "{link}");
        assert_eq!(upload(&link, data).await.0, 200);
        ids.push(link["file_id"].as_str().expect("id").to_string());
    }
    let s3 = app.s3();
    for (id, value) in [(&ids[0], "legal"), (&ids[1], "finance")] {
        let f = app
            .state
            .control
            .file(id)
            .await
            .expect("file")
            .expect("some");
        s3.put_object_tagging()
            .bucket(BUCKET)
            .key(f.current_key.expect("key"))
            .tagging(tag_set(&[("team", value), ("year", "2026")]))
            .send()
            .await
            .expect("tag");
    }
    let found = |q: &'static str| {
        let app = &app;
        let key = t.api_key.clone();
        async move {
            let (s, v) = call(app, "GET", &format!("/v1/files?{q}"), &key, None).await;
            assert_eq!(s, 200, "{v}");
            let mut ids: Vec<String> = v["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f["file_id"].as_str().expect("id").to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(found("tag=team:legal").await, vec![ids[0].clone()]);
    let mut both = vec![ids[0].clone(), ids[1].clone()];
    both.sort();
    assert_eq!(found("tag=year:2026").await, both);
    assert!(found("tag=team:lega").await.is_empty(), "whole values only");
    assert!(
        found("tag=team:%25").await.is_empty(),
        "LIKE wildcards are literal"
    );
    let (s, _) = call(&app, "GET", "/v1/files?tag=nocolon", &t.api_key, None).await;
    assert_eq!(s, 400);
}
