//! Object tagging: GetObjectTagging, PutObjectTagging, DeleteObjectTagging, and the tags given
//! with an upload (`x-amz-tagging` on PutObject and CreateMultipartUpload, a POST form's
//! `tagging` field). Tags live in the object's metadata record and go with its version: a new
//! version has only the tags it was uploaded with.
//!
//! S3's rules, kept here: at most 10 tags (more: `400 BadRequest`); keys of 1 to 128 and values
//! of at most 256 Unicode characters, letters, digits, spaces and `+ - = . _ : / @` only, and no
//! key twice (else `400 InvalidTag`).

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;

use super::{Ctx, xml, xml_response};
use crate::error::{Error, Result};
use crate::http::{Body, header_str, status_response};
use crate::metadata::ObjectTags;

/// Most tags on one object (S3's limit).
pub const MAX_TAGS: usize = 10;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// Holds `tags` to S3's rules.
fn validate(tags: Vec<(String, String)>) -> Result<ObjectTags> {
    if tags.len() > MAX_TAGS {
        return Err(Error::BadRequest("Object tags cannot be greater than 10"));
    }
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || " +-=._:/@".contains(c))
    };
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > MAX_KEY_CHARS || !allowed(k) {
            return Err(Error::InvalidTag("The TagKey you have provided is invalid"));
        }
        if v.chars().count() > MAX_VALUE_CHARS || !allowed(v) {
            return Err(Error::InvalidTag(
                "The TagValue you have provided is invalid",
            ));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(Error::InvalidTag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(ObjectTags(tags))
}

/// The tags of an upload's `x-amz-tagging` header (URL query form, `k1=v1&k2=v2`).
pub(crate) fn from_header(h: &HeaderMap) -> Result<ObjectTags> {
    if !h.contains_key("x-amz-tagging") {
        return Ok(ObjectTags::default());
    }
    let raw = header_str(h, "x-amz-tagging")
        .ok_or(Error::InvalidArgument("invalid x-amz-tagging header"))?;
    let mut tags = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        if tags.len() == MAX_TAGS {
            return Err(Error::BadRequest("Object tags cannot be greater than 10"));
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| Error::InvalidTag("The x-amz-tagging header is not valid UTF-8"))
        };
        tags.push((decode(k)?, decode(v)?));
    }
    validate(tags)
}

/// The tags of a `Tagging` XML document.
pub(crate) fn parse_xml(body: &[u8]) -> Result<ObjectTags> {
    match xml::parse_tagging(body, MAX_TAGS) {
        Ok(tags) => validate(tags),
        Err(xml::XmlError::TooMany) => {
            Err(Error::BadRequest("Object tags cannot be greater than 10"))
        }
        Err(_) => Err(Error::MalformedXml),
    }
}

/// GetObjectTagging.
pub async fn get(ctx: &Ctx, bucket: &str, key: &str) -> Result<Response<Body>> {
    ctx.state.bucket(bucket)?;
    let rec = ctx
        .state
        .meta
        .current(bucket, key)
        .await?
        .ok_or(Error::NoSuchKey)?;
    Ok(xml_response(StatusCode::OK, xml::tagging(&rec.tags.0)))
}

/// PutObjectTagging: replaces the tags of the current version.
pub async fn put(ctx: &Ctx, bucket: &str, key: &str, body: Incoming) -> Result<Response<Body>> {
    ctx.state.bucket(bucket)?;
    let data = super::bucket::read_small_body(ctx, body).await?;
    let tags = parse_xml(&data)?;
    set(ctx, bucket, key, &tags).await?;
    Ok(status_response(StatusCode::OK))
}

/// DeleteObjectTagging: removes the tags of the current version.
pub async fn delete(ctx: &Ctx, bucket: &str, key: &str) -> Result<Response<Body>> {
    ctx.state.bucket(bucket)?;
    set(ctx, bucket, key, &ObjectTags::default()).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

async fn set(ctx: &Ctx, bucket: &str, key: &str, tags: &ObjectTags) -> Result<()> {
    if ctx.state.meta.set_tags(bucket, key, tags).await? {
        Ok(())
    } else {
        Err(Error::NoSuchKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> Result<ObjectTags> {
        let mut h = HeaderMap::new();
        h.insert("x-amz-tagging", v.parse().expect("value"));
        from_header(&h)
    }

    #[test]
    fn the_tagging_header_is_url_query_form() {
        let t = header("project=upgate&team=data%20eng&empty=&a+b=c%2Fd").expect("ok");
        assert_eq!(
            t.0,
            vec![
                ("project".into(), "upgate".into()),
                ("team".into(), "data eng".into()),
                ("empty".into(), "".into()),
                ("a b".into(), "c/d".into()),
            ]
        );
    }

    #[test]
    fn s3_tag_rules_hold() {
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(matches!(
            header(&eleven.join("&")),
            Err(Error::BadRequest(_))
        ));
        assert!(header(&eleven[..10].join("&")).is_ok());
        for bad in ["k=v&k=w", "=v", "k=<script>", "k%00=v"] {
            assert!(matches!(header(bad), Err(Error::InvalidTag(_))), "{bad}");
        }
        let long_key = "k".repeat(129);
        assert!(header(&format!("{long_key}=v")).is_err());
        assert!(header(&format!("{}=v", "k".repeat(128))).is_ok());
        // Characters, not bytes: é is two bytes (URL-encoded in the header, as clients send it).
        assert!(header(&format!("k={}", "%C3%A9".repeat(257))).is_err());
        assert!(header(&format!("k={}", "%C3%A9".repeat(256))).is_ok());
    }
}
