//! The last stage before a commit, shared by every ingest path: the staged object (published at
//! a path nothing points to yet) is scanned for malware, then rewritten when its content check
//! asked for it (a PDF disarmed, an image's metadata removed), and the verdict that goes on its
//! record is written down. The stored size and SHA-256 are those of the stored bytes.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::config::BucketConfig;
use crate::error::{Error, Result};
use crate::scan::{Passed, Rewrite};
use crate::state::AppState;

/// What the content checks concluded about an accepted object (stored as JSON on its record).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// `clean` (stored as uploaded), `disarmed` or `stripped`.
    pub result: &'static str,
    /// The checks that ran and passed: `type`, `pdf`, `image`, `text`, `office`, `malware`.
    pub checks: Vec<&'static str>,
    /// What was changed in the stored bytes (`disarmed JavaScript`, `removed gps`, ...).
    pub changes: Vec<String>,
}

impl Verdict {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The bytes as they are stored, when they differ from what was uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// The outcome of [`finalize`].
#[derive(Debug, Clone)]
pub struct Finalized {
    /// `Some` when the stored bytes were rewritten.
    pub stored: Option<Stored>,
    pub verdict: Verdict,
}

/// Scans and, if asked, rewrites the staged object at `path` (see the module docs). `typed`:
/// whether its type was checked (not an opaque bucket). On error the caller removes the bytes.
pub async fn finalize(
    state: &AppState,
    bucket: &BucketConfig,
    path: &object_store::path::Path,
    passed: Option<&Passed>,
    typed: bool,
) -> Result<Finalized> {
    let mut checks = Vec::new();
    if typed {
        checks.push("type");
    }
    if let Some(p) = passed {
        checks.push(p.check);
    }
    // Malware is looked for in the bytes as uploaded, before anything changes them.
    if super::malware::check(state, bucket, path).await? {
        checks.push("malware");
    }
    let clean = |checks| {
        state.metrics.content_verdict("clean");
        Ok(Finalized {
            stored: None,
            verdict: Verdict {
                result: "clean",
                checks,
                changes: Vec::new(),
            },
        })
    };
    let Some(rewrite) = passed.and_then(|p| p.rewrite.as_ref()) else {
        return clean(checks);
    };
    let _permit = state
        .rewrites
        .acquire()
        .await
        .map_err(|_| Error::unavailable("shutting down"))?;
    let data = read_all(state, path, bucket.max_object_bytes).await?;
    let (bytes, result, changes) = match rewrite {
        Rewrite::Disarm { spans, names } => {
            let mut v = data.to_vec();
            crate::scan::pdf::disarm(&mut v, spans);
            let changes = names.iter().map(|n| format!("disarmed {n}")).collect();
            (Bytes::from(v), "disarmed", changes)
        }
        Rewrite::StripImage { content_type } => match crate::scan::strip::strip(content_type, data)
        {
            Ok(Some(s)) => {
                let changes = s.removed.iter().map(|r| format!("removed {r}")).collect();
                (s.bytes, "stripped", changes)
            }
            Ok(None) => return clean(checks),
            Err(_) => return Err(Error::ContentRejected("image container corrupt")),
        },
    };
    let stored = Stored {
        size: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
    };
    // Nothing points to the path yet: the rewritten bytes replace the staged ones whole.
    let mut staging = state.storage.begin(path).await?;
    if let Err(e) = staging.write(bytes).await {
        staging.abort().await;
        return Err(e.into());
    }
    staging.commit().await?;
    state.metrics.content_verdict(result);
    Ok(Finalized {
        stored: Some(stored),
        verdict: Verdict {
            result,
            checks,
            changes,
        },
    })
}

/// Who and what a refused upload was (for the note beside quarantined bytes).
pub struct Refused<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub owner: &'a str,
    pub id: &'a str,
}

/// Whether the bytes of an upload refused with `e` are kept for the operator: a content
/// check's refusal, in a bucket that quarantines.
pub fn quarantines(state: &AppState, bucket: &str, e: &Error) -> bool {
    matches!(e, Error::ContentRejected(_)) && state.bucket(bucket).is_ok_and(|b| b.quarantine)
}

/// The bytes of a refused upload, published at `path`: moved to the bucket's quarantine area
/// with a note when the refusal is a content check's and the bucket keeps them, removed
/// otherwise. Failures are logged (the sweeper has no pointer to them either way).
pub async fn dispose(
    state: &AppState,
    r: &Refused<'_>,
    path: &object_store::path::Path,
    e: &Error,
) {
    if quarantines(state, r.bucket, e) {
        let to = crate::storage::Storage::quarantine_path_for(r.bucket, r.id);
        let note = serde_json::json!({
            "reason": match e { Error::ContentRejected(why) => *why, _ => "" },
            "bucket": r.bucket,
            "key": r.key,
            "owner": r.owner,
            "refused_at": crate::clock::iso8601(crate::clock::from_ms(crate::clock::now_ms())),
        });
        let note_path = object_store::path::Path::from(format!("{to}.json"));
        let moved = state.storage.rename(path, &to).await;
        let noted = state
            .storage
            .put_small(&note_path, Bytes::from(note.to_string()))
            .await;
        match (moved, noted) {
            (Ok(()), Ok(())) => {
                tracing::warn!(
                    object = r.id,
                    bucket = r.bucket,
                    "refused upload quarantined"
                );
                return;
            }
            (m, n) => {
                tracing::warn!(
                    moved = m.is_ok(),
                    noted = n.is_ok(),
                    "quarantine failed; removing"
                );
            }
        }
    }
    if let Err(err) = state.storage.delete(path).await {
        tracing::warn!(error = %err, "removing refused bytes failed");
    }
}

/// Counts a refusal by a content check (malware included) under its reason.
pub fn count_refusal(state: &AppState, e: &Error) {
    if let Error::ContentRejected(reason) = e {
        state.metrics.content_verdict(reason);
    }
}

/// The stored object at `path`, whole (at most `max` bytes: the bucket's limit it was held to).
pub(super) async fn read_all(
    state: &AppState,
    path: &object_store::path::Path,
    max: u64,
) -> Result<Bytes> {
    let mut body = state.storage.get(path, None).await?.stream;
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if (out.len() + chunk.len()) as u64 > max {
            return Err(Error::internal("staged object larger than its limit"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}
