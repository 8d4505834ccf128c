//! Signed upload receipts: what upgate states about a committed upload — which file and
//! version, where, how many bytes, their SHA-256 and type, when, for whom, and the content
//! checks' verdict — signed with upgate's current signing key (see `auth::signing`), so anyone
//! holding the JWKS can check it offline. Receipts exist when accounts (and so signing keys)
//! are enabled.

use crate::auth::signing::{ReceiptClaims, SignedReceipt};
use crate::metadata::control::UploadLink;
use crate::state::AppState;

/// The verdict a receipt states when the record holds none (committed before verdicts were
/// recorded): every configured check passed (nothing commits otherwise).
pub const DEFAULT_SCAN: &str = "checked";

/// The claims of the receipt of `link`'s committed version. `scan` is the record's verdict
/// (JSON, see `upload::verdict`); the receipt states its result: `clean`, `disarmed` or
/// `stripped`.
pub fn claims(
    link: &UploadLink,
    size: u64,
    sha256: &str,
    content_type: &str,
    committed_at_ms: i64,
    scan: Option<&str>,
) -> ReceiptClaims {
    let scan = scan
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v["result"].as_str().map(str::to_string))
        .unwrap_or_else(|| DEFAULT_SCAN.to_string());
    ReceiptClaims {
        committed_at: crate::clock::iso8601(crate::clock::from_ms(committed_at_ms)),
        content_type: content_type.to_string(),
        file_id: link.file_id.clone(),
        key: link.key.clone(),
        scan,
        sha256: sha256.to_string(),
        size,
        uploader: link.owner.clone(),
        version: link.key.rsplit('/').next().unwrap_or("").to_string(),
    }
}

/// The signed receipt, when accounts are enabled; `None` otherwise (or if signing fails,
/// which is logged: the upload itself has succeeded).
pub fn sign(state: &AppState, claims: &ReceiptClaims) -> Option<SignedReceipt> {
    let a = state.credentials.accounts.as_ref()?;
    match a.signing.sign_receipt(claims) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "cannot sign a receipt");
            None
        }
    }
}
