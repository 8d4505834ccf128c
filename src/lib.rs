//! upgate: a self-hosted, S3-compatible upload gateway.
//!
//! # Architecture map
//!
//! ```text
//! main.rs ── CLI: parse args, load config, init telemetry, build the app, run until signal
//!   │
//! app.rs ──── App::build(config): storage + metadata + credentials + bound listener
//!   │
//! server.rs ─ accept loop: connection cap, HTTP/1.1 + HTTP/2, header timeout, graceful drain
//!   │
//! s3/mod.rs ─ per request: router::route (pure) → auth::parse → key lookup → verify
//!   │          (a `Verified` proof) → handler → response; errors become S3 XML here
//!   ├─ s3/object.rs  PutObject (ingest), Get/Head (ranges, conditionals), Delete
//!   └─ s3/bucket.rs  list buckets/objects, DeleteObjects, bucket probes
//!
//! ingest/ ── the streaming pipe: [aws-chunked decode + chunk signatures] → byte limit →
//!            SHA-256 (+ MD5 / CRC when asked) → magic-byte sniff → staging write; digests
//!            verified at end of stream, before anything is committed
//! storage/ ─ object_store seam; writes are staged (invisible) until commit, abort on drop
//! metadata/  the object records (pending → committed → garbage); SQLite by default
//! sweeper.rs removes bytes of retired versions and of uploads whose process died
//! error.rs ─ the one error enum, mapped exhaustively to HTTP status + S3 code
//! config.rs  embedded documented defaults + file + UPGATE__* env; every problem at once
//! ```
//!
//! An object becomes visible at its key only when its metadata row flips to `committed`, which
//! happens after the bytes were fully received, every check passed and the staged write was
//! published at a fresh, random storage path. A failure at any step leaves the key unchanged.

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod cors;
pub mod error;
pub mod events;
pub mod health;
pub mod id;
pub mod ingest;
pub mod metadata;
pub mod metrics;
pub mod quota;
pub mod ratelimit;
pub mod router;
pub mod s3;
pub mod server;
pub mod storage;
pub mod sweeper;
pub mod telemetry;
pub mod tls;
