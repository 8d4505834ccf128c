//! Legacy AWS Signature Version 2 for S3: `Authorization: AWS AKID:signature` headers and
//! `AWSAccessKeyId`/`Signature`/`Expires` presigned queries. Only used when
//! [`AuthPolicy::allow_sigv2`](crate::auth::AuthPolicy::allow_sigv2) is on.
//!
//! String to sign:
//!
//! ```text
//! METHOD\n
//! Content-MD5\n
//! Content-Type\n
//! Date (header auth; empty when x-amz-date is present) or Expires (query auth)\n
//! x-amz-name:value\n ...   (lower-case, sorted, repeated values joined with ",")
//! /raw/path?subresource&sub=value   (raw path as received; signed sub-resources, sorted)
//! ```
//!
//! The signature is `base64(HMAC-SHA1(secret, string to sign))`. The canonical resource uses the
//! path as received, so virtual-hosted-style requests (bucket in `Host`) are not supported: SigV2
//! clients sign `/bucket/key` even then, and this module does not know the bucket.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::encoding::{self, QueryPair, single_header, trim_ows};
use super::verify::{ProvidedSignature, Verified, time};
use super::{AuthError, AuthPolicy, PayloadMode, RequestHead, Scheme, SecretKey};

/// The `Authorization` scheme token of SigV2: `AWS`.
pub const ALGORITHM: &str = "AWS";

/// Query parameters that are S3 sub-resources and so part of the SigV2 canonical resource
/// (botocore's `HmacV1Auth.QSAOfInterest`, which contains the AWS documentation's list).
/// Everything else in the query is not signed by SigV2.
pub const SIGNED_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Presigned SigV2 parameter names, in the order they are checked.
const QUERY_PARAMS: [&str; 3] = ["AWSAccessKeyId", "Signature", "Expires"];

/// A SigV2 request that passed every key-independent check.
#[derive(Debug)]
pub(crate) struct ParsedV2 {
    pub(crate) scheme: Scheme,
    pub(crate) access_key_id: String,
    signature: ProvidedSignature,
    /// The fourth line of the string to sign.
    date_line: Vec<u8>,
    expires_at: Option<SystemTime>,
}

/// Parses a SigV2 date header value: an HTTP date (see [`crate::clock::parse_http_date`]: the
/// `+0000` form AWS documents, any weekday), or, for `x-amz-date`, also the ISO 8601 basic form.
fn parse_v2_date(value: &str) -> Option<SystemTime> {
    crate::clock::parse_http_date(value).or_else(|| super::sigv4::parse_amz_date(value))
}

/// Parses `Authorization: AWS <rest>` with `rest` = `AKID:signature`, then the date and skew.
pub(crate) fn parse_header_auth(
    head: &RequestHead<'_>,
    rest: &str,
    policy: &AuthPolicy,
    now: SystemTime,
) -> Result<ParsedV2, AuthError> {
    let (akid, signature) = rest
        .split_once(':')
        .ok_or(AuthError::MalformedAuthorization)?;
    if akid.is_empty() || !akid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::MalformedCredential);
    }
    if signature.is_empty() || signature.contains(' ') {
        return Err(AuthError::MalformedAuthorization);
    }
    let (request_time, date_line) = if let Some(v) = single_header(head.headers, "x-amz-date")? {
        let s = v.to_str().map_err(|_| AuthError::InvalidDate)?;
        (parse_v2_date(s).ok_or(AuthError::InvalidDate)?, Vec::new())
    } else if let Some(v) = single_header(head.headers, "date")? {
        let s = v.to_str().map_err(|_| AuthError::InvalidDate)?;
        let t = crate::clock::parse_http_date(s).ok_or(AuthError::InvalidDate)?;
        (t, trim_ows(v.as_bytes()).to_vec())
    } else {
        return Err(AuthError::InvalidDate);
    };
    if time::differs_by_more_than(now, request_time, policy.max_skew) {
        return Err(AuthError::TimeTooSkewed);
    }
    Ok(ParsedV2 {
        scheme: Scheme::HeaderV2,
        access_key_id: akid.to_owned(),
        signature: ProvidedSignature::new(signature.as_bytes().to_vec()),
        date_line,
        expires_at: None,
    })
}

/// Parses a SigV2 presigned query: each parameter exactly once, access key, `Expires` as plain
/// digits (unix seconds), not expired, and not further ahead than the policy's maximum.
pub(crate) fn parse_query_auth(
    pairs: &[QueryPair<'_>],
    policy: &AuthPolicy,
    now: SystemTime,
) -> Result<ParsedV2, AuthError> {
    for name in QUERY_PARAMS {
        if pairs.iter().filter(|p| *p.name == *name.as_bytes()).count() > 1 {
            return Err(AuthError::DuplicateParam(name));
        }
    }
    let get = |name: &'static str| {
        pairs
            .iter()
            .find(|p| *p.name == *name.as_bytes())
            .map(|p| p.value.as_ref())
            .ok_or(AuthError::MissingQueryParam(name))
    };
    let akid = get("AWSAccessKeyId")?;
    let signature = get("Signature")?;
    let expires = get("Expires")?;

    let akid = std::str::from_utf8(akid)
        .ok()
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(AuthError::MalformedCredential)?;
    if expires.is_empty() || expires.len() > 20 || !expires.iter().all(u8::is_ascii_digit) {
        return Err(AuthError::ExpiresInvalid);
    }
    let expires_at = expires
        .iter()
        .try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or(AuthError::ExpiresInvalid)?;
    if now > expires_at {
        return Err(AuthError::Expired);
    }
    if time::later_by_more_than(expires_at, now, policy.effective_max_expiry()) {
        return Err(AuthError::ExpiresInvalid);
    }
    Ok(ParsedV2 {
        scheme: Scheme::QueryV2,
        access_key_id: akid.to_owned(),
        signature: ProvidedSignature::new(signature.to_vec()),
        date_line: expires.to_vec(),
        expires_at: Some(expires_at),
    })
}

/// The SigV2 canonical resource: the raw path as received (`/` if empty) plus the signed
/// sub-resources, sorted by name (stable), `name` or `name=decoded value`.
pub fn canonical_resource(raw_path: &str, raw_query: Option<&str>) -> Result<Vec<u8>, AuthError> {
    let mut out = if raw_path.is_empty() {
        b"/".to_vec()
    } else {
        raw_path.as_bytes().to_vec()
    };
    // A bucket-level path-style request (`/bucket`) signs the resource `/bucket/`, as S3
    // documents and botocore's HmacV1 signer does.
    if out.len() > 1 && !out[1..].contains(&b'/') {
        out.push(b'/');
    }
    let pairs = encoding::parse_query(raw_query)?;
    let mut subresources: Vec<&QueryPair<'_>> = pairs
        .iter()
        .filter(|p| SIGNED_SUBRESOURCES.iter().any(|s| *p.name == *s.as_bytes()))
        .collect();
    subresources.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, p) in subresources.iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        out.extend_from_slice(&p.name);
        if p.has_eq {
            out.push(b'=');
            out.extend_from_slice(&p.value);
        }
    }
    Ok(out)
}

/// The SigV2 string to sign for `head`, with `date_line` as the fourth line.
pub fn string_to_sign(head: &RequestHead<'_>, date_line: &[u8]) -> Result<Vec<u8>, AuthError> {
    let header = |name: &'static str| -> Result<&[u8], AuthError> {
        Ok(single_header(head.headers, name)?.map_or(&b""[..], |v| trim_ows(v.as_bytes())))
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(header("content-md5")?);
    out.push(b'\n');
    out.extend_from_slice(header("content-type")?);
    out.push(b'\n');
    out.extend_from_slice(date_line);
    out.push(b'\n');
    let mut amz: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (name, value) in head.headers {
        if name.as_str().starts_with("x-amz-") {
            let joined = amz.entry(name.as_str()).or_default();
            if !joined.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(trim_ows(value.as_bytes()));
        }
    }
    for (name, value) in amz {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&value);
        out.push(b'\n');
    }
    out.extend_from_slice(&canonical_resource(head.raw_path, head.raw_query)?);
    Ok(out)
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn sign(secret: &SecretKey, string_to_sign: &[u8]) -> String {
    let mut mac = match <Hmac<Sha1> as Mac>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        // HMAC is defined for keys of any length; hmac 0.12 never returns InvalidLength here.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(string_to_sign);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Rebuilds the string to sign from `head` and compares signatures in constant time.
pub(crate) fn verify_parsed(
    parsed: ParsedV2,
    head: &RequestHead<'_>,
    secret: &SecretKey,
) -> Result<Verified, AuthError> {
    let sts = string_to_sign(head, &parsed.date_line)?;
    if !parsed.signature.matches(sign(secret, &sts).as_bytes()) {
        return Err(AuthError::SignatureMismatch);
    }
    Ok(Verified::new(
        parsed.access_key_id,
        parsed.scheme,
        PayloadMode::Unsigned,
        parsed.expires_at,
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresource_list_has_no_duplicates() {
        // Keeps the list easy to audit.
        let mut sorted = SIGNED_SUBRESOURCES.to_vec();
        sorted.sort_unstable_by_key(|s| s.to_ascii_lowercase());
        sorted.dedup();
        assert_eq!(sorted.len(), SIGNED_SUBRESOURCES.len());
    }

    #[test]
    fn canonical_resource_keeps_signed_subresources_only() {
        let r = canonical_resource(
            "/examplebucket/key",
            Some("uploadId=abc%2Fdef&max-parts=5&partNumber=2&acl&x-id=Put&tagging="),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "/examplebucket/key?acl&partNumber=2&tagging=&uploadId=abc/def"
        );
        assert_eq!(canonical_resource("", None).unwrap(), b"/");
        assert_eq!(
            canonical_resource("/uploads", Some("prefix=a")).unwrap(),
            b"/uploads/"
        );
        assert_eq!(
            canonical_resource("/b/my%20key", Some("foo=1")).unwrap(),
            b"/b/my%20key"
        );
    }

    #[test]
    fn v2_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        assert_eq!(parse_v2_date("Fri, 24 May 2013 00:00:00 GMT"), Some(t));
        assert_eq!(parse_v2_date("Fri, 24 May 2013 00:00:00 +0000"), Some(t));
        assert_eq!(parse_v2_date("20130524T000000Z"), Some(t));
        assert_eq!(parse_v2_date("yesterday"), None);
    }
}
