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
//! **Who syncs.** `order-changed` is keyed by the RetailCRM account
//! ([`dealflow_shared::topics::order_changed_key`]), so every integration of one account has
//! its live work on one partition; the member of the enricher group assigned that partition
//! also runs the sync of each of those integrations, so all of an account's calls go through
//! one process's budget (DESIGN §7.4). The partition is computed from the account with Kafka's
//! partitioner ([`partition_for`]) and the topic's partition count. Until that count is known
//! (the first moments after start) the old rule stands: the partition an integration's
//! `sync-state` record landed on, learnt from its first write.
//!
//! The work itself (reconciliation, backfill and re-sync pages) runs inside the account's
//! worker (`worker::reconcile`, `worker::load`) so it shares the account's client,
//! reference cache, budget and backoff with the live path.

pub mod metrics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use dealflow_shared::bus::{BusError, EventBus, OutRecord, partition_for};
use dealflow_shared::events::{Envelope, Event, IntegrationId, SyncStateChanged};
use dealflow_shared::follow::{CaughtUp, follow_topic};
use dealflow_shared::topics::order_changed_key;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Known {
    state: SyncStateChanged,
    partition: i32,
}

/// How long a member waits after it is given an account's partition before it calls the
/// account. Its previous owner stopped calling when the partition was revoked (the revoke hook
/// fences it inside the rebalance, before the group hands the partition on), so waiting a
/// little over RetailCRM's one-second window keeps the two members' calls out of any one
/// second: two budgets of nine never add up inside the account's ten (DESIGN §7.4).
pub const HANDOVER_QUIET: Duration = Duration::from_millis(1_200);

/// Where an account's `order-changed` partition is, seen from this member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// The topic's partition count is not known yet.
    Unknown,
    /// The count is known, this member's assignment not yet.
    NoAssignmentYet,
    /// Assigned to this member less than [`HANDOVER_QUIET`] ago.
    Arriving,
    /// Assigned to this member.
    Here,
    /// Assigned to another member.
    Elsewhere,
}

/// Every integration's latest sync state, and this member's share of them (cheap to clone).
#[derive(Debug, Clone)]
pub struct SyncStates {
    known: Arc<RwLock<HashMap<IntegrationId, Known>>>,
    /// The `order-changed` partitions assigned to this member, each with when this member
    /// first saw it assigned (`None` before the first look).
    assigned: Arc<RwLock<Option<HashMap<i32, Instant>>>>,
    /// How many partitions `order-changed` has (0 until known).
    partitions: Arc<AtomicI32>,
    ready: CaughtUp,
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
            partitions: Arc::default(),
            ready: CaughtUp::default(),
        }
    }

    /// The integration's latest state.
    pub fn get(&self, id: IntegrationId) -> Option<SyncStateChanged> {
        let known = self.known.read().expect("sync state lock");
        known.get(&id).map(|k| k.state.clone())
    }

    /// Records the partitions of `order-changed` this member is assigned (a partition held
    /// before keeps the moment it arrived).
    pub fn set_assignment(&self, partitions: Vec<i32>) {
        let now = Instant::now();
        let mut assigned = self.assigned.write().expect("sync assignment lock");
        let before = assigned.take().unwrap_or_default();
        *assigned = Some(
            partitions
                .into_iter()
                .map(|p| (p, before.get(&p).copied().unwrap_or(now)))
                .collect(),
        );
    }

    /// Forgets `partitions` at once: called from inside the rebalance that takes them
    /// ([`dealflow_shared::bus::Consumer::on_revoke`]), so this member's workers are fenced
    /// from their accounts before another member is given them.
    pub fn revoke(&self, partitions: &[i32]) {
        let mut assigned = self.assigned.write().expect("sync assignment lock");
        let held = assigned.get_or_insert_with(HashMap::new);
        for partition in partitions {
            held.remove(partition);
        }
    }

    /// Whether the partition count of `order-changed` is known.
    pub fn partition_count_known(&self) -> bool {
        self.partitions.load(Ordering::Relaxed) > 0
    }

    /// Records how many partitions `order-changed` has.
    pub fn set_partition_count(&self, partitions: usize) {
        let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
        self.partitions.store(partitions, Ordering::Relaxed);
    }

    /// Whether this member runs the sync of integration `id` on the account at `crm_url`: the
    /// account's `order-changed` partition is assigned here.
    pub fn owns(&self, id: IntegrationId, crm_url: &str) -> bool {
        match self.account_assigned(crm_url) {
            Placement::Unknown => self.owns_by_state(id),
            Placement::NoAssignmentYet | Placement::Elsewhere => false,
            Placement::Arriving | Placement::Here => true,
        }
    }

    /// Whether this member holds the `order-changed` partition of the account at `crm_url`,
    /// and has held it for [`HANDOVER_QUIET`]: `true` while the partition count is unknown
    /// (the rule of the first moments, see the module). A member that lost the partition makes
    /// no more calls to the account, and one that just got it makes none yet (the fence of
    /// DESIGN §7.4).
    pub fn holds_account(&self, crm_url: &str) -> bool {
        matches!(
            self.account_assigned(crm_url),
            Placement::Unknown | Placement::Here
        )
    }

    /// Where the account's `order-changed` partition is, as far as this member knows.
    fn account_assigned(&self, crm_url: &str) -> Placement {
        let partitions = self.partitions.load(Ordering::Relaxed);
        if partitions == 0 {
            return Placement::Unknown;
        }
        let partition = partition_for(&order_changed_key(crm_url), partitions);
        match self.assigned.read().expect("sync assignment lock").as_ref() {
            None => Placement::NoAssignmentYet,
            Some(assigned) => match assigned.get(&partition) {
                Some(since) if since.elapsed() >= HANDOVER_QUIET => Placement::Here,
                Some(_) => Placement::Arriving,
                None => Placement::Elsewhere,
            },
        }
    }

    /// The rule before the partition count is known: its `sync-state` partition is assigned
    /// here, or it is not known yet (the worker writes a first state to learn it).
    fn owns_by_state(&self, id: IntegrationId) -> bool {
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
            .is_some_and(|assigned| assigned.contains_key(&partition))
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
        self.ready.is_ready()
    }

    /// Waits until the topic has been read to its end once.
    pub async fn wait_ready(&self) {
        self.ready.wait_ready().await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The account's partition decides both who syncs its integrations and whether a worker
    /// may call it (the fence): nothing is fenced before the partitions are known; a revoked
    /// partition is fenced at once, a newly given one for [`HANDOVER_QUIET`].
    #[test]
    fn the_accounts_partition_decides_ownership_and_the_fence() {
        let url = "https://shop.retailcrm.ru/";
        let partition = partition_for(&order_changed_key(url), 12);
        let other = (partition + 1) % 12;
        let states = SyncStates::new();
        assert!(
            states.holds_account(url),
            "unknown partitions fence nothing"
        );
        states.set_partition_count(12);
        assert!(
            !states.holds_account(url),
            "no call before this member's assignment is known"
        );
        states.set_assignment(vec![other]);
        assert!(!states.holds_account(url));
        assert!(!states.owns(IntegrationId::new(), url));
        states.set_assignment(vec![other, partition]);
        assert!(
            states.owns(IntegrationId::new(), url),
            "its worker starts at once"
        );
        assert!(
            !states.holds_account(url),
            "but calls only after the handover's quiet second"
        );
        let settled = Instant::now() - HANDOVER_QUIET;
        states
            .assigned
            .write()
            .unwrap()
            .as_mut()
            .unwrap()
            .insert(partition, settled);
        assert!(states.holds_account(url));
        states.set_assignment(vec![partition, other]);
        assert!(
            states.holds_account(url),
            "a partition held before keeps its arrival"
        );
        states.revoke(&[partition]);
        assert!(!states.holds_account(url), "revoked: fenced at once");
        assert!(!states.owns(IntegrationId::new(), url));
    }
}
