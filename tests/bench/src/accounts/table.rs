//! The run's Markdown tables, as the other benchmarks print theirs.

use std::time::Duration;

use super::figures::{SAME_READ, SLACK};
use super::{AccountsRun, WATCH_EVERY};
use crate::backlog::BacklogBus;
use crate::memory::mib;

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// The run's Markdown tables.
pub fn print(run: &AccountsRun) {
    let plan = &run.plan;
    let layout = match plan.bus {
        BacklogBus::Kafka => {
            "`dealflow run --target enricher` alone on Kafka (nisshi), changes published to \
             `order-changed` as ingest would"
        }
        BacklogBus::Embedded => {
            "the all-in-one `dealflow run` on the embedded log + SQLite, changes sent as \
             webhooks: RSS and CPU are the whole process's"
        }
    };
    println!(
        "#### Many accounts: {} accounts on one enricher ({} webhooks/s for {} s, round-robin; `DEALFLOW_RECONCILE_INTERVAL={}s`)\n",
        plan.accounts,
        plan.rate,
        plan.duration.as_secs(),
        plan.reconcile.as_secs()
    );
    println!(
        "{layout}. Simulator: {} orders per account (10 req/s each), started in {}; every \
         account's reference data loaded {} after the process was ready; queues empty (the \
         enricher's gauges; its lag is measured every 5 s) {} after the load; {} observed from connecting; {} 503s from the simulator's limit.\n",
        plan.orders,
        secs(run.sim_started_in),
        secs(run.loaded_in),
        run.drained_in
            .map_or_else(|| format!("not within {} s", plan.drain.as_secs()), secs),
        secs(run.observed),
        run.rate_limited
    );
    let r = &run.resources;
    println!(
        "| process | RSS at ready | RSS, every account loaded | RSS peak | RSS end | VmHWM | cores: warm-up | cores: load | cores: whole run |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |\n",
        run.target,
        mib(r.at_ready_kib),
        mib(r.loaded_kib),
        mib(r.peak_kib),
        mib(r.end_kib),
        mib(r.hwm_kib),
        r.cores_warm_up,
        r.cores_load,
        r.cores_run
    );
    let (times, rss): (Vec<String>, Vec<String>) = r
        .timeline
        .iter()
        .map(|(at, kib)| {
            (
                format!("{:.0} s", at.as_secs_f64()),
                format!("{:.0}", *kib as f64 / 1024.0),
            )
        })
        .unzip();
    println!(
        "RSS over the run (MiB; from ready: warm-up, load from {:.0} s to {:.0} s, drain):\n",
        run.load.0.as_secs_f64(),
        run.load.1.as_secs_f64()
    );
    println!("| t | {} |", times.join(" | "));
    println!("|---|{}", "---:|".repeat(times.len()));
    println!("| RSS | {} |\n", rss.join(" | "));
    let l = &run.lags;
    println!(
        "Lag: webhook acknowledged (bus ack or 202) → the first deal event (its `occurred_at`) \
         showing that version or a later one. *Late sends*: sent over 100 ms after their time.\n"
    );
    println!(
        "| webhooks | acknowledged | late sends | shown | p50 | p99 | worst account's worst (account) | accounts with a change never shown |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | **{}** (#{}) | {} |\n",
        l.sent,
        l.acknowledged,
        l.late,
        l.seen,
        ms(l.p50),
        ms(l.p99),
        ms(l.worst),
        l.worst_account,
        l.accounts_unseen
    );
    let c = &run.reconciliations;
    println!(
        "Reconciliation: every `GET /api/v5/orders/history` the simulator served, per account \
         (counters read every {} ms; calls under {} s apart are one read). A gap runs from \
         connecting to the first read, between reads, or from the last read to the end of the \
         run when that is over the interval. The enricher schedules the next read one interval \
         after the last one began; the counters are sampled, so gaps sit up to a sample over \
         it; *missed* is over interval + {} s.\n",
        WATCH_EVERY.as_millis(),
        SAME_READ.as_secs(),
        SLACK.as_secs()
    );
    println!(
        "| interval | history calls | reads (enricher's count) | reads per account | largest gap (account) | connect → first read | between reads | p99 gap | median gap | accounts > interval | accounts missed |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} s | {} | {} ({}) | {}–{} | **{}** (#{}) | {} | {} | {} | {} | {} | **{}** |\n",
        plan.reconcile.as_secs(),
        c.calls,
        c.reads,
        c.counted.map_or("–".to_string(), |n| format!("{n:.0}")),
        c.fewest,
        c.most,
        secs(c.largest),
        c.largest_account,
        secs(c.largest_first),
        secs(c.largest_between),
        secs(c.p99),
        secs(c.median),
        c.over,
        c.missed
    );
}
