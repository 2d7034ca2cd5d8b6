//! `POST /api/v1/integrations/{id}/resync` (DESIGN §4): load again every order created between
//! two days, one historical load at a time.
//!
//! The request travels in the integration's settings (`IntegrationConfigured.resync`); the
//! enricher runs it and reports its progress on the compacted `sync-state` topic, which ingest
//! follows ([`Loads`]) to answer `409 resync_in_progress` while a backfill or an earlier
//! re-sync of the integration still runs (a new request would silently replace it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate, Utc};
use dealflow_shared::bus::{BusError, EventBus};
use dealflow_shared::events::{
    Event, IntegrationConfigured, IntegrationId, LoadKind, LoadProgress, ResyncRequested,
    SyncStateChanged,
};
use dealflow_shared::follow::{CaughtUp, Followed};
use dealflow_shared::http::ApiError;
use dealflow_shared::tenants::Scope;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::api::{bad_json, find, next_update, store};
use crate::openapi;
use crate::state::{AppState, Write};

/// `POST /api/v1/integrations/{id}/resync` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resync {
    /// Orders created on or after this day (`YYYY-MM-DD`, the account's timezone, not in the
    /// future).
    #[schema(value_type = String, format = Date, example = "2024-01-01")]
    since: String,
    /// ... and on or before this day (inclusive; default: today).
    #[schema(value_type = Option<String>, format = Date, example = "2024-01-31")]
    #[serde(default)]
    until: Option<String>,
}

/// `POST /api/v1/integrations/{id}/resync` `{"since": "YYYY-MM-DD", "until": "YYYY-MM-DD"?}`
#[utoipa::path(
    post,
    path = "/api/v1/integrations/{id}/resync",
    tag = "integrations",
    security(("bearer" = []), ("tenant" = [])),
    params(("id" = String, Path, format = Uuid, description = "The integration id.")),
    request_body = Resync,
    responses(
        (status = 202, description = "Re-sync of the orders created in the days requested; its progress is `load` in GET …/sync.", body = openapi::ResyncAccepted),
        (status = 400, description = "`invalid_request`: malformed JSON, an unknown field, a bad date, a day in the future or `until` before `since`.", body = openapi::ErrorBody),
        (status = 404, description = "There is no integration with this id.", body = openapi::ErrorBody),
        (status = 409, description = "`resync_in_progress`: a backfill or re-sync of this integration is still running (or requested and not started); try again once it has finished.", body = openapi::ErrorBody),
        (status = 503, description = "`broker_unavailable`: the bus did not acknowledge in time (nothing was saved); `read_model_behind`: saved, but the read side did not show it in time (5 s by default); it will shortly, do not repeat the write.", body = openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = openapi::ErrorBody),
    )
)]
pub async fn resync(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    body: Result<Json<Resync>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (id, mut config) = find(&state, &scope, &id)?;
    let Json(request) = body.map_err(bad_json)?;
    // The days are the account's; a day of slack keeps "today" valid east of UTC.
    let latest = Utc::now().date_naive() + Days::new(1);
    let since = day("since", &request.since)?;
    if since > latest {
        return Err(invalid("since must not be in the future."));
    }
    let until = request
        .until
        .as_deref()
        .map(|until| day("until", until))
        .transpose()?;
    if let Some(until) = until {
        if until < since {
            return Err(invalid(format!(
                "until ({until}) must not be before since ({since})."
            )));
        }
        if until > latest {
            return Err(invalid("until must not be in the future."));
        }
    }
    if let Some(kind) = state.loads.running(id, &config).await {
        let what = match kind {
            LoadKind::Backfill => "The backfill",
            LoadKind::Resync => "A re-sync",
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "resync_in_progress",
            format!(
                "{what} of this integration is still running; GET \
                 /api/v1/integrations/{id}/sync shows its progress. Ask again once it has \
                 finished."
            ),
        ));
    }
    let requested_at = next_update(config.updated_at);
    config.resync = Some(ResyncRequested {
        since,
        until,
        requested_at,
    });
    config.updated_at = requested_at;
    let at = store(&state, id, config).await?;
    tracing::info!(integration_id = %id, %since, until = ?until, "re-sync requested");
    state
        .read_your_write(id, Write::ResyncRequested, at)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(openapi::ResyncAccepted {
            accepted: true,
            since,
            until,
        }),
    )
        .into_response())
}

fn day(name: &str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        invalid(format!(
            "{name} must be a date like 2024-01-31, got {text:?}"
        ))
    })
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

/// Every integration's historical loads as the enricher last reported them, followed from the
/// `sync-state` topic (cheap to clone; clones share it).
#[derive(Debug, Clone, Default)]
pub struct Loads {
    states: Arc<RwLock<HashMap<IntegrationId, SyncStateChanged>>>,
    ready: CaughtUp,
    followed: Followed,
}

impl Loads {
    /// The load of the integration that has not finished, if any: a backfill or re-sync the
    /// enricher reports as running, or a re-sync asked for that it has not started yet. Looks
    /// at the topic's end first when one seems to run (it may have finished a moment ago).
    pub async fn running(
        &self,
        id: IntegrationId,
        config: &IntegrationConfigured,
    ) -> Option<LoadKind> {
        self.running_now(id, config)?;
        self.followed.catch_up().await;
        self.running_now(id, config)
    }

    fn running_now(&self, id: IntegrationId, config: &IntegrationConfigured) -> Option<LoadKind> {
        let states = self.states.read().expect("loads lock");
        let state = states.get(&id);
        let unfinished = |load: Option<&LoadProgress>| load.is_some_and(|load| !load.is_complete());
        if unfinished(state.and_then(|s| s.backfill.as_ref())) {
            return Some(LoadKind::Backfill);
        }
        if unfinished(state.and_then(|s| s.resync.as_ref())) {
            return Some(LoadKind::Resync);
        }
        // Asked for and not started: an inactive integration's request waits for it to be
        // switched on, and must not block a new one meanwhile.
        let started = state
            .and_then(|s| s.resync.as_ref())
            .map(|load| load.requested_at);
        let requested = config.resync.as_ref().map(|r| r.requested_at);
        (config.active && requested.is_some() && requested > started).then_some(LoadKind::Resync)
    }

    /// Applies one reported state (the newest by `updated_at` wins).
    pub fn apply(&self, id: IntegrationId, state: &SyncStateChanged) {
        let mut states = self.states.write().expect("loads lock");
        if states
            .get(&id)
            .is_some_and(|current| current.updated_at > state.updated_at)
        {
            return;
        }
        states.insert(id, state.clone());
    }

    /// Whether the topic has been read to its end once.
    pub fn is_ready(&self) -> bool {
        self.ready.is_ready()
    }

    /// Reads the `sync-state` topic to its end, then follows it until `shutdown` (`group`
    /// unique per process; nothing is committed).
    pub async fn follow(
        self,
        bus: Arc<dyn EventBus>,
        topic: String,
        group: String,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        self.followed
            .follow_envelopes(bus, &topic, &group, &self.ready, shutdown, |envelope| {
                if let Event::SyncStateChanged(state) = &envelope.event {
                    self.apply(envelope.integration_id, state);
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone as _};

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn load(kind: LoadKind, requested_at: DateTime<Utc>, complete: bool) -> LoadProgress {
        let mut load = LoadProgress {
            kind,
            since: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            until: None,
            requested_at,
            pages_done: 1,
            pages_total: Some(1),
            orders_done: 10,
            orders_total: Some(10),
            started_at: requested_at,
            finished_at: None,
            timeline: None,
        };
        if complete {
            load.finished_at = Some(requested_at);
            let mut timeline = dealflow_shared::events::TimelineProgress::starting(None);
            timeline.finished_at = Some(requested_at);
            load.timeline = Some(timeline);
        }
        load
    }

    fn config(resync_at: Option<DateTime<Utc>>, active: bool) -> IntegrationConfigured {
        let envelope = dealflow_shared::events::Envelope::decode(include_bytes!(
            "../../shared/golden/IntegrationConfigured.v5.json"
        ))
        .unwrap();
        let Event::IntegrationConfigured(mut config) = envelope.event else {
            unreachable!("the golden file holds an IntegrationConfigured")
        };
        config.active = active;
        config.resync = resync_at.map(|requested_at| ResyncRequested {
            since: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            until: None,
            requested_at,
        });
        config
    }

    fn state(
        backfill: Option<LoadProgress>,
        resync: Option<LoadProgress>,
        updated: i64,
    ) -> SyncStateChanged {
        SyncStateChanged {
            history_cursor: None,
            last_reconciled_at: None,
            backfill,
            resync,
            updated_at: at(updated),
        }
    }

    #[test]
    fn a_load_runs_until_its_orders_and_timeline_are_done() {
        let loads = Loads::default();
        let id = IntegrationId::new();
        assert_eq!(loads.running_now(id, &config(None, true)), None);
        loads.apply(
            id,
            &state(Some(load(LoadKind::Backfill, at(0), false)), None, 1),
        );
        assert_eq!(
            loads.running_now(id, &config(None, true)),
            Some(LoadKind::Backfill)
        );
        loads.apply(
            id,
            &state(Some(load(LoadKind::Backfill, at(0), true)), None, 2),
        );
        assert_eq!(loads.running_now(id, &config(None, true)), None);
        // An older report arriving late changes nothing.
        loads.apply(
            id,
            &state(Some(load(LoadKind::Backfill, at(0), false)), None, 1),
        );
        assert_eq!(loads.running_now(id, &config(None, true)), None);
    }

    #[test]
    fn a_requested_resync_counts_until_started_unless_the_integration_is_off() {
        let loads = Loads::default();
        let id = IntegrationId::new();
        let asked = config(Some(at(10)), true);
        assert_eq!(loads.running_now(id, &asked), Some(LoadKind::Resync));
        assert_eq!(loads.running_now(id, &config(Some(at(10)), false)), None);
        loads.apply(
            id,
            &state(None, Some(load(LoadKind::Resync, at(10), false)), 11),
        );
        assert_eq!(loads.running_now(id, &asked), Some(LoadKind::Resync));
        loads.apply(
            id,
            &state(None, Some(load(LoadKind::Resync, at(10), true)), 12),
        );
        assert_eq!(loads.running_now(id, &asked), None);
        // A newer request than the finished one is pending again.
        assert_eq!(
            loads.running_now(id, &config(Some(at(20)), true)),
            Some(LoadKind::Resync)
        );
    }
}
