//! Admission: whether a request may start work at all — the rate limits of its route class
//! (charged to the principal, the client address and the global budget) and the principal's
//! concurrent-upload permits. Refusals are counted by class and dimension and become SlowDown
//! (503 on S3 routes, 429 on `/v1`) with Retry-After.

use std::net::IpAddr;

use crate::auth::principal::{self, Principal, Via};
use crate::error::{Error, Result};
use crate::http::ConnInfo;
use crate::ratelimit::{RouteClass, UploadPermit};
use crate::state::AppState;

/// The real client address: the peer, or the `X-Forwarded-For` entry a trusted proxy added.
pub fn client_ip(state: &AppState, headers: &http::HeaderMap, conn: ConnInfo) -> IpAddr {
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = (!xff.is_empty()).then(|| xff.join(","));
    state.limiter.client_ip(conn.peer.ip(), joined.as_deref())
}

/// Asks the rate limiter; a refusal becomes SlowDown with its Retry-After, and is counted.
pub async fn rate_limit(
    state: &AppState,
    class: RouteClass,
    principal: Option<&str>,
    ip: IpAddr,
) -> Result<()> {
    state
        .limiter
        .check(class, principal, ip)
        .await
        .map_err(|l| {
            state.metrics.rate_limited(l.class, l.dimension);
            Error::from(l)
        })
}

/// Holds one of the principal's concurrent-upload slots for the duration of an upload.
pub async fn upload_permit(state: &AppState, principal: &str) -> Result<UploadPermit> {
    state.limiter.upload_permit(principal).await.map_err(|l| {
        state.metrics.rate_limited(l.class, l.dimension);
        Error::from(l)
    })
}

/// The key a control-plane principal is counted (and its resumable uploads recorded) under:
/// `token:<id>` for an upload token, `tenant:subject` otherwise.
pub fn principal_key(who: &Principal) -> String {
    match &who.via {
        Via::Token(t) => format!("token:{}", t.id),
        _ => format!("{}:{}", who.tenant_id, who.subject),
    }
}

/// Authenticates a control-plane bearer (API key, JWT, upload token, admin token) and charges
/// the rate limit of `class` (`token_class` instead for upload tokens, when given): to the
/// address and the global budget when the credential fails — never to the principal it
/// claims, which would let anyone drain a victim's limit — and to the principal as well when it
/// holds.
pub async fn bearer(
    state: &AppState,
    headers: &http::HeaderMap,
    conn: ConnInfo,
    class: RouteClass,
    token_class: Option<RouteClass>,
) -> Result<Principal> {
    let credential = principal::bearer_credential(headers);
    admit_credential(state, credential, headers, conn, class, token_class).await
}

/// [`bearer`] for a credential taken from elsewhere than `Authorization` (a token-scoped path).
pub async fn admit_credential(
    state: &AppState,
    credential: Result<&str>,
    headers: &http::HeaderMap,
    conn: ConnInfo,
    class: RouteClass,
    token_class: Option<RouteClass>,
) -> Result<Principal> {
    let ip = client_ip(state, headers, conn);
    let authenticated = match credential {
        Ok(c) => principal::authenticate_credential(&state.credentials, c).await,
        Err(e) => Err(e),
    };
    let who = match authenticated {
        Ok(w) => w,
        Err(e) => {
            rate_limit(state, class, None, ip).await?;
            return Err(e);
        }
    };
    let class = match (&who.via, token_class) {
        (Via::Token(_), Some(c)) => c,
        _ => class,
    };
    rate_limit(state, class, Some(&principal_key(&who)), ip).await?;
    Ok(who)
}

/// Checks what an upload token still allows (its types, uploads and bytes), before anything is
/// stored; `length` is the upload's size when known. Other principals are not limited here.
pub fn token_allows(
    who: &Principal,
    content_type: Option<&str>,
    length: Option<u64>,
) -> Result<()> {
    let Via::Token(t) = &who.via else {
        return Ok(());
    };
    if let Some(ct) = content_type
        && !t.allowed_types.is_empty()
        && !t.allowed_types.iter().any(|a| a == ct)
    {
        return Err(Error::ContentTypeNotAllowed);
    }
    if t.uploads_used >= t.max_uploads {
        return Err(Error::AccessDenied("The upload token is used up."));
    }
    let len = i64::try_from(length.unwrap_or(0)).unwrap_or(i64::MAX);
    if t.bytes_used.saturating_add(len) > t.max_bytes || t.max_file_bytes.is_some_and(|m| len > m) {
        return Err(Error::EntityTooLarge);
    }
    Ok(())
}

/// The most bytes one upload by `who` may have, given the bucket's limit: an upload token
/// lowers it to its per-file limit and to the bytes it has left.
pub fn file_limit(who: &Principal, bucket_max: u64) -> u64 {
    let Via::Token(t) = &who.via else {
        return bucket_max;
    };
    let left = u64::try_from(t.max_bytes.saturating_sub(t.bytes_used)).unwrap_or(0);
    let per_file = t
        .max_file_bytes
        .and_then(|m| u64::try_from(m).ok())
        .unwrap_or(u64::MAX);
    bucket_max.min(left).min(per_file)
}
