//! Benchmark 6 (issue 20): many accounts on one enricher. A thousand simulated RetailCRM
//! accounts (each its own listener, a few orders each) are connected to one release `dealflow`
//! process: `--target enricher` alone on Kafka (nisshi), the integrations and the order
//! changes published straight to the bus as ingest would; or the all-in-one on the embedded log,
//! the changes sent as webhooks to its ingest.
//!
//! Webhooks are spread round-robin over every account at a modest open-loop rate, each after a
//! real edit of its order (`delivery.cost` becomes `BASE + version`), while the enricher also
//! reconciles every account's `orders/history` at a short `DEALFLOW_RECONCILE_INTERVAL`.
//! Measured: the process's RSS and CPU (`/proc`), each change's lag from the webhook's
//! acknowledgement to the first deal event showing that version (the event's `occurred_at`,
//! read from the `deals` topic after the run), and when every account's history was read (the
//! simulator's per-account counter of `GET /api/v5/orders/history`, sampled), so the largest
//! gap between two reconciliations of any account can be held against the interval.
//!
//! This module runs it; `figures` turns what was recorded into the figures, `table` prints
//! them.

mod figures;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use dealflow_shared::bus::{EmbeddedLog, EventBus, KafkaBus, KafkaBusConfig, OutRecord};
use dealflow_shared::events::{ChangeSource, Envelope, Event, IntegrationId, OrderChanged};
use dealflow_shared::follow::{CaughtUp, follow_topic};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::topics::{DEFAULT_PARTITIONS, Topics, order_changed_key};
use dealflow_shared::wiring::EMBEDDED_LOG_FILE;
use dealflow_simulator::{AccountHandle, OrderEdit, SimConfig, Simulator};
use dealflow_testkit::{Broker, Storage, unique_prefix};
use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::figures::{
    BASE, Change, Lags, Phases, Reconciliations, Resources, Shown, first_shown, lags,
    reconciliations, resources, slow_by_window, version_of,
};
pub use self::table::print;
use crate::backlog::BacklogBus;
use crate::e2e::{live_orders, which};
use crate::memory::Sampler;
use crate::procs::{Dealflow, SECRET_KEY};
use crate::prom;
use crate::seed::{connect_account, pace};

/// The simulator's counter key of the reconciliation's call.
const HISTORY: &str = "GET /api/v5/orders/history";
/// The first call of a new worker's reference preload: the account is up in the enricher.
const SETTINGS: &str = "GET /api/v5/settings";
/// How often the simulator's counters are read: the resolution of the reconciliation times.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// What to run.
#[derive(Debug, Clone)]
pub struct AccountsPlan {
    /// The release `dealflow` binary.
    pub dealflow: PathBuf,
    /// `Kafka`: `--target enricher` alone on nisshi; `Embedded`: the all-in-one.
    pub bus: BacklogBus,
    pub accounts: usize,
    /// Generated orders per account (the webhooks cycle through the live ones).
    pub orders: usize,
    /// Webhooks per second over all accounts.
    pub rate: u32,
    pub duration: Duration,
    /// `DEALFLOW_RECONCILE_INTERVAL` of the enricher.
    pub reconcile: Duration,
    /// How long the enricher may take to finish after the load.
    pub drain: Duration,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct AccountsRun {
    pub plan: AccountsPlan,
    pub target: &'static str,
    pub sim_started_in: Duration,
    /// When the load started and ended, since the process was ready.
    pub load: (Duration, Duration),
    /// From ready to every account's reference data loaded.
    pub loaded_in: Duration,
    /// From the end of the load until the enricher's queues were empty (`None`: not in time).
    pub drained_in: Option<Duration>,
    /// Over the observed window (connect → end of the run).
    pub observed: Duration,
    pub rate_limited: u64,
    pub resources: Resources,
    pub lags: Lags,
    pub reconciliations: Reconciliations,
}

/// How a change reaches dealflow.
#[derive(Debug)]
enum Front {
    /// Kafka: `OrderChanged` published on `order-changed`, keyed by account, as ingest does.
    Bus {
        bus: Arc<dyn EventBus>,
        topic: String,
    },
    /// The all-in-one: a webhook to its ingest (`orderId=N`, form body).
    Hooks {
        http: reqwest::Client,
        urls: Vec<String>,
    },
}

impl Front {
    /// Webhooks to the all-in-one at `base`, one URL per integration (token generation 0).
    fn hooks(base: &str, ids: &[IntegrationId]) -> Self {
        let keys = SecretKeys::derive(&SecretString::from(SECRET_KEY.to_owned()));
        let urls = ids
            .iter()
            .map(|id| format!("{base}/hooks/retailcrm/{}", keys.webhook_token(*id, 0)))
            .collect();
        Front::Hooks {
            http: reqwest::Client::new(),
            urls,
        }
    }

    /// Sends the change of `order`; whether it was acknowledged (bus ack or `202`).
    async fn send(&self, account: usize, id: IntegrationId, crm_url: &str, order: u64) -> bool {
        match self {
            Front::Bus { bus, topic } => {
                let envelope = Envelope::new(
                    id,
                    Event::OrderChanged(OrderChanged {
                        order_id: order,
                        source: ChangeSource::Webhook,
                        received_at: Utc::now(),
                    }),
                );
                let record = OutRecord::new(order_changed_key(crm_url), envelope.encode());
                bus.publish(topic, vec![record]).await.is_ok()
            }
            Front::Hooks { http, urls } => http
                .post(&urls[account])
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("orderId={order}"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 202),
        }
    }
}

/// Runs the benchmark once.
pub async fn run(plan: &AccountsPlan) -> anyhow::Result<AccountsRun> {
    ensure!(
        plan.accounts > 0 && plan.rate > 0,
        "accounts and rate must be positive"
    );
    let started = Instant::now();
    let sim = Simulator::start(SimConfig::new(plan.accounts, plan.orders)).await?;
    let sim_started_in = started.elapsed();
    eprintln!(
        "accounts: simulator with {} accounts × {} orders started in {sim_started_in:.1?}",
        plan.accounts, plan.orders
    );
    let accounts = sim.accounts().to_vec();
    let orders: Vec<Vec<u64>> = accounts.iter().map(live_orders).collect::<Result<_, _>>()?;

    let dir = tempfile::tempdir()?;
    let prefix = unique_prefix();
    let topics = Topics::new(prefix.clone());
    let mut env = BTreeMap::from([
        ("DEALFLOW_DATA_DIR".into(), dir.path().display().to_string()),
        ("DEALFLOW_TOPIC_PREFIX".into(), prefix),
        (
            "DEALFLOW_RECONCILE_INTERVAL".into(),
            format!("{}s", plan.reconcile.as_secs()),
        ),
    ]);
    let log_path = dir.path().join(EMBEDDED_LOG_FILE);
    let (bus, broker): (Arc<dyn EventBus>, Option<Broker>) = match plan.bus {
        BacklogBus::Embedded => (Arc::new(EmbeddedLog::open(&log_path).await?), None),
        BacklogBus::Kafka => {
            ensure!(which("nisshi"), "the Kafka layout needs nisshi on PATH");
            let broker = Broker::start_with(Storage::Memory).await;
            env.insert("DEALFLOW_KAFKA_BROKERS".into(), broker.bootstrap());
            let bus = KafkaBus::new(KafkaBusConfig::new(broker.bootstrap()))?;
            (Arc::new(bus), Some(broker))
        }
    };
    bus.ensure_topics(&topics.specs(DEFAULT_PARTITIONS)).await?;
    let (ids, connected) = connect(bus.as_ref(), &topics, &accounts).await?;
    eprintln!(
        "accounts: {} integrations published after {:.1?}",
        ids.len(),
        started.elapsed()
    );
    let target = match plan.bus {
        BacklogBus::Kafka => "enricher",
        BacklogBus::Embedded => "all",
    };
    // The embedded log belongs to one process: closed before dealflow opens it.
    let bus = (plan.bus == BacklogBus::Kafka).then_some(bus);

    let watch = Watch::start(&accounts);
    let mut process = Dealflow::start(&plan.dealflow, target, dir.path(), &env).await?;
    let front = Arc::new(match &bus {
        Some(bus) => Front::Bus {
            bus: bus.clone(),
            topic: topics.order_changed(),
        },
        None => Front::hooks(&process.base, &ids),
    });
    let sampler = Sampler::start(
        vec![(target.to_string(), process.pid)],
        Duration::from_millis(500),
    );
    let load = Load {
        plan,
        accounts: &accounts,
        orders: &orders,
        ids: &ids,
        front,
    };
    let measured = load.measure(&watch, &sampler, &process).await;
    let metrics = scrape(&process).await;
    let series = sampler.finish().await;
    let running = process.is_running();
    let problems = process.problems(8);
    process.stop().await?;
    let history = watch.stop().await;
    ensure!(running, "dealflow exited during the run:\n{problems}");
    let (phases, changes) = measured?;
    eprintln!("accounts: {target} warnings and errors:\n{problems}");

    // The deal events, read back from the bus (the embedded log once dealflow closed it).
    let bus: Arc<dyn EventBus> = match bus {
        Some(bus) => bus,
        None => Arc::new(EmbeddedLog::open(&log_path).await?),
    };
    let shown = read_deals(bus, &topics.deals(), &ids).await?;
    let counters: Vec<_> = accounts.iter().map(|a| a.counters()).collect();
    drop(broker);
    sim.shutdown().await;

    let series = series.first().context("no reading of the process")?;
    let first = first_shown(&changes, &shown);
    eprintln!(
        "accounts: lags over 1 s by 5 s of the load: {:?}",
        slow_by_window(&changes, &first)
    );
    let mut lags = lags(&changes, &first, accounts.len());
    lags.late = phases.late;
    Ok(AccountsRun {
        plan: plan.clone(),
        target,
        sim_started_in,
        load: (phases.from, phases.to),
        loaded_in: phases.loaded,
        drained_in: phases.drained,
        observed: phases.end.saturating_duration_since(connected[0]),
        rate_limited: counters.iter().map(|c| c.rate_limited).sum(),
        resources: resources(series, &phases),
        lags,
        reconciliations: Reconciliations {
            calls: counters
                .iter()
                .map(|c| c.requests.get(HISTORY).copied().unwrap_or(0))
                .sum(),
            counted: prom::value(&metrics, "dealflow_reconciliations_total"),
            ..reconciliations(&history, &connected, phases.end, plan.reconcile)
        },
    })
}

/// Connects every account as ingest's settings API would (no backfill, history from its
/// current end): its integration id, and when it was connected (its first reconciliation is
/// due one interval later).
async fn connect(
    bus: &dyn EventBus,
    topics: &Topics,
    accounts: &[AccountHandle],
) -> anyhow::Result<(Vec<IntegrationId>, Vec<Instant>)> {
    let mut ids = Vec::with_capacity(accounts.len());
    let mut connected = Vec::with_capacity(accounts.len());
    for account in accounts {
        let id = connect_account(bus, topics, SECRET_KEY, account)
            .await
            .context("publishing an integration")?;
        ids.push(id);
        connected.push(Instant::now());
    }
    Ok((ids, connected))
}

/// The load generator: edits orders in the simulator and sends their webhooks.
#[derive(Debug)]
struct Load<'a> {
    plan: &'a AccountsPlan,
    accounts: &'a [AccountHandle],
    /// Each account's live orders.
    orders: &'a [Vec<u64>],
    ids: &'a [IntegrationId],
    front: Arc<Front>,
}

impl Load<'_> {
    /// Warm-up (every account's reference data), the open-loop load, then the drain.
    async fn measure(
        &self,
        watch: &Watch,
        sampler: &Sampler,
        process: &Dealflow,
    ) -> anyhow::Result<(Phases, Vec<Change>)> {
        // A new worker loads its account's reference data first (11 calls in its budget);
        // the load starts once every account has.
        let all = self.accounts.len();
        let mut loaded = watch.loaded.clone();
        tokio::time::timeout(Duration::from_secs(300), loaded.wait_for(|n| *n >= all))
            .await
            .context("not every account's reference data was loaded within 300 s")??;
        let loaded = sampler.elapsed();
        eprintln!(
            "accounts: every account loaded {loaded:.1?} after ready; {} webhooks/s for {:?}",
            self.plan.rate, self.plan.duration
        );

        let from = sampler.elapsed();
        let (changes, late) = self.send_all().await?;
        let to = sampler.elapsed();
        if late > 0 {
            eprintln!("accounts: {late} webhooks sent over 100 ms late");
        }
        let load_end = Instant::now();
        let drained = drain(process, self.plan.drain)
            .await
            .map(|empty| empty.saturating_duration_since(load_end));
        let phases = Phases {
            loaded,
            from,
            to,
            late,
            drained,
            end: Instant::now(),
        };
        Ok((phases, changes))
    }

    /// Webhook `i` at `i / rate`, whatever the earlier ones are doing, round-robin over the
    /// accounts, then over each account's orders; returns the changes and the late sends.
    async fn send_all(&self) -> anyhow::Result<(Vec<Change>, usize)> {
        let plan = self.plan;
        let total = usize::try_from(u64::from(plan.rate) * plan.duration.as_secs())?;
        let step = Duration::from_secs(1) / plan.rate;
        let mut changes: Vec<Change> = Vec::with_capacity(total);
        let mut versions: HashMap<(usize, u64), u64> = HashMap::new();
        let mut sends = JoinSet::new();
        let mut acks = Vec::with_capacity(total);
        let mut late = 0;
        let started = Instant::now();
        for i in 0..total {
            pace(started, step, i, &mut late).await?;
            let account = i % self.accounts.len();
            let list = &self.orders[account];
            let order = list[(i / self.accounts.len()) % list.len()];
            let version = versions.entry((account, order)).or_default();
            *version += 1;
            let edit: OrderEdit =
                serde_json::from_value(serde_json::json!({"delivery_cost": BASE + *version}))?;
            self.accounts[account]
                .edit_order(order, &edit, None)
                .with_context(|| format!("editing order {order} of account {account}"))?;
            changes.push(Change {
                account,
                order,
                version: *version,
                acknowledged: None,
            });
            let (front, id) = (self.front.clone(), self.ids[account]);
            let url = self.accounts[account].url();
            sends.spawn(async move {
                let sent = front.send(account, id, &url, order).await;
                (i, sent.then(Utc::now))
            });
            // Reap finished sends now and then so the set stays small.
            while let Some(done) = sends.try_join_next() {
                acks.push(done?);
            }
        }
        while let Some(done) = sends.join_next().await {
            acks.push(done?);
        }
        for (i, acknowledged) in acks {
            changes[i].acknowledged = acknowledged;
        }
        Ok((changes, late))
    }
}

/// Waits until the enricher's queues are empty (consumer lag, waiting orders and unfinished
/// records at 0) and stay so for 5 s, the period of its lag measurement; returns when they
/// were first seen empty, or `None` after `within`.
async fn drain(process: &Dealflow, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    let mut empty_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let text = scrape(process).await;
        let empty = [
            "dealflow_enricher_consumer_lag",
            "dealflow_enricher_waiting_orders",
            "dealflow_enricher_unfinished_records",
        ]
        .iter()
        .all(|name| prom::value(&text, name) == Some(0.0));
        if !empty {
            empty_since = None;
        } else if let Some(since) = empty_since {
            if since.elapsed() >= Duration::from_secs(5) {
                return Some(since);
            }
        } else {
            empty_since = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// The process's `/metrics` (empty when it does not answer).
async fn scrape(process: &Dealflow) -> String {
    match reqwest::get(format!("{}/metrics", process.base)).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The simulator's side of the run, read every [`WATCH_EVERY`]: how many accounts had their
/// reference data read (their worker is up), and when each account's history calls arrived.
#[derive(Debug)]
struct Watch {
    loaded: watch::Receiver<usize>,
    stop: CancellationToken,
    task: JoinHandle<Vec<Vec<Instant>>>,
}

impl Watch {
    fn start(accounts: &[AccountHandle]) -> Self {
        let accounts = accounts.to_vec();
        let (tell, loaded) = watch::channel(0);
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let mut calls = vec![Vec::new(); accounts.len()];
            let mut tick = tokio::time::interval(WATCH_EVERY);
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    () = until.cancelled() => true,
                };
                let now = Instant::now();
                let mut ready = 0;
                for (account, calls) in accounts.iter().zip(calls.iter_mut()) {
                    let counters = account.counters();
                    let count = |key| counters.requests.get(key).copied().unwrap_or(0);
                    ready += usize::from(count(SETTINGS) > 0);
                    // Arrivals since the last look are dated now (up to WATCH_EVERY late).
                    let new = count(HISTORY).saturating_sub(calls.len() as u64);
                    calls.extend((0..new).map(|_| now));
                }
                tell.send_replace(ready);
                if last {
                    return calls;
                }
            }
        });
        Self { loaded, stop, task }
    }

    /// Stops watching; each account's history calls.
    async fn stop(self) -> Vec<Vec<Instant>> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// Reads the `deals` topic to its end.
async fn read_deals(
    bus: Arc<dyn EventBus>,
    topic: &str,
    ids: &[IntegrationId],
) -> anyhow::Result<Shown> {
    let account: HashMap<IntegrationId, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut shown = Shown::new();
    let ready = CaughtUp::default();
    let group = format!("{}bench-accounts", unique_prefix());
    let stop = CancellationToken::new();
    let follow = follow_topic(bus, topic, &group, &ready, stop, |_, decoded| {
        let Ok(envelope) = decoded else { return };
        let Event::DealUpserted(deal) = &envelope.event else {
            return;
        };
        let (Some(&i), Some(version)) = (
            account.get(&envelope.integration_id),
            version_of(&deal.delivery_cost.to_string()),
        ) else {
            return;
        };
        shown
            .entry((i, deal.order_id))
            .or_default()
            .push((version, envelope.occurred_at));
    });
    tokio::select! {
        followed = follow => {
            followed?;
            bail!("stopped before the deals topic was read to its end");
        }
        () = ready.wait_ready() => {}
    }
    Ok(shown)
}
