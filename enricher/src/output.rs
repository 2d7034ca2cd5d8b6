//! Publishing the enricher's events: each in its envelope, keyed by integration (an
//! `OrderChanged` by its account), on the topic DESIGN §6 gives its type, acknowledged before
//! anything is finished.

use std::sync::Arc;
use std::time::Instant;

use dealflow_shared::bus::{BusError, EventBus, OutRecord};
use dealflow_shared::events::{Envelope, Event, EventType, IntegrationId};
use dealflow_shared::registry::Registry;
use dealflow_shared::topics::{Topics, order_changed_key};

use crate::metrics::EnricherMetrics;

/// Publishes events of one process.
#[derive(Debug, Clone)]
pub struct Output {
    bus: Arc<dyn EventBus>,
    topics: Topics,
    metrics: EnricherMetrics,
    /// For the account an `OrderChanged` is keyed by ([`order_changed_key`]).
    registry: Registry,
}

impl Output {
    /// Events go to `topics` on `bus`.
    pub fn new(
        bus: Arc<dyn EventBus>,
        topics: Topics,
        metrics: EnricherMetrics,
        registry: Registry,
    ) -> Self {
        Self {
            bus,
            topics,
            metrics,
            registry,
        }
    }

    /// The record key of `envelope`: its integration, except `OrderChanged`, keyed by the
    /// account (DESIGN §7.4; the integration's when it is no longer known).
    fn key(&self, envelope: &Envelope) -> String {
        match (&envelope.event, self.registry.get(envelope.integration_id)) {
            (Event::OrderChanged(_), Some(config)) => order_changed_key(&config.crm_url),
            _ => envelope.key(),
        }
    }

    /// The topic of an event type (only the types the enricher writes are asked for).
    fn topic(&self, event_type: EventType) -> String {
        match event_type {
            EventType::DealUpserted | EventType::DealDeleted | EventType::DealStagesRecorded => {
                self.topics.deals()
            }
            EventType::ContactUpserted => self.topics.contacts(),
            EventType::FunnelStageSeen => self.topics.funnels(),
            EventType::IntegrationHealthChanged => self.topics.health(),
            EventType::OrderChanged => self.topics.order_changed(),
            EventType::SyncStateChanged => self.topics.sync_state(),
            EventType::IntegrationConfigured | EventType::IntegrationRemoved => {
                self.topics.integrations()
            }
        }
    }

    /// Publishes `events` of one integration, in order within each topic, and returns once
    /// the bus acknowledged every one. Funnel stages go first, then contacts, then deals, so a
    /// reader of the deals topic finds the stages and contacts they name already published.
    pub async fn publish(
        &self,
        integration: IntegrationId,
        events: Vec<Event>,
    ) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut by_topic: Vec<(String, Vec<OutRecord>, Vec<EventType>)> = Vec::new();
        let mut sorted = events;
        sorted.sort_by_key(|e| rank(e.event_type()));
        for event in sorted {
            let event_type = event.event_type();
            let topic = self.topic(event_type);
            let envelope = Envelope::new(integration, event);
            let record = OutRecord::new(self.key(&envelope), envelope.encode());
            match by_topic.iter_mut().find(|(t, _, _)| *t == topic) {
                Some((_, records, types)) => {
                    records.push(record);
                    types.push(event_type);
                }
                None => by_topic.push((topic, vec![record], vec![event_type])),
            }
        }
        for (topic, records, types) in by_topic {
            self.bus.publish(&topic, records).await?;
            for event_type in types {
                self.metrics.emitted(event_type, 1);
            }
        }
        self.metrics.stage("publish", started.elapsed());
        Ok(())
    }
}

/// Publication order of the types (a stable sort keeps the order within a type).
fn rank(event_type: EventType) -> u8 {
    match event_type {
        EventType::FunnelStageSeen => 0,
        EventType::ContactUpserted => 1,
        EventType::DealUpserted | EventType::DealDeleted | EventType::DealStagesRecorded => 2,
        _ => 3,
    }
}
