//! What every ingest handler shares: publishing an event with the durable-ack rule, and
//! waiting until the read side shows a settings write (read your writes, DESIGN §4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dealflow_shared::bus::{EventBus, OutRecord, Position};
use dealflow_shared::events::{Envelope, IntegrationId};
use dealflow_shared::http::ApiError;
use dealflow_shared::retailcrm::{Budgets, ClientOptions};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::topics::Topics;
use dealflow_shared::visibility::Visibility;
use url::Url;

use crate::crm_url::CrmUrlPolicy;
use crate::metrics::IngestMetrics;
use dealflow_shared::registry::Registry;
use dealflow_shared::stages::StatusCatalog;
use dealflow_shared::tenants::TenantRegistry;

/// Shared state of the ingest handlers: one pointer, so the router's per-request clone is
/// one reference count (a clone of every field was ~7 % of a webhook's CPU; BENCHMARKS.md).
#[derive(Clone, Debug)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What [`AppState`] points to.
#[derive(Debug)]
pub struct SharedState {
    pub registry: Registry,
    /// Tenants and their tokens (the tenants API reads and writes it).
    pub tenants: TenantRegistry,
    /// The statuses of every account (from the `funnels` topic), which a stage mapping names.
    pub statuses: StatusCatalog,
    /// Every integration's historical loads (from `sync-state`): one re-sync at a time.
    pub loads: crate::resync::Loads,
    /// Which order each dead letter is about (from `dead-letter`), for a retry.
    pub letters: crate::order_actions::Letters,
    pub keys: Arc<SecretKeys>,
    pub bus: Arc<dyn EventBus>,
    pub topics: Topics,
    pub public_url: Url,
    pub crm_policy: CrmUrlPolicy,
    pub budgets: Budgets,
    pub client_options: ClientOptions,
    pub metrics: IngestMetrics,
    /// How long a request waits for the bus to acknowledge before answering 503.
    pub publish_timeout: Duration,
    /// Where the read side that must show a settings write runs, and how long to wait for it.
    pub visibility: Visibility,
}

/// A settings write, for the words of its `503 read_model_behind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Created,
    Changed,
    Removed,
    ResyncRequested,
}

impl AppState {
    /// Publishes one event and waits for the durable acknowledgement (DESIGN §1: nothing is
    /// answered before); returns where it landed. Any failure, or no answer in time, is
    /// `503 broker_unavailable`.
    pub async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<Position, ApiError> {
        self.publish_record(topic, OutRecord::new(envelope.key(), envelope.encode()))
            .await
    }

    /// [`AppState::publish`] for a record that is not an integration envelope (the tenants
    /// topic's).
    pub async fn publish_record(
        &self,
        topic: &str,
        record: OutRecord,
    ) -> Result<Position, ApiError> {
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(self.publish_timeout, self.bus.publish(topic, vec![record])).await;
        match outcome {
            Ok(Ok(positions)) => {
                self.metrics.published(topic, started.elapsed());
                positions.first().copied().ok_or_else(|| {
                    tracing::error!(topic, "the event bus acknowledged without a position");
                    broker_unavailable()
                })
            }
            Ok(Err(e)) => {
                self.metrics.publish_failed(topic);
                tracing::error!(topic, error = %e, "event bus did not acknowledge");
                Err(broker_unavailable())
            }
            Err(_) => {
                self.metrics.publish_failed(topic);
                tracing::error!(topic, timeout = ?self.publish_timeout, "event bus did not acknowledge in time");
                Err(broker_unavailable())
            }
        }
    }

    /// Waits until the read side (the projector, which serves the GETs) has applied the
    /// settings write published at `at`, so the client's next read shows it (DESIGN §4). Not
    /// in time: `503 read_model_behind`, saying the write was saved (it is on the bus and will
    /// be applied), so a client neither repeats it nor reads a 404 as "lost".
    pub async fn read_your_write(
        &self,
        id: IntegrationId,
        write: Write,
        at: Position,
    ) -> Result<(), ApiError> {
        let topic = self.topics.integrations();
        match self.visibility.wait(&topic, at).await {
            Ok(waited) => {
                self.metrics.read_side_waited(true, waited);
                Ok(())
            }
            Err(behind) => {
                self.metrics.read_side_waited(false, behind.waited);
                tracing::warn!(integration_id = %id, error = %behind, "the read side did not show a settings write in time");
                Err(read_model_behind(id, write, self.visibility.timeout()))
            }
        }
    }

    /// `DEALFLOW_PUBLIC_URL` + `/hooks/retailcrm/{token}`.
    pub fn webhook_url(&self, token: &str) -> String {
        format!(
            "{}/hooks/retailcrm/{token}",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

fn broker_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "broker_unavailable",
        "The event bus did not acknowledge the write; nothing was accepted. Try again shortly.",
    )
}

fn read_model_behind(id: IntegrationId, write: Write, waited: Duration) -> ApiError {
    // Said the way a person reads it: what happened to their change, and what not to do.
    let behind = format!(
        "dealflow's read model is more than {:.0} s behind",
        waited.as_secs_f64()
    );
    let message = match write {
        Write::Created => format!(
            "Integration {id} was created and saved, but it does not show in reads yet \
             ({behind}). It will appear shortly: do not create it again, look for it with \
             GET /api/v1/integrations/{id}."
        ),
        Write::Changed => format!(
            "The change to integration {id} was saved, but reads do not show it yet ({behind}). \
             It will show shortly; there is no need to send it again."
        ),
        Write::Removed => format!(
            "Integration {id} was removed, but reads still show it ({behind}). It will \
             disappear shortly; there is no need to delete it again."
        ),
        Write::ResyncRequested => format!(
            "The re-sync of integration {id} was requested and saved, but reads do not reflect \
             it yet ({behind}). There is no need to request it again."
        ),
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, READ_MODEL_BEHIND, message)
}

/// The code of a settings write that was saved but is not visible yet.
pub const READ_MODEL_BEHIND: &str = "read_model_behind";
