//! Rate limits through the gateway's HTTP interface: S3 routes answer 503 SlowDown with
//! Retry-After, /v1 answers 429; unauthenticated floods are charged to the address; upload
//! concurrency is capped per principal; three gateways sharing one Redis enforce one global
//! limit; Redis dying mid-test falls back to local limits without stalling requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use tokio::io::AsyncWriteExt;

/// Timing-sensitive tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One cheap signed S3 request (GetBucketLocation).
async fn head_bucket(app: &TestApp) -> (u16, reqwest::header::HeaderMap, String) {
    let url = format!("{}/{BUCKET}?location", app.endpoint());
    let host = app.addr.to_string();
    let signed = sign_headers(
        "GET",
        &url,
        &[("host", &host)],
        Payload::Bytes(b""),
        SystemTime::now(),
        SECRET_KEY,
    );
    let (s, h, b) = send("GET", &url, &signed, vec![]).await;
    (s, h, error_code(&b))
}

#[tokio::test]
async fn s3_routes_answer_slow_down_with_retry_after() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with("[ratelimit.s3_read]\nprincipal = { rate = 0.5, burst = 3 }\n").await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let (s, h, code) = head_bucket(&app).await;
        statuses.push(s);
        if s == 503 {
            last = Some((h, code));
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    let (h, code) = last.expect("limited");
    assert_eq!(code, "SlowDown");
    let retry: u64 = h["retry-after"].to_str().expect("h").parse().expect("secs");
    assert!((1..=3).contains(&retry), "{retry}");
    let (_, text) = {
        let r = reqwest::get(format!("http://{}/metrics", app.admin.expect("admin")))
            .await
            .expect("m");
        (r.status(), r.text().await.expect("t"))
    };
    assert!(
        text.contains("upgate_rate_limited_total{class=\"s3_read\",dimension=\"principal\"} 2"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_signatures_are_charged_to_the_address() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with("[ratelimit.s3_write]\nip = { rate = 0.5, burst = 2 }\n").await;
    let url = format!("{}/{BUCKET}/x.pdf", app.endpoint());
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (s, _, _) = send("PUT", &url, &[], pdf(10)).await;
        statuses.push(s);
    }
    assert_eq!(statuses, vec![403, 403, 503, 503]);
    app.stop().await;
}

#[tokio::test]
async fn the_control_api_answers_429() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with("[ratelimit.mint]\nprincipal = { rate = 0.5, burst = 2 }\n").await;
    let t = upgate::api::admin::create_tenant(app.state.control.as_ref(), "rl")
        .await
        .expect("t");
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..3 {
        let (s, h, b) = send(
            "POST",
            &format!("{}/v1/uploads", app.endpoint()),
            &[("authorization".into(), format!("Bearer {}", t.api_key))],
            serde_json::to_vec(&serde_json::json!({"content_type": "application/pdf", "size": 10}))
                .expect("j"),
        )
        .await;
        statuses.push(s);
        if s == 429 {
            retry = h
                .get("retry-after")
                .map(|v| v.to_str().expect("v").to_string());
            let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
            assert_eq!(v["error"]["code"], "SlowDown");
        }
    }
    assert_eq!(statuses, vec![201, 201, 429]);
    assert!(retry.is_some());
    app.stop().await;
}

/// Starts a signed PUT of `key` (100,000 bytes declared, 10,000 sent) and leaves it open,
/// holding one of the root key's upload slots.
async fn hold_upload(app: &TestApp, key: &str) -> tokio::net::TcpStream {
    let head = raw_put_head(app, key, 100_000);
    let mut held = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    held.write_all(head.as_bytes()).await.expect("head");
    held.write_all(&pdf(10_000)).await.expect("part");
    held
}

#[tokio::test]
async fn concurrent_uploads_are_capped_per_principal() {
    // T-H7: a principal holding its slot cannot open another upload until it finishes.
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with("[ratelimit]\nmax_concurrent_uploads_per_principal = 1\n").await;
    let held = hold_upload(&app, "held.pdf").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = app
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key("second.pdf")
        .body(pdf(100).into())
        .send()
        .await
        .expect_err("second concurrent upload");
    assert_eq!(err.into_service_error().meta().code(), Some("SlowDown"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.s3()
        .put_object()
        .bucket(BUCKET)
        .key("third.pdf")
        .body(pdf(100).into())
        .send()
        .await
        .expect("slot released");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_key_upload_cap_answers_retry_after_and_the_sdk_retry_gets_through() {
    // 32 threads of one SDK client on one key, 3 uploads each, against the default cap of 16
    // uploads at once per principal: some attempts are refused, every upload succeeds.
    let _serial = SERIAL.lock().await;
    let app = Arc::new(spawn_app().await);
    let body = pdf(2 << 20);
    let mut tasks = Vec::new();
    // What `aws_config::load_defaults` gives every SDK user: standard retries, 3 attempts (a
    // client built from `Config::builder()` alone has none).
    let conf = app
        .s3()
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    for t in 0..32 {
        let s3 = s3.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..3 {
                s3.put_object()
                    .bucket(BUCKET)
                    .key(format!("cap/{t}/{n}.pdf"))
                    .body(body.clone().into())
                    .send()
                    .await
                    .map_err(|e| format!("{:?}", e.into_service_error().meta().code()))?;
            }
            Ok::<_, String>(())
        }));
    }
    let started = Instant::now();
    let mut failed = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.expect("task") {
            failed.push(e);
        }
    }
    eprintln!("took {:?}, failed {failed:?}", started.elapsed());
    let metrics = metrics_text(&app).await;
    let count = |status: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "upgate_requests_total{{op=\"PutObject\",status=\"{status}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    eprintln!(
        "PutObject answers: {} × 200, {} × 503",
        count("200"),
        count("503")
    );
    assert!(
        failed.is_empty(),
        "every upload succeeds with the SDK's default retry: {failed:?}"
    );
    // A refusal carries Retry-After (what the SDKs' backoff honours).
    let host = app.addr.to_string();
    let mut held = Vec::new();
    for n in 0..16 {
        held.push(hold_upload(&app, &format!("cap/held-{n}.pdf")).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signed = sign_headers(
        "PUT",
        &format!("{}/{BUCKET}/cap/17th.pdf", app.endpoint()),
        &[("host", &host)],
        Payload::Unsigned,
        SystemTime::now(),
        SECRET_KEY,
    );
    let (status, headers, _) = send(
        "PUT",
        &format!("{}/{BUCKET}/cap/17th.pdf", app.endpoint()),
        &signed,
        pdf(1000),
    )
    .await;
    assert_eq!(status, 503);
    assert!(headers.get("retry-after").is_some(), "{headers:?}");
    drop(held);
}

/// Drives `HEAD`-like signed requests through every app for `window`, counting successes.
async fn drive(apps: &[Arc<TestApp>], window: Duration) -> (u64, u64, Duration) {
    let ok = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let max_latency = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for app in apps {
        for _ in 0..4 {
            let (app, ok, limited, max_latency) = (
                Arc::clone(app),
                Arc::clone(&ok),
                Arc::clone(&limited),
                Arc::clone(&max_latency),
            );
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let started = Instant::now();
                    let (s, _, _) = head_bucket(&app).await;
                    let ms = started.elapsed().as_millis() as u64;
                    max_latency.fetch_max(ms, Ordering::Relaxed);
                    match s {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        503 => limited.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected {other}"),
                    };
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("join");
    }
    (
        ok.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
        Duration::from_millis(max_latency.load(Ordering::Relaxed)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_sharing_redis_enforce_one_global_limit_and_survive_its_loss() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisProc::start();
    let cfg = format!(
        "[redis]\nurl = {:?}\n[ratelimit]\nreplicas = 3\n[ratelimit.s3_read]\n\
         principal = {{ rate = 0.0, burst = 0 }}\nip = {{ rate = 0.0, burst = 0 }}\n\
         global = {{ rate = 30.0, burst = 6 }}\n",
        redis.url()
    );
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(Arc::new(spawn_app_with(&cfg).await));
    }
    // Let every replica connect to Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !apps
        .iter()
        .all(|a| a.state.limiter.redis_healthy() == Some(true))
    {
        assert!(Instant::now() < deadline, "replicas never reached Redis");
        for a in &apps {
            head_bucket(a).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await; // refill the burst
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let (ok, limited, _) = drive(&apps, window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let expected = 30.0 * elapsed + 6.0;
    let error = (ok as f64 - expected) / expected;
    eprintln!(
        "shared: allowed {ok} (limited {limited}) over {elapsed:.2}s, expected {expected:.0}, error {:+.1}%",
        error * 100.0
    );
    assert!(limited > 0);
    assert!(
        error.abs() <= 0.05,
        "allowed {ok}, expected {expected:.0} ({:+.1}%)",
        error * 100.0
    );

    // Redis dies: every replica keeps serving on its local share (30/3 per second each), and no
    // request waits much longer than the Redis timeout.
    redis.kill();
    let (ok, _, max_latency) = drive(&apps, Duration::from_secs(2)).await;
    eprintln!("redis down: allowed {ok}, slowest {max_latency:?}");
    assert!(ok > 0, "nothing was served without Redis");
    assert!(max_latency < Duration::from_millis(400), "{max_latency:?}");
    let (s, body) = {
        let r = reqwest::get(format!("{}/readyz", apps[0].endpoint()))
            .await
            .expect("r");
        (r.status().as_u16(), r.text().await.expect("t"))
    };
    assert_eq!(s, 200, "local mode stays ready: {body}");
    assert!(body.contains("\"redis\":\"unavailable\""), "{body}");

    // Redis returns: the replicas go back to the shared limit.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !apps
        .iter()
        .all(|a| a.state.limiter.redis_healthy() == Some(true))
    {
        assert!(
            Instant::now() < deadline,
            "replicas never returned to Redis"
        );
        for a in &apps {
            head_bucket(a).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for a in apps {
        if let Ok(a) = Arc::try_unwrap(a) {
            a.stop().await;
        }
    }
}
