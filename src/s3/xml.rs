//! S3 XML bodies: the response documents upgate writes and the two request documents it reads.
//!
//! Writers describe each document as `Serialize` types whose fields are its elements in S3's
//! order, and quick-xml's serializer writes them. Text is escaped exactly as [`escape`] does:
//! quick-xml writes the five predefined entities, `Xml10` the rest. Every document starts with
//! `<?xml version="1.0" encoding="UTF-8"?>` and, like AWS S3, puts the namespace [`S3_NAMESPACE`]
//! on its root element, except `<Error>`, which AWS sends without one.
//!
//! Parsers ([`parse_delete`], [`parse_complete_multipart`]) read hostile input, so they:
//! * refuse any `<!DOCTYPE>` (so no internal subset, no entity definitions, no expansion) and resolve
//!   only the five predefined entities and character references;
//! * accept only the elements the S3 grammar names, in the places it names them, so nesting depth
//!   is fixed and an unknown field (for example a conditional-delete `ETag`) is an error rather
//!   than silently ignored;
//! * stop with [`XmlError::TooMany`] at the first entry past the caller's limit, without reading the
//!   rest;
//! * do linear work in the input, whose size the caller caps before calling.
//!
//! Element names are matched on their local part, so `xmlns` declarations and prefixes are accepted
//! with or without the S3 namespace, as S3 itself does.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::SystemTime;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::se::EmptyElementHandling::{self, Expanded, SelfClosed};
use quick_xml::se::QuoteLevel;
use serde::Serialize;

use crate::ingest::checksum::ChecksumAlgorithm;

/// The namespace AWS S3 puts on the root element of its response documents.
pub const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Why a request document was refused. Every variant is S3's `400 MalformedXML`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML, a `DOCTYPE`, an unexpected or missing element, or an invalid value.
    #[error(
        "the XML you provided was not well-formed or did not validate against our published schema"
    )]
    Malformed,
    /// More entries than the caller's limit.
    #[error("the XML you provided has more entries than allowed")]
    TooMany,
    /// Well-formed, but lists no entries.
    #[error("the XML you provided lists no entries")]
    Empty,
}

// ---------------------------------------------------------------------------------------------------
// Escaping and timestamps
// ---------------------------------------------------------------------------------------------------

/// Escapes `s` for use as XML 1.0 element text or a quoted attribute value.
///
/// * `&`, `<`, `>`, `"` and `'` become the predefined entities.
/// * Tab, line feed and carriage return become character references (`&#x9;`, `&#xA;`, `&#xD;`), so
///   they survive a parser's end-of-line and attribute normalisation; likewise the C1 controls
///   U+007F–U+009F, which XML 1.0 allows but discourages.
/// * Characters XML 1.0 cannot carry at all, not even as references (the other C0 controls, U+FFFE,
///   U+FFFF), become U+FFFD. Object keys containing them are refused at the edge, so this only keeps
///   a stray value from making the whole document ill-formed.
///
/// Borrows when nothing needs escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    // The same two steps the writers take: quick-xml's entities (its `QuoteLevel::Full`), then
    // the references and replacements of `Xml10`.
    let entities = quick_xml::escape::escape(s);
    if !entities.contains(needs_reference) {
        return entities;
    }
    let mut out = String::with_capacity(entities.len() + 16);
    push_references(&mut out, &entities);
    Cow::Owned(out)
}

/// What quick-xml writes raw but [`escape`] does not: see [`push_references`].
fn needs_reference(c: char) -> bool {
    c < ' ' || matches!(c, '\u{7F}'..='\u{9F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Appends `s` with tab, line feed, carriage return and the C1 controls as character references,
/// and the characters XML 1.0 cannot carry as U+FFFD. Leaves `&` alone: `s` is already escaped.
fn push_references(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\r' | '\u{7F}'..='\u{9F}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "&#x{:X};", u32::from(c));
            }
            c if !is_xml_char(c) => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
}

/// XML 1.0 `Char`: `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`.
/// (Rust's `char` already excludes surrogates.)
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

pub use crate::clock::iso8601;

// ---------------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------------

/// Where the serializer writes. quick-xml escapes the five specials in text and attribute values
/// but leaves control characters raw, so this finishes [`escape`]'s work on everything written.
/// That is safe for the markup too: names are ASCII constants and no markup has a control
/// character in it.
struct Xml10<'a>(&'a mut String);

impl std::fmt::Write for Xml10<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        // A byte test first, since this sees every byte of every document: the characters
        // `needs_reference` picks are ASCII controls, or encoded with a lead byte C2 (U+0080–U+009F)
        // or EF (U+FFFE, U+FFFF).
        let suspect = s.as_bytes().chunks(64).any(|chunk| {
            chunk.iter().fold(false, |found, &b| {
                found | (b < 0x20) | (b == 0x7F) | (b == 0xC2) | (b == 0xEF)
            })
        });
        if suspect && s.contains(needs_reference) {
            push_references(self.0, s);
        } else {
            self.0.push_str(s);
        }
        Ok(())
    }
}

/// The declaration followed by `doc`, whose serde name is the root element. Empty elements are
/// written `<Name></Name>`, as upgate always has, unless `empty` says otherwise.
fn document<T: Serialize>(doc: &T, empty: EmptyElementHandling, entries: usize) -> String {
    // Room for about `entries` listing entries up front: measurably faster for long listings
    // than growing to size.
    let mut out = String::with_capacity(entries.saturating_mul(256).saturating_add(512));
    out.push_str(DECLARATION);
    let mut sink = Xml10(&mut out);
    let mut ser = quick_xml::se::Serializer::new(&mut sink);
    // Full: quotes and apostrophes as entities too, as S3 writes ETags (`&quot;…&quot;`).
    ser.set_quote_level(QuoteLevel::Full)
        .empty_element_handling(empty);
    match doc.serialize(ser) {
        Ok(_) => out,
        Err(e) => {
            // Whether serialization fails depends only on a document's types (names, kinds of
            // value), never on the values, and the tests write every document: this is a bug.
            // Answer with a whole document rather than a cut-off one.
            tracing::error!(error = %e, "S3 XML document could not be serialized");
            INTERNAL_ERROR.to_owned()
        }
    }
}

/// S3's `InternalError` document, for a response that could not be written.
const INTERNAL_ERROR: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\
    <Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message>\
    </Error>";

/// A time as [`iso8601`], for `serialize_with`.
fn timestamp<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso8601(*t))
}

/// An ETag given without quotes, written with them (as `&quot;`, like all quotes), as S3 does.
fn quoted<S: serde::Serializer>(etag: &&str, s: S) -> Result<S::Ok, S::Error> {
    // Not `format!`: this runs for every entry of a listing, and the formatting machinery
    // costs more than the copy.
    let mut q = String::with_capacity(etag.len() + 2);
    q.push('"');
    q.push_str(etag);
    q.push('"');
    s.serialize_str(&q)
}

/// The items of an iterator, serialized as a sequence (repeated elements) when written. Lets a
/// listing make each entry, with its encoded key, as it is written rather than all up front.
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// `Some((name, value))` as `<name>value</name>` if `name` is one of
/// [`ChecksumAlgorithm::xml_element`]; anything else is not written, since it would be an arbitrary
/// element name in our output. For `$value` fields, where quick-xml writes an enum variant as an
/// element named after the variant.
fn checksum<S: serde::Serializer>(c: &Option<(&str, &str)>, s: S) -> Result<S::Ok, S::Error> {
    match c.and_then(|(name, value)| Some((ChecksumAlgorithm::from_xml_element(name)?, value))) {
        Some((alg, value)) => {
            s.serialize_newtype_variant("Checksum", alg as u32, alg.xml_element(), value)
        }
        None => s.serialize_none(),
    }
}

/// S3's owner block, written for both `Initiator` and `Owner`.
#[derive(Serialize)]
struct Owner<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "DisplayName")]
    display_name: &'a str,
}

/// An S3 error document:
/// `<Error><Code>…</Code><Message>…</Message><Resource>…</Resource><RequestId>…</RequestId></Error>`,
/// without a namespace, as AWS sends it. All four values are escaped; `Resource` is written even
/// when empty.
pub fn error(code: &str, message: &str, resource: &str, request_id: &str) -> String {
    #[derive(Serialize)]
    #[serde(rename = "Error", rename_all = "PascalCase")]
    struct Doc<'a> {
        code: &'a str,
        message: &'a str,
        resource: &'a str,
        request_id: &'a str,
    }
    let doc = Doc {
        code,
        message,
        resource,
        request_id,
    };
    document(&doc, Expanded, 0)
}

/// One bucket in a `ListBuckets` response. Fields are serialized as the `<Bucket>` element, in
/// their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEntry<'a> {
    /// Bucket name.
    pub name: &'a str,
    /// Creation time, written as [`iso8601`].
    #[serde(rename = "CreationDate", serialize_with = "timestamp")]
    pub created: SystemTime,
}

/// A `ListBuckets` (`GET /`) response: `ListAllMyBucketsResult` with the owner and the buckets in
/// the order given.
pub fn list_buckets(owner_id: &str, owner_name: &str, buckets: &[BucketEntry<'_>]) -> String {
    #[derive(Serialize)]
    #[serde(rename = "ListAllMyBucketsResult", rename_all = "PascalCase")]
    struct Doc<'a> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        owner: Owner<'a>,
        buckets: Buckets<'a>,
    }
    #[derive(Serialize)]
    struct Buckets<'a> {
        #[serde(rename = "Bucket")]
        bucket: &'a [BucketEntry<'a>],
    }
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        owner: Owner {
            id: owner_id,
            display_name: owner_name,
        },
        buckets: Buckets { bucket: buckets },
    };
    document(&doc, Expanded, buckets.len())
}

/// A `GetBucketLocation` response. As S3 does, `us-east-1` (and an empty region) is written as an
/// empty `<LocationConstraint/>`, which clients read as the classic region.
pub fn location(region: &str) -> String {
    #[derive(Serialize)]
    #[serde(rename = "LocationConstraint")]
    struct Doc<'a> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        #[serde(rename = "$text", skip_serializing_if = "Option::is_none")]
        region: Option<&'a str>,
    }
    let region = Some(region).filter(|r| !r.is_empty() && *r != "us-east-1");
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        region,
    };
    document(&doc, SelfClosed, 0)
}

/// One object in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectEntry<'a> {
    /// Object key (URL-encoded in the output when [`ListV2::url_encode`] is set).
    pub key: &'a str,
    /// Last modification, written as [`iso8601`].
    pub last_modified: SystemTime,
    /// `ETag` *without* surrounding quotes; the writer adds them (as `&quot;`).
    pub etag: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// Storage class, e.g. `STANDARD`.
    pub storage_class: &'a str,
    /// The owner id, written as `Owner` (ID and DisplayName) only if `Some` (`fetch-owner`).
    pub owner: Option<&'a str>,
}

/// Everything a `ListObjectsV2` response says. Fields are echoed as given; the caller decides
/// pagination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListV2<'a> {
    /// Bucket name (`Name`).
    pub bucket: &'a str,
    /// The request's prefix, `""` if none (`Prefix`, always written).
    pub prefix: &'a str,
    /// The request's delimiter (`Delimiter`, written only if `Some`).
    pub delimiter: Option<&'a str>,
    /// The effective `max-keys` (`MaxKeys`).
    pub max_keys: u32,
    /// The request's `start-after` (`StartAfter`, written only if `Some`).
    pub start_after: Option<&'a str>,
    /// The request's continuation token, echoed (`ContinuationToken`, only if `Some`).
    pub continuation_token: Option<&'a str>,
    /// Token for the next page (`NextContinuationToken`, only if `Some`; set it exactly when
    /// `is_truncated`).
    pub next_continuation_token: Option<&'a str>,
    /// Whether more results follow (`IsTruncated`).
    pub is_truncated: bool,
    /// `encoding-type=url` was requested: `Key`, `Prefix`, `Delimiter`, `StartAfter` and each
    /// common prefix are percent-encoded and `<EncodingType>url</EncodingType>` is written.
    /// Continuation tokens are opaque and never encoded.
    pub url_encode: bool,
    /// The objects of this page, in key order.
    pub contents: &'a [ObjectEntry<'a>],
    /// The common prefixes of this page (each ends with the delimiter), in order.
    pub common_prefixes: &'a [String],
}

/// Bytes left as they are under `encoding-type=url`: RFC 3986 unreserved characters and `/`.
///
/// Everything else is `%XX` (upper-case hex, UTF-8 bytes), space included, so the value decodes to
/// the same key under both plain percent-decoding and the form-style decoding (`+` means space) that
/// botocore, the Java SDK and Go's `QueryUnescape` use; a literal `+` is therefore always `%2B`.
const S3_URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `ListBucketResult`, both versions: each leaves out the fields the other has. `C` and `P` are
/// the `Contents` and `CommonPrefixes` sequences.
#[derive(Serialize)]
#[serde(rename = "ListBucketResult", rename_all = "PascalCase")]
struct ListBucketResult<'a, C, P> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    name: &'a str,
    prefix: Cow<'a, str>,
    /// V1 only, where it is always written.
    #[serde(skip_serializing_if = "Option::is_none")]
    marker: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<Cow<'a, str>>,
    /// V2 only, where it is always written.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_count: Option<usize>,
    max_keys: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    delimiter: Option<Cow<'a, str>>,
    is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_continuation_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_after: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding_type: Option<&'static str>,
    contents: C,
    common_prefixes: P,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Contents<'a> {
    key: Cow<'a, str>,
    #[serde(serialize_with = "timestamp")]
    last_modified: SystemTime,
    #[serde(rename = "ETag", serialize_with = "quoted")]
    etag: &'a str,
    size: u64,
    storage_class: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<Owner<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CommonPrefix<'a> {
    prefix: Cow<'a, str>,
}

/// The fields both listing versions share, from `l`; the version-specific ones are left `None`.
fn list_common<'a>(
    l: &'a ListV2<'a>,
) -> ListBucketResult<'a, impl Serialize + 'a, impl Serialize + 'a> {
    let enc = move |s| list_encode(l, s);
    let contents = l.contents.iter().map(move |o| Contents {
        key: enc(o.key),
        last_modified: o.last_modified,
        etag: o.etag,
        size: o.size,
        storage_class: o.storage_class,
        owner: o.owner.map(|id| Owner {
            id,
            display_name: id,
        }),
    });
    let common_prefixes = l
        .common_prefixes
        .iter()
        .map(move |p| CommonPrefix { prefix: enc(p) });
    ListBucketResult {
        xmlns: S3_NAMESPACE,
        name: l.bucket,
        prefix: enc(l.prefix),
        marker: None,
        next_marker: None,
        key_count: None,
        max_keys: l.max_keys,
        delimiter: l.delimiter.map(enc),
        is_truncated: l.is_truncated,
        continuation_token: None,
        next_continuation_token: None,
        start_after: None,
        encoding_type: l.url_encode.then_some("url"),
        contents: Seq(contents),
        common_prefixes: Seq(common_prefixes),
    }
}

/// A `ListObjectsV2` response (`ListBucketResult`). `KeyCount` is the number of contents plus the
/// number of common prefixes, as S3 counts it.
pub fn list_objects_v2(l: &ListV2<'_>) -> String {
    let doc = ListBucketResult {
        key_count: Some(l.contents.len().saturating_add(l.common_prefixes.len())),
        continuation_token: l.continuation_token,
        next_continuation_token: l.next_continuation_token,
        start_after: l.start_after.map(|s| list_encode(l, s)),
        ..list_common(l)
    };
    document(&doc, Expanded, l.contents.len() + l.common_prefixes.len())
}

/// A `ListObjects` (version 1) response (`ListBucketResult`), from the same listing as
/// [`list_objects_v2`].
///
/// `marker` is the request's marker (`""` if none; `Marker` is always written, as S3 does).
/// `next_marker` is written as `NextMarker` only if `Some`; S3 sends it only when the page is
/// truncated and a delimiter was given. V1 has no `KeyCount`, and `start_after` and the
/// continuation-token fields of `l` are ignored. Under `url_encode`, `Marker` and `NextMarker` are
/// percent-encoded along with the fields listed on [`ListV2::url_encode`].
pub fn list_objects_v1(l: &ListV2<'_>, marker: &str, next_marker: Option<&str>) -> String {
    let doc = ListBucketResult {
        marker: Some(list_encode(l, marker)),
        next_marker: next_marker.map(|m| list_encode(l, m)),
        ..list_common(l)
    };
    document(&doc, Expanded, l.contents.len() + l.common_prefixes.len())
}

/// `s` as a listing writes it: percent-encoded under `encoding-type=url`, as is otherwise.
fn list_encode<'s>(l: &ListV2<'_>, s: &'s str) -> Cow<'s, str> {
    if l.url_encode {
        Cow::from(utf8_percent_encode(s, S3_URL_ENCODE))
    } else {
        Cow::Borrowed(s)
    }
}

/// A parsed `DeleteObjects` (`POST /bucket?delete`) request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// `<Quiet>true</Quiet>`: report only errors. `false` when absent.
    pub quiet: bool,
    /// The objects to delete, in document order; never empty, never more than the caller's limit.
    pub objects: Vec<DeleteTarget>,
}

/// One `<Object>` of a `DeleteObjects` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTarget {
    /// The key exactly as sent (entities resolved, whitespace kept); never empty.
    pub key: String,
    /// `<VersionId>`, if sent; never empty when `Some`.
    pub version_id: Option<String>,
}

/// Parses a `DeleteObjects` body:
/// `<Delete><Object><Key>k</Key><VersionId>v</VersionId>?</Object>+<Quiet>b</Quiet>?</Delete>`,
/// children in any order. Never panics.
///
/// # Errors
///
/// [`XmlError::TooMany`] as soon as an `<Object>` beyond `max_objects` starts (S3 allows
/// 1000); [`XmlError::Empty`] for a well-formed body with no `<Object>`; [`XmlError::Malformed`] for
/// anything else that is not exactly that grammar, including a missing, repeated or empty `Key`, an
/// empty `VersionId`, a `Quiet` other than `true`/`false`, other `Object` children (S3's
/// conditional-delete `ETag`, `LastModifiedTime`, `Size` are refused, not ignored), and any
/// `DOCTYPE`.
pub fn parse_delete(body: &[u8], max_objects: usize) -> Result<DeleteRequest, XmlError> {
    let mut p = Pull::new(body);
    p.root("Delete")?;
    let mut quiet = None;
    let mut objects = Vec::new();
    while let Some(name) = p.child()? {
        match name.as_str() {
            "Object" => {
                if objects.len() >= max_objects {
                    return Err(XmlError::TooMany);
                }
                objects.push(parse_delete_target(&mut p)?);
            }
            "Quiet" if quiet.is_none() => quiet = Some(parse_bool(&p.text()?)?),
            _ => return Err(XmlError::Malformed),
        }
    }
    p.finish()?;
    if objects.is_empty() {
        return Err(XmlError::Empty);
    }
    Ok(DeleteRequest {
        quiet: quiet.unwrap_or(false),
        objects,
    })
}

fn parse_delete_target(p: &mut Pull<'_>) -> Result<DeleteTarget, XmlError> {
    let mut key = None;
    let mut version_id = None;
    while let Some(name) = p.child()? {
        let slot = match name.as_str() {
            "Key" => &mut key,
            "VersionId" => &mut version_id,
            _ => return Err(XmlError::Malformed),
        };
        let value = p.text()?;
        if slot.is_some() || value.is_empty() {
            return Err(XmlError::Malformed);
        }
        *slot = Some(value);
    }
    Ok(DeleteTarget {
        key: key.ok_or(XmlError::Malformed)?,
        version_id,
    })
}

fn parse_bool(s: &str) -> Result<bool, XmlError> {
    let s = s.trim_matches(is_xml_space);
    if s.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if s.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(XmlError::Malformed)
    }
}

/// A key S3 reports as deleted. Serialized as the `<Deleted>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeletedEntry<'a> {
    /// The key as the client sent it.
    pub key: &'a str,
}

/// A key S3 could not delete. Fields are serialized as the `<Error>` element, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteErrorEntry<'a> {
    /// The key as the client sent it.
    pub key: &'a str,
    /// S3 error code, e.g. `AccessDenied`.
    pub code: &'a str,
    /// Human-readable message.
    pub message: &'a str,
}

/// A `DeleteObjects` response (`DeleteResult`): `<Deleted>` entries (omitted when `quiet`), then
/// `<Error>` entries, each in the order given.
pub fn delete_result(
    quiet: bool,
    deleted: &[DeletedEntry<'_>],
    errors: &[DeleteErrorEntry<'_>],
) -> String {
    #[derive(Serialize)]
    #[serde(rename = "DeleteResult")]
    struct Doc<'a> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        #[serde(rename = "Deleted")]
        deleted: &'a [DeletedEntry<'a>],
        #[serde(rename = "Error")]
        errors: &'a [DeleteErrorEntry<'a>],
    }
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        deleted: if quiet { &[] } else { deleted },
        errors,
    };
    document(&doc, Expanded, deleted.len() + errors.len())
}

/// A `GetObjectTagging` response: `Tagging` with the `TagSet`, in the order stored.
pub fn tagging(tags: &[(String, String)]) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tag<'a> {
        key: &'a str,
        value: &'a str,
    }
    #[derive(Serialize)]
    struct TagSet<I> {
        #[serde(rename = "Tag")]
        tags: I,
    }
    #[derive(Serialize)]
    #[serde(rename = "Tagging", rename_all = "PascalCase")]
    struct Doc<I> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        tag_set: TagSet<I>,
    }
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        tag_set: TagSet {
            tags: Seq(tags.iter().map(|(key, value)| Tag { key, value })),
        },
    };
    document(&doc, Expanded, tags.len())
}

/// Parses a `Tagging` document (`PutObjectTagging`, a POST form's `tagging` field): the
/// (key, value) pairs of its `TagSet`, in order. [`XmlError::TooMany`] past `max_tags`;
/// [`XmlError::Malformed`] for anything but that grammar (a `Tag` needs exactly one `Key` and
/// one `Value`; the value may be empty). Tag rules (lengths, characters, repeats) are the
/// caller's.
pub fn parse_tagging(body: &[u8], max_tags: usize) -> Result<Vec<(String, String)>, XmlError> {
    let mut p = Pull::new(body);
    p.root("Tagging")?;
    let mut tags = Vec::new();
    let mut seen_set = false;
    while let Some(name) = p.child()? {
        if name != "TagSet" || seen_set {
            return Err(XmlError::Malformed);
        }
        seen_set = true;
        while let Some(name) = p.child()? {
            if name != "Tag" {
                return Err(XmlError::Malformed);
            }
            if tags.len() >= max_tags {
                return Err(XmlError::TooMany);
            }
            let (mut key, mut value) = (None, None);
            while let Some(name) = p.child()? {
                let slot = match name.as_str() {
                    "Key" => &mut key,
                    "Value" => &mut value,
                    _ => return Err(XmlError::Malformed),
                };
                if slot.is_some() {
                    return Err(XmlError::Malformed);
                }
                *slot = Some(p.text()?);
            }
            match (key, value) {
                (Some(k), Some(v)) => tags.push((k, v)),
                _ => return Err(XmlError::Malformed),
            }
        }
    }
    p.finish()?;
    if !seen_set {
        return Err(XmlError::Malformed);
    }
    Ok(tags)
}

/// Parses a `CreateBucketConfiguration` document (CreateBucket's optional body): its
/// `LocationConstraint`, `None` when absent or empty. [`XmlError::Malformed`] for any other
/// child or a repeated one (directory-bucket and tag settings are not offered).
pub fn parse_create_bucket(body: &[u8]) -> Result<Option<String>, XmlError> {
    let mut p = Pull::new(body);
    p.root("CreateBucketConfiguration")?;
    let mut constraint = None;
    while let Some(name) = p.child()? {
        if name != "LocationConstraint" || constraint.is_some() {
            return Err(XmlError::Malformed);
        }
        constraint = Some(p.text()?);
    }
    p.finish()?;
    Ok(constraint.filter(|c| !c.is_empty()))
}

/// A `CreateMultipartUpload` response (`InitiateMultipartUploadResult`).
pub fn initiate_multipart(bucket: &str, key: &str, upload_id: &str) -> String {
    #[derive(Serialize)]
    #[serde(rename = "InitiateMultipartUploadResult", rename_all = "PascalCase")]
    struct Doc<'a> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    }
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        bucket,
        key,
        upload_id,
    };
    document(&doc, Expanded, 0)
}

/// A `CompleteMultipartUpload` response (`CompleteMultipartUploadResult`).
///
/// `etag` is given without quotes; the writer adds them. `checksum` is an element name and its
/// base64 value, e.g. `("ChecksumCRC32", "i9aeUg==")`; the name must be one of
/// [`ChecksumAlgorithm::xml_element`] — any other name is not written, since it would be an
/// arbitrary element name in our output.
pub fn complete_multipart(
    location: &str,
    bucket: &str,
    key: &str,
    etag: &str,
    checksum: Option<(&str, &str)>,
    checksum_type: Option<&str>,
) -> String {
    #[derive(Serialize)]
    #[serde(rename = "CompleteMultipartUploadResult", rename_all = "PascalCase")]
    struct Doc<'a> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        location: &'a str,
        bucket: &'a str,
        key: &'a str,
        #[serde(rename = "ETag", serialize_with = "quoted")]
        etag: &'a str,
        // `self::`: the parameter `checksum` shadows the function here.
        #[serde(rename = "$value", serialize_with = "self::checksum")]
        checksum: Option<(&'a str, &'a str)>,
        #[serde(skip_serializing_if = "Option::is_none")]
        checksum_type: Option<&'a str>,
    }
    let known = checksum.filter(|(name, _)| ChecksumAlgorithm::from_xml_element(name).is_some());
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        location,
        bucket,
        key,
        etag,
        checksum: known,
        // The type of a checksum written, only.
        checksum_type: known.and(checksum_type),
    };
    document(&doc, Expanded, 0)
}

/// One stored part, as ListParts reports it. Fields are serialized as the `<Part>` element, in
/// their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartEntry<'a> {
    pub part_number: u32,
    #[serde(serialize_with = "timestamp")]
    pub last_modified: SystemTime,
    /// Without quotes.
    #[serde(rename = "ETag", serialize_with = "quoted")]
    pub etag: &'a str,
    pub size: u64,
    /// `(element name, base64 value)`, e.g. `("ChecksumCRC32", "...")`; written only if the name
    /// is one of [`ChecksumAlgorithm::xml_element`].
    #[serde(rename = "$value", serialize_with = "checksum")]
    pub checksum: Option<(&'a str, &'a str)>,
}

/// The ListParts response.
#[derive(Debug, Clone, Copy)]
pub struct ListPartsResult<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub upload_id: &'a str,
    pub owner: &'a str,
    pub part_number_marker: u32,
    pub next_part_number_marker: Option<u32>,
    pub max_parts: u32,
    pub is_truncated: bool,
    pub checksum_algorithm: Option<&'a str>,
    pub parts: &'a [PartEntry<'a>],
}

/// ListParts body.
pub fn list_parts(l: &ListPartsResult<'_>) -> String {
    #[derive(Serialize)]
    #[serde(rename = "ListPartsResult", rename_all = "PascalCase")]
    struct Doc<'a> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        initiator: Owner<'a>,
        owner: Owner<'a>,
        storage_class: &'static str,
        part_number_marker: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_part_number_marker: Option<u32>,
        max_parts: u32,
        is_truncated: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        checksum_algorithm: Option<&'a str>,
        #[serde(rename = "Part")]
        parts: &'a [PartEntry<'a>],
    }
    let owner = || Owner {
        id: l.owner,
        display_name: l.owner,
    };
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        bucket: l.bucket,
        key: l.key,
        upload_id: l.upload_id,
        initiator: owner(),
        owner: owner(),
        storage_class: "STANDARD",
        part_number_marker: l.part_number_marker,
        next_part_number_marker: l.next_part_number_marker,
        max_parts: l.max_parts,
        is_truncated: l.is_truncated,
        checksum_algorithm: l.checksum_algorithm,
        parts: l.parts,
    };
    document(&doc, Expanded, l.parts.len())
}

/// One open upload, as ListMultipartUploads reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadEntry<'a> {
    pub key: &'a str,
    pub upload_id: &'a str,
    pub owner: &'a str,
    pub initiated: SystemTime,
}

/// The ListMultipartUploads response.
#[derive(Debug, Clone, Copy)]
pub struct ListUploadsResult<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub key_marker: &'a str,
    pub upload_id_marker: &'a str,
    pub next_markers: Option<(&'a str, &'a str)>,
    pub max_uploads: u32,
    pub is_truncated: bool,
    pub uploads: &'a [UploadEntry<'a>],
}

/// ListMultipartUploads body.
pub fn list_uploads(l: &ListUploadsResult<'_>) -> String {
    #[derive(Serialize)]
    #[serde(rename = "ListMultipartUploadsResult", rename_all = "PascalCase")]
    struct Doc<'a> {
        #[serde(rename = "@xmlns")]
        xmlns: &'static str,
        bucket: &'a str,
        key_marker: &'a str,
        upload_id_marker: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_key_marker: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_upload_id_marker: Option<&'a str>,
        prefix: &'a str,
        max_uploads: u32,
        is_truncated: bool,
        #[serde(rename = "Upload")]
        uploads: Vec<Upload<'a>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Upload<'a> {
        key: &'a str,
        upload_id: &'a str,
        initiator: Owner<'a>,
        owner: Owner<'a>,
        storage_class: &'static str,
        #[serde(serialize_with = "timestamp")]
        initiated: SystemTime,
    }
    let owner = |id| Owner {
        id,
        display_name: id,
    };
    let doc = Doc {
        xmlns: S3_NAMESPACE,
        bucket: l.bucket,
        key_marker: l.key_marker,
        upload_id_marker: l.upload_id_marker,
        next_key_marker: l.next_markers.map(|(k, _)| k),
        next_upload_id_marker: l.next_markers.map(|(_, u)| u),
        prefix: l.prefix,
        max_uploads: l.max_uploads,
        is_truncated: l.is_truncated,
        uploads: l
            .uploads
            .iter()
            .map(|u| Upload {
                key: u.key,
                upload_id: u.upload_id,
                initiator: owner(u.owner),
                owner: owner(u.owner),
                storage_class: "STANDARD",
                initiated: u.initiated,
            })
            .collect(),
    };
    document(&doc, Expanded, l.uploads.len())
}

/// One `<Part>` of a `CompleteMultipartUpload` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletePart {
    /// `<PartNumber>`, a decimal `u32`. Range (1..=10000) and ordering are the caller's checks,
    /// since S3 answers them with `InvalidArgument` / `InvalidPartOrder`, not `MalformedXML`.
    pub part_number: u32,
    /// `<ETag>` with surrounding whitespace and one pair of surrounding quotes removed; never empty.
    pub etag: String,
    /// `(element name, value)` for each `<ChecksumCRC32>`, `<ChecksumCRC32C>`,
    /// `<ChecksumCRC64NVME>`, `<ChecksumSHA1>`, `<ChecksumSHA256>` present, in document order. Names
    /// are [`ChecksumAlgorithm::xml_element`]; values are trimmed, non-empty and not yet decoded.
    pub checksums: Vec<(String, String)>,
}

/// Parses a `CompleteMultipartUpload` body: `<CompleteMultipartUpload>` with one or more `<Part>`,
/// each holding exactly one `PartNumber`, exactly one `ETag` and at most one of each checksum
/// element, in any order. Never panics.
///
/// # Errors
///
/// [`XmlError::TooMany`] as soon as a `<Part>` beyond `max_parts` starts (S3 allows 10000);
/// [`XmlError::Empty`] for no parts; [`XmlError::Malformed`] for anything else outside that grammar,
/// including a non-numeric part number, an empty `ETag` or checksum, and any `DOCTYPE`.
pub fn parse_complete_multipart(
    body: &[u8],
    max_parts: usize,
) -> Result<Vec<CompletePart>, XmlError> {
    let mut p = Pull::new(body);
    p.root("CompleteMultipartUpload")?;
    let mut parts = Vec::new();
    while let Some(name) = p.child()? {
        if name != "Part" {
            return Err(XmlError::Malformed);
        }
        if parts.len() >= max_parts {
            return Err(XmlError::TooMany);
        }
        parts.push(parse_part(&mut p)?);
    }
    p.finish()?;
    if parts.is_empty() {
        return Err(XmlError::Empty);
    }
    Ok(parts)
}

fn parse_part(p: &mut Pull<'_>) -> Result<CompletePart, XmlError> {
    let mut part_number = None;
    let mut etag = None;
    let mut checksums: Vec<(String, String)> = Vec::new();
    while let Some(name) = p.child()? {
        let text = p.text()?;
        let value = text.trim_matches(is_xml_space);
        match name.as_str() {
            "PartNumber" if part_number.is_none() => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(XmlError::Malformed);
                }
                part_number = Some(value.parse::<u32>().map_err(|_| XmlError::Malformed)?);
            }
            "ETag" if etag.is_none() => {
                let unquoted = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                if unquoted.is_empty() {
                    return Err(XmlError::Malformed);
                }
                etag = Some(unquoted.to_owned());
            }
            other => {
                let alg = ChecksumAlgorithm::from_xml_element(other).ok_or(XmlError::Malformed)?;
                let name = alg.xml_element();
                if value.is_empty() || checksums.iter().any(|(n, _)| n == name) {
                    return Err(XmlError::Malformed);
                }
                checksums.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    Ok(CompletePart {
        part_number: part_number.ok_or(XmlError::Malformed)?,
        etag: etag.ok_or(XmlError::Malformed)?,
        checksums,
    })
}

// ---------------------------------------------------------------------------------------------------
// Pull tokenizer over quick-xml
// ---------------------------------------------------------------------------------------------------

/// What the grammar functions see: quick-xml's events with prolog, comments, processing
/// instructions, references and CDATA already dealt with.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// An element starts; its local name.
    Open(String),
    /// The innermost open element ends (also emitted right after `Open` for `<empty/>`).
    Close,
    /// A run of character data: text, CDATA, or one resolved reference.
    Text(String),
    /// End of input, with every element closed.
    Eof,
}

struct Pull<'a> {
    reader: Reader<&'a [u8]>,
    /// The last `Open` came from an empty-element tag; the next token is its `Close`.
    close_pending: bool,
    depth: usize,
    /// Whether any event has been read; a declaration is only allowed first.
    started: bool,
}

impl<'a> Pull<'a> {
    fn new(body: &'a [u8]) -> Self {
        let mut reader = Reader::from_reader(body);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_unmatched_ends = false;
        config.allow_dangling_amp = false;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Self {
            reader,
            close_pending: false,
            depth: 0,
            started: false,
        }
    }

    fn next(&mut self) -> Result<Token, XmlError> {
        if self.close_pending {
            self.close_pending = false;
            self.depth = self.depth.checked_sub(1).ok_or(XmlError::Malformed)?;
            return Ok(Token::Close);
        }
        loop {
            let first = !self.started;
            self.started = true;
            let event = self.reader.read_event().map_err(|_| XmlError::Malformed)?;
            match event {
                Event::Decl(d) if first => check_declaration(&d)?,
                // A DOCTYPE is where entities are defined; S3 bodies never need one.
                Event::Decl(_) | Event::DocType(_) => return Err(XmlError::Malformed),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Start(e) => {
                    let name = element_name(&e)?;
                    self.depth = self.depth.checked_add(1).ok_or(XmlError::Malformed)?;
                    return Ok(Token::Open(name));
                }
                Event::Empty(e) => {
                    let name = element_name(&e)?;
                    self.depth = self.depth.checked_add(1).ok_or(XmlError::Malformed)?;
                    self.close_pending = true;
                    return Ok(Token::Open(name));
                }
                Event::End(_) => {
                    self.depth = self.depth.checked_sub(1).ok_or(XmlError::Malformed)?;
                    return Ok(Token::Close);
                }
                Event::Text(t) => {
                    let s = t.xml10_content().map_err(|_| XmlError::Malformed)?;
                    return checked_text(s);
                }
                Event::CData(c) => {
                    let s = c.xml10_content().map_err(|_| XmlError::Malformed)?;
                    return checked_text(s);
                }
                Event::GeneralRef(r) => {
                    let resolved =
                        if let Some(c) = r.resolve_char_ref().map_err(|_| XmlError::Malformed)? {
                            String::from(c)
                        } else {
                            // Only the five predefined entities exist: there is no DTD to define more.
                            let name = r.decode().map_err(|_| XmlError::Malformed)?;
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or(XmlError::Malformed)?
                                .to_owned()
                        };
                    return checked_text(Cow::Owned(resolved));
                }
                Event::Eof => {
                    if self.depth != 0 {
                        return Err(XmlError::Malformed);
                    }
                    return Ok(Token::Eof);
                }
            }
        }
    }

    /// Skips the prolog and opens the root element, which must be `want`.
    fn root(&mut self, want: &str) -> Result<(), XmlError> {
        match self.skip_space()? {
            Token::Open(name) if name == want => Ok(()),
            _ => Err(XmlError::Malformed),
        }
    }

    /// The next child element of the current element, or `None` when the current element closes.
    /// Only whitespace may separate children.
    fn child(&mut self) -> Result<Option<String>, XmlError> {
        match self.skip_space()? {
            Token::Open(name) => Ok(Some(name)),
            Token::Close => Ok(None),
            Token::Text(_) | Token::Eof => Err(XmlError::Malformed),
        }
    }

    /// The character content of a leaf element, up to and including its end; no child elements.
    fn text(&mut self) -> Result<String, XmlError> {
        let mut out = String::new();
        loop {
            match self.next()? {
                Token::Text(t) => out.push_str(&t),
                Token::Close => return Ok(out),
                Token::Open(_) | Token::Eof => return Err(XmlError::Malformed),
            }
        }
    }

    /// After the root element has closed: only whitespace, comments and PIs until the end.
    fn finish(&mut self) -> Result<(), XmlError> {
        match self.skip_space()? {
            Token::Eof => Ok(()),
            _ => Err(XmlError::Malformed),
        }
    }

    fn skip_space(&mut self) -> Result<Token, XmlError> {
        loop {
            match self.next()? {
                Token::Text(t) if t.chars().all(is_xml_space) => {}
                other => return Ok(other),
            }
        }
    }
}

fn check_declaration(d: &quick_xml::events::BytesDecl<'_>) -> Result<(), XmlError> {
    let version = d.version().map_err(|_| XmlError::Malformed)?;
    // 1.1 is read with 1.0's rules, which are the stricter ones for the characters we accept.
    if !matches!(version.as_ref(), b"1.0" | b"1.1") {
        return Err(XmlError::Malformed);
    }
    match d.encoding() {
        None => Ok(()),
        Some(Ok(enc)) if enc.eq_ignore_ascii_case(b"utf-8") => Ok(()),
        // We read UTF-8 only; a document claiming otherwise would be misread.
        Some(_) => Err(XmlError::Malformed),
    }
}

/// The local name of an element, after checking its attributes are well-formed.
fn element_name(e: &BytesStart<'_>) -> Result<String, XmlError> {
    for attr in e.attributes() {
        attr.map_err(|_| XmlError::Malformed)?;
    }
    std::str::from_utf8(e.local_name().as_ref())
        .map(str::to_owned)
        .map_err(|_| XmlError::Malformed)
}

fn checked_text(s: Cow<'_, str>) -> Result<Token, XmlError> {
    if s.chars().all(is_xml_char) {
        Ok(Token::Text(s.into_owned()))
    } else {
        Err(XmlError::Malformed)
    }
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2009-10-12T17:50:30.000Z, the timestamp in AWS's documentation examples.
    fn aws_doc_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_255_369_830)
    }

    /// Every leaf text of `xml` as `(path, text)`, read through the same tokenizer the parsers use,
    /// so a writer's output must be well-formed to get here.
    fn leaves(xml: &str) -> Vec<(String, String)> {
        let mut p = Pull::new(xml.as_bytes());
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut out = Vec::new();
        loop {
            match p.next().unwrap() {
                Token::Open(n) => {
                    path.push(n);
                    text.clear();
                }
                Token::Text(t) => text.push_str(&t),
                Token::Close => {
                    out.push((path.join("/"), std::mem::take(&mut text)));
                    path.pop();
                }
                Token::Eof => return out,
            }
        }
    }

    fn leaf<'a>(leaves: &'a [(String, String)], path: &str) -> Vec<&'a str> {
        leaves
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| t.as_str())
            .collect()
    }

    #[test]
    fn escape_encodes_the_five_specials() {
        assert_eq!(escape(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert!(matches!(
            escape("plain/key-1.txt ünïcödé"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escape_encodes_whitespace_controls_and_replaces_what_xml_cannot_carry() {
        assert_eq!(escape("a\tb\nc\rd"), "a&#x9;b&#xA;c&#xD;d");
        assert_eq!(escape("\u{7F}\u{85}"), "&#x7F;&#x85;");
        assert_eq!(
            escape("a\u{0}b\u{1B}c\u{FFFE}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
    }

    #[test]
    fn iso8601_matches_aws_format() {
        assert_eq!(iso8601(aws_doc_time()), "2009-10-12T17:50:30.000Z");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::new(4_107_542_399, 999_999_999)),
            "2100-02-28T23:59:59.999Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn iso8601_agrees_with_httpdate_on_the_calendar() {
        // Every day for ~300 years, at a time with all fields distinct.
        for day in (0..110_000u64).step_by(7) {
            let t = UNIX_EPOCH + Duration::from_secs(day * 86_400 + 49_323);
            let ours = iso8601(t);
            let http = httpdate::fmt_http_date(t);
            let parsed = httpdate::parse_http_date(&http).unwrap();
            assert_eq!(parsed, t);
            // "Sun, 06 Nov 1994 08:49:37 GMT" → compare day, month and year.
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let parts: Vec<&str> = http.split(' ').collect();
            let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
            let expect = format!("{}-{:02}-{}T13:42:03.000Z", parts[3], month, parts[1]);
            assert_eq!(ours, expect);
        }
    }

    #[test]
    fn error_document_has_no_namespace_and_escapes() {
        let xml = error(
            "NoSuchKey",
            "The resource you requested does not exist",
            "/mybucket/a&b<c>.txt",
            "4442587FB7D0A2F9",
        );
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>The resource you requested does not exist</Message>\
             <Resource>/mybucket/a&amp;b&lt;c&gt;.txt</Resource>\
             <RequestId>4442587FB7D0A2F9</RequestId></Error>"
        );
    }

    #[test]
    fn list_buckets_matches_aws_shape() {
        let buckets = [
            BucketEntry {
                name: "quotes",
                created: aws_doc_time(),
            },
            BucketEntry {
                name: "samples",
                created: UNIX_EPOCH + Duration::from_millis(1_255_369_831_500),
            },
        ];
        let xml = list_buckets("bcaf1ffd86f461ca5fb16fd081034f", "webfile", &buckets);
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Owner><ID>bcaf1ffd86f461ca5fb16fd081034f</ID><DisplayName>webfile</DisplayName></Owner>\
             <Buckets><Bucket><Name>quotes</Name><CreationDate>2009-10-12T17:50:30.000Z</CreationDate></Bucket>\
             <Bucket><Name>samples</Name><CreationDate>2009-10-12T17:50:31.500Z</CreationDate></Bucket>\
             </Buckets></ListAllMyBucketsResult>"
        );
        let empty = list_buckets("id", "<name>", &[]);
        assert!(
            empty.contains("<DisplayName>&lt;name&gt;</DisplayName></Owner><Buckets></Buckets>")
        );
    }

    #[test]
    fn parse_create_bucket_reads_the_location_constraint_only() {
        let doc = |inner: &str| {
            format!(
                "<CreateBucketConfiguration xmlns=\"{S3_NAMESPACE}\">{inner}</CreateBucketConfiguration>"
            )
        };
        let parse = |inner: &str| parse_create_bucket(doc(inner).as_bytes());
        assert_eq!(
            parse("<LocationConstraint>eu-west-1</LocationConstraint>"),
            Ok(Some("eu-west-1".to_string()))
        );
        assert_eq!(parse("<LocationConstraint></LocationConstraint>"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(
            parse(
                "<LocationConstraint>a</LocationConstraint><LocationConstraint>b</LocationConstraint>"
            ),
            Err(XmlError::Malformed)
        );
        assert_eq!(
            parse("<Bucket><Type>Directory</Type></Bucket>"),
            Err(XmlError::Malformed)
        );
        assert_eq!(parse_create_bucket(b"<Other/>"), Err(XmlError::Malformed));
    }

    #[test]
    fn location_of_us_east_1_is_empty() {
        let ns = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";
        assert_eq!(location("us-east-1"), format!("{ns}/>"));
        assert_eq!(location(""), format!("{ns}/>"));
        assert_eq!(
            location("eu-west-1"),
            format!("{ns}>eu-west-1</LocationConstraint>")
        );
    }

    fn sample_objects() -> Vec<ObjectEntry<'static>> {
        vec![
            ObjectEntry {
                key: "my-image.jpg",
                last_modified: aws_doc_time(),
                etag: "fba9dede5f27731c9771645a39863328",
                size: 434_234,
                storage_class: "STANDARD",
                owner: None,
            },
            ObjectEntry {
                key: "a&b <c>\"d\" 'e'+f/ü.txt",
                last_modified: aws_doc_time(),
                etag: "0123",
                size: 0,
                storage_class: "STANDARD",
                owner: None,
            },
        ]
    }

    #[test]
    fn list_objects_v2_writes_every_field() {
        let contents = sample_objects();
        let prefixes = vec!["photos/".to_owned(), "x&y/".to_owned()];
        let l = ListV2 {
            bucket: "bucket",
            prefix: "",
            delimiter: Some("/"),
            max_keys: 1000,
            start_after: Some("a"),
            continuation_token: Some("tok&1"),
            next_continuation_token: Some("tok2"),
            is_truncated: true,
            url_encode: false,
            contents: &contents,
            common_prefixes: &prefixes,
        };
        let xml = list_objects_v2(&l);
        assert!(xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bucket</Name>"
        ));
        assert!(xml.contains(
            "<Contents><Key>my-image.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>\
             <StorageClass>STANDARD</StorageClass></Contents>"
        ));
        assert!(xml.contains("<Key>a&amp;b &lt;c&gt;&quot;d&quot; &apos;e&apos;+f/ü.txt</Key>"));
        assert!(!xml.contains("EncodingType"));
        let leaves = leaves(&xml);
        let root = "ListBucketResult";
        assert_eq!(leaf(&leaves, &format!("{root}/KeyCount")), ["4"]);
        assert_eq!(leaf(&leaves, &format!("{root}/MaxKeys")), ["1000"]);
        assert_eq!(leaf(&leaves, &format!("{root}/Prefix")), [""]);
        assert_eq!(leaf(&leaves, &format!("{root}/Delimiter")), ["/"]);
        assert_eq!(leaf(&leaves, &format!("{root}/IsTruncated")), ["true"]);
        assert_eq!(leaf(&leaves, &format!("{root}/StartAfter")), ["a"]);
        assert_eq!(
            leaf(&leaves, &format!("{root}/ContinuationToken")),
            ["tok&1"]
        );
        assert_eq!(
            leaf(&leaves, &format!("{root}/NextContinuationToken")),
            ["tok2"]
        );
        assert_eq!(
            leaf(&leaves, &format!("{root}/Contents/Key")),
            ["my-image.jpg", "a&b <c>\"d\" 'e'+f/ü.txt"]
        );
        assert_eq!(
            leaf(&leaves, &format!("{root}/Contents/ETag")),
            ["\"fba9dede5f27731c9771645a39863328\"", "\"0123\""]
        );
        assert_eq!(
            leaf(&leaves, &format!("{root}/CommonPrefixes/Prefix")),
            ["photos/", "x&y/"]
        );
    }

    #[test]
    fn list_objects_v2_omits_absent_optionals() {
        let l = ListV2 {
            bucket: "b",
            prefix: "p/",
            delimiter: None,
            max_keys: 2,
            start_after: None,
            continuation_token: None,
            next_continuation_token: None,
            is_truncated: false,
            url_encode: false,
            contents: &[],
            common_prefixes: &[],
        };
        let xml = list_objects_v2(&l);
        assert!(xml.ends_with(
            "<Name>b</Name><Prefix>p/</Prefix><KeyCount>0</KeyCount><MaxKeys>2</MaxKeys>\
             <IsTruncated>false</IsTruncated></ListBucketResult>"
        ));
    }

    #[test]
    fn list_objects_v2_url_encoding_encodes_keys_prefixes_delimiter_and_start_after() {
        let contents = [ObjectEntry {
            key: "dir/a b+c&d\u{1}é~_.-*.txt",
            last_modified: aws_doc_time(),
            etag: "e",
            size: 1,
            storage_class: "STANDARD",
            owner: None,
        }];
        let prefixes = ["dir/sub dir/".to_owned()];
        let l = ListV2 {
            bucket: "b",
            prefix: "dir/ ",
            delimiter: Some("/ "),
            max_keys: 1000,
            start_after: Some("dir/a b"),
            continuation_token: Some("a b+"),
            next_continuation_token: None,
            is_truncated: false,
            url_encode: true,
            contents: &contents,
            common_prefixes: &prefixes,
        };
        let xml = list_objects_v2(&l);
        assert!(xml.contains("<Key>dir/a%20b%2Bc%26d%01%C3%A9~_.-%2A.txt</Key>"));
        assert!(xml.contains("<Prefix>dir/%20</Prefix>"));
        assert!(xml.contains("<Delimiter>/%20</Delimiter>"));
        assert!(xml.contains("<StartAfter>dir/a%20b</StartAfter>"));
        assert!(xml.contains("<CommonPrefixes><Prefix>dir/sub%20dir/</Prefix></CommonPrefixes>"));
        assert!(xml.contains("<ContinuationToken>a b+</ContinuationToken>"));
        assert!(xml.contains("<EncodingType>url</EncodingType>"));
        // Decodes back to the key with a plain percent-decoder (and '+' was never emitted bare).
        let encoded = leaf(&leaves(&xml), "ListBucketResult/Contents/Key")[0].to_owned();
        assert!(!encoded.contains('+'));
        assert_eq!(
            percent_encoding::percent_decode_str(&encoded)
                .decode_utf8()
                .unwrap(),
            contents[0].key
        );
    }

    #[test]
    fn list_objects_v1_writes_markers_and_no_v2_fields() {
        let contents = sample_objects();
        let prefixes = ["a b/".to_owned()];
        let mut l = ListV2 {
            bucket: "b",
            prefix: "",
            delimiter: Some("/"),
            max_keys: 2,
            start_after: Some("ignored"),
            continuation_token: Some("ignored"),
            next_continuation_token: Some("ignored"),
            is_truncated: true,
            url_encode: false,
            contents: &contents,
            common_prefixes: &prefixes,
        };
        let xml = list_objects_v1(&l, "", Some("a b/"));
        assert!(xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Name>b</Name><Prefix></Prefix><Marker></Marker><NextMarker>a b/</NextMarker>\
             <MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><Contents>"
        ));
        assert!(!xml.contains("ignored") && !xml.contains("KeyCount"));
        assert_eq!(
            leaf(&leaves(&xml), "ListBucketResult/Contents/Key"),
            ["my-image.jpg", "a&b <c>\"d\" 'e'+f/ü.txt"]
        );
        l.url_encode = true;
        let xml = list_objects_v1(&l, "m+1", None);
        assert!(xml.contains("<Marker>m%2B1</Marker><MaxKeys>"));
        assert!(xml.contains("<EncodingType>url</EncodingType>"));
        assert!(xml.contains("<CommonPrefixes><Prefix>a%20b/</Prefix></CommonPrefixes>"));
        assert!(xml.contains("<Key>a%26b%20%3Cc%3E%22d%22%20%27e%27%2Bf/%C3%BC.txt</Key>"));
    }

    /// The request body from the AWS DeleteObjects documentation.
    const AWS_DELETE_EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Object>
         <Key>sample1.txt</Key>
    </Object>
    <Object>
         <Key>sample2.txt</Key>
         <VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId>
    </Object>
    <Quiet>true</Quiet>
</Delete>"#;

    #[test]
    fn parse_delete_reads_the_aws_example() {
        let req = parse_delete(AWS_DELETE_EXAMPLE.as_bytes(), 1000).unwrap();
        assert_eq!(
            req,
            DeleteRequest {
                quiet: true,
                objects: vec![
                    DeleteTarget {
                        key: "sample1.txt".into(),
                        version_id: None
                    },
                    DeleteTarget {
                        key: "sample2.txt".into(),
                        version_id: Some("OYcLXagmS.WaD..oyH4KRguB95_YhLs7".into())
                    },
                ],
            }
        );
    }

    #[test]
    fn parse_delete_accepts_no_namespace_no_declaration_and_quiet_false() {
        let req = parse_delete(
            b"<Delete><Quiet>false</Quiet><Object><Key>k</Key></Object></Delete>",
            1,
        )
        .unwrap();
        assert!(!req.quiet);
        assert_eq!(req.objects[0].key, "k");
        let req = parse_delete(b"<Delete><Object><Key>k</Key></Object></Delete>", 1).unwrap();
        assert!(!req.quiet);
        let req = parse_delete(
            b"<s3:Delete xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\"><s3:Object><s3:Key>k</s3:Key></s3:Object></s3:Delete>",
            1,
        )
        .unwrap();
        assert_eq!(req.objects[0].key, "k");
    }

    #[test]
    fn parse_delete_unescapes_keys_and_keeps_their_whitespace() {
        let body = "<Delete><Object><Key> a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos; &#x41;&#66;&#xD;&#10;<![CDATA[<raw>&amp;]]> </Key></Object><!-- note --><?pi x?></Delete>";
        let req = parse_delete(body.as_bytes(), 10).unwrap();
        assert_eq!(req.objects[0].key, " a&b<c>\"d\"'e' AB\r\n<raw>&amp; ");
    }

    #[test]
    fn parse_delete_normalises_raw_line_ends_as_xml_requires() {
        let req =
            parse_delete(b"<Delete><Object><Key>a\r\nb\rc</Key></Object></Delete>", 1).unwrap();
        assert_eq!(req.objects[0].key, "a\nb\nc");
    }

    #[test]
    fn parse_delete_round_trips_keys_written_with_escape() {
        let keys = [
            "plain.txt",
            "a&b<c>\"d\"'e'",
            " leading and trailing ",
            "line\nbreak\r\nand\ttab",
            "ünïcödé/日本語/😀",
            "&amp; literally",
            "]]>",
        ];
        let mut body = String::from("<Delete>");
        for k in keys {
            body.push_str("<Object><Key>");
            body.push_str(&escape(k));
            body.push_str("</Key></Object>");
        }
        body.push_str("</Delete>");
        let req = parse_delete(body.as_bytes(), keys.len()).unwrap();
        let got: Vec<&str> = req.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(got, keys);
    }

    fn delete_body(n: usize) -> String {
        let mut body = String::from("<Delete>");
        for i in 0..n {
            body.push_str(&format!("<Object><Key>k{i}</Key></Object>"));
        }
        body.push_str("</Delete>");
        body
    }

    #[test]
    fn parse_delete_enforces_the_object_limit() {
        assert_eq!(
            parse_delete(delete_body(1000).as_bytes(), 1000)
                .unwrap()
                .objects
                .len(),
            1000
        );
        assert_eq!(
            parse_delete(delete_body(1001).as_bytes(), 1000),
            Err(XmlError::TooMany)
        );
        assert_eq!(
            parse_delete(delete_body(1).as_bytes(), 0),
            Err(XmlError::TooMany)
        );
    }

    #[test]
    fn parse_delete_stops_at_the_limit_without_reading_further() {
        // Garbage after the 3rd object is never reached.
        let body = "<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object><Object><Key>c</Key></Object><<<garbage";
        assert_eq!(parse_delete(body.as_bytes(), 2), Err(XmlError::TooMany));
    }

    #[test]
    fn parse_delete_rejects_empty_lists() {
        assert_eq!(
            parse_delete(b"<Delete></Delete>", 1000),
            Err(XmlError::Empty)
        );
        assert_eq!(parse_delete(b"<Delete/>", 1000), Err(XmlError::Empty));
        assert_eq!(
            parse_delete(b"<Delete><Quiet>true</Quiet></Delete>", 1000),
            Err(XmlError::Empty)
        );
    }

    #[test]
    fn parse_delete_rejects_malformed_bodies() {
        let cases: &[&str] = &[
            "",
            "   ",
            "not xml",
            "<Delete>",
            "<Delete><Object><Key>k</Key></Object>",
            "<Delete><Object><Key>k</Key></Delete>",
            "<Delete><Object><Key>k</Object></Key></Delete>",
            "<Delete><Object><Key>k</Key></Object></Delete><Delete/>",
            "<Delete><Object><Key>k</Key></Object></Delete>trailing",
            "<Delete><Object><Key>k</Key></Object></Delete></Delete>",
            // wrong root, stray text, unknown or misplaced elements
            "<Remove><Object><Key>k</Key></Object></Remove>",
            "<Delete>text<Object><Key>k</Key></Object></Delete>",
            "<Delete><Object>text<Key>k</Key></Object></Delete>",
            "<Delete><Key>k</Key></Delete>",
            "<Delete><Object><Key>k</Key><ETag>\"e\"</ETag></Object></Delete>",
            "<Delete><Object><Key>k<b/></Key></Object></Delete>",
            "<Delete><Object><Object><Key>k</Key></Object></Object></Delete>",
            // missing, empty, duplicate fields
            "<Delete><Object></Object></Delete>",
            "<Delete><Object/></Delete>",
            "<Delete><Object><VersionId>v</VersionId></Object></Delete>",
            "<Delete><Object><Key></Key></Object></Delete>",
            "<Delete><Object><Key/></Object></Delete>",
            "<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
            "<Delete><Object><Key>a</Key><VersionId></VersionId></Object></Delete>",
            "<Delete><Object><Key>a</Key><VersionId>1</VersionId><VersionId>2</VersionId></Object></Delete>",
            "<Delete><Quiet>yes</Quiet><Object><Key>k</Key></Object></Delete>",
            "<Delete><Quiet>true</Quiet><Quiet>true</Quiet><Object><Key>k</Key></Object></Delete>",
            // references, declarations, DOCTYPE
            "<Delete><Object><Key>&nbsp;</Key></Object></Delete>",
            "<Delete><Object><Key>&unknown;</Key></Object></Delete>",
            "<Delete><Object><Key>a & b</Key></Object></Delete>",
            "<Delete><Object><Key>&#0;</Key></Object></Delete>",
            "<Delete><Object><Key>&#x1;</Key></Object></Delete>",
            "<Delete><Object><Key>&#xD800;</Key></Object></Delete>",
            "<Delete><Object><Key>&#xFFFF;</Key></Object></Delete>",
            "<Delete><Object><Key>a\u{1}b</Key></Object></Delete>",
            "<Delete a=><Object><Key>k</Key></Object></Delete>",
            "<Delete a=\"1\" a=\"2\"><Object><Key>k</Key></Object></Delete>",
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><Delete><Object><Key>k</Key></Object></Delete>",
            "<Delete><?xml version=\"1.0\"?><Object><Key>k</Key></Object></Delete>",
            "<!-- first --><?xml version=\"1.0\"?><Delete><Object><Key>k</Key></Object></Delete>",
            "<!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>",
            "<?xml version=\"1.0\"?><!DOCTYPE Delete [<!ENTITY x \"boom\">]><Delete><Object><Key>&x;</Key></Object></Delete>",
            "<!DOCTYPE Delete SYSTEM \"file:///etc/passwd\"><Delete><Object><Key>k</Key></Object></Delete>",
            "<Delete><!-- a -- b --><Object><Key>k</Key></Object></Delete>",
        ];
        for c in cases {
            assert_eq!(
                parse_delete(c.as_bytes(), 1000),
                Err(XmlError::Malformed),
                "{c}"
            );
        }
        assert_eq!(
            parse_delete(b"<Delete><Object><Key>\xff</Key></Object></Delete>", 1000),
            Err(XmlError::Malformed)
        );
    }

    #[test]
    fn parse_delete_rejects_billion_laughs_without_expanding() {
        let body = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Delete><Object><Key>&lol3;</Key></Object></Delete>"#;
        assert_eq!(
            parse_delete(body.as_bytes(), 1000),
            Err(XmlError::Malformed)
        );
    }

    #[test]
    fn parse_delete_accepts_a_utf8_bom_and_declaration() {
        let body = "\u{FEFF}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Delete><Object><Key>k</Key></Object></Delete>\n";
        assert_eq!(
            parse_delete(body.as_bytes(), 1).unwrap().objects[0].key,
            "k"
        );
    }

    #[test]
    fn delete_result_quiet_omits_deleted() {
        let deleted = [
            DeletedEntry { key: "sample1.txt" },
            DeletedEntry { key: "a&b" },
        ];
        let errors = [DeleteErrorEntry {
            key: "sample2.txt",
            code: "AccessDenied",
            message: "Access Denied",
        }];
        let loud = delete_result(false, &deleted, &errors);
        assert_eq!(
            loud,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Deleted><Key>sample1.txt</Key></Deleted><Deleted><Key>a&amp;b</Key></Deleted>\
             <Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\
             </DeleteResult>"
        );
        let quiet = delete_result(true, &deleted, &errors);
        assert!(!quiet.contains("<Deleted>"));
        assert!(quiet.contains("<Error><Key>sample2.txt</Key>"));
        let leaves = leaves(&delete_result(true, &deleted, &[]));
        assert!(leaves.iter().all(|(p, _)| p == "DeleteResult"));
    }

    #[test]
    fn initiate_multipart_matches_aws_shape() {
        assert_eq!(
            initiate_multipart(
                "example-bucket",
                "example-object",
                "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
            ),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Bucket>example-bucket</Bucket><Key>example-object</Key>\
             <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>\
             </InitiateMultipartUploadResult>"
        );
    }

    #[test]
    fn complete_multipart_writes_etag_quoted_and_a_known_checksum() {
        let xml = complete_multipart(
            "http://example-bucket.s3.amazonaws.com/Example-Object",
            "example-bucket",
            "Example-Object",
            "3858f62230ac3c915f300c664312c11f-9",
            Some(("ChecksumCRC32", "i9aeUg==")),
            None,
        );
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Location>http://example-bucket.s3.amazonaws.com/Example-Object</Location>\
             <Bucket>example-bucket</Bucket><Key>Example-Object</Key>\
             <ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>\
             <ChecksumCRC32>i9aeUg==</ChecksumCRC32></CompleteMultipartUploadResult>"
        );
        let none = complete_multipart("l", "b", "k", "e", None, Some("COMPOSITE"));
        assert!(none.ends_with("<ETag>&quot;e&quot;</ETag></CompleteMultipartUploadResult>"));
        let bogus = complete_multipart(
            "l",
            "b",
            "k",
            "e",
            Some(("x><script", "v")),
            Some("COMPOSITE"),
        );
        assert_eq!(bogus, none);
        let typed = complete_multipart(
            "l",
            "b",
            "k",
            "e",
            Some(("ChecksumCRC32", "otMqCw==-2")),
            Some("COMPOSITE"),
        );
        assert!(
            typed.ends_with(
                "<ChecksumCRC32>otMqCw==-2</ChecksumCRC32><ChecksumType>COMPOSITE</ChecksumType>\
                 </CompleteMultipartUploadResult>"
            ),
            "{typed}"
        );
    }

    /// The `Initiator` and `Owner` content for the owner `owner&id`.
    const OWNER: &str = "<ID>owner&amp;id</ID><DisplayName>owner&amp;id</DisplayName>";

    #[test]
    fn list_parts_writes_fields_in_s3_order_and_only_known_checksums() {
        let parts = [
            PartEntry {
                part_number: 2,
                last_modified: aws_doc_time(),
                etag: "7778aef83f66abc1fa1e8477f296d394",
                size: 10_485_760,
                checksum: Some(("ChecksumCRC32", "i9aeUg==")),
            },
            PartEntry {
                part_number: 3,
                last_modified: aws_doc_time() + Duration::from_millis(1500),
                etag: "aaaa18db4cc2f85cedef654fccc4a4x8",
                size: 1,
                checksum: Some(("x><script", "v")),
            },
        ];
        let mut l = ListPartsResult {
            bucket: "example-bucket",
            key: "example-object",
            upload_id: "XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA",
            owner: "owner&id",
            part_number_marker: 1,
            next_part_number_marker: Some(3),
            max_parts: 2,
            is_truncated: true,
            checksum_algorithm: Some("CRC32"),
            parts: &parts,
        };
        assert_eq!(
            list_parts(&l),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <Bucket>example-bucket</Bucket><Key>example-object</Key>\
                 <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>\
                 <Initiator>{OWNER}</Initiator><Owner>{OWNER}</Owner><StorageClass>STANDARD</StorageClass>\
                 <PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker>\
                 <MaxParts>2</MaxParts><IsTruncated>true</IsTruncated><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\
                 <Part><PartNumber>2</PartNumber><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
                 <ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size>\
                 <ChecksumCRC32>i9aeUg==</ChecksumCRC32></Part>\
                 <Part><PartNumber>3</PartNumber><LastModified>2009-10-12T17:50:31.500Z</LastModified>\
                 <ETag>&quot;aaaa18db4cc2f85cedef654fccc4a4x8&quot;</ETag><Size>1</Size></Part>\
                 </ListPartsResult>"
            )
        );
        l.next_part_number_marker = None;
        l.checksum_algorithm = None;
        l.parts = &[];
        assert!(list_parts(&l).ends_with(
            "<PartNumberMarker>1</PartNumberMarker><MaxParts>2</MaxParts>\
             <IsTruncated>true</IsTruncated></ListPartsResult>"
        ));
    }

    #[test]
    fn list_uploads_writes_fields_in_s3_order() {
        let uploads = [UploadEntry {
            key: "my-divisor",
            upload_id: "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw",
            owner: "owner&id",
            initiated: aws_doc_time(),
        }];
        let mut l = ListUploadsResult {
            bucket: "bucket",
            prefix: "",
            key_marker: "",
            upload_id_marker: "",
            next_markers: Some((
                "my-movie.m2ts",
                "VXBsb2FkIElEIGZvciBkYXZpZCdzIG1vdmllIHVwbG9hZA",
            )),
            max_uploads: 1,
            is_truncated: true,
            uploads: &uploads,
        };
        assert_eq!(
            list_uploads(&l),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>\
                 <NextKeyMarker>my-movie.m2ts</NextKeyMarker>\
                 <NextUploadIdMarker>VXBsb2FkIElEIGZvciBkYXZpZCdzIG1vdmllIHVwbG9hZA</NextUploadIdMarker>\
                 <Prefix></Prefix><MaxUploads>1</MaxUploads><IsTruncated>true</IsTruncated>\
                 <Upload><Key>my-divisor</Key><UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>\
                 <Initiator>{OWNER}</Initiator><Owner>{OWNER}</Owner><StorageClass>STANDARD</StorageClass>\
                 <Initiated>2009-10-12T17:50:30.000Z</Initiated></Upload></ListMultipartUploadsResult>"
            )
        );
        l.next_markers = None;
        l.uploads = &[];
        assert!(list_uploads(&l).ends_with(
            "<UploadIdMarker></UploadIdMarker><Prefix></Prefix><MaxUploads>1</MaxUploads>\
             <IsTruncated>true</IsTruncated></ListMultipartUploadsResult>"
        ));
    }

    /// The request body from the AWS CompleteMultipartUpload documentation.
    const AWS_COMPLETE_EXAMPLE: &str = r#"<CompleteMultipartUpload>
  <Part>
    <PartNumber>1</PartNumber>
    <ETag>"a54357aff0632cce46d942af68356b38"</ETag>
  </Part>
  <Part>
    <PartNumber>2</PartNumber>
    <ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <ETag>"acbd18db4cc2f85cedef654fccc4a4d8"</ETag>
  </Part>
</CompleteMultipartUpload>"#;

    #[test]
    fn parse_complete_multipart_reads_the_aws_example() {
        let parts = parse_complete_multipart(AWS_COMPLETE_EXAMPLE.as_bytes(), 10_000).unwrap();
        let got: Vec<(u32, &str)> = parts
            .iter()
            .map(|p| (p.part_number, p.etag.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "a54357aff0632cce46d942af68356b38"),
                (2, "0c78aef83f66abc1fa1e8477f296d394"),
                (3, "acbd18db4cc2f85cedef654fccc4a4d8"),
            ]
        );
        assert!(parts.iter().all(|p| p.checksums.is_empty()));
    }

    #[test]
    fn parse_complete_multipart_reads_sdk_style_bodies_with_checksums() {
        // What the AWS SDKs send: namespace, entity-escaped quotes, fields in any order.
        let body = r#"<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ChecksumCRC32>i9aeUg==</ChecksumCRC32><ETag>&quot;etag1&quot;</ETag><PartNumber>1</PartNumber></Part><Part><ETag>etag2</ETag><ChecksumSHA256> ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw= </ChecksumSHA256><ChecksumCRC64NVME>OOJZ0D8xKts=</ChecksumCRC64NVME><PartNumber> 0002 </PartNumber></Part></CompleteMultipartUpload>"#;
        let parts = parse_complete_multipart(body.as_bytes(), 10_000).unwrap();
        assert_eq!(
            parts,
            vec![
                CompletePart {
                    part_number: 1,
                    etag: "etag1".into(),
                    checksums: vec![("ChecksumCRC32".into(), "i9aeUg==".into())],
                },
                CompletePart {
                    part_number: 2,
                    etag: "etag2".into(),
                    checksums: vec![
                        (
                            "ChecksumSHA256".into(),
                            "ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw=".into()
                        ),
                        ("ChecksumCRC64NVME".into(), "OOJZ0D8xKts=".into()),
                    ],
                },
            ]
        );
    }

    fn complete_body(n: usize) -> String {
        let mut body = String::from("<CompleteMultipartUpload>");
        for i in 1..=n {
            body.push_str(&format!(
                "<Part><PartNumber>{i}</PartNumber><ETag>\"e{i}\"</ETag></Part>"
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        body
    }

    #[test]
    fn parse_complete_multipart_enforces_limits_and_emptiness() {
        assert_eq!(
            parse_complete_multipart(complete_body(5).as_bytes(), 5)
                .unwrap()
                .len(),
            5
        );
        assert_eq!(
            parse_complete_multipart(complete_body(6).as_bytes(), 5),
            Err(XmlError::TooMany)
        );
        assert_eq!(
            parse_complete_multipart(b"<CompleteMultipartUpload/>", 5),
            Err(XmlError::Empty)
        );
        assert_eq!(
            parse_complete_multipart(b"<CompleteMultipartUpload>\n</CompleteMultipartUpload>", 5),
            Err(XmlError::Empty)
        );
    }

    #[test]
    fn parse_complete_multipart_rejects_malformed_bodies() {
        let part = |inner: &str| {
            format!("<CompleteMultipartUpload><Part>{inner}</Part></CompleteMultipartUpload>")
        };
        let cases = [
            "<CompleteMultipartUpload><Part>".to_owned(),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
                .to_owned(),
            "<Complete><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Complete>".to_owned(),
            "<!DOCTYPE x><CompleteMultipartUpload/>".to_owned(),
            "<CompleteMultipartUpload><Object/></CompleteMultipartUpload>".to_owned(),
            part("<ETag>e</ETag>"),
            part("<PartNumber>1</PartNumber>"),
            part("<PartNumber>1</PartNumber><ETag></ETag>"),
            part("<PartNumber>1</PartNumber><ETag>\"\"</ETag>"),
            part("<PartNumber></PartNumber><ETag>e</ETag>"),
            part("<PartNumber>one</PartNumber><ETag>e</ETag>"),
            part("<PartNumber>-1</PartNumber><ETag>e</ETag>"),
            part("<PartNumber>+1</PartNumber><ETag>e</ETag>"),
            part("<PartNumber>1.0</PartNumber><ETag>e</ETag>"),
            part("<PartNumber>4294967296</PartNumber><ETag>e</ETag>"),
            part("<PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>e</ETag>"),
            part("<PartNumber>1</PartNumber><ETag>e</ETag><ETag>f</ETag>"),
            part("<PartNumber>1</PartNumber><ETag>e</ETag><ChecksumMD5>x</ChecksumMD5>"),
            part("<PartNumber>1</PartNumber><ETag>e</ETag><ChecksumCRC32></ChecksumCRC32>"),
            part(
                "<PartNumber>1</PartNumber><ETag>e</ETag><ChecksumCRC32>a</ChecksumCRC32><ChecksumCRC32>b</ChecksumCRC32>",
            ),
            part("<PartNumber>1</PartNumber><ETag>e</ETag><checksumcrc32>a</checksumcrc32>"),
            part("<PartNumber><b>1</b></PartNumber><ETag>e</ETag>"),
        ];
        for c in &cases {
            assert_eq!(
                parse_complete_multipart(c.as_bytes(), 10_000),
                Err(XmlError::Malformed),
                "{c}"
            );
        }
    }

    #[test]
    fn writers_produce_documents_the_tokenizer_accepts() {
        let contents = sample_objects();
        let prefixes = ["p\u{1}/".to_owned()];
        let docs = [
            error("C", "m\u{0}\r\n", "r", "id"),
            list_buckets(
                "i",
                "n'\"",
                &[BucketEntry {
                    name: "b",
                    created: aws_doc_time(),
                }],
            ),
            location("eu-central-1"),
            list_objects_v2(&ListV2 {
                bucket: "b",
                prefix: "<",
                delimiter: Some("&"),
                max_keys: 1,
                start_after: None,
                continuation_token: None,
                next_continuation_token: None,
                is_truncated: false,
                url_encode: false,
                contents: &contents,
                common_prefixes: &prefixes,
            }),
            list_objects_v1(
                &ListV2 {
                    bucket: "b",
                    prefix: "'",
                    delimiter: None,
                    max_keys: 1,
                    start_after: None,
                    continuation_token: None,
                    next_continuation_token: None,
                    is_truncated: false,
                    url_encode: false,
                    contents: &contents,
                    common_prefixes: &prefixes,
                },
                "<m>",
                Some("\u{2}"),
            ),
            delete_result(false, &[DeletedEntry { key: "]]>" }], &[]),
            initiate_multipart("b", "k\u{FFFF}", "u"),
            complete_multipart("l", "b", "k", "e", Some(("ChecksumSHA1", "x")), None),
        ];
        for d in &docs {
            assert!(!leaves(d).is_empty(), "{d}");
        }
    }

    fn xml_key() -> impl Strategy<Value = String> {
        // Any XML 1.0 character, weighted towards the ones that need care.
        let special = prop::sample::select(vec![
            '&', '<', '>', '"', '\'', '\r', '\n', '\t', ' ', ']', '\u{85}',
        ]);
        let any_xml = any::<char>().prop_filter("XML 1.0 Char", |c| is_xml_char(*c));
        prop::collection::vec(prop_oneof![special, any_xml], 1..24)
            .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn parse_delete_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512), max in 0usize..4) {
            let _ = parse_delete(&body, max);
            let _ = parse_complete_multipart(&body, max);
        }

        #[test]
        fn parse_delete_never_panics_on_xml_like_input(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "<Delete>", "</Delete>", "<Object>", "</Object>", "<Key>", "</Key>", "<Key/>",
                "<VersionId>", "</VersionId>", "<Quiet>", "</Quiet>", "true", "k", "&amp;", "&#x41;",
                "&", "<", ">", "<!--", "-->", "<![CDATA[", "]]>", "<?xml version=\"1.0\"?>", " ",
                "<!DOCTYPE", "<Part>", "</Part>", "<PartNumber>", "</PartNumber>", "<ETag>", "</ETag>",
                "1", "<CompleteMultipartUpload>", "</CompleteMultipartUpload>", "/>", "\"", "=",
            ]), 0..40),
            max in 0usize..4,
        ) {
            let body = pieces.concat();
            let _ = parse_delete(body.as_bytes(), max);
            let _ = parse_complete_multipart(body.as_bytes(), max);
        }

        #[test]
        fn escaped_keys_round_trip_through_parse_delete(keys in prop::collection::vec(xml_key(), 1..6)) {
            let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
            for k in &keys {
                body.push_str("<Object><Key>");
                body.push_str(&escape(k));
                body.push_str("</Key></Object>");
            }
            body.push_str("</Delete>");
            let req = parse_delete(body.as_bytes(), keys.len()).unwrap();
            let got: Vec<String> = req.objects.into_iter().map(|o| o.key).collect();
            prop_assert_eq!(got, keys);
        }

        #[test]
        fn escape_output_contains_no_raw_markup(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            let e = escape(&s);
            prop_assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
            prop_assert!(e.chars().all(|c| c >= ' ' && is_xml_char(c)));
            // Every '&' starts a reference.
            for (i, _) in e.match_indices('&') {
                let rest = &e[i..];
                prop_assert!(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;")
                    || rest.starts_with("&quot;") || rest.starts_with("&apos;") || rest.starts_with("&#x"));
            }
        }
    }
}
