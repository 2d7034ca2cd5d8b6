//! Benchmark 5b: the enricher's memory with a large backlog. A million `OrderChanged` are on
//! the bus (published as ingest would) before dealflow starts; the bench then samples the
//! process's RSS and the enricher's own gauges (consumer lag, waiting orders, unfinished
//! records) once a second while it drains the backlog, or while it holds it because every
//! account's API key was revoked (the workers park and the orders stay queued).
//!
//! Run as the real release binary: `--target all` on the embedded log (the backlog in its data
//! directory), or `--target enricher` alone on Kafka (nisshi), which isolates its memory.

use crate::seed::connect_account;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use chrono::Utc;
use dealflow_shared::bus::{EmbeddedLog, EventBus, KafkaBus, KafkaBusConfig, OutRecord};
use dealflow_shared::events::{ChangeSource, Envelope, Event, IntegrationId, OrderChanged};
use dealflow_shared::topics::{DEFAULT_PARTITIONS, Topics};
use dealflow_shared::wiring::EMBEDDED_LOG_FILE;
use dealflow_simulator::{SimConfig, Simulator};
use dealflow_testkit::{Broker, Storage, unique_prefix};
use tokio::time::Instant;

use crate::e2e::{live_orders, which};
use crate::memory::{self, Reading};
use crate::procs::{Dealflow, SECRET_KEY};
use crate::prom;

/// Where the backlog waits and which process drains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogBus {
    /// `--target all` on the embedded log.
    Embedded,
    /// `--target enricher` on Kafka (nisshi, memory storage).
    Kafka,
}

#[derive(Debug, Clone)]
pub struct BacklogPlan {
    pub dealflow: PathBuf,
    pub bus: BacklogBus,
    /// `OrderChanged` records in the backlog.
    pub events: usize,
    pub accounts: usize,
    /// Generated orders per account; the backlog cycles over the live ones.
    pub orders: usize,
    /// Revoke every account's key first: the enricher holds the backlog instead of draining it.
    pub hold: bool,
    /// The longest the process is watched (a drain that ends earlier ends the run).
    pub limit: Duration,
    /// After the drain: `dealflow reprocess --since` (before the backlog) and drain again.
    pub reprocess: bool,
}

/// The reprocess of a drained backlog: the command, then the second drain.
#[derive(Debug, Clone)]
pub struct Reprocessed {
    /// How long `dealflow reprocess` ran.
    pub took: Duration,
    /// Its last line of output (its summary).
    pub summary: String,
    pub samples: Vec<BacklogSample>,
    /// When the read model had applied what the reprocess fetched, since the restart.
    pub drained_at: Option<Duration>,
}

/// One sample: the process and the enricher's gauges.
#[derive(Debug, Clone, Copy)]
pub struct BacklogSample {
    pub reading: Reading,
    pub consumer_lag: Option<f64>,
    pub waiting_orders: Option<f64>,
    pub unfinished_records: Option<f64>,
    pub orders_fetched: Option<f64>,
    /// The read model's side (the all-in-one's projector).
    pub projector_lag: Option<f64>,
    pub events_applied: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct BacklogRun {
    pub plan: BacklogPlan,
    pub target: String,
    /// Distinct orders in the backlog.
    pub distinct: usize,
    pub published_in: Duration,
    pub samples: Vec<BacklogSample>,
    /// When the backlog was drained (lag and waiting orders at zero), since the start.
    pub drained_at: Option<Duration>,
    /// With [`BacklogPlan::reprocess`].
    pub reprocessed: Option<Reprocessed>,
}

pub async fn run(plan: &BacklogPlan) -> anyhow::Result<BacklogRun> {
    let sim = Simulator::start(SimConfig::new(plan.accounts, plan.orders)).await?;
    let dir = tempfile::tempdir()?;
    let prefix = unique_prefix();
    let topics = Topics::new(prefix.clone());
    let mut env = BTreeMap::from([
        (
            "DEALFLOW_DATA_DIR".to_string(),
            dir.path().display().to_string(),
        ),
        ("DEALFLOW_TOPIC_PREFIX".to_string(), prefix),
    ]);
    let (bus, broker): (Arc<dyn EventBus>, Option<Broker>) = match plan.bus {
        BacklogBus::Embedded => (
            Arc::new(EmbeddedLog::open(dir.path().join(EMBEDDED_LOG_FILE)).await?),
            None,
        ),
        BacklogBus::Kafka => {
            ensure!(which("nisshi"), "the Kafka backlog needs nisshi on PATH");
            let broker = Broker::start_with(Storage::Memory).await;
            env.insert("DEALFLOW_KAFKA_BROKERS".into(), broker.bootstrap());
            (
                Arc::new(KafkaBus::new(KafkaBusConfig::new(broker.bootstrap()))?),
                Some(broker),
            )
        }
    };
    bus.ensure_topics(&topics.specs(DEFAULT_PARTITIONS)).await?;
    let mut per_account = Vec::new();
    for account in sim.accounts() {
        let id = connect_account(bus.as_ref(), &topics, SECRET_KEY, account)
            .await
            .context("publishing an integration")?;
        per_account.push((id, live_orders(account)?));
        if plan.hold {
            // The key stops working: the enricher parks the account and keeps its orders.
            account.revoke_key(0)?;
        }
    }
    let distinct = per_account
        .iter()
        .map(|(_, o)| o.len())
        .sum::<usize>()
        .min(plan.events);
    // Everything in the backlog is after this (a reprocess from here fetches it all again).
    let since = Utc::now() - chrono::Duration::seconds(1);
    let started = Instant::now();
    publish_backlog(bus.as_ref(), &topics, &per_account, plan.events).await?;
    let published_in = started.elapsed();
    eprintln!(
        "backlog: {} OrderChanged over {distinct} orders published in {published_in:.1?}",
        plan.events
    );
    // The embedded log belongs to one process: close it before dealflow opens it.
    drop(bus);

    let target = match plan.bus {
        BacklogBus::Embedded => "all",
        BacklogBus::Kafka => "enricher",
    };
    let process = Dealflow::spawn(&plan.dealflow, target, dir.path(), &env)?;
    let (samples, drained_at) = watch(plan, process, distinct, Until::Fetched).await?;
    let reprocessed = match (plan.reprocess, drained_at) {
        (true, Some(_)) => Some(reprocess(plan, target, dir.path(), &env, since, distinct).await?),
        _ => None,
    };
    drop(broker);
    sim.shutdown().await;
    Ok(BacklogRun {
        plan: plan.clone(),
        target: target.to_string(),
        distinct,
        published_in,
        samples,
        drained_at,
        reprocessed,
    })
}

/// What a watched run waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The enricher fetched every order of the backlog and has nothing left.
    Fetched,
    /// The projector applied an event for every order (what a reprocess fetched) and has
    /// nothing left.
    Applied,
    /// The enricher has nothing left (after a reprocess fetched it all, a lone enricher's
    /// group is at the end: nothing to fetch again).
    Idle,
}

/// Samples `process` once a second until `until` (and 15 s more) or the plan's limit; then
/// stops it.
async fn watch(
    plan: &BacklogPlan,
    mut process: Dealflow,
    distinct: usize,
    until: Until,
) -> anyhow::Result<(Vec<BacklogSample>, Option<Duration>)> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut drained_at = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < plan.limit {
        tick.tick().await;
        let at = started.elapsed();
        let Some(reading) = memory::read(process.pid, at) else {
            anyhow::bail!("dealflow exited:\n{}", process.tail_log());
        };
        let text = match http.get(format!("{}/metrics", process.base)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let sample = BacklogSample {
            reading,
            consumer_lag: prom::value(&text, "dealflow_enricher_consumer_lag"),
            waiting_orders: prom::value(&text, "dealflow_enricher_waiting_orders"),
            unfinished_records: prom::value(&text, "dealflow_enricher_unfinished_records"),
            orders_fetched: prom::value(&text, "dealflow_enricher_orders_fetched_total"),
            projector_lag: prom::value(&text, "dealflow_projector_consumer_lag"),
            events_applied: prom::value(&text, "dealflow_projector_events_applied_total"),
        };
        samples.push(sample);
        let done = match until {
            Until::Fetched => {
                sample.consumer_lag == Some(0.0)
                    && sample.waiting_orders == Some(0.0)
                    && sample.unfinished_records == Some(0.0)
                    && sample.orders_fetched.unwrap_or(0.0) >= distinct as f64
            }
            Until::Idle => {
                sample.consumer_lag == Some(0.0)
                    && sample.waiting_orders == Some(0.0)
                    && sample.unfinished_records == Some(0.0)
            }
            Until::Applied => {
                sample.projector_lag == Some(0.0)
                    && sample.events_applied.unwrap_or(0.0) >= distinct as f64
            }
        };
        if !plan.hold && drained_at.is_none() && done {
            drained_at = Some(at);
            eprintln!("backlog: drained after {at:.1?}");
        }
        // A few more samples after the drain show whether the memory is given back.
        if drained_at.is_some_and(|d| at >= d + Duration::from_secs(15)) {
            break;
        }
    }
    if !process.is_running() {
        anyhow::bail!("dealflow exited:\n{}", process.tail_log());
    }
    process.stop().await?;
    Ok((samples, drained_at))
}

/// `dealflow reprocess --since` over the drained backlog (it runs an enricher itself until
/// the group is back at the end), then the process again until the read model has applied
/// what it fetched.
async fn reprocess(
    plan: &BacklogPlan,
    target: &str,
    dir: &std::path::Path,
    env: &BTreeMap<String, String>,
    since: chrono::DateTime<Utc>,
    distinct: usize,
) -> anyhow::Result<Reprocessed> {
    let started = Instant::now();
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let output = Dealflow::cli(&plan.dealflow, &["reprocess", "--since", &since], env).await?;
    let took = started.elapsed();
    // Its summary is the last line it prints (logs and the progress bar go to stderr).
    let summary = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with('{'))
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("backlog: reprocess took {took:.1?}: {summary}");
    // The command fetched everything again itself; what is left is applying it (the
    // all-in-one's projector; `--target enricher` alone has none to wait for).
    let process = Dealflow::spawn(&plan.dealflow, target, dir, env)?;
    let until = if target == "all" {
        Until::Applied
    } else {
        Until::Idle
    };
    let (samples, drained_at) = watch(plan, process, distinct, until).await?;
    Ok(Reprocessed {
        took,
        summary,
        samples,
        drained_at,
    })
}

/// `events` records round-robin over the accounts and each account's orders, in chunks.
async fn publish_backlog(
    bus: &dyn EventBus,
    topics: &Topics,
    accounts: &[(IntegrationId, Vec<u64>)],
    events: usize,
) -> anyhow::Result<()> {
    let topic = topics.order_changed();
    let mut chunk = Vec::with_capacity(2000);
    for i in 0..events {
        let (id, orders) = &accounts[i % accounts.len()];
        let order_id = orders[(i / accounts.len()) % orders.len()];
        let envelope = Envelope::new(
            *id,
            Event::OrderChanged(OrderChanged {
                order_id,
                source: ChangeSource::Webhook,
                received_at: Utc::now(),
            }),
        );
        chunk.push(OutRecord::new(envelope.key(), envelope.encode()));
        if chunk.len() == chunk.capacity() {
            bus.publish(&topic, std::mem::take(&mut chunk)).await?;
            chunk.reserve(2000);
        }
    }
    if !chunk.is_empty() {
        bus.publish(&topic, chunk).await?;
    }
    Ok(())
}
