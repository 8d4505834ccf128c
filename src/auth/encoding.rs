//! Percent-encoding as AWS signatures define it, strict percent-decoding, raw query splitting and
//! small header helpers shared by SigV4 and SigV2.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue};

use super::AuthError;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `A-Z a-z 0-9 - . _ ~`: the bytes AWS URI encoding leaves as they are.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `bytes` AWS-URI-encoded to `out`: unreserved bytes kept, `/` kept unless
/// `encode_slash`, everything else `%XX` with upper-case hex.
pub(crate) fn encode_into(out: &mut String, bytes: &[u8], encode_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes. Every `%` must be followed by two hex digits, otherwise
/// [`AuthError::MalformedRequestTarget`]. `+` is kept as `+` (it is not a space in SigV4).
/// The result is bytes: a decoded path or value need not be UTF-8.
pub(crate) fn percent_decode(s: &str) -> Result<Cow<'_, [u8]>, AuthError> {
    let bytes = s.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(AuthError::MalformedRequestTarget),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
}

/// One `name[=value]` element of a raw query string, percent-decoded.
#[derive(Debug)]
pub(crate) struct QueryPair<'a> {
    /// Decoded name.
    pub(crate) name: Cow<'a, [u8]>,
    /// Decoded value; empty when the element had no `=`.
    pub(crate) value: Cow<'a, [u8]>,
    /// Whether the element contained `=` (SigV2 resources keep `name=` apart from `name`).
    pub(crate) has_eq: bool,
}

/// Splits a raw query on `&` (empty elements are skipped), each element at its first `=`, and
/// percent-decodes both halves strictly.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<Vec<QueryPair<'_>>, AuthError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split('&')
        .filter(|element| !element.is_empty())
        .map(|element| {
            let (name, value, has_eq) = match element.split_once('=') {
                Some((n, v)) => (n, v, true),
                None => (element, "", false),
            };
            Ok(QueryPair {
                name: percent_decode(name)?,
                value: percent_decode(value)?,
                has_eq,
            })
        })
        .collect()
}

/// The value of a header that must appear at most once, or [`AuthError::DuplicateHeader`].
pub(crate) fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h HeaderValue>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::DuplicateHeader(name));
    }
    Ok(first)
}

/// Headers whose repetition would let the verifier and a later reader disagree about the value
/// (for example signing `a,b` while the handler takes `a`). They must appear at most once on an
/// authenticated request.
pub(crate) const SINGLE_VALUED_HEADERS: [&str; 6] = [
    "host",
    "x-amz-date",
    "date",
    "x-amz-content-sha256",
    "content-md5",
    "content-type",
];

/// Rejects an authenticated request that repeats any of [`SINGLE_VALUED_HEADERS`].
pub(crate) fn reject_duplicate_headers(headers: &HeaderMap) -> Result<(), AuthError> {
    for name in SINGLE_VALUED_HEADERS {
        single_header(headers, name)?;
    }
    Ok(())
}

/// Trims spaces and tabs at both ends of a header value.
pub(crate) fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |p| p + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str, slash: bool) -> String {
        let mut out = String::new();
        encode_into(&mut out, s.as_bytes(), slash);
        out
    }

    #[test]
    fn encodes_reserved_and_keeps_unreserved() {
        assert_eq!(enc("AZaz09-._~", true), "AZaz09-._~");
        assert_eq!(enc("a b+c$/", true), "a%20b%2Bc%24%2F");
        assert_eq!(enc("a b+c$/", false), "a%20b%2Bc%24/");
        assert_eq!(enc("\u{1234}", false), "%E1%88%B4");
        assert_eq!(enc("%", false), "%25");
    }

    #[test]
    fn decode_is_strict_and_keeps_plus() {
        assert_eq!(&*percent_decode("a%20b+c").unwrap(), b"a b+c");
        assert_eq!(
            &*percent_decode("%e1%88%B4").unwrap(),
            "\u{1234}".as_bytes()
        );
        assert_eq!(&*percent_decode("%FF").unwrap(), &[0xff]);
        for bad in ["%", "%4", "%zz", "a%g0", "%%"] {
            assert!(
                matches!(percent_decode(bad), Err(AuthError::MalformedRequestTarget)),
                "{bad}"
            );
        }
    }

    #[test]
    fn query_split_rules() {
        let pairs = parse_query(Some("b=2&&a&c=x=y&d=")).unwrap();
        let got: Vec<(&[u8], &[u8], bool)> = pairs
            .iter()
            .map(|p| (&*p.name, &*p.value, p.has_eq))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"b"[..], &b"2"[..], true),
                (b"a", b"", false),
                (b"c", b"x=y", true),
                (b"d", b"", true),
            ]
        );
        assert!(parse_query(None).unwrap().is_empty());
        assert!(parse_query(Some("a=%zz")).is_err());
    }

    #[test]
    fn trims_spaces_and_tabs_only_at_the_ends() {
        assert_eq!(trim_ows(b" \t a  b \t"), b"a  b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn duplicate_single_valued_header_is_rejected() {
        let mut h = HeaderMap::new();
        h.append("host", HeaderValue::from_static("a"));
        h.append("host", HeaderValue::from_static("b"));
        assert!(matches!(
            reject_duplicate_headers(&h),
            Err(AuthError::DuplicateHeader("host"))
        ));
    }
}
