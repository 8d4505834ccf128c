//! Cost of authenticating one request: `auth::parse` + `ParsedAuth::verify`, per scheme.
//!
//! Requests are signed once, up front, by an independent implementation (the `aws-sigv4` crate,
//! as S3 clients sign: single URI encoding, no path normalisation) or by our own minting
//! functions where that is the point (SigV2 presigned, `presign_url` upload links). Each request
//! is checked to verify before it is timed, so an error path is never measured by accident.
//!
//! Baselines in the same run, to report the figures as ratios on this (noisy) machine:
//! - `baseline/hmac_sha256_sts`: one HMAC-SHA256 of a real string to sign, key already derived
//!   (the least any SigV4 verification can cost);
//! - `baseline/signing_key`: the four-HMAC `kSigning` derivation, which `verify` redoes per request;
//! - `baseline/sha256_1KiB`: SHA-256 of 1 KiB.
//!
//! Run: `cargo bench --bench sigv4`.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::{Digest, Sha256};
use upgate::auth::{
    AuthPolicy, PresignParams, RequestHead, Scheme, SecretKey, parse, presign_url, sigv2, sigv4,
};

const ACCESS_KEY: &str = "AKIDUPGATEBENCH00001";
const SECRET_KEY: &str = "upgate-bench-secret-key-0123456789abcdef";
const REGION: &str = "us-east-1";
const HOST: &str = "127.0.0.1:9000";

/// An owned request head: what the server has in hand when it authenticates.
struct OwnedHead {
    method: Method,
    raw_path: String,
    raw_query: Option<String>,
    headers: HeaderMap,
}

impl OwnedHead {
    /// Splits `http://host/path?query` into raw path and query.
    fn from_url(method: Method, url: &str, headers: &[(String, String)]) -> Self {
        let target = url
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .expect("url is http://host/path");
        let (raw_path, raw_query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        Self {
            method,
            raw_path,
            raw_query,
            headers: map,
        }
    }

    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            raw_path: &self.raw_path,
            raw_query: self.raw_query.as_deref(),
            headers: &self.headers,
        }
    }
}

fn policy() -> AuthPolicy {
    AuthPolicy {
        region: REGION.to_owned(),
        max_presign_expiry: upgate::auth::MAX_PRESIGN_EXPIRY,
        max_skew: upgate::auth::DEFAULT_MAX_SKEW,
        allow_sigv2: true,
    }
}

fn settings(location: SignatureLocation) -> SigningSettings {
    let mut s = SigningSettings::default();
    s.percent_encoding_mode = PercentEncodingMode::Single;
    s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    s.signature_location = location;
    s
}

/// (a) A header-signed PUT as an SDK sends it with `UNSIGNED-PAYLOAD`: six signed headers
/// (content-length, content-type, host, x-amz-content-sha256, x-amz-date, x-amz-meta-owner).
fn header_put(time: SystemTime) -> OwnedHead {
    let url = format!("http://{HOST}/uploads/docs/report%202024-q3.pdf");
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), HOST.into()),
        ("content-type".into(), "application/pdf".into()),
        ("content-length".into(), "2097152".into()),
        ("x-amz-meta-owner".into(), "team-finance".into()),
    ];
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
    let mut s = settings(SignatureLocation::Headers);
    s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(s)
        .build()
        .expect("signing params")
        .into();
    let req = SignableRequest::new(
        "PUT",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .expect("signable request");
    let (instructions, _) = sign(req, &params).expect("sign").into_parts();
    headers.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    OwnedHead::from_url(Method::PUT, &url, &headers)
}

/// (b) A presigned GET made by aws-sigv4 (signs `host` only; payload unsigned).
fn presigned_get(time: SystemTime) -> OwnedHead {
    let url = format!("http://{HOST}/uploads/docs/report%202024-q3.pdf");
    let headers = vec![("host".to_owned(), HOST.to_owned())];
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
    let mut s = settings(SignatureLocation::QueryParams);
    s.expires_in = Some(Duration::from_secs(900));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(s)
        .build()
        .expect("signing params")
        .into();
    let req = SignableRequest::new(
        "GET",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .expect("signable request");
    let (instructions, _) = sign(req, &params).expect("sign").into_parts();
    let mut full = url;
    let mut sep = '?';
    for (k, v) in instructions.params() {
        full.push(sep);
        sep = '&';
        full.push_str(k);
        full.push('=');
        full.extend(percent_encoding::utf8_percent_encode(
            v,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    OwnedHead::from_url(Method::GET, &full, &headers)
}

/// An upload link minted by our own `presign_url`, binding content-type and content-length, as
/// the gateway hands them out.
fn presigned_put_link(time: SystemTime, secret: &SecretKey) -> OwnedHead {
    let params = PresignParams {
        method: Method::PUT,
        host: HOST.to_owned(),
        path: "/uploads/docs/report 2024-q3.pdf".to_owned(),
        query: Vec::new(),
        headers: vec![
            ("content-type".into(), "application/pdf".into()),
            ("content-length".into(), "2097152".into()),
        ],
        expires: Duration::from_secs(900),
        region: REGION.to_owned(),
        time,
        access_key_id: ACCESS_KEY.to_owned(),
    };
    let query = presign_url(&params, secret);
    let url = format!("http://{HOST}{}?{query}", params.encoded_path());
    let headers = vec![
        ("host".to_owned(), HOST.to_owned()),
        ("content-type".to_owned(), "application/pdf".to_owned()),
        ("content-length".to_owned(), "2097152".to_owned()),
    ];
    OwnedHead::from_url(Method::PUT, &url, &headers)
}

/// (c) A SigV2 presigned GET (`AWSAccessKeyId`, `Expires`, `Signature`), signed with our SigV2
/// primitives (the string to sign does not depend on the query for these parameters).
fn sigv2_presigned_get(time: SystemTime, secret: &SecretKey) -> OwnedHead {
    let expires = (time.duration_since(UNIX_EPOCH).expect("after epoch")
        + Duration::from_secs(900))
    .as_secs()
    .to_string();
    let unsigned = OwnedHead::from_url(
        Method::GET,
        &format!("http://{HOST}/uploads/docs/report%202024-q3.pdf"),
        &[("host".to_owned(), HOST.to_owned())],
    );
    let sts = sigv2::string_to_sign(&unsigned.head(), expires.as_bytes()).expect("v2 sts");
    let signature = sigv2::sign(secret, &sts);
    let query = format!(
        "AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={}",
        percent_encoding::utf8_percent_encode(&signature, percent_encoding::NON_ALPHANUMERIC)
    );
    OwnedHead {
        raw_query: Some(query),
        ..unsigned
    }
}

/// Fails loudly (before timing) if a request does not authenticate as expected.
fn check(name: &str, req: &OwnedHead, scheme: Scheme, secret: &SecretKey, now: SystemTime) {
    let policy = policy();
    let head = req.head();
    let parsed = parse(&head, &policy, now).unwrap_or_else(|e| panic!("{name}: parse: {e}"));
    assert_eq!(parsed.scheme(), scheme, "{name}: scheme");
    assert_eq!(parsed.access_key_id(), ACCESS_KEY, "{name}: access key");
    parsed
        .verify(&head, secret, &policy)
        .unwrap_or_else(|e| panic!("{name}: verify: {e}"));
}

fn bench_auth(c: &mut Criterion) {
    let now = SystemTime::now();
    let secret = SecretKey::new(SECRET_KEY.to_owned());
    let policy = policy();

    let cases = [
        (
            "header_put_unsigned_payload",
            header_put(now),
            Scheme::HeaderV4,
        ),
        ("presigned_get_v4", presigned_get(now), Scheme::QueryV4),
        (
            "presigned_put_link_v4",
            presigned_put_link(now, &secret),
            Scheme::QueryV4,
        ),
        (
            "presigned_get_v2",
            sigv2_presigned_get(now, &secret),
            Scheme::QueryV2,
        ),
    ];
    for (name, req, scheme) in &cases {
        check(name, req, *scheme, &secret, now);
    }

    let mut group = c.benchmark_group("auth");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, req, _) in &cases {
        let head = req.head();
        group.bench_function(format!("{name}/parse+verify"), |b| {
            b.iter(|| {
                let parsed = parse(black_box(&head), &policy, now).expect("parse");
                parsed
                    .verify(black_box(&head), black_box(&secret), &policy)
                    .expect("verify")
            })
        });
    }
    // Where the time goes for the common case: the key-independent half alone.
    let (_, put, _) = &cases[0];
    let head = put.head();
    group.bench_function("header_put_unsigned_payload/parse_only", |b| {
        b.iter(|| parse(black_box(&head), &policy, now).expect("parse"))
    });
    group.finish();
}

fn bench_baselines(c: &mut Criterion) {
    let secret = SecretKey::new(SECRET_KEY.to_owned());
    // A string to sign of the real shape and size (~150 bytes).
    let sts = sigv4::string_to_sign(
        "20250101T000000Z",
        &sigv4::credential_scope("20250101", REGION, "s3"),
        b"PUT\n/uploads/docs/report%202024-q3.pdf\n\ncontent-length:2097152\n...",
    );
    let key = sigv4::signing_key(&secret, "20250101", REGION, "s3");
    let raw_key = key.sign(b"bench: any 32-byte key will do");
    let kib: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();

    let mut group = c.benchmark_group("baseline");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("hmac_sha256_sts", |b| {
        b.iter(|| {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(black_box(&raw_key)).expect("hmac key");
            mac.update(black_box(sts.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
    group.bench_function("signing_key", |b| {
        b.iter(|| sigv4::signing_key(black_box(&secret), "20250101", REGION, "s3"))
    });
    group.bench_function("sha256_1KiB", |b| {
        b.iter(|| Sha256::digest(black_box(&kib)))
    });
    group.finish();
}

criterion_group!(benches, bench_auth, bench_baselines);
criterion_main!(benches);
