//! The S3 data plane: authentication glue, dispatch, S3 XML error responses.
//!
//! Flow of one request (after the request edge, `crate::edge`): route (pure, [`router`]) →
//! authenticate (parse, look up the key, verify: a [`Verified`] proof) → rate limit and scope
//! → handler for the endpoint → response. The edge renders errors with [`error_response`].
//! The upload lifecycle itself lives in `crate::upload`; handlers here translate S3 requests
//! into it and its results into S3 responses.
//!
//! Adding an S3 operation: a variant in [`router::Endpoint`] with its arms in `router.rs`
//! (route, name, bucket/key, writes), an arm in [`dispatch`], and the handler.

pub mod bucket;
mod copy;
pub mod multipart;
pub mod object;
mod object_headers;
pub mod post;
pub mod router;
mod tagging;
pub mod xml;

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::auth::links::{DOWNLOAD_PARAM, is_link_key};
use crate::auth::{AuthError, RequestHead, Verified};
use crate::error::{Error, Result};
use crate::http::{Body, ConnInfo, Outcome, Query, empty, full};
use crate::metadata::RuntimeBucket;
use crate::ratelimit::RouteClass;
use crate::state::{AppState, BucketSource};
use crate::upload::admit::{client_ip, rate_limit};
use router::Endpoint;

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

/// Entry point for an S3 request (anything not under `/v1/` or a probe).
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
    request_id: &str,
) -> Outcome {
    let mut op = "Unknown";
    let mut bucket = None;
    let result = dispatch(state, req, conn, request_id, &mut op, &mut bucket).await;
    Outcome {
        result,
        op,
        bucket,
        render: None,
    }
}

async fn dispatch(
    state: Arc<AppState>,
    req: Request<Incoming>,
    conn: ConnInfo,
    request_id: &str,
    op: &mut &'static str,
    bucket_out: &mut Option<String>,
) -> Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let query = Query::parse(raw_query.as_deref())?;
    let endpoint = router::route(&parts.method, &raw_path, &query)?;
    *op = endpoint.name();
    *bucket_out = endpoint.bucket().map(str::to_string);
    let ip = client_ip(&state, &parts.headers, conn);
    let class = route_class(&endpoint, &query);
    match &endpoint {
        // Preflight carries no credentials, by design of CORS; a POST form is authenticated by
        // the signed policy inside it. Both are charged to the address and the global budget.
        Endpoint::Preflight { bucket } => {
            rate_limit(&state, class, None, ip).await?;
            state.resolve_bucket(bucket).await?;
            return preflight(&state, &parts.headers, bucket);
        }
        Endpoint::PostObject { bucket } => {
            rate_limit(&state, class, None, ip).await?;
            state.resolve_bucket(bucket).await?;
            return post::post_object(Arc::clone(&state), &parts, bucket, body).await;
        }
        _ => {}
    }
    let (verified, scope) =
        match authenticate(&state, &parts, &raw_path, raw_query.as_deref()).await {
            Ok(v) => v,
            Err(e) => {
                // Unauthenticated traffic is charged too (to the address and the global budget;
                // never to the principal it claims, which would let anyone drain its limit).
                rate_limit(&state, class, None, ip).await?;
                return Err(e);
            }
        };
    let link_key = is_link_key(verified.access_key_id());
    let principal = (!link_key).then(|| verified.access_key_id().to_string());
    rate_limit(&state, class, principal.as_deref(), ip).await?;
    // Scoped keys: object operations must name keys under the prefix, listings must ask for a
    // prefix under it (DeleteObjects checks each key in the handler).
    if let Some(key) = endpoint.key() {
        check_scope(scope.as_deref(), key)?;
    } else if matches!(
        endpoint,
        Endpoint::ListObjectsV1 { .. } | Endpoint::ListObjectsV2 { .. }
    ) {
        check_scope(scope.as_deref(), query.get("prefix")?.unwrap_or(""))?;
    }
    // A run-time bucket a tenant created is that tenant's alone (CreateBucket and DeleteBucket
    // judge the bucket themselves).
    if let Some(b) = endpoint.bucket()
        && !matches!(
            endpoint,
            Endpoint::CreateBucket { .. } | Endpoint::DeleteBucket { .. }
        )
    {
        admit_bucket(&state, b, scope.as_deref()).await?;
    }
    // Link keys sign only upload links (PutObject, UploadPart) and download links
    // (GetObject/HeadObject); those handlers check the link parameters.
    if link_key
        && !matches!(
            endpoint,
            Endpoint::PutObject { .. }
                | Endpoint::UploadPart { .. }
                | Endpoint::GetObject { .. }
                | Endpoint::HeadObject { .. }
        )
    {
        return Err(Error::AccessDenied("Link keys sign nothing but links."));
    }
    let ctx = Ctx {
        state,
        parts,
        query,
        verified,
        scope,
        request_id: request_id.to_string(),
    };
    match endpoint {
        Endpoint::ListBuckets => bucket::list_buckets(&ctx).await,
        Endpoint::CreateBucket { bucket } => bucket::create_bucket(&ctx, &bucket, body).await,
        Endpoint::DeleteBucket { bucket } => bucket::delete_bucket(&ctx, &bucket).await,
        Endpoint::HeadBucket { bucket } => bucket::head_bucket(&ctx, &bucket),
        Endpoint::GetBucketLocation { bucket } => bucket::location(&ctx, &bucket),
        Endpoint::ListObjectsV1 { bucket } => bucket::list_objects(&ctx, &bucket, false).await,
        Endpoint::ListObjectsV2 { bucket } => bucket::list_objects(&ctx, &bucket, true).await,
        Endpoint::DeleteObjects { bucket } => bucket::delete_objects(&ctx, &bucket, body).await,
        Endpoint::PutObject { bucket, key } => object::put(ctx, &bucket, &key, body).await,
        Endpoint::GetObject {
            bucket,
            key,
            part_number,
        } => object::get(&ctx, &bucket, &key, part_number, false).await,
        Endpoint::HeadObject {
            bucket,
            key,
            part_number,
        } => object::get(&ctx, &bucket, &key, part_number, true).await,
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
        Endpoint::GetObjectTagging { bucket, key } => tagging::get(&ctx, &bucket, &key).await,
        Endpoint::GetObjectAttributes { bucket, key } => {
            object::attributes(&ctx, &bucket, &key).await
        }
        Endpoint::PutObjectTagging { bucket, key } => tagging::put(&ctx, &bucket, &key, body).await,
        Endpoint::DeleteObjectTagging { bucket, key } => tagging::delete(&ctx, &bucket, &key).await,
        Endpoint::Preflight { .. } | Endpoint::PostObject { .. } | Endpoint::Unsupported => {
            Err(Error::NotImplemented)
        }
    }
}

/// The rate-limit class of an S3 operation: writes, downloads through a download link, reads.
fn route_class(endpoint: &Endpoint, query: &Query) -> RouteClass {
    if endpoint.writes() {
        RouteClass::S3Write
    } else if matches!(
        endpoint,
        Endpoint::GetObject { .. } | Endpoint::HeadObject { .. }
    ) && query.has(DOWNLOAD_PARAM)
    {
        RouteClass::Download
    } else {
        RouteClass::S3Read
    }
}

/// Answers a CORS preflight from the bucket's rules: 200 with the allow headers, or 403; an
/// `OPTIONS` that is no preflight (no `Origin` or no `Access-Control-Request-Method`) is a
/// 400, as in S3.
fn preflight(state: &AppState, headers: &http::HeaderMap, bucket: &str) -> Result<Response<Body>> {
    crate::cors::preflight_response(&state.bucket(bucket)?.cors, headers)
}

/// Whether a caller of `tenant` (`None`: an operator key) may use the run-time bucket `b`: an
/// operator's bucket is shared like a configured one, a tenant's bucket is that tenant's.
pub(crate) fn may_use(tenant: Option<&str>, b: &RuntimeBucket) -> bool {
    match (tenant, b.tenant_id.as_deref()) {
        (Some(caller), Some(owner)) => caller == owner,
        _ => true,
    }
}

/// Resolves `bucket` for this request (so that [`AppState::bucket`] answers for a run-time
/// bucket) and refuses a caller confined to `scope` another tenant's run-time bucket. An
/// unknown bucket passes: the handler answers NoSuchBucket.
pub(crate) async fn admit_bucket(
    state: &AppState,
    bucket: &str,
    scope: Option<&str>,
) -> Result<()> {
    let tenant = crate::upload::quota::tenant_of_scope(scope);
    match state.resolve_bucket(bucket).await? {
        Some(BucketSource::Runtime(b)) if !may_use(tenant, &b) => Err(Error::AccessDenied(
            "This bucket belongs to another tenant.",
        )),
        _ => Ok(()),
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
    let parsed =
        crate::auth::parse(&head, &state.auth_policy, SystemTime::now()).map_err(auth_error)?;
    let (secret, scope) = state.credentials.lookup_key(parsed.access_key_id()).await?;
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
    // `Connection: close` when a body may be left unread: added at the edge, for every front end.
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
