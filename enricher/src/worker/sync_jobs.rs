//! The integration's sync jobs as its worker runs them: reconciliation of `orders/history`
//! (`reconcile`) and the backfill / re-sync loads (`load`, `timeline`). [`SyncJobs`] owns
//! their schedule and the sync state as this worker last wrote or read it; the worker runs
//! one step at a time between live batches (`sync_step`), only while this member owns the
//! integration's sync, live changes first.

use chrono::Utc;
use dealflow_shared::events::{IntegrationConfigured, LoadKind, SyncStateChanged};
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
/// reconciliation (or after the integration was created), at once if that is past.
fn first_reconcile(
    config: &IntegrationConfigured,
    sync: Option<&SyncStateChanged>,
    interval: Duration,
    now: Instant,
) -> Instant {
    let last = sync
        .and_then(|s| s.last_reconciled_at)
        .unwrap_or(config.created_at);
    let elapsed = (Utc::now() - last).to_std().unwrap_or_default();
    now + interval.saturating_sub(elapsed)
}

impl SyncJobs {
    /// The sync jobs of a new worker, from the integration's last known sync state.
    pub(super) fn new(
        config: &IntegrationConfigured,
        state: Option<SyncStateChanged>,
        reconcile_interval: Duration,
        now: Instant,
    ) -> Self {
        let next_reconcile = first_reconcile(config, state.as_ref(), reconcile_interval, now);
        Self {
            state,
            next_reconcile,
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

    /// When `orders/history` is read next.
    pub(super) fn reconcile_at(&mut self, at: Instant) {
        self.next_reconcile = at;
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
