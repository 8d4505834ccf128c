//! PostgreSQL implementation of [`MetadataStore`](super::MetadataStore): for several gateway
//! replicas sharing one metadata database.
//!
//! Same logical schema as SQLite (`migrations/postgres/`), with keys in the `"C"` collation so
//! that ordering and range scans are UTF-8 byte order. The SQL is shared with SQLite
//! (`objects`, `control`, `multipart`); unlike SQLite there is no single writer, so commits to
//! one key may race from different replicas (see `objects` for how the later one wins).

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::MetaError;
use super::objects::impl_object_store;

/// The schema, from `migrations/postgres/`.
const MIGRATIONS: super::migrate::Embedded = super::migrate::embedded!("postgres");

/// Whether the database was created by the runner that preceded sqlx's (see `migrate`): a
/// `schema_migrations` table where this connection creates tables (the first schema of its
/// `search_path`), which is where that runner created it.
const LEGACY_EXISTS: &str = "SELECT COUNT(*) FROM pg_catalog.pg_tables \
     WHERE schemaname = current_schema() AND tablename = 'schema_migrations'";

/// Connections per process. Commits hold one for a few round trips; readers are short.
const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a free connection (or a new one to be established) before
/// failing with 503: an overloaded or unreachable database must not pile up requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL-backed metadata. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`) and migrates the schema that the
    /// connection's `search_path` selects (normally `public`).
    pub async fn open(url: &str) -> Result<Self, MetaError> {
        Self::connect(PgConnectOptions::from_str(url)?, None).await
    }

    /// Like [`PgStore::open`], but every connection uses `schema` as its only `search_path`
    /// entry, and the schema is created if missing. Lets tests (or tenants) share a database
    /// in isolation. `schema` must be a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at
    /// most 63 bytes) so it needs no quoting anywhere.
    pub async fn open_with_schema(url: &str, schema: &str) -> Result<Self, MetaError> {
        if !is_plain_identifier(schema) {
            return Err(MetaError::Database(sqlx::Error::Configuration(
                format!("invalid PostgreSQL schema name {schema:?}").into(),
            )));
        }
        let opts = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
        Self::connect(opts, Some(schema)).await
    }

    async fn connect(opts: PgConnectOptions, schema: Option<&str>) -> Result<Self, MetaError> {
        // Connections say who they are ("upgate", unless the URL names them, e.g. per replica).
        let opts = if opts.get_application_name().is_none() {
            opts.application_name("upgate")
        } else {
            opts
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        // A plain identifier (checked by the caller): safe to splice.
        let create_schema = schema.map(|s| format!("CREATE SCHEMA IF NOT EXISTS {s}"));
        super::migrate::run(
            &pool,
            &Migrator::new(MIGRATIONS).await.map_err(sqlx::Error::from)?,
            create_schema.as_deref(),
            LEGACY_EXISTS,
        )
        .await?;
        Ok(Self { pool })
    }

    /// Closes the pool: waits for checked-out connections to be returned, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `[a-z_][a-z0-9_]*`, 1..=63 bytes: valid unquoted, and unchanged by case folding.
fn is_plain_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_must_be_plain_identifiers() {
        assert!(is_plain_identifier("upgate_test_1"));
        assert!(is_plain_identifier("_x"));
        assert!(!is_plain_identifier(""));
        assert!(!is_plain_identifier("1abc"));
        assert!(!is_plain_identifier("Upper"));
        assert!(!is_plain_identifier("a b"));
        assert!(!is_plain_identifier("a;drop"));
        assert!(!is_plain_identifier("a\"b"));
        assert!(!is_plain_identifier(&"a".repeat(64)));
    }
}

impl_object_store!(PgStore, sqlx::Postgres, pool, pool, many_writers);
crate::impl_control_store!(PgStore, sqlx::postgres::PgRow, pool, pool);
crate::impl_multipart_store!(PgStore, sqlx::postgres::PgRow, pool, pool);
crate::impl_account_store!(PgStore, sqlx::postgres::PgRow, pool, pool);
crate::impl_resumable_store!(PgStore, sqlx::postgres::PgRow, pool, pool);
