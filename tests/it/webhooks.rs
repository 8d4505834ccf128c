//! Webhook delivery end to end: a real SQLite outbox, the real worker (`events::run`) and a real
//! HTTP receiver on 127.0.0.1 that records every request and answers from a per-test script.
//! Timeouts and backoffs are milliseconds here, so the file runs in a few seconds.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use upgate::clock::now_ms;
use upgate::events::{self, Deliverer, EndpointConfig, WebhookConfig, WebhookSecret};
use upgate::metadata::control::{ControlStore, OutboxEvent};
use upgate::metadata::sqlite::SqliteStore;

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

// ---------------------------------------------------------------------------------------------
// The receiver

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
    /// Wall-clock ms when the request was complete.
    at_ms: i64,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn delivery(&self) -> &str {
        self.header(events::DELIVERY_HEADER)
    }

    /// Whether the signature verifies with the test secret.
    fn signed(&self) -> bool {
        let ts: u64 = self.header(events::TIMESTAMP_HEADER).parse().unwrap_or(0);
        events::verify(
            SECRET.as_bytes(),
            ts,
            &self.body,
            self.header(events::SIGNATURE_HEADER),
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Never answer.
    Hang,
    /// 302 to this path.
    Redirect(&'static str),
}

type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// An HTTP/1 receiver. `script(path, n)` picks the reply to the n-th (0-based) request on
/// `path`. Stops accepting when dropped.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    accept: JoinHandle<()>,
}

impl Receiver {
    async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script).await
    }

    async fn start_on(
        addr: SocketAddr,
        script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let shared = Arc::clone(&hits);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let hits = Arc::clone(&shared);
                let script = Arc::clone(&script);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let hits = Arc::clone(&hits);
                        let script = Arc::clone(&script);
                        async move { answer(req, &hits, &script).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, hits, accept }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Requests on `path`, in arrival order.
    fn hits_on(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }

    /// Delivery ids seen on `path`, sorted.
    fn ids_on(&self, path: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .hits_on(path)
            .iter()
            .map(|h| h.delivery().to_string())
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    hits: &Mutex<Vec<Hit>>,
    script: &Script,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let n = {
        let mut hits = hits.lock().unwrap();
        let n = hits.iter().filter(|h| h.path == path).count();
        hits.push(Hit {
            path: path.clone(),
            headers,
            body,
            at_ms: now_ms(),
        });
        n
    };
    let response = match script(&path, n) {
        Reply::Status(code) => Response::builder().status(code),
        Reply::Hang => match std::future::pending::<Infallible>().await {},
        Reply::Redirect(to) => Response::builder().status(302).header("location", to),
    };
    Ok(response.body(Full::new(Bytes::from_static(b"ok"))).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Store, worker, helpers

struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/m.db?mode=rwc", dir.path().display());
        Db { _dir: dir, url }
    }

    async fn open(&self) -> Arc<dyn ControlStore> {
        Arc::new(SqliteStore::open(&self.url).await.expect("open store"))
    }

    /// Every outbox row by id, read with a separate connection.
    async fn rows(&self) -> Vec<Row> {
        let pool = sqlx::sqlite::SqlitePool::connect(&self.url).await.unwrap();
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, attempts, next_attempt_at, delivered_at, last_error \
             FROM outbox ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.into_iter()
            .map(
                |(id, attempts, next_attempt_at, delivered_at, last_error)| Row {
                    id,
                    attempts,
                    next_attempt_at,
                    delivered_at,
                    last_error,
                },
            )
            .collect()
    }

    async fn row(&self, id: &str) -> Row {
        self.rows()
            .await
            .into_iter()
            .find(|r| r.id == id)
            .expect("row exists")
    }
}

/// `id, attempts, next_attempt_at, delivered_at, last_error`.
type OutboxRow = (String, i64, i64, Option<i64>, Option<String>);

#[derive(Debug, Clone)]
struct Row {
    id: String,
    attempts: i64,
    next_attempt_at: i64,
    delivered_at: Option<i64>,
    last_error: Option<String>,
}

fn payload(id: &str, tenant: &str, event: &str) -> String {
    serde_json::json!({ "id": id, "tenant": tenant, "event": event, "file": { "size": 3 } })
        .to_string()
}

async fn enqueue(store: &dyn ControlStore, id: &str, tenant: &str, event: &str) {
    let now = now_ms();
    store
        .enqueue(
            &OutboxEvent {
                id: id.into(),
                tenant_id: tenant.into(),
                event: event.into(),
                payload: payload(id, tenant, event),
                created_at_ms: now,
                attempts: 0,
            },
            now,
        )
        .await
        .expect("enqueue");
}

fn endpoint(url: String) -> EndpointConfig {
    EndpointConfig {
        url,
        secret: WebhookSecret::new(SECRET.into()),
        secret_file: String::new(),
        events: Vec::new(),
        tenant: String::new(),
    }
}

/// Test-sized timings: 500 ms timeout, retries within 50..200 ms, 20 ms polls.
fn config(endpoints: Vec<EndpointConfig>) -> WebhookConfig {
    WebhookConfig {
        endpoints,
        timeout_ms: 500,
        max_attempts: 12,
        backoff_base_ms: 50,
        backoff_max_ms: 200,
        poll_interval_ms: 20,
        batch: 100,
        concurrency: 8,
    }
}

/// A running worker; stopped by [`Worker::stop`] or (without waiting) by dropping it.
struct Worker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn start(store: &Arc<dyn ControlStore>, cfg: &WebhookConfig) -> Worker {
    let deliverer = Deliverer::new(cfg).expect("valid webhook config");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(events::run(Arc::clone(store), deliverer, async move {
        let _ = stopped.await;
    }));
    Worker { stop, task }
}

impl Worker {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("worker stops promptly")
            .expect("worker did not panic");
    }
}

/// Polls `check` until it holds; panics after 15 s (generous: the machine may be loaded).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn all_delivered(db: &Db, n: usize) -> bool {
    let rows = db.rows().await;
    rows.len() == n && rows.iter().all(|r| r.delivered_at.is_some())
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_event_with_valid_signature_and_headers() {
    let rx = Receiver::start(|_, _| Reply::Status(204)).await;
    let db = Db::new();
    let store = db.open().await;
    enqueue(store.as_ref(), "ev-1", "t1", events::UPLOAD_COMPLETED).await;
    let worker = start(&store, &config(vec![endpoint(rx.url("/hook"))]));

    eventually("delivery", || all_delivered(&db, 1)).await;
    let hits = rx.hits_on("/hook");
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.header("content-type"), "application/json");
    assert_eq!(hit.header("user-agent"), "upgate-webhooks");
    assert_eq!(hit.header("x-upgate-event"), "upload.completed");
    assert_eq!(hit.header("x-upgate-delivery"), "ev-1");
    assert_eq!(
        hit.body,
        payload("ev-1", "t1", "upload.completed").as_bytes()
    );
    let ts: u64 = hit.header("x-upgate-timestamp").parse().unwrap();
    assert!(
        (now_ms() / 1000).abs_diff(ts as i64) < 60,
        "timestamp is now"
    );
    let sig = hit.header("x-upgate-signature");
    assert!(sig.starts_with("v1=") && sig.len() == 3 + 64, "{sig}");
    assert!(hit.signed(), "signature verifies");
    assert!(!events::verify(
        b"wrong-secret-wrong-secret-wrong-",
        ts,
        &hit.body,
        sig
    ));
    assert!(!events::verify(SECRET.as_bytes(), ts + 1, &hit.body, sig));

    let row = db.row("ev-1").await;
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error, None);
    // Delivered events are not sent again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_receive_only_the_events_they_subscribe_to() {
    let rx = Receiver::start(|_, _| Reply::Status(200)).await;
    let db = Db::new();
    let store = db.open().await;
    let cfg = config(vec![
        endpoint(rx.url("/all")),
        EndpointConfig {
            events: vec![events::FILE_DELETED.into()],
            ..endpoint(rx.url("/deleted"))
        },
        EndpointConfig {
            tenant: "t2".into(),
            ..endpoint(rx.url("/t2"))
        },
        EndpointConfig {
            events: vec![
                events::UPLOAD_COMPLETED.into(),
                events::UPLOAD_FAILED.into(),
            ],
            tenant: "t1".into(),
            ..endpoint(rx.url("/t1-uploads"))
        },
    ]);
    enqueue(store.as_ref(), "e1", "t1", events::UPLOAD_COMPLETED).await;
    enqueue(store.as_ref(), "e2", "t1", events::FILE_DELETED).await;
    enqueue(store.as_ref(), "e3", "t2", events::UPLOAD_FAILED).await;
    enqueue(store.as_ref(), "e4", "t2", events::FILE_DELETED).await;
    let worker = start(&store, &cfg);

    eventually("all delivered", || all_delivered(&db, 4)).await;
    assert_eq!(rx.ids_on("/all"), ["e1", "e2", "e3", "e4"]);
    assert_eq!(rx.ids_on("/deleted"), ["e2", "e4"]);
    assert_eq!(rx.ids_on("/t2"), ["e3", "e4"]);
    assert_eq!(rx.ids_on("/t1-uploads"), ["e1"]);
    for hit in rx.hits() {
        assert!(hit.signed());
        let event = hit.header("x-upgate-event");
        assert!(String::from_utf8_lossy(&hit.body).contains(event));
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_no_endpoint_wants_is_marked_delivered_without_a_request() {
    let rx = Receiver::start(|_, _| Reply::Status(200)).await;
    let db = Db::new();
    let store = db.open().await;
    let cfg = config(vec![EndpointConfig {
        tenant: "someone-else".into(),
        ..endpoint(rx.url("/other"))
    }]);
    enqueue(store.as_ref(), "e1", "t1", events::UPLOAD_FAILED).await;
    let worker = start(&store, &cfg);
    eventually("marked delivered", || all_delivered(&db, 1)).await;
    assert!(rx.hits().is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_backoff_after_server_errors_then_succeeds() {
    // 500, 500, then 200.
    let rx = Receiver::start(|_, n| Reply::Status(if n < 2 { 500 } else { 200 })).await;
    let db = Db::new();
    let store = db.open().await;
    let mut cfg = config(vec![endpoint(rx.url("/hook"))]);
    cfg.backoff_base_ms = 100;
    cfg.backoff_max_ms = 1_000;
    enqueue(store.as_ref(), "ev-r", "t1", events::UPLOAD_COMPLETED).await;
    let claim_ms = i64::try_from(
        events::Deliverer::new(&cfg)
            .expect("deliverer")
            .claim()
            .as_millis(),
    )
    .expect("ms");
    let worker = start(&store, &cfg);

    // While it is failing, each scheduled retry lies within the full-jitter window after the
    // failed attempt: 0 ..= 100 ms after the first, 0 ..= 200 ms after the second.
    let mut checked = 0;
    loop {
        let row = db.row("ev-r").await;
        if row.delivered_at.is_some() {
            break;
        }
        // While a worker holds the event (claimed for delivery), `next_attempt_at` is the claim
        // lease, not a retry schedule: look again once the attempt is recorded.
        let in_flight = row.next_attempt_at - upgate::clock::now_ms() > claim_ms / 2;
        if row.attempts >= 1 && !in_flight {
            assert_eq!(row.last_error.as_deref(), Some("endpoint 0: status 500"));
            let failed_hit = &rx.hits_on("/hook")[usize::try_from(row.attempts - 1).unwrap()];
            let ceiling = 100 << (row.attempts - 1);
            let delay = row.next_attempt_at - failed_hit.at_ms;
            assert!(
                (0..=ceiling + 1_000).contains(&delay),
                "retry {delay} ms after attempt {} (ceiling {ceiling} ms)",
                row.attempts
            );
            checked += 1;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(checked > 0, "observed the event between retries");

    let hits = rx.hits_on("/hook");
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.delivery() == "ev-r" && h.signed()));
    let row = db.row("ev-r").await;
    assert_eq!(row.attempts, 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), 3, "no delivery after success");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parks_event_after_max_attempts() {
    let rx = Receiver::start(|_, _| Reply::Status(503)).await;
    let db = Db::new();
    let store = db.open().await;
    let mut cfg = config(vec![endpoint(rx.url("/down"))]);
    cfg.max_attempts = 3;
    cfg.backoff_base_ms = 10;
    cfg.backoff_max_ms = 40;
    enqueue(store.as_ref(), "ev-p", "t1", events::FILE_DELETED).await;
    let worker = start(&store, &cfg);

    eventually("parked", || async {
        db.row("ev-p").await.next_attempt_at == i64::MAX
    })
    .await;
    let row = db.row("ev-p").await;
    assert_eq!(row.attempts, 3);
    assert_eq!(row.delivered_at, None);
    assert_eq!(row.last_error.as_deref(), Some("endpoint 0: status 503"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.hits_on("/down").len(),
        3,
        "a parked event is not retried"
    );
    assert!(
        store
            .due_events(now_ms(), now_ms() + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_out_a_receiver_that_never_answers() {
    let rx = Receiver::start(|path, _| {
        if path == "/slow" {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let db = Db::new();
    let store = db.open().await;
    let mut cfg = config(vec![endpoint(rx.url("/slow")), endpoint(rx.url("/ok"))]);
    cfg.timeout_ms = 200;
    cfg.max_attempts = 2;
    cfg.backoff_base_ms = 10;
    cfg.backoff_max_ms = 20;
    enqueue(store.as_ref(), "ev-t", "t1", events::UPLOAD_COMPLETED).await;
    let started = tokio::time::Instant::now();
    let worker = start(&store, &cfg);

    eventually("parked after two timeouts", || async {
        db.row("ev-t").await.next_attempt_at == i64::MAX
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "two full timeouts"
    );
    let row = db.row("ev-t").await;
    assert_eq!(row.last_error.as_deref(), Some("endpoint 0: timeout"));
    assert_eq!(row.delivered_at, None);
    let slow = rx.hits_on("/slow");
    assert_eq!(slow.len(), 2);
    assert!(
        slow[1].at_ms - slow[0].at_ms >= 200,
        "retried only after the timeout"
    );
    // No per-endpoint tracking: the endpoint that accepted receives the retry too (documented;
    // receivers dedupe by delivery id).
    assert_eq!(rx.ids_on("/ok"), ["ev-t", "ev-t"]);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn does_not_follow_redirects() {
    let rx = Receiver::start(|path, _| {
        if path == "/moved" {
            Reply::Redirect("/target")
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let db = Db::new();
    let store = db.open().await;
    let mut cfg = config(vec![endpoint(rx.url("/moved"))]);
    cfg.max_attempts = 1;
    enqueue(store.as_ref(), "ev-x", "t1", events::UPLOAD_COMPLETED).await;
    let worker = start(&store, &cfg);
    eventually("parked", || async {
        db.row("ev-x").await.next_attempt_at == i64::MAX
    })
    .await;
    assert_eq!(
        db.row("ev-x").await.last_error.as_deref(),
        Some("endpoint 0: status 302")
    );
    assert!(rx.hits_on("/target").is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_event_exactly_once_across_a_restart() {
    // A port with nothing listening: the receiver is down.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/hook");
    let mut cfg = config(vec![endpoint(url)]);
    cfg.max_attempts = 1_000;
    let db = Db::new();
    let ids: Vec<String> = (0..12).map(|i| format!("ev-{i:02}")).collect();

    let store = db.open().await;
    for id in &ids[..5] {
        enqueue(store.as_ref(), id, "t1", events::UPLOAD_COMPLETED).await;
    }
    let worker = start(&store, &cfg);
    for id in &ids[5..10] {
        enqueue(store.as_ref(), id, "t2", events::FILE_DELETED).await;
    }
    eventually("every event failed at least once", || async {
        let rows = db.rows().await;
        rows.len() == 10
            && rows.iter().all(|r| {
                r.attempts >= 1 && r.last_error.as_deref() == Some("endpoint 0: connect failed")
            })
    })
    .await;
    // Stop the worker and close the store: the process goes away.
    worker.stop().await;
    drop(store);

    // Restart: reopen the same database, more events arrive, the receiver is back.
    let store = db.open().await;
    for id in &ids[10..] {
        enqueue(store.as_ref(), id, "t1", events::UPLOAD_FAILED).await;
    }
    let rx = Receiver::start_on(addr, |_, _| Reply::Status(200)).await;
    let worker = start(&store, &cfg);
    eventually("all delivered after restart", || all_delivered(&db, 12)).await;
    // A few more polls: nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.ids_on("/hook"), ids, "each event exactly once");
    assert!(rx.hits().iter().all(Hit::signed));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_https_receiver_with_an_untrusted_certificate() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    // An HTTPS receiver with a self-signed certificate for 127.0.0.1. It counts refused
    // handshakes (the client aborts on the certificate) and requests (there must be none).
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen, aborted) = (Arc::clone(&requests), Arc::clone(&refused));
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, seen, aborted) =
                (acceptor.clone(), Arc::clone(&seen), Arc::clone(&aborted));
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    aborted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    return;
                };
                let svc = service_fn(move |_req: Request<Incoming>| {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let db = Db::new();
    let store = db.open().await;
    let mut cfg = config(vec![endpoint(format!("https://{addr}/hook"))]);
    cfg.max_attempts = 1;
    enqueue(store.as_ref(), "ev-tls", "t1", events::UPLOAD_COMPLETED).await;
    let worker = start(&store, &cfg);
    eventually("parked", || async {
        db.row("ev-tls").await.next_attempt_at == i64::MAX
    })
    .await;
    assert_eq!(
        db.row("ev-tls").await.last_error.as_deref(),
        Some("endpoint 0: connect failed")
    );
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    eventually("the server saw the refused handshake", || async {
        refused.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    worker.stop().await;
    server.abort();
}
