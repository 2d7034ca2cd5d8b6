//! Records that waited too long (a parked or failing account) are appended again, bytes and
//! key unchanged, at the end of their partition and then finished, so they stop holding the
//! partition's committed offset back; the orders stay queued and the appended records become
//! their new tickets (see the crate docs, "Offsets, failures and parked accounts").

use dealflow_shared::bus::OutRecord;
use dealflow_shared::topics::order_changed_key;
use tokio::time::Instant;

use super::failure::{Failure, bus_failure};
use super::{HEADER_REQUEUED, TICK, Worker};

impl Worker {
    /// Appends the records of orders that waited too long again at the end of their
    /// account's partition (same bytes), then finishes the old ones.
    pub(super) async fn requeue_stale(&mut self) -> Result<(), Failure> {
        let settings = &self.context.settings;
        let now = Instant::now();
        self.next_requeue_check = now + (settings.requeue_after / 4).max(TICK);
        let Some(before) = now.checked_sub(settings.requeue_after) else {
            return Ok(());
        };
        let stale_live = self.live.waiting.take_tickets_older_than(before);
        let stale_unlisted = self.unlisted.orders.take_tickets_older_than(before);
        let live_count = stale_live.len();
        let stale: Vec<_> = stale_live.into_iter().chain(stale_unlisted).collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut by_topic: Vec<(String, Vec<OutRecord>)> = Vec::new();
        for ticket in &stale {
            let original = &ticket.delivered;
            // Under the account's key: a record consumed under another key (written before
            // order changes were keyed by account) then reaches the member that holds the
            // account, rather than coming back to one that may be fenced from it.
            let key = if original.topic == self.context.settings.topics.order_changed() {
                order_changed_key(&self.config.crm_url)
            } else {
                original.key.clone().unwrap_or_default()
            };
            let mut record = OutRecord::new(key, original.payload.clone());
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
            if let Err(error) = self.context.bus.publish(&topic, records).await {
                // Keep holding them; a later check tries again (a partial append only
                // means some orders are asked for twice).
                for (i, ticket) in stale.into_iter().enumerate() {
                    let queue = if i < live_count {
                        &mut self.live.waiting
                    } else {
                        &mut self.unlisted.orders
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
        self.context.metrics.requeued(stale.len());
        self.finish(stale);
        Ok(())
    }
}
