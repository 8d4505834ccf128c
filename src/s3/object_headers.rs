//! The headers an S3 client stores with an object: user metadata (`x-amz-meta-*`) and the
//! standard headers S3 keeps (`Cache-Control`, `Content-Disposition`, `Content-Encoding`,
//! `Content-Language`, `Expires`), read from a PUT or CreateMultipartUpload request or a POST
//! form, and written back on GET/HEAD.
//!
//! S3's rules, kept here:
//! - user metadata is limited to 2 KB: the UTF-8 bytes of every name (after `x-amz-meta-`) and
//!   value, summed; more answers `MetadataTooLarge`;
//! - a value sent as one RFC 2047 encoded word (`=?UTF-8?B?…?=` or `=?UTF-8?Q?…?=`) is stored
//!   decoded, and a value that is not printable ASCII is returned as `=?UTF-8?B?…?=`, the form
//!   S3 answers with (raw UTF-8 bytes are accepted on the way in);
//! - `aws-chunked` is a transfer framing, never part of the stored `Content-Encoding`;
//! - a header repeated in the request is stored as its values joined by `,`.

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::metadata::ObjectHeaders;

/// The most user metadata an object carries, in bytes (S3's limit).
pub const MAX_USER_METADATA_BYTES: usize = 2048;

const USER_PREFIX: &str = "x-amz-meta-";

/// The standard headers stored with an object.
const STANDARD: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// The stored headers a request carries.
pub(crate) fn from_request(h: &HeaderMap) -> Result<ObjectHeaders> {
    collect(h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

/// The stored headers a POST form carries (field names are case-insensitive).
pub(crate) fn from_form(fields: &[(String, String)]) -> Result<ObjectHeaders> {
    collect(fields.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

fn collect<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Result<ObjectHeaders> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut user_bytes = 0usize;
    for (name, raw) in pairs {
        let name = name.to_ascii_lowercase();
        let user = name.strip_prefix(USER_PREFIX);
        if user.is_none() && !STANDARD.contains(&name.as_str()) {
            continue;
        }
        if user.is_some_and(str::is_empty) || HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Error::InvalidArgument("invalid metadata header name"));
        }
        let value = std::str::from_utf8(raw)
            .map_err(|_| Error::InvalidArgument("metadata values must be UTF-8"))?;
        let mut value = decode_encoded_word(value.trim());
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(Error::InvalidArgument("invalid metadata header value"));
        }
        if name == "content-encoding" {
            value = value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("aws-chunked"))
                .collect::<Vec<_>>()
                .join(",");
            if value.is_empty() {
                continue;
            }
        }
        if let Some(u) = user {
            user_bytes += u.len() + value.len();
        }
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    if user_bytes > MAX_USER_METADATA_BYTES {
        return Err(Error::MetadataTooLarge);
    }
    Ok(ObjectHeaders(out))
}

/// Writes the stored headers into a GET/HEAD response.
pub(crate) fn write(stored: &ObjectHeaders, rh: &mut HeaderMap) {
    for (name, value) in &stored.0 {
        let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let printable = value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        let v = if printable {
            HeaderValue::from_str(value)
        } else {
            HeaderValue::from_str(&encode_word(value))
        };
        if let Ok(v) = v {
            rh.insert(n, v);
        }
    }
}

/// `value` as an RFC 2047 encoded word (UTF-8, base64), as S3 returns non-ASCII metadata.
fn encode_word(value: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
    format!("=?UTF-8?B?{b64}?=")
}

/// The text of `value` if it is one RFC 2047 encoded word in UTF-8 (`B` or `Q` encoding);
/// otherwise `value` itself.
fn decode_encoded_word(value: &str) -> String {
    let decoded = value
        .strip_prefix("=?")
        .and_then(|r| r.strip_suffix("?="))
        .and_then(|inner| {
            let mut it = inner.splitn(3, '?');
            let (charset, encoding, text) = (it.next()?, it.next()?, it.next()?);
            if !charset.eq_ignore_ascii_case("utf-8") || text.contains('?') {
                return None;
            }
            let bytes = match encoding {
                "B" | "b" => base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()?,
                "Q" | "q" => decode_q(text)?,
                _ => return None,
            };
            String::from_utf8(bytes).ok()
        });
    decoded.unwrap_or_else(|| value.to_string())
}

/// RFC 2047 `Q` encoding: `_` is a space, `=XX` a byte in hex.
fn decode_q(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Result<ObjectHeaders> {
        collect(v.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn keeps_user_metadata_and_standard_headers_only() {
        let got = pairs(&[
            ("X-Amz-Meta-Color", "blue"),
            ("Cache-Control", "max-age=60"),
            ("content-type", "image/png"),
            ("x-amz-date", "20260101T000000Z"),
        ])
        .expect("ok");
        assert_eq!(
            got.0,
            vec![
                ("x-amz-meta-color".to_string(), "blue".to_string()),
                ("cache-control".to_string(), "max-age=60".to_string()),
            ]
        );
    }

    #[test]
    fn user_metadata_is_limited_to_2_kb() {
        let at_limit = "v".repeat(MAX_USER_METADATA_BYTES - 1);
        assert!(pairs(&[("x-amz-meta-a", &at_limit)]).is_ok());
        let over = "v".repeat(MAX_USER_METADATA_BYTES);
        assert!(matches!(
            pairs(&[("x-amz-meta-a", &over)]),
            Err(Error::MetadataTooLarge)
        ));
    }

    #[test]
    fn encoded_words_are_decoded_and_non_ascii_is_encoded() {
        assert_eq!(decode_encoded_word("=?UTF-8?B?w6l0w6k=?="), "été");
        assert_eq!(
            decode_encoded_word("=?utf-8?Q?caf=C3=A9_au_lait?="),
            "café au lait"
        );
        assert_eq!(
            decode_encoded_word("=?ISO-8859-1?Q?caf=E9?="),
            "=?ISO-8859-1?Q?caf=E9?="
        );
        assert_eq!(
            decode_encoded_word("=?UTF-8?B?not base64?="),
            "=?UTF-8?B?not base64?="
        );
        assert_eq!(encode_word("été"), "=?UTF-8?B?w6l0w6k=?=");
    }

    #[test]
    fn aws_chunked_is_not_a_stored_encoding() {
        let got = pairs(&[("content-encoding", "aws-chunked,gzip")]).expect("ok");
        assert_eq!(got.0, vec![("content-encoding".into(), "gzip".into())]);
        let got = pairs(&[("content-encoding", "aws-chunked")]).expect("ok");
        assert!(got.0.is_empty());
    }

    #[test]
    fn control_characters_and_bad_names_are_refused() {
        assert!(pairs(&[("x-amz-meta-", "v")]).is_err());
        assert!(pairs(&[("x-amz-meta-a b", "v")]).is_err());
        assert!(pairs(&[("x-amz-meta-a", "=?UTF-8?Q?a=0Ab?=")]).is_err());
    }
}
