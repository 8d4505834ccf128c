//! Production operations over the public interface: metrics, probes, HTTP-layer caps and
//! timeouts (SECURITY-TESTS section H), TLS with certificate reload, graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("get");
    let s = r.status().as_u16();
    (s, r.text().await.expect("text"))
}

/// Reads until the peer closes or `limit` passes; returns what arrived and whether it closed.
async fn read_all(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

fn metric(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_a_known_sequence_of_requests_exactly() {
    let app = spawn_app().await;
    let s3 = app.s3();
    for k in ["m1.pdf", "m2.pdf"] {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(ByteStream::from(pdf(3000)))
            .send()
            .await
            .expect("put");
    }
    s3.get_object()
        .bucket(BUCKET)
        .key("m1.pdf")
        .send()
        .await
        .expect("get");
    let _ = s3.get_object().bucket(BUCKET).key("nope").send().await;
    let _ = s3
        .put_object()
        .bucket(BUCKET)
        .key("x.png")
        .content_type("image/png")
        .body(ByteStream::from(pdf(3000)))
        .send()
        .await;
    let admin = format!("http://{}", app.admin.expect("admin listener"));
    let (status, text) = get_text(&format!("{admin}/metrics")).await;
    assert_eq!(status, 200);
    let get = |p: &str| metric(&text, p).unwrap_or_else(|| panic!("{p} missing in\n{text}"));
    assert_eq!(
        get("upgate_requests_total{op=\"PutObject\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        get("upgate_requests_total{op=\"PutObject\",status=\"415\"}"),
        1.0
    );
    assert_eq!(
        get("upgate_requests_total{op=\"GetObject\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        get("upgate_requests_total{op=\"GetObject\",status=\"404\"}"),
        1.0
    );
    assert_eq!(get("upgate_rejections_total{reason=\"type\"}"), 1.0);
    assert_eq!(get("upgate_rejections_total{reason=\"not_found\"}"), 1.0);
    assert_eq!(get("upgate_received_bytes_total"), 6000.0);
    assert_eq!(get("upgate_sent_bytes_total"), 3000.0);
    assert_eq!(get("upgate_upload_size_bytes_count"), 2.0);
    assert_eq!(get("upgate_inflight_uploads"), 0.0);
    // The metrics listener is not the public one.
    let (status, _) = get_text(&format!("{}/metrics", app.endpoint())).await;
    assert_ne!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn probes_report_each_dependency() {
    let app = spawn_app().await;
    for base in [
        app.endpoint(),
        format!("http://{}", app.admin.expect("admin")),
    ] {
        let (status, body) = get_text(&format!("{base}/healthz")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        let (status, body) = get_text(&format!("{base}/readyz")).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["checks"]["metadata"], "ok");
        assert_eq!(v["checks"]["storage"], "ok");
    }
    app.stop().await;
}

#[tokio::test]
async fn readiness_asks_redis_itself_and_follows_the_failure_mode() {
    let mut redis = RedisProc::start();
    let closed = spawn_app_with(&format!(
        "[ratelimit]\nfailure_mode = \"closed\"\n[redis]\nurl = \"{}\"\n",
        redis.url()
    ))
    .await;
    let local = spawn_app_with(&format!(
        "[ratelimit]\nfailure_mode = \"local\"\n[redis]\nurl = \"{}\"\n",
        redis.url()
    ))
    .await;
    let ready = |app: &TestApp| {
        let url = format!("{}/readyz", app.endpoint());
        async move {
            let (s, body) = get_text(&url).await;
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            (s, v["checks"]["redis"].as_str().unwrap_or("").to_string())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(&closed).await != (200, "ok".to_string()) {
        assert!(Instant::now() < deadline, "never ready with redis up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Redis goes away while no request makes a rate-limit decision: readiness still sees it.
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(ready(&closed).await, (503, "unavailable".to_string()));
    // Serving on local limits does not need Redis: reported, still ready.
    assert_eq!(ready(&local).await, (200, "unavailable".to_string()));
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(&closed).await != (200, "ok".to_string()) {
        assert!(
            Instant::now() < deadline,
            "never ready again after redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    closed.stop().await;
    local.stop().await;
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    // T-H4.
    let app = spawn_app().await;
    let mut many = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    for i in 0..101 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    for req in [many, big] {
        let mut s = TcpStream::connect(app.addr).await.expect("connect");
        let _ = s.write_all(req.as_bytes()).await;
        let (resp, _) = read_all(&mut s, Duration::from_secs(5)).await;
        assert!(
            resp.starts_with("HTTP/1.1 431"),
            "{}",
            &resp[..resp.len().min(200)]
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_timeout() {
    // T-H1: hyper only enforces this when a timer is configured; prove it is.
    let app = spawn_app_with("[server]\nheader_read_timeout_secs = 1\n").await;
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(b"PUT /uploads/x HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial head");
    let started = Instant::now();
    let (_, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "connection still open after 5 s");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    // T-H7.
    let app = spawn_app_with("[server]\nmax_connections_per_ip = 2\n").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(app.addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("w");
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.expect("r");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = TcpStream::connect(app.addr)
        .await
        .expect("tcp accept happens in the kernel");
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let (resp, closed) = read_all(&mut third, Duration::from_secs(3)).await;
    assert!(closed && resp.is_empty(), "third connection served: {resp}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = get_text(&format!("{}/healthz", app.endpoint())).await;
    assert_eq!(status, 200, "slots are released when connections close");
    app.stop().await;
}

/// Opens `n` TCP connections to `app` from loopback address 127.0.0.`host` that send nothing.
async fn silent_connections(app: &TestApp, host: u8, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(std::net::SocketAddr::from(([127, 0, 0, host], 0)))
            .expect("bind");
        out.push(sock.connect(app.addr).await.expect("connect"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_locks_out_no_one_and_is_closed_at_the_header_timeout() {
    // 17 addresses, each under its cap, together holding far more connections than there are
    // slots, none of them sending a byte; and an HTTP/2 connection that only sends its preface.
    let app = spawn_app_with(
        "[server]
max_connections = 200
max_connections_per_ip = 30
header_read_timeout_secs = 3
",
    )
    .await;
    let mut flood = Vec::new();
    for host in 2..19u8 {
        flood.extend(silent_connections(&app, host, 25).await);
    }
    assert_eq!(flood.len(), 425);
    let mut h2 = TcpStream::connect(app.addr).await.expect("connect");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flood_started = Instant::now();

    // A client that speaks is served at once.
    let started = Instant::now();
    let put = app
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key("flood/ok.pdf")
        .body(ByteStream::from(pdf(50_000)))
        .send();
    tokio::time::timeout(Duration::from_secs(5), put)
        .await
        .expect("answered")
        .expect("stored");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Every silent connection is closed by the header timeout (3 s from its accept), the
    // HTTP/2 one that opened no stream too.
    let (_, closed) = read_all(&mut h2, Duration::from_secs(5)).await;
    assert!(closed, "an HTTP/2 connection without a stream stayed open");
    let mut open = 0;
    for s in &mut flood {
        let left = Duration::from_secs(8).saturating_sub(flood_started.elapsed());
        let (_, closed) = read_all(s, left.max(Duration::from_millis(50))).await;
        if !closed {
            open += 1;
        }
    }
    assert_eq!(open, 0, "silent connections still open");
    let admin = app.admin.expect("admin listener");
    let (_, metrics) = get_text(&format!("http://{admin}/metrics")).await;
    let count = |reason: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("upgate_connections_closed_by_server_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("shed") >= 1.0, "{metrics}");
    assert!(count("shed") + count("silent") >= 425.0, "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let app = spawn_app_with(
        "[server]
idle_timeout_secs = 1
",
    )
    .await;
    let mut idle = TcpStream::connect(app.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("w");
    let started = Instant::now();
    let (resp, closed) = read_all(&mut idle, Duration::from_secs(4)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(closed, "idle keep-alive connection still open");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // An upload that takes longer than the idle timeout is in flight, not idle.
    let body = pdf(400_000);
    let mut busy = TcpStream::connect(app.addr).await.expect("connect");
    let host = app.addr.to_string();
    let url = presign_url(
        "PUT",
        &format!("{}/{BUCKET}/idle/slow.pdf", app.endpoint()),
        &[("host", &host)],
        Duration::from_secs(300),
        SystemTime::now(),
    );
    let path = &url[app.endpoint().len()..];
    busy.write_all(
        format!(
            "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n\r\n",
            app.addr,
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    for chunk in body.chunks(100_000) {
        busy.write_all(chunk).await.expect("body");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let (resp, _) = read_all(&mut busy, Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    app.stop().await;
}

#[tokio::test]
async fn request_smuggling_corpus_is_refused() {
    // T-H5: each is answered 400 (or the connection is closed) and never desyncs into a second
    // request on the same connection.
    let app = spawn_app().await;
    let smuggled = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let cases = [
        format!(
            "PUT /uploads/a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "PUT /uploads/a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!{smuggled}"
        ),
        format!("PUT /uploads/a HTTP/1.1\r\nhost: x\r\ncontent-length: +5\r\n\r\nhello{smuggled}"),
        format!(
            "PUT /uploads/a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "PUT /uploads/a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "PUT /uploads/a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n1ffffffffffffffff\r\n{smuggled}"
        ),
        format!(
            "PUT /uploads/a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n{smuggled}"
        ),
    ];
    for (i, req) in cases.iter().enumerate() {
        let mut s = TcpStream::connect(app.addr).await.expect("connect");
        let _ = s.write_all(req.as_bytes()).await;
        let (resp, _) = read_all(&mut s, Duration::from_secs(3)).await;
        let statuses: Vec<&str> = resp
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &resp[i + 9..i + 12])
            .collect();
        assert!(
            !statuses.contains(&"200"),
            "case {i}: smuggled request was served: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| s.starts_with('4')),
            "case {i}: {statuses:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upload_slower_than_the_minimum_rate_hits_the_absolute_deadline() {
    // T-H3: every read arrives within the idle timeout, yet the upload as a whole is too slow.
    let app = spawn_app_with(
        "[server]\nmin_upload_rate_bytes_per_sec = 1000000000\nupload_deadline_slack_secs = 1\nbody_idle_timeout_secs = 5\n",
    )
    .await;
    let head = raw_put_head(&app, "slow.pdf", 100_000);
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    let body = pdf(100_000);
    let started = Instant::now();
    let mut resp = String::new();
    for piece in body.chunks(1000) {
        if s.write_all(piece).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await
        {
            resp = String::from_utf8_lossy(&buf[..n]).into();
            break;
        }
    }
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("RequestTimeout"), "{resp}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    assert!(
        app.state
            .meta
            .current(BUCKET, "slow.pdf")
            .await
            .expect("m")
            .is_none()
    );
    app.stop().await;
}

/// Reads a response head (the connection stays open: keep-alive).
async fn read_head(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into()
}

/// The number of staged writes the backend was sent (its latency histogram's count).
async fn staged_writes(app: &TestApp) -> f64 {
    let text = metrics_text(app).await;
    metric(&text, "upgate_backend_latency_seconds_count{op=\"write\"}").unwrap_or(0.0)
}

/// Sends a 2 MiB PUT in 16 KiB writes without a pause; returns the staged writes it took.
async fn staged_writes_of_a_burst(app: &TestApp, key: &str) -> f64 {
    let before = staged_writes(app).await;
    let body = pdf(2 << 20);
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(raw_put_head(app, key, body.len()).as_bytes())
        .await
        .expect("head");
    for piece in body.chunks(16 * 1024) {
        s.write_all(piece).await.expect("body");
    }
    let resp = read_head(&mut s).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(get_bytes(app, key).await, body);
    staged_writes(app).await - before
}

#[tokio::test]
async fn a_body_sent_back_to_back_is_written_in_few_large_writes() {
    // The connection reads at most 16 KiB at a time. Gathered, 2 MiB is 32 writes of 64 KiB
    // (a little room is left for a read that a busy machine delays past the gather wait);
    // with gathering off (`gather_bytes = 0`), it is a write per read or two.
    let app = spawn_app().await;
    let gathered = staged_writes_of_a_burst(&app, "gathered.pdf").await;
    assert!(
        (32.0..=48.0).contains(&gathered),
        "{gathered} staged writes"
    );
    app.stop().await;
    let app = spawn_app_with("[storage]\ngather_bytes = 0\n").await;
    let each = staged_writes_of_a_burst(&app, "each.pdf").await;
    assert!(each >= 64.0, "{each} staged writes");
    app.stop().await;
}

/// Starts a raw PUT of `body` at `key`, sends its first 100,000 bytes and pauses 300 ms
/// (longer than the gather wait); returns the open connection.
async fn pause_mid_body(app: &TestApp, key: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(raw_put_head(app, key, body.len()).as_bytes())
        .await
        .expect("head");
    s.write_all(&body[..100_000]).await.expect("first part");
    tokio::time::sleep(Duration::from_millis(300)).await;
    s
}

#[tokio::test]
async fn an_upload_waiting_on_its_client_holds_no_body_bytes() {
    // What arrived before the client paused is in the staging file within the gather wait,
    // not in memory; the rest completes the object.
    let app = spawn_app().await;
    let body = pdf(300_000);
    let mut s = pause_mid_body(&app, "paused.pdf", &body).await;
    let staged: Vec<u64> = app
        .object_files()
        .iter()
        .map(|f| std::fs::metadata(f).expect("stat").len())
        .collect();
    assert_eq!(staged, [100_000], "{:?}", app.object_files());
    s.write_all(&body[100_000..]).await.expect("rest");
    let resp = read_head(&mut s).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(get_bytes(&app, "paused.pdf").await, body);
    app.stop().await;
}

#[tokio::test]
async fn writes_from_the_upload_or_from_the_blocking_pool_store_the_same_and_clean_up() {
    // direct_writes (the default) writes from the upload's task; false sends each write to the
    // blocking pool. Either way a streamed body is stored whole, a cut one leaves no file, and
    // fsync on or off changes neither.
    for (name, extra) in [
        ("direct", ""),
        ("pool", "[storage.local]\ndirect_writes = false\n"),
        ("direct-nofsync", "[storage.local]\nfsync = false\n"),
    ] {
        let app = spawn_app_with(extra).await;
        let writes = staged_writes_of_a_burst(&app, &format!("{name}.pdf")).await;
        assert!(writes >= 32.0, "{name}: {writes} staged writes");
        let stored = app.object_files();
        assert_eq!(stored.len(), 1, "{name}: {stored:?}");

        let s = pause_mid_body(&app, "cut.pdf", &pdf(300_000)).await;
        let staging: Vec<_> = app
            .object_files()
            .into_iter()
            .filter(|f| !stored.contains(f))
            .collect();
        assert_eq!(staging.len(), 1, "{name}: {staging:?}");
        assert!(
            staging[0].to_string_lossy().ends_with("#1"),
            "{name}: {staging:?}"
        );
        assert_eq!(std::fs::metadata(&staging[0]).expect("stat").len(), 100_000);
        drop(s);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while app.object_files() != stored {
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: left {:?}",
                app.object_files()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.stop().await;
    }
}

fn self_signed(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    (cert, key, ck.cert.der().to_vec())
}

/// Connects over TLS trusting `trust`, returns the DER of the certificate the server showed
/// and the raw HTTP response to a GET /healthz.
async fn tls_fetch(addr: std::net::SocketAddr, trust: &[u8]) -> (Vec<u8>, String) {
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(trust.to_vec()))
        .expect("root");
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let shown = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .expect("peer cert");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    (shown, String::from_utf8_lossy(&out).into())
}

#[tokio::test]
async fn tls_serves_hsts_refuses_plain_http_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key, der1) = self_signed(dir.path(), "one");
    let app = spawn_app_with(&format!(
        "[tls]\nenabled = true\ncert_file = {:?}\nkey_file = {:?}\nreload_interval_secs = 1\n",
        cert.display().to_string(),
        key.display().to_string()
    ))
    .await;
    let (shown, resp) = tls_fetch(app.addr, &der1).await;
    assert_eq!(shown, der1);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "{resp}"
    );

    // Plain HTTP on the TLS listener gets no HTTP answer.
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let (plain, _) = read_all(&mut s, Duration::from_secs(3)).await;
    assert!(!plain.contains("200"), "{plain}");

    // A renewed certificate is picked up without a restart (polled; no SIGHUP needed).
    let (cert2, key2, der2) = self_signed(dir.path(), "two");
    std::fs::copy(&key2, &key).expect("key");
    std::fs::copy(&cert2, &cert).expect("cert");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if presented_cert(app.addr).await == der2 {
            break;
        }
        assert!(Instant::now() < deadline, "new certificate never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken renewal keeps the current certificate.
    std::fs::write(&cert, "not a certificate").expect("garbage");
    let tls = app.tls.clone().expect("tls state");
    assert!(tls.reload().is_err());
    let (shown, resp) = tls_fetch(app.addr, &der2).await;
    assert_eq!(shown, der2);
    assert!(resp.starts_with("HTTP/1.1 200"));
    app.stop().await;
}

/// Connects over TLS accepting any certificate, to see which one the server presents.
async fn presented_cert(addr: std::net::SocketAddr) -> Vec<u8> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    #[derive(Debug)]
    struct AnyCert;
    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCert))
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .expect("peer cert")
}

#[tokio::test]
async fn shutdown_lets_in_flight_uploads_finish_and_refuses_new_connections() {
    // T-I12.
    let mut app = spawn_app_with("[server]\nshutdown_grace_secs = 10\n").await;
    let body = pdf(200_000);
    let head = raw_put_head(&app, "inflight.pdf", body.len());
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&body[..100_000]).await.expect("half");
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are no longer accepted.
    let refused = match TcpStream::connect(app.addr).await {
        Err(_) => true,
        Ok(mut c) => {
            let _ = c
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .await;
            let (r, _) = read_all(&mut c, Duration::from_secs(2)).await;
            r.is_empty()
        }
    };
    assert!(refused, "a new connection was served during shutdown");

    // The in-flight upload completes.
    s.write_all(&body[100_000..]).await.expect("rest");
    let (resp, _) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    app.join().await;
    let rec = app
        .state
        .meta
        .current(BUCKET, "inflight.pdf")
        .await
        .expect("m")
        .expect("committed");
    assert_eq!(rec.size, body.len() as u64);
}

#[tokio::test]
async fn uploads_still_running_after_the_grace_period_are_aborted_cleanly() {
    let mut app = spawn_app_with("[server]\nshutdown_grace_secs = 1\n").await;
    let head = raw_put_head(&app, "cut.pdf", 200_000);
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&pdf(50_000)).await.expect("part");
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), app.join())
        .await
        .expect("server stopped after the grace period");
    // Let drop guards run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.state
            .meta
            .current(BUCKET, "cut.pdf")
            .await
            .expect("m")
            .is_none()
    );
    assert!(
        app.state
            .meta
            .sweepable(i64::MAX, 10)
            .await
            .expect("m")
            .is_empty()
    );
    assert!(app.object_files().is_empty(), "{:?}", app.object_files());
}

#[tokio::test]
async fn the_metadata_database_is_reached_over_tls_when_the_url_asks() {
    // Debian's PostgreSQL serves TLS (its snakeoil certificate): `sslmode=require` encrypts
    // without verifying the certificate, as libpq does.
    let pg = PgSchema::new();
    let sep = if pg.url.contains('?') { '&' } else { '?' };
    let app_name = format!("upgate-tls-{}", upgate::id::random_hex(4));
    let url = format!("{}{sep}sslmode=require&application_name={app_name}", pg.url);
    let app = spawn_app_with(&format!(
        "[metadata]\nurl = {url:?}\nschema = {:?}\n",
        pg.schema
    ))
    .await;
    put_pdf(&app.s3(), "tls/one.pdf", pdf(5000)).await;
    assert_eq!(get_bytes(&app, "tls/one.pdf").await, pdf(5000));
    let probe = sqlx::PgPool::connect(&pg.url).await.expect("connect");
    let (tls, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
    )
    .bind(&app_name)
    .fetch_one(&probe)
    .await
    .expect("pg_stat_ssl");
    assert!(tls >= 1 && plain == 0, "tls {tls}, plain {plain}");
    app.stop().await;
    pg.drop().await;
}
