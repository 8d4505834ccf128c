//! Indexing the text of committed documents for `GET /v1/files?q=` ([`crate::scan::extract`]
//! does the reading).
//!
//! Runs after a file's version committed (so never for bytes a check refused), off the request:
//! the upload is answered first. It reads the stored object back (one GET, at most the bucket's
//! object size in memory), extracts on the blocking pool within `search.timeout_ms`, at most
//! `search.max_concurrent` at once, and replaces the file's text if that version is still the
//! file's current one. Any failure leaves the file unsearchable by content, nothing else.

use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;

/// The version just committed: whose text to index.
pub struct Version {
    pub file_id: String,
    pub bucket: String,
    /// The version's key (the file's `current_key` while it is current).
    pub key: String,
    pub path: object_store::path::Path,
    pub content_type: String,
}

/// Starts indexing `v` in the background (tracked, so a graceful shutdown waits for it).
pub fn index_later(state: &Arc<AppState>, v: Version) {
    if !state.config.search.enabled || !crate::scan::extract::extractable(&v.content_type) {
        return;
    }
    let st = Arc::clone(state);
    state.cleanup.spawn(async move {
        if let Err(e) = index(&st, &v).await {
            tracing::warn!(file_id = %v.file_id, error = %e, "text not indexed");
        }
    });
}

/// Extracts and stores the text of `v`; `Ok` also when there is no text to store.
pub async fn index(state: &AppState, v: &Version) -> crate::error::Result<()> {
    let cfg = &state.config.search;
    let permit = Arc::clone(&state.extractions)
        .acquire_owned()
        .await
        .map_err(crate::error::Error::internal)?;
    let max = state.bucket(&v.bucket)?.max_object_bytes;
    let data = super::verdict::read_all(state, &v.path, max).await?;
    let (ct, max) = (v.content_type.clone(), cfg.max_text_chars);
    let started = std::time::Instant::now();
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::scan::extract::extract(&ct, &data, max)
    });
    let text = match tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), work).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => return Err(crate::error::Error::internal(e)),
        Err(_) => {
            tracing::warn!(file_id = %v.file_id, "text extraction timed out; not indexed");
            return Ok(());
        }
    };
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        tracing::debug!(file_id = %v.file_id, "no text found");
        return Ok(());
    };
    tracing::debug!(
        file_id = %v.file_id,
        chars = text.chars().count(),
        ms = started.elapsed().as_millis() as u64,
        "text extracted"
    );
    // A newer version committed meanwhile indexes its own text.
    let current = state.control.file(&v.file_id).await?;
    if current.and_then(|f| f.current_key).as_deref() != Some(v.key.as_str()) {
        return Ok(());
    }
    state.control.set_file_text(&v.file_id, &text).await?;
    Ok(())
}
