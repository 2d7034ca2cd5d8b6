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
//! **History first.** A deletion since the account was connected is in its `orders/history`,
//! which the member that owns the integration's sync reads anyway (`reconcile`): one page
//! holds up to 100 records. So when orders are held for a lookup, that member first reads
//! history from its cursor to the end (in the lookup's turn, before any by-id call), and the
//! held orders history reports deleted become `DealDeleted` without a call of their own. Only
//! the rest are looked up by id (an order deleted before the account was connected, or one
//! the list missed). A burst of 5,000 orders with 40 deleted so costs one history call
//! instead of 40 lookups.
//!
//! A confirmed deletion is remembered like the ones `orders/history` reports
//! ([`KnownDeleted`]): a deleted order never comes back, so a later change record for it costs
//! no call.

use std::collections::HashMap;

use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::batch::{LookedUp, client, look_up};
use super::failure::Failure;
use crate::queue::{Entry, Ticket, WaitingOrders};

/// Deleted orders remembered: a list that omits one needs no by-id call, and the by-id path
/// may not see `combinedTo`.
const KNOWN_DELETED_MAX: usize = 50_000;

/// Orders known deleted (reported by `orders/history` or confirmed by a lookup), with the
/// order each was merged into, when known.
#[derive(Debug, Default)]
pub(super) struct KnownDeleted(HashMap<u64, Option<u64>>);

impl KnownDeleted {
    /// Remembers deleted orders: history's and confirmed lookups' alike, a later answer
    /// replacing an earlier one. Bounded: the memory starts over past `KNOWN_DELETED_MAX`
    /// (forgetting only costs a lookup).
    pub(super) fn remember(&mut self, deleted: impl IntoIterator<Item = (u64, Option<u64>)>) {
        if self.0.len() > KNOWN_DELETED_MAX {
            self.0.clear();
        }
        self.0.extend(deleted);
    }

    /// Whether `order` is known deleted.
    pub(super) fn contains(&self, order: u64) -> bool {
        self.0.contains_key(&order)
    }

    /// The order `order` was merged into, when known.
    pub(super) fn merged_into(&self, order: u64) -> Option<u64> {
        self.0.get(&order).copied().flatten()
    }
}

/// The orders waiting for their lookup, and when the next one is due.
#[derive(Debug)]
pub(super) struct UnlistedLookups {
    /// Orders a list did not return, waiting for their by-id lookup (a new change of one of
    /// them joins it here).
    pub(super) orders: WaitingOrders,
    /// Live batches since the last lookup.
    live_since_lookup: u32,
    /// Orders were held since history was last read to its end: read it before looking
    /// any of them up (it may report them deleted).
    history_first: bool,
}

impl UnlistedLookups {
    pub(super) fn new() -> Self {
        Self {
            orders: WaitingOrders::new(),
            live_since_lookup: 0,
            history_first: false,
        }
    }

    /// Whether history is to be read before the next lookup.
    pub(super) fn history_first(&self) -> bool {
        self.history_first && !self.orders.is_empty()
    }

    /// History was read to its end after the held orders were held (or cannot be read by this
    /// member): the lookups may go.
    pub(super) fn history_read(&mut self) {
        self.history_first = false;
    }

    /// A history step took the lookups' turn (live batches get theirs again).
    pub(super) fn history_step_ran(&mut self) {
        self.live_since_lookup = 0;
    }

    /// A live batch ran (an overdue lookup then goes before the next one).
    pub(super) fn live_batch_ran(&mut self) {
        self.live_since_lookup = self.live_since_lookup.saturating_add(1);
    }

    /// When the next lookup may run, if one waits: now when no live batch is due (at
    /// `batch_due_at`; the budget would idle), else once the oldest unlisted order waited
    /// `max_wait` and a live batch ran since the last lookup.
    pub(super) fn due_at(
        &self,
        now: Instant,
        batch_due_at: Option<Instant>,
        max_wait: Duration,
    ) -> Option<Instant> {
        let oldest = self.orders.oldest_since()?;
        if batch_due_at.is_none_or(|at| now < at) {
            return Some(now);
        }
        if self.live_since_lookup == 0 {
            return None; // the next live batch goes first
        }
        Some(oldest + max_wait)
    }

    /// Takes the next order to look up.
    pub(super) fn take_next(&mut self) -> Option<(u64, Entry)> {
        let next = self.orders.take(1).pop()?;
        self.live_since_lookup = 0;
        Some(next)
    }
}

impl Worker {
    /// Holds orders the list did not return until their lookup; history is read first.
    pub(super) fn hold_for_lookup(&mut self, entries: Vec<(u64, Entry)>) {
        if !entries.is_empty() {
            self.unlisted.history_first = true;
        }
        let covered = self.unlisted.orders.append(entries);
        self.finish(covered);
    }

    /// When the next lookup may run, if one waits ([`UnlistedLookups::due_at`]).
    pub(super) fn lookup_due_at(&self, now: Instant) -> Option<Instant> {
        let max_wait = self.context.settings.unlisted_max_wait;
        self.unlisted.due_at(now, self.batch_due_at(), max_wait)
    }

    /// Looks one unlisted order up by id and publishes what it found; reads history first
    /// when orders were held since it was last read to its end.
    pub(super) async fn look_up_next(&mut self, abort: &CancellationToken) -> Result<(), Failure> {
        if self.unlisted.history_first() {
            return self.history_before_lookups(abort).await;
        }
        let Some((order_id, entry)) = self.unlisted.take_next() else {
            return Ok(());
        };
        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => {
                // Not finished: the records are delivered again after the restart.
                self.unlisted.orders.put_back(vec![(order_id, entry)]);
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
                    let covered = self.unlisted.orders.put_back(vec![(order_id, entry)]);
                    self.finish(covered);
                }
                self.react_to_failure(failure)
            }
        }
    }

    /// One step of `orders/history` in the lookups' turn, when this member owns the
    /// integration's sync; any other member, or a failure, lets the lookups go.
    async fn history_before_lookups(&mut self, abort: &CancellationToken) -> Result<(), Failure> {
        self.unlisted.history_step_ran();
        let step = async {
            if self.owns_sync().await? {
                // Read to its end, the read lets the lookups go itself (`reconcile`).
                self.reconcile().await.map(|_| ())
            } else {
                // The owner reads it; this member looks its orders up.
                self.unlisted.history_read();
                Ok(())
            }
        };
        let result = tokio::select! {
            biased;
            // Whatever was published is published again after the restart (idempotent).
            _ = abort.cancelled() => return Ok(()),
            result = step => result,
        };
        match result {
            Ok(()) => {
                self.succeeded();
                Ok(())
            }
            Err(failure) => {
                self.unlisted.history_read();
                self.react_to_failure(failure)
            }
        }
    }

    /// Finishes the held orders known deleted: their `DealDeleted` is out already (this
    /// worker published it when history reported the deletion, before remembering it), so
    /// they need neither a call nor another event.
    pub(super) fn complete_known_deleted(&mut self) {
        let known = &self.known_deleted;
        let entries = self.unlisted.orders.take_matching(|id| known.contains(id));
        let records = entries.iter().map(|(_, entry)| entry.tickets.len()).sum();
        self.context.metrics.skipped("deleted_in_history", records);
        self.finish(entries.into_iter().flat_map(|(_, entry)| entry.tickets));
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
                self.known_deleted.remember(deleted);
                Ok(())
            }
            LookedUp::Unreadable(reason) => {
                self.publish_fetched(&done, &[], &[], vec![(order_id, reason)], started)
                    .await
            }
        }
    }
}
