//! What every ingest handler shares, and publishing an event with the durable-ack rule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dealflow_shared::bus::{EventBus, OutRecord};
use dealflow_shared::events::Envelope;
use dealflow_shared::http::ApiError;
use dealflow_shared::retailcrm::{Budgets, ClientOptions};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::topics::Topics;
use url::Url;

use crate::crm_url::CrmUrlPolicy;
use crate::metrics::IngestMetrics;
use dealflow_shared::registry::Registry;

/// Shared state of the ingest handlers (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState {
    pub registry: Registry,
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
}

impl AppState {
    /// Publishes one event and waits for the durable acknowledgement (DESIGN §1: nothing is
    /// answered before). Any failure, or no answer in time, is `503 broker_unavailable`.
    pub async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<(), ApiError> {
        let record = OutRecord::new(envelope.key(), envelope.encode());
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(self.publish_timeout, self.bus.publish(topic, vec![record])).await;
        match outcome {
            Ok(Ok(_)) => {
                self.metrics.published(topic, started.elapsed());
                Ok(())
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
