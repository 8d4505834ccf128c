//! Schema migrations for every database: sqlx's migrator over `migrations/<database>/`
//! (`<VERSION>_<DESCRIPTION>.sql`, recorded in `_sqlx_migrations`), plus the adoption of
//! databases created by the hand-written runner it replaced.
//!
//! That runner recorded each applied version in `schema_migrations`. Its versions are the
//! files' versions and the files are unchanged, so an old database is adopted by recording
//! those versions in `_sqlx_migrations` (with the checksums sqlx expects) instead of running
//! them again. `schema_migrations` stays: a replica still on the old binary during a rolling
//! upgrade reads it and finds nothing to do.

use std::borrow::Cow;
use std::collections::HashSet;

use sqlx::migrate::{Migrate, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Database, Executor, Pool, Row};

/// Migrations embedded in the binary (`include_str!`), in version order:
/// `(version, description, sql)`. `sqlx::migrate!` would embed them the same way but needs
/// sqlx's `macros` feature, which builds both database drivers (bundled SQLite included) a
/// second time for the proc-macro host; sqlx's own migrator runs them either way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded(pub &'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>>
                + Send
                + 's,
        >,
    > {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrations of `migrations/<dir>/`, as [`Embedded`]: every database has the same
/// versions and descriptions, each in its own dialect.
macro_rules! embedded {
    ($dir:literal) => {
        $crate::metadata::migrate::Embedded(&[
            (
                1,
                "objects",
                include_str!(concat!("migrations/", $dir, "/0001_objects.sql")),
            ),
            (
                2,
                "multipart",
                include_str!(concat!("migrations/", $dir, "/0002_multipart.sql")),
            ),
            (
                3,
                "control",
                include_str!(concat!("migrations/", $dir, "/0003_control.sql")),
            ),
            (
                4,
                "quotas",
                include_str!(concat!("migrations/", $dir, "/0004_quotas.sql")),
            ),
            (
                5,
                "resumable",
                include_str!(concat!("migrations/", $dir, "/0005_resumable.sql")),
            ),
            (
                6,
                "scan verdicts",
                include_str!(concat!("migrations/", $dir, "/0006_scan_verdicts.sql")),
            ),
            (
                7,
                "accounts",
                include_str!(concat!("migrations/", $dir, "/0007_accounts.sql")),
            ),
            (
                8,
                "object headers",
                include_str!(concat!("migrations/", $dir, "/0008_object_headers.sql")),
            ),
            (
                9,
                "drop links",
                include_str!(concat!("migrations/", $dir, "/0009_drop_links.sql")),
            ),
            (
                10,
                "retention",
                include_str!(concat!("migrations/", $dir, "/0010_retention.sql")),
            ),
            (
                11,
                "runtime_buckets",
                include_str!(concat!("migrations/", $dir, "/0011_runtime_buckets.sql")),
            ),
            (
                12,
                "reconcile",
                include_str!(concat!("migrations/", $dir, "/0012_reconcile.sql")),
            ),
            (
                13,
                "file_text",
                include_str!(concat!("migrations/", $dir, "/0013_file_text.sql")),
            ),
            (
                14,
                "storage_class",
                include_str!(concat!("migrations/", $dir, "/0014_storage_class.sql")),
            ),
        ])
    };
}
pub(crate) use embedded;

/// Executed in place of an adopted migration's SQL: its statements ran already, under the old
/// runner; only sqlx's bookkeeping for it (in sqlx's own words) is wanted.
const ALREADY_APPLIED: &str = "SELECT 1";

/// The highest version the old runner applied.
const LEGACY_VERSION: &str = "SELECT MAX(version) FROM schema_migrations";

/// Brings the database behind `pool` up to `migrator`.
///
/// Serialised by sqlx's migration lock: on PostgreSQL a session advisory lock of the database
/// (the one `sqlx migrate run` takes too), on SQLite nothing, as the store's single writer
/// connection serialises anyway (on MySQL the store holds a lock of its own around this, see
/// `mysql`). First, holding it on one connection, `prelude` (PostgreSQL:
/// creating the store's schema, which must not race either) and the adoption of an old
/// database. Then the migrator, which takes the lock itself on a connection of its own (the
/// first is back in the pool by then: the SQLite writer pool has only one). Both steps are
/// idempotent, so replicas starting together may interleave between them.
///
/// `legacy_exists` is a query for how many `schema_migrations` tables the connection sees
/// where it creates tables (0 or 1, as a 64-bit integer).
///
/// The migrator gets the pool rather than the connection: sqlx implements `Acquire` for
/// `&mut` connections per lifetime, and the compiler then cannot show the future `Send` (which
/// `tokio::spawn` of a store's `open` needs).
pub(crate) async fn run<DB>(
    pool: &Pool<DB>,
    migrator: &Migrator,
    prelude: Option<&str>,
    legacy_exists: &str,
) -> Result<(), sqlx::Error>
where
    DB: Database,
    DB::Connection: Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = pool.acquire().await?;
    conn.lock().await?;
    let outcome = async {
        if let Some(sql) = prelude {
            (&mut *conn).execute(sql).await?;
        }
        let legacy: i64 = (&mut *conn).fetch_one(legacy_exists).await?.try_get(0)?;
        if legacy > 0 {
            let version: Option<i64> = (&mut *conn).fetch_one(LEGACY_VERSION).await?.try_get(0)?;
            adopt(&mut *conn, migrator, version.unwrap_or(0)).await?;
        }
        Ok::<(), sqlx::Error>(())
    }
    .await;
    // Unlocked whatever the outcome, as the connection goes back to the pool; one that cannot
    // be unlocked is closed instead, which ends its session and so the lock.
    let unlocked = conn.unlock().await;
    if unlocked.is_err() {
        conn.close_on_drop();
    }
    drop(conn);
    outcome?;
    unlocked?;
    migrator.run(pool).await?;
    Ok(())
}

/// Records the migrations up to `version` as applied, unless they are already: run on every
/// start of an old database, so an adoption cut short (the process died) completes later.
async fn adopt<C: Migrate>(
    conn: &mut C,
    migrator: &Migrator,
    version: i64,
) -> Result<(), sqlx::Error> {
    conn.ensure_migrations_table().await?;
    let recorded: HashSet<i64> = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    for m in migrator.iter().filter(|m| {
        m.version <= version
            && !m.migration_type.is_down_migration()
            && !recorded.contains(&m.version)
    }) {
        // The real checksum with a no-op body: sqlx later verifies the checksum against the
        // file, which is the one the old runner applied.
        let stand_in = Migration {
            sql: Cow::Borrowed(ALREADY_APPLIED),
            ..m.clone()
        };
        conn.apply(&stand_in).await?;
    }
    Ok(())
}
