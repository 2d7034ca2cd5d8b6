//! Table upkeep on PostgreSQL: statistics and visibility kept current while the read model
//! grows, rather than left to autovacuum alone.
//!
//! PostgreSQL plans from statistics only `ANALYZE` gathers, and answers a count from an index
//! alone only on pages `VACUUM` marked all-visible. Autovacuum does both eventually — when it
//! is on (the default; some servers turn it off) and after its thresholds and naptime — but a
//! read model that grows by thousands of rows a second from an empty table, or is rebuilt by a
//! replay in one transaction, runs for minutes on plans made for an empty table. Measured on
//! 50k orders of one integration (BENCHMARKS.md): the trace's per-batch lookup by an IN-list of
//! order ids scanned every trace row of the integration (527 ms, 27 ms once analyzed), and
//! each of the deals page's counts read the whole heap (85 ms, 6 ms once vacuumed).
//!
//! So the projector runs `VACUUM (ANALYZE, SKIP_LOCKED)` itself, in the background on a read
//! connection: each time the rows it wrote since the last upkeep reach what it had written
//! before it (so a growing table is kept up a logarithmic number of times), at once after a
//! re-derivation (which rewrites every deal of an integration), and at the end of a replay.
//! One runs at a time; `SKIP_LOCKED` leaves a table another replica is vacuuming to that one.
//! SQLite needs none of this: its planner does not depend on statistics for these queries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::Executor as _;

use super::{Dialect, Store, StoreError};

/// Rows written before the first upkeep (a small read model needs none).
const FIRST_AFTER: u64 = 2_000;
/// The most rows written between two upkeeps however large the model already is.
const AT_MOST_EVERY: u64 = 1_000_000;

/// Whether an upkeep is due after `since` rows written since the last one, `before` rows
/// written up to it.
fn due(since: u64, before: u64) -> bool {
    since >= before.clamp(FIRST_AFTER, AT_MOST_EVERY)
}

/// Counts what the consumer writes and starts an upkeep when due (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Upkeep {
    store: Store,
    /// Rows written (`.0`) and rows written up to the last upkeep (`.1`).
    written: Arc<Mutex<(u64, u64)>>,
    running: Arc<AtomicBool>,
}

impl Upkeep {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            written: Arc::default(),
            running: Arc::default(),
        }
    }

    /// Counts `rows` more written; starts an upkeep in the background when one is due, or
    /// `now` (after a re-derivation), unless one is running.
    pub fn wrote(&self, rows: u64, now: bool) {
        if self.store.dialect() != Dialect::Postgres {
            return;
        }
        let start = {
            let mut written = self.written.lock().expect("upkeep lock");
            written.0 += rows;
            let start = (now || due(written.0 - written.1, written.1))
                && !self.running.swap(true, Ordering::AcqRel);
            if start {
                written.1 = written.0;
            }
            start
        };
        if start {
            let (store, running) = (self.store.clone(), Arc::clone(&self.running));
            tokio::spawn(async move {
                if let Err(error) = run(&store).await {
                    tracing::warn!(%error, "table upkeep failed; autovacuum is left to do it");
                }
                running.store(false, Ordering::Release);
            });
        }
    }
}

/// Vacuums and analyzes the read model's tables now (PostgreSQL; nothing on SQLite).
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    if store.dialect() != Dialect::Postgres {
        return Ok(());
    }
    let started = Instant::now();
    store
        .reader()
        .execute("VACUUM (ANALYZE, SKIP_LOCKED)")
        .await
        .map_err(StoreError::query("vacuuming and analyzing the read model"))?;
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        "table upkeep done (VACUUM ANALYZE)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upkeep_follows_the_growth_doubling_within_bounds() {
        assert!(!due(FIRST_AFTER - 1, 0), "a small model needs none");
        assert!(due(FIRST_AFTER, 0));
        assert!(!due(9_999, 10_000), "again once the rows written doubled");
        assert!(due(10_000, 10_000));
        assert!(
            due(AT_MOST_EVERY, 50_000_000),
            "and at least every million rows"
        );
    }
}
