//! The OpenAPI 3 document of the read API (DESIGN §4), generated from the handlers'
//! `#[utoipa::path]` annotations and the views' `ToSchema`.
//!
//! The handlers answer with the page and list types below; the query parameter types exist for
//! the document only (the handlers parse the query strictly by hand, see `params`).

use dealflow_shared::http::openapi::BearerScheme;
pub(crate) use dealflow_shared::http::openapi::ErrorBody;
use serde::Serialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::read::people::{ContactView, ManagerView};
use dealflow_shared::views::IntegrationList;

use super::reads::DealPage;

/// One page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactPage {
    pub items: Vec<ContactView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The responsible managers of an integration's deals.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ManagerList {
    pub items: Vec<ManagerView>,
}

/// Filters of the deal list and its CSV export; unknown or repeated parameters are a `400`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the document only
pub(crate) struct DealFilters {
    /// The shop code.
    site: Option<String>,
    /// A funnel id from `/funnels`.
    funnel_id: Option<String>,
    /// A stage (status) code.
    stage: Option<String>,
    /// `open`, `won` or `lost`.
    outcome: Option<String>,
    /// The responsible manager's id.
    manager_id: Option<u64>,
    /// Deals changed at or after this RFC 3339 time.
    changed_since: Option<chrono::DateTime<chrono::Utc>>,
    /// `false` leaves deleted deals out (they are listed by default, with `deleted: true`).
    deleted: Option<bool>,
    /// `true` also lists deals whose current stage the stage mapping excludes (left out by
    /// default).
    excluded: Option<bool>,
}

/// Keyset paging.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the document only
pub(crate) struct Paging {
    /// Page size, 1 to 500 (default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "dealflow read API", description = "The raw-deals read model (DESIGN §4)."),
    paths(
        super::list_integrations,
        super::get_integration,
        super::list_deals,
        super::export_deals,
        super::export_deal_items,
        super::get_deal,
        super::list_funnels,
        super::get_stage_mapping,
        super::list_contacts,
        super::list_managers,
        super::cockpit::get_sync,
        super::cockpit::get_trace,
        super::cockpit::list_dead_letters,
    ),
    components(schemas(ErrorBody, IntegrationList, DealPage, ContactPage, ManagerList)),
    modifiers(&BearerScheme),
    tags((name = "read", description = "The read model, behind the API token.")),
)]
struct ReadApiDoc;

/// The OpenAPI document of the read API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ReadApiDoc::openapi()
}
