//! One row of the `deals` table in memory: the facts of the newest snapshot, the newest
//! deletion, and what is derived from them; loaded and written in bulk.

use std::collections::BTreeMap;

use crate::store::Conn;
use crate::store::Row;
use dealflow_shared::events::{DealUpserted, IntegrationId};

use crate::derive::Sums;
use crate::store::values::{Columns as _, id, list, micros};
use crate::store::{Dialect, MAX_BINDS, Sql, StoreError, cached_chunks};

/// The facts of one `DealUpserted`, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub number: Option<String>,
    pub external_id: Option<String>,
    pub site: String,
    pub status_code: String,
    pub status_group: Option<String>,
    pub total_sum: String,
    pub delivery_cost: String,
    pub net_sum: String,
    pub currency: Option<String>,
    pub manager_id: Option<i64>,
    pub manager_name: Option<String>,
    pub manager_email: Option<String>,
    pub manager_phone: Option<String>,
    pub contact_id: Option<i64>,
    pub contact_name: Option<String>,
    pub contact_phones: Option<String>,
    pub contact_emails: Option<String>,
    pub company_id: Option<i64>,
    pub company_name: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_keyword: Option<String>,
    pub utm_content: Option<String>,
    pub client_id: Option<String>,
    pub custom_fields: String,
    pub created_at: i64,
    pub stage_entered_at: Option<i64>,
    pub order_type: Option<String>,
    pub order_method: Option<String>,
    pub purchase_sum: Option<String>,
    pub paid_sum: Option<String>,
    pub paid_at: Option<i64>,
    /// The lines as a JSON array of the event's `DealItem`s.
    pub items: String,
    /// `total_sum − purchase_sum` and `net_sum − purchase_sum` (no purchase sum known: 0), so
    /// the `margin` revenue re-derives without decimal arithmetic in SQL.
    pub margin_sum: String,
    pub margin_net_sum: String,
}

/// What `paid` revenue counts when no paid sum is known.
pub(crate) const NOTHING_PAID: &str = "0";

impl Facts {
    /// The sums the amount is picked from.
    pub(crate) fn sums(&self) -> Sums<&str> {
        Sums {
            total: &self.total_sum,
            net: &self.net_sum,
            margin: &self.margin_sum,
            margin_net: &self.margin_net_sum,
            paid: self.paid_sum.as_deref().unwrap_or(NOTHING_PAID),
        }
    }
}

impl Facts {
    pub(crate) fn of(d: &DealUpserted) -> Self {
        let manager = d.manager.as_ref();
        let contact = d.contact.as_ref();
        let company = d.company.as_ref();
        let purchase = d.purchase_sum.unwrap_or_default();
        Self {
            number: d.number.clone(),
            external_id: d.external_id.clone(),
            site: d.site.clone(),
            status_code: d.status_code.clone(),
            status_group: d.status_group.clone(),
            total_sum: d.total_sum.to_string(),
            delivery_cost: d.delivery_cost.to_string(),
            net_sum: (d.total_sum - d.delivery_cost).to_string(),
            currency: d.currency.clone(),
            manager_id: manager.map(|m| id(m.id)),
            manager_name: manager.and_then(|m| m.name.clone()),
            manager_email: manager.and_then(|m| m.email.clone()),
            manager_phone: manager.and_then(|m| m.phone.clone()),
            contact_id: contact.and_then(|c| c.id).map(id),
            contact_name: contact.and_then(|c| c.name.clone()),
            contact_phones: contact.map(|c| list(&c.phones)),
            contact_emails: contact.map(|c| list(&c.emails)),
            company_id: company.map(|c| id(c.id)),
            company_name: company.and_then(|c| c.name.clone()),
            utm_source: d.utm.source.clone(),
            utm_medium: d.utm.medium.clone(),
            utm_campaign: d.utm.campaign.clone(),
            utm_keyword: d.utm.keyword.clone(),
            utm_content: d.utm.content.clone(),
            client_id: d.client_id.clone(),
            custom_fields: serde_json::to_string(&d.custom_fields)
                .unwrap_or_else(|_| "{}".to_owned()),
            created_at: micros(d.created_at),
            stage_entered_at: d.stage_entered_at.map(micros),
            order_type: d.order_type.clone(),
            order_method: d.order_method.clone(),
            purchase_sum: d.purchase_sum.map(|s| s.to_string()),
            paid_sum: d.paid_sum.map(|s| s.to_string()),
            paid_at: d.paid_at.map(micros),
            items: serde_json::to_string(&d.items).unwrap_or_else(|_| "[]".to_owned()),
            margin_sum: (d.total_sum - purchase).to_string(),
            margin_net_sum: (d.total_sum - d.delivery_cost - purchase).to_string(),
        }
    }
}

/// What the projector derives for a deal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Derived {
    pub deleted: bool,
    pub amount: Option<String>,
    pub funnel_id: Option<String>,
    pub stage_group: Option<String>,
    pub outcome: Option<String>,
    pub closed_at: Option<i64>,
    pub last_open_stage: Option<String>,
    /// The current stage is one the user excluded.
    pub excluded: bool,
    pub updated_at: i64,
}

/// One `deals` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DealRow {
    pub order_id: i64,
    /// `None` for a tombstone (deleted before any snapshot arrived).
    pub facts: Option<Facts>,
    pub observed_at: Option<i64>,
    pub deleted_observed_at: Option<i64>,
    pub merged_into: Option<i64>,
    pub derived: Derived,
}

impl DealRow {
    /// Whether an event named the deal: only then does it have a row (a re-derivation alone
    /// never creates one).
    pub(crate) fn is_named(&self) -> bool {
        self.observed_at.is_some() || self.deleted_observed_at.is_some()
    }

    pub(crate) fn empty(order_id: i64) -> Self {
        Self {
            order_id,
            facts: None,
            observed_at: None,
            deleted_observed_at: None,
            merged_into: None,
            derived: Derived::default(),
        }
    }
}

/// Every column of `deals` after the key, in the order rows are written.
const COLUMNS: &str = "number, external_id, site, status_code, status_group, total_sum, \
    delivery_cost, net_sum, currency, manager_id, manager_name, manager_email, manager_phone, \
    contact_id, contact_name, contact_phones, contact_emails, company_id, company_name, \
    utm_source, utm_medium, utm_campaign, utm_keyword, utm_content, client_id, custom_fields, \
    created_at, stage_entered_at, observed_at, deleted_observed_at, merged_into, deleted, amount, \
    funnel_id, stage_group, outcome, closed_at, last_open_stage, updated_at, order_type, \
    order_method, purchase_sum, paid_sum, paid_at, items, margin_sum, margin_net_sum, excluded";
const COLUMN_COUNT: usize = 48;

/// Loads the rows of `orders` (locking them on PostgreSQL), keyed by order id.
pub(crate) async fn load(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    integration: IntegrationId,
    orders: &[i64],
) -> Result<BTreeMap<i64, DealRow>, StoreError> {
    let mut out = BTreeMap::new();
    for chunk in orders.chunks(MAX_BINDS - 1) {
        let mut sql = Sql::new(&format!(
            "SELECT order_id, {COLUMNS} FROM deals WHERE integration_id = "
        ));
        sql.bind(integration.to_string())
            .push(" AND order_id IN ")
            .bind_list(chunk.iter().copied())
            .push(" ORDER BY order_id")
            .push(dialect.for_update());
        for row in sql
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("reading deals"))?
        {
            let deal = read(&row)?;
            out.insert(deal.order_id, deal);
        }
    }
    Ok(out)
}

fn read(row: &Row) -> Result<DealRow, StoreError> {
    let facts = match row.opt_int("created_at")? {
        None => None,
        Some(created_at) => Some(Facts {
            number: row.opt_text("number")?,
            external_id: row.opt_text("external_id")?,
            site: row.text("site")?,
            status_code: row.text("status_code")?,
            status_group: row.opt_text("status_group")?,
            total_sum: row.text("total_sum")?,
            delivery_cost: row.text("delivery_cost")?,
            net_sum: row.text("net_sum")?,
            currency: row.opt_text("currency")?,
            manager_id: row.opt_int("manager_id")?,
            manager_name: row.opt_text("manager_name")?,
            manager_email: row.opt_text("manager_email")?,
            manager_phone: row.opt_text("manager_phone")?,
            contact_id: row.opt_int("contact_id")?,
            contact_name: row.opt_text("contact_name")?,
            contact_phones: row.opt_text("contact_phones")?,
            contact_emails: row.opt_text("contact_emails")?,
            company_id: row.opt_int("company_id")?,
            company_name: row.opt_text("company_name")?,
            utm_source: row.opt_text("utm_source")?,
            utm_medium: row.opt_text("utm_medium")?,
            utm_campaign: row.opt_text("utm_campaign")?,
            utm_keyword: row.opt_text("utm_keyword")?,
            utm_content: row.opt_text("utm_content")?,
            client_id: row.opt_text("client_id")?,
            custom_fields: row.text("custom_fields")?,
            created_at,
            stage_entered_at: row.opt_int("stage_entered_at")?,
            order_type: row.opt_text("order_type")?,
            order_method: row.opt_text("order_method")?,
            purchase_sum: row.opt_text("purchase_sum")?,
            paid_sum: row.opt_text("paid_sum")?,
            paid_at: row.opt_int("paid_at")?,
            // Rows from before the lines were kept have none.
            items: row.opt_text("items")?.unwrap_or_else(|| "[]".to_owned()),
            margin_sum: row
                .opt_text("margin_sum")?
                .map_or_else(|| row.text("total_sum"), Ok)?,
            margin_net_sum: row
                .opt_text("margin_net_sum")?
                .map_or_else(|| row.text("net_sum"), Ok)?,
        }),
    };
    Ok(DealRow {
        order_id: row.int("order_id")?,
        facts,
        observed_at: row.opt_int("observed_at")?,
        deleted_observed_at: row.opt_int("deleted_observed_at")?,
        merged_into: row.opt_int("merged_into")?,
        derived: Derived {
            deleted: row.int("deleted")? != 0,
            amount: row.opt_text("amount")?,
            funnel_id: row.opt_text("funnel_id")?,
            stage_group: row.opt_text("stage_group")?,
            outcome: row.opt_text("outcome")?,
            closed_at: row.opt_int("closed_at")?,
            last_open_stage: row.opt_text("last_open_stage")?,
            excluded: row.int("excluded")? != 0,
            updated_at: row.int("updated_at")?,
        },
    })
}

/// Writes whole rows (multi-row upserts).
pub(crate) async fn write(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
    rows: &[&DealRow],
) -> Result<(), StoreError> {
    let set: Vec<String> = COLUMNS
        .split(',')
        .map(|c| format!("{0} = excluded.{0}", c.trim()))
        .collect();
    let on_conflict = format!(
        " ON CONFLICT (integration_id, order_id) DO UPDATE SET {}",
        set.join(", ")
    );
    for chunk in cached_chunks(rows, MAX_BINDS / (COLUMN_COUNT + 2)) {
        let mut sql = Sql::new(&format!(
            "INSERT INTO deals (integration_id, order_id, {COLUMNS}) VALUES "
        ));
        for (i, deal) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                let f = deal.facts.as_ref();
                let text = |get: fn(&Facts) -> &Option<String>| f.and_then(|f| get(f).clone());
                let int = |get: fn(&Facts) -> Option<i64>| f.and_then(get);
                r.v(integration.to_string())
                    .v(deal.order_id)
                    .v(text(|f| &f.number))
                    .v(text(|f| &f.external_id))
                    .v(f.map(|f| f.site.clone()))
                    .v(f.map(|f| f.status_code.clone()))
                    .v(text(|f| &f.status_group))
                    .v(f.map(|f| f.total_sum.clone()))
                    .v(f.map(|f| f.delivery_cost.clone()))
                    .v(f.map(|f| f.net_sum.clone()))
                    .v(text(|f| &f.currency))
                    .v(int(|f| f.manager_id))
                    .v(text(|f| &f.manager_name))
                    .v(text(|f| &f.manager_email))
                    .v(text(|f| &f.manager_phone))
                    .v(int(|f| f.contact_id))
                    .v(text(|f| &f.contact_name))
                    .v(text(|f| &f.contact_phones))
                    .v(text(|f| &f.contact_emails))
                    .v(int(|f| f.company_id))
                    .v(text(|f| &f.company_name))
                    .v(text(|f| &f.utm_source))
                    .v(text(|f| &f.utm_medium))
                    .v(text(|f| &f.utm_campaign))
                    .v(text(|f| &f.utm_keyword))
                    .v(text(|f| &f.utm_content))
                    .v(text(|f| &f.client_id))
                    .v(f.map(|f| f.custom_fields.clone()))
                    .v(f.map(|f| f.created_at))
                    .v(int(|f| f.stage_entered_at))
                    .v(deal.observed_at)
                    .v(deal.deleted_observed_at)
                    .v(deal.merged_into)
                    .v(i64::from(deal.derived.deleted))
                    .v(deal.derived.amount.clone())
                    .v(deal.derived.funnel_id.clone())
                    .v(deal.derived.stage_group.clone())
                    .v(deal.derived.outcome.clone())
                    .v(deal.derived.closed_at)
                    .v(deal.derived.last_open_stage.clone())
                    .v(deal.derived.updated_at)
                    .v(text(|f| &f.order_type))
                    .v(text(|f| &f.order_method))
                    .v(text(|f| &f.purchase_sum))
                    .v(text(|f| &f.paid_sum))
                    .v(int(|f| f.paid_at))
                    .v(f.map(|f| f.items.clone()))
                    .v(f.map(|f| f.margin_sum.clone()))
                    .v(f.map(|f| f.margin_net_sum.clone()))
                    .v(i64::from(deal.derived.excluded));
            });
        }
        sql.push(&on_conflict);
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing deals"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_list_matches_its_count() {
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    }
}
