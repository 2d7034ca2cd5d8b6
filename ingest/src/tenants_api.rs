//! The tenants API (operator token only, DESIGN §4 "Tenants and tokens"): tenants, and the
//! tokens that act for them.
//!
//! Every change is a record on the compacted `tenants` topic, answered once the bus has it and
//! this process's registry shows it (the GETs read that registry). A token appears in clear
//! once, in the response that issued it; the topic and every other answer hold only its keyed
//! hash and its hint.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use dealflow_shared::bus::OutRecord;
use dealflow_shared::http::ApiError;
use dealflow_shared::tenants::{
    Scope, TenantConfigured, TenantEvent, TenantId, TenantRecord, TenantRemoved, TenantTokenIssued,
    TenantTokenRevoked, TokenState, token,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::openapi;
use crate::state::AppState;

/// `POST /api/v1/tenants` and `POST /api/v1/tenants/{id}/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// What people call it (1 to 100 characters).
    #[schema(example = "Acme cabinet")]
    name: String,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    #[schema(example = "default")]
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    pub items: Vec<Tenant>,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantToken {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub name: String,
    /// `dft_…` and the token's last four characters.
    pub token_hint: String,
    pub created_at: DateTime<Utc>,
    /// Coarse: updated at most about once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/tenants/{id}/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantTokenList {
    pub items: Vec<TenantToken>,
}

/// `POST /api/v1/tenants/{id}/tokens`: the only answer that ever holds the token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub name: String,
    /// The bearer token (`dft_…`, 256 random bits): shown here once, kept nowhere in clear.
    pub token: String,
    pub token_hint: String,
    pub created_at: DateTime<Utc>,
}

fn tenant_view(tenant: &TenantConfigured) -> Tenant {
    Tenant {
        id: tenant.tenant_id.to_string(),
        name: tenant.name.clone(),
        created_at: tenant.created_at,
    }
}

fn token_view(token: &TokenState) -> TenantToken {
    TenantToken {
        id: token.issued.token_id,
        name: token.issued.name.clone(),
        token_hint: token.issued.token_hint.clone(),
        created_at: token.issued.created_at,
        last_used_at: token.last_used_at,
    }
}

fn tenant_not_found() -> ApiError {
    ApiError::not_found("tenant_not_found", "There is no tenant with this id.")
}

fn valid_name(body: Result<Json<NameBody>, JsonRejection>) -> Result<String, ApiError> {
    let Json(body) = body.map_err(|r| ApiError::bad_request("invalid_request", r.body_text()))?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "name must be 1 to 100 characters, without control characters.",
        ));
    }
    Ok(name.to_string())
}

/// Publishes one tenant record and applies it to this process's registry.
async fn store(state: &AppState, event: TenantEvent) -> Result<(), ApiError> {
    let record = TenantRecord::new(event);
    let out = OutRecord::new(record.key(), record.encode());
    state.publish_record(&state.topics.tenants(), out).await?;
    state.tenants.apply(&record);
    Ok(())
}

/// The tenant, or `404 tenant_not_found`.
fn find(state: &AppState, id: &str) -> Result<TenantConfigured, ApiError> {
    state
        .tenants
        .tenant(&TenantId(id.to_string()))
        .ok_or_else(tenant_not_found)
}

/// Makes sure the tenant `default` exists (integrations created before tenants belong to it):
/// called once the topic has been read, so an existing one is never written again.
pub async fn ensure_default_tenant(state: &AppState) -> Result<(), ApiError> {
    let id = TenantId::default_tenant();
    if state.tenants.tenant(&id).is_some() || state.tenants.was_removed(&id) {
        return Ok(());
    }
    store(
        state,
        TenantEvent::TenantConfigured(TenantConfigured {
            tenant_id: id,
            name: "Default".to_string(),
            created_at: Utc::now(),
        }),
    )
    .await
}

/// `POST /api/v1/tenants`
#[utoipa::path(
    post, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = NameBody,
    responses(
        (status = 201, description = "Created.", body = Tenant),
        (status = 400, description = "`invalid_request`.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
        (status = 403, description = "`forbidden`: not the operator token.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: nothing was saved.", body = openapi::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    scope.require_operator()?;
    let name = valid_name(body)?;
    let tenant = TenantConfigured {
        tenant_id: TenantId::generate(),
        name,
        created_at: Utc::now(),
    };
    store(&state, TenantEvent::TenantConfigured(tenant.clone())).await?;
    tracing::info!(tenant_id = %tenant.tenant_id, "tenant created");
    Ok((StatusCode::CREATED, Json(tenant_view(&tenant))).into_response())
}

/// `GET /api/v1/tenants`
#[utoipa::path(
    get, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every tenant, oldest first.", body = TenantList),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
        (status = 403, description = "`forbidden`: not the operator token.", body = openapi::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> Result<Json<TenantList>, ApiError> {
    scope.require_operator()?;
    let items = state.tenants.tenants().iter().map(tenant_view).collect();
    Ok(Json(TenantList { items }))
}

/// `DELETE /api/v1/tenants/{id}`
#[utoipa::path(
    delete, path = "/api/v1/tenants/{id}", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant id.")),
    responses(
        (status = 204, description = "Removed; its tokens are refused from now on."),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
        (status = 403, description = "`forbidden`: not the operator token.", body = openapi::ErrorBody),
        (status = 404, description = "`tenant_not_found`.", body = openapi::ErrorBody),
        (status = 409, description = "`tenant_not_empty`: it still has integrations; `default_tenant`: the default tenant stays.", body = openapi::ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    scope.require_operator()?;
    let tenant = find(&state, &id)?;
    if tenant.tenant_id.is_default() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "default_tenant",
            "The default tenant holds the integrations created without a tenant; it cannot be removed.",
        ));
    }
    let integrations = state
        .registry
        .list()
        .iter()
        .filter(|(_, config)| config.tenant_id == tenant.tenant_id)
        .count();
    if integrations > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "tenant_not_empty",
            format!("The tenant still has {integrations} integration(s); delete them first."),
        ));
    }
    store(
        &state,
        TenantEvent::TenantRemoved(TenantRemoved {
            tenant_id: tenant.tenant_id.clone(),
            removed_at: Utc::now(),
        }),
    )
    .await?;
    tracing::info!(tenant_id = %tenant.tenant_id, "tenant removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/tenants/{id}/tokens`
#[utoipa::path(
    post, path = "/api/v1/tenants/{id}/tokens", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant id.")),
    request_body = NameBody,
    responses(
        (status = 201, description = "Issued; `token` is shown in this response only.", body = IssuedToken),
        (status = 400, description = "`invalid_request`.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
        (status = 403, description = "`forbidden`: not the operator token.", body = openapi::ErrorBody),
        (status = 404, description = "`tenant_not_found`.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: nothing was saved.", body = openapi::ErrorBody),
    )
)]
pub async fn issue_token(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    scope.require_operator()?;
    let tenant = find(&state, &id)?;
    let name = valid_name(body)?;
    let (secret, token_hint) = token::generate();
    let issued = TenantTokenIssued {
        token_id: Uuid::now_v7(),
        tenant_id: tenant.tenant_id.clone(),
        name,
        token_hash: state.keys.api_token_hash(secret.expose_secret()),
        token_hint,
        created_at: Utc::now(),
    };
    store(&state, TenantEvent::TenantTokenIssued(issued.clone())).await?;
    tracing::info!(tenant_id = %tenant.tenant_id, token_id = %issued.token_id, "tenant token issued");
    let body = IssuedToken {
        id: issued.token_id,
        name: issued.name,
        token: secret.expose_secret().to_string(),
        token_hint: issued.token_hint,
        created_at: issued.created_at,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/tenants/{id}/tokens`
#[utoipa::path(
    get, path = "/api/v1/tenants/{id}/tokens", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant id.")),
    responses(
        (status = 200, description = "The tenant's tokens that are not revoked (never the token itself).", body = TenantTokenList),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
        (status = 403, description = "`forbidden`: not the operator token.", body = openapi::ErrorBody),
        (status = 404, description = "`tenant_not_found`.", body = openapi::ErrorBody),
    )
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Result<Json<TenantTokenList>, ApiError> {
    scope.require_operator()?;
    let tenant = find(&state, &id)?;
    let items = state
        .tenants
        .tokens(&tenant.tenant_id)
        .iter()
        .map(token_view)
        .collect();
    Ok(Json(TenantTokenList { items }))
}

/// `DELETE /api/v1/tenants/{id}/tokens/{token_id}`
#[utoipa::path(
    delete, path = "/api/v1/tenants/{id}/tokens/{token_id}", tag = "tenants", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The tenant id."),
        ("token_id" = String, Path, format = Uuid, description = "The token id."),
    ),
    responses(
        (status = 204, description = "Revoked: refused by every process within seconds."),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
        (status = 403, description = "`forbidden`: not the operator token.", body = openapi::ErrorBody),
        (status = 404, description = "`tenant_not_found` or `token_not_found`.", body = openapi::ErrorBody),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    scope.require_operator()?;
    let tenant = find(&state, &id)?;
    let not_found = || ApiError::not_found("token_not_found", "This tenant has no such token.");
    let token_id: Uuid = token_id.parse().map_err(|_| not_found())?;
    let token = state
        .tenants
        .token(&tenant.tenant_id, token_id)
        .ok_or_else(not_found)?;
    if token.revoked_at.is_none() {
        store(
            &state,
            TenantEvent::TenantTokenRevoked(TenantTokenRevoked {
                token_id,
                tenant_id: tenant.tenant_id.clone(),
                revoked_at: Utc::now(),
            }),
        )
        .await?;
        tracing::info!(tenant_id = %tenant.tenant_id, token_id = %token_id, "tenant token revoked");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
