//! The consumer loop: poll a batch, apply it with its offsets in one transaction, then tell
//! the writers in this process ([`ReadProgress`]), then store and commit the offsets on the bus
//! (which tells writers in other processes). Both come right after the database commit, never
//! before: ingest answers a settings write once one of them shows it (read your writes,
//! [`dealflow_shared::visibility`]).
//!
//! While a batch is written, the next one is polled and decoded beside it (a short poll, so an
//! idle bus delays the bus commit by at most [`READ_AHEAD_WAIT`]). A rebalance inside that poll
//! may take a partition whose batch is still being written; its new owner's batch waits on the
//! offsets rows this one holds, then skips what this one applied.
//!
//! Failures are classified before anything moves (STYLE "Kafka and the read model"):
//! a transient store or bus failure retries the same batch with backoff; an undecodable record
//! is dead-lettered and the partition keeps flowing (the dead-letter cap halts); anything else
//! stops the consumer loudly. The bus commit after the database commit is best effort: the
//! database already knows what was applied, so a lost commit only means re-reading records
//! that are then skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dealflow_shared::bus::{BusError, Consumer, DeadLetters, Delivered, EventBus, GroupStart};
use dealflow_shared::visibility::ReadProgress;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::batch::{self, BatchError, BatchOptions, Polled};
use crate::error::ProjectorError;
use crate::metrics::ProjectorMetrics;
use crate::settings::ProjectorSettings;
use crate::store::Store;
use crate::store::upkeep::Upkeep;

/// How often the consumer lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(15);
/// How long the poll beside a batch being written waits for records (see `consume`).
const READ_AHEAD_WAIT: Duration = Duration::from_millis(20);
/// While records keep coming, a batch starts at least this long after the previous one began,
/// topping up with what arrived meanwhile. Under a steady flow (a live load of hundreds of
/// small polls a second) each batch's fixed cost — its lookups, its commit and fsync — was
/// most of the projector's work (BENCHMARKS.md, issue 20); after a quiet spell a record is
/// applied at once.
const BATCH_LINGER: Duration = Duration::from_millis(25);
/// Retry backoff for transient failures: from the first to the last, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The projector's consumer.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerLoop {
    pub settings: ProjectorSettings,
    pub store: Store,
    pub bus: Arc<dyn EventBus>,
    pub metrics: ProjectorMetrics,
    /// One cap for every batch of this process.
    pub dead_letters: Arc<DeadLetters>,
    /// True while a consumer holds an assignment (for `/readyz`).
    pub assigned: Arc<AtomicBool>,
    /// What the read model has applied, for writers in this process.
    pub progress: ReadProgress,
    /// Statistics and visibility of the tables it writes (PostgreSQL).
    pub upkeep: Upkeep,
}

impl ConsumerLoop {
    /// Consumes until `shutdown`; returns an error only for what retrying cannot fix.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ProjectorError> {
        let topics = self.settings.source_topics();
        if self.store.applied_offsets().await?.is_empty() {
            // A fresh read model: offsets the group committed belong to another database.
            self.reset_group(&topics).await?;
        }
        let lag = tokio::spawn(self.clone().report_lag(shutdown.child_token()));
        let result = self.consume_with_resets(&topics, &shutdown).await;
        lag.abort();
        result
    }

    /// Subscribes and consumes; resets the group once when the database turns out to be behind
    /// it (see [`BatchError::Behind`]).
    async fn consume_with_resets(
        &self,
        topics: &[String],
        shutdown: &CancellationToken,
    ) -> Result<(), ProjectorError> {
        let mut reset_done = false;
        let mut backoff = BACKOFF.0;
        loop {
            let mut consumer = match self.bus.subscribe(&self.settings.group, topics).await {
                Ok(consumer) => consumer,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "joining the consumer group failed; retrying");
                    if !pause(&mut backoff, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let result = self.consume(consumer.as_mut(), shutdown).await;
            self.assigned.store(false, Ordering::Relaxed);
            match result {
                Err(ProjectorError::Batch(behind @ BatchError::Behind { .. })) if !reset_done => {
                    tracing::warn!(
                        error = %behind,
                        "replaying from the start of the topics; applied records are skipped"
                    );
                    drop(consumer);
                    self.reset_group(topics).await?;
                    reset_done = true;
                }
                other => return other,
            }
        }
    }

    async fn reset_group(&self, topics: &[String]) -> Result<(), ProjectorError> {
        match self
            .bus
            .reset_group(&self.settings.group, topics, GroupStart::Earliest, None)
            .await
        {
            Ok(()) => Ok(()),
            // Another member of the group is already consuming (and resetting is its job).
            Err(BusError::GroupBusy(group)) => {
                tracing::warn!(%group, "consumer group busy; not resetting it");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The loop: while one batch is written, the next is polled and decoded (both need no
    /// database), so the bus, the decoding and the database work side by side.
    async fn consume(
        &self,
        consumer: &mut dyn Consumer,
        shutdown: &CancellationToken,
    ) -> Result<(), ProjectorError> {
        let complete = self.settings.complete_topics();
        let options = BatchOptions {
            complete_topics: &complete,
            dead_letters: Some(&self.dead_letters),
        };
        let mut backoff = BACKOFF.0;
        // The read-ahead poll of the previous turn, decoded (or how it failed).
        let mut next: Option<Result<Polled, BusError>> = None;
        // When the previous batch began ([`BATCH_LINGER`]).
        let mut last_started: Option<Instant> = None;
        loop {
            let polled = match next.take() {
                Some(read_ahead) => read_ahead,
                None => tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    polled = consumer.poll(self.settings.batch_size, self.settings.poll_timeout) => polled,
                }
                .map(Polled::decode),
            };
            let polled = match polled {
                Ok(polled) => polled,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "polling the bus failed; retrying");
                    if !pause(&mut backoff, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            backoff = BACKOFF.0;
            if !consumer.assignment().is_empty() {
                self.assigned.store(true, Ordering::Relaxed);
            }
            if polled.is_empty() {
                continue;
            }
            let mut polled = polled;
            if let Some(started) = last_started
                && polled.len() < self.settings.batch_size
                && started.elapsed() < BATCH_LINGER
            {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep_until(started + BATCH_LINGER) => {}
                }
                // What arrived meanwhile. A transient failure leaves it to the next poll; any
                // other ends the loop as the main poll's does (the caller starts over from the
                // committed offsets, so nothing a failed poll may have skipped is lost).
                let room = self.settings.batch_size - polled.len();
                match consumer.poll(room, Duration::ZERO).await {
                    Ok(more) => polled.extend(Polled::decode(more)),
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, "topping up a batch failed; going on");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            last_started = Some(Instant::now());
            let applied = last_per_partition(&polled.records);
            let write = async {
                let done = self.apply(&polled, options, shutdown).await?;
                if done {
                    // Writers in this process see the batch now, not after the next poll.
                    self.progress.advance(
                        applied
                            .iter()
                            .map(|r| ((r.topic.clone(), r.partition), r.offset + 1)),
                    );
                }
                Ok::<_, ProjectorError>(done)
            };
            // A short wait: the offsets below go to the bus once this poll is back, and writers
            // in other processes wait for them (an idle bus must not hold them for long).
            let read_ahead = async {
                let records = tokio::select! {
                    () = shutdown.cancelled() => Ok(Vec::new()),
                    polled = consumer.poll(self.settings.batch_size, READ_AHEAD_WAIT) => polled,
                }?;
                // Decoded while the batch is written and its offsets committed.
                Ok::<_, BusError>(Polled::decode_aside(records))
            };
            // The poll goes first: on SQLite the write runs on this thread, so the poll must
            // have been sent by then.
            let (read_ahead, done) = tokio::join!(read_ahead, write);
            if !done? {
                return Ok(());
            }
            for record in applied {
                // After a rebalance the partition may be gone; its new owner skips by offset.
                if let Err(e) = consumer.store(record) {
                    tracing::warn!(error = %e, "storing an offset on the bus failed");
                }
            }
            if let Err(e) = consumer.commit().await {
                // The database holds the offsets; the next commit carries these too.
                tracing::warn!(error = %e, "committing offsets to the bus failed");
            }
            next = Some(match read_ahead {
                Ok(decoding) => Ok(decoding.await),
                Err(e) => Err(e),
            });
        }
    }

    /// Applies one batch, retrying transient failures. False when shutdown came first.
    async fn apply(
        &self,
        polled: &Polled,
        options: BatchOptions<'_>,
        shutdown: &CancellationToken,
    ) -> Result<bool, ProjectorError> {
        let mut backoff = BACKOFF.0;
        loop {
            let started = Instant::now();
            match batch::apply_records(&self.store, polled, options).await {
                Ok(outcome) => {
                    self.metrics
                        .batch(polled.len(), &outcome, started.elapsed());
                    let applied = &outcome.applied;
                    self.upkeep.wrote(
                        applied.total() + applied.deals_written,
                        applied.rederived_integrations > 0,
                    );
                    return Ok(true);
                }
                Err(e) => {
                    self.metrics.batch_failed(started.elapsed());
                    if !e.is_transient() {
                        return Err(e.into());
                    }
                    tracing::warn!(error = %e, "applying a batch failed; retrying");
                    if !pause(&mut backoff, shutdown).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Refreshes the lag gauge every [`LAG_INTERVAL`] until `stop`, off the consumer's path
    /// (end offsets are a broker round trip per topic).
    async fn report_lag(self, stop: CancellationToken) {
        loop {
            self.refresh_lag().await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(LAG_INTERVAL) => {}
            }
        }
    }

    async fn refresh_lag(&self) {
        let applied = match self.store.applied_offsets().await {
            Ok(applied) => applied,
            Err(e) => {
                tracing::debug!(error = %e, "reading offsets for the lag gauge");
                return;
            }
        };
        for topic in self.settings.source_topics() {
            match self.bus.end_offsets(&topic).await {
                Ok(ends) => {
                    let lag = ends
                        .iter()
                        .map(|(p, end)| {
                            let next = applied.get(&(topic.clone(), *p)).copied().unwrap_or(0);
                            (end - next).max(0)
                        })
                        .sum();
                    self.metrics.set_lag(&topic, lag);
                }
                Err(e) => {
                    tracing::debug!(%topic, error = %e, "reading end offsets for the lag gauge")
                }
            }
        }
    }
}

/// The last record of each partition (storing it moves the group past the earlier ones).
fn last_per_partition(records: &[Delivered]) -> Vec<&Delivered> {
    let mut last: BTreeMap<(&str, i32), &Delivered> = BTreeMap::new();
    for r in records {
        last.insert((r.topic.as_str(), r.partition), r);
    }
    last.into_values().collect()
}

/// Waits out one backoff step (doubling it); false when shutdown came first.
async fn pause(backoff: &mut Duration, shutdown: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF.1);
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}
