//! ingest's own metrics: webhooks by result, bus publish latency and failures, and how long
//! settings writes waited for the read side.
//!
//! HTTP latency by matched route comes from [`dealflow_shared::http::HttpMetrics`].

use std::time::Duration;

use dealflow_shared::metrics::Metrics;
use prometheus::{HistogramVec, IntCounterVec};

/// Counters and histograms of one ingest.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    webhooks: IntCounterVec,
    publish_latency: HistogramVec,
    publish_failures: IntCounterVec,
    read_side_wait: HistogramVec,
    reseal_passes: IntCounterVec,
}

/// How a webhook ended; the label of `dealflow_webhooks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    Accepted,
    InvalidOrderId,
    UnknownIntegration,
    IntegrationInactive,
    TooLarge,
    BrokerUnavailable,
}

impl WebhookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Accepted => "accepted",
            WebhookResult::InvalidOrderId => "invalid_order_id",
            WebhookResult::UnknownIntegration => "unknown_integration",
            WebhookResult::IntegrationInactive => "integration_inactive",
            WebhookResult::TooLarge => "too_large",
            WebhookResult::BrokerUnavailable => "broker_unavailable",
        }
    }
}

impl IngestMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            webhooks: metrics.counter(
                "webhooks_total",
                "RetailCRM webhooks by result.",
                &["result"],
            ),
            publish_latency: metrics.latency(
                "bus_publish_duration_seconds",
                "Time until the event bus acknowledged a publish, by topic.",
                &["topic"],
            ),
            publish_failures: metrics.counter(
                "bus_publish_failures_total",
                "Publishes the event bus did not acknowledge, by topic.",
                &["topic"],
            ),
            read_side_wait: metrics.latency(
                "read_side_wait_seconds",
                "Time a settings write waited for the read side to show it, by outcome \
                 (visible, or behind: answered 503 read_model_behind).",
                &["outcome"],
            ),
            reseal_passes: metrics.counter(
                "key_reseal_passes_total",
                "Start-up passes that sealed API keys of the previous secret key again, by \
                 whether any key was re-sealed (the pass runs once per start).",
                &["resealed"],
            ),
        }
    }

    pub fn webhook(&self, result: WebhookResult) {
        self.webhooks.with_label_values(&[result.as_str()]).inc();
    }

    pub fn published(&self, topic: &str, took: Duration) {
        self.publish_latency
            .with_label_values(&[topic])
            .observe(took.as_secs_f64());
    }

    /// Creates the per-topic series at 0 for the topics ingest publishes to, so the alert
    /// rules' `increase()` sees the first failure instead of a series appearing at 1.
    pub fn expect_topics(&self, topics: &[String]) {
        for topic in topics {
            self.publish_failures.with_label_values(&[topic]);
        }
    }

    pub fn publish_failed(&self, topic: &str) {
        self.publish_failures.with_label_values(&[topic]).inc();
    }

    /// The start's re-seal pass ended, having re-sealed `count` keys.
    pub fn reseal_pass(&self, count: usize) {
        let resealed = if count > 0 { "some" } else { "none" };
        self.reseal_passes.with_label_values(&[resealed]).inc();
    }

    /// One read-your-writes wait: `visible` in time, or not.
    pub fn read_side_waited(&self, visible: bool, took: Duration) {
        let outcome = if visible { "visible" } else { "behind" };
        self.read_side_wait
            .with_label_values(&[outcome])
            .observe(took.as_secs_f64());
    }
}
