//! `PATCH /api/v1/integrations/{id}/stage-mapping` (DESIGN §4): the user's outcome overrides
//! and excluded statuses. The rules travel in the integration's settings, so the projector
//! re-derives every deal from stored facts with no RetailCRM call; a code must be one of the
//! account's statuses (followed from the `funnels` topic).

use axum::Extension;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dealflow_shared::http::ApiError;
use dealflow_shared::stages::{StageMapping, StageMappingPatch, patch_rules};
use dealflow_shared::tenants::Scope;

use crate::api::{bad_json, find, next_update, store};
use crate::openapi;
use crate::state::{AppState, Write};

/// `PATCH /api/v1/integrations/{id}/stage-mapping`
#[utoipa::path(
    patch,
    path = "/api/v1/integrations/{id}/stage-mapping",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    request_body(content = StageMappingPatch, description = "By status code: `{\"outcome\": \"won\"|\"lost\"|\"open\"|null, \"excluded\": bool}`, either key may be left out; `outcome: null` returns to the group's default."),
    responses(
        (status = 200, description = "Changed; every deal is re-derived from stored facts (no RetailCRM call) before this answer.", body = StageMapping),
        (status = 400, description = "`invalid_request`: malformed JSON, an unknown key or a bad outcome.", body = openapi::ErrorBody),
        (status = 404, description = "There is no integration with this id.", body = openapi::ErrorBody),
        (status = 422, description = "`unknown_status`: a code that is not one of the account's statuses (named in the message).", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: nothing was saved; `read_model_behind`: saved, but not visible yet.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    body: Result<Json<StageMappingPatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (id, mut config) = find(&state, &scope, &id)?;
    let Json(patch) = body.map_err(bad_json)?;
    let mut unknown = state.statuses.unknown_among(id, patch.0.keys()).await;
    if !unknown.is_empty() {
        unknown.sort();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_status",
            format!(
                "The account has no status {}: a mapping names the codes GET \
                 /api/v1/integrations/{id}/stage-mapping lists.",
                unknown
                    .iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let before = config.stage_mapping.clone();
    patch_rules(&mut config.stage_mapping, &patch);
    if config.stage_mapping != before {
        config.updated_at = next_update(config.updated_at);
        let at = store(&state, id, config.clone()).await?;
        tracing::info!(integration_id = %id, rules = config.stage_mapping.len(), "stage mapping changed");
        state.read_your_write(id, Write::Changed, at).await?;
    }
    let mapping = StageMapping::of(state.statuses.statuses(id), &config.stage_mapping);
    Ok(Json(mapping).into_response())
}
