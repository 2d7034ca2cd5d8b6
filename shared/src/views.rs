//! Response shapes that more than one service answers with (DESIGN §4), one type each: the
//! handlers serialise it, the OpenAPI document describes it (`ToSchema`) and the pages read it
//! back (`Deserialize`), so the three cannot drift apart.
//!
//! The integration is answered by ingest (after a create or a change, from the settings) and
//! by the projector (from the read model, with health and counters); neither service imports
//! the other, so its shape lives here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::events::{HealthStatus, IntegrationId, Revenue};
use crate::tenants::TenantId;

/// An integration (DESIGN §4). Never holds the API key or its ciphertext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Integration {
    #[schema(value_type = String, format = Uuid)]
    pub id: IntegrationId,
    /// The tenant the integration belongs to (`default` for those created before tenants).
    #[schema(value_type = String, example = "default")]
    pub tenant_id: TenantId,
    /// `https://<account>.<domain>/`, normalised.
    pub crm_url: String,
    /// `…` and the key's last four characters.
    pub api_key_hint: String,
    /// Where RetailCRM triggers send order changes.
    pub webhook_url: String,
    pub active: bool,
    /// Marker: one funnel "default" for every order (on) or one funnel per shop (off).
    pub default_funnel: bool,
    /// Marker: amount = total (on) or total − delivery (off).
    pub include_delivery_cost: bool,
    /// What `amount` counts: `total` (as the delivery marker says), `margin` (that minus the
    /// purchase sum) or `paid` (what the customer paid).
    #[schema(value_type = String, example = "total")]
    pub revenue: Revenue,
    /// Days of past orders loaded on connect.
    pub backfill_days: u32,
    pub created_at: DateTime<Utc>,
    pub health: Health,
    pub last_webhook_at: Option<DateTime<Utc>>,
    pub last_reconciled_at: Option<DateTime<Utc>>,
    /// Deals not deleted.
    pub deals_count: u64,
}

/// The health as the enricher last reported it (`pending` until it has).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, example = "ok")]
    /// `ok`, `auth_failed`, `access_denied`, `unreachable`, `rate_limited` or `pending`.
    pub status: HealthStatus,
    /// A sentence for the user; never contains a secret.
    pub message: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
}

impl Health {
    /// Nothing reported yet.
    pub fn pending() -> Self {
        Self {
            status: HealthStatus::Pending,
            message: None,
            checked_at: None,
        }
    }
}

/// `GET /api/v1/integrations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IntegrationList {
    pub items: Vec<Integration>,
}
