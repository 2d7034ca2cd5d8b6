//! One task per RetailCRM account: its waiting orders, its client and reference cache, and
//! what it does when RetailCRM misbehaves.
//!
//! States: **ready** (fetch once no change arrived for `batch_linger`, or the oldest waited
//! `batch_max_wait`: a burst is fetched once, after it ends),
//! **backing off** after a transient failure (exponential, this account only), **parked**
//! after the key was rejected (`auth_failed` / `access_denied`, or the account is gone):
//! nothing is fetched until the integration's settings change (a new key or URL) or
//! `parked_retry` passes; orders keep queueing. Health changes are published on the `health`
//! topic once per change: `ok` again on the first success after a failure.
//!
//! A new worker loads the account's reference data first (`preload_reference`), before any
//! order asks for it. Live batches are pipelined (`live`); what a batch does with
//! its list answer is `batch`. Orders a batch's list did not return (deleted or merged) are
//! looked up by id after the live batches (`unlisted`). A change record that arrives after a
//! fetch of its order which started later than the change is finished without another fetch
//! (`fetched`). How work fails and how the worker reacts is `failure`; readiness, backoff,
//! parking and health are `health`.
//!
//! Between live batches the worker runs its integration's sync (when this member owns it):
//! `orders/history` every `reconcile_interval` (`reconcile`), and one backfill / re-sync page
//! at a time (`load`) only while no live batch is due and the live queue is empty (or after
//! `live_batches_per_load_page` live batches), sharing the account's budget and backoff.
//!
//! Records that wait longer than `requeue_after` (a parked or failing account) are appended
//! again at the end of their partition and finished, so they stop holding the partition's
//! offset back; the orders stay queued and the appended records become their new tickets
//! (`requeue`).
//!
//! # Parts
//!
//! The worker's loop (`Worker::run`) picks one step at a time and composes parts that each
//! own their state: `live` ([`LiveBatches`]: the live queue and the batch in flight),
//! `unlisted` ([`UnlistedLookups`], [`KnownDeleted`]), `sync_jobs` ([`SyncJobs`]), `health`
//! ([`AccountHealth`]: ready, backing off or parked, and the health to publish) and
//! `reference_cache` ([`ReferenceCache`]). `batch` lists and publishes, `mapped` maps (pure),
//! `failure` classifies what went wrong.

mod batch;
mod failure;
mod fetched;
mod health;
mod live;
mod load;
mod mapped;
mod reconcile;
mod reference_cache;
mod requeue;
mod sync_jobs;
mod timeline;
mod unlisted;

use std::future::Future;
use std::sync::Arc;

use dealflow_shared::events::{IntegrationConfigured, IntegrationId};
use dealflow_shared::retailcrm::RetailCrmClient;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use self::failure::Failure;
use self::health::{AccountHealth, Mode};
use self::live::LiveBatches;
use self::reference_cache::ReferenceCache;
use self::sync_jobs::SyncJobs;
use self::unlisted::{KnownDeleted, UnlistedLookups};
use crate::context::{EnricherContext, IntakeEvent};
use crate::crm::Crm;
use crate::error::EnricherError;
use crate::queue::Ticket;

/// Header on a record appended again by the enricher (the payload is the original).
pub const HEADER_REQUEUED: &str = "dealflow_requeued";

/// How often a ready worker looks for changed settings (a parked one checks every tick).
const CONFIG_CHECK: Duration = Duration::from_secs(2);
/// The shortest pause of a worker's loop when it is waiting for something.
const TICK: Duration = Duration::from_millis(200);
/// How often a fenced worker looks whether its account's partition came back.
const FENCE_RECHECK: Duration = Duration::from_millis(250);

/// An order change handed to an account's worker.
#[derive(Debug)]
pub struct Submit {
    /// The order.
    pub order_id: u64,
    /// The record that asked for it.
    pub ticket: Ticket,
}

/// The intake's handle on a running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    /// Sends order changes; dropping it lets an idle worker end.
    pub tx: mpsc::UnboundedSender<Submit>,
    /// Distinguishes this worker from earlier ones of the same integration.
    pub generation: u64,
}

/// One account's worker.
#[derive(Debug)]
pub(crate) struct Worker {
    id: IntegrationId,
    context: Arc<EnricherContext>,
    rx: mpsc::UnboundedReceiver<Submit>,
    rx_open: bool,
    config: IntegrationConfigured,
    crm: Option<Crm>,
    /// The account's reference data and the funnel stages published from it
    /// (`reference_cache`).
    reference: ReferenceCache,
    /// The live queue and the batch in flight (`live`).
    live: LiveBatches,
    /// Orders a list did not return, waiting for their by-id lookup (`unlisted`).
    unlisted: UnlistedLookups,
    reported_waiting: i64,
    /// Ready, backing off or parked, and the health to publish (`health`).
    health: AccountHealth,
    next_config_check: Instant,
    next_requeue_check: Instant,
    /// The integration's sync jobs: reconciliation, backfill and re-sync (`sync_jobs`).
    sync: SyncJobs,
    /// Orders known deleted (reported by `orders/history` or confirmed by a lookup).
    known_deleted: KnownDeleted,
}

/// Prepares the worker of `id`: returns its handle and the future to run (the intake spawns
/// it in its task set, so dropping the intake aborts every worker). The future ends with the
/// integration id and generation. `stop` ends it after its current batch; `abort` also
/// cancels a batch in flight (its records are then delivered again after a restart).
pub fn start(
    id: IntegrationId,
    generation: u64,
    config: IntegrationConfigured,
    context: Arc<EnricherContext>,
    stop: CancellationToken,
    abort: CancellationToken,
) -> (
    WorkerHandle,
    impl Future<Output = (IntegrationId, u64)> + Send + 'static,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let now = Instant::now();
    let sync = SyncJobs::new(
        id,
        &config,
        context.sync.get(id),
        context.settings.reconcile_interval,
        now,
    );
    let health = AccountHealth::new(context.metrics.clone());
    let mut worker = Worker {
        sync,
        known_deleted: KnownDeleted::default(),
        id,
        crm: None,
        context,
        rx,
        rx_open: true,
        config,
        reference: ReferenceCache::default(),
        live: LiveBatches::new(now),
        unlisted: UnlistedLookups::new(),
        reported_waiting: 0,
        health,
        next_config_check: now + CONFIG_CHECK,
        next_requeue_check: now,
    };
    worker.crm = worker.build_client();
    let task = async move {
        if let Err(failure) = worker.run(stop, abort).await {
            let error = match failure {
                Failure::Fatal(e) => e,
                other => EnricherError::WorkerLost(format!("{id}: {other:?}")),
            };
            let _ = worker.context.events.send(IntakeEvent::Fatal {
                integration: id,
                error,
            });
        }
        worker.health.ended();
        worker
            .context
            .metrics
            .waiting_changed(-worker.reported_waiting);
        worker.sync.report_load(worker.context.metrics.sync(), None);
        (id, generation)
    };
    (WorkerHandle { tx, generation }, task)
}

impl Worker {
    /// A client for the current settings; `None` when the key cannot be opened or the URL
    /// is unusable (the account is then parked on its first batch).
    fn build_client(&self) -> Option<Crm> {
        let key = match self.context.keys.open(self.id, &self.config.api_key_sealed) {
            Ok(key) => key,
            Err(error) => {
                tracing::error!(integration_id = %self.id, %error, "cannot open the integration's API key");
                return None;
            }
        };
        let url = match self.config.crm_url.parse() {
            Ok(url) => url,
            Err(error) => {
                tracing::error!(integration_id = %self.id, %error, "the integration's RetailCRM URL is unusable");
                return None;
            }
        };
        match RetailCrmClient::new(
            &url,
            key,
            &self.context.budgets,
            &self.context.settings.client_options,
        ) {
            Ok(client) => {
                // The fence reaches into the client: a call queued for a budget token, or a
                // retry waiting out its backoff, is not sent once the account moved away.
                let (sync, account) = (self.context.sync.clone(), self.config.crm_url.clone());
                let client = client.with_gate(Arc::new(move || sync.holds_account(&account)));
                Some(Crm::new(client, self.context.metrics.clone()))
            }
            Err(error) => {
                tracing::error!(integration_id = %self.id, %error, "cannot build the RetailCRM client");
                None
            }
        }
    }

    fn finish(&self, tickets: impl IntoIterator<Item = Ticket>) {
        let records = tickets.into_iter().map(|t| t.record).collect();
        self.context.finish(self.id, records);
    }

    fn accept(&mut self, submit: Submit) {
        let now = Instant::now();
        if self
            .live
            .arrived(submit.order_id, submit.ticket.changed_at, now)
        {
            // A fetch that started after this change already holds it.
            self.context.metrics.skipped("covered_by_fetch", 1);
            self.finish([submit.ticket]);
            return;
        }
        // An order waiting for its lookup takes the change along (the lookup comes later).
        let queue = if self.unlisted.orders.contains(submit.order_id) {
            &mut self.unlisted.orders
        } else {
            &mut self.live.waiting
        };
        if let Some(covered) = queue.add(submit.order_id, submit.ticket, now) {
            self.finish([covered]);
        }
    }

    /// When a ready worker should start its next batch.
    fn batch_due_at(&self) -> Option<Instant> {
        let settings = &self.context.settings;
        self.live
            .due_at(settings.batch_linger, settings.batch_max_wait)
    }

    /// Whether another member holds this account's partition now (after a rebalance): then
    /// this worker makes no call to RetailCRM — two members calling one account would share
    /// its 10 requests per second between two budgets (DESIGN §7.4). Its waiting records are
    /// delivered to the new owner from the committed offset; the ones it holds are appended
    /// again under the account's key once stale (`requeue`), or done here if the partition
    /// comes back.
    fn fenced(&self) -> bool {
        !self.context.sync.holds_account(&self.config.crm_url)
    }

    /// When the loop should look again, at the latest.
    fn next_wake(&self, now: Instant) -> Instant {
        if self.live.is_in_flight() {
            return now; // its answer is awaited at once
        }
        let mut wake = self.next_config_check.min(now + Duration::from_secs(60));
        let holds = !(self.live.waiting.is_empty() && self.unlisted.orders.is_empty());
        if holds {
            wake = wake.min(self.next_requeue_check);
        }
        if self.fenced() {
            // No call is due while fenced; look again soon in case the partition returns.
            return wake.min(now + FENCE_RECHECK);
        }
        if holds || self.reference.get().is_none() {
            match self.health.mode() {
                Mode::Ready => {
                    if let Some(at) = self.batch_due_at() {
                        wake = wake.min(at);
                    }
                    if let Some(at) = self.lookup_due_at(now) {
                        wake = wake.min(at);
                    }
                    if self.reference.get().is_none() {
                        wake = now; // load the reference data (`preload_reference`)
                    }
                }
                Mode::BackingOff { until } => wake = wake.min(until),
                Mode::Parked { retry_at } => wake = wake.min(retry_at),
            }
        }
        if self.health.has_pending() {
            wake = wake.min(now + TICK);
        }
        if self.health.mode() == Mode::Ready {
            wake = wake.min(self.sync.wake_at(self.load_allowed(), now));
        }
        wake
    }

    async fn run(
        &mut self,
        stop: CancellationToken,
        abort: CancellationToken,
    ) -> Result<(), Failure> {
        loop {
            let wake = self.next_wake(Instant::now());
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // The batch in flight is finished first (its call is out already).
                    return self.complete_in_flight(&abort, false).await;
                }
                submit = self.rx.recv(), if self.rx_open => match submit {
                    Some(submit) => self.accept(submit),
                    None => self.rx_open = false,
                },
                _ = sleep_until(wake) => {}
            }
            while let Ok(submit) = self.rx.try_recv() {
                self.accept(submit);
            }
            let idle = self.live.waiting.is_empty() && self.unlisted.orders.is_empty();
            if !self.rx_open && idle && !self.live.is_in_flight() {
                return Ok(()); // idle and let go by the intake
            }
            let now = Instant::now();
            if now >= self.next_config_check {
                self.follow_settings();
            }
            self.flush_health().await?;
            if now >= self.next_requeue_check {
                self.requeue_stale().await?;
            }
            self.health.ready_if_due(now);
            let ready = self.health.mode() == Mode::Ready && !self.fenced();
            let due = self.batch_due_at().is_some_and(|at| now >= at);
            let lookup = self.lookup_due_at(now).is_some_and(|at| now >= at);
            if self.live.is_in_flight() {
                self.complete_in_flight(&abort, true).await?;
            } else if ready && lookup {
                self.look_up_next(&abort).await?;
            } else if ready && due {
                self.start_batch(&abort).await?;
            } else if ready && self.reference.get().is_none() {
                self.preload_reference(&abort).await?;
            } else if ready {
                self.sync_step(&abort).await?;
            }
            self.report_waiting();
        }
    }

    fn report_waiting(&mut self) {
        let held = self.live.waiting.len() + self.unlisted.orders.len();
        let now = i64::try_from(held).unwrap_or(i64::MAX);
        self.context
            .metrics
            .waiting_changed(now - self.reported_waiting);
        self.reported_waiting = now;
    }
}
