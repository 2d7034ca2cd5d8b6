//! `dealflow replay [--integration ID]`: rebuild the read model from the topics.
//!
//! Safe beside running projectors (DESIGN §2, deploy/README.md): the rebuilt view is written in
//! one transaction, and they continue from where it ends. On the embedded log the running
//! all-in-one holds the log, so it is stopped first (the command says so).

use anyhow::Context;
use clap::Args;
use dealflow_projector::{ProjectorSettings, ReplayProgress, replay};
use dealflow_shared::config::Config;
use dealflow_shared::events::IntegrationId;
use dealflow_shared::{telemetry, wiring};

use crate::progress::{Progress, per_second};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Rebuild only this integration's rows (default: everything).
    #[arg(long)]
    integration: Option<IntegrationId>,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    // On one machine the secrets live in the data directory; separate deployments set them.
    let secrets = wiring::load_or_generate_secrets(&config).context("reading the secrets")?;
    let settings = ProjectorSettings::from_config(&config, secrets.api_token, secrets.secret_key);
    let bus = crate::reprocess::open_bus_alone(&config, "dealflow-replay").await?;
    let scope = match args.integration {
        Some(id) => format!("integration {id}"),
        None => "every integration".to_string(),
    };
    println!("replaying {scope} from the topics into the read model…");
    let progress = Progress::new("records");
    let report = replay(&settings, bus, args.integration, |p: ReplayProgress| {
        progress.update(p.records_read, p.records_total);
    })
    .await?;
    progress.finish();
    let events: u64 = report.applied.events.values().sum();
    println!(
        "replay finished in {:.1}s: {} records read ({:.0}/s), {events} events applied, {} deal rows written, {} undecodable records skipped",
        report.elapsed.as_secs_f64(),
        report.records_read,
        per_second(report.records_read, report.elapsed),
        report.applied.deals_written,
        report.invalid,
    );
    Ok(())
}
