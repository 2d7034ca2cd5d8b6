//! What an operator can ask for one order (DESIGN §4): fetch it again
//! (`POST …/deals/{order_id}/refetch`) or process its dead letter again
//! (`POST …/dead-letters/{id}/retry`).
//!
//! Both become an `OrderChanged` on `order-changed`, like a webhook, with their own source
//! (`refetch`, `retry`): the enricher fetches the order inside the account's budget, and the
//! order's trace shows the request. A retried letter leaves the projector's list once the order
//! is processed. Ingest learns which order a letter is about by following the dead-letter topic
//! ([`Letters`]); the list itself is the projector's.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use dealflow_shared::bus::{BusError, EventBus, LetterAbout, public_id};
use dealflow_shared::events::{ChangeSource, Envelope, Event, IntegrationId, OrderChanged};
use dealflow_shared::follow::{CaughtUp, Followed};
use dealflow_shared::http::ApiError;
use dealflow_shared::tenants::Scope;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::api::find;
use crate::openapi;
use crate::state::AppState;

/// `202` of a re-fetch or a retry: the order is queued for the enricher.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderQueued {
    #[schema(example = true)]
    pub accepted: bool,
    #[schema(example = 48213)]
    pub order_id: u64,
}

/// `POST /api/v1/integrations/{id}/deals/{order_id}/refetch`
#[utoipa::path(
    post,
    path = "/api/v1/integrations/{id}/deals/{order_id}/refetch",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The integration id."),
        ("order_id" = u64, Path, description = "RetailCRM's order id (it need not be a deal yet: a missing order is fetched too)."),
    ),
    responses(
        (status = 202, description = "Queued: the enricher fetches the order again inside the account's budget, even if nothing changed; the trace shows `refetch_requested` from the next read.", body = OrderQueued),
        (status = 400, description = "`invalid_parameter`: the order id is not a positive integer.", body = openapi::ErrorBody),
        (status = 404, description = "There is no integration with this id.", body = openapi::ErrorBody),
        (status = 409, description = "`integration_inactive`: the integration is switched off.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: nothing was queued.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn refetch(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((id, order_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (id, config) = find(&state, &scope, &id)?;
    let order_id = order_id
        .parse::<u64>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("order_id must be a positive integer, got {order_id:?}."),
            )
        })?;
    if !config.active {
        return Err(inactive());
    }
    queue(&state, id, order_id, ChangeSource::Refetch).await
}

/// `POST /api/v1/integrations/{id}/dead-letters/{letter_id}/retry`
#[utoipa::path(
    post,
    path = "/api/v1/integrations/{id}/dead-letters/{letter_id}/retry",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The integration id."),
        ("letter_id" = String, Path, description = "The dead letter's `id` from GET …/dead-letters."),
    ),
    responses(
        (status = 202, description = "Queued: the letter's order is fetched and processed again; the letter leaves the list once that succeeds.", body = OrderQueued),
        (status = 404, description = "`integration_not_found`, or `dead_letter_not_found`: this integration has no such letter.", body = openapi::ErrorBody),
        (status = 409, description = "`dead_letter_not_retryable`: the letter is about a page of orders, not one order (a re-sync of its days loads them again); `integration_inactive`: the integration is switched off.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: nothing was queued.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((id, letter_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (id, config) = find(&state, &scope, &id)?;
    let Some(order) = state.letters.order_of(id, &letter_id).await else {
        return Err(ApiError::not_found(
            "dead_letter_not_found",
            "This integration has no dead letter with this id.",
        ));
    };
    let Some(order_id) = order else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "dead_letter_not_retryable",
            "This dead letter is about a page of orders RetailCRM answered unreadably, not about \
             one order: a re-sync of its days loads them again.",
        ));
    };
    if !config.active {
        return Err(inactive());
    }
    queue(&state, id, order_id, ChangeSource::Retry).await
}

fn inactive() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "integration_inactive",
        "The integration is switched off; switch it on to fetch orders.",
    )
}

/// Publishes the `OrderChanged` and answers once the read side shows it (the order's trace
/// then lists the request on the next read; a slow read side does not undo it).
async fn queue(
    state: &AppState,
    id: IntegrationId,
    order_id: u64,
    source: ChangeSource,
) -> Result<Response, ApiError> {
    let envelope = Envelope::new(
        id,
        Event::OrderChanged(OrderChanged {
            order_id,
            source,
            received_at: Utc::now(),
        }),
    );
    let topic = state.topics.order_changed();
    let at = state.publish(&topic, &envelope).await?;
    tracing::info!(integration_id = %id, order_id, ?source, "order queued for fetching again");
    if let Err(behind) = state.visibility.wait(&topic, at).await {
        tracing::debug!(integration_id = %id, error = %behind, "the trace shows the request later");
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(OrderQueued {
            accepted: true,
            order_id,
        }),
    )
        .into_response())
}

/// (integration, letter id) → the order the letter is about, if one.
type LetterOrders = HashMap<(IntegrationId, String), Option<u64>>;

/// Which order each dead letter is about, by integration and the letter's API id, followed
/// from the dead-letter topic (cheap to clone; clones share it). `None`: a letter about no
/// single order (an unreadable page).
#[derive(Debug, Clone, Default)]
pub struct Letters {
    by_id: Arc<RwLock<LetterOrders>>,
    ready: CaughtUp,
    followed: Followed,
}

impl Letters {
    /// The order of the integration's letter `letter_id`; `None` when there is no such letter
    /// (after reading the topic to its end: it may have been written a moment ago).
    pub async fn order_of(&self, id: IntegrationId, letter_id: &str) -> Option<Option<u64>> {
        let key = (id, letter_id.to_owned());
        let known = |letters: &Self| {
            letters
                .by_id
                .read()
                .expect("letters lock")
                .get(&key)
                .copied()
        };
        if let Some(order) = known(self) {
            return Some(order);
        }
        self.followed.catch_up().await;
        known(self)
    }

    /// Whether the topic has been read to its end once.
    pub fn is_ready(&self) -> bool {
        self.ready.is_ready()
    }

    /// Reads the dead-letter topic to its end, then follows it until `shutdown` (`group`
    /// unique per process; nothing is committed).
    pub async fn follow(
        self,
        bus: Arc<dyn EventBus>,
        topic: String,
        group: String,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        self.followed
            .follow_records(bus, &topic, &group, &self.ready, shutdown, |record| {
                let about = LetterAbout::of(record);
                if let Some(id) = about.integration.and_then(|i| i.parse().ok()) {
                    self.by_id
                        .write()
                        .expect("letters lock")
                        .insert((id, public_id(record)), about.order_id);
                }
            })
            .await
    }
}
