//! The S3 data plane: request entry point, authentication glue, dispatch, XML error responses.
//!
//! Flow of one request: route (pure) → authenticate (parse, look up the key, verify: a
//! [`Verified`] proof) → handler for the endpoint → response. Every error becomes an S3 XML
//! error body here, and exactly one log line is written per request (no key, no filename, no
//! signature in it).

pub mod bucket;
pub mod multipart;
pub mod object;
pub mod post;
pub mod xml;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

use crate::app::AppState;
use crate::auth::{self, AuthError, RequestHead, Verified};
use crate::error::{Error, Result};
use crate::ratelimit::RouteClass;
use crate::router::{self, Endpoint, Query};
use crate::server::ConnInfo;

/// Response body: small buffered XML or a streamed object.
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A full (buffered) body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// Everything a handler needs about the request, parsed once.
pub struct Ctx {
    pub state: Arc<AppState>,
    pub parts: http::request::Parts,
    pub query: Query,
    pub verified: Verified,
    /// Key prefix the caller is confined to (tenant access keys), if any.
    pub scope: Option<String>,
    pub request_id: String,
}

/// Entry point for every request on the main listener.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = crate::id::request_id();
    let method = req.method().clone();
    let mut op = "Unknown";
    let metrics = Arc::clone(&state.metrics);
    let hsts = state.config.tls.hsts_max_age_secs;
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let cors_state = Arc::clone(&state);
    let is_api = req.uri().path().starts_with("/v1/");
    let dispatched = if is_api {
        Ok((
            crate::api::handle(state, req, conn, &request_id, &mut op).await,
            None,
        ))
    } else {
        dispatch(state, req, conn, &request_id, &mut op).await
    };
    let (mut resp, bucket) = match dispatched {
        Ok((resp, bucket)) => (resp, bucket),
        Err((e, bucket)) => {
            e.log_cause(&request_id);
            metrics.rejection(&e);
            (error_response(&e, &method, &request_id), bucket)
        }
    };
    if conn.tls
        && hsts > 0
        && let Ok(v) = HeaderValue::from_str(&format!("max-age={hsts}"))
    {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, v);
    }
    // CORS headers on every response to an allowed origin, errors included (a preflight
    // already carries its own).
    if let (Some(origin), Some(b)) = (&origin, &bucket)
        && op != "Preflight"
        && let Some(bcfg) = cors_state.config.bucket(b)
        && let Some(h) = crate::cors::actual(&bcfg.cors, origin, &method)
    {
        resp.headers_mut().extend(h);
    }
    metrics.request(op, resp.status().as_u16(), started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("upgate"));
    tracing::info!(
        request_id = %request_id,
        peer = %conn.peer.ip(),
        method = %method,
        op,
        bucket = bucket.as_deref().unwrap_or("-"),
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

type Dispatched = std::result::Result<(Response<Body>, Option<String>), (Error, Option<String>)>;

async fn dispatch(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
    request_id: &str,
    op: &mut &'static str,
) -> Dispatched {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let query = Query::parse(raw_query.as_deref()).map_err(|e| (e, None))?;
    let endpoint = router::route(&parts.method, &raw_path, &query).map_err(|e| (e, None))?;
    *op = endpoint.name();
    let bucket = bucket_of(&endpoint);
    if matches!(
        endpoint,
        Endpoint::PostObject { .. } | Endpoint::Preflight { .. }
    ) {
        // Credentials for these are not in the headers: charge the address and the global budget.
        let ip = client_ip(&state, &parts.headers, conn);
        rate_limit(&state, route_class(&endpoint, &query), None, ip)
            .await
            .map_err(|e| (e, bucket.clone()))?;
    }
    match &endpoint {
        Endpoint::Health => return Ok((text_response(StatusCode::OK, "ok"), None)),
        Endpoint::Ready => return Ok((crate::health::readiness(&state).await, None)),
        // Preflight carries no credentials, by design of CORS.
        Endpoint::Preflight { bucket } => {
            return preflight(&state, &parts.headers, bucket)
                .map(|r| (r, Some(bucket.clone())))
                .map_err(|e| (e, Some(bucket.clone())));
        }
        // Authenticated by the signed policy inside the form.
        Endpoint::PostObject { bucket } => {
            return post::post_object(Arc::clone(&state), &parts, bucket, body)
                .await
                .map(|r| (r, Some(bucket.clone())))
                .map_err(|e| (e, Some(bucket.clone())));
        }
        _ => {}
    }
    let ip = client_ip(&state, &parts.headers, conn);
    let class = route_class(&endpoint, &query);
    let (verified, scope) =
        match authenticate(&state, &parts, &raw_path, raw_query.as_deref()).await {
            Ok(v) => v,
            Err(e) => {
                // Unauthenticated traffic is charged too (to the address and the global budget; never
                // to the principal it claims, which would let anyone drain a victim's limit).
                rate_limit(&state, class, None, ip)
                    .await
                    .map_err(|l| (l, bucket.clone()))?;
                return Err((e, bucket));
            }
        };
    let principal = (!crate::api::links::is_link_key(verified.access_key_id()))
        .then(|| verified.access_key_id().to_string());
    rate_limit(&state, class, principal.as_deref(), ip)
        .await
        .map_err(|e| (e, bucket.clone()))?;
    if let Err(e) = scoped(&endpoint, scope.as_deref(), &query) {
        return Err((e, bucket));
    }
    // Link keys sign only upload links (PutObject) and download links (GetObject/HeadObject);
    // those handlers check the link parameters.
    if crate::api::links::is_link_key(verified.access_key_id())
        && !matches!(
            endpoint,
            Endpoint::PutObject { .. }
                | Endpoint::UploadPart { .. }
                | Endpoint::GetObject { .. }
                | Endpoint::HeadObject { .. }
        )
    {
        return Err((
            Error::AccessDenied("Link keys sign nothing but links."),
            bucket,
        ));
    }
    let ctx = Ctx {
        state,
        parts,
        query,
        verified,
        scope,
        request_id: request_id.to_string(),
    };
    let result = match endpoint {
        Endpoint::Health => Ok(text_response(StatusCode::OK, "ok")),
        Endpoint::Ready => Ok(crate::health::readiness(&ctx.state).await),
        Endpoint::ListBuckets => bucket::list_buckets(&ctx).await,
        Endpoint::CreateBucket { bucket } => bucket::create_bucket(&ctx, &bucket),
        Endpoint::HeadBucket { bucket } => bucket::head_bucket(&ctx, &bucket),
        Endpoint::GetBucketLocation { bucket } => bucket::location(&ctx, &bucket),
        Endpoint::ListObjectsV1 { bucket } => bucket::list_objects(&ctx, &bucket, false).await,
        Endpoint::ListObjectsV2 { bucket } => bucket::list_objects(&ctx, &bucket, true).await,
        Endpoint::DeleteObjects { bucket } => bucket::delete_objects(&ctx, &bucket, body).await,
        Endpoint::PutObject { bucket, key } => object::put(ctx, &bucket, &key, body).await,
        Endpoint::GetObject { bucket, key } => object::get(&ctx, &bucket, &key, false).await,
        Endpoint::HeadObject { bucket, key } => object::get(&ctx, &bucket, &key, true).await,
        Endpoint::DeleteObject { bucket, key } => object::delete(&ctx, &bucket, &key).await,
        Endpoint::CreateMultipartUpload { bucket, key } => {
            multipart::create(&ctx, &bucket, &key).await
        }
        Endpoint::UploadPart {
            bucket,
            key,
            upload_id,
            part_number,
        } => multipart::upload_part(ctx, &bucket, &key, &upload_id, part_number, body).await,
        Endpoint::CompleteMultipartUpload {
            bucket,
            key,
            upload_id,
        } => multipart::complete(&ctx, &bucket, &key, &upload_id, body).await,
        Endpoint::AbortMultipartUpload {
            bucket,
            key,
            upload_id,
        } => multipart::abort(&ctx, &bucket, &key, &upload_id).await,
        Endpoint::ListParts {
            bucket,
            key,
            upload_id,
        } => multipart::list_parts(&ctx, &bucket, &key, &upload_id).await,
        Endpoint::ListMultipartUploads { bucket } => multipart::list_uploads(&ctx, &bucket).await,
        Endpoint::Preflight { .. } | Endpoint::PostObject { .. } | Endpoint::Unsupported => {
            Err(Error::NotImplemented)
        }
    };
    result.map(|r| (r, bucket.clone())).map_err(|e| (e, bucket))
}

/// The real client address: the peer, or the `X-Forwarded-For` entry a trusted proxy added.
pub fn client_ip(state: &AppState, headers: &http::HeaderMap, conn: ConnInfo) -> std::net::IpAddr {
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = (!xff.is_empty()).then(|| xff.join(","));
    state.limiter.client_ip(conn.peer.ip(), joined.as_deref())
}

/// Asks the rate limiter; a refusal becomes SlowDown (503 on S3 routes, 429 on /v1) with its
/// Retry-After, and is counted by class and dimension.
pub async fn rate_limit(
    state: &AppState,
    class: RouteClass,
    principal: Option<&str>,
    ip: std::net::IpAddr,
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

/// The rate-limit class of an S3 operation.
fn route_class(endpoint: &Endpoint, query: &Query) -> RouteClass {
    match endpoint {
        Endpoint::PutObject { .. }
        | Endpoint::DeleteObject { .. }
        | Endpoint::DeleteObjects { .. }
        | Endpoint::CreateBucket { .. }
        | Endpoint::CreateMultipartUpload { .. }
        | Endpoint::UploadPart { .. }
        | Endpoint::CompleteMultipartUpload { .. }
        | Endpoint::AbortMultipartUpload { .. }
        | Endpoint::PostObject { .. } => RouteClass::S3Write,
        Endpoint::GetObject { .. } | Endpoint::HeadObject { .. }
            if query.has(crate::api::links::DOWNLOAD_PARAM) =>
        {
            RouteClass::Download
        }
        Endpoint::Health
        | Endpoint::Ready
        | Endpoint::ListBuckets
        | Endpoint::HeadBucket { .. }
        | Endpoint::GetBucketLocation { .. }
        | Endpoint::ListObjectsV1 { .. }
        | Endpoint::ListObjectsV2 { .. }
        | Endpoint::GetObject { .. }
        | Endpoint::HeadObject { .. }
        | Endpoint::ListParts { .. }
        | Endpoint::ListMultipartUploads { .. }
        | Endpoint::Preflight { .. }
        | Endpoint::Unsupported => RouteClass::S3Read,
    }
}

/// Confines a scoped key: object operations must name keys under its prefix, listings must ask
/// for a prefix under it. (DeleteObjects checks each key in the handler.)
fn scoped(endpoint: &Endpoint, scope: Option<&str>, query: &Query) -> Result<()> {
    let Some(prefix) = scope else {
        return Ok(());
    };
    match endpoint {
        Endpoint::PutObject { key, .. }
        | Endpoint::GetObject { key, .. }
        | Endpoint::HeadObject { key, .. }
        | Endpoint::DeleteObject { key, .. }
        | Endpoint::CreateMultipartUpload { key, .. }
        | Endpoint::UploadPart { key, .. }
        | Endpoint::CompleteMultipartUpload { key, .. }
        | Endpoint::AbortMultipartUpload { key, .. }
        | Endpoint::ListParts { key, .. } => check_scope(Some(prefix), key),
        Endpoint::ListObjectsV1 { .. } | Endpoint::ListObjectsV2 { .. } => {
            check_scope(Some(prefix), query.get("prefix")?.unwrap_or(""))
        }
        Endpoint::Health
        | Endpoint::Ready
        | Endpoint::ListBuckets
        | Endpoint::CreateBucket { .. }
        | Endpoint::HeadBucket { .. }
        | Endpoint::GetBucketLocation { .. }
        | Endpoint::DeleteObjects { .. }
        | Endpoint::ListMultipartUploads { .. }
        | Endpoint::Preflight { .. }
        | Endpoint::PostObject { .. }
        | Endpoint::Unsupported => Ok(()),
    }
}

fn bucket_of(e: &Endpoint) -> Option<String> {
    match e {
        Endpoint::CreateBucket { bucket }
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
        | Endpoint::Preflight { bucket }
        | Endpoint::PostObject { bucket } => Some(bucket.clone()),
        Endpoint::Health | Endpoint::Ready | Endpoint::ListBuckets | Endpoint::Unsupported => None,
    }
}

/// Answers a CORS preflight from the bucket's rules: 200 with the allow headers, or 403.
fn preflight(state: &AppState, headers: &http::HeaderMap, bucket: &str) -> Result<Response<Body>> {
    let bcfg = state.config.bucket(bucket).ok_or(Error::NoSuchBucket)?;
    let allowed = crate::cors::preflight(&bcfg.cors, headers).ok_or(Error::AccessDenied(
        "CORSResponse: This CORS request is not allowed.",
    ))?;
    let mut resp = status_response(StatusCode::OK);
    resp.headers_mut().extend(allowed);
    Ok(resp)
}

/// The secret of an access key: the root key and test keys in memory, upgate's own link keys
/// (refreshed once if unknown: another replica may have rotated), or a tenant's key from the
/// database (not revoked).
pub async fn lookup_secret(state: &AppState, access_key_id: &str) -> Result<auth::SecretKey> {
    lookup_key(state, access_key_id).await.map(|(s, _)| s)
}

/// The secret of an access key and the key prefix it is confined to: a tenant's keys may only
/// touch `{tenant_id}/...` (the layout the control API uses too); root and link keys are not
/// confined this way (link keys are confined to their links instead).
pub async fn lookup_key(
    state: &AppState,
    access_key_id: &str,
) -> Result<(auth::SecretKey, Option<String>)> {
    if let Some(s) = state.secret_for(access_key_id) {
        return Ok((s, None));
    }
    if crate::api::links::is_link_key(access_key_id) {
        if let Some(s) = state.link_keys.secret_for(access_key_id) {
            return Ok((s, None));
        }
        state.link_keys.refresh(state.control.as_ref()).await?;
        return state
            .link_keys
            .secret_for(access_key_id)
            .map(|s| (s, None))
            .ok_or(Error::InvalidAccessKeyId);
    }
    match state.control.access_key(access_key_id).await? {
        Some(k) if !k.revoked => Ok((
            auth::SecretKey::new(k.secret),
            Some(format!("{}/", k.tenant_id)),
        )),
        _ => Err(Error::InvalidAccessKeyId),
    }
}

/// Refuses keys outside the caller's prefix (see [`lookup_key`]).
pub fn check_scope(scope: Option<&str>, key: &str) -> Result<()> {
    match scope {
        Some(prefix) if !key.starts_with(prefix) => Err(Error::AccessDenied(
            "This access key may only use keys under its tenant's prefix.",
        )),
        _ => Ok(()),
    }
}

/// Authenticates the request head: parse → key lookup → verify, in that fixed order.
pub async fn authenticate(
    state: &AppState,
    parts: &http::request::Parts,
    raw_path: &str,
    raw_query: Option<&str>,
) -> Result<(Verified, Option<String>)> {
    let head = RequestHead {
        method: &parts.method,
        raw_path,
        raw_query,
        headers: &parts.headers,
    };
    let parsed = auth::parse(&head, &state.auth_policy, SystemTime::now()).map_err(auth_error)?;
    let (secret, scope) = lookup_key(state, parsed.access_key_id()).await?;
    let verified = parsed
        .verify(&head, &secret, &state.auth_policy)
        .map_err(auth_error)?;
    Ok((verified, scope))
}

/// Maps an authentication failure to the S3 error clients expect, by meaning.
pub fn auth_error(e: AuthError) -> Error {
    use AuthError as A;
    match e {
        A::Missing | A::EmptyAuthorization => {
            Error::AccessDenied("Anonymous access is not allowed.")
        }
        A::DuplicateHeader(_) => {
            Error::InvalidRequest("A header that may appear once is repeated.")
        }
        A::MalformedSignedHeaders => {
            Error::AuthorizationHeaderMalformed("SignedHeaders is malformed.")
        }
        A::MalformedRequestTarget => {
            Error::InvalidArgument("The request path or query is malformed.")
        }
        A::Ambiguous => Error::InvalidRequest("Only one authentication mechanism is allowed."),
        A::MissingQueryParam(_) => Error::AuthorizationQueryParametersError(
            "Query-string authentication requires the X-Amz-Algorithm, X-Amz-Credential, \
             X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        ),
        A::DuplicateParam(_) => {
            Error::AuthorizationQueryParametersError("An authentication parameter is repeated.")
        }
        A::UnsupportedAlgorithm => Error::AuthorizationQueryParametersError(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\".",
        ),
        A::ExpiresInvalid => Error::AuthorizationQueryParametersError(
            "X-Amz-Expires must be a positive integer no greater than the configured maximum.",
        ),
        A::MalformedAuthorization => {
            Error::AuthorizationHeaderMalformed("The authorization header is malformed.")
        }
        A::MalformedCredential => {
            Error::AuthorizationHeaderMalformed("The credential is malformed.")
        }
        A::CredentialDateMismatch => Error::AuthorizationHeaderMalformed(
            "The credential date does not match the request date.",
        ),
        A::InvalidRegion => Error::AuthorizationHeaderMalformed(
            "The credential region does not match this endpoint's region.",
        ),
        A::InvalidService => {
            Error::AuthorizationHeaderMalformed("The credential service must be s3.")
        }
        A::InvalidTerminal => {
            Error::AuthorizationHeaderMalformed("The credential must end with aws4_request.")
        }
        A::InvalidDate => Error::AccessDenied("The request date is missing or invalid."),
        A::Expired => Error::RequestExpired,
        A::NotYetValid => Error::RequestNotYetValid,
        A::TimeTooSkewed => Error::RequestTimeTooSkewed,
        A::HostNotSigned | A::UnsignedHeaders => Error::UnsignedHeaders(
            "There were headers present in the request which were not signed.",
        ),
        A::MissingSignedHeader(_) => {
            Error::UnsignedHeaders("A header listed in SignedHeaders is missing.")
        }
        A::MissingContentSha256 => {
            Error::InvalidRequest("Missing required header for this request: x-amz-content-sha256.")
        }
        A::InvalidContentSha256 => Error::InvalidArgument(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* mode, or a hex SHA-256.",
        ),
        A::UnsupportedPayloadMode => {
            Error::InvalidRequest("This x-amz-content-sha256 payload mode is not supported.")
        }
        A::SignatureMismatch => Error::SignatureDoesNotMatch,
        A::SigV2Disabled => Error::InvalidRequest("Please use AWS4-HMAC-SHA256."),
    }
}

/// Builds the S3 XML error response (HEAD gets no body, as S3 does).
pub fn error_response(e: &Error, method: &Method, request_id: &str) -> Response<Body> {
    let status = e.status();
    let body = if *method == Method::HEAD {
        empty()
    } else {
        full(xml::error(e.code(), e.message(), "", request_id))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if *method != Method::HEAD {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
    }
    if let Some(secs) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    // An unread upload body cannot be reused on this connection; tell the client.
    if matches!(
        e,
        Error::EntityTooLarge | Error::SignatureDoesNotMatch | Error::AccessDenied(_)
    ) {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A small XML response.
pub fn xml_response(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// An empty response with a status.
pub fn status_response(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    resp
}

/// A header as UTF-8 text, if present and valid.
pub fn header_str<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}
