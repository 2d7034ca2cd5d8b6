//! A Prometheus registry owned by the service (never the global default), and helpers that
//! create metrics with fixed, low-cardinality labels (never an order id or a token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The metrics registry of one process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Counters that several components of one process share (the auth failures of ingest
    /// and the projector in the all-in-one), by name.
    shared: Arc<Mutex<HashMap<String, IntCounterVec>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency buckets in seconds, from 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Every metric is named `dealflow_…`.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("dealflow".to_string()), None)
            .expect("the static prefix is a valid metric name");
        Self {
            registry,
            shared: Arc::default(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A counter family; registering the same name twice is a programming error and panics.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
        self.registry
            .register(Box::new(metric.clone()))
            .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
        metric
    }

    /// A counter family several components of one process count into: the first call
    /// registers it, later ones with the same name get the same counter.
    pub fn shared_counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let mut shared = self.shared.lock().expect("shared metrics lock");
        shared
            .entry(name.to_string())
            .or_insert_with(|| self.counter(name, help, labels))
            .clone()
    }

    /// A gauge family.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
        self.registry
            .register(Box::new(metric.clone()))
            .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
        metric
    }

    /// A histogram family with [`LATENCY_BUCKETS`].
    pub fn latency(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        let metric = HistogramVec::new(opts, labels).expect("valid histogram");
        self.registry
            .register(Box::new(metric.clone()))
            .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
        metric
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics_with_labels() {
        let metrics = Metrics::new();
        let webhooks = metrics.counter("webhooks_total", "Webhooks by result.", &["result"]);
        webhooks.with_label_values(&["accepted"]).inc();
        let latency = metrics.latency("http_request_seconds", "Latency.", &["route"]);
        latency
            .with_label_values(&["/hooks/retailcrm/{token}"])
            .observe(0.002);
        let text = metrics.render();
        assert!(
            text.contains("dealflow_webhooks_total{result=\"accepted\"} 1"),
            "{text}"
        );
        assert!(text.contains("dealflow_http_request_seconds_bucket{route=\"/hooks/retailcrm/{token}\",le=\"0.0025\"} 1"), "{text}");
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_registered_twice_is_a_bug() {
        let metrics = Metrics::new();
        metrics.counter("x_total", "x", &[]);
        metrics.counter("x_total", "x", &[]);
    }
}
