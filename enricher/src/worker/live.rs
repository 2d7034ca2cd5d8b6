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

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::batch::{Listed, client, list};
use super::failure::Failure;
use crate::error::EnricherError;
use crate::queue::Entry;

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
        let fresh = self
            .reference
            .as_ref()
            .is_some_and(|r| r.loaded_at.elapsed() < self.context.settings.reference_ttl);
        let Some(crm) = self.crm.clone().filter(|_| fresh) else {
            return false;
        };
        let batch = self.waiting.take(self.context.settings.batch_size);
        if batch.is_empty() {
            return false;
        }
        let started = Instant::now();
        for (_, entry) in &batch {
            for ticket in &entry.tickets {
                self.context
                    .metrics
                    .stage("queue", started - ticket.consumed_at);
            }
        }
        self.fetches
            .started(batch.iter().map(|(id, _)| *id), chrono::Utc::now());
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
        let Some(mut flight) = self.in_flight.take() else {
            return Ok(());
        };
        self.sync.live_batch_ran();
        self.unlisted.live_batch_ran();
        let answer = tokio::select! {
            biased;
            _ = abort.cancelled() => {
                // Not finished: the records are delivered again after the restart.
                self.waiting.put_back(flight.batch);
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
                self.waiting.put_back(flight.batch);
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
        if let Some(next) = self.in_flight.take() {
            let covered = self.waiting.put_back(next.batch);
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
            let covered = self.waiting.put_back(batch);
            self.finish(covered);
        }
        self.react_to_failure(failure)
    }
}
