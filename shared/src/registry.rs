//! The current settings of every integration, rebuilt from the compacted `integrations` topic.
//!
//! ingest and the enricher hold no database (DESIGN §1): at start they read the topic to its
//! end, then keep following it, so a second process knows what the first one created. A
//! process's own writes can be applied locally as soon as the bus acknowledges them (read your
//! writes); the same record arriving later through the topic changes nothing. `updated_at` orders versions
//! of one integration and removals leave a tombstone, so a stale record can never resurrect a
//! deleted integration or roll back a newer one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::bus::{BusError, EventBus};
use crate::events::{Envelope, Event, IntegrationConfigured, IntegrationId};
use crate::follow::{CaughtUp, follow_topic};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
enum Entry {
    Live(IntegrationConfigured),
    Removed(DateTime<Utc>),
}

/// The current settings of every integration (cheap to clone; clones share the state).
#[derive(Debug, Clone)]
pub struct Registry {
    entries: Arc<RwLock<HashMap<IntegrationId, Entry>>>,
    ready: CaughtUp,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self {
            entries: Arc::default(),
            ready: CaughtUp::default(),
        }
    }

    /// The integration's current settings, unless unknown or removed.
    pub fn get(&self, id: IntegrationId) -> Option<IntegrationConfigured> {
        self.read(id, IntegrationConfigured::clone)
    }

    /// `look` applied to a live integration's settings, without copying them (the webhook's
    /// path reads three fields per request).
    pub fn read<T>(
        &self,
        id: IntegrationId,
        look: impl FnOnce(&IntegrationConfigured) -> T,
    ) -> Option<T> {
        match self.entries.read().expect("registry lock").get(&id) {
            Some(Entry::Live(config)) => Some(look(config)),
            _ => None,
        }
    }

    /// Every live integration, oldest first.
    pub fn list(&self) -> Vec<(IntegrationId, IntegrationConfigured)> {
        let entries = self.entries.read().expect("registry lock");
        let mut live: Vec<_> = entries
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Live(c) => Some((*id, c.clone())),
                Entry::Removed(_) => None,
            })
            .collect();
        live.sort_by_key(|(id, c)| (c.created_at, *id));
        live
    }

    /// Applies one event from the `integrations` topic (or one ingest just published).
    pub fn apply(&self, envelope: &Envelope) {
        let mut entries = self.entries.write().expect("registry lock");
        let id = envelope.integration_id;
        match &envelope.event {
            Event::IntegrationConfigured(config) => {
                let newer = match entries.get(&id) {
                    None => true,
                    Some(Entry::Live(current)) => config.updated_at >= current.updated_at,
                    Some(Entry::Removed(at)) => config.updated_at > *at,
                };
                if newer {
                    entries.insert(id, Entry::Live(config.clone()));
                }
            }
            Event::IntegrationRemoved(removed) => {
                let newer = match entries.get(&id) {
                    Some(Entry::Removed(at)) => removed.removed_at > *at,
                    _ => true,
                };
                if newer {
                    entries.insert(id, Entry::Removed(removed.removed_at));
                }
            }
            other => tracing::warn!(
                event_type = other.event_type().as_str(),
                "unexpected event type on the integrations topic, ignored"
            ),
        }
    }

    /// Whether the topic has been read to its end once.
    pub fn is_ready(&self) -> bool {
        self.ready.is_ready()
    }

    /// Waits until the topic has been read to its end once.
    pub async fn wait_ready(&self) {
        self.ready.wait_ready().await;
    }

    /// Reads `topic` to its end, marks the registry ready, then follows it until `shutdown`.
    ///
    /// Every process reads the whole topic, so each uses its own consumer group (`group` should
    /// be unique per process) and never commits.
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
                Ok(envelope) => self.apply(&envelope),
                // A record this build cannot read must not stop everyone else's integrations;
                // the projector dead-letters it, followers only report it.
                Err(e) => tracing::error!(
                    topic = %record.topic, partition = record.partition, offset = record.offset,
                    error = %e, "unreadable record on the integrations topic, skipped"
                ),
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::events::{IntegrationRemoved, SealedApiKey};
    use chrono::TimeZone;

    use super::*;

    fn configured(id: IntegrationId, updated_secs: i64, active: bool) -> Envelope {
        let at = Utc.timestamp_opt(1_700_000_000 + updated_secs, 0).unwrap();
        Envelope::new(
            id,
            Event::IntegrationConfigured(IntegrationConfigured {
                tenant_id: crate::events::TenantId::default_tenant(),
                crm_url: "https://a.retailcrm.ru/".into(),
                api_key_sealed: SealedApiKey("v1.x".into()),
                api_key_hint: "abcd".into(),
                active,
                default_funnel: true,
                include_delivery_cost: true,
                revenue: crate::events::Revenue::Total,
                stage_mapping: Default::default(),
                backfill_days: 0,
                webhook_token_generation: 0,
                history_since_id: None,
                resync: None,
                created_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
                updated_at: at,
            }),
        )
    }

    fn removed(id: IntegrationId, secs: i64) -> Envelope {
        Envelope::new(
            id,
            Event::IntegrationRemoved(IntegrationRemoved {
                removed_at: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
            }),
        )
    }

    #[test]
    fn newer_settings_win_and_stale_ones_are_ignored() {
        let r = Registry::new();
        let id = IntegrationId::new();
        r.apply(&configured(id, 10, true));
        r.apply(&configured(id, 20, false));
        r.apply(&configured(id, 10, true)); // the first record, redelivered
        assert!(!r.get(id).unwrap().active);
    }

    #[test]
    fn removal_is_final_against_stale_records() {
        let r = Registry::new();
        let id = IntegrationId::new();
        r.apply(&configured(id, 10, true));
        r.apply(&removed(id, 30));
        r.apply(&configured(id, 10, true)); // replayed from the topic after the local removal
        assert!(r.get(id).is_none());
        assert!(r.list().is_empty());
    }
}
