//! Conformance suites, one per seam, each run against every implementation: the metadata stores
//! (SQLite, PostgreSQL), the storage backends (local, memory, S3 via moto, Azure via Azurite,
//! with and without envelope encryption), and SigV4 against the published test vectors.

#[path = "../support/backends.rs"]
mod backends;

mod metadata;
mod sigv4_vectors;
mod storage;
