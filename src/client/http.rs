//! The client's HTTP: one hyper client (rustls with the platform's trust store, HTTP/1.1),
//! JSON calls with a bearer credential, and the gateway's error bodies read back as one line
//! with their code.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A request body: in memory, or streamed from a file.
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Most bytes of a JSON answer read.
const MAX_JSON: usize = 4 << 20;
/// Most bytes of a download held (the gateway's objects are far smaller).
const MAX_DOWNLOAD: usize = 1 << 30;

/// Why a call failed: the gateway refused it (with its code), or it never got an answer.
#[derive(Debug)]
pub enum CallError {
    /// An answer with an error status: the status, the S3 / API error code and its message.
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// No usable answer (connection, TLS, timeout, a body cut short).
    Network(String),
}

impl CallError {
    /// Worth another attempt: the network, overload, a lock held by an earlier attempt.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Network(_) => true,
            CallError::Refused { status, .. } => {
                status.is_server_error() || matches!(status.as_u16(), 408 | 409 | 423 | 429)
            }
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused {
                status,
                code,
                message,
            } => write!(f, "{code}: {message} (HTTP {})", status.as_u16()),
            CallError::Network(e) => write!(f, "network: {e}"),
        }
    }
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Result<serde_json::Value, CallError> {
        serde_json::from_slice(&self.body)
            .map_err(|_| CallError::Network("the answer is not JSON".into()))
    }
}

/// The gateway's error body (`{"error": {code, message}}`, S3 XML, or tus's `Code: message`).
fn refused(status: StatusCode, body: &[u8]) -> CallError {
    let text = String::from_utf8_lossy(body);
    let (code, message) = if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(e) = v.get("error")
    {
        (
            e["code"].as_str().unwrap_or("Error").to_string(),
            e["message"].as_str().unwrap_or("").to_string(),
        )
    } else if let (Some(c), Some(m)) = (xml_value(&text, "Code"), xml_value(&text, "Message")) {
        (c.to_string(), m.to_string())
    } else if let Some((c, m)) = text.trim().split_once(": ")
        && !c.is_empty()
        && c.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        let m = m.split(" (request ").next().unwrap_or(m);
        (c.to_string(), m.to_string())
    } else {
        (
            format!("HTTP{}", status.as_u16()),
            status.canonical_reason().unwrap_or("error").to_string(),
        )
    };
    CallError::Refused {
        status,
        code,
        message,
    }
}

/// The text of the first `<tag>` of an XML answer.
pub(super) fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// A client of one gateway.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpsConnector<HttpConnector>, ReqBody>,
    /// `https://host[:port]`, no trailing slash.
    pub endpoint: String,
    bearer: Option<String>,
    timeout: Duration,
}

impl Http {
    pub fn new(endpoint: &str, bearer: Option<String>) -> Result<Self, String> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                use rustls_platform_verifier::BuilderVerifierExt;
                b.with_platform_verifier()
            })
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        let endpoint = endpoint.trim_end_matches('/').to_string();
        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            return Err(format!(
                "--endpoint must be an http(s) URL, got {endpoint:?}"
            ));
        }
        Ok(Self {
            client,
            endpoint,
            bearer,
            timeout: Duration::from_secs(60),
        })
    }

    /// `path` on the gateway, or an absolute URL it gave.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.endpoint)
        }
    }

    /// One request; an error status becomes [`CallError::Refused`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: ReqBody,
    ) -> Result<Answer, CallError> {
        let mut req = Request::builder().method(method).uri(self.url(path));
        if let Some(b) = &self.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(body)
            .map_err(|e| CallError::Network(format!("bad request: {e}")))?;
        self.exchange(req, MAX_JSON, self.timeout).await
    }

    /// Sends `req`; reads at most `limit` bytes of the answer within `read_timeout`.
    async fn exchange(
        &self,
        req: Request<ReqBody>,
        limit: usize,
        read_timeout: Duration,
    ) -> Result<Answer, CallError> {
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| CallError::Network("timed out".into()))?
            .map_err(|e| CallError::Network(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(
            read_timeout,
            http_body_util::Limited::new(body, limit).collect(),
        )
        .await
        .map_err(|_| CallError::Network("timed out reading the answer".into()))?
        .map_err(|e| CallError::Network(e.to_string()))?
        .to_bytes();
        if !parts.status.is_success() {
            return Err(refused(parts.status, &body));
        }
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// The bytes at `url` (a download link: no bearer is sent), at most `MAX_DOWNLOAD`.
    pub async fn download(&self, url: &str) -> Result<Bytes, CallError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.url(url))
            .body(full(Bytes::new()))
            .map_err(|e| CallError::Network(format!("bad request: {e}")))?;
        Ok(self
            .exchange(req, MAX_DOWNLOAD, Duration::from_secs(600))
            .await?
            .body)
    }

    /// A JSON call of the control API.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, CallError> {
        let (headers, b) = match body {
            Some(v) => (
                vec![("content-type", "application/json".to_string())],
                Bytes::from(v.to_string()),
            ),
            None => (Vec::new(), Bytes::new()),
        };
        let a = self.send(method, path, &headers, full(b)).await?;
        if a.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        a.json()
    }
}

/// An in-memory body.
pub fn full(b: Bytes) -> ReqBody {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}
