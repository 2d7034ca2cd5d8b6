//! `GET|POST /hooks/retailcrm/{token}`: a RetailCRM trigger says an order changed (DESIGN §4).
//!
//! The answer is `202` only once `OrderChanged` is durably on the bus. The token is checked in
//! constant time against the one recomputed for the integration it names; an inactive
//! integration gets `409` and nothing is queued.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use dealflow_shared::bus::OutRecord;
use dealflow_shared::events::{ChangeSource, Envelope, Event, OrderChanged};
use dealflow_shared::http::ApiError;
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::topics::order_changed_key;

use crate::metrics::WebhookResult;
use crate::openapi;
use crate::order_id;
use crate::state::AppState;

/// Largest webhook body accepted (DESIGN §4).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The webhook. Any method is accepted (RetailCRM triggers send GET or POST).
#[utoipa::path(
    method(get, post),
    path = "/hooks/retailcrm/{token}",
    tag = "webhook",
    params(
        ("token" = String, Path, description = "The integration's webhook token, as in its `webhook_url`."),
        ("orderId" = Option<u64>, Query, description = "The order id (or `id`); read first from the query, then a form body, then a JSON body."),
        ("id" = Option<u64>, Query, description = "Same as `orderId`; two different ids in one request are a `400`."),
    ),
    request_body(
        description = "Optional: `orderId` or `id` in a form or a JSON body (at most 64 KiB).",
        content(
            (Object = "application/x-www-form-urlencoded"),
            (Object = "application/json"),
        ),
    ),
    responses(
        (status = 202, description = "`OrderChanged` is durably on the bus.", body = openapi::WebhookAccepted),
        (status = 400, description = "`invalid_order_id`: missing, not a positive integer, or ambiguous.", body = openapi::ErrorBody),
        (status = 404, description = "`unknown_integration`: no integration has this token.", body = openapi::ErrorBody),
        (status = 409, description = "`integration_inactive`: switched off; nothing was queued.", body = openapi::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is above 64 KiB.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: the bus did not acknowledge in time.", body = openapi::ErrorBody),
    )
)]
pub async fn handle(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<openapi::WebhookAccepted>), ApiError> {
    let result = accept(&state, &token, query.as_deref(), &headers, body).await;
    state.metrics.webhook(match &result {
        Ok(()) => WebhookResult::Accepted,
        Err((kind, _)) => *kind,
    });
    result
        .map(|()| {
            (
                StatusCode::ACCEPTED,
                Json(openapi::WebhookAccepted { accepted: true }),
            )
        })
        .map_err(|(_, e)| e)
}

async fn accept(
    state: &AppState,
    token: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), (WebhookResult, ApiError)> {
    let unknown = || {
        (
            WebhookResult::UnknownIntegration,
            ApiError::not_found(
                "unknown_integration",
                "No integration has this webhook address.",
            ),
        )
    };
    let id = SecretKeys::token_integration(token).ok_or_else(unknown)?;
    let (generation, active, account_key) = state
        .registry
        .read(id, |integration| {
            (
                integration.webhook_token_generation,
                integration.active,
                order_changed_key(&integration.crm_url),
            )
        })
        .ok_or_else(unknown)?;
    if !state.keys.verify_webhook_token(id, generation, token) {
        return Err(unknown());
    }
    if !active {
        return Err((
            WebhookResult::IntegrationInactive,
            ApiError::new(
                StatusCode::CONFLICT,
                "integration_inactive",
                "This integration is switched off; the webhook was not queued.",
            ),
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            (
                WebhookResult::TooLarge,
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "The request body is larger than {} KiB.",
                        MAX_BODY_BYTES / 1024
                    ),
                ),
            )
        } else {
            (
                WebhookResult::InvalidOrderId,
                ApiError::bad_request("invalid_order_id", "The request body could not be read."),
            )
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let order_id = order_id::extract(query, content_type, &body).map_err(|e| {
        (
            WebhookResult::InvalidOrderId,
            ApiError::bad_request("invalid_order_id", e.to_string()),
        )
    })?;

    let envelope = Envelope::new(
        id,
        Event::OrderChanged(OrderChanged {
            order_id,
            source: ChangeSource::Webhook,
            received_at: Utc::now(),
        }),
    );
    // Keyed by the account, not the integration: one partition, one enricher, one budget
    // for every integration on that account (DESIGN §7.4).
    let record = OutRecord::new(account_key, envelope.encode());
    state
        .publish_record(&state.topics.order_changed(), record)
        .await
        .map_err(|e| (WebhookResult::BrokerUnavailable, e))?;
    tracing::debug!(integration_id = %id, order_id, "webhook accepted");
    Ok(())
}
