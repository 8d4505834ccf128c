//! [`ResumableStore`]: the records of resumable uploads (tus, the IETF draft), for SQLite and
//! PostgreSQL from one SQL source (`$N` placeholders in ascending order, as in
//! [`super::control`]).
//!
//! A resumable upload's bytes are the parts of a multipart upload with the same id, so the
//! part budget, the loose-blob bookkeeping and the sweeping of [`super::MultipartStore`] apply
//! unchanged; the offset is the sum of the stored parts, never a second counter that a crash
//! between two writes could leave behind. This record adds what the protocols need: the
//! declared length (deferred: `None`), the metadata, the creator, concatenation, and a lease
//! (`locked_until`) that lets one append run at a time across replicas.

use super::MetaError;

/// What a resumable upload is in the concatenation extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// A plain upload.
    None,
    /// A partial upload: its bytes are only ever used by a final upload.
    Partial,
    /// A final upload: the concatenation of these partial uploads, in order.
    Final(Vec<String>),
}

/// Where a resumable upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumableStatus {
    /// Accepting appends.
    Uploading,
    /// Every byte arrived and the object was committed (or, for a partial upload, every byte
    /// arrived).
    Complete,
    /// Terminated by its creator.
    Terminated,
}

impl ResumableStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResumableStatus::Uploading => "uploading",
            ResumableStatus::Complete => "complete",
            ResumableStatus::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "uploading" => Some(ResumableStatus::Uploading),
            "complete" => Some(ResumableStatus::Complete),
            "terminated" => Some(ResumableStatus::Terminated),
            _ => None,
        }
    }
}

/// One resumable upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableUpload {
    /// Random, unguessable id (32 hex chars); also the id of its multipart upload.
    pub id: String,
    pub tenant_id: String,
    /// The principal that created it (`tenant:subject`, or `token:<id>`); to anyone else the
    /// upload does not exist.
    pub creator: String,
    /// The owner of the file it becomes (`app`, `user:<sub>`, or a token's issuer).
    pub owner: String,
    pub bucket: String,
    /// The key the object is committed at (`{tenant}/{file}/{version}`).
    pub key: String,
    /// The upload link it completes through, when one was minted for it.
    pub link_id: Option<String>,
    /// The upload token it was created with, charged at commit.
    pub token_id: Option<String>,
    /// Total length; `None` while deferred.
    pub length: Option<u64>,
    /// The declared, normalised content type, if any.
    pub declared_type: Option<String>,
    /// The sanitised display name.
    pub filename: String,
    /// The `Upload-Metadata` header as the client sent it (echoed on HEAD).
    pub metadata: String,
    /// A pinned hex SHA-256 the assembled object must have.
    pub sha256: Option<String>,
    pub concat: Concat,
    pub status: ResumableStatus,
    pub locked_until_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Records of resumable uploads.
#[async_trait::async_trait]
pub trait ResumableStore: Send + Sync {
    async fn create_resumable(&self, u: &ResumableUpload) -> Result<(), MetaError>;
    async fn resumable(&self, id: &str) -> Result<Option<ResumableUpload>, MetaError>;
    /// Takes the append lease until `until_ms` if the upload is uploading and nobody holds it
    /// at `now_ms`; `false` if another append holds it (or the upload is not uploading).
    async fn lock_resumable(&self, id: &str, now_ms: i64, until_ms: i64)
    -> Result<bool, MetaError>;
    /// Gives the lease back.
    async fn unlock_resumable(&self, id: &str, now_ms: i64) -> Result<(), MetaError>;
    /// Sets a deferred length once; `false` if the length was already set.
    async fn set_resumable_length(
        &self,
        id: &str,
        length: u64,
        now_ms: i64,
    ) -> Result<bool, MetaError>;
    /// Moves an uploading upload to `status` (and records the link it completed through);
    /// `false` if it was not uploading.
    async fn finish_resumable(
        &self,
        id: &str,
        status: ResumableStatus,
        link_id: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, MetaError>;
    /// How many uploads of `creator` are still uploading.
    async fn unfinished_resumable(&self, creator: &str) -> Result<u64, MetaError>;
    /// Ids of uploads created before `before_ms` (expired), in any status.
    async fn expired_resumable(&self, before_ms: i64, limit: u32)
    -> Result<Vec<String>, MetaError>;
    /// Deletes the record (its parts are the multipart store's to free).
    async fn delete_resumable(&self, id: &str) -> Result<(), MetaError>;
}

/// `concat` and `concat_parts` as stored.
pub(crate) fn concat_columns(c: &Concat) -> (&'static str, String) {
    match c {
        Concat::None => ("none", String::new()),
        Concat::Partial => ("partial", String::new()),
        Concat::Final(parts) => ("final", parts.join(" ")),
    }
}

/// The stored `concat` and `concat_parts` columns, back.
pub(crate) fn concat_from(kind: &str, parts: &str) -> Result<Concat, MetaError> {
    match kind {
        "none" => Ok(Concat::None),
        "partial" => Ok(Concat::Partial),
        "final" => Ok(Concat::Final(
            parts
                .split(' ')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )),
        _ => Err(MetaError::Corrupt("resumable concat")),
    }
}

/// Implements [`ResumableStore`] for a store type whose rows are `$row`; `$w` is the pool for
/// writes, `$r` for reads.
#[macro_export]
macro_rules! impl_resumable_store {
    ($ty:ty, $row:ty, $w:ident, $r:ident) => {
        const _: () = {
            #[allow(unused_imports)]
            use $crate::metadata::sql::{Dialect, Field, query};
            type Db = <$row as sqlx::Row>::Database;
            use $crate::metadata::MetaError;
            use $crate::metadata::resumable::{
                ResumableStatus, ResumableStore, ResumableUpload, concat_columns, concat_from,
            };

            const COLUMNS: &str = "id, tenant_id, creator, owner, bucket, key, link_id, \
                token_id, length, declared_type, filename, metadata, sha256, concat, \
                concat_parts, status, locked_until, created_at, updated_at";

            fn upload(row: &$row) -> Result<ResumableUpload, MetaError> {
                let length: Option<i64> = row.field("length")?;
                let status: String = row.field("status")?;
                let kind: String = row.field("concat")?;
                let parts: String = row.field("concat_parts")?;
                Ok(ResumableUpload {
                    id: row.field("id")?,
                    tenant_id: row.field("tenant_id")?,
                    creator: row.field("creator")?,
                    owner: row.field("owner")?,
                    bucket: row.field("bucket")?,
                    key: row.field("key")?,
                    link_id: row.field("link_id")?,
                    token_id: row.field("token_id")?,
                    length: length
                        .map(u64::try_from)
                        .transpose()
                        .map_err(|_| MetaError::Corrupt("negative length"))?,
                    declared_type: row.field("declared_type")?,
                    filename: row.field("filename")?,
                    metadata: row.field("metadata")?,
                    sha256: row.field("sha256")?,
                    concat: concat_from(&kind, &parts)?,
                    status: ResumableStatus::parse(&status)
                        .ok_or(MetaError::Corrupt("resumable status"))?,
                    locked_until_ms: row.field("locked_until")?,
                    created_at_ms: row.field("created_at")?,
                    updated_at_ms: row.field("updated_at")?,
                })
            }

            fn length_column(length: u64) -> Result<i64, MetaError> {
                i64::try_from(length).map_err(|_| MetaError::Corrupt("length"))
            }

            #[async_trait::async_trait]
            impl ResumableStore for $ty {
                async fn create_resumable(&self, u: &ResumableUpload) -> Result<(), MetaError> {
                    let (kind, parts) = concat_columns(&u.concat);
                    query::<Db>(&format!(
                        "INSERT INTO resumable_uploads ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
                         $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
                    ))
                    .bind(&u.id)
                    .bind(&u.tenant_id)
                    .bind(&u.creator)
                    .bind(&u.owner)
                    .bind(&u.bucket)
                    .bind(&u.key)
                    .bind(&u.link_id)
                    .bind(&u.token_id)
                    .bind(u.length.map(length_column).transpose()?)
                    .bind(&u.declared_type)
                    .bind(&u.filename)
                    .bind(&u.metadata)
                    .bind(&u.sha256)
                    .bind(kind)
                    .bind(parts)
                    .bind(u.status.as_str())
                    .bind(u.locked_until_ms)
                    .bind(u.created_at_ms)
                    .bind(u.updated_at_ms)
                    .execute(&self.$w)
                    .await?;
                    Ok(())
                }

                async fn resumable(&self, id: &str) -> Result<Option<ResumableUpload>, MetaError> {
                    if id.contains('\0') {
                        return Ok(None);
                    }
                    let row = query::<Db>(&format!(
                        "SELECT {COLUMNS} FROM resumable_uploads WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.$w)
                    .await?;
                    row.as_ref().map(upload).transpose()
                }

                async fn lock_resumable(
                    &self,
                    id: &str,
                    now_ms: i64,
                    until_ms: i64,
                ) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "UPDATE resumable_uploads SET locked_until = $1, updated_at = $2 \
                         WHERE id = $3 AND status = 'uploading' AND locked_until < $2",
                    )
                    .bind(until_ms)
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn unlock_resumable(&self, id: &str, now_ms: i64) -> Result<(), MetaError> {
                    query::<Db>(
                        "UPDATE resumable_uploads SET locked_until = 0, updated_at = $1 \
                         WHERE id = $2",
                    )
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.$w)
                    .await?;
                    Ok(())
                }

                async fn set_resumable_length(
                    &self,
                    id: &str,
                    length: u64,
                    now_ms: i64,
                ) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "UPDATE resumable_uploads SET length = $1, updated_at = $2 \
                         WHERE id = $3 AND length IS NULL",
                    )
                    .bind(length_column(length)?)
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn finish_resumable(
                    &self,
                    id: &str,
                    status: ResumableStatus,
                    link_id: Option<&str>,
                    now_ms: i64,
                ) -> Result<bool, MetaError> {
                    let n = query::<Db>(
                        "UPDATE resumable_uploads SET status = $1, \
                         link_id = COALESCE($2, link_id), locked_until = 0, updated_at = $3 \
                         WHERE id = $4 AND status = 'uploading'",
                    )
                    .bind(status.as_str())
                    .bind(link_id)
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.$w)
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn unfinished_resumable(&self, creator: &str) -> Result<u64, MetaError> {
                    let n: i64 = query::<Db>(
                        "SELECT COUNT(*) FROM resumable_uploads \
                         WHERE creator = $1 AND status = 'uploading'",
                    )
                    .bind(creator)
                    .scalar_one(&self.$w)
                    .await?;
                    Ok(u64::try_from(n).unwrap_or(0))
                }

                async fn expired_resumable(
                    &self,
                    before_ms: i64,
                    limit: u32,
                ) -> Result<Vec<String>, MetaError> {
                    Ok(query::<Db>(
                        "SELECT id FROM resumable_uploads WHERE created_at < $1 LIMIT $2",
                    )
                    .bind(before_ms)
                    .bind(i64::from(limit))
                    .scalar_all(&self.$r)
                    .await?)
                }

                async fn delete_resumable(&self, id: &str) -> Result<(), MetaError> {
                    query::<Db>("DELETE FROM resumable_uploads WHERE id = $1")
                        .bind(id)
                        .execute(&self.$w)
                        .await?;
                    Ok(())
                }
            }
        };
    };
}
