//! MySQL / MariaDB implementation of [`MetadataStore`](super::MetadataStore): for deployments
//! whose database is MySQL (RDS MySQL, Aurora MySQL; MySQL 8.0 and MariaDB 10.6 or later, for
//! `SKIP LOCKED`). Like PostgreSQL, several replicas may share it. The conformance suite runs
//! against MariaDB.
//!
//! The SQL is the one source the other stores use, translated by [`super::sql`]. What differs
//! from PostgreSQL, and how the schema (`migrations/mysql/`) and the connections make up for it:
//!
//! - **Byte order and case.** Every string column is a binary string (`VARBINARY`, `BLOB`)
//!   holding UTF-8: comparisons, ordering and range scans are bytewise (as with the `"C"`
//!   collation and SQLite), case-sensitive, and without the trailing-space padding of MySQL's
//!   text collations (`'a'` and `'a '` are different keys), whatever the server's defaults, and
//!   the same on MySQL 8 and MariaDB (which share no binary no-pad text collation). `LIKE`
//!   matches bytes as well: `_` stands for one byte, not one character. Object keys are
//!   `VARBINARY(1024)`: S3 keys are at most 1024 bytes, and an index must fit InnoDB's
//!   3072-byte limit. Values are decoded (and UTF-8-checked) as text ([`super::sql::Field`]).
//! - **One committed version per key.** MySQL has no partial indexes: a stored generated column
//!   `current_key` holds the key only while the row is committed (NULL otherwise, and NULLs do
//!   not collide), and the unique index `objects_current` is on (`bucket`, `current_key`). A
//!   commit that loses a race trips it (error 1062) and retries, as on PostgreSQL.
//! - **Isolation.** Sessions run at `READ COMMITTED` (PostgreSQL's default; MySQL's is
//!   `REPEATABLE READ`): a statement sees what committed before it started, locking reads and
//!   updates see the latest version, and there are no gap locks, so two commits of one new key
//!   meet on the unique index instead of deadlocking on a gap.
//! - **No `UPDATE … RETURNING`.** Each such statement is an `UPDATE` (which takes the row locks)
//!   then a `SELECT` of the rows it changed, in one transaction ([`super::sql::Dialect`]).
//! - **Timestamps** are `BIGINT` milliseconds, as everywhere; sums are cast to `SIGNED` (MySQL
//!   sums integers as `DECIMAL`).
//! - **Backslashes** are ordinary characters in string literals (`NO_BACKSLASH_ESCAPES`), as in
//!   standard SQL, so `LIKE … ESCAPE '\'` means the same everywhere.
//! - **Foreign keys** are table constraints (MySQL ignores `REFERENCES` written on a column).
//! - **DDL is not transactional**: a migration that fails midway leaves its earlier statements
//!   applied (sqlx records it as failed and refuses to go on until it is repaired by hand).
//!   Concurrent starts are serialised by a named lock of our own (`GET_LOCK`), as sqlx's does
//!   not wait on MariaDB.
//! - **Deadlocks.** InnoDB's unique-index checks lock gaps even at `READ COMMITTED`, so commits
//!   of different keys can deadlock; the database rolls one back whole and the commit runs again
//!   (`objects`). Commits of one key lock the key's rows first and queue there.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Executor;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

use super::MetaError;
use super::objects::impl_object_store;

/// The schema, from `migrations/mysql/`.
const MIGRATIONS: super::migrate::Embedded = super::migrate::embedded!("mysql");

/// The old migration runner never ran on MySQL, but the check is the same as elsewhere: a
/// `schema_migrations` table in the connection's database.
const LEGACY_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.tables \
     WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'";

/// Set on every connection (see the module docs).
const SESSION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
     SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES')";

/// Takes the named lock that serialises migrations of this database (1: taken; 0: timed out).
/// Lock names are at most 64 characters, database names too: the name holds a digest.
const MIGRATION_LOCK: &str = "SELECT GET_LOCK(CONCAT('upgate-migrate-', MD5(DATABASE())), ?)";
const MIGRATION_UNLOCK: &str = "SELECT RELEASE_LOCK(CONCAT('upgate-migrate-', MD5(DATABASE())))";

/// How long a starting replica waits for another one's migrations.
const MIGRATION_LOCK_WAIT_SECS: i64 = 300;

/// Connections per process. Commits hold one for a few round trips; readers are short.
const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a free connection (or a new one to be established) before
/// failing with 503: an overloaded or unreachable database must not pile up requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// MySQL-backed metadata. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    /// Connects to `url` (`mysql://USER:PASSWORD@HOST:PORT/DB`; the database must exist) and
    /// migrates its schema.
    pub async fn open(url: &str) -> Result<Self, MetaError> {
        let opts = MySqlConnectOptions::from_str(url)?.charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SESSION).await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        // sqlx's migration lock is `GET_LOCK(…, -1)`, which MariaDB answers at once with NULL
        // (a negative timeout is not "forever" there): replicas starting together would run
        // the same migration twice. This lock, held on a connection of its own while the
        // migrator runs on another, serialises them.
        let mut guard = pool.acquire().await?;
        let locked: Option<i64> = sqlx::query_scalar(MIGRATION_LOCK)
            .bind(MIGRATION_LOCK_WAIT_SECS)
            .fetch_one(&mut *guard)
            .await?;
        if locked != Some(1) {
            return Err(MetaError::Database(sqlx::Error::Configuration(
                "timed out waiting for another replica's migration of the MySQL schema".into(),
            )));
        }
        let migrated = async {
            super::migrate::run(
                &pool,
                &Migrator::new(MIGRATIONS).await.map_err(sqlx::Error::from)?,
                None,
                LEGACY_EXISTS,
            )
            .await
        }
        .await;
        // A connection that cannot release the lock is closed, which releases it.
        if sqlx::query(MIGRATION_UNLOCK)
            .execute(&mut *guard)
            .await
            .is_err()
        {
            guard.close_on_drop();
        }
        drop(guard);
        migrated?;
        Ok(Self { pool })
    }

    /// Closes the pool: waits for checked-out connections to be returned, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_object_store!(MySqlStore, sqlx::MySql, pool, pool, many_writers);
crate::impl_control_store!(MySqlStore, sqlx::mysql::MySqlRow, pool, pool);
crate::impl_multipart_store!(MySqlStore, sqlx::mysql::MySqlRow, pool, pool);
crate::impl_account_store!(MySqlStore, sqlx::mysql::MySqlRow, pool, pool);
crate::impl_resumable_store!(MySqlStore, sqlx::mysql::MySqlRow, pool, pool);
