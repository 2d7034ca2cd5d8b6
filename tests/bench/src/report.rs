//! Markdown tables of the end-to-end and memory benchmarks ([`crate::e2e`], [`crate::backlog`]).

use std::time::Duration;

use crate::backlog::{BacklogBus, BacklogRun};
use crate::e2e::E2eRow;
use crate::memory::mib;

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn secs(s: f64) -> String {
    if s.is_nan() {
        "–".into()
    } else if s.is_infinite() {
        "> 300 s".into()
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

pub fn print_e2e(rows: &[E2eRow], poll: Duration) {
    let Some(first) = rows.first() else { return };
    println!(
        "#### End to end: webhook accepted (202) → new version in the read API ({} webhooks/s for {} s over {} accounts, open loop)\n",
        first.rate,
        first.duration.as_secs(),
        first.accounts
    );
    println!(
        "Each webhook follows a real edit of its order in the simulator (no injected latency, \
         10 req/s per account enforced); a change is visible when the deals list \
         (`?changed_since=`, polled every {} ms per integration) first shows that version or a \
         later one, so the figures include up to one poll interval.\n",
        poll.as_millis()
    );
    println!(
        "*Late sends*: webhooks the load generator sent more than 100 ms after their time (it \
         shares the cores). *Never seen*: accepted changes not visible {} s after the load; in \
         brackets, how many of them a full read of the deals (no window) found.\n",
        rows.first().map_or(0, |r| r.drain.as_secs())
    );
    println!(
        "| layout | sent | accepted | late sends | 202 p50 / p99 | visible p50 | p90 | p99 | max | never seen (in a full read) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} / {} | {} | {} | **{}** | {} | {} ({}) |",
            r.layout.label(),
            r.sent,
            r.accepted,
            r.late,
            ms(r.accept_p50),
            ms(r.accept_p99),
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            ms(r.max),
            r.unseen,
            r.unseen_in_full_read
        );
    }
    println!();
    println!("Memory and CPU of each process during the load (RSS from `/proc/<pid>/status`):\n");
    println!("| layout | process | RSS before | RSS max | RSS after drain | VmHWM | cores used |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        for m in &r.memory {
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.2} |",
                r.layout.label(),
                m.label,
                mib(m.before_kib),
                mib(m.max_kib),
                mib(m.after_kib),
                mib(m.hwm_kib),
                m.cores
            );
        }
    }
    println!();
    println!(
        "Where the time goes (the processes' own histograms over the load; p50/p99 are bucket \
         upper bounds):\n"
    );
    println!("| layout | histogram | count | mean | p50 ≤ | p99 ≤ |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in rows {
        for (name, h) in &r.stages {
            println!(
                "| {} | `{}` | {:.0} | {} | {} | {} |",
                r.layout.label(),
                name,
                h.count,
                secs(h.mean()),
                secs(h.quantile_bound(0.5)),
                secs(h.quantile_bound(0.99))
            );
        }
    }
    println!();
    for r in rows {
        println!(
            "Read load of the pollers ({}): {} requests, {} deals returned ({:.0} requests/s).",
            r.layout.label(),
            r.polls,
            r.deals_read,
            r.polls as f64 / r.duration.as_secs_f64()
        );
    }
    println!();
}

pub fn print_backlog(runs: &[BacklogRun]) {
    for run in runs {
        let plan = &run.plan;
        let bus = match plan.bus {
            BacklogBus::Embedded => "embedded log",
            BacklogBus::Kafka => "Kafka (nisshi)",
        };
        println!(
            "#### Enricher memory with a backlog of {} `OrderChanged` ({} orders over {} accounts; `dealflow run --target {}` on the {bus}; {})\n",
            plan.events,
            run.distinct,
            plan.accounts,
            run.target,
            if plan.hold {
                "every API key revoked: the backlog is held"
            } else if plan.reprocess {
                "drained, then reprocessed"
            } else {
                "drained"
            }
        );
        let samples = &run.samples;
        let rss: Vec<u64> = samples.iter().map(|s| s.reading.rss_kib).collect();
        let (first, last) = (
            rss.first().copied().unwrap_or(0),
            rss.last().copied().unwrap_or(0),
        );
        let max = rss.iter().copied().max().unwrap_or(0);
        // After the start-up (first 10 s), the spread of the RSS says whether it grows.
        let settled: Vec<u64> = samples
            .iter()
            .filter(|s| s.reading.at >= Duration::from_secs(10))
            .map(|s| s.reading.rss_kib)
            .collect();
        println!(
            "Backlog published in {:.1} s. RSS first sample {}, max {}, last {}; from 10 s on: min {}, max {}. {}\n",
            run.published_in.as_secs_f64(),
            mib(first),
            mib(max),
            mib(last),
            mib(settled.iter().copied().min().unwrap_or(0)),
            mib(settled.iter().copied().max().unwrap_or(0)),
            match run.drained_at {
                Some(d) => format!("Drained after {:.0} s.", d.as_secs_f64()),
                None if plan.hold => format!("Held for {} s.", plan.limit.as_secs()),
                None => format!("Not drained within {} s.", plan.limit.as_secs()),
            }
        );
        print_backlog_samples(samples);
        if let Some(r) = &run.reprocessed {
            println!(
                "Then `dealflow reprocess --since <before the backlog>` with the process stopped (it fetches every order again itself): {:.1} s (\"{}\"); started again, {}\n",
                r.took.as_secs_f64(),
                r.summary,
                match r.drained_at {
                    Some(d) => format!(
                        "what it fetched was applied after {:.0} s.",
                        d.as_secs_f64()
                    ),
                    None => format!("not applied within {} s.", plan.limit.as_secs()),
                }
            );
            print_backlog_samples(&r.samples);
        }
    }
}

/// The samples of a backlog run, one row per ten seconds and the last.
fn print_backlog_samples(samples: &[crate::backlog::BacklogSample]) {
    println!(
        "| t | RSS | VmHWM | CPU s | consumer lag | waiting orders | unfinished records | orders fetched | projector lag | events applied |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
    let mut next = Duration::ZERO;
    for (i, s) in samples.iter().enumerate() {
        let last = i + 1 == samples.len();
        if s.reading.at < next && !last {
            continue;
        }
        next = s.reading.at + Duration::from_secs(10);
        println!(
            "| {:.0} s | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            s.reading.at.as_secs_f64(),
            mib(s.reading.rss_kib),
            mib(s.reading.hwm_kib),
            s.reading.cpu.as_secs_f64(),
            opt(s.consumer_lag),
            opt(s.waiting_orders),
            opt(s.unfinished_records),
            opt(s.orders_fetched),
            opt(s.projector_lag),
            opt(s.events_applied)
        );
    }
    println!();
}
