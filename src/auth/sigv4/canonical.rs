//! The SigV4 canonical request, with S3's rules: single URI encoding, no path normalisation.

use http::HeaderMap;

use crate::auth::encoding::{self, encode_into, percent_decode};
use crate::auth::{AuthError, RequestHead};

/// AWS URI encoding of the bytes of `s`: `A-Za-z0-9-._~` kept, `/` kept unless `encode_slash`,
/// every other byte `%XX` with upper-case hex. Never double-encodes: `%` itself becomes `%25`,
/// so pass decoded text.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s.as_bytes(), encode_slash);
    out
}

/// The canonical URI of a raw (as-received, percent-encoded) path: decoded once, re-encoded once
/// with [`uri_encode`] keeping `/`. No normalisation: `.`, `..` and empty segments stay.
///
/// An empty path is `/`. A path that does not start with `/` or contains an invalid `%`-escape
/// fails with [`AuthError::MalformedRequestTarget`]. Note that `%2F` and `/` decode alike and so
/// canonicalise alike (as in S3 and MinIO); the router must decode the key the same way.
pub fn canonical_uri(raw_path: &str) -> Result<String, AuthError> {
    if raw_path.is_empty() {
        return Ok("/".to_owned());
    }
    if !raw_path.starts_with('/') {
        return Err(AuthError::MalformedRequestTarget);
    }
    let decoded = percent_decode(raw_path)?;
    let mut out = String::with_capacity(raw_path.len() + 8);
    encode_into(&mut out, &decoded, false);
    Ok(out)
}

/// The canonical query string of a raw query: split on `&` (empty elements skipped), each element
/// at its first `=` (no `=` means an empty value), both halves percent-decoded (`+` stays `+`)
/// and re-encoded with `/` encoded, then sorted by encoded name and then encoded value, joined as
/// `name=value` with `&`.
///
/// With `drop_signature`, `X-Amz-Signature` is left out (query auth signs everything else).
pub fn canonical_query(raw_query: Option<&str>, drop_signature: bool) -> Result<String, AuthError> {
    let pairs = encoding::parse_query(raw_query)?;
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .filter(|p| !(drop_signature && *p.name == *b"X-Amz-Signature"))
        .map(|p| {
            let mut name = String::with_capacity(p.name.len());
            encode_into(&mut name, &p.name, true);
            let mut value = String::with_capacity(p.value.len());
            encode_into(&mut value, &p.value, true);
            (name, value)
        })
        .collect();
    encoded.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    Ok(out)
}

/// Appends a header value with leading/trailing spaces removed and runs of spaces collapsed to
/// one. Only the space byte counts (as in S3 and aws-sigv4); tabs and obs-text pass through.
fn push_normalised_value(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b' ' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

/// The canonical header block for `signed_headers` (lower-case names, in the given order):
/// `name:value\n` per header, where repeated headers are joined with `,` in the order received
/// and every value is trimmed with inner space runs collapsed.
///
/// A signed header absent from `headers` fails with [`AuthError::MissingSignedHeader`].
/// The result is bytes because header values may legally contain non-UTF-8 obs-text.
pub fn canonical_headers(
    headers: &HeaderMap,
    signed_headers: &[String],
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(64 * signed_headers.len());
    for name in signed_headers {
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            return Err(AuthError::MissingSignedHeader(name.clone()));
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_normalised_value(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// The full canonical request:
///
/// ```text
/// METHOD\n<canonical uri>\n<canonical query>\n<canonical headers>\n<signed;headers>\n<payload hash>
/// ```
///
/// `signed_headers` must be lower-case and sorted (the parser guarantees it). `payload_hash` is
/// the `x-amz-content-sha256` value (or `UNSIGNED-PAYLOAD` for presigned URLs without one).
/// `presigned` drops `X-Amz-Signature` from the query.
pub fn canonical_request(
    head: &RequestHead<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    presigned: bool,
) -> Result<Vec<u8>, AuthError> {
    let uri = canonical_uri(head.raw_path)?;
    let query = canonical_query(head.raw_query, presigned)?;
    let headers = canonical_headers(head.headers, signed_headers)?;
    let mut out = Vec::with_capacity(uri.len() + query.len() + headers.len() + 160);
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(uri.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(query.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&headers);
    out.push(b'\n');
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(name.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn canonical_uri_single_encodes_without_normalising() {
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("/test$file.text", "/test%24file.text"),
            ("/test%24file.text", "/test%24file.text"),
            ("/example space/", "/example%20space/"),
            ("/example%20space/", "/example%20space/"),
            ("/a/./b", "/a/./b"),
            ("/a//b/", "/a//b/"),
            ("/a/%2E%2E/b", "/a/../b"),
            ("/a%2Fb", "/a/b"),
            ("/a%252Fb", "/a%252Fb"),
            ("/k+ey", "/k%2Bey"),
            ("/%e1%88%b4", "/%E1%88%B4"),
            ("/\u{1234}", "/%E1%88%B4"),
            ("/~user/-._", "/~user/-._"),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_uri(raw).unwrap(), want, "{raw:?}");
        }
        for bad in ["a/b", "*", "/a%", "/a%2", "/a%gg"] {
            assert!(canonical_uri(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn canonical_query_sorts_encoded_pairs() {
        let q = canonical_query(Some("b=2&a=%2f&a=1&c&A=x+y&d=%7E"), false).unwrap();
        assert_eq!(q, "A=x%2By&a=%2F&a=1&b=2&c=&d=~");
        assert_eq!(canonical_query(None, false).unwrap(), "");
        assert_eq!(canonical_query(Some(""), false).unwrap(), "");
        let q = canonical_query(Some("X-Amz-Signature=abc&z=1"), true).unwrap();
        assert_eq!(q, "z=1");
        let q = canonical_query(Some("X-Amz-Signature=abc&z=1"), false).unwrap();
        assert_eq!(q, "X-Amz-Signature=abc&z=1");
    }

    #[test]
    fn canonical_headers_trim_collapse_and_join() {
        let mut h = HeaderMap::new();
        h.append("my-header1", HeaderValue::from_static("  value4 "));
        h.append("my-header1", HeaderValue::from_static("value1"));
        h.append("my-header2", HeaderValue::from_static("\"a   b   c\""));
        h.append("host", HeaderValue::from_static("example.com"));
        h.append("tabbed", HeaderValue::from_static("a\t\tb"));
        let signed: Vec<String> = ["host", "my-header1", "my-header2", "tabbed"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let block = canonical_headers(&h, &signed).unwrap();
        assert_eq!(
            String::from_utf8(block).unwrap(),
            "host:example.com\nmy-header1:value4,value1\nmy-header2:\"a b c\"\ntabbed:a\t\tb\n"
        );
        let missing = vec!["host".to_owned(), "x-amz-date".to_owned()];
        assert!(matches!(
            canonical_headers(&h, &missing),
            Err(AuthError::MissingSignedHeader(name)) if name == "x-amz-date"
        ));
    }

    #[test]
    fn normalised_value_edge_cases() {
        for (input, want) in [
            ("", ""),
            ("   ", ""),
            ("a", "a"),
            (" a ", "a"),
            ("a  b", "a b"),
            ("a b  c   ", "a b c"),
        ] {
            let mut out = Vec::new();
            push_normalised_value(&mut out, input.as_bytes());
            assert_eq!(out, want.as_bytes(), "{input:?}");
        }
    }
}
