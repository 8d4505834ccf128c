//! Request-rate limits, upload concurrency and upload bandwidth: the answer to "too much, too
//! fast" is a typed [`Limited`] that says what to wait for and how long.
//!
//! # Model
//!
//! Every request belongs to one [`RouteClass`] (link minting, S3 writes, S3 reads, presigned
//! downloads, token exchange). Each class has three limits, one per [`Dimension`]:
//!
//! - **principal**: an opaque identity the caller passes (tenant, API key, access key, upload
//!   token id); hashed before use, never stored or sent to Redis in clear;
//! - **ip**: the client address, IPv6 grouped by /64 ([`crate::net::ip_key`]), so rotating
//!   through the 2^64 addresses of one /64 buys nothing. Behind proxies, [`client_ip`] picks the
//!   client out of `X-Forwarded-For`, believing only `trusted_proxies`;
//! - **global**: all requests of the class together.
//!
//! A limit is a GCRA (a leaky bucket without a background refill): `rate` per second sustained,
//! `burst` at once from idle; `rate = 0` switches it off. A request is admitted only if every
//! enabled limit of its class admits it.
//!
//! # Two stages
//!
//! 1. **In process** (`governor`): one keyed limiter per class × (principal, ip) and one direct
//!    limiter per class for global, each with the configured limit divided by `replicas`
//!    (burst rounded up). Memory is bounded: keys are fixed-size (a 64-bit keyed hash of the
//!    principal; the /64- or /32-masked address), and a background task forgets every key whose
//!    bucket has fully refilled, every `retain_interval_secs` ([`RateLimiter::retain_recent`]),
//!    then shrinks the maps. The state therefore holds at most the clients seen in roughly the
//!    last `retain_interval_secs + burst / rate` seconds.
//!    Dimensions are checked principal → ip → global and the first refusal stops the check;
//!    limits checked before it have been charged. Those are the caller's own buckets, so a
//!    refused flood never eats into the global budget of others.
//! 2. **Shared** (Redis, when `[redis] url` is set): the same limits, undivided, enforced for
//!    the whole cluster. One atomic Lua script per decision checks every key of the request in
//!    one round trip and consumes from all of them only if all admit (no partial charge); Redis'
//!    clock is the only clock. Keys expire as soon as their bucket is full again. Redis holds
//!    these counters and nothing else: losing them (failover, restart) only resets limits.
//!    While Redis answers, the in-process limiters are not consulted.
//!
//! # When Redis fails
//!
//! Each call is bounded by `[redis] timeout_ms` (default 50 ms): a decision never waits longer.
//! After `breaker_failures` consecutive failures a circuit breaker opens and requests stop
//! calling Redis; after `breaker_cooldown_ms` one probe request tries again (connections are
//! made by a background task, never on the request path). Meanwhile `failure_mode` decides:
//! `"local"` (default) uses the in-process limits (each replica its 1/`replicas` share),
//! `"closed"` refuses with SlowDown. When the probe succeeds, decisions return to Redis.
//! [`RateLimiter::redis_healthy`] reports the state for readiness and metrics.
//!
//! # Uploads
//!
//! [`RateLimiter::upload_permit`] caps the uploads one principal streams at once on this
//! replica (an RAII permit; the entry disappears when the last permit drops). A [`Pacer`] from
//! [`RateLimiter::pacer`] holds one upload to `upload_bytes_per_sec` if that is set.

mod shared;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

pub use crate::net::{Cidr, InvalidCidr, client_ip};

use crate::config::{ClassLimits, FailureMode, Limit, RateLimitConfig, RedisConfig};
use crate::error::Error;
use crate::net::ip_key;
use shared::{Gcra, Shared, Verdict};

/// What kind of request is being limited; each has its own `[ratelimit.<class>]` limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Minting upload/download links on the control API.
    Mint,
    /// S3 writes: PutObject, multipart, DeleteObjects.
    S3Write,
    /// S3 reads and listings with credentials.
    S3Read,
    /// Presigned GETs of files.
    Download,
    /// Exchanging a token for credentials.
    TokenExchange,
}

impl RouteClass {
    /// Every class, in config order.
    pub const ALL: [RouteClass; 5] = [
        RouteClass::Mint,
        RouteClass::S3Write,
        RouteClass::S3Read,
        RouteClass::Download,
        RouteClass::TokenExchange,
    ];

    /// The config table name, also the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Mint => "mint",
            RouteClass::S3Write => "s3_write",
            RouteClass::S3Read => "s3_read",
            RouteClass::Download => "download",
            RouteClass::TokenExchange => "token_exchange",
        }
    }

    fn index(self) -> usize {
        match self {
            RouteClass::Mint => 0,
            RouteClass::S3Write => 1,
            RouteClass::S3Read => 2,
            RouteClass::Download => 3,
            RouteClass::TokenExchange => 4,
        }
    }

    fn limits(self, cfg: &RateLimitConfig) -> &ClassLimits {
        match self {
            RouteClass::Mint => &cfg.mint,
            RouteClass::S3Write => &cfg.s3_write,
            RouteClass::S3Read => &cfg.s3_read,
            RouteClass::Download => &cfg.download,
            RouteClass::TokenExchange => &cfg.token_exchange,
        }
    }
}

impl std::fmt::Display for RouteClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The caller's identity.
    Principal,
    /// The client address (IPv6 by /64).
    Ip,
    /// Everyone together. Also reported when `failure_mode = "closed"` refuses because the
    /// shared limits cannot be checked.
    Global,
}

impl Dimension {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Principal => "principal",
            Dimension::Ip => "ip",
            Dimension::Global => "global",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Dimension::Principal => "p",
            Dimension::Ip => "i",
            Dimension::Global => "g",
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: which limit, and how long until a retry can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited ({class}, {dimension}); retry after {retry_after:?}")]
pub struct Limited {
    pub retry_after: Duration,
    pub class: RouteClass,
    pub dimension: Dimension,
}

impl Limited {
    /// `retry_after` in whole seconds for the `Retry-After` header: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// S3 routes answer a refusal with 503 SlowDown (SDKs back off and retry it).
impl From<Limited> for Error {
    fn from(l: Limited) -> Self {
        Error::SlowDown(l.retry_after_secs())
    }
}

/// The limiter cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// A setting that config validation should have refused.
    #[error("invalid rate limit configuration: {0}")]
    Config(String),
    /// `RateLimiter::new` was called outside a Tokio runtime (its upkeep task needs one).
    #[error("the rate limiter must be created inside a Tokio runtime")]
    NoRuntime,
}

/// Counters for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Decisions answered by Redis.
    pub redis_decisions: u64,
    /// Decisions made in process (no Redis configured, or Redis unavailable).
    pub local_decisions: u64,
    /// Redis calls that failed or timed out, and requests that found no connection.
    pub redis_failures: u64,
}

struct ClassLocal {
    principal: Option<DefaultKeyedRateLimiter<u64>>,
    ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    global: Option<DefaultDirectRateLimiter>,
}

#[derive(Clone, Copy)]
struct ClassShared {
    principal: Option<Gcra>,
    ip: Option<Gcra>,
    global: Option<Gcra>,
}

impl ClassShared {
    fn unlimited(&self) -> bool {
        self.principal.is_none() && self.ip.is_none() && self.global.is_none()
    }
}

/// In-flight uploads per hashed principal; an entry exists only while its count is positive.
/// Upload slots in use per principal (by hash), and the signal that one was freed.
type UploadCounts = Arc<(Mutex<HashMap<u64, usize>>, tokio::sync::Notify)>;

/// The rate limiter of one gateway process. Cheap to share (`Arc`); all methods take `&self`.
pub struct RateLimiter {
    local: [ClassLocal; 5],
    shared_limits: [ClassShared; 5],
    shared: Option<Arc<Shared>>,
    failure_mode: FailureMode,
    trusted: Vec<Cidr>,
    hasher: std::hash::RandomState,
    uploads: UploadCounts,
    /// How long an upload waits for one of its principal's slots before it is refused.
    upload_wait: Duration,
    max_uploads: usize,
    bandwidth: Option<u64>,
    retain_interval: Duration,
    local_decisions: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("keys", &self.len())
            .field("redis_healthy", &self.redis_healthy())
            .field("failure_mode", &self.failure_mode)
            .field("trusted_proxies", &self.trusted.len())
            .field("max_uploads", &self.max_uploads)
            .field("bandwidth", &self.bandwidth)
            .finish_non_exhaustive()
    }
}

/// The in-process quota for `limit` on one of `replicas` replicas, `None` when disabled.
fn local_quota(limit: Limit, replicas: u32) -> Result<Option<Quota>, RateLimitError> {
    if !limit.enabled() {
        return Ok(None);
    }
    if !limit.rate.is_finite() || limit.burst == 0 {
        return Err(RateLimitError::Config(format!(
            "rate {} / burst {}",
            limit.rate, limit.burst
        )));
    }
    let replicas = replicas.max(1);
    let period = Duration::try_from_secs_f64(f64::from(replicas) / limit.rate)
        .map_err(|_| RateLimitError::Config(format!("rate {}", limit.rate)))?;
    let burst = NonZeroU32::new(limit.burst.div_ceil(replicas).max(1))
        .ok_or_else(|| RateLimitError::Config("burst".into()))?;
    Quota::with_period(period)
        .map(|q| Some(q.allow_burst(burst)))
        .ok_or_else(|| RateLimitError::Config(format!("rate {} is too high", limit.rate)))
}

fn shared_gcra(limit: Limit) -> Option<Gcra> {
    limit.enabled().then(|| Gcra::new(limit.rate, limit.burst))
}

impl RateLimiter {
    /// Builds the limiter. Never connects on the caller's path: with Redis configured it starts
    /// with the breaker open, a background task connects, and decisions are local (or refused,
    /// with `failure_mode = "closed"`) until Redis answers. Must run inside a Tokio runtime:
    /// it spawns the upkeep task (memory sweep), which ends when the limiter is dropped.
    pub fn new(cfg: &RateLimitConfig, redis: &RedisConfig) -> Result<Arc<Self>, RateLimitError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| RateLimitError::NoRuntime)?;
        let mut local = Vec::with_capacity(5);
        let mut shared_limits = Vec::with_capacity(5);
        for class in RouteClass::ALL {
            let l = class.limits(cfg);
            local.push(ClassLocal {
                principal: local_quota(l.principal, cfg.replicas)?
                    .map(DefaultKeyedRateLimiter::keyed),
                ip: local_quota(l.ip, cfg.replicas)?.map(DefaultKeyedRateLimiter::keyed),
                global: local_quota(l.global, cfg.replicas)?.map(DefaultDirectRateLimiter::direct),
            });
            shared_limits.push(ClassShared {
                principal: shared_gcra(l.principal),
                ip: shared_gcra(l.ip),
                global: shared_gcra(l.global),
            });
        }
        let trusted = cfg
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse::<Cidr>()
                    .map_err(|_| RateLimitError::Config(format!("trusted proxy {s:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shared = if redis.enabled() {
            // The message of a URL parse error may contain the URL; do not pass it on.
            let s = Shared::new(redis)
                .map_err(|_| RateLimitError::Config("redis.url is not valid".into()))?;
            Some(Arc::new(s))
        } else {
            None
        };
        let limiter = Arc::new(RateLimiter {
            local: local
                .try_into()
                .map_err(|_| RateLimitError::Config("classes".into()))?,
            shared_limits: shared_limits
                .try_into()
                .map_err(|_| RateLimitError::Config("classes".into()))?,
            shared,
            failure_mode: cfg.failure_mode,
            trusted,
            hasher: std::hash::RandomState::new(),
            uploads: Arc::default(),
            max_uploads: cfg.max_concurrent_uploads_per_principal,
            upload_wait: Duration::from_millis(cfg.upload_slot_wait_ms),
            bandwidth: (cfg.upload_bytes_per_sec > 0).then_some(cfg.upload_bytes_per_sec),
            retain_interval: Duration::from_secs(cfg.retain_interval_secs.max(1)),
            local_decisions: Default::default(),
        });
        if let Some(s) = &limiter.shared {
            s.spawn_connect();
        }
        let weak = Arc::downgrade(&limiter);
        let every = limiter.retain_interval;
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.retain_recent();
            }
        });
        Ok(limiter)
    }

    /// Decides whether a request of `class` from `principal` (if known) at client address `ip`
    /// (the real client, see [`RateLimiter::client_ip`]; IPv6 is grouped by /64 here) may
    /// proceed. Waits at most `[redis] timeout_ms`; never fails for lack of Redis unless
    /// `failure_mode = "closed"`.
    pub async fn check(
        &self,
        class: RouteClass,
        principal: Option<&str>,
        ip: IpAddr,
    ) -> Result<(), Limited> {
        let limits = self.shared_limits[class.index()];
        if limits.unlimited() {
            return Ok(());
        }
        let ip = ip_key(ip);
        if let Some(shared) = &self.shared {
            let mut keys = Vec::with_capacity(3);
            let mut dims = Vec::with_capacity(3);
            let base =
                |dim: Dimension| format!("{}{}:{}:", shared.prefix, class.as_str(), dim.tag());
            if let (Some(g), Some(p)) = (limits.principal, principal) {
                let digest = Sha256::digest(p.as_bytes());
                keys.push((base(Dimension::Principal) + &hex::encode(&digest[..16]), g));
                dims.push(Dimension::Principal);
            }
            if let Some(g) = limits.ip {
                keys.push((base(Dimension::Ip) + &ip.to_string(), g));
                dims.push(Dimension::Ip);
            }
            if let Some(g) = limits.global {
                keys.push((base(Dimension::Global), g));
                dims.push(Dimension::Global);
            }
            if keys.is_empty() {
                return Ok(());
            }
            match shared.decide(&keys).await {
                Verdict::Allowed => return Ok(()),
                Verdict::Limited { index, wait } => {
                    return Err(Limited {
                        retry_after: wait,
                        class,
                        dimension: dims.get(index).copied().unwrap_or(Dimension::Global),
                    });
                }
                Verdict::Unavailable => {
                    if self.failure_mode == FailureMode::Closed {
                        return Err(Limited {
                            retry_after: shared.breaker.remaining().max(Duration::from_secs(1)),
                            class,
                            dimension: Dimension::Global,
                        });
                    }
                }
            }
        }
        self.check_local(class, principal, ip)
    }

    /// The in-process decision (stage 1), on this replica's share of the limits.
    fn check_local(
        &self,
        class: RouteClass,
        principal: Option<&str>,
        ip: IpAddr,
    ) -> Result<(), Limited> {
        self.local_decisions.fetch_add(1, Ordering::Relaxed);
        let l = &self.local[class.index()];
        let refused = |dimension, retry_after| Limited {
            retry_after,
            class,
            dimension,
        };
        if let (Some(lim), Some(p)) = (&l.principal, principal) {
            let key = self.hasher.hash_one(p);
            lim.check_key(&key).map_err(|nu| {
                refused(Dimension::Principal, nu.wait_time_from(lim.clock().now()))
            })?;
        }
        if let Some(lim) = &l.ip {
            lim.check_key(&ip)
                .map_err(|nu| refused(Dimension::Ip, nu.wait_time_from(lim.clock().now())))?;
        }
        if let Some(lim) = &l.global {
            lim.check()
                .map_err(|nu| refused(Dimension::Global, nu.wait_time_from(lim.clock().now())))?;
        }
        Ok(())
    }

    /// The client address of a request from TCP peer `peer` carrying `X-Forwarded-For: xff`,
    /// believing the header only from the configured `trusted_proxies` (see [`client_ip`]).
    pub fn client_ip(&self, peer: IpAddr, xff: Option<&str>) -> IpAddr {
        client_ip(peer, xff, &self.trusted)
    }

    /// `None` without Redis; otherwise whether Redis is answering (breaker closed, connected).
    pub fn redis_healthy(&self) -> Option<bool> {
        self.shared.as_ref().map(|s| s.healthy())
    }

    /// `None` without Redis; otherwise whether Redis answers a `PING` now.
    pub async fn redis_ping(&self) -> Option<bool> {
        match &self.shared {
            Some(s) => Some(s.ping().await),
            None => None,
        }
    }

    /// Forgets every in-process key whose limit has fully refilled, then releases the memory.
    /// Runs every `retain_interval_secs` on its own; public for tests and for an on-demand sweep.
    pub fn retain_recent(&self) {
        for c in &self.local {
            if let Some(l) = &c.principal {
                l.retain_recent();
                l.shrink_to_fit();
            }
            if let Some(l) = &c.ip {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }

    /// Keys currently held by the in-process limiters (all classes, principal and ip).
    pub fn len(&self) -> usize {
        self.local
            .iter()
            .map(|c| {
                c.principal.as_ref().map_or(0, |l| l.len()) + c.ip.as_ref().map_or(0, |l| l.len())
            })
            .sum()
    }

    /// Whether [`RateLimiter::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decision counters.
    pub fn stats(&self) -> Stats {
        let (redis_decisions, redis_failures) = self.shared.as_ref().map_or((0, 0), |s| {
            (
                s.decisions.load(Ordering::Relaxed),
                s.failures.load(Ordering::Relaxed),
            )
        });
        Stats {
            redis_decisions,
            local_decisions: self.local_decisions.load(Ordering::Relaxed),
            redis_failures,
        }
    }

    /// Takes one of `principal`'s upload slots on this replica, capped by
    /// `max_concurrent_uploads_per_principal` (0: no cap), waiting up to `upload_slot_wait_ms`
    /// for one to be freed: a burst a little over the cap (an SDK's thread pool) queues briefly
    /// instead of failing. Hold the permit for the whole upload; dropping it frees the slot.
    pub async fn upload_permit(&self, principal: &str) -> Result<UploadPermit, Limited> {
        self.upload_permit_with_cap(principal, self.max_uploads, self.upload_wait)
            .await
    }

    /// As [`RateLimiter::upload_permit`] with an explicit cap and wait. `cap = 0` means no cap
    /// (and no bookkeeping).
    pub async fn upload_permit_with_cap(
        &self,
        principal: &str,
        cap: usize,
        wait: Duration,
    ) -> Result<UploadPermit, Limited> {
        if cap == 0 {
            return Ok(UploadPermit { slot: None });
        }
        let key = self.hasher.hash_one(principal);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the attempt, so a slot freed in between is not missed.
            let freed = self.uploads.1.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut counts = self.uploads.0.lock().unwrap_or_else(|p| p.into_inner());
                let n = counts.entry(key).or_insert(0);
                if *n < cap {
                    *n += 1;
                    return Ok(UploadPermit {
                        slot: Some((Arc::clone(&self.uploads), key)),
                    });
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(Limited {
                    retry_after: Duration::from_secs(1),
                    class: RouteClass::S3Write,
                    dimension: Dimension::Principal,
                });
            }
        }
    }

    /// Principals that currently hold at least one upload permit.
    pub fn uploads_tracked(&self) -> usize {
        self.uploads
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The per-upload bandwidth cap in bytes per second (`upload_bytes_per_sec`), if set.
    pub fn bandwidth(&self) -> Option<u64> {
        self.bandwidth
    }

    /// A pacer for one upload, enforcing [`RateLimiter::bandwidth`] (a no-op when unset).
    pub fn pacer(&self) -> Pacer {
        Pacer::new(self.bandwidth)
    }
}

/// One in-flight upload of one principal; frees its slot when dropped.
#[derive(Debug)]
#[must_use = "the slot is freed as soon as the permit is dropped"]
pub struct UploadPermit {
    slot: Option<(UploadCounts, u64)>,
}

impl Drop for UploadPermit {
    fn drop(&mut self) {
        if let Some((uploads, key)) = self.slot.take() {
            {
                let mut counts = uploads.0.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(n) = counts.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        counts.remove(&key);
                    }
                }
            }
            // Every waiter looks again (they may wait for other principals' slots).
            uploads.1.notify_waiters();
        }
    }
}

/// Holds one upload to a byte rate. Call [`Pacer::pace`] after each chunk is received: it
/// sleeps for as long as the upload is ahead of `rate × elapsed`, allowing one second's worth
/// of bytes as an initial burst. Uses Tokio's clock.
///
/// Sleeping here stops reading, so TCP flow control slows the client down; the body idle
/// timer should not count this sleep.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: Option<u64>,
    started: Option<tokio::time::Instant>,
    bytes: u64,
}

impl Pacer {
    /// A pacer at `bytes_per_sec` (`None` or 0: never waits).
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        Pacer {
            rate: bytes_per_sec.filter(|r| *r > 0),
            started: None,
            bytes: 0,
        }
    }

    /// Accounts `bytes` more and waits until the average rate is back under the cap.
    pub async fn pace(&mut self, bytes: usize) {
        let Some(rate) = self.rate else { return };
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        self.bytes = self.bytes.saturating_add(bytes as u64);
        let due = Duration::from_secs_f64(self.bytes.saturating_sub(rate) as f64 / rate as f64);
        let elapsed = started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let l = |ms| Limited {
            retry_after: Duration::from_millis(ms),
            class: RouteClass::Mint,
            dimension: Dimension::Ip,
        };
        assert_eq!(l(0).retry_after_secs(), 1);
        assert_eq!(l(5).retry_after_secs(), 1);
        assert_eq!(l(1000).retry_after_secs(), 1);
        assert_eq!(l(1001).retry_after_secs(), 2);
        assert!(matches!(Error::from(l(1)), Error::SlowDown(_)));
    }

    #[test]
    fn local_quota_divides_by_replicas() {
        let q = local_quota(
            Limit {
                rate: 300.0,
                burst: 10,
            },
            3,
        )
        .expect("valid")
        .expect("enabled");
        assert_eq!(q.replenish_interval(), Duration::from_millis(10));
        assert_eq!(q.burst_size().get(), 4);
        assert!(
            local_quota(
                Limit {
                    rate: 0.0,
                    burst: 10
                },
                1
            )
            .expect("valid")
            .is_none()
        );
    }

    #[tokio::test]
    async fn pacer_holds_the_average_rate() {
        let mut p = Pacer::new(Some(100_000));
        let start = tokio::time::Instant::now();
        p.pace(100_000).await; // the first second's worth is free
        assert!(start.elapsed() < Duration::from_millis(50));
        for _ in 0..10 {
            p.pace(2_000).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(400),
            "{took:?}"
        );
        let mut off = Pacer::new(None);
        off.pace(usize::MAX).await;
    }
}
