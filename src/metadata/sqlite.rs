//! SQLite implementation of [`MetadataStore`](super::MetadataStore): the embedded default.
//!
//! WAL mode; one writer connection (SQLite serialises writers anyway, and a single in-process
//! writer avoids `SQLITE_BUSY` on lock upgrades) and a small pool of readers that never block
//! on it. The SQL is shared with PostgreSQL (`objects`, `control`, `multipart`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::MetaError;
use super::objects::impl_object_store;

/// The schema, from `migrations/sqlite/`.
const MIGRATIONS: super::migrate::Embedded = super::migrate::embedded!("sqlite");

/// Whether the database was created by the runner that preceded sqlx's (see `migrate`).
const LEGACY_EXISTS: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'";

/// SQLite-backed metadata.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH?mode=rwc`) and migrates;
    /// every commit is durable when it returns.
    pub async fn open(url: &str) -> Result<Self, MetaError> {
        Self::open_with(url, true).await
    }

    /// [`SqliteStore::open`], with commits flushed to the disk before they return (`fsync`:
    /// `synchronous=FULL`) or not (`NORMAL`: in WAL mode a power loss may undo the last
    /// commits, never corrupt the database).
    pub async fn open_with(url: &str, fsync: bool) -> Result<Self, MetaError> {
        let sync = if fsync {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        };
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // A connection is a file handle in this process, with no server to lose and nothing
        // to find out by asking: no ping before each use (sqlx's default, a round trip to the
        // connection's thread that every statement through the pool would otherwise pay on
        // top of its own).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts.clone())
            .await?;
        super::migrate::run(
            &writer,
            &Migrator::new(MIGRATIONS).await.map_err(sqlx::Error::from)?,
            None,
            LEGACY_EXISTS,
        )
        .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}

impl_object_store!(SqliteStore, sqlx::Sqlite, writer, reader, one_writer);
crate::impl_control_store!(SqliteStore, sqlx::sqlite::SqliteRow, writer, reader);
crate::impl_multipart_store!(SqliteStore, sqlx::sqlite::SqliteRow, writer, reader);
crate::impl_account_store!(SqliteStore, sqlx::sqlite::SqliteRow, writer, reader);
crate::impl_resumable_store!(SqliteStore, sqlx::sqlite::SqliteRow, writer, reader);
