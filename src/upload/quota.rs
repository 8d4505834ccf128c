//! Per-tenant storage quotas: the limits a commit is held to, and the warning event.
//!
//! Enforcement itself happens in the metadata transaction that commits (or retires) an object
//! (`apply_quota!`), so it is atomic with the commit; this module only works out the limits and
//! tells the tenant when usage crosses the warning threshold.

use crate::error::Result;
use crate::metadata::Quota;
use crate::metadata::control::OutboxEvent;
use crate::state::AppState;

/// The tenant id an S3-plane scope (`"{tenant}/"`) stands for.
pub fn tenant_of_scope(scope: Option<&str>) -> Option<&str> {
    scope.map(|s| s.trim_end_matches('/'))
}

fn limit(override_: Option<i64>, default: u64) -> i64 {
    match override_ {
        Some(v) if v > 0 => v,
        Some(_) => i64::MAX,
        None if default == 0 => i64::MAX,
        None => i64::try_from(default).unwrap_or(i64::MAX),
    }
}

/// The limits a commit for `tenant_id` is held to: the tenant's overrides, else the config's.
pub async fn quota_for(state: &AppState, tenant_id: &str) -> Result<Quota> {
    let t = state.control.tenant(tenant_id).await?;
    let q = &state.config.quotas;
    Ok(Quota {
        tenant_id: tenant_id.to_string(),
        max_bytes: limit(t.as_ref().and_then(|t| t.max_bytes), q.max_bytes),
        max_objects: limit(t.as_ref().and_then(|t| t.max_objects), q.max_objects),
    })
}

/// After a commit of `added` bytes: if usage just crossed the warning threshold of a limit,
/// records a `quota.warning` event (delivered by the webhook worker).
pub async fn warn_if_crossed(state: &AppState, q: &Quota, added: i64) -> Result<()> {
    let pct = i64::from(state.config.quotas.warn_percent);
    let (bytes, objects) = state.control.usage(&q.tenant_id).await?;
    let crossed = |used: i64, delta: i64, max: i64| {
        max != i64::MAX && {
            let threshold = max / 100 * pct + (max % 100) * pct / 100;
            used >= threshold && used - delta < threshold
        }
    };
    if crossed(bytes, added, q.max_bytes) || crossed(objects, 1, q.max_objects) {
        let now = crate::clock::now_ms();
        let payload = serde_json::json!({
            "event": crate::events::QUOTA_WARNING,
            "tenant_id": q.tenant_id,
            "bytes": bytes,
            "max_bytes": (q.max_bytes != i64::MAX).then_some(q.max_bytes),
            "objects": objects,
            "max_objects": (q.max_objects != i64::MAX).then_some(q.max_objects),
            "at": crate::clock::iso8601(crate::clock::from_ms(now)),
        });
        state
            .control
            .enqueue(
                &OutboxEvent {
                    id: crate::id::random_hex(16),
                    tenant_id: q.tenant_id.clone(),
                    event: crate::events::QUOTA_WARNING.into(),
                    payload: payload.to_string(),
                    created_at_ms: now,
                    attempts: 0,
                },
                now,
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_defaults_and_zero_means_unlimited() {
        assert_eq!(limit(None, 0), i64::MAX);
        assert_eq!(limit(None, 10), 10);
        assert_eq!(limit(Some(5), 10), 5);
        assert_eq!(limit(Some(0), 10), i64::MAX);
        assert_eq!(tenant_of_scope(Some("abc/")), Some("abc"));
        assert_eq!(tenant_of_scope(None), None);
    }
}
