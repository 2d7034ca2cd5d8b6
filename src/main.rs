//! The `dealflow` command: parses the command line, initialises telemetry, loads the
//! configuration and runs what was asked. Everything else lives in the library crates.

mod check_config;
mod progress;
mod replay;
mod reprocess;
mod run;
mod shutdown;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc (its v2 line) rather than glibc's malloc: ~13 % less CPU end to end and ~+15 %
/// ingest throughput, for ~+20 MiB resident in the all-in-one and ~+30 MiB in each process of
/// the split layout (v3 was as fast and doubled the resident set); BENCHMARKS.md "mimalloc and
/// LTO". C libraries (SQLite, librdkafka) keep glibc's, so the image's `MALLOC_ARENA_MAX=2`
/// still applies to them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// dealflow carries RetailCRM orders into analytics as deals, funnels, contacts and managers.
#[derive(Debug, Parser)]
#[command(name = "dealflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration (environment and DEALFLOW_CONFIG file) and print it, secrets hidden.
    CheckConfig,
    /// Run dealflow (all-in-one by default, or one component with --target) until ctrl-c or SIGTERM.
    Run(run::RunArgs),
    /// Run the all-in-one with the RetailCRM simulator and generated trigger traffic.
    Demo(dealflow::demo::DemoArgs),
    /// Rebuild the read model (all, or one integration) from the topics.
    Replay(replay::ReplayArgs),
    /// Fetch again from RetailCRM every order changed since a time (moves the enricher back on order-changed; stop the enrichers first).
    Reprocess(reprocess::ReprocessArgs),
    /// Run the RetailCRM simulator: realistic accounts with the real API's shapes, limits and quirks.
    Sim(dealflow_simulator::cli::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dealflow: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::CheckConfig => check_config::run(),
            Command::Run(args) => run::run(args, shutdown::on_signal()).await,
            Command::Demo(args) => {
                let config = dealflow_shared::config::Config::from_env()?;
                dealflow_shared::telemetry::init(config.log_format);
                dealflow::demo::run(args, config, shutdown::on_signal()).await
            }
            Command::Replay(args) => replay::run(args).await,
            Command::Reprocess(args) => reprocess::run(args, shutdown::on_signal()).await,
            Command::Sim(args) => {
                dealflow_shared::telemetry::init(dealflow_shared::config::LogFormat::Pretty);
                dealflow_simulator::cli::run(args, shutdown::on_signal()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line for people: the cause chain joined, no backtrace noise.
            eprintln!("dealflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}
