//! The intake: the one task that owns the `order-changed` consumer.
//!
//! It polls records, decodes them (poison bytes go to the dead-letter topic at once), hands
//! each order change to its account's worker (started on first use; [`AccountWorkers`] owns
//! them), and moves the group's offsets: a record's offset is stored only once the worker
//! reports it finished, and only when every earlier record of its partition is finished too
//! ([`OffsetTracker`]). Stored offsets are committed every `commit_interval` and on shutdown.
//!
//! A record of an integration the registry does not know yet (created a moment ago) waits up
//! to `unknown_integration_grace` for it; a removed or switched-off integration's records are
//! finished without work.

mod workers;

use std::collections::VecDeque;
use std::sync::Arc;

use dealflow_shared::bus::{Consumer, Delivered};
use dealflow_shared::events::{Envelope, Event, IntegrationId, OrderChanged};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use self::workers::AccountWorkers;
use crate::context::{EnricherContext, IntakeEvent, STAGE_DECODE};
use crate::error::EnricherError;
use crate::offsets::OffsetTracker;
use crate::queue::Ticket;
use crate::worker::Submit;

/// How often the intake looks after changes awaiting their integration, idle workers and
/// metrics.
const MAINTENANCE_EVERY: Duration = Duration::from_millis(250);
/// How often consumer lag is measured (a metadata round trip on Kafka).
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Pause after a transient bus failure of the intake itself.
const BUS_RETRY: Duration = Duration::from_millis(500);
/// While the partition count of `order-changed` cannot be learnt (the broker is down at start),
/// it is asked again after these pauses, doubling: each ask may wait for the bus's request
/// timeout, which at every maintenance would stall the intake and repeat the warning 4×/s.
const PARTITION_PROBE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// An order change whose integration the registry does not know yet (its `IntegrationConfigured`
/// may still be on its way): dispatched once it is known, skipped at `deadline`.
#[derive(Debug)]
struct AwaitingIntegration {
    deadline: Instant,
    integration: IntegrationId,
    ticket: Ticket,
}

/// The consumer loop of one enricher.
#[derive(Debug)]
pub(crate) struct Intake {
    consumer: Box<dyn Consumer>,
    context: Arc<EnricherContext>,
    events: mpsc::UnboundedReceiver<IntakeEvent>,
    tracker: OffsetTracker,
    /// The running account workers (`workers`).
    workers: AccountWorkers,
    awaiting_integration: VecDeque<AwaitingIntegration>,
    shutdown: CancellationToken,
    last_commit: Instant,
    uncommitted: bool,
    next_maintenance: Instant,
    next_lag: Instant,
    /// When the partition count may be asked again, and the pause after that ask fails.
    partition_probe: (Instant, Duration),
}

/// Why a record is not an order change to work on.
fn decode(record: &Delivered) -> Result<(IntegrationId, OrderChanged), String> {
    let envelope = Envelope::decode(&record.payload).map_err(|e| e.to_string())?;
    match envelope.event {
        Event::OrderChanged(change) if i64::try_from(change.order_id).is_ok() => {
            Ok((envelope.integration_id, change))
        }
        Event::OrderChanged(change) => Err(format!("order id {} is out of range", change.order_id)),
        other => Err(format!(
            "unexpected event type {} on the order-changed topic",
            other.event_type().as_str()
        )),
    }
}

impl Intake {
    /// An intake over `consumer`; workers report on `events` (whose sender is in `context`).
    pub fn new(
        consumer: Box<dyn Consumer>,
        context: Arc<EnricherContext>,
        events: mpsc::UnboundedReceiver<IntakeEvent>,
        shutdown: CancellationToken,
    ) -> Self {
        let now = Instant::now();
        let workers = AccountWorkers::new(Arc::clone(&context));
        Self {
            consumer,
            context,
            events,
            tracker: OffsetTracker::new(),
            workers,
            awaiting_integration: VecDeque::new(),
            shutdown,
            last_commit: now,
            uncommitted: false,
            next_maintenance: now,
            next_lag: now,
            partition_probe: (now, PARTITION_PROBE.0),
        }
    }

    /// Consumes until `shutdown` or a fatal failure, then lets the workers finish what they
    /// hold (within `shutdown_grace`), stores and commits.
    pub async fn run(mut self) -> Result<(), EnricherError> {
        let outcome = self.consume().await;
        if let Err(error) = &outcome {
            tracing::error!(%error, "the enricher is stopping on a fatal error");
        }
        let wound_down = self.wind_down().await;
        outcome.and(wound_down)
    }

    async fn consume(&mut self) -> Result<(), EnricherError> {
        let settings = self.context.settings.clone();
        self.learn_partition_count().await;
        while !self.shutdown.is_cancelled() {
            match self
                .consumer
                .poll(settings.poll_max_records, settings.poll_timeout)
                .await
            {
                Ok(records) => {
                    // A poll may have joined the group or rebalanced it: the fence reads the
                    // assignment before any worker is handed a record of it.
                    self.refresh_assignment();
                    for record in records {
                        self.route(record).await?;
                    }
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, "order-changed unavailable; retrying");
                    tokio::time::sleep(BUS_RETRY).await;
                }
                Err(error) => return Err(error.into()),
            }
            self.drain_events()?;
            if Instant::now() >= self.next_maintenance {
                self.maintain().await?;
            }
            self.store_and_commit(false).await?;
        }
        Ok(())
    }

    async fn route(&mut self, record: Delivered) -> Result<(), EnricherError> {
        let reference = self
            .tracker
            .begin(&record.topic, record.partition, record.offset);
        let delivered = Arc::new(record);
        let (integration, change) = match decode(&delivered) {
            Ok(decoded) => decoded,
            Err(reason) => {
                if self.dead_letter(&delivered, &reason).await? {
                    self.tracker.finish(&reference);
                }
                return Ok(());
            }
        };
        let ticket = Ticket {
            order_id: change.order_id,
            record: reference,
            delivered,
            consumed_at: Instant::now(),
            changed_at: change.received_at,
        };
        let deadline = Instant::now() + self.context.settings.unknown_integration_grace;
        if let Some(waiting) = self.dispatch(integration, ticket, deadline) {
            self.awaiting_integration.push_back(waiting);
        }
        Ok(())
    }

    /// Hands a ticket to its account's worker; returns it when the integration is unknown.
    fn dispatch(
        &mut self,
        integration: IntegrationId,
        ticket: Ticket,
        deadline: Instant,
    ) -> Option<AwaitingIntegration> {
        match self.context.registry.get(integration) {
            Some(config) if config.active => {
                let submit = Submit {
                    order_id: ticket.order_id,
                    ticket,
                };
                self.workers.send(integration, &config, submit);
                None
            }
            Some(_) => {
                self.context.metrics.skipped("integration_inactive", 1);
                self.tracker.finish(&ticket.record);
                None
            }
            None => Some(AwaitingIntegration {
                deadline,
                integration,
                ticket,
            }),
        }
    }

    /// Which member syncs and calls an account follows the account's partition (see `sync`),
    /// which needs the partition count of `order-changed`; until it is known the sync-state
    /// placement decides (asked again at each maintenance).
    async fn learn_partition_count(&mut self) {
        let topic = self.context.settings.topics.order_changed();
        match self.context.bus.end_offsets(&topic).await {
            Ok(ends) => self.context.sync.set_partition_count(ends.len()),
            Err(e) => {
                let (next, pause) = &mut self.partition_probe;
                *next = Instant::now() + *pause;
                tracing::warn!(error = %e, retry_in = ?*pause, "order-changed partitions unknown; sync ownership by sync-state placement");
                *pause = (*pause * 2).min(PARTITION_PROBE.1);
            }
        }
    }

    /// Tells the sync states (and the fence) which `order-changed` partitions this member holds.
    fn refresh_assignment(&mut self) {
        let order_changed = self.context.settings.topics.order_changed();
        let assigned: Vec<i32> = self
            .consumer
            .assignment()
            .into_iter()
            .filter(|(topic, _)| *topic == order_changed)
            .map(|(_, partition)| partition)
            .collect();
        self.context.metrics.assigned_partitions(assigned.len());
        self.context.sync.set_assignment(assigned);
    }

    /// Every active integration whose sync this member owns has a worker, even with no
    /// order change: it reconciles history and runs backfills / re-syncs (`sync`).
    fn start_sync_workers(&mut self) {
        self.refresh_assignment();
        for (id, config) in self.context.registry.list() {
            if config.active && self.context.sync.owns(id, &config.crm_url) {
                self.workers.ensure(id, config);
            }
        }
    }

    /// Dead-letters a record, retrying transient bus failures; `false` when shutdown came
    /// first (the record is then delivered again after the restart).
    async fn dead_letter(
        &mut self,
        record: &Delivered,
        reason: &str,
    ) -> Result<bool, EnricherError> {
        loop {
            match self.context.dead_letter(record, STAGE_DECODE, reason).await {
                Ok(()) => return Ok(true),
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, "dead-letter topic unavailable; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Ok(false),
                        _ = tokio::time::sleep(BUS_RETRY) => {}
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn drain_events(&mut self) -> Result<(), EnricherError> {
        while let Ok(event) = self.events.try_recv() {
            match event {
                IntakeEvent::Finished {
                    integration,
                    records,
                } => {
                    for record in &records {
                        self.tracker.finish(record);
                    }
                    self.workers.finished(integration, records.len());
                }
                IntakeEvent::Fatal { integration, error } => {
                    tracing::error!(integration_id = %integration, %error, "account worker failed fatally");
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    async fn maintain(&mut self) -> Result<(), EnricherError> {
        let now = Instant::now();
        self.next_maintenance = now + MAINTENANCE_EVERY;
        for _ in 0..self.awaiting_integration.len() {
            let Some(waiting) = self.awaiting_integration.pop_front() else {
                break;
            };
            if self.context.registry.get(waiting.integration).is_some() {
                if let Some(back) =
                    self.dispatch(waiting.integration, waiting.ticket, waiting.deadline)
                {
                    self.awaiting_integration.push_back(back);
                }
            } else if now >= waiting.deadline {
                tracing::warn!(integration_id = %waiting.integration, "order change of an unknown or removed integration skipped");
                self.context.metrics.skipped("unknown_integration", 1);
                self.tracker.finish(&waiting.ticket.record);
            } else {
                self.awaiting_integration.push_back(waiting);
            }
        }
        self.workers
            .let_go_idle(now, self.context.settings.idle_worker_timeout);
        if !self.context.sync.partition_count_known() && now >= self.partition_probe.0 {
            self.learn_partition_count().await;
        }
        self.start_sync_workers();
        if let Some(lost) = self.workers.lost() {
            self.drain_events()?;
            return Err(EnricherError::WorkerLost(lost));
        }
        let lag = if now >= self.next_lag {
            self.next_lag = now + LAG_EVERY;
            self.lag().await
        } else {
            None
        };
        self.context.metrics.intake(self.tracker.unfinished(), lag);
        Ok(())
    }

    /// Records after the stored offsets on the known partitions (`None` if the bus is busy).
    async fn lag(&mut self) -> Option<i64> {
        let positions = self.tracker.positions();
        let mut topics: Vec<&str> = positions.iter().map(|(t, _, _)| t.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        let mut lag = 0;
        for topic in topics {
            let ends = self.context.bus.end_offsets(topic).await.ok()?;
            for (_, partition, next) in positions.iter().filter(|(t, _, _)| t == topic) {
                if let Some((_, end)) = ends.iter().find(|(p, _)| p == partition) {
                    lag += (end - next).max(0);
                }
            }
        }
        Some(lag)
    }

    /// Stores every offset that may move, and commits when due (or `force`d).
    async fn store_and_commit(&mut self, force: bool) -> Result<(), EnricherError> {
        let storable = self.tracker.take_storable();
        if !storable.is_empty() {
            let assigned = self.consumer.assignment();
            for (topic, partition, offset) in storable {
                if !assigned.iter().any(|(t, p)| *t == topic && *p == partition) {
                    continue; // taken away meanwhile: its new owner starts at the committed offset
                }
                let marker = Delivered {
                    topic,
                    partition,
                    offset,
                    key: None,
                    payload: Vec::new(),
                    headers: Vec::new(),
                };
                self.consumer.store(&marker)?;
                self.uncommitted = true;
            }
        }
        let due = force || self.last_commit.elapsed() >= self.context.settings.commit_interval;
        if self.uncommitted && due {
            match self.consumer.commit().await {
                Ok(()) => {
                    self.uncommitted = false;
                    self.last_commit = Instant::now();
                }
                Err(error) if error.is_transient() && !force => {
                    tracing::warn!(%error, "commit failed; retrying at the next interval");
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Stops the workers (in-flight batches may finish within `shutdown_grace`), collects
    /// what they finished, stores and commits.
    async fn wind_down(&mut self) -> Result<(), EnricherError> {
        self.workers.stop();
        let deadline = Instant::now() + self.context.settings.shutdown_grace;
        self.join_workers(deadline).await;
        self.workers.abort();
        self.join_workers(Instant::now() + Duration::from_secs(2))
            .await;
        self.workers.abort_all().await;
        self.collect_finished();
        let committed = self.store_and_commit(true).await;
        if let Err(error) = &committed {
            tracing::error!(%error, "final commit failed; the last records will be delivered again");
        }
        committed
    }

    /// Waits for the workers to end (applying what they finish) until `deadline`.
    async fn join_workers(&mut self, deadline: Instant) {
        while !self.workers.all_ended() {
            self.collect_finished();
            if !self.workers.join_one(deadline).await {
                break;
            }
        }
        self.collect_finished();
    }

    /// Applies finished records, ignoring fatal reports (already stopping).
    fn collect_finished(&mut self) {
        while let Err(error) = self.drain_events() {
            tracing::error!(%error, "worker failed while stopping");
        }
    }
}
