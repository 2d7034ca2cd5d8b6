//! Building and running the projector: [`Projector`] (the consumer and the read API, for
//! embedding in an all-in-one process) and [`ProjectorService`] (the same with its own
//! listener, `/healthz`, `/readyz` and `/metrics`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use dealflow_shared::bus::{DeadLetters, Delivered, EventBus};
use dealflow_shared::events::IntegrationId;
use dealflow_shared::http::{BearerAuth, HttpMetrics};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::tenants::{Authenticator, TenantRegistry};
use dealflow_shared::visibility::ReadProgress;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Reads};
use crate::apply::batch::{self, BatchError, BatchOptions, BatchOutcome};
use crate::consumer::ConsumerLoop;
use crate::error::ProjectorError;
use crate::metrics::ProjectorMetrics;
use crate::replay::{self, ReplayProgress, ReplayReport};
use crate::settings::ProjectorSettings;
use crate::store::Store;
use crate::store::upkeep::Upkeep;

/// The projector without a listener: its consumer, read API and replay.
#[derive(Debug, Clone)]
pub struct Projector {
    consumer: ConsumerLoop,
    api: Reads,
    /// The bearer/tenant check of the read API; its tenant registry is followed by
    /// [`ProjectorService`] (an all-in-one process passes ingest's instead).
    auth: Authenticator,
}

impl Projector {
    /// Opens (and migrates) the read model store; consumes nothing yet.
    pub async fn open(
        settings: ProjectorSettings,
        bus: Arc<dyn EventBus>,
        metrics: &Metrics,
    ) -> Result<Self, ProjectorError> {
        let store = Store::open(&settings.database_url).await?;
        let progress = ReadProgress::new(store.applied_offsets().await?);
        let keys = Arc::new(
            SecretKeys::derive(&settings.secret_key)
                .with_previous(settings.secret_key_previous.as_ref()),
        );
        let api = Reads::new(store.clone(), keys.clone(), settings.public_url.clone())
            .with_reconcile_interval(settings.reconcile_interval);
        let auth = Authenticator::new(
            BearerAuth::new(settings.api_token.clone()),
            TenantRegistry::new(keys),
            metrics,
        )
        .recording_use(bus.clone(), settings.topics.tenants());
        let dead_letters = Arc::new(DeadLetters::new(
            bus.clone(),
            settings.topics.dead_letter(),
            settings.dead_letter_cap,
        ));
        let consumer = ConsumerLoop {
            settings,
            upkeep: Upkeep::new(store.clone()),
            store,
            bus,
            metrics: ProjectorMetrics::new(metrics),
            dead_letters,
            assigned: Arc::new(AtomicBool::new(false)),
            progress,
        };
        Ok(Self {
            consumer,
            api,
            auth,
        })
    }

    /// The read operations, typed (what the read API answers; the pages call them).
    pub fn reads(&self) -> &Reads {
        &self.api
    }

    /// The read API (every route behind the operator's or a tenant's token), checked by this
    /// projector's own [`Authenticator`].
    pub fn router(&self) -> Router {
        self.router_with(self.auth.clone())
    }

    /// The token check of the read API (the pages beside it sign users in with the same).
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// The read API checked by `auth` (an all-in-one process shares ingest's).
    pub fn router_with(&self, auth: Authenticator) -> Router {
        api::router(self.api.clone(), auth)
    }

    /// Follows the `tenants` topic into this projector's own registry until `shutdown`.
    pub async fn follow_tenants(
        &self,
        shutdown: CancellationToken,
    ) -> Result<(), dealflow_shared::bus::BusError> {
        let topics = &self.consumer.settings.topics;
        let group = format!(
            "{}projector-tenants-{}",
            topics.prefix(),
            uuid::Uuid::now_v7().simple()
        );
        self.auth
            .tenants()
            .clone()
            .follow(self.consumer.bus.clone(), topics.tenants(), group, shutdown)
            .await
    }

    /// What the read model has applied, advanced after each batch's commit: a writer in this
    /// process waits on it to answer only once the read API shows its write (all-in-one).
    pub fn progress(&self) -> &ReadProgress {
        &self.consumer.progress
    }

    /// The read model store.
    pub fn store(&self) -> &Store {
        &self.consumer.store
    }

    /// Ready to serve: the store answers and the consumer holds its partitions.
    pub async fn is_ready(&self) -> bool {
        self.consumer.assigned.load(Ordering::Relaxed) && self.store().ping().await
    }

    /// [`Projector::is_ready`], and its own tenant registry read to its end (a projector
    /// serving on its own).
    pub async fn is_ready_with_tenants(&self) -> bool {
        self.auth.tenants().is_ready() && self.is_ready().await
    }

    /// Refreshes the metrics read from the read model (the per-integration gauges); call
    /// before rendering `/metrics`. A failure is logged and the previous values stay.
    pub async fn refresh_metrics(&self) {
        if let Err(e) = self
            .consumer
            .metrics
            .refresh_integrations(self.store())
            .await
        {
            tracing::warn!(error = %e, "refreshing the per-integration metrics failed");
        }
    }

    /// Consumes the topics into the read model until `shutdown`.
    pub async fn run_consumer(&self, shutdown: CancellationToken) -> Result<(), ProjectorError> {
        self.consumer.run(shutdown).await
    }

    /// Applies one polled batch exactly as the consumer does (one transaction with its
    /// offsets, undecodable records dead-lettered), without touching the bus offsets. The
    /// building block of the consumer, public for tests that cut batches themselves.
    pub async fn apply_batch(&self, records: &[Delivered]) -> Result<BatchOutcome, BatchError> {
        let complete = self.consumer.settings.complete_topics();
        let options = BatchOptions {
            complete_topics: &complete,
            dead_letters: Some(&self.consumer.dead_letters),
        };
        let polled = batch::Polled::decode(records.to_vec());
        batch::apply_records(self.store(), &polled, options).await
    }

    /// Rebuilds the read model (everything, or one integration) from the topics; see
    /// [`replay`](crate::replay()).
    pub async fn replay(
        &self,
        integration: Option<IntegrationId>,
        progress: impl Fn(ReplayProgress),
    ) -> Result<ReplayReport, ProjectorError> {
        replay::run(
            self.store(),
            &self.consumer.settings,
            &self.consumer.bus,
            integration,
            &progress,
            Some(&self.consumer.metrics),
        )
        .await
    }
}

/// The projector with its own listener, ready to run.
#[derive(Debug)]
pub struct ProjectorService {
    listener: TcpListener,
    projector: Projector,
    metrics: Metrics,
    http_metrics: HttpMetrics,
    /// Routes served beside the read API: the pages and the OpenAPI document of the whole
    /// deployment (the `dealflow` binary adds them; this crate knows only its own routes).
    front: Option<Router>,
}

impl ProjectorService {
    /// Binds the listener and opens the store; nothing runs until `run_until_stopped`.
    pub async fn build(
        settings: ProjectorSettings,
        bus: Arc<dyn EventBus>,
        metrics: Metrics,
    ) -> Result<Self, ProjectorError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ProjectorError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let projector = Projector::open(settings, bus, &metrics).await?;
        let http_metrics = HttpMetrics::new(&metrics);
        Ok(Self {
            listener,
            projector,
            metrics,
            http_metrics,
            front: None,
        })
    }

    /// Serves `front` beside the read API; it must answer `/api/openapi.json`, which then
    /// replaces the read API's own document.
    pub fn with_front(mut self, front: Router) -> Self {
        self.front = Some(front);
        self
    }

    /// The bound address (port 0 in tests becomes a real port here).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The projector inside.
    pub fn projector(&self) -> &Projector {
        &self.projector
    }

    /// The read API with `/healthz`, `/readyz` and `/metrics`, requests counted by route.
    pub fn router(&self) -> Router {
        let app = self
            .projector
            .router()
            .merge(ops_routes(self.projector.clone(), self.metrics.clone()));
        let app = match &self.front {
            Some(front) => app.merge(front.clone()),
            None => app.route("/api/openapi.json", get(api::openapi_json)),
        };
        app.layer(middleware::from_fn_with_state(
            self.http_metrics.clone(),
            HttpMetrics::track,
        ))
    }

    /// Consumes and serves until `shutdown` (or until the consumer fails, which stops the
    /// server too and is returned).
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
    ) -> Result<(), ProjectorError> {
        let app = self.router();
        let stop = shutdown.child_token();
        let consumer = {
            let projector = self.projector.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let result = projector.run_consumer(stop.clone()).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "projector consumer stopped");
                }
                stop.cancel();
                result
            })
        };
        let tenants = {
            let projector = self.projector.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                if let Err(e) = projector.follow_tenants(stop.clone()).await {
                    // Without it no tenant token can be checked: stop rather than refuse
                    // every tenant in silence.
                    tracing::error!(error = %e, "following the tenants topic failed");
                    stop.cancel();
                }
            })
        };
        tracing::info!(addr = %self.local_addr(), "projector serving");
        let served = dealflow_shared::serve::serve(self.listener, app, stop.clone())
            .await
            .map_err(ProjectorError::Serve);
        stop.cancel();
        let consumed = match consumer.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "projector consumer panicked");
                Ok(())
            }
        };
        let _ = tenants.await;
        self.projector.store().close().await;
        consumed.and(served)
    }
}

/// `/healthz`, `/readyz` and `/metrics`.
fn ops_routes(projector: Projector, metrics: Metrics) -> Router {
    let ready = projector.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(projector): State<Projector>| async move {
                if projector.is_ready_with_tenants().await {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                }
            })
            .with_state(ready),
        )
        .route(
            "/metrics",
            get(
                |State((projector, metrics)): State<(Projector, Metrics)>| async move {
                    projector.refresh_metrics().await;
                    metrics.render()
                },
            )
            .with_state((projector, metrics)),
        )
}
