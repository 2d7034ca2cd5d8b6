//! `dealflow-fault`: dealflow's multi-process fault-injection suite (`tests/fault/run.sh`).
//!
//! Two deployments run side by side against one simulated RetailCRM (two accounts): the
//! components as separate processes on Kafka (nisshi, durable `sqlite://` storage; ingest, two
//! enricher replicas, the projector) and a scratch PostgreSQL database, and the all-in-one on
//! the embedded log and SQLite. Each deployment reaches the accounts through proxies of its
//! own that hold it to RetailCRM's real 10 requests per sliding second and report its busiest
//! second; each connects account 0 twice (the second time in a tenant), so two integrations
//! share that account's budget. A seeded change
//! script mutates orders and announces them by webhooks (duplicated, reordered, 30% never sent)
//! while faults hit at seeded moments: kill -9 of every process, a broker restart, PostgreSQL
//! connections cut, a RetailCRM 503 storm, 5-second answers and hangs, a revoked key, poison
//! records. Each fault's effect is checked when it is injected. At the end each read model
//! must equal the simulator's truth, the dead-letter topics must hold exactly the poison, no
//! deployment may have sent an account more than 10 requests in any second, and no API key,
//! webhook token or tenant token may appear in clear anywhere the run left traces. The summary
//! is printed; any mismatch exits non-zero.

mod api;
mod chaos;
mod crm_proxy;
mod deploy;
mod faults;
mod poison;
mod postgres;
mod process;
mod scenario;
mod secrets;
mod summary;
mod tenants;
mod topics;
mod verify;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

/// Command line of the suite.
#[derive(Debug, Parser)]
#[command(name = "dealflow-fault", about = "dealflow's fault-injection suite")]
pub struct Args {
    /// Seed of every random choice (data set, change script, webhook order, fault moments).
    /// Default: from the clock; printed so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// The `dealflow` binary under test.
    #[arg(long, env = "DEALFLOW_BIN")]
    dealflow_bin: PathBuf,
    /// Orders in total: generated ones plus those the change script creates.
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Webhooks planned per deployment (duplicates included; 30% are never sent).
    #[arg(long, default_value_t = 10_000)]
    webhooks: usize,
    /// How long the change script and the faults run.
    #[arg(long, default_value_t = 120)]
    chaos_secs: u64,
    /// How long the read models may take to converge after the faults stop.
    #[arg(long, default_value_t = 240)]
    converge_secs: u64,
    /// PostgreSQL server for the split deployment's scratch database (an admin connection).
    #[arg(
        long,
        env = "FAULT_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
    /// Run one deployment only (`split` or `allinone`); both by default. The suite's
    /// verdict needs both.
    #[arg(long, value_parser = ["split", "allinone"])]
    only: Option<String>,
    /// Directory for logs and data (default: a temporary one, kept when the suite fails).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    match chaos::run(args).await {
        Ok(outcome) => {
            println!(
                "fault suite finished in {:.0}s",
                started.elapsed().as_secs_f64()
            );
            if outcome.passed {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!(
                    "FAULT SUITE FAILED; logs and data kept in {}",
                    outcome.work_dir.display()
                );
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("FAULT SUITE ERROR: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A seed from the clock when none is given.
fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(42)
}

/// Waits until `probe` gives `Some`, or fails naming `what` after `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow::anyhow!(
                "timed out after {within:?} waiting for {what}"
            ))
            .context("waiting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
