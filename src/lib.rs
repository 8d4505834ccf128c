//! upgate: a self-hosted, S3-compatible upload gateway.
//!
//! # Architecture map
//!
//! Layers, imports pointing down only (the `layers` test in `tests/it/` enforces it):
//!
//! ```text
//! L6 main.rs ─── CLI: serve | check-config | receipt verify | admin (tenants, users, keys,
//!                quotas, key rotation)
//!    app.rs ──── App::build(config): storage + metadata + limiter + credentials + listeners;
//!                the composition root, the only module that sees everything
//! L5 server.rs ─ accept loop: connection caps (global, per IP /64), TLS (tls.rs, hot reload),
//!                HTTP/1.1 + HTTP/2, header limits and timeouts, graceful drain; admin listener
//!    edge.rs ─── the one request edge: request id, probes (health.rs), /v1 → api, else → s3;
//!                errors logged and counted once and rendered by the front end; HSTS, CORS,
//!                metrics, one access-log line
//!    sweeper.rs  removes bytes of retired versions, dead uploads, idle multipart uploads
//!    client/ ─── `upgate upload|files|link`: a gateway's client over HTTP (tus with a state
//!                file to resume, progress bars, receipts verified), never the server's code
//! L4 s3/ ─────── S3 plane: router.rs (pure) → auth (parse → key lookup → verify: `Verified`)
//!                → scope → rate limit → handler (object, multipart, post, bucket) → S3 XML
//!    api/ ────── JSON control plane: upload links and tokens, files, downloads, versions,
//!                grants + audit, admin, OpenAPI
//!    tus/ ────── tus 1.0 resumable uploads over upload::resumable
//!    web/ ────── the pages upgate serves (drop page, files page; embedded HTML/CSS/JS, strict
//!                CSP) and Uppy's Companion-compatible S3 routes over upload::resumable.
//!                Front ends never import each other.
//! L3 upload/ ─── the protocol-neutral lifecycle: expectations(bucket) → put (pending row,
//!                staged write, commit or abort on drop) · link (claim, commit, release) ·
//!                multipart (store part, complete + assemble) · resumable (tus/IETF state
//!                over multipart parts) · malware (scan before commit) · names (display
//!                names) · delete · quota · admit (rate limits, upload permits) · receipt
//!                (signed upload receipts)
//!    accounts/ ─ upgate's own users and sessions: register, login (argon2id, lockout),
//!                refresh rotation with reuse detection, logout, /me (Redis-cached)
//! L2 state.rs ── AppState: the handles every front end shares (no behaviour)
//! L1 auth/ ───── SigV4/SigV2, POST policy, credentials (keys, link keys, principals, JWT),
//!                upgate's signing keys (access tokens, receipts, JWKS), password hashing
//!    ingest/ ─── the streaming pipe: [aws-chunked decode + chunk signatures] → byte limit →
//!                SHA-256 (+ MD5 / CRC when asked) → magic-byte sniff → staging write
//!    storage/ ── backends behind object_store (local, memory, S3, GCS, Azure); staged writes,
//!                spooling within budgets, SSE and envelope encryption wrappers
//!    metadata/ ─ object records (pending → committed → garbage), multipart, control records,
//!                quotas, accounts (users, sessions, refresh tokens, signing keys); SQLite,
//!                PostgreSQL and MySQL from one SQL source (sql.rs translates for MySQL)
//!    ratelimit/  governor in process + Redis GCRA across replicas, circuit breaker, permits
//!    events.rs ─ outbox worker: webhooks (signed POSTs) and mail (events/mail.rs: SMTP
//!                notices, one outbox row per recipient), backoff + jitter, at-least-once
//!    scan/ ───── content checks: PDF active content and image bombs (streamed through the
//!                pipe or the assembly), clamd malware scanning
//!    cors.rs, metrics.rs, telemetry.rs
//! L0 error.rs ── the one error enum, mapped exhaustively to HTTP status + S3 code (+ /v1)
//!    config/ ─── embedded documented defaults + file + UPGATE__* env; plain data, every
//!                problem at once (app::load_config adds the mechanisms' checks)
//!    http.rs ─── body type, response helpers, connection info, body frames, query parsing
//!    clock.rs (dates via `time`), id.rs, mime.rs (type vocabulary), net.rs (addresses)
//! ```
//!
//! Where a change goes: an S3 operation — a variant and its arms in `s3/router.rs`, an arm in
//! `s3::dispatch`, the handler; a metadata backend — a store in `metadata/` implementing its
//! traits, opened in `app::open_metadata`; a content check — `upload::expectations` (what the
//! pipe enforces) or a stage before the commit in `upload/put.rs`; an ingest protocol — a new
//! front end in L4 that turns its requests into frames for `upload::put` / `upload::multipart`,
//! plus its prefix in `edge.rs`.
//!
//! An object becomes visible at its key only when its metadata row flips to `committed`, which
//! happens after the bytes were fully received, every check passed and the staged write was
//! published at a fresh, random storage path. A failure at any step leaves the key unchanged.

// L0 values
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod id;
pub mod mime;
pub mod net;
// L1 mechanisms
pub mod auth;
pub mod cors;
pub mod events;
pub mod ingest;
pub mod metadata;
pub mod metrics;
pub mod ratelimit;
pub mod scan;
pub mod storage;
pub mod telemetry;
// L2 state
pub mod state;
// L3 the upload lifecycle, accounts
pub mod accounts;
pub mod upload;
// L4 front ends (never import each other)
pub mod api;
pub mod s3;
pub mod tus;
pub mod web;
// L5 server; the client of a gateway (the `upload`, `files` and `link` commands)
pub mod client;
pub mod edge;
pub mod health;
pub mod server;
pub mod sweeper;
pub mod tls;
// L6 composition root
pub mod app;
