//! Benchmark 1: webhooks/s and latency of the bare handler, ingest on the embedded log and
//! ingest on Kafka, at each connection count, side by side (same run, same machine).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use dealflow_shared::bus::{EmbeddedLog, EmbeddedStats};

use crate::targets::{self, Target};
use crate::wrk::{self, WrkResult};

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
    /// Whether to run the Kafka target (needs `nisshi` on PATH).
    pub kafka: bool,
    /// If set, one more embedded-log run at the first connection count under
    /// `perf record -g`, written here.
    pub profile: Option<PathBuf>,
}

/// One measured cell.
#[derive(Debug, Clone)]
pub struct IngestRow {
    pub target: &'static str,
    pub connections: usize,
    pub result: WrkResult,
}

/// Runs every target at every connection count.
pub async fn run(plan: &IngestPlan) -> anyhow::Result<Vec<IngestRow>> {
    let mut rows = Vec::new();
    let names: Vec<&'static str> = if plan.kafka {
        vec![
            "bare axum",
            "ingest, embedded log",
            "ingest, Kafka (nisshi)",
        ]
    } else {
        vec!["bare axum", "ingest, embedded log"]
    };
    for name in names {
        let target = start(name).await?;
        load(plan, &target.url, plan.connections[0], plan.warmup).await?;
        for &connections in &plan.connections {
            let before = target.embedded.as_ref().map(EmbeddedLog::stats);
            let result = load(plan, &target.url, connections, plan.duration).await?;
            eprintln!(
                "{name} c{connections}: {:.0} req/s, p50 {:?}, p99 {:?}{}",
                result.requests_per_sec,
                result.p50,
                result.p99,
                group_commits(target.embedded.as_ref(), before, plan.duration)
            );
            rows.push(IngestRow {
                target: name,
                connections,
                result,
            });
        }
        drop(target);
    }
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

async fn start(name: &str) -> anyhow::Result<Target> {
    match name {
        "bare axum" => targets::bare().await,
        "ingest, embedded log" => targets::ingest_embedded().await,
        _ => targets::ingest_kafka().await,
    }
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
