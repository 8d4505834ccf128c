//! PostgreSQL implementation of [`MetadataStore`]: for several gateway replicas sharing one
//! metadata database.
//!
//! Same logical schema as SQLite (`migrations/postgres/`), with keys in the `"C"` collation so
//! that ordering and range scans are UTF-8 byte order. Statuses are SQL literals rather than
//! bound parameters so the planner can always match the partial indexes (a generic plan cannot
//! prove `status = $n` implies `status = 'committed'`).
//!
//! Unlike SQLite there is no single writer: commits to one key may race from different
//! replicas. [`MetadataStore::commit`] locks its pending row, retires the committed version and
//! commits its own row; the partial unique index `objects_current` rejects the loser of a race,
//! which then retries on a fresh snapshot, so the later commit wins (as in S3).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

use super::{
    CommitInfo, MetaError, MetadataStore, NewPending, ObjectRecord, Sweepable, object_record,
    prefix_upper_bound,
};

/// The schema, from `migrations/postgres/`.
static MIGRATOR: Migrator = sqlx::migrate!("src/metadata/migrations/postgres");

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

/// How many times a commit re-runs its retire + commit step after losing a race to a concurrent
/// commit of the same key. Each lost attempt means another commit succeeded in between, so this
/// bounds the number of overwrites of one key that may land during a single commit.
const MAX_COMMIT_ATTEMPTS: u32 = 32;

/// The unique index that admits one committed version per key.
const CURRENT_INDEX: &str = "objects_current";

/// PostgreSQL `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";

const OBJECT_COLUMNS: &str = "id, bucket, key, owner, size, sha256, etag, content_type, \
     checksum_algorithm, checksum_value, committed_at";

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
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts.application_name("upgate"))
            .await?;
        // A plain identifier (checked by the caller): safe to splice.
        let create_schema = schema.map(|s| format!("CREATE SCHEMA IF NOT EXISTS {s}"));
        super::migrate::run(&pool, &MIGRATOR, create_schema.as_deref(), LEGACY_EXISTS).await?;
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

/// PostgreSQL `text` cannot hold NUL, so no stored key contains one, and binding one fails
/// ("invalid byte sequence"). Lookups by such a key find nothing instead, as in SQLite.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Whether `e` is the partial unique index rejecting a second committed version at a key:
/// a concurrent commit of the same key won the race.
fn lost_commit_race(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some(UNIQUE_VIOLATION) && db.constraint() == Some(CURRENT_INDEX)
        }
        _ => false,
    }
}

/// One attempt: retire the committed version at (`bucket`, `key`) that this statement's
/// snapshot sees, then commit row `id` (locked by the caller). Fails with a unique violation
/// on [`CURRENT_INDEX`] if another commit of the key became visible meanwhile.
async fn retire_and_commit(
    conn: &mut PgConnection,
    id: &str,
    bucket: &str,
    key: &str,
    info: &CommitInfo,
    size: i64,
) -> Result<(Vec<String>, i64), sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE objects SET status = 'garbage' \
         WHERE bucket = $1 AND key = $2 AND status = 'committed' RETURNING id, size",
    )
    .bind(bucket)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    let mut retired = Vec::with_capacity(rows.len());
    let mut retired_bytes = 0i64;
    for r in &rows {
        retired.push(r.try_get::<String, _>("id")?);
        retired_bytes += r.try_get::<i64, _>("size")?;
    }
    let (algo, value) = match &info.checksum {
        Some((a, v)) => (Some(a.as_str()), Some(v.as_str())),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE objects SET status = 'committed', size = $1, sha256 = $2, etag = $3, \
         content_type = $4, checksum_algorithm = $5, checksum_value = $6, committed_at = $7, \
         lease_until = NULL WHERE id = $8",
    )
    .bind(size)
    .bind(&info.sha256)
    .bind(&info.etag)
    .bind(&info.content_type)
    .bind(algo)
    .bind(value)
    .bind(info.committed_at_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok((retired, retired_bytes))
}

#[async_trait]
impl MetadataStore for PgStore {
    async fn ensure_bucket(&self, name: &str, now_ms: i64) -> Result<i64, MetaError> {
        // Two statements: the SELECT takes a fresh snapshot, so it also sees a row that a
        // concurrent replica committed while the INSERT waited on it.
        sqlx::query(
            "INSERT INTO buckets (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        let created: i64 = sqlx::query_scalar("SELECT created_at FROM buckets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(created)
    }

    async fn buckets(&self) -> Result<Vec<(String, i64)>, MetaError> {
        let rows = sqlx::query("SELECT name, created_at FROM buckets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("created_at")?)))
            .collect()
    }

    async fn insert_pending(&self, p: &NewPending) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO objects (id, bucket, key, status, owner, created_at, lease_until, \
             tenant_id) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7)",
        )
        .bind(&p.id)
        .bind(&p.bucket)
        .bind(&p.key)
        .bind(&p.owner)
        .bind(p.created_at_ms)
        .bind(p.lease_until_ms)
        .bind(&p.tenant_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn commit(&self, id: &str, info: &CommitInfo) -> Result<Vec<String>, MetaError> {
        let size = i64::try_from(info.size).map_err(|_| MetaError::Corrupt("size overflow"))?;
        let mut tx = self.pool.begin().await?;
        // The row lock keeps a sweeper's purge (or a second commit of the same id) out until
        // this transaction ends; they then find the row no longer pending.
        let target = sqlx::query(
            "SELECT bucket, key FROM objects WHERE id = $1 AND status = 'pending' \
             AND lease_until >= $2 FOR UPDATE",
        )
        .bind(id)
        .bind(info.committed_at_ms)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(MetaError::PendingGone)?;
        let bucket: String = target.try_get("bucket")?;
        let key: String = target.try_get("key")?;
        let mut attempt = 1;
        let (retired, retired_bytes) = loop {
            // A savepoint per attempt: a unique violation aborts only the attempt, not the
            // transaction (and its lock on the pending row).
            let mut step = tx.begin().await?;
            match retire_and_commit(&mut step, id, &bucket, &key, info, size).await {
                Ok(retired) => {
                    step.commit().await?;
                    break retired;
                }
                Err(e) if attempt < MAX_COMMIT_ATTEMPTS && lost_commit_race(&e) => {
                    step.rollback().await?;
                    tracing::debug!(attempt, "concurrent commit of the same key won; retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        crate::apply_quota!(
            tx,
            &info.quota,
            size - retired_bytes,
            1 - retired.len() as i64
        );
        tx.commit().await?;
        Ok(retired)
    }

    async fn discard_pending(&self, id: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM objects WHERE id = $1 AND status = 'pending'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn current(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        if has_nul(bucket) || has_nul(key) {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {OBJECT_COLUMNS} FROM objects \
             WHERE bucket = $1 AND key = $2 AND status = 'committed'"
        ))
        .bind(bucket)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(object_record).transpose()
    }

    async fn delete_current(&self, bucket: &str, key: &str) -> Result<Option<String>, MetaError> {
        if has_nul(bucket) || has_nul(key) {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE objects SET status = 'garbage' \
             WHERE bucket = $1 AND key = $2 AND status = 'committed' \
             RETURNING id, size, tenant_id",
        )
        .bind(bucket)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let tenant: Option<String> = row.try_get("tenant_id")?;
        if let Some(t) = tenant {
            let size: i64 = row.try_get("size")?;
            sqlx::query(
                "UPDATE tenant_usage SET bytes = bytes - $1, objects = objects - 1 \
                 WHERE tenant_id = $2",
            )
            .bind(size)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(row.try_get("id")?))
    }

    async fn purge(&self, id: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM objects WHERE id = $1 AND status <> 'committed'")
            .bind(id)
            .execute(&self.pool)
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
        if has_nul(bucket) || has_nul(prefix) {
            return Ok(Vec::new());
        }
        // Client-supplied resume points may hold NUL. No key does, so every key above
        // `s + "\0" + rest` is also above `s`, and none equals either: cut there, exclusive.
        let (start, inclusive) = match start.find('\0') {
            Some(nul) => (&start[..nul], false),
            None => (start, inclusive),
        };
        // The scan starts at the larger of the prefix and the resume point (Rust compares
        // strings bytewise, like the "C" collation of the column).
        let (lower, inclusive) = if start >= prefix {
            (start, inclusive)
        } else {
            (prefix, true)
        };
        let upper = prefix_upper_bound(prefix);
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects \
             WHERE bucket = $1 AND status = 'committed' AND key {} $2 {} \
             ORDER BY key LIMIT {}",
            if inclusive { ">=" } else { ">" },
            if upper.is_some() { "AND key < $3" } else { "" },
            if upper.is_some() { "$4" } else { "$3" },
        );
        let mut q = sqlx::query(&sql).bind(bucket).bind(lower);
        if let Some(u) = &upper {
            q = q.bind(u);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(object_record).collect()
    }

    async fn sweepable(&self, now_ms: i64, limit: u32) -> Result<Vec<Sweepable>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, bucket FROM objects \
             WHERE (status = 'pending' AND lease_until < $1) OR status = 'garbage' LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
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

crate::impl_control_store!(PgStore, sqlx::postgres::PgRow, pool, pool);
crate::impl_multipart_store!(PgStore, sqlx::postgres::PgRow, pool, pool);
