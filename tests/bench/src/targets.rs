//! What the load generator hits: a bare axum handler, and the real ingest on a real bus.

use crate::seed::{Seed, publish_integration};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use dealflow_ingest::{DEFAULT_READ_SIDE_TIMEOUT, IngestService, IngestSettings};
use dealflow_shared::bus::{EmbeddedLog, EventBus, KafkaBus, KafkaBusConfig};
use dealflow_shared::events::IntegrationId;
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets, ClientOptions};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::topics::Topics;
use dealflow_shared::visibility::ReadSide;
use dealflow_testkit::{Broker, Storage, unique_prefix, wait_for};
use secrecy::SecretString;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret-key-that-is-long-enough-0123456789";
const READY: Duration = Duration::from_secs(60);

/// A server under load; dropping it stops the server (and the broker, if any).
#[derive(Debug)]
pub struct Target {
    /// The webhook URL to POST to.
    pub url: String,
    /// The embedded log ingest writes to, for its group-commit counters.
    pub embedded: Option<EmbeddedLog>,
    shutdown: CancellationToken,
    _broker: Option<Broker>,
    _dir: Option<TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A bare axum handler on the same route shape, answering what ingest answers, doing nothing.
pub async fn bare() -> anyhow::Result<Target> {
    async fn accepted() -> (StatusCode, axum::Json<serde_json::Value>) {
        (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({"accepted": true})),
        )
    }
    let app = Router::new().route("/hooks/retailcrm/{token}", post(accepted).get(accepted));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    Ok(Target {
        url: format!("http://{addr}/hooks/retailcrm/bare"),
        embedded: None,
        shutdown,
        _broker: None,
        _dir: None,
    })
}

/// Ingest on an embedded log in a fresh directory.
pub async fn ingest_embedded() -> anyhow::Result<Target> {
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(dir.path().join("events.db")).await?;
    let mut target = ingest(Arc::new(log.clone()), None, Some(dir)).await?;
    target.embedded = Some(log);
    Ok(target)
}

/// Ingest on Kafka: nisshi (from PATH) with in-memory storage, the product's producer
/// settings over the defaults' `properties` (as `DEALFLOW_KAFKA_PROPERTIES` would add them).
pub async fn ingest_kafka(properties: &BTreeMap<String, String>) -> anyhow::Result<Target> {
    let broker = Broker::start_with(Storage::Memory).await;
    let config = KafkaBusConfig::new(broker.bootstrap()).with_user_properties(properties);
    let bus: Arc<dyn EventBus> = Arc::new(KafkaBus::new(config)?);
    ingest(bus, Some(broker), None).await
}

async fn ingest(
    bus: Arc<dyn EventBus>,
    broker: Option<Broker>,
    dir: Option<TempDir>,
) -> anyhow::Result<Target> {
    let topics = Topics::new(unique_prefix());
    bus.ensure_topics(&topics.specs(2)).await?;
    let id = IntegrationId::new();
    let seed = Seed {
        secret_key: SECRET,
        crm_url: "https://demo.retailcrm.ru/".into(),
        api_key: "bench-crm-key",
        history_since_id: None,
    };
    publish_integration(bus.as_ref(), &topics, id, seed)
        .await
        .context("seeding the integration")?;
    let settings = IngestSettings {
        listen: "127.0.0.1:0".parse()?,
        public_url: "https://dealflow.example.com".parse()?,
        topics,
        crm_allow_hosts: Vec::new(),
        secret_key: SecretString::from(SECRET),
        secret_key_previous: None,
        api_token: SecretString::from("bench-api-token-0123456789abcdef"),
        publish_timeout: Duration::from_secs(5),
        client_options: ClientOptions::default(),
        // Webhooks only: no settings write waits for a read side.
        read_side: ReadSide::None,
        read_side_timeout: DEFAULT_READ_SIDE_TIMEOUT,
    };
    let budgets = Budgets::new(BudgetSettings::default());
    let service = IngestService::build(settings, bus, budgets, Metrics::new()).await?;
    let addr = service.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(service.run_until_stopped(shutdown.clone()));
    let token = SecretKeys::derive(&SecretString::from(SECRET)).webhook_token(id, 0);
    let target = Target {
        url: format!("http://{addr}/hooks/retailcrm/{token}"),
        embedded: None,
        shutdown,
        _broker: broker,
        _dir: dir,
    };
    accepts_one(addr, &target.url).await?;
    Ok(target)
}

/// Waits until the target answers 202 to one webhook (the integration is loaded).
async fn accepts_one(addr: SocketAddr, url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let status = wait_for(READY, "ingest to accept a webhook", || async {
        let response = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("orderId=1")
            .send()
            .await
            .ok()?;
        (response.status() != StatusCode::NOT_FOUND && response.status() != 503)
            .then(|| response.status())
    })
    .await;
    ensure!(
        status == StatusCode::ACCEPTED,
        "ingest on {addr} answered {status}"
    );
    Ok(())
}
