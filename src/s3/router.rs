//! Routing as a pure function: (method, raw path, raw query) → [`Endpoint`].
//!
//! Path-style addressing only: `/{bucket}/{key}`. The key is the percent-decoded rest of the
//! path, byte for byte what the client signed (no normalisation: `a//b` and `a/./b` are keys
//! of their own, and keys with `.`/`..` segments are refused by [`validate_key`]).

use std::borrow::Cow;

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::Error;
pub use crate::http::Query;
use crate::upload::validate_key;

/// The S3 operation a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    ListBuckets,
    CreateBucket {
        bucket: String,
    },
    DeleteBucket {
        bucket: String,
    },
    HeadBucket {
        bucket: String,
    },
    GetBucketLocation {
        bucket: String,
    },
    ListObjectsV1 {
        bucket: String,
    },
    ListObjectsV2 {
        bucket: String,
    },
    DeleteObjects {
        bucket: String,
    },
    PutObject {
        bucket: String,
        key: String,
    },
    /// GetObject; `part_number`: only that part of a multipart object (`?partNumber=N`).
    GetObject {
        bucket: String,
        key: String,
        part_number: Option<u32>,
    },
    HeadObject {
        bucket: String,
        key: String,
        part_number: Option<u32>,
    },
    GetObjectAttributes {
        bucket: String,
        key: String,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    CreateMultipartUpload {
        bucket: String,
        key: String,
    },
    UploadPart {
        bucket: String,
        key: String,
        upload_id: String,
        part_number: u32,
    },
    CompleteMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    AbortMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    ListParts {
        bucket: String,
        key: String,
        upload_id: String,
    },
    ListMultipartUploads {
        bucket: String,
    },
    GetObjectTagging {
        bucket: String,
        key: String,
    },
    PutObjectTagging {
        bucket: String,
        key: String,
    },
    DeleteObjectTagging {
        bucket: String,
        key: String,
    },
    /// CORS preflight (no auth): `OPTIONS /{bucket}[/{key}]`.
    Preflight {
        bucket: String,
    },
    /// Browser POST-policy upload (`multipart/form-data` to `/{bucket}`); authenticated by the
    /// signed policy in the form, not by headers.
    PostObject {
        bucket: String,
    },
    /// A known S3 operation upgate does not implement (501).
    Unsupported,
}

impl Endpoint {
    /// The bucket the operation names, if any.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Endpoint::CreateBucket { bucket }
            | Endpoint::DeleteBucket { bucket }
            | Endpoint::HeadBucket { bucket }
            | Endpoint::GetBucketLocation { bucket }
            | Endpoint::ListObjectsV1 { bucket }
            | Endpoint::ListObjectsV2 { bucket }
            | Endpoint::DeleteObjects { bucket }
            | Endpoint::PutObject { bucket, .. }
            | Endpoint::GetObject { bucket, .. }
            | Endpoint::HeadObject { bucket, .. }
            | Endpoint::DeleteObject { bucket, .. }
            | Endpoint::CreateMultipartUpload { bucket, .. }
            | Endpoint::UploadPart { bucket, .. }
            | Endpoint::CompleteMultipartUpload { bucket, .. }
            | Endpoint::AbortMultipartUpload { bucket, .. }
            | Endpoint::ListParts { bucket, .. }
            | Endpoint::ListMultipartUploads { bucket }
            | Endpoint::GetObjectTagging { bucket, .. }
            | Endpoint::GetObjectAttributes { bucket, .. }
            | Endpoint::PutObjectTagging { bucket, .. }
            | Endpoint::DeleteObjectTagging { bucket, .. }
            | Endpoint::Preflight { bucket }
            | Endpoint::PostObject { bucket } => Some(bucket),
            Endpoint::ListBuckets | Endpoint::Unsupported => None,
        }
    }

    /// The object key the operation names, if any (a scoped key must cover it).
    pub fn key(&self) -> Option<&str> {
        match self {
            Endpoint::PutObject { key, .. }
            | Endpoint::GetObject { key, .. }
            | Endpoint::HeadObject { key, .. }
            | Endpoint::DeleteObject { key, .. }
            | Endpoint::CreateMultipartUpload { key, .. }
            | Endpoint::UploadPart { key, .. }
            | Endpoint::CompleteMultipartUpload { key, .. }
            | Endpoint::AbortMultipartUpload { key, .. }
            | Endpoint::ListParts { key, .. }
            | Endpoint::GetObjectTagging { key, .. }
            | Endpoint::GetObjectAttributes { key, .. }
            | Endpoint::PutObjectTagging { key, .. }
            | Endpoint::DeleteObjectTagging { key, .. } => Some(key),
            Endpoint::ListBuckets
            | Endpoint::CreateBucket { .. }
            | Endpoint::DeleteBucket { .. }
            | Endpoint::HeadBucket { .. }
            | Endpoint::GetBucketLocation { .. }
            | Endpoint::ListObjectsV1 { .. }
            | Endpoint::ListObjectsV2 { .. }
            | Endpoint::DeleteObjects { .. }
            | Endpoint::ListMultipartUploads { .. }
            | Endpoint::Preflight { .. }
            | Endpoint::PostObject { .. }
            | Endpoint::Unsupported => None,
        }
    }

    /// Whether the operation changes state: charged to the write rate-limit class, and never
    /// run without verified auth.
    pub fn writes(&self) -> bool {
        match self {
            Endpoint::PutObject { .. }
            | Endpoint::DeleteObject { .. }
            | Endpoint::DeleteObjects { .. }
            | Endpoint::CreateBucket { .. }
            | Endpoint::DeleteBucket { .. }
            | Endpoint::CreateMultipartUpload { .. }
            | Endpoint::UploadPart { .. }
            | Endpoint::CompleteMultipartUpload { .. }
            | Endpoint::AbortMultipartUpload { .. }
            | Endpoint::PutObjectTagging { .. }
            | Endpoint::DeleteObjectTagging { .. }
            | Endpoint::PostObject { .. } => true,
            Endpoint::ListBuckets
            | Endpoint::HeadBucket { .. }
            | Endpoint::GetBucketLocation { .. }
            | Endpoint::ListObjectsV1 { .. }
            | Endpoint::ListObjectsV2 { .. }
            | Endpoint::GetObject { .. }
            | Endpoint::HeadObject { .. }
            | Endpoint::ListParts { .. }
            | Endpoint::ListMultipartUploads { .. }
            | Endpoint::GetObjectTagging { .. }
            | Endpoint::GetObjectAttributes { .. }
            | Endpoint::Preflight { .. }
            | Endpoint::Unsupported => false,
        }
    }

    /// Operation name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Preflight { .. } => "Preflight",
            Endpoint::PostObject { .. } => "PostObject",
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::CreateBucket { .. } => "CreateBucket",
            Endpoint::DeleteBucket { .. } => "DeleteBucket",
            Endpoint::HeadBucket { .. } => "HeadBucket",
            Endpoint::GetBucketLocation { .. } => "GetBucketLocation",
            Endpoint::ListObjectsV1 { .. } => "ListObjects",
            Endpoint::ListObjectsV2 { .. } => "ListObjectsV2",
            Endpoint::DeleteObjects { .. } => "DeleteObjects",
            Endpoint::PutObject { .. } => "PutObject",
            Endpoint::GetObject { .. } => "GetObject",
            Endpoint::HeadObject { .. } => "HeadObject",
            Endpoint::DeleteObject { .. } => "DeleteObject",
            Endpoint::CreateMultipartUpload { .. } => "CreateMultipartUpload",
            Endpoint::UploadPart { .. } => "UploadPart",
            Endpoint::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Endpoint::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Endpoint::ListParts { .. } => "ListParts",
            Endpoint::ListMultipartUploads { .. } => "ListMultipartUploads",
            Endpoint::GetObjectTagging { .. } => "GetObjectTagging",
            Endpoint::GetObjectAttributes { .. } => "GetObjectAttributes",
            Endpoint::PutObjectTagging { .. } => "PutObjectTagging",
            Endpoint::DeleteObjectTagging { .. } => "DeleteObjectTagging",
            Endpoint::Unsupported => "Unsupported",
        }
    }
}

/// Sub-resources that name S3 features upgate does not implement; routing them to the plain
/// object/bucket handler would silently do the wrong thing, so they answer 501.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "acl",
    "analytics",
    "accelerate",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "torrent",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Routes a request. `raw_path` is still percent-encoded.
pub fn route(method: &Method, raw_path: &str, query: &Query) -> Result<Endpoint, Error> {
    let path = raw_path
        .strip_prefix('/')
        .ok_or(Error::InvalidRequest("path must start with /"))?;
    let (bucket_raw, key_raw) = match path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (path, None),
    };
    // Tagging is offered on objects, not on buckets.
    let bucket_tagging = query.has("tagging") && key_raw.is_none_or(str::is_empty);
    if bucket_tagging || UNSUPPORTED_SUBRESOURCES.iter().any(|s| query.has(s)) {
        return Ok(Endpoint::Unsupported);
    }
    if *method == Method::OPTIONS {
        return if bucket_raw.is_empty() {
            Err(Error::MethodNotAllowed)
        } else {
            Ok(Endpoint::Preflight {
                bucket: decode_path(bucket_raw)?.into_owned(),
            })
        };
    }
    if bucket_raw.is_empty() {
        return match *method {
            Method::GET => Ok(Endpoint::ListBuckets),
            _ => Err(Error::MethodNotAllowed),
        };
    }
    let bucket = decode_path(bucket_raw)?.into_owned();
    let key = match key_raw {
        None | Some("") => None,
        Some(k) => Some(decode_path(k)?.into_owned()),
    };
    match key {
        None => match *method {
            Method::GET if query.has("location") => Ok(Endpoint::GetBucketLocation { bucket }),
            Method::GET if query.has("uploads") => Ok(Endpoint::ListMultipartUploads { bucket }),
            Method::GET if query.get("list-type")? == Some("2") => {
                Ok(Endpoint::ListObjectsV2 { bucket })
            }
            Method::GET if query.has("list-type") => {
                Err(Error::InvalidArgument("unsupported list-type"))
            }
            Method::GET => Ok(Endpoint::ListObjectsV1 { bucket }),
            Method::HEAD => Ok(Endpoint::HeadBucket { bucket }),
            Method::PUT => Ok(Endpoint::CreateBucket { bucket }),
            Method::POST if query.has("delete") => Ok(Endpoint::DeleteObjects { bucket }),
            Method::POST if query.is_empty() => Ok(Endpoint::PostObject { bucket }),
            // Sub-resources of a bucket that name other operations were refused above.
            Method::DELETE => Ok(Endpoint::DeleteBucket { bucket }),
            Method::POST => Ok(Endpoint::Unsupported),
            _ => Err(Error::MethodNotAllowed),
        },
        Some(key) => {
            validate_key(&key)?;
            if let Some(upload_id) = query.get("uploadId")? {
                let upload_id = upload_id.to_string();
                return match *method {
                    Method::PUT => {
                        let n = query
                            .get("partNumber")?
                            .ok_or(Error::InvalidArgument("partNumber is required"))?;
                        let part_number = parse_part_number(n)?;
                        Ok(Endpoint::UploadPart {
                            bucket,
                            key,
                            upload_id,
                            part_number,
                        })
                    }
                    Method::POST => Ok(Endpoint::CompleteMultipartUpload {
                        bucket,
                        key,
                        upload_id,
                    }),
                    Method::DELETE => Ok(Endpoint::AbortMultipartUpload {
                        bucket,
                        key,
                        upload_id,
                    }),
                    Method::GET => Ok(Endpoint::ListParts {
                        bucket,
                        key,
                        upload_id,
                    }),
                    _ => Err(Error::MethodNotAllowed),
                };
            }
            if query.has("tagging") {
                return match *method {
                    Method::GET => Ok(Endpoint::GetObjectTagging { bucket, key }),
                    Method::PUT => Ok(Endpoint::PutObjectTagging { bucket, key }),
                    Method::DELETE => Ok(Endpoint::DeleteObjectTagging { bucket, key }),
                    _ => Err(Error::MethodNotAllowed),
                };
            }
            if query.has("attributes") {
                return match *method {
                    Method::GET => Ok(Endpoint::GetObjectAttributes { bucket, key }),
                    _ => Err(Error::MethodNotAllowed),
                };
            }
            let part_number = query
                .get("partNumber")?
                .map(parse_part_number)
                .transpose()?;
            if part_number.is_some() && !matches!(*method, Method::GET | Method::HEAD) {
                return Err(Error::InvalidArgument(
                    "partNumber is only accepted on GET and HEAD without an uploadId.",
                ));
            }
            if *method == Method::POST && query.has("uploads") {
                return Ok(Endpoint::CreateMultipartUpload { bucket, key });
            }
            match *method {
                Method::PUT => Ok(Endpoint::PutObject { bucket, key }),
                Method::GET => Ok(Endpoint::GetObject {
                    bucket,
                    key,
                    part_number,
                }),
                Method::HEAD => Ok(Endpoint::HeadObject {
                    bucket,
                    key,
                    part_number,
                }),
                Method::DELETE => Ok(Endpoint::DeleteObject { bucket, key }),
                Method::POST => Ok(Endpoint::Unsupported),
                _ => Err(Error::MethodNotAllowed),
            }
        }
    }
}

fn decode_path(s: &str) -> Result<Cow<'_, str>, Error> {
    percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| Error::InvalidObjectName)
}

/// Part numbers are 1..=10000 (S3); anything else is an InvalidArgument.
fn parse_part_number(s: &str) -> Result<u32, Error> {
    let bad = Error::InvalidArgument("Part number must be an integer between 1 and 10000.");
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, path: &str, query: &str) -> Result<Endpoint, Error> {
        let q = Query::parse(Some(query)).expect("query");
        route(&method, path, &q)
    }

    fn b(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn routing_table() {
        use Endpoint::*;
        let cases: Vec<(Method, &str, &str, Endpoint)> = vec![
            (Method::GET, "/", "", ListBuckets),
            (Method::HEAD, "/up", "", HeadBucket { bucket: b("up") }),
            (Method::PUT, "/up", "", CreateBucket { bucket: b("up") }),
            (Method::DELETE, "/up", "", DeleteBucket { bucket: b("up") }),
            (Method::DELETE, "/up/", "", DeleteBucket { bucket: b("up") }),
            (Method::DELETE, "/up", "cors", Unsupported),
            (
                Method::GET,
                "/up",
                "location",
                GetBucketLocation { bucket: b("up") },
            ),
            (
                Method::GET,
                "/up",
                "list-type=2&prefix=a",
                ListObjectsV2 { bucket: b("up") },
            ),
            (
                Method::GET,
                "/up/",
                "list-type=2",
                ListObjectsV2 { bucket: b("up") },
            ),
            (
                Method::GET,
                "/up",
                "prefix=a",
                ListObjectsV1 { bucket: b("up") },
            ),
            (
                Method::POST,
                "/up",
                "delete",
                DeleteObjects { bucket: b("up") },
            ),
            (
                Method::PUT,
                "/up/a/b.pdf",
                "",
                PutObject {
                    bucket: b("up"),
                    key: b("a/b.pdf"),
                },
            ),
            (
                Method::PUT,
                "/up/a%20b",
                "x-id=PutObject",
                PutObject {
                    bucket: b("up"),
                    key: b("a b"),
                },
            ),
            (
                Method::GET,
                "/up/k",
                "",
                GetObject {
                    bucket: b("up"),
                    key: b("k"),
                    part_number: None,
                },
            ),
            (
                Method::HEAD,
                "/up/k",
                "",
                HeadObject {
                    bucket: b("up"),
                    key: b("k"),
                    part_number: None,
                },
            ),
            (
                Method::DELETE,
                "/up/k",
                "",
                DeleteObject {
                    bucket: b("up"),
                    key: b("k"),
                },
            ),
            (Method::GET, "/up/k", "acl", Unsupported),
            (
                Method::PUT,
                "/up/k",
                "tagging",
                PutObjectTagging {
                    bucket: b("up"),
                    key: b("k"),
                },
            ),
            (
                Method::GET,
                "/up/k",
                "tagging",
                GetObjectTagging {
                    bucket: b("up"),
                    key: b("k"),
                },
            ),
            (
                Method::DELETE,
                "/up/k",
                "tagging",
                DeleteObjectTagging {
                    bucket: b("up"),
                    key: b("k"),
                },
            ),
            (Method::GET, "/up", "tagging", Unsupported),
            (Method::PUT, "/up/", "tagging", Unsupported),
            (
                Method::POST,
                "/up/k",
                "uploads",
                CreateMultipartUpload {
                    bucket: b("up"),
                    key: b("k"),
                },
            ),
            (
                Method::PUT,
                "/up/k",
                "partNumber=1&uploadId=x",
                UploadPart {
                    bucket: b("up"),
                    key: b("k"),
                    upload_id: b("x"),
                    part_number: 1,
                },
            ),
            (
                Method::POST,
                "/up/k",
                "uploadId=x",
                CompleteMultipartUpload {
                    bucket: b("up"),
                    key: b("k"),
                    upload_id: b("x"),
                },
            ),
            (
                Method::DELETE,
                "/up/k",
                "uploadId=x",
                AbortMultipartUpload {
                    bucket: b("up"),
                    key: b("k"),
                    upload_id: b("x"),
                },
            ),
            (
                Method::GET,
                "/up/k",
                "uploadId=x",
                ListParts {
                    bucket: b("up"),
                    key: b("k"),
                    upload_id: b("x"),
                },
            ),
            (
                Method::GET,
                "/up",
                "uploads",
                ListMultipartUploads { bucket: b("up") },
            ),
            (
                Method::GET,
                "/up/k",
                "partNumber=1",
                GetObject {
                    bucket: b("up"),
                    key: b("k"),
                    part_number: Some(1),
                },
            ),
            (
                Method::HEAD,
                "/up/k",
                "partNumber=10000",
                HeadObject {
                    bucket: b("up"),
                    key: b("k"),
                    part_number: Some(10000),
                },
            ),
            (Method::OPTIONS, "/up/k", "", Preflight { bucket: b("up") }),
            (Method::OPTIONS, "/up", "", Preflight { bucket: b("up") }),
            (Method::POST, "/up", "", PostObject { bucket: b("up") }),
            (Method::POST, "/up/", "", PostObject { bucket: b("up") }),
            (
                Method::GET,
                "/up/a//b",
                "",
                GetObject {
                    bucket: b("up"),
                    key: b("a//b"),
                    part_number: None,
                },
            ),
            (
                Method::GET,
                "/up/a%2Fb",
                "",
                GetObject {
                    bucket: b("up"),
                    key: b("a/b"),
                    part_number: None,
                },
            ),
            (
                Method::GET,
                "/up/a%252Fb",
                "",
                GetObject {
                    bucket: b("up"),
                    key: b("a%2Fb"),
                    part_number: None,
                },
            ),
        ];
        for (m, p, q, want) in cases {
            assert_eq!(r(m.clone(), p, q).expect(p), want, "{m} {p}?{q}");
        }
    }

    #[test]
    fn rejects_dot_segments_and_bad_keys() {
        for p in [
            "/up/a/./x.pdf",
            "/up/a/../x.pdf",
            "/up/a/%2E%2E/x.pdf",
            "/up/..",
            "/up/a%5Cb",
            "/up/%FF",
        ] {
            assert!(
                matches!(r(Method::PUT, p, ""), Err(Error::InvalidObjectName)),
                "{p}"
            );
        }
        // S3's codes: control characters make the URI unparseable, length has its own.
        for p in ["/up/a%00b", "/up/a%0Ab", "/up/a%7Fb"] {
            assert!(
                matches!(r(Method::PUT, p, ""), Err(Error::InvalidUri)),
                "{p}"
            );
        }
        let long = format!("/up/{}", "k".repeat(crate::upload::MAX_KEY_BYTES + 1));
        assert!(matches!(r(Method::PUT, &long, ""), Err(Error::KeyTooLong)));
        let longest = format!("/up/{}", "k".repeat(crate::upload::MAX_KEY_BYTES));
        assert!(r(Method::PUT, &longest, "").is_ok());
    }

    #[test]
    fn duplicate_query_parameters_are_an_error_when_read() {
        let q = Query::parse(Some("list-type=2&list-type=2")).expect("parse");
        assert!(route(&Method::GET, "/up", &q).is_err());
    }

    #[test]
    fn part_numbers_are_bounded() {
        for bad in ["0", "10001", "-1", "1e3", "+1", "", "99999999999"] {
            let q = format!("partNumber={bad}&uploadId=x");
            assert!(
                matches!(r(Method::PUT, "/up/k", &q), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        assert!(r(Method::PUT, "/up/k", "partNumber=10000&uploadId=x").is_ok());
        for bad in ["0", "10001", "x", ""] {
            let q = format!("partNumber={bad}");
            for m in [Method::GET, Method::HEAD] {
                assert!(
                    matches!(r(m.clone(), "/up/k", &q), Err(Error::InvalidArgument(_))),
                    "{m} {bad}"
                );
            }
        }
        // A part of an object is read, never written or deleted.
        for m in [Method::PUT, Method::DELETE, Method::POST] {
            assert!(
                matches!(
                    r(m.clone(), "/up/k", "partNumber=1"),
                    Err(Error::InvalidArgument(_))
                ),
                "{m}"
            );
        }
    }

    #[test]
    fn method_not_allowed() {
        assert!(matches!(
            r(Method::PATCH, "/up/k", ""),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            r(Method::PUT, "/", ""),
            Err(Error::MethodNotAllowed)
        ));
    }

    #[test]
    fn every_write_endpoint_is_marked() {
        assert!(r(Method::PUT, "/up/k", "").expect("put").writes());
        assert!(r(Method::DELETE, "/up/k", "").expect("del").writes());
        assert!(r(Method::POST, "/up", "delete").expect("dels").writes());
        assert!(r(Method::PUT, "/up", "").expect("mb").writes());
        assert!(r(Method::DELETE, "/up", "").expect("rb").writes());
        assert!(!r(Method::GET, "/up/k", "").expect("get").writes());
    }
}
