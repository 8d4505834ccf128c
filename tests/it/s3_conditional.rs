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

/// One HTTP/1 answer read off `stream`: its status, its head (lowercase) and its body (by
/// `content-length`).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> (u16, String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().expect("length"));
    while got.len() < head_end + len {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed inside the body");
        got.extend_from_slice(&buf[..n]);
    }
    (status, head, got[head_end..head_end + len].to_vec())
}

/// The next answer on `stream` (within 10 s), which must have `status`: its head and body.
async fn answered(stream: &mut tokio::net::TcpStream, status: u16) -> (String, Vec<u8>) {
    let (got, head, body) = tokio::time::timeout(TIMEOUT, read_answer(stream))
        .await
        .expect("answered");
    assert_eq!(got, status, "{head}");
    (head, body)
}

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The next answer on `stream` is the error `status` / `code`, and says the connection closes.
async fn closing_error(stream: &mut tokio::net::TcpStream, status: u16, code: &str) {
    let (answer, body) = answered(stream, status).await;
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert_eq!(error_code(&body), code);
}

/// Nothing more arrives on `stream`, and it ends cleanly (an end, not a reset).
async fn ends_cleanly(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("ended")
        .expect("ended without a reset");
    assert_eq!(n, 0, "nothing after the answer");
}

/// A new connection to `app` on which `bytes` were sent.
async fn sent(app: &TestApp, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    c.write_all(bytes).await.expect("send");
    c
}

#[tokio::test]
async fn an_error_to_a_request_with_a_body_closes_its_connection_and_says_so() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    put(&app.s3(), "c/taken.pdf", pdf(1000), None, None)
        .await
        .expect("first write");

    // As boto3 sends a PUT: the head, then nothing until `100 Continue`. Refused from the head
    // (the key is taken), the body is never asked for; the answer says the connection ends,
    // and it does.
    let head = raw_put_head(&app, "c/taken.pdf", 5000).replacen(
        "\r\n\r\n",
        "\r\nif-none-match: *\r\nexpect: 100-continue\r\n\r\n",
        1,
    );
    let mut c = sent(&app, head.as_bytes()).await;
    closing_error(&mut c, 412, "PreconditionFailed").await;
    ends_cleanly(&mut c).await;

    // A body sent with the head, refused before it is read (no signature): the whole error
    // arrives, with the same notice.
    let anonymous = format!(
        "PUT /{BUCKET}/c/anon.pdf HTTP/1.1\r\nhost: {}\r\ncontent-length: 200000\r\n\r\n",
        app.addr
    );
    let mut c = sent(&app, &[anonymous.as_bytes(), &pdf(65536)].concat()).await;
    closing_error(&mut c, 403, "AccessDenied").await;

    // An error to a request without a body keeps the connection: the next request is answered
    // on it.
    let mut c = sent(&app, b"").await;
    let get = format!(
        "GET /{BUCKET}/c/taken.pdf HTTP/1.1\r\nhost: {}\r\n\r\n",
        app.addr
    );
    for _ in 0..2 {
        c.write_all(get.as_bytes()).await.expect("request");
        let (answer, _) = answered(&mut c, 403).await;
        assert!(!answer.contains("connection: close"), "{answer}");
    }
    // And a successful upload keeps it too.
    let mut c = sent(&app, b"").await;
    for key in ["c/a.pdf", "c/b.pdf"] {
        c.write_all(raw_put_head(&app, key, 3000).as_bytes())
            .await
            .expect("head");
        c.write_all(&pdf(3000)).await.expect("body");
        let (answer, _) = answered(&mut c, 200).await;
        assert!(!answer.contains("connection: close"), "{answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_still_arriving_after_an_early_answer_is_taken_to_its_end_not_reset() {
    // The client sends its body before reading (no `Expect: 100-continue`, as browsers do) and
    // is refused from the head. The server answers and closes, but reads what is still coming
    // instead of resetting the connection under the answer: the client can send the rest and
    // then finds a clean end.
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let len = 1024 * 1024;
    let body = pdf(len);
    let head = format!(
        "PUT /{BUCKET}/c/anon.pdf HTTP/1.1\r\nhost: {}\r\ncontent-length: {len}\r\n\r\n",
        app.addr
    );
    let mut c = sent(&app, &[head.as_bytes(), &body[..65536]].concat()).await;
    closing_error(&mut c, 403, "AccessDenied").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    c.write_all(&body[65536..])
        .await
        .expect("the rest of the body is taken");
    ends_cleanly(&mut c).await;
    app.stop().await;
}
