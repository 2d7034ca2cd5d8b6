//! The integration's sync jobs as its worker runs them: reconciliation of `orders/history`
//! (`reconcile`) and the backfill / re-sync loads (`load`, `timeline`). [`SyncJobs`] owns
//! their schedule and the sync state as this worker last wrote or read it; the worker runs
//! one step at a time between live batches (`sync_step`), only while this member owns the
//! integration's sync, live changes first.

use chrono::{DateTime, Utc};
use dealflow_shared::events::{IntegrationConfigured, IntegrationId, LoadKind, SyncStateChanged};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::failure::{Failure, bus_failure};
use super::load::kind_label;
use super::{CONFIG_CHECK, Worker};
use crate::sync::metrics::SyncMetrics;

/// The schedule and state of one integration's sync jobs.
#[derive(Debug)]
pub(super) struct SyncJobs {
    /// The integration's sync state as this worker last wrote or read it.
    state: Option<SyncStateChanged>,
    /// When `orders/history` is read next.
    next_reconcile: Instant,
    /// When the history read under way (possibly over several steps) began: the next one is
    /// due one interval after it, so a change is found within one interval (DESIGN §7.1)
    /// however long the read took.
    reconcile_began: Option<Instant>,
    /// Until when this member does not own the integration's sync (looked at again then).
    not_owner_until: Option<Instant>,
    /// Live batches since the last backfill / re-sync page (live changes first).
    live_since_page: u32,
    /// When load progress was last logged.
    progress_logged: Option<Instant>,
    /// The load progress last added to the metrics: `(kind, done, total)`.
    reported_load: Option<(LoadKind, i64, i64)>,
}

/// When a new worker reads `orders/history` first: one interval after the last
/// reconciliation, at once if that is past. An integration never reconciled reads it within
/// one interval of its creation, at a phase of the interval taken from its id: integrations
/// connected together (or a thousand of them when an enricher starts) would otherwise read
/// history in the same second, and again every interval after, each burst delaying every
/// account's live changes behind it.
fn first_reconcile(
    id: IntegrationId,
    created_at: DateTime<Utc>,
    sync: Option<&SyncStateChanged>,
    interval: Duration,
    now: Instant,
) -> Instant {
    let since = |at: DateTime<Utc>| (Utc::now() - at).to_std().unwrap_or_default();
    let wait = match sync.and_then(|s| s.last_reconciled_at) {
        Some(last) => interval.saturating_sub(since(last)),
        None => interval
            .mul_f64(phase(id))
            .saturating_sub(since(created_at)),
    };
    now + wait
}

/// A fraction in (0, 1] fixed by the integration id. A UUID v7 is a time and a counter,
/// not evenly spread bits, so its halves are mixed (SplitMix64's finalizer) first.
fn phase(id: IntegrationId) -> f64 {
    let (high, low) = id.0.as_u64_pair();
    let mut x = high ^ low.rotate_left(32);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    const STEPS: u64 = 1_000;
    (x % STEPS + 1) as f64 / STEPS as f64
}

impl SyncJobs {
    /// The sync jobs of a new worker, from the integration's last known sync state.
    pub(super) fn new(
        id: IntegrationId,
        config: &IntegrationConfigured,
        state: Option<SyncStateChanged>,
        reconcile_interval: Duration,
        now: Instant,
    ) -> Self {
        let next_reconcile = first_reconcile(
            id,
            config.created_at,
            state.as_ref(),
            reconcile_interval,
            now,
        );
        Self {
            state,
            next_reconcile,
            reconcile_began: None,
            not_owner_until: None,
            live_since_page: 0,
            progress_logged: None,
            reported_load: None,
        }
    }

    /// The sync state as last written or read.
    pub(super) fn state(&self) -> Option<&SyncStateChanged> {
        self.state.as_ref()
    }

    /// The sync state to build on: the last one written or read, else a fresh one starting
    /// at the connect-time history cursor.
    pub(super) fn current(&self, config: &IntegrationConfigured) -> SyncStateChanged {
        self.state.clone().unwrap_or_else(|| SyncStateChanged {
            history_cursor: config.history_since_id,
            last_reconciled_at: None,
            backfill: None,
            resync: None,
            updated_at: Utc::now(),
        })
    }

    /// Keeps the state the bus acknowledged.
    pub(super) fn saved(&mut self, state: SyncStateChanged) {
        self.state = Some(state);
    }

    /// When the worker should look at its sync again: when ownership is looked at again, else
    /// now if a load page may run, else when `orders/history` is due.
    pub(super) fn wake_at(&self, load_allowed: bool, now: Instant) -> Instant {
        match self.not_owner_until {
            Some(until) => until,
            None if load_allowed => now,
            None => self.next_reconcile,
        }
    }

    /// Whether this member may own the sync now (`false` until the next look after it found
    /// it does not).
    pub(super) fn may_own(&mut self, now: Instant) -> bool {
        if self.not_owner_until.is_some_and(|until| now < until) {
            return false;
        }
        self.not_owner_until = None;
        true
    }

    /// This member does not own the sync: look again at `at`.
    pub(super) fn found_not_owner(&mut self, at: Instant) {
        self.not_owner_until = Some(at);
    }

    /// Whether `orders/history` is due.
    pub(super) fn reconcile_due(&self, now: Instant) -> bool {
        now >= self.next_reconcile
    }

    /// A history read step begins (the read's first step marks its start).
    pub(super) fn reconcile_step(&mut self, now: Instant) {
        self.reconcile_began.get_or_insert(now);
    }

    /// The read yielded to live work: it goes on at once.
    pub(super) fn reconcile_yielded(&mut self, now: Instant) {
        self.next_reconcile = now;
    }

    /// History was read to its end: the next read is due one interval after this one began.
    pub(super) fn reconcile_done(&mut self, interval: Duration, now: Instant) {
        let began = self.reconcile_began.take().unwrap_or(now);
        self.next_reconcile = began + interval;
    }

    /// A live batch ran (a load page waits for `live_batches_per_load_page` of them when the
    /// live queue is not empty).
    pub(super) fn live_batch_ran(&mut self) {
        self.live_since_page = self.live_since_page.saturating_add(1);
    }

    /// Live batches since the last load page.
    pub(super) fn live_since_page(&self) -> u32 {
        self.live_since_page
    }

    /// A load page starts.
    pub(super) fn page_started(&mut self) {
        self.live_since_page = 0;
    }

    /// Whether load progress is to be logged now: every `every`, and always when a load ends.
    pub(super) fn progress_log_due(&mut self, every: Duration, finished: bool) -> bool {
        let now = Instant::now();
        let due = self.progress_logged.is_none_or(|at| now >= at + every);
        if due || finished {
            self.progress_logged = Some(now);
        }
        due || finished
    }

    /// Moves the aggregated load gauges from what this worker reported last to `now`.
    pub(super) fn report_load(&mut self, metrics: &SyncMetrics, now: Option<(LoadKind, i64, i64)>) {
        if let Some((kind, done, total)) = self.reported_load.take() {
            metrics.load_progress(kind_label(kind), -done, -total, -1);
        }
        if let Some((kind, done, total)) = now {
            metrics.load_progress(kind_label(kind), done, total, 1);
        }
        self.reported_load = now;
    }
}

impl Worker {
    /// The sync state to build on: the last one written or read, else a fresh one starting
    /// at the connect-time history cursor.
    pub(super) fn current_sync(&self) -> SyncStateChanged {
        self.sync.current(&self.config)
    }

    /// Writes the sync state on the bus (acknowledged) and keeps it.
    pub(super) async fn save_sync(&mut self, state: SyncStateChanged) -> Result<(), Failure> {
        let topic = self.context.settings.topics.sync_state();
        let saved = self
            .context
            .sync
            .save(self.context.bus.as_ref(), &topic, self.id, state)
            .await
            .map_err(bus_failure)?;
        self.sync.saved(saved);
        Ok(())
    }

    /// Whether this member owns the integration's sync (reads its history and runs its
    /// loads). The first time, the sync state is written to learn where it is placed.
    pub(super) async fn owns_sync(&mut self) -> Result<bool, Failure> {
        if !self.context.sync.is_placed(self.id) {
            // The first write tells which partition (so which member) the integration has.
            let first = self.current_sync();
            self.save_sync(first).await?;
        }
        Ok(self.context.sync.owns(self.id, &self.config.crm_url))
    }

    /// One step of the integration's sync, when due and nothing live is due first: read
    /// `orders/history` (every `reconcile_interval`), else one backfill / re-sync page.
    pub(super) async fn sync_step(&mut self, abort: &CancellationToken) -> Result<(), Failure> {
        let now = Instant::now();
        if !self.sync.may_own(now) {
            return Ok(());
        }
        let reconcile = self.sync.reconcile_due(now);
        if !reconcile && !self.load_allowed() {
            return Ok(());
        }
        match self.owns_sync().await {
            Ok(true) => {}
            Ok(false) => {
                self.sync.found_not_owner(now + CONFIG_CHECK);
                return Ok(());
            }
            Err(failure) => return self.react_to_failure(failure),
        }
        let step = async {
            if reconcile {
                self.reconcile().await.map(|_| ())
            } else {
                self.sync.page_started();
                self.load_page().await
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
            Err(failure) => self.react_to_failure(failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(300);

    #[test]
    fn integrations_connected_together_reconcile_spread_over_the_interval() {
        let now = Instant::now();
        let created = Utc::now();
        let waits: Vec<Duration> = (0..1_000)
            .map(|_| first_reconcile(IntegrationId::new(), created, None, INTERVAL, now) - now)
            .collect();
        assert!(waits.iter().all(|w| *w <= INTERVAL), "within one interval");
        let early = waits.iter().filter(|w| **w < INTERVAL / 2).count();
        assert!(
            (350..650).contains(&early),
            "about half in the first half of the interval: {early}"
        );
        let mut seconds: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        seconds.sort_unstable();
        seconds.dedup();
        assert!(
            seconds.len() > 200,
            "spread over the interval's seconds: {}",
            seconds.len()
        );
    }

    #[test]
    fn a_reconciled_integration_reads_again_one_interval_after_the_last() {
        let now = Instant::now();
        let state = SyncStateChanged {
            history_cursor: Some(1),
            last_reconciled_at: Some(Utc::now() - chrono::Duration::seconds(100)),
            backfill: None,
            resync: None,
            updated_at: Utc::now(),
        };
        let wait = first_reconcile(
            IntegrationId::new(),
            Utc::now(),
            Some(&state),
            INTERVAL,
            now,
        ) - now;
        assert!(wait <= Duration::from_secs(200) && wait > Duration::from_secs(199));
    }

    #[test]
    fn the_next_read_is_due_one_interval_after_the_last_began() {
        let t0 = Instant::now();
        let mut jobs = SyncJobs {
            state: None,
            next_reconcile: t0,
            reconcile_began: None,
            not_owner_until: None,
            live_since_page: 0,
            progress_logged: None,
            reported_load: None,
        };
        jobs.reconcile_step(t0);
        jobs.reconcile_yielded(t0 + Duration::from_secs(2));
        assert!(
            jobs.reconcile_due(t0 + Duration::from_secs(2)),
            "goes on at once"
        );
        jobs.reconcile_step(t0 + Duration::from_secs(2));
        jobs.reconcile_done(INTERVAL, t0 + Duration::from_secs(5));
        assert_eq!(jobs.next_reconcile, t0 + INTERVAL, "not 5 s later");
        // The next read starts afresh.
        jobs.reconcile_step(t0 + INTERVAL);
        jobs.reconcile_done(INTERVAL, t0 + INTERVAL + Duration::from_secs(1));
        assert_eq!(jobs.next_reconcile, t0 + INTERVAL * 2);
    }
}
