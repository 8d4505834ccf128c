//! Real backends for the storage tests: emulators started on free ports and stopped on drop
//! (moto for S3, Azurite for Azure Blob, gcp-storage-emulator for GCS), and a fault injector
//! that sits between upgate and moto.
//!
//! The emulators must be installed (see `scripts/start-emulators.sh`); a missing one fails the
//! test with the command that installs it. `UPGATE_TEST_SKIP_EMULATORS=1` skips instead (for a
//! quick local run; CI never sets it).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// moto's static credentials (it accepts any).
pub const MOTO_KEY: &str = "testing";
pub const MOTO_SECRET: &str = "testing";
/// Azurite's well-known account and key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn skip_requested() -> bool {
    std::env::var("UPGATE_TEST_SKIP_EMULATORS").is_ok_and(|v| v == "1")
}

/// A server process, killed (and reaped) on drop.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server now (fault tests).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {port} within 60 s");
}

/// Starts `program args` on a free port, or returns `None` when skipping is requested and the
/// program is missing.
fn start(
    program: &str,
    install: &str,
    args: impl FnOnce(u16, &Path) -> Vec<String>,
) -> Option<Server> {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if skip_requested() {
            eprintln!("SKIPPED: {program} is not installed ({install})");
            return None;
        }
        panic!(
            "{program} is not installed; install it with: {install} (or set UPGATE_TEST_SKIP_EMULATORS=1 to skip)"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new(program)
        .args(args(port, dir.path()))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    wait_listening(port, &mut child, program);
    Some(Server {
        port,
        child: Some(child),
        _dir: Some(dir),
    })
}

pub fn start_moto() -> Option<Server> {
    start("moto_server", "pip install 'moto[server]'", |port, _| {
        vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ]
    })
}

pub fn start_azurite() -> Option<Server> {
    start("azurite-blob", "npm install -g azurite", |port, dir| {
        vec![
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string(),
            "--location".into(),
            dir.display().to_string(),
            "--silent".into(),
            "--skipApiVersionCheck".into(),
            "--loose".into(),
        ]
    })
}

pub fn start_gcs(bucket: &str) -> Option<Server> {
    let bucket = bucket.to_string();
    start(
        "gcp-storage-emulator",
        "pip install gcp-storage-emulator",
        move |port, _| {
            vec![
                "start".into(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--in-memory".into(),
                "--default-bucket".into(),
                bucket,
                "-q".into(),
            ]
        },
    )
}

/// An aws-sdk-s3 client for moto (or anything S3 at `endpoint`).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(MOTO_KEY, MOTO_SECRET, None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub async fn create_bucket(endpoint: &str, bucket: &str) {
    s3_client(endpoint)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}

/// Every key in a bucket (to check that nothing partial became visible).
pub async fn list_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let out = s3_client(endpoint)
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// Multipart uploads still open in a bucket (aborted ones are gone).
pub async fn open_multipart_uploads(endpoint: &str, bucket: &str) -> usize {
    s3_client(endpoint)
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads")
        .uploads()
        .len()
}

/// Creates an Azurite container (object_store cannot): one SharedKey-signed request.
pub async fn create_container(endpoint: &str, container: &str) {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    let sts = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .expect("key");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(sts.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let resp = reqwest::Client::new()
        .put(format!(
            "{endpoint}/{AZURITE_ACCOUNT}/{container}?restype=container"
        ))
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header("content-length", "0")
        .header(
            "authorization",
            format!("SharedKey {AZURITE_ACCOUNT}:{sig}"),
        )
        .send()
        .await
        .expect("create container");
    assert!(
        resp.status().is_success(),
        "create container: {} {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
}

/// What the fault injector does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the upstream unchanged.
    Pass,
    /// Answer with this status and an S3 error body, without forwarding.
    Status(u16),
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without answering.
    Reset,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every request.
    All,
    /// Requests whose query contains this (e.g. "partNumber=", "uploadId=" with POST).
    Query(&'static str, &'static str),
}

/// A fault injector in front of an HTTP upstream: a real network hop that can answer 5xx,
/// stall or drop the connection. One request per connection (it answers `Connection: close`).
pub struct FaultProxy {
    pub port: u16,
    rule: Arc<Mutex<(Target, Fault)>>,
    pub hits: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, target: Target, fault: Fault) {
        if let Ok(mut r) = self.rule.lock() {
            *r = (target, fault);
        }
    }

    /// Starts the proxy in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let rule = Arc::new(Mutex::new((Target::All, Fault::Pass)));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (r, h) = (Arc::clone(&rule), Arc::clone(&hits));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (r, h) = (Arc::clone(&r), Arc::clone(&h));
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &r, &h);
                });
            }
        });
        Self { port, rule, hits }
    }
}

fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
        if head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    Ok(head)
}

fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    rule: &Mutex<(Target, Fault)>,
    hits: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = read_head(&mut client)?;
    let text = String::from_utf8_lossy(&head).to_string();
    let request_line = text.lines().next().unwrap_or("").to_string();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    client.read_exact(&mut body)?;
    if let Ok(mut h) = hits.lock() {
        h.push(request_line.clone());
    }
    let (t, fault) = rule
        .lock()
        .map(|r| *r)
        .unwrap_or((Target::All, Fault::Pass));
    let applies = match t {
        Target::All => true,
        Target::Query(m, q) => method == m && target.contains(q),
    };
    let fault = if applies { fault } else { Fault::Pass };
    match fault {
        Fault::Status(code) => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>injected</Message></Error>",
                if code == 503 {
                    "SlowDown"
                } else {
                    "InternalError"
                }
            );
            let resp = format!(
                "HTTP/1.1 {code} Injected\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(resp.as_bytes())?;
            return Ok(());
        }
        Fault::Reset => return Ok(()),
        Fault::Delay(d) => std::thread::sleep(d),
        Fault::Pass => {}
    }
    // Forward with `connection: close` so the response ends at EOF.
    let mut up = TcpStream::connect(upstream)?;
    let mut fwd = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        fwd.push_str(line);
        fwd.push_str("\r\n");
    }
    fwd.push_str("connection: close\r\n\r\n");
    up.write_all(fwd.as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    client.write_all(&resp)?;
    Ok(())
}
