//! Deals as the API shows them (DESIGN §4): filtered, keyset-paginated newest first by
//! `created_at`, one with its stage history.

use crate::store::Row;
use chrono::{DateTime, Utc};
use dealflow_shared::events::IntegrationId;
use serde::{Deserialize, Serialize};

pub use super::deal_cursor::DealCursor;
use crate::derive::{DEFAULT_FUNNEL_NAME, Markers, Outcome, TimelineRank, timeline_key};
use crate::store::values::{Columns as _, micros, parse_list, time, uid};
use crate::store::{Sql, Store, StoreError};

/// Which deals to list (every field optional; all given ones must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DealFilter {
    pub site: Option<String>,
    pub funnel_id: Option<String>,
    pub stage: Option<String>,
    pub outcome: Option<Outcome>,
    pub manager_id: Option<u64>,
    /// Deals whose facts changed at or after this time (`updated_at >=`).
    pub changed_since: Option<DateTime<Utc>>,
    /// `Some(false)` hides deleted deals, `Some(true)` shows only them; `None` shows both.
    pub deleted: Option<bool>,
    /// Also list deals whose current stage the stage mapping excludes (left out otherwise).
    pub with_excluded: bool,
}

/// One page of deals.
#[derive(Debug, Clone, PartialEq)]
pub struct DealPage {
    pub items: Vec<DealView>,
    /// Set when more deals follow.
    pub next: Option<DealCursor>,
}

/// A deal (DESIGN §4 "Deal JSON").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Deal)]
pub struct DealView {
    pub order_id: u64,
    pub number: Option<String>,
    pub external_id: Option<String>,
    pub site: String,
    pub funnel_id: String,
    pub funnel_name: String,
    pub stage_code: String,
    pub stage_name: Option<String>,
    pub stage_group: Option<String>,
    pub outcome: String,
    pub amount: String,
    pub currency: Option<String>,
    pub total_sum: String,
    pub delivery_cost: String,
    pub manager: Option<ManagerRef>,
    pub contact: Option<ContactRef>,
    pub company: Option<CompanyRef>,
    pub utm: UtmView,
    pub client_id: Option<String>,
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Value,
    pub order_type: Option<String>,
    pub order_method: Option<String>,
    /// What the goods cost the shop (`purchaseSumm`); null when RetailCRM gave none.
    pub purchase_sum: Option<String>,
    /// What the customer has paid (`prepaySum`).
    pub paid_sum: Option<String>,
    /// `paid`, `partially_paid` or `not_paid` (DESIGN §5 "Revenue").
    pub payment_status: String,
    /// When it was paid in full (`fullPaidAt`).
    pub paid_at: Option<DateTime<Utc>>,
    /// The order lines.
    pub items: Vec<DealItemView>,
    pub created_at: DateTime<Utc>,
    pub stage_entered_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_open_stage: Option<String>,
    /// The current stage is one the stage mapping excludes (spam, tests, duplicates): the deal
    /// is left out of lists, CSVs and `deals_count` unless `excluded=true`.
    pub excluded: bool,
    pub deleted: bool,
    pub merged_into: Option<u64>,
    pub updated_at: DateTime<Utc>,
    /// Only on the single-deal endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_history: Option<Vec<StageEntry>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ManagerRef {
    pub id: u64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ContactRef {
    pub id: Option<u64>,
    pub name: Option<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CompanyRef {
    pub id: u64,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Utm)]
pub struct UtmView {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub keyword: Option<String>,
    pub content: Option<String>,
}

/// One order line (DESIGN §5 "Lines"); money and quantity as decimal strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = DealItem)]
pub struct DealItemView {
    pub offer_id: Option<u64>,
    pub article: Option<String>,
    pub name: Option<String>,
    pub quantity: String,
    /// Unit price after discounts.
    pub price: String,
    pub sum: String,
    pub purchase_price: Option<String>,
    pub canceled: bool,
}

/// `paid` when paid in full (`fullPaidAt` set, or paid at least the total of a non-free
/// order), `partially_paid` when something was paid, else `not_paid` (DESIGN §5).
pub fn payment_status(
    total_sum: &str,
    paid_sum: Option<&str>,
    paid_at: Option<i64>,
) -> &'static str {
    let decimal = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap_or_default();
    let total = decimal(total_sum);
    let paid = paid_sum.map(decimal).unwrap_or_default();
    if paid_at.is_some() || (total > rust_decimal::Decimal::ZERO && paid >= total) {
        "paid"
    } else if paid > rust_decimal::Decimal::ZERO {
        "partially_paid"
    } else {
        "not_paid"
    }
}

/// One entry of the stage history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StageEntry {
    pub stage_code: String,
    pub entered_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT d.*, s.stage_name AS stage_name, st.name AS site_name FROM deals d \
    LEFT JOIN stages s ON s.integration_id = d.integration_id AND s.stage_code = d.status_code \
    LEFT JOIN sites st ON st.integration_id = d.integration_id AND st.site = d.site \
    WHERE d.created_at IS NOT NULL AND d.integration_id = ";

/// Up to `limit` deals after `after`, newest first.
pub async fn page(
    store: &Store,
    integration: IntegrationId,
    markers: Markers,
    filter: &DealFilter,
    after: Option<DealCursor>,
    limit: usize,
) -> Result<DealPage, StoreError> {
    let mut sql = Sql::new(SELECT);
    sql.bind(integration.to_string());
    if !push_filter(&mut sql, markers, filter) {
        return Ok(DealPage {
            items: Vec::new(),
            next: None,
        });
    }
    if let Some(after) = after {
        sql.push(" AND (d.created_at, d.order_id) < (")
            .bind(after.created_at)
            .push(", ")
            .bind(after.order_id)
            .push(")");
    }
    // One more than asked tells whether another page follows.
    sql.push(" ORDER BY d.created_at DESC, d.order_id DESC LIMIT ")
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("listing deals"))?;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let mut next = None;
    for row in rows.iter().take(limit) {
        items.push(view(row, markers)?);
        next = Some(DealCursor {
            created_at: row.int("created_at")?,
            order_id: row.int("order_id")?,
        });
    }
    Ok(DealPage {
        items,
        next: if more { next } else { None },
    })
}

/// One deal with its stage history, `None` when this integration has no such deal.
pub async fn one(
    store: &Store,
    integration: IntegrationId,
    markers: Markers,
    order_id: u64,
) -> Result<Option<DealView>, StoreError> {
    let order_id = i64::try_from(order_id).unwrap_or(i64::MAX);
    let mut sql = Sql::new(SELECT);
    sql.bind(integration.to_string())
        .push(" AND d.order_id = ")
        .bind(order_id);
    let Some(row) = sql
        .read_optional(store)
        .await
        .map_err(StoreError::query("reading a deal"))?
    else {
        return Ok(None);
    };
    let mut deal = view(&row, markers)?;
    let mut sql = Sql::new(
        "SELECT stage_code, entered_at, history_id, observed_at FROM stage_history \
         WHERE integration_id = ",
    );
    sql.bind(integration.to_string())
        .push(" AND order_id = ")
        .bind(order_id);
    let mut rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("reading a stage history"))?
        .iter()
        .map(|row| {
            let rank = TimelineRank {
                history_id: row.opt_int("history_id")?,
                observed_at: row.opt_int("observed_at")?,
            };
            Ok((row.int("entered_at")?, rank, row.text("stage_code")?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The same order the closure was derived in (`derive::timeline_key`), not SQL's.
    rows.sort_by(|a, b| timeline_key(a.0, a.1, &a.2).cmp(&timeline_key(b.0, b.1, &b.2)));
    let history = rows
        .into_iter()
        .map(|(at, _, stage_code)| {
            Ok(StageEntry {
                stage_code,
                entered_at: time(at)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    deal.stage_history = Some(collapse(history));
    Ok(Some(deal))
}

/// One entry per stay in a stage: two sources can report the same status change at slightly
/// different times (a history record's `createdAt`, the order's `statusUpdatedAt`); with no
/// other stage in between they are one stay, entered at the earliest.
fn collapse(history: Vec<StageEntry>) -> Vec<StageEntry> {
    let mut out: Vec<StageEntry> = Vec::with_capacity(history.len());
    for entry in history {
        if out
            .last()
            .is_some_and(|last| last.stage_code == entry.stage_code)
        {
            continue;
        }
        out.push(entry);
    }
    out
}

/// Appends the filter's conditions; false when nothing can match (a funnel of another marker).
fn push_filter(sql: &mut Sql, markers: Markers, f: &DealFilter) -> bool {
    if let Some(site) = &f.site {
        sql.push(" AND d.site = ").bind(site.clone());
    }
    if let Some(funnel) = &f.funnel_id {
        // Funnels follow the marker: "default" holds every deal, otherwise a funnel is a shop.
        if markers.default_funnel {
            if funnel != crate::derive::DEFAULT_FUNNEL_ID {
                return false;
            }
        } else {
            sql.push(" AND d.site = ").bind(funnel.clone());
        }
    }
    if let Some(stage) = &f.stage {
        sql.push(" AND d.status_code = ").bind(stage.clone());
    }
    if let Some(outcome) = f.outcome {
        sql.push(" AND d.outcome = ")
            .bind(outcome.as_str().to_owned());
    }
    if let Some(manager) = f.manager_id {
        sql.push(" AND d.manager_id = ")
            .bind(i64::try_from(manager).unwrap_or(i64::MAX));
    }
    if let Some(since) = f.changed_since {
        sql.push(" AND d.updated_at >= ").bind(micros(since));
    }
    if let Some(deleted) = f.deleted {
        sql.push(" AND d.deleted = ").bind(i64::from(deleted));
    }
    if !f.with_excluded {
        sql.push(" AND d.excluded = 0");
    }
    true
}

fn view(row: &Row, markers: Markers) -> Result<DealView, StoreError> {
    let opt_time = |column| row.opt_int(column)?.map(time).transpose();
    let site = row.text("site")?;
    let funnel_name = if markers.default_funnel {
        DEFAULT_FUNNEL_NAME.to_owned()
    } else {
        row.opt_text("site_name")?.unwrap_or_else(|| site.clone())
    };
    let manager = match row.opt_int("manager_id")? {
        Some(id) => Some(ManagerRef {
            id: uid(id),
            name: row.opt_text("manager_name")?,
            email: row.opt_text("manager_email")?,
            phone: row.opt_text("manager_phone")?,
        }),
        None => None,
    };
    // A deal has a contact exactly when its phone list was stored.
    let contact = match row.opt_text("contact_phones")? {
        Some(phones) => Some(ContactRef {
            id: row.opt_int("contact_id")?.map(uid),
            name: row.opt_text("contact_name")?,
            phones: parse_list(Some(&phones))?,
            emails: parse_list(row.opt_text("contact_emails")?.as_deref())?,
        }),
        None => None,
    };
    let company = match row.opt_int("company_id")? {
        Some(id) => Some(CompanyRef {
            id: uid(id),
            name: row.opt_text("company_name")?,
        }),
        None => None,
    };
    let custom_fields =
        serde_json::from_str(&row.text("custom_fields")?).map_err(|e| StoreError::Corrupt {
            what: "custom fields",
            detail: e.to_string(),
        })?;
    let items = match row.opt_text("items")? {
        // Rows from before the lines were kept have none.
        None => Vec::new(),
        Some(json) => serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
            what: "order lines",
            detail: e.to_string(),
        })?,
    };
    let total_sum = row.text("total_sum")?;
    let paid_sum = row.opt_text("paid_sum")?;
    let paid_at = row.opt_int("paid_at")?;
    Ok(DealView {
        order_id: uid(row.int("order_id")?),
        number: row.opt_text("number")?,
        external_id: row.opt_text("external_id")?,
        funnel_id: row.text("funnel_id")?,
        funnel_name,
        site,
        stage_code: row.text("status_code")?,
        stage_name: row.opt_text("stage_name")?,
        stage_group: row.opt_text("stage_group")?,
        outcome: row
            .opt_text("outcome")?
            .unwrap_or_else(|| Outcome::Open.as_str().to_owned()),
        amount: row.text("amount")?,
        currency: row.opt_text("currency")?,
        payment_status: payment_status(&total_sum, paid_sum.as_deref(), paid_at).to_owned(),
        total_sum,
        delivery_cost: row.text("delivery_cost")?,
        manager,
        contact,
        company,
        utm: UtmView {
            source: row.opt_text("utm_source")?,
            medium: row.opt_text("utm_medium")?,
            campaign: row.opt_text("utm_campaign")?,
            keyword: row.opt_text("utm_keyword")?,
            content: row.opt_text("utm_content")?,
        },
        client_id: row.opt_text("client_id")?,
        custom_fields,
        order_type: row.opt_text("order_type")?,
        order_method: row.opt_text("order_method")?,
        purchase_sum: row.opt_text("purchase_sum")?,
        paid_sum,
        paid_at: paid_at.map(time).transpose()?,
        items,
        created_at: time(row.int("created_at")?)?,
        stage_entered_at: opt_time("stage_entered_at")?,
        closed_at: opt_time("closed_at")?,
        last_open_stage: row.opt_text("last_open_stage")?,
        excluded: row.int("excluded")? != 0,
        deleted: row.int("deleted")? != 0,
        merged_into: row.opt_int("merged_into")?.map(uid),
        updated_at: time(row.int("updated_at")?)?,
        stage_history: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_reports_of_one_stage_are_one_stay() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let entry = |code: &str, s| StageEntry {
            stage_code: code.into(),
            entered_at: at(s),
        };
        let history = vec![
            entry("new", 1),
            entry("assembling", 5),
            entry("assembling", 6),
            entry("new", 9),
        ];
        let codes: Vec<_> = collapse(history)
            .into_iter()
            .map(|e| (e.stage_code, e.entered_at.timestamp()))
            .collect();
        assert_eq!(
            codes,
            [
                ("new".into(), 1),
                ("assembling".into(), 5),
                ("new".into(), 9)
            ]
        );
    }
}
