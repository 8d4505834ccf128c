//! Test harness: an in-process gateway on port 0 with a temp data dir, plus real clients.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tokio::sync::oneshot;
use upgate::app::App;
use upgate::auth::Credential;
use upgate::auth::SecretKey;
use upgate::config::Config;
use upgate::state::AppState;

pub const ACCESS_KEY: &str = "AKIDUPGATETEST000001";
pub const SECRET_KEY: &str = "upgate-test-secret-key-0123456789abcdef";
pub const BUCKET: &str = "uploads";

pub struct TestApp {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub tls: Option<Arc<upgate::tls::TlsState>>,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        client_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// Files under the objects directory (staging files included): INV-1 checks that a failed
    /// upload left nothing behind.
    pub fn object_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.dir.path().join("objects"), &mut out);
        out
    }

    /// Asks the server to shut down (stop accepting, drain) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits until the server task has finished.
    pub async fn join(&mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Stops the server and hands back its data directory (to start again on it).
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        self.begin_shutdown();
        self.join().await;
        // Let background cleanups and pools settle before the next process-like start.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let TestApp { dir, .. } = self;
        dir
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

pub fn client_for(endpoint: &str, ak: &str, sk: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Starts a gateway with the defaults, a temp data dir, port 0, and `extra` config TOML.
pub async fn spawn_app_with(extra: &str) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("tempdir"), extra).await
}

/// Like [`spawn_app_with`], on an existing data directory (a restart).
pub async fn spawn_app_in(dir: tempfile::TempDir, extra: &str) -> TestApp {
    let env = vec![
        (
            "UPGATE__SERVER__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "UPGATE__ADMIN__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "UPGATE__STORAGE__DATA_DIR".to_string(),
            dir.path().display().to_string(),
        ),
    ];
    let config = Config::from_layers(Some(extra), env).expect("config");
    let root = Credential {
        access_key_id: ACCESS_KEY.to_string(),
        secret: SecretKey::new(SECRET_KEY.to_string()),
    };
    let app = App::build(config, Some(root)).await.expect("build");
    let addr = app.local_addr().expect("addr");
    let admin = app.admin_addr();
    let tls = app.tls();
    let state = app.state();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        admin,
        tls,
        state,
        dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

/// Reads `key` of the test bucket back whole through the SDK.
pub async fn get_bytes(app: &TestApp, key: &str) -> Vec<u8> {
    let got = app
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get");
    got.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// Uploads `parts` (in order) as one S3 multipart upload of `key` and completes it: the ETag, or
/// the S3 error code of the completion.
pub async fn multipart_put(
    s3: &aws_sdk_s3::Client,
    key: &str,
    content_type: &str,
    parts: &[&[u8]],
) -> Result<String, String> {
    multipart_put_checked(s3, key, content_type, parts, None, None)
        .await
        .map(|o| o.e_tag().unwrap_or_default().to_string())
        .map_err(|(_, code)| code)
}

/// Like [`multipart_put`], with the checksum `alg` (of type `kind`, if given) asked for at
/// creation and sent with every part (and each part's checksum listed at completion): the
/// completion's answer, or its status and S3 code.
pub async fn multipart_put_checked(
    s3: &aws_sdk_s3::Client,
    key: &str,
    content_type: &str,
    parts: &[&[u8]],
    alg: Option<aws_sdk_s3::types::ChecksumAlgorithm>,
    kind: Option<aws_sdk_s3::types::ChecksumType>,
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    (u16, String),
> {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let up = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .content_type(content_type)
        .set_checksum_algorithm(alg.clone())
        .set_checksum_type(kind)
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    let mut done = Vec::new();
    for (n, chunk) in (1..).zip(parts) {
        let r = s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .set_checksum_algorithm(alg.clone())
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .expect("part");
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().expect("etag"))
                .set_checksum_crc32(r.checksum_crc32().map(str::to_string))
                .set_checksum_sha256(r.checksum_sha256().map(str::to_string))
                .set_checksum_crc64_nvme(r.checksum_crc64_nvme().map(str::to_string))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map_err(failure)
}

/// A minimal PDF-looking body of `len` bytes (magic + deterministic filler).
pub fn pdf(len: usize) -> Vec<u8> {
    // The filler is the data of a stream, as binary is in real PDFs (so that the active-content
    // check, which reads every byte outside streams, sees no random names).
    let mut v = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Length 0 >>\nstream\n".to_vec();
    let mut x: u32 = 0x1234_5678;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push((x & 0xff) as u8);
    }
    v.truncate(len);
    v
}

/// A PNG-looking body of `len` bytes.
pub fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
    while v.len() < len {
        v.push((v.len() % 251) as u8);
    }
    v.truncate(len);
    v
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// How the test signer declares the payload.
pub enum Payload<'a> {
    /// Hash these bytes into x-amz-content-sha256.
    Bytes(&'a [u8]),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// A literal x-amz-content-sha256 value (a wrong hash, a STREAMING-* mode...).
    Literal(&'a str),
}

/// Signs a request with the aws-sigv4 crate (an independent implementation) as S3 clients do:
/// single URI encoding, no path normalisation, x-amz-content-sha256 header. Returns the headers
/// to add (Authorization, x-amz-date, x-amz-content-sha256).
pub fn sign_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    payload: Payload<'_>,
    time: std::time::SystemTime,
    secret: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
        SigningSettings, UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    let identity = Credentials::new(ACCESS_KEY, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = SignatureLocation::Headers;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let body = match payload {
        Payload::Bytes(b) => SignableBody::Bytes(b),
        Payload::Unsigned => SignableBody::UnsignedPayload,
        Payload::Literal(s) => SignableBody::Precomputed(s.to_string()),
    };
    let req = SignableRequest::new(method, url, headers.iter().copied(), body).expect("signable");
    let (instructions, _) = sign(req, &params).expect("sign").into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A presigned URL (query auth) made with aws-sigv4.
pub fn presign_url(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    expires: std::time::Duration,
    time: std::time::SystemTime,
) -> String {
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let req = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .expect("signable");
    let (instructions, _) = sign(req, &params).expect("sign").into_parts();
    let mut out = url.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in instructions.params() {
        out.push(sep);
        sep = '&';
        out.push_str(k);
        out.push('=');
        out.push_str(
            &percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    out
}

/// The head of a signed raw PUT of `key` with a `len`-byte body (payload unsigned).
pub fn raw_put_head(app: &TestApp, key: &str, len: usize) -> String {
    let u = format!("{}/{BUCKET}/{key}", app.endpoint());
    let host = app.addr.to_string();
    let len = len.to_string();
    let signed = sign_headers(
        "PUT",
        &u,
        &[("host", &host), ("content-length", &len)],
        Payload::Unsigned,
        std::time::SystemTime::now(),
        SECRET_KEY,
    );
    let mut head =
        format!("PUT /{BUCKET}/{key} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {len}\r\n");
    for (k, v) in signed {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Sends a raw request with reqwest and returns (status, headers, body).
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut req = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        url,
    );
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

/// Sends a bodiless request signed (in headers) with the root key, raw: (status, headers,
/// body), for what an SDK would not send or would not show.
pub async fn signed_bodiless(
    method: &str,
    url: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let headers = sign_headers(
        method,
        url,
        &[],
        Payload::Bytes(b""),
        std::time::SystemTime::now(),
        SECRET_KEY,
    );
    send(method, url, &headers, Vec::new()).await
}

/// The status and S3 code of a failed SDK call.
pub fn failure<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> (u16, String) {
    let status = e.raw_response().map_or(0, |r| r.status().as_u16());
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
    (status, code.to_string())
}

/// The `<Code>` of an S3 XML error body.
pub fn error_code(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

/// Path of the Redis server binary tests start privately (never the shared 6379 one).
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A private redis-server on a free port; killed on drop.
pub struct RedisProc {
    pub port: u16,
    child: Option<Child>,
}

impl RedisProc {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut r = RedisProc { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(
            std::path::Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is required (scripts/ensure-services.sh installs redis-server)"
        );
        self.kill();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A stopped process must be continued to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// Puts `body` at `key` of the test bucket as a PDF through the SDK (a fixture, not the subject).
pub async fn put_pdf(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type("application/pdf")
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .expect("put");
}

/// HEAD of `key` in the test bucket through the SDK.
pub async fn head_of(
    s3: &aws_sdk_s3::Client,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    s3.head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("head")
}

/// Sends `create` (a CreateMultipartUpload), uploads one PDF part of `len` bytes to it and
/// returns the upload id and the list that completes it.
pub async fn one_part_upload(
    s3: &aws_sdk_s3::Client,
    create: aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder,
    len: usize,
) -> (String, aws_sdk_s3::types::CompletedMultipartUpload) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let up = create.send().await.expect("create");
    let (key, id) = (up.key().expect("key"), up.upload_id().expect("id"));
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from(pdf(len)))
        .send()
        .await
        .expect("part");
    let done = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        )
        .build();
    (id.to_string(), done)
}

/// HMAC-SHA256, for tests that sign by the spec's formula.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// A fresh PostgreSQL schema for one test: the metadata config that uses it, and a drop of it
/// when the test is done (`UPGATE_TEST_POSTGRES_URL`, default the local test database).
pub struct PgSchema {
    pub url: String,
    pub schema: String,
}

impl PgSchema {
    pub fn new() -> Self {
        let url = std::env::var("UPGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let schema = format!("e2e_{}", upgate::id::random_hex(6));
        Self { url, schema }
    }

    /// The `[metadata]` config section that points a gateway at the schema.
    pub fn config(&self) -> String {
        format!(
            "[metadata]\nurl = {:?}\nschema = {:?}\n",
            self.url, self.schema
        )
    }

    pub async fn drop(self) {
        let pool = sqlx::PgPool::connect(&self.url).await.expect("connect");
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&pool)
            .await
            .expect("drop schema");
    }
}

/// A fresh MySQL / MariaDB database for one test: the metadata config that uses it, and a drop
/// of it when the test is done (`UPGATE_TEST_MYSQL_URL`, default the local server's `test`
/// database; the fresh database is created beside it).
pub struct MySqlDatabase {
    /// The URL of the server's database given in the environment (to create and drop from).
    pub admin_url: String,
    pub name: String,
}

impl MySqlDatabase {
    pub async fn new() -> Self {
        use sqlx::{Connection, Executor};
        let admin_url = std::env::var("UPGATE_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string());
        let name = format!("e2e_{}", upgate::id::random_hex(6));
        let mut conn = sqlx::MySqlConnection::connect(&admin_url)
            .await
            .expect("connect to MySQL");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        let _ = conn.close().await;
        Self { admin_url, name }
    }

    /// The URL of the fresh database.
    pub fn url(&self) -> String {
        let server = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(server, _)| server);
        format!("{server}/{}", self.name)
    }

    /// The `[metadata]` config section that points a gateway at the database.
    pub fn config(&self) -> String {
        format!("[metadata]\nurl = {:?}\n", self.url())
    }

    pub async fn drop(self) {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::MySqlConnection::connect(&self.admin_url)
            .await
            .expect("connect");
        conn.execute(format!("DROP DATABASE {}", self.name).as_str())
            .await
            .expect("drop database");
        let _ = conn.close().await;
    }
}

/// `upgate admin ARGS` as a second process on the app's data directory (and so its database);
/// fails the test unless it succeeds, and returns the JSON it prints.
pub async fn admin_json(app: &TestApp, args: &[&str]) -> serde_json::Value {
    let dir = app.dir.path().to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_upgate"))
            .arg("admin")
            .args(&args)
            .env("UPGATE__STORAGE__DATA_DIR", &dir)
            .output()
            .expect("runs")
    })
    .await
    .expect("joins");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The app's Prometheus text from its admin listener.
pub async fn metrics_text(app: &TestApp) -> String {
    let admin = app.admin.expect("admin listener");
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// A zip archive of `entries` (deflated), as Office documents are.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).expect("entry");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// A Word document whose body is `document` (the `word/document.xml` part), plus `extra` parts.
pub fn docx_with(document: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let types = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>"#;
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("[Content_Types].xml", types),
        ("word/document.xml", document),
    ];
    entries.extend_from_slice(extra);
    zip_of(&entries)
}

/// A one-page PDF whose text layer says `words` (Helvetica, an uncompressed content stream),
/// padded with a comment to at least `len` bytes.
pub fn pdf_with_text(words: &str, len: usize) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 712 Td ({words}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let pad = len.saturating_sub(600);
    if pad > 0 {
        out.extend_from_slice(b"%");
        out.extend(std::iter::repeat_n(b'x', pad));
        out.push(b'\n');
    }
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}
