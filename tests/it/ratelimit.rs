//! The rate limiter against a real Redis: each test starts its own `redis-server` on a free
//! loopback port and kills it itself (the system Redis on 6379 is never touched).
//!
//! Covers SECURITY-TESTS T-H7 (per-principal upload concurrency), T-H10 (keying and memory
//! bound), T-I1/T-I2 (Redis down or hung: bounded decisions, breaker, fallback) and T-I3
//! (counters lost on restart: accepted, limits resume).

use crate::common::RedisProc;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use upgate::config::Config;
use upgate::error::Error;
use upgate::metrics::Metrics;
use upgate::ratelimit::{Cidr, Dimension, Limited, RateLimiter, RouteClass, client_ip};

/// Timing-sensitive tests run one at a time so that they do not starve each other's load.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A config from the defaults plus `toml` (which should set the limits under test).
fn config(toml: &str) -> Config {
    Config::from_layers(Some(toml), Vec::new()).expect("config")
}

/// Every class switched off except the limit lines given for `[ratelimit.s3_read]`
/// (`principal = {..}`, `ip = {..}`, `global = {..}`); `extra` goes first.
fn only_s3_read(s3_read: &str, extra: &str) -> String {
    let line = |dim: &str, given: &str| {
        given
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{dim} ")))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{dim} = {{ rate = 0.0, burst = 1 }}"))
    };
    let mut t = format!("{extra}\n");
    for c in ["mint", "s3_write", "s3_read", "download", "token_exchange"] {
        let given = if c == "s3_read" { s3_read } else { "" };
        t.push_str(&format!("[ratelimit.{c}]\n"));
        for dim in ["principal", "ip", "global"] {
            t.push_str(&line(dim, given));
            t.push('\n');
        }
    }
    t
}

fn limiter(cfg: &Config) -> Arc<RateLimiter> {
    RateLimiter::new(&cfg.ratelimit, &cfg.redis).expect("limiter")
}

async fn wait_healthy(limiters: &[Arc<RateLimiter>], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        // Probes ride on requests: keep a trickle going.
        for l in limiters {
            let _ = l
                .check(RouteClass::S3Read, None, IpAddr::V4(Ipv4Addr::LOCALHOST))
                .await;
        }
        if limiters.iter().all(|l| l.redis_healthy() == Some(true)) {
            return;
        }
        assert!(Instant::now() < deadline, "redis did not become healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Default)]
struct Run {
    allowed: u64,
    refused: u64,
    window: Duration,
    max_latency: Duration,
}

/// Drives `tasks` concurrent request loops per limiter for `dur` (each loop paced at ~1 ms and
/// bounded in count), counting decisions.
async fn drive(limiters: &[Arc<RateLimiter>], tasks: usize, dur: Duration) -> Run {
    let allowed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let max_ns = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut handles = Vec::new();
    for (r, l) in limiters.iter().enumerate() {
        for t in 0..tasks {
            let l = Arc::clone(l);
            let (allowed, refused, max_ns) = (allowed.clone(), refused.clone(), max_ns.clone());
            handles.push(tokio::spawn(async move {
                let ip = IpAddr::V4(Ipv4Addr::new(198, 51, r as u8, t as u8));
                for _ in 0..100_000 {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let t0 = Instant::now();
                    let d = l.check(RouteClass::S3Read, Some("tenant-a"), ip).await;
                    let ns = t0.elapsed().as_nanos() as u64;
                    max_ns.fetch_max(ns, Ordering::Relaxed);
                    match d {
                        Ok(()) => allowed.fetch_add(1, Ordering::Relaxed),
                        Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }));
        }
    }
    for h in handles {
        h.await.expect("task");
    }
    Run {
        allowed: allowed.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        window: start.elapsed(),
        max_latency: Duration::from_nanos(max_ns.load(Ordering::Relaxed)),
    }
}

/// Asserts `run.allowed` is within `tolerance` of `rate × window + burst`.
fn assert_rate(run: &Run, rate: f64, burst: f64, tolerance: f64, what: &str) {
    let expected = rate * run.window.as_secs_f64() + burst;
    let got = run.allowed as f64;
    eprintln!(
        "{what}: allowed {got} of {}, expected {expected:.1} ({:+.2}%), max latency {:?}",
        run.allowed + run.refused,
        (got - expected) / expected * 100.0,
        run.max_latency
    );
    assert!(
        (got - expected).abs() <= expected * tolerance,
        "{what}: allowed {got}, expected {expected:.0} ± {:.0}% ({run:?})",
        tolerance * 100.0
    );
    assert!(
        run.refused > 0,
        "{what}: the load must exceed the limit ({run:?})"
    );
}

const GLOBAL_200: &str = "global = { rate = 200.0, burst = 10 }";

fn three_replicas(redis: &RedisProc, extra_redis: &str) -> Vec<Arc<RateLimiter>> {
    let cfg = config(&only_s3_read(
        GLOBAL_200,
        &format!(
            "[ratelimit]\nreplicas = 3\n[redis]\nurl = \"{}\"\n{extra_redis}",
            redis.url()
        ),
    ));
    (0..3).map(|_| limiter(&cfg)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_global_limit() {
    let _serial = SERIAL.lock().await;
    let redis = RedisProc::start();
    // A generous timeout: this test is about sharing, not about failures.
    let limiters = three_replicas(&redis, "timeout_ms = 2000");
    wait_healthy(&limiters, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // let the probes' tokens refill
    let before: u64 = limiters.iter().map(|l| l.stats().local_decisions).sum();
    let run = drive(&limiters, 8, Duration::from_secs(3)).await;
    assert_rate(&run, 200.0, 10.0, 0.05, "three replicas via redis");
    let after: u64 = limiters.iter().map(|l| l.stats().local_decisions).sum();
    assert_eq!(before, after, "every decision came from redis");
    assert!(limiters.iter().all(|l| l.redis_healthy() == Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_locally_within_the_timeout_and_recovers() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisProc::start();
    let limiters = three_replicas(
        &redis,
        "timeout_ms = 50\nbreaker_failures = 3\nbreaker_cooldown_ms = 200",
    );
    wait_healthy(&limiters, Duration::from_secs(10)).await;

    redis.kill();
    let local_before: u64 = limiters.iter().map(|l| l.stats().local_decisions).sum();
    let down = drive(&limiters, 8, Duration::from_secs(2)).await;
    assert!(
        down.max_latency <= Duration::from_millis(150),
        "a decision waited {:?} with redis down",
        down.max_latency
    );
    let local_after: u64 = limiters.iter().map(|l| l.stats().local_decisions).sum();
    assert!(
        local_after - local_before >= down.allowed + down.refused - 20,
        "decisions are local while redis is down"
    );
    // Each replica enforces 200/3 per second with burst ceil(10/3) = 4: together ~200/s.
    assert_rate(&down, 200.0, 12.0, 0.10, "local fallback, 3 replicas");
    assert!(limiters.iter().all(|l| l.redis_healthy() == Some(false)));

    // Same port again (counters lost, as with a failover: T-I3).
    redis.restart();
    wait_healthy(&limiters, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let redis_before: u64 = limiters.iter().map(|l| l.stats().redis_decisions).sum();
    let up = drive(&limiters, 8, Duration::from_secs(3)).await;
    assert_rate(&up, 200.0, 10.0, 0.05, "after redis restart");
    let redis_after: u64 = limiters.iter().map(|l| l.stats().redis_decisions).sum();
    // Nearly every decision went through Redis again (a replica whose breaker was mid-probe
    // when the window opened may decide a few locally).
    assert!(
        (redis_after - redis_before) * 10 >= (up.allowed + up.refused) * 9,
        "redis decisions {} of {}",
        redis_after - redis_before,
        up.allowed + up.refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_costs_at_most_the_timeout() {
    let _serial = SERIAL.lock().await;
    let redis = RedisProc::start();
    let limiters = three_replicas(
        &redis,
        "timeout_ms = 50\nbreaker_failures = 3\nbreaker_cooldown_ms = 200",
    );
    wait_healthy(&limiters, Duration::from_secs(10)).await;
    // SIGSTOP: the connection stays open, nothing answers (T-I2's slow/hung Redis).
    redis.signal("-STOP");
    let hung = drive(&limiters, 4, Duration::from_millis(1500)).await;
    eprintln!("redis hung: {hung:?}");
    assert!(
        hung.max_latency <= Duration::from_millis(150),
        "a decision waited {:?} with redis hung",
        hung.max_latency
    );
    assert!(hung.allowed > 0, "requests keep flowing ({hung:?})");
    let failures: u64 = limiters.iter().map(|l| l.stats().redis_failures).sum();
    // Only the calls in flight when Redis hung pay the timeout (4 per replica); once the
    // breaker opens, the connection is dropped and the probes wait for a reconnect instead.
    eprintln!("redis hung: {failures} failed redis calls");
    assert!(
        failures <= 30,
        "{failures} redis calls failed: the breaker should cut them"
    );
    redis.signal("-CONT");
    wait_healthy(&limiters, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_redis_is_down() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisProc::start();
    let cfg = config(&only_s3_read(
        GLOBAL_200,
        &format!(
            "[ratelimit]\nfailure_mode = \"closed\"\n[redis]\nurl = \"{}\"\nbreaker_cooldown_ms = 200",
            redis.url()
        ),
    ));
    let l = limiter(&cfg);
    wait_healthy(std::slice::from_ref(&l), Duration::from_secs(10)).await;
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(l.check(RouteClass::S3Read, None, ip).await, Ok(()));
    redis.kill();
    for _ in 0..20 {
        let t0 = Instant::now();
        let e = l
            .check(RouteClass::S3Read, None, ip)
            .await
            .expect_err("fail closed");
        assert!(t0.elapsed() <= Duration::from_millis(150));
        assert_eq!(e.dimension, Dimension::Global);
        assert!(e.retry_after_secs() >= 1);
        assert!(matches!(Error::from(e), Error::SlowDown(_)));
    }
    assert_eq!(l.redis_healthy(), Some(false));
    redis.restart();
    wait_healthy(std::slice::from_ref(&l), Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(l.check(RouteClass::S3Read, None, ip).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_redis_unreachable_neither_fails_nor_hangs() {
    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    for mode in ["local", "closed"] {
        let cfg = config(&only_s3_read(
            GLOBAL_200,
            &format!("[ratelimit]\nfailure_mode = \"{mode}\"\n[redis]\nurl = \"{url}\""),
        ));
        let t0 = Instant::now();
        let l = limiter(&cfg);
        let d = l
            .check(RouteClass::S3Read, None, IpAddr::V4(Ipv4Addr::LOCALHOST))
            .await;
        assert!(t0.elapsed() < Duration::from_millis(150), "{mode}");
        assert_eq!(l.redis_healthy(), Some(false));
        assert_eq!(d.is_ok(), mode == "local", "{mode}: {d:?}");
    }
    let no_redis = limiter(&config(""));
    assert_eq!(no_redis.redis_healthy(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_consumes_only_when_every_limit_allows() {
    let redis = RedisProc::start();
    // Practically no refill: the counts below are exact.
    let cfg = config(&only_s3_read(
        "principal = { rate = 0.001, burst = 1 }\nglobal = { rate = 0.001, burst = 3 }",
        &format!("[redis]\nurl = \"{}\"\ntimeout_ms = 2000", redis.url()),
    ));
    let l = limiter(&cfg);
    // Probing spends tokens; the FLUSHALL below starts the counts afresh.
    let deadline = Instant::now() + Duration::from_secs(10);
    while l.redis_healthy() != Some(true) {
        let _ = l
            .check(
                RouteClass::S3Read,
                Some("probe"),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            )
            .await;
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Start from empty counters.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("flush");
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let check = |p: &'static str| {
        let l = Arc::clone(&l);
        async move { l.check(RouteClass::S3Read, Some(p), ip).await }
    };
    assert_eq!(check("a").await, Ok(()));
    let refused = check("a").await.expect_err("principal a is spent");
    assert_eq!(refused.dimension, Dimension::Principal);
    assert!(
        refused.retry_after > Duration::from_secs(900),
        "{refused:?}"
    );
    // a's refusal did not consume global: b and c still fit in the burst of 3.
    assert_eq!(check("b").await, Ok(()));
    assert_eq!(check("c").await, Ok(()));
    let refused = check("d").await.expect_err("global is spent");
    assert_eq!(refused.dimension, Dimension::Global);
    // Keys carry a TTL and no principal in clear.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(k.starts_with("upgate:rl:s3_read:"), "{k}");
        assert!(!k.ends_with(":a") && !k.contains("tenant"), "{k}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .expect("ttl");
        assert!(ttl > 0, "{k} has no TTL");
    }
    // NOSCRIPT (a restarted or flushed server): EVALSHA falls back to EVAL, no failure.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("flush");
    let failures = l.stats().redis_failures;
    assert_eq!(
        check("e").await.expect_err("global still spent").dimension,
        Dimension::Global
    );
    assert_eq!(l.stats().redis_failures, failures);
    assert_eq!(l.redis_healthy(), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_is_keyed_by_64_and_retain_recent_bounds_memory() {
    let cfg = config(&only_s3_read(
        "ip = { rate = 1000.0, burst = 1 }\nprincipal = { rate = 1000.0, burst = 1 }",
        "[ratelimit]\nretain_interval_secs = 3600",
    ));
    let l = limiter(&cfg);
    // 1M distinct /128s inside 2001:db8:1:2::/64: one key, and mostly refused.
    let mut allowed = 0u64;
    for i in 0..1_000_000u64 {
        let ip = Ipv6Addr::from(0x2001_0db8_0001_0002_0000_0000_0000_0000u128 | u128::from(i));
        if l.check(RouteClass::S3Read, None, IpAddr::V6(ip))
            .await
            .is_ok()
        {
            allowed += 1;
        }
    }
    assert_eq!(l.len(), 1, "one /64, one key");
    assert!(
        allowed < 100_000,
        "rotating within a /64 does not evade the limit ({allowed})"
    );
    // Many distinct clients (addresses and principals) grow the state ...
    for i in 0..10_000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i));
        let _ = l
            .check(RouteClass::S3Read, Some(&format!("key-{i}")), ip)
            .await;
    }
    assert!(l.len() >= 20_000, "{}", l.len());
    // ... until their buckets have refilled (burst 1 at 1000/s: a few ms) and the sweep runs.
    tokio::time::sleep(Duration::from_millis(50)).await;
    l.retain_recent();
    assert!(l.len() <= 1, "sweep forgot idle clients: {}", l.len());
}

#[tokio::test]
async fn upload_permits_cap_and_release() {
    let cfg =
        config("[ratelimit]\nmax_concurrent_uploads_per_principal = 2\nupload_slot_wait_ms = 300");
    let l = limiter(&cfg);
    let a1 = l.upload_permit("token-a").await.expect("first");
    let a2 = l.upload_permit("token-a").await.expect("second");
    let started = std::time::Instant::now();
    let e = l
        .upload_permit("token-a")
        .await
        .expect_err("third is over the cap");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited for a slot first"
    );
    assert_eq!(e.dimension, Dimension::Principal);
    assert_eq!(e.retry_after_secs(), 1);
    let b = l
        .upload_permit("token-b")
        .await
        .expect("other principals are unaffected");
    assert_eq!(l.uploads_tracked(), 2);
    // A waiting upload gets the slot the moment one is freed.
    let waiter = {
        let l = Arc::clone(&l);
        tokio::spawn(async move { l.upload_permit("token-a").await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(a1);
    waiter
        .await
        .expect("task")
        .expect("slot handed over on drop");
    let a3 = l
        .upload_permit("token-a")
        .await
        .expect("slot released on drop");
    drop((a2, a3, b));
    assert_eq!(l.uploads_tracked(), 0, "entries removed at zero");
    // Single-use tokens: cap 1. Cap 0: no cap and no bookkeeping.
    let none = Duration::ZERO;
    let t = l.upload_permit_with_cap("tok", 1, none).await.expect("one");
    assert!(l.upload_permit_with_cap("tok", 1, none).await.is_err());
    drop(t);
    let mut many = Vec::new();
    for _ in 0..100 {
        many.push(
            l.upload_permit_with_cap("x", 0, none)
                .await
                .expect("uncapped"),
        );
    }
    assert_eq!(l.uploads_tracked(), 0);
    drop(many);
    // Bandwidth: off by default, on when configured.
    assert_eq!(l.bandwidth(), None);
    let bw = limiter(&config("[ratelimit]\nupload_bytes_per_sec = 1048576"));
    assert_eq!(bw.bandwidth(), Some(1_048_576));
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let trusted: Vec<Cidr> = ["10.0.0.0/8", "fd00::/8"]
        .iter()
        .map(|c| c.parse().expect("cidr"))
        .collect();
    let cases: &[(&str, Option<&str>, &str)] = &[
        // Untrusted peer: the header is ignored, whatever it claims.
        ("203.0.113.5", Some("1.2.3.4"), "203.0.113.5"),
        ("203.0.113.5", Some("10.0.0.1"), "203.0.113.5"),
        // Trusted peer, no header: the peer.
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", Some(""), "10.0.0.1"),
        // Rightmost untrusted entry; entries left of it are the client's own words.
        ("10.0.0.1", Some("1.2.3.4, 198.51.100.7"), "198.51.100.7"),
        (
            "10.0.0.1",
            Some("1.2.3.4, 198.51.100.7, 10.0.0.2"),
            "198.51.100.7",
        ),
        // A client claiming to be a trusted proxy does not get to choose its key.
        ("10.0.0.1", Some("10.0.0.5, 198.51.100.7"), "198.51.100.7"),
        // Every hop trusted: the leftmost.
        ("10.0.0.1", Some("10.0.0.3, 10.0.0.2"), "10.0.0.3"),
        // Garbage stops the walk at the last address we can vouch for.
        ("10.0.0.1", Some("198.51.100.7, unknown"), "10.0.0.1"),
        ("10.0.0.1", Some("garbage, 198.51.100.7"), "198.51.100.7"),
        ("10.0.0.1", Some("198.51.100.7, 10.0.0.2, _obf"), "10.0.0.1"),
        // Ports, IPv6, IPv4-mapped peers.
        ("10.0.0.1", Some("[2001:db8::1]:443"), "2001:db8::1"),
        ("10.0.0.1", Some("198.51.100.7:5555"), "198.51.100.7"),
        ("::ffff:10.0.0.1", Some("198.51.100.7"), "198.51.100.7"),
        ("fd00::1", Some("2001:db8::9, fd00::2"), "2001:db8::9"),
    ];
    for (peer, xff, want) in cases {
        assert_eq!(
            client_ip(ip(peer), *xff, &trusted),
            ip(want),
            "peer {peer} xff {xff:?}"
        );
    }
    // No trusted proxies (the default): never believed.
    assert_eq!(
        client_ip(ip("10.0.0.1"), Some("198.51.100.7"), &[]),
        ip("10.0.0.1")
    );
}

#[tokio::test]
async fn limiter_uses_configured_trusted_proxies() {
    let l = limiter(&config("[ratelimit]\ntrusted_proxies = [\"10.0.0.0/8\"]"));
    assert_eq!(
        l.client_ip(ip("10.1.1.1"), Some("198.51.100.7")),
        ip("198.51.100.7")
    );
    assert_eq!(
        l.client_ip(ip("192.0.2.1"), Some("198.51.100.7")),
        ip("192.0.2.1")
    );
}

#[tokio::test]
async fn in_process_limits_refuse_with_retry_after() {
    let cfg = config(&only_s3_read("ip = { rate = 1.0, burst = 2 }", ""));
    let l = limiter(&cfg);
    let a = ip("192.0.2.1");
    assert_eq!(l.check(RouteClass::S3Read, None, a).await, Ok(()));
    assert_eq!(l.check(RouteClass::S3Read, None, a).await, Ok(()));
    let Limited {
        retry_after,
        class,
        dimension,
    } = l
        .check(RouteClass::S3Read, None, a)
        .await
        .expect_err("burst spent");
    assert_eq!((class, dimension), (RouteClass::S3Read, Dimension::Ip));
    assert!(retry_after > Duration::from_millis(900) && retry_after <= Duration::from_secs(1));
    assert_eq!(
        l.check(RouteClass::S3Read, None, ip("192.0.2.2")).await,
        Ok(())
    );
    // Disabled classes are never limited.
    for _ in 0..100 {
        assert_eq!(l.check(RouteClass::Mint, Some("p"), a).await, Ok(()));
    }
    let m = Metrics::new();
    m.rate_limited(class, dimension);
    assert!(
        m.encode()
            .contains("upgate_rate_limited_total{class=\"s3_read\",dimension=\"ip\"} 1"),
        "{}",
        m.encode()
    );
}

#[test]
fn config_sections_have_safe_defaults_and_are_validated() {
    let c = Config::defaults().expect("defaults");
    assert_eq!(c.ratelimit.replicas, 1);
    assert!(c.ratelimit.trusted_proxies.is_empty());
    assert_eq!(c.redis.timeout_ms, 50);
    assert!(!c.redis.enabled());
    for (_, l) in c.ratelimit.classes() {
        assert!(l.ip.enabled() && l.global.enabled() && l.principal.enabled());
    }
    let c = Config::from_layers(
        None,
        vec![
            ("UPGATE__RATELIMIT__MINT__IP__RATE".into(), "0.5".into()),
            (
                "UPGATE__REDIS__URL".into(),
                "redis://user:s3cret@127.0.0.1:6380/0".into(),
            ),
        ],
    )
    .expect("env overrides");
    assert_eq!(c.ratelimit.mint.ip.rate, 0.5);
    assert_eq!(
        c.ratelimit.mint.ip.burst, 20,
        "burst kept from the defaults"
    );
    let shown = format!("{:?}", c.redis);
    assert!(
        !shown.contains("s3cret") && shown.contains("127.0.0.1:6380"),
        "{shown}"
    );
    let bad = "[ratelimit]\nreplicas = 0\ntrusted_proxies = [\"10.0.0.0/33\"]\n\
               upload_bytes_per_sec = 10\n[ratelimit.mint]\nip = { rate = -1.0, burst = 1 }\n\
               global = { rate = 5.0, burst = 0 }\n[redis]\nurl = \"http://x\"\ntimeout_ms = 0\n";
    let err = Config::from_layers(Some(bad), Vec::new()).expect_err("invalid");
    assert_eq!(err.0.len(), 7, "{err}");
    let err = Config::from_layers(
        Some("[ratelimit.download]\nip = { rate = 1e-300, burst = 1 }\n"),
        Vec::new(),
    )
    .expect_err("a rate too small to represent");
    assert!(err.to_string().contains("download.ip.rate"), "{err}");
    let err = Config::from_layers(
        Some("[ratelimit.mint]\nip = { rate = 1.0, brust = 2 }\n"),
        Vec::new(),
    )
    .expect_err("unknown key");
    assert!(err.to_string().contains("brust"), "{err}");
}
