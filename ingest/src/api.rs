//! The integration settings API (bearer token): create, change, delete, re-sync, read.
//!
//! Every change is an `IntegrationConfigured` (the full current settings) or an
//! `IntegrationRemoved` on the compacted `integrations` topic, answered once the bus has it and
//! the read side that serves the GETs shows it (read your writes, DESIGN §4): otherwise
//! `503 read_model_behind`, which says the change was saved.
//! The API key is checked against RetailCRM, sealed, and never returned, logged or published
//! in clear.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use dealflow_shared::bus::Position;
use dealflow_shared::events::{
    Envelope, Event, IntegrationConfigured, IntegrationId, IntegrationRemoved, Revenue,
};
use dealflow_shared::http::ApiError;
use dealflow_shared::tenants::{Scope, TenantId};
use dealflow_shared::views::{Integration, IntegrationList};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::crm_check::check_key;
use crate::openapi;
use crate::state::{AppState, Write};
use crate::view::{integration_view, key_hint};

/// Days of history loaded on connect when the request does not say (issue 7).
pub const DEFAULT_BACKFILL_DAYS: u32 = 30;
/// Upper bound of `backfill_days`: RetailCRM keeps orders for years, but a backfill beyond
/// this is a re-sync with an explicit date.
pub const MAX_BACKFILL_DAYS: u32 = 3650;

/// `POST /api/v1/integrations` body; unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegration {
    /// `https://<account>.retailcrm.ru/` (or .pro, .es, .io, simla.com, simla.io).
    #[schema(example = "https://shop.retailcrm.ru/")]
    crm_url: String,
    /// The RetailCRM API key; checked, sealed, never returned.
    #[schema(value_type = String)]
    api_key: SecretString,
    #[serde(default)]
    default_funnel: bool,
    #[serde(default = "yes")]
    include_delivery_cost: bool,
    /// What `amount` counts: `total` (default), `margin` or `paid`.
    #[serde(default)]
    #[schema(value_type = String, example = "total")]
    revenue: Revenue,
    #[serde(default = "yes")]
    active: bool,
    /// Days of orders loaded on connect (0 to 3650).
    #[serde(default = "default_backfill")]
    #[schema(default = 30, maximum = 3650)]
    backfill_days: u32,
    /// The tenant to create it in (operator token only; default `default`). A tenant token
    /// always creates in its own tenant.
    #[schema(value_type = Option<String>, example = "default")]
    tenant_id: Option<TenantId>,
}

/// `PATCH /api/v1/integrations/{id}` body: any of the fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchIntegration {
    active: Option<bool>,
    default_funnel: Option<bool>,
    include_delivery_cost: Option<bool>,
    /// `total`, `margin` or `paid`: every deal's `amount` follows at once.
    #[schema(value_type = Option<String>, example = "margin")]
    revenue: Option<Revenue>,
    /// A new RetailCRM API key (checked like on connect).
    #[schema(value_type = Option<String>)]
    api_key: Option<SecretString>,
}

fn yes() -> bool {
    true
}

fn default_backfill() -> u32 {
    DEFAULT_BACKFILL_DAYS
}

/// `POST /api/v1/integrations`
#[utoipa::path(
    post,
    path = "/api/v1/integrations",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    request_body = CreateIntegration,
    responses(
        (status = 201, description = "Connected; the key was checked against RetailCRM.", body = Integration),
        (status = 400, description = "`invalid_request`: malformed JSON, an unknown field or a bad value.", body = openapi::ErrorBody),
        (status = 403, description = "`forbidden`: a tenant token named another tenant.", body = openapi::ErrorBody),
        (status = 404, description = "`tenant_not_found`: the operator named a tenant that does not exist.", body = openapi::ErrorBody),
        (status = 422, description = "`invalid_crm_url`, `crm_auth_failed` or `crm_insufficient_access` (names what is missing).", body = openapi::ErrorBody),
        (status = 502, description = "`crm_unreachable`: RetailCRM did not answer.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: the bus did not acknowledge in time (nothing was saved); `read_model_behind`: saved, but the read side did not show it in time (5 s by default); it will shortly, do not repeat the write.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Result<Json<CreateIntegration>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(bad_json)?;
    let tenant_id = owning_tenant(&state, &scope, request.tenant_id.clone())?;
    let api_key = valid_key(&request.api_key)?;
    if request.backfill_days > MAX_BACKFILL_DAYS {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "backfill_days must be from 0 to {MAX_BACKFILL_DAYS}; use a re-sync for older orders."
            ),
        ));
    }
    let url = state
        .crm_policy
        .validate(&request.crm_url)
        .await
        .map_err(invalid_url)?;
    let check = check_key(&state, &url, &api_key).await?;

    let id = IntegrationId::new();
    let now = Utc::now();
    let config = IntegrationConfigured {
        tenant_id,
        crm_url: url.to_string(),
        api_key_sealed: state.keys.seal(id, &api_key),
        api_key_hint: key_hint(api_key.expose_secret()),
        active: request.active,
        default_funnel: request.default_funnel,
        include_delivery_cost: request.include_delivery_cost,
        revenue: request.revenue,
        stage_mapping: Default::default(),
        backfill_days: request.backfill_days,
        webhook_token_generation: 0,
        history_since_id: check.latest_history_id,
        resync: None,
        created_at: now,
        updated_at: now,
    };
    let at = store(&state, id, config.clone()).await?;
    tracing::info!(integration_id = %id, crm = %url, "integration connected");
    state.read_your_write(id, Write::Created, at).await?;
    Ok((
        StatusCode::CREATED,
        Json(integration_view(&state, id, &config)),
    )
        .into_response())
}

/// `PATCH /api/v1/integrations/{id}`
#[utoipa::path(
    patch,
    path = "/api/v1/integrations/{id}",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    request_body = PatchIntegration,
    responses(
        (status = 200, description = "Changed; a marker change re-derives the existing deals.", body = Integration),
        (status = 400, description = "`invalid_request`: malformed JSON, an unknown field or a bad value.", body = openapi::ErrorBody),
        (status = 404, description = "There is no integration with this id.", body = openapi::ErrorBody),
        (status = 422, description = "`invalid_crm_url`, `crm_auth_failed` or `crm_insufficient_access` (names what is missing).", body = openapi::ErrorBody),
        (status = 502, description = "`crm_unreachable`: RetailCRM did not answer.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: the bus did not acknowledge in time (nothing was saved); `read_model_behind`: saved, but the read side did not show it in time (5 s by default); it will shortly, do not repeat the write.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    body: Result<Json<PatchIntegration>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (id, mut config) = find(&state, &scope, &id)?;
    let Json(patch) = body.map_err(bad_json)?;
    if let Some(key) = &patch.api_key {
        let key = valid_key(key)?;
        let url = state
            .crm_policy
            .normalise(&config.crm_url)
            .map_err(invalid_url)?;
        check_key(&state, &url, &key).await?;
        config.api_key_sealed = state.keys.seal(id, &key);
        config.api_key_hint = key_hint(key.expose_secret());
    }
    config.active = patch.active.unwrap_or(config.active);
    config.default_funnel = patch.default_funnel.unwrap_or(config.default_funnel);
    config.include_delivery_cost = patch
        .include_delivery_cost
        .unwrap_or(config.include_delivery_cost);
    config.revenue = patch.revenue.unwrap_or(config.revenue);
    config.updated_at = next_update(config.updated_at);
    let at = store(&state, id, config.clone()).await?;
    state.read_your_write(id, Write::Changed, at).await?;
    Ok(Json(integration_view(&state, id, &config)).into_response())
}

/// `DELETE /api/v1/integrations/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/integrations/{id}",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "There is no integration with this id.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: the bus did not acknowledge in time (nothing was saved); `read_model_behind`: saved, but the read side did not show it in time (5 s by default); it will shortly, do not repeat the write.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, config) = find(&state, &scope, &id)?;
    let envelope = Envelope::new(
        id,
        Event::IntegrationRemoved(IntegrationRemoved {
            removed_at: next_update(config.updated_at),
        }),
    );
    let at = state
        .publish(&state.topics.integrations(), &envelope)
        .await?;
    state.registry.apply(&envelope);
    tracing::info!(integration_id = %id, "integration removed");
    state.read_your_write(id, Write::Removed, at).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/integrations`
#[utoipa::path(
    get,
    path = "/api/v1/integrations",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    responses(
        (status = 200, description = "Every integration.", body = IntegrationList),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> Json<IntegrationList> {
    let items = state
        .registry
        .list()
        .iter()
        .filter(|(_, config)| scope.allows(&config.tenant_id))
        .map(|(id, config)| integration_view(&state, *id, config))
        .collect();
    Json(IntegrationList { items })
}

/// `GET /api/v1/integrations/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{id}",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    responses(
        (status = 200, description = "The integration.", body = Integration),
        (status = 404, description = "There is no integration with this id.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, config) = find(&state, &scope, &id)?;
    Ok(Json(integration_view(&state, id, &config)).into_response())
}

/// The integration, if `scope` may see it: another tenant's integration is
/// `404 integration_not_found` exactly like one that does not exist (existence is never leaked).
pub(crate) fn find(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> Result<(IntegrationId, IntegrationConfigured), ApiError> {
    let not_found = || {
        ApiError::not_found(
            "integration_not_found",
            "There is no integration with this id.",
        )
    };
    let id: IntegrationId = id.parse().map_err(|_| not_found())?;
    state
        .registry
        .get(id)
        .filter(|config| scope.allows(&config.tenant_id))
        .map(|config| (id, config))
        .ok_or_else(not_found)
}

/// The tenant a new integration belongs to: a tenant token's own; for the operator the one
/// named (which must exist), else `default`.
fn owning_tenant(
    state: &AppState,
    scope: &Scope,
    requested: Option<TenantId>,
) -> Result<TenantId, ApiError> {
    match (scope.tenant(), requested) {
        (Some(own), Some(named)) if *own != named => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "A tenant token creates integrations in its own tenant only; leave tenant_id out.",
        )),
        (Some(own), _) => Ok(own.clone()),
        (None, None) => Ok(TenantId::default_tenant()),
        (None, Some(named)) if named.is_default() || state.tenants.tenant(&named).is_some() => {
            Ok(named)
        }
        (None, Some(_)) => Err(ApiError::not_found(
            "tenant_not_found",
            "There is no tenant with this id.",
        )),
    }
}

/// Publishes the integration's settings and applies them to this process's registry; returns
/// where they landed (the handler then waits for the read side, the key re-seal does not).
pub(crate) async fn store(
    state: &AppState,
    id: IntegrationId,
    config: IntegrationConfigured,
) -> Result<Position, ApiError> {
    let envelope = Envelope::new(id, Event::IntegrationConfigured(config));
    let at = state
        .publish(&state.topics.integrations(), &envelope)
        .await?;
    state.registry.apply(&envelope);
    Ok(at)
}

/// A strictly later timestamp, so a change is never ordered before the version it replaces
/// even when clocks of two ingest processes disagree slightly.
pub(crate) fn next_update(previous: DateTime<Utc>) -> DateTime<Utc> {
    Utc::now().max(previous + chrono::Duration::microseconds(1))
}

fn valid_key(key: &SecretString) -> Result<SecretString, ApiError> {
    let trimmed = key.expose_secret().trim();
    if trimmed.is_empty() || trimmed.len() > 256 || trimmed.chars().any(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "api_key must be the RetailCRM API key: non-empty, without spaces.",
        ));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

fn invalid_url(e: crate::crm_url::CrmUrlError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_crm_url",
        e.to_string(),
    )
}

pub(crate) fn bad_json(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large for an integration's settings.",
        );
    }
    // The rejection text names the field and the problem but never echoes the values.
    ApiError::bad_request("invalid_request", rejection.body_text())
}
