//! The webhook events of the upload lifecycle, as written to the outbox in the transaction (or
//! right after the attempt) they report.

use crate::error::Error;
use crate::metadata::CommitInfo;
use crate::metadata::control::{OutboxEvent, UploadLink};

/// A webhook event about an upload link.
pub fn link_event(
    link: &UploadLink,
    event: &str,
    info: Option<&CommitInfo>,
    failure: Option<&Error>,
) -> OutboxEvent {
    let now = crate::clock::now_ms();
    let mut payload = serde_json::json!({
        "event": event,
        "upload_id": link.id,
        "file_id": link.file_id,
        "tenant_id": link.tenant_id,
        "at": crate::clock::iso8601(crate::clock::from_ms(now)),
    });
    if let Some(i) = info {
        payload["size"] = i.size.into();
        payload["sha256"] = i.sha256.clone().into();
        payload["content_type"] = i.content_type.clone().into();
        if let Some(v) = i
            .scan
            .as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        {
            payload["scan"] = v;
        }
        // The receipt's claims; the webhook worker signs them when it sends the event (and
        // drops them when upgate has no signing keys).
        let claims = super::receipt::claims(
            link,
            i.size,
            &i.sha256,
            &i.content_type,
            i.committed_at_ms,
            i.scan.as_deref(),
        );
        if let Ok(v) = serde_json::to_value(claims) {
            payload["receipt"] = v;
        }
    }
    if let Some(e) = failure {
        payload["reason"] = e.code().into();
        // A content check's verdict names what it found (fixed text, never file contents).
        if let Error::ContentRejected(why) = e {
            payload["detail"] = (*why).into();
        }
    }
    OutboxEvent {
        id: crate::id::random_hex(16),
        tenant_id: link.tenant_id.clone(),
        event: event.to_string(),
        payload: payload.to_string(),
        created_at_ms: now,
        attempts: 0,
    }
}
