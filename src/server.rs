//! The accept loops: the main listener (connection caps, optional TLS, HTTP/1.1 + HTTP/2,
//! header limits and timeouts, graceful drain) and the admin listener (metrics and probes).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::http::{Body, ConnInfo, full};
use crate::net::ip_key;
use crate::state::AppState;
use crate::tls::TlsState;

/// Open-connection counts per client address.
#[derive(Debug, Default)]
pub struct PerIpLimiter {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one per-address slot until dropped.
#[derive(Debug)]
pub struct IpSlot {
    limiter: Arc<PerIpLimiter>,
    key: IpAddr,
}

impl PerIpLimiter {
    /// Takes a slot for `ip` unless it already holds `max`.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let key = ip_key(ip);
        let mut counts = self.counts.lock().ok()?;
        let n = counts.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            limiter: Arc::clone(self),
            key,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.limiter.counts.lock()
            && let Some(n) = counts.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

fn builder(cfg: &ServerConfig) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs))
        .max_headers(cfg.max_headers)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(cfg.http2_max_concurrent_streams)
        .initial_stream_window_size(cfg.http2_stream_window_bytes)
        .initial_connection_window_size(cfg.http2_connection_window_bytes)
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256));
    b
}

/// Serves one connection (plain or TLS) until it ends or the drain deadline passes.
async fn run_connection<IO>(
    io: IO,
    info: ConnInfo,
    state: Arc<AppState>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let b = builder(&state.config.server);
    let _open = state.metrics.connection_opened();
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, std::convert::Infallible>(crate::edge::handle(state, req, info).await) }
    });
    let conn = b.serve_connection(TokioIo::new(io), service).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with error");
    }
}

/// Accepts connections until `shutdown` resolves, then waits up to `grace` for open
/// connections to finish their in-flight requests; whatever still runs after that is dropped
/// (an unfinished upload aborts itself and leaves nothing behind).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<TlsState>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let cfg = state.config.server.clone();
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let per_ip = Arc::new(PerIpLimiter::default());
    let handshake_timeout = Duration::from_secs(state.config.tls.handshake_timeout_secs);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // Wait for a free slot first: under a flood, excess connections queue in the kernel
        // backlog instead of consuming memory here.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Typically EMFILE/ENFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = per_ip.try_acquire(peer.ip(), cfg.max_connections_per_ip) else {
            tracing::debug!(peer = %peer.ip(), "per-address connection cap reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let watcher = graceful.watcher();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        connections.spawn(async move {
            let _held = (permit, slot);
            match acceptor {
                None => run_connection(stream, ConnInfo { peer, tls: false }, state, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            run_connection(s, ConnInfo { peer, tls: true }, state, watcher).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "tls handshake failed"),
                        Err(_) => tracing::debug!("tls handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(
                remaining = connections.len(),
                "grace period over; aborting remaining connections"
            );
        }
    }
    // Dropping a connection's future drops its in-flight upload, whose guards discard the
    // staged bytes and the pending row; wait for those cleanups while the runtime still runs.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    state.cleanup.wait_idle(Duration::from_secs(5)).await;
}

/// The admin listener: `/metrics` (Prometheus text format), `/healthz`, `/readyz`.
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(admin(&state, &req).await) }
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let _ = b.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn admin(state: &AppState, req: &Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(full(state.metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/healthz" => Response::new(full("ok")),
        "/readyz" => crate::health::readiness(state).await,
        _ => {
            let mut r = Response::new(full("not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_grouped_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn per_ip_slots_are_capped_and_released() {
        let l = Arc::new(PerIpLimiter::default());
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let a = l.try_acquire(ip, 2).expect("1");
        let _b = l.try_acquire(ip, 2).expect("2");
        assert!(l.try_acquire(ip, 2).is_none());
        assert!(l.try_acquire("192.0.2.2".parse().expect("ip"), 2).is_some());
        drop(a);
        assert!(l.try_acquire(ip, 2).is_some());
    }
}
