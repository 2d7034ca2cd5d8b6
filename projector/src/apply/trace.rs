//! Each order's sync log (DESIGN §4 `GET …/deals/{order_id}/trace`): what happened to the order
//! and when, built from the events that mention it, so a replay rebuilds it.
//!
//! | event | entry |
//! |---|---|
//! | `OrderChanged` webhook / history / refetch, retry | `webhook_accepted` / `history_seen` / `refetch_requested` |
//! | `DealStagesRecorded` | `history_seen` (the status records read) |
//! | `DealUpserted` | `fetched` (when the enricher read it), then `deal_upserted` (with the stage) |
//! | `DealDeleted` | `deal_deleted` |
//! | a dead letter | `dead_lettered` (with the stage and the reason) |
//!
//! An entry's key (its event's id and kind, or the letter's id) makes it once whatever the
//! redeliveries and orders entries of the same instant. Only the newest [`KEEP`] entries of an
//! order are kept (DESIGN asks for at least 100).

use std::collections::{BTreeMap, BTreeSet};

use dealflow_shared::events::{ChangeSource, Envelope, Event, IntegrationId};
use sqlx::AnyConnection;

use super::letters::Letter;
use crate::store::values::{Columns as _, id, micros};
use crate::store::{MAX_BINDS, Sql, StoreError, cached_chunks};

/// Entries kept per order at least (the oldest go first).
pub(crate) const KEEP: i64 = 200;
/// Longest detail stored (a dead letter's reason can be long).
const MAX_DETAIL: usize = 500;

/// One entry of an order's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TraceEntry {
    pub integration_id: IntegrationId,
    pub order_id: u64,
    pub key: String,
    pub at: i64,
    pub kind: &'static str,
    pub source: String,
    pub detail: String,
}

/// The entries the events and letters of one batch add.
pub(super) fn entries(envelopes: &[&Envelope], letters: &[Letter]) -> Vec<TraceEntry> {
    let mut out = Vec::new();
    for e in envelopes {
        let mut add = |order_id: u64, n: u8, at, kind, source: &str, detail: String| {
            out.push(TraceEntry {
                integration_id: e.integration_id,
                order_id,
                key: format!("{}/{n}", e.id),
                at: micros(at),
                kind,
                source: source.to_owned(),
                detail,
            });
        };
        match &e.event {
            Event::OrderChanged(c) => {
                let (kind, source, detail) = match c.source {
                    ChangeSource::Webhook => (
                        "webhook_accepted",
                        "webhook",
                        "RetailCRM's trigger called the webhook",
                    ),
                    ChangeSource::History => (
                        "history_seen",
                        "history",
                        "reconciliation found a change in orders/history",
                    ),
                    ChangeSource::Refetch => {
                        ("refetch_requested", "refetch", "a re-fetch was asked for")
                    }
                    ChangeSource::Retry => (
                        "refetch_requested",
                        "retry",
                        "a dead letter of the order was retried",
                    ),
                    ChangeSource::Backfill | ChangeSource::Resync => (
                        "refetch_requested",
                        if c.source == ChangeSource::Backfill {
                            "backfill"
                        } else {
                            "resync"
                        },
                        "a historical load queued the order",
                    ),
                };
                add(
                    c.order_id,
                    0,
                    c.received_at,
                    kind,
                    source,
                    detail.to_owned(),
                );
            }
            Event::DealStagesRecorded(s) => {
                let codes: Vec<&str> = s.stages.iter().map(|s| s.stage_code.as_str()).collect();
                add(
                    s.order_id,
                    0,
                    s.observed_at,
                    "history_seen",
                    "history",
                    format!("status records read: {}", codes.join(" → ")),
                );
            }
            Event::DealUpserted(d) => {
                let currency = d.currency.as_deref().unwrap_or("");
                add(
                    d.order_id,
                    1,
                    d.observed_at,
                    "fetched",
                    "enricher",
                    format!(
                        "RetailCRM answered: status {}, total {} {currency}",
                        d.status_code, d.total_sum
                    )
                    .trim_end()
                    .to_owned(),
                );
                add(
                    d.order_id,
                    2,
                    e.occurred_at.max(d.observed_at),
                    "deal_upserted",
                    "enricher",
                    format!("stage {}", d.status_code),
                );
            }
            Event::DealDeleted(d) => add(
                d.order_id,
                0,
                d.observed_at,
                "deal_deleted",
                "enricher",
                match d.merged_into {
                    Some(into) => format!("merged into order {into}"),
                    None => "deleted in RetailCRM".to_owned(),
                },
            ),
            _ => {}
        }
    }
    for l in letters {
        if let Some(order_id) = l.order_id {
            out.push(TraceEntry {
                integration_id: l.integration_id,
                order_id,
                key: format!("dl/{}", l.letter_id),
                at: micros(l.at),
                kind: "dead_lettered",
                source: l.stage.clone(),
                detail: l.error.clone(),
            });
        }
    }
    out
}

/// Records `entries` and drops what falls beyond [`KEEP`] for the orders they touch.
pub(super) async fn apply(
    conn: &mut AnyConnection,
    entries: &[TraceEntry],
) -> Result<(), StoreError> {
    for chunk in cached_chunks(entries, MAX_BINDS / 7) {
        let mut sql = Sql::new(
            "INSERT INTO deal_trace (integration_id, order_id, entry_key, at, kind, source, detail) VALUES ",
        );
        for (i, t) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(t.integration_id.to_string())
                    .v(id(t.order_id))
                    .v(t.key.clone())
                    .v(t.at)
                    .v(t.kind.to_owned())
                    .v(t.source.clone())
                    .v(cut(&t.detail).to_owned());
            });
        }
        sql.push(" ON CONFLICT (integration_id, order_id, entry_key) DO NOTHING");
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("recording order traces"))?;
    }
    let mut touched: BTreeMap<IntegrationId, BTreeSet<u64>> = BTreeMap::new();
    for t in entries {
        touched
            .entry(t.integration_id)
            .or_default()
            .insert(t.order_id);
    }
    for (integration, orders) in touched {
        let orders: Vec<i64> = orders.into_iter().map(id).collect();
        for chunk in orders.chunks(MAX_BINDS / 4) {
            prune(conn, integration, chunk).await?;
        }
    }
    Ok(())
}

/// Drops the entries of `orders` beyond the newest [`KEEP`]. Most batches touch no order that
/// long, so the orders over the limit are found first from the primary key alone (an index
/// range per order) and only theirs are ranked and cut.
async fn prune(
    conn: &mut AnyConnection,
    integration: IntegrationId,
    orders: &[i64],
) -> Result<(), StoreError> {
    let mut sql = Sql::new("SELECT order_id FROM deal_trace WHERE integration_id = ");
    sql.bind(integration.to_string())
        .push(" AND order_id IN ")
        .bind_list(orders.iter().copied())
        .push(" GROUP BY order_id HAVING COUNT(*) > ")
        .bind(KEEP);
    let long: Vec<i64> = sql
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("counting order traces"))?
        .iter()
        .map(|row| row.int("order_id"))
        .collect::<Result<_, _>>()?;
    for order in long {
        // Everything older than the KEEP-th newest entry (entries of that same instant stay:
        // at least KEEP are kept).
        let mut sql = Sql::new("DELETE FROM deal_trace WHERE integration_id = ");
        sql.bind(integration.to_string())
            .push(" AND order_id = ")
            .bind(order)
            .push(" AND at < (SELECT at FROM deal_trace WHERE integration_id = ")
            .bind(integration.to_string())
            .push(" AND order_id = ")
            .bind(order)
            .push(" ORDER BY at DESC, entry_key DESC LIMIT 1 OFFSET ")
            .bind(KEEP - 1)
            .push(")");
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("pruning an order's trace"))?;
    }
    Ok(())
}

/// The longest prefix of `text` within [`MAX_DETAIL`] bytes, on a character boundary.
fn cut(text: &str) -> &str {
    if text.len() <= MAX_DETAIL {
        return text;
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
