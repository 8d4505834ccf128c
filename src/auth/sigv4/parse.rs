//! Parsing a SigV4 header or presigned-query request into [`ParsedV4`] (every key-independent
//! check, in a fixed order), and verifying it once the secret is known.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::{
    ALGORITHM, ChunkSigner, SERVICE, STREAMING_ECDSA_PREFIX, STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER, TERMINAL, UNSIGNED_PAYLOAD,
    canonical_request, credential_scope, parse_amz_date, signing_key, string_to_sign,
};
use crate::auth::encoding::{QueryPair, single_header, trim_ows};
use crate::auth::verify::{ProvidedSignature, V4_QUERY_PARAMS, Verified, time};
use crate::auth::{AuthError, AuthPolicy, PayloadMode, RequestHead, Scheme, SecretKey};

/// A SigV4 request that passed every key-independent check.
#[derive(Debug)]
pub(crate) struct ParsedV4 {
    pub(crate) scheme: Scheme,
    pub(crate) access_key_id: String,
    /// `YYYYMMDD` from the credential scope (equal to the request date's day).
    scope_date: String,
    region: String,
    /// The request timestamp as it enters the string to sign, `YYYYMMDDTHHMMSSZ`.
    amz_date: String,
    signed_headers: Vec<String>,
    signature: ProvidedSignature,
    /// The last line of the canonical request.
    payload_hash: String,
    payload: PayloadKind,
    expires_at: Option<SystemTime>,
}

/// [`PayloadMode`] before the signature (and so the chunk-chain seed) is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadKind {
    Unsigned,
    Sha256([u8; 32]),
    StreamingSigned { trailer: bool },
    StreamingUnsignedTrailer,
}

/// The parsed `AKID/YYYYMMDD/region/service/aws4_request`.
struct Credential<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
}

/// Splits and checks a credential: structure ([`AuthError::MalformedCredential`]), then region,
/// service and terminal against the policy.
fn parse_credential<'a>(s: &'a str, policy: &AuthPolicy) -> Result<Credential<'a>, AuthError> {
    let mut parts = s.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminal), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(AuthError::MalformedCredential);
    };
    if akid.is_empty()
        || !akid.bytes().all(|b| b.is_ascii_graphic())
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(AuthError::MalformedCredential);
    }
    if region != policy.region {
        return Err(AuthError::InvalidRegion);
    }
    if service != SERVICE {
        return Err(AuthError::InvalidService);
    }
    if terminal != TERMINAL {
        return Err(AuthError::InvalidTerminal);
    }
    Ok(Credential {
        access_key_id: akid,
        date,
        region,
    })
}

/// `tchar` of RFC 9110 minus upper case: what a lower-cased header name may contain.
fn is_lower_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// `a;b;c`: non-empty lower-case names, strictly ascending (so sorted and without repeats).
fn parse_signed_headers(s: &str) -> Result<Vec<String>, AuthError> {
    let mut out: Vec<String> = Vec::new();
    for name in s.split(';') {
        if name.is_empty() || !name.bytes().all(is_lower_token_byte) {
            return Err(AuthError::MalformedSignedHeaders);
        }
        if out.last().is_some_and(|prev| prev.as_str() >= name) {
            return Err(AuthError::MalformedSignedHeaders);
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// Header-coverage rules: `host` signed; every signed header present; every `x-amz-*` header
/// of the request signed.
fn check_header_coverage(headers: &HeaderMap, signed: &[String]) -> Result<(), AuthError> {
    let is_signed = |name: &str| signed.binary_search_by(|s| s.as_str().cmp(name)).is_ok();
    if !is_signed("host") {
        return Err(AuthError::HostNotSigned);
    }
    if let Some(missing) = signed.iter().find(|s| !headers.contains_key(s.as_str())) {
        return Err(AuthError::MissingSignedHeader(missing.clone()));
    }
    if headers
        .keys()
        .any(|name| name.as_str().starts_with("x-amz-") && !is_signed(name.as_str()))
    {
        return Err(AuthError::UnsignedHeaders);
    }
    Ok(())
}

/// Classifies an `x-amz-content-sha256` value. Returns the canonical-request payload line and
/// the payload kind.
fn payload_from_header(value: &[u8]) -> Result<(String, PayloadKind), AuthError> {
    let value =
        std::str::from_utf8(trim_ows(value)).map_err(|_| AuthError::InvalidContentSha256)?;
    let kind = match value {
        UNSIGNED_PAYLOAD => PayloadKind::Unsigned,
        STREAMING_PAYLOAD => PayloadKind::StreamingSigned { trailer: false },
        STREAMING_PAYLOAD_TRAILER => PayloadKind::StreamingSigned { trailer: true },
        STREAMING_UNSIGNED_PAYLOAD_TRAILER => PayloadKind::StreamingUnsignedTrailer,
        v if v.starts_with(STREAMING_ECDSA_PREFIX) => {
            return Err(AuthError::UnsupportedPayloadMode);
        }
        v => {
            let mut digest = [0u8; 32];
            if v.len() != 64 || hex::decode_to_slice(v, &mut digest).is_err() {
                return Err(AuthError::InvalidContentSha256);
            }
            PayloadKind::Sha256(digest)
        }
    };
    Ok((value.to_owned(), kind))
}

/// The request date for header auth: `x-amz-date` (strict ISO 8601 basic) if present (it wins
/// over a `Date` header, as in S3), else the `Date` header (an HTTP date, read as
/// [`crate::clock::parse_http_date`] reads it). Returns the string-to-sign form and the instant.
fn header_auth_date(headers: &HeaderMap) -> Result<(String, SystemTime), AuthError> {
    if let Some(v) = single_header(headers, "x-amz-date")? {
        let s = v.to_str().map_err(|_| AuthError::InvalidDate)?;
        let t = parse_amz_date(s).ok_or(AuthError::InvalidDate)?;
        return Ok((s.to_owned(), t));
    }
    if let Some(v) = single_header(headers, "date")? {
        let s = v.to_str().map_err(|_| AuthError::InvalidDate)?;
        let t = crate::clock::parse_http_date(s).ok_or(AuthError::InvalidDate)?;
        return Ok((super::format_amz_date(t), t));
    }
    Err(AuthError::InvalidDate)
}

/// The three `key=value` components of a SigV4 `Authorization` header, after the algorithm.
fn parse_components(rest: &str) -> Result<(&str, &str, &str), AuthError> {
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',') {
        let component = component.trim_matches(' ');
        let (key, value) = component
            .split_once('=')
            .ok_or(AuthError::MalformedAuthorization)?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(AuthError::MalformedAuthorization),
        };
        if slot.is_some() || value.is_empty() {
            return Err(AuthError::MalformedAuthorization);
        }
        *slot = Some(value);
    }
    match (credential, signed_headers, signature) {
        (Some(c), Some(h), Some(s)) => Ok((c, h, s)),
        _ => Err(AuthError::MalformedAuthorization),
    }
}

/// Parses `Authorization: AWS4-HMAC-SHA256 <rest>` and runs the header-auth checks in order:
/// components, credential (structure, region, service, terminal), signed-header list, request
/// date, credential date, skew, header coverage, payload mode.
pub(crate) fn parse_header_auth(
    head: &RequestHead<'_>,
    rest: &str,
    policy: &AuthPolicy,
    now: SystemTime,
) -> Result<ParsedV4, AuthError> {
    let (credential, signed_headers, signature) = parse_components(rest)?;
    let credential = parse_credential(credential, policy)?;
    let signed_headers = parse_signed_headers(signed_headers)?;
    let (amz_date, request_time) = header_auth_date(head.headers)?;
    if !amz_date.starts_with(credential.date) {
        return Err(AuthError::CredentialDateMismatch);
    }
    if time::differs_by_more_than(now, request_time, policy.max_skew) {
        return Err(AuthError::TimeTooSkewed);
    }
    check_header_coverage(head.headers, &signed_headers)?;
    let content_sha256 = single_header(head.headers, "x-amz-content-sha256")?
        .ok_or(AuthError::MissingContentSha256)?;
    let (payload_hash, payload) = payload_from_header(content_sha256.as_bytes())?;
    Ok(ParsedV4 {
        scheme: Scheme::HeaderV4,
        access_key_id: credential.access_key_id.to_owned(),
        scope_date: credential.date.to_owned(),
        region: credential.region.to_owned(),
        amz_date,
        signed_headers,
        signature: ProvidedSignature::new(signature.as_bytes().to_vec()),
        payload_hash,
        payload,
        expires_at: None,
    })
}

/// `X-Amz-Expires`: ASCII digits only (no sign, exponent or space), 1 ..= `max` seconds.
fn parse_expires(value: &[u8], max: Duration) -> Result<Duration, AuthError> {
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return Err(AuthError::ExpiresInvalid);
    }
    let secs = value.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    match secs {
        Some(secs) if secs >= 1 && Duration::from_secs(secs) <= max => {
            Ok(Duration::from_secs(secs))
        }
        _ => Err(AuthError::ExpiresInvalid),
    }
}

fn utf8(bytes: &[u8], err: AuthError) -> Result<&str, AuthError> {
    std::str::from_utf8(bytes).map_err(|_| err)
}

/// Parses a presigned (query) request and runs the query-auth checks in order: each of the six
/// parameters exactly once (duplicates first, then missing, each in [`V4_QUERY_PARAMS`] order),
/// algorithm, credential (structure, region, service, terminal), signed-header list, date,
/// credential date, expiry value, not-yet-valid, expired, header coverage, payload mode.
pub(crate) fn parse_query_auth(
    head: &RequestHead<'_>,
    pairs: &[QueryPair<'_>],
    policy: &AuthPolicy,
    now: SystemTime,
) -> Result<ParsedV4, AuthError> {
    for name in V4_QUERY_PARAMS {
        if pairs.iter().filter(|p| *p.name == *name.as_bytes()).count() > 1 {
            return Err(AuthError::DuplicateParam(name));
        }
    }
    let get = |name: &'static str| {
        pairs
            .iter()
            .find(|p| *p.name == *name.as_bytes())
            .map(|p| p.value.as_ref())
            .ok_or(AuthError::MissingQueryParam(name))
    };
    // Same order as V4_QUERY_PARAMS.
    let algorithm = get("X-Amz-Algorithm")?;
    let credential = get("X-Amz-Credential")?;
    let signature = get("X-Amz-Signature")?;
    let date = get("X-Amz-Date")?;
    let signed_headers = get("X-Amz-SignedHeaders")?;
    let expires = get("X-Amz-Expires")?;

    if algorithm != ALGORITHM.as_bytes() {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    let credential = parse_credential(utf8(credential, AuthError::MalformedCredential)?, policy)?;
    let signed_headers =
        parse_signed_headers(utf8(signed_headers, AuthError::MalformedSignedHeaders)?)?;
    let amz_date = utf8(date, AuthError::InvalidDate)?;
    let request_time = parse_amz_date(amz_date).ok_or(AuthError::InvalidDate)?;
    if !amz_date.starts_with(credential.date) {
        return Err(AuthError::CredentialDateMismatch);
    }
    let expires = parse_expires(expires, policy.effective_max_expiry())?;
    if time::later_by_more_than(request_time, now, policy.max_skew) {
        return Err(AuthError::NotYetValid);
    }
    let expires_at = request_time
        .checked_add(expires)
        .ok_or(AuthError::ExpiresInvalid)?;
    if now > expires_at {
        return Err(AuthError::Expired);
    }
    check_header_coverage(head.headers, &signed_headers)?;
    // Coverage guarantees a present x-amz-content-sha256 header is signed; without one the
    // payload is unsigned.
    let (payload_hash, payload) = match single_header(head.headers, "x-amz-content-sha256")? {
        Some(v) => payload_from_header(v.as_bytes())?,
        None => (UNSIGNED_PAYLOAD.to_owned(), PayloadKind::Unsigned),
    };
    Ok(ParsedV4 {
        scheme: Scheme::QueryV4,
        access_key_id: credential.access_key_id.to_owned(),
        scope_date: credential.date.to_owned(),
        region: credential.region.to_owned(),
        amz_date: amz_date.to_owned(),
        signed_headers,
        signature: ProvidedSignature::new(signature.to_vec()),
        payload_hash,
        payload,
        expires_at: Some(expires_at),
    })
}

/// Rebuilds the canonical request from `head`, derives the key and compares signatures in
/// constant time; on success builds the [`Verified`] proof with its [`PayloadMode`].
pub(crate) fn verify_parsed(
    parsed: ParsedV4,
    head: &RequestHead<'_>,
    secret: &SecretKey,
    policy: &AuthPolicy,
) -> Result<Verified, AuthError> {
    // parse() checked the region against the policy; a ParsedAuth carried over to another
    // policy must not verify.
    if parsed.region != policy.region {
        return Err(AuthError::InvalidRegion);
    }
    let canonical = canonical_request(
        head,
        &parsed.signed_headers,
        &parsed.payload_hash,
        parsed.scheme == Scheme::QueryV4,
    )?;
    let scope = credential_scope(&parsed.scope_date, &parsed.region, SERVICE);
    let sts = string_to_sign(&parsed.amz_date, &scope, &canonical);
    let key = signing_key(secret, &parsed.scope_date, &parsed.region, SERVICE);
    let signature = key.sign(sts.as_bytes());
    if !parsed.signature.matches(hex::encode(signature).as_bytes()) {
        return Err(AuthError::SignatureMismatch);
    }
    let payload = match parsed.payload {
        PayloadKind::Unsigned => PayloadMode::Unsigned,
        PayloadKind::Sha256(digest) => PayloadMode::Sha256(digest),
        PayloadKind::StreamingSigned { trailer } => PayloadMode::StreamingSigned {
            signer: ChunkSigner::new(key, parsed.amz_date, scope, signature, trailer),
            trailer,
        },
        PayloadKind::StreamingUnsignedTrailer => PayloadMode::StreamingUnsignedTrailer,
    };
    Ok(Verified::new(
        parsed.access_key_id,
        parsed.scheme,
        payload,
        parsed.expires_at,
        parsed.signed_headers,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AuthPolicy {
        AuthPolicy {
            region: "us-east-1".into(),
            max_presign_expiry: Duration::from_secs(3600),
            max_skew: Duration::from_secs(900),
            allow_sigv2: false,
        }
    }

    #[test]
    fn credential_checks_in_order() {
        let p = policy();
        assert!(parse_credential("AK/20130524/us-east-1/s3/aws4_request", &p).is_ok());
        for (bad, want) in [
            ("AK/20130524/us-east-1/s3", "MalformedCredential"),
            (
                "AK/20130524/us-east-1/s3/aws4_request/x",
                "MalformedCredential",
            ),
            ("/20130524/us-east-1/s3/aws4_request", "MalformedCredential"),
            (
                "AK/2013052/us-east-1/s3/aws4_request",
                "MalformedCredential",
            ),
            (
                "AK/2013052a/us-east-1/s3/aws4_request",
                "MalformedCredential",
            ),
            (
                "A K/20130524/us-east-1/s3/aws4_request",
                "MalformedCredential",
            ),
            ("AK/20130524/eu-west-1/s3/aws4_request", "InvalidRegion"),
            ("AK/20130524//s3/aws4_request", "InvalidRegion"),
            ("AK/20130524/us-east-1/iam/aws4_request", "InvalidService"),
            ("AK/20130524/us-east-1/s3/aws4_requesT", "InvalidTerminal"),
        ] {
            let err = parse_credential(bad, &p).err().map(|e| format!("{e:?}"));
            assert_eq!(err.as_deref(), Some(want), "{bad}");
        }
    }

    #[test]
    fn signed_headers_must_be_sorted_lowercase_unique() {
        assert_eq!(
            parse_signed_headers("host;x-amz-date").unwrap(),
            vec!["host".to_owned(), "x-amz-date".to_owned()]
        );
        for bad in [
            "",
            "host;",
            ";host",
            "Host",
            "x-amz-date;host",
            "host;host",
            "ho st",
        ] {
            assert!(
                matches!(
                    parse_signed_headers(bad),
                    Err(AuthError::MalformedSignedHeaders)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expires_is_plain_digits_in_range() {
        let max = Duration::from_secs(604_800);
        assert_eq!(parse_expires(b"1", max).unwrap(), Duration::from_secs(1));
        assert_eq!(parse_expires(b"604800", max).unwrap(), max);
        assert_eq!(
            parse_expires(b"0086400", max).unwrap(),
            Duration::from_secs(86_400)
        );
        for bad in [
            &b"604801"[..],
            b"0",
            b"-1",
            b"+60",
            b"1e3",
            b"abc",
            b"",
            b" 60",
            b"60 ",
            b"6.0",
            b"99999999999999999999999",
            b"18446744073709551616",
        ] {
            assert!(
                matches!(parse_expires(bad, max), Err(AuthError::ExpiresInvalid)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn payload_modes() {
        let hex64 = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        assert!(matches!(
            payload_from_header(hex64.as_bytes()),
            Ok((_, PayloadKind::Sha256(_)))
        ));
        assert!(matches!(
            payload_from_header(b"UNSIGNED-PAYLOAD"),
            Ok((_, PayloadKind::Unsigned))
        ));
        assert!(matches!(
            payload_from_header(b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            Ok((_, PayloadKind::StreamingSigned { trailer: false }))
        ));
        assert!(matches!(
            payload_from_header(b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
            Ok((_, PayloadKind::StreamingSigned { trailer: true }))
        ));
        assert!(matches!(
            payload_from_header(b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            Ok((_, PayloadKind::StreamingUnsignedTrailer))
        ));
        for ecdsa in [
            &b"STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"[..],
            b"STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
        ] {
            assert!(matches!(
                payload_from_header(ecdsa),
                Err(AuthError::UnsupportedPayloadMode)
            ));
        }
        for bad in [
            &hex64.as_bytes()[..63],
            b"unsigned-payload",
            b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-X",
            b"zz",
            b"",
        ] {
            assert!(matches!(
                payload_from_header(bad),
                Err(AuthError::InvalidContentSha256)
            ));
        }
    }

    #[test]
    fn authorization_components() {
        assert!(parse_components("Credential=a, SignedHeaders=b, Signature=c").is_ok());
        assert!(parse_components("Signature=c,Credential=a,SignedHeaders=b").is_ok());
        for bad in [
            "",
            "Credential=a, SignedHeaders=b",
            "Credential=a, SignedHeaders=b, Signature=c, Signature=c",
            "Credential=a, SignedHeaders=b, Signature=",
            "Credential=a, SignedHeaders=b, Signature=c, Extra=d",
            "Credential=a SignedHeaders=b Signature=c",
        ] {
            assert!(
                matches!(
                    parse_components(bad),
                    Err(AuthError::MalformedAuthorization)
                ),
                "{bad:?}"
            );
        }
    }
}
