//! End-to-end tests through `parse` + `verify`: one named test per rejection reason, covering the
//! SECURITY-TESTS rows T-A1..T-A13, T-B1, T-B2 and T-B5 at the parse/verify level, plus the
//! SigV2 known answers produced with botocore.
//!
//! Requests are signed here with this module's own primitives or `presign_url`; that the
//! primitives agree with AWS is established separately by the known-answer vectors and the
//! aws-sigv4 differential test in `tests/sigv4_vectors.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::sigv4::{
    canonical_request, credential_scope, format_amz_date, signing_key, string_to_sign,
};
use super::*;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const HOST: &str = "uploads.example.com";
const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// 2013-05-24T00:00:00Z, the time of the AWS S3 examples.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_369_353_600)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn secret() -> SecretKey {
    SecretKey::new(SECRET.into())
}

fn policy() -> AuthPolicy {
    AuthPolicy {
        region: "us-east-1".into(),
        max_presign_expiry: MAX_PRESIGN_EXPIRY,
        max_skew: DEFAULT_MAX_SKEW,
        allow_sigv2: false,
    }
}

fn policy_v2() -> AuthPolicy {
    AuthPolicy {
        allow_sigv2: true,
        ..policy()
    }
}

#[derive(Clone, Debug)]
struct Req {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

impl Req {
    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            raw_path: &self.path,
            raw_query: self.query.as_deref(),
            headers: &self.headers,
        }
    }

    fn check_with(&self, policy: &AuthPolicy, now: SystemTime) -> Result<Verified, AuthError> {
        let head = self.head();
        parse(&head, policy, now)?.verify(&head, &secret(), policy)
    }

    fn check_at(&self, now: SystemTime) -> Result<Verified, AuthError> {
        self.check_with(&policy(), now)
    }

    fn check(&self) -> Result<Verified, AuthError> {
        self.check_at(t0())
    }

    fn set_header(&mut self, name: &str, value: &str) -> &mut Self {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }

    fn add_header(&mut self, name: &str, value: &str) -> &mut Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }

    /// Replaces the raw value of query parameter `name` (first occurrence).
    fn set_param(&mut self, name: &str, raw_value: &str) -> &mut Self {
        let query = self.query.take().unwrap_or_default();
        let replaced: Vec<String> = query
            .split('&')
            .map(|el| match el.split_once('=') {
                Some((n, _)) if n == name => format!("{n}={raw_value}"),
                _ => el.to_owned(),
            })
            .collect();
        self.query = Some(replaced.join("&"));
        self
    }

    fn remove_param(&mut self, name: &str) -> &mut Self {
        let query = self.query.take().unwrap_or_default();
        let kept: Vec<&str> = query
            .split('&')
            .filter(|el| el.split('=').next() != Some(name))
            .collect();
        self.query = Some(kept.join("&"));
        self
    }

    fn append_query(&mut self, raw: &str) -> &mut Self {
        self.query = Some(match self.query.take() {
            Some(q) if !q.is_empty() => format!("{q}&{raw}"),
            _ => raw.to_owned(),
        });
        self
    }

    fn param(&self, name: &str) -> String {
        self.query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .find_map(|el| el.split_once('=').filter(|(n, _)| *n == name))
            .map(|(_, v)| v.to_owned())
            .unwrap()
    }
}

/// Header-auth request signed over every header it carries (host, x-amz-date,
/// x-amz-content-sha256 and `extra`).
fn header_signed(
    method: Method,
    path: &str,
    query: Option<&str>,
    extra: &[(&str, &str)],
    payload: &str,
    at: SystemTime,
) -> Req {
    let mut req = Req {
        method,
        path: path.into(),
        query: query.map(str::to_owned),
        headers: HeaderMap::new(),
    };
    let amz_date = format_amz_date(at);
    req.add_header("host", HOST)
        .add_header("x-amz-date", &amz_date)
        .add_header("x-amz-content-sha256", payload);
    for (n, v) in extra {
        req.add_header(n, v);
    }
    let mut signed: Vec<String> = req.headers.keys().map(|k| k.as_str().to_owned()).collect();
    signed.sort();
    signed.dedup();
    sign_header_request(&mut req, &signed, payload, &amz_date);
    req
}

/// Adds an `Authorization` header signing `signed` (which need not be a sensible set).
fn sign_header_request(req: &mut Req, signed: &[String], payload: &str, amz_date: &str) {
    let date = &amz_date[..8];
    let scope = credential_scope(date, "us-east-1", "s3");
    let creq = canonical_request(&req.head(), signed, payload, false).unwrap();
    let sts = string_to_sign(amz_date, &scope, &creq);
    let sig = signing_key(&secret(), date, "us-east-1", "s3").sign_hex(sts.as_bytes());
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={}, Signature={sig}",
        signed.join(";")
    );
    req.set_header("authorization", &auth);
}

fn presign_params(
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    expires: u64,
    at: SystemTime,
) -> PresignParams {
    PresignParams {
        method,
        host: HOST.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        expires: secs(expires),
        region: "us-east-1".into(),
        time: at,
        access_key_id: AKID.into(),
    }
}

/// A presigned request as a client would send it: URL from `presign_url`, and the signed
/// headers with their values.
fn presigned(
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    expires: u64,
    at: SystemTime,
) -> Req {
    let params = presign_params(method.clone(), path, query, headers, expires, at);
    let mut req = Req {
        method,
        path: params.encoded_path(),
        query: Some(presign_url(&params, &secret())),
        headers: HeaderMap::new(),
    };
    req.add_header("host", HOST);
    for (n, v) in headers {
        req.add_header(n, v);
    }
    req
}

fn get_url() -> Req {
    presigned(Method::GET, "/bucket/photos/cat.png", &[], &[], 3600, t0())
}

fn put_url() -> Req {
    presigned(
        Method::PUT,
        "/bucket/uploads/report.pdf",
        &[],
        &[
            ("content-type", "application/pdf"),
            ("content-length", "1234567"),
        ],
        600,
        t0(),
    )
}

fn header_put() -> Req {
    header_signed(
        Method::PUT,
        "/bucket/key.bin",
        None,
        &[("content-length", "0")],
        EMPTY_SHA,
        t0(),
    )
}

macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {{
        let result = $result;
        assert!(
            matches!(result, Err($pattern)),
            "expected {}, got {:?}",
            stringify!($pattern),
            result.as_ref().map(|v| v.access_key_id())
        );
    }};
}

// ---------------------------------------------------------------------------------------------
// Accepted requests and what Verified reports.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_url_round_trips_through_parse_and_verify() {
    let req = presigned(
        Method::PUT,
        "/bucket/dir/my file ü+$&=.pdf",
        &[("partNumber", "3"), ("uploadId", "a/b+c d")],
        &[
            ("Content-Type", "application/pdf"),
            ("content-length", "42"),
            ("x-amz-meta-owner", "  alice   smith "),
        ],
        900,
        t0(),
    );
    let v = req.check_at(t0() + secs(10)).unwrap();
    assert_eq!(v.access_key_id(), AKID);
    assert_eq!(v.scheme(), Scheme::QueryV4);
    assert_eq!(v.expires_at(), Some(t0() + secs(900)));
    assert_eq!(
        v.signed_headers(),
        ["content-length", "content-type", "host", "x-amz-meta-owner"]
    );
    assert!(matches!(v.payload(), PayloadMode::Unsigned));
}

#[test]
fn header_auth_round_trip_reports_sha256_payload() {
    let body_sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    let req = header_signed(Method::PUT, "/b/k", None, &[], body_sha, t0());
    let v = req.check().unwrap();
    assert_eq!(v.scheme(), Scheme::HeaderV4);
    assert_eq!(v.expires_at(), None);
    assert_eq!(
        v.signed_headers(),
        ["host", "x-amz-content-sha256", "x-amz-date"]
    );
    match v.into_payload() {
        PayloadMode::Sha256(d) => assert_eq!(hex::encode(d), body_sha),
        other => panic!("unexpected payload mode {other:?}"),
    }
}

#[test]
fn header_auth_payload_modes_are_reported() {
    let cases = [
        ("UNSIGNED-PAYLOAD", "Unsigned"),
        (
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "StreamingSigned(false)",
        ),
        (
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            "StreamingSigned(true)",
        ),
        (
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "StreamingUnsignedTrailer",
        ),
    ];
    for (sentinel, want) in cases {
        let req = header_signed(Method::PUT, "/b/k", None, &[], sentinel, t0());
        let got = match req.check().unwrap().into_payload() {
            PayloadMode::Unsigned => "Unsigned".to_owned(),
            PayloadMode::Sha256(_) => "Sha256".to_owned(),
            PayloadMode::StreamingSigned { trailer, signer } => {
                assert!(!signer.is_complete());
                format!("StreamingSigned({trailer})")
            }
            PayloadMode::StreamingUnsignedTrailer => "StreamingUnsignedTrailer".to_owned(),
        };
        assert_eq!(got, want, "{sentinel}");
    }
}

#[test]
fn presigned_with_signed_content_sha256_binds_the_payload() {
    let req = presigned(
        Method::PUT,
        "/b/k",
        &[],
        &[("x-amz-content-sha256", EMPTY_SHA)],
        60,
        t0(),
    );
    match req.check().unwrap().into_payload() {
        PayloadMode::Sha256(d) => assert_eq!(hex::encode(d), EMPTY_SHA),
        other => panic!("unexpected payload mode {other:?}"),
    }
}

#[test]
fn header_auth_falls_back_to_date_header() {
    let mut req = Req {
        method: Method::GET,
        path: "/b/k".into(),
        query: None,
        headers: HeaderMap::new(),
    };
    req.add_header("host", HOST)
        .add_header("date", "Fri, 24 May 2013 00:00:00 GMT")
        .add_header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    let signed = vec![
        "date".to_owned(),
        "host".to_owned(),
        "x-amz-content-sha256".to_owned(),
    ];
    sign_header_request(&mut req, &signed, "UNSIGNED-PAYLOAD", "20130524T000000Z");
    assert!(req.check().is_ok());
    req.set_header("date", "Fri, 24 May 2013 00:00:01 GMT");
    assert_err!(req.check(), AuthError::SignatureMismatch);
}

// ---------------------------------------------------------------------------------------------
// T-A1: one byte flipped anywhere → rejected.
// ---------------------------------------------------------------------------------------------

fn flip(b: u8) -> u8 {
    match b {
        b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => b + 1,
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        b'%' => b'X',
        _ => b'x',
    }
}

#[test]
fn presigned_rejects_every_flipped_query_byte() {
    // Each query value (and name): extra params, algorithm, credential (access key, scope date,
    // region, service, terminal), date, expires, signed headers, signature.
    let req = presigned(
        Method::PUT,
        "/bucket/k.bin",
        &[("partNumber", "7"), ("uploadId", "abc")],
        &[("content-type", "image/png")],
        600,
        t0(),
    );
    req.check().unwrap();
    let query = req.query.clone().unwrap();
    for i in 0..query.len() {
        if matches!(query.as_bytes()[i], b'&' | b'=') {
            continue;
        }
        let mut bytes = query.clone().into_bytes();
        bytes[i] = flip(bytes[i]);
        let mut bad = req.clone();
        bad.query = Some(String::from_utf8(bytes).unwrap());
        // Some flips are caught before the signature check (a different access key id,
        // expiry or scope); all must fail.
        let result = bad.check();
        assert!(result.is_err(), "flip at {i} in {query}");
    }
}

#[test]
fn presigned_rejects_flipped_path_bytes() {
    let req = get_url();
    for i in 1..req.path.len() {
        let mut bytes = req.path.clone().into_bytes();
        if bytes[i] == b'/' {
            continue;
        }
        bytes[i] = flip(bytes[i]);
        let mut bad = req.clone();
        bad.path = String::from_utf8(bytes).unwrap();
        assert_err!(bad.check(), AuthError::SignatureMismatch);
    }
}

#[test]
fn presigned_rejects_flipped_signed_header_value() {
    let mut req = put_url();
    req.set_header("content-type", "application/pdg");
    assert_err!(req.check(), AuthError::SignatureMismatch);
}

#[test]
fn presigned_rejects_flipped_date_time_of_day() {
    let mut req = get_url();
    req.set_param("X-Amz-Date", "20130524T000001Z");
    assert_err!(req.check(), AuthError::SignatureMismatch);
}

#[test]
fn presigned_rejects_flipped_signature_at_every_position() {
    let req = get_url();
    let sig = req.param("X-Amz-Signature");
    for i in 0..sig.len() {
        let mut bytes = sig.clone().into_bytes();
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        let mut bad = req.clone();
        bad.set_param("X-Amz-Signature", std::str::from_utf8(&bytes).unwrap());
        assert_err!(bad.check(), AuthError::SignatureMismatch);
    }
    for other in [
        sig.to_uppercase(),
        sig[..63].to_owned(),
        format!("{sig}0"),
        String::new(),
    ] {
        let mut bad = req.clone();
        bad.set_param("X-Amz-Signature", &other);
        assert_err!(bad.check(), AuthError::SignatureMismatch);
    }
}

#[test]
fn header_auth_rejects_flipped_signed_header_and_signature() {
    let req = header_signed(
        Method::PUT,
        "/b/k",
        None,
        &[("x-amz-meta-color", "blue")],
        EMPTY_SHA,
        t0(),
    );
    req.check().unwrap();
    let mut bad = req.clone();
    bad.set_header("x-amz-meta-color", "bluf");
    assert_err!(bad.check(), AuthError::SignatureMismatch);

    let auth = req.headers["authorization"].to_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        &auth[..auth.len() - 1],
        if auth.ends_with('0') { '1' } else { '0' }
    );
    let mut bad = req.clone();
    bad.set_header("authorization", &flipped);
    assert_err!(bad.check(), AuthError::SignatureMismatch);

    let mut bad = req;
    bad.set_header("x-amz-date", "20130524T000001Z");
    assert_err!(bad.check(), AuthError::SignatureMismatch);
}

// ---------------------------------------------------------------------------------------------
// T-A2: missing parameters, wrong algorithm.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_rejects_each_missing_param() {
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
    ] {
        let mut req = get_url();
        req.remove_param(name);
        match req.check() {
            Err(AuthError::MissingQueryParam(n)) => assert_eq!(n, name),
            other => panic!("{name}: {:?}", other.map(|v| v.scheme())),
        }
    }
}

#[test]
fn presigned_rejects_sha1_algorithm() {
    let mut req = get_url();
    req.set_param("X-Amz-Algorithm", "AWS4-HMAC-SHA1");
    assert_err!(req.check(), AuthError::UnsupportedAlgorithm);
    req.set_param("X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256");
    assert_err!(req.check(), AuthError::UnsupportedAlgorithm);
}

// ---------------------------------------------------------------------------------------------
// T-A3 / T-A4 / T-A5: expiry and time.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_rejects_expired_one_second_after_boundary() {
    let req = get_url(); // 3600 s
    assert!(
        req.check_at(t0() + secs(3600)).is_ok(),
        "valid at the boundary"
    );
    assert!(req.check_at(t0() + secs(3599)).is_ok());
    assert_err!(req.check_at(t0() + secs(3601)), AuthError::Expired);
    assert_err!(
        req.check_at(t0() + secs(3600) + Duration::from_millis(1)),
        AuthError::Expired
    );
}

#[test]
fn presigned_rejects_expires_above_max() {
    let mut req = get_url();
    req.set_param("X-Amz-Expires", "604801");
    assert_err!(req.check(), AuthError::ExpiresInvalid);
    // A tighter configured maximum is enforced too.
    let tight = AuthPolicy {
        max_presign_expiry: secs(300),
        ..policy()
    };
    assert_err!(
        get_url().check_with(&tight, t0()),
        AuthError::ExpiresInvalid
    );
    // And the 7-day cap holds even if the config said more.
    let loose = AuthPolicy {
        max_presign_expiry: secs(30 * 24 * 3600),
        ..policy()
    };
    assert_err!(req.check_with(&loose, t0()), AuthError::ExpiresInvalid);
}

#[test]
fn presigned_rejects_malformed_expires() {
    for bad in [
        "-1", "abc", "0", "1e3", "%2B60", "+60", "60.0", "", "%2060", "0x10",
    ] {
        let mut req = get_url();
        req.set_param("X-Amz-Expires", bad);
        assert_err!(req.check(), AuthError::ExpiresInvalid);
    }
}

#[test]
fn presigned_rejects_date_beyond_skew_in_future() {
    let future = presigned(Method::GET, "/b/k", &[], &[], 3600, t0() + secs(16 * 60));
    assert_err!(future.check(), AuthError::NotYetValid);
    let near = presigned(Method::GET, "/b/k", &[], &[], 3600, t0() + secs(14 * 60));
    assert!(near.check().is_ok());
}

#[test]
fn presigned_rejects_malformed_date() {
    let mut req = get_url();
    req.set_param("X-Amz-Date", "2013-05-24T00:00:00Z");
    assert_err!(req.check(), AuthError::InvalidDate);
}

#[test]
fn header_auth_rejects_skewed_date() {
    for at in ["20100101T000000Z", "99991231T235959Z"] {
        let t = sigv4::parse_amz_date(at).unwrap();
        let req = header_signed(Method::PUT, "/b/k", None, &[], EMPTY_SHA, t);
        assert_err!(req.check(), AuthError::TimeTooSkewed);
    }
    let req = header_put();
    assert_err!(req.check_at(t0() + secs(16 * 60)), AuthError::TimeTooSkewed);
    assert_err!(req.check_at(t0() - secs(16 * 60)), AuthError::TimeTooSkewed);
    assert!(req.check_at(t0() + secs(14 * 60)).is_ok());
    assert!(req.check_at(t0() - secs(14 * 60)).is_ok());
}

#[test]
fn header_auth_rejects_missing_or_malformed_date() {
    let mut req = header_put();
    req.headers.remove("x-amz-date");
    assert_err!(req.check(), AuthError::InvalidDate);
    let mut req = header_put();
    req.set_header("x-amz-date", "Fri, 24 May 2013 00:00:00 GMT");
    assert_err!(req.check(), AuthError::InvalidDate);
}

// ---------------------------------------------------------------------------------------------
// T-A6: credential scope.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_rejects_credential_date_mismatch() {
    let mut req = get_url();
    req.set_param(
        "X-Amz-Credential",
        "AKIAIOSFODNN7EXAMPLE%2F20130523%2Fus-east-1%2Fs3%2Faws4_request",
    );
    assert_err!(req.check(), AuthError::CredentialDateMismatch);
    let mut req = get_url();
    req.set_param("X-Amz-Date", "20130525T000000Z");
    assert_err!(req.check(), AuthError::CredentialDateMismatch);
}

#[test]
fn presigned_rejects_wrong_region() {
    let mut req = get_url();
    req.set_param(
        "X-Amz-Credential",
        "AKIAIOSFODNN7EXAMPLE%2F20130524%2Feu-west-1%2Fs3%2Faws4_request",
    );
    assert_err!(req.check(), AuthError::InvalidRegion);
}

#[test]
fn presigned_rejects_wrong_service() {
    let mut req = get_url();
    req.set_param(
        "X-Amz-Credential",
        "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs4%2Faws4_request",
    );
    assert_err!(req.check(), AuthError::InvalidService);
}

#[test]
fn presigned_rejects_wrong_terminal() {
    let mut req = get_url();
    req.set_param(
        "X-Amz-Credential",
        "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_requesu",
    );
    assert_err!(req.check(), AuthError::InvalidTerminal);
}

#[test]
fn presigned_rejects_malformed_credential() {
    for bad in [
        "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3",
        "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
        "AK%2FID%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
    ] {
        let mut req = get_url();
        req.set_param("X-Amz-Credential", bad);
        assert_err!(req.check(), AuthError::MalformedCredential);
    }
}

#[test]
fn verify_rejects_parsed_auth_under_another_region() {
    let req = get_url();
    let head = req.head();
    let parsed = parse(&head, &policy(), t0()).unwrap();
    let other = AuthPolicy {
        region: "eu-west-1".into(),
        ..policy()
    };
    assert_err!(
        parsed.verify(&head, &secret(), &other),
        AuthError::InvalidRegion
    );
}

// ---------------------------------------------------------------------------------------------
// T-A7: path variants never verify as the signed key.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_rejects_path_variants() {
    let req = presigned(Method::PUT, "/b/a/x.pdf", &[], &[], 600, t0());
    req.check().unwrap();
    for variant in [
        "/b/a/./x.pdf",
        "/b/a//x.pdf",
        "/b/a/%2E%2E/x.pdf",
        "/b/a/../a/x.pdf",
        "/b/a%252Fx.pdf",
        "/b/a/x.pdf/",
        "/b/a/x.pdf%20",
        "/b/A/x.pdf",
        "b/a/x.pdf",
    ] {
        let mut bad = req.clone();
        bad.path = variant.into();
        assert!(bad.check().is_err(), "{variant}");
    }
}

#[test]
fn encoded_slash_names_the_same_key_as_slash() {
    // S3 (and MinIO) decode the path before re-encoding it, so `%2F` and `/` sign the same
    // canonical URI. This is safe only because the decoded key is identical byte for byte; the
    // router must decode the key the same way. Pinned here so a change is deliberate.
    let req = presigned(Method::PUT, "/b/a/x.pdf", &[], &[], 600, t0());
    let mut variant = req.clone();
    variant.path = "/b/a%2Fx.pdf".into();
    assert!(variant.check().is_ok());
}

#[test]
fn rejects_invalid_percent_encoding() {
    let mut req = get_url();
    req.path = "/bucket/photos/cat%G0.png".into();
    assert_err!(req.check(), AuthError::MalformedRequestTarget);
    let mut req = get_url();
    req.append_query("x=%");
    assert_err!(req.check(), AuthError::MalformedRequestTarget);
}

// ---------------------------------------------------------------------------------------------
// T-A8: host.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_rejects_host_not_signed() {
    let mut req = put_url();
    req.set_param("X-Amz-SignedHeaders", "content-length%3Bcontent-type");
    assert_err!(req.check(), AuthError::HostNotSigned);
}

#[test]
fn header_auth_rejects_host_not_signed() {
    let mut req = header_put();
    let signed: Vec<String> = ["content-length", "x-amz-content-sha256", "x-amz-date"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    sign_header_request(&mut req, &signed, EMPTY_SHA, "20130524T000000Z");
    assert_err!(req.check(), AuthError::HostNotSigned);
}

#[test]
fn presigned_rejects_other_host_even_with_forwarded_host() {
    let mut req = get_url();
    req.set_header("host", "attacker.example.net")
        .set_header("x-forwarded-host", HOST);
    assert_err!(req.check(), AuthError::SignatureMismatch);
}

// ---------------------------------------------------------------------------------------------
// T-A9: upload URL bound to content type and length.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_upload_rejects_other_content_type() {
    for ct in ["text/html", "image/svg+xml", "application/pdf; charset=x"] {
        let mut req = put_url();
        req.set_header("content-type", ct);
        assert_err!(req.check(), AuthError::SignatureMismatch);
    }
}

#[test]
fn presigned_upload_rejects_other_content_length() {
    for len in ["1234566", "1234568", "0"] {
        let mut req = put_url();
        req.set_header("content-length", len);
        assert_err!(req.check(), AuthError::SignatureMismatch);
    }
}

#[test]
fn presigned_upload_rejects_missing_signed_header() {
    let mut req = put_url();
    req.headers.remove("content-type");
    match req.check() {
        Err(AuthError::MissingSignedHeader(name)) => assert_eq!(name, "content-type"),
        other => panic!("{:?}", other.map(|v| v.scheme())),
    }
}

#[test]
fn verified_lists_signed_headers_for_upload_policy() {
    let v = put_url().check().unwrap();
    assert!(v.signed_headers().iter().any(|h| h == "content-type"));
    assert!(v.signed_headers().iter().any(|h| h == "content-length"));
}

// ---------------------------------------------------------------------------------------------
// T-A10: duplicates and ambiguity.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_rejects_duplicate_signature_param() {
    let mut req = get_url();
    let sig = req.param("X-Amz-Signature");
    req.append_query(&format!("X-Amz-Signature={sig}"));
    assert_err!(req.check(), AuthError::DuplicateParam("X-Amz-Signature"));
}

#[test]
fn presigned_rejects_duplicate_date_param() {
    let mut req = get_url();
    req.append_query("X-Amz-Date=20130524T000000Z");
    assert_err!(req.check(), AuthError::DuplicateParam("X-Amz-Date"));
}

#[test]
fn presigned_rejects_duplicate_param_hidden_by_encoding() {
    let mut req = get_url();
    req.append_query("X-Amz-%53ignature=00");
    assert_err!(req.check(), AuthError::DuplicateParam("X-Amz-Signature"));
}

#[test]
fn rejects_duplicate_host_header() {
    let mut req = get_url();
    req.add_header("host", "attacker.example.net");
    assert_err!(req.check(), AuthError::DuplicateHeader("host"));
    let mut req = header_put();
    req.add_header("host", HOST);
    assert_err!(req.check(), AuthError::DuplicateHeader("host"));
}

#[test]
fn rejects_duplicate_content_sha256_header() {
    let mut req = header_put();
    req.add_header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    assert_err!(
        req.check(),
        AuthError::DuplicateHeader("x-amz-content-sha256")
    );
}

#[test]
fn rejects_both_header_and_query_auth() {
    let mut req = get_url();
    let header = header_put();
    req.set_header(
        "authorization",
        header.headers["authorization"].to_str().unwrap(),
    );
    assert_err!(req.check(), AuthError::Ambiguous);
    // Even a single stray presign parameter next to an Authorization header.
    let mut req = header_put();
    req.append_query("X-Amz-Expires=60");
    assert_err!(req.check(), AuthError::Ambiguous);
}

#[test]
fn rejects_two_authorization_headers() {
    let mut req = header_put();
    let auth = req.headers["authorization"].clone();
    req.headers.append("authorization", auth);
    assert_err!(req.check(), AuthError::Ambiguous);
}

#[test]
fn rejects_v2_and_v4_query_params_together() {
    let mut req = get_url();
    req.append_query("AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE");
    assert_err!(req.check_with(&policy_v2(), t0()), AuthError::Ambiguous);
}

// ---------------------------------------------------------------------------------------------
// T-A11: extra query parameters are signed.
// ---------------------------------------------------------------------------------------------

#[test]
fn presigned_rejects_extra_unsigned_query_param() {
    for extra in [
        "x-id=PutObject",
        "response-content-type=text%2Fhtml",
        "acl",
        "a=&b=",
    ] {
        let mut req = get_url();
        req.append_query(extra);
        assert_err!(req.check(), AuthError::SignatureMismatch);
    }
}

#[test]
fn presigned_rejects_changed_signed_query_value() {
    let mut req = presigned(
        Method::GET,
        "/b/k",
        &[("response-content-type", "image/png")],
        &[],
        60,
        t0(),
    );
    req.check().unwrap();
    req.set_param("response-content-type", "text%2Fhtml");
    assert_err!(req.check(), AuthError::SignatureMismatch);
}

// ---------------------------------------------------------------------------------------------
// T-A12: constant-time comparison (functional part; timing is by construction, `subtle`).
// ---------------------------------------------------------------------------------------------

#[test]
fn signatures_sharing_any_prefix_are_rejected() {
    let req = get_url();
    let sig = req.param("X-Amz-Signature");
    for keep in 0..64 {
        let mut forged = sig[..keep].to_owned();
        forged.extend(sig[keep..].bytes().map(|b| char::from(flip(b))));
        let mut bad = req.clone();
        bad.set_param("X-Amz-Signature", &forged);
        assert_err!(bad.check(), AuthError::SignatureMismatch);
    }
}

// ---------------------------------------------------------------------------------------------
// T-A13: the method is signed.
// ---------------------------------------------------------------------------------------------

#[test]
fn download_url_rejects_put() {
    let mut req = get_url();
    req.method = Method::PUT;
    assert_err!(req.check(), AuthError::SignatureMismatch);
}

#[test]
fn upload_url_rejects_get_delete_post() {
    for method in [Method::GET, Method::DELETE, Method::POST, Method::HEAD] {
        let mut req = put_url();
        req.method = method;
        assert_err!(req.check(), AuthError::SignatureMismatch);
    }
}

// ---------------------------------------------------------------------------------------------
// Header coverage and payload hash (T-B rows at parse/verify level).
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_unsigned_x_amz_meta_header() {
    let mut req = header_put();
    req.add_header("x-amz-meta-evil", "1");
    assert_err!(req.check(), AuthError::UnsignedHeaders);
    let mut req = get_url();
    req.add_header("x-amz-meta-evil", "1");
    assert_err!(req.check(), AuthError::UnsignedHeaders);
}

#[test]
fn rejects_unsigned_x_amz_header() {
    let mut req = header_put();
    req.add_header("x-amz-server-side-encryption", "AES256");
    assert_err!(req.check(), AuthError::UnsignedHeaders);
    let mut req = put_url();
    req.add_header("x-amz-acl", "public-read");
    assert_err!(req.check(), AuthError::UnsignedHeaders);
}

#[test]
fn presigned_rejects_unsigned_content_sha256_header() {
    let mut req = get_url();
    req.add_header("x-amz-content-sha256", EMPTY_SHA);
    assert_err!(req.check(), AuthError::UnsignedHeaders);
}

#[test]
fn unsigned_ordinary_headers_are_allowed() {
    let mut req = header_put();
    req.add_header("user-agent", "curl/8")
        .add_header("x-forwarded-for", "10.0.0.1");
    assert!(req.check().is_ok());
}

#[test]
fn header_auth_rejects_missing_signed_header() {
    let mut req = header_put();
    req.headers.remove("content-length");
    match req.check() {
        Err(AuthError::MissingSignedHeader(name)) => assert_eq!(name, "content-length"),
        other => panic!("{:?}", other.map(|v| v.scheme())),
    }
}

#[test]
fn header_auth_rejects_missing_content_sha256() {
    let mut req = Req {
        method: Method::GET,
        path: "/b/k".into(),
        query: None,
        headers: HeaderMap::new(),
    };
    req.add_header("host", HOST)
        .add_header("x-amz-date", "20130524T000000Z");
    let signed = vec!["host".to_owned(), "x-amz-date".to_owned()];
    sign_header_request(&mut req, &signed, EMPTY_SHA, "20130524T000000Z");
    assert_err!(req.check(), AuthError::MissingContentSha256);
}

#[test]
fn header_auth_rejects_invalid_content_sha256() {
    for bad in [
        "abc",
        "UNSIGNED_PAYLOAD",
        "STREAMING-PAYLOAD",
        &EMPTY_SHA[1..],
    ] {
        let req = header_signed(Method::PUT, "/b/k", None, &[], bad, t0());
        assert_err!(req.check(), AuthError::InvalidContentSha256);
    }
}

#[test]
fn rejects_ecdsa_streaming_mode() {
    for mode in [
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
    ] {
        let req = header_signed(Method::PUT, "/b/k", None, &[], mode, t0());
        assert_err!(req.check(), AuthError::UnsupportedPayloadMode);
    }
}

#[test]
fn rejects_sigv4a_authorization_algorithm() {
    let mut req = header_put();
    let auth = req.headers["authorization"].to_str().unwrap().replacen(
        "AWS4-HMAC-SHA256",
        "AWS4-ECDSA-P256-SHA256",
        1,
    );
    req.set_header("authorization", &auth);
    assert_err!(req.check(), AuthError::UnsupportedAlgorithm);
}

#[test]
fn every_payload_mode_rejects_wrong_seed_signature() {
    // T-B5 (and T-B6 for query auth): the payload mode never bypasses the seed signature.
    for mode in [
        EMPTY_SHA,
        "UNSIGNED-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ] {
        let req = header_signed(Method::PUT, "/b/k", None, &[], mode, t0());
        let auth = req.headers["authorization"].to_str().unwrap();
        let forged = format!("{}{}", &auth[..auth.len() - 64], "0".repeat(64));
        let mut bad = req.clone();
        bad.set_header("authorization", &forged);
        assert_err!(bad.check(), AuthError::SignatureMismatch);

        let mut bad = presigned(
            Method::PUT,
            "/b/k",
            &[("partNumber", "1"), ("uploadId", "u")],
            &[("x-amz-content-sha256", mode)],
            60,
            t0(),
        );
        bad.check().unwrap();
        bad.set_param("X-Amz-Signature", &"0".repeat(64));
        assert_err!(bad.check(), AuthError::SignatureMismatch);
    }
}

// ---------------------------------------------------------------------------------------------
// T-B1: missing or empty Authorization.
// ---------------------------------------------------------------------------------------------

#[test]
fn anonymous_request_is_missing() {
    let mut req = header_put();
    req.headers.remove("authorization");
    assert_err!(req.check(), AuthError::Missing);
    req.query = Some("x-id=PutObject&acl".into());
    assert_err!(req.check(), AuthError::Missing);
}

#[test]
fn header_auth_rejects_empty_authorization() {
    let mut req = header_put();
    req.set_header("authorization", "");
    assert_err!(req.check(), AuthError::EmptyAuthorization);
    req.set_header("authorization", "   ");
    assert_err!(req.check(), AuthError::EmptyAuthorization);
}

#[test]
fn header_auth_rejects_malformed_authorization() {
    for bad in [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
        "AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=0, Signature=0",
        "AWS4-HMAC-SHA256 Foo=bar",
    ] {
        let mut req = header_put();
        req.set_header("authorization", bad);
        assert_err!(req.check(), AuthError::MalformedAuthorization);
    }
    let mut req = header_put();
    req.headers.insert(
        "authorization",
        HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 Credential=\xff").unwrap(),
    );
    assert_err!(req.check(), AuthError::MalformedAuthorization);
}

#[test]
fn header_auth_rejects_unknown_scheme() {
    for bad in [
        "Bearer abc",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA1 Credential=x",
    ] {
        let mut req = header_put();
        req.set_header("authorization", bad);
        assert_err!(req.check(), AuthError::UnsupportedAlgorithm);
    }
}

#[test]
fn header_auth_rejects_malformed_signed_headers() {
    let mut req = header_put();
    let auth = req.headers["authorization"].to_str().unwrap().replace(
        "SignedHeaders=content-length;host",
        "SignedHeaders=host;content-length",
    );
    req.set_header("authorization", &auth);
    assert_err!(req.check(), AuthError::MalformedSignedHeaders);
}

#[test]
fn header_auth_rejects_wrong_scope() {
    for (scope, want) in [
        ("/20130524/eu-west-1/s3/", "InvalidRegion"),
        ("/20130524/us-east-1/sqs/", "InvalidService"),
        ("/20130523/us-east-1/s3/", "CredentialDateMismatch"),
        (
            "/20130524/us-east-1/s3/aws4_request/",
            "MalformedCredential",
        ),
    ] {
        let mut req = header_put();
        let auth = req.headers["authorization"]
            .to_str()
            .unwrap()
            .replace("/20130524/us-east-1/s3/", scope);
        req.set_header("authorization", &auth);
        let got = req.check().err().map(|e| format!("{e:?}"));
        assert_eq!(got.as_deref(), Some(want), "{scope}");
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets stay out of errors and Debug output.
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_and_debug_output_carry_no_signature() {
    let req = get_url();
    let sig = req.param("X-Amz-Signature");
    let head = req.head();
    let parsed = parse(&head, &policy(), t0()).unwrap();
    let dbg = format!("{parsed:?}");
    assert!(!dbg.contains(&sig), "{dbg}");
    assert!(!dbg.contains(SECRET));

    let mut bad = req.clone();
    bad.set_param("X-Amz-Signature", &"0".repeat(64));
    let err = bad.check().unwrap_err();
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(!text.contains(&sig), "{text}");
        assert!(!text.contains(SECRET));
    }
    let verified = req.check().unwrap();
    assert!(!format!("{verified:?}").contains(&sig));
}

// ---------------------------------------------------------------------------------------------
// SigV2. Known answers from botocore 1.43.11 (HmacV1Auth / HmacV1QueryAuth via boto3
// generate_presigned_url), access key AKIAIOSFODNN7EXAMPLE, secret
// wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, clock pinned to 1369353600 (2013-05-24T00:00:00Z):
//
//   time.time = lambda: 1369353600
//   s3 = boto3.client("s3", ..., endpoint_url="http://127.0.0.1:9000",
//                     config=Config(signature_version="s3", s3={"addressing_style": "path"}))
//   s3.generate_presigned_url("get_object", Params={"Bucket": "examplebucket",
//       "Key": "photos/my photo$.jpg", "ResponseContentType": "image/png"}, ExpiresIn=3600)
//   s3.generate_presigned_url("put_object", Params={"Bucket": "examplebucket",
//       "Key": "up/load+1.bin"}, ExpiresIn=600)
//   s3.generate_presigned_url("put_object", Params={"Bucket": "examplebucket",
//       "Key": "img.png", "ContentType": "image/png"}, ExpiresIn=900)
//   HmacV1Auth (with _get_date returning "Fri, 24 May 2013 00:00:00 GMT").add_auth(AWSRequest(
//       "PUT", ".../examplebucket/photos/my%20photo%24.jpg", headers={Content-Type, Content-MD5,
//       x-amz-meta-Owner: "  alice  ", X-Amz-Storage-Class}))
//   HmacV1Auth(...).add_auth(AWSRequest("GET",
//       ".../examplebucket/key?uploadId=abc%2Fdef&max-parts=5&partNumber=2"))
// ---------------------------------------------------------------------------------------------

fn v2_request(method: Method, url_path_and_query: &str, headers: &[(&str, &str)]) -> Req {
    let (path, query) = match url_path_and_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (url_path_and_query.to_owned(), None),
    };
    let mut req = Req {
        method,
        path,
        query,
        headers: HeaderMap::new(),
    };
    req.add_header("host", "127.0.0.1:9000");
    for (n, v) in headers {
        req.add_header(n, v);
    }
    req
}

fn v2_query_get() -> Req {
    v2_request(
        Method::GET,
        "/examplebucket/photos/my%20photo%24.jpg?response-content-type=image%2Fpng\
         &AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=Ci8ryH7GBxj79He%2BMNrJaOAP6AE%3D\
         &Expires=1369357200",
        &[],
    )
}

fn v2_header_put() -> Req {
    v2_request(
        Method::PUT,
        "/examplebucket/photos/my%20photo%24.jpg",
        &[
            ("content-type", "image/jpeg"),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-amz-meta-owner", "alice"),
            ("x-amz-storage-class", "STANDARD"),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            (
                "authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:dbIEZgkF4Eubm8bAhywoehN5dVY=",
            ),
        ],
    )
}

#[test]
fn sigv2_botocore_query_get_verifies() {
    let v = v2_query_get().check_with(&policy_v2(), t0()).unwrap();
    assert_eq!(v.scheme(), Scheme::QueryV2);
    assert_eq!(v.access_key_id(), AKID);
    assert_eq!(v.expires_at(), Some(t0() + secs(3600)));
    assert!(v.signed_headers().is_empty());
    assert!(matches!(v.payload(), PayloadMode::Unsigned));
}

#[test]
fn sigv2_botocore_query_put_verifies() {
    let req = v2_request(
        Method::PUT,
        "/examplebucket/up/load%2B1.bin?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE\
         &Signature=s4LnKRYzLdis7ei2lvkn8Oxztgg%3D&Expires=1369354200",
        &[],
    );
    req.check_with(&policy_v2(), t0()).unwrap();
    let mut get = req.clone();
    get.method = Method::GET;
    assert_err!(
        get.check_with(&policy_v2(), t0()),
        AuthError::SignatureMismatch
    );
}

#[test]
fn sigv2_botocore_query_put_with_content_type_verifies() {
    // botocore copies Content-Type into the query; the client must still send the header,
    // which is what the signature covers.
    let req = v2_request(
        Method::PUT,
        "/examplebucket/img.png?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE\
         &Signature=%2FjTKKoXziOCb6bzAPzHR8r9IaK8%3D&content-type=image%2Fpng&Expires=1369354500",
        &[("content-type", "image/png")],
    );
    req.check_with(&policy_v2(), t0()).unwrap();
    let mut html = req.clone();
    html.set_header("content-type", "text/html");
    assert_err!(
        html.check_with(&policy_v2(), t0()),
        AuthError::SignatureMismatch
    );
    let mut none = req;
    none.headers.remove("content-type");
    assert_err!(
        none.check_with(&policy_v2(), t0()),
        AuthError::SignatureMismatch
    );
}

#[test]
fn sigv2_botocore_header_put_verifies() {
    let v = v2_header_put().check_with(&policy_v2(), t0()).unwrap();
    assert_eq!(v.scheme(), Scheme::HeaderV2);
    assert_eq!(v.expires_at(), None);
}

#[test]
fn sigv2_botocore_header_get_with_subresources_verifies() {
    let req = v2_request(
        Method::GET,
        "/examplebucket/key?uploadId=abc%2Fdef&max-parts=5&partNumber=2",
        &[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            (
                "authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:sjOOpMci1gFBhxL564B0gZ4uDzA=",
            ),
        ],
    );
    req.check_with(&policy_v2(), t0()).unwrap();
    // A signed sub-resource changed → mismatch; an unsigned parameter is not covered by SigV2.
    let mut bad = req.clone();
    bad.set_param("partNumber", "3");
    assert_err!(
        bad.check_with(&policy_v2(), t0()),
        AuthError::SignatureMismatch
    );
    let mut unsigned = req;
    unsigned.set_param("max-parts", "6");
    assert!(unsigned.check_with(&policy_v2(), t0()).is_ok());
}

#[test]
fn sigv2_string_to_sign_matches_botocore() {
    let req = v2_header_put();
    let sts = sigv2::string_to_sign(&req.head(), b"Fri, 24 May 2013 00:00:00 GMT").unwrap();
    assert_eq!(
        String::from_utf8(sts).unwrap(),
        "PUT\n1B2M2Y8AsgTpgAmY7PhCfg==\nimage/jpeg\nFri, 24 May 2013 00:00:00 GMT\n\
         x-amz-meta-owner:alice\nx-amz-storage-class:STANDARD\n\
         /examplebucket/photos/my%20photo%24.jpg"
    );
}

#[test]
fn sigv2_header_rejects_changed_signed_parts() {
    let edits: [(&str, &str); 5] = [
        ("content-type", "text/html"),
        ("content-md5", "AAAAAAAAAAAAAAAAAAAAAA=="),
        ("x-amz-meta-owner", "mallory"),
        ("x-amz-acl", "public-read"),
        ("date", "Fri, 24 May 2013 00:00:01 GMT"),
    ];
    for (name, value) in edits {
        let mut req = v2_header_put();
        req.set_header(name, value);
        assert_err!(
            req.check_with(&policy_v2(), t0()),
            AuthError::SignatureMismatch
        );
    }
    let mut req = v2_header_put();
    req.path = "/examplebucket/photos/my%20photo%25.jpg".into();
    assert_err!(
        req.check_with(&policy_v2(), t0()),
        AuthError::SignatureMismatch
    );
}

#[test]
fn sigv2_header_with_x_amz_date_signs_empty_date_line() {
    let mut req = v2_request(
        Method::GET,
        "/b/k",
        &[("x-amz-date", "Fri, 24 May 2013 00:00:00 +0000")],
    );
    let sts = sigv2::string_to_sign(&req.head(), b"").unwrap();
    assert_eq!(
        String::from_utf8(sts.clone()).unwrap(),
        "GET\n\n\n\nx-amz-date:Fri, 24 May 2013 00:00:00 +0000\n/b/k"
    );
    let sig = sigv2::sign(&secret(), &sts);
    req.set_header("authorization", &format!("AWS {AKID}:{sig}"));
    // A Date header next to x-amz-date is ignored for signing.
    req.set_header("date", "Thu, 01 Jan 2009 00:00:00 GMT");
    req.check_with(&policy_v2(), t0()).unwrap();
}

#[test]
fn sigv2_disabled_by_default() {
    assert_err!(v2_header_put().check(), AuthError::SigV2Disabled);
    assert_err!(v2_query_get().check(), AuthError::SigV2Disabled);
}

#[test]
fn sigv2_query_rejects_expired() {
    let req = v2_query_get();
    assert!(req.check_with(&policy_v2(), t0() + secs(3600)).is_ok());
    assert_err!(
        req.check_with(&policy_v2(), t0() + secs(3601)),
        AuthError::Expired
    );
}

#[test]
fn sigv2_query_rejects_expires_beyond_max() {
    let tight = AuthPolicy {
        max_presign_expiry: secs(600),
        ..policy_v2()
    };
    assert_err!(
        v2_query_get().check_with(&tight, t0()),
        AuthError::ExpiresInvalid
    );
    for bad in ["-1", "1e9", "%2B1369357200", "abc", ""] {
        let mut req = v2_query_get();
        req.set_param("Expires", bad);
        assert_err!(
            req.check_with(&policy_v2(), t0()),
            AuthError::ExpiresInvalid
        );
    }
}

#[test]
fn sigv2_query_rejects_missing_and_duplicate_params() {
    for name in ["Signature", "Expires"] {
        let mut req = v2_query_get();
        req.remove_param(name);
        match req.check_with(&policy_v2(), t0()) {
            Err(AuthError::MissingQueryParam(n)) => assert_eq!(n, name),
            other => panic!("{name}: {:?}", other.map(|v| v.scheme())),
        }
    }
    let mut req = v2_query_get();
    req.append_query("Signature=AAAA");
    assert_err!(
        req.check_with(&policy_v2(), t0()),
        AuthError::DuplicateParam("Signature")
    );
}

#[test]
fn sigv2_rejects_flipped_signature_and_skew() {
    let mut req = v2_query_get();
    req.set_param("Signature", "Ci8ryH7GBxj79He%2BMNrJaOAP6AF%3D");
    assert_err!(
        req.check_with(&policy_v2(), t0()),
        AuthError::SignatureMismatch
    );
    let mut req = v2_header_put();
    req.set_header(
        "authorization",
        "AWS AKIAIOSFODNN7EXAMPLE:dbIEZgkF4Eubm8bAhywoehN5dVZ=",
    );
    assert_err!(
        req.check_with(&policy_v2(), t0()),
        AuthError::SignatureMismatch
    );
    assert_err!(
        v2_header_put().check_with(&policy_v2(), t0() + secs(16 * 60)),
        AuthError::TimeTooSkewed
    );
    let mut req = v2_header_put();
    req.headers.remove("date");
    assert_err!(req.check_with(&policy_v2(), t0()), AuthError::InvalidDate);
    let mut req = v2_header_put();
    req.set_header("authorization", "AWS :abc");
    assert_err!(
        req.check_with(&policy_v2(), t0()),
        AuthError::MalformedCredential
    );
    req.set_header("authorization", "AWS AKIAIOSFODNN7EXAMPLE");
    assert_err!(
        req.check_with(&policy_v2(), t0()),
        AuthError::MalformedAuthorization
    );
}
