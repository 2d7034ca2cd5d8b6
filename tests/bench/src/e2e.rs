//! Benchmark 4: end to end, from a webhook's `202` to the new version of its deal in the read
//! API, at a sustained open-loop rate against dealflow running as real processes (the release
//! `dealflow` binary): the all-in-one on the embedded log, or ingest + enricher + projector on
//! Kafka (nisshi) and PostgreSQL.
//!
//! Every webhook is a real change: the bench first edits the order in the simulator (its
//! `delivery.cost` becomes `BASE + version`, a number no generated order has), then POSTs the
//! webhook and records when the `202` came back. Pollers read each integration's deals
//! changed since the oldest change not yet seen (`?changed_since=`, paged) and record when a
//! deal first shows that version or a later one. Pacing is open loop: webhook `i` is sent at
//! `i / rate` whatever the earlier ones are doing, so a slow system gets the load it would get.
//!
//! The simulator answers at once (no injected latency) and enforces RetailCRM's 10 req/s per
//! account; the load is spread over several accounts so each stays far below the enricher's
//! 800 orders/s per account, and what is measured is latency, not the budget.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use dealflow_simulator::{AccountHandle, OrderEdit, SimConfig, SimHandle, Simulator};
use dealflow_testkit::{Broker, Storage, unique_prefix};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::memory::{Sampler, Series};
use crate::procs::{API_TOKEN, Dealflow, ScratchDb};
use crate::prom::{self, Histogram};
use crate::seed::pace;

/// `delivery.cost` of version `v` of an order is `BASE + v` (generated costs are far below).
const BASE: u64 = 1_000_000;
/// Deals are read from this long before the oldest unseen change was made: a deal's
/// `updated_at` is when the enricher saw it, after the change, so the margin covers only a
/// fetch sent just before the edit and answered just after it.
const WINDOW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::milliseconds(500);
/// ... but never from further back than this: a change still unseen after it would otherwise
/// make every poll read every deal. A deal that shows up late was seen by the enricher late
/// too, so it is still inside the window, unless the projector lags the enricher by more.
const WINDOW_LIMIT: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// How dealflow is deployed for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `dealflow run --target all`: embedded log, SQLite read model.
    AllInOne,
    /// `--target ingest`, `--target enricher`, `--target projector`: Kafka (nisshi, memory
    /// storage) and PostgreSQL (a scratch database).
    Split,
}

impl Layout {
    pub fn label(self) -> &'static str {
        match self {
            Layout::AllInOne => "all-in-one, embedded log + SQLite",
            Layout::Split => "split targets, Kafka (nisshi) + PostgreSQL",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct E2ePlan {
    /// The release `dealflow` binary.
    pub dealflow: PathBuf,
    pub layout: Layout,
    /// Webhooks per second over all accounts.
    pub rate: u32,
    pub duration: Duration,
    pub accounts: usize,
    /// Generated orders per account (changes cycle through the live ones).
    pub orders: usize,
    /// How often each integration's deals are read.
    pub poll: Duration,
    /// How long after the load the last changes may take to show before they count as unseen.
    pub drain: Duration,
    /// PostgreSQL server for the split layout (a scratch database is created and dropped).
    pub postgres: String,
    /// `perf record` the all-in-one (or the enricher) during the load into this file.
    pub profile: Option<PathBuf>,
}

/// One process's memory and CPU during the load.
#[derive(Debug, Clone)]
pub struct MemoryRow {
    pub label: String,
    pub before_kib: u64,
    pub max_kib: u64,
    pub after_kib: u64,
    pub hwm_kib: u64,
    /// Cores used on average during the load.
    pub cores: f64,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct E2eRow {
    pub layout: Layout,
    pub rate: u32,
    pub accounts: usize,
    pub duration: Duration,
    /// How long the last changes were given to show after the load.
    pub drain: Duration,
    pub sent: usize,
    pub accepted: usize,
    /// Webhooks the sender could not send on time (the schedule slipped by more than 100 ms).
    pub late: usize,
    pub accept_p50: Duration,
    pub accept_p99: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Accepted changes never seen in the read API within the drain time.
    pub unseen: usize,
    /// Of those, how many a full read of the deals (no window) found at the end.
    pub unseen_in_full_read: usize,
    pub memory: Vec<MemoryRow>,
    /// Where the time went, from the processes' `/metrics` during the load.
    pub stages: Vec<(String, Histogram)>,
    /// Read API requests and deals returned by the pollers.
    pub polls: u64,
    pub deals_read: u64,
}

/// One change: an order edited in the simulator, then its webhook.
#[derive(Debug, Clone)]
struct Change {
    account: usize,
    version: u64,
    edited: DateTime<Utc>,
    sent: Instant,
    accepted: Option<Instant>,
    visible: Option<Instant>,
    measured: bool,
}

/// Every change of the run and the ones still waiting to be seen.
#[derive(Debug, Default)]
struct Tracker {
    changes: Vec<Change>,
    /// Per account: order → indexes of its changes not seen yet.
    pending: Vec<HashMap<u64, Vec<usize>>>,
    /// Per account: order → its last version.
    versions: Vec<HashMap<u64, u64>>,
    polls: u64,
    deals_read: u64,
    /// Why webhooks were not accepted (a status, or the client's error), with counts.
    refused: BTreeMap<String, usize>,
}

impl Tracker {
    fn pending_count(&self) -> usize {
        self.pending
            .iter()
            .map(|p| p.values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// The deal of `order` shows `version` at `seen`: every change up to it is visible.
    fn seen(&mut self, account: usize, order: u64, version: u64, seen: Instant) {
        let Some(waiting) = self.pending[account].get_mut(&order) else {
            return;
        };
        let changes = &mut self.changes;
        waiting.retain(|&i| {
            if changes[i].version <= version {
                changes[i].visible = Some(seen);
                false
            } else {
                true
            }
        });
        if waiting.is_empty() {
            self.pending[account].remove(&order);
        }
    }
}

/// A running dealflow in the asked layout, with the simulator it talks to.
struct System {
    processes: Vec<Dealflow>,
    /// Where the settings API and webhooks are (all-in-one or ingest).
    front: String,
    /// Where the read API is (all-in-one or projector).
    read: String,
    _broker: Option<Broker>,
    db: Option<ScratchDb>,
    _dir: TempDir,
}

impl System {
    async fn start(plan: &E2ePlan) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut env = BTreeMap::from([
            (
                "DEALFLOW_DATA_DIR".to_string(),
                dir.path().display().to_string(),
            ),
            ("DEALFLOW_TOPIC_PREFIX".to_string(), unique_prefix()),
        ]);
        match plan.layout {
            Layout::AllInOne => {
                let all = Dealflow::start(&plan.dealflow, "all", dir.path(), &env).await?;
                Ok(Self {
                    front: all.base.clone(),
                    read: all.base.clone(),
                    processes: vec![all],
                    _broker: None,
                    db: None,
                    _dir: dir,
                })
            }
            Layout::Split => {
                ensure!(
                    which("nisshi"),
                    "the split layout needs the nisshi broker on PATH (cargo install nisshi)"
                );
                let broker = Broker::start_with(Storage::Memory).await;
                let db = ScratchDb::create(&plan.postgres)?;
                env.insert("DEALFLOW_KAFKA_BROKERS".into(), broker.bootstrap());
                // The projector's pages send their writes to ingest: its address is known
                // before either starts.
                let ingest_listen = format!("127.0.0.1:{}", crate::procs::free_port()?);
                let mut projector_env = env.clone();
                projector_env.insert("DEALFLOW_DATABASE_URL".into(), db.url());
                projector_env.insert(
                    "DEALFLOW_INGEST_URL".into(),
                    format!("http://{ingest_listen}"),
                );
                let mut ingest_env = env.clone();
                ingest_env.insert("DEALFLOW_LISTEN".into(), ingest_listen);
                let mut processes = Vec::new();
                let started = async {
                    // The projector first: it must see the integrations ingest publishes.
                    processes.push(
                        Dealflow::start(&plan.dealflow, "projector", dir.path(), &projector_env)
                            .await?,
                    );
                    processes
                        .push(Dealflow::start(&plan.dealflow, "enricher", dir.path(), &env).await?);
                    processes.push(
                        Dealflow::start(&plan.dealflow, "ingest", dir.path(), &ingest_env).await?,
                    );
                    anyhow::Ok(())
                }
                .await;
                if let Err(e) = started {
                    for p in processes {
                        let _ = p.stop().await;
                    }
                    let _ = db.drop_now();
                    return Err(e);
                }
                Ok(Self {
                    read: processes[0].base.clone(),
                    front: processes[2].base.clone(),
                    processes,
                    _broker: Some(broker),
                    db: Some(db),
                    _dir: dir,
                })
            }
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        // Front to back, so nothing is left half-sent.
        for p in self.processes.into_iter().rev() {
            p.stop().await?;
        }
        if let Some(db) = self.db {
            db.drop_now()?;
        }
        Ok(())
    }

    /// Connects `account` through the settings API; returns (integration id, webhook URL).
    async fn connect(
        &self,
        http: &reqwest::Client,
        account: &AccountHandle,
    ) -> anyhow::Result<(String, String)> {
        let response = http
            .post(format!("{}/api/v1/integrations", self.front))
            .bearer_auth(API_TOKEN)
            .json(
                &json!({"crm_url": account.url(), "api_key": account.api_key(),
                "default_funnel": false, "include_delivery_cost": true, "active": true,
                "backfill_days": 0}),
            )
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(
            status == 201,
            "connecting an account answered {status}: {body}"
        );
        let id = body["id"].as_str().context("no id")?.to_string();
        let hook = body["webhook_url"]
            .as_str()
            .context("no webhook_url")?
            .to_string();
        // No wait for the read API: the 201 came once it shows the integration (DESIGN §4).
        Ok((id, hook))
    }

    /// The consumer lags and waiting orders, for a diagnosis.
    async fn gauges(&self, http: &reqwest::Client) -> String {
        let mut out = Vec::new();
        for p in &self.processes {
            let Ok(r) = http.get(format!("{}/metrics", p.base)).send().await else {
                continue;
            };
            let text = r.text().await.unwrap_or_default();
            for name in [
                "dealflow_enricher_consumer_lag",
                "dealflow_enricher_waiting_orders",
                "dealflow_enricher_unfinished_records",
                "dealflow_projector_consumer_lag",
            ] {
                if let Some(v) = prom::value(&text, name) {
                    out.push(format!("{}: {name} = {v}", p.target));
                }
            }
        }
        out.join(", ")
    }

    async fn scrape(&self, http: &reqwest::Client) -> BTreeMap<String, Histogram> {
        let mut all = BTreeMap::new();
        for p in &self.processes {
            let Ok(r) = http.get(format!("{}/metrics", p.base)).send().await else {
                continue;
            };
            let text = r.text().await.unwrap_or_default();
            for (name, h) in prom::histograms(&text) {
                all.insert(format!("{}: {name}", p.target), h);
            }
        }
        all
    }
}

pub fn which(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

/// The shared state of the load generator and the pollers.
struct Load {
    http: reqwest::Client,
    accounts: Vec<AccountHandle>,
    hooks: Vec<String>,
    tracker: Arc<Mutex<Tracker>>,
}

impl Load {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Edits `order` of `account` to its next version, then sends its webhook in the background.
    fn change(&self, account: usize, order: u64, measured: bool, tasks: &mut JoinSet<()>) {
        let version = {
            let mut t = self.lock();
            let v = t.versions[account].entry(order).or_insert(0);
            *v += 1;
            *v
        };
        let edit: OrderEdit = serde_json::from_value(json!({"delivery_cost": BASE + version}))
            .expect("a delivery cost edit");
        // An edit the simulator refuses is a bench bug: say so instead of measuring nothing.
        if let Err(e) = self.accounts[account].edit_order(order, &edit, None) {
            panic!("editing order {order} of account {account}: {e}");
        }
        let index = {
            let mut t = self.lock();
            let index = t.changes.len();
            t.changes.push(Change {
                account,
                version,
                edited: Utc::now(),
                sent: Instant::now(),
                accepted: None,
                visible: None,
                measured,
            });
            t.pending[account].entry(order).or_default().push(index);
            index
        };
        let http = self.http.clone();
        let url = self.hooks[account].clone();
        let tracker = self.tracker.clone();
        tasks.spawn(async move {
            let answer = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("orderId={order}"))
                .send()
                .await;
            let refusal = match answer {
                Ok(r) if r.status() == 202 => None,
                Ok(r) => Some(format!("HTTP {}", r.status())),
                Err(e) if e.is_timeout() => Some("client timeout".to_owned()),
                Err(e) if e.is_connect() => Some("connection failed".to_owned()),
                Err(e) => Some(format!("client error: {e}")),
            };
            let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
            match refusal {
                None => t.changes[index].accepted = Some(Instant::now()),
                Some(refusal) => {
                    *t.refused.entry(refusal).or_default() += 1;
                    // Never accepted: nothing to wait for.
                    let account = t.changes[index].account;
                    if let Some(w) = t.pending[account].get_mut(&order) {
                        w.retain(|&i| i != index);
                    }
                }
            }
        });
    }

    /// Reads the deals of `account` changed since its oldest unseen change, until `stop`.
    async fn poll(
        &self,
        account: usize,
        id: String,
        read: String,
        every: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let oldest = {
                let t = self.lock();
                t.pending[account]
                    .values()
                    .flatten()
                    .map(|&i| t.changes[i].edited)
                    .min()
            };
            let Some(oldest) = oldest else { continue };
            let since = (oldest - WINDOW_MARGIN).max(Utc::now() - WINDOW_LIMIT);
            self.read_deals(account, &id, &read, Some(since)).await;
        }
    }

    /// Reads the deals of `account` (changed since `since`, or all) and marks what they show.
    async fn read_deals(&self, account: usize, id: &str, read: &str, since: Option<DateTime<Utc>>) {
        let since = since.map(|s| s.to_rfc3339_opts(SecondsFormat::Micros, true));
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", "500".to_string())];
            if let Some(since) = &since {
                query.push(("changed_since", since.clone()));
            }
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page = match self
                .http
                .get(format!("{read}/api/v1/integrations/{id}/deals"))
                .bearer_auth(API_TOKEN)
                .query(&query)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            };
            let seen = Instant::now();
            let Some(page) = page else { break };
            let items = page["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let mut t = self.lock();
            t.polls += 1;
            t.deals_read += items.len() as u64;
            for deal in items {
                let (Some(order), Some(cost)) = (
                    deal["order_id"].as_u64(),
                    deal["delivery_cost"]
                        .as_str()
                        .and_then(|c| c.parse::<f64>().ok()),
                ) else {
                    continue;
                };
                let cost = cost.round() as u64;
                if cost > BASE {
                    t.seen(account, order, cost - BASE, seen);
                }
            }
            drop(t);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
    }

    /// Waits until nothing is pending or `within` passed.
    async fn wait_seen(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.lock().pending_count() == 0 {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs the benchmark once.
pub async fn run(plan: &E2ePlan) -> anyhow::Result<E2eRow> {
    let sim = Simulator::start(SimConfig::new(plan.accounts, plan.orders)).await?;
    let system = System::start(plan).await?;
    let result = measure(plan, &sim, &system).await;
    system.stop().await?;
    sim.shutdown().await;
    result
}

async fn measure(plan: &E2ePlan, sim: &SimHandle, system: &System) -> anyhow::Result<E2eRow> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let accounts: Vec<AccountHandle> = sim.accounts().to_vec();
    let mut ids = Vec::new();
    let mut hooks = Vec::new();
    for account in &accounts {
        let (id, hook) = system.connect(&http, account).await?;
        ids.push(id);
        hooks.push(hook);
    }
    let orders: Vec<Vec<u64>> = accounts.iter().map(live_orders).collect::<Result<_, _>>()?;
    let load = Arc::new(Load {
        http: http.clone(),
        accounts: accounts.clone(),
        hooks,
        tracker: Arc::new(Mutex::new(Tracker {
            pending: vec![HashMap::new(); accounts.len()],
            versions: vec![HashMap::new(); accounts.len()],
            ..Tracker::default()
        })),
    });
    let sampler = Sampler::start(
        system
            .processes
            .iter()
            .map(|p| (p.target.clone(), p.pid))
            .collect(),
        Duration::from_millis(500),
    );
    let stop_polling = CancellationToken::new();
    let mut pollers = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let (load, id, read, stop) = (
            load.clone(),
            id.clone(),
            system.read.clone(),
            stop_polling.clone(),
        );
        let every = plan.poll;
        pollers.spawn(async move { load.poll(i, id, read, every, stop).await });
    }

    // Warm-up: one change per account loads the enricher's reference data for it (11 calls
    // at the budget) before anything is timed.
    let mut sends = JoinSet::new();
    for (i, list) in orders.iter().enumerate() {
        load.change(i, list[0], false, &mut sends);
    }
    if !load.wait_seen(Duration::from_secs(120)).await {
        bail!("the warm-up changes were not visible within 120 s");
    }
    eprintln!(
        "e2e ({}): warm-up visible; loading at {}/s for {:?}",
        plan.layout.label(),
        plan.rate,
        plan.duration
    );

    let before = system.scrape(&http).await;
    let profiler = match &plan.profile {
        Some(path) => Some(start_profile(path, system, plan.duration)?),
        None => None,
    };
    let load_from = sampler.elapsed();
    let total = (u64::from(plan.rate) * plan.duration.as_secs()) as usize;
    let step = Duration::from_secs(1) / plan.rate;
    let started = Instant::now();
    let mut late = 0;
    for i in 0..total {
        pace(started, step, i, &mut late).await?;
        let account = i % accounts.len();
        let list = &orders[account];
        // Round-robin over accounts, then over each account's orders.
        load.change(
            account,
            list[(i / accounts.len()) % list.len()],
            true,
            &mut sends,
        );
        // Reap finished sends now and then so the set stays small.
        while sends.try_join_next().is_some() {}
    }
    let load_to = sampler.elapsed();
    while sends.join_next().await.is_some() {}
    let all_seen = load.wait_seen(plan.drain).await;
    stop_polling.cancel();
    while pollers.join_next().await.is_some() {}
    // Whatever is still unseen: is it in the read model at all (a full read, no window)?
    let mut unseen_in_full_read = 0;
    if !all_seen {
        let before: Vec<usize> = unseen(&load.lock());
        for (i, id) in ids.iter().enumerate() {
            load.read_deals(i, id, &system.read, None).await;
        }
        let by_account = {
            let mut t = load.lock();
            // Found only now: counted as unseen, with no latency.
            for i in before {
                if t.changes[i].visible.take().is_some() {
                    unseen_in_full_read += 1;
                }
            }
            before_by_account(&t)
        };
        eprintln!(
            "e2e: {unseen_in_full_read} of the unseen changes are in a full read of the deals; \
             unseen by account: {by_account:?}; at the end: {}",
            system.gauges(&http).await
        );
        for p in &system.processes {
            eprintln!("{} log, warnings and errors:\n{}", p.target, p.problems(8));
        }
    }
    if let Some(mut perf) = profiler {
        let _ = perf.wait().await;
    }
    let after = system.scrape(&http).await;
    let series = sampler.finish().await;

    let t = load.lock();
    let measured: Vec<&Change> = t.changes.iter().filter(|c| c.measured).collect();
    let accepted: Vec<&Change> = measured
        .iter()
        .copied()
        .filter(|c| c.accepted.is_some())
        .collect();
    let mut accept: Vec<Duration> = accepted
        .iter()
        .map(|c| c.accepted.unwrap_or(c.sent) - c.sent)
        .collect();
    let mut latency: Vec<Duration> = accepted
        .iter()
        .filter_map(|c| Some(c.visible?.saturating_duration_since(c.accepted?)))
        .collect();
    accept.sort_unstable();
    latency.sort_unstable();
    if !t.refused.is_empty() {
        eprintln!("e2e: webhooks not accepted, by reason: {:?}", t.refused);
    }
    let unseen = accepted.iter().filter(|c| c.visible.is_none()).count();
    if !all_seen {
        eprintln!(
            "e2e: {unseen} accepted changes not visible {:?} after the load",
            plan.drain
        );
    }
    Ok(E2eRow {
        layout: plan.layout,
        rate: plan.rate,
        accounts: accounts.len(),
        duration: plan.duration,
        drain: plan.drain,
        sent: measured.len(),
        accepted: accepted.len(),
        late,
        accept_p50: percentile(&accept, 0.50),
        accept_p99: percentile(&accept, 0.99),
        p50: percentile(&latency, 0.50),
        p90: percentile(&latency, 0.90),
        p99: percentile(&latency, 0.99),
        max: latency.last().copied().unwrap_or_default(),
        unseen,
        unseen_in_full_read,
        memory: series
            .iter()
            .map(|s| memory_row(s, load_from, load_to))
            .collect(),
        stages: stages(&before, &after),
        polls: t.polls,
        deals_read: t.deals_read,
    })
}

/// Accepted, measured changes not seen yet.
fn unseen(t: &Tracker) -> Vec<usize> {
    (0..t.changes.len())
        .filter(|&i| {
            let c = &t.changes[i];
            c.measured && c.accepted.is_some() && c.visible.is_none()
        })
        .collect()
}

/// How many unseen changes each account has.
fn before_by_account(t: &Tracker) -> Vec<usize> {
    let mut counts = vec![0; t.pending.len()];
    for i in unseen(t) {
        counts[t.changes[i].account] += 1;
    }
    counts
}

/// The account's live orders (deleted and merged ones cannot be edited).
pub fn live_orders(account: &AccountHandle) -> anyhow::Result<Vec<u64>> {
    let truth = account.truth();
    let list: Vec<u64> = truth["orders"]
        .as_array()
        .context("the simulator's truth has no orders")?
        .iter()
        .filter(|o| o["deleted"] == false)
        .filter_map(|o| o["id"].as_u64())
        .collect();
    ensure!(!list.is_empty(), "an account without live orders");
    Ok(list)
}

fn memory_row(series: &Series, from: Duration, to: Duration) -> MemoryRow {
    let during = series
        .readings
        .iter()
        .filter(|r| r.at >= from && r.at <= to);
    MemoryRow {
        label: series.label.clone(),
        before_kib: series.at(from).map_or(0, |r| r.rss_kib),
        max_kib: during.map(|r| r.rss_kib).max().unwrap_or(0),
        after_kib: series.last().map_or(0, |r| r.rss_kib),
        hwm_kib: series.last().map_or(0, |r| r.hwm_kib),
        cores: series.cores(from, to),
    }
}

/// The histograms that explain the latency, as observed during the load.
fn stages(
    before: &BTreeMap<String, Histogram>,
    after: &BTreeMap<String, Histogram>,
) -> Vec<(String, Histogram)> {
    const WANTED: [&str; 4] = [
        "enricher_stage_duration_seconds",
        "projector_batch_duration_seconds",
        "bus_publish_duration_seconds",
        "enricher_crm_call_seconds",
    ];
    after
        .iter()
        .filter(|(name, _)| WANTED.iter().any(|w| name.contains(w)))
        .map(|(name, h)| (without_topic_prefix(name), h.since(before.get(name))))
        .filter(|(_, h)| h.count > 0.0)
        .collect()
}

/// `topic="t0123….order-changed"` → `topic="order-changed"`: the run's unique prefix is noise.
fn without_topic_prefix(name: &str) -> String {
    match name.split_once("topic=\"") {
        Some((head, rest)) => match rest.split_once('.') {
            Some((_, topic)) => format!("{head}topic=\"{topic}"),
            None => name.to_string(),
        },
        None => name.to_string(),
    }
}

/// `perf record -g` of the process that does the work during the load.
fn start_profile(
    path: &Path,
    system: &System,
    duration: Duration,
) -> anyhow::Result<tokio::process::Child> {
    let target = system
        .processes
        .iter()
        .find(|p| p.target == "all" || p.target == "enricher")
        .context("no process to profile")?;
    tokio::process::Command::new("perf")
        .args(["record", "-F", "499", "-g", "-o"])
        .arg(path)
        .args(["-p", &target.pid.to_string(), "--", "sleep"])
        .arg(duration.as_secs().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting perf")
}

/// The value at quantile `q` of a sorted list (nearest rank).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |n| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.5), ms(50));
        assert_eq!(percentile(&sorted, 0.99), ms(99));
        assert_eq!(percentile(&sorted, 1.0), ms(100));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn topic_prefixes_are_dropped_from_names() {
        assert_eq!(
            without_topic_prefix("all: x{topic=\"t0abc.order-changed\"}"),
            "all: x{topic=\"order-changed\"}"
        );
        assert_eq!(
            without_topic_prefix("all: y{stage=\"fetch\"}"),
            "all: y{stage=\"fetch\"}"
        );
    }

    #[test]
    fn a_later_version_makes_every_earlier_change_visible() {
        let now = Instant::now();
        let change = |version| Change {
            account: 0,
            version,
            edited: Utc::now(),
            sent: now,
            accepted: Some(now),
            visible: None,
            measured: true,
        };
        let mut t = Tracker {
            changes: vec![change(1), change(2), change(3)],
            pending: vec![HashMap::from([(7, vec![0, 1, 2])])],
            versions: vec![HashMap::new()],
            ..Tracker::default()
        };
        t.seen(0, 7, 2, now);
        assert!(t.changes[0].visible.is_some() && t.changes[1].visible.is_some());
        assert!(t.changes[2].visible.is_none());
        assert_eq!(t.pending_count(), 1);
        t.seen(0, 7, 3, now);
        assert_eq!(t.pending_count(), 0);
        assert!(t.pending[0].is_empty());
    }
}
