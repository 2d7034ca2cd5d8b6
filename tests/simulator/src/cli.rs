//! `dealflow sim` / `dealflow-sim`: start the simulator from the command line and print each
//! account's URL and API key.

use std::net::IpAddr;

use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use crate::config::{AccountConfig, SimConfig};
use crate::server::Simulator;

/// Command-line options of the simulator.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Number of RetailCRM accounts (each on its own port).
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Generated orders per account.
    #[arg(long, default_value_t = 200)]
    pub orders: usize,
    /// Seed of the generated data (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_host: IpAddr,
    /// Port of the first account (the others follow); 0 = ephemeral ports.
    #[arg(long, default_value_t = 0)]
    pub base_port: u16,
    /// Account timezone (IANA name); every datetime is naive in it.
    #[arg(long, default_value = "Europe/Moscow")]
    pub timezone: Tz,
    /// Account currency.
    #[arg(long, default_value = "RUB")]
    pub currency: String,
    /// Requests per second before the API answers 503 (0 = no limit).
    #[arg(long, default_value_t = 10)]
    pub rate_limit: u32,
}

impl SimArgs {
    /// The simulator configuration these options describe.
    pub fn config(&self) -> SimConfig {
        let account = AccountConfig {
            timezone: self.timezone,
            currency: self.currency.clone(),
            rate_limit: self.rate_limit,
            ..AccountConfig::with_orders(self.orders)
        };
        SimConfig {
            listen_host: self.listen_host,
            base_port: self.base_port,
            seed: self.seed,
            accounts: vec![account; self.accounts],
        }
    }
}

/// Starts the simulator, prints every account, and serves until `shutdown` is cancelled.
pub async fn run(args: SimArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sim = Simulator::start(args.config()).await?;
    println!(
        "RetailCRM simulator: {} account(s), {} orders each, seed {}",
        args.accounts, args.orders, args.seed
    );
    for account in sim.accounts() {
        let sites: Vec<String> =
            account.inspect(|s| s.sites.iter().map(|s| s.code.clone()).collect());
        // Printing the key is the point of this command: it is test data for the demo.
        println!(
            "account {}: url={} api_key={} timezone={} sites={}",
            account.index(),
            account.url(),
            account.api_key(),
            args.timezone.name(),
            sites.join(",")
        );
        println!(
            "  test controls (no key, test-only): {}",
            account.controls_url()
        );
    }
    shutdown.cancelled().await;
    sim.shutdown().await;
    Ok(())
}
