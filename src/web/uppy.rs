//! Uppy's `@uppy/aws-s3` plugin in its `companionEndpoint` mode, without Companion: the routes
//! and JSON shapes Companion's S3 endpoints have, served under a token-scoped path
//! (`{prefix}uppy/{token}/s3/...`, since the plugin sends no headers of its own in this mode).
//!
//! ```text
//! GET    s3/params?filename&type       {method: "POST", url, fields}: where the form goes
//! POST   s3/form                       the form: fields, then `file` (streamed, not buffered)
//! POST   s3/multipart                  {filename, type, metadata} → {key, uploadId}
//! GET    s3/multipart/{id}/{n}?key     {url}: where part n goes (PUT, answers its ETag)
//! PUT    s3/multipart/{id}/{n}         the part's bytes
//! GET    s3/multipart/{id}?key         [{PartNumber, Size, ETag}]
//! POST   s3/multipart/{id}/complete    {parts: [{PartNumber, ETag}]} → {location, key}
//! DELETE s3/multipart/{id}?key         {}
//! ```
//!
//! Every upload is a resumable upload of the token (`crate::upload::resumable`) with its length
//! deferred: the token's types, per-file size, uploads and bytes, the bucket's content checks
//! and the one atomic commit apply exactly as on the tus endpoint. Only upload tokens are
//! accepted here. The token is part of the path, so it is kept out of the access log (which
//! names the operation, never the path) and out of every answer but the URLs given back to
//! the token's own holder.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::auth::principal::{Principal, Via};
use crate::error::{Error, Result};
use crate::http::{Body, ConnInfo, header_str, incoming_frames, json};
use crate::metadata::resumable::Concat;
use crate::ratelimit::RouteClass;
use crate::state::AppState;
use crate::upload::multipart::PartRef;
use crate::upload::resumable::{self, Append, NewResumable};

/// Most bytes of the form's fields before the file, and of a JSON body.
const MAX_SMALL_BODY: usize = 64 * 1024;

/// A credential taken from the path: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PathToken(String);

impl std::fmt::Debug for PathToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathToken(<redacted>)")
    }
}

/// A Companion S3 operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Params,
    Form,
    Create,
    SignPart(String, u32),
    PutPart(String, u32),
    ListParts(String),
    Complete(String),
    Abort(String),
}

/// A route: the operation and the token its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    token: PathToken,
    op: Op,
}

impl Route {
    pub fn name(&self) -> &'static str {
        match self.op {
            Op::Params => "uppy.Params",
            Op::Form => "uppy.Form",
            Op::Create => "uppy.CreateMultipart",
            Op::SignPart(..) => "uppy.SignPart",
            Op::PutPart(..) => "uppy.UploadPart",
            Op::ListParts(_) => "uppy.ListParts",
            Op::Complete(_) => "uppy.CompleteMultipart",
            Op::Abort(_) => "uppy.AbortMultipart",
        }
    }
}

fn upload_id(s: &str) -> Result<String> {
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| s.to_string())
        .ok_or(Error::NotFound)
}

fn part_number(s: &str) -> Result<u32> {
    crate::http::parse_decimal(s)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .ok_or(Error::InvalidArgument("The part number is out of range."))
}

/// Routes `s3/{rest}` under `uppy/{token}/`.
pub fn route(method: &Method, token: &str, rest: &[&str]) -> Result<Route> {
    let op = match (method.clone(), rest) {
        (Method::GET, ["params"]) => Op::Params,
        (Method::POST, ["form"]) => Op::Form,
        (Method::POST, ["multipart"]) => Op::Create,
        (Method::GET, ["multipart", id]) => Op::ListParts(upload_id(id)?),
        (Method::DELETE, ["multipart", id]) => Op::Abort(upload_id(id)?),
        (Method::POST, ["multipart", id, "complete"]) => Op::Complete(upload_id(id)?),
        (Method::GET, ["multipart", id, n]) => Op::SignPart(upload_id(id)?, part_number(n)?),
        (Method::PUT, ["multipart", id, n]) => Op::PutPart(upload_id(id)?, part_number(n)?),
        (_, ["params" | "form" | "multipart", ..]) => return Err(Error::MethodNotAllowed),
        _ => return Err(Error::NotFound),
    };
    Ok(Route {
        token: PathToken(token.to_string()),
        op,
    })
}

/// A query parameter decoded as a form does (`+` is a space).
fn form_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

/// `{prefix}uppy/{token}/s3` as an absolute URL.
fn base(
    state: &AppState,
    parts: &http::request::Parts,
    conn: ConnInfo,
    token: &str,
) -> Result<String> {
    let origin = crate::http::base_url(&state.config.api.public_url, &parts.headers, conn)?;
    Ok(format!(
        "{origin}{}uppy/{token}/s3",
        state.config.web.prefix
    ))
}

async fn read_small(body: Incoming) -> Result<bytes::Bytes> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, MAX_SMALL_BODY);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| Error::InvalidJson("The request body is too large or was cut short."))
}

fn sha256_hex(v: Option<&serde_json::Value>) -> Option<String> {
    let s = v?.as_str()?.to_ascii_lowercase();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// Entry point for one Companion route.
pub async fn handle(
    state: &Arc<AppState>,
    route: Route,
    parts: &http::request::Parts,
    body: Incoming,
    conn: ConnInfo,
    started: std::time::Instant,
) -> Result<Response<Body>> {
    let class = match route.op {
        Op::Form | Op::PutPart(..) | Op::Create | Op::Complete(_) | Op::Abort(_) => {
            RouteClass::S3Write
        }
        Op::Params | Op::SignPart(..) | Op::ListParts(_) => RouteClass::S3Read,
    };
    let who = crate::upload::admit::admit_credential(
        state,
        Ok(route.token.0.as_str()),
        &parts.headers,
        conn,
        class,
        None,
    )
    .await?;
    if !matches!(who.via, Via::Token(_)) {
        return Err(Error::AccessDenied("These routes take an upload token."));
    }
    let query = parts.uri.query();
    let mut resp = dispatch(state, &who, route, parts, body, conn, query, started).await?;
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag, Location"),
    );
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    state: &Arc<AppState>,
    who: &Principal,
    route: Route,
    parts: &http::request::Parts,
    body: Incoming,
    conn: ConnInfo,
    query: Option<&str>,
    started: std::time::Instant,
) -> Result<Response<Body>> {
    let who = who.clone();
    match route.op {
        Op::Params => {
            let filename = form_param(query, "filename").unwrap_or_else(|| "file".into());
            let ct = form_param(query, "type").unwrap_or_default();
            crate::upload::admit::token_allows(&who, known_type(&ct), None)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "method": "POST",
                    "url": format!("{}/form", base(state, parts, conn, &route.token.0)?),
                    "fields": { "key": crate::upload::sanitize_filename(&filename), "content-type": ct },
                    "expires": state.config.api.upload_link_ttl_secs,
                }),
            ))
        }
        Op::Form => form(state, &who, parts, body, conn, started).await,
        Op::Create => {
            #[derive(Deserialize)]
            struct Create {
                filename: Option<String>,
                #[serde(rename = "type")]
                content_type: Option<String>,
                metadata: Option<serde_json::Map<String, serde_json::Value>>,
            }
            let req: Create = serde_json::from_slice(&read_small(body).await?)
                .map_err(|_| Error::InvalidJson("The body is not the JSON Uppy sends."))?;
            let u = resumable::create(
                state,
                &who,
                NewResumable {
                    length: None,
                    content_type: req.content_type.filter(|t| !t.is_empty()),
                    filename: req.filename.unwrap_or_else(|| "file".into()),
                    metadata: String::new(),
                    sha256: sha256_hex(req.metadata.as_ref().and_then(|m| m.get("sha256"))),
                    concat: Concat::None,
                },
                None,
            )
            .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "key": u.key, "uploadId": u.id }),
            ))
        }
        Op::SignPart(id, n) => {
            resumable::get(state, &who, &id).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "url": format!("{}/multipart/{id}/{n}", base(state, parts, conn, &route.token.0)?),
                    "expires": state.config.api.upload_link_ttl_secs,
                }),
            ))
        }
        Op::PutPart(id, n) => {
            let u = resumable::get(state, &who, &id).await?;
            let length = crate::http::known_length(&body);
            let etag =
                resumable::put_part(state, &who, &u, n, incoming_frames(body), length).await?;
            let mut resp = json(StatusCode::OK, &serde_json::json!({}));
            if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            Ok(resp)
        }
        Op::ListParts(id) => {
            let u = resumable::get(state, &who, &id).await?;
            let listed: Vec<serde_json::Value> = crate::upload::multipart::all_parts(state, &u.id)
                .await?
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "PartNumber": p.part_number, "Size": p.size, "ETag": format!("\"{}\"", p.etag)
                    })
                })
                .collect();
            Ok(json(StatusCode::OK, &listed))
        }
        Op::Complete(id) => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Part {
                part_number: u32,
                e_tag: String,
            }
            #[derive(Deserialize)]
            struct Complete {
                parts: Vec<Part>,
            }
            let req: Complete = serde_json::from_slice(&read_small(body).await?)
                .map_err(|_| Error::InvalidJson("The body is not the JSON Uppy sends."))?;
            let u = resumable::get(state, &who, &id).await?;
            let listed: Vec<PartRef> = req
                .parts
                .into_iter()
                .map(|p| PartRef {
                    part_number: p.part_number,
                    etag: p.e_tag.trim_matches('"').to_string(),
                    checksums: Vec::new(),
                })
                .collect();
            resumable::finish_parts(state, &who, &u, &listed, started).await?;
            committed(state, parts, conn, &u.bucket, &u.key).await
        }
        Op::Abort(id) => {
            let u = resumable::get(state, &who, &id).await?;
            resumable::terminate(state, &u).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({})))
        }
    }
}

/// A declared type worth checking against the token now (a generic one is decided by the
/// bytes later).
fn known_type(ct: &str) -> Option<&str> {
    (!ct.is_empty() && !crate::mime::is_generic(ct)).then_some(ct)
}

/// The answer to a completed upload: where the object is and its ETag.
async fn committed(
    state: &AppState,
    parts: &http::request::Parts,
    conn: ConnInfo,
    bucket: &str,
    key: &str,
) -> Result<Response<Body>> {
    let obj = state
        .meta
        .current(bucket, key)
        .await?
        .ok_or(Error::internal("a completed upload has no object"))?;
    let origin = crate::http::base_url(&state.config.api.public_url, &parts.headers, conn)?;
    let mut resp = json(
        StatusCode::OK,
        &serde_json::json!({
            "location": format!("{origin}/{bucket}/{key}"),
            "bucket": bucket,
            "key": key,
            "sha256": obj.sha256,
            "size": obj.size,
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", obj.etag)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

fn multer_error(e: multer::Error) -> Error {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Error::EntityTooLarge
        }
        _ => Error::InvalidArgument("The form is not well-formed multipart/form-data."),
    }
}

/// `POST s3/form`: the fields `/params` gave, then `file`, streamed into one resumable upload
/// of deferred length that completes with the form's end.
async fn form(
    state: &Arc<AppState>,
    who: &Principal,
    parts: &http::request::Parts,
    body: Incoming,
    conn: ConnInfo,
    started: std::time::Instant,
) -> Result<Response<Body>> {
    let ct = header_str(&parts.headers, "content-type").unwrap_or("");
    let boundary = multer::parse_boundary(ct)
        .map_err(|_| Error::InvalidArgument("The form must be multipart/form-data."))?;
    let bcfg = state.bucket(&state.config.api.bucket)?;
    let max_file = crate::upload::admit::file_limit(who, bcfg.max_object_bytes);
    let limits = multer::SizeLimit::new()
        .per_field(MAX_SMALL_BODY as u64)
        .for_field("file", max_file.saturating_add(1))
        .whole_stream(max_file.saturating_add(2 * MAX_SMALL_BODY as u64));
    let mut form = multer::Multipart::with_constraints(
        incoming_frames(body),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut filename = None;
    let mut declared = None;
    let file = loop {
        let field = form
            .next_field()
            .await
            .map_err(multer_error)?
            .ok_or(Error::InvalidArgument("The form has no file."))?;
        match field.name().map(str::to_ascii_lowercase).as_deref() {
            Some("file") => break field,
            Some("key") => filename = Some(field.text().await.map_err(multer_error)?),
            Some("content-type") => declared = Some(field.text().await.map_err(multer_error)?),
            _ => {
                field.text().await.map_err(multer_error)?;
            }
        }
    };
    let filename = filename
        .or_else(|| file.file_name().map(str::to_string))
        .unwrap_or_else(|| "file".into());
    let declared = declared
        .filter(|t| !t.is_empty())
        .or_else(|| file.content_type().map(|m| m.essence_str().to_string()));
    let u = resumable::create(
        state,
        who,
        NewResumable {
            length: None,
            content_type: declared,
            filename,
            metadata: String::new(),
            sha256: None,
            concat: Concat::None,
        },
        None,
    )
    .await?;
    let frames = Box::pin(futures_util::StreamExt::map(file, |r| {
        r.map_err(multer_error)
    }));
    let outcome = resumable::append(
        state,
        who,
        &u,
        Append {
            offset: 0,
            length: None,
            content_length: None,
            checksum: None,
            md5: None,
            last: true,
            frames,
        },
        started,
    )
    .await;
    if let Err(e) = outcome {
        // Nothing of a failed form stays behind.
        if let Err(t) = resumable::terminate(state, &u).await {
            tracing::warn!(error = %t, "terminating a failed form upload failed; it expires");
        }
        return Err(e);
    }
    committed(state, parts, conn, &u.bucket, &u.key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_companion() {
        let r = |m: &Method, rest: &[&str]| route(m, "ugt_a_b", rest).map(|r| r.op);
        assert_eq!(r(&Method::GET, &["params"]).ok(), Some(Op::Params));
        assert_eq!(r(&Method::POST, &["multipart"]).ok(), Some(Op::Create));
        assert_eq!(
            r(&Method::GET, &["multipart", "abc", "3"]).ok(),
            Some(Op::SignPart("abc".into(), 3))
        );
        assert_eq!(
            r(&Method::PUT, &["multipart", "abc", "3"]).ok(),
            Some(Op::PutPart("abc".into(), 3))
        );
        assert_eq!(
            r(&Method::POST, &["multipart", "abc", "complete"]).ok(),
            Some(Op::Complete("abc".into()))
        );
        assert_eq!(
            r(&Method::DELETE, &["multipart", "abc"]).ok(),
            Some(Op::Abort("abc".into()))
        );
        assert!(r(&Method::GET, &["multipart", "abc", "0"]).is_err());
        assert!(r(&Method::GET, &["multipart", "../x", "1"]).is_err());
        assert!(matches!(
            r(&Method::PUT, &["params"]),
            Err(Error::MethodNotAllowed)
        ));
    }

    #[test]
    fn the_path_token_is_never_printed() {
        let r = route(&Method::GET, "ugt_id_secret", &["params"]).unwrap();
        assert!(!format!("{r:?}").contains("secret"));
    }

    #[test]
    fn query_parameters_decode_like_forms() {
        let q = Some("filename=my+file%2B1.pdf&type=application%2Fpdf");
        assert_eq!(form_param(q, "filename").as_deref(), Some("my file+1.pdf"));
        assert_eq!(form_param(q, "type").as_deref(), Some("application/pdf"));
        assert_eq!(form_param(q, "x"), None);
    }
}
