//! The accept loops: the main listener (connection caps, optional TLS, HTTP/1.1 + HTTP/2,
//! header limits and timeouts, graceful drain, lingering close) and the admin listener (metrics
//! and probes).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

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

/// One open connection, as the accept loop and its own task see it.
#[derive(Debug)]
struct Conn {
    accepted: Instant,
    /// Requests in flight (a response counts until its body is sent).
    active: AtomicUsize,
    /// Whether any request arrived.
    spoke: AtomicBool,
    /// When the last request finished, in ms after `accepted`.
    idle_since_ms: AtomicU64,
    /// Asked to close (shed) by the accept loop.
    shed: AtomicBool,
    close: Notify,
}

/// Marks a request in flight on its connection until dropped.
struct Busy(Arc<Conn>);

impl Conn {
    fn begin(self: &Arc<Self>) -> Busy {
        self.spoke.store(true, Ordering::Release);
        self.active.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(ms, Ordering::Release);
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is sent (or dropped). Its length
/// and end are the inner body's, so hyper frames it exactly as it would the inner one.
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The open connections, so that the accept loop can shed idle ones when the table fills.
#[derive(Debug, Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Connections {
    fn register(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            accepted: Instant::now(),
            active: AtomicUsize::new(0),
            spoke: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            shed: AtomicBool::new(false),
            close: Notify::new(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, Arc::clone(&conn));
        }
        (id, conn)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Asks one connection with no request in flight to close: one that never sent a request
    /// before one that did, the oldest first. Returns whether there was one.
    fn shed_one(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let victim = open
            .values()
            .filter(|c| c.active.load(Ordering::Acquire) == 0 && !c.shed.load(Ordering::Acquire))
            .min_by_key(|c| (c.spoke.load(Ordering::Acquire), c.accepted));
        match victim {
            Some(c) => {
                c.shed.store(true, Ordering::Release);
                c.close.notify_one();
                true
            }
            None => false,
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
        .max_local_error_reset_streams(Some(256))
        // Pings find a peer that went away; the idle timeout closes one that stays silent.
        .keep_alive_interval(Some(Duration::from_secs(cfg.idle_timeout_secs)))
        .keep_alive_timeout(Duration::from_secs(cfg.header_read_timeout_secs));
    b
}

/// How long a closed connection's socket goes on reading what the peer still sends.
const LINGER: Duration = Duration::from_secs(5);
/// Most bytes read and dropped from one closed connection.
const LINGER_BYTES: usize = 4 * 1024 * 1024;
/// Most sockets lingering at once; past that, a socket closes on the spot.
const MAX_LINGERING: usize = 1024;
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// A connection's socket that is not closed on the spot when the connection is done with it
/// (nginx's lingering close). Closing a socket that holds unread bytes — the body of an upload
/// answered before it was read, still arriving — makes the kernel reset the connection, and a
/// reset can overtake the answer on its way to the client, which then sees a broken connection
/// instead of, say, its 403 or 413. So the write side is shut first (the client reads the
/// whole answer, then an end), and what the client still sends is read and dropped until it
/// closes, for at most [`LINGER`] and [`LINGER_BYTES`]. Not for HTTP/2 (seen by its preface,
/// or by ALPN under TLS): its streams have flow control and its connections end with a GOAWAY,
/// and one closed for abuse must not be read on.
struct Lingering {
    stream: Option<TcpStream>,
    linger: bool,
    /// Whether the first bytes were looked at.
    seen: bool,
}

/// The HTTP/2 connection preface's first line.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl Lingering {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream: Some(stream),
            linger: true,
            seen: false,
        }
    }

    /// The socket closes on the spot (an HTTP/2 connection).
    fn close_at_once(&mut self) {
        self.linger = false;
    }

    fn stream(self: std::pin::Pin<&mut Self>) -> std::pin::Pin<&mut TcpStream> {
        // The stream is taken out only by `drop`.
        std::pin::Pin::new(self.get_mut().stream.as_mut().expect("open until dropped"))
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.seen {
            return self.stream().poll_read(cx, buf);
        }
        // The first bytes only: every later read (an upload's body) goes straight through.
        let before = buf.filled().len();
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut *this).stream().poll_read(cx, buf);
        let got = &buf.filled()[before..];
        if !got.is_empty() {
            this.seen = true;
            let n = got.len().min(H2_PREFACE.len());
            if n >= 3 && got[..n] == H2_PREFACE[..n] {
                this.close_at_once();
            }
        }
        polled
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        if !self.linger {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if LINGERING.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING {
            LINGERING.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        runtime.spawn(async move {
            let _ = tokio::time::timeout(LINGER, async {
                if stream.shutdown().await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; 64 * 1024];
                let mut read = 0;
                while read < LINGER_BYTES {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
            })
            .await;
            LINGERING.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Serves one connection (plain or TLS) until it ends, the drain deadline passes, or the
/// server closes it: no request within the header timeout from the accept (`silent`), no
/// request in flight for the idle timeout (`idle`), or shed to make room (`shed`).
async fn run_connection<IO>(
    io: IO,
    info: ConnInfo,
    state: Arc<AppState>,
    watcher: hyper_util::server::graceful::Watcher,
    conn: Arc<Conn>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &state.config.server;
    let b = builder(cfg);
    let header_timeout = Duration::from_secs(cfg.header_read_timeout_secs);
    let idle_timeout = Duration::from_secs(cfg.idle_timeout_secs);
    let metrics = Arc::clone(&state.metrics);
    let _open = metrics.connection_opened();
    let tracked = Arc::clone(&conn);
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        let busy = tracked.begin();
        async move {
            let resp = crate::edge::handle(state, req, info).await;
            // In flight until the body is sent: a long download is never idle.
            let resp = resp.map(|inner| {
                use http_body_util::BodyExt;
                Tracked { inner, _busy: busy }.boxed_unsync()
            });
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let served = watcher.watch(b.serve_connection(TokioIo::new(io), service).into_owned());
    tokio::pin!(served);
    let silent = tokio::time::sleep(header_timeout);
    tokio::pin!(silent);
    let mut heard = false;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let reason = loop {
        tokio::select! {
            r = &mut served => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                return;
            }
            () = conn.close.notified() => break "shed",
            () = &mut silent, if !heard => {
                if !conn.spoke.load(Ordering::Acquire) {
                    break "silent";
                }
                heard = true;
            }
            () = &mut idle => {
                let since = Duration::from_millis(conn.idle_since_ms.load(Ordering::Acquire));
                let quiet = conn.accepted.elapsed().saturating_sub(since);
                if conn.active.load(Ordering::Acquire) == 0 && quiet >= idle_timeout {
                    break "idle";
                }
                let due = if conn.active.load(Ordering::Acquire) == 0 {
                    idle_timeout.saturating_sub(quiet)
                } else {
                    idle_timeout
                };
                idle.as_mut().reset(tokio::time::Instant::now() + due);
            }
        }
    };
    // Dropping the connection closes its socket (nothing is in flight on it).
    metrics.connection_closed(reason);
    tracing::debug!(peer = %info.peer, reason, "connection closed by the server");
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
    let open = Arc::new(Connections::default());
    // Below this many free slots, idle connections are shed to make room for new ones.
    let reserve = (cfg.max_connections / 16).max(1);
    let per_ip = Arc::new(PerIpLimiter::default());
    let handshake_timeout = Duration::from_secs(state.config.tls.handshake_timeout_secs);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // A nearly full table makes room: a connection with nothing in flight (one that never
        // spoke first) closes, so that a client that speaks gets a slot.
        if permits.available_permits() < reserve {
            open.shed_one();
        }
        // Wait for a free slot first: under a flood of busy connections, excess connections
        // queue in the kernel backlog instead of consuming memory here.
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
        let stream = Lingering::new(stream);
        let state = Arc::clone(&state);
        let watcher = graceful.watcher();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        let (id, conn) = open.register();
        let registry = Arc::clone(&open);
        connections.spawn(async move {
            let _held = (permit, slot);
            match acceptor {
                None => {
                    let info = ConnInfo { peer, tls: false };
                    run_connection(stream, info, state, watcher, conn).await
                }
                Some(acceptor) => {
                    // The handshake has its own timeout; the header timeout starts after it.
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(mut s)) => {
                            let (io, session) = s.get_mut();
                            if session.alpn_protocol() == Some(b"h2") {
                                io.close_at_once();
                            }
                            let info = ConnInfo { peer, tls: true };
                            run_connection(s, info, state, watcher, conn).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "tls handshake failed"),
                        Err(_) => tracing::debug!("tls handshake timed out"),
                    }
                }
            }
            registry.remove(id);
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
