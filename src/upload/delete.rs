//! Removing objects: retiring the current version at a key, and deleting the bytes of retired
//! versions (failures are left to the sweeper, which finds the rows).

use crate::error::Result;
use crate::metadata::control::{FileRecord, LinkStatus, OutboxEvent};
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

/// Deletes a file and every version of it, reporting `event` (`file.deleted` or
/// `file.expired`) in the same transaction; false if it was not live or is under legal hold.
pub async fn delete_file(state: &AppState, f: &FileRecord, event: &str) -> Result<bool> {
    let now = crate::clock::now_ms();
    let outbox = OutboxEvent {
        id: crate::id::random_hex(16),
        tenant_id: f.tenant_id.clone(),
        event: event.to_string(),
        payload: serde_json::json!({
            "event": event,
            "file_id": f.id,
            "tenant_id": f.tenant_id,
            "at": crate::clock::iso8601(crate::clock::from_ms(now)),
        })
        .to_string(),
        created_at_ms: now,
        attempts: 0,
    };
    if !state.control.delete_file(&f.id, now, &outbox).await? {
        return Ok(false);
    }
    for link in state.control.links_of_file(&f.id).await? {
        if link.status == LinkStatus::Complete {
            delete_key(state, &link.bucket, &link.key).await?;
        }
    }
    Ok(true)
}

/// Deletes the files whose retention ended (not those under legal hold), in batches of
/// `batch`, as of `now_ms`; each expiry is audited (actor `retention`). Safe on several
/// replicas: a file deleted by another is skipped. Returns how many were deleted.
pub async fn expire_files(state: &AppState, now_ms: i64, batch: u32) -> Result<usize> {
    let mut done = 0;
    loop {
        let due = state.control.due_expired_files(now_ms, batch).await?;
        if due.is_empty() {
            return Ok(done);
        }
        let mut progressed = false;
        for f in &due {
            if delete_file(state, f, crate::events::FILE_EXPIRED).await? {
                state
                    .control
                    .audit(&crate::metadata::control::AuditEntry {
                        id: crate::id::random_hex(12),
                        at_ms: crate::clock::now_ms(),
                        tenant_id: f.tenant_id.clone(),
                        actor: "retention".to_string(),
                        action: "file.expired".to_string(),
                        file_id: Some(f.id.clone()),
                        detail: format!(
                            "expires_at={}",
                            f.expires_at_ms
                                .map(crate::clock::from_ms)
                                .map(crate::clock::iso8601)
                                .unwrap_or_default()
                        ),
                    })
                    .await?;
                done += 1;
                progressed = true;
            }
        }
        if !progressed {
            // Every due file was taken by another replica (or held since): nothing more now.
            return Ok(done);
        }
    }
}

/// Deletes the versions the buckets' version rules retire (`keep_versions`,
/// `noncurrent_version_days`), as of `now_ms`, in batches; the current version and files under
/// legal hold are never touched. Each removal is audited (actor `retention`). Returns how many.
pub async fn retire_versions(state: &AppState, now_ms: i64, batch: u32) -> Result<usize> {
    let mut done = 0;
    for (name, b) in &state.config.buckets {
        if b.keep_versions == 0 && b.noncurrent_version_days == 0 {
            continue;
        }
        let before = (b.noncurrent_version_days > 0)
            .then(|| now_ms.saturating_sub(i64::from(b.noncurrent_version_days) * 86_400_000));
        loop {
            let due = state
                .control
                .retired_versions(name, b.keep_versions, before, batch)
                .await?;
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for link in &due {
                // Marked first: a version is removed once, even with several replicas sweeping.
                if !state.control.retire_version(&link.id).await? {
                    continue;
                }
                delete_key(state, &link.bucket, &link.key).await?;
                state
                    .control
                    .audit(&crate::metadata::control::AuditEntry {
                        id: crate::id::random_hex(12),
                        at_ms: crate::clock::now_ms(),
                        tenant_id: link.tenant_id.clone(),
                        actor: "retention".to_string(),
                        action: "version.expired".to_string(),
                        file_id: Some(link.file_id.clone()),
                        detail: format!("version={}", link.key.rsplit('/').next().unwrap_or("")),
                    })
                    .await?;
                done += 1;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }
    Ok(done)
}
