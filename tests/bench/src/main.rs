//! dealflow-bench: the benchmark suite of issue 9. Not a test: `tests/bench/run.sh` builds it
//! in release, runs it and appends its tables to `BENCHMARKS.md`.
//!
//! - `dealflow-bench ingest`: webhooks/s and p50/p99 at each connection count for a bare axum
//!   handler, ingest on the embedded log and ingest on Kafka (nisshi), loaded by `wrk`
//!   ([`ingest`], [`targets`], [`wrk`]);
//! - `dealflow-bench enricher`: a burst against the simulator's rate limit ([`enricher`]);
//! - `dealflow-bench e2e`: webhook accepted → deal visible in the read API at a sustained
//!   rate, with each process's RSS and CPU, against the release `dealflow` binary ([`e2e`],
//!   [`procs`], [`memory`], [`prom`]);
//! - `dealflow-bench backlog`: the enricher's RSS over time with 1M `OrderChanged` waiting
//!   ([`backlog`]);
//! - `dealflow-bench accounts`: 1,000 accounts on one enricher: its RSS and CPU, the worst
//!   account's lag and whether every account's reconciliation kept its interval ([`accounts`]).
//!
//! Each prints a Markdown table on stdout; progress goes to stderr.

/// The `dealflow` binary's allocator: `ingest` runs its targets (and the bare handler they
/// are compared with) in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod accounts;
mod backlog;
mod e2e;
mod enricher;
mod ingest;
mod memory;
mod procs;
mod prom;
mod report;
mod seed;
mod targets;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "dealflow's benchmark suite (prints Markdown tables)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest vs a bare axum handler, loaded by wrk.
    Ingest {
        /// The wrk Lua script.
        #[arg(long, default_value = "tests/bench/webhook.lua")]
        script: PathBuf,
        /// wrk threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Connection counts.
        #[arg(long, value_delimiter = ',', default_value = "64,256")]
        connections: Vec<usize>,
        /// Seconds per measured run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of warm-up per target.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Skip ingest on Kafka.
        #[arg(long)]
        no_kafka: bool,
        /// Rounds over every target (interleaved; figures are medians).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// librdkafka properties of one more Kafka target, `key=value;…` over the product's
        /// defaults (repeatable; compare producer settings side by side).
        #[arg(long = "kafka-variant")]
        kafka_variants: Vec<String>,
        /// Profile one more embedded-log run with `perf record -g` into this file.
        #[arg(long)]
        profile: Option<PathBuf>,
    },
    /// The enricher against the RetailCRM budget (simulator, 10 req/s per account).
    Enricher {
        /// Orders of the single-account burst.
        #[arg(long, default_value_t = 5000)]
        orders: usize,
        /// Webhooks per order in the single-account burst.
        #[arg(long, default_value_t = 4)]
        per_order: usize,
        /// Accounts of the many-accounts run (0 skips it).
        #[arg(long, default_value_t = 50)]
        accounts: usize,
        /// Orders per account in the many-accounts run.
        #[arg(long, default_value_t = 200)]
        account_orders: usize,
    },
    /// End to end: webhook accepted → deal visible, at a sustained rate (real processes).
    E2e {
        /// The release dealflow binary (`cargo build --release --bin dealflow`).
        #[arg(long)]
        dealflow: PathBuf,
        /// Layouts to run: `all` (embedded log + SQLite), `split` (Kafka + PostgreSQL).
        #[arg(long, value_delimiter = ',', default_value = "all")]
        layouts: Vec<String>,
        /// Webhooks per second over all accounts.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Seconds of sustained load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Accounts the load is spread over.
        #[arg(long, default_value_t = 10)]
        accounts: usize,
        /// Generated orders per account.
        #[arg(long, default_value_t = 2000)]
        orders: usize,
        /// Milliseconds between two reads of an integration's deals.
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
        /// Seconds the last changes may take to show after the load.
        #[arg(long, default_value_t = 60)]
        drain: u64,
        /// PostgreSQL server of the split layout (a scratch database is created, then dropped).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        postgres: String,
        /// `perf record -g` the all-in-one (or the enricher) during the load into this file.
        #[arg(long)]
        profile: Option<PathBuf>,
    },
    /// The enricher's RSS over time with a backlog of `OrderChanged` (real process).
    Backlog {
        /// The release dealflow binary (`cargo build --release --bin dealflow`).
        #[arg(long)]
        dealflow: PathBuf,
        /// `embedded` (`--target all`) or `kafka` (`--target enricher` on nisshi).
        #[arg(long, default_value = "embedded")]
        bus: String,
        /// Records in the backlog.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        accounts: usize,
        /// Generated orders per account.
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        /// Modes: `drain` (keys work), `hold` (keys revoked: the backlog stays queued) and/or
        /// `reprocess` (drain, `dealflow reprocess --since` before the backlog, drain again).
        #[arg(long, value_delimiter = ',', default_value = "drain,hold")]
        modes: Vec<String>,
        /// Longest time a run is watched, in seconds.
        #[arg(long, default_value_t = 180)]
        limit: u64,
    },
    /// Many accounts on one enricher: RSS, CPU, lag and reconciliation (real process).
    Accounts {
        /// The release dealflow binary (`cargo build --release --bin dealflow`).
        #[arg(long)]
        dealflow: PathBuf,
        /// `kafka` (`--target enricher` alone on nisshi), `embedded` (`--target all`), or
        /// `auto`: kafka when nisshi is on PATH.
        #[arg(long, default_value = "auto")]
        bus: String,
        /// Simulated RetailCRM accounts, each connected as one integration.
        #[arg(long, default_value_t = 1000)]
        accounts: usize,
        /// Generated orders per account.
        #[arg(long, default_value_t = 20)]
        orders: usize,
        /// Webhooks per second over all accounts.
        #[arg(long, default_value_t = 300)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// The enricher's `DEALFLOW_RECONCILE_INTERVAL`, in seconds.
        #[arg(long, default_value_t = 30)]
        reconcile: u64,
        /// Seconds the enricher may take to empty its queues after the load.
        #[arg(long, default_value_t = 60)]
        drain: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ingest {
            script,
            threads,
            connections,
            seconds,
            warmup,
            no_kafka,
            rounds,
            kafka_variants,
            profile,
        } => {
            anyhow::ensure!(!connections.is_empty(), "no connection counts");
            anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
            // wrk without its script sends bodiless GETs: every webhook a 400, "measured".
            anyhow::ensure!(
                script.is_file(),
                "no wrk script at {} (the default is relative to the repository root)",
                script.display()
            );
            let kafka = if no_kafka {
                Vec::new()
            } else {
                std::iter::once(String::new())
                    .chain(kafka_variants)
                    .collect()
            };
            let plan = ingest::IngestPlan {
                script,
                threads,
                connections,
                duration: Duration::from_secs(seconds),
                warmup: Duration::from_secs(warmup),
                rounds,
                kafka,
                profile,
            };
            let rows = ingest::run(&plan).await?;
            print_ingest(&plan, &rows);
        }
        Command::Enricher {
            orders,
            per_order,
            accounts,
            account_orders,
        } => {
            let rows = enricher::run_suite(orders, per_order, accounts, account_orders).await?;
            enricher::print(&rows);
        }
        Command::E2e {
            dealflow,
            layouts,
            rate,
            seconds,
            accounts,
            orders,
            poll_ms,
            drain,
            postgres,
            profile,
        } => {
            anyhow::ensure!(
                rate > 0 && accounts > 0,
                "rate and accounts must be positive"
            );
            let mut rows = Vec::new();
            for layout in layouts {
                let layout = match layout.as_str() {
                    "all" => e2e::Layout::AllInOne,
                    "split" => e2e::Layout::Split,
                    other => anyhow::bail!("unknown layout {other:?} (all or split)"),
                };
                let plan = e2e::E2ePlan {
                    dealflow: dealflow.clone(),
                    layout,
                    rate,
                    duration: Duration::from_secs(seconds),
                    accounts,
                    orders,
                    poll: Duration::from_millis(poll_ms),
                    drain: Duration::from_secs(drain),
                    postgres: postgres.clone(),
                    // One profile per run: of the first layout.
                    profile: if rows.is_empty() {
                        profile.clone()
                    } else {
                        None
                    },
                };
                let row = e2e::run(&plan).await?;
                eprintln!("e2e: {row:?}");
                rows.push(row);
            }
            report::print_e2e(&rows, Duration::from_millis(poll_ms));
        }
        Command::Backlog {
            dealflow,
            bus,
            events,
            accounts,
            orders,
            modes,
            limit,
        } => {
            let bus = match bus.as_str() {
                "embedded" => backlog::BacklogBus::Embedded,
                "kafka" => backlog::BacklogBus::Kafka,
                other => anyhow::bail!("unknown bus {other:?} (embedded or kafka)"),
            };
            let mut runs = Vec::new();
            for mode in modes {
                let (hold, reprocess) = match mode.as_str() {
                    "drain" => (false, false),
                    "hold" => (true, false),
                    "reprocess" => (false, true),
                    other => anyhow::bail!("unknown mode {other:?} (drain, hold or reprocess)"),
                };
                let plan = backlog::BacklogPlan {
                    dealflow: dealflow.clone(),
                    bus,
                    events,
                    accounts,
                    orders,
                    hold,
                    limit: Duration::from_secs(limit),
                    reprocess,
                };
                runs.push(backlog::run(&plan).await?);
            }
            report::print_backlog(&runs);
        }
        Command::Accounts {
            dealflow,
            bus,
            accounts,
            orders,
            rate,
            seconds,
            reconcile,
            drain,
        } => {
            let bus = match bus.as_str() {
                "embedded" => backlog::BacklogBus::Embedded,
                "kafka" => backlog::BacklogBus::Kafka,
                "auto" if e2e::which("nisshi") => backlog::BacklogBus::Kafka,
                "auto" => backlog::BacklogBus::Embedded,
                other => anyhow::bail!("unknown bus {other:?} (auto, embedded or kafka)"),
            };
            let plan = accounts::AccountsPlan {
                dealflow,
                bus,
                accounts,
                orders,
                rate,
                duration: Duration::from_secs(seconds),
                reconcile: Duration::from_secs(reconcile),
                drain: Duration::from_secs(drain),
            };
            accounts::print(&accounts::run(&plan).await?);
        }
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn print_ingest(plan: &ingest::IngestPlan, rows: &[ingest::IngestRow]) {
    println!(
        "#### Ingest: webhooks/s (wrk -t{}, {} s per run, POST form `orderId=N`; {} rounds \
         interleaved, medians)\n",
        plan.threads,
        plan.duration.as_secs(),
        plan.rounds
    );
    println!(
        "| target | connections | webhooks/s | p50 | p99 | errors | ÷ bare | ÷ bare per round |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let bare = rows
            .iter()
            .find(|b| b.target == ingest::BARE && b.connections == row.connections)
            .expect("bare runs at every connection count");
        let (per_round, ratio) = row.ratios(bare);
        let r = row.median();
        let errors: u64 = row.rounds.iter().map(|r| r.non_2xx + r.socket_errors).sum();
        let per_round: Vec<String> = per_round.iter().map(|x| format!("{x:.2}")).collect();
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.2} | {} |",
            row.target,
            row.connections,
            r.requests_per_sec,
            ms(r.p50),
            ms(r.p99),
            errors,
            ratio,
            per_round.join(" / ")
        );
    }
    println!();
}
