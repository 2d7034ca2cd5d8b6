//! All-in-one: the three components in one process, one listener for webhooks, the API, the
//! pages and `/metrics` (DESIGN §2).
//!
//! On the embedded log and SQLite by default (everything under `DEALFLOW_DATA_DIR`), on Kafka
//! when `DEALFLOW_KAFKA_BROKERS` is set. Secrets not configured are generated once into the data
//! directory. Shutdown cancels every component; each finishes the message in hand and commits
//! only what it fully applied, so a stop at any moment loses and duplicates nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use dealflow_enricher::{EnricherService, EnricherSettings, Readiness};
use dealflow_ingest::{Ingest, IngestSettings};
use dealflow_projector::{Projector, ProjectorSettings};
use dealflow_shared::bus::EventBus;
use dealflow_shared::config::{Config, vars};
use dealflow_shared::http::HttpMetrics;
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets};
use dealflow_shared::wiring::{self, Secrets};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::pages::{self, InProcessApi, PagesState, Writes};

/// How long components get to finish in-flight work after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A built all-in-one process, ready to run.
#[derive(Debug)]
pub struct AllInOne {
    listener: TcpListener,
    metrics: Metrics,
    bus: Arc<dyn EventBus>,
    ingest: Ingest,
    enricher: EnricherService,
    enricher_ready: Readiness,
    projector: Projector,
    api_token: SecretString,
    /// The session cookie is `Secure` when users reach dealflow over https.
    secure_cookie: bool,
    /// True when the API token was generated now (printed once by the caller).
    pub api_token_generated: bool,
}

impl AllInOne {
    /// Opens the bus and the store, builds every component and binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let Secrets {
            api_token,
            secret_key,
            api_token_generated,
        } = wiring::load_or_generate_secrets(config)
            .with_context(|| format!("preparing the secrets in {}", config.data_dir.display()))?;
        Self::build_with(config, api_token, secret_key, api_token_generated).await
    }

    async fn build_with(
        config: &Config,
        api_token: SecretString,
        secret_key: SecretString,
        api_token_generated: bool,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {} (DEALFLOW_LISTEN)", config.listen))?;
        // Listening on port 0 (tests): the public URL derived from the listener gets the real port.
        let mut config = config.clone();
        if config.public_url.port() == Some(0) {
            let port = listener.local_addr()?.port();
            let _ = config.public_url.set_port(Some(port));
        }
        let config = &config;
        let bus = wiring::open_bus(config, "dealflow")
            .await
            .context("opening the event bus")?;
        let metrics = Metrics::new();
        // One budget per account for the whole process: the enricher and ingest's
        // connect-time key checks share it (DESIGN §7.4).
        let budgets = Budgets::new(
            BudgetSettings::with_rps(config.crm_rps)
                .with_context(|| format!("{}: {}", vars::CRM_RPS, config.crm_rps))?,
        );

        // The projector first: ingest answers a settings write once this projector applied it.
        let projector_settings =
            ProjectorSettings::from_config(config, api_token.clone(), secret_key.clone());
        let projector = Projector::open(projector_settings, bus.clone(), &metrics)
            .await
            .context("opening the read model")?;
        let ingest = Ingest::new(
            IngestSettings::from_config(
                config,
                api_token.clone(),
                secret_key.clone(),
                projector.progress().read_side(),
            ),
            bus.clone(),
            budgets.clone(),
            &metrics,
        );
        let mut enricher_settings = EnricherSettings::from_config(config, secret_key.clone());
        // This process's one listener serves the enricher's health and metrics.
        enricher_settings.listen = None;
        let enricher =
            EnricherService::build(enricher_settings, bus.clone(), budgets, metrics.clone())
                .await
                .context("building the enricher")?;
        let enricher_ready = enricher.readiness();
        Ok(Self {
            listener,
            metrics,
            bus,
            ingest,
            enricher,
            enricher_ready,
            projector,
            api_token,
            secure_cookie: config.public_url.scheme() == "https",
            api_token_generated,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The API token (to print once when generated, or for tests).
    pub fn api_token(&self) -> &SecretString {
        &self.api_token
    }

    /// The bus this process runs on.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// Runs every component and serves until `shutdown`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        // One token check for the whole process: ingest's, whose tenant registry it follows.
        let auth = self.ingest.authenticator().clone();
        let api = self
            .ingest
            .router(false)
            .merge(self.projector.router_with(auth.clone()));
        let ready = ReadyState {
            ingest: self.ingest.clone(),
            enricher: self.enricher_ready.clone(),
            projector: self.projector.clone(),
        };
        let pages = pages::router(
            PagesState::new(
                self.projector.reads().clone(),
                api.clone(),
                Writes::InProcess(InProcessApi::new(api.clone())),
                auth,
            )
            .with_secure_cookie(self.secure_cookie),
        );
        let app = api
            .merge(pages)
            .merge(ops_router(ready, self.metrics.clone()))
            .layer(middleware::from_fn_with_state(
                HttpMetrics::new(&self.metrics),
                HttpMetrics::track,
            ));

        // Each component gets its own child token: if one fails, all stop.
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        {
            let ingest = self.ingest.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                (
                    "ingest",
                    ingest
                        .follow_integrations(stop)
                        .await
                        .map_err(anyhow::Error::from),
                )
            });
        }
        {
            let stop = stop.clone();
            let enricher = self.enricher;
            tasks.spawn(async move {
                (
                    "enricher",
                    enricher
                        .run_until_stopped(stop)
                        .await
                        .map_err(anyhow::Error::from),
                )
            });
        }
        {
            let projector = self.projector.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                (
                    "projector",
                    projector
                        .run_consumer(stop)
                        .await
                        .map_err(anyhow::Error::from),
                )
            });
        }
        {
            let stop = stop.clone();
            let listener = self.listener;
            let ingest = self.ingest.clone();
            tasks.spawn(async move {
                // Like the separate ingest: no webhook is answered before the registry has read
                // the integrations, or a restart would answer valid webhook addresses with
                // 404 `unknown_integration` for a moment (found by the fault suite); nor a
                // tenant token before the tenants are read.
                tokio::select! {
                    _ = ingest.wait_ready() => {}
                    _ = stop.cancelled() => return ("http", Ok(())),
                }
                let served = dealflow_shared::serve::serve(listener, app, stop)
                    .await
                    .context("serving HTTP");
                ("http", served)
            });
        }
        tracing::info!(%addr, "dealflow running (ingest, enricher, projector)");

        let mut failure = None;
        // The first component to end (a failure, or all on shutdown) stops the others.
        if let Some(joined) = tasks.join_next().await {
            failure = finished(joined);
            stop.cancel();
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(joined) = tasks.join_next().await {
                if let Some(e) = finished(joined) {
                    failure.get_or_insert(e);
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::error!(
                "components did not stop within {SHUTDOWN_GRACE:?}; uncommitted work will be redelivered"
            );
        }
        match failure {
            Some(e) if !shutdown.is_cancelled() => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "a component failed while stopping");
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn finished(
    joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> Option<anyhow::Error> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((name, Err(e))) => {
            tracing::error!(component = name, error = %format!("{e:#}"), "component failed");
            Some(e.context(format!("{name} failed")))
        }
        Err(join) => Some(anyhow::anyhow!("a component panicked: {join}")),
    }
}

#[derive(Clone, Debug)]
struct ReadyState {
    ingest: Ingest,
    enricher: Readiness,
    projector: Projector,
}

/// `/healthz`, `/readyz` (bus and store reachable, consumers assigned), `/metrics` (the
/// per-integration gauges refreshed from the read model first) and `/api/openapi.json`.
fn ops_router(ready: ReadyState, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(ready): State<ReadyState>| async move {
                let mut waiting = Vec::new();
                if !ready.ingest.is_ready() {
                    waiting.push("ingest: loading integrations and tenants");
                }
                if !ready.enricher.is_ready() {
                    waiting.push("enricher: joining its consumer group");
                }
                if !ready.projector.is_ready().await {
                    waiting.push("projector: store or consumer not ready");
                }
                if waiting.is_empty() {
                    (StatusCode::OK, "ready".to_string()).into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, waiting.join("\n")).into_response()
                }
            })
            .with_state(ready.clone()),
        )
        .route(
            "/metrics",
            get(
                |State((projector, metrics)): State<(Projector, Metrics)>| async move {
                    projector.refresh_metrics().await;
                    metrics.render()
                },
            )
            .with_state((ready.projector, metrics)),
        )
        .route("/api/openapi.json", get(|| async { Json(openapi()) }))
}

/// The OpenAPI document of everything this process serves: ingest's webhook and settings API
/// merged with the projector's read API (which serves `GET /api/v1/integrations[/{id}]`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = dealflow_ingest::openapi(false);
    doc.merge(dealflow_projector::openapi());
    doc
}
