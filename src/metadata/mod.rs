//! The metadata seam: one record per object version (owner, size, SHA-256, detected type,
//! status), behind [`MetadataStore`]. SQLite by default ([`sqlite::SqliteStore`]); PostgreSQL
//! ([`postgres::PgStore`]) and MySQL / MariaDB ([`mysql::MySqlStore`]) for several replicas.
//!
//! The record, not the backend, decides what exists: a key resolves to the one row with status
//! `committed`, enforced by a unique index (partial, or on a generated column in MySQL). An upload's row is inserted as `pending`
//! (with a lease) before the first byte is written, flipped to `committed` in one transaction
//! that also retires the previous version, or removed on failure. Rows whose lease ran out (the
//! process died mid-upload) and retired versions are swept together with their bytes.

pub mod accounts;
pub mod batch;
pub mod control;
mod migrate;
pub mod multipart;
pub mod mysql;
mod objects;
pub mod postgres;
pub mod resumable;
pub mod sql;
pub mod sqlite;

use async_trait::async_trait;

use sql::Field as _;

use crate::error::Error;

/// Metadata failures, by meaning.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The pending row vanished (lease expired and swept) before commit.
    #[error("pending record not found")]
    PendingGone,
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value cannot be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(&'static str),
    /// The commit would take the tenant past its quota.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// An upload token has no uploads or bytes left (or was revoked or expired) at commit.
    #[error("upload token exhausted")]
    TokenExhausted,
    /// The multipart upload does not exist (never did, aborted, completed or expired).
    #[error("no such multipart upload")]
    NoSuchUpload,
    /// A conditional commit whose condition does not hold: the key has a version (`Absent`)
    /// or one with another ETag (`EtagIs`).
    #[error("write condition does not hold")]
    ConditionFailed,
    /// A conditional commit (`EtagIs`) whose key has no version any more.
    #[error("write condition conflicts with a delete")]
    ConditionConflict,
}

impl From<MetaError> for Error {
    fn from(e: MetaError) -> Self {
        match e {
            // Fail closed: no metadata, no upload; the client may retry.
            MetaError::Database(_) | MetaError::PendingGone => Error::unavailable(e),
            MetaError::Corrupt(_) => Error::internal(e),
            MetaError::NoSuchUpload => Error::NoSuchUpload,
            MetaError::ConditionFailed => Error::PreconditionFailed,
            MetaError::ConditionConflict => Error::ConditionalRequestConflict,
            MetaError::QuotaExceeded => Error::QuotaExceeded,
            MetaError::TokenExhausted => Error::AccessDenied("The upload token is used up."),
        }
    }
}

/// Lifecycle of an object row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Bytes are being written; invisible.
    Pending,
    /// The current version at its key.
    Committed,
    /// Replaced or deleted; bytes to be removed by the sweeper.
    Garbage,
}

impl Status {
    /// Database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Committed => "committed",
            Status::Garbage => "garbage",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Status::Pending),
            "committed" => Some(Status::Committed),
            "garbage" => Some(Status::Garbage),
            _ => None,
        }
    }
}

/// What is known when an upload starts.
#[derive(Debug, Clone, Default)]
pub struct NewPending {
    /// Random object (version) id; also names the storage path.
    pub id: String,
    pub bucket: String,
    pub key: String,
    /// Principal that uploads (access key id).
    pub owner: String,
    pub created_at_ms: i64,
    /// After this instant the sweeper may delete the row and its bytes.
    pub lease_until_ms: i64,
    /// The tenant whose quota the object counts against, if any.
    pub tenant_id: Option<String>,
}

/// What is known once every check has passed.
#[derive(Debug, Clone, Default)]
pub struct CommitInfo {
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// ETag without quotes.
    pub etag: String,
    /// Detected (sniffed) content type.
    pub content_type: String,
    /// A client-supplied checksum that was verified (`CRC32`, ...; base64 value), to return on
    /// `GetObject` with checksum mode.
    pub checksum: Option<(String, String)>,
    pub committed_at_ms: i64,
    /// The tenant quota to hold the commit to (usage is updated in the same transaction).
    pub quota: Option<Quota>,
    /// The content verdict (JSON: which checks ran, what was changed in the stored bytes).
    pub scan: Option<String>,
    /// Headers stored with the object and returned on GET/HEAD (see [`ObjectHeaders`]).
    pub headers: ObjectHeaders,
    /// The object's tags.
    pub tags: ObjectTags,
    /// A condition on the version the commit replaces, checked in the commit's transaction.
    pub condition: Option<WriteCondition>,
    /// The sizes of the parts a multipart object's stored bytes are made of, in part order
    /// (GET/HEAD by `partNumber`); empty: a single-part object.
    pub part_sizes: Vec<u64>,
    /// The backend storage class the bytes were written with (S3 spelling, `STANDARD` on
    /// backends without classes).
    pub storage_class: String,
}

/// A conditional write's condition on the key's current version, checked by
/// [`MetadataStore::commit`] in the transaction that retires that version: of concurrent
/// writers with `Absent`, exactly one commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// No committed version at the key (`If-None-Match: *`); else `ConditionFailed`.
    Absent,
    /// The committed version has this ETag, without quotes (`If-Match`); else
    /// `ConditionFailed`, or `ConditionConflict` when the key has no version.
    EtagIs(String),
}

impl WriteCondition {
    /// Whether the condition holds for a key whose current version has `current` as ETag.
    pub fn check(&self, current: Option<&str>) -> Result<(), MetaError> {
        match (self, current) {
            (WriteCondition::Absent, None) => Ok(()),
            (WriteCondition::Absent, Some(_)) => Err(MetaError::ConditionFailed),
            (WriteCondition::EtagIs(_), None) => Err(MetaError::ConditionConflict),
            (WriteCondition::EtagIs(want), Some(etag)) if want == etag => Ok(()),
            (WriteCondition::EtagIs(_), Some(_)) => Err(MetaError::ConditionFailed),
        }
    }
}

/// What a client stores with an object besides its bytes: user metadata (`x-amz-meta-*`) and
/// standard headers (`cache-control`, `content-disposition`, ...), as (lowercase name, UTF-8
/// value) pairs in the order given. Stored as a JSON array of pairs (NULL when empty); the
/// front end decides which names are admitted and how values travel on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHeaders(pub Vec<(String, String)>);

/// An object's tags (S3 object tagging), as (key, value) pairs in the order given; the front
/// end validates them. Stored as a JSON array of pairs (NULL when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectTags(pub Vec<(String, String)>);

/// The column form of a list of pairs: a JSON array, NULL when empty.
macro_rules! pairs_column {
    ($ty:ident, $what:literal) => {
        impl $ty {
            /// The database form: `None` when there are none.
            pub fn to_column(&self) -> Option<String> {
                if self.0.is_empty() {
                    return None;
                }
                serde_json::to_string(&self.0).ok()
            }

            /// Reads the database form.
            pub fn from_column(column: Option<&str>) -> Result<Self, MetaError> {
                match column {
                    None => Ok(Self::default()),
                    Some(s) => serde_json::from_str(s)
                        .map(Self)
                        .map_err(|_| MetaError::Corrupt($what)),
                }
            }
        }
    };
}
pairs_column!(ObjectHeaders, "object headers");
pairs_column!(ObjectTags, "object tags");

/// A tenant's limits at commit time (`i64::MAX`: unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub tenant_id: String,
    pub max_bytes: i64,
    pub max_objects: i64,
}

/// Applies a usage change to a tenant inside the caller's transaction: refused (rolling the
/// caller back via `QuotaExceeded`) if it grows usage past the quota. Shrinking always passes.
/// The usage row is created by an upsert that writes it (rather than `DO NOTHING`), so that the
/// statement takes the row's write lock at once: on MySQL a plain duplicate check takes a shared
/// lock, and two commits holding it would deadlock on the `UPDATE` that follows.
/// The conditional `UPDATE` serialises concurrent commits of one tenant on its usage row, and
/// its condition is evaluated on the latest row, so two uploads cannot both fit into the same
/// remaining space.
#[macro_export]
macro_rules! apply_quota {
    ($tx:expr, $quota:expr, $bytes:expr, $objects:expr) => {
        if let Some(q) = $quota {
            $crate::metadata::sql::query::<_>(
                "INSERT INTO tenant_usage (tenant_id) VALUES ($1) \
                 ON CONFLICT (tenant_id) DO UPDATE SET tenant_id = excluded.tenant_id",
            )
            .bind(&q.tenant_id)
            .execute(&mut *$tx)
            .await?;
            let n = $crate::metadata::sql::query::<_>(
                "UPDATE tenant_usage SET bytes = bytes + $1, objects = objects + $2 \
                 WHERE tenant_id = $3 AND ($1 <= 0 OR bytes + $1 <= $4) \
                 AND ($2 <= 0 OR objects + $2 <= $5)",
            )
            .bind($bytes)
            .bind($objects)
            .bind(&q.tenant_id)
            .bind(q.max_bytes)
            .bind(q.max_objects)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err($crate::metadata::MetaError::QuotaExceeded);
            }
        }
    };
}

/// A bucket created at run time (S3 CreateBucket), as the metadata database records it. Its
/// policy is the config's `[bucket_template]`, read when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeBucket {
    pub name: String,
    pub created_at_ms: i64,
    /// The tenant whose access key created it; `None`: an operator key.
    pub tenant_id: Option<String>,
}

/// What [`MetadataStore::create_bucket`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketCreation {
    /// The bucket was recorded.
    Created,
    /// A bucket of that name is recorded already: a run-time one (its record), or one recorded
    /// from the configuration (`None`). Nothing changed.
    Exists(Option<RuntimeBucket>),
    /// The tenant owns as many run-time buckets as it may. Nothing changed.
    TooMany,
}

/// What [`MetadataStore::delete_bucket`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketRemoval {
    /// The run-time bucket is gone.
    Removed,
    /// No run-time bucket of that name.
    NotFound,
    /// It holds objects (or uploads being written, or open multipart uploads): kept.
    NotEmpty,
}

/// A committed object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub owner: String,
    pub size: u64,
    pub sha256: String,
    pub etag: String,
    pub content_type: String,
    pub checksum: Option<(String, String)>,
    pub committed_at_ms: i64,
    /// The content verdict recorded at commit (JSON), if any.
    pub scan: Option<String>,
    /// Headers stored with the object.
    pub headers: ObjectHeaders,
    /// The object's tags.
    pub tags: ObjectTags,
    /// The sizes of its parts, in part order; empty: a single-part object (or one whose parts
    /// are not known: completed before they were recorded, or rewritten by a content check).
    pub part_sizes: Vec<u64>,
    /// Where the bytes are: the backend storage class (S3 spelling; `STANDARD` on backends
    /// without classes).
    pub storage_class: String,
}

/// The `part_sizes` column of a list of part sizes (`NULL` for none).
pub(crate) fn part_sizes_column(sizes: &[u64]) -> Option<String> {
    (!sizes.is_empty()).then(|| {
        sizes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The part sizes of a `part_sizes` column.
fn part_sizes_of(column: Option<&str>) -> Result<Vec<u64>, MetaError> {
    match column {
        None | Some("") => Ok(Vec::new()),
        Some(list) => list
            .split(',')
            .map(|n| n.parse().map_err(|_| MetaError::Corrupt("part sizes")))
            .collect(),
    }
}

/// One `objects` row as a record: the columns are the same in both databases.
pub(crate) fn object_record<'r, R>(row: &'r R) -> Result<ObjectRecord, MetaError>
where
    R: sqlx::Row,
    R::Database: sql::Dialect,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let size: i64 = row.field("size")?;
    let algo: Option<String> = row.field("checksum_algorithm")?;
    let value: Option<String> = row.field("checksum_value")?;
    let headers: Option<String> = row.field("headers")?;
    let tags: Option<String> = row.field("tags")?;
    let part_sizes: Option<String> = row.field("part_sizes")?;
    Ok(ObjectRecord {
        id: row.field("id")?,
        bucket: row.field("bucket")?,
        key: row.field("key")?,
        owner: row.field("owner")?,
        size: u64::try_from(size).map_err(|_| MetaError::Corrupt("negative size"))?,
        sha256: row.field("sha256")?,
        etag: row.field("etag")?,
        content_type: row.field("content_type")?,
        checksum: algo.zip(value),
        committed_at_ms: row.field("committed_at")?,
        scan: row.field("scan")?,
        headers: ObjectHeaders::from_column(headers.as_deref())?,
        tags: ObjectTags::from_column(tags.as_deref())?,
        part_sizes: part_sizes_of(part_sizes.as_deref())?,
        storage_class: row.field("storage_class")?,
    })
}

/// A row whose bytes the sweeper should remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweepable {
    pub id: String,
    pub bucket: String,
}

/// Rows of (`id_column`, `bucket`) as [`Sweepable`]s: objects and loose blobs alike.
pub(crate) fn sweepables<'r, R>(
    rows: &'r [R],
    id_column: &'static str,
) -> Result<Vec<Sweepable>, MetaError>
where
    R: sqlx::Row,
    R::Database: sql::Dialect,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| {
            Ok(Sweepable {
                id: r.field(id_column)?,
                bucket: r.field("bucket")?,
            })
        })
        .collect()
}

/// An open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    /// Random, unguessable id (32 hex chars).
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    /// Principal that created it; the only one that may use it.
    pub owner: String,
    /// Declared, normalised content type (None: generic / absent).
    pub content_type: Option<String>,
    /// Checksum algorithm announced at creation (`x-amz-checksum-algorithm`), S3 spelling.
    pub checksum_algorithm: Option<String>,
    /// How that checksum covers the object (`COMPOSITE`, `FULL_OBJECT`); `None` without one.
    pub checksum_type: Option<String>,
    pub created_at_ms: i64,
    pub last_activity_ms: i64,
    /// Headers given at creation, stored with the object it completes into.
    pub headers: ObjectHeaders,
    /// Tags given at creation (`x-amz-tagging`), for the object it completes into.
    pub tags: ObjectTags,
    /// The ETag of the object the upload completed into (without quotes); `None` while open.
    /// A completed upload keeps its row (not its parts) for the multipart idle window, so that
    /// a retried completion gets the same answer.
    pub completed_etag: Option<String>,
}

/// A stored part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    pub part_number: u32,
    /// Id of the hidden blob holding the part's bytes.
    pub blob_id: String,
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Hex SHA-256 of the part.
    pub sha256: String,
    /// Algorithm (S3 spelling, e.g. `CRC32`) and base64 value of the verified client checksum
    /// of the part, if one was sent.
    pub checksum: Option<(String, String)>,
    /// Type sniffed from the part's first bytes, if recognisable.
    pub detected_type: Option<String>,
    pub created_at_ms: i64,
}

/// Multipart uploads, their parts and loose blobs (one SQL source for both databases, see
/// [`multipart`]).
#[async_trait]
pub trait MultipartStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records a new multipart upload.
    async fn create_multipart(&self, u: &MultipartUpload) -> Result<(), MetaError>;
    /// An open upload by id.
    async fn multipart(&self, upload_id: &str) -> Result<Option<MultipartUpload>, MetaError>;
    /// Open uploads of `owner` in `bucket` whose key starts with `prefix`, ordered by (key,
    /// upload id), after the marker pair, at most `limit`.
    async fn list_multipart(
        &self,
        bucket: &str,
        owner: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: u32,
    ) -> Result<Vec<MultipartUpload>, MetaError>;
    /// Records a blob that is about to be written and that nothing points to yet; unless a
    /// part row adopts it, the sweeper removes it after `sweep_after_ms`.
    async fn register_loose_blob(
        &self,
        blob_id: &str,
        bucket: &str,
        sweep_after_ms: i64,
    ) -> Result<(), MetaError>;
    /// Records a part, atomically: only if the upload still exists (`NoSuchUpload`) and the
    /// sizes of its other parts plus this one stay within `max_total` (else `Ok(false)`, nothing
    /// changed). The part's blob stops being loose; a replaced part's blob becomes loose (due
    /// now). Touches the upload's last activity.
    async fn put_part(
        &self,
        upload_id: &str,
        part: &PartRecord,
        max_total: u64,
        now_ms: i64,
    ) -> Result<bool, MetaError>;
    /// Parts with numbers greater than `after`, ascending, at most `limit`.
    async fn parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: u32,
    ) -> Result<Vec<PartRecord>, MetaError>;
    /// Removes an upload (abort, expiry); its part blobs become loose (due now).
    /// Returns whether it existed.
    async fn remove_multipart(&self, upload_id: &str, now_ms: i64) -> Result<bool, MetaError>;
    /// Marks an open upload completed into an object with `etag`: its part blobs become loose
    /// (due now), the row stays (touched at `now_ms`) until it is idle for the multipart window.
    /// Returns whether an open upload existed.
    async fn finish_multipart(
        &self,
        upload_id: &str,
        etag: &str,
        now_ms: i64,
    ) -> Result<bool, MetaError>;
    /// Ids of uploads with no activity since `before_ms`.
    async fn idle_multipart(&self, before_ms: i64, limit: u32) -> Result<Vec<String>, MetaError>;
    /// Loose blobs due for removal (`id` is the blob id).
    async fn due_loose_blobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Sweepable>, MetaError>;
    /// Forgets a loose blob after its bytes were removed.
    async fn forget_loose_blob(&self, blob_id: &str) -> Result<(), MetaError>;
}

/// The metadata store. Implementations: SQLite (default), PostgreSQL and MySQL (at scale), from
/// one SQL source (`objects.rs`, run through `sql.rs`).
#[async_trait]
pub trait MetadataStore:
    MultipartStore + resumable::ResumableStore + Send + Sync + std::fmt::Debug + 'static
{
    /// Records a configured bucket (idempotent); returns its creation time.
    async fn ensure_bucket(&self, name: &str, now_ms: i64) -> Result<i64, MetaError>;
    /// All recorded buckets with creation times, by name.
    async fn buckets(&self) -> Result<Vec<(String, i64)>, MetaError>;
    /// Records a run-time bucket unless one of that name is recorded (configured ones too);
    /// a bucket of a tenant only while that tenant has fewer than `tenant_max` run-time buckets
    /// (checked and recorded atomically).
    async fn create_bucket(
        &self,
        bucket: &RuntimeBucket,
        tenant_max: u32,
    ) -> Result<BucketCreation, MetaError>;
    /// The run-time bucket `name`, if there is one.
    async fn runtime_bucket(&self, name: &str) -> Result<Option<RuntimeBucket>, MetaError>;
    /// Every run-time bucket, by name.
    async fn runtime_buckets(&self) -> Result<Vec<RuntimeBucket>, MetaError>;
    /// Removes the run-time bucket `name` if it is empty: no committed or pending object and no
    /// open multipart upload (checked and removed atomically).
    async fn delete_bucket(&self, name: &str) -> Result<BucketRemoval, MetaError>;
    /// Inserts a `pending` row before any byte is written.
    async fn insert_pending(&self, p: &NewPending) -> Result<(), MetaError> {
        self.insert_pendings(std::slice::from_ref(p)).await
    }
    /// Inserts `pending` rows in one transaction, all or none (the group commit of starting
    /// uploads, see [`batch`]).
    async fn insert_pendings(&self, batch: &[NewPending]) -> Result<(), MetaError>;
    /// Atomically retires the current version at the row's key and commits the row, if
    /// `info.condition` holds for that version (else `ConditionFailed` / `ConditionConflict`,
    /// nothing changed). Returns the ids of the retired versions (now `garbage`). Fails with `PendingGone` if the row is
    /// no longer pending or its lease ended before `info.committed_at_ms` (it then belongs to
    /// the sweeper).
    async fn commit(&self, id: &str, info: &CommitInfo) -> Result<Vec<String>, MetaError>;
    /// Commits each `(id, info)` of `batch` as [`MetadataStore::commit`] would, one after the
    /// other in one transaction (the group commit of a single writer, see [`batch`]). Each
    /// commit has its own outcome: one that fails changes nothing and leaves the others be. The
    /// outer error means none committed (or, if the database lost the connection, that nobody
    /// knows).
    async fn commit_many(
        &self,
        batch: &[(String, CommitInfo)],
    ) -> Result<Vec<Result<Vec<String>, MetaError>>, MetaError>;
    /// Whether every write goes through one connection (SQLite): concurrent commits then only
    /// queue, and grouping them ([`MetadataStore::commit_many`]) saves a transaction each.
    fn single_writer(&self) -> bool;
    /// Removes a `pending` row (the upload failed and its bytes were discarded).
    async fn discard_pending(&self, id: &str) -> Result<(), MetaError>;
    /// The committed version at `key`.
    async fn current(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError>;
    /// Retires the committed version at `key`; returns its id if there was one.
    async fn delete_current(&self, bucket: &str, key: &str) -> Result<Option<String>, MetaError>;
    /// Replaces the tags of the committed version at `key`; returns whether there was one.
    async fn set_tags(&self, bucket: &str, key: &str, tags: &ObjectTags)
    -> Result<bool, MetaError>;
    /// Removes a row for good (after its bytes are gone).
    async fn purge(&self, id: &str) -> Result<(), MetaError>;
    /// Committed objects with keys starting with `prefix` and greater than `start` (or equal
    /// to it when `inclusive`), in key (UTF-8 byte) order, at most `limit`.
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start: &str,
        inclusive: bool,
        limit: u32,
    ) -> Result<Vec<ObjectRecord>, MetaError>;
    /// Pending rows with an expired lease, and garbage rows: bytes to remove, rows to purge.
    async fn sweepable(&self, now_ms: i64, limit: u32) -> Result<Vec<Sweepable>, MetaError>;
    /// Cheap liveness probe.
    async fn ping(&self) -> Result<(), MetaError>;
    /// Of the blob ids `ids` (at most a few hundred), those a record refers to: an object
    /// version in any state, a stored part, or a loose blob (to be written or removed). Read
    /// from the primary (a blob is recorded before it is written).
    async fn referenced_blobs(&self, ids: &[String]) -> Result<Vec<String>, MetaError>;
    /// `(id, key)` of the committed versions in `bucket` whose id starts with `fan` and that
    /// were committed before `before_ms` (the reconciler's check for missing bytes).
    async fn committed_ids(
        &self,
        bucket: &str,
        fan: &str,
        before_ms: i64,
    ) -> Result<Vec<(String, String)>, MetaError>;
    /// The status of object row `id` (`pending`, `committed`, `garbage`), if there is one.
    async fn object_status(&self, id: &str) -> Result<Option<String>, MetaError>;
    /// Claims the periodic job `job` for `holder` if its last run started before
    /// `stale_before_ms`; true if this caller got it (one replica per interval).
    async fn claim_maintenance(
        &self,
        job: &str,
        holder: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<bool, MetaError>;
    /// Ids of the committed versions in `bucket` stored in one of the classes `from` and
    /// committed before `before_ms`, oldest first, at most `limit` (the transition pass).
    async fn transition_due(
        &self,
        bucket: &str,
        from: &[&str],
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<String>, MetaError>;
    /// Records that committed version `id`'s bytes are now in `class`; false if `id` is no
    /// longer committed (retired or gone meanwhile).
    async fn set_storage_class(&self, id: &str, class: &str) -> Result<bool, MetaError>;
}

/// The smallest string greater than every string that starts with `prefix`, if one exists
/// (used as an exclusive upper bound for prefix scans).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        // Skip the surrogate gap.
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_is_tight() {
        assert_eq!(prefix_upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper_bound("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }
}
