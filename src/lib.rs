//! upgate: a self-hosted, S3-compatible upload gateway.
//!
//! # Architecture map
//!
//! ```text
//! main.rs ── CLI: serve | check-config | admin (tenants, keys, quotas, link/master key rotation)
//!   │
//! app.rs ──── App::build(config): storage + metadata + limiter + credentials + bound listeners
//!   │
//! server.rs ─ accept loop: connection caps (global, per IP /64), optional TLS (tls.rs, hot
//!   │         reload), HTTP/1.1 + HTTP/2, header limits and timeouts, graceful drain; the admin
//!   │         listener (metrics.rs, health.rs)
//!   │
//! s3/mod.rs ─ per request: /v1 → api/; else router::route (pure) → auth::parse → key lookup
//!   │          (root, tenant keys in the DB, link keys) → verify (a `Verified` proof) → scope
//!   │          check (tenant prefix) → ratelimit → handler → response; S3 XML errors, CORS
//!   ├─ s3/object.rs     PutObject (ingest, or through a single-use link), Get/Head, Delete
//!   ├─ s3/multipart.rs  multipart uploads with a total-size budget, streamed assembly
//!   ├─ s3/post.rs       browser POST-policy uploads (bounded form parsing)
//!   └─ s3/bucket.rs     list buckets/objects, DeleteObjects, bucket probes
//! api/ ─────── the JSON control plane: principals (API key, JWT, upload token, admin), upload
//!              links (minted SigV4 URLs, claimed once in the DB), tokens, files, downloads,
//!              versions, grants + audit, OpenAPI document
//!
//! ingest/ ── the streaming pipe: [aws-chunked decode + chunk signatures] → byte limit →
//!            SHA-256 (+ MD5 / CRC when asked) → magic-byte sniff → staging write; digests
//!            verified at end of stream, before anything is committed
//! storage/ ─ backends behind object_store (local, memory, S3, GCS, Azure); writes are staged
//!            (invisible, spooled within budgets for remote stores) until commit; SSE and
//!            envelope encryption wrappers
//! metadata/  object records (pending → committed → garbage), multipart, control-plane records
//!            and quotas, one SQL source for SQLite and PostgreSQL
//! ratelimit/ governor in process + Redis GCRA across replicas, circuit breaker, upload permits
//! quota.rs   per-tenant limits, enforced in the commit transaction
//! events.rs  webhook worker: outbox → signed POSTs, backoff + jitter, at-least-once
//! sweeper.rs removes bytes of retired versions, dead uploads, idle multipart uploads
//! error.rs ─ the one error enum, mapped exhaustively to HTTP status + S3 code (+ /v1 status)
//! config.rs  embedded documented defaults + file + UPGATE__* env; every problem at once
//! ```
//!
//! An object becomes visible at its key only when its metadata row flips to `committed`, which
//! happens after the bytes were fully received, every check passed and the staged write was
//! published at a fresh, random storage path. A failure at any step leaves the key unchanged.

// Layers, imports pointing down only (`tests/it/layers.rs` enforces it):
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
pub mod storage;
pub mod telemetry;
// L2 state
pub mod state;
// L3 the upload lifecycle
pub mod upload;
// L4 front ends (never import each other)
pub mod api;
pub mod s3;
// L5 server
pub mod edge;
pub mod health;
pub mod server;
pub mod sweeper;
pub mod tls;
// L6 composition root
pub mod app;
