//! The read API (DESIGN §4), every route behind the bearer token.
//!
//! Each `/integrations/{id}/…` handler first resolves the integration in the request's tenant
//! scope (404 when unknown, removed or another tenant's), then queries with that id only.

mod cockpit;
mod csv;
mod openapi;
mod params;
mod reads;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dealflow_shared::http::ApiError;
use dealflow_shared::tenants::{Authenticator, Scope};

pub use openapi::openapi;
pub use params::{DEFAULT_LIMIT, MAX_LIMIT};
pub use reads::{DealPage, Reads};

use crate::read::deals::DealView;
use crate::read::funnels::FunnelView;
use dealflow_shared::stages::StageMapping;
use dealflow_shared::views::{Integration, IntegrationList};
use params::{DEAL_FILTERS, Params};

/// The read API routes (the operator's or a tenant's token on all of them; a tenant sees
/// only its own integrations).
pub(crate) fn router(state: Reads, auth: Authenticator) -> Router {
    Router::new()
        .route("/api/v1/integrations", get(list_integrations))
        .route("/api/v1/integrations/{id}", get(get_integration))
        .route("/api/v1/integrations/{id}/deals", get(list_deals))
        .route("/api/v1/integrations/{id}/deals.csv", get(export_deals))
        .route(
            "/api/v1/integrations/{id}/deal-items.csv",
            get(export_deal_items),
        )
        .route("/api/v1/integrations/{id}/deals/{order_id}", get(get_deal))
        .route("/api/v1/integrations/{id}/funnels", get(list_funnels))
        .route(
            "/api/v1/integrations/{id}/stage-mapping",
            get(get_stage_mapping),
        )
        .route("/api/v1/integrations/{id}/contacts", get(list_contacts))
        .route("/api/v1/integrations/{id}/managers", get(list_managers))
        .route("/api/v1/integrations/{id}/sync", get(cockpit::get_sync))
        .route(
            "/api/v1/integrations/{id}/deals/{order_id}/trace",
            get(cockpit::get_trace),
        )
        .route(
            "/api/v1/integrations/{id}/dead-letters",
            get(cockpit::list_dead_letters),
        )
        .route_layer(middleware::from_fn_with_state(auth, Authenticator::require))
        .with_state(state)
}

/// `GET /api/openapi.json`: the document of the read API (no token: it holds no data).
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// `GET /api/v1/integrations`
#[utoipa::path(
    get,
    path = "/api/v1/integrations",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    responses(
        (status = 200, description = "Every integration, oldest first.", body = IntegrationList),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn list_integrations(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
) -> Result<Response, ApiError> {
    Ok(Json(state.integrations(&scope).await?).into_response())
}

/// `GET /api/v1/integrations/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 200, description = "The integration with its health and counters.", body = Integration),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn get_integration(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.integration(&scope, &id).await?).into_response())
}

/// `GET /api/v1/integrations/{id}/deals`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/deals",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id."), openapi::Paging, openapi::DealFilters),
    responses(
        (status = 200, description = "One page of deals, newest first.", body = DealPage),
        (status = 400, description = "An unknown, repeated or malformed query parameter.", body = openapi::ErrorBody),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn list_deals(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(state.deal_page(&scope, &id, query.as_deref()).await?).into_response())
}

/// `GET /api/v1/integrations/{id}/deals.csv`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/deals.csv",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id."), openapi::DealFilters),
    responses(
        (status = 200, description = "Every matching deal as CSV (UTF-8, a header row; phones and emails joined with `; `), then one `cf_<code>` column per custom field code of the integration (a multiselect's values joined with `; `).", body = String, content_type = "text/csv"),
        (status = 400, description = "An unknown, repeated or malformed query parameter.", body = openapi::ErrorBody),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn export_deals(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let filter = Params::parse(query.as_deref(), DEAL_FILTERS)?.deal_filter()?;
    let (id, markers) = state.resolve(&scope, &id).await?;
    let custom_fields = csv::custom_field_codes(state.store(), id)
        .await
        .map_err(reads::internal)?;
    let export = csv::Export::Deals { custom_fields };
    let body = csv::body(state.store().clone(), id, markers, filter, export);
    Ok(csv_response(body, &format!("deals-{id}.csv")))
}

/// `GET /api/v1/integrations/{id}/deal-items.csv`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/deal-items.csv",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id."), openapi::DealFilters),
    responses(
        (status = 200, description = "One row per order line of every matching deal (UTF-8, a header row): order_id, number, site, offer_id, article, name, quantity, price (after discounts), sum, purchase_price, canceled.", body = String, content_type = "text/csv"),
        (status = 400, description = "An unknown, repeated or malformed query parameter.", body = openapi::ErrorBody),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn export_deal_items(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let filter = Params::parse(query.as_deref(), DEAL_FILTERS)?.deal_filter()?;
    let (id, markers) = state.resolve(&scope, &id).await?;
    let body = csv::body(
        state.store().clone(),
        id,
        markers,
        filter,
        csv::Export::Items,
    );
    Ok(csv_response(body, &format!("deal-items-{id}.csv")))
}

/// A streamed CSV download named `filename`.
fn csv_response(body: axum::body::Body, filename: &str) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /api/v1/integrations/{id}/deals/{order_id}`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/deals/{order_id}",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id."), ("order_id" = u64, Path, description = "The RetailCRM order id.")),
    responses(
        (status = 200, description = "The deal with its `stage_history`, oldest first.", body = DealView),
        (status = 400, description = "The order id is not a positive integer.", body = openapi::ErrorBody),
        (status = 404, description = "Unknown integration, or no such deal.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn get_deal(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path((id, order_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(state.deal(&scope, &id, &order_id, query.as_deref()).await?).into_response())
}

/// `GET /api/v1/integrations/{id}/stage-mapping`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/stage-mapping",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 200, description = "Every status of the account in funnel order, with its group's outcome, the effective one and whether it is excluded.", body = StageMapping),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn get_stage_mapping(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(state.stage_mapping(&scope, &id, query.as_deref()).await?).into_response())
}

/// `GET /api/v1/integrations/{id}/funnels`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/funnels",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 200, description = "The funnels of the current marker, stages in funnel order.", body = Vec<FunnelView>),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn list_funnels(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(state.funnels(&scope, &id, query.as_deref()).await?).into_response())
}

/// `GET /api/v1/integrations/{id}/contacts?limit=&cursor=`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/contacts",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id."), openapi::Paging),
    responses(
        (status = 200, description = "One page of contacts.", body = openapi::ContactPage),
        (status = 400, description = "An unknown, repeated or malformed query parameter.", body = openapi::ErrorBody),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn list_contacts(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(state.contact_page(&scope, &id, query.as_deref()).await?).into_response())
}

/// `GET /api/v1/integrations/{id}/managers`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/managers",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 200, description = "The responsible managers.", body = openapi::ManagerList),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
async fn list_managers(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(state.managers(&scope, &id, query.as_deref()).await?).into_response())
}
