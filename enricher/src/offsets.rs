//! Which input offsets may be stored: at least once, in order, per partition.
//!
//! Records of one partition finish out of order (each account has its own worker), but the
//! group's offset may only move past a record once it and every earlier record of its
//! partition are finished. [`OffsetTracker`] keeps the unfinished offsets of each partition;
//! the offset to store is the one just below the oldest unfinished record (or the last record
//! seen when none is unfinished).
//!
//! Partitions can be taken away by a Kafka rebalance. They are not forgotten on that account
//! (an assignment read in the middle of a rebalance can be wrong, and forgetting a partition
//! whose records are still unfinished would let a later frontier skip them): the intake only
//! stores offsets of partitions it is assigned. When a partition is delivered again from an
//! earlier offset (assigned back, starting at the committed offset), the tracker starts a new
//! *epoch* for it: every record from there on comes again and is tracked anew, and late
//! completions of the old epoch are ignored.

use std::collections::{BTreeSet, HashMap};

/// One consumed record while it is being worked on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    /// Topic it came from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The partition's epoch when it was consumed.
    pub epoch: u64,
}

impl RecordRef {
    /// Whether both records are in the same partition and epoch.
    pub fn same_partition(&self, other: &RecordRef) -> bool {
        self.partition == other.partition && self.epoch == other.epoch && self.topic == other.topic
    }
}

#[derive(Debug)]
struct Partition {
    epoch: u64,
    /// Consumed and not finished.
    pending: BTreeSet<i64>,
    /// The last offset consumed (-1 before the first).
    last_seen: i64,
    /// The last offset handed out for storing (-1 before the first).
    stored: i64,
}

/// Unfinished records per partition, and the offsets that may be stored.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), Partition>,
    next_epoch: u64,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn new_partition(&mut self, first: i64) -> Partition {
        self.next_epoch += 1;
        Partition {
            epoch: self.next_epoch,
            pending: BTreeSet::new(),
            last_seen: first - 1,
            // Everything before the first delivered record is already committed.
            stored: first - 1,
        }
    }

    /// Registers a consumed record as unfinished.
    pub fn begin(&mut self, topic: &str, partition: i32, offset: i64) -> RecordRef {
        let key = (topic.to_owned(), partition);
        let rewound = self
            .partitions
            .get(&key)
            .is_some_and(|p| offset <= p.last_seen);
        if rewound {
            tracing::info!(
                topic,
                partition,
                offset,
                "partition delivered again from an earlier offset; starting over"
            );
        }
        if rewound || !self.partitions.contains_key(&key) {
            let fresh = self.new_partition(offset);
            self.partitions.insert(key.clone(), fresh);
        }
        let part = self.partitions.get_mut(&key).expect("inserted above");
        part.pending.insert(offset);
        part.last_seen = offset;
        RecordRef {
            topic: key.0,
            partition,
            offset,
            epoch: part.epoch,
        }
    }

    /// Marks a record finished; `false` when it belongs to a forgotten epoch (ignored).
    pub fn finish(&mut self, record: &RecordRef) -> bool {
        match self
            .partitions
            .get_mut(&(record.topic.clone(), record.partition))
        {
            Some(part) if part.epoch == record.epoch => part.pending.remove(&record.offset),
            _ => false,
        }
    }

    /// For each partition whose frontier moved: `(topic, partition, offset)` where `offset` is
    /// the last record that may be stored (it and everything before it are finished).
    pub fn take_storable(&mut self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((topic, partition), part) in &mut self.partitions {
            let frontier = part
                .pending
                .first()
                .map_or(part.last_seen, |oldest| oldest - 1);
            if frontier > part.stored {
                part.stored = frontier;
                out.push((topic.clone(), *partition, frontier));
            }
        }
        out.sort();
        out
    }

    /// Unfinished records over every partition.
    pub fn unfinished(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }

    /// `(topic, partition, next offset to commit)` of every known partition, for lag.
    pub fn positions(&self) -> Vec<(String, i32, i64)> {
        self.partitions
            .iter()
            .map(|((t, p), part)| (t.clone(), *p, part.stored + 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_waits_for_the_oldest_unfinished_record() {
        let mut t = OffsetTracker::new();
        let a = t.begin("oc", 0, 10);
        let b = t.begin("oc", 0, 11);
        let c = t.begin("oc", 0, 12);
        assert!(t.take_storable().is_empty(), "nothing finished yet");
        assert!(t.finish(&c));
        assert!(t.finish(&b));
        assert!(t.take_storable().is_empty(), "10 still holds the partition");
        assert!(t.finish(&a));
        assert_eq!(t.take_storable(), [("oc".to_string(), 0, 12)]);
        assert!(t.take_storable().is_empty(), "reported once");
        assert_eq!(t.unfinished(), 0);
    }

    #[test]
    fn partitions_move_independently() {
        let mut t = OffsetTracker::new();
        let held = t.begin("oc", 0, 5);
        let other = t.begin("oc", 1, 7);
        let later = t.begin("oc", 0, 6);
        t.finish(&other);
        t.finish(&later);
        assert_eq!(t.take_storable(), [("oc".to_string(), 1, 7)]);
        t.finish(&held);
        assert_eq!(t.take_storable(), [("oc".to_string(), 0, 6)]);
    }

    #[test]
    fn gaps_in_offsets_do_not_hold_the_frontier() {
        let mut t = OffsetTracker::new();
        let a = t.begin("oc", 0, 3);
        let b = t.begin("oc", 0, 9);
        t.finish(&a);
        assert_eq!(t.take_storable(), [("oc".to_string(), 0, 8)]);
        t.finish(&b);
        assert_eq!(t.take_storable(), [("oc".to_string(), 0, 9)]);
    }

    #[test]
    fn a_redelivery_starts_a_new_epoch_and_ignores_old_completions() {
        let mut t = OffsetTracker::new();
        let old = t.begin("oc", 0, 20);
        t.begin("oc", 0, 21);
        // Revoked and assigned again: delivery restarts at the committed offset 20.
        let again = t.begin("oc", 0, 20);
        assert_ne!(old.epoch, again.epoch);
        assert!(
            !t.finish(&old),
            "a completion of the old epoch changes nothing"
        );
        assert!(t.take_storable().is_empty());
        assert!(t.finish(&again));
        assert_eq!(t.take_storable(), [("oc".to_string(), 0, 20)]);
    }
}
