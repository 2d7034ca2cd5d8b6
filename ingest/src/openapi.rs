//! The OpenAPI 3 document of what ingest serves (DESIGN §4): the webhook and the integration
//! settings API, generated from the handlers' `#[utoipa::path]` annotations.
//!
//! The handlers answer with the types the document names: the integration is
//! [`dealflow_shared::views::Integration`] (the projector answers with the same type, with live
//! health and counters), the acknowledgements are below.

use chrono::NaiveDate;
use dealflow_shared::http::openapi::BearerScheme;
pub(crate) use dealflow_shared::http::openapi::ErrorBody;
use dealflow_shared::stages::{StageMapping, StageMappingItem, StageMappingPatch, StageRulePatch};
use dealflow_shared::views::{Integration, IntegrationList};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::api::{CreateIntegration, PatchIntegration};
use crate::order_actions::OrderQueued;
use crate::resync::Resync;

/// `202` of the webhook: `OrderChanged` is durably on the bus.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    #[schema(example = true)]
    pub accepted: bool,
}

/// `202` of a re-sync request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResyncAccepted {
    #[schema(example = true)]
    pub accepted: bool,
    pub since: NaiveDate,
    /// The last day loaded (`null`: up to today).
    pub until: Option<NaiveDate>,
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
        crate::resync::resync,
        crate::order_actions::refetch,
        crate::order_actions::retry,
        crate::stage_mapping::update,
        crate::tenants_api::create,
        crate::tenants_api::list,
        crate::tenants_api::remove,
        crate::tenants_api::issue_token,
        crate::tenants_api::list_tokens,
        crate::tenants_api::revoke_token,
    ),
    components(schemas(
        ErrorBody,
        WebhookAccepted,
        ResyncAccepted,
        OrderQueued,
        Integration,
        CreateIntegration,
        PatchIntegration,
        Resync,
        StageMapping,
        StageMappingItem,
        StageMappingPatch,
        StageRulePatch,
        crate::tenants_api::NameBody,
        crate::tenants_api::Tenant,
        crate::tenants_api::TenantList,
        crate::tenants_api::TenantToken,
        crate::tenants_api::TenantTokenList,
        crate::tenants_api::IssuedToken,
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "webhook", description = "RetailCRM triggers; the token in the path is the credential."),
        (name = "integrations", description = "Integration settings, behind the operator or a tenant token."),
        (name = "tenants", description = "Tenants and their tokens, behind the operator token."),
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
