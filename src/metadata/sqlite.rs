//! SQLite implementation of [`MetadataStore`]: the embedded default.
//!
//! WAL mode; one writer connection (SQLite serialises writers anyway, and a single in-process
//! writer avoids `SQLITE_BUSY` on lock upgrades) and a small pool of readers that never block
//! on it.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    CommitInfo, MetaError, MetadataStore, NewPending, ObjectRecord, Status, Sweepable,
    object_record, prefix_upper_bound,
};

/// The schema, from `migrations/sqlite/`.
static MIGRATOR: Migrator = sqlx::migrate!("src/metadata/migrations/sqlite");

/// Whether the database was created by the runner that preceded sqlx's (see `migrate`).
const LEGACY_EXISTS: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'";

/// SQLite-backed metadata.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

const OBJECT_COLUMNS: &str = "id, bucket, key, owner, size, sha256, etag, content_type, \
     checksum_algorithm, checksum_value, committed_at";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH?mode=rwc`) and migrates.
    pub async fn open(url: &str) -> Result<Self, MetaError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts.clone())
            .await?;
        super::migrate::run(&writer, &MIGRATOR, None, LEGACY_EXISTS).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}

/// Gives a retired object's bytes back to its tenant's usage.
async fn release_usage(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    row: &SqliteRow,
) -> Result<(), MetaError> {
    let tenant: Option<String> = row.try_get("tenant_id")?;
    if let Some(t) = tenant {
        let size: i64 = row.try_get("size")?;
        sqlx::query(
            "UPDATE tenant_usage SET bytes = bytes - $1, objects = objects - 1 WHERE tenant_id = $2",
        )
        .bind(size)
        .bind(t)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn ensure_bucket(&self, name: &str, now_ms: i64) -> Result<i64, MetaError> {
        sqlx::query("INSERT OR IGNORE INTO buckets (name, created_at) VALUES (?, ?)")
            .bind(name)
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        let created: i64 = sqlx::query_scalar("SELECT created_at FROM buckets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.writer)
            .await?;
        Ok(created)
    }

    async fn buckets(&self) -> Result<Vec<(String, i64)>, MetaError> {
        let rows = sqlx::query("SELECT name, created_at FROM buckets ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("created_at")?)))
            .collect()
    }

    async fn insert_pending(&self, p: &NewPending) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO objects (id, bucket, key, status, owner, created_at, lease_until, \
             tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(&p.bucket)
        .bind(&p.key)
        .bind(Status::Pending.as_str())
        .bind(&p.owner)
        .bind(p.created_at_ms)
        .bind(p.lease_until_ms)
        .bind(&p.tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn commit(&self, id: &str, info: &CommitInfo) -> Result<Vec<String>, MetaError> {
        let mut tx = self.writer.begin().await?;
        // A pending row whose lease ran out belongs to the sweeper (which may already have
        // removed its bytes): committing it would point the key at nothing.
        let target = sqlx::query(
            "SELECT bucket, key FROM objects WHERE id = ? AND status = ? AND lease_until >= ?",
        )
        .bind(id)
        .bind(Status::Pending.as_str())
        .bind(info.committed_at_ms)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(MetaError::PendingGone)?;
        let bucket: String = target.try_get("bucket")?;
        let key: String = target.try_get("key")?;
        let retired_rows = sqlx::query(
            "UPDATE objects SET status = ? WHERE bucket = ? AND key = ? AND status = ? \
             RETURNING id, size",
        )
        .bind(Status::Garbage.as_str())
        .bind(&bucket)
        .bind(&key)
        .bind(Status::Committed.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut retired = Vec::with_capacity(retired_rows.len());
        let mut retired_bytes = 0i64;
        for r in &retired_rows {
            retired.push(r.try_get::<String, _>("id")?);
            retired_bytes += r.try_get::<i64, _>("size")?;
        }
        let size = i64::try_from(info.size).map_err(|_| MetaError::Corrupt("size overflow"))?;
        crate::apply_quota!(
            tx,
            &info.quota,
            size - retired_bytes,
            1 - retired.len() as i64
        );
        let (algo, value) = match &info.checksum {
            Some((a, v)) => (Some(a.as_str()), Some(v.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE objects SET status = ?, size = ?, sha256 = ?, etag = ?, content_type = ?, \
             checksum_algorithm = ?, checksum_value = ?, committed_at = ?, lease_until = NULL \
             WHERE id = ?",
        )
        .bind(Status::Committed.as_str())
        .bind(size)
        .bind(&info.sha256)
        .bind(&info.etag)
        .bind(&info.content_type)
        .bind(algo)
        .bind(value)
        .bind(info.committed_at_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(retired)
    }

    async fn discard_pending(&self, id: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM objects WHERE id = ? AND status = ?")
            .bind(id)
            .bind(Status::Pending.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn current(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ? AND status = ?"
        ))
        .bind(bucket)
        .bind(key)
        .bind(Status::Committed.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(object_record).transpose()
    }

    async fn delete_current(&self, bucket: &str, key: &str) -> Result<Option<String>, MetaError> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "UPDATE objects SET status = ? WHERE bucket = ? AND key = ? AND status = ? \
             RETURNING id, size, tenant_id",
        )
        .bind(Status::Garbage.as_str())
        .bind(bucket)
        .bind(key)
        .bind(Status::Committed.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        release_usage(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(Some(row.try_get("id")?))
    }

    async fn purge(&self, id: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM objects WHERE id = ? AND status != ?")
            .bind(id)
            .bind(Status::Committed.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start: &str,
        inclusive: bool,
        limit: u32,
    ) -> Result<Vec<ObjectRecord>, MetaError> {
        // The scan starts at the larger of the prefix and the resume point.
        let (lower, inclusive) = if start >= prefix {
            (start, inclusive)
        } else {
            (prefix, true)
        };
        let upper = prefix_upper_bound(prefix);
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND status = ? AND key {} ? {} \
             ORDER BY key LIMIT ?",
            if inclusive { ">=" } else { ">" },
            if upper.is_some() { "AND key < ?" } else { "" }
        );
        let mut q = sqlx::query(&sql)
            .bind(bucket)
            .bind(Status::Committed.as_str())
            .bind(lower);
        if let Some(u) = &upper {
            q = q.bind(u);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter().map(object_record).collect()
    }

    async fn sweepable(&self, now_ms: i64, limit: u32) -> Result<Vec<Sweepable>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, bucket FROM objects WHERE status != 'committed' \
             AND ((status = ? AND lease_until < ?) OR status = ?) LIMIT ?",
        )
        .bind(Status::Pending.as_str())
        .bind(now_ms)
        .bind(Status::Garbage.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Sweepable {
                    id: r.try_get("id")?,
                    bucket: r.try_get("bucket")?,
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

crate::impl_control_store!(SqliteStore, sqlx::sqlite::SqliteRow, writer, reader);
crate::impl_multipart_store!(SqliteStore, sqlx::sqlite::SqliteRow, writer, reader);
