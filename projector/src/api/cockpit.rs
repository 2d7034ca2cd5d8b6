//! The operator's read routes (DESIGN §4): sync progress, an order's trace, dead letters.
//! Re-fetch, retry and re-sync are writes: ingest serves them.

use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use dealflow_shared::http::ApiError;
use dealflow_shared::tenants::Scope;

use super::openapi;
use super::reads::Reads;
use crate::read::cockpit::{DeadLetterList, SyncView, TraceList};

/// `GET /api/v1/integrations/{id}/sync`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/sync",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 200, description = "The history cursor, the last reconciliation and its interval, and the current or last backfill / re-sync with its progress.", body = SyncView),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub(super) async fn get_sync(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(state.sync(&scope, &id, query.as_deref()).await?).into_response())
}

/// `GET /api/v1/integrations/{id}/deals/{order_id}/trace`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/deals/{order_id}/trace",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The integration id."),
        ("order_id" = u64, Path, description = "RetailCRM's order id."),
    ),
    responses(
        (status = 200, description = "The order's sync log, oldest first (the newest 200 entries at most); empty for an order dealflow never heard of.", body = TraceList),
        (status = 400, description = "`invalid_order_id`.", body = openapi::ErrorBody),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub(super) async fn get_trace(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path((id, order_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let items = state
        .trace(&scope, &id, &order_id, query.as_deref())
        .await?;
    Ok(Json(TraceList { items }).into_response())
}

/// `GET /api/v1/integrations/{id}/dead-letters`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}/dead-letters",
    tag = "read",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 200, description = "What could not be processed for this integration and has not got through since, newest first.", body = DeadLetterList),
        (status = 404, description = "Unknown or removed integration.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub(super) async fn list_dead_letters(
    State(state): State<Reads>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let items = state.dead_letters(&scope, &id, query.as_deref()).await?;
    Ok(Json(DeadLetterList { items }).into_response())
}
