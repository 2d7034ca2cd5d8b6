//! The integration of DESIGN §4 ([`Integration`], shared with ingest's answers) with health
//! and counters, from the read model.

use crate::store::Row;
use dealflow_shared::events::{HealthStatus, IntegrationId, Revenue};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::tenants::TenantId;
use dealflow_shared::views::{Health, Integration};
use url::Url;

use crate::derive::{Mapping, Markers};
use crate::store::values::{Columns as _, time};
use crate::store::{Sql, Store, StoreError};

/// The markers an integration's view applies.
pub fn markers_of(view: &Integration) -> Markers {
    Markers {
        default_funnel: view.default_funnel,
        include_delivery_cost: view.include_delivery_cost,
        revenue: view.revenue,
    }
}

/// The markers of a row of `integrations`.
pub(crate) fn stored_markers(row: &Row) -> Result<Markers, StoreError> {
    let revenue = row.text("revenue")?;
    Ok(Markers {
        default_funnel: row.int("default_funnel")? != 0,
        include_delivery_cost: row.int("include_delivery_cost")? != 0,
        revenue: Revenue::parse(&revenue).ok_or(StoreError::Corrupt {
            what: "a revenue setting",
            detail: revenue,
        })?,
    })
}

/// The stage mapping of a row of `integrations`.
pub(crate) fn stored_mapping(row: &Row) -> Result<Mapping, StoreError> {
    let text = row.text("stage_mapping")?;
    serde_json::from_str(&text)
        .map(Mapping)
        .map_err(|_| StoreError::Corrupt {
            what: "a stage mapping",
            detail: text,
        })
}

/// The stage mapping of one integration (empty when unknown).
pub async fn mapping(store: &Store, id: IntegrationId) -> Result<Mapping, StoreError> {
    let mut sql = Sql::new("SELECT stage_mapping FROM integrations WHERE id = ");
    sql.bind(id.to_string());
    let row = sql
        .read_optional(store)
        .await
        .map_err(StoreError::query("reading a stage mapping"))?;
    row.map(|row| stored_mapping(&row))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// What the view needs to show webhook URLs.
#[derive(Debug)]
pub struct WebhookUrls<'a> {
    pub keys: &'a SecretKeys,
    pub public_url: &'a Url,
}

impl WebhookUrls<'_> {
    fn url(&self, id: IntegrationId, generation: i64) -> String {
        let token = self
            .keys
            .webhook_token(id, u32::try_from(generation).unwrap_or_default());
        format!(
            "{}/hooks/retailcrm/{token}",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

const SELECT: &str = "SELECT i.id, i.tenant_id, i.crm_url, i.api_key_hint, i.active, i.default_funnel, \
    i.include_delivery_cost, i.revenue, i.backfill_days, i.webhook_token_generation, i.created_at, \
    h.status, h.message, h.checked_at, a.last_webhook_at, a.last_reconciled_at, \
    (SELECT COUNT(*) FROM deals d WHERE d.integration_id = i.id AND d.deleted = 0 \
    AND d.excluded = 0) \
    AS deals_count \
    FROM integrations i \
    LEFT JOIN integration_health h ON h.integration_id = i.id \
    LEFT JOIN integration_activity a ON a.integration_id = i.id";

/// Every integration of `tenant` (of every tenant with `None`), oldest first.
pub async fn list(
    store: &Store,
    urls: &WebhookUrls<'_>,
    tenant: Option<&TenantId>,
) -> Result<Vec<Integration>, StoreError> {
    let mut sql = Sql::new(SELECT);
    if let Some(tenant) = tenant {
        sql.push(" WHERE i.tenant_id = ").bind(tenant.to_string());
    }
    sql.push(" ORDER BY i.created_at, i.id");
    let rows = sql
        .read_all(store)
        .await
        .map_err(StoreError::query("listing integrations"))?;
    rows.iter().map(|row| view(row, urls)).collect()
}

/// One integration, `None` when unknown or removed.
pub async fn get(
    store: &Store,
    urls: &WebhookUrls<'_>,
    id: IntegrationId,
) -> Result<Option<Integration>, StoreError> {
    let mut sql = Sql::new(&format!("{SELECT} WHERE i.id = "));
    sql.bind(id.to_string());
    let row = sql
        .read_optional(store)
        .await
        .map_err(StoreError::query("reading an integration"))?;
    row.map(|row| view(&row, urls)).transpose()
}

/// The tenant and markers of one integration, `None` when unknown or removed (cheaper than
/// [`get`]).
pub async fn markers(
    store: &Store,
    id: IntegrationId,
) -> Result<Option<(TenantId, Markers)>, StoreError> {
    let mut sql = Sql::new(
        "SELECT tenant_id, default_funnel, include_delivery_cost, revenue FROM integrations \
         WHERE id = ",
    );
    sql.bind(id.to_string());
    let row = sql
        .read_optional(store)
        .await
        .map_err(StoreError::query("reading markers"))?;
    row.map(|row| Ok((TenantId(row.text("tenant_id")?), stored_markers(&row)?)))
        .transpose()
}

fn view(row: &Row, urls: &WebhookUrls<'_>) -> Result<Integration, StoreError> {
    let raw_id = row.text("id")?;
    let id: IntegrationId = raw_id.parse().map_err(|_| StoreError::Corrupt {
        what: "an integration id",
        detail: raw_id,
    })?;
    let opt_time = |column| row.opt_int(column)?.map(time).transpose();
    let status = match row.opt_text("status")? {
        None => HealthStatus::Pending,
        Some(text) => {
            serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| {
                StoreError::Corrupt {
                    what: "a health status",
                    detail: text,
                }
            })?
        }
    };
    let count = |column| {
        let n = row.int(column)?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt {
            what: column,
            detail: n.to_string(),
        })
    };
    let markers = stored_markers(row)?;
    Ok(Integration {
        id,
        tenant_id: TenantId(row.text("tenant_id")?),
        crm_url: row.text("crm_url")?,
        api_key_hint: row.text("api_key_hint")?,
        webhook_url: urls.url(id, row.int("webhook_token_generation")?),
        active: row.int("active")? != 0,
        default_funnel: row.int("default_funnel")? != 0,
        include_delivery_cost: markers.include_delivery_cost,
        revenue: markers.revenue,
        backfill_days: u32::try_from(count("backfill_days")?).unwrap_or(u32::MAX),
        created_at: time(row.int("created_at")?)?,
        health: Health {
            status,
            message: row.opt_text("message")?,
            checked_at: opt_time("checked_at")?,
        },
        last_webhook_at: opt_time("last_webhook_at")?,
        last_reconciled_at: opt_time("last_reconciled_at")?,
        deals_count: count("deals_count")?,
    })
}
