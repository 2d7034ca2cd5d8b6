//! The enricher's metrics, all in the process's [`Metrics`] registry (so an all-in-one
//! process serves them from its one `/metrics`). Labels are low-cardinality by construction:
//! endpoint templates, outcome names, event types, stages. Never an order id, an account or a
//! key.

use std::time::Duration;

use dealflow_shared::events::EventType;
use dealflow_shared::metrics::{LATENCY_BUCKETS, Metrics};

use crate::context::{STAGE_DECODE, STAGE_FETCH, STAGE_HISTORY, STAGE_LOAD, STAGE_MAP};
use crate::sync::metrics::SyncMetrics;
use prometheus::{
    Counter, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts,
};

/// Buckets of the orders-per-call histogram (a call carries 1 to 100 ids).
const ORDERS_PER_CALL_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0];

/// Handles to every enricher metric; cheap to clone.
#[derive(Debug, Clone)]
pub struct EnricherMetrics {
    crm_calls: IntCounterVec,
    crm_call_seconds: HistogramVec,
    budget_waits: IntCounter,
    budget_wait_seconds: Counter,
    orders_fetched: IntCounterVec,
    orders_per_call: Histogram,
    events: IntCounterVec,
    dead_letters: IntCounterVec,
    health_changes: IntCounterVec,
    skipped: IntCounterVec,
    requeued: IntCounter,
    stage_seconds: HistogramVec,
    accounts: IntGaugeVec,
    waiting_orders: IntGauge,
    unfinished_records: IntGauge,
    consumer_lag: IntGauge,
    assigned_partitions: IntGauge,
    sync: SyncMetrics,
}

fn register<M: prometheus::core::Collector + Clone + 'static>(metrics: &Metrics, metric: M) -> M {
    metrics
        .registry()
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("enricher metric registered twice: {e}"));
    metric
}

impl EnricherMetrics {
    /// Registers every metric in `metrics` (once per registry).
    pub fn new(metrics: &Metrics) -> Self {
        let orders_per_call = Histogram::with_opts(
            HistogramOpts::new(
                "enricher_orders_per_call",
                "Order ids asked for in one GET /api/v5/orders call.",
            )
            .buckets(ORDERS_PER_CALL_BUCKETS.to_vec()),
        )
        .expect("valid histogram");
        let budget_wait_seconds = Counter::with_opts(Opts::new(
            "enricher_crm_budget_wait_seconds_total",
            "Time RetailCRM calls waited for their account's request budget.",
        ))
        .expect("valid counter");
        let budget_waits = IntCounter::with_opts(Opts::new(
            "enricher_crm_budget_waits_total",
            "RetailCRM requests that had to wait for their account's request budget.",
        ))
        .expect("valid counter");
        let requeued = IntCounter::with_opts(Opts::new(
            "enricher_records_requeued_total",
            "Records of stalled accounts appended again to their partition.",
        ))
        .expect("valid counter");
        let gauge = |name: &str, help: &str| {
            register(
                metrics,
                IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge"),
            )
        };
        Self {
            crm_calls: metrics.counter(
                "enricher_crm_calls_total",
                "RetailCRM calls by endpoint and outcome (after the client's retries).",
                &["endpoint", "status"],
            ),
            crm_call_seconds: metrics.latency(
                "enricher_crm_call_duration_seconds",
                "Duration of RetailCRM calls, budget waits and retries included.",
                &["endpoint"],
            ),
            budget_waits: register(metrics, budget_waits),
            budget_wait_seconds: register(metrics, budget_wait_seconds),
            orders_fetched: metrics.counter(
                "enricher_orders_fetched_total",
                "Orders fetched from RetailCRM, by result (found, deleted).",
                &["result"],
            ),
            orders_per_call: register(metrics, orders_per_call),
            events: metrics.counter(
                "enricher_events_emitted_total",
                "Events the enricher published, by type.",
                &["type"],
            ),
            health_changes: metrics.counter(
                "enricher_health_changes_total",
                "Integration health changes published, by the new status.",
                &["status"],
            ),
            dead_letters: {
                let dead_letters = metrics.counter(
                    "enricher_dead_letters_total",
                    "Records sent to the dead-letter topic, by stage.",
                    &["stage"],
                );
                // Every stage's series exists from the start (at 0), so `increase()` in the
                // alert rules sees the first dead letter instead of a series appearing at 1.
                for stage in [
                    STAGE_DECODE,
                    STAGE_FETCH,
                    STAGE_MAP,
                    STAGE_HISTORY,
                    STAGE_LOAD,
                ] {
                    dead_letters.with_label_values(&[stage]);
                }
                dead_letters
            },
            skipped: metrics.counter(
                "enricher_records_skipped_total",
                "Records finished without work, by reason.",
                &["reason"],
            ),
            requeued: register(metrics, requeued),
            stage_seconds: register(
                metrics,
                HistogramVec::new(
                    HistogramOpts::new(
                        "enricher_stage_duration_seconds",
                        "Time spent per stage: queue (consumed → batch start), reference, fetch, managers, map, publish, batch, change_to_emit (webhook received → events acknowledged).",
                    )
                    .buckets(LATENCY_BUCKETS.iter().copied().chain([30.0, 60.0, 300.0]).collect()),
                    &["stage"],
                )
                .expect("valid histogram"),
            ),
            accounts: metrics.gauge(
                "enricher_accounts",
                "Account workers by state (ready, backing_off, parked).",
                &["state"],
            ),
            waiting_orders: gauge(
                "enricher_waiting_orders",
                "Distinct orders waiting to be fetched, over every account.",
            ),
            unfinished_records: gauge(
                "enricher_unfinished_records",
                "Consumed records whose offset cannot be stored yet.",
            ),
            consumer_lag: gauge(
                "enricher_consumer_lag",
                "Records on the assigned order-changed partitions after the stored offsets.",
            ),
            assigned_partitions: gauge(
                "enricher_assigned_partitions",
                "order-changed partitions assigned to this member (its accounts' live work and syncs).",
            ),
            sync: SyncMetrics::new(metrics),
        }
    }

    /// How many `order-changed` partitions this member holds now.
    pub fn assigned_partitions(&self, count: usize) {
        self.assigned_partitions
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Reconciliation and backfill metrics.
    pub fn sync(&self) -> &SyncMetrics {
        &self.sync
    }

    /// One RetailCRM call ended with `status` after `took`.
    pub fn crm_call(&self, endpoint: &str, status: &str, took: Duration) {
        self.crm_calls.with_label_values(&[endpoint, status]).inc();
        self.crm_call_seconds
            .with_label_values(&[endpoint])
            .observe(took.as_secs_f64());
    }

    /// Budget waits observed during a call.
    pub fn budget_waited(&self, waits: u64, waited: Duration) {
        self.budget_waits.inc_by(waits);
        self.budget_wait_seconds.inc_by(waited.as_secs_f64());
    }

    /// One orders call asked for `ids` ids.
    pub fn orders_call(&self, ids: usize) {
        self.orders_per_call.observe(ids as f64);
    }

    /// Orders fetched, by result (`found`, `deleted`).
    pub fn orders_fetched(&self, result: &str, count: usize) {
        self.orders_fetched
            .with_label_values(&[result])
            .inc_by(count as u64);
    }

    /// Events published.
    pub fn emitted(&self, event_type: EventType, count: usize) {
        self.events
            .with_label_values(&[event_type.as_str()])
            .inc_by(count as u64);
    }

    /// A record dead-lettered at `stage`.
    pub fn dead_lettered(&self, stage: &str) {
        self.dead_letters.with_label_values(&[stage]).inc();
    }

    /// An integration's health changed to `status`.
    pub fn health_changed(&self, status: &str) {
        self.health_changes.with_label_values(&[status]).inc();
    }

    /// Records finished without work.
    pub fn skipped(&self, reason: &str, count: usize) {
        self.skipped
            .with_label_values(&[reason])
            .inc_by(count as u64);
    }

    /// Records appended again.
    pub fn requeued(&self, count: usize) {
        self.requeued.inc_by(count as u64);
    }

    /// Time spent in a stage.
    pub fn stage(&self, stage: &str, took: Duration) {
        self.stage_seconds
            .with_label_values(&[stage])
            .observe(took.as_secs_f64());
    }

    /// An account worker entered (`+1`) or left (`-1`) a state.
    pub fn account_state(&self, state: &str, delta: i64) {
        self.accounts.with_label_values(&[state]).add(delta);
    }

    /// The change in distinct waiting orders of one account.
    pub fn waiting_changed(&self, delta: i64) {
        self.waiting_orders.add(delta);
    }

    /// Unfinished records and consumer lag, as the intake sees them.
    pub fn intake(&self, unfinished: usize, lag: Option<i64>) {
        self.unfinished_records
            .set(i64::try_from(unfinished).unwrap_or(i64::MAX));
        if let Some(lag) = lag {
            self.consumer_lag.set(lag);
        }
    }
}
