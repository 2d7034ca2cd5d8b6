//! The figures behind the deals page's charts: deals created per day by outcome, and deals
//! per current stage. Counted by the database (one grouped query each), so a page of an
//! integration with 100k deals costs two small answers, not 100k rows.

use chrono::{DateTime, NaiveDate, Utc};
use dealflow_shared::events::IntegrationId;

use crate::store::values::{Columns as _, micros, uid};
use crate::store::{Sql, Store, StoreError};

/// Microseconds in a day: `created_at / DAY` is the UTC day number.
const DAY: i64 = 86_400_000_000;

/// Deals of one outcome created on one (UTC) day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub day: NaiveDate,
    pub outcome: String,
    pub count: u64,
}

/// Deals created since `from` (not deleted, not excluded), by UTC day and outcome.
pub async fn created_per_day(
    store: &Store,
    integration: IntegrationId,
    from: DateTime<Utc>,
) -> Result<Vec<DayCount>, StoreError> {
    let mut sql = Sql::new("SELECT created_at / ");
    sql.bind(DAY)
        .push(" AS day, COALESCE(outcome, 'open') AS outcome, COUNT(*) AS n FROM deals WHERE integration_id = ")
        .bind(integration.to_string())
        .push(" AND deleted = 0 AND excluded = 0 AND created_at >= ")
        .bind(micros(from))
        .push(" GROUP BY 1, 2 ORDER BY 1, 2");
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("counting deals per day"))?;
    rows.iter()
        .map(|row| {
            let day = row.int("day")?;
            Ok(DayCount {
                day: DateTime::from_timestamp(day * 86_400, 0)
                    .map(|t| t.date_naive())
                    .unwrap_or_default(),
                outcome: row.text("outcome")?,
                count: uid(row.int("n")?),
            })
        })
        .collect()
}

/// Deals (not deleted, not excluded) per current stage code.
pub async fn per_stage(
    store: &Store,
    integration: IntegrationId,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut sql = Sql::new("SELECT status_code, COUNT(*) AS n FROM deals WHERE integration_id = ");
    sql.bind(integration.to_string())
        .push(" AND deleted = 0 AND excluded = 0 AND status_code IS NOT NULL GROUP BY status_code");
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("counting deals per stage"))?;
    rows.iter()
        .map(|row| Ok((row.text("status_code")?, uid(row.int("n")?))))
        .collect()
}
