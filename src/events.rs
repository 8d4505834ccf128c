//! Webhook delivery: a background worker that drains the durable outbox into signed HTTP POSTs
//! (and, with `[mail]` enabled, into e-mail: see [`mail`], a delivery kind of its own).
//!
//! # Flow
//!
//! ```text
//! change + OutboxEvent ──(one transaction, written by the store)──▶ outbox row
//!                                                                     │
//! run(): loop { due_events(now, batch) ─▶ per event, to every endpoint that wants it:
//!               POST payload (signed) ─▶ all 2xx in time?
//!                   yes: event_delivered   no: event_failed(next = now + backoff, or parked) }
//! ```
//!
//! An endpoint *wants* an event when its `events` list is empty or names the event, and its
//! `tenant` is empty or equals the event's tenant id. An event no endpoint wants is marked
//! delivered at once (with no endpoints configured the worker simply drains the outbox).
//!
//! # Guarantees
//!
//! Delivery is **at least once**. An event is marked delivered only after every matching endpoint
//! answered 2xx; a crash, a shutdown or a lost database write between the POST and that mark means
//! the event is sent again later. Partial success is not tracked per endpoint: when one of two
//! endpoints fails, the retry re-sends to both. Receivers therefore deduplicate by the delivery id
//! (`x-upgate-delivery`, the outbox row id, identical on every retry). Ordering is not guaranteed:
//! the events of one batch go out concurrently, and an event being retried arrives after newer
//! ones (receivers order by the payload's own timestamps if they need to).
//!
//! The outbox is the only state: a restart loses nothing, and retries resume where they stopped.
//! Several replicas running the worker against one database each deliver the events they see due,
//! so an event may reach a receiver once per replica (still at-least-once; dedupe handles it).
//!
//! # Retries
//!
//! After the n-th failed attempt the event is due again after a delay drawn uniformly from
//! `0 ..= min(backoff_max_ms, backoff_base_ms · 2^(n-1))` ("full jitter": receivers that come back
//! after an outage are not hit by every sender at the same instant). After `max_attempts` failures
//! the event is *parked*: `next_attempt_at = i64::MAX`, `last_error` kept, never retried by the
//! worker (an operator can reset `next_attempt_at` to redeliver it). `last_error` holds only the
//! endpoint's index in the config and a status code or an error kind (`timeout`, `connect
//! failed`, …), never a URL, a secret or a response body.
//!
//! # The request
//!
//! ```text
//! POST <url>                            never redirected: a 3xx is a failure
//! content-type: application/json
//! user-agent: upgate-webhooks
//! x-upgate-event: upload.completed      the event name
//! x-upgate-delivery: <outbox id>        stable across retries: dedupe on it
//! x-upgate-timestamp: 1700000000        unix seconds of this attempt
//! x-upgate-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//!
//! <the event's JSON payload, byte for byte as stored; an upload.completed event's
//!  "receipt" member is signed at sending (accounts enabled) or left out>
//! ```
//!
//! Receivers check the signature with [`verify`] (or the same HMAC in any language) *and* that
//! the timestamp is recent (e.g. within 5 minutes): the timestamp is signed, so an attacker who
//! captured one delivery cannot replay it later with a fresh timestamp.
//!
//! # Security
//!
//! Endpoint URLs come from the operator's config, never from tenants, so the worker makes no
//! attempt to block private addresses. Only `http` and `https` URLs are accepted (https verified
//! against the platform's trust store), without embedded credentials; secrets are at least
//! [`MIN_SECRET_BYTES`], zeroized on drop and redacted in `Debug`; URLs appear in `Debug` and
//! logs only as their origin (`https://host:port`), since webhook paths often embed tokens.
//! Responses are read up to 64 KiB (to reuse the connection) and otherwise ignored. Proxy
//! environment variables are not honoured.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_platform_verifier::BuilderVerifierExt;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::metadata::MetaError;
use crate::metadata::control::{ControlStore, OutboxEvent};
use crate::metrics::Metrics;

pub mod mail;

/// A link upload finished and its file version is visible.
pub const UPLOAD_COMPLETED: &str = "upload.completed";
/// A link upload was rejected or aborted.
pub const UPLOAD_FAILED: &str = "upload.failed";
/// A file was deleted.
pub const FILE_DELETED: &str = "file.deleted";
/// A file reached the end of its retention and was deleted by the sweeper.
pub const FILE_EXPIRED: &str = "file.expired";
/// A tenant's usage crossed its quota warning threshold.
pub const QUOTA_WARNING: &str = "quota.warning";
/// An upload token has no uploads or bytes left (reported by the upload that used it up).
pub const TOKEN_EXHAUSTED: &str = crate::metadata::control::TOKEN_EXHAUSTED;
/// Every event name an endpoint may subscribe to.
pub const EVENTS: [&str; 6] = [
    UPLOAD_COMPLETED,
    UPLOAD_FAILED,
    FILE_DELETED,
    FILE_EXPIRED,
    QUOTA_WARNING,
    TOKEN_EXHAUSTED,
];

/// Shortest accepted endpoint secret, in bytes: 256 bits, the HMAC-SHA256 output size, so the
/// secret is not the weak link (`openssl rand -hex 32` gives 64).
pub const MIN_SECRET_BYTES: usize = 32;

/// `user-agent` of every delivery.
pub const USER_AGENT: &str = "upgate-webhooks";
/// Header names of a delivery.
pub const EVENT_HEADER: &str = "x-upgate-event";
pub const DELIVERY_HEADER: &str = "x-upgate-delivery";
pub const TIMESTAMP_HEADER: &str = "x-upgate-timestamp";
pub const SIGNATURE_HEADER: &str = "x-upgate-signature";

/// Most response-body bytes read (then dropped) so the connection can be reused.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How long an idle pooled connection to a receiver is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Signatures

/// The `x-upgate-signature` value for a delivery: `v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (an `x-upgate-signature` value) signs `timestamp` and `body` with `secret`.
///
/// Accepts a comma-separated list and succeeds if any `v1=` entry matches (room for sending
/// several signatures during a secret rotation). The comparison is constant-time. This does not
/// check the timestamp's age: the caller must also reject old timestamps.
pub fn verify(secret: &[u8], timestamp: u64, body: &[u8], header: &str) -> bool {
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .any(|sig| mac(secret, timestamp, body).verify_slice(&sig).is_ok())
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC is defined for keys of any length; hmac 0.12 never returns InvalidLength here.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub use crate::config::webhooks::{EndpointConfig, WebhookConfig, WebhookSecret};

// URLs show only their origin: webhook paths often embed tokens.
impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("url", &origin(&self.url))
            .field("secret", &self.secret)
            .field("secret_file", &self.secret_file)
            .field("events", &self.events)
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl WebhookConfig {
    /// Every problem with this section, one line each (empty: valid). Reads the secret files.
    pub fn problems(&self) -> Vec<String> {
        self.resolve().err().unwrap_or_default()
    }

    /// The endpoints ready to use, or every problem found.
    fn resolve(&self) -> Result<Vec<Endpoint>, Vec<String>> {
        let mut problems = Vec::new();
        if !(1..=600_000).contains(&self.timeout_ms) {
            problems.push("webhooks.timeout_ms must be 1..=600000".into());
        }
        if self.max_attempts == 0 {
            problems.push("webhooks.max_attempts must be at least 1".into());
        }
        if self.backoff_base_ms == 0 {
            problems.push("webhooks.backoff_base_ms must be at least 1".into());
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            problems
                .push("webhooks.backoff_max_ms must be at least webhooks.backoff_base_ms".into());
        }
        if self.poll_interval_ms < 10 {
            problems.push("webhooks.poll_interval_ms must be at least 10".into());
        }
        if !(1..=10_000).contains(&self.batch) {
            problems.push("webhooks.batch must be 1..=10000".into());
        }
        if !(1..=256).contains(&self.concurrency) {
            problems.push("webhooks.concurrency must be 1..=256".into());
        }
        let mut endpoints = Vec::with_capacity(self.endpoints.len());
        for (i, ep) in self.endpoints.iter().enumerate() {
            match Endpoint::from_config(i, ep) {
                Ok(e) => endpoints.push(e),
                Err(ps) => problems.extend(
                    ps.into_iter()
                        .map(|p| format!("webhooks.endpoints[{i}].{p}")),
                ),
            }
        }
        if problems.is_empty() {
            Ok(endpoints)
        } else {
            Err(problems)
        }
    }
}

/// A validated endpoint.
struct Endpoint {
    /// Position in the config; names the endpoint in logs and `last_error`.
    index: usize,
    uri: Uri,
    /// `scheme://host[:port]`, for logs.
    origin: String,
    secret: Zeroizing<Vec<u8>>,
    events: Vec<String>,
    tenant: String,
}

impl Endpoint {
    fn from_config(index: usize, c: &EndpointConfig) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let uri = match parse_url(&c.url) {
            Ok(uri) => Some(uri),
            Err(p) => {
                problems.push(p);
                None
            }
        };
        let secret = match (c.secret.is_empty(), c.secret_file.is_empty()) {
            (false, false) => {
                problems.push("secret: set secret or secret_file, not both".into());
                None
            }
            (true, true) => {
                problems.push("secret: one of secret and secret_file is required".into());
                None
            }
            (false, true) => Some(Zeroizing::new(c.secret.0.as_bytes().to_vec())),
            (true, false) => match read_secret_file(&c.secret_file) {
                Ok(s) => Some(s),
                Err(p) => {
                    problems.push(p);
                    None
                }
            },
        };
        if let Some(s) = &secret
            && s.len() < MIN_SECRET_BYTES
        {
            let which = if c.secret.is_empty() {
                "secret_file"
            } else {
                "secret"
            };
            problems.push(format!(
                "{which}: the secret must be at least {MIN_SECRET_BYTES} bytes \
                 (e.g. `openssl rand -hex 32`)"
            ));
        }
        for e in &c.events {
            if !EVENTS.contains(&e.as_str()) {
                problems.push(format!(
                    "events: unknown event {e:?} (known: {})",
                    EVENTS.join(", ")
                ));
            }
        }
        match (uri, secret) {
            (Some(uri), Some(secret)) if problems.is_empty() => Ok(Self {
                index,
                origin: origin(&c.url),
                uri,
                secret,
                events: c.events.clone(),
                tenant: c.tenant.clone(),
            }),
            _ => Err(problems),
        }
    }

    fn wants(&self, e: &OutboxEvent) -> bool {
        (self.events.is_empty() || self.events.contains(&e.event))
            && (self.tenant.is_empty() || self.tenant == e.tenant_id)
    }
}

/// Parses an endpoint URL; the error never repeats the URL (its path may be a token).
fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| "url: not a valid URL".to_string())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("url: must start with http:// or https://".into());
    }
    let Some(authority) = uri.authority() else {
        return Err("url: has no host".into());
    };
    if authority.as_str().contains('@') {
        return Err("url: must not contain credentials (user:password@)".into());
    }
    if authority.host().is_empty() {
        return Err("url: has no host".into());
    }
    Ok(uri)
}

/// `scheme://host[:port]` of a URL, or a placeholder: what logs and `Debug` may show of it.
fn origin(url: &str) -> String {
    match parse_url(url) {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("");
            let host = uri.host().unwrap_or("");
            match uri.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            }
        }
        Err(_) => "<invalid url>".into(),
    }
}

fn read_secret_file(path: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("secret_file: cannot read {path}: {}", e.kind()))?,
    );
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(format!("secret_file: {path} is empty"));
    }
    Ok(Zeroizing::new(line.as_bytes().to_vec()))
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// Why one POST failed; its `Display` is what `last_error` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The receiver answered, but not 2xx (3xx included: redirects are not followed).
    Status(u16),
    /// No status line within `timeout_ms`.
    Timeout,
    /// No connection (refused, DNS, TLS handshake or certificate).
    Connect,
    /// The connection broke during the exchange.
    Request,
    /// The request could not be built (an event name that is not a valid header value).
    Invalid,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "status {code}"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Connect => f.write_str("connect failed"),
            Failure::Request => f.write_str("request failed"),
            Failure::Invalid => f.write_str("invalid request"),
        }
    }
}

/// What one attempt at an event came to.
enum Outcome {
    /// No endpoint wants it.
    Unwanted,
    /// Every matching endpoint answered 2xx.
    Delivered,
    /// At least one did not; the text is for `last_error`.
    Failed(String),
}

/// Delivers outbox events to the configured endpoints. Built once from the config.
pub struct Deliverer {
    endpoints: Vec<Endpoint>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_attempts: i64,
    backoff_base_ms: u64,
    backoff_max_ms: u64,
    poll_interval: Duration,
    batch: u32,
    concurrency: usize,
    /// Signs the receipts `upload.completed` events carry (accounts enabled).
    receipts: Option<Arc<crate::auth::signing::SigningKeys>>,
    /// Mails notices (`[mail]` enabled).
    mailer: Option<mail::Mailer>,
    /// Counts deliveries by kind and outcome.
    metrics: Option<Arc<Metrics>>,
    /// Set when a pass queued mail rows: the next pass runs at once and sends them, instead of
    /// after a poll interval.
    queued_mail: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origins: Vec<&str> = self.endpoints.iter().map(|e| e.origin.as_str()).collect();
        f.debug_struct("Deliverer")
            .field("endpoints", &origins)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// Validates `cfg` (reading secret files) and builds the HTTP client. The error lists every
    /// problem, `; `-separated.
    pub fn new(cfg: &WebhookConfig) -> Result<Self, String> {
        let endpoints = cfg.resolve().map_err(|p| p.join("; "))?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_platform_verifier())
            .map_err(|e| format!("webhooks: TLS client setup: {e}"))?
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        // The scheme is checked by the TLS wrapper (https) or passes through (http).
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // The legacy client never follows redirects: a 3xx is returned to us as a status.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(https);
        Ok(Self {
            endpoints,
            client,
            timeout,
            max_attempts: i64::from(cfg.max_attempts),
            backoff_base_ms: cfg.backoff_base_ms,
            backoff_max_ms: cfg.backoff_max_ms,
            poll_interval: Duration::from_millis(cfg.poll_interval_ms),
            batch: cfg.batch,
            concurrency: cfg.concurrency,
            receipts: None,
            mailer: None,
            metrics: None,
            queued_mail: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Also mails notices, through `mailer` (see [`mail`]).
    pub fn with_mail(mut self, mailer: mail::Mailer) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Counts each delivery outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Signs the receipts of `upload.completed` events with `keys` when sending them.
    pub fn with_receipts(mut self, keys: Arc<crate::auth::signing::SigningKeys>) -> Self {
        self.receipts = Some(keys);
        self
    }

    /// The body sent for `e`: the stored payload, except that the receipt claims an
    /// `upload.completed` event holds are replaced by the signed receipt (or dropped when
    /// upgate has no signing keys).
    fn body_of(&self, e: &OutboxEvent) -> Bytes {
        if e.event != UPLOAD_COMPLETED || !e.payload.contains("\"receipt\"") {
            return Bytes::from(e.payload.clone());
        }
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&e.payload) else {
            return Bytes::from(e.payload.clone());
        };
        let claims = v
            .get("receipt")
            .cloned()
            .and_then(|c| serde_json::from_value::<crate::auth::signing::ReceiptClaims>(c).ok());
        let signed = match (&self.receipts, claims) {
            (Some(keys), Some(c)) => keys.sign_receipt(&c).ok(),
            _ => None,
        };
        match signed.and_then(|r| serde_json::to_value(r).ok()) {
            Some(r) => v["receipt"] = r,
            None => {
                if let Some(o) = v.as_object_mut() {
                    o.remove("receipt");
                }
            }
        }
        Bytes::from(v.to_string())
    }

    /// How long a pass owns the events it claims: every round of `concurrency` attempts may
    /// take the longest timeout (the endpoints of one event are posted to at once), plus a
    /// margin for recording the results. A replica that dies mid-pass holds its events no longer
    /// than this; then another delivers them (at least once: with the same delivery id).
    pub fn claim(&self) -> Duration {
        let rounds = self
            .batch
            .div_ceil(u32::try_from(self.concurrency.max(1)).unwrap_or(1));
        self.slowest_attempt() * rounds.max(1) + Duration::from_secs(5)
    }

    /// The longest one attempt may take: the webhook timeout, or the mail timeout if longer.
    fn slowest_attempt(&self) -> Duration {
        match &self.mailer {
            Some(m) => self.timeout.max(m.timeout()),
            None => self.timeout,
        }
    }

    /// One pass: fetches the due events (at most `batch`), attempts each and records the result.
    /// Returns how many events were due.
    pub async fn deliver_due(&self, store: &dyn ControlStore) -> Result<usize, MetaError> {
        let now = crate::clock::now_ms();
        let claim = i64::try_from(self.claim().as_millis()).unwrap_or(i64::MAX);
        let due = store
            .due_events(now, now.saturating_add(claim), self.batch)
            .await?;
        let n = due.len();
        futures_util::stream::iter(due)
            .for_each_concurrent(self.concurrency, |e| async move {
                let outcome = if e.event == mail::MAIL {
                    self.mail(&e).await
                } else {
                    self.attempt(store, &e).await
                };
                self.record(store, &e, outcome).await;
            })
            .await;
        Ok(n)
    }

    /// Sends a mail row (dropped while mail is disabled).
    async fn mail(&self, row: &OutboxEvent) -> Outcome {
        let Some(mailer) = &self.mailer else {
            return Outcome::Unwanted;
        };
        let started = std::time::Instant::now();
        match mailer.send(row).await {
            Ok(()) => {
                tracing::debug!(
                    event_id = %row.id,
                    ms = started.elapsed().as_millis() as u64,
                    "mail sent"
                );
                Outcome::Delivered
            }
            Err(failure) => {
                tracing::warn!(event_id = %row.id, error = %failure, "mail delivery failed");
                Outcome::Failed(failure.to_string())
            }
        }
    }

    /// Writes the mail rows of a notice into the outbox (idempotently: see [`mail`]).
    async fn fan_out(
        &self,
        store: &dyn ControlStore,
        mailer: &mail::Mailer,
        e: &OutboxEvent,
    ) -> Result<(), MetaError> {
        let payload = serde_json::from_str::<serde_json::Value>(&e.payload).unwrap_or_default();
        // An upload's notice names the file as its owner sees it.
        let file = match payload["file_id"].as_str() {
            Some(id) if e.event == UPLOAD_COMPLETED => store.file(id).await?,
            _ => None,
        };
        let facts = mail::facts(
            e,
            file.as_ref().map(|f| f.filename.as_str()),
            file.as_ref().map(|f| f.bucket.as_str()),
        );
        // The address the drop link (upload token) was created for, on its uploads and when
        // it is used up.
        let token_id = match e.event.as_str() {
            UPLOAD_COMPLETED => match payload["upload_id"].as_str() {
                Some(id) => store.link(id).await?.and_then(|l| l.token_id),
                None => None,
            },
            TOKEN_EXHAUSTED => payload["token_id"].as_str().map(str::to_string),
            _ => None,
        };
        let notify = match token_id {
            Some(id) => store.token(&id).await?.and_then(|t| t.notify_email),
            None => None,
        };
        let extra_to = notify.as_deref();
        let now = crate::clock::now_ms();
        for row in mailer.letters(e, &facts, extra_to) {
            if store.enqueue_once(&row, now).await? {
                self.queued_mail
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Turns a notice into mail rows, then POSTs `e` to every endpoint that wants it,
    /// concurrently.
    async fn attempt(&self, store: &dyn ControlStore, e: &OutboxEvent) -> Outcome {
        if let Some(mailer) = &self.mailer
            && mailer.notices(e)
            && let Err(err) = self.fan_out(store, mailer, e).await
        {
            tracing::warn!(event_id = %e.id, error = %err, "cannot queue the mail of an event");
            return Outcome::Failed("mail: cannot queue".into());
        }
        let targets: Vec<&Endpoint> = self.endpoints.iter().filter(|ep| ep.wants(e)).collect();
        if targets.is_empty() {
            return Outcome::Unwanted;
        }
        let timestamp = u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0);
        let body = self.body_of(e);
        let results = futures_util::future::join_all(
            targets
                .iter()
                .map(|ep| async { (*ep, self.post(ep, e, timestamp, body.clone()).await) }),
        )
        .await;
        let mut errors = Vec::new();
        for (ep, result) in results {
            if let Err(failure) = result {
                tracing::warn!(
                    event_id = %e.id,
                    event = %e.event,
                    endpoint = ep.index,
                    origin = %ep.origin,
                    error = %failure,
                    "webhook delivery failed"
                );
                errors.push(format!("endpoint {}: {failure}", ep.index));
            }
        }
        if errors.is_empty() {
            Outcome::Delivered
        } else {
            Outcome::Failed(errors.join("; "))
        }
    }

    async fn post(
        &self,
        ep: &Endpoint,
        e: &OutboxEvent,
        timestamp: u64,
        body: Bytes,
    ) -> Result<(), Failure> {
        let signature = sign(&ep.secret, timestamp, &body);
        let req = Request::post(ep.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .header(EVENT_HEADER, e.event.as_str())
            .header(DELIVERY_HEADER, e.id.as_str())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(body))
            .map_err(|_| Failure::Invalid)?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(err)) if err.is_connect() => return Err(Failure::Connect),
            Ok(Err(_)) => return Err(Failure::Request),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        // The status decides; the body is read (bounded, within the same deadline) only so the
        // connection can go back to the pool. Its content and any error reading it are ignored.
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
        let _ = tokio::time::timeout_at(deadline, body.collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Status(status.as_u16()))
        }
    }

    /// Stores the outcome of an attempt. A store error is logged and the event stays due, so it
    /// is attempted again (a delivered event may thus be sent twice: at-least-once).
    async fn record(&self, store: &dyn ControlStore, e: &OutboxEvent, outcome: Outcome) {
        let now = crate::clock::now_ms();
        let kind = if e.event == mail::MAIL {
            "mail"
        } else {
            "webhook"
        };
        let count = |result: &'static str| {
            if let Some(m) = &self.metrics {
                m.delivery(kind, result);
            }
        };
        let result = match outcome {
            Outcome::Unwanted => store.event_delivered(&e.id, now).await,
            Outcome::Delivered => {
                count("delivered");
                store.event_delivered(&e.id, now).await
            }
            Outcome::Failed(error) => {
                let failures = e.attempts.saturating_add(1);
                count(if failures >= self.max_attempts {
                    "parked"
                } else {
                    "failed"
                });
                let next = if failures >= self.max_attempts {
                    tracing::warn!(
                        event_id = %e.id,
                        event = %e.event,
                        attempts = failures,
                        error = %error,
                        kind,
                        "outbox event parked after its last attempt"
                    );
                    i64::MAX
                } else {
                    let ceiling =
                        backoff_ceiling_ms(self.backoff_base_ms, self.backoff_max_ms, failures);
                    let delay = full_jitter(ceiling, getrandom::u64().unwrap_or(ceiling));
                    now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
                };
                store.event_failed(&e.id, next, &error).await
            }
        };
        if let Err(err) = result {
            tracing::warn!(event_id = %e.id, error = %err, kind, "cannot record delivery outcome");
        }
    }
}

/// Upper bound of the delay after `failures` failed attempts (1-based):
/// `min(max, base · 2^(failures-1))`, saturating.
fn backoff_ceiling_ms(base: u64, max: u64, failures: i64) -> u64 {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 63)).unwrap_or(63);
    base.saturating_mul(1u64 << doublings).min(max)
}

/// A delay uniform in `0..=ceiling` from the random `r` ("full jitter").
fn full_jitter(ceiling: u64, r: u64) -> u64 {
    match ceiling.checked_add(1) {
        Some(span) => r % span,
        None => r,
    }
}

/// Runs the worker until `shutdown` resolves: delivers due events, sleeping `poll_interval_ms`
/// whenever a poll did not fill a whole batch (and queued no mail, which goes out at once).
///
/// Shutdown abandons deliveries in flight; they are retried after the next start (the outbox
/// still has them as due), so stopping never loses an event.
pub async fn run(
    store: Arc<dyn ControlStore>,
    deliverer: Deliverer,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(
        endpoints = deliverer.endpoints.len(),
        "webhook worker started"
    );
    loop {
        // No new pass once shutdown has begun.
        if futures_util::FutureExt::now_or_never(&mut shutdown).is_some() {
            break;
        }
        let mut pass = std::pin::pin!(deliverer.deliver_due(store.as_ref()));
        let result = tokio::select! {
            biased;
            result = &mut pass => result,
            () = &mut shutdown => {
                // Shutting down mid-pass: the attempts under way may record their outcomes
                // (for at most one attempt's time), so that their events are not left claimed
                // until the claim runs out.
                let _ = tokio::time::timeout(deliverer.slowest_attempt(), pass).await;
                break;
            }
        };
        let full = match result {
            Ok(n) => n >= deliverer.batch as usize,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the webhook outbox");
                false
            }
        };
        let queued = deliverer
            .queued_mail
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if !full && !queued {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(deliverer.poll_interval) => {}
            }
        }
    }
    tracing::info!("webhook worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn sign_matches_known_answer() {
        // Python: hmac.new(SECRET, b'1700000000.{"id":"e1"}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign(SECRET, 1_700_000_000, br#"{"id":"e1"}"#),
            "v1=fcadad38dca12940650f9081af7453dbfe592646a13009e74c1041db9ecc7c19"
        );
    }

    #[test]
    fn verify_accepts_only_the_exact_signature() {
        let body = br#"{"id":"e1"}"#;
        let sig = sign(SECRET, 1_700_000_000, body);
        assert!(verify(SECRET, 1_700_000_000, body, &sig));
        assert!(verify(
            SECRET,
            1_700_000_000,
            body,
            &format!("v1=00, {sig}")
        ));
        assert!(
            !verify(SECRET, 1_700_000_001, body, &sig),
            "timestamp is signed"
        );
        assert!(
            !verify(SECRET, 1_700_000_000, b"{}", &sig),
            "body is signed"
        );
        assert!(!verify(
            b"another-secret-another-secret-xx",
            1_700_000_000,
            body,
            &sig
        ));
        assert!(!verify(
            SECRET,
            1_700_000_000,
            body,
            &sig.replace("v1=", "v0=")
        ));
        assert!(!verify(SECRET, 1_700_000_000, body, &sig[..sig.len() - 2]));
        assert!(!verify(SECRET, 1_700_000_000, body, ""));
        assert!(!verify(SECRET, 1_700_000_000, body, "v1=zz"));
    }

    fn endpoint(url: &str, secret: &str) -> EndpointConfig {
        EndpointConfig {
            url: url.into(),
            secret: WebhookSecret::new(secret.into()),
            secret_file: String::new(),
            events: Vec::new(),
            tenant: String::new(),
        }
    }

    fn with(endpoints: Vec<EndpointConfig>) -> WebhookConfig {
        WebhookConfig {
            endpoints,
            ..WebhookConfig::default()
        }
    }

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn default_config_is_valid_and_has_no_endpoints() {
        let c = WebhookConfig::default();
        assert!(c.problems().is_empty());
        assert!(c.endpoints.is_empty());
        assert!(
            with(vec![endpoint("https://hooks.example.com/x", GOOD)])
                .problems()
                .is_empty()
        );
        assert!(
            with(vec![endpoint("http://127.0.0.1:8080", GOOD)])
                .problems()
                .is_empty()
        );
    }

    #[test]
    fn embedded_defaults_match_default_impl() {
        // Once `[webhooks]` is in config/upgate.toml, its values must equal `Default` (the
        // file is the documented default; `Default` is what a missing key means).
        let root: toml::Table = match crate::config::DEFAULT_TOML.parse() {
            Ok(t) => t,
            Err(e) => panic!("embedded defaults: {e}"),
        };
        let Some(section) = root.get("webhooks").cloned() else {
            return;
        };
        let file: WebhookConfig = match section.try_into() {
            Ok(c) => c,
            Err(e) => panic!("[webhooks] in config/upgate.toml: {e}"),
        };
        let d = WebhookConfig::default();
        assert!(file.endpoints.is_empty());
        assert_eq!(
            (
                file.timeout_ms,
                file.max_attempts,
                file.backoff_base_ms,
                file.backoff_max_ms
            ),
            (
                d.timeout_ms,
                d.max_attempts,
                d.backoff_base_ms,
                d.backoff_max_ms
            )
        );
        assert_eq!(
            (file.poll_interval_ms, file.batch, file.concurrency),
            (d.poll_interval_ms, d.batch, d.concurrency)
        );
    }

    #[test]
    fn problems_lists_every_mistake() {
        let mut c = with(vec![
            endpoint("ftp://example.com/", GOOD),
            endpoint("https://user:pw@example.com/", "short"),
            endpoint("/relative", ""),
            EndpointConfig {
                events: vec!["upload.completed".into(), "upload.complete".into()],
                secret_file: "/nonexistent/secret".into(),
                ..endpoint("https://example.com", GOOD)
            },
        ]);
        c.max_attempts = 0;
        c.backoff_max_ms = 10;
        c.batch = 0;
        let p = c.problems();
        let has = |s: &str| p.iter().any(|x| x.contains(s));
        assert!(has("webhooks.max_attempts"), "{p:?}");
        assert!(has("webhooks.backoff_max_ms"), "{p:?}");
        assert!(has("webhooks.batch"), "{p:?}");
        assert!(
            has("endpoints[0].url: must start with http:// or https://"),
            "{p:?}"
        );
        assert!(
            has("endpoints[1].url: must not contain credentials"),
            "{p:?}"
        );
        assert!(
            has("endpoints[1].secret: the secret must be at least 32 bytes"),
            "{p:?}"
        );
        assert!(has("endpoints[2].url"), "{p:?}");
        assert!(
            has("endpoints[2].secret: one of secret and secret_file is required"),
            "{p:?}"
        );
        assert!(
            has("endpoints[3].secret: set secret or secret_file, not both"),
            "{p:?}"
        );
        assert!(
            has("endpoints[3].events: unknown event \"upload.complete\""),
            "{p:?}"
        );
        assert_eq!(p.len(), 10, "{p:?}");
        assert!(
            !p.iter().any(|x| x.contains("pw@")),
            "URLs are not echoed: {p:?}"
        );
    }

    #[test]
    fn secret_file_first_line_is_the_secret() {
        let dir = std::env::temp_dir().join(format!("upgate-wh-{}", crate::id::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, format!("  {GOOD}  \nignored\n")).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "tooshort\n").unwrap();
        let from_file = |p: &std::path::Path| EndpointConfig {
            secret: WebhookSecret::default(),
            secret_file: p.display().to_string(),
            ..endpoint("https://example.com", "")
        };
        let ok = with(vec![from_file(&good)]);
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());
        let resolved = ok.resolve().unwrap();
        assert_eq!(resolved[0].secret.as_slice(), GOOD.as_bytes());
        let p = with(vec![from_file(&short)]).problems();
        assert!(
            p[0].contains("secret_file: the secret must be at least 32 bytes"),
            "{p:?}"
        );
        let p = with(vec![from_file(&dir.join("missing"))]).problems();
        assert!(p[0].contains("cannot read"), "{p:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn toml_section_parses_and_rejects_unknown_keys() {
        let c: WebhookConfig = toml::from_str(
            r#"
            timeout_ms = 2000
            [[endpoints]]
            url = "https://hooks.example.com/upgate/s3cr3t-path?token=abc"
            secret = "0123456789abcdef0123456789abcdef"
            events = ["file.deleted"]
            tenant = "t1"
            "#,
        )
        .unwrap();
        assert_eq!(c.timeout_ms, 2000);
        assert_eq!(c.max_attempts, 12, "missing keys take the default");
        assert!(c.problems().is_empty());
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("0123456789abcdef"),
            "secret leaked: {debug}"
        );
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("token"),
            "{debug}"
        );
        assert!(debug.contains("https://hooks.example.com"), "{debug}");
        let d = Deliverer::new(&c).unwrap();
        let debug = format!("{d:?}");
        assert!(
            !debug.contains("0123456789abcdef") && !debug.contains("s3cr3t"),
            "{debug}"
        );

        assert!(toml::from_str::<WebhookConfig>("timeout = 5").is_err());
        assert!(
            toml::from_str::<WebhookConfig>("[[endpoints]]\nurl = \"https://x\"\nsecrets = \"\"")
                .is_err()
        );
    }

    #[test]
    fn endpoint_filters_by_event_and_tenant() {
        let c = with(vec![
            endpoint("https://a.example", GOOD),
            EndpointConfig {
                events: vec![FILE_DELETED.into()],
                tenant: "t1".into(),
                ..endpoint("https://b.example", GOOD)
            },
        ]);
        let eps = c.resolve().unwrap();
        let ev = |event: &str, tenant: &str| OutboxEvent {
            id: "e".into(),
            tenant_id: tenant.into(),
            event: event.into(),
            payload: "{}".into(),
            created_at_ms: 0,
            attempts: 0,
        };
        assert!(eps[0].wants(&ev(UPLOAD_COMPLETED, "t2")));
        assert!(eps[1].wants(&ev(FILE_DELETED, "t1")));
        assert!(!eps[1].wants(&ev(FILE_DELETED, "t2")));
        assert!(!eps[1].wants(&ev(UPLOAD_FAILED, "t1")));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff_ceiling_ms(1000, 600_000, 1), 1000);
        assert_eq!(backoff_ceiling_ms(1000, 600_000, 2), 2000);
        assert_eq!(backoff_ceiling_ms(1000, 600_000, 5), 16_000);
        assert_eq!(backoff_ceiling_ms(1000, 600_000, 10), 512_000);
        assert_eq!(backoff_ceiling_ms(1000, 600_000, 11), 600_000);
        assert_eq!(backoff_ceiling_ms(1000, 600_000, 1_000), 600_000);
        assert_eq!(backoff_ceiling_ms(1000, u64::MAX, i64::MAX), u64::MAX);
        assert_eq!(backoff_ceiling_ms(1000, 600_000, 0), 1000);
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_ceiling() {
        for r in [0, 1, 999, 1000, 1001, u64::MAX] {
            assert!(full_jitter(1000, r) <= 1000);
        }
        assert_eq!(full_jitter(1000, 1000), 1000);
        assert_eq!(full_jitter(0, 12345), 0);
        assert_eq!(full_jitter(u64::MAX, 7), 7);
        // Spread: many draws cover both halves of the range.
        let draws: Vec<u64> = (0..200)
            .map(|_| full_jitter(1000, getrandom::u64().unwrap()))
            .collect();
        assert!(draws.iter().any(|&d| d < 500) && draws.iter().any(|&d| d >= 500));
    }

    #[test]
    fn failure_text_holds_no_detail_beyond_its_kind() {
        assert_eq!(Failure::Status(503).to_string(), "status 503");
        assert_eq!(Failure::Timeout.to_string(), "timeout");
        assert_eq!(Failure::Connect.to_string(), "connect failed");
    }
}
