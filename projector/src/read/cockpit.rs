//! The operator's views (DESIGN §4): how far an integration's synchronisation is
//! (`GET …/sync`), what happened to one order (`GET …/deals/{order_id}/trace`) and what could
//! not be processed (`GET …/dead-letters`).

use chrono::{DateTime, NaiveDate, Utc};
use dealflow_shared::events::{IntegrationId, LoadKind, LoadProgress, SyncStateChanged};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::traces::{self, StoredEntry};
use crate::store::values::{Columns as _, id, time, uid};
use crate::store::{Sql, Store, StoreError};

/// `GET …/sync`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SyncView {
    /// Where reconciliation reads `orders/history` next (`null` before its first page).
    pub history_since_id: Option<u64>,
    /// When reconciliation last read the history to its end.
    pub last_reconciled_at: Option<DateTime<Utc>>,
    /// How often reconciliation runs (`DEALFLOW_RECONCILE_INTERVAL`).
    pub reconcile_interval_s: u64,
    /// The current historical load, else the last one; `null` when there never was one.
    pub load: Option<LoadView>,
}

/// A backfill or re-sync as `GET …/sync` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LoadView {
    /// `backfill` (on connect) or `resync` (asked for).
    #[schema(example = "resync")]
    pub kind: &'static str,
    /// First day of the window (account timezone).
    pub since: NaiveDate,
    /// Last day of the window (`null`: up to the day it ran).
    pub until: Option<NaiveDate>,
    pub pages_done: u32,
    pub pages_total: Option<u32>,
    pub orders_done: u64,
    pub orders_total: Option<u64>,
    pub started_at: DateTime<Utc>,
    /// Set once the orders and their stage timelines are loaded.
    pub finished_at: Option<DateTime<Utc>>,
    /// `orders` (paging the window), `timelines` (reading its history for the stage
    /// timelines) or `done`.
    #[schema(example = "orders")]
    pub phase: &'static str,
}

impl LoadView {
    fn of(load: &LoadProgress) -> Self {
        let timeline_done = load.timeline.as_ref().and_then(|t| t.finished_at);
        let phase = match (load.finished_at, timeline_done) {
            (None, _) => "orders",
            (Some(_), None) => "timelines",
            (Some(_), Some(_)) => "done",
        };
        Self {
            kind: match load.kind {
                LoadKind::Backfill => "backfill",
                LoadKind::Resync => "resync",
            },
            since: load.since,
            until: load.until,
            pages_done: load.pages_done,
            pages_total: load.pages_total,
            orders_done: load.orders_done,
            orders_total: load.orders_total,
            started_at: load.started_at,
            finished_at: timeline_done.filter(|_| load.finished_at.is_some()),
            phase,
        }
    }

    /// Percent of the orders loaded, for a progress bar (0 until the size is known).
    pub fn percent(&self) -> u64 {
        match self.orders_total {
            Some(0) => 100,
            Some(total) => (self.orders_done * 100 / total).min(100),
            None => 0,
        }
    }

    /// Still running.
    pub fn running(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// The sync view of an integration (its state as the enricher last reported it).
pub async fn sync(
    store: &Store,
    integration: IntegrationId,
    reconcile_interval_s: u64,
) -> Result<SyncView, StoreError> {
    let mut sql = Sql::new("SELECT state FROM sync_states WHERE integration_id = ");
    sql.bind(integration.to_string());
    let state: Option<SyncStateChanged> =
        match sql
            .read_optional(store)
            .await
            .map_err(StoreError::query("reading a sync state"))?
        {
            Some(row) => Some(serde_json::from_str(&row.text("state")?).map_err(|e| {
                StoreError::Corrupt {
                    what: "a sync state",
                    detail: e.to_string(),
                }
            })?),
            None => None,
        };
    let load = state.as_ref().and_then(|s| {
        // The newer of the two: a re-sync runs after the backfill has finished.
        match (&s.backfill, &s.resync) {
            (Some(b), Some(r)) if b.started_at > r.started_at => Some(b),
            (_, Some(r)) => Some(r),
            (b, None) => b.as_ref(),
        }
    });
    Ok(SyncView {
        history_since_id: state.as_ref().and_then(|s| s.history_cursor),
        last_reconciled_at: state.as_ref().and_then(|s| s.last_reconciled_at),
        reconcile_interval_s,
        load: load.map(LoadView::of),
    })
}

/// One entry of an order's sync log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TraceItem {
    pub at: DateTime<Utc>,
    /// `webhook_accepted`, `history_seen`, `fetched`, `deal_upserted`, `deal_deleted`,
    /// `dead_lettered` or `refetch_requested`.
    #[schema(example = "deal_upserted")]
    pub kind: String,
    /// What caused it: `webhook`, `history`, `refetch`, `retry`, `enricher`, or the stage
    /// of a dead letter.
    #[schema(example = "enricher")]
    pub source: String,
    /// A sentence: the stage, the reason, what RetailCRM answered.
    pub detail: String,
}

/// `GET …/deals/{order_id}/trace`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TraceList {
    pub items: Vec<TraceItem>,
}

/// The order's sync log, oldest first.
pub async fn trace(
    store: &Store,
    integration: IntegrationId,
    order_id: u64,
) -> Result<Vec<TraceItem>, StoreError> {
    let mut sql = Sql::new("SELECT entries FROM order_traces WHERE integration_id = ");
    sql.bind(integration.to_string())
        .push(" AND order_id = ")
        .bind(id(order_id));
    let Some(row) = sql
        .read_optional(store)
        .await
        .map_err(StoreError::query("reading an order's trace"))?
    else {
        return Ok(Vec::new());
    };
    traces::decode(&row.text("entries")?)?
        .into_iter()
        .map(|StoredEntry(at, _key, kind, source, detail)| {
            Ok(TraceItem {
                at: time(at)?,
                kind,
                source,
                detail,
            })
        })
        .collect()
}

/// One dead letter of an integration.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// Pass to `POST …/dead-letters/{id}/retry`.
    #[schema(example = "5f1c0e9a27b4d3c8")]
    pub id: String,
    /// The order it is about (`null`: a page of orders RetailCRM answered unreadably).
    pub order_id: Option<u64>,
    /// The stage that gave up, e.g. `enricher.map`.
    #[schema(example = "enricher.map")]
    pub stage: String,
    /// Why.
    pub error: String,
    pub at: DateTime<Utc>,
}

/// `GET …/dead-letters`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub items: Vec<DeadLetterView>,
}

/// Letters not resolved yet, newest first.
pub async fn dead_letters(
    store: &Store,
    integration: IntegrationId,
) -> Result<Vec<DeadLetterView>, StoreError> {
    let mut sql = Sql::new(
        "SELECT letter_id, order_id, stage, error, at FROM dead_letters WHERE integration_id = ",
    );
    sql.bind(integration.to_string())
        .push(" AND resolved_at IS NULL ORDER BY at DESC, letter_id");
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("reading dead letters"))?;
    rows.iter()
        .map(|row| {
            Ok(DeadLetterView {
                id: row.text("letter_id")?,
                order_id: row.opt_int("order_id")?.map(uid),
                stage: row.text("stage")?,
                error: row.text("error")?,
                at: time(row.int("at")?)?,
            })
        })
        .collect()
}
