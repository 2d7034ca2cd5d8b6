//! When each order's latest list call started, so a change record that arrives after a fetch
//! which began later than the change itself is finished at once instead of fetching the order
//! again. Reading a backlog of repeats (an enricher that was down, or a replay) then costs one
//! call per order rather than one per repeat that happens to arrive after the order's fetch.
//!
//! Safe to finish early: the fetch started after ingest received the change, so its answer
//! holds it; if that fetch fails, the order is queued again and fetched later still. The
//! record's offset cannot be committed ahead of the fetch's own records, which come earlier
//! in the same partition and finish only once the fetch's events are published.
//!
//! `received_at` is ingest's clock and the fetch start is this process's, so a change counts
//! as covered only when the fetch started [`CLOCK_MARGIN`] after it. Entries older than
//! [`KEEP`] are dropped: a record about an order fetched longer ago is fetched again.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

/// How far the clocks of ingest and the enricher may disagree.
pub(crate) const CLOCK_MARGIN: Duration = Duration::seconds(5);
/// How long a fetch start is remembered.
pub(crate) const KEEP: Duration = Duration::minutes(10);

/// Fetch starts of recently listed orders.
#[derive(Debug)]
pub(crate) struct RecentFetches {
    started: HashMap<u64, DateTime<Utc>>,
    next_prune: Option<DateTime<Utc>>,
}

impl RecentFetches {
    pub(crate) fn new() -> Self {
        Self {
            started: HashMap::new(),
            next_prune: None,
        }
    }

    /// A list call for `orders` starts now.
    pub(crate) fn started(&mut self, orders: impl IntoIterator<Item = u64>, at: DateTime<Utc>) {
        for order in orders {
            self.started.insert(order, at);
        }
        self.prune(at);
    }

    /// Whether a fetch of `order` started late enough to hold a change received at `changed_at`.
    pub(crate) fn covers(&self, order: u64, changed_at: DateTime<Utc>) -> bool {
        self.started
            .get(&order)
            .is_some_and(|started| *started > changed_at + CLOCK_MARGIN)
    }

    /// Forgets fetches older than [`KEEP`], at most once a minute.
    fn prune(&mut self, now: DateTime<Utc>) {
        match self.next_prune {
            Some(at) if now < at => {}
            None => self.next_prune = Some(now + Duration::minutes(1)),
            Some(_) => {
                self.next_prune = Some(now + Duration::minutes(1));
                self.started.retain(|_, started| *started > now - KEEP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_covered_only_by_a_fetch_that_started_clearly_after_it() {
        let mut fetches = RecentFetches::new();
        let fetch = Utc::now();
        fetches.started([7, 8], fetch);
        let long_before = fetch - Duration::seconds(60);
        assert!(fetches.covers(7, long_before));
        assert!(fetches.covers(8, long_before));
        assert!(!fetches.covers(9, long_before), "never fetched");
        // Within the clock margin, or after the fetch started: fetch again.
        assert!(!fetches.covers(7, fetch - Duration::seconds(2)));
        assert!(!fetches.covers(7, fetch + Duration::seconds(1)));
        // A newer fetch replaces the older start.
        fetches.started([7], fetch + Duration::seconds(30));
        assert!(fetches.covers(7, fetch + Duration::seconds(1)));
    }

    #[test]
    fn old_fetch_starts_are_forgotten() {
        let mut fetches = RecentFetches::new();
        let t0 = Utc::now();
        fetches.started([1], t0);
        fetches.started([2], t0 + Duration::minutes(2));
        assert!(
            fetches.covers(1, t0 - Duration::seconds(60)),
            "still remembered"
        );
        fetches.started([3], t0 + KEEP + Duration::minutes(1));
        assert!(!fetches.covers(1, t0 - Duration::seconds(60)), "forgotten");
        assert!(fetches.covers(2, t0), "younger than KEEP");
        assert_eq!(fetches.started.len(), 2);
    }
}
