//! The two-step entry points — [`parse`] (no key needed) and [`ParsedAuth::verify`] (with the
//! secret) — the proof type [`Verified`], the body contract [`PayloadMode`] and [`AuthError`].
//!
//! # Check order
//!
//! Checks run in one fixed order, so a request with several faults always gets the same answer:
//!
//! 1. Locate the signature: more than one `Authorization` header, or a header plus query
//!    signature parameters, or SigV2 plus SigV4 query parameters → [`AuthError::Ambiguous`];
//!    none → [`AuthError::Missing`]. Invalid `%`-escapes in the query fail here
//!    ([`AuthError::MalformedRequestTarget`]), since the query cannot be read without decoding.
//! 2. Single-valued headers (`host`, `x-amz-date`, `date`, `x-amz-content-sha256`,
//!    `content-md5`, `content-type`) repeated → [`AuthError::DuplicateHeader`].
//! 3. Scheme-specific parsing, in this order for SigV4 (see [`crate::auth::sigv4`]): query
//!    parameters present once each; algorithm; credential syntax; region; service; terminal;
//!    signed-header list syntax; request date; credential date = request date; expiry value;
//!    time (skew, not-yet-valid, expired); `host` signed; every signed header present; every
//!    `x-amz-*` header signed; payload mode. SigV2: disabled?; parameters; expiry; time.
//! 4. [`ParsedAuth::verify`]: canonical request from the same head (path or query encoding errors
//!    → [`AuthError::MalformedRequestTarget`]), then a constant-time signature comparison.

use std::time::SystemTime;

use http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use super::encoding::{self, QueryPair};
use super::sigv2::{self, ParsedV2};
use super::sigv4::{self, ChunkSigner, ParsedV4};
use super::{AuthPolicy, RequestHead, Scheme, SecretKey};

/// Why a request failed authentication. One variant per reason; none carries a secret, a
/// computed signature or a provided signature.
///
/// Each variant documents the S3 error it should map to (status and code). Where the code differs
/// between header auth and query (presigned) auth, both are given; the status is the same.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header and no query signature: an anonymous request.
    /// → 403 AccessDenied where the route needs authentication.
    #[error("request is not signed")]
    Missing,
    /// An `Authorization` header that is present but empty (T-B1). → 403 AccessDenied.
    #[error("Authorization header is empty")]
    EmptyAuthorization,
    /// Two `Authorization` headers, or an `Authorization` header together with query signature
    /// parameters, or SigV2 and SigV4 query parameters together (T-A10). Never "pick the first".
    /// → 400 InvalidRequest.
    #[error("request carries more than one signature")]
    Ambiguous,
    /// A header that must appear once appears more than once (`host`, `x-amz-date`, `date`,
    /// `x-amz-content-sha256`, `content-md5`, `content-type`). → 400 InvalidRequest.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// A required presigned parameter is missing (SigV4: the six `X-Amz-*` parameters; SigV2:
    /// `AWSAccessKeyId`, `Signature`, `Expires`). → 400 AuthorizationQueryParametersError.
    #[error("query parameter {0} is missing")]
    MissingQueryParam(&'static str),
    /// A presigned parameter appears more than once. → 400 AuthorizationQueryParametersError.
    #[error("query parameter {0} appears more than once")]
    DuplicateParam(&'static str),
    /// Not `AWS4-HMAC-SHA256` (or `AWS` for SigV2): e.g. `AWS4-HMAC-SHA1`, SigV4a ECDSA.
    /// → 400 AuthorizationQueryParametersError (query) / 400 InvalidArgument (header).
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// The `Authorization` header cannot be parsed (components missing, repeated or unknown,
    /// non-ASCII). → 400 AuthorizationHeaderMalformed.
    #[error("Authorization header is malformed")]
    MalformedAuthorization,
    /// The credential is not `AKID/YYYYMMDD/region/service/aws4_request` (SigV4) or the SigV2
    /// access key id is empty. → 400 AuthorizationHeaderMalformed (header) /
    /// AuthorizationQueryParametersError (query).
    #[error("credential is malformed")]
    MalformedCredential,
    /// The signed-header list is empty, not lower-case, not strictly sorted, or repeats a name.
    /// → 400 AuthorizationHeaderMalformed (header) / AuthorizationQueryParametersError (query).
    #[error("signed header list is malformed")]
    MalformedSignedHeaders,
    /// The credential scope date differs from the request date's day.
    /// → 400 AuthorizationHeaderMalformed (header) / AuthorizationQueryParametersError (query).
    #[error("credential date does not match the request date")]
    CredentialDateMismatch,
    /// The credential scope region is not the configured region.
    /// → 400 AuthorizationHeaderMalformed (header) / AuthorizationQueryParametersError (query).
    #[error("credential region is not this service's region")]
    InvalidRegion,
    /// The credential scope service is not `s3`.
    /// → 400 AuthorizationHeaderMalformed (header) / AuthorizationQueryParametersError (query).
    #[error("credential service is not s3")]
    InvalidService,
    /// The credential scope does not end in `aws4_request`.
    /// → 400 AuthorizationHeaderMalformed (header) / AuthorizationQueryParametersError (query).
    #[error("credential scope terminal is not aws4_request")]
    InvalidTerminal,
    /// No usable request date: `x-amz-date` not strict `YYYYMMDDTHHMMSSZ`, `Date` not an HTTP
    /// date, neither present (header auth), or `X-Amz-Date` malformed (query auth).
    /// → 403 AccessDenied (header) / 400 AuthorizationQueryParametersError (query).
    #[error("request date is missing or malformed")]
    InvalidDate,
    /// `X-Amz-Expires` (or SigV2 `Expires`) is not plain ASCII digits, is 0, or exceeds the
    /// configured maximum (negative, `+`, exponent, non-numeric all land here).
    /// → 400 AuthorizationQueryParametersError (pinned decision).
    #[error("expiry is out of range or malformed")]
    ExpiresInvalid,
    /// A presigned request arrived after its expiry. → 403 AccessDenied ("Request has expired").
    #[error("request has expired")]
    Expired,
    /// A presigned request is dated further in the future than the allowed skew.
    /// → 403 AccessDenied ("Request is not valid yet").
    #[error("request is not valid yet")]
    NotYetValid,
    /// Header auth whose date is further than the allowed skew from our clock.
    /// → 403 RequestTimeTooSkewed.
    #[error("request time is too skewed")]
    TimeTooSkewed,
    /// `host` is not in the signed headers. → 400 AccessDenied ("There were headers present in
    /// the request which were not signed").
    #[error("host header is not signed")]
    HostNotSigned,
    /// An `x-amz-*` request header (e.g. `x-amz-meta-*`) is not covered by the signature.
    /// → 400 AccessDenied ("There were headers present in the request which were not signed").
    #[error("request has x-amz-* headers that are not signed")]
    UnsignedHeaders,
    /// A header named in the signed headers is absent from the request (the name is given).
    /// → 400 AccessDenied.
    #[error("signed header {0} is missing from the request")]
    MissingSignedHeader(String),
    /// Header auth without `x-amz-content-sha256`. → 400 InvalidRequest ("Missing required header
    /// for this request: x-amz-content-sha256").
    #[error("x-amz-content-sha256 header is missing")]
    MissingContentSha256,
    /// `x-amz-content-sha256` is neither 64 hex digits nor a known sentinel.
    /// → 400 InvalidArgument.
    #[error("x-amz-content-sha256 value is invalid")]
    InvalidContentSha256,
    /// A recognised payload mode this gateway does not accept (the SigV4a
    /// `STREAMING-AWS4-ECDSA-P256-SHA256-*` forms). Never accepted. → 400 InvalidArgument
    /// (501 NotImplemented is also defensible; pin one in the error mapping).
    #[error("payload signing mode is not supported")]
    UnsupportedPayloadMode,
    /// The raw path or query has an invalid `%`-escape, or the path does not start with `/`.
    /// → 400 InvalidArgument.
    #[error("request target is not validly percent-encoded")]
    MalformedRequestTarget,
    /// The signature does not match (also for any provided signature that is not the expected
    /// lower-case hex / base64 string). → 403 SignatureDoesNotMatch.
    #[error("signature does not match")]
    SignatureMismatch,
    /// A SigV2 request while [`AuthPolicy::allow_sigv2`] is off. → 400 InvalidRequest ("Please
    /// use AWS4-HMAC-SHA256").
    #[error("signature version 2 is disabled")]
    SigV2Disabled,
}

/// SigV4 presigned parameter names; any one of them in the query makes the request a SigV4
/// query-auth attempt, which then needs all six.
pub(crate) const V4_QUERY_PARAMS: [&str; 6] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
];

/// SigV2 presigned parameter names that mark a SigV2 query-auth attempt.
const V2_QUERY_MARKERS: [&str; 2] = ["AWSAccessKeyId", "Signature"];

fn has_any(pairs: &[QueryPair<'_>], names: &[&str]) -> bool {
    pairs
        .iter()
        .any(|p| names.iter().any(|n| *p.name == *n.as_bytes()))
}

/// Step 1 (pure, no key lookup): works out which scheme the request uses and runs every check
/// that needs no key, in the order documented in this module.
///
/// `now` is our wall clock; it is compared with the request date (skew) and the presigned expiry
/// (checked here, once, at the start of the request). Returns [`AuthError::Missing`] for an
/// anonymous request; the caller decides whether the route allows that.
pub fn parse(
    head: &RequestHead<'_>,
    policy: &AuthPolicy,
    now: SystemTime,
) -> Result<ParsedAuth, AuthError> {
    let mut auth_headers = head.headers.get_all(AUTHORIZATION).iter();
    let auth_header = auth_headers.next();
    if auth_headers.next().is_some() {
        return Err(AuthError::Ambiguous);
    }
    let pairs = encoding::parse_query(head.raw_query)?;
    let v4_query = has_any(&pairs, &V4_QUERY_PARAMS);
    let v2_query = has_any(&pairs, &V2_QUERY_MARKERS);

    let inner = match (auth_header, v4_query, v2_query) {
        (None, false, false) => return Err(AuthError::Missing),
        (Some(_), true, _) | (Some(_), _, true) | (None, true, true) => {
            return Err(AuthError::Ambiguous);
        }
        (Some(value), false, false) => {
            encoding::reject_duplicate_headers(head.headers)?;
            let value = encoding::trim_ows(value.as_bytes());
            if value.is_empty() {
                return Err(AuthError::EmptyAuthorization);
            }
            let value = std::str::from_utf8(value)
                .ok()
                .filter(|v| v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
                .ok_or(AuthError::MalformedAuthorization)?;
            let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
            match algorithm {
                sigv4::ALGORITHM => Inner::V4(sigv4::parse_header_auth(head, rest, policy, now)?),
                sigv2::ALGORITHM => {
                    if !policy.allow_sigv2 {
                        return Err(AuthError::SigV2Disabled);
                    }
                    Inner::V2(sigv2::parse_header_auth(head, rest, policy, now)?)
                }
                _ => return Err(AuthError::UnsupportedAlgorithm),
            }
        }
        (None, true, false) => {
            encoding::reject_duplicate_headers(head.headers)?;
            Inner::V4(sigv4::parse_query_auth(head, &pairs, policy, now)?)
        }
        (None, false, true) => {
            if !policy.allow_sigv2 {
                return Err(AuthError::SigV2Disabled);
            }
            encoding::reject_duplicate_headers(head.headers)?;
            Inner::V2(sigv2::parse_query_auth(&pairs, policy, now)?)
        }
    };
    Ok(ParsedAuth { inner })
}

/// A request whose authentication parameters passed every key-independent check.
///
/// Contract: only [`parse`] builds it; call [`ParsedAuth::verify`] with the secret for
/// [`ParsedAuth::access_key_id`] and the same [`RequestHead`]. `Debug` redacts the signature.
#[derive(Debug)]
pub struct ParsedAuth {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    V4(ParsedV4),
    V2(ParsedV2),
}

impl ParsedAuth {
    /// The access key id the request claims; look its secret up, then call
    /// [`ParsedAuth::verify`]. An unknown id maps to 403 InvalidAccessKeyId (the caller's call).
    pub fn access_key_id(&self) -> &str {
        match &self.inner {
            Inner::V4(p) => &p.access_key_id,
            Inner::V2(p) => &p.access_key_id,
        }
    }

    /// The scheme [`parse`] recognised.
    pub fn scheme(&self) -> Scheme {
        match &self.inner {
            Inner::V4(p) => p.scheme,
            Inner::V2(p) => p.scheme,
        }
    }

    /// Step 2, after the caller has looked up the secret for [`ParsedAuth::access_key_id`].
    ///
    /// Rebuilds the canonical request from `head` (which must be the head given to [`parse`]),
    /// derives the signing key and compares the signature in constant time. On success returns
    /// the [`Verified`] proof, whose [`PayloadMode`] tells how to treat the body.
    pub fn verify(
        self,
        head: &RequestHead<'_>,
        secret: &SecretKey,
        policy: &AuthPolicy,
    ) -> Result<Verified, AuthError> {
        match self.inner {
            Inner::V4(p) => sigv4::verify_parsed(p, head, secret, policy),
            Inner::V2(p) => sigv2::verify_parsed(p, head, secret),
        }
    }
}

/// Proof that the head of a request was authenticated.
///
/// Contract: only [`ParsedAuth::verify`] constructs it (private fields), so a handler that takes a
/// `Verified` cannot run on an unauthenticated request. The body is not covered yet: enforce
/// [`Verified::payload`] while streaming.
#[derive(Debug)]
pub struct Verified {
    access_key_id: String,
    scheme: Scheme,
    payload: PayloadMode,
    expires_at: Option<SystemTime>,
    signed_headers: Vec<String>,
}

impl Verified {
    /// Builds the proof; callable only inside `auth`, after a signature matched.
    pub(in crate::auth) fn new(
        access_key_id: String,
        scheme: Scheme,
        payload: PayloadMode,
        expires_at: Option<SystemTime>,
        signed_headers: Vec<String>,
    ) -> Self {
        Self {
            access_key_id,
            scheme,
            payload,
            expires_at,
            signed_headers,
        }
    }

    /// The authenticated access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Which scheme authenticated the request.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// How the body must be treated.
    pub fn payload(&self) -> &PayloadMode {
        &self.payload
    }

    /// Takes the payload mode (and with it the [`ChunkSigner`]) for the body stream.
    pub fn into_payload(self) -> PayloadMode {
        self.payload
    }

    /// When a presigned request expires (`X-Amz-Date + X-Amz-Expires`, or SigV2 `Expires`);
    /// `None` for header auth. Expiry was checked at the start of the request; S3 lets a transfer
    /// that started in time finish, so the caller must bound total request duration itself.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Lower-case names of the headers the signature covers, sorted (empty for SigV2, where only
    /// `content-md5`, `content-type`, the date and `x-amz-*` headers are signed implicitly).
    /// Use it to require e.g. `content-type` and `content-length` on upload URLs.
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }
}

/// How the body must be treated, derived from `x-amz-content-sha256` (SigV4). The caller
/// enforces it while streaming, before anything becomes visible.
#[derive(Debug)]
pub enum PayloadMode {
    /// Body not covered by the signature: `UNSIGNED-PAYLOAD`, a presigned URL without a signed
    /// `x-amz-content-sha256` header, or SigV2 (whose `Content-MD5`, if any, the caller checks).
    Unsigned,
    /// The body's SHA-256 must equal this value at end of stream, else 400
    /// XAmzContentSHA256Mismatch.
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: an aws-chunked body whose every chunk
    /// (including the final empty one) and, with `trailer`, the trailer carry chained signatures.
    StreamingSigned {
        /// The chain state, seeded with the request signature.
        signer: ChunkSigner,
        /// `true` for the `-TRAILER` variant: a signed trailer follows the final chunk.
        trailer: bool,
    },
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked framing without chunk signatures; the
    /// trailer checksum is checked against the data.
    StreamingUnsignedTrailer,
}

/// A signature as the client sent it (hex for SigV4, base64 for SigV2), kept as raw bytes.
///
/// No `PartialEq`: compare only with [`ProvidedSignature::matches`], which runs in constant time
/// for equal lengths (a length difference is not secret). `Debug` is redacted because a valid
/// presigned signature is a bearer credential.
pub(crate) struct ProvidedSignature(Vec<u8>);

impl ProvidedSignature {
    /// Wraps the signature bytes exactly as received (after query percent-decoding).
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Constant-time equality with the expected wire form (lower-case hex or base64).
    pub(crate) fn matches(&self, expected: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(expected))
    }
}

impl std::fmt::Debug for ProvidedSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProvidedSignature(<redacted>)")
    }
}

/// Key-independent time checks shared by the schemes.
pub(crate) mod time {
    use std::time::{Duration, SystemTime};

    /// `|a - b| > max`.
    pub(crate) fn differs_by_more_than(a: SystemTime, b: SystemTime, max: Duration) -> bool {
        match a.duration_since(b) {
            Ok(d) => d > max,
            Err(e) => e.duration() > max,
        }
    }

    /// `a > b + max` (a is later than b by more than max).
    pub(crate) fn later_by_more_than(a: SystemTime, b: SystemTime, max: Duration) -> bool {
        a.duration_since(b).is_ok_and(|d| d > max)
    }
}
