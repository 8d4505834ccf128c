//! Storage-class transitions: a bucket's committed objects move to a colder class
//! (`transition_storage_class`) `transition_days` after their upload.
//!
//! The sweeper finds due objects by their recorded class and age, rewrites each one's bytes in
//! place with the new class ([`Storage::set_storage_class`]: same path, same bytes, replaced
//! atomically by the backend, so downloads never notice), then records the class. A version
//! retired meanwhile is not recorded, and the rewritten bytes are removed again (the delete that
//! retired it may have run before the rewrite landed). Every step is idempotent, so replicas
//! sweeping at once at worst rewrite an object twice.

use crate::config::STORAGE_CLASSES;
use crate::error::Result;
use crate::state::AppState;
use crate::storage::Storage;

/// Moves the objects due as of `now_ms` to their bucket's colder class, in batches of `batch`;
/// returns how many moved. A backend failure ends the pass (the next sweep resumes where the
/// records say it stopped).
pub async fn transition_objects(state: &AppState, now_ms: i64, batch: u32) -> Result<usize> {
    let mut moved = 0;
    for bucket in super::reconcile::buckets(state.meta.as_ref(), &state.config).await? {
        let policy = state
            .config
            .bucket(&bucket)
            .unwrap_or(&state.config.bucket_template);
        // The class by its static name (config validation accepts no other).
        let Some((target, age_ms)) = policy.transition().and_then(|(class, age)| {
            let known = STORAGE_CLASSES.iter().find(|c| **c == class)?;
            Some((*known, age))
        }) else {
            continue;
        };
        let from: Vec<&str> = STORAGE_CLASSES
            .iter()
            .copied()
            .filter(|c| *c != target)
            .collect();
        let before = now_ms.saturating_sub(age_ms);
        loop {
            let due = state
                .meta
                .transition_due(&bucket, &from, before, batch)
                .await?;
            let mut progressed = false;
            for id in &due {
                if move_object(state, &bucket, id, target).await? {
                    moved += 1;
                    progressed = true;
                }
            }
            // A short batch is the last; one where nothing moved (every version retired, or
            // its bytes missing: the reconciler reports those) would come back the same.
            if due.len() < batch as usize || !progressed {
                break;
            }
        }
    }
    if moved > 0 {
        tracing::info!(moved, "objects moved to their colder storage class");
    }
    Ok(moved)
}

/// Rewrites object `id` of `bucket` in `class` and records it; false if the version was
/// retired meanwhile (its rewritten bytes are removed again).
async fn move_object(
    state: &AppState,
    bucket: &str,
    id: &str,
    class: &'static str,
) -> Result<bool> {
    let path = Storage::path_for(bucket, id);
    match state.storage.set_storage_class(&path, class).await {
        Ok(()) => {}
        // Retired and removed since it was listed.
        Err(crate::storage::StorageError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    if state.meta.set_storage_class(id, class).await? {
        state.metrics.transitioned(class);
        return Ok(true);
    }
    // No longer committed: nothing refers to these bytes, and the rewrite may have put them
    // back after the delete that retired the version removed them.
    state.storage.delete(&path).await?;
    Ok(false)
}
