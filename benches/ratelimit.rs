//! Decision cost of the rate limiter, with baselines measured in the same run so the figures
//! can be read as ratios on this machine.
//!
//! - `local/*`: the in-process path (no Redis configured): `check` with all three limits of a
//!   class enabled (principal, ip, global), for one client and cycling over 4096 clients;
//!   baselines `Instant::now()` and bare `governor` direct / keyed checks with the same quota.
//!   The limits are huge (10^6/s, burst 10^6), so decisions are mostly "allowed"; a refusal
//!   costs the same CAS plus computing the wait.
//! - `redis/*`: the shared path against a private `redis-server` on a free loopback port:
//!   `check` (one EVALSHA over three keys) versus a bare `PING` round trip on the same
//!   connection kind and runtime. Skipped, with a message, if `redis-server` is not installed.
//!
//! Run: `cargo bench --bench ratelimit` (under `cargo test` each case runs once).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use tokio::runtime::Runtime;
use upgate::config::Config;
use upgate::ratelimit::{RateLimiter, RouteClass};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const LIMITS: &str = "[ratelimit.s3_read]\n\
    principal = { rate = 1000000.0, burst = 1000000 }\n\
    ip = { rate = 1000000.0, burst = 1000000 }\n\
    global = { rate = 1000000.0, burst = 1000000 }\n";

fn limiter(rt: &Runtime, redis_url: &str) -> Arc<RateLimiter> {
    let toml = format!("{LIMITS}[redis]\nurl = \"{redis_url}\"\ntimeout_ms = 1000\n");
    let cfg = Config::from_layers(Some(&toml), Vec::new()).expect("config");
    rt.block_on(async { RateLimiter::new(&cfg.ratelimit, &cfg.redis) })
        .expect("limiter")
}

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(1_000_000).expect("nonzero"))
        .allow_burst(NonZeroU32::new(1_000_000).expect("nonzero"))
}

fn bench_local(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let l = limiter(&rt, "");
    let direct = DefaultDirectRateLimiter::direct(quota());
    let keyed = DefaultKeyedRateLimiter::<IpAddr>::keyed(quota());
    let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let clients: Vec<(IpAddr, String)> = (0..4096u32)
        .map(|i| {
            (
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)),
                format!("key-{i}"),
            )
        })
        .collect();

    let mut g = c.benchmark_group("local");
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("baseline_instant_now", |b| b.iter(Instant::now));
    g.bench_function("baseline_governor_direct", |b| {
        b.iter(|| black_box(direct.check().is_ok()))
    });
    g.bench_function("baseline_governor_keyed", |b| {
        b.iter(|| black_box(keyed.check_key(black_box(&ip)).is_ok()))
    });
    g.bench_function("check_3_limits_one_client", |b| {
        b.iter(|| {
            let d = l
                .check(
                    RouteClass::S3Read,
                    Some(black_box("tenant-a")),
                    black_box(ip),
                )
                .now_or_never();
            black_box(matches!(d, Some(Ok(()))))
        })
    });
    let mut i = 0usize;
    g.bench_function("check_3_limits_4096_clients", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let (ip, key) = &clients[i];
            let d = l
                .check(RouteClass::S3Read, Some(key.as_str()), *ip)
                .now_or_never();
            black_box(matches!(d, Some(Ok(()))))
        })
    });
    g.finish();
}

/// A private redis-server; killed on drop.
struct RedisProc(Child);

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(RedisProc, String)> {
    if !std::path::Path::new(REDIS_SERVER).exists() {
        eprintln!("redis/*: skipped, {REDIS_SERVER} is not installed");
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
            eprintln!("redis/*: skipped, redis-server did not start");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((proc, format!("redis://127.0.0.1:{port}/")))
}

fn bench_redis(c: &mut Criterion) {
    let Some((_redis, url)) = start_redis() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let l = limiter(&rt, &url);
    let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let deadline = Instant::now() + Duration::from_secs(10);
    while l.redis_healthy() != Some(true) {
        if Instant::now() > deadline {
            eprintln!("redis/*: skipped, the limiter did not connect");
            return;
        }
        rt.block_on(async {
            let _ = l.check(RouteClass::S3Read, Some("tenant-a"), ip).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        });
    }
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("connection");

    let mut g = c.benchmark_group("redis");
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("baseline_ping_round_trip", |b| {
        b.iter(|| {
            rt.block_on(async {
                let pong: String = redis::cmd("PING")
                    .query_async(&mut conn)
                    .await
                    .expect("ping");
                black_box(pong)
            })
        })
    });
    g.bench_function("check_3_limits_evalsha", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(l.check(RouteClass::S3Read, Some("tenant-a"), ip))
                    .is_ok(),
            )
        })
    });
    g.finish();
    let s = l.stats();
    eprintln!(
        "redis/*: {} redis decisions, {} local, {} failures",
        s.redis_decisions, s.local_decisions, s.redis_failures
    );
}

criterion_group!(benches, bench_local, bench_redis);
criterion_main!(benches);
