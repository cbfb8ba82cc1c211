//! Prometheus metrics as both services keep them: a registry per service (not the process-wide
//! default: a test or `rix demo` runs several nodes and a gateway in one process, and each
//! counts only its own), metrics made and registered in one step, and the text exposition
//! `/metrics` answers with.
//!
//! What it may not touch: what is counted, and who may read it. Each service names and
//! increments its own metrics, and decides who its `/metrics` answers.

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

/// Registers `metric` (as made by `IntCounter::new`, `IntCounterVec::new`…) in `registry` and
/// returns it for the caller to keep.
///
/// # Panics
/// On a name or label Prometheus refuses, or a name registered twice: both are programming
/// errors, caught by the first test that builds the service.
pub fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric name, help and labels");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric registered once");
    metric
}

/// Every metric of `registry` in the Prometheus text format (version 0.0.4).
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding of registered metrics");
    String::from_utf8(out).expect("Prometheus text is UTF-8")
}

#[cfg(test)]
mod tests {
    use prometheus::{IntCounter, IntCounterVec, Opts};

    use super::*;

    #[test]
    fn a_registered_metric_is_rendered_with_its_help_and_labels() {
        let registry = Registry::new();
        let plain = registered(&registry, IntCounter::new("rix_test_total", "Things."));
        let by_kind = registered(
            &registry,
            IntCounterVec::new(Opts::new("rix_test_kinds_total", "By kind."), &["kind"]),
        );
        plain.inc();
        by_kind.with_label_values(&["achievement"]).inc_by(2);
        let text = render(&registry);
        assert!(text.contains("# HELP rix_test_total Things.\n"), "{text}");
        assert!(text.contains("rix_test_total 1\n"), "{text}");
        assert!(
            text.contains("rix_test_kinds_total{kind=\"achievement\"} 2\n"),
            "{text}"
        );
    }
}
