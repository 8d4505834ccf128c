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

/// Runs the probes (or reuses an answer younger than [`crate::state::READINESS_TTL`]); 200
/// with every check "ok", or 503 naming what the replica cannot do without.
pub async fn readiness(state: &AppState) -> Response<Body> {
    let mut cached = state.readiness.lock().await;
    let (ready, body) = match cached.as_ref() {
        Some((at, ready, body)) if at.elapsed() < crate::state::READINESS_TTL => {
            (*ready, body.clone())
        }
        _ => {
            let (ready, body) = probe_all(state).await;
            *cached = Some((std::time::Instant::now(), ready, body.clone()));
            (ready, body)
        }
    };
    drop(cached);
    let mut r = Response::new(full(body));
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

/// Asks every dependency, each within [`PROBE_TIMEOUT`], all at once.
async fn probe_all(state: &AppState) -> (bool, String) {
    let clamd = async {
        match &state.clamd {
            Some(c) => Some(probe(c.ping()).await),
            None => None,
        }
    };
    let redis = async {
        tokio::time::timeout(PROBE_TIMEOUT, state.limiter.redis_ping())
            .await
            .unwrap_or(Some(false))
    };
    // Every configured backend, not only the default one.
    let (db, storage, clamd, redis) = tokio::join!(
        probe(state.meta.ping()),
        probe(state.storage.probe()),
        clamd,
        redis
    );
    state.metrics.dependency("metadata", db);
    state.metrics.dependency("storage", storage);
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut checks = serde_json::json!({ "metadata": word(db), "storage": word(storage) });
    let mut ready = db && storage;
    // The malware scanner: buckets that require a scan refuse every upload without it.
    if let Some(up) = clamd {
        state.metrics.dependency("clamd", up);
        checks["clamd"] = word(up).into();
        ready &= up;
    }
    // Redis only carries rate-limit counters: with failure_mode "local" the gateway serves on
    // local limits without it, so it is reported but does not make the replica unready.
    if let Some(up) = redis {
        state.metrics.dependency("redis", up);
        checks["redis"] = word(up).into();
        if state.config.ratelimit.failure_mode == crate::config::FailureMode::Closed {
            ready &= up;
        }
    }
    let body = serde_json::json!({ "status": word(ready), "checks": checks });
    (ready, body.to_string())
}
