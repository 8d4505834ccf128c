//! The tus 1.0 resumable-upload protocol under `/v1/tus/`: a front end over
//! `crate::upload::resumable`, with every extension a browser or mobile client uses —
//! creation, creation-with-upload, creation-defer-length, termination, expiration, checksum
//! (sha1, sha256, md5, crc32) and concatenation (parallel uploads).
//!
//! ```text
//! OPTIONS /v1/tus/            capabilities (no credentials: CORS preflights carry none)
//! POST    /v1/tus/            create (Upload-Length | Upload-Defer-Length, Upload-Metadata,
//!                             Upload-Concat), optionally with the first bytes
//! HEAD    /v1/tus/{id}        offset, length, metadata, expiry
//! PATCH   /v1/tus/{id}        append at Upload-Offset (application/offset+octet-stream)
//! DELETE  /v1/tus/{id}        terminate
//! ```
//!
//! Who may upload: the control API's principals (API key, JWT, upload token) by
//! `Authorization: Bearer`; an upload belongs to its creator and is NotFound to anyone else.
//! An append that fails (checksum 460, type 415, size 413, dropped connection) stores nothing:
//! the offset stays where it was and the client resumes from HEAD.
//!
//! Upload-Metadata keys used: `filename` (or `name`), `filetype` (or `type`, the declared
//! content type) and `sha256` (hex, pinned: the assembled upload must have it). Every other key
//! is kept and echoed, not interpreted.

mod draft;

use std::sync::Arc;

use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::http::{Body, ConnInfo, Outcome, full, header_str, incoming_frames, status_response};
use crate::ingest::checksum::{self, ChecksumAlgorithm};
use crate::metadata::resumable::{Concat, ResumableStatus, ResumableUpload};
use crate::ratelimit::RouteClass;
use crate::state::AppState;
use crate::upload::admit::bearer;
use crate::upload::resumable::{self, Append, NewResumable};

/// The path prefix of the tus endpoint.
pub const PREFIX: &str = "/v1/tus/";
/// The protocol version spoken.
pub const VERSION: &str = "1.0.0";
/// The extensions implemented, as `Tus-Extension` lists them.
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,\
    expiration,checksum,concatenation";
/// The checksum algorithms accepted in `Upload-Checksum`.
pub const CHECKSUMS: &str = "sha1,sha256,md5,crc32";
/// The content type of an append body.
const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// Most bytes of an `Upload-Metadata` header (names and values, base64).
const MAX_METADATA_BYTES: usize = 4096;

/// Every route, as `(method, OpenAPI path template)`; checked against the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("options", "/v1/tus/"),
    ("post", "/v1/tus/"),
    ("head", "/v1/tus/{id}"),
    ("patch", "/v1/tus/{id}"),
    ("delete", "/v1/tus/{id}"),
];

/// Whether `path` is the tus endpoint's.
pub fn owns(path: &str) -> bool {
    path == "/v1/tus" || path.starts_with(PREFIX)
}

/// A tus operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Options,
    Create,
    Head(String),
    Append(String),
    Terminate(String),
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::Options => "tus.Options",
            Route::Create => "tus.Create",
            Route::Head(_) => "tus.Head",
            Route::Append(_) => "tus.Append",
            Route::Terminate(_) => "tus.Terminate",
        }
    }
}

/// Routes a tus request (`method` after `X-HTTP-Method-Override`).
fn route(method: &Method, path: &str) -> Result<Route> {
    let rest = path
        .strip_prefix(PREFIX)
        .or_else(|| (path == "/v1/tus").then_some(""))
        .ok_or(Error::NotFound)?;
    if rest.is_empty() {
        return match *method {
            Method::OPTIONS => Ok(Route::Options),
            Method::POST => Ok(Route::Create),
            _ => Err(Error::MethodNotAllowed),
        };
    }
    if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::NotFound);
    }
    let id = rest.to_string();
    match *method {
        Method::OPTIONS => Ok(Route::Options),
        Method::HEAD => Ok(Route::Head(id)),
        Method::PATCH => Ok(Route::Append(id)),
        Method::DELETE => Ok(Route::Terminate(id)),
        _ => Err(Error::MethodNotAllowed),
    }
}

/// Which protocol a request speaks on these resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Tus,
    /// The IETF draft, at this interop version.
    Draft(u8),
}

/// The dialect of a request: the IETF draft when it names an interop version we speak.
fn dialect(h: &HeaderMap) -> Result<Dialect> {
    match header_str(h, "upload-draft-interop-version").map(str::trim) {
        None => Ok(Dialect::Tus),
        Some(v) => match v.parse::<u8>() {
            Ok(n) if draft::VERSIONS.contains(&n) => Ok(Dialect::Draft(n)),
            _ => Err(Error::PreconditionFailed),
        },
    }
}

/// Entry point for requests under `/v1/tus`.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
    _request_id: &str,
) -> Outcome {
    let mut op = "tus.Unknown";
    let d = dialect(req.headers()).unwrap_or(Dialect::Tus);
    let mut result = dispatch(&state, req, conn, &mut op).await;
    if d == Dialect::Tus
        && let Ok(resp) = &mut result
    {
        common_headers(resp.headers_mut());
    }
    let render: Option<crate::http::CustomRender> = match d {
        Dialect::Tus => None,
        Dialect::Draft(v) => {
            // The limits go on a 413 too; worked out now, while the state is at hand.
            let limit = draft::limit(&state, v, None);
            Some(Box::new(move |e: &Error, m: &Method, id: &str| {
                draft::error_response(v, limit.clone(), e, m, id)
            }))
        }
    };
    Outcome {
        result,
        op,
        // Browsers on other origins upload here under the API bucket's CORS rules.
        bucket: Some(state.config.api.bucket.clone()),
        render,
    }
}

async fn dispatch(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
    op: &mut &'static str,
) -> Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    if crate::cors::is_preflight(&parts.method, h) {
        *op = "Preflight";
        let ip = crate::upload::admit::client_ip(state, h, conn);
        crate::upload::admit::rate_limit(state, RouteClass::S3Read, None, ip).await?;
        return crate::cors::preflight_response(&state.bucket(&state.config.api.bucket)?.cors, h);
    }
    // Clients behind proxies that only pass GET and POST tunnel the method.
    let method = match header_str(h, "x-http-method-override") {
        Some(m) if parts.method == Method::POST => {
            Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| Error::InvalidArgument("X-HTTP-Method-Override is invalid."))?
        }
        _ => parts.method.clone(),
    };
    let route = route(&method, parts.uri.path())?;
    *op = route.name();
    let dialect = dialect(h)?;
    match (&route, dialect) {
        (Route::Options, Dialect::Tus) => return Ok(options(state)),
        (Route::Options, Dialect::Draft(v)) => return Ok(draft::options(state, v)),
        (_, Dialect::Tus) if header_str(h, "tus-resumable") != Some(VERSION) => {
            return Err(Error::PreconditionFailed);
        }
        _ => {}
    }
    let class = match route {
        Route::Create => RouteClass::Mint,
        Route::Head(_) => RouteClass::S3Read,
        _ => RouteClass::S3Write,
    };
    let who = bearer(state, h, conn, class, None).await?;
    let started = std::time::Instant::now();
    match (route, dialect) {
        (Route::Options, _) => Ok(options(state)),
        (Route::Create, Dialect::Tus) => create(state, &who, h, body, conn, started).await,
        (Route::Create, Dialect::Draft(v)) => {
            draft::create(state, v, &who, h, body, conn, started).await
        }
        (Route::Head(id), d) => {
            let u = resumable::get(state, &who, &id).await?;
            let (u, offset) = resumable::settle(state, &who, &u).await?;
            Ok(match d {
                Dialect::Tus => head(state, &u, offset),
                Dialect::Draft(v) => draft::head(state, v, &u, offset),
            })
        }
        (Route::Append(id), d) => {
            let u = resumable::get(state, &who, &id).await?;
            match d {
                Dialect::Tus => append(state, &who, &u, h, body, started).await,
                Dialect::Draft(v) => draft::append(state, v, &who, &u, h, body, started).await,
            }
        }
        (Route::Terminate(id), _) => {
            let u = resumable::get(state, &who, &id).await?;
            resumable::terminate(state, &u).await?;
            Ok(status_response(StatusCode::NO_CONTENT))
        }
    }
}

/// The capabilities (`OPTIONS`).
fn options(state: &AppState) -> Response<Body> {
    let mut resp = status_response(StatusCode::NO_CONTENT);
    let rh = resp.headers_mut();
    rh.insert("tus-version", HeaderValue::from_static(VERSION));
    rh.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    rh.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(CHECKSUMS),
    );
    if let Some(b) = state.config.bucket(&state.config.api.bucket) {
        rh.insert("tus-max-size", HeaderValue::from(b.max_object_bytes));
    }
    resp
}

/// The response headers a tus client reads, readable by a page on another origin.
const EXPOSED: &str = "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, \
    Upload-Defer-Length, Upload-Concat, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, \
    Tus-Checksum-Algorithm";

/// Headers on every tus response.
fn common_headers(h: &mut HeaderMap) {
    h.insert("tus-resumable", HeaderValue::from_static(VERSION));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// Renders an error the way tus clients read it: the status (460 for a checksum mismatch, 412
/// with `Tus-Version` for a version mismatch) and a one-line text body.
pub fn error_response(e: &Error, method: &Method, request_id: &str) -> Response<Body> {
    let status = match e {
        Error::BadDigest => StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
        other => other.api_status(),
    };
    let body = if *method == Method::HEAD {
        full("")
    } else {
        full(format!(
            "{}: {} (request {request_id})\n",
            e.code(),
            e.message()
        ))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    common_headers(h);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if matches!(e, Error::PreconditionFailed) {
        h.insert("tus-version", HeaderValue::from_static(VERSION));
    }
    if matches!(e, Error::Unauthorized) {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(secs) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Error::OffsetMismatch { expected, .. } = e {
        h.insert("upload-offset", HeaderValue::from(*expected));
    }
    resp
}

/// A non-negative decimal header (`Upload-Length`, `Upload-Offset`).
pub(crate) fn number(h: &HeaderMap, name: &str) -> Result<Option<u64>> {
    match header_str(h, name) {
        None if h.contains_key(name) => Err(Error::InvalidArgument("A length header is invalid.")),
        None => Ok(None),
        Some(v) => crate::http::parse_decimal(v.trim())
            .map(Some)
            .ok_or(Error::InvalidArgument("A length header is invalid.")),
    }
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent).
fn metadata(raw: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = Error::InvalidArgument("Upload-Metadata is malformed.");
    if raw.len() > MAX_METADATA_BYTES {
        return Err(bad);
    }
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for item in raw.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let mut it = item.split(' ');
        let key = it.next().unwrap_or("");
        let value = it.next().unwrap_or("");
        if key.is_empty()
            || it.next().is_some()
            || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',')
            || out.iter().any(|(k, _)| k == key)
        {
            return Err(bad);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| Error::InvalidArgument("Upload-Metadata is malformed."))?;
        out.push((key.to_string(), decoded));
    }
    Ok(out)
}

fn meta_text<'a>(m: &'a [(String, Vec<u8>)], names: &[&str]) -> Result<Option<&'a str>> {
    match m.iter().find(|(k, _)| names.contains(&k.as_str())) {
        None => Ok(None),
        Some((_, v)) => std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| Error::InvalidArgument("Upload-Metadata values are UTF-8 text.")),
    }
}

/// `Upload-Concat`: `partial`, or `final;URL URL…` (absolute or relative URLs of this endpoint).
fn concat(h: &HeaderMap) -> Result<Concat> {
    let Some(v) = header_str(h, "upload-concat") else {
        return Ok(Concat::None);
    };
    let v = v.trim();
    if v == "partial" {
        return Ok(Concat::Partial);
    }
    let list = v
        .strip_prefix("final;")
        .ok_or(Error::InvalidArgument("Upload-Concat is malformed."))?;
    let mut ids = Vec::new();
    for url in list.split(' ').filter(|u| !u.is_empty()) {
        let path = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
        let id = path
            .strip_prefix(PREFIX)
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(Error::NotFound)?;
        ids.push(id.to_string());
    }
    if ids.is_empty() || ids.len() > 1000 {
        return Err(Error::InvalidArgument("Upload-Concat is malformed."));
    }
    Ok(Concat::Final(ids))
}

/// A body's digest as `Upload-Checksum` gives it: a checksum the pipe verifies, or an MD5.
type BodyDigest = (Option<(ChecksumAlgorithm, Vec<u8>)>, Option<[u8; 16]>);

/// `Upload-Checksum: ALGORITHM BASE64`.
fn upload_checksum(h: &HeaderMap) -> Result<BodyDigest> {
    let Some(v) = header_str(h, "upload-checksum") else {
        if h.contains_key("upload-checksum") {
            return Err(Error::InvalidDigest);
        }
        return Ok((None, None));
    };
    let (alg, value) = v.trim().split_once(' ').ok_or(Error::InvalidDigest)?;
    let value = value.trim();
    match alg.to_ascii_lowercase().as_str() {
        "md5" => Ok((
            None,
            Some(checksum::decode_content_md5(value).map_err(|_| Error::InvalidDigest)?),
        )),
        name @ ("sha1" | "sha256" | "crc32") => {
            let alg = ChecksumAlgorithm::from_algorithm_name(name).ok_or(Error::InvalidDigest)?;
            let digest = alg.decode(value).map_err(|_| Error::InvalidDigest)?;
            Ok((Some((alg, digest)), None))
        }
        _ => Err(Error::InvalidArgument(
            "Upload-Checksum names an algorithm that is not supported.",
        )),
    }
}

fn offset_stream(h: &HeaderMap) -> bool {
    header_str(h, "content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_STREAM))
    })
}

fn expires_header(state: &AppState, u: &ResumableUpload, h: &mut HeaderMap) {
    if u.status == ResumableStatus::Uploading
        && let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(crate::clock::from_ms(
            resumable::expires_at_ms(state, u),
        )))
    {
        h.insert("upload-expires", v);
    }
}

/// `POST /v1/tus/`: creates an upload, and appends the body if it carries the first bytes.
async fn create(
    state: &Arc<AppState>,
    who: &Principal,
    h: &HeaderMap,
    body: Incoming,
    conn: ConnInfo,
    started: std::time::Instant,
) -> Result<Response<Body>> {
    let length = number(h, "upload-length")?;
    let deferred = match header_str(h, "upload-defer-length") {
        None => false,
        Some("1") => true,
        Some(_) => return Err(Error::InvalidArgument("Upload-Defer-Length must be 1.")),
    };
    let concat = concat(h)?;
    match (&concat, length, deferred) {
        (Concat::Final(_), None, false) => {}
        (Concat::Final(_), _, _) => {
            return Err(Error::InvalidArgument(
                "A final upload takes its length from its partial uploads.",
            ));
        }
        (_, Some(_), false) | (_, None, true) => {}
        _ => {
            return Err(Error::InvalidArgument(
                "Send exactly one of Upload-Length and Upload-Defer-Length.",
            ));
        }
    }
    let raw_meta = header_str(h, "upload-metadata").unwrap_or("").to_string();
    let meta = metadata(&raw_meta)?;
    let filename = crate::upload::sanitize_filename(
        meta_text(&meta, &["filename", "name"])?.unwrap_or("file"),
    );
    let content_type = meta_text(&meta, &["filetype", "type"])?.map(str::to_string);
    let sha256 = meta_text(&meta, &["sha256"])?
        .map(|s| {
            let s = s.to_ascii_lowercase();
            (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then_some(s)
                .ok_or(Error::InvalidArgument(
                    "sha256 metadata must be 64 hex characters.",
                ))
        })
        .transpose()?;
    let with_data = offset_stream(h);
    if with_data && matches!(concat, Concat::Final(_)) {
        return Err(Error::AccessDenied(
            "A final upload carries no bytes of its own.",
        ));
    }
    let u = resumable::create(
        state,
        who,
        NewResumable {
            length,
            content_type,
            filename,
            metadata: raw_meta,
            sha256,
            concat,
        },
        None,
    )
    .await?;
    let base = crate::http::base_url(&state.config.api.public_url, h, conn)?;
    let mut offset = resumable::offset(state, &u).await?;
    let mut current = u.clone();
    if with_data {
        let (cs, md5) = upload_checksum(h)?;
        let done = resumable::append(
            state,
            who,
            &u,
            Append {
                offset: 0,
                length: None,
                content_length: crate::http::known_length(&body),
                checksum: cs,
                md5,
                last: false,
                frames: incoming_frames(body),
            },
            started,
        )
        .await?;
        offset = done.offset;
        current = done.upload;
    }
    let mut resp = status_response(StatusCode::CREATED);
    let rh = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}{PREFIX}{}", u.id)) {
        rh.insert(header::LOCATION, v);
    }
    rh.insert("upload-offset", HeaderValue::from(offset));
    expires_header(state, &current, rh);
    Ok(resp)
}

/// `HEAD /v1/tus/{id}`, for `u` at `offset` (see [`resumable::settle`]).
fn head(state: &AppState, u: &ResumableUpload, offset: u64) -> Response<Body> {
    let mut resp = status_response(StatusCode::OK);
    let rh = resp.headers_mut();
    rh.insert("upload-offset", HeaderValue::from(offset));
    match u.length {
        Some(n) => {
            rh.insert("upload-length", HeaderValue::from(n));
        }
        None => {
            rh.insert("upload-defer-length", HeaderValue::from_static("1"));
        }
    }
    if !u.metadata.is_empty()
        && let Ok(v) = HeaderValue::from_str(&u.metadata)
    {
        rh.insert("upload-metadata", v);
    }
    match &u.concat {
        Concat::None => {}
        Concat::Partial => {
            rh.insert("upload-concat", HeaderValue::from_static("partial"));
        }
        Concat::Final(ids) => {
            let list: Vec<String> = ids.iter().map(|id| format!("{PREFIX}{id}")).collect();
            if let Ok(v) = HeaderValue::from_str(&format!("final;{}", list.join(" "))) {
                rh.insert("upload-concat", v);
            }
        }
    }
    expires_header(state, u, rh);
    resp
}

/// `PATCH /v1/tus/{id}`.
async fn append(
    state: &Arc<AppState>,
    who: &Principal,
    u: &ResumableUpload,
    h: &HeaderMap,
    body: Incoming,
    started: std::time::Instant,
) -> Result<Response<Body>> {
    if !offset_stream(h) {
        return Err(Error::ContentTypeNotAllowed);
    }
    let offset =
        number(h, "upload-offset")?.ok_or(Error::InvalidArgument("Upload-Offset is required."))?;
    let length = number(h, "upload-length")?;
    if length.is_some() && u.length.is_some() && length != u.length {
        return Err(Error::InconsistentLength);
    }
    let (cs, md5) = upload_checksum(h)?;
    let done = resumable::append(
        state,
        who,
        u,
        Append {
            offset,
            length,
            content_length: crate::http::known_length(&body),
            checksum: cs,
            md5,
            last: false,
            frames: incoming_frames(body),
        },
        started,
    )
    .await?;
    let mut resp = status_response(StatusCode::NO_CONTENT);
    let rh = resp.headers_mut();
    rh.insert("upload-offset", HeaderValue::from(done.offset));
    expires_header(state, &done.upload, rh);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(route(&Method::POST, "/v1/tus/").expect("r"), Route::Create);
        assert_eq!(route(&Method::POST, "/v1/tus").expect("r"), Route::Create);
        assert_eq!(
            route(&Method::OPTIONS, "/v1/tus/").expect("r"),
            Route::Options
        );
        assert_eq!(
            route(&Method::PATCH, &format!("/v1/tus/{id}")).expect("r"),
            Route::Append(id.into())
        );
        assert_eq!(
            route(&Method::HEAD, &format!("/v1/tus/{id}")).expect("r"),
            Route::Head(id.into())
        );
        assert!(matches!(
            route(&Method::GET, "/v1/tus/"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            route(&Method::HEAD, "/v1/tus/../x"),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            route(&Method::HEAD, &format!("/v1/tus/{id}/x")),
            Err(Error::NotFound)
        ));
    }

    #[test]
    fn metadata_is_parsed_strictly() {
        let m =
            metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").expect("m");
        assert_eq!(m[0].0, "filename");
        assert_eq!(m[0].1, b"world_domination_plan.pdf");
        assert_eq!(m[1], ("is_confidential".to_string(), Vec::new()));
        assert!(metadata("a YQ==,a Yg==").is_err(), "duplicate key");
        assert!(metadata("a !!!").is_err(), "bad base64");
        assert!(metadata("a YQ== extra").is_err(), "three parts");
        assert!(metadata(&"a ".repeat(3000)).is_err(), "too long");
        assert!(metadata("").expect("empty").is_empty());
    }

    #[test]
    fn concat_lists_are_resolved_to_ids() {
        let id = "0123456789abcdef0123456789abcdef";
        let mut h = HeaderMap::new();
        h.insert(
            "upload-concat",
            HeaderValue::from_str(&format!("final;http://h:9000/v1/tus/{id} /v1/tus/{id}"))
                .expect("v"),
        );
        assert_eq!(
            concat(&h).expect("c"),
            Concat::Final(vec![id.to_string(), id.to_string()])
        );
        h.insert("upload-concat", HeaderValue::from_static("partial"));
        assert_eq!(concat(&h).expect("c"), Concat::Partial);
        h.insert("upload-concat", HeaderValue::from_static("final;"));
        assert!(concat(&h).is_err());
        h.insert(
            "upload-concat",
            HeaderValue::from_static("final;/elsewhere/x"),
        );
        assert!(matches!(concat(&h), Err(Error::NotFound)));
    }

    #[test]
    fn checksums_name_their_algorithm() {
        let mut h = HeaderMap::new();
        h.insert(
            "upload-checksum",
            HeaderValue::from_static("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        );
        let (cs, md5) = upload_checksum(&h).expect("sha1");
        assert_eq!(cs.expect("cs").0, ChecksumAlgorithm::Sha1);
        assert!(md5.is_none());
        h.insert("upload-checksum", HeaderValue::from_static("sha3 AAAA"));
        assert!(matches!(
            upload_checksum(&h),
            Err(Error::InvalidArgument(_))
        ));
        h.insert(
            "upload-checksum",
            HeaderValue::from_static("sha1 notbase64!"),
        );
        assert!(matches!(upload_checksum(&h), Err(Error::InvalidDigest)));
    }
}
