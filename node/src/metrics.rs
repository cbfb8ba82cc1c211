//! Prometheus metrics of the node (`GET /metrics`), named `rix_node_<what>_<unit>`.
//!
//! One registry per node, not the process-wide default: a test or `rix demo` runs several nodes
//! in one process, and each must count only its own.
//!
//! What it may not touch: anything it counts. It holds the counters and renders them; the
//! handlers and the publisher that do the work increment them.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use rix_runtime::metrics::registered;

/// The node's counters and gauges.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Records submitted (new records and revisions), by kind.
    pub submissions: IntCounterVec,
    /// Versions approved, by kind.
    pub approvals: IntCounterVec,
    /// Items of import requests, by kind and outcome (`accepted`, `duplicate`, `refused`).
    pub import_items: IntCounterVec,
    /// Versions rejected, by kind.
    pub rejections: IntCounterVec,
    /// Records withdrawn, by kind.
    pub withdrawals: IntCounterVec,
    /// Batches sealed and signed.
    pub batches_sealed: IntCounter,
    /// Batches the broker confirmed.
    pub batches_published: IntCounter,
    /// Entries in confirmed batches.
    pub entries_published: IntCounter,
    /// Failed publish attempts, by reason (`connect`, `publish`, `nack`, `seal`).
    pub publish_errors: IntCounterVec,
    /// Log entries not yet confirmed by the broker (refreshed at each scrape).
    pub outbox_depth: IntGauge,
    /// 1 while a broker connection is up (0 without a broker).
    pub broker_connected: IntGauge,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let counter = |name: &str, help: &str| registered(&registry, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| registered(&registry, IntGauge::new(name, help));
        Metrics {
            submissions: counter_vec(
                "rix_node_submissions_total",
                "Record versions submitted (new records and revisions).",
                &["kind"],
            ),
            approvals: counter_vec("rix_node_approvals_total", "Versions approved.", &["kind"]),
            import_items: counter_vec(
                "rix_node_import_items_total",
                "Items of import requests: accepted (registered), duplicate (key already \
                 imported, nothing changed) or refused.",
                &["kind", "outcome"],
            ),
            rejections: counter_vec("rix_node_rejections_total", "Versions rejected.", &["kind"]),
            withdrawals: counter_vec(
                "rix_node_withdrawals_total",
                "Records withdrawn.",
                &["kind"],
            ),
            batches_sealed: counter(
                "rix_node_batches_sealed_total",
                "Batches sealed and signed.",
            ),
            batches_published: counter(
                "rix_node_batches_published_total",
                "Batches confirmed by the broker (or sealed, without a broker).",
            ),
            entries_published: counter(
                "rix_node_entries_published_total",
                "Log entries in published batches.",
            ),
            publish_errors: counter_vec(
                "rix_node_publish_errors_total",
                "Failed publish attempts; each is retried.",
                &["reason"],
            ),
            outbox_depth: gauge(
                "rix_node_outbox_depth_entries",
                "Log entries not yet confirmed by the broker.",
            ),
            broker_connected: gauge(
                "rix_node_broker_connected",
                "1 while connected to the broker.",
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        rix_runtime::metrics::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
