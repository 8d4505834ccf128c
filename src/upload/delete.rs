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
                let at = f.expires_at_ms.map(crate::clock::from_ms);
                let detail = format!(
                    "expires_at={}",
                    at.map(crate::clock::iso8601).unwrap_or_default()
                );
                audit_retention(state, &f.tenant_id, &f.id, "file.expired", detail).await?;
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

/// A bucket's version rule as of `now_ms`: the versions kept (0: no limit) and the time before
/// which a replaced version goes (`None`: no age limit); `None` when the bucket has no rule.
pub fn version_rule(b: &crate::config::BucketConfig, now_ms: i64) -> Option<(u32, Option<i64>)> {
    if b.keep_versions == 0 && b.noncurrent_version_days == 0 {
        return None;
    }
    let before = (b.noncurrent_version_days > 0)
        .then(|| now_ms.saturating_sub(i64::from(b.noncurrent_version_days) * 86_400_000));
    Some((b.keep_versions, before))
}

/// One audit entry of the sweeper's retention (actor `retention`).
async fn audit_retention(
    state: &AppState,
    tenant_id: &str,
    file_id: &str,
    action: &str,
    detail: String,
) -> Result<()> {
    state
        .control
        .audit(&crate::metadata::control::AuditEntry {
            id: crate::id::random_hex(12),
            at_ms: crate::clock::now_ms(),
            tenant_id: tenant_id.to_string(),
            actor: "retention".to_string(),
            action: action.to_string(),
            file_id: Some(file_id.to_string()),
            detail,
        })
        .await?;
    Ok(())
}

/// Deletes the versions the buckets' version rules retire (`keep_versions`,
/// `noncurrent_version_days`), as of `now_ms`, in batches; the current version and files under
/// legal hold are never touched. Each removal is audited (actor `retention`). Returns how many.
pub async fn retire_versions(state: &AppState, now_ms: i64, batch: u32) -> Result<usize> {
    let mut done = 0;
    for (name, b) in &state.config.buckets {
        let Some((keep, before)) = version_rule(b, now_ms) else {
            continue;
        };
        loop {
            let due = state
                .control
                .retired_versions(name, keep, before, batch)
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
                let detail = format!("version={}", link.key.rsplit('/').next().unwrap_or(""));
                audit_retention(
                    state,
                    &link.tenant_id,
                    &link.file_id,
                    "version.expired",
                    detail,
                )
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
