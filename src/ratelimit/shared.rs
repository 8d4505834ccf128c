//! Stage 2: the cluster-wide limits, kept in Redis as GCRA "theoretical arrival times".
//!
//! One decision is one `EVALSHA` of [`SCRIPT`] (falling back to `EVAL` when the server answers
//! `NOSCRIPT`, e.g. after a restart): all the keys of a request go in one call, the script reads
//! Redis' own clock (`TIME`, so replicas with skewed clocks agree), and it writes only when every
//! key allows — a request refused by one limit consumes none of the others. Each key expires when
//! its limit has fully refilled, so Redis holds only the clients active right now.
//!
//! Every call is bounded by `timeout_ms`. A [`Breaker`] counts consecutive failures; once open,
//! requests do not touch Redis until a single probe, after the cool-down, succeeds. The
//! connection is made off the request path by a background task, so neither start nor a
//! request ever waits for a connect.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, ServerErrorKind};
use sha1::{Digest, Sha1};

use crate::config::RedisConfig;

/// GCRA over every key of `KEYS` at once. `ARGV` holds two numbers per key: the emission
/// interval and the tolerance (`(burst - 1) * interval`), both in microseconds. Returns
/// `{1, 0, 0}` when allowed (and then, only then, advances every key), or
/// `{0, index, wait_us}` for the key (1-based) that must wait longest.
pub(crate) const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_tat = {}
local worst, wait = 0, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local w = tat - tolerance - now
  if w > wait then wait = w; worst = i end
  next_tat[i] = tat + interval
end
if worst > 0 then return {0, worst, wait} end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((next_tat[i] - now) / 1000)
  redis.call('SET', KEYS[i], string.format('%.0f', next_tat[i]), 'PX', ttl_ms)
end
return {1, 0, 0}
"#;

/// A limit as the script sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Microseconds between two requests at the sustained rate.
    pub interval_us: u64,
    /// `(burst - 1) * interval_us`.
    pub tolerance_us: u64,
}

impl Gcra {
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        let interval_us = ((1e6 / rate).round() as u64).max(1);
        Gcra {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(burst.max(1) - 1)),
        }
    }
}

/// The outcome of asking Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    /// Key number `index` (0-based, in the order given) is over its limit for `wait`.
    Limited {
        index: usize,
        wait: Duration,
    },
    /// Redis did not answer (breaker open, no connection, error or timeout): decide elsewhere.
    Unavailable,
}

/// Counts consecutive failures; open means "do not call Redis" until the cool-down ends, then
/// one caller at a time probes.
#[derive(Debug)]
pub(crate) struct Breaker {
    epoch: Instant,
    /// 0: closed; otherwise nanoseconds since `epoch` until which the breaker is open, plus 1.
    open_until: AtomicU64,
    failures: AtomicU32,
    probing: AtomicBool,
    threshold: u32,
    cooldown: Duration,
}

/// What the breaker lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Closed: call Redis.
    Call,
    /// Half-open and this caller won the probe: call Redis and report the result.
    Probe,
    /// Open: do not call Redis.
    Skip,
}

impl Breaker {
    /// A breaker that starts open with its cool-down already over: the first caller probes.
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            epoch: Instant::now(),
            open_until: AtomicU64::new(1),
            failures: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.open_until.load(Ordering::Acquire) == 0
    }

    fn admit(&self) -> Admit {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Call;
        }
        if self.now_nanos() + 1 < until {
            return Admit::Skip;
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admit::Probe,
            Err(_) => Admit::Skip,
        }
    }

    /// Records a success; returns true when this closed an open breaker.
    fn succeeded(&self) -> bool {
        self.failures.store(0, Ordering::Release);
        let was = self.open_until.swap(0, Ordering::AcqRel);
        self.probing.store(false, Ordering::Release);
        was != 0
    }

    /// Gives the probe back without a verdict (nothing was asked of Redis).
    fn release_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// Records a failure; returns true when this failure opened a closed breaker (a failed
    /// probe re-opens it for another cool-down and returns false).
    fn failed(&self, probe: bool) -> bool {
        if probe {
            self.open();
            self.probing.store(false, Ordering::Release);
            return false;
        }
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.threshold && self.is_closed() {
            self.open();
            return true;
        }
        false
    }

    fn open(&self) {
        let until = self
            .now_nanos()
            .saturating_add(self.cooldown.as_nanos() as u64)
            + 1;
        self.open_until.store(until, Ordering::Release);
        self.failures.store(0, Ordering::Release);
    }

    /// Ends the cool-down now: the next caller probes (a fresh connection is ready).
    fn half_open(&self) {
        if !self.is_closed() {
            self.open_until.store(1, Ordering::Release);
        }
    }

    /// Time left in the cool-down (zero when closed or half-open).
    pub(crate) fn remaining(&self) -> Duration {
        let until = self.open_until.load(Ordering::Acquire);
        Duration::from_nanos(until.saturating_sub(self.now_nanos() + 1))
    }
}

/// Resets the probe flag if a probing request is dropped before it reports (a cancelled
/// future), counting that as a failed probe, so the breaker can never stick half-open.
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.failed(true);
        }
    }
}

/// The Redis side of the limiter.
pub(crate) struct Shared {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    connecting: AtomicBool,
    pub(crate) breaker: Breaker,
    timeout: Duration,
    connect_timeout: Duration,
    pub(crate) prefix: String,
    sha: String,
    pub(crate) decisions: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("breaker_closed", &self.breaker.is_closed())
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(cfg: &RedisConfig) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(cfg.url.as_str())?;
        Ok(Shared {
            client,
            conn: Mutex::new(None),
            connecting: AtomicBool::new(false),
            breaker: Breaker::new(
                cfg.breaker_failures,
                Duration::from_millis(cfg.breaker_cooldown_ms),
            ),
            timeout: Duration::from_millis(cfg.timeout_ms),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            prefix: cfg.key_prefix.clone(),
            sha: hex::encode(Sha1::digest(SCRIPT.as_bytes())),
            decisions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// Whether Redis is answering: a connection exists and the breaker is closed.
    pub(crate) fn healthy(&self) -> bool {
        self.breaker.is_closed() && self.connection().is_some()
    }

    fn connection(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn drop_connection(&self) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Asks Redis itself (`PING`, within the decision timeout): readiness must not trust the
    /// last decision, which may be minutes old. A failed ping drops the connection and starts a
    /// reconnect, as a failed decision does.
    pub(crate) async fn ping(self: &Arc<Self>) -> bool {
        let Some(mut conn) = self.connection() else {
            self.spawn_connect();
            return false;
        };
        let cmd = redis::cmd("PING");
        let asked = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.timeout, asked).await {
            Ok(Ok(_)) => true,
            _ => {
                self.drop_connection();
                self.breaker.open();
                self.spawn_connect();
                false
            }
        }
    }

    /// Starts a background (re)connect unless one is running. Never waits.
    pub(crate) fn spawn_connect(self: &Arc<Self>) {
        if self
            .connecting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.connecting.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        rt.spawn(async move {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(this.connect_timeout))
                .set_response_timeout(Some(this.timeout));
            let attempt = async {
                let mut conn = this
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                // Preload the script so that decisions are EVALSHA from the start.
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(SCRIPT)
                    .query_async::<String>(&mut conn)
                    .await?;
                Ok::<_, redis::RedisError>(conn)
            };
            match tokio::time::timeout(this.connect_timeout, attempt).await {
                Ok(Ok(conn)) => {
                    *this.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
                    // The next request probes at once instead of waiting out the cool-down.
                    this.breaker.half_open();
                    tracing::debug!("rate limiter: connected to redis");
                }
                Ok(Err(e)) => {
                    this.breaker.open();
                    tracing::debug!(error = ?e.kind(), "rate limiter: redis connect failed");
                }
                Err(_) => {
                    this.breaker.open();
                    tracing::debug!("rate limiter: redis connect timed out");
                }
            }
            this.connecting.store(false, Ordering::Release);
        });
    }

    /// Runs the GCRA script over `keys` (with their limits), within the timeout budget.
    pub(crate) async fn decide(self: &Arc<Self>, keys: &[(String, Gcra)]) -> Verdict {
        let probe = match self.breaker.admit() {
            Admit::Skip => return Verdict::Unavailable,
            Admit::Call => false,
            Admit::Probe => true,
        };
        let mut guard = ProbeGuard {
            breaker: &self.breaker,
            armed: probe,
        };
        let Some(mut conn) = self.connection() else {
            // Connecting happens off the request path; its outcome drives the breaker
            // (failure: open for a cool-down; success: half-open, the next request probes).
            guard.armed = false;
            if probe {
                self.breaker.release_probe();
            }
            self.spawn_connect();
            return Verdict::Unavailable;
        };
        let result = tokio::time::timeout(self.timeout, self.eval(&mut conn, keys)).await;
        guard.armed = false;
        match result {
            Ok(Ok((1, _, _))) => {
                self.success();
                Verdict::Allowed
            }
            Ok(Ok((_, index, wait_us))) if index >= 1 && (index as usize) <= keys.len() => {
                self.success();
                Verdict::Limited {
                    index: index as usize - 1,
                    wait: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
                }
            }
            Ok(Ok(_)) => {
                tracing::warn!("rate limiter: unexpected reply from the redis script");
                self.failure(probe, false);
                Verdict::Unavailable
            }
            Ok(Err(e)) => {
                tracing::debug!(error = ?e.kind(), "rate limiter: redis call failed");
                let broken =
                    e.is_connection_dropped() || e.is_io_error() || e.is_unrecoverable_error();
                self.failure(probe, broken);
                Verdict::Unavailable
            }
            Err(_elapsed) => {
                tracing::debug!("rate limiter: redis call timed out");
                // A probe that times out may be talking to a dead peer (no RST ever comes).
                self.failure(probe, probe);
                Verdict::Unavailable
            }
        }
    }

    fn success(&self) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if self.breaker.succeeded() {
            tracing::info!("rate limiter: redis answers again, shared limits resumed");
        }
    }

    /// Records a failed call. A broken connection is dropped; the next request that finds no
    /// connection starts a reconnect. Reconnects therefore happen at most once per probe, and
    /// probes at most once per cool-down: a Redis that accepts connections but fails every
    /// script cannot cause a reconnect loop.
    fn failure(&self, probe: bool, broken: bool) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let opened = self.breaker.failed(probe);
        if broken || opened {
            // A connection that failed this often is suspect (half-dead peer, failover).
            self.drop_connection();
        }
        if opened {
            tracing::warn!(
                cooldown_ms = self.breaker.cooldown.as_millis() as u64,
                "rate limiter: redis unavailable, circuit breaker open; deciding without it"
            );
        }
    }

    async fn eval(
        &self,
        conn: &mut MultiplexedConnection,
        keys: &[(String, Gcra)],
    ) -> redis::RedisResult<(i64, i64, i64)> {
        let args = || {
            let mut cmd_args = Vec::with_capacity(keys.len() * 3);
            for (k, _) in keys {
                cmd_args.push(k.clone());
            }
            for (_, g) in keys {
                cmd_args.push(g.interval_us.to_string());
                cmd_args.push(g.tolerance_us.to_string());
            }
            cmd_args
        };
        let reply = redis::cmd("EVALSHA")
            .arg(&self.sha)
            .arg(keys.len())
            .arg(args())
            .query_async(conn)
            .await;
        match reply {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                redis::cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(keys.len())
                    .arg(args())
                    .query_async(conn)
                    .await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_parameters() {
        assert_eq!(
            Gcra::new(200.0, 10),
            Gcra {
                interval_us: 5000,
                tolerance_us: 45_000
            }
        );
        assert_eq!(Gcra::new(0.5, 1).tolerance_us, 0);
        assert_eq!(Gcra::new(1e9, 1).interval_us, 1);
    }

    #[test]
    fn breaker_opens_after_threshold_and_probes_once() {
        let b = Breaker::new(3, Duration::from_secs(3600));
        assert_eq!(b.admit(), Admit::Probe, "starts half-open");
        assert_eq!(b.admit(), Admit::Skip, "one probe at a time");
        b.release_probe();
        assert_eq!(
            b.admit(),
            Admit::Probe,
            "a released probe goes to the next caller"
        );
        assert!(b.succeeded(), "closing is reported");
        assert_eq!(b.admit(), Admit::Call);
        assert!(!b.failed(false) && !b.failed(false));
        assert!(b.failed(false), "third consecutive failure opens");
        assert_eq!(b.admit(), Admit::Skip);
        assert!(b.remaining() > Duration::from_secs(3000));
        b.half_open();
        assert_eq!(b.admit(), Admit::Probe);
        assert!(
            !b.failed(true),
            "a failed probe reopens (not a new opening)"
        );
        assert_eq!(b.admit(), Admit::Skip);
    }

    #[test]
    fn success_resets_the_failure_count() {
        let b = Breaker::new(2, Duration::from_secs(1));
        b.succeeded();
        b.failed(false);
        b.succeeded();
        assert!(!b.failed(false), "count restarted");
        assert!(b.is_closed());
    }

    #[test]
    fn dropped_probe_reopens() {
        let b = Breaker::new(1, Duration::from_secs(3600));
        assert_eq!(b.admit(), Admit::Probe);
        drop(ProbeGuard {
            breaker: &b,
            armed: true,
        });
        assert_eq!(b.admit(), Admit::Skip, "reopened, not stuck probing");
        assert!(b.remaining() > Duration::ZERO);
    }
}
