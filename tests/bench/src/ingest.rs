//! Benchmark 1: webhooks/s and latency of the bare handler, ingest on the embedded log and
//! ingest on Kafka (with each set of producer properties asked for), at each connection
//! count, side by side: every target is started once, then the rounds load them in turn
//! (bare, embedded, Kafka…, bare, embedded, Kafka…), and each figure is the median over the
//! rounds; a target's ratio to bare is the median of its per-round ratios (same round, same
//! moment of a noisy machine).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use dealflow_shared::bus::{EmbeddedLog, EmbeddedStats};

use crate::targets::{self, Target};
use crate::wrk::{self, WrkResult};

/// The bare handler's name (the ratios' denominator).
pub const BARE: &str = "bare axum";

/// How to load the targets.
#[derive(Debug, Clone)]
pub struct IngestPlan {
    /// The wrk Lua script (POST form webhooks).
    pub script: PathBuf,
    /// wrk threads.
    pub threads: usize,
    /// Connection counts, each measured on every target.
    pub connections: Vec<usize>,
    /// Length of each measured run.
    pub duration: Duration,
    /// Length of the unmeasured warm-up run before a target's first measurement.
    pub warmup: Duration,
    /// Rounds over every target and connection count.
    pub rounds: usize,
    /// Kafka targets: one per set of librdkafka properties over the product's defaults
    /// (`key=value;…`, as `DEALFLOW_KAFKA_PROPERTIES`; empty: the defaults). None: no Kafka.
    pub kafka: Vec<String>,
    /// If set, one more embedded-log run at the first connection count under
    /// `perf record -g`, written here.
    pub profile: Option<PathBuf>,
}

/// One target at one connection count: every round's result.
#[derive(Debug, Clone)]
pub struct IngestRow {
    pub target: String,
    pub connections: usize,
    pub rounds: Vec<WrkResult>,
}

impl IngestRow {
    /// The median of the rounds by webhooks/s.
    pub fn median(&self) -> &WrkResult {
        let mut sorted: Vec<&WrkResult> = self.rounds.iter().collect();
        sorted.sort_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec));
        sorted[sorted.len() / 2]
    }

    /// Each round's webhooks/s divided by `bare`'s of the same round, and their median.
    pub fn ratios(&self, bare: &IngestRow) -> (Vec<f64>, f64) {
        let mut ratios: Vec<f64> = self
            .rounds
            .iter()
            .zip(&bare.rounds)
            .map(|(r, b)| r.requests_per_sec / b.requests_per_sec)
            .collect();
        let per_round = ratios.clone();
        ratios.sort_by(f64::total_cmp);
        (per_round, ratios[ratios.len() / 2])
    }
}

/// The name of the Kafka target with `properties`.
fn kafka_name(properties: &str) -> String {
    if properties.trim().is_empty() {
        "ingest, Kafka (nisshi)".to_owned()
    } else {
        format!("ingest, Kafka (nisshi) `{}`", properties.trim())
    }
}

/// Runs every target at every connection count, `rounds` times, interleaved.
pub async fn run(plan: &IngestPlan) -> anyhow::Result<Vec<IngestRow>> {
    let mut targets: Vec<(String, Target)> = vec![
        (BARE.to_owned(), targets::bare().await?),
        (
            "ingest, embedded log".to_owned(),
            targets::ingest_embedded().await?,
        ),
    ];
    for properties in &plan.kafka {
        let parsed: BTreeMap<String, String> =
            dealflow_shared::config::parse_kafka_properties(properties)
                .map_err(|e| anyhow::anyhow!("--kafka {properties:?}: {e}"))?;
        targets.push((
            kafka_name(properties),
            targets::ingest_kafka(&parsed).await?,
        ));
    }
    for (_, target) in &targets {
        load(plan, &target.url, plan.connections[0], plan.warmup).await?;
    }
    let mut rows: Vec<IngestRow> = Vec::new();
    for round in 1..=plan.rounds {
        for &connections in &plan.connections {
            for (name, target) in &targets {
                let before = target.embedded.as_ref().map(EmbeddedLog::stats);
                let result = load(plan, &target.url, connections, plan.duration).await?;
                eprintln!(
                    "round {round}: {name} c{connections}: {:.0} req/s, p50 {:?}, p99 {:?}{}",
                    result.requests_per_sec,
                    result.p50,
                    result.p99,
                    group_commits(target.embedded.as_ref(), before, plan.duration)
                );
                match rows
                    .iter_mut()
                    .find(|r| &r.target == name && r.connections == connections)
                {
                    Some(row) => row.rounds.push(result),
                    None => rows.push(IngestRow {
                        target: name.clone(),
                        connections,
                        rounds: vec![result],
                    }),
                }
            }
        }
    }
    drop(targets);
    if let Some(path) = &plan.profile {
        profile(plan, path).await?;
    }
    Ok(rows)
}

/// `, N commits/s of M records` for the embedded log since `before` (empty otherwise): how
/// many webhooks shared each fsync.
fn group_commits(
    log: Option<&EmbeddedLog>,
    before: Option<EmbeddedStats>,
    run: Duration,
) -> String {
    let (Some(log), Some(before)) = (log, before) else {
        return String::new();
    };
    let after = log.stats();
    let commits = after.transactions - before.transactions;
    let records = after.records_appended - before.records_appended;
    format!(
        ", {:.0} commits/s of {:.1} records",
        commits as f64 / run.as_secs_f64(),
        records as f64 / commits.max(1) as f64
    )
}

async fn load(
    plan: &IngestPlan,
    url: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let (url, script, threads) = (url.to_string(), plan.script.clone(), plan.threads);
    // wrk blocks; keep the runtime's workers free to serve the target.
    tokio::task::spawn_blocking(move || wrk::run(&url, &script, threads, connections, duration))
        .await?
}

/// Profiles this process (where the servers run) while wrk loads ingest on the embedded log.
async fn profile(plan: &IngestPlan, path: &std::path::Path) -> anyhow::Result<()> {
    let target = targets::ingest_embedded().await?;
    load(plan, &target.url, plan.connections[0], plan.warmup).await?;
    let recorder = Command::new("perf")
        .args(["record", "-F", "499", "-g", "-o"])
        .arg(path)
        .arg("-p")
        .arg(std::process::id().to_string())
        .arg("--")
        .arg("sleep")
        .arg(plan.duration.as_secs().max(1).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record")?;
    let result = load(plan, &target.url, plan.connections[0], plan.duration).await?;
    let status = tokio::task::spawn_blocking(move || recorder.wait_with_output()).await??;
    eprintln!(
        "profiled run: {:.0} req/s (perf exit {})",
        result.requests_per_sec, status.status
    );
    Ok(())
}
