//! [`MultipartStore`](super::MultipartStore) for SQLite, PostgreSQL and MySQL, from one SQL
//! source (`$N` placeholders, introduced in ascending order, as in [`super::control`]).
//!
//! Admitting a part is one transaction whose first statement is an `UPDATE` of the upload's row
//! (touching its last activity): PostgreSQL and MySQL take the row lock there, SQLite's single writer
//! serialises anyway, so the budget check that follows sees every part committed before it and
//! two parts streamed concurrently cannot both squeeze under the budget.

/// Implements [`MultipartStore`](super::MultipartStore) for a store type whose rows are
/// `$row`; `$w` is the pool for writes, `$r` for reads.
#[macro_export]
macro_rules! impl_multipart_store {
    ($ty:ty, $row:ty, $w:ident, $r:ident) => {
        const _: () = {
            use sqlx::Row;
            #[allow(unused_imports)]
            use $crate::metadata::sql::{Dialect, Field, query};
            type Db = <$row as sqlx::Row>::Database;
            use $crate::metadata::{
                MetaError, MultipartStore, MultipartUpload, ObjectHeaders, ObjectTags, PartRecord, Sweepable,
                prefix_upper_bound,
            };

            const UPLOAD_COLUMNS: &str = "upload_id, bucket, key, owner, content_type, \
                checksum_algorithm, created_at, last_activity, headers, completed_etag, tags, \
                checksum_type";
            const PART_COLUMNS: &str = "part_number, blob_id, size, etag, sha256, \
                checksum_algorithm, checksum_value, detected_type, created_at";

            fn upload(row: &$row) -> Result<MultipartUpload, MetaError> {
                let headers: Option<String> = row.field("headers")?;
                let tags: Option<String> = row.field("tags")?;
                Ok(MultipartUpload {
                    upload_id: row.field("upload_id")?,
                    bucket: row.field("bucket")?,
                    key: row.field("key")?,
                    owner: row.field("owner")?,
                    content_type: row.field("content_type")?,
                    checksum_algorithm: row.field("checksum_algorithm")?,
                    created_at_ms: row.field("created_at")?,
                    last_activity_ms: row.field("last_activity")?,
                    headers: ObjectHeaders::from_column(headers.as_deref())?,
                    completed_etag: row.field("completed_etag")?,
                    tags: ObjectTags::from_column(tags.as_deref())?,
                    checksum_type: row.field("checksum_type")?,
                })
            }

            fn part(row: &$row) -> Result<PartRecord, MetaError> {
                let n: i64 = row.field("part_number")?;
                let size: i64 = row.field("size")?;
                let algo: Option<String> = row.field("checksum_algorithm")?;
                let value: Option<String> = row.field("checksum_value")?;
                Ok(PartRecord {
                    part_number: u32::try_from(n).map_err(|_| MetaError::Corrupt("part number"))?,
                    blob_id: row.field("blob_id")?,
                    size: u64::try_from(size).map_err(|_| MetaError::Corrupt("negative size"))?,
                    etag: row.field("etag")?,
                    sha256: row.field("sha256")?,
                    checksum: algo.zip(value),
                    detected_type: row.field("detected_type")?,
                    created_at_ms: row.field("created_at")?,
                })
            }

            /// Frees an upload's parts (their blobs become loose, due at `now_ms`), then removes
            /// the upload (`completed: None`) or, if it is still open, marks it completed with
            /// that ETag. Returns whether the upload existed (and, to complete it, was open).
            async fn release_parts(
                pool: &sqlx::Pool<<$row as Row>::Database>,
                upload_id: &str,
                completed: Option<&str>,
                now_ms: i64,
            ) -> Result<bool, MetaError> {
                let mut tx = pool.begin().await?;
                // First statement locks the upload row (PostgreSQL) against a concurrent part.
                let touched = query::<Db>(&format!(
                    "UPDATE multipart_uploads SET last_activity = $1 WHERE upload_id = $2{}",
                    if completed.is_some() { " AND completed_etag IS NULL" } else { "" }
                ))
                .bind(now_ms)
                .bind(upload_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if touched == 0 {
                    return Ok(false);
                }
                query::<Db>(
                    "INSERT INTO loose_blobs (blob_id, bucket, sweep_after) \
                     SELECT p.blob_id, u.bucket, $1 FROM multipart_parts p \
                     JOIN multipart_uploads u ON u.upload_id = p.upload_id \
                     WHERE p.upload_id = $2 \
                     ON CONFLICT (blob_id) DO UPDATE SET sweep_after = excluded.sweep_after",
                )
                .bind(now_ms)
                .bind(upload_id)
                .execute(&mut *tx)
                .await?;
                query::<Db>("DELETE FROM multipart_parts WHERE upload_id = $1")
                    .bind(upload_id)
                    .execute(&mut *tx)
                    .await?;
                match completed {
                    None => {
                        query::<Db>("DELETE FROM multipart_uploads WHERE upload_id = $1")
                            .bind(upload_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Some(etag) => {
                        query::<Db>(
                            "UPDATE multipart_uploads SET completed_etag = $1 WHERE upload_id = $2",
                        )
                        .bind(etag)
                        .bind(upload_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            #[async_trait::async_trait]
            impl MultipartStore for $ty {
                async fn create_multipart(&self, u: &MultipartUpload) -> Result<(), MetaError> {
                    query::<Db>(&format!(
                        "INSERT INTO multipart_uploads ({UPLOAD_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    ))
                    .bind(&u.upload_id)
                    .bind(&u.bucket)
                    .bind(&u.key)
                    .bind(&u.owner)
                    .bind(&u.content_type)
                    .bind(&u.checksum_algorithm)
                    .bind(u.created_at_ms)
                    .bind(u.last_activity_ms)
                    .bind(u.headers.to_column())
                    .bind(&u.completed_etag)
                    .bind(u.tags.to_column())
                    .bind(&u.checksum_type)
                    .execute(&self.$w)
                    .await?;
                    Ok(())
                }

                async fn multipart(&self, upload_id: &str) -> Result<Option<MultipartUpload>, MetaError> {
                    if upload_id.contains('\0') {
                        return Ok(None);
                    }
                    let row = query::<Db>(&format!(
                        "SELECT {UPLOAD_COLUMNS} FROM multipart_uploads WHERE upload_id = $1"
                    ))
                    .bind(upload_id)
                    .fetch_optional(&self.$r)
                    .await?;
                    row.as_ref().map(upload).transpose()
                }

                async fn list_multipart(
                    &self,
                    bucket: &str,
                    owner: &str,
                    prefix: &str,
                    key_marker: &str,
                    upload_id_marker: &str,
                    limit: u32,
                ) -> Result<Vec<MultipartUpload>, MetaError> {
                    // PostgreSQL text cannot hold NUL: such a filter matches nothing.
                    if [bucket, owner, prefix, key_marker, upload_id_marker]
                        .iter()
                        .any(|s| s.contains('\0'))
                    {
                        return Ok(Vec::new());
                    }
                    let upper = prefix_upper_bound(prefix);
                    let sql = format!(
                        "SELECT {UPLOAD_COLUMNS} FROM multipart_uploads WHERE bucket = $1 \
                         AND owner = $2 AND key >= $3 AND completed_etag IS NULL \
                         AND (key > $4 OR (key = $4 AND upload_id > $5)) {} \
                         ORDER BY key, upload_id LIMIT $6",
                        if upper.is_some() { "AND key < $7" } else { "" }
                    );
                    let mut q = query::<Db>(&sql)
                        .bind(bucket)
                        .bind(owner)
                        .bind(prefix)
                        .bind(key_marker)
                        .bind(upload_id_marker)
                        .bind(i64::from(limit));
                    if let Some(u) = &upper {
                        q = q.bind(u);
                    }
                    let rows = q.fetch_all(&self.$r).await?;
                    rows.iter().map(upload).collect()
                }

                async fn register_loose_blob(
                    &self,
                    blob_id: &str,
                    bucket: &str,
                    sweep_after_ms: i64,
                ) -> Result<(), MetaError> {
                    query::<Db>(
                        "INSERT INTO loose_blobs (blob_id, bucket, sweep_after) VALUES ($1, $2, $3)",
                    )
                    .bind(blob_id)
                    .bind(bucket)
                    .bind(sweep_after_ms)
                    .execute(&self.$w)
                    .await?;
                    Ok(())
                }

                async fn put_part(
                    &self,
                    upload_id: &str,
                    p: &PartRecord,
                    max_total: u64,
                    now_ms: i64,
                ) -> Result<bool, MetaError> {
                    let size = i64::try_from(p.size).map_err(|_| MetaError::Corrupt("size overflow"))?;
                    let max = i64::try_from(max_total).unwrap_or(i64::MAX);
                    let mut tx = self.$w.begin().await?;
                    // First statement: touch (and, in PostgreSQL, lock) the upload row.
                    let touched = query::<Db>(
                        "UPDATE multipart_uploads SET last_activity = $1 WHERE upload_id = $2 \
                         AND completed_etag IS NULL",
                    )
                    .bind(now_ms)
                    .bind(upload_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if touched == 0 {
                        return Err(MetaError::NoSuchUpload);
                    }
                    let bucket: String = query::<Db>(
                        "SELECT bucket FROM multipart_uploads WHERE upload_id = $1",
                    )
                    .bind(upload_id)
                    .scalar_one(&mut *tx)
                    .await?;
                    let others: i64 = query::<Db>(
                        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM multipart_parts \
                         WHERE upload_id = $1 AND part_number != $2",
                    )
                    .bind(upload_id)
                    .bind(i64::from(p.part_number))
                    .scalar_one(&mut *tx)
                    .await?;
                    if others.saturating_add(size) > max {
                        return Ok(false);
                    }
                    // A replaced part's blob is loose from now on.
                    query::<Db>(
                        "INSERT INTO loose_blobs (blob_id, bucket, sweep_after) \
                         SELECT blob_id, $1, $2 FROM multipart_parts \
                         WHERE upload_id = $3 AND part_number = $4 \
                         ON CONFLICT (blob_id) DO UPDATE SET sweep_after = excluded.sweep_after",
                    )
                    .bind(&bucket)
                    .bind(now_ms)
                    .bind(upload_id)
                    .bind(i64::from(p.part_number))
                    .execute(&mut *tx)
                    .await?;
                    query::<Db>(&format!(
                        "INSERT INTO multipart_parts (upload_id, {PART_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (upload_id, part_number) DO UPDATE SET \
                         blob_id = excluded.blob_id, size = excluded.size, etag = excluded.etag, \
                         sha256 = excluded.sha256, checksum_algorithm = excluded.checksum_algorithm, \
                         checksum_value = excluded.checksum_value, \
                         detected_type = excluded.detected_type, created_at = excluded.created_at"
                    ))
                    .bind(upload_id)
                    .bind(i64::from(p.part_number))
                    .bind(&p.blob_id)
                    .bind(size)
                    .bind(&p.etag)
                    .bind(&p.sha256)
                    .bind(p.checksum.as_ref().map(|(a, _)| a))
                    .bind(p.checksum.as_ref().map(|(_, v)| v))
                    .bind(&p.detected_type)
                    .bind(p.created_at_ms)
                    .execute(&mut *tx)
                    .await?;
                    query::<Db>("DELETE FROM loose_blobs WHERE blob_id = $1")
                        .bind(&p.blob_id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn parts(
                    &self,
                    upload_id: &str,
                    after: u32,
                    limit: u32,
                ) -> Result<Vec<PartRecord>, MetaError> {
                    let rows = query::<Db>(&format!(
                        "SELECT {PART_COLUMNS} FROM multipart_parts WHERE upload_id = $1 \
                         AND part_number > $2 ORDER BY part_number LIMIT $3"
                    ))
                    .bind(upload_id)
                    .bind(i64::from(after))
                    .bind(i64::from(limit))
                    .fetch_all(&self.$r)
                    .await?;
                    rows.iter().map(part).collect()
                }

                async fn remove_multipart(&self, upload_id: &str, now_ms: i64) -> Result<bool, MetaError> {
                    release_parts(&self.$w, upload_id, None, now_ms).await
                }

                async fn finish_multipart(
                    &self,
                    upload_id: &str,
                    etag: &str,
                    now_ms: i64,
                ) -> Result<bool, MetaError> {
                    release_parts(&self.$w, upload_id, Some(etag), now_ms).await
                }

                async fn idle_multipart(&self, before_ms: i64, limit: u32) -> Result<Vec<String>, MetaError> {
                    Ok(query::<Db>(
                        // Resumable uploads keep their bytes as a multipart upload; their own expiry
                        // (`ResumableStore::expired_resumable`) frees them.
                        "SELECT upload_id FROM multipart_uploads WHERE last_activity < $1 \
                         AND owner NOT LIKE 'resumable:%' LIMIT $2",
                    )
                    .bind(before_ms)
                    .bind(i64::from(limit))
                    .scalar_all(&self.$r)
                    .await?)
                }

                async fn due_loose_blobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Sweepable>, MetaError> {
                    let rows = query::<Db>(
                        "SELECT blob_id, bucket FROM loose_blobs WHERE sweep_after <= $1 LIMIT $2",
                    )
                    .bind(now_ms)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$r)
                    .await?;
                    $crate::metadata::sweepables(&rows, "blob_id")
                }

                async fn forget_loose_blob(&self, blob_id: &str) -> Result<(), MetaError> {
                    query::<Db>("DELETE FROM loose_blobs WHERE blob_id = $1")
                        .bind(blob_id)
                        .execute(&self.$w)
                        .await?;
                    Ok(())
                }
            }
        };
    };
}
