//! Reconciling the bytes in the backends with the records: what the upload paths' own cleanup
//! cannot promise.
//!
//! Every write records its blob before the first byte (a pending object row, or a loose blob
//! for a part), and removes the record only after the bytes are gone. Two things still leave
//! bytes behind that no record points to: a remote write that lands after upgate gave up on it
//! (a PUT or a multipart completion that timed out here but finished at the backend, after the
//! failed upload's record was discarded), and a process that dies between removing bytes that
//! failed to delete and forgetting them. The reconciler lists each bucket's objects one fan
//! directory at a time (`{bucket}/{xx}/`, at most 1/256 of the bucket in memory), asks the
//! database which of the listed ids any record refers to, and removes the rest once they are
//! older than the grace period. It also counts committed records whose bytes are missing; it
//! never removes a record.
//!
//! Safe while uploads run, on any number of replicas: ids are random and recorded before their
//! bytes exist, so an unreferenced blob older than the grace period can never become referenced;
//! removing one twice is not an error.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::metadata::MetadataStore;
use crate::metrics::Metrics;
use crate::storage::Storage;

/// Ids asked about in one query.
const BATCH: usize = 500;
/// Ids named in a report, per bucket and kind (the counts are always whole).
const REPORT_IDS: usize = 100;

/// What one pass does.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Unreferenced blobs younger than this are left alone.
    pub grace: Duration,
    /// Report only: remove nothing.
    pub dry_run: bool,
}

/// What one pass found in one bucket.
#[derive(Debug, Default, Serialize)]
pub struct BucketReport {
    pub bucket: String,
    /// Blobs listed in the backend.
    pub listed: u64,
    /// Blobs no record refers to, older than the grace period.
    pub orphans: u64,
    /// Orphans removed (0 in a dry run).
    pub removed: u64,
    /// Unreferenced blobs left alone because they are younger than the grace period.
    pub young: u64,
    /// Ids of (at most 100) orphans.
    pub orphan_ids: Vec<String>,
    /// Committed records whose bytes are not in the backend.
    pub missing: u64,
    /// `{id, key}` of (at most 100) of them.
    pub missing_records: Vec<MissingRecord>,
}

/// A committed record without its bytes.
#[derive(Debug, Serialize)]
pub struct MissingRecord {
    pub id: String,
    pub key: String,
}

impl Options {
    /// The configured grace period (`metadata.reconcile_grace_secs`) unless `grace_secs` is
    /// given.
    pub fn new(config: &crate::config::Config, dry_run: bool, grace_secs: Option<u64>) -> Self {
        Self {
            grace: Duration::from_secs(grace_secs.unwrap_or(config.metadata.reconcile_grace_secs)),
            dry_run,
        }
    }
}

/// Every bucket that may hold bytes: the configured ones and those the database records.
pub async fn buckets(
    meta: &dyn MetadataStore,
    config: &crate::config::Config,
) -> Result<Vec<String>> {
    let mut names: Vec<String> = config.buckets.keys().cloned().collect();
    for (name, _) in meta.buckets().await? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// One pass over `buckets`, fan directory by fan directory.
pub async fn run(
    meta: &dyn MetadataStore,
    storage: &Storage,
    buckets: &[String],
    opts: Options,
    metrics: Option<&Metrics>,
) -> Result<Vec<BucketReport>> {
    let mut reports = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        let mut report = BucketReport {
            bucket: bucket.clone(),
            ..Default::default()
        };
        for fan in 0..=255u8 {
            let fan = format!("{fan:02x}");
            fan_pass(meta, storage, bucket, &fan, opts, &mut report).await?;
        }
        if let Some(m) = metrics {
            m.reconciled("orphan_removed", report.removed);
            m.reconciled("missing", report.missing);
        }
        if report.orphans > 0 || report.missing > 0 {
            tracing::warn!(
                bucket = %bucket,
                orphans = report.orphans,
                removed = report.removed,
                missing = report.missing,
                "reconciled stored bytes with records"
            );
        }
        reports.push(report);
    }
    Ok(reports)
}

async fn fan_pass(
    meta: &dyn MetadataStore,
    storage: &Storage,
    bucket: &str,
    fan: &str,
    opts: Options,
    report: &mut BucketReport,
) -> Result<()> {
    let listed_at = crate::clock::now_ms();
    let listed: HashMap<String, i64> = storage.list_fan(bucket, fan).await?.into_iter().collect();
    report.listed += listed.len() as u64;
    // Committed before the listing began, so their bytes were written before it too.
    for (id, key) in meta.committed_ids(bucket, fan, listed_at).await? {
        if !listed.contains_key(&id) {
            report.missing += 1;
            if report.missing_records.len() < REPORT_IDS {
                report.missing_records.push(MissingRecord { id, key });
            }
        }
    }
    let ids: Vec<String> = listed.keys().cloned().collect();
    let grace_ms = i64::try_from(opts.grace.as_millis()).unwrap_or(i64::MAX);
    for chunk in ids.chunks(BATCH) {
        let known: HashSet<String> = meta.referenced_blobs(chunk).await?.into_iter().collect();
        for id in chunk.iter().filter(|id| !known.contains(*id)) {
            // Against the listing's start: a blob written since is younger, never older.
            let age = listed_at.saturating_sub(listed[id]);
            if age < grace_ms {
                report.young += 1;
                continue;
            }
            report.orphans += 1;
            if report.orphan_ids.len() < REPORT_IDS {
                report.orphan_ids.push(id.clone());
            }
            if !opts.dry_run {
                storage.delete(&Storage::path_for(bucket, id)).await?;
                report.removed += 1;
            }
        }
    }
    Ok(())
}
