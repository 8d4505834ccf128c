//! E-mail notices end to end: a gateway with `[mail]` enabled, link uploads through the control
//! API, and a real SMTP server (aiosmtpd, from PyPI, with `tests/support/smtp_sink.py`) that
//! keeps each message as files. Backoffs are milliseconds here.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{call, new_upload, tenant, upload};
use crate::common::*;

/// The SMTP server: aiosmtpd with the message-directory handler. Killed when dropped.
struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Sink {
    /// Starts on `port` and waits until it accepts connections.
    async fn start(port: u16, dir: &Path) -> Self {
        let support = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "smtp_sink.MessageDir"])
            .arg(dir)
            .env("PYTHONPATH", support)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install -r tests/compat/requirements.txt)");
        let sink = Self {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sink
    }

    /// The messages received so far (the JSON records of the handler), oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "json"));
        names.sort();
        names
            .iter()
            .map(|p| {
                let mut v: Value =
                    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
                // Bodies travel with CRLF line ends.
                for part in ["text", "html"] {
                    let body = v[part].as_str().unwrap_or_default().replace("\r\n", "\n");
                    v[part] = Value::String(body);
                }
                v["raw"] = Value::String(
                    String::from_utf8_lossy(
                        &std::fs::read(p.with_extension("eml")).expect("read raw"),
                    )
                    .into_owned(),
                );
                v
            })
            .collect()
    }

    /// Waits until `n` messages arrived (and a moment more, so that a duplicate would show);
    /// also returns when the `n`-th was seen.
    async fn wait_for(&self, n: usize, within: Duration) -> (Vec<Value>, Instant) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.messages();
            if got.len() >= n {
                let seen = Instant::now();
                tokio::time::sleep(Duration::from_millis(300)).await;
                return (self.messages(), seen);
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages after {within:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound once, then released).
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A gateway that mails every notice to its own recipient, through 127.0.0.1:`port`, with
/// retries every few milliseconds, and warns at 1 % of a 1 MB quota.
async fn gateway(port: u16) -> TestApp {
    spawn_app_with(&format!(
        "[quotas]\nmax_bytes = 1000000\nwarn_percent = 1\n\
         [webhooks]\npoll_interval_ms = 20\nbackoff_base_ms = 20\nbackoff_max_ms = 200\n\
         max_attempts = 1000\n\
         [mail]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"upgate <upgate@example.com>\"\ntimeout_ms = 2000\n\
         [mail.recipients]\nupload_completed = [\"files@example.com\"]\n\
         token_exhausted = [\"tokens@example.com\"]\nquota_warning = [\"quota@example.com\"]\n"
    ))
    .await
}

/// What an upload through a one-upload token left to check: the secrets a mail must not hold,
/// the file as its owner sees it, and when the upload was acknowledged.
struct Uploaded {
    secrets: Vec<String>,
    file: Value,
    token_id: String,
    sha256: String,
    done: Instant,
}

/// Mints a one-upload token, uploads `name` with it; the tenant's first 20 kB cross 1 % of
/// its quota.
async fn upload_with_token(app: &TestApp, name: &str) -> Uploaded {
    let t = tenant(app, "mail").await;
    let (status, tok) = call(
        app,
        "POST",
        "/v1/upload-tokens",
        &t.api_key,
        Some(
            json!({"client_id": "kiosk-1", "expires_in": 600, "max_uploads": 1,
                    "max_bytes": 100_000, "allowed_types": ["application/pdf"]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{tok}");
    let token = tok["token"].as_str().expect("token").to_string();
    let data = pdf(20_000);
    let (status, link) = call(
        app,
        "POST",
        "/v1/uploads",
        &token,
        Some(new_upload(name, &data)),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(upload(&link, data.clone()).await.0, 200);
    let done = Instant::now();
    let (_, files) = call(app, "GET", "/v1/files", &t.api_key, None).await;
    let url = link["url"].as_str().expect("url").to_string();
    let signature = url
        .split("X-Amz-Signature=")
        .nth(1)
        .expect("a signed link")
        .to_string();
    Uploaded {
        secrets: vec![
            token,
            t.api_key.clone(),
            signature,
            SECRET_KEY.to_string(),
            String::from_utf8_lossy(&data[..64]).into_owned(),
        ],
        file: files["files"][0].clone(),
        token_id: tok["token_id"].as_str().unwrap_or_default().to_string(),
        sha256: sha256_hex(&data),
        done,
    }
}

fn to_of(m: &Value) -> String {
    m["rcpt_tos"][0].as_str().unwrap_or_default().to_string()
}

/// The message sent to `rcpt`, which must be the only one to it.
fn only_to<'a>(messages: &'a [Value], rcpt: &str) -> &'a Value {
    let to: Vec<&Value> = messages.iter().filter(|m| to_of(m) == rcpt).collect();
    assert_eq!(to.len(), 1, "one message to {rcpt}: {messages:?}");
    to[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_mailed_escaped_and_without_secrets() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start(port, dir.path()).await;
    let app = gateway(port).await;
    // No `/`: a display name keeps only what follows the last one.
    let hostile = "<img src=x onerror=\"alert('1')\"> & <b>bold.pdf";
    let up = upload_with_token(&app, hostile).await;
    let (messages, seen) = sink.wait_for(3, Duration::from_secs(20)).await;
    let latency = seen - up.done;
    assert_eq!(messages.len(), 3, "{messages:?}");
    // The display-name cleaner already turns markup into `_`; the mail shows the name as
    // stored, and its HTML carries no markup of the upload (escaping itself is checked below
    // with a stored name the cleaner did not make).
    let filename = up.file["filename"].as_str().expect("filename").to_string();
    assert_eq!(filename, "_img src_x onerror__alert(_1_)__ _ _b_bold.pdf");

    let m = only_to(&messages, "files@example.com");
    assert_eq!(m["mail_from"], "upgate@example.com");
    assert_eq!(m["subject"], format!("Upload completed: {filename}"));
    let text = m["text"].as_str().unwrap_or_default();
    let html = m["html"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("File: {filename}\n")), "{text}");
    assert!(
        text.contains(&format!("SHA-256: {}\n", up.sha256)),
        "{text}"
    );
    assert!(text.contains("Size: 20000 bytes\n"), "{text}");
    assert!(text.contains("Bucket: uploads\n"), "{text}");
    assert!(html.contains(&format!("<td>{filename}</td>")), "{html}");
    assert!(html.contains(&up.sha256));

    let m = only_to(&messages, "tokens@example.com");
    assert_eq!(
        m["subject"],
        format!("Upload token used up: {}", up.token_id)
    );
    assert!(
        m["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Uploads: 1 of 1\n")
    );
    assert!(
        m["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Client: kiosk-1\n")
    );

    let m = only_to(&messages, "quota@example.com");
    assert!(
        m["subject"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Quota warning: tenant "),
        "{m}"
    );
    assert!(
        m["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Bytes: 20000 of 1000000\n")
    );

    for m in &messages {
        let raw = m["raw"].as_str().unwrap_or_default();
        for secret in &up.secrets {
            assert!(!raw.contains(secret.as_str()), "a secret in a mail: {raw}");
        }
        assert!(
            m["message_id"]
                .as_str()
                .unwrap_or_default()
                .ends_with("@upgate>")
        );
        assert_eq!(
            m["rcpt_tos"].as_array().map(Vec::len),
            Some(1),
            "one recipient each"
        );
    }
    let metrics = app.state.metrics.encode();
    assert!(
        metrics.contains("upgate_outbox_deliveries_total{kind=\"mail\",outcome=\"delivered\"} 3"),
        "{metrics}"
    );
    eprintln!("mail: 3 notices delivered {latency:?} after the upload was acknowledged");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_is_retried_until_the_server_is_back() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = gateway(port).await;
    let up = upload_with_token(&app, "report.pdf").await;
    // Nothing listens yet: every notice fails, and is retried.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = app.state.metrics.encode();
        if metrics.contains("upgate_outbox_deliveries_total{kind=\"mail\",outcome=\"failed\"}") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed mail attempt: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = Instant::now();
    let sink = Sink::start(port, dir.path()).await;
    let (messages, seen) = sink.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 3, "each notice once: {messages:?}");
    let m = only_to(&messages, "files@example.com");
    assert_eq!(m["subject"], "Upload completed: report.pdf");
    assert!(m["text"].as_str().unwrap_or_default().contains(&up.sha256));
    eprintln!(
        "mail: delivered {:?} after the SMTP server came back ({:?} after the upload)",
        seen - back,
        seen - up.done
    );
    app.stop().await;
}

/// A mail row whose facts hold markup (a name stored by another writer, or one the cleaner
/// lets through in future): the worker's message escapes every value in its HTML and keeps
/// line breaks out of the subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_values_are_html_escaped_in_the_delivered_mail() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start(port, dir.path()).await;
    let app = gateway(port).await;
    let hostile = "<img src=x onerror=\"alert('1')\"> & <b>bold</b>\r\nBcc: x@example.com.pdf";
    let now = upgate::clock::now_ms();
    app.state
        .control
        .enqueue(
            &upgate::metadata::control::OutboxEvent {
                id: "hostile-1.mail.0".into(),
                tenant_id: "t1".into(),
                event: upgate::events::mail::MAIL.into(),
                payload: json!({"notice": "upload.completed", "to": "files@example.com",
                                "facts": {"filename": hostile, "size": 1, "tenant_id": "t1"}})
                .to_string(),
                created_at_ms: now,
                attempts: 0,
            },
            now,
        )
        .await
        .expect("enqueue");
    let (messages, _) = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        m["rcpt_tos"],
        json!(["files@example.com"]),
        "no Bcc smuggled in"
    );
    let html = m["html"].as_str().unwrap_or_default();
    assert!(!html.contains("<img") && !html.contains("<b>"), "{html}");
    assert!(
        html.contains(
            "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
        ),
        "{html}"
    );
    let subject = m["subject"].as_str().unwrap_or_default();
    assert!(subject.starts_with("Upload completed: <img"), "{subject}");
    assert!(!subject.contains('\n') && !m["raw"].as_str().unwrap_or_default().contains("\nBcc:"));
    assert_eq!(m["message_id"], "<hostile-1.mail.0@upgate>");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_a_drop_link_was_made_for_is_told_of_its_uploads() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start(port, dir.path()).await;
    let app = gateway(port).await;
    let t = tenant(&app, "mail-drop").await;
    let (status, tok) = call(
        &app,
        "POST",
        "/v1/upload-tokens",
        &t.api_key,
        Some(json!({"client_id": "case-4711", "max_uploads": 1, "notify_email": "paralegal@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{tok}");
    let token = tok["token"].as_str().expect("token").to_string();
    let data = pdf(20_000);
    let (status, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &token,
        Some(new_upload("contract.pdf", &data)),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(upload(&link, data).await.0, 200);
    // The configured recipients (3 notices) and the link's own address (completed + used up).
    let (messages, _) = sink.wait_for(5, Duration::from_secs(20)).await;
    let mine: Vec<&Value> = messages
        .iter()
        .filter(|m| to_of(m) == "paralegal@example.com")
        .collect();
    let mut subjects: Vec<&str> = mine.iter().filter_map(|m| m["subject"].as_str()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "Upload completed: contract.pdf".to_string(),
            format!(
                "Upload token used up: {}",
                tok["token_id"].as_str().expect("id")
            ),
        ],
        "{messages:?}"
    );
    for m in &mine {
        assert!(!m["raw"].as_str().unwrap_or_default().contains(&token));
    }
    // A link without an address tells only the configured recipients.
    let (_, plain) = call(
        &app,
        "POST",
        "/v1/upload-tokens",
        &t.api_key,
        Some(json!({"client_id": "plain"})),
    )
    .await;
    let token = plain["token"].as_str().expect("token").to_string();
    let data = pdf(21_000);
    let (_, link) = call(
        &app,
        "POST",
        "/v1/uploads",
        &token,
        Some(new_upload("other.pdf", &data)),
    )
    .await;
    assert_eq!(upload(&link, data).await.0, 200);
    let (messages, _) = sink.wait_for(7, Duration::from_secs(20)).await;
    assert_eq!(
        messages
            .iter()
            .filter(|m| to_of(m) == "paralegal@example.com")
            .count(),
        2
    );
    app.stop().await;
}
