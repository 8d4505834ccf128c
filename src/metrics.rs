//! Prometheus metrics, served on the admin listener (`/metrics`), never on the public one.
//!
//! Labels are bounded sets chosen here (operation names, status codes, rejection reasons,
//! dependency names): no key, principal or client address ever becomes a label, so cardinality
//! stays fixed and nothing identifying leaks into monitoring.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Error;
use crate::ratelimit::{Dimension, RouteClass};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpStatus {
    op: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    class: &'static str,
    dimension: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepLabel {
    dependency: &'static str,
}

/// All metrics of one gateway process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<OpStatus, Counter>,
    duration: Family<OpLabel, Histogram>,
    bytes_in: Counter,
    bytes_out: Counter,
    upload_size: Histogram,
    mint_batch: Histogram,
    pending_batch: Histogram,
    commit_batch: Histogram,
    upload_duration: Histogram,
    rejections: Family<ReasonLabel, Counter>,
    inflight_uploads: Gauge,
    connections: Gauge,
    backend_errors: Family<OpLabel, Counter>,
    backend_latency: Family<OpLabel, Histogram>,
    dependency_up: Family<DepLabel, Gauge>,
    rate_limited: Family<LimitLabel, Counter>,
    scans: Family<VerdictLabel, Counter>,
    content: Family<VerdictLabel, Counter>,
    closed: Family<ReasonLabel, Counter>,
    deliveries: Family<DeliveryLabel, Counter>,
    reconciled: Family<ReasonLabel, Counter>,
    transitions: Family<ClassLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    storage_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabel {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("upgate");
        let requests = Family::<OpStatus, Counter>::default();
        registry.register(
            "requests",
            "Requests by S3 operation and HTTP status",
            requests.clone(),
        );
        let duration = Family::<OpLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Request duration by S3 operation",
            duration.clone(),
        );
        let bytes_in = Counter::default();
        registry.register(
            "received_bytes",
            "Object bytes accepted (decoded, committed uploads)",
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register(
            "sent_bytes",
            "Object bytes served (content length of GET responses)",
            bytes_out.clone(),
        );
        let upload_size = Histogram::new(exponential_buckets(1024.0, 4.0, 12));
        registry.register(
            "upload_size_bytes",
            "Size of committed uploads",
            upload_size.clone(),
        );
        let mint_batch = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "mint_batch_size",
            "Links committed by one transaction of the mint group commit",
            mint_batch.clone(),
        );
        let pending_batch = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "pending_batch_size",
            "Pending upload records inserted by one transaction of the upload-start group commit",
            pending_batch.clone(),
        );
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "commit_batch_size",
            "Uploads committed by one transaction of the single-writer (SQLite) commit group",
            commit_batch.clone(),
        );
        let upload_duration = Histogram::new(exponential_buckets(0.005, 2.0, 16));
        registry.register(
            "upload_duration_seconds",
            "Duration of committed uploads, first byte of request to commit",
            upload_duration.clone(),
        );
        let rejections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "rejections",
            "Rejected requests by reason",
            rejections.clone(),
        );
        let inflight_uploads = Gauge::default();
        registry.register(
            "inflight_uploads",
            "Uploads currently streaming",
            inflight_uploads.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            connections.clone(),
        );
        let backend_errors = Family::<OpLabel, Counter>::default();
        registry.register(
            "backend_errors",
            "Object backend errors by operation",
            backend_errors.clone(),
        );
        let backend_latency = Family::<OpLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "backend_latency_seconds",
            "Object backend call latency by operation",
            backend_latency.clone(),
        );
        let dependency_up = Family::<DepLabel, Gauge>::default();
        registry.register(
            "dependency_up",
            "1 if the dependency answered its last readiness probe",
            dependency_up.clone(),
        );
        let rate_limited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by route class and limit dimension",
            rate_limited.clone(),
        );
        let scans = Family::<VerdictLabel, Counter>::default();
        registry.register(
            "malware_scans",
            "Malware scans by verdict (clean, infected, error)",
            scans.clone(),
        );
        let content = Family::<VerdictLabel, Counter>::default();
        registry.register(
            "content_verdicts",
            "Content checks by outcome: refused for a reason (the reason), or accepted and \
             stored as uploaded (clean), disarmed or stripped of metadata",
            content.clone(),
        );
        let closed = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_closed_by_server",
            "Connections the server closed on its own, by reason: silent (no request within the \
             header timeout), idle (no request in flight for the idle timeout), shed (closed to \
             make room when the connection table was nearly full)",
            closed.clone(),
        );
        let deliveries = Family::<DeliveryLabel, Counter>::default();
        registry.register(
            "outbox_deliveries",
            "Outbox deliveries by kind (webhook, mail) and outcome: delivered, failed (retried \
             later) or parked (its last attempt failed)",
            deliveries.clone(),
        );
        let reconciled = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "reconciled_blobs",
            "What reconciling stored bytes with records found, by kind: orphan_removed (bytes no \
             record refers to, removed), missing (a committed record whose bytes are gone)",
            reconciled.clone(),
        );
        let transitions = Family::<ClassLabel, Counter>::default();
        registry.register(
            "storage_transitions",
            "Objects the sweeper moved to a colder storage class, by the class they moved to",
            transitions.clone(),
        );
        Self {
            registry,
            reconciled,
            transitions,
            deliveries,
            scans,
            content,
            closed,
            requests,
            duration,
            bytes_in,
            bytes_out,
            upload_size,
            mint_batch,
            pending_batch,
            commit_batch,
            upload_duration,
            rejections,
            inflight_uploads,
            connections,
            backend_errors,
            backend_latency,
            dependency_up,
            rate_limited,
        }
    }

    /// Records the outcome of one outbox delivery attempt.
    pub fn delivery(&self, kind: &'static str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabel { kind, outcome })
            .inc();
    }

    /// Records a finished request.
    pub fn request(&self, op: &'static str, status: u16, seconds: f64) {
        self.requests.get_or_create(&OpStatus { op, status }).inc();
        self.duration
            .get_or_create(&OpLabel { op })
            .observe(seconds);
    }

    /// Records a malware scan's verdict.
    pub fn scan(&self, verdict: &'static str) {
        self.scans.get_or_create(&VerdictLabel { verdict }).inc();
    }

    /// Records a content verdict: `clean`, `disarmed`, `stripped`, or a refusal's reason.
    pub fn content_verdict(&self, verdict: &'static str) {
        self.content.get_or_create(&VerdictLabel { verdict }).inc();
    }

    /// Records what a reconciliation found: `orphan_removed` or `missing`, `n` times.
    pub fn reconciled(&self, reason: &'static str, n: u64) {
        self.reconciled
            .get_or_create(&ReasonLabel { reason })
            .inc_by(n);
    }

    /// Records one transaction of the mint group commit, of `n` links.
    pub fn mint_batch(&self, n: usize) {
        self.mint_batch.observe(n as f64);
    }

    /// Records one transaction of the upload-start group commit, of `n` pending records.
    pub fn pending_batch(&self, n: usize) {
        self.pending_batch.observe(n as f64);
    }

    /// Records one transaction of the single-writer commit group, of `n` uploads.
    pub fn commit_batch(&self, n: usize) {
        self.commit_batch.observe(n as f64);
    }

    /// Records an object moved to storage class `storage_class`.
    pub fn transitioned(&self, storage_class: &'static str) {
        self.transitions
            .get_or_create(&ClassLabel { storage_class })
            .inc();
    }

    /// Records a connection the server closed: `silent`, `idle` or `shed`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.closed.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Records a rejected request.
    pub fn rejection(&self, e: &Error) {
        self.rejections
            .get_or_create(&ReasonLabel { reason: e.reason() })
            .inc();
    }

    /// Records a committed upload.
    pub fn upload_committed(&self, bytes: u64, seconds: f64) {
        self.bytes_in.inc_by(bytes);
        self.upload_size.observe(bytes as f64);
        self.upload_duration.observe(seconds);
    }

    /// Records bytes served.
    pub fn sent(&self, bytes: u64) {
        self.bytes_out.inc_by(bytes);
    }

    /// Records a backend call.
    pub fn backend(&self, op: &'static str, seconds: f64, ok: bool) {
        self.backend_latency
            .get_or_create(&OpLabel { op })
            .observe(seconds);
        if !ok {
            self.backend_errors.get_or_create(&OpLabel { op }).inc();
        }
    }

    /// Sets a dependency's health.
    pub fn dependency(&self, dependency: &'static str, up: bool) {
        self.dependency_up
            .get_or_create(&DepLabel { dependency })
            .set(i64::from(up));
    }

    /// Records a request refused by the rate limiter (labels: the 5 classes x 3 dimensions).
    pub fn rate_limited(&self, class: RouteClass, dimension: Dimension) {
        self.rate_limited
            .get_or_create(&LimitLabel {
                class: class.as_str(),
                dimension: dimension.as_str(),
            })
            .inc();
    }

    /// A guard counting one in-flight upload until dropped.
    pub fn upload_started(&self) -> GaugeGuard {
        GaugeGuard::new(&self.inflight_uploads)
    }

    /// A guard counting one open connection until dropped.
    pub fn connection_opened(&self) -> GaugeGuard {
        GaugeGuard::new(&self.connections)
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Decrements its gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(g: &Gauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_exactly() {
        let m = Metrics::new();
        m.request("PutObject", 200, 0.01);
        m.request("PutObject", 200, 0.02);
        m.request("GetObject", 404, 0.001);
        m.rejection(&Error::EntityTooLarge);
        {
            let _g = m.upload_started();
            assert!(m.encode().contains("upgate_inflight_uploads 1"));
        }
        let text = m.encode();
        assert!(
            text.contains("upgate_requests_total{op=\"PutObject\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("upgate_requests_total{op=\"GetObject\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("upgate_rejections_total{reason=\"too_large\"} 1"),
            "{text}"
        );
        assert!(text.contains("upgate_inflight_uploads 0"), "{text}");
    }
}
