//! The content-type vocabulary: the canonical names of the types upgate recognises, and the
//! normalisation a declared `Content-Type` goes through before it is compared with them. Plain
//! values shared by the config (which refuses types nothing could recognise), the sniffer and the
//! front ends.

pub const PDF: &str = "application/pdf";
pub const PNG: &str = "image/png";
pub const JPEG: &str = "image/jpeg";
pub const GIF: &str = "image/gif";
pub const WEBP: &str = "image/webp";
pub const TIFF: &str = "image/tiff";
pub const BMP: &str = "image/bmp";
pub const HEIC: &str = "image/heic";
pub const AVIF: &str = "image/avif";
pub const TEXT: &str = "text/plain";
pub const CSV: &str = "text/csv";
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

const KNOWN: &[&str] = &[PDF, PNG, JPEG, GIF, WEBP, TIFF, BMP, HEIC, AVIF];

/// All types [`sniff`] can return, as canonical lower-case MIME strings.
///
/// Config validation rejects an `allowed_types` entry that is not in this list: a type upgate cannot
/// recognise could never be matched, so allowing it would be a silent no-op or, worse, an invitation
/// to trust the declared header.
pub fn known_types() -> &'static [&'static str] {
    KNOWN
}

/// Text types: no magic bytes to sniff, so they are accepted only when declared, and then every
/// byte is checked to be text (`crate::scan::text`).
pub fn text_types() -> &'static [&'static str] {
    &[TEXT, CSV]
}

/// Office Open XML types: a zip container whose first bytes say only "zip", so they are
/// accepted only when declared, and then the container is checked to hold the declared format
/// (`crate::scan::office`).
pub fn office_types() -> &'static [&'static str] {
    &[DOCX, XLSX, PPTX]
}

/// Types recognised only when declared (their first bytes cannot tell them apart): text and
/// Office Open XML.
pub fn declared_only_types() -> impl Iterator<Item = &'static str> {
    text_types().iter().chain(office_types()).copied()
}

/// Whether a bucket may accept `t`: a sniffable type, a text type or an Office Open XML type.
pub fn is_accepted(t: &str) -> bool {
    known_types().contains(&t) || declared_only_types().any(|d| d == t)
}

/// Normalises a declared `Content-Type` to the form [`sniff`] returns.
///
/// Lower-cases, drops parameters (`; charset=…`) and surrounding whitespace, and maps common aliases
/// to the canonical name: `image/jpg` and `image/pjpeg` → `image/jpeg`, `image/x-png` → `image/png`,
/// `application/x-pdf` → `application/pdf`.
///
/// Returns `None` if what remains is not syntactically `type/subtype`, each an RFC 9110 token
/// (so no spaces, quotes, slashes or control characters inside either part), including the empty
/// string. Whether the type is known is not this function's concern.
pub fn normalize(content_type: &str) -> Option<String> {
    let essence = content_type
        .split_once(';')
        .map_or(content_type, |(before, _)| before)
        .trim_matches(is_http_whitespace);
    let (kind, subtype) = essence.split_once('/')?;
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    let lower = essence.to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "image/jpg" | "image/pjpeg" => JPEG,
        "image/x-png" => PNG,
        "application/x-pdf" => PDF,
        _ => return Some(lower),
    };
    Some(canonical.to_owned())
}

/// True for declared types that carry no information about the content: an empty (or all-whitespace)
/// header, `application/octet-stream` and `binary/octet-stream`, with any parameters and in any case.
///
/// A syntactically invalid header is *not* generic: it is a bad declaration, and the caller should
/// treat it as such (see [`normalize`]).
pub fn is_generic(content_type: &str) -> bool {
    if content_type.trim_matches(is_http_whitespace).is_empty() {
        return true;
    }
    matches!(
        normalize(content_type).as_deref(),
        Some("application/octet-stream" | "binary/octet-stream")
    )
}

fn is_http_whitespace(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
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
        })
}
