//! Bucket operations: ListBuckets, HeadBucket, GetBucketLocation, CreateBucket and DeleteBucket
//! (run-time buckets, recorded in the metadata database; configured ones are acknowledged and
//! kept), ListObjects v1/v2, DeleteObjects.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use md5::{Digest, Md5};
use sha2::Sha256;

use super::xml::{self, BucketEntry, DeleteErrorEntry, DeletedEntry, ListV2, ObjectEntry};
use super::{Ctx, xml_response};
use crate::auth::PayloadMode;
use crate::error::{Error, Result};
use crate::http::{Body, header_str, status_response};
use crate::ingest::checksum::{self, Checksummer};
use crate::metadata::{
    BucketCreation, BucketRemoval, ObjectRecord, RuntimeBucket, prefix_upper_bound,
};

/// Most keys returned per list page (S3's cap).
pub const MAX_KEYS: u32 = 1000;
/// Rows fetched from the metadata store per round trip while listing.
const PAGE: u32 = 1000;

fn ensure_bucket(ctx: &Ctx, bucket: &str) -> Result<()> {
    ctx.state.bucket(bucket).map(|_| ())
}

/// The tenant of the caller's key (`None`: an operator key).
fn caller_tenant(ctx: &Ctx) -> Option<&str> {
    crate::upload::quota::tenant_of_scope(ctx.scope.as_deref())
}

/// ListBuckets: the configured buckets and the run-time buckets the caller may use (an
/// operator key sees every one), by name.
pub async fn list_buckets(ctx: &Ctx) -> Result<Response<Body>> {
    let tenant = caller_tenant(ctx);
    let runtime = ctx.state.meta.runtime_buckets().await?;
    let mut names: Vec<(&str, i64)> = ctx
        .state
        .config
        .buckets
        .keys()
        .map(|n| {
            let created = ctx.state.bucket_created.get(n).copied().unwrap_or(0);
            (n.as_str(), created)
        })
        .chain(
            runtime
                .iter()
                .filter(|b| super::may_use(tenant, b) && ctx.state.config.bucket(&b.name).is_none())
                .map(|b| (b.name.as_str(), b.created_at_ms)),
        )
        .collect();
    names.sort_unstable();
    let entries: Vec<BucketEntry<'_>> = names
        .iter()
        .map(|(n, c)| BucketEntry {
            name: n,
            created: crate::clock::from_ms(*c),
        })
        .collect();
    let owner = ctx.verified.access_key_id();
    Ok(xml_response(
        StatusCode::OK,
        xml::list_buckets(owner, owner, &entries),
    ))
}

/// Whether S3 (and upgate's own paths) allow a new bucket named `name`: 3-63 characters of
/// a-z 0-9 . -, starting and ending with a letter or digit, no `..`, not shaped like an IPv4
/// address, none of S3's reserved prefixes and suffixes, and no name the web pages' paths or
/// the probes (`/healthz`, `/readyz`, answered before S3 routing) would hide.
fn creatable_name(config: &crate::config::Config, name: &str) -> bool {
    const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&str; 3] = ["-s3alias", "--ol-s3", "--x-s3"];
    crate::config::valid_bucket_name(name)
        && !crate::config::PROBE_SEGMENTS.contains(&name)
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        && !RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
        && !config.web.hides(name)
}

/// CreateBucket. A configured bucket is acknowledged the way S3 acknowledges a bucket you
/// already own (tools such as rclone create before their first upload); a new name becomes a
/// run-time bucket, governed by `[bucket_template]`, if the caller may create one
/// (`s3.create_buckets` for operator keys, `s3.tenant_max_buckets` for tenant keys).
pub async fn create_bucket(ctx: &Ctx, bucket: &str, body: Incoming) -> Result<Response<Body>> {
    let config = &ctx.state.config;
    if !creatable_name(config, bucket) && config.bucket(bucket).is_none() {
        return Err(Error::InvalidBucketName);
    }
    let data = read_small_body(ctx, body).await?;
    if !data.is_empty() {
        let constraint = xml::parse_create_bucket(&data).map_err(|_| Error::MalformedXml)?;
        // The gateway has one region: it may be named or left out (as S3 names us-east-1).
        if constraint.is_some_and(|c| c != config.s3.region) {
            return Err(Error::InvalidLocationConstraint);
        }
    }
    if config.bucket(bucket).is_some() {
        return Err(Error::BucketAlreadyOwnedByYou);
    }
    let tenant = caller_tenant(ctx);
    match tenant {
        None if !config.s3.create_buckets => {
            return Err(Error::AccessDenied(
                "Buckets are defined in the upgate configuration.",
            ));
        }
        Some(_) if config.s3.tenant_max_buckets == 0 => {
            return Err(Error::AccessDenied(
                "This access key may not create buckets.",
            ));
        }
        _ => {}
    }
    let record = RuntimeBucket {
        name: bucket.to_string(),
        created_at_ms: crate::clock::now_ms(),
        tenant_id: tenant.map(str::to_string),
    };
    match ctx
        .state
        .meta
        .create_bucket(&record, config.s3.tenant_max_buckets)
        .await?
    {
        BucketCreation::Created => {
            ctx.state.runtime_buckets.remember(record);
            let mut resp = status_response(StatusCode::OK);
            if let Ok(v) = http::HeaderValue::from_str(&format!("/{bucket}")) {
                resp.headers_mut().insert(http::header::LOCATION, v);
            }
            Ok(resp)
        }
        // Answered like a configured bucket to whoever may use it.
        BucketCreation::Exists(Some(b)) if super::may_use(tenant, &b) => {
            Err(Error::BucketAlreadyOwnedByYou)
        }
        BucketCreation::Exists(_) => Err(Error::BucketAlreadyExists),
        BucketCreation::TooMany => Err(Error::TooManyBuckets),
    }
}

/// DeleteBucket: removes an empty run-time bucket (its creator's tenant, or an operator key).
/// Configured buckets cannot be deleted through the API: 403 AccessDenied, as S3 answers an
/// operation the caller's policy forbids.
pub async fn delete_bucket(ctx: &Ctx, bucket: &str) -> Result<Response<Body>> {
    let state = &ctx.state;
    if state.config.bucket(bucket).is_some() {
        return Err(Error::AccessDenied(
            "Buckets defined in the upgate configuration cannot be deleted.",
        ));
    }
    let Some(found) = state.meta.runtime_bucket(bucket).await? else {
        state.runtime_buckets.forget(bucket);
        return Err(Error::NoSuchBucket);
    };
    if caller_tenant(ctx).is_some() && found.tenant_id.as_deref() != caller_tenant(ctx) {
        return Err(Error::AccessDenied(
            "Only the tenant that created a bucket may delete it.",
        ));
    }
    match state.meta.delete_bucket(bucket).await? {
        BucketRemoval::Removed => {
            state.runtime_buckets.forget(bucket);
            Ok(status_response(StatusCode::NO_CONTENT))
        }
        BucketRemoval::NotEmpty => Err(Error::BucketNotEmpty),
        BucketRemoval::NotFound => {
            state.runtime_buckets.forget(bucket);
            Err(Error::NoSuchBucket)
        }
    }
}

/// HeadBucket.
pub fn head_bucket(ctx: &Ctx, bucket: &str) -> Result<Response<Body>> {
    ensure_bucket(ctx, bucket)?;
    let mut resp = status_response(StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(&ctx.state.config.s3.region) {
        resp.headers_mut().insert("x-amz-bucket-region", v);
    }
    Ok(resp)
}

/// GetBucketLocation.
pub fn location(ctx: &Ctx, bucket: &str) -> Result<Response<Body>> {
    ensure_bucket(ctx, bucket)?;
    Ok(xml_response(
        StatusCode::OK,
        xml::location(&ctx.state.config.s3.region),
    ))
}

/// Where a listing resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resume {
    /// After this key (exclusive).
    After(String),
    /// At or after this key (inclusive): used to skip past a rolled-up common prefix.
    From(String),
    /// Nothing left.
    End,
}

fn encode_token(last: &Item) -> String {
    let raw = match last {
        Item::Object(r) => format!("k{}", r.key),
        Item::Prefix(p) => format!("p{p}"),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode_token(t: &str) -> Result<Resume> {
    let bad = || Error::InvalidArgument("The continuation token provided is incorrect");
    let raw = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let mut chars = s.chars();
    match chars.next() {
        Some('k') => Ok(Resume::After(chars.as_str().to_string())),
        Some('p') => Ok(resume_after_prefix(chars.as_str())),
        _ => Err(bad()),
    }
}

fn resume_after_prefix(p: &str) -> Resume {
    match prefix_upper_bound(p) {
        Some(u) => Resume::From(u),
        None => Resume::End,
    }
}

enum Item {
    Object(Box<ObjectRecord>),
    Prefix(String),
}

struct Listing {
    items: Vec<Item>,
    truncated: bool,
}

/// The listing engine shared by v1 and v2: walks committed keys in order from `resume`,
/// rolling keys up into common prefixes when a delimiter is given, and skipping past each
/// rolled-up prefix in one seek.
async fn walk(
    ctx: &Ctx,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    mut resume: Resume,
    max_keys: u32,
    skip_prefixes_upto: Option<&str>,
) -> Result<Listing> {
    let mut items: Vec<Item> = Vec::new();
    loop {
        let (after, inclusive) = match &resume {
            Resume::After(k) => (k.clone(), false),
            Resume::From(k) => (k.clone(), true),
            Resume::End => {
                return Ok(Listing {
                    items,
                    truncated: false,
                });
            }
        };
        let rows = ctx
            .state
            .meta
            .list(bucket, prefix, &after, inclusive, PAGE)
            .await?;
        if rows.is_empty() {
            return Ok(Listing {
                items,
                truncated: false,
            });
        }
        let fetched = rows.len();
        let mut next = match rows.last() {
            Some(r) => Resume::After(r.key.clone()),
            None => Resume::End,
        };
        for rec in rows {
            let rolled = delimiter.and_then(|d| {
                let rest = &rec.key[prefix.len()..];
                rest.find(d)
                    .map(|i| rec.key[..prefix.len() + i + d.len()].to_string())
            });
            match rolled {
                Some(cp) => {
                    if skip_prefixes_upto.is_some_and(|m| cp.as_str() <= m) {
                        next = resume_after_prefix(&cp);
                        break;
                    }
                    if items.len() as u32 == max_keys {
                        return Ok(Listing {
                            items,
                            truncated: true,
                        });
                    }
                    next = resume_after_prefix(&cp);
                    items.push(Item::Prefix(cp));
                    break;
                }
                None => {
                    if items.len() as u32 == max_keys {
                        return Ok(Listing {
                            items,
                            truncated: true,
                        });
                    }
                    items.push(Item::Object(Box::new(rec)));
                }
            }
        }
        if matches!(next, Resume::After(_)) && fetched < PAGE as usize {
            // A short page that ended on an object: nothing more.
            return Ok(Listing {
                items,
                truncated: false,
            });
        }
        resume = next;
    }
}

/// The owner shown for objects another principal uploaded.
const GATEWAY_OWNER: &str = "upgate";

/// ListObjects (v1, `marker`) and ListObjectsV2 (`continuation-token`, `start-after`).
pub async fn list_objects(ctx: &Ctx, bucket: &str, v2: bool) -> Result<Response<Body>> {
    ensure_bucket(ctx, bucket)?;
    let q = &ctx.query;
    let prefix = q.get("prefix")?.unwrap_or("").to_string();
    let delimiter = q
        .get("delimiter")?
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let max_keys = match q.get("max-keys")? {
        None => MAX_KEYS,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| Error::InvalidArgument("max-keys must be an integer"))?
            .clamp(0, i64::from(MAX_KEYS)) as u32,
    };
    let url_encode = match q.get("encoding-type")? {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(Error::InvalidArgument(
                "Invalid Encoding Method specified in Request",
            ));
        }
    };
    let (resume, marker, continuation, start_after) = if v2 {
        let token = q.get("continuation-token")?;
        let start_after = q.get("start-after")?;
        let resume = match (token, start_after) {
            (Some(t), _) => decode_token(t)?,
            (None, Some(s)) => Resume::After(s.to_string()),
            (None, None) => Resume::After(String::new()),
        };
        (
            resume,
            None,
            token.map(str::to_string),
            start_after.map(str::to_string),
        )
    } else {
        let marker = q.get("marker")?.map(str::to_string);
        let resume = Resume::After(marker.clone().unwrap_or_default());
        (resume, marker, None, None)
    };
    let listing = if max_keys == 0 {
        Listing {
            items: Vec::new(),
            truncated: false,
        }
    } else {
        walk(
            ctx,
            bucket,
            &prefix,
            delimiter.as_deref(),
            resume,
            max_keys,
            marker.as_deref().or(start_after.as_deref()),
        )
        .await?
    };
    let next_token = if listing.truncated {
        listing.items.last().map(encode_token)
    } else {
        None
    };
    let next_marker = if listing.truncated && !v2 && delimiter.is_some() {
        listing.items.last().map(|i| match i {
            Item::Object(r) => r.key.clone(),
            Item::Prefix(p) => p.clone(),
        })
    } else {
        None
    };
    // `fetch-owner=true` (V2): the owner is the caller for objects it uploaded, and the gateway
    // (the bucket's owner) for the rest: one principal's access key id is not shown to another.
    let fetch_owner = v2
        && q.get("fetch-owner")?
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let caller = ctx.verified.access_key_id();
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for item in &listing.items {
        match item {
            Item::Object(r) => contents.push(ObjectEntry {
                key: &r.key,
                last_modified: crate::clock::from_ms(r.committed_at_ms),
                etag: &r.etag,
                size: r.size,
                storage_class: &r.storage_class,
                owner: fetch_owner.then(|| {
                    if r.owner == caller {
                        caller
                    } else {
                        GATEWAY_OWNER
                    }
                }),
            }),
            Item::Prefix(p) => prefixes.push(p.clone()),
        }
    }
    let l = ListV2 {
        bucket,
        prefix: &prefix,
        delimiter: delimiter.as_deref(),
        max_keys,
        start_after: start_after.as_deref(),
        continuation_token: continuation.as_deref(),
        next_continuation_token: next_token.as_deref(),
        is_truncated: listing.truncated,
        url_encode,
        contents: &contents,
        common_prefixes: &prefixes,
    };
    let body = if v2 {
        xml::list_objects_v2(&l)
    } else {
        xml::list_objects_v1(&l, marker.as_deref().unwrap_or(""), next_marker.as_deref())
    };
    Ok(xml_response(StatusCode::OK, body))
}

/// Reads a small request body (XML), bounded, verifying whatever digests the request carries.
pub(crate) async fn read_small_body(ctx: &Ctx, body: Incoming) -> Result<Bytes> {
    let max = ctx.state.config.s3.max_xml_body_bytes;
    let h = &ctx.parts.headers;
    if let Some(len) = header_str(h, "content-length").and_then(|v| v.parse::<usize>().ok())
        && len > max
    {
        return Err(Error::EntityTooLarge);
    }
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Error::IncompleteBody)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(Error::EntityTooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    let data = buf.freeze();
    match ctx.verified.payload() {
        PayloadMode::Sha256(expected) => {
            let got: [u8; 32] = Sha256::digest(&data).into();
            if &got != expected {
                return Err(Error::ContentSha256Mismatch);
            }
        }
        PayloadMode::Unsigned => {}
        PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer => {
            return Err(Error::InvalidRequest(
                "streaming payloads are only accepted for uploads",
            ));
        }
    }
    if let Some(md5) = header_str(h, "content-md5") {
        let expected = checksum::decode_content_md5(md5).map_err(|_| Error::InvalidDigest)?;
        let got: [u8; 16] = Md5::digest(&data).into();
        if got != expected {
            return Err(Error::BadDigest);
        }
    }
    for (name, value) in h {
        if let Some(alg) = checksum::ChecksumAlgorithm::from_header_name(name.as_str()) {
            let v = value.to_str().map_err(|_| Error::InvalidDigest)?;
            let expected = alg.decode(v).map_err(|_| Error::InvalidDigest)?;
            let mut c = Checksummer::new(alg);
            c.update(&data);
            if c.finalize() != expected {
                return Err(Error::BadDigest);
            }
        }
    }
    Ok(data)
}

/// Most keys in one DeleteObjects request (S3's limit).
pub const MAX_DELETE: usize = 1000;

/// DeleteObjects: per-key results; a key that does not exist counts as deleted (S3 semantics).
pub async fn delete_objects(ctx: &Ctx, bucket: &str, body: Incoming) -> Result<Response<Body>> {
    ensure_bucket(ctx, bucket)?;
    let data = read_small_body(ctx, body).await?;
    let req = xml::parse_delete(&data, MAX_DELETE).map_err(|_| Error::MalformedXml)?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for t in &req.objects {
        if let Err(e) = crate::upload::validate_key(&t.key) {
            errors.push((t.key.as_str(), e));
            continue;
        }
        if let Err(e) = super::check_scope(ctx.scope.as_deref(), &t.key) {
            errors.push((t.key.as_str(), e));
            continue;
        }
        match crate::upload::delete::delete_key(&ctx.state, bucket, &t.key).await {
            Ok(()) => deleted.push(DeletedEntry { key: &t.key }),
            Err(e) => {
                e.log_cause(&ctx.request_id);
                errors.push((t.key.as_str(), e));
            }
        }
    }
    let errors: Vec<DeleteErrorEntry<'_>> = errors
        .iter()
        .map(|(k, e)| DeleteErrorEntry {
            key: k,
            code: e.code(),
            message: e.message(),
        })
        .collect();
    Ok(xml_response(
        StatusCode::OK,
        xml::delete_result(req.quiet, &deleted, &errors),
    ))
}
