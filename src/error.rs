//! The one error type of the request path, and its exhaustive mapping to an HTTP status and an
//! S3 error code.
//!
//! Every failure a client can cause or observe is a variant here. Module-private errors (auth,
//! storage, metadata, XML) convert into it *by meaning* at the module boundary, so handlers only
//! ever see this enum. The mapping in [`Error::status`] / [`Error::code`] has no catch-all arm:
//! adding a variant forces a decision about what the client sees.
//!
//! Messages are fixed strings chosen here; nothing from the internals (paths, SQL, backend error
//! text, signatures) ever reaches a client. Internal causes are logged once, at the edge, by
//! [`Error::log_cause`].

use http::StatusCode;

/// A request failure, by meaning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- authentication -------------------------------------------------------------------
    /// No credentials, an unknown principal, or a principal without the right.
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    /// The access key id is not known.
    #[error("unknown access key")]
    InvalidAccessKeyId,
    /// The signature did not verify.
    #[error("signature mismatch")]
    SignatureDoesNotMatch,
    /// A presigned URL's query parameters are missing, duplicated or out of range.
    #[error("bad presigned query: {0}")]
    AuthorizationQueryParametersError(&'static str),
    /// The Authorization header cannot be parsed, or its scope is wrong.
    #[error("malformed authorization: {0}")]
    AuthorizationHeaderMalformed(&'static str),
    /// Headers that must be signed are not (`host`, `x-amz-*`), or a signed header is absent.
    /// S3 answers this with a 400 AccessDenied.
    #[error("unsigned headers")]
    UnsignedHeaders(&'static str),
    /// A presigned request used after its expiry.
    #[error("request has expired")]
    RequestExpired,
    /// A presigned request dated further in the future than the allowed skew.
    #[error("request is not valid yet")]
    RequestNotYetValid,
    /// Header auth with a date outside the allowed clock skew.
    #[error("request time too skewed")]
    RequestTimeTooSkewed,
    /// Two ways of authenticating in one request, or another ambiguous request.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A request header or parameter has an invalid value.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A request S3 refuses with its generic `BadRequest` code (a CORS preflight without the
    /// headers that make it one).
    #[error("bad request: {0}")]
    BadRequest(&'static str),

    // ---- addressing ------------------------------------------------------------------------
    /// Control API: no credentials, or credentials that are not valid (401).
    #[error("unauthorized")]
    Unauthorized,
    /// Control API: the resource does not exist or is not the caller's (the same answer).
    #[error("not found")]
    NotFound,
    /// Control API: a resource with that name exists already.
    #[error("already exists")]
    AlreadyExists,
    /// The tenant's storage quota (bytes or objects) would be exceeded.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// A single-use link is being used by another request right now.
    #[error("link in use")]
    LinkInUse,
    /// A resumable upload is being appended to by another request right now (retry).
    #[error("upload locked")]
    UploadLocked,
    /// A resumable append at `provided`, while the upload's offset is `expected`.
    #[error("offset mismatch")]
    OffsetMismatch { expected: u64, provided: u64 },
    /// An append to a resumable upload that is complete already.
    #[error("upload complete")]
    UploadComplete,
    /// A resumable upload's length declared twice, differently (or below what was received).
    #[error("inconsistent upload length")]
    InconsistentLength,
    /// A resumable upload that was terminated or has expired.
    #[error("gone")]
    Gone,
    /// A request body (JSON) that cannot be parsed or has invalid values.
    #[error("invalid json: {0}")]
    InvalidJson(&'static str),
    /// The bucket is not configured.
    #[error("no such bucket")]
    NoSuchBucket,
    /// No committed object at the key.
    #[error("no such key")]
    NoSuchKey,
    /// The multipart upload does not exist, or belongs to someone else (not revealed).
    #[error("no such upload")]
    NoSuchUpload,
    /// The object key is not acceptable (empty, too long, `..` segment, control characters).
    #[error("invalid object name")]
    InvalidObjectName,
    /// The object key is longer than S3 allows (1024 bytes).
    #[error("key too long")]
    KeyTooLong,
    /// The request path cannot be taken as a key (control characters).
    #[error("invalid uri")]
    InvalidUri,
    /// `CreateBucket` for a bucket that already exists and is ours.
    #[error("bucket already owned by you")]
    BucketAlreadyOwnedByYou,
    /// CreateBucket of a name another owner (or the configuration) holds.
    #[error("bucket already exists")]
    BucketAlreadyExists,
    /// DeleteBucket of a bucket that still holds objects or uploads.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// A bucket name S3 would refuse, or one the web pages' paths would hide.
    #[error("invalid bucket name")]
    InvalidBucketName,
    /// CreateBucket past the tenant's bucket quota (`s3.tenant_max_buckets`).
    #[error("too many buckets")]
    TooManyBuckets,
    /// CreateBucket for a region other than the gateway's.
    #[error("invalid location constraint")]
    InvalidLocationConstraint,
    /// GET/HEAD by a part number the object does not have.
    #[error("invalid part number")]
    InvalidPartNumber,
    /// The method is not allowed on this resource.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// An S3 operation upgate does not implement.
    #[error("not implemented")]
    NotImplemented,

    // ---- body and integrity ----------------------------------------------------------------
    /// A PUT without a length (neither Content-Length nor a decoded length for aws-chunked).
    #[error("missing content length")]
    MissingContentLength,
    /// Declared or streamed size above the bucket limit.
    #[error("entity too large")]
    EntityTooLarge,
    /// The body ended before the declared length, or carried more than declared.
    #[error("incomplete body")]
    IncompleteBody,
    /// A part that is not the last one is below the minimum part size.
    #[error("entity too small")]
    EntityTooSmall,
    /// A part listed for completion was not uploaded, or its ETag/checksum differs.
    #[error("invalid part")]
    InvalidPart,
    /// Parts listed for completion are not in ascending order.
    #[error("invalid part order")]
    InvalidPartOrder,
    /// aws-chunked framing is malformed.
    #[error("malformed chunked encoding")]
    InvalidChunkEncoding,
    /// A digest header (`Content-MD5`, `x-amz-checksum-*`) is syntactically invalid.
    #[error("invalid digest")]
    InvalidDigest,
    /// A digest does not match the bytes received.
    #[error("bad digest")]
    BadDigest,
    /// The signed `x-amz-content-sha256` does not match the bytes received.
    #[error("content sha256 mismatch")]
    ContentSha256Mismatch,
    /// The declared content type is not allowed in this bucket.
    #[error("content type not allowed")]
    ContentTypeNotAllowed,
    /// The first bytes of the body do not match the declared (or any allowed) type.
    #[error("content does not match its type")]
    ContentTypeMismatch,
    /// The content would be dangerous to open (PDF active content, …); the reason is fixed text.
    #[error("content rejected: {0}")]
    ContentRejected(&'static str),
    /// A POST policy document that is malformed, or whose expiry is too far away.
    #[error("invalid policy document")]
    InvalidPolicyDocument(&'static str),
    /// A POST form that breaks the signed policy (a condition fails, an uncovered field, or the
    /// policy expired). S3 answers 403 AccessDenied "Invalid according to Policy".
    #[error("policy condition failed")]
    PolicyConditionFailed(&'static str),
    /// A POST form that is not a valid multipart/form-data upload.
    #[error("malformed post request")]
    MalformedPostRequest(&'static str),
    /// A request body (XML) that cannot be parsed.
    #[error("malformed xml")]
    MalformedXml,
    /// Range not satisfiable.
    #[error("invalid range")]
    InvalidRange,
    /// A conditional request's precondition failed.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A conditional write whose precondition held when it started but not at its commit
    /// (another write or delete of the key committed meanwhile); the client may retry.
    #[error("conditional request conflict")]
    ConditionalRequestConflict,
    /// An object tag that breaks S3's rules (length, characters, a repeated key).
    #[error("invalid tag: {0}")]
    InvalidTag(&'static str),
    /// User metadata (`x-amz-meta-*`) above S3's 2 KB limit.
    #[error("metadata too large")]
    MetadataTooLarge,
    /// The client stopped sending the body for longer than the idle timeout.
    #[error("request timeout")]
    RequestTimeout,

    // ---- capacity and infrastructure -------------------------------------------------------
    /// Rate limited or overloaded; the client should retry after this many seconds.
    #[error("slow down")]
    SlowDown(u64),
    /// A dependency (backend, database) failed or timed out; retry later.
    #[error("service unavailable")]
    ServiceUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected condition. The cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps an unexpected internal failure.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(e.into())
    }

    /// Wraps a dependency failure that a retry may cure.
    pub fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::ServiceUnavailable(e.into())
    }

    /// The HTTP status for this error (S3 conventions).
    pub fn status(&self) -> StatusCode {
        use Error::*;
        match self {
            AccessDenied(_)
            | QuotaExceeded
            | PolicyConditionFailed(_)
            | InvalidAccessKeyId
            | SignatureDoesNotMatch
            | RequestExpired
            | RequestNotYetValid
            | RequestTimeTooSkewed => StatusCode::FORBIDDEN,
            AuthorizationQueryParametersError(_)
            | UnsignedHeaders(_)
            | AuthorizationHeaderMalformed(_)
            | InvalidRequest(_)
            | InvalidArgument(_)
            | BadRequest(_)
            | InvalidObjectName
            | KeyTooLong
            | InvalidUri
            | MetadataTooLarge
            | InvalidTag(_)
            | EntityTooLarge
            | EntityTooSmall
            | InvalidPart
            | InvalidPartOrder
            | IncompleteBody
            | InvalidChunkEncoding
            | InvalidDigest
            | BadDigest
            | ContentSha256Mismatch
            | MalformedXml
            | InvalidPolicyDocument(_)
            | MalformedPostRequest(_)
            | RequestTimeout => StatusCode::BAD_REQUEST,
            NoSuchBucket | NoSuchKey | NoSuchUpload | NotFound => StatusCode::NOT_FOUND,
            Unauthorized => StatusCode::UNAUTHORIZED,
            LinkInUse | AlreadyExists | OffsetMismatch { .. } => StatusCode::CONFLICT,
            UploadLocked => StatusCode::LOCKED,
            UploadComplete | InconsistentLength => StatusCode::BAD_REQUEST,
            Gone => StatusCode::GONE,
            InvalidJson(_) => StatusCode::BAD_REQUEST,
            BucketAlreadyOwnedByYou | BucketAlreadyExists | BucketNotEmpty => StatusCode::CONFLICT,
            InvalidBucketName | TooManyBuckets | InvalidLocationConstraint => {
                StatusCode::BAD_REQUEST
            }
            InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            NotImplemented => StatusCode::NOT_IMPLEMENTED,
            MissingContentLength => StatusCode::LENGTH_REQUIRED,
            ContentTypeNotAllowed | ContentTypeMismatch => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ContentRejected(_) => StatusCode::BAD_REQUEST,
            InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ConditionalRequestConflict => StatusCode::CONFLICT,
            SlowDown(_) | ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The S3 error code (the `<Code>` element).
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            AccessDenied(_)
            | UnsignedHeaders(_)
            | RequestExpired
            | RequestNotYetValid
            | PolicyConditionFailed(_) => "AccessDenied",
            InvalidPolicyDocument(_) => "InvalidPolicyDocument",
            MalformedPostRequest(_) => "MalformedPOSTRequest",
            InvalidAccessKeyId => "InvalidAccessKeyId",
            SignatureDoesNotMatch => "SignatureDoesNotMatch",
            AuthorizationQueryParametersError(_) => "AuthorizationQueryParametersError",
            AuthorizationHeaderMalformed(_) => "AuthorizationHeaderMalformed",
            RequestTimeTooSkewed => "RequestTimeTooSkewed",
            InvalidRequest(_) => "InvalidRequest",
            InvalidArgument(_) => "InvalidArgument",
            BadRequest(_) => "BadRequest",
            NoSuchBucket => "NoSuchBucket",
            NoSuchKey => "NoSuchKey",
            NoSuchUpload => "NoSuchUpload",
            Unauthorized => "Unauthorized",
            NotFound => "NotFound",
            LinkInUse => "Conflict",
            UploadLocked => "UploadLocked",
            UploadComplete => "UploadComplete",
            InconsistentLength => "InconsistentUploadLength",
            OffsetMismatch { .. } => "OffsetMismatch",
            Gone => "Gone",
            AlreadyExists => "AlreadyExists",
            QuotaExceeded => "QuotaExceeded",
            InvalidJson(_) => "InvalidJson",
            EntityTooSmall => "EntityTooSmall",
            InvalidPart => "InvalidPart",
            InvalidPartOrder => "InvalidPartOrder",
            InvalidObjectName => "InvalidObjectName",
            KeyTooLong => "KeyTooLongError",
            InvalidUri => "InvalidURI",
            MetadataTooLarge => "MetadataTooLarge",
            InvalidTag(_) => "InvalidTag",
            ConditionalRequestConflict => "ConditionalRequestConflict",
            BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            BucketAlreadyExists => "BucketAlreadyExists",
            BucketNotEmpty => "BucketNotEmpty",
            InvalidBucketName => "InvalidBucketName",
            TooManyBuckets => "TooManyBuckets",
            InvalidLocationConstraint => "InvalidLocationConstraint",
            InvalidPartNumber => "InvalidPartNumber",
            MethodNotAllowed => "MethodNotAllowed",
            NotImplemented => "NotImplemented",
            MissingContentLength => "MissingContentLength",
            EntityTooLarge => "EntityTooLarge",
            IncompleteBody => "IncompleteBody",
            InvalidChunkEncoding => "InvalidChunkEncoding",
            InvalidDigest => "InvalidDigest",
            BadDigest => "BadDigest",
            ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            ContentTypeNotAllowed => "InvalidContentType",
            ContentTypeMismatch => "ContentTypeMismatch",
            ContentRejected(_) => "ContentRejected",
            MalformedXml => "MalformedXML",
            InvalidRange => "InvalidRange",
            PreconditionFailed => "PreconditionFailed",
            RequestTimeout => "RequestTimeout",
            SlowDown(_) => "SlowDown",
            ServiceUnavailable(_) => "ServiceUnavailable",
            Internal(_) => "InternalError",
        }
    }

    /// The client-facing message: fixed text, never internals.
    pub fn message(&self) -> &'static str {
        use Error::*;
        match self {
            AccessDenied(why)
            | UnsignedHeaders(why)
            | PolicyConditionFailed(why)
            | InvalidPolicyDocument(why)
            | MalformedPostRequest(why) => why,
            RequestExpired => "Request has expired",
            RequestNotYetValid => "Request is not valid yet",
            InvalidAccessKeyId => "The access key Id you provided does not exist in our records.",
            SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided."
            }
            AuthorizationQueryParametersError(why) => why,
            AuthorizationHeaderMalformed(why) => why,
            RequestTimeTooSkewed => {
                "The difference between the request time and the server's time is too large."
            }
            InvalidRequest(why) => why,
            InvalidArgument(why) => why,
            BadRequest(why) => why,
            InvalidTag(why) => why,
            NoSuchBucket => "The specified bucket does not exist.",
            NoSuchKey => "The specified key does not exist.",
            NoSuchUpload => "The specified multipart upload does not exist.",
            Unauthorized => "Missing or invalid credentials.",
            NotFound => "Not found.",
            LinkInUse => "This upload link is being used by another request.",
            UploadLocked => "Another request is appending to this upload; retry.",
            UploadComplete => "The upload is complete.",
            InconsistentLength => "The upload length differs from the one declared before.",
            OffsetMismatch { .. } => "The offset does not match the upload's offset.",
            Gone => "This upload was terminated or has expired.",
            AlreadyExists => "A resource with this name already exists.",
            QuotaExceeded => "The tenant's storage quota would be exceeded.",
            InvalidJson(why) => why,
            EntityTooSmall => "Your proposed upload is smaller than the minimum allowed size.",
            InvalidPart => {
                "One or more of the specified parts could not be found or did not match."
            }
            InvalidPartOrder => "The list of parts was not in ascending order.",
            InvalidObjectName => "Object name contains unsupported characters or segments.",
            KeyTooLong => "Your key is too long.",
            InvalidUri => "Couldn't parse the specified URI.",
            MetadataTooLarge => "Your metadata headers exceed the maximum allowed metadata size.",
            ConditionalRequestConflict => {
                "A conflicting operation occurred. If using PutObject you can retry the request."
            }
            BucketAlreadyOwnedByYou => "The bucket already exists and is owned by you.",
            BucketAlreadyExists => {
                "The requested bucket name is not available. Please select a different name and \
                 try again."
            }
            BucketNotEmpty => "The bucket you tried to delete is not empty.",
            InvalidBucketName => "The specified bucket is not valid.",
            TooManyBuckets => "You have attempted to create more buckets than allowed.",
            InvalidLocationConstraint => "The specified location-constraint is not valid.",
            InvalidPartNumber => "The requested partnumber is not satisfiable.",
            MethodNotAllowed => "The specified method is not allowed against this resource.",
            NotImplemented => "This operation is not implemented by upgate.",
            MissingContentLength => "You must provide the Content-Length HTTP header.",
            EntityTooLarge => "Your proposed upload exceeds the maximum allowed size.",
            IncompleteBody => "The body does not have the length that was declared.",
            InvalidChunkEncoding => "The aws-chunked body is malformed.",
            InvalidDigest => "A digest header is not valid.",
            BadDigest => "A digest you specified did not match what we received.",
            ContentSha256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            }
            ContentTypeNotAllowed => "This content type is not accepted in this bucket.",
            ContentTypeMismatch => "The content does not match an accepted content type.",
            ContentRejected(_) => {
                "The content was refused by a content check (active content is not accepted)."
            }
            MalformedXml => "The XML you provided was not well-formed.",
            InvalidRange => "The requested range is not satisfiable.",
            PreconditionFailed => "At least one of the preconditions you specified did not hold.",
            RequestTimeout => "Your socket connection was idle for too long.",
            SlowDown(_) => "Please reduce your request rate.",
            ServiceUnavailable(_) => "Service is unavailable; please retry.",
            Internal(_) => "We encountered an internal error. Please try again.",
        }
    }

    /// The rejection reason label for metrics (a small, fixed set).
    pub fn reason(&self) -> &'static str {
        use Error::*;
        match self {
            SignatureDoesNotMatch | InvalidAccessKeyId => "signature",
            RequestExpired | RequestNotYetValid | RequestTimeTooSkewed => "expired",
            AccessDenied(_) | UnsignedHeaders(_) | PolicyConditionFailed(_) => "access_denied",
            InvalidPolicyDocument(_) | MalformedPostRequest(_) => "malformed",
            AuthorizationQueryParametersError(_)
            | AuthorizationHeaderMalformed(_)
            | InvalidRequest(_)
            | InvalidArgument(_)
            | BadRequest(_)
            | InvalidTag(_)
            | InvalidObjectName
            | KeyTooLong
            | InvalidUri
            | MalformedXml
            | InvalidChunkEncoding
            | MissingContentLength
            | IncompleteBody
            | InvalidRange
            | InvalidPartNumber
            | InvalidBucketName
            | InvalidLocationConstraint
            | MethodNotAllowed => "malformed",
            EntityTooLarge | MetadataTooLarge => "too_large",
            EntityTooSmall | InvalidPart | InvalidPartOrder => "malformed",
            ContentTypeNotAllowed | ContentTypeMismatch => "type",
            ContentRejected(_) => "content",
            InvalidDigest | BadDigest | ContentSha256Mismatch => "checksum",
            NoSuchBucket | NoSuchKey | NoSuchUpload | NotFound => "not_found",
            Unauthorized => "access_denied",
            LinkInUse | AlreadyExists | UploadLocked | OffsetMismatch { .. } => "precondition",
            Gone => "not_found",
            UploadComplete | InconsistentLength => "malformed",
            QuotaExceeded | TooManyBuckets => "quota",
            InvalidJson(_) => "malformed",
            BucketAlreadyOwnedByYou
            | BucketAlreadyExists
            | BucketNotEmpty
            | PreconditionFailed
            | ConditionalRequestConflict => "precondition",
            NotImplemented => "unsupported",
            RequestTimeout => "timeout",
            SlowDown(_) => "rate_limited",
            ServiceUnavailable(_) => "unavailable",
            Internal(_) => "internal",
        }
    }

    /// The HTTP status on the JSON control API, where HTTP conventions apply instead of S3's:
    /// oversize is 413 and rate limiting 429 (pinned in the security catalogue).
    pub fn api_status(&self) -> StatusCode {
        match self {
            Error::EntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::ContentRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::SlowDown(_) => StatusCode::TOO_MANY_REQUESTS,
            other => other.status(),
        }
    }

    /// Seconds a client should wait before retrying, for errors that ask for a retry.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::SlowDown(secs) => Some((*secs).max(1)),
            Error::ServiceUnavailable(_) | Error::UploadLocked => Some(1),
            // Another attempt holds the link (or held it and died): its claim runs out soon.
            Error::LinkInUse => Some(5),
            _ => None,
        }
    }

    /// Logs the internal cause of server-side failures, once, at the edge. Client errors are
    /// logged by the access log line only (their status says enough).
    pub fn log_cause(&self, request_id: &str) {
        match self {
            Error::Internal(e) => tracing::error!(request_id, error = %e, "internal error"),
            Error::ServiceUnavailable(e) => {
                tracing::warn!(request_id, error = %e, "dependency unavailable")
            }
            _ => {}
        }
    }
}

/// Result alias for the request path.
pub type Result<T, E = Error> = std::result::Result<T, E>;
