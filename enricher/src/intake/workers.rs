//! The account workers the intake runs: one per integration with work here, started on its
//! first order change (or when this member owns its sync), let go once idle, and watched so
//! that a worker that ends unasked stops the enricher.
//!
//! Each worker has a generation: a worker let go (idle) may end after a new one of the same
//! integration started, and only the current one ending unasked is a loss.

use std::collections::HashMap;
use std::sync::Arc;

use dealflow_shared::events::{IntegrationConfigured, IntegrationId};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::context::EnricherContext;
use crate::worker::{self, Submit, WorkerHandle};

/// A running worker as the intake sees it.
#[derive(Debug)]
struct Active {
    handle: WorkerHandle,
    /// Records handed over and not finished yet.
    outstanding: usize,
    /// Since when nothing is outstanding.
    idle_since: Option<Instant>,
}

/// The running account workers of one enricher.
#[derive(Debug)]
pub(super) struct AccountWorkers {
    context: Arc<EnricherContext>,
    workers: HashMap<IntegrationId, Active>,
    /// Every worker task (dropping the intake aborts them all).
    tasks: JoinSet<(IntegrationId, u64)>,
    next_generation: u64,
    /// Ends the workers after their current batch.
    stop: CancellationToken,
    /// Also cancels the batches in flight.
    abort: CancellationToken,
}

impl AccountWorkers {
    pub(super) fn new(context: Arc<EnricherContext>) -> Self {
        Self {
            context,
            workers: HashMap::new(),
            tasks: JoinSet::new(),
            next_generation: 0,
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    /// Hands an order change to the worker of `integration`, starting one when there is none
    /// (or the last one ended after it was let go).
    pub(super) fn send(
        &mut self,
        integration: IntegrationId,
        config: &IntegrationConfigured,
        mut submit: Submit,
    ) {
        loop {
            if !self.workers.contains_key(&integration) {
                self.spawn(integration, config.clone());
            }
            let active = self.workers.get_mut(&integration).expect("inserted above");
            match active.handle.tx.send(submit) {
                Ok(()) => {
                    active.outstanding += 1;
                    active.idle_since = None;
                    return;
                }
                Err(returned) => {
                    // The worker ended after it was let go; start a fresh one.
                    submit = returned.0;
                    self.workers.remove(&integration);
                }
            }
        }
    }

    /// Starts the worker of `integration` unless it runs.
    pub(super) fn ensure(&mut self, integration: IntegrationId, config: IntegrationConfigured) {
        if !self.workers.contains_key(&integration) {
            self.spawn(integration, config);
        }
    }

    /// Starts the worker of an integration.
    fn spawn(&mut self, integration: IntegrationId, config: IntegrationConfigured) {
        self.next_generation += 1;
        let (handle, task) = worker::start(
            integration,
            self.next_generation,
            config,
            Arc::clone(&self.context),
            self.stop.clone(),
            self.abort.clone(),
        );
        self.tasks.spawn(task);
        let active = Active {
            handle,
            outstanding: 0,
            idle_since: Some(Instant::now()),
        };
        self.workers.insert(integration, active);
    }

    /// `count` records of `integration` are finished.
    pub(super) fn finished(&mut self, integration: IntegrationId, count: usize) {
        if let Some(active) = self.workers.get_mut(&integration) {
            active.outstanding = active.outstanding.saturating_sub(count);
            if active.outstanding == 0 {
                active.idle_since = Some(Instant::now());
            }
        }
    }

    /// Lets go of the workers idle for `idle_timeout`: dropping the sender lets an idle
    /// worker end. A worker is let go only when it has no sync to run here either.
    pub(super) fn let_go_idle(&mut self, now: Instant, idle_timeout: Duration) {
        let (registry, sync) = (&self.context.registry, &self.context.sync);
        self.workers.retain(|id, active| {
            let syncs = registry
                .get(*id)
                .is_some_and(|c| c.active && sync.owns(*id, &c.crm_url));
            syncs
                || active
                    .idle_since
                    .is_none_or(|since| now < since + idle_timeout)
        });
    }

    /// Reaps the workers that ended; names the first that should not have (the current worker
    /// of its integration, or one that panicked).
    pub(super) fn lost(&mut self) -> Option<String> {
        while let Some(ended) = self.tasks.try_join_next() {
            let lost = match ended {
                // A worker let go (idle) ends on its own; the current one of an integration
                // only ends after a fatal error (reported first) or when told to stop.
                Ok((id, generation)) => self
                    .workers
                    .get(&id)
                    .filter(|a| a.handle.generation == generation)
                    .map(|_| id.to_string()),
                Err(error) => Some(format!("panicked: {error}")),
            };
            if lost.is_some() {
                return lost;
            }
        }
        None
    }

    /// Tells every worker to stop after its current batch and lets go of them all.
    pub(super) fn stop(&mut self) {
        self.stop.cancel();
        // Letting go of the senders lets idle workers end at once.
        self.workers.clear();
    }

    /// Tells every worker to cancel its batch in flight too.
    pub(super) fn abort(&self) {
        self.abort.cancel();
    }

    /// Whether every worker task has ended.
    pub(super) fn all_ended(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits until `deadline` for one worker to end; `false` when the deadline came first.
    pub(super) async fn join_one(&mut self, deadline: Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
            Ok(Some(Err(error))) => {
                tracing::error!(%error, "worker panicked while stopping");
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Aborts the workers still running and waits for them.
    pub(super) async fn abort_all(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}
