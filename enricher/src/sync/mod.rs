//! Synchronisation beyond webhooks (DESIGN §7.1): the per-integration sync state on the
//! compacted `sync-state` topic, and which enricher runs the sync of which integration.
//!
//! The enricher keeps no database: an integration's history cursor, `last_reconciled_at` and
//! backfill / re-sync progress travel as one `SyncStateChanged` record per integration key on
//! `sync-state`, written after every acknowledged step, so compaction keeps exactly the
//! latest and a restart (or another machine) resumes where the last step ended.
//! [`SyncStates`] reads the topic to its end at start (like the integrations registry) and
//! keeps following it, so a member that takes an integration over after a rebalance starts
//! from the state its previous owner wrote.
//!
//! **Who syncs.** Both topics are keyed by integration and created with the same partition
//! count, so an integration's `sync-state` partition is also its `order-changed` partition:
//! the member of the enricher group assigned that partition owns the integration's worker
//! and runs its sync. A brand-new integration's partition is unknown until its first state is
//! written (that write costs no RetailCRM call), then ownership is decided the same way.
//!
//! The work itself (reconciliation, backfill and re-sync pages) runs inside the account's
//! worker (`worker::reconcile`, `worker::load`) so it shares the account's client,
//! reference cache, budget and backoff with the live path.

pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use dealflow_shared::bus::{BusError, EventBus, OutRecord};
use dealflow_shared::events::{Envelope, Event, IntegrationId, SyncStateChanged};
use dealflow_shared::follow::follow_topic;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Known {
    state: SyncStateChanged,
    partition: i32,
}

/// Every integration's latest sync state, and this member's share of them (cheap to clone).
#[derive(Debug, Clone)]
pub struct SyncStates {
    known: Arc<RwLock<HashMap<IntegrationId, Known>>>,
    /// The `order-changed` partitions assigned to this member (`None` before the first look).
    assigned: Arc<RwLock<Option<Vec<i32>>>>,
    ready: watch::Sender<bool>,
}

impl Default for SyncStates {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncStates {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self {
            known: Arc::default(),
            assigned: Arc::default(),
            ready: watch::Sender::new(false),
        }
    }

    /// The integration's latest state.
    pub fn get(&self, id: IntegrationId) -> Option<SyncStateChanged> {
        let known = self.known.read().expect("sync state lock");
        known.get(&id).map(|k| k.state.clone())
    }

    /// Records the partitions of `order-changed` this member is assigned.
    pub fn set_assignment(&self, partitions: Vec<i32>) {
        *self.assigned.write().expect("sync assignment lock") = Some(partitions);
    }

    /// Whether this member runs the integration's sync: its partition is assigned here, or
    /// it is not known yet (the worker writes a first state to learn it).
    pub fn owns(&self, id: IntegrationId) -> bool {
        let partition = self
            .known
            .read()
            .expect("sync state lock")
            .get(&id)
            .map(|k| k.partition);
        let Some(partition) = partition else {
            return true;
        };
        self.assigned
            .read()
            .expect("sync assignment lock")
            .as_ref()
            .is_some_and(|assigned| assigned.contains(&partition))
    }

    /// Whether the integration's partition is known (a state was read or written).
    pub fn is_placed(&self, id: IntegrationId) -> bool {
        self.known
            .read()
            .expect("sync state lock")
            .contains_key(&id)
    }

    /// Keeps `state` if it is not older than what is known.
    fn apply(&self, id: IntegrationId, state: SyncStateChanged, partition: i32) {
        let mut known = self.known.write().expect("sync state lock");
        let newer = known
            .get(&id)
            .is_none_or(|k| state.updated_at >= k.state.updated_at);
        if newer {
            known.insert(id, Known { state, partition });
        }
    }

    /// Forgets a removed integration.
    pub fn forget(&self, id: IntegrationId) {
        self.known.write().expect("sync state lock").remove(&id);
    }

    /// Writes the integration's state (stamped now) and keeps it once acknowledged.
    pub async fn save(
        &self,
        bus: &dyn EventBus,
        topic: &str,
        id: IntegrationId,
        mut state: SyncStateChanged,
    ) -> Result<SyncStateChanged, BusError> {
        state.updated_at = Utc::now();
        let envelope = Envelope::new(id, Event::SyncStateChanged(state.clone()));
        let record = OutRecord::new(envelope.key(), envelope.encode());
        let position = bus
            .publish(topic, vec![record])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| BusError::Fatal {
                message: "publishing a sync state returned no position".into(),
                source: None,
            })?;
        self.apply(id, state.clone(), position.partition);
        Ok(state)
    }

    /// Whether the topic has been read to its end once.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the topic has been read to its end once.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Reads `topic` to its end, marks the store ready, then follows it until `shutdown`.
    /// `group` must be unique per process (every member reads everything, never commits).
    pub async fn follow(
        self,
        bus: Arc<dyn EventBus>,
        topic: String,
        group: String,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        follow_topic(
            bus,
            &topic,
            &group,
            &self.ready,
            shutdown,
            |record, decoded| match decoded {
                Ok(Envelope {
                    integration_id,
                    event: Event::SyncStateChanged(state),
                    ..
                }) => self.apply(integration_id, state, record.partition),
                Ok(other) => tracing::warn!(
                    event_type = other.event.event_type().as_str(),
                    "unexpected event type on the sync-state topic, ignored"
                ),
                // One unreadable record must not stop every integration's sync: that
                // integration starts from its connect-time cursor instead.
                Err(e) => tracing::error!(
                    partition = record.partition, offset = record.offset, error = %e,
                    "unreadable record on the sync-state topic, skipped"
                ),
            },
        )
        .await
    }
}
