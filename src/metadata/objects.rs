//! [`MetadataStore`](super::MetadataStore) (buckets and object versions) for SQLite,
//! PostgreSQL and MySQL, from one SQL source (`$N` placeholders, introduced in ascending order,
//! as in [`super::control`]; translated for MySQL by [`super::sql`]).
//!
//! Statuses are SQL literals rather than bound parameters so that both planners match the
//! partial indexes when they prepare a statement: a PostgreSQL generic plan cannot prove
//! `status = $n` implies `status = 'committed'`, and SQLite gets there only by re-preparing the
//! statement with the bound value on every execution.
//!
//! Commits differ in one respect, named by the macro's last argument. SQLite has a
//! single writer: a commit's statements see every earlier commit and nothing can slip between
//! them. PostgreSQL replicas write concurrently, so a commit locks its pending row, retires the
//! committed version and commits its own row; the partial unique index `objects_current`
//! rejects the loser of a race, which then retries on a fresh snapshot, so the later commit
//! wins (as in S3). MySQL replicas do the same, but first lock every row of the key in one
//! order (`Dialect::KEY_LOCKS`), so that commits of one key queue instead of deadlocking on
//! the index; a commit the server still rolls back for a deadlock (the unique index locks gaps,
//! across keys) runs again whole.

/// How many times a commit re-runs its retire + commit step after losing a race to a concurrent
/// commit of the same key. Each lost attempt means another commit succeeded in between, so this
/// bounds the number of overwrites of one key that may land during a single commit.
pub(crate) const MAX_COMMIT_ATTEMPTS: u32 = 32;

/// The unique index that admits one committed version per key.
const CURRENT_INDEX: &str = "objects_current";

/// PostgreSQL `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";

/// Whether `e` is the unique index rejecting a second committed version at a key: a concurrent
/// commit of the same key won the race (PostgreSQL, MySQL; a single writer never loses).
pub(crate) fn lost_commit_race(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => match db.constraint() {
            Some(index) => db.code().as_deref() == Some(UNIQUE_VIOLATION) && index == CURRENT_INDEX,
            // MySQL names the index only in the message: "Duplicate entry '…' for key
            // 'objects_current'" (MariaDB) or "'objects.objects_current'" (MySQL 8), error 1062.
            None => {
                db.kind() == sqlx::error::ErrorKind::UniqueViolation
                    && db.message().ends_with(&format!("{CURRENT_INDEX}'"))
            }
        },
        _ => false,
    }
}

/// SQLSTATE `serialization_failure`: MySQL's code for a transaction it rolled back, whole, to
/// break a deadlock (error 1213).
const SERIALIZATION_FAILURE: &str = "40001";

/// Whether `e` ended a transaction that may simply run again: the database rolled it back to
/// break a deadlock (MySQL; PostgreSQL reports none at READ COMMITTED for these statements).
pub(crate) fn deadlocked(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().as_deref() == Some(SERIALIZATION_FAILURE),
        _ => false,
    }
}

/// PostgreSQL `text` cannot hold NUL, so no stored key contains one (the router refuses control
/// characters in keys, so neither does SQLite's), and binding one to PostgreSQL fails ("invalid
/// byte sequence"). Lookups by such a key find nothing instead, in both databases.
pub(crate) fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Implements [`MetadataStore`](super::MetadataStore) for a store type on database `$db`
/// (`sqlx::Sqlite`, `sqlx::Postgres`); `$w` is the pool for writes, `$r` for reads. The last
/// word says whether commits of one key can run at the same time: `one_writer` (they cannot),
/// `many_writers` (they can, so they lock their pending row and retry a lost race; see the
/// module docs).
macro_rules! impl_object_store {
    ($ty:ty, $db:ty, $w:ident, $r:ident, one_writer) => {
        $crate::metadata::objects::impl_object_store!(@impl $ty, $db, $w, $r, false);
    };
    ($ty:ty, $db:ty, $w:ident, $r:ident, many_writers) => {
        $crate::metadata::objects::impl_object_store!(@impl $ty, $db, $w, $r, true);
    };
    (@impl $ty:ty, $db:ty, $w:ident, $r:ident, $concurrent:literal) => {
        const _: () = {
            use sqlx::Connection;
            use $crate::metadata::sql::{Dialect, Field, query};
            type Db = $db;
            use $crate::metadata::objects::{MAX_COMMIT_ATTEMPTS, deadlocked, has_nul, lost_commit_race};
            use $crate::metadata::{
                BucketCreation, BucketRemoval, CommitInfo, MetaError, MetadataStore, NewPending,
                ObjectRecord, ObjectTags, RuntimeBucket, Sweepable, object_record,
                part_sizes_column, prefix_upper_bound, sweepables,
            };

            const CONCURRENT_WRITERS: bool = $concurrent;

            const OBJECT_COLUMNS: &str = "id, bucket, key, owner, size, sha256, etag, \
                content_type, checksum_algorithm, checksum_value, committed_at, scan, headers, tags, \
                part_sizes, storage_class";

            /// Marks the committed version at (`bucket`, `key`) garbage (at most one row, by the
            /// unique index); returns its `columns`. Without `UPDATE … RETURNING`, the rows are
            /// locked and read first, then retired by id (a row committed in between is not
            /// touched, so what is returned is what was retired).
            async fn retire_current(
                tx: &mut sqlx::Transaction<'_, $db>,
                bucket: &str,
                key: &str,
                columns: &str,
            ) -> Result<Vec<<$db as sqlx::Database>::Row>, sqlx::Error> {
                if Db::RETURNING {
                    return query::<Db>(&format!(
                        "UPDATE objects SET status = 'garbage' \
                         WHERE bucket = $1 AND key = $2 AND status = 'committed' \
                         RETURNING {columns}"
                    ))
                    .bind(bucket)
                    .bind(key)
                    .fetch_all(&mut **tx)
                    .await;
                }
                let rows = query::<Db>(&format!(
                    "SELECT {columns} FROM objects \
                     WHERE bucket = $1 AND key = $2 AND status = 'committed' FOR UPDATE"
                ))
                .bind(bucket)
                .bind(key)
                .fetch_all(&mut **tx)
                .await?;
                for r in &rows {
                    query::<Db>("UPDATE objects SET status = 'garbage' WHERE id = $1")
                        .bind(r.field::<String, _>("id")?)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(rows)
            }

            /// Binds a commit's row id and the values it writes into the row, in the order the
            /// committing statements number them: id, size, sha256, etag, content type, checksum
            /// algorithm and value, commit time, scan verdict, headers, tags, part sizes,
            /// storage class.
            fn bind_commit<'q>(
                q: $crate::metadata::sql::Query<'q, Db>,
                id: &'q str,
                info: &'q CommitInfo,
                size: i64,
            ) -> $crate::metadata::sql::Query<'q, Db> {
                let (algo, value) = match &info.checksum {
                    Some((a, v)) => (Some(a.as_str()), Some(v.as_str())),
                    None => (None, None),
                };
                q.bind(id)
                    .bind(size)
                    .bind(&info.sha256)
                    .bind(&info.etag)
                    .bind(&info.content_type)
                    .bind(algo)
                    .bind(value)
                    .bind(info.committed_at_ms)
                    .bind(&info.scan)
                    .bind(info.headers.to_column())
                    .bind(info.tags.to_column())
                    .bind(part_sizes_column(&info.part_sizes))
                    .bind(&info.storage_class)
            }

            /// One attempt: retire the committed version at (`bucket`, `key`) that this
            /// statement's snapshot sees, then commit row `id`. Returns the retired ids, their
            /// total size, and the ETag of the retired committed version (at most one). With concurrent writers, fails with a unique violation on
            /// `objects_current` if another commit of the key became visible meanwhile.
            async fn retire_and_commit(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
                bucket: &str,
                key: &str,
                info: &CommitInfo,
                size: i64,
            ) -> Result<(Vec<String>, i64, Option<String>), sqlx::Error> {
                let rows = retire_current(tx, bucket, key, "id, size, etag").await?;
                let mut retired = Vec::with_capacity(rows.len());
                let mut retired_bytes = 0i64;
                let mut retired_etag = None;
                for r in &rows {
                    retired.push(r.field::<String, _>("id")?);
                    retired_bytes += r.field::<i64, _>("size")?;
                    retired_etag = Some(r.field::<String, _>("etag")?);
                }
                bind_commit(
                    query::<Db>(
                        "UPDATE objects SET status = 'committed', size = $2, sha256 = $3, \
                         etag = $4, content_type = $5, checksum_algorithm = $6, \
                         checksum_value = $7, committed_at = $8, lease_until = NULL, scan = $9, \
                         headers = $10, tags = $11, part_sizes = $12, storage_class = $13 \
                         WHERE id = $1",
                    ),
                    id,
                    info,
                    size,
                )
                .execute(&mut **tx)
                .await?;
                Ok((retired, retired_bytes, retired_etag))
            }

            /// Gives a retired object's bytes back to its tenant's usage (`row`: its `size` and
            /// `tenant_id`).
            async fn release_usage(
                tx: &mut sqlx::Transaction<'_, Db>,
                row: &<Db as sqlx::Database>::Row,
            ) -> Result<(), MetaError> {
                let tenant: Option<String> = row.field("tenant_id")?;
                if let Some(t) = tenant {
                    let size: i64 = row.field("size")?;
                    query::<Db>(
                        "UPDATE tenant_usage SET bytes = bytes - $1, objects = objects - 1 \
                         WHERE tenant_id = $2",
                    )
                    .bind(size)
                    .bind(t)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// A `buckets` row (name, created_at, tenant_id) as a run-time bucket.
            fn runtime_bucket_of(r: &<Db as sqlx::Database>::Row) -> Result<RuntimeBucket, MetaError> {
                Ok(RuntimeBucket {
                    name: r.field("name")?,
                    created_at_ms: r.field("created_at")?,
                    tenant_id: r.field("tenant_id")?,
                })
            }

            /// One attempt at [`MetadataStore::commit`], in one transaction.
            async fn commit_once(
                pool: &sqlx::Pool<Db>,
                id: &str,
                info: &CommitInfo,
            ) -> Result<Vec<String>, MetaError> {
                let mut tx = pool.begin().await?;
                let retired = commit_in(&mut tx, id, info).await?;
                tx.commit().await?;
                Ok(retired)
            }

            /// The commit of one member of a group by itself ([`commit_in`]), in the group's
            /// transaction: in a savepoint if it may be refused after its first change, so that
            /// a refusal undoes only its own statements. Any other failure is the group's.
            async fn commit_alone(
                tx: &mut sqlx::Transaction<'_, Db>,
                id: &str,
                info: &CommitInfo,
            ) -> Result<Result<Vec<String>, MetaError>, MetaError> {
                if may_fail_after_changes(info) {
                    let mut step = tx.begin().await?;
                    return Ok(match commit_in(&mut step, id, info).await {
                        Ok(retired) => {
                            step.commit().await?;
                            Ok(retired)
                        }
                        Err(e) => {
                            step.rollback().await?;
                            Err(e)
                        }
                    });
                }
                // Refused, if at all, by a statement that changed nothing.
                match commit_in(tx, id, info).await {
                    Ok(retired) => Ok(Ok(retired)),
                    Err(MetaError::PendingGone) => Ok(Err(MetaError::PendingGone)),
                    Err(e) => Err(e),
                }
            }

            /// A single writer's group of commits ([`MetadataStore::commit_many`]) in `tx`, with
            /// the outcome of each as if they ran one after the other in arrival order.
            ///
            /// Most take a few statements for all of them, not three or more each (a statement
            /// is a round trip to the database): one reads which rows are still pending, one
            /// retires the committed versions of their keys, one commits them, and the usage of
            /// each tenant changes once. That holds for the commits nothing can refuse after
            /// their first change (see [`may_fail_after_changes`]) whose key no other live
            /// commit of the group has: they commute with every other commit of the group. The
            /// rest (a key committed twice, a condition, a quota with a limit, an id twice) run
            /// one by one afterwards, in arrival order ([`commit_alone`]).
            async fn commit_group(
                tx: &mut sqlx::Transaction<'_, Db>,
                batch: &[(String, CommitInfo)],
            ) -> Result<Vec<Result<Vec<String>, MetaError>>, MetaError> {
                use std::collections::HashMap;
                use $crate::metadata::sql::{placeholders, row_runs, values_list};

                let mut ids: HashMap<&str, usize> = HashMap::new();
                for (id, _) in batch {
                    *ids.entry(id.as_str()).or_default() += 1;
                }
                // Which rows are pending, at which key, under which lease.
                let distinct: Vec<&str> = ids.keys().copied().collect();
                let mut pending: HashMap<String, (String, String, Option<i64>)> = HashMap::new();
                for run in row_runs(&distinct) {
                    let sql = format!(
                        "SELECT id, bucket, key, lease_until FROM objects \
                         WHERE status = 'pending' AND id IN ({})",
                        placeholders(1, run.len())
                    );
                    let rows = run
                        .iter()
                        .fold(query::<Db>(&sql), |q, id| q.bind(*id))
                        .fetch_all(&mut **tx)
                        .await?;
                    for r in &rows {
                        pending.insert(
                            r.field("id")?,
                            (r.field("bucket")?, r.field("key")?, r.field("lease_until")?),
                        );
                    }
                }
                // The live commits (pending, under their lease) per key.
                let live = |id: &str, info: &CommitInfo| {
                    pending
                        .get(id)
                        .filter(|(_, _, lease)| lease.is_some_and(|l| l >= info.committed_at_ms))
                };
                let mut keys: HashMap<(&str, &str), usize> = HashMap::new();
                for (id, info) in batch {
                    if let Some((b, k, _)) = live(id, info) {
                        *keys.entry((b.as_str(), k.as_str())).or_default() += 1;
                    }
                }
                let mut outcomes: Vec<Option<Result<Vec<String>, MetaError>>> =
                    (0..batch.len()).map(|_| None).collect();
                let mut together: Vec<(usize, &str, &str, i64)> = Vec::new();
                for (n, (id, info)) in batch.iter().enumerate() {
                    if ids[id.as_str()] > 1 {
                        continue;
                    }
                    match live(id, info) {
                        // Refused as no longer pending, as `commit_in` refuses it.
                        None => outcomes[n] = Some(Err(MetaError::PendingGone)),
                        Some((b, k, _))
                            if keys[&(b.as_str(), k.as_str())] == 1
                                && !may_fail_after_changes(info) =>
                        {
                            let size = i64::try_from(info.size)
                                .map_err(|_| MetaError::Corrupt("size overflow"))?;
                            together.push((n, b.as_str(), k.as_str(), size));
                        }
                        Some(_) => {}
                    }
                }
                // Retire the committed versions of their keys: per member of `together`, the
                // ids it retired and their bytes.
                let slot: HashMap<(&str, &str), usize> = together
                    .iter()
                    .enumerate()
                    .map(|(i, &(_, b, k, _))| ((b, k), i))
                    .collect();
                let mut retired: Vec<(Vec<String>, i64)> = vec![(Vec::new(), 0); together.len()];
                for run in row_runs(&together) {
                    let sql = format!(
                        "UPDATE objects SET status = 'garbage' FROM (VALUES {}) AS v \
                         WHERE objects.bucket = v.column1 AND objects.key = v.column2 \
                         AND objects.status = 'committed' \
                         RETURNING objects.id, objects.size, objects.bucket, objects.key",
                        values_list(2, run.len())
                    );
                    let rows = run
                        .iter()
                        .fold(query::<Db>(&sql), |q, (_, b, k, _)| q.bind(*b).bind(*k))
                        .fetch_all(&mut **tx)
                        .await?;
                    for r in &rows {
                        let (b, k): (String, String) = (r.field("bucket")?, r.field("key")?);
                        let i = *slot
                            .get(&(b.as_str(), k.as_str()))
                            .ok_or(MetaError::Corrupt("grouped commit retired another key"))?;
                        retired[i].0.push(r.field("id")?);
                        retired[i].1 += r.field::<i64, _>("size")?;
                    }
                }
                // Commit them.
                for run in row_runs(&together) {
                    let sql = format!(
                        "UPDATE objects SET status = 'committed', size = v.column2, \
                         sha256 = v.column3, etag = v.column4, content_type = v.column5, \
                         checksum_algorithm = v.column6, checksum_value = v.column7, \
                         committed_at = v.column8, lease_until = NULL, scan = v.column9, \
                         headers = v.column10, tags = v.column11, part_sizes = v.column12, \
                         storage_class = v.column13 FROM (VALUES {}) AS v \
                         WHERE objects.id = v.column1 AND objects.status = 'pending'",
                        values_list(13, run.len())
                    );
                    let done = run
                        .iter()
                        .fold(query::<Db>(&sql), |q, &(n, _, _, size)| {
                            let (id, info) = &batch[n];
                            bind_commit(q, id, info, size)
                        })
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                    if done != run.len() as u64 {
                        // Read as pending a moment ago, in this transaction: not possible with
                        // one writer. The group fails, and each commit runs again alone.
                        return Err(MetaError::Corrupt("grouped commit lost a pending row"));
                    }
                }
                // Each tenant's usage, once (the quotas have no limit, so none refuses).
                let mut usage: Vec<(&$crate::metadata::Quota, i64, i64)> = Vec::new();
                for (&(n, _, _, size), (ids, gone_bytes)) in together.iter().zip(&retired) {
                    let Some(q) = &batch[n].1.quota else { continue };
                    let (gone, gone_bytes) = (ids.len() as i64, *gone_bytes);
                    match usage.iter_mut().find(|(t, _, _)| t.tenant_id == q.tenant_id) {
                        Some(u) => {
                            u.1 += size - gone_bytes;
                            u.2 += 1 - gone;
                        }
                        None => usage.push((q, size - gone_bytes, 1 - gone)),
                    }
                }
                for (q, bytes, objects) in usage {
                    $crate::apply_quota!((*tx), Some(q), bytes, objects);
                }
                for (&(n, _, _, _), (ids, _)) in together.iter().zip(retired) {
                    outcomes[n] = Some(Ok(ids));
                }
                // The rest, one by one, in arrival order.
                for (n, (id, info)) in batch.iter().enumerate() {
                    if outcomes[n].is_none() {
                        outcomes[n] = Some(commit_alone(tx, id, info).await?);
                    }
                }
                Ok(outcomes.into_iter().map(|o| o.unwrap_or(Err(MetaError::PendingGone))).collect())
            }

            /// Whether [`commit_in`] can be refused after its first change: by a condition on the
            /// version it retires, or by a quota with a limit. Otherwise it is refused, if at all,
            /// only as no longer pending, by a statement that changes nothing.
            fn may_fail_after_changes(info: &CommitInfo) -> bool {
                info.condition.is_some()
                    || info
                        .quota
                        .as_ref()
                        .is_some_and(|q| q.max_bytes != i64::MAX || q.max_objects != i64::MAX)
            }

            /// The statements of a commit, in `tx` (which the caller commits; dropping it on
            /// failure rolls them back). `PendingGone` comes only from the statements before the
            /// first change (see [`may_fail_after_changes`]).
            async fn commit_in(
                tx: &mut sqlx::Transaction<'_, Db>,
                id: &str,
                info: &CommitInfo,
            ) -> Result<Vec<String>, MetaError> {
                let size =
                    i64::try_from(info.size).map_err(|_| MetaError::Corrupt("size overflow"))?;
                // A pending row whose lease ran out belongs to the sweeper (which may already
                // have removed its bytes): committing it would point the key at nothing.
                // Concurrent writers also lock the row, keeping a sweeper's purge (or a
                // second commit of the same id) out until this transaction ends; they then
                // find the row no longer pending. A single writer excludes them anyway.
                let lock = if CONCURRENT_WRITERS { " FOR UPDATE" } else { "" };
                if Db::KEY_LOCKS {
                    // Every commit of the key locks all of the key's rows, in index order,
                    // before its own: commits of one key queue here instead of meeting on
                    // the unique index (see `Dialect::KEY_LOCKS`).
                    let at = query::<Db>("SELECT bucket, key FROM objects WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await?
                        .ok_or(MetaError::PendingGone)?;
                    // MySQL syntax (only MySQL locks keys): the index orders the rows by
                    // what never changes, so all commits of the key lock in one order.
                    query::<Db>(
                        "SELECT id FROM objects FORCE INDEX (objects_key) \
                         WHERE bucket = $1 AND key = $2 ORDER BY id FOR UPDATE",
                    )
                    .bind(at.field::<String, _>("bucket")?)
                    .bind(at.field::<String, _>("key")?)
                    .fetch_all(&mut **tx)
                    .await?;
                }
                let target = query::<Db>(&format!(
                    "SELECT bucket, key FROM objects WHERE id = $1 AND status = 'pending' \
                     AND lease_until >= $2{lock}"
                ))
                .bind(id)
                .bind(info.committed_at_ms)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(MetaError::PendingGone)?;
                let bucket: String = target.field("bucket")?;
                let key: String = target.field("key")?;
                let (retired, retired_bytes, retired_etag) = if CONCURRENT_WRITERS {
                    let mut attempt = 1;
                    loop {
                        // A savepoint per attempt: a unique violation aborts only the
                        // attempt, not the transaction (and its lock on the pending row).
                        let mut step = tx.begin().await?;
                        let outcome =
                            retire_and_commit(&mut step, id, &bucket, &key, info, size).await;
                        match outcome {
                            Ok(done) => {
                                step.commit().await?;
                                break done;
                            }
                            Err(e) if attempt < MAX_COMMIT_ATTEMPTS && lost_commit_race(&e) => {
                                step.rollback().await?;
                                tracing::debug!(
                                    attempt,
                                    "concurrent commit of the same key won; retrying"
                                );
                                attempt += 1;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                } else {
                    // Nothing commits between this transaction's statements: there is no race
                    // to lose, and no savepoint to pay for.
                    retire_and_commit(tx, id, &bucket, &key, info, size).await?
                };
                // The condition is judged on the version this transaction retired: with
                // concurrent writers, a commit of the key that became visible meanwhile made
                // the attempt above fail and retry, so it is this one (dropping `tx` on
                // failure rolls everything back).
                if let Some(condition) = &info.condition {
                    condition.check(retired_etag.as_deref())?;
                }
                $crate::apply_quota!(
                    (*tx),
                    &info.quota,
                    size - retired_bytes,
                    1 - retired.len() as i64
                );
                Ok(retired)
            }

            #[async_trait::async_trait]
            impl MetadataStore for $ty {
                async fn ensure_bucket(&self, name: &str, now_ms: i64) -> Result<i64, MetaError> {
                    // Two statements, both on the writer: in PostgreSQL the SELECT takes a fresh
                    // snapshot, so it also sees a row that a concurrent replica committed while
                    // the INSERT waited on it.
                    query::<Db>(
                        "INSERT INTO buckets (name, created_at) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(now_ms)
                    .execute(&self.$w)
                    .await?;
                    let created: i64 =
                        query::<Db>("SELECT created_at FROM buckets WHERE name = $1")
                            .bind(name)
                            .scalar_one(&self.$w)
                            .await?;
                    Ok(created)
                }

                async fn buckets(&self) -> Result<Vec<(String, i64)>, MetaError> {
                    let rows = query::<Db>("SELECT name, created_at FROM buckets ORDER BY name")
                        .fetch_all(&self.$r)
                        .await?;
                    rows.iter()
                        .map(|r| Ok((r.field("name")?, r.field("created_at")?)))
                        .collect()
                }

                async fn create_bucket(
                    &self,
                    bucket: &RuntimeBucket,
                    tenant_max: u32,
                ) -> Result<BucketCreation, MetaError> {
                    /// The bucket of that name, as CreateBucket reports it.
                    async fn existing(
                        tx: &mut sqlx::Transaction<'_, Db>,
                        name: &str,
                    ) -> Result<Option<BucketCreation>, MetaError> {
                        let row = query::<Db>(
                            "SELECT name, created_at, tenant_id, runtime FROM buckets \
                             WHERE name = $1",
                        )
                        .bind(name)
                        .fetch_optional(&mut **tx)
                        .await?;
                        Ok(match row {
                            Some(r) if r.field::<i64, _>("runtime")? == 1 => {
                                Some(BucketCreation::Exists(Some(runtime_bucket_of(&r)?)))
                            }
                            Some(_) => Some(BucketCreation::Exists(None)),
                            None => None,
                        })
                    }
                    let lock = if CONCURRENT_WRITERS { " FOR UPDATE" } else { "" };
                    let mut tx = self.$w.begin().await?;
                    // An existing bucket is reported as such, whatever the quota says (as S3).
                    if let Some(found) = existing(&mut tx, &bucket.name).await? {
                        return Ok(found);
                    }
                    if let Some(tenant) = &bucket.tenant_id {
                        // The tenant's row is the lock that queues its concurrent creations, so
                        // that two of them cannot both pass the count (a single writer queues
                        // them anyway).
                        query::<Db>(&format!("SELECT id FROM tenants WHERE id = $1{lock}"))
                            .bind(tenant)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let owned: i64 = query::<Db>(
                            "SELECT COUNT(*) FROM buckets WHERE tenant_id = $1 AND runtime = 1",
                        )
                        .bind(tenant)
                        .scalar_one(&mut *tx)
                        .await?;
                        if owned >= i64::from(tenant_max) {
                            return Ok(BucketCreation::TooMany);
                        }
                    }
                    let inserted = query::<Db>(
                        "INSERT INTO buckets (name, created_at, runtime, tenant_id) \
                         VALUES ($1, $2, 1, $3) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(&bucket.name)
                    .bind(bucket.created_at_ms)
                    .bind(&bucket.tenant_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        // A new bucket starts empty. An upload that resolved a deleted bucket of
                        // this name before its deletion may still have committed into it: such
                        // leftovers are retired (their bytes go to the sweeper), never shown.
                        let leftovers = query::<Db>(&format!(
                            "SELECT id, size, tenant_id FROM objects \
                             WHERE bucket = $1 AND status = 'committed'{lock}"
                        ))
                        .bind(&bucket.name)
                        .fetch_all(&mut *tx)
                        .await?;
                        for row in &leftovers {
                            query::<Db>("UPDATE objects SET status = 'garbage' WHERE id = $1")
                                .bind(row.field::<String, _>("id")?)
                                .execute(&mut *tx)
                                .await?;
                            release_usage(&mut tx, row).await?;
                        }
                        tx.commit().await?;
                        return Ok(BucketCreation::Created);
                    }
                    // Created concurrently since the first look.
                    Ok(existing(&mut tx, &bucket.name)
                        .await?
                        .unwrap_or(BucketCreation::Exists(None)))
                }

                async fn runtime_bucket(&self, name: &str) -> Result<Option<RuntimeBucket>, MetaError> {
                    if has_nul(name) {
                        return Ok(None);
                    }
                    let row = query::<Db>(
                        "SELECT name, created_at, tenant_id FROM buckets \
                         WHERE name = $1 AND runtime = 1",
                    )
                    .bind(name)
                    .fetch_optional(&self.$r)
                    .await?;
                    row.as_ref().map(runtime_bucket_of).transpose()
                }

                async fn runtime_buckets(&self) -> Result<Vec<RuntimeBucket>, MetaError> {
                    let rows = query::<Db>(
                        "SELECT name, created_at, tenant_id FROM buckets WHERE runtime = 1 \
                         ORDER BY name",
                    )
                    .fetch_all(&self.$r)
                    .await?;
                    rows.iter().map(runtime_bucket_of).collect()
                }

                async fn delete_bucket(&self, name: &str) -> Result<BucketRemoval, MetaError> {
                    if has_nul(name) {
                        return Ok(BucketRemoval::NotFound);
                    }
                    let lock = if CONCURRENT_WRITERS { " FOR UPDATE" } else { "" };
                    let mut tx = self.$w.begin().await?;
                    let found = query::<Db>(&format!(
                        "SELECT name FROM buckets WHERE name = $1 AND runtime = 1{lock}"
                    ))
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if found.is_none() {
                        return Ok(BucketRemoval::NotFound);
                    }
                    let object = query::<Db>(
                        "SELECT id FROM objects WHERE bucket = $1 AND status != 'garbage' LIMIT 1",
                    )
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let upload = query::<Db>(
                        "SELECT upload_id FROM multipart_uploads \
                         WHERE bucket = $1 AND completed_etag IS NULL LIMIT 1",
                    )
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if object.is_some() || upload.is_some() {
                        return Ok(BucketRemoval::NotEmpty);
                    }
                    query::<Db>("DELETE FROM buckets WHERE name = $1 AND runtime = 1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(BucketRemoval::Removed)
                }

                async fn insert_pendings(&self, batch: &[NewPending]) -> Result<(), MetaError> {
                    fn statement<'q>(
                        sql: &'q str,
                        run: &'q [NewPending],
                    ) -> $crate::metadata::sql::Query<'q, Db> {
                        run.iter().fold(query::<Db>(sql), |q, p| {
                            q.bind(&p.id)
                                .bind(&p.bucket)
                                .bind(&p.key)
                                .bind("pending")
                                .bind(&p.owner)
                                .bind(p.created_at_ms)
                                .bind(p.lease_until_ms)
                                .bind(&p.tenant_id)
                        })
                    }
                    fn sql(rows: usize) -> String {
                        format!(
                            "INSERT INTO objects (id, bucket, key, status, owner, created_at, \
                             lease_until, tenant_id) VALUES {}",
                            $crate::metadata::sql::values_list(8, rows)
                        )
                    }
                    // A multi-row INSERT per run: a batch is a statement or a few, not one
                    // per upload (each a round trip to the database).
                    match $crate::metadata::sql::row_runs(batch).as_slice() {
                        [] => Ok(()),
                        // One statement is its own transaction.
                        [run] => {
                            statement(&sql(run.len()), run).execute(&self.$w).await?;
                            Ok(())
                        }
                        runs => {
                            let mut tx = self.$w.begin().await?;
                            for run in runs {
                                statement(&sql(run.len()), run).execute(&mut *tx).await?;
                            }
                            tx.commit().await?;
                            Ok(())
                        }
                    }
                }

                async fn commit(&self, id: &str, info: &CommitInfo) -> Result<Vec<String>, MetaError> {
                    // A transaction the database rolled back to break a deadlock (MySQL: the
                    // unique index locks gaps even at READ COMMITTED) changed nothing: run it
                    // again.
                    let mut attempt = 1;
                    loop {
                        match commit_once(&self.$w, id, info).await {
                            Err(MetaError::Database(e)) if attempt < MAX_COMMIT_ATTEMPTS && deadlocked(&e) => {
                                tracing::debug!(attempt, "commit deadlocked; retrying");
                                attempt += 1;
                            }
                            outcome => return outcome,
                        }
                    }
                }

                async fn commit_many(
                    &self,
                    batch: &[(String, CommitInfo)],
                ) -> Result<Vec<Result<Vec<String>, MetaError>>, MetaError> {
                    let mut tx = self.$w.begin().await?;
                    if !CONCURRENT_WRITERS {
                        let outcomes = commit_group(&mut tx, batch).await?;
                        tx.commit().await?;
                        return Ok(outcomes);
                    }
                    // Several writers: one after the other (the gateway groups commits only on
                    // a single writer).
                    let mut outcomes = Vec::with_capacity(batch.len());
                    for (id, info) in batch {
                        outcomes.push(commit_alone(&mut tx, id, info).await?);
                    }
                    tx.commit().await?;
                    Ok(outcomes)
                }

                async fn discard_pending(&self, id: &str) -> Result<(), MetaError> {
                    query::<Db>("DELETE FROM objects WHERE id = $1 AND status = 'pending'")
                        .bind(id)
                        .execute(&self.$w)
                        .await?;
                    Ok(())
                }

                async fn current(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
                    if has_nul(bucket) || has_nul(key) {
                        return Ok(None);
                    }
                    let row = query::<Db>(&format!(
                        "SELECT {OBJECT_COLUMNS} FROM objects \
                         WHERE bucket = $1 AND key = $2 AND status = 'committed'"
                    ))
                    .bind(bucket)
                    .bind(key)
                    .fetch_optional(&self.$r)
                    .await?;
                    row.as_ref().map(object_record).transpose()
                }

                async fn delete_current(&self, bucket: &str, key: &str) -> Result<Option<String>, MetaError> {
                    if has_nul(bucket) || has_nul(key) {
                        return Ok(None);
                    }
                    let mut tx = self.$w.begin().await?;
                    let row = retire_current(&mut tx, bucket, key, "id, size, tenant_id")
                        .await?
                        .pop();
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    release_usage(&mut tx, &row).await?;
                    tx.commit().await?;
                    Ok(Some(row.field("id")?))
                }

                async fn set_tags(
                    &self,
                    bucket: &str,
                    key: &str,
                    tags: &ObjectTags,
                ) -> Result<bool, MetaError> {
                    if has_nul(bucket) || has_nul(key) {
                        return Ok(false);
                    }
                    let n = query::<Db>(
                        "UPDATE objects SET tags = $1 \
                         WHERE bucket = $2 AND key = $3 AND status = 'committed'",
                    )
                    .bind(tags.to_column())
                    .bind(bucket)
                    .bind(key)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n > 0)
                }

                async fn purge(&self, id: &str) -> Result<(), MetaError> {
                    query::<Db>("DELETE FROM objects WHERE id = $1 AND status != 'committed'")
                        .bind(id)
                        .execute(&self.$w)
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
                    // `s + "\0" + rest` is also above `s`, and none equals either: cut there,
                    // exclusive.
                    let (start, inclusive) = match start.find('\0') {
                        Some(nul) => (&start[..nul], false),
                        None => (start, inclusive),
                    };
                    // The scan starts at the larger of the prefix and the resume point (Rust
                    // compares strings bytewise, like SQLite and the "C" collation of the
                    // PostgreSQL column).
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
                    let mut q = query::<Db>(&sql).bind(bucket).bind(lower);
                    if let Some(u) = &upper {
                        q = q.bind(u);
                    }
                    let rows = q.bind(i64::from(limit)).fetch_all(&self.$r).await?;
                    rows.iter().map(object_record).collect()
                }

                async fn sweepable(&self, now_ms: i64, limit: u32) -> Result<Vec<Sweepable>, MetaError> {
                    // The leading `status != 'committed'` repeats the predicate of the partial
                    // index `objects_sweep` word for word: SQLite uses the index only then.
                    let rows = query::<Db>(
                        "SELECT id, bucket FROM objects WHERE status != 'committed' \
                         AND ((status = 'pending' AND lease_until < $1) OR status = 'garbage') \
                         LIMIT $2",
                    )
                    .bind(now_ms)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$r)
                    .await?;
                    sweepables(&rows, "id")
                }

                fn single_writer(&self) -> bool {
                    !CONCURRENT_WRITERS
                }

                async fn ping(&self) -> Result<(), MetaError> {
                    query::<Db>("SELECT 1").execute(&self.$r).await?;
                    Ok(())
                }

                async fn referenced_blobs(&self, ids: &[String]) -> Result<Vec<String>, MetaError> {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut found = Vec::new();
                    // Runs of a few lengths, so that the statements have a few texts (each
                    // translated and prepared once), however many ids a reconciler pass asks for.
                    for run in $crate::metadata::sql::row_runs(ids) {
                        let list = $crate::metadata::sql::placeholders(1, run.len());
                        // Loose blobs first: a part's blob moves from there to a part row in one
                        // transaction, so reading in this order cannot miss it.
                        for (table, column) in [
                            ("loose_blobs", "blob_id"),
                            ("multipart_parts", "blob_id"),
                            ("objects", "id"),
                        ] {
                            let sql =
                                format!("SELECT {column} AS id FROM {table} WHERE {column} IN ({list})");
                            let q = run.iter().fold(query::<Db>(&sql), |q, id| q.bind(id.as_str()));
                            for row in q.fetch_all(&self.$w).await? {
                                found.push(row.field::<String, _>("id")?);
                            }
                        }
                    }
                    Ok(found)
                }

                async fn committed_ids(
                    &self,
                    bucket: &str,
                    fan: &str,
                    before_ms: i64,
                ) -> Result<Vec<(String, String)>, MetaError> {
                    let Some(upper) = prefix_upper_bound(fan) else {
                        return Ok(Vec::new());
                    };
                    if has_nul(bucket) {
                        return Ok(Vec::new());
                    }
                    let rows = query::<Db>(
                        "SELECT id, key FROM objects WHERE id >= $1 AND id < $2 \
                         AND bucket = $3 AND status = 'committed' AND committed_at < $4",
                    )
                    .bind(fan)
                    .bind(upper)
                    .bind(bucket)
                    .bind(before_ms)
                    .fetch_all(&self.$w)
                    .await?;
                    rows.iter()
                        .map(|r| Ok((r.field("id")?, r.field("key")?)))
                        .collect()
                }

                async fn object_status(&self, id: &str) -> Result<Option<String>, MetaError> {
                    let row = query::<Db>("SELECT status FROM objects WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.$w)
                        .await?;
                    Ok(row.map(|r| r.field("status")).transpose()?)
                }

                async fn claim_maintenance(
                    &self,
                    job: &str,
                    holder: &str,
                    now_ms: i64,
                    stale_before_ms: i64,
                ) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "UPDATE maintenance SET started_at = $1, holder = $2 \
                         WHERE name = $3 AND started_at < $4",
                    )
                    .bind(now_ms)
                    .bind(holder)
                    .bind(job)
                    .bind(stale_before_ms)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn transition_due(
                    &self,
                    bucket: &str,
                    from: &[&str],
                    before_ms: i64,
                    limit: u32,
                ) -> Result<Vec<String>, MetaError> {
                    if from.is_empty() || has_nul(bucket) {
                        return Ok(Vec::new());
                    }
                    let classes = $crate::metadata::sql::placeholders(2, from.len());
                    let sql = format!(
                        "SELECT id FROM objects WHERE bucket = $1 AND status = 'committed' \
                         AND storage_class IN ({classes}) AND committed_at < ${} \
                         ORDER BY committed_at LIMIT ${}",
                        from.len() + 2,
                        from.len() + 3
                    );
                    let mut q = query::<Db>(&sql).bind(bucket);
                    for class in from {
                        q = q.bind(*class);
                    }
                    let rows = q
                        .bind(before_ms)
                        .bind(i64::from(limit))
                        .fetch_all(&self.$w)
                        .await?;
                    rows.iter().map(|r| Ok(r.field("id")?)).collect()
                }

                async fn set_storage_class(
                    &self,
                    id: &str,
                    class: &str,
                ) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "UPDATE objects SET storage_class = $1 \
                         WHERE id = $2 AND status = 'committed'",
                    )
                    .bind(class)
                    .bind(id)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }
            }
        };
    };
}

pub(crate) use impl_object_store;
