//! How an order's trace is stored: one `order_traces` row per order whose `entries` column is
//! a JSON array of `[at, key, kind, source, detail]`, oldest first.
//!
//! One row per order rather than one per entry: a batch rewrites the row of each order it
//! touches instead of inserting a row per event into a table indexed twice, and the newest
//! [`KEEP`] are kept in memory while merging instead of by counting every touched order's
//! rows in SQL (together most of what a batch cost the database; BENCHMARKS.md, issue 20).
//! An entry's key (its event's id and kind, or the letter's id) makes it appear once whatever
//! the redeliveries, and orders entries of the same instant.

use serde::{Deserialize, Serialize};

use super::StoreError;

/// Entries kept per order at least (the oldest go first; DESIGN asks for at least 100).
pub(crate) const KEEP: usize = 200;
/// Longest detail stored (a dead letter's reason can be long).
const MAX_DETAIL: usize = 500;

/// One stored entry: `[at (µs), key, kind, source, detail]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredEntry(pub i64, pub String, pub String, pub String, pub String);

impl StoredEntry {
    /// An entry with its detail cut to [`MAX_DETAIL`] bytes.
    pub(crate) fn new(at: i64, key: String, kind: &str, source: &str, detail: &str) -> Self {
        Self(
            at,
            key,
            kind.to_owned(),
            source.to_owned(),
            detail[..detail.floor_char_boundary(MAX_DETAIL)].to_owned(),
        )
    }

    pub(crate) fn at(&self) -> i64 {
        self.0
    }

    pub(crate) fn key(&self) -> &str {
        &self.1
    }
}

/// An order's stored entries back (an absent row is an empty trace).
pub(crate) fn decode(text: &str) -> Result<Vec<StoredEntry>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: "an order's trace",
        detail: e.to_string(),
    })
}

/// The stored text of an order's entries.
pub(crate) fn encode(entries: &[StoredEntry]) -> String {
    // Strings and integers only: serialising cannot fail.
    serde_json::to_string(entries).unwrap_or_else(|_| "[]".to_owned())
}

/// Adds `new` to `entries` (sorted by instant and key): a key already there is not added
/// again, and everything older than the [`KEEP`]-th newest entry goes (entries of that same
/// instant stay, so at least `KEEP` are kept). Returns whether anything was added (then the row is written). The result
/// depends only on the set of entries, not on the order or batches they came in.
pub(crate) fn merge(
    entries: &mut Vec<StoredEntry>,
    new: impl IntoIterator<Item = StoredEntry>,
) -> bool {
    let mut added = false;
    for entry in new {
        if !entries.iter().any(|e| e.key() == entry.key()) {
            entries.push(entry);
            added = true;
        }
    }
    if !added {
        return false;
    }
    entries.sort_by(|a, b| (a.at(), a.key()).cmp(&(b.at(), b.key())));
    if entries.len() > KEEP {
        let oldest_kept = entries[entries.len() - KEEP].at();
        entries.retain(|e| e.at() >= oldest_kept);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, key: &str) -> StoredEntry {
        StoredEntry::new(at, key.to_owned(), "fetched", "enricher", "x")
    }

    #[test]
    fn entries_round_trip_and_sort_by_instant_then_key() {
        let mut entries = Vec::new();
        assert!(merge(
            &mut entries,
            [entry(20, "b"), entry(10, "z"), entry(20, "a")]
        ));
        let keys: Vec<&str> = entries.iter().map(StoredEntry::key).collect();
        assert_eq!(keys, ["z", "a", "b"]);
        assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        assert_eq!(
            encode(&entries[..1]),
            r#"[[10,"z","fetched","enricher","x"]]"#
        );
        assert!(decode("{").is_err());
    }

    #[test]
    fn a_key_is_kept_once_whatever_the_redeliveries() {
        let mut entries = vec![entry(10, "a")];
        assert!(!merge(&mut entries, [entry(10, "a")]), "nothing new");
        assert!(merge(&mut entries, [entry(5, "b"), entry(5, "b")]));
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn the_newest_are_kept_with_ties_at_the_edge_and_any_batch_cut_gives_the_same() {
        let all: Vec<StoredEntry> = (0..KEEP as i64 + 50)
            .map(|i| entry(i / 2, &format!("k{i:04}")))
            .collect();
        let mut at_once = Vec::new();
        merge(&mut at_once, all.iter().rev().cloned());
        let mut one_by_one = Vec::new();
        for e in &all {
            merge(&mut one_by_one, [e.clone()]);
        }
        assert_eq!(at_once, one_by_one);
        // 250 entries two per instant: the 200th newest is at instant 25, its twin stays.
        assert_eq!(at_once.len(), KEEP);
        assert_eq!(at_once[0].at(), 25);
        let distinct: Vec<StoredEntry> = (0..KEEP as i64 + 1)
            .map(|i| entry(i, &format!("d{i:04}")))
            .collect();
        let mut kept = Vec::new();
        merge(&mut kept, distinct);
        assert_eq!(kept.len(), KEEP, "the oldest of KEEP + 1 goes");
        assert_eq!(kept[0].at(), 1);
        let tied: Vec<StoredEntry> = (0..KEEP as i64 + 1)
            .map(|i| entry(i.max(1), &format!("t{i:04}")))
            .collect();
        let mut kept = Vec::new();
        merge(&mut kept, tied);
        assert_eq!(
            kept.len(),
            KEEP + 1,
            "entries of the KEEP-th newest's instant stay"
        );
    }

    #[test]
    fn long_details_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let e = StoredEntry::new(0, "k".to_owned(), "dead_lettered", "enricher.map", &long);
        assert!(e.4.len() <= MAX_DETAIL && e.4.len() >= MAX_DETAIL - 1);
        assert!(long.starts_with(&e.4));
    }
}
