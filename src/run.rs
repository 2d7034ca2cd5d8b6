//! `dealflow run --target …`: builds the asked component from the configuration and runs it
//! until ctrl-c or SIGTERM.

use anyhow::Context;
use axum::Json;
use axum::routing::get;
use clap::{Args, ValueEnum};
use dealflow::allinone::AllInOne;
use dealflow::pages::{self, IngestClient, PagesState, Writes};
use dealflow_enricher::{EnricherService, EnricherSettings};
use dealflow_ingest::{IngestService, IngestSettings};
use dealflow_projector::{ProjectorService, ProjectorSettings};
use dealflow_shared::config::{Config, ConfigError, vars};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets};
use dealflow_shared::topics::Topics;
use dealflow_shared::visibility::ReadSide;
use dealflow_shared::{telemetry, wiring};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

/// Which component to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Everything in one process behind one listener: webhooks, API, pages, metrics.
    All,
    /// Webhooks and the integration settings API (needs Kafka).
    Ingest,
    /// RetailCRM fetches: order changes become deals, contacts and funnel stages (needs Kafka).
    Enricher,
    /// The read model, its API and the pages (needs Kafka and DEALFLOW_INGEST_URL; PostgreSQL
    /// recommended).
    Projector,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component to run in this process.
    #[arg(long, value_enum, default_value = "all")]
    target: Target,
}

pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    match args.target {
        Target::All => run_all(config, shutdown).await,
        Target::Ingest => run_ingest(config, shutdown).await,
        Target::Enricher => run_enricher(config, shutdown).await,
        Target::Projector => run_projector(config, shutdown).await,
    }
}

/// A component running as its own process talks to the others through Kafka.
fn require_kafka(config: &Config, target: &str) -> Result<(), ConfigError> {
    if config.kafka.is_none() {
        // The embedded log belongs to one process; a lone component on it would talk to nobody.
        return Err(ConfigError {
            variable: vars::KAFKA_BROKERS.into(),
            problem: format!(
                "is required for --target {target} (a separate component talks to the others through Kafka)"
            ),
        });
    }
    Ok(())
}

/// Separate processes must share secrets, so they cannot be generated per process.
fn required(
    value: Option<secrecy::SecretString>,
    variable: &str,
) -> Result<secrecy::SecretString, ConfigError> {
    value.ok_or_else(|| ConfigError {
        variable: variable.into(),
        problem: "is required when components run as separate processes (they must share it)"
            .into(),
    })
}

async fn run_all(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = AllInOne::build(&config).await?;
    let url = format!("http://{}/", app.local_addr());
    if app.api_token_generated {
        // Printed once, on the start that generated it; later starts read it from the file.
        println!(
            "dealflow API token (also for signing in to the pages): {}",
            app.api_token().expose_secret()
        );
        println!(
            "  kept in {}",
            config.data_dir.join(wiring::API_TOKEN_FILE).display()
        );
    }
    println!(
        "dealflow is running at {url} (data in {})",
        config.data_dir.display()
    );
    app.run_until_stopped(shutdown).await
}

async fn run_projector(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    require_kafka(&config, "projector")?;
    let settings = ProjectorSettings::from_config(
        &config,
        required(config.api_token.clone(), vars::API_TOKEN)?,
        required(config.secret_key.clone(), vars::SECRET_KEY)?,
    );
    // The pages live here, beside the reads they show; their writes go to ingest (DESIGN §2).
    let ingest_url = config.ingest_url.clone().ok_or_else(|| ConfigError {
        variable: vars::INGEST_URL.into(),
        problem: "is required for --target projector: its pages send integration changes to \
                  ingest's API (for example http://ingest:8080)"
            .into(),
    })?;
    let bus = wiring::open_bus(&config, "dealflow-projector")
        .await
        .context("opening the event bus")?;
    let service = ProjectorService::build(settings, bus, Metrics::new()).await?;
    let projector = service.projector();
    let pages = pages::router(
        PagesState::new(
            projector.reads().clone(),
            projector.router(),
            Writes::Ingest(IngestClient::new(ingest_url)),
            projector.authenticator().clone(),
        )
        .with_secure_cookie(config.public_url.scheme() == "https"),
    );
    // Behind the gateway this is the one OpenAPI document users see: every route of the
    // deployment, ingest's included (the same document as the all-in-one's).
    let front = pages.route(
        "/api/openapi.json",
        get(|| async { Json(dealflow::allinone::openapi()) }),
    );
    service
        .with_front(front)
        .run_until_stopped(shutdown)
        .await?;
    Ok(())
}

async fn run_enricher(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    require_kafka(&config, "enricher")?;
    let settings = EnricherSettings::from_config(
        &config,
        required(config.secret_key.clone(), vars::SECRET_KEY)?,
    );
    let bus = wiring::open_bus(&config, "dealflow-enricher")
        .await
        .context("opening the event bus")?;
    // Ingest runs elsewhere and keeps one request per second of each account for its
    // connect-time key checks (DESIGN §7.4): the enricher stays within the other nine.
    let budgets = Budgets::new(
        BudgetSettings::enricher_beside_ingest(config.crm_rps)
            .with_context(|| format!("{}: {}", vars::CRM_RPS, config.crm_rps))?,
    );
    let service = EnricherService::build(settings, bus, budgets, Metrics::new()).await?;
    service.run_until_stopped(shutdown).await?;
    Ok(())
}

async fn run_ingest(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    require_kafka(&config, "ingest")?;
    let topics = Topics::new(config.topic_prefix.clone());
    let settings = IngestSettings::from_config(
        &config,
        required(config.api_token.clone(), vars::API_TOKEN)?,
        required(config.secret_key.clone(), vars::SECRET_KEY)?,
        // A settings write is answered once the projector processes show it: they commit their
        // group's offsets on the bus right after each database commit (DESIGN §4).
        ReadSide::ConsumerGroup(topics.projector_group()),
    );
    let bus = wiring::open_bus(&config, "dealflow-ingest")
        .await
        .context("opening the event bus")?;
    // Connect-time key checks only, in the one request per second of each account the
    // enricher leaves (DESIGN §7.4).
    let budgets = Budgets::new(BudgetSettings::connect_checks());
    let service = IngestService::build(settings, bus, budgets, Metrics::new()).await?;
    tracing::info!(addr = %service.local_addr(), "ingest listening");
    service.run_until_stopped(shutdown).await?;
    Ok(())
}
