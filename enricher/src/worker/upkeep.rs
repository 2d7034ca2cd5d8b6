//! A worker's upkeep between batches: publishing health changes, following the integration's
//! settings (a new key ends parking), and appending records that waited too long again at the
//! end of their partition.

use chrono::Utc;
use dealflow_shared::bus::OutRecord;
use dealflow_shared::events::{Event, HealthStatus, IntegrationHealthChanged};
use tokio::time::Instant;

use super::failure::{Failure, bus_failure};
use super::{CONFIG_CHECK, HEADER_REQUEUED, Mode, TICK, Worker};
use crate::mapping::StageMemory;

impl Worker {
    /// Queues a health change for publication when it differs from the last one.
    pub(super) fn set_health(&mut self, status: HealthStatus, message: Option<String>) {
        if self.health == Some(status) {
            return;
        }
        self.health = Some(status);
        self.pending_health = Some(IntegrationHealthChanged {
            status,
            message,
            checked_at: Utc::now(),
        });
    }

    /// Publishes a queued health change; a transient bus failure keeps it for the next tick.
    pub(super) async fn flush_health(&mut self) -> Result<(), Failure> {
        let Some(health) = self.pending_health.clone() else {
            return Ok(());
        };
        let event = Event::IntegrationHealthChanged(health);
        match self.shared.output.publish(self.id, vec![event]).await {
            Ok(()) => {
                self.pending_health = None;
                Ok(())
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(integration_id = %self.id, %error, "health change not published yet");
                Ok(())
            }
            Err(error) => Err(bus_failure(error)),
        }
    }

    /// Follows the integration's settings: a new key or URL ends parking; a removed or
    /// switched-off integration drops its waiting orders.
    pub(super) fn check_config(&mut self) {
        let parked = matches!(self.mode, Mode::Parked { .. });
        self.next_config_check = Instant::now() + if parked { TICK } else { CONFIG_CHECK };
        let Some(current) = self.shared.registry.get(self.id).filter(|c| c.active) else {
            let mut dropped = self.waiting.clear();
            dropped.append(&mut self.unlisted.clear());
            if !dropped.is_empty() {
                tracing::info!(integration_id = %self.id, records = dropped.len(), "integration removed or switched off; its waiting orders are dropped");
                self.shared
                    .metrics
                    .skipped("integration_gone", dropped.len());
            }
            self.finish(dropped);
            return;
        };
        let url_changed = current.crm_url != self.config.crm_url;
        let key_changed = current.api_key_sealed != self.config.api_key_sealed;
        self.config = current;
        if !(url_changed || key_changed) {
            return;
        }
        tracing::info!(integration_id = %self.id, url_changed, key_changed, "integration settings changed");
        self.crm = self.build_client();
        if url_changed {
            self.reference = None;
            self.stages = StageMemory::default();
            self.stages_synced = None;
        }
        if !matches!(self.mode, Mode::Ready) {
            self.failures = 0;
            self.set_mode(Mode::Ready);
        }
    }

    /// Appends the records of orders that waited too long again at the end of their
    /// partition (same key, same bytes), then finishes the old ones.
    pub(super) async fn requeue_stale(&mut self) -> Result<(), Failure> {
        let settings = &self.shared.settings;
        let now = Instant::now();
        self.next_requeue_check = now + (settings.requeue_after / 4).max(TICK);
        let Some(before) = now.checked_sub(settings.requeue_after) else {
            return Ok(());
        };
        let stale_live = self.waiting.take_tickets_older_than(before);
        let stale_unlisted = self.unlisted.take_tickets_older_than(before);
        let live_count = stale_live.len();
        let stale: Vec<_> = stale_live.into_iter().chain(stale_unlisted).collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut by_topic: Vec<(String, Vec<OutRecord>)> = Vec::new();
        for ticket in &stale {
            let original = &ticket.delivered;
            let mut record = OutRecord::new(
                original.key.clone().unwrap_or_default(),
                original.payload.clone(),
            );
            // The original headers, marked once (a record appended again keeps one mark).
            record.headers = original
                .headers
                .iter()
                .filter(|(name, _)| name != HEADER_REQUEUED)
                .cloned()
                .collect();
            record
                .headers
                .push((HEADER_REQUEUED.to_owned(), b"1".to_vec()));
            match by_topic.iter_mut().find(|(t, _)| *t == original.topic) {
                Some((_, records)) => records.push(record),
                None => by_topic.push((original.topic.clone(), vec![record])),
            }
        }
        for (topic, records) in by_topic {
            if let Err(error) = self.shared.bus.publish(&topic, records).await {
                // Keep holding them; a later check tries again (a partial append only
                // means some orders are asked for twice).
                for (i, ticket) in stale.into_iter().enumerate() {
                    let queue = if i < live_count {
                        &mut self.waiting
                    } else {
                        &mut self.unlisted
                    };
                    if let Some(covered) = queue.add(ticket.order_id, ticket, now) {
                        self.finish([covered]);
                    }
                }
                return if error.is_transient() {
                    tracing::warn!(integration_id = %self.id, %error, "appending stalled records again failed; retrying later");
                    Ok(())
                } else {
                    Err(bus_failure(error))
                };
            }
        }
        tracing::info!(integration_id = %self.id, records = stale.len(), "stalled records appended again at the end of their partition");
        self.shared.metrics.requeued(stale.len());
        self.finish(stale);
        Ok(())
    }
}
