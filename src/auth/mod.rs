//! Request authentication: AWS Signature Version 4 (header and presigned query), the aws-chunked
//! chunk/trailer signature chain, and legacy Signature Version 2 (header and query).
//!
//! # Flow
//!
//! Authentication is split in two steps so that the secret-key lookup (an async database call)
//! happens outside this module and only for requests that are well formed:
//!
//! 1. [`parse`] looks at the [`RequestHead`] (method, raw path, raw query, headers) and works out
//!    which scheme the request uses. It runs every check that needs no key, in one fixed order
//!    (see [`verify`] for the order): exactly one signature location, well-formed parameters,
//!    credential scope (date, region, service, terminal), clock skew or presigned expiry, which
//!    headers the signature covers, and the payload mode. It returns a [`ParsedAuth`] holding the
//!    access key id to look up.
//! 2. [`ParsedAuth::verify`] takes the secret for that key, rebuilds the canonical request from the
//!    same head, and compares signatures in constant time. Only this step can construct a
//!    [`Verified`], the proof type that handlers require before they act on a request.
//!
//! The body is not read here. [`Verified::payload`] says how the caller must treat it while
//! streaming: check a SHA-256 at end of stream, verify an aws-chunked signature chain with the
//! [`ChunkSigner`] seeded from the request signature, or nothing (unsigned payload).
//!
//! # Canonical form (S3 semantics)
//!
//! S3 signs the path with a *single* URI encoding and *no* path normalisation: the raw path is
//! percent-decoded once and re-encoded with the AWS rules, so `/a/./b`, `/a//b` and `/a/b` are
//! three different signed resources, and a signature never covers a path other than the one the
//! router sees. See [`sigv4`] for the canonicalisation primitives.
//!
//! # Secrets
//!
//! [`SecretKey`] and [`SigningKey`] are zeroized on drop and print as `<redacted>`. Computed
//! signatures never appear in errors or `Debug` output; provided signatures are redacted too,
//! since a valid presigned signature is a bearer credential.

pub mod cache;
pub mod jwt;
pub mod keys;
pub mod links;
pub mod password;
pub mod post;
pub mod principal;
pub mod signing;
pub mod sigv2;
pub mod sigv4;
pub mod verify;

pub use keys::{Credential, Credentials};

mod encoding;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

pub use sigv4::{ChunkSigner, PresignParams, SigningKey, presign_url};
pub use verify::{AuthError, ParsedAuth, PayloadMode, Verified, parse};

/// Largest presigned-URL lifetime S3 accepts (7 days); [`AuthPolicy::max_presign_expiry`] is
/// additionally clamped to it.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The S3 clock-skew allowance (15 minutes), the usual value of [`AuthPolicy::max_skew`].
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// A secret access key.
///
/// Contract: the bytes are zeroized when the value is dropped; `Debug` prints
/// `SecretKey(<redacted>)`; there is no `Display` and no `PartialEq` (compare signatures, never
/// keys). [`SecretKey::expose`] is the only way to read it.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// Wraps a secret access key. The `String` is moved in and zeroized on drop.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The secret itself, for key derivation. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The request head exactly as the server received it, borrowed.
///
/// Contract: `raw_path` and `raw_query` are the request-target bytes as received (still
/// percent-encoded, no normalisation); `headers` must contain a `host` header (for HTTP/2 the
/// caller copies `:authority` into `host` before calling [`parse`]). The same head must be passed
/// to [`parse`] and to [`ParsedAuth::verify`].
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// The path exactly as received, still percent-encoded, e.g. `/bucket/my%20key`.
    pub raw_path: &'a str,
    /// The query exactly as received, without the leading `?`; `None` when there was no `?`.
    pub raw_query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
}

/// Authentication checks that do not depend on the caller's keys.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// The only region accepted in a credential scope, e.g. `us-east-1`.
    pub region: String,
    /// Longest accepted presigned lifetime (`X-Amz-Expires`, or SigV2 `Expires` minus now).
    /// Validated by the config to be at most 7 days; also clamped to [`MAX_PRESIGN_EXPIRY`] here.
    pub max_presign_expiry: Duration,
    /// Allowed clock skew between the request date and our clock; [`DEFAULT_MAX_SKEW`] in S3.
    pub max_skew: Duration,
    /// Whether legacy SigV2 requests are accepted at all. Off: they fail with
    /// [`AuthError::SigV2Disabled`].
    pub allow_sigv2: bool,
}

impl AuthPolicy {
    /// The presign expiry limit actually enforced: the configured value, at most 7 days.
    pub(crate) fn effective_max_expiry(&self) -> Duration {
        self.max_presign_expiry.min(MAX_PRESIGN_EXPIRY)
    }
}

/// The authentication scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// SigV4, `Authorization: AWS4-HMAC-SHA256 ...` header.
    HeaderV4,
    /// SigV4 presigned URL (`X-Amz-Signature` in the query).
    QueryV4,
    /// SigV2, `Authorization: AWS AKID:signature` header.
    HeaderV2,
    /// SigV2 presigned URL (`AWSAccessKeyId`, `Signature`, `Expires` in the query).
    QueryV2,
}
