//! Per-integration gauges read from the read model at scrape time: whether the integration is
//! switched on, its health, when it last got a webhook and a reconciliation, and how many of
//! its dead letters are still open.
//!
//! One series per integration (and per health status) is the accepted cost: the alert rules
//! need them per integration, and removed integrations disappear at the next scrape.

use dealflow_shared::metrics::Metrics;
use prometheus::{GaugeVec, IntGaugeVec, Opts};

use crate::store::values::{Columns as _, time};
use crate::store::{Sql, Store, StoreError};

/// Every health status of DESIGN §4; each integration has one series per status, `1` for the
/// current one, so `== 1` queries and "for 15 minutes" alerts see a status change at once.
pub const HEALTH_STATUSES: &[&str] = &[
    "ok",
    "auth_failed",
    "access_denied",
    "unreachable",
    "rate_limited",
    "pending",
];

const SELECT: &str = "SELECT i.id, i.active, h.status, a.last_webhook_at, a.last_reconciled_at, \
    (SELECT COUNT(*) FROM dead_letters l WHERE l.integration_id = i.id AND l.resolved_at IS NULL) \
    AS dead_letters \
    FROM integrations i \
    LEFT JOIN integration_health h ON h.integration_id = i.id \
    LEFT JOIN integration_activity a ON a.integration_id = i.id";

/// The per-integration gauges.
#[derive(Debug, Clone)]
pub(crate) struct IntegrationGauges {
    active: IntGaugeVec,
    health: IntGaugeVec,
    last_webhook: GaugeVec,
    last_reconciled: GaugeVec,
    dead_letters: IntGaugeVec,
}

/// One integration's row, read before any gauge changes.
struct Row {
    id: String,
    active: bool,
    status: String,
    last_webhook: Option<f64>,
    last_reconciled: Option<f64>,
    dead_letters: i64,
}

impl IntegrationGauges {
    /// Registers the gauges in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        // Timestamps need float gauges, which `Metrics` has no shortcut for.
        let float_gauge = |opts: Opts| {
            let gauge = GaugeVec::new(opts, &["integration_id"]).expect("valid gauge");
            metrics
                .registry()
                .register(Box::new(gauge.clone()))
                .expect("integration gauge registered once");
            gauge
        };
        Self {
            active: metrics.gauge(
                "integration_active",
                "1 when the integration is switched on, 0 when off.",
                &["integration_id"],
            ),
            health: metrics.gauge(
                "integration_health",
                "The integration's health as last reported: 1 for the current status, 0 for the others.",
                &["integration_id", "status"],
            ),
            last_webhook: float_gauge(Opts::new(
                "integration_last_webhook_timestamp_seconds",
                "Unix time of the integration's latest accepted webhook (absent before the first).",
            )),
            dead_letters: metrics.gauge(
                "integration_dead_letters",
                "Dead letters of the integration not resolved yet (the list on its page).",
                &["integration_id"],
            ),
            last_reconciled: float_gauge(Opts::new(
                "integration_last_reconciled_timestamp_seconds",
                "Unix time of the integration's latest completed reconciliation (absent before the first).",
            )),
        }
    }

    /// Re-reads every integration and replaces the series (removed integrations vanish).
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let rows = Sql::new(&format!("{SELECT} ORDER BY i.id"))
            .read_all(store)
            .await
            .map_err(StoreError::query("reading integrations for metrics"))?;
        let seconds = |micros: Option<i64>| -> Result<Option<f64>, StoreError> {
            micros
                .map(|m| time(m).map(|t| t.timestamp_micros() as f64 / 1e6))
                .transpose()
        };
        let rows = rows
            .iter()
            .map(|row| {
                Ok(Row {
                    id: row.text("id")?,
                    active: row.int("active")? != 0,
                    status: row
                        .opt_text("status")?
                        .unwrap_or_else(|| "pending".to_owned()),
                    last_webhook: seconds(row.opt_int("last_webhook_at")?)?,
                    last_reconciled: seconds(row.opt_int("last_reconciled_at")?)?,
                    dead_letters: row.int("dead_letters")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Nothing awaits from here on, so a scrape sees the old or the new set, barely a mix.
        self.active.reset();
        self.health.reset();
        self.last_webhook.reset();
        self.last_reconciled.reset();
        self.dead_letters.reset();
        for row in &rows {
            let id = row.id.as_str();
            self.active
                .with_label_values(&[id])
                .set(i64::from(row.active));
            self.dead_letters
                .with_label_values(&[id])
                .set(row.dead_letters);
            for status in HEALTH_STATUSES {
                let current = i64::from(*status == row.status);
                self.health.with_label_values(&[id, status]).set(current);
            }
            if !HEALTH_STATUSES.contains(&row.status.as_str()) {
                self.health.with_label_values(&[id, &row.status]).set(1);
            }
            if let Some(at) = row.last_webhook {
                self.last_webhook.with_label_values(&[id]).set(at);
            }
            if let Some(at) = row.last_reconciled {
                self.last_reconciled.with_label_values(&[id]).set(at);
            }
        }
        Ok(())
    }
}
