//! The OpenAPI 3 document of what ingest serves (DESIGN §4): the webhook and the integration
//! settings API, generated from the handlers' `#[utoipa::path]` annotations.
//!
//! The response types below exist for the document only: the handlers build the same JSON
//! with `json!` (see [`crate::view`]). An all-in-one process merges this document with the
//! projector's, whose `Integration` has the same shape with live health and counters.

use chrono::{DateTime, NaiveDate, Utc};
use dealflow_shared::http::openapi::BearerScheme;
pub(crate) use dealflow_shared::http::openapi::ErrorBody;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::api::{CreateIntegration, PatchIntegration, Resync};

/// `202` of the webhook: `OrderChanged` is durably on the bus.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookAccepted {
    #[schema(example = true)]
    accepted: bool,
}

/// `202` of a re-sync request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResyncAccepted {
    #[schema(example = true)]
    accepted: bool,
    since: NaiveDate,
}

/// An integration (DESIGN §4). The API key itself is never returned.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Integration)]
pub(crate) struct IntegrationDoc {
    #[schema(format = Uuid)]
    id: String,
    /// `https://<account>.<domain>/`, normalised.
    crm_url: String,
    /// `…` and the key's last four characters.
    api_key_hint: String,
    /// Where RetailCRM triggers send order changes.
    webhook_url: String,
    active: bool,
    default_funnel: bool,
    include_delivery_cost: bool,
    backfill_days: i64,
    created_at: DateTime<Utc>,
    health: Health,
    last_webhook_at: Option<DateTime<Utc>>,
    last_reconciled_at: Option<DateTime<Utc>>,
    deals_count: i64,
}

/// The health as the enricher last reported it (`pending` until it has).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, `auth_failed`, `access_denied`, `unreachable`, `rate_limited` or `pending`.
    status: String,
    message: Option<String>,
    checked_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/integrations`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IntegrationList {
    items: Vec<IntegrationDoc>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dealflow",
        description = "RetailCRM orders as deals: webhooks, integration settings and the read model (DESIGN §4)."
    ),
    paths(
        crate::webhook::handle,
        crate::api::create,
        crate::api::update,
        crate::api::remove,
        crate::api::resync,
    ),
    components(schemas(
        ErrorBody,
        WebhookAccepted,
        ResyncAccepted,
        IntegrationDoc,
        CreateIntegration,
        PatchIntegration,
        Resync
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "webhook", description = "RetailCRM triggers; the token in the path is the credential."),
        (name = "integrations", description = "Integration settings, behind the API token."),
    ),
)]
struct IngestDoc;

#[derive(OpenApi)]
#[openapi(
    paths(crate::api::list, crate::api::get),
    components(schemas(IntegrationList))
)]
struct SettingsReadsDoc;

/// The document of ingest's routes; with `serve_reads` (see [`crate::Ingest::router`]) also
/// `GET /api/v1/integrations[/{id}]` from the settings alone.
pub fn openapi(serve_reads: bool) -> utoipa::openapi::OpenApi {
    let mut doc = IngestDoc::openapi();
    if serve_reads {
        doc.merge(SettingsReadsDoc::openapi());
    }
    doc
}
