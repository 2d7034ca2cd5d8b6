//! The enricher's context: what the intake and every account worker of one enricher process
//! share (bus, output, dead letters, keys, budgets, registry, metrics, settings, sync states),
//! and the messages the workers send the intake.

use std::sync::Arc;

use dealflow_shared::bus::{BusError, DeadLetters, Delivered, EventBus};
use dealflow_shared::events::IntegrationId;
use dealflow_shared::registry::Registry;
use dealflow_shared::retailcrm::Budgets;
use dealflow_shared::secrets::SecretKeys;
use tokio::sync::mpsc;

use crate::error::EnricherError;
use crate::metrics::EnricherMetrics;
use crate::offsets::RecordRef;
use crate::output::Output;
use crate::settings::EnricherSettings;
use crate::sync::SyncStates;

/// Dead-letter stage: bytes that are not an `OrderChanged` envelope.
pub const STAGE_DECODE: &str = "enricher.decode";
/// Dead-letter stage: RetailCRM's answer for this order could not be read.
pub const STAGE_FETCH: &str = "enricher.fetch";
/// Dead-letter stage: the order lacks the facts of a deal.
pub const STAGE_MAP: &str = "enricher.map";
/// Dead-letter stage: an `orders/history` record that cannot be processed.
pub const STAGE_HISTORY: &str = "enricher.history";
/// Dead-letter stage: a backfill / re-sync page or order that cannot be processed.
pub const STAGE_LOAD: &str = "enricher.load";

/// What an account worker tells the intake.
#[derive(Debug)]
pub enum IntakeEvent {
    /// These records are done: their outputs (or dead letters) are acknowledged, or they were
    /// covered by an earlier record, skipped, or appended again.
    Finished {
        /// Whose records.
        integration: IntegrationId,
        /// The records.
        records: Vec<RecordRef>,
    },
    /// The worker hit a fatal failure; the enricher must stop.
    Fatal {
        /// Whose worker.
        integration: IntegrationId,
        /// Why.
        error: EnricherError,
    },
}

/// What the intake and the account workers of one enricher process share.
#[derive(Debug)]
pub struct EnricherContext {
    /// The event bus.
    pub bus: Arc<dyn EventBus>,
    /// Publishes the enricher's events.
    pub output: Output,
    /// The dead-letter topic, with its cap.
    pub dead_letters: DeadLetters,
    /// Opens sealed API keys.
    pub keys: SecretKeys,
    /// One request budget per RetailCRM account.
    pub budgets: Budgets,
    /// Every integration's current settings.
    pub registry: Registry,
    /// Metrics.
    pub metrics: EnricherMetrics,
    /// Settings.
    pub settings: EnricherSettings,
    /// Workers → intake.
    pub events: mpsc::UnboundedSender<IntakeEvent>,
    /// Every integration's sync state, and which ones this member syncs.
    pub sync: SyncStates,
}

impl EnricherContext {
    /// Dead-letters one record (one attempt) and counts it.
    pub async fn dead_letter(
        &self,
        record: &Delivered,
        stage: &str,
        reason: &str,
    ) -> Result<(), BusError> {
        self.dead_letters.send(record, stage, reason).await?;
        self.metrics.dead_lettered(stage);
        Ok(())
    }

    /// Tells the intake that records are finished. A closed channel means the intake is
    /// gone (shutting down): the records are simply redelivered after a restart.
    pub fn finish(&self, integration: IntegrationId, records: Vec<RecordRef>) {
        if !records.is_empty() {
            let _ = self.events.send(IntakeEvent::Finished {
                integration,
                records,
            });
        }
    }
}
