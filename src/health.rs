//! Liveness and readiness. `/healthz` only says the process answers; `/readyz` probes every
//! dependency a request needs (metadata database, object storage) with a short timeout and
//! reports each one, so a load balancer stops sending traffic to a replica that would fail it.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use crate::http::{Body, full};
use crate::state::AppState;

/// How long one dependency probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe<F, E>(f: F) -> bool
where
    F: std::future::Future<Output = Result<(), E>>,
{
    matches!(tokio::time::timeout(PROBE_TIMEOUT, f).await, Ok(Ok(())))
}

/// Runs the probes; 200 with every check "ok", or 503 naming what failed.
pub async fn readiness(state: &AppState) -> Response<Body> {
    let db = probe(state.meta.ping()).await;
    // Every configured backend, not only the default one.
    let storage = probe(state.storage.probe()).await;
    state.metrics.dependency("metadata", db);
    state.metrics.dependency("storage", storage);
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut checks = serde_json::json!({ "metadata": word(db), "storage": word(storage) });
    // Redis only carries rate-limit counters: with failure_mode "local" the gateway serves on
    // local limits without it, so it is reported but does not make the replica unready.
    let mut ready = db && storage;
    // The malware scanner: buckets that require a scan refuse every upload without it.
    if let Some(clamd) = &state.clamd {
        let up = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, clamd.ping()).await,
            Ok(Ok(()))
        );
        state.metrics.dependency("clamd", up);
        checks["clamd"] = word(up).into();
        ready &= up;
    }
    if let Some(redis) = state.limiter.redis_healthy() {
        state.metrics.dependency("redis", redis);
        checks["redis"] = word(redis).into();
        if state.config.ratelimit.failure_mode == crate::config::FailureMode::Closed {
            ready &= redis;
        }
    }
    let body = serde_json::json!({ "status": word(ready), "checks": checks });
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
