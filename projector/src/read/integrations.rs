//! The integration JSON of DESIGN §4 with health and counters, from the read model.

use chrono::{DateTime, Utc};
use dealflow_shared::events::IntegrationId;
use dealflow_shared::secrets::SecretKeys;
use serde::Serialize;
use sqlx::any::AnyRow;
use url::Url;

use crate::derive::Markers;
use crate::store::values::{Columns as _, time};
use crate::store::{Sql, Store, StoreError};

/// One integration as the API shows it. Never holds the API key or its ciphertext.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Integration)]
pub struct IntegrationView {
    #[schema(value_type = String, format = Uuid)]
    pub id: IntegrationId,
    pub crm_url: String,
    pub api_key_hint: String,
    pub webhook_url: String,
    pub active: bool,
    pub default_funnel: bool,
    pub include_delivery_cost: bool,
    pub backfill_days: i64,
    pub created_at: DateTime<Utc>,
    pub health: Health,
    pub last_webhook_at: Option<DateTime<Utc>>,
    pub last_reconciled_at: Option<DateTime<Utc>>,
    pub deals_count: i64,
}

impl IntegrationView {
    /// The markers the view applies.
    pub fn markers(&self) -> Markers {
        Markers {
            default_funnel: self.default_funnel,
            include_delivery_cost: self.include_delivery_cost,
        }
    }
}

/// The health as the enricher last reported it (`pending` until it has).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub message: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
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

const SELECT: &str = "SELECT i.id, i.crm_url, i.api_key_hint, i.active, i.default_funnel, \
    i.include_delivery_cost, i.backfill_days, i.webhook_token_generation, i.created_at, \
    h.status, h.message, h.checked_at, a.last_webhook_at, a.last_reconciled_at, \
    (SELECT COUNT(*) FROM deals d WHERE d.integration_id = i.id AND d.deleted = 0) \
    AS deals_count \
    FROM integrations i \
    LEFT JOIN integration_health h ON h.integration_id = i.id \
    LEFT JOIN integration_activity a ON a.integration_id = i.id";

/// Every integration, oldest first.
pub async fn list(
    store: &Store,
    urls: &WebhookUrls<'_>,
) -> Result<Vec<IntegrationView>, StoreError> {
    let rows = Sql::new(&format!("{SELECT} ORDER BY i.created_at, i.id"))
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
) -> Result<Option<IntegrationView>, StoreError> {
    let mut sql = Sql::new(&format!("{SELECT} WHERE i.id = "));
    sql.bind(id.to_string());
    let row = sql
        .read_optional(store)
        .await
        .map_err(StoreError::query("reading an integration"))?;
    row.map(|row| view(&row, urls)).transpose()
}

/// The markers of one integration, `None` when unknown or removed (cheaper than [`get`]).
pub async fn markers(store: &Store, id: IntegrationId) -> Result<Option<Markers>, StoreError> {
    let mut sql =
        Sql::new("SELECT default_funnel, include_delivery_cost FROM integrations WHERE id = ");
    sql.bind(id.to_string());
    let row = sql
        .read_optional(store)
        .await
        .map_err(StoreError::query("reading markers"))?;
    row.map(|row| {
        Ok(Markers {
            default_funnel: row.int("default_funnel")? != 0,
            include_delivery_cost: row.int("include_delivery_cost")? != 0,
        })
    })
    .transpose()
}

fn view(row: &AnyRow, urls: &WebhookUrls<'_>) -> Result<IntegrationView, StoreError> {
    let raw_id = row.text("id")?;
    let id: IntegrationId = raw_id.parse().map_err(|_| StoreError::Corrupt {
        what: "an integration id",
        detail: raw_id,
    })?;
    let opt_time = |column| row.opt_int(column)?.map(time).transpose();
    Ok(IntegrationView {
        id,
        crm_url: row.text("crm_url")?,
        api_key_hint: row.text("api_key_hint")?,
        webhook_url: urls.url(id, row.int("webhook_token_generation")?),
        active: row.int("active")? != 0,
        default_funnel: row.int("default_funnel")? != 0,
        include_delivery_cost: row.int("include_delivery_cost")? != 0,
        backfill_days: row.int("backfill_days")?,
        created_at: time(row.int("created_at")?)?,
        health: Health {
            status: row
                .opt_text("status")?
                .unwrap_or_else(|| "pending".to_owned()),
            message: row.opt_text("message")?,
            checked_at: opt_time("checked_at")?,
        },
        last_webhook_at: opt_time("last_webhook_at")?,
        last_reconciled_at: opt_time("last_reconciled_at")?,
        deals_count: row.int("deals_count")?,
    })
}
