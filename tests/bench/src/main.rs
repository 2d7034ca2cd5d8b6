//! dealflow-bench: the benchmark suite of issue 9. Not a test: `tests/bench/run.sh` builds it
//! in release, runs it and appends its tables to `BENCHMARKS.md`.
//!
//! - `dealflow-bench ingest`: webhooks/s and p50/p99 at each connection count for a bare axum
//!   handler, ingest on the embedded log and ingest on Kafka (nisshi), loaded by `wrk`
//!   ([`ingest`], [`targets`], [`wrk`]);
//! - `dealflow-bench enricher`: a burst against the simulator's rate limit ([`enricher`]).
//!
//! Each prints a Markdown table on stdout; progress goes to stderr.

mod enricher;
mod ingest;
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
            profile,
        } => {
            anyhow::ensure!(!connections.is_empty(), "no connection counts");
            let plan = ingest::IngestPlan {
                script,
                threads,
                connections,
                duration: Duration::from_secs(seconds),
                warmup: Duration::from_secs(warmup),
                kafka: !no_kafka,
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
            let mut rows = Vec::new();
            for shape in [enricher::Shape::Rounds, enricher::Shape::Adjacent] {
                rows.push(enricher::run(1, orders, per_order, shape).await?);
                eprintln!("one account: {:?}", rows.last());
            }
            if accounts > 0 {
                let shape = enricher::Shape::Rounds;
                rows.push(enricher::run(accounts, account_orders, 2, shape).await?);
            }
            print_enricher(&rows);
        }
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn print_ingest(plan: &ingest::IngestPlan, rows: &[ingest::IngestRow]) {
    println!(
        "#### Ingest: webhooks/s (wrk -t{}, {} s per run, POST form `orderId=N`)\n",
        plan.threads,
        plan.duration.as_secs()
    );
    println!("| target | connections | webhooks/s | p50 | p99 | errors | ÷ bare |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let bare = rows
            .iter()
            .find(|b| b.target == "bare axum" && b.connections == row.connections)
            .map(|b| b.result.requests_per_sec)
            .unwrap_or(f64::NAN);
        let r = &row.result;
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.2} |",
            row.target,
            row.connections,
            r.requests_per_sec,
            ms(r.p50),
            ms(r.p99),
            r.non_2xx + r.socket_errors,
            r.requests_per_sec / bare
        );
    }
    println!();
}

fn print_enricher(rows: &[enricher::EnricherRow]) {
    println!("#### Enricher against the budget (simulator, 10 req/s per account; embedded log)\n");
    println!(
        "Webhook order: *rounds* = every order once, then every order again (a repeat after \
         the fetch must be fetched again); *adjacent* = an order's webhooks back to back. \
         Timed from the first webhook to the last order's deal; the ceiling is 100 orders per \
         call × the enricher's budget per account. A deleted order is missing from the list \
         answer and costs one more call (`GET /orders/{{id}}` → `Not found`).\n"
    );
    println!(
        "| accounts | orders (deleted) | webhooks (order) | time | orders/s | fetch calls | calls/order | \
         % of ceiling | worst account lag | busiest second | 503s |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} ({}) | {} ({}) | {:.2} s | {:.0} | {} ({} in all) | {:.3} | {:.0} % of {:.0}/s | {:.2} s | {} req | {} |",
            r.accounts,
            r.orders,
            r.deleted,
            r.webhooks,
            match r.shape {
                enricher::Shape::Rounds => "rounds",
                enricher::Shape::Adjacent => "adjacent",
            },
            r.elapsed.as_secs_f64(),
            r.orders_per_sec(),
            r.fetch_calls,
            r.all_calls,
            r.fetch_calls as f64 / r.orders as f64,
            100.0 * r.orders_per_sec() / r.ceiling(),
            r.ceiling(),
            r.worst_lag.as_secs_f64(),
            r.max_per_second,
            r.rate_limited,
        );
    }
    println!();
}
