//! Building and running ingest: `IngestService::build(...)` then `run_until_stopped(shutdown)`.
//!
//! The listener is bound at build time (a test can read the port), but requests are served
//! only once the `integrations` topic has been read to its end, so no webhook is refused as
//! "unknown" by a process that simply has not loaded its state yet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, patch, post};
use dealflow_shared::bus::{BusError, EventBus};
use dealflow_shared::config::{Config, HostPattern};
use dealflow_shared::http::{BearerAuth, HttpMetrics};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{Budgets, ClientOptions};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::tenants::{Authenticator, TenantRegistry};
use dealflow_shared::topics::Topics;
use dealflow_shared::visibility::{ReadSide, Visibility};
use dealflow_shared::wiring;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::crm_url::CrmUrlPolicy;
use crate::metrics::IngestMetrics;
use crate::state::{AppState, SharedState};
use crate::{api, tenants_api, webhook};
use dealflow_shared::registry::Registry;
use dealflow_shared::stages::StatusCatalog;

/// Everything ingest needs to know.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub topics: Topics,
    pub crm_allow_hosts: Vec<HostPattern>,
    pub secret_key: SecretString,
    /// The secret being rotated out (`DEALFLOW_SECRET_KEY_PREVIOUS`): its sealed keys are
    /// sealed again at start, its webhook URLs still accepted.
    pub secret_key_previous: Option<SecretString>,
    pub api_token: SecretString,
    /// How long a request waits for the bus before answering 503.
    pub publish_timeout: Duration,
    pub client_options: ClientOptions,
    /// Where the read side runs that must show a settings write before it is answered
    /// (read your writes, DESIGN §4): the projector in this process, the projector's consumer
    /// group on the bus, or none.
    pub read_side: ReadSide,
    /// How long a settings write waits for the read side before answering
    /// `503 read_model_behind` ([`DEFAULT_READ_SIDE_TIMEOUT`]).
    pub read_side_timeout: Duration,
}

impl IngestSettings {
    /// From the process configuration and the secrets it runs with; `read_side` says what a
    /// settings write waits for (the projector of this process, or its consumer group).
    pub fn from_config(
        config: &Config,
        api_token: SecretString,
        secret_key: SecretString,
        read_side: ReadSide,
    ) -> Self {
        Self {
            listen: config.listen,
            public_url: config.public_url.clone(),
            topics: Topics::new(config.topic_prefix.clone()),
            crm_allow_hosts: config.crm_allow_hosts.clone(),
            secret_key,
            secret_key_previous: config.secret_key_previous.clone(),
            api_token,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            client_options: wiring::client_options(config),
            read_side,
            read_side_timeout: DEFAULT_READ_SIDE_TIMEOUT,
        }
    }
}

/// How long a request waits for the bus to acknowledge by default before answering 503.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a settings write waits for the read side by default: far above what it takes
/// (milliseconds in one process, well under a second across processes), short enough that
/// a client is told within seconds when the projector is down or far behind.
pub const DEFAULT_READ_SIDE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why ingest stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the integrations topic cannot be followed: {0}")]
    Registry(#[from] BusError),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// ingest without a listener: its routes and its background work, for embedding in a process
/// that serves several components from one listener (all-in-one).
#[derive(Debug, Clone)]
pub struct Ingest {
    state: AppState,
    auth: Authenticator,
}

impl Ingest {
    pub fn new(
        settings: IngestSettings,
        bus: Arc<dyn EventBus>,
        budgets: Budgets,
        metrics: &Metrics,
    ) -> Self {
        let ingest_metrics = IngestMetrics::new(metrics);
        ingest_metrics.expect_topics(&[
            settings.topics.integrations(),
            settings.topics.order_changed(),
        ]);
        let keys = Arc::new(
            SecretKeys::derive(&settings.secret_key)
                .with_previous(settings.secret_key_previous.as_ref()),
        );
        let tenants = TenantRegistry::new(keys.clone());
        let auth = Authenticator::new(
            BearerAuth::new(settings.api_token),
            tenants.clone(),
            metrics,
        )
        .recording_use(bus.clone(), settings.topics.tenants());
        let state = AppState::new(SharedState {
            registry: Registry::new(),
            tenants,
            statuses: StatusCatalog::default(),
            loads: Default::default(),
            letters: Default::default(),
            keys,
            bus: bus.clone(),
            topics: settings.topics,
            public_url: settings.public_url,
            crm_policy: CrmUrlPolicy::new(settings.crm_allow_hosts),
            budgets,
            client_options: settings.client_options,
            metrics: ingest_metrics,
            publish_timeout: settings.publish_timeout,
            visibility: Visibility::new(settings.read_side, bus, settings.read_side_timeout),
        });
        Self { state, auth }
    }

    /// Who may call the API, and as which tenant (the pages and the projector of an
    /// all-in-one process share it).
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Whether the integrations and tenants topics have both been read to their end.
    pub fn is_ready(&self) -> bool {
        self.state.registry.is_ready() && self.state.tenants.is_ready()
    }

    /// Waits until [`Ingest::is_ready`].
    pub async fn wait_ready(&self) {
        self.state.registry.wait_ready().await;
        self.state.tenants.wait_ready().await;
    }

    /// The registry this ingest serves from.
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// The webhook and the integration settings API (bearer token). With `serve_reads`, also
    /// `GET /api/v1/integrations[/{id}]` from the settings alone; an all-in-one process leaves
    /// those to the projector, which adds health and counters.
    pub fn router(&self, serve_reads: bool) -> Router {
        let auth = self.auth.clone();
        let (collection, one) = if serve_reads {
            (
                post(api::create).get(api::list),
                get(api::get).patch(api::update).delete(api::remove),
            )
        } else {
            (post(api::create), patch(api::update).delete(api::remove))
        };
        let api = Router::new()
            .route("/api/v1/integrations", collection)
            .route("/api/v1/integrations/{id}", one)
            .route(
                "/api/v1/integrations/{id}/resync",
                post(crate::resync::resync),
            )
            .route(
                "/api/v1/integrations/{id}/deals/{order_id}/refetch",
                post(crate::order_actions::refetch),
            )
            .route(
                "/api/v1/integrations/{id}/dead-letters/{letter_id}/retry",
                post(crate::order_actions::retry),
            )
            .route(
                "/api/v1/integrations/{id}/stage-mapping",
                patch(crate::stage_mapping::update),
            )
            .route(
                "/api/v1/tenants",
                post(tenants_api::create).get(tenants_api::list),
            )
            .route("/api/v1/tenants/{id}", delete(tenants_api::remove))
            .route(
                "/api/v1/tenants/{id}/tokens",
                post(tenants_api::issue_token).get(tenants_api::list_tokens),
            )
            .route(
                "/api/v1/tenants/{id}/tokens/{token_id}",
                delete(tenants_api::revoke_token),
            )
            .route_layer(middleware::from_fn_with_state(auth, Authenticator::require));
        Router::new()
            .route(
                "/hooks/retailcrm/{token}",
                any(webhook::handle).layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES)),
            )
            .merge(api)
            .with_state(self.state.clone())
    }

    /// Follows the `integrations` and `tenants` topics until `shutdown` (ready once both have
    /// been read to the end), the `funnels` topic for the statuses a stage mapping may
    /// name, `sync-state` for the running loads and `dead-letter` for the letters' orders;
    /// once ready, seals again any API key only the previous secret
    /// opens, and records the tenant `default` if it is not there yet.
    pub async fn follow_integrations(&self, shutdown: CancellationToken) -> Result<(), BusError> {
        let group = |what: &str| {
            format!(
                "{}ingest-{what}-{}",
                self.state.topics.prefix(),
                uuid::Uuid::now_v7().simple()
            )
        };
        let integrations = self.state.registry.clone().follow(
            self.state.bus.clone(),
            self.state.topics.integrations(),
            group("registry"),
            shutdown.clone(),
        );
        let tenants = self.state.tenants.clone().follow(
            self.state.bus.clone(),
            self.state.topics.tenants(),
            group("tenants"),
            shutdown.clone(),
        );
        let statuses = self.state.statuses.clone().follow(
            self.state.bus.clone(),
            self.state.topics.funnels(),
            group("statuses"),
            shutdown.clone(),
        );
        let loads = self.state.loads.clone().follow(
            self.state.bus.clone(),
            self.state.topics.sync_state(),
            group("loads"),
            shutdown.clone(),
        );
        let letters = self.state.letters.clone().follow(
            self.state.bus.clone(),
            self.state.topics.dead_letter(),
            group("letters"),
            shutdown,
        );
        let follow = async {
            let (integrations, tenants, statuses, loads, letters) =
                tokio::join!(integrations, tenants, statuses, loads, letters);
            integrations
                .and(tenants)
                .and(statuses)
                .and(loads)
                .and(letters)
        };
        let reseal = async {
            self.wait_ready().await;
            let resealed = crate::rotation::reseal_rotated_keys(&self.state).await;
            self.state.metrics.reseal_pass(resealed);
            if let Err(e) = tenants_api::ensure_default_tenant(&self.state).await {
                // The next start tries again; until then `default` is simply not listed.
                tracing::warn!(error = %e, "could not record the default tenant");
            }
        };
        // The re-seal ends early; following goes on until shutdown (or fails first).
        let mut follow = std::pin::pin!(follow);
        tokio::select! {
            followed = &mut follow => return followed,
            () = reseal => {}
        }
        follow.await
    }
}

/// A built ingest with its own listener, ready to run.
#[derive(Debug)]
pub struct IngestService {
    listener: TcpListener,
    ingest: Ingest,
    metrics: Metrics,
}

impl IngestService {
    /// Binds the listener and prepares the state; no request is served until `run_until_stopped`.
    pub async fn build(
        settings: IngestSettings,
        bus: Arc<dyn EventBus>,
        budgets: Budgets,
        metrics: Metrics,
    ) -> Result<Self, IngestError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| IngestError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let ingest = Ingest::new(settings, bus, budgets, &metrics);
        Ok(Self {
            listener,
            ingest,
            metrics,
        })
    }

    /// The bound address (port 0 in tests becomes a real port here).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The registry this service serves from.
    pub fn registry(&self) -> &Registry {
        self.ingest.registry()
    }

    /// Loads the integrations and tenants, then serves until `shutdown`; in-flight requests
    /// finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let registry = self.ingest.registry().clone();
        let tenants = self.ingest.state.tenants.clone();
        let follower = {
            let ingest = self.ingest.clone();
            let stop = shutdown.child_token();
            tokio::spawn(async move { ingest.follow_integrations(stop).await })
        };
        let http_metrics = HttpMetrics::new(&self.metrics);
        let app = self
            .ingest
            .router(true)
            .merge(ops_routes(
                registry.clone(),
                tenants.clone(),
                self.metrics.clone(),
            ))
            .layer(middleware::from_fn_with_state(
                http_metrics,
                HttpMetrics::track,
            ));

        tokio::select! {
            _ = self.ingest.wait_ready() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        tracing::info!(addr = %self.local_addr(), "ingest serving");
        let served = dealflow_shared::serve::serve(self.listener, app, shutdown.clone())
            .await
            .map_err(IngestError::Serve);
        shutdown.cancel();
        match follower.await {
            Ok(Err(e)) => return Err(IngestError::Registry(e)),
            Err(join) => tracing::error!(error = %join, "integrations follower panicked"),
            Ok(Ok(())) => {}
        }
        served
    }
}

/// `/healthz`, `/readyz`, `/metrics` and `/api/openapi.json` (no token: it holds no data).
fn ops_routes(registry: Registry, tenants: TenantRegistry, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(
                |State((registry, tenants)): State<(Registry, TenantRegistry)>| async move {
                    if registry.is_ready() && tenants.is_ready() {
                        (StatusCode::OK, "ready").into_response()
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "loading integrations and tenants",
                        )
                            .into_response()
                    }
                },
            )
            .with_state((registry, tenants)),
        )
        .route(
            "/metrics",
            get(|State(metrics): State<Metrics>| async move { metrics.render() })
                .with_state(metrics),
        )
        .route(
            "/api/openapi.json",
            get(|| async { axum::Json(crate::openapi(true)) }),
        )
}
