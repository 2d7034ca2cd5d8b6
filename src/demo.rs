//! `dealflow demo`: the all-in-one process, the RetailCRM simulator, an integration already
//! connected to it, and generated trigger traffic, so deals visibly flow without a RetailCRM
//! account.
//!
//! The integration is connected with a backfill covering the simulator's history, so the
//! existing orders fill the table within seconds; then the traffic does what RetailCRM's
//! trigger would: orders are created and moved through their statuses, each change followed by
//! a webhook.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dealflow_shared::config::{Config, HostPattern};
use dealflow_simulator::{AccountHandle, NewOrder, SimConfig, Simulator};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::allinone::AllInOne;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Simulated RetailCRM accounts (each becomes one integration).
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Orders each simulated account starts with.
    #[arg(long, default_value_t = 400)]
    pub orders: usize,
    /// Order changes per second after the start (each one a webhook).
    #[arg(long, default_value_t = 2.0)]
    pub changes_per_second: f64,
}

/// Runs the demo until `shutdown`.
pub async fn run(
    args: DemoArgs,
    mut config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let sim = Simulator::start(SimConfig::new(args.accounts.max(1), args.orders))
        .await
        .context("starting the RetailCRM simulator")?;
    // The simulator lives on 127.0.0.1 over http, which only this pattern allows.
    config
        .crm_allow_hosts
        .push(HostPattern::parse("http://127.0.0.1:*").map_err(anyhow::Error::msg)?);
    let app = AllInOne::build(&config).await?;
    let base = format!("http://{}", app.local_addr());
    let token = app.api_token().expose_secret().to_string();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let http = reqwest::Client::new();
    wait_ready(&http, &base).await?;
    let mut hooks = Vec::new();
    for account in sim.accounts() {
        let integration = connect(&http, &base, &token, account).await?;
        let hook = integration["webhook_url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // The public URL may differ from the listener (a proxy); the demo talks to the listener.
        let path = hook
            .split("/hooks/")
            .nth(1)
            .map(|t| format!("{base}/hooks/{t}"))
            .unwrap_or(hook);
        hooks.push((account.clone(), path));
    }
    println!();
    println!("dealflow demo is running: open {base}/ and sign in with the API token");
    println!("  API token: {token}");
    println!(
        "  deals: {base}/integrations/{{id}}/deals  ·  metrics: {base}/metrics  ·  ctrl-c stops"
    );
    println!();

    let traffic = tokio::spawn(traffic(
        http,
        hooks,
        args.changes_per_second,
        shutdown.clone(),
    ));
    let result = running.await.context("the all-in-one task")?;
    traffic.abort();
    sim.shutdown().await;
    result
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("dealflow did not become ready within a minute")
}

async fn connect(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    account: &AccountHandle,
) -> anyhow::Result<Value> {
    let response = http
        .post(format!("{base}/api/v1/integrations"))
        .bearer_auth(token)
        .json(&json!({
            "crm_url": account.url(), "api_key": account.api_key(),
            "default_funnel": false, "include_delivery_cost": true, "active": true, "backfill_days": 3650,
        }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(
        status.as_u16() == 201,
        "connecting the simulated account failed: {body}"
    );
    Ok(body)
}

/// A steady stream of new orders and status changes, each announced by a webhook.
async fn traffic(
    http: reqwest::Client,
    hooks: Vec<(AccountHandle, String)>,
    rate: f64,
    shutdown: CancellationToken,
) {
    let announce = |hook: &str, id: u64| {
        http.post(hook.to_string())
            .form(&[("orderId", id.to_string())])
            .send()
    };
    let mut rng = StdRng::from_os_rng();
    let pause = Duration::from_secs_f64(1.0 / rate.clamp(0.1, 100.0));
    while !shutdown.is_cancelled() {
        tokio::time::sleep(pause).await;
        let (account, hook) = &hooks[rng.random_range(0..hooks.len())];
        let changed = if rng.random_bool(0.2) {
            account.create_order(&NewOrder::default()).ok()
        } else {
            advance_random_order(account, &mut rng)
        };
        if let Some(id) = changed {
            let _ = announce(hook, id).await;
        }
    }
}

/// Moves a random open order to a later status (sometimes a cancellation).
fn advance_random_order(account: &AccountHandle, rng: &mut StdRng) -> Option<u64> {
    let (order, next) = account.inspect(|store| {
        let open: Vec<_> = store
            .orders
            .values()
            .filter(|o| o.is_live())
            .filter(|o| {
                store
                    .status(&o.status)
                    .is_some_and(|s| s.group != "complete" && s.group != "cancel")
            })
            .collect();
        let order = open.get(rng.random_range(0..open.len().max(1)))?;
        let current = store.status(&order.status)?;
        let group_rank = |g: &str| store.groups.iter().position(|x| x.code == g).unwrap_or(0);
        let later: Vec<_> = store
            .statuses
            .iter()
            .filter(|s| s.active && group_rank(&s.group) > group_rank(&current.group))
            .collect();
        let next = if rng.random_bool(0.15) {
            later.iter().find(|s| s.group == "cancel")
        } else {
            later.iter().find(|s| s.group != "cancel")
        }?;
        Some((order.id, next.code.clone()))
    })?;
    account.set_status(order, &next, None).ok()?;
    Some(order)
}
