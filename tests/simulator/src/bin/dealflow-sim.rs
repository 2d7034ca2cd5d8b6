//! `dealflow-sim`: the RetailCRM simulator as its own binary (same as `dealflow sim`).

use clap::Parser;
use dealflow_simulator::SimArgs;
use tokio_util::sync::CancellationToken;

/// Runs simulated RetailCRM accounts until Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "dealflow-sim", version, about)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.cancel();
    });
    dealflow_simulator::run(cli.args, shutdown).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
