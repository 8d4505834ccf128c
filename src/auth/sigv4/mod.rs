//! AWS Signature Version 4 for S3: canonicalisation, key derivation, header and presigned query
//! verification, the aws-chunked signature chain, and presigned-URL minting.
//!
//! The pieces, in the order a request meets them:
//!
//! - [`canonical_request`] builds the canonical request from a [`RequestHead`]: method, canonical
//!   URI ([`canonical_uri`]: decode once, re-encode once, no normalisation), canonical query
//!   ([`canonical_query`]), canonical headers ([`canonical_headers`]), the signed-header list and
//!   the payload hash.
//! - [`string_to_sign`] hashes it under the algorithm, date and [`credential_scope`].
//! - [`signing_key`] derives the per-day, per-region, per-service key from the secret;
//!   [`SigningKey::sign`] produces the signature.
//! - [`ChunkSigner`] carries the chain on to every aws-chunked chunk and the trailer.
//! - [`presign_url`] mints presigned query strings that [`crate::auth::parse`] accepts.
//!
//! The primitives take the service name as a parameter so that the generic AWS test suite (service
//! `service`) can exercise them; request verification itself always uses `s3`.
//!
//! [`RequestHead`]: crate::auth::RequestHead

mod canonical;
mod chunk;
mod parse;
mod presign;

use std::fmt;
use std::time::SystemTime;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::SecretKey;

pub use canonical::{
    canonical_headers, canonical_query, canonical_request, canonical_uri, uri_encode,
};
pub use chunk::ChunkSigner;
pub(crate) use parse::{ParsedV4, parse_header_auth, parse_query_auth, verify_parsed};
pub use presign::{PresignParams, presign_url};

/// The only SigV4 algorithm accepted: `AWS4-HMAC-SHA256`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in S3 credential scopes.
pub const SERVICE: &str = "s3";
/// The last element of every credential scope.
pub const TERMINAL: &str = "aws4_request";
/// `x-amz-content-sha256` value for a body not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `x-amz-content-sha256` value for a signed aws-chunked body.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// `x-amz-content-sha256` value for a signed aws-chunked body with a signed trailer.
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// `x-amz-content-sha256` value for an unsigned aws-chunked body with a trailer.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// Prefix of the SigV4a (ECDSA) streaming modes, which are recognised and always rejected.
pub const STREAMING_ECDSA_PREFIX: &str = "STREAMING-AWS4-ECDSA-P256-SHA256-";
/// Hex SHA-256 of the empty string.
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC is defined for keys of any length; hmac 0.12 never returns InvalidLength here.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Lower-case hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A derived SigV4 signing key (`kSigning`), valid for one day, region and service.
///
/// Contract: zeroized on drop; `Debug` prints `SigningKey(<redacted>)`; not `Clone`.
pub struct SigningKey(Zeroizing<[u8; 32]>);

impl SigningKey {
    /// HMAC-SHA256 of `string_to_sign` under this key: the raw signature.
    pub fn sign(&self, string_to_sign: &[u8]) -> [u8; 32] {
        hmac_sha256(self.0.as_slice(), &[string_to_sign])
    }

    /// [`SigningKey::sign`] as lower-case hex, the form that goes on the wire.
    pub fn sign_hex(&self, string_to_sign: &[u8]) -> String {
        hex::encode(self.sign(string_to_sign))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Derives `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, yyyymmdd), region), service),
/// "aws4_request")`. Intermediate keys are zeroized.
pub fn signing_key(secret: &SecretKey, yyyymmdd: &str, region: &str, service: &str) -> SigningKey {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.expose().len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.expose().as_bytes());
    let k_date = Zeroizing::new(hmac_sha256(&k_secret, &[yyyymmdd.as_bytes()]));
    let k_region = Zeroizing::new(hmac_sha256(k_date.as_slice(), &[region.as_bytes()]));
    let k_service = Zeroizing::new(hmac_sha256(k_region.as_slice(), &[service.as_bytes()]));
    SigningKey(Zeroizing::new(hmac_sha256(
        k_service.as_slice(),
        &[TERMINAL.as_bytes()],
    )))
}

/// `yyyymmdd/region/service/aws4_request`.
pub fn credential_scope(yyyymmdd: &str, region: &str, service: &str) -> String {
    format!("{yyyymmdd}/{region}/{service}/{TERMINAL}")
}

/// `AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical_request)>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request)
    )
}

/// Parses a strict ISO 8601 basic UTC timestamp, `YYYYMMDDTHHMMSSZ` (16 bytes, nothing else).
///
/// Returns `None` for any other shape, an impossible calendar date or time (month 13, 30 Feb,
/// hour 24, second 60) or a year before 1970.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    let small = |v: u32| u8::try_from(v).ok();
    crate::clock::from_utc_fields(
        i32::try_from(year).ok()?,
        small(month)?,
        small(day)?,
        small(hour)?,
        small(minute)?,
        small(second)?,
    )
}

/// Formats `t` (truncated to whole seconds, UTC) as `YYYYMMDDTHHMMSSZ`. Times before 1970 format
/// as `19700101T000000Z`.
pub fn format_amz_date(t: SystemTime) -> String {
    crate::clock::amz_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn amz_date_round_trips() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(at(1_369_353_600)));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(at(1_440_938_160)));
        assert_eq!(parse_amz_date("20000229T235959Z"), Some(at(951_868_799)));
        for secs in [
            0,
            951_868_799,
            1_369_353_600,
            4_102_444_800,
            253_402_300_799,
        ] {
            assert_eq!(parse_amz_date(&format_amz_date(at(secs))), Some(at(secs)));
        }
        assert_eq!(format_amz_date(at(253_402_300_799)), "99991231T235959Z");
        assert_eq!(
            format_amz_date(at(1_369_353_600) + Duration::from_millis(999)),
            "20130524T000000Z"
        );
    }

    #[test]
    fn amz_date_is_strict() {
        for bad in [
            "",
            "20130524T000000",
            "20130524T000000z",
            "20130524 000000Z",
            "2013-05-24T00:00:00Z",
            "20130524T000000Z ",
            "+0130524T000000Z",
            "20131324T000000Z",
            "20130230T000000Z",
            "20190229T000000Z",
            "20130500T000000Z",
            "20130524T240000Z",
            "20130524T006000Z",
            "20130524T000060Z",
            "19691231T235959Z",
            "２０130524T000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signing_key_matches_aws_documentation_example() {
        // From the AWS "derive a signing key" documentation example.
        let secret = SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into());
        let key = signing_key(&secret, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex::encode(key.0.as_slice()),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn keys_are_redacted_in_debug() {
        let secret = SecretKey::new("topsecretvalue".into());
        assert_eq!(format!("{secret:?}"), "SecretKey(<redacted>)");
        let key = signing_key(&secret, "20130524", "us-east-1", "s3");
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}
