//! The projector's metrics: events applied by type, batch size and latency, consumer lag and
//! replay progress. Labels are fixed and low-cardinality (event types, topic names), except
//! the per-integration gauges of [`integrations`], read from the read model at scrape time.

mod integrations;

use std::time::Duration;

use dealflow_shared::metrics::Metrics;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec};

use crate::apply::batch::BatchOutcome;
use crate::store::{Store, StoreError};
use integrations::IntegrationGauges;

/// Handles to every projector metric (cheap to clone).
#[derive(Debug, Clone)]
pub struct ProjectorMetrics {
    events: IntCounterVec,
    records: IntCounterVec,
    batch_size: Histogram,
    batch_latency: HistogramVec,
    lag: IntGaugeVec,
    replay: IntGaugeVec,
    integrations: IntegrationGauges,
}

impl ProjectorMetrics {
    /// Registers the metrics in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "projector_batch_records",
                "Records per batch applied in one transaction.",
            )
            .buckets(vec![
                1.0, 5.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
            ]),
        )
        .expect("valid histogram");
        metrics
            .registry()
            .register(Box::new(batch_size.clone()))
            .expect("projector_batch_records registered once");
        Self {
            events: metrics.counter(
                "projector_events_applied_total",
                "Events applied to the read model, by type.",
                &["type"],
            ),
            records: metrics.counter(
                "projector_records_total",
                "Records read, by what happened to them (applied, already_applied, invalid, \
                 ignored_removed).",
                &["result"],
            ),
            batch_size,
            batch_latency: metrics.latency(
                "projector_batch_duration_seconds",
                "Time to apply one batch and commit it, by result.",
                &["result"],
            ),
            lag: metrics.gauge(
                "projector_consumer_lag",
                "Records on the bus not yet applied to the read model, by topic.",
                &["topic"],
            ),
            replay: {
                let replay = metrics.gauge(
                    "projector_replay_records",
                    "Replay progress: records to replay (target) and replayed so far (done).",
                    &["kind"],
                );
                // Both series exist (at 0) before any replay, so dashboards show "none yet".
                for kind in ["done", "target"] {
                    replay.with_label_values(&[kind]);
                }
                replay
            },
            integrations: IntegrationGauges::new(metrics),
        }
    }

    /// Re-reads the per-integration gauges (active, health, last webhook, last
    /// reconciliation) from the read model; called before each scrape renders.
    pub async fn refresh_integrations(&self, store: &Store) -> Result<(), StoreError> {
        self.integrations.refresh(store).await
    }

    /// A batch was applied.
    pub(crate) fn batch(&self, records: usize, outcome: &BatchOutcome, took: Duration) {
        self.batch_size.observe(records as f64);
        self.batch_latency
            .with_label_values(&["ok"])
            .observe(took.as_secs_f64());
        for (kind, n) in &outcome.applied.events {
            self.events.with_label_values(&[kind]).inc_by(*n);
        }
        let count = |result: &str, n: u64| self.records.with_label_values(&[result]).inc_by(n);
        count("applied", outcome.applied.total());
        count("already_applied", outcome.already_applied);
        count("invalid", outcome.invalid);
        count("ignored_removed", outcome.applied.ignored_removed);
    }

    /// A batch failed (and will be retried or stop the consumer).
    pub(crate) fn batch_failed(&self, took: Duration) {
        self.batch_latency
            .with_label_values(&["error"])
            .observe(took.as_secs_f64());
    }

    /// The lag of one topic.
    pub(crate) fn set_lag(&self, topic: &str, lag: i64) {
        self.lag.with_label_values(&[topic]).set(lag);
    }

    /// Replay progress.
    pub(crate) fn set_replay(&self, done: u64, target: u64) {
        let gauge = |kind: &str, n: u64| {
            self.replay
                .with_label_values(&[kind])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        gauge("done", done);
        gauge("target", target);
    }
}
