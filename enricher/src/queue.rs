//! The orders one account is waiting to fetch, de-duplicated, oldest first.
//!
//! Each waiting order holds the *tickets* (consumed records) that asked for it. A burst of
//! changes to one order costs one fetch: a new record for an order that is already waiting, in
//! the same partition behind a ticket that is still held, is *covered* by that earlier ticket
//! (the fetch it waits for starts after the new record arrived) and is handed back to be
//! finished at once. So the memory an account needs is bounded by its distinct waiting
//! orders, not by how many webhooks it sent.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dealflow_shared::bus::Delivered;
use tokio::time::Instant;

use crate::offsets::RecordRef;

/// One consumed `OrderChanged` record while its order waits or is being fetched.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The order it asks for.
    pub order_id: u64,
    /// Where it came from, for finishing its offset.
    pub record: RecordRef,
    /// The original record, for the dead-letter topic or to append it again.
    pub delivered: Arc<Delivered>,
    /// When the enricher consumed it.
    pub consumed_at: Instant,
    /// When ingest received the change (from the event).
    pub changed_at: DateTime<Utc>,
}

/// One waiting order.
#[derive(Debug)]
pub struct Entry {
    /// The records that asked for it and are not finished.
    pub tickets: Vec<Ticket>,
    /// When it started waiting.
    pub since: Instant,
    seq: u64,
}

/// The waiting orders of one account.
#[derive(Debug, Default)]
pub struct WaitingOrders {
    /// Order ids oldest first, with the sequence number of the entry they were queued for;
    /// an element whose entry is gone or has another sequence number is stale and skipped.
    queue: VecDeque<(u64, u64)>,
    entries: HashMap<u64, Entry>,
    next_seq: u64,
}

impl WaitingOrders {
    /// Nothing waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct orders waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Held tickets over every waiting order.
    pub fn tickets(&self) -> usize {
        self.entries.values().map(|e| e.tickets.len()).sum()
    }

    /// Since when the oldest order has been waiting.
    pub fn oldest_since(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.since).min()
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Queues `order_id` for `ticket`. Returns the ticket when an earlier held ticket already
    /// covers it: the caller finishes it right away.
    pub fn add(&mut self, order_id: u64, ticket: Ticket, now: Instant) -> Option<Ticket> {
        if let Some(entry) = self.entries.get_mut(&order_id) {
            return cover(&mut entry.tickets, ticket);
        }
        let seq = self.seq();
        self.entries.insert(
            order_id,
            Entry {
                tickets: vec![ticket],
                since: now,
                seq,
            },
        );
        self.queue.push_back((order_id, seq));
        None
    }

    /// Takes up to `max` orders, oldest first.
    pub fn take(&mut self, max: usize) -> Vec<(u64, Entry)> {
        let mut out = Vec::with_capacity(max.min(self.entries.len()));
        while out.len() < max {
            let Some((id, seq)) = self.queue.pop_front() else {
                break;
            };
            if self.entries.get(&id).is_some_and(|e| e.seq == seq) {
                let entry = self.entries.remove(&id).expect("checked above");
                out.push((id, entry));
            }
        }
        out
    }

    /// Puts orders whose fetch failed back at the front, in their order, merged with records
    /// that arrived for them meanwhile. Returns the tickets that are now covered.
    pub fn put_back(&mut self, batch: Vec<(u64, Entry)>) -> Vec<Ticket> {
        let mut covered = Vec::new();
        for (id, mut entry) in batch.into_iter().rev() {
            if let Some(newer) = self.entries.remove(&id) {
                entry.since = entry.since.min(newer.since);
                for ticket in newer.tickets {
                    covered.extend(cover(&mut entry.tickets, ticket));
                }
            }
            entry.seq = self.seq();
            self.queue.push_front((id, entry.seq));
            self.entries.insert(id, entry);
        }
        covered
    }

    /// Queues entries taken from another queue at the back, in their order, merged with
    /// records already waiting for the same orders. Returns the tickets that are now covered.
    pub fn append(&mut self, entries: Vec<(u64, Entry)>) -> Vec<Ticket> {
        let mut covered = Vec::new();
        for (id, mut entry) in entries {
            if let Some(held) = self.entries.remove(&id) {
                entry.since = entry.since.min(held.since);
                for ticket in held.tickets {
                    covered.extend(cover(&mut entry.tickets, ticket));
                }
            }
            entry.seq = self.seq();
            self.queue.push_back((id, entry.seq));
            self.entries.insert(id, entry);
        }
        covered
    }

    /// Whether `order_id` is waiting.
    pub fn contains(&self, order_id: u64) -> bool {
        self.entries.contains_key(&order_id)
    }

    /// Takes the waiting orders `wanted` picks, oldest first.
    pub fn take_matching(&mut self, wanted: impl Fn(u64) -> bool) -> Vec<(u64, Entry)> {
        let picked: Vec<u64> = self
            .queue
            .iter()
            .filter(|(id, seq)| wanted(*id) && self.entries.get(id).is_some_and(|e| e.seq == *seq))
            .map(|(id, _)| *id)
            .collect();
        picked
            .into_iter()
            .filter_map(|id| self.entries.remove(&id).map(|entry| (id, entry)))
            .collect()
    }

    /// Removes the tickets consumed before `before` from orders that keep waiting (to append
    /// their records again further down the partition). Orders stay queued.
    pub fn take_tickets_older_than(&mut self, before: Instant) -> Vec<Ticket> {
        let mut old = Vec::new();
        for entry in self.entries.values_mut() {
            let (keep, stale): (Vec<_>, Vec<_>) = entry
                .tickets
                .drain(..)
                .partition(|t| t.consumed_at >= before);
            entry.tickets = keep;
            old.extend(stale);
        }
        old
    }

    /// Empties the queue, returning every held ticket (the integration went away).
    pub fn clear(&mut self) -> Vec<Ticket> {
        self.queue.clear();
        self.entries.drain().flat_map(|(_, e)| e.tickets).collect()
    }
}

/// Adds `ticket` to an order's tickets unless an earlier one of the same partition covers it
/// (then it is returned); a later one it covers is returned instead.
fn cover(tickets: &mut Vec<Ticket>, ticket: Ticket) -> Option<Ticket> {
    match tickets
        .iter_mut()
        .find(|t| t.record.same_partition(&ticket.record))
    {
        Some(held) if held.record.offset <= ticket.record.offset => Some(ticket),
        Some(held) => Some(std::mem::replace(held, ticket)),
        None => {
            tickets.push(ticket);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(partition: i32, offset: i64, at: Instant) -> Ticket {
        Ticket {
            order_id: 0,
            record: RecordRef {
                topic: "oc".into(),
                partition,
                offset,
                epoch: 1,
            },
            delivered: Arc::new(Delivered {
                topic: "oc".into(),
                partition,
                offset,
                key: None,
                payload: Vec::new(),
                headers: Vec::new(),
            }),
            consumed_at: at,
            changed_at: Utc::now(),
        }
    }

    fn offsets(tickets: &[Ticket]) -> Vec<i64> {
        tickets.iter().map(|t| t.record.offset).collect()
    }

    #[test]
    fn matching_orders_are_taken_oldest_first_and_the_rest_keep_their_place() {
        let now = Instant::now();
        let mut w = WaitingOrders::new();
        for (offset, order) in [5u64, 6, 7, 8].into_iter().enumerate() {
            w.add(order, ticket(0, offset as i64, now), now);
        }
        let taken = w.take_matching(|id| id % 2 == 0);
        assert_eq!(taken.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [6, 8]);
        assert!(!w.contains(6) && w.contains(5));
        let rest = w.take(10);
        assert_eq!(rest.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [5, 7]);
    }

    #[test]
    fn a_burst_for_one_order_holds_one_ticket() {
        let now = Instant::now();
        let mut w = WaitingOrders::new();
        assert!(w.add(7, ticket(0, 1, now), now).is_none());
        for offset in 2..50 {
            let covered = w.add(7, ticket(0, offset, now), now).expect("covered");
            assert_eq!(covered.record.offset, offset);
        }
        assert!(w.add(8, ticket(0, 50, now), now).is_none());
        assert_eq!((w.len(), w.tickets()), (2, 2));
        let batch = w.take(100);
        assert_eq!(batch.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(offsets(&batch[0].1.tickets), [1]);
        assert!(w.is_empty());
    }

    #[test]
    fn batches_are_oldest_first_and_bounded() {
        let now = Instant::now();
        let mut w = WaitingOrders::new();
        for id in 0..250u64 {
            w.add(id, ticket(0, id as i64, now), now);
        }
        let first = w.take(100);
        assert_eq!(first.first().map(|e| e.0), Some(0));
        assert_eq!(first.len(), 100);
        assert_eq!(w.take(100).first().map(|e| e.0), Some(100));
        assert_eq!(w.take(100).len(), 50);
    }

    #[test]
    fn a_failed_batch_goes_back_in_front_merged_with_newer_records() {
        let now = Instant::now();
        let mut w = WaitingOrders::new();
        w.add(1, ticket(0, 10, now), now);
        w.add(2, ticket(0, 11, now), now);
        w.add(3, ticket(0, 12, now), now);
        let batch = w.take(2);
        // While 1 and 2 were being fetched, 2 changed again and 4 arrived.
        w.add(2, ticket(0, 13, now), now);
        w.add(4, ticket(0, 14, now), now);
        let covered = w.put_back(batch);
        assert_eq!(offsets(&covered), [13], "11 still holds order 2");
        let order: Vec<u64> = w.take(10).iter().map(|(id, _)| *id).collect();
        assert_eq!(order, [1, 2, 3, 4]);
    }

    #[test]
    fn entries_appended_from_another_queue_go_last_merged_with_newer_records() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(1);
        let mut live = WaitingOrders::new();
        let mut unlisted = WaitingOrders::new();
        unlisted.add(9, ticket(0, 1, now), now);
        live.add(1, ticket(0, 10, now), now);
        live.add(2, ticket(0, 11, now), now);
        let batch = live.take(2);
        // While 1 and 2 were listed, 2 changed again in this queue's hands.
        unlisted.add(2, ticket(0, 12, later), later);
        let covered = unlisted.append(batch);
        assert_eq!(offsets(&covered), [12], "11 still holds order 2");
        assert!(unlisted.contains(1) && unlisted.contains(2) && !live.contains(1));
        assert_eq!(unlisted.oldest_since(), Some(now));
        let order: Vec<u64> = unlisted.take(10).iter().map(|(id, _)| *id).collect();
        assert_eq!(order, [9, 1, 2]);
    }

    #[test]
    fn other_partitions_are_never_covered() {
        let now = Instant::now();
        let mut w = WaitingOrders::new();
        w.add(1, ticket(0, 10, now), now);
        assert!(w.add(1, ticket(1, 3, now), now).is_none());
        assert_eq!(w.tickets(), 2);
    }

    #[test]
    fn old_tickets_are_taken_and_the_order_keeps_waiting() {
        let start = Instant::now();
        let later = start + std::time::Duration::from_secs(60);
        let mut w = WaitingOrders::new();
        w.add(1, ticket(0, 1, start), start);
        w.add(2, ticket(0, 2, later), later);
        let old = w.take_tickets_older_than(start + std::time::Duration::from_secs(30));
        assert_eq!(offsets(&old), [1]);
        assert_eq!((w.len(), w.tickets()), (2, 1));
        // The record appended again comes back as a ticket for a waiting order without one.
        assert!(w.add(1, ticket(0, 3, later), later).is_none());
        assert_eq!(w.tickets(), 2);
        assert_eq!(offsets(&w.clear()).len(), 2);
        assert!(w.is_empty());
    }
}
