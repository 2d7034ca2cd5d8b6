//! `dealflow replay [--integration ID]`: rebuild the read model from the topics.

use anyhow::Context;
use clap::Args;
use dealflow_projector::{ProjectorSettings, ReplayProgress, replay};
use dealflow_shared::config::Config;
use dealflow_shared::events::IntegrationId;
use dealflow_shared::{telemetry, wiring};

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
    let bus = wiring::open_bus(&config, "dealflow-replay")
        .await
        .context("opening the event bus")?;
    let scope = match args.integration {
        Some(id) => format!("integration {id}"),
        None => "every integration".to_string(),
    };
    println!("replaying {scope} from the topics into the read model…");
    // Progress every two seconds, and at the end.
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let report = replay(&settings, bus, args.integration, |p: ReplayProgress| {
        let mut last = last.lock().expect("progress lock");
        if p.finished || last.elapsed() >= std::time::Duration::from_secs(2) {
            *last = std::time::Instant::now();
            let percent = (p.records_read * 100)
                .checked_div(p.records_total)
                .unwrap_or(100);
            println!(
                "  {} / {} records ({percent}%), {} events applied",
                p.records_read, p.records_total, p.events_applied
            );
        }
    })
    .await?;
    println!("replay finished: {report:?}");
    Ok(())
}
