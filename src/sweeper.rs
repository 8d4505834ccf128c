//! Background cleanup: deletes files whose retention ended, removes the bytes of retired
//! versions and of uploads whose process died before committing or aborting (pending rows whose
//! lease ran out), then their rows.
//!
//! Idempotent and safe on several replicas at once: deleting absent bytes is not an error and a
//! purge only ever removes non-committed rows.

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
