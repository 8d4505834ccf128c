//! Removing objects: retiring the current version at a key, and deleting the bytes of retired
//! versions (failures are left to the sweeper, which finds the rows).

use crate::error::Result;
use crate::state::AppState;
use crate::storage::Storage;

/// Deletes the bytes of retired versions and their rows; failures are left to the sweeper.
pub async fn remove_versions(state: &AppState, bucket: &str, ids: Vec<String>) {
    for id in ids {
        match state.storage.delete(&Storage::path_for(bucket, &id)).await {
            Ok(()) => {
                if let Err(e) = state.meta.purge(&id).await {
                    tracing::warn!(error = %e, "purge failed; the sweeper will retry");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "deleting retired bytes failed; the sweeper will retry")
            }
        }
    }
}

/// Retires the current version at `key` and removes its bytes.
pub async fn delete_key(state: &AppState, bucket: &str, key: &str) -> Result<()> {
    if let Some(id) = state.meta.delete_current(bucket, key).await? {
        remove_versions(state, bucket, vec![id]).await;
    }
    Ok(())
}
