//! The Redis cache of `GET /v1/auth/me` answers: a convenience, never the record. Each entry
//! is the answer's JSON under `{prefix}me:{user_id}` with a TTL; a change to the user deletes
//! it. Redis being slow, down or absent only means the database answers: every cache
//! operation has the configured timeout and a failure is a miss.

use std::sync::Mutex;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::config::RedisConfig;

/// A small cache in Redis.
pub struct MeCache {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    connect_timeout: Duration,
    /// Counts of hits and misses (tests and measurements read them).
    stats: Mutex<(u64, u64)>,
}

impl std::fmt::Debug for MeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeCache")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl MeCache {
    /// A cache on the configured Redis; `None` without Redis or with a zero TTL.
    pub fn new(cfg: &RedisConfig, ttl_secs: u64) -> Result<Option<Self>, String> {
        if !cfg.enabled() || ttl_secs == 0 {
            return Ok(None);
        }
        let client = redis::Client::open(cfg.url.as_str()).map_err(|e| format!("redis: {e}"))?;
        Ok(Some(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            prefix: cfg.key_prefix.clone(),
            ttl: Duration::from_secs(ttl_secs),
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms.max(1)),
            stats: Mutex::new((0, 0)),
        }))
    }

    /// The Redis key of a user's entry.
    pub fn key(&self, user_id: &str) -> String {
        format!("{}me:{user_id}", self.prefix)
    }

    async fn connection(&self) -> Option<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout));
        match tokio::time::timeout(
            self.connect_timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                Some(c)
            }
            _ => None,
        }
    }

    async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::debug!(error = ?e.kind(), "me cache: redis failed");
                if e.is_io_error() || e.is_connection_dropped() {
                    self.forget_connection().await;
                }
                None
            }
            Err(_) => None,
        }
    }

    /// The cached answer for `user_id`, if any.
    pub async fn get(&self, user_id: &str) -> Option<String> {
        let v: Option<Option<String>> = self
            .run(redis::cmd("GET").arg(self.key(user_id)).clone())
            .await;
        let hit = v.flatten();
        if let Ok(mut s) = self.stats.lock() {
            if hit.is_some() {
                s.0 += 1;
            } else {
                s.1 += 1;
            }
        }
        hit
    }

    /// Caches `value` for `user_id` with the TTL.
    pub async fn put(&self, user_id: &str, value: &str) {
        let _: Option<()> = self
            .run(
                redis::cmd("SET")
                    .arg(self.key(user_id))
                    .arg(value)
                    .arg("EX")
                    .arg(self.ttl.as_secs())
                    .clone(),
            )
            .await;
    }

    /// Drops the entry of `user_id` (after a change).
    pub async fn invalidate(&self, user_id: &str) {
        let _: Option<i64> = self
            .run(redis::cmd("DEL").arg(self.key(user_id)).clone())
            .await;
    }

    /// `(hits, misses)` so far.
    pub fn stats(&self) -> (u64, u64) {
        self.stats.lock().map(|s| *s).unwrap_or((0, 0))
    }
}
