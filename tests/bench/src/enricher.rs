//! Benchmark 2: the enricher against the RetailCRM budget, on the simulator with its
//! per-account rate limit (10 req/s) enforced, on the embedded log.
//!
//! A burst of webhooks (as `OrderChanged` published directly to the bus, as ingest would) is
//! timed from its first record until every distinct order has a `DealUpserted` or
//! `DealDeleted`; the simulator's counters say how many calls it took and whether the limit was
//! ever crossed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use dealflow_enricher::{EnricherService, EnricherSettings};
use dealflow_shared::bus::{EmbeddedLog, EventBus, OutRecord};
use dealflow_shared::events::{
    ChangeSource, Envelope, Event, IntegrationConfigured, IntegrationId, OrderChanged,
};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::topics::Topics;
use dealflow_simulator::{AccountConfig, AccountHandle, SimConfig, Simulator};
use dealflow_testkit::unique_prefix;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-enricher-secret-key-that-is-long-enough-01";
/// Orders one list call can fetch (RetailCRM's page limit).
pub const ORDERS_PER_CALL: f64 = 100.0;

/// One enricher run's figures.
#[derive(Debug, Clone)]
pub struct EnricherRow {
    pub shape: Shape,
    pub accounts: usize,
    pub orders: usize,
    pub webhooks: usize,
    /// Orders the simulator has as deleted: the list omits them, so each costs one
    /// `GET /orders/{id}` (`Not found`) on top of the list calls.
    pub deleted: usize,
    pub elapsed: Duration,
    /// Order-fetching calls the simulator served (all accounts).
    pub fetch_calls: u64,
    /// Every API call the simulator served (reference data included).
    pub all_calls: u64,
    /// The busiest one-second window of any account.
    pub max_per_second: usize,
    /// 503s from the simulator's rate limiter (all accounts).
    pub rate_limited: u64,
    /// The slowest account's time to its last order.
    pub worst_lag: Duration,
    /// The enricher's budget per account (req/s).
    pub budget_rps: u32,
}

impl EnricherRow {
    pub fn orders_per_sec(&self) -> f64 {
        self.orders as f64 / self.elapsed.as_secs_f64()
    }
    /// The ceiling: 100 orders per call × the budget, per account.
    pub fn ceiling(&self) -> f64 {
        ORDERS_PER_CALL * f64::from(self.budget_rps) * self.accounts as f64
    }
}

/// How the webhooks of one order are spread over the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every order once, then every order again: each repeat comes after the order was
    /// probably fetched, so it must be fetched again (the worst case for de-duplication).
    Rounds,
    /// An order's webhooks one after another (a burst of triggers for one edit).
    Adjacent,
}

/// `accounts` accounts of `orders` orders each, `per_order` webhooks per order.
pub async fn run(
    accounts: usize,
    orders: usize,
    per_order: usize,
    shape: Shape,
) -> anyhow::Result<EnricherRow> {
    let dir = tempfile::tempdir()?;
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedLog::open(dir.path().join("events.db")).await?);
    let topics = Topics::new(unique_prefix());
    bus.ensure_topics(&topics.specs(4)).await?;
    let mut config = SimConfig::new(0, 0);
    config.accounts = (0..accounts)
        .map(|_| AccountConfig::with_orders(orders))
        .collect();
    let sim = Simulator::start(config).await?;

    let mut ids = Vec::new();
    let mut wanted: HashMap<IntegrationId, HashSet<u64>> = HashMap::new();
    let mut deleted = 0;
    for account in sim.accounts() {
        let id = IntegrationId::new();
        configure(bus.as_ref(), &topics, id, account).await?;
        let (orders, gone) = order_ids(account)?;
        deleted += gone;
        wanted.insert(id, orders);
        ids.push(id);
    }

    let budgets = Budgets::new(BudgetSettings::default());
    let budget_rps = BudgetSettings::default().rps();
    let settings = EnricherSettings::new(topics.clone(), SecretString::from(SECRET));
    let service = EnricherService::build(settings, bus.clone(), budgets, Metrics::new()).await?;
    let readiness = service.readiness();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(service.run_until_stopped(shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !readiness.is_ready() {
        if Instant::now() > deadline {
            bail!("the enricher did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let baseline: u64 = sim.accounts().iter().map(fetch_calls).sum();
    let mut deals = bus
        .subscribe(
            &format!("bench-reader-{}", unique_prefix()),
            &[topics.deals()],
        )
        .await?;

    let started = Instant::now();
    let webhooks = publish_burst(bus.as_ref(), &topics, &ids, &wanted, per_order, shape).await?;
    let mut finished: HashMap<IntegrationId, Duration> = HashMap::new();
    let deadline = started + Duration::from_secs(600);
    while finished.len() < ids.len() {
        if Instant::now() > deadline {
            bail!("the burst was not enriched within 10 minutes");
        }
        for record in deals.poll(1000, Duration::from_millis(100)).await? {
            let envelope = Envelope::decode(&record.payload)?;
            let order = match envelope.event {
                Event::DealUpserted(d) => d.order_id,
                Event::DealDeleted(d) => d.order_id,
                _ => continue,
            };
            if let Some(left) = wanted.get_mut(&envelope.integration_id)
                && left.remove(&order)
                && left.is_empty()
            {
                finished.insert(envelope.integration_id, started.elapsed());
            }
        }
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;

    let counters: Vec<_> = sim.accounts().iter().map(|a| a.counters()).collect();
    Ok(EnricherRow {
        shape,
        accounts,
        orders: accounts * orders,
        webhooks,
        deleted,
        elapsed,
        fetch_calls: sim.accounts().iter().map(fetch_calls).sum::<u64>() - baseline,
        all_calls: counters.iter().map(|c| c.total).sum(),
        max_per_second: counters.iter().map(|c| c.max_per_second).max().unwrap_or(0),
        rate_limited: counters.iter().map(|c| c.rate_limited).sum(),
        worst_lag: finished.values().copied().max().unwrap_or_default(),
        budget_rps,
    })
}

/// Order-fetching calls (`GET /orders`, `GET /orders/{id}`) the account served.
fn fetch_calls(account: &AccountHandle) -> u64 {
    let counters = account.counters();
    ["GET /api/v5/orders", "GET /api/v5/orders/{id}"]
        .iter()
        .map(|k| counters.requests.get(*k).copied().unwrap_or(0))
        .sum()
}

/// The account's order ids, and how many of them are deleted.
fn order_ids(account: &AccountHandle) -> anyhow::Result<(HashSet<u64>, usize)> {
    let truth = account.truth();
    let orders = truth["orders"]
        .as_array()
        .context("the simulator's truth has no orders")?;
    let ids = orders
        .iter()
        .map(|o| o["id"].as_u64().context("an order without an id"))
        .collect::<anyhow::Result<_>>()?;
    let deleted = orders
        .iter()
        .filter(|o| o["deleted"].as_bool() == Some(true))
        .count();
    Ok((ids, deleted))
}

/// `per_order` webhooks per order in `shape`, round-robin over accounts.
async fn publish_burst(
    bus: &dyn EventBus,
    topics: &Topics,
    ids: &[IntegrationId],
    wanted: &HashMap<IntegrationId, HashSet<u64>>,
    per_order: usize,
    shape: Shape,
) -> anyhow::Result<usize> {
    let lists: Vec<Vec<u64>> = ids
        .iter()
        .map(|id| {
            let mut orders: Vec<u64> = wanted[id].iter().copied().collect();
            orders.sort_unstable();
            orders
        })
        .collect();
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    let (rounds, repeats) = match shape {
        Shape::Rounds => (per_order, 1),
        Shape::Adjacent => (1, per_order),
    };
    let mut records = Vec::new();
    for _ in 0..rounds {
        for i in 0..longest {
            for ((id, orders), _) in ids
                .iter()
                .zip(&lists)
                .flat_map(|pair| std::iter::repeat_n(pair, repeats).zip(0..))
            {
                let Some(&order_id) = orders.get(i) else {
                    continue;
                };
                let envelope = Envelope::new(
                    *id,
                    Event::OrderChanged(OrderChanged {
                        order_id,
                        source: ChangeSource::Webhook,
                        received_at: Utc::now(),
                    }),
                );
                records.push(OutRecord::new(envelope.key(), envelope.encode()));
            }
        }
    }
    let count = records.len();
    for chunk in records.chunks(500) {
        bus.publish(&topics.order_changed(), chunk.to_vec()).await?;
    }
    Ok(count)
}

/// Publishes an active integration for `account`, its history cursor at the end (no catch-up).
async fn configure(
    bus: &dyn EventBus,
    topics: &Topics,
    id: IntegrationId,
    account: &AccountHandle,
) -> anyhow::Result<()> {
    let keys = SecretKeys::derive(&SecretString::from(SECRET));
    let now = Utc::now();
    let config = IntegrationConfigured {
        crm_url: account.url(),
        api_key_sealed: keys.seal(id, &SecretString::from(account.api_key())),
        api_key_hint: "bench".into(),
        active: true,
        default_funnel: false,
        include_delivery_cost: true,
        backfill_days: 0,
        webhook_token_generation: 0,
        history_since_id: account.inspect(|s| s.history.last_id()),
        resync: None,
        created_at: now,
        updated_at: now,
    };
    let envelope = Envelope::new(id, Event::IntegrationConfigured(config));
    bus.publish(
        &topics.integrations(),
        vec![OutRecord::new(envelope.key(), envelope.encode())],
    )
    .await?;
    Ok(())
}
