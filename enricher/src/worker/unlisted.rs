//! Orders a batch's list did not return: deleted or merged orders (API-NOTES pitfall 9), or,
//! rarely, one the list missed. Each costs one `GET /orders/{id}`: `Not found` becomes
//! `DealDeleted` (with `merged_into` from `combinedTo`, else from history), an order that is
//! there after all becomes its `DealUpserted`.
//!
//! **After the live batches.** The lookups no longer run inside the batch that missed them, so
//! a deleted order does not hold the batch's other orders back, and during a burst the list
//! calls go back to back. A lookup runs when no live batch is due (a lookup then delays the
//! next batch by one budget token at most), or once the oldest unlisted order has waited
//! `unlisted_max_wait`; then they alternate with live batches (one each), so a busy
//! account's deletions still move. Until its lookup an order's records stay
//! held (offsets do not move past them), and a new change of it joins it: the lookup is made
//! after that change arrived.
//!
//! A confirmed deletion is remembered like the ones `orders/history` reports
//! (`known_deleted`): a deleted order never comes back, so a later change record for it costs
//! no call.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::batch::{LookedUp, client, look_up};
use super::failure::Failure;
use super::reconcile::remember_deleted;
use crate::queue::{Entry, Ticket};

impl Worker {
    /// Holds orders the list did not return until their lookup.
    pub(super) fn hold_for_lookup(&mut self, entries: Vec<(u64, Entry)>) {
        let covered = self.unlisted.append(entries);
        self.finish(covered);
    }

    /// When the next lookup may run, if one waits: now when no live batch is due (the budget
    /// would idle), else once the oldest unlisted order is overdue and a live batch ran since
    /// the last lookup.
    pub(super) fn lookup_due_at(&self, now: Instant) -> Option<Instant> {
        let oldest = self.unlisted.oldest_since()?;
        if self.batch_due_at().is_none_or(|at| now < at) {
            return Some(now);
        }
        if self.live_since_lookup == 0 {
            return None; // the next live batch goes first
        }
        Some(oldest + self.context.settings.unlisted_max_wait)
    }

    /// Looks one unlisted order up by id and publishes what it found.
    pub(super) async fn look_up_next(&mut self, abort: &CancellationToken) -> Result<(), Failure> {
        let Some((order_id, entry)) = self.unlisted.take(1).pop() else {
            return Ok(());
        };
        self.live_since_lookup = 0;
        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => {
                // Not finished: the records are delivered again after the restart.
                self.unlisted.put_back(vec![(order_id, entry)]);
                return Ok(());
            }
            result = self.look_up_and_publish(order_id, &entry.tickets) => result,
        };
        match result {
            Ok(()) => {
                self.finish(entry.tickets);
                self.succeeded();
                Ok(())
            }
            Err(failure) => {
                if !matches!(failure, Failure::Fatal(_)) {
                    let covered = self.unlisted.put_back(vec![(order_id, entry)]);
                    self.finish(covered);
                }
                self.react_to_failure(failure)
            }
        }
    }

    /// One lookup and its events; on success the order's tickets may be finished.
    async fn look_up_and_publish(
        &mut self,
        order_id: u64,
        tickets: &[Ticket],
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let found = look_up(client(&mut self.crm)?, order_id, &self.known_deleted).await?;
        self.context.metrics.stage("lookup", started.elapsed());
        // The reference data may have gone stale while the order waited.
        self.ensure_reference().await?;
        let done = [(order_id, tickets)];
        match found {
            LookedUp::Found(order) => {
                self.publish_fetched(&done, &[*order], &[], Vec::new(), started)
                    .await
            }
            LookedUp::Deleted(merged_into) => {
                let deleted = [(order_id, merged_into)];
                self.publish_fetched(&done, &[], &deleted, Vec::new(), started)
                    .await?;
                remember_deleted(&mut self.known_deleted, deleted);
                Ok(())
            }
            LookedUp::Unreadable(reason) => {
                self.publish_fetched(&done, &[], &[], vec![(order_id, reason)], started)
                    .await
            }
        }
    }
}
