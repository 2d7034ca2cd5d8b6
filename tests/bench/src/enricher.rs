//! Benchmark 2: the enricher against the RetailCRM budget, on the simulator with its
//! per-account rate limit (10 req/s) enforced, on the embedded log.
//!
//! The integration is *settled* first, as in production where an account is connected (its
//! reference data loaded) well before a burst: the enricher starts, its worker loads the
//! account's reference data, and only once the simulator has seen no call for a moment does
//! the clock start. Those start-up calls are reported on their own. Then a burst of webhooks
//! (as `OrderChanged` published directly to the bus, as ingest would) is timed from its first
//! record until every distinct order has a `DealUpserted` or `DealDeleted`; the simulator's
//! counters say how many calls it took and whether the limit was ever crossed.
//!
//! Real trigger webhooks rarely name deleted orders, so the headline bursts name only live
//! ones (the account is generated a little larger and its first live orders are taken); a
//! second run takes the generated orders as they are, deleted ones included, each of which
//! costs one more call (`GET /orders/{id}` → `Not found`).

use crate::seed::connect_account;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use dealflow_enricher::{EnricherService, EnricherSettings};
use dealflow_shared::bus::{EmbeddedLog, EventBus, OutRecord};
use dealflow_shared::events::{ChangeSource, Envelope, Event, IntegrationId, OrderChanged};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets};
use dealflow_shared::topics::Topics;
use dealflow_simulator::{AccountConfig, AccountHandle, SimConfig, Simulator};
use dealflow_testkit::unique_prefix;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-enricher-secret-key-that-is-long-enough-01";
/// Orders one list call can fetch (RetailCRM's page limit).
pub const ORDERS_PER_CALL: f64 = 100.0;
/// The integration is settled once the simulator saw no call for this long.
const QUIET: Duration = Duration::from_millis(500);
/// How often the call timeline is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// Which orders the webhooks name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Only live orders (real triggers rarely fire for a deleted order).
    None,
    /// The generated orders as they are, deleted and merged ones included (deleted before
    /// the account was connected: only a `GET /orders/{id}` each tells).
    AsGenerated,
    /// Live orders, one in 125 of them deleted after the account was connected, just before
    /// the burst (as many as the generated share): `orders/history` tells of them.
    SinceConnect,
}

/// One in this many orders is deleted before a [`Deleted::SinceConnect`] burst.
const DELETED_SINCE_CONNECT_EVERY: usize = 125;

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
    /// Whether the deleted orders were deleted before or after connecting.
    pub which: Deleted,
    pub elapsed: Duration,
    /// When the last live (not deleted) order's deal was out.
    pub live_elapsed: Duration,
    /// Calls the enricher made before the clock started (reference data), all accounts.
    pub startup_calls: u64,
    /// Order-fetching calls during the burst (all accounts).
    pub fetch_calls: u64,
    /// Every API call during the burst (managers included).
    pub burst_calls: u64,
    /// The busiest one-second window of any account (start-up included).
    pub max_per_second: usize,
    /// 503s from the simulator's rate limiter (all accounts).
    pub rate_limited: u64,
    /// The slowest account's time to its last order.
    pub worst_lag: Duration,
    /// The enricher's budget per account (req/s).
    pub budget_rps: u32,
    /// From the first webhook to the first call of the burst (any account).
    pub first_call: Duration,
    /// The longest pause between two calls of one account during the burst (± the sampling
    /// period): the budget's spacing is 1/budget.
    pub longest_gap: Duration,
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

/// The suite: one account (live orders, both shapes; then with its deleted orders), then
/// `accounts` accounts at once (live orders; then with deleted ones).
pub async fn run_suite(
    orders: usize,
    per_order: usize,
    accounts: usize,
    account_orders: usize,
) -> anyhow::Result<Vec<EnricherRow>> {
    let mut rows = Vec::new();
    for (shape, deleted) in [
        (Shape::Rounds, Deleted::None),
        (Shape::Adjacent, Deleted::None),
        (Shape::Rounds, Deleted::SinceConnect),
        (Shape::Rounds, Deleted::AsGenerated),
    ] {
        rows.push(run(1, orders, per_order, shape, deleted).await?);
        eprintln!("one account: {:?}", rows.last());
    }
    if accounts > 0 {
        for deleted in [Deleted::None, Deleted::SinceConnect, Deleted::AsGenerated] {
            rows.push(run(accounts, account_orders, 2, Shape::Rounds, deleted).await?);
            eprintln!("{accounts} accounts: {:?}", rows.last());
        }
    }
    Ok(rows)
}

/// `accounts` accounts of `orders` orders each, `per_order` webhooks per order.
pub async fn run(
    accounts: usize,
    orders: usize,
    per_order: usize,
    shape: Shape,
    which: Deleted,
) -> anyhow::Result<EnricherRow> {
    let dir = tempfile::tempdir()?;
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedLog::open(dir.path().join("events.db")).await?);
    let topics = Topics::new(unique_prefix());
    bus.ensure_topics(&topics.specs(4)).await?;
    let generated = match which {
        // Enough to leave `orders` live ones after the deleted and merged (~1 %).
        Deleted::None | Deleted::SinceConnect => orders + orders / 20 + 10,
        Deleted::AsGenerated => orders,
    };
    let mut config = SimConfig::new(0, 0);
    config.accounts = (0..accounts)
        .map(|_| AccountConfig::with_orders(generated))
        .collect();
    let sim = Simulator::start(config).await?;

    let mut ids = Vec::new();
    let mut wanted: HashMap<IntegrationId, HashSet<u64>> = HashMap::new();
    let mut gone: HashMap<IntegrationId, HashSet<u64>> = HashMap::new();
    for account in sim.accounts() {
        let id = connect_account(bus.as_ref(), &topics, SECRET, account).await?;
        let (named, deleted) = order_ids(account, orders, which)?;
        wanted.insert(id, named);
        gone.insert(id, deleted);
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
    settle(sim.accounts()).await?;
    if which == Deleted::SinceConnect {
        for (account, id) in sim.accounts().iter().zip(&ids) {
            let mut named: Vec<u64> = wanted[id].iter().copied().collect();
            named.sort_unstable();
            let doomed: HashSet<u64> = named
                .into_iter()
                .step_by(DELETED_SINCE_CONNECT_EVERY)
                .collect();
            for order in &doomed {
                account
                    .delete_order(*order, None)
                    .map_err(|e| anyhow::anyhow!("deleting order {order}: {e}"))?;
            }
            gone.insert(*id, doomed);
        }
    }
    let deleted = gone.values().map(HashSet::len).sum();
    let startup: Vec<u64> = sim.accounts().iter().map(|a| a.counters().total).collect();
    let baseline: u64 = sim.accounts().iter().map(fetch_calls).sum();
    let mut deals = bus
        .subscribe(
            &format!("bench-reader-{}", unique_prefix()),
            &[topics.deals()],
        )
        .await?;

    // Encoded before the clock starts: the clock runs from the first webhook's arrival.
    let records = burst(&ids, &wanted, per_order, shape);
    let webhooks = records.len();
    let timeline = Timeline::start(sim.accounts());
    let started = Instant::now();
    for chunk in records.chunks(500) {
        bus.publish(&topics.order_changed(), chunk.to_vec()).await?;
    }
    let published = started.elapsed();
    let mut finished: HashMap<IntegrationId, Duration> = HashMap::new();
    let mut live_left: HashMap<IntegrationId, HashSet<u64>> = wanted
        .iter()
        .map(|(id, named)| (*id, named - &gone[id]))
        .collect();
    let mut live_elapsed = Duration::ZERO;
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
            let id = envelope.integration_id;
            if let Some(left) = live_left.get_mut(&id)
                && left.remove(&order)
                && live_left.values().all(HashSet::is_empty)
            {
                live_elapsed = started.elapsed();
            }
            if let Some(left) = wanted.get_mut(&id)
                && left.remove(&order)
                && left.is_empty()
            {
                finished.insert(id, started.elapsed());
            }
        }
    }
    let elapsed = started.elapsed();
    let calls = timeline.stop().await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;

    let counters: Vec<_> = sim.accounts().iter().map(|a| a.counters()).collect();
    let startup_calls = startup.iter().sum();
    let first_call = calls
        .iter()
        .filter_map(|times| times.first())
        .min()
        .map_or(Duration::ZERO, |first| {
            first.saturating_duration_since(started)
        });
    eprintln!(
        "{webhooks} webhooks published in {:.0} ms (chunks of 500)",
        published.as_secs_f64() * 1e3
    );
    for (account, times) in calls.iter().enumerate().filter(|(_, t)| t.len() > 1) {
        let span = times[times.len() - 1] - times[0];
        let slow: Vec<String> = times
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1] - w[0] > Duration::from_millis(135))
            .map(|(i, w)| format!("#{}: {} ms", i + 1, (w[1] - w[0]).as_millis()))
            .collect();
        if accounts == 1 || !slow.is_empty() && account < 3 {
            eprintln!(
                "account {account}: {} calls over {:.3} s after the first; pauses over 135 ms: {}",
                times.len(),
                span.as_secs_f64(),
                slow.join(", ")
            );
        }
    }
    let longest_gap = calls
        .iter()
        .flat_map(|times| times.windows(2).map(|w| w[1] - w[0]))
        .max()
        .unwrap_or_default();
    Ok(EnricherRow {
        shape,
        accounts,
        orders: accounts * orders,
        webhooks,
        deleted,
        which,
        elapsed,
        live_elapsed,
        startup_calls,
        fetch_calls: sim.accounts().iter().map(fetch_calls).sum::<u64>() - baseline,
        burst_calls: counters.iter().map(|c| c.total).sum::<u64>() - startup_calls,
        max_per_second: counters.iter().map(|c| c.max_per_second).max().unwrap_or(0),
        rate_limited: counters.iter().map(|c| c.rate_limited).sum(),
        worst_lag: finished.values().copied().max().unwrap_or_default(),
        budget_rps,
        first_call,
        longest_gap,
    })
}

/// Waits until the enricher is done with its start-up calls: every account served its
/// settings (the reference data is loaded) and no account saw a call for [`QUIET`].
async fn settle(accounts: &[AccountHandle]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        let counters: Vec<_> = accounts.iter().map(|a| a.counters()).collect();
        let totals: Vec<u64> = counters.iter().map(|c| c.total).collect();
        if totals != last {
            last = totals;
            quiet_since = Instant::now();
        }
        let loaded = counters
            .iter()
            .all(|c| c.requests.get("GET /api/v5/settings").copied().unwrap_or(0) > 0);
        if loaded && quiet_since.elapsed() >= QUIET {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the enricher did not load every account's reference data within a minute");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// When each account's calls arrived during the burst, sampled every [`SAMPLE_EVERY`].
struct Timeline {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Vec<Vec<Instant>>>,
}

impl Timeline {
    fn start(accounts: &[AccountHandle]) -> Self {
        let accounts = accounts.to_vec();
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen: Vec<u64> = accounts.iter().map(|a| a.counters().total).collect();
            let mut times = vec![Vec::new(); accounts.len()];
            while !until.is_cancelled() {
                for (i, account) in accounts.iter().enumerate() {
                    let total = account.counters().total;
                    for _ in seen[i]..total {
                        times[i].push(Instant::now());
                    }
                    seen[i] = total;
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            times
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<Vec<Instant>> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// Order-fetching calls (`GET /orders`, `GET /orders/{id}`) the account served.
fn fetch_calls(account: &AccountHandle) -> u64 {
    let counters = account.counters();
    ["GET /api/v5/orders", "GET /api/v5/orders/{id}"]
        .iter()
        .map(|k| counters.requests.get(*k).copied().unwrap_or(0))
        .sum()
}

/// The `count` orders the webhooks name (lowest ids first), and which of them are deleted.
fn order_ids(
    account: &AccountHandle,
    count: usize,
    which: Deleted,
) -> anyhow::Result<(HashSet<u64>, HashSet<u64>)> {
    let truth = account.truth();
    let orders = truth["orders"]
        .as_array()
        .context("the simulator's truth has no orders")?;
    let mut all: Vec<(u64, bool)> = orders
        .iter()
        .map(|o| {
            let id = o["id"].as_u64().context("an order without an id")?;
            Ok((id, o["deleted"].as_bool() == Some(true)))
        })
        .collect::<anyhow::Result<_>>()?;
    all.sort_unstable();
    if which != Deleted::AsGenerated {
        all.retain(|(_, deleted)| !deleted);
    }
    anyhow::ensure!(
        all.len() >= count,
        "the account has {} usable orders, {count} wanted",
        all.len()
    );
    all.truncate(count);
    let named = all.iter().map(|(id, _)| *id).collect();
    let deleted = all.iter().filter(|(_, d)| *d).map(|(id, _)| *id).collect();
    Ok((named, deleted))
}

/// `per_order` webhooks per order in `shape`, round-robin over accounts, as ingest would
/// publish them.
fn burst(
    ids: &[IntegrationId],
    wanted: &HashMap<IntegrationId, HashSet<u64>>,
    per_order: usize,
    shape: Shape,
) -> Vec<OutRecord> {
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
    records
}

/// The rows as a Markdown table, with how to read them.
pub fn print(rows: &[EnricherRow]) {
    println!("#### Enricher against the budget (simulator, 10 req/s per account; embedded log)\n");
    println!(
        "The integration is settled first (the enricher's worker has loaded the account's \
         reference data: *start-up calls*, not timed); then the clock runs from the first \
         webhook to the last order's deal. Webhook order: *rounds* = every order once, then \
         every order again (a repeat after the fetch must be fetched again); *adjacent* = an \
         order's webhooks back to back. The ceiling is 100 orders per call × the enricher's \
         budget per account. A deleted order is missing from the list answer: one deleted \
         *after* connecting is learnt from `orders/history` (one read for all of them, \
         before any lookup), one deleted *before* costs one more call (`GET /orders/{{id}}` \
         → `Not found`); both after the live batches: *live done* is when the last live \
         order's deal was out. *First call*: from the first \
         webhook to the first call of the burst; *longest pause*: the longest time between \
         two calls of one account during the burst (sampled every 2 ms; the budget spaces \
         calls 125 ms apart).\n"
    );
    println!(
        "| accounts | orders (deleted) | webhooks (order) | time | live done | orders/s | \
         % of ceiling | fetch calls | calls/order | burst calls (start-up) | first call | \
         longest pause | worst account lag | busiest second | 503s |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} ({}{}) | {} ({}) | {:.2} s | {:.2} s | {:.0} | {:.0} % of {:.0}/s | {} | {:.4} | {} ({}) | {:.0} ms | {:.0} ms | {:.2} s | {} req | {} |",
            r.accounts,
            r.orders,
            r.deleted,
            match (r.deleted, r.which) {
                (0, _) | (_, Deleted::None) => "",
                (_, Deleted::SinceConnect) => " after",
                (_, Deleted::AsGenerated) => " before",
            },
            r.webhooks,
            match r.shape {
                Shape::Rounds => "rounds",
                Shape::Adjacent => "adjacent",
            },
            r.elapsed.as_secs_f64(),
            r.live_elapsed.as_secs_f64(),
            r.orders_per_sec(),
            100.0 * r.orders_per_sec() / r.ceiling(),
            r.ceiling(),
            r.fetch_calls,
            r.fetch_calls as f64 / r.orders as f64,
            r.burst_calls,
            r.startup_calls,
            r.first_call.as_secs_f64() * 1e3,
            r.longest_gap.as_secs_f64() * 1e3,
            r.worst_lag.as_secs_f64(),
            r.max_per_second,
            r.rate_limited,
        );
    }
    println!();
}
