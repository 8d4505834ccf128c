//! Browser POST-policy uploads (S3 POST Object): `POST /{bucket}` with `multipart/form-data`.
//!
//! Order of work, fixed:
//! 1. Read the form fields that precede `file`, under hard caps (count, size of each, total) so
//!    a hostile form cannot exhaust memory. Repeated fields are refused, never "first wins".
//! 2. Verify the policy signature (SigV4 or SigV2 form fields) with the key holder's secret.
//! 3. Decode the policy: `expiration` (not past, not further than the presign maximum) and
//!    `conditions` (`eq`, `starts-with`, `content-length-range`, exact-match objects). Every
//!    condition must hold and every form field must be covered by one (except the signature
//!    fields, `policy`, `file` and `x-ignore-*`).
//! 4. Stream the `file` part through the same ingest pipe as a PUT (limit = the smaller of the
//!    bucket limit and the policy's `content-length-range` maximum, enforced on the bytes that
//!    arrive; minimum checked at the end), and commit only if everything passed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::Value;

use super::xml_response;
use crate::auth::post::{FormFields, parse_post};
use crate::error::{Error, Result};
use crate::http::{Body, header_str, incoming_frames, status_response};
use crate::ingest::{self, Expectations, sniff};
use crate::state::AppState;
use crate::upload::put::{Committed, Target, ingest_and_commit};

/// Most form fields before `file`.
pub const MAX_FIELDS: usize = 64;
/// Largest single form field value (the policy document is the big one; S3 caps it at 20 KiB).
pub const MAX_FIELD_BYTES: u64 = 20 * 1024;
/// Largest total of all fields before `file`.
pub const MAX_FIELDS_TOTAL: usize = 64 * 1024;

/// Fields that need no policy condition.
fn exempt(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid" | "file"
    ) || n.starts_with("x-ignore-")
}

/// Conditions that may not use `starts-with` (MinIO's rule: they identify the signer).
const NO_PREFIX: &[&str] = &[
    "bucket",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-algorithm",
];

/// Parses `2026-11-30T12:00:00.000Z` (fraction optional) into a time.
pub(crate) fn parse_expiration(s: &str) -> Option<SystemTime> {
    crate::clock::parse_rfc3339(s)
}

/// What the policy allows for the upload, once every condition held.
struct Allowed {
    length: (u64, u64),
}

/// Checks the decoded policy against the form. `fields` already carries `bucket` and the
/// substituted `key`.
fn check_policy(
    doc: &Value,
    fields: &[(String, String)],
    now: SystemTime,
    max_expiry: Duration,
) -> Result<Allowed> {
    let bad = Error::InvalidPolicyDocument;
    let obj = doc
        .as_object()
        .ok_or(bad("The policy must be a JSON object."))?;
    for k in obj.keys() {
        if k != "expiration" && k != "conditions" {
            return Err(bad("The policy has an unknown top-level field."));
        }
    }
    let expiration = obj
        .get("expiration")
        .and_then(Value::as_str)
        .ok_or(bad("The policy must contain an expiration."))?;
    let expires =
        parse_expiration(expiration).ok_or(bad("The policy expiration is not a valid date."))?;
    if now > expires {
        return Err(Error::PolicyConditionFailed(
            "Invalid according to Policy: Policy expired.",
        ));
    }
    if expires.duration_since(now).unwrap_or_default() > max_expiry {
        return Err(bad(
            "The policy expiration is further away than the maximum presign lifetime.",
        ));
    }
    let conditions = obj
        .get("conditions")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or(bad("The policy must contain a non-empty conditions list."))?;
    let failed =
        Error::PolicyConditionFailed("Invalid according to Policy: Policy Condition failed.");
    let mut covered: Vec<String> = Vec::new();
    let mut length = (0, u64::MAX);
    for c in conditions {
        match c {
            Value::Object(m) if m.is_empty() => {
                return Err(bad("A condition is empty."));
            }
            Value::Object(m) => {
                for (k, v) in m {
                    let want = v
                        .as_str()
                        .ok_or(bad("A condition value must be a string."))?;
                    if fields.field(k) != Some(want) {
                        return Err(failed);
                    }
                    covered.push(k.to_ascii_lowercase());
                }
            }
            Value::Array(a) => {
                let op = a
                    .first()
                    .and_then(Value::as_str)
                    .ok_or(bad("A condition is malformed."))?;
                match op.to_ascii_lowercase().as_str() {
                    "content-length-range" => {
                        let n = |i: usize| a.get(i).and_then(Value::as_u64);
                        let (Some(min), Some(max), 3) = (n(1), n(2), a.len()) else {
                            return Err(bad(
                                "content-length-range needs two non-negative integers.",
                            ));
                        };
                        if min > max {
                            return Err(bad("content-length-range minimum exceeds its maximum."));
                        }
                        length = (length.0.max(min), length.1.min(max));
                    }
                    op @ ("eq" | "starts-with") => {
                        let (Some(name), Some(value), 3) = (
                            a.get(1).and_then(Value::as_str),
                            a.get(2).and_then(Value::as_str),
                            a.len(),
                        ) else {
                            return Err(bad("A condition is malformed."));
                        };
                        let name = name
                            .strip_prefix('$')
                            .ok_or(bad("A condition field must start with $."))?;
                        let lname = name.to_ascii_lowercase();
                        let got = fields.field(name);
                        let ok = if op == "eq" {
                            got == Some(value)
                        } else {
                            if NO_PREFIX.contains(&lname.as_str()) {
                                return Err(bad("starts-with is not allowed on this field."));
                            }
                            got.is_some_and(|g| g.starts_with(value))
                        };
                        if !ok {
                            return Err(failed);
                        }
                        covered.push(lname);
                    }
                    _ => return Err(bad("Unknown condition operator.")),
                }
            }
            _ => return Err(bad("A condition is malformed.")),
        }
    }
    if !covered.iter().any(|c| c == "bucket") {
        return Err(failed);
    }
    for (name, _) in fields {
        if !exempt(name) && !covered.contains(&name.to_ascii_lowercase()) {
            return Err(Error::PolicyConditionFailed(
                "Invalid according to Policy: Extra input fields.",
            ));
        }
    }
    Ok(Allowed { length })
}

/// The file name a browser sent, reduced to its last path segment without control characters
/// (it only ever fills `${filename}`; it is never logged).
fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    base.chars().filter(|c| !c.is_control()).collect()
}

fn multer_error(e: multer::Error) -> Error {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Error::EntityTooLarge
        }
        _ => Error::MalformedPostRequest(
            "The body of your POST request is not well-formed multipart/form-data.",
        ),
    }
}

/// POST Object.
pub async fn post_object(
    state: Arc<AppState>,
    parts: &http::request::Parts,
    bucket: &str,
    body: Incoming,
) -> Result<Response<Body>> {
    let started = std::time::Instant::now();
    let bcfg = state.bucket(bucket)?;
    let ct = header_str(&parts.headers, "content-type").unwrap_or("");
    let boundary = multer::parse_boundary(ct).map_err(|_| {
        Error::MalformedPostRequest(
            "Bucket POST must be of the enclosure-type multipart/form-data.",
        )
    })?;
    let limits = multer::SizeLimit::new()
        .per_field(MAX_FIELD_BYTES)
        .for_field("file", bcfg.max_object_bytes.saturating_add(1))
        .whole_stream(
            bcfg.max_object_bytes
                .saturating_add(MAX_FIELDS_TOTAL as u64)
                .saturating_add(64 * 1024),
        );
    let mut form = multer::Multipart::with_constraints(
        incoming_frames(body),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );

    // 1. Fields before the file.
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut total = 0usize;
    let file = loop {
        let Some(field) = form.next_field().await.map_err(multer_error)? else {
            return Err(Error::MalformedPostRequest(
                "POST requires exactly one file upload per request.",
            ));
        };
        let name = field
            .name()
            .ok_or(Error::MalformedPostRequest("A form field has no name."))?
            .to_string();
        if name.eq_ignore_ascii_case("file") {
            break field;
        }
        if fields.len() >= MAX_FIELDS {
            return Err(Error::MalformedPostRequest("Too many form fields."));
        }
        if fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            return Err(Error::MalformedPostRequest("A form field is repeated."));
        }
        let value = field.text().await.map_err(|e| match e {
            multer::Error::FieldSizeExceeded { .. } => {
                Error::MalformedPostRequest("A form field is too large.")
            }
            other => multer_error(other),
        })?;
        total += name.len() + value.len();
        if total > MAX_FIELDS_TOTAL {
            return Err(Error::MalformedPostRequest(
                "The form fields are too large.",
            ));
        }
        fields.push((name, value));
    };

    // 2. The signature over the policy.
    let parsed =
        parse_post(&fields, &state.auth_policy, SystemTime::now()).map_err(super::auth_error)?;
    if crate::auth::links::is_link_key(parsed.access_key_id()) {
        return Err(Error::AccessDenied("Link keys sign nothing but links."));
    }
    let (secret, scope) = state.credentials.lookup_key(parsed.access_key_id()).await?;
    let verified = parsed.verify(&secret).map_err(super::auth_error)?;

    // 3. The policy.
    use base64::Engine;
    let doc: Value = base64::engine::general_purpose::STANDARD
        .decode(verified.policy_b64())
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or(Error::InvalidPolicyDocument(
            "The policy is not base64-encoded JSON.",
        ))?;
    let raw_key = fields
        .field("key")
        .ok_or(Error::MalformedPostRequest(
            "Bucket POST must contain a field named 'key'.",
        ))?
        .to_string();
    let key = if raw_key.contains("${filename}") {
        raw_key.replace(
            "${filename}",
            &clean_filename(file.file_name().unwrap_or("")),
        )
    } else {
        raw_key
    };
    crate::upload::validate_key(&key)?;
    super::check_scope(scope.as_deref(), &key)?;
    super::admit_bucket(&state, bucket, scope.as_deref()).await?;
    let mut eval: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("bucket") && !k.eq_ignore_ascii_case("key"))
        .cloned()
        .collect();
    eval.push(("bucket".into(), bucket.to_string()));
    eval.push(("key".into(), key.clone()));
    if fields.field("bucket").is_some_and(|b| b != bucket) {
        return Err(Error::PolicyConditionFailed(
            "Invalid according to Policy: Policy Condition failed.",
        ));
    }
    let allowed = check_policy(
        &doc,
        &eval,
        SystemTime::now(),
        state.config.s3.max_presign_expiry(),
    )?;

    // 4. The file, through the pipe.
    let headers = super::object_headers::from_form(&fields)?;
    let tags = match fields.field("tagging") {
        Some(xml) => super::tagging::parse_xml(xml.as_bytes())?,
        None => Default::default(),
    };
    let opaque = bcfg.types == crate::config::TypesMode::Any;
    let stored_type = opaque.then(|| crate::upload::opaque_type(fields.field("content-type")));
    let declared_type = match fields.field("content-type") {
        _ if opaque => None,
        None => None,
        Some(ct) if sniff::is_generic(ct) => None,
        Some(ct) => Some(sniff::normalize(ct).ok_or(Error::ContentTypeNotAllowed)?),
    };
    let max_bytes = bcfg.max_object_bytes.min(allowed.length.1);
    let exp = Expectations {
        max_bytes,
        min_bytes: allowed.length.0.max(bcfg.min_object_bytes),
        ..crate::upload::expectations(bcfg, declared_type)
    };
    let pipe = ingest::Pipe::new(exp)?;
    let _permit = crate::upload::admit::upload_permit(&state, verified.access_key_id()).await?;
    let frames = Box::pin(file.map(|r| r.map_err(multer_error)));
    let Committed { etag, .. } = ingest_and_commit(
        &state,
        Target {
            bucket,
            key: &key,
            owner: verified.access_key_id(),
            link: None,
            tenant: crate::upload::quota::tenant_of_scope(scope.as_deref()),
            stored_type,
            headers,
            tags,
            condition: None,
        },
        frames,
        None,
        pipe,
        max_bytes,
        started,
    )
    .await?;

    // Response as the form asked.
    if let Some(url) = fields
        .field("success_action_redirect")
        .or_else(|| fields.field("redirect"))
        && (url.starts_with("https://") || url.starts_with("http://"))
    {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let location = format!(
            "{url}{sep}bucket={}&key={}&etag={}",
            enc(bucket),
            enc(&key),
            enc(&format!("\"{etag}\""))
        );
        let mut resp = status_response(StatusCode::SEE_OTHER);
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }
    let mut resp = match fields.field("success_action_status") {
        Some("201") => {
            let location = format!("/{bucket}/{key}");
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location>\
                 <Bucket>{}</Bucket><Key>{}</Key><ETag>&quot;{}&quot;</ETag></PostResponse>",
                super::xml::escape(&location),
                super::xml::escape(bucket),
                super::xml::escape(&key),
                etag
            );
            xml_response(StatusCode::CREATED, body)
        }
        Some("200") => status_response(StatusCode::OK),
        _ => status_response(StatusCode::NO_CONTENT),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn future() -> String {
        "2099-01-01T00:00:00.000Z".into()
    }

    #[test]
    fn expiration_dates_parse() {
        let t = parse_expiration("2013-08-06T12:00:00.000Z").expect("date");
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after")
                .as_secs(),
            1_375_790_400
        );
        assert!(parse_expiration("2013-08-06T12:00:00").is_none());
        assert!(parse_expiration("2013-13-06T12:00:00Z").is_none());
    }

    #[test]
    fn conditions_are_enforced_and_every_field_must_be_covered() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        let long = Duration::from_secs(u64::MAX / 4);
        let doc = serde_json::json!({
            "expiration": future(),
            "conditions": [
                {"bucket": "up"},
                ["starts-with", "$key", "user/"],
                ["eq", "$Content-Type", "application/pdf"],
                ["content-length-range", 10, 100],
            ]
        });
        let base = f(&[
            ("bucket", "up"),
            ("key", "user/a.pdf"),
            ("Content-Type", "application/pdf"),
        ]);
        let ok = check_policy(&doc, &base, now, long).expect("allowed");
        assert_eq!(ok.length, (10, 100));
        // T-D1: key outside the prefix, type not matching.
        let mut k = base.clone();
        k[1].1 = "other/a.pdf".into();
        assert!(matches!(
            check_policy(&doc, &k, now, long),
            Err(Error::PolicyConditionFailed(_))
        ));
        let mut t = base.clone();
        t[2].1 = "text/html".into();
        assert!(matches!(
            check_policy(&doc, &t, now, long),
            Err(Error::PolicyConditionFailed(_))
        ));
        // T-D2: an uncovered field.
        let mut extra = base.clone();
        extra.push(("x-amz-meta-foo".into(), "bar".into()));
        assert!(matches!(
            check_policy(&doc, &extra, now, long),
            Err(Error::PolicyConditionFailed(_))
        ));
        // ...but x-ignore- fields and the signature fields need no condition.
        let mut ignored = base.clone();
        ignored.push(("x-ignore-tracking".into(), "1".into()));
        ignored.push(("policy".into(), "...".into()));
        assert!(check_policy(&doc, &ignored, now, long).is_ok());
    }

    #[test]
    fn malformed_or_expired_policies_are_refused() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        let long = Duration::from_secs(u64::MAX / 4);
        let fields = f(&[("bucket", "up"), ("key", "k")]);
        let cases = [
            serde_json::json!({"conditions": [{"bucket": "up"}]}),
            serde_json::json!({"expiration": future()}),
            serde_json::json!({"expiration": future(), "conditions": []}),
            serde_json::json!({"expiration": future(), "conditions": [["content-length-range", 5]]}),
            serde_json::json!({"expiration": future(), "conditions": [["content-length-range", 9, 1]]}),
            serde_json::json!({"expiration": future(), "conditions": [["starts-with", "$bucket", ""]]}),
            serde_json::json!({"expiration": future(), "conditions": [["nope", "$key", "k"]]}),
            serde_json::json!({"expiration": "tomorrow", "conditions": [{"bucket": "up"}]}),
        ];
        for doc in cases {
            assert!(
                matches!(
                    check_policy(&doc, &fields, now, long),
                    Err(Error::InvalidPolicyDocument(_))
                ),
                "{doc}"
            );
        }
        let expired = serde_json::json!({"expiration": "2000-01-01T00:00:00Z", "conditions": [{"bucket": "up"}, {"key": "k"}]});
        assert!(matches!(
            check_policy(&expired, &fields, now, long),
            Err(Error::PolicyConditionFailed(_))
        ));
        let too_long = serde_json::json!({"expiration": future(), "conditions": [{"bucket": "up"}, {"key": "k"}]});
        assert!(matches!(
            check_policy(&too_long, &fields, now, Duration::from_secs(3600)),
            Err(Error::InvalidPolicyDocument(_))
        ));
        // Wrong bucket.
        let wrong = serde_json::json!({"expiration": future(), "conditions": [{"bucket": "other"}, {"key": "k"}]});
        assert!(matches!(
            check_policy(&wrong, &fields, now, long),
            Err(Error::PolicyConditionFailed(_))
        ));
    }

    #[test]
    fn filenames_are_reduced_to_a_clean_basename() {
        assert_eq!(clean_filename("C:\\Users\\me\\scan.pdf"), "scan.pdf");
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("a\u{0}b\nc.pdf"), "abc.pdf");
    }
}
