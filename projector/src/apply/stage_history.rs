//! A deal's stage timeline as the `stage_history` table keeps it: one entry per (instant,
//! stage), whatever reported it — a snapshot's `statusUpdatedAt` or an `orders/history`
//! record — with what orders entries of the same instant (DESIGN §5 "Stage timeline").
//! Merging is commutative and idempotent, in memory and in SQL alike, so arrival order,
//! redeliveries and replays give the same rows.

use std::collections::BTreeMap;

use crate::store::Conn;
use dealflow_shared::events::IntegrationId;

use crate::derive::TimelineRank;
use crate::store::values::Columns as _;
use crate::store::{MAX_BINDS, Sql, StoreError, cached_chunks};

/// One stay in a stage as every source that reported it describes it together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stay {
    /// The stage's group as a snapshot reported it (`None`: look it up in `stages`).
    pub group: Option<String>,
    pub rank: TimelineRank,
}

impl Stay {
    /// Folds another report of the same (instant, stage) in: the first known group, the
    /// smallest history id, the earliest snapshot. Commutative, so arrival order (and
    /// replays) cannot change the result.
    pub fn merge(
        &mut self,
        group: &Option<String>,
        history_id: Option<i64>,
        observed_at: Option<i64>,
    ) {
        if self.group.is_none() {
            self.group.clone_from(group);
        }
        let min = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.rank.history_id = min(self.rank.history_id, history_id);
        self.rank.observed_at = min(self.rank.observed_at, observed_at);
    }
}

/// One deal's stage history: one entry per `(entered_at, stage_code)`, whatever the source.
pub(crate) type History = BTreeMap<(i64, String), Stay>;

pub(crate) async fn load_history(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
    orders: &[i64],
) -> Result<BTreeMap<i64, History>, StoreError> {
    let mut out: BTreeMap<i64, History> = BTreeMap::new();
    for chunk in orders.chunks(MAX_BINDS - 1) {
        let mut sql = Sql::new(
            "SELECT order_id, entered_at, stage_code, stage_group, history_id, observed_at \
             FROM stage_history WHERE integration_id = ",
        );
        sql.bind(integration.to_string())
            .push(" AND order_id IN ")
            .bind_list(chunk.iter().copied());
        for row in sql
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("reading stage history"))?
        {
            out.entry(row.int("order_id")?).or_default().insert(
                (row.int("entered_at")?, row.text("stage_code")?),
                Stay {
                    group: row.opt_text("stage_group")?,
                    rank: TimelineRank {
                        history_id: row.opt_int("history_id")?,
                        observed_at: row.opt_int("observed_at")?,
                    },
                },
            );
        }
    }
    Ok(out)
}

/// Inserts the entries that are new, and updates those another report completed.
pub(crate) async fn write_history(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
    stored: &BTreeMap<i64, History>,
    current: &BTreeMap<i64, History>,
) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    for (order, history) in current {
        for (key, stay) in history {
            let before = stored.get(order).and_then(|h| h.get(key));
            if before != Some(stay) {
                rows.push((*order, key, stay));
            }
        }
    }
    for chunk in cached_chunks(&rows, MAX_BINDS / 7) {
        let mut sql = Sql::new(
            "INSERT INTO stage_history (integration_id, order_id, entered_at, stage_code, \
             stage_group, history_id, observed_at) VALUES ",
        );
        for (i, (order, (at, code), stay)) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(integration.to_string())
                    .v(*order)
                    .v(*at)
                    .v(code.clone())
                    .v(stay.group.clone())
                    .v(stay.rank.history_id)
                    .v(stay.rank.observed_at);
            });
        }
        // The same merge as `Stay::merge`, in SQL too, so a row another writer changed since
        // it was loaded still ends as the merge of both.
        sql.push(
            " ON CONFLICT (integration_id, order_id, entered_at, stage_code) DO UPDATE SET \
             stage_group = COALESCE(stage_history.stage_group, excluded.stage_group), ",
        )
        .push(&smaller("history_id"))
        .push(", ")
        .push(&smaller("observed_at"));
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing stage history"))?;
    }
    Ok(())
}

/// `column = ` the smaller of the stored and the new value, either of which may be NULL
/// (portable: SQLite's two-argument `min` and PostgreSQL's `LEAST` treat NULL differently).
fn smaller(column: &str) -> String {
    format!(
        "{column} = CASE WHEN stage_history.{column} IS NULL THEN excluded.{column} \
         WHEN excluded.{column} IS NULL THEN stage_history.{column} \
         WHEN excluded.{column} < stage_history.{column} THEN excluded.{column} \
         ELSE stage_history.{column} END"
    )
}
