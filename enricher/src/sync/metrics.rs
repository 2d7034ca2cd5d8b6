//! Metrics of reconciliation and historical loads.
//!
//! Load progress is aggregated over integrations (label `kind` = backfill / resync only):
//! a label per integration id would grow the series with every account ever connected and
//! never shrink; an integration's own progress is in its sync state (integration JSON and
//! page). Workers report deltas, so the gauges are the sum over running loads.

use dealflow_shared::metrics::Metrics;
use prometheus::{IntCounterVec, IntGaugeVec};

/// Handles to the sync metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct SyncMetrics {
    orders_done: IntGaugeVec,
    orders_total: IntGaugeVec,
    running: IntGaugeVec,
    pages: IntCounterVec,
    reconciliations: IntCounterVec,
    history_entries: IntCounterVec,
}

impl SyncMetrics {
    /// Registers the sync metrics in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            orders_done: metrics.gauge(
                "backfill_orders_done",
                "Orders emitted by the backfills / re-syncs that are running, summed over integrations.",
                &["kind"],
            ),
            orders_total: metrics.gauge(
                "backfill_orders_total",
                "Orders in the windows of the backfills / re-syncs that are running, summed over integrations.",
                &["kind"],
            ),
            running: metrics.gauge(
                "backfill_running",
                "Backfills / re-syncs started and not finished.",
                &["kind"],
            ),
            pages: metrics.counter(
                "backfill_pages_total",
                "Pages of 100 orders read by backfills / re-syncs, by outcome (ok, unreadable).",
                &["kind", "outcome"],
            ),
            reconciliations: metrics.counter(
                "reconciliations_total",
                "orders/history reconciliations read to their end, or cut short to let live work in.",
                &["outcome"],
            ),
            history_entries: metrics.counter(
                "history_entries_total",
                "orders/history records read, by result (changed, deleted, dead_lettered).",
                &["result"],
            ),
        };
        // The progress series exist (at 0) before the first load, so the dashboard shows
        // "nothing running" rather than "no data".
        for kind in ["backfill", "resync"] {
            this.orders_done.with_label_values(&[kind]);
            this.orders_total.with_label_values(&[kind]);
            this.running.with_label_values(&[kind]);
        }
        this
    }

    /// A load's progress changed by these deltas.
    pub fn load_progress(&self, kind: &str, done: i64, total: i64, running: i64) {
        self.orders_done.with_label_values(&[kind]).add(done);
        self.orders_total.with_label_values(&[kind]).add(total);
        self.running.with_label_values(&[kind]).add(running);
    }

    /// One load page read.
    pub fn load_page(&self, kind: &str, outcome: &str) {
        self.pages.with_label_values(&[kind, outcome]).inc();
    }

    /// A reconciliation ended (`complete`) or yielded to live work (`yielded`).
    pub fn reconciled(&self, outcome: &str) {
        self.reconciliations.with_label_values(&[outcome]).inc();
    }

    /// History records read.
    pub fn history_entries(&self, result: &str, count: usize) {
        self.history_entries
            .with_label_values(&[result])
            .inc_by(count as u64);
    }
}
