//! A replay's write-back memo: deal rows, stage histories and order traces kept in memory
//! between replay steps and written once they go cold, instead of read and rewritten by every
//! step that touches their order.
//!
//! An order's events spread over hours or days of the stream, so over a few replay steps: a
//! replay without the memo reads each touched order's rows back, merges and rewrites them at
//! every step — on PostgreSQL most of a million-event replay's server time went to those reads
//! and rewrites (BENCHMARKS.md, issue 20). A replay runs in one transaction nobody else sees,
//! after emptying what it rebuilds, so the memo can also know which orders cannot have rows
//! yet (never written during the replay) and skip reading them at all.
//!
//! The memo holds at most `capacity` orders of each kind (the replay step's size): past that,
//! the orders of the oldest steps are written and forgotten. Whatever reads the tables in SQL
//! while the memo holds unwritten rows would see an old view, so: settings changes (whose
//! re-derivation runs in SQL) empty the memo first, and the deals a regrouped stage or a dead
//! letter's resolution looks up are written first ([`WriteBack::sync_deals`]). The live
//! consumer never uses it: another projector member may write the same rows meanwhile.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::store::Conn;
use dealflow_shared::events::IntegrationId;

use super::deal_row::DealRow;
use super::deals::{Loaded, write_changed};
use super::stage_history::History;
use super::trace;
use crate::store::traces::{self, StoredEntry};
use crate::store::{Dialect, StoreError};

/// One order's deal row and stage history: as stored, and as folded since.
#[derive(Debug)]
struct PendingDeal {
    /// Boxed: usually absent (a replay's orders start with no row), and a row is ~1 KiB.
    stored: Option<Box<DealRow>>,
    row: DealRow,
    stored_history: History,
    history: History,
    /// The step that last touched it.
    touched: u64,
}

/// One order's trace entries, and whether they differ from the stored row.
#[derive(Debug)]
struct PendingTrace {
    /// A row exists (written before, or read).
    exists: bool,
    entries: Vec<StoredEntry>,
    dirty: bool,
    touched: u64,
}

type OrderKey = (IntegrationId, i64);

/// The memo of one replay (see the module's documentation).
#[derive(Debug)]
pub(crate) struct WriteBack {
    capacity: usize,
    step: u64,
    // Boxed: the maps churn (every step takes its orders out and puts them back), and a
    // rehash moving the entries themselves (two deal rows each) was 4 % of a replay's time.
    deals: HashMap<OrderKey, Box<PendingDeal>>,
    traces: HashMap<OrderKey, Box<PendingTrace>>,
    /// Orders whose deal row or stage history may be stored: any other has none yet.
    deals_stored: HashSet<OrderKey>,
    /// Orders whose trace row may be stored.
    traces_stored: HashSet<OrderKey>,
    /// Integrations with dead letters applied by the replay: their resolution reads deals.
    lettered: BTreeSet<IntegrationId>,
}

impl WriteBack {
    /// A memo for a replay into emptied tables, holding up to `capacity` orders of each kind.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            step: 0,
            deals: HashMap::new(),
            traces: HashMap::new(),
            deals_stored: HashSet::new(),
            traces_stored: HashSet::new(),
            lettered: BTreeSet::new(),
        }
    }

    /// Starts the next replay step: what it touches is the newest.
    pub(crate) fn next_step(&mut self) {
        self.step += 1;
    }

    /// Notes integrations that got dead letters (their resolution looks deals up in SQL).
    pub(crate) fn lettered(&mut self, integrations: impl IntoIterator<Item = IntegrationId>) {
        self.lettered.extend(integrations);
    }

    /// The integrations among `among` whose dead letters may need the memo's deals written.
    pub(crate) fn lettered_among(
        &self,
        among: &BTreeSet<IntegrationId>,
    ) -> BTreeSet<IntegrationId> {
        self.lettered.intersection(among).copied().collect()
    }

    /// Takes the deals of `orders` out of the memo; the rest are read from the database,
    /// except those the replay has not stored yet (nothing to read).
    pub(crate) async fn take_deals(
        &mut self,
        conn: &mut Conn<'_>,
        dialect: Dialect,
        integration: IntegrationId,
        orders: &[i64],
    ) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        let mut unknown = Vec::new();
        for &order in orders {
            let key = (integration, order);
            match self.deals.remove(&key) {
                Some(p) => {
                    let p = *p;
                    if let Some(stored) = p.stored {
                        loaded.stored.insert(order, *stored);
                    }
                    loaded.current.insert(order, p.row);
                    loaded.stored_histories.insert(order, p.stored_history);
                    loaded.histories.insert(order, p.history);
                }
                None if self.deals_stored.contains(&key) => unknown.push(order),
                None => {}
            }
        }
        if !unknown.is_empty() {
            let read = Loaded::read(conn, dialect, integration, &unknown).await?;
            loaded.stored.extend(read.stored);
            loaded.current.extend(read.current);
            loaded.stored_histories.extend(read.stored_histories);
            loaded.histories.extend(read.histories);
        }
        Ok(loaded)
    }

    /// Keeps folded deals (every order of `rows`) until they go cold.
    pub(crate) fn put_deals(
        &mut self,
        integration: IntegrationId,
        rows: BTreeMap<i64, DealRow>,
        mut stored: BTreeMap<i64, DealRow>,
        mut histories: BTreeMap<i64, History>,
        mut stored_histories: BTreeMap<i64, History>,
    ) {
        for (order, row) in rows {
            self.deals.insert(
                (integration, order),
                Box::new(PendingDeal {
                    stored: stored.remove(&order).map(Box::new),
                    row,
                    stored_history: stored_histories.remove(&order).unwrap_or_default(),
                    history: histories.remove(&order).unwrap_or_default(),
                    touched: self.step,
                }),
            );
        }
    }

    /// Merges new trace entries into the memo's traces (reading the stored rows of orders the
    /// memo does not hold but the replay stored before).
    pub(crate) async fn merge_traces(
        &mut self,
        conn: &mut Conn<'_>,
        dialect: Dialect,
        new: BTreeMap<IntegrationId, BTreeMap<i64, Vec<StoredEntry>>>,
    ) -> Result<(), StoreError> {
        for (integration, orders) in new {
            let unknown: Vec<i64> = orders
                .keys()
                .map(|o| (integration, *o))
                .filter(|k| !self.traces.contains_key(k) && self.traces_stored.contains(k))
                .map(|(_, o)| o)
                .collect();
            let mut read = BTreeMap::new();
            for chunk in unknown.chunks(trace::LOAD_CHUNK) {
                read.extend(trace::read_rows(conn, dialect, integration, chunk).await?);
            }
            for (order, entries) in orders {
                let slot = match self.traces.entry((integration, order)) {
                    Entry::Occupied(slot) => slot.into_mut(),
                    Entry::Vacant(slot) => {
                        let (exists, stored) = match read.get(&order) {
                            Some(text) => (true, traces::decode(text)?),
                            None => (false, Vec::new()),
                        };
                        slot.insert(Box::new(PendingTrace {
                            exists,
                            entries: stored,
                            dirty: false,
                            touched: self.step,
                        }))
                    }
                };
                slot.touched = self.step;
                if traces::merge(&mut slot.entries, entries) {
                    slot.dirty = true;
                }
            }
        }
        Ok(())
    }

    /// Writes the deals of `integrations` (every one: `None`) that differ from their stored
    /// rows, keeping them in the memo. Returns the deal rows written.
    pub(crate) async fn sync_deals(
        &mut self,
        conn: &mut Conn<'_>,
        integrations: Option<&BTreeSet<IntegrationId>>,
    ) -> Result<usize, StoreError> {
        let keys: Vec<OrderKey> = self
            .deals
            .keys()
            .filter(|(i, _)| integrations.is_none_or(|set| set.contains(i)))
            .copied()
            .collect();
        let taken = keys
            .into_iter()
            .filter_map(|k| self.deals.remove_entry(&k))
            .collect();
        let (written, kept) = self.write_deals(conn, taken).await?;
        for (key, mut p) in kept {
            if p.row.is_named() {
                p.stored = Some(Box::new(p.row.clone()));
            }
            p.stored_history.clone_from(&p.history);
            self.deals.insert(key, p);
        }
        Ok(written)
    }

    /// Writes everything and forgets it. Returns the deal rows written.
    pub(crate) async fn flush_all(
        &mut self,
        conn: &mut Conn<'_>,
        dialect: Dialect,
    ) -> Result<usize, StoreError> {
        let deals = self.deals.drain().collect();
        let (written, _) = self.write_deals(conn, deals).await?;
        let traces = self.traces.drain().collect();
        self.write_traces(conn, dialect, traces).await?;
        Ok(written)
    }

    /// Writes and forgets the orders of the oldest steps while more than `capacity` are held
    /// (the current step's are kept). Returns the deal rows written.
    pub(crate) async fn evict(
        &mut self,
        conn: &mut Conn<'_>,
        dialect: Dialect,
    ) -> Result<usize, StoreError> {
        let cold = take_cold(&mut self.deals, |p| p.touched, self.capacity, self.step);
        let written = self.write_deals(conn, cold).await?.0;
        let cold = take_cold(&mut self.traces, |p| p.touched, self.capacity, self.step);
        self.write_traces(conn, dialect, cold).await?;
        Ok(written)
    }

    /// Writes deals that differ from their stored rows, one integration at a time; returns
    /// how many rows were written and every pending deal back.
    async fn write_deals(
        &mut self,
        conn: &mut Conn<'_>,
        pending: Vec<(OrderKey, Box<PendingDeal>)>,
    ) -> Result<(usize, Vec<(OrderKey, Box<PendingDeal>)>), StoreError> {
        let mut by_integration: BTreeMap<IntegrationId, Vec<(i64, Box<PendingDeal>)>> =
            BTreeMap::new();
        for ((integration, order), p) in pending {
            by_integration
                .entry(integration)
                .or_default()
                .push((order, p));
        }
        let mut written = 0;
        let mut back = Vec::new();
        for (integration, deals) in by_integration {
            let mut stored = BTreeMap::new();
            let mut rows = BTreeMap::new();
            let mut stored_histories = BTreeMap::new();
            let mut histories = BTreeMap::new();
            let mut ticks = Vec::with_capacity(deals.len());
            for (order, p) in deals {
                let p = *p;
                if let Some(s) = p.stored {
                    stored.insert(order, *s);
                }
                rows.insert(order, p.row);
                stored_histories.insert(order, p.stored_history);
                histories.insert(order, p.history);
                ticks.push((order, p.touched));
                self.deals_stored.insert((integration, order));
            }
            written += write_changed(
                conn,
                integration,
                &stored,
                &rows,
                &stored_histories,
                &histories,
            )
            .await?;
            for (order, touched) in ticks {
                back.push((
                    (integration, order),
                    Box::new(PendingDeal {
                        stored: stored.remove(&order).map(Box::new),
                        row: rows.remove(&order).expect("every pending deal has a row"),
                        stored_history: stored_histories.remove(&order).unwrap_or_default(),
                        history: histories.remove(&order).unwrap_or_default(),
                        touched,
                    }),
                ));
            }
        }
        Ok((written, back))
    }

    /// Writes traces that changed, one integration at a time.
    async fn write_traces(
        &mut self,
        conn: &mut Conn<'_>,
        dialect: Dialect,
        pending: Vec<(OrderKey, Box<PendingTrace>)>,
    ) -> Result<(), StoreError> {
        let mut by_integration: BTreeMap<IntegrationId, Vec<(i64, Box<PendingTrace>)>> =
            BTreeMap::new();
        for ((integration, order), p) in pending {
            if p.dirty {
                by_integration
                    .entry(integration)
                    .or_default()
                    .push((order, p));
            }
        }
        for (integration, traces) in by_integration {
            let (mut updated, mut created) = (Vec::new(), Vec::new());
            for (order, p) in traces {
                self.traces_stored.insert((integration, order));
                if p.exists {
                    updated.push((order, p.entries));
                } else {
                    created.push((order, p.entries));
                }
            }
            trace::write_rows(conn, dialect, integration, updated, created).await?;
        }
        Ok(())
    }
}

/// Takes the entries of the oldest steps out of `map` while more than `capacity` are held.
fn take_cold<T>(
    map: &mut HashMap<OrderKey, Box<T>>,
    touched: fn(&T) -> u64,
    capacity: usize,
    current: u64,
) -> Vec<(OrderKey, Box<T>)> {
    match cutoff(map.values().map(|p| touched(p)), capacity, current) {
        Some(cut) => map.extract_if(|_, p| touched(p) <= cut).collect(),
        None => Vec::new(),
    }
}

/// The newest step whose orders go when more than `capacity` are held, if any: the oldest
/// steps go first, the `current` one never.
fn cutoff(touched: impl Iterator<Item = u64>, capacity: usize, current: u64) -> Option<u64> {
    let mut per_step: BTreeMap<u64, usize> = BTreeMap::new();
    let mut held = 0;
    for step in touched {
        *per_step.entry(step).or_default() += 1;
        held += 1;
    }
    let mut cut = None;
    for (step, count) in per_step {
        if held <= capacity || step >= current {
            break;
        }
        held -= count;
        cut = Some(step);
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_steps_go_until_the_rest_fit_and_never_the_current_one() {
        let touched = [1, 1, 2, 2, 2, 3, 3, 3, 3];
        assert_eq!(cutoff(touched.into_iter(), 9, 3), None, "all fit");
        assert_eq!(cutoff(touched.into_iter(), 8, 3), Some(1));
        assert_eq!(cutoff(touched.into_iter(), 7, 3), Some(1));
        assert_eq!(cutoff(touched.into_iter(), 6, 3), Some(2));
        assert_eq!(
            cutoff(touched.into_iter(), 1, 3),
            Some(2),
            "the current step stays"
        );
        assert_eq!(cutoff([5, 5].into_iter(), 1, 5), None);
    }
}
