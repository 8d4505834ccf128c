//! Background cleanup: deletes files whose retention ended, moves objects past their bucket's
//! transition age to the colder storage class, removes the bytes of retired
//! versions and of uploads whose process died before committing or aborting (pending rows whose
//! lease ran out), then their rows, and the spool files such a process left on this replica.
//!
//! Idempotent and safe on several replicas at once: deleting absent bytes is not an error and a
//! purge only ever removes non-committed rows.
//!
//! Beside it, [`reconcile_loop`] compares the stored bytes with the records every
//! `metadata.reconcile_interval_secs` (one replica per interval, by a claim in the database) and
//! removes the blobs no record refers to ([`crate::upload::reconcile`]).

use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;
use crate::storage::Storage;

/// Runs forever, sweeping every `metadata.sweep_interval_secs` (the first pass one interval
/// after start).
pub async fn run(state: Arc<AppState>) {
    let every = Duration::from_secs(state.config.metadata.sweep_interval_secs.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        if let Err(e) = sweep_once(&state).await {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}

/// Runs forever: about every `metadata.reconcile_interval_secs`, the replica that claims the
/// run reconciles every bucket's bytes with the records. Replicas look every few minutes
/// (jittered), so a claim missed because its holder died is taken over within the interval.
pub async fn reconcile_loop(state: Arc<AppState>) {
    let every = state.config.metadata.reconcile_interval_secs;
    if every == 0 {
        return;
    }
    let holder = format!("{}:{}", std::process::id(), crate::id::random_hex(4));
    let look = Duration::from_secs(every.min(300));
    loop {
        let jitter = Duration::from_millis(
            u64::from_str_radix(&crate::id::random_hex(2), 16).unwrap_or(0) % 5000,
        );
        tokio::time::sleep(look + jitter).await;
        let now = crate::clock::now_ms();
        let stale =
            now.saturating_sub(i64::try_from(every.saturating_mul(1000)).unwrap_or(i64::MAX));
        match state
            .meta
            .claim_maintenance("reconcile", &holder, now, stale)
            .await
        {
            Ok(true) => {
                if let Err(e) = reconcile_all(&state, false).await {
                    tracing::warn!(error = %e, "reconciliation failed; the next interval retries");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "reconciliation claim failed"),
        }
    }
}

/// One reconciliation pass over every bucket (configured and recorded).
pub async fn reconcile_all(
    state: &AppState,
    dry_run: bool,
) -> Result<Vec<crate::upload::reconcile::BucketReport>, crate::error::Error> {
    use crate::upload::reconcile;
    let buckets = reconcile::buckets(state.meta.as_ref(), &state.config).await?;
    let opts = reconcile::Options::new(&state.config, dry_run, None);
    let metrics = Some(state.metrics.as_ref());
    reconcile::run(state.meta.as_ref(), &state.storage, &buckets, opts, metrics).await
}

/// One pass; returns how many rows were purged (objects, multipart uploads, loose blobs).
pub async fn sweep_once(state: &AppState) -> Result<usize, crate::error::Error> {
    let mut purged = 0;
    // Delivered webhook events are kept a week (for inspection), then pruned.
    let week_ago = crate::clock::now_ms().saturating_sub(7 * 24 * 3600 * 1000);
    purged += usize::try_from(state.control.prune_events(week_ago).await?).unwrap_or(0);
    // Abandoned multipart uploads: their parts become loose blobs, removed below.
    let idle_ms = i64::try_from(state.config.s3.multipart_max_idle_secs.saturating_mul(1000))
        .unwrap_or(i64::MAX);
    loop {
        let idle = state
            .meta
            .idle_multipart(crate::clock::now_ms().saturating_sub(idle_ms), 100)
            .await?;
        if idle.is_empty() {
            break;
        }
        for upload_id in &idle {
            state
                .meta
                .remove_multipart(upload_id, crate::clock::now_ms())
                .await?;
            purged += 1;
        }
    }
    // Expired resumable uploads: their parts become loose blobs, removed below.
    purged += crate::upload::resumable::sweep(state).await?;
    // Files at the end of their retention (not under legal hold): their versions are retired
    // here and their bytes removed below.
    purged += crate::upload::delete::expire_files(state, crate::clock::now_ms(), 100).await?;
    purged += crate::upload::delete::retire_versions(state, crate::clock::now_ms(), 100).await?;
    // Objects past their bucket's transition age move to the colder storage class (not
    // counted: nothing is purged). A failure there must not hold up the cleanup below.
    if let Err(e) =
        crate::upload::transition::transition_objects(state, crate::clock::now_ms(), 100).await
    {
        tracing::warn!(error = %e, "storage-class transition pass failed; the next sweep resumes");
    }
    loop {
        let due = state
            .meta
            .due_loose_blobs(crate::clock::now_ms(), 100)
            .await?;
        if due.is_empty() {
            break;
        }
        for blob in &due {
            let path = Storage::path_for(&blob.bucket, &blob.id);
            state.storage.remove_staging(&path).await?;
            state.storage.delete(&path).await?;
            state.meta.forget_loose_blob(&blob.id).await?;
            purged += 1;
        }
    }
    // Spool files a process of this replica left when it died mid-upload (only this replica
    // reaches its disk; the rows are swept by whichever replica comes first).
    let deadline = Duration::from_secs(state.config.longest_upload_deadline_secs());
    purged += state.storage.remove_stale_spool(deadline).await?;
    loop {
        let batch = state.meta.sweepable(crate::clock::now_ms(), 100).await?;
        if batch.is_empty() {
            return Ok(purged);
        }
        for item in &batch {
            let path = Storage::path_for(&item.bucket, &item.id);
            state.storage.remove_staging(&path).await?;
            state.storage.delete(&path).await?;
            state.meta.purge(&item.id).await?;
            purged += 1;
        }
    }
}
