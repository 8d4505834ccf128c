//! Cost of signing in and of `/v1/auth/me`, on this machine.
//!
//! - `argon2/*`: one argon2id hash with the configured (OWASP) parameters, and the two failed
//!   logins an attacker can tell apart only by time: verifying a wrong password against a real
//!   hash, and an unknown user (verified against the dummy hash). The two should be equal.
//! - `me/*`: `GET /v1/auth/me` over HTTP (loopback, keep-alive, one client) against an
//!   in-process gateway on SQLite and on PostgreSQL (`UPGATE_TEST_POSTGRES_URL`, default the
//!   local test database; skipped if unreachable), served from the database (no Redis) and from
//!   the Redis cache (a private `redis-server`; skipped, with a message, if not installed).
//!   Either way the access token's session and user are read from the database first.
//!
//! Run: `cargo bench --bench accounts` (under `cargo test` each case runs once).

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use upgate::app::App;
use upgate::auth::password::{Hasher, Password};
use upgate::config::Config;

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const MASTER: &str = "mk1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PASSWORD: &str = "correct horse battery staple";

fn bench_argon2(c: &mut Criterion) {
    let cfg = Config::defaults().expect("defaults").accounts;
    let h = Hasher::new(&cfg).expect("hasher");
    let (m, t, p) = h.params();
    eprintln!("argon2/*: argon2id m={m} KiB, t={t}, p={p}");
    let real = h.hash_now(&Password::new(PASSWORD.into())).expect("hash");
    let mut g = c.benchmark_group("argon2");
    g.sample_size(20);
    g.bench_function("hash", |b| {
        b.iter(|| black_box(h.hash_now(&Password::new(PASSWORD.into()))))
    });
    g.bench_function("verify_wrong_password", |b| {
        b.iter(|| black_box(h.verify_now(&Password::new("wrong password!".into()), Some(&real))))
    });
    g.bench_function("verify_unknown_user", |b| {
        b.iter(|| black_box(h.verify_now(&Password::new("wrong password!".into()), None)))
    });
    g.finish();
}

struct RedisProc(Child);

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(RedisProc, String)> {
    if !std::path::Path::new(REDIS_SERVER).exists() {
        eprintln!("me/redis: skipped, {REDIS_SERVER} is not installed");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let child = Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let proc = RedisProc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            eprintln!("me/redis: skipped, redis-server did not start");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((proc, format!("redis://127.0.0.1:{port}/")))
}

/// A gateway with accounts, one user signed in: (base URL, access token, stop, data dir).
fn gateway(
    rt: &Runtime,
    redis: Option<&str>,
    postgres: Option<(&str, &str)>,
) -> (
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("dir");
    let mut toml = format!(
        "[storage.encryption]\nkeys = {MASTER:?}\n[accounts]\nenabled = true\ntenant = \"bench\"\n\
         open_registration = true\n[ratelimit.s3_read]\nprincipal = {{ rate = 1000000.0, burst = 1000000 }}\n\
         ip = {{ rate = 1000000.0, burst = 1000000 }}\nglobal = {{ rate = 1000000.0, burst = 1000000 }}\n"
    );
    if let Some(url) = redis {
        toml.push_str(&format!("[redis]\nurl = {url:?}\n"));
    }
    if let Some((url, schema)) = postgres {
        toml.push_str(&format!("[metadata]\nurl = {url:?}\nschema = {schema:?}\n"));
    }
    let env = vec![
        (
            "UPGATE__SERVER__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        ("UPGATE__ADMIN__LISTEN".to_string(), String::new()),
        (
            "UPGATE__STORAGE__DATA_DIR".to_string(),
            dir.path().display().to_string(),
        ),
    ];
    let config = Config::from_layers(Some(&toml), env).expect("config");
    rt.block_on(async {
        let app = App::build(config, None).await.expect("build");
        upgate::api::admin::create_tenant(app.state().control.as_ref(), "bench")
            .await
            .expect("tenant");
        let base = format!("http://{}", app.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::new();
        let creds = json!({"email": "bench@example.com", "password": PASSWORD}).to_string();
        http.post(format!("{base}/v1/auth/register"))
            .body(creds.clone())
            .send()
            .await
            .expect("register");
        let body = http
            .post(format!("{base}/v1/auth/login"))
            .body(creds)
            .send()
            .await
            .expect("login")
            .bytes()
            .await
            .expect("body");
        let t: Value = serde_json::from_slice(&body).expect("json");
        let token = t["access_token"].as_str().expect("token").to_string();
        (base, token, tx, dir)
    })
}

fn bench_me(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = start_redis();
    let mut g = c.benchmark_group("me");
    let pg_url = std::env::var("UPGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let pg = TcpStream::connect(("127.0.0.1", 5432)).is_ok();
    if !pg {
        eprintln!("me/postgres_*: skipped, no PostgreSQL on 127.0.0.1:5432");
    }
    let mut runs: Vec<(&str, Option<String>, bool)> = vec![("sqlite_db", None, false)];
    if let Some((_, url)) = &redis {
        runs.push(("sqlite_redis_cache", Some(url.clone()), false));
    }
    if pg {
        runs.push(("postgres_db", None, true));
        if let Some((_, url)) = &redis {
            runs.push(("postgres_redis_cache", Some(url.clone()), true));
        }
    }
    for (name, url, on_pg) in runs {
        let schema = format!("bench_me_{}", upgate::id::random_hex(6));
        let postgres = on_pg.then_some((pg_url.as_str(), schema.as_str()));
        let (base, token, stop, _dir) = gateway(&rt, url.as_deref(), postgres);
        let http = reqwest::Client::new();
        let url = format!("{base}/v1/auth/me");
        let once = || async {
            let r = http.get(&url).bearer_auth(&token).send().await.expect("me");
            let cache = r
                .headers()
                .get("x-upgate-cache")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let _ = r.bytes().await;
            cache
        };
        let first = rt.block_on(once());
        let second = rt.block_on(once());
        eprintln!("me/{name}: x-upgate-cache {first} then {second}");
        g.bench_function(name, |b| b.iter(|| black_box(rt.block_on(once()))));
        let _ = stop.send(());
        if on_pg {
            rt.block_on(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(pool) = sqlx::PgPool::connect(&pg_url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&pool)
                        .await;
                }
            });
        }
    }
    g.finish();
    drop(redis);
}

criterion_group!(benches, bench_argon2, bench_me);
criterion_main!(benches);
