//! HTTP plumbing every front end shares: the response body type and small response builders,
//! the connection facts a handler may use, request-body frames, and the query-string parser.
//! Nothing here knows S3, JSON APIs or uploads.

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Empty, Full};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::error::{Error, Result};

/// Response body: small buffered documents or a streamed object.
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// What a front end made of one request, for the request edge to finish (log, count, render
/// the error in the front end's own format, add the common headers).
pub struct Outcome {
    pub result: Result<Response<Body>>,
    /// Operation name for logs and metrics.
    pub op: &'static str,
    /// The bucket the request named, if any (CORS headers, the access log).
    pub bucket: Option<String>,
    /// How to render this request's error, when it differs from its front end's usual form
    /// (a resumable-upload draft client expects problem documents and its limits).
    pub render: Option<CustomRender>,
}

/// A renderer made for one request (it may carry what the request learnt, such as limits).
pub type CustomRender = Box<dyn Fn(&Error, &http::Method, &str) -> Response<Body> + Send + Sync>;

/// How a front end renders an error for a client: the error, the request method, the request id.
pub type RenderError = fn(&Error, &http::Method, &str) -> Response<Body>;

/// A full (buffered) body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// An empty response with a status.
pub fn status_response(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    resp
}

/// A small buffered response with a content type.
pub fn typed_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A plain-text response.
pub fn text_response(status: StatusCode, body: &'static str) -> Response<Body> {
    typed_response(status, "text/plain", body)
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    typed_response(status, "application/json", body)
}

/// The JSON error document of the control API and the pages: `{"error": {code, message,
/// request_id}}` with the error's status, and `Retry-After` when the error has one.
pub fn json_error(e: &Error, request_id: &str) -> Response<Body> {
    let mut r = json(
        e.api_status(),
        &serde_json::json!({
            "error": { "code": e.code(), "message": e.message(), "request_id": request_id }
        }),
    );
    if let Some(secs) = e.retry_after() {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// The base URL of this gateway as clients reach it: `public_url` when configured, otherwise
/// the scheme of the connection and the request's `Host` (which must be a plain host name).
pub fn base_url(public_url: &str, headers: &http::HeaderMap, conn: ConnInfo) -> Result<String> {
    if !public_url.is_empty() {
        return Ok(public_url.trim_end_matches('/').to_string());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(Error::InvalidRequest("A Host header is required."))?;
    let scheme = if conn.tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}"))
}

/// The request with its head (URI and header values) copied out of the connection's read
/// buffer.
///
/// hyper parses a request without copying: the URI and every header value are slices of the
/// buffer the head was read into, which is also where the first body bytes landed. While they
/// live, that whole buffer (up to `server.max_header_bytes`) stays allocated beside the one
/// the body is read into, so an upload held mid-body would keep two. A copy costs a few
/// hundred bytes once per request.
pub fn detach_head<B>(req: http::Request<B>) -> http::Request<B> {
    let (mut parts, body) = req.into_parts();
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len());
    let mut last = None;
    for (name, value) in std::mem::take(&mut parts.headers) {
        // `None`: another value of the name before it.
        let Some(name) = name.or_else(|| last.clone()) else {
            continue;
        };
        let sensitive = value.is_sensitive();
        let mut copied = HeaderValue::from_bytes(value.as_bytes()).unwrap_or(value);
        copied.set_sensitive(sensitive);
        headers.append(&name, copied);
        last = Some(name);
    }
    parts.headers = headers;
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    http::Request::from_parts(parts, body)
}

/// A non-negative decimal integer written as digits only (no sign, no spaces, nothing else), as
/// length and offset headers must be; `None` otherwise or when it does not fit a `u64`.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A header as UTF-8 text, if present and valid.
pub fn header_str<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The exact length of a request body when the framing says it (Content-Length, or a body that
/// has ended already, such as a request with neither Content-Length nor chunked encoding).
pub fn known_length(body: &Incoming) -> Option<u64> {
    use http_body::Body as _;
    if body.is_end_stream() {
        return Some(0);
    }
    body.size_hint().exact()
}

/// The data frames of a request body, as the ingest pipe wants them: a read timeout becomes
/// [`Error::RequestTimeout`], any other transport failure [`Error::IncompleteBody`].
pub fn incoming_frames(
    body: Incoming,
) -> impl futures_util::Stream<Item = Result<Bytes>> + Send + Unpin + 'static {
    Box::pin(BodyStream::new(body).filter_map(|f| async move {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(if e.is_timeout() {
                Error::RequestTimeout
            } else {
                Error::IncompleteBody
            })),
        }
    }))
}

/// Decoded query parameters, in order, duplicates kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string (`+` is a literal plus, as in SigV4).
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        let mut out = Vec::new();
        if let Some(raw) = raw {
            for part in raw.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                out.push((decode(k)?.into_owned(), decode(v)?.into_owned()));
            }
        }
        Ok(Query(out))
    }

    /// The value of `name` if it appears exactly once; an error if it appears twice.
    pub fn get(&self, name: &str) -> Result<Option<&str>> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(Error::InvalidArgument("duplicate query parameter"));
        }
        Ok(first)
    }

    /// Whether the query has no parameters at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

fn decode(s: &str) -> Result<Cow<'_, str>> {
    percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| Error::InvalidArgument("query is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_head_is_equal_and_shares_nothing_with_the_read_buffer() {
        let buffer = Bytes::from_static(b"/bucket/key?uploads=1 secret-token one two");
        let within = |p: *const u8| buffer.as_ptr_range().contains(&p);
        let shared = |range: std::ops::Range<usize>| {
            HeaderValue::from_maybe_shared(buffer.slice(range)).expect("value")
        };
        let mut token = shared(22..34);
        token.set_sensitive(true);
        let mut req = http::Request::builder()
            .uri(http::Uri::from_maybe_shared(buffer.slice(0..21)).expect("uri"))
            .body(())
            .expect("request");
        let h = req.headers_mut();
        h.insert(header::AUTHORIZATION, token);
        h.append("x-amz-meta-n", shared(35..38));
        h.append("x-amz-meta-n", shared(39..42));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(
            within(req.uri().path().as_ptr()),
            "the fixture shares the buffer"
        );

        let out = detach_head(req);
        assert_eq!(out.uri(), "/bucket/key?uploads=1");
        let values: Vec<(&str, &[u8])> = out
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(
            values,
            vec![
                ("authorization", &b"secret-token"[..]),
                ("x-amz-meta-n", b"one"),
                ("x-amz-meta-n", b"two"),
                ("content-length", b"5"),
            ]
        );
        assert!(out.headers()[header::AUTHORIZATION].is_sensitive());
        assert!(!out.headers()[header::CONTENT_LENGTH].is_sensitive());
        assert!(!within(out.uri().path().as_ptr()));
        for (_, v) in out.headers() {
            assert!(!within(v.as_bytes().as_ptr()), "{v:?} still in the buffer");
        }
    }
}
