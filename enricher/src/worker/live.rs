//! Live batches, pipelined: a batch's list call runs on its own task, and as soon as its
//! answer is in, the next due batch's call is started before this one is mapped and
//! published. During a burst the calls then go out at the budget's pace: the worker's own
//! work (mapping, publishing, taking in thousands of change records) happens while the next
//! call waits for its token, instead of between the token and the call.
//!
//! At most one list call is in flight per account, and every call still takes a budget token
//! first, so the pace never exceeds the budget. Order is kept: a batch's events are published
//! before the next batch's, and an order changed again after its batch was taken is queued
//! anew (its next fetch starts after the change arrived), as without pipelining. When a batch
//! fails, the one in flight behind it is cancelled and both go back to the front of the queue.
//!
//! [`LiveBatches`] owns the live queue, the recent fetch starts (`fetched`) and the batch in
//! flight; the worker starts a batch once its reference data is fresh and completes it here.

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::batch::{Listed, client, list};
use super::failure::Failure;
use super::fetched::RecentFetches;
use crate::crm::Crm;
use crate::error::EnricherError;
use crate::metrics::EnricherMetrics;
use crate::queue::{Entry, WaitingOrders};

/// The account's live queue and the batch whose list call is running.
#[derive(Debug)]
pub(super) struct LiveBatches {
    /// The orders waiting for a live batch, de-duplicated.
    pub(super) waiting: WaitingOrders,
    /// When each recently listed order's fetch started (`fetched`).
    fetches: RecentFetches,
    /// The live batch whose list call is running.
    in_flight: Option<BatchInFlight>,
    /// When the last change arrived (a burst is fetched once, after it ends).
    last_submit: Instant,
}

impl LiveBatches {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            waiting: WaitingOrders::new(),
            fetches: RecentFetches::new(),
            in_flight: None,
            last_submit: now,
        }
    }

    /// A change of `order` received at `changed_at` arrived now; `true` when a fetch that
    /// started after the change already holds it (its record may be finished at once).
    pub(super) fn arrived(&mut self, order: u64, changed_at: DateTime<Utc>, now: Instant) -> bool {
        self.last_submit = now;
        self.fetches.covers(order, changed_at)
    }

    /// When the next batch is due: once no change arrived for `linger`, or the oldest waited
    /// `max_wait`.
    pub(super) fn due_at(&self, linger: Duration, max_wait: Duration) -> Option<Instant> {
        let oldest = self.waiting.oldest_since()?;
        Some((self.last_submit + linger).min(oldest + max_wait))
    }

    /// Whether a list call is running.
    pub(super) fn is_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Takes the next batch of up to `size` orders and starts its list call with `crm`;
    /// `false` when nothing waits.
    fn start(&mut self, crm: Crm, size: usize, metrics: &EnricherMetrics) -> bool {
        let batch = self.waiting.take(size);
        if batch.is_empty() {
            return false;
        }
        let started = Instant::now();
        for (_, entry) in &batch {
            for ticket in &entry.tickets {
                metrics.stage("queue", started - ticket.consumed_at);
            }
        }
        self.fetches
            .started(batch.iter().map(|(id, _)| *id), Utc::now());
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id as i64).collect();
        let call = tokio::spawn(async move {
            let mut crm = crm;
            list(&mut crm, &ids).await
        });
        self.in_flight = Some(BatchInFlight {
            batch,
            started,
            call: Call(call),
        });
        true
    }
}

/// A live batch whose list call runs on its own task.
#[derive(Debug)]
pub(super) struct BatchInFlight {
    batch: Vec<(u64, Entry)>,
    started: Instant,
    call: Call,
}

/// The list call's task, cancelled when dropped (a batch given up is put back, never lost,
/// and its late answer must not be waited for).
#[derive(Debug)]
struct Call(JoinHandle<Result<Listed, Failure>>);

impl Drop for Call {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Takes the next batch and starts its list call, when that needs no other call first
    /// (the account has a client and fresh reference data); `false` when it did not start.
    pub(super) fn start_list_call(&mut self) -> bool {
        let fresh = self.reference.is_fresh(self.context.settings.reference_ttl);
        let Some(crm) = self.crm.clone().filter(|_| fresh) else {
            return false;
        };
        let size = self.context.settings.batch_size;
        self.live.start(crm, size, &self.context.metrics)
    }

    /// Starts a live batch: loads what it needs first (the client, stale reference data),
    /// then starts its list call.
    pub(super) async fn start_batch(&mut self, abort: &CancellationToken) -> Result<(), Failure> {
        let ready = async {
            client(&mut self.crm)?;
            self.ensure_reference().await
        };
        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => return Ok(()),
            result = ready => result,
        };
        if let Err(failure) = result {
            return self.react_to_failure(failure);
        }
        self.start_list_call();
        Ok(())
    }

    /// Waits for the batch in flight, starts the next one's list call when it is due (and
    /// `pipeline` allows), then maps and publishes this one and finishes its records.
    pub(super) async fn complete_in_flight(
        &mut self,
        abort: &CancellationToken,
        pipeline: bool,
    ) -> Result<(), Failure> {
        let Some(mut flight) = self.live.in_flight.take() else {
            return Ok(());
        };
        self.sync.live_batch_ran();
        self.unlisted.live_batch_ran();
        let answer = tokio::select! {
            biased;
            _ = abort.cancelled() => {
                // Not finished: the records are delivered again after the restart.
                self.live.waiting.put_back(flight.batch);
                return Ok(());
            }
            answer = &mut flight.call.0 => answer,
        };
        let listed = match answer {
            Ok(Ok(listed)) => listed,
            Ok(Err(failure)) => return self.put_back_failed(flight.batch, failure),
            Err(error) => {
                let lost = EnricherError::WorkerLost(format!("{}: list call {error}", self.id));
                return self.put_back_failed(flight.batch, Failure::Fatal(lost));
            }
        };
        self.context
            .metrics
            .stage("fetch", flight.started.elapsed());

        while let Ok(submit) = self.rx.try_recv() {
            self.accept(submit);
        }
        // Exactly when the loop would take the next batch anyway: a due lookup of an unlisted
        // order goes first.
        let now = Instant::now();
        let due = |at: Option<Instant>| at.is_some_and(|at| now >= at);
        if pipeline && due(self.batch_due_at()) && !due(self.lookup_due_at(now)) {
            self.start_list_call();
        }

        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => {
                self.put_back_in_flight();
                self.live.waiting.put_back(flight.batch);
                return Ok(());
            }
            result = self.publish_listed(&flight.batch, listed, flight.started) => result,
        };
        match result {
            Ok(unlisted) => {
                let (deferred, done): (Vec<_>, Vec<_>) = flight
                    .batch
                    .into_iter()
                    .partition(|(id, _)| unlisted.contains(id));
                self.finish(done.into_iter().flat_map(|(_, e)| e.tickets));
                self.hold_for_lookup(deferred);
                self.succeeded();
                Ok(())
            }
            Err(failure) => {
                self.put_back_in_flight();
                self.put_back_failed(flight.batch, failure)
            }
        }
    }

    /// Cancels the call in flight (if any) and puts its batch back at the front.
    fn put_back_in_flight(&mut self) {
        if let Some(next) = self.live.in_flight.take() {
            let covered = self.live.waiting.put_back(next.batch);
            self.finish(covered);
        }
    }

    /// Puts a failed batch back at the front (before one put back just now) and reacts to
    /// the failure.
    fn put_back_failed(
        &mut self,
        batch: Vec<(u64, Entry)>,
        failure: Failure,
    ) -> Result<(), Failure> {
        if !matches!(failure, Failure::Fatal(_)) {
            let covered = self.live.waiting.put_back(batch);
            self.finish(covered);
        }
        self.react_to_failure(failure)
    }
}
