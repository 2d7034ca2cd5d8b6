//! Building and running the enricher: `EnricherService::build(...)` then
//! `run_until_stopped(shutdown)`.
//!
//! Start-up order: follow the `integrations` and `sync-state` topics until both have been
//! read to their end (so no order change is mistaken for one of an unknown integration and
//! every sync resumes from its stored state), then join the consumer group on
//! `order-changed` and start the intake. When run alone, a small listener serves
//! `/healthz`, `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use dealflow_shared::bus::{BusError, DeadLetters, EventBus};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::registry::Registry;
use dealflow_shared::retailcrm::Budgets;
use dealflow_shared::secrets::SecretKeys;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::EnricherContext;
use crate::error::EnricherError;
use crate::intake::Intake;
use crate::metrics::EnricherMetrics;
use crate::output::Output;
use crate::settings::EnricherSettings;
use crate::sync::SyncStates;

/// Whether the enricher is consuming (the registry is loaded and the group joined).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// True once the enricher consumes `order-changed`, false again when it stops.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

/// A built enricher, ready to run.
#[derive(Debug)]
pub struct EnricherService {
    settings: EnricherSettings,
    bus: Arc<dyn EventBus>,
    budgets: Budgets,
    metrics: Metrics,
    enricher_metrics: EnricherMetrics,
    registry: Registry,
    sync: SyncStates,
    listener: Option<TcpListener>,
    readiness: Readiness,
}

impl EnricherService {
    /// Validates the settings, registers the metrics in `metrics` and binds the ops listener
    /// (when `settings.listen` is set). Nothing is consumed until `run_until_stopped`.
    pub async fn build(
        settings: EnricherSettings,
        bus: Arc<dyn EventBus>,
        budgets: Budgets,
        metrics: Metrics,
    ) -> Result<Self, EnricherError> {
        settings.validate()?;
        let listener = match settings.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| EnricherError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            enricher_metrics: EnricherMetrics::new(&metrics),
            settings,
            bus,
            budgets,
            metrics,
            registry: Registry::new(),
            sync: SyncStates::new(),
            listener,
            readiness: Readiness::default(),
        })
    }

    /// The bound ops address (a port 0 in tests becomes a real port here).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The integrations registry this enricher follows.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Readiness, for an all-in-one process's `/readyz`.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// `/healthz`, `/readyz` and `/metrics` of this enricher.
    pub fn ops_router(&self) -> Router {
        ops_router(self.readiness.clone(), self.metrics.clone())
    }

    /// Runs until `shutdown` (or a fatal failure): in-flight batches finish within
    /// `shutdown_grace`, finished offsets are committed, unfinished records are delivered
    /// again to the next member.
    pub async fn run_until_stopped(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<(), EnricherError> {
        let run = shutdown.child_token();
        let follower_error: Arc<Mutex<Option<BusError>>> = Arc::default();
        let group = format!(
            "{}enricher-registry-{}",
            self.settings.topics.prefix(),
            uuid::Uuid::now_v7().simple()
        );
        // Owned here, so dropping this future (a crash in tests) stops them too.
        let mut background = JoinSet::new();
        {
            let registry = self.registry.clone();
            let (bus, topic) = (self.bus.clone(), self.settings.topics.integrations());
            let (run, slot) = (run.clone(), follower_error.clone());
            background.spawn(async move {
                if let Err(error) = registry.follow(bus, topic, group, run.clone()).await {
                    tracing::error!(%error, "the integrations topic cannot be followed");
                    *slot.lock().expect("follower error slot") = Some(error);
                    run.cancel();
                }
            });
        }
        {
            let states = self.sync.clone();
            let (bus, topic) = (self.bus.clone(), self.settings.topics.sync_state());
            let group = format!(
                "{}enricher-sync-{}",
                self.settings.topics.prefix(),
                uuid::Uuid::now_v7().simple()
            );
            let (run, slot) = (run.clone(), follower_error.clone());
            background.spawn(async move {
                if let Err(error) = states.follow(bus, topic, group, run.clone()).await {
                    tracing::error!(%error, "the sync-state topic cannot be followed");
                    *slot.lock().expect("follower error slot") = Some(error);
                    run.cancel();
                }
            });
        }
        if let Some(listener) = self.listener.take() {
            let app = self.ops_router();
            let stop = run.clone();
            background.spawn(async move {
                let served = dealflow_shared::serve::serve(listener, app, stop).await;
                if let Err(error) = served {
                    tracing::error!(%error, "ops listener failed");
                }
            });
        }

        let outcome = self.consume(&run).await;
        self.readiness.set(false);
        run.cancel();
        while let Some(ended) = background.join_next().await {
            if let Err(error) = ended {
                tracing::error!(%error, "an enricher background task panicked");
            }
        }
        let follower_failed = follower_error.lock().expect("follower error slot").take();
        match (outcome, follower_failed) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(error)) => Err(error.into()),
            (Ok(()), None) => Ok(()),
        }
    }

    async fn consume(&self, run: &CancellationToken) -> Result<(), EnricherError> {
        // Both compacted topics are read to their end first: no order change is taken for
        // one of an unknown integration, and no sync starts from a stale cursor.
        tokio::select! {
            _ = async { tokio::join!(self.registry.wait_ready(), self.sync.wait_ready()) } => {}
            _ = run.cancelled() => return Ok(()),
        }
        let mut consumer = self
            .bus
            .subscribe(
                &self.settings.consumer_group,
                &[self.settings.topics.order_changed()],
            )
            .await?;
        // The fence of DESIGN §7.4: a revoked account stops being called inside the
        // rebalance, before any other member can be given it.
        let (sync, order_changed) = (self.sync.clone(), self.settings.topics.order_changed());
        consumer.on_revoke(Arc::new(move |revoked: &[(String, i32)]| {
            let partitions: Vec<i32> = revoked
                .iter()
                .filter(|(topic, _)| *topic == order_changed)
                .map(|(_, partition)| *partition)
                .collect();
            sync.revoke(&partitions);
        }));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let context = Arc::new(EnricherContext {
            bus: self.bus.clone(),
            output: Output::new(
                self.bus.clone(),
                self.settings.topics.clone(),
                self.enricher_metrics.clone(),
                self.registry.clone(),
            ),
            dead_letters: DeadLetters::new(
                self.bus.clone(),
                self.settings.topics.dead_letter(),
                self.settings.dead_letter_cap,
            ),
            keys: SecretKeys::derive(&self.settings.secret_key)
                .with_previous(self.settings.secret_key_previous.as_ref()),
            budgets: self.budgets.clone(),
            registry: self.registry.clone(),
            metrics: self.enricher_metrics.clone(),
            settings: self.settings.clone(),
            events: events_tx,
            sync: self.sync.clone(),
        });
        tracing::info!(group = %self.settings.consumer_group, "enricher consuming order changes");
        self.readiness.set(true);
        Intake::new(consumer, context, events_rx, run.clone())
            .run()
            .await
    }
}

/// `/healthz` (process up), `/readyz` (consuming) and `/metrics`.
fn ops_router(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(readiness): State<Readiness>| async move {
                if readiness.is_ready() {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not consuming yet").into_response()
                }
            })
            .with_state(readiness),
        )
        .route(
            "/metrics",
            get(|State(metrics): State<Metrics>| async move { metrics.render() })
                .with_state(metrics),
        )
}
