//! projector-bench: how fast the projector applies events into PostgreSQL and SQLite.
//!
//! Generates a synthetic stream (several integrations, realistic status paths, duplicates,
//! late snapshots, deletions), publishes it to an embedded log, then runs the real consumer
//! into a fresh database and times it until every record is applied; then times a full replay,
//! a page of the deals list and a full CSV export. Not a test: it prints figures.
//!
//! `cargo bench -p dealflow-projector --bench projector-bench -- --events 100000`
//!
//! With `--export-only --events 1000000`: one integration with a million deals, only the
//! exports and page reads (issue 16's CSV figure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use dealflow_projector::{Projector, ProjectorSettings, replay};
use dealflow_shared::bus::{EmbeddedLog, EventBus, OutRecord};
use dealflow_shared::config::DatabaseUrl;
use dealflow_shared::events::{
    Event, IntegrationConfigured, IntegrationId, Revenue, StageOutcome, StageRule,
};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::topics::Topics;
use dealflow_synthetic::{self as synthetic, Spec};
use secrecy::SecretString;
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;

/// The allocator the `dealflow` binary runs with, so that the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "Times the projector applying a synthetic event stream")]
struct Args {
    /// Roughly how many events to generate.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Integrations the events are spread over.
    #[arg(long, default_value_t = 4)]
    integrations: usize,
    /// Records per batch (one transaction each).
    #[arg(long, default_value_t = dealflow_projector::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Records per replay step.
    #[arg(long, default_value_t = dealflow_projector::DEFAULT_REPLAY_BATCH_SIZE)]
    replay_batch_size: usize,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    database: String,
    /// A PostgreSQL database to connect to for creating (and dropping) the benchmark database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_admin: String,
    /// Only the export and the page reads, at scale: one integration with `--events` deals,
    /// each order's last snapshot only (generated 100k orders at a time, so memory stays flat);
    /// no setting change, no replay.
    #[arg(long)]
    export_only: bool,
    /// Keep the PostgreSQL benchmark database (its name is printed) to look at its plans.
    #[arg(long)]
    keep_postgres: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Events one generated order makes on average (snapshots, webhooks, contact, extras).
const EVENTS_PER_ORDER: usize = 6;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir()?;
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedLog::open(dir.path().join("events.db")).await?);
    let topics = Topics::new("bench.");
    bus.ensure_topics(&topics.specs(1)).await?;
    let started = Instant::now();
    let (integrations, events) = if args.export_only {
        publish_last_snapshots(bus.as_ref(), &topics, args.events).await?
    } else {
        let orders = (args.events / EVENTS_PER_ORDER / args.integrations.max(1)).max(1);
        let stream = synthetic::generate(&Spec {
            seed: 1,
            integrations: args.integrations,
            orders_per_integration: orders,
        });
        synthetic::publish(bus.as_ref(), &topics, &stream.events).await?;
        println!(
            "generated {} events ({} integrations × {orders} orders)",
            stream.events.len(),
            args.integrations,
        );
        (stream.integrations, stream.events.len())
    };
    println!("published to the embedded log in {:.1?}", started.elapsed());

    if matches!(args.database.as_str(), "sqlite" | "both") {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
        let url = DatabaseUrl::Sqlite(SecretString::from(url));
        let changed = (Revenue::Margin, &integrations[..]);
        run("SQLite", url, &args, &bus, &topics, events, changed).await?;
    }
    if matches!(args.database.as_str(), "postgres" | "both") {
        let name = format!("bench_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::AnyConnection::connect(&args.postgres_admin)
            .await
            .context("connecting to PostgreSQL (--postgres-admin)")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let base = args.postgres_admin.rsplit_once('/').map_or("", |(b, _)| b);
        let url = DatabaseUrl::Postgres(SecretString::from(format!("{base}/{name}")));
        let changed = (Revenue::Paid, &integrations[..]);
        let result = run("PostgreSQL", url, &args, &bus, &topics, events, changed).await;
        if args.keep_postgres {
            println!("PostgreSQL: kept the database {name}");
        } else {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
        }
        result?;
    }
    Ok(())
}

async fn run(
    label: &str,
    url: DatabaseUrl,
    args: &Args,
    bus: &Arc<dyn EventBus>,
    topics: &Topics,
    events: usize,
    (revenue, integrations): (Revenue, &[IntegrationId]),
) -> anyhow::Result<()> {
    let mut settings = ProjectorSettings::new(
        "127.0.0.1:0".parse()?,
        "http://127.0.0.1:8080".parse()?,
        url,
        topics.clone(),
        SecretString::from("bench-api-token-0123456789"),
        SecretString::from("bench-secret-key-0123456789-0123456789-0123456789"),
    );
    settings.batch_size = args.batch_size;
    settings.replay_batch_size = args.replay_batch_size;
    settings.group = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let projector = Projector::open(settings.clone(), bus.clone(), &Metrics::new()).await?;
    let mut ends = Vec::new();
    for topic in settings.source_topics() {
        for (partition, end) in bus.end_offsets(&topic).await? {
            ends.push(((topic.clone(), partition), end));
        }
    }

    // Apply: the real consumer loop, timed until the database has every offset.
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let consumer = {
        let projector = projector.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { projector.run_consumer(shutdown).await })
    };
    loop {
        let applied = projector.store().applied_offsets().await?;
        if ends
            .iter()
            .all(|(k, end)| applied.get(k).copied().unwrap_or(0) >= *end)
        {
            break;
        }
        anyhow::ensure!(!consumer.is_finished(), "the consumer stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let applied_in = started.elapsed();
    println!(
        "{label}: applied {events} events in {applied_in:.2?}: {:.0} events/s (batches of {})",
        events as f64 / applied_in.as_secs_f64(),
        args.batch_size
    );

    // Setting changes (issue 16): every integration's revenue changes at once, then its stage
    // mapping (an open status counted as won, another excluded); each timed until the running
    // consumer has applied it, i.e. re-derived every deal, with no RetailCRM call.
    let (running, consumer_task) = (&projector, &consumer);
    let change = |config: fn(&mut IntegrationConfigured, Revenue)| async move {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        let records: Vec<OutRecord> = integrations
            .iter()
            .map(|id| {
                let mut settings = synthetic::configured(false, true, chrono::Utc::now());
                config(&mut settings, revenue);
                let envelope = synthetic::envelope(
                    &mut rng,
                    *id,
                    chrono::Utc::now(),
                    Event::IntegrationConfigured(settings),
                );
                OutRecord::new(envelope.key(), envelope.encode())
            })
            .collect();
        let started = Instant::now();
        let topic = topics.integrations();
        let positions = bus.publish(&topic, records).await?;
        loop {
            let applied = running.store().applied_offsets().await?;
            if positions.iter().all(|p| {
                applied
                    .get(&(topic.clone(), p.partition))
                    .is_some_and(|done| *done > p.offset)
            }) {
                break;
            }
            anyhow::ensure!(!consumer_task.is_finished(), "the consumer stopped early");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok(started.elapsed())
    };
    if args.export_only {
        shutdown.cancel();
        consumer.await??;
        return reads(label, &projector, None).await;
    }
    let rederived_in = change(|c, revenue| c.revenue = revenue).await?;
    let remapped_in = change(|c, revenue| {
        c.revenue = revenue;
        c.stage_mapping = [
            ("send-to-delivery", Some(StageOutcome::Won), false),
            ("assembling", None, true),
        ]
        .into_iter()
        .map(|(code, outcome, excluded)| (code.to_owned(), StageRule { outcome, excluded }))
        .collect();
    })
    .await?;
    shutdown.cancel();
    consumer.await??;

    // Replay: everything, in one transaction; its peak memory above what the process held.
    let before = rss_kib();
    reset_peak_rss();
    let started = Instant::now();
    let report = replay(&settings, bus.clone(), None, |_| {}).await?;
    let took = started.elapsed();
    println!(
        "{label}: full replay of {} records in {took:.2?}: {:.0} records/s (steps of {}); \
         peak RSS +{} MiB over the {} MiB before",
        report.records_read,
        report.records_read as f64 / took.as_secs_f64(),
        args.replay_batch_size,
        status_kib("VmHWM:").saturating_sub(before) / 1024,
        before / 1024,
    );

    reads(
        label,
        &projector,
        Some((revenue, integrations.len(), rederived_in, remapped_in)),
    )
    .await
}

/// The reads at the end of a run: the deals pages, both CSV exports with the resident memory
/// while they stream, and what each page reads; `rederived` adds the re-derivation figures
/// (they need the deal count the list reports).
async fn reads(
    label: &str,
    projector: &Projector,
    rederived: Option<(Revenue, usize, Duration, Duration)>,
) -> anyhow::Result<()> {
    // Reads through the HTTP API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(axum::serve(listener, projector.router()).into_future());
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1/integrations");
    let list: serde_json::Value = http
        .get(&base)
        .bearer_auth("bench-api-token-0123456789")
        .send()
        .await?
        .json()
        .await?;
    let id = list["items"][0]["id"]
        .as_str()
        .context("an integration")?
        .to_owned();
    let deals = list["items"][0]["deals_count"].as_i64().unwrap_or_default();
    let all_deals: i64 = list["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["deals_count"].as_i64()).sum())
        .unwrap_or_default();
    if let Some((revenue, integrations, rederived_in, remapped_in)) = rederived {
        println!(
            "{label}: revenue → {} for {integrations} integrations: every deal ({all_deals} counted: not deleted nor excluded) \
             re-derived in {rederived_in:.2?}",
            revenue.as_str(),
        );
        println!(
            "{label}: stage mapping (an open status won, another excluded) for {integrations} integrations: \
             every deal re-derived from its stage history in {remapped_in:.2?}",
        );
    }
    let mut page_times = Vec::new();
    for query in ["", "?outcome=won", "?site=shop-outlet&limit=500"] {
        let started = Instant::now();
        let response = http
            .get(format!("{base}/{id}/deals{query}"))
            .bearer_auth("bench-api-token-0123456789")
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "deals page failed");
        response.bytes().await?;
        page_times.push(format!("{query:?} {:.1?}", started.elapsed()));
    }
    println!(
        "{label}: deals pages of one integration ({deals} deals): {}",
        page_times.join(", ")
    );
    for file in ["deals.csv", "deal-items.csv"] {
        // Resident memory while the export streams (the server runs in this process): the
        // peak against the level before shows whether the export holds its rows.
        let before = rss_kib();
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let started = Instant::now();
        let mut response = http
            .get(format!("{base}/{id}/{file}"))
            .bearer_auth("bench-api-token-0123456789")
            .send()
            .await?;
        // Read chunk by chunk, so the memory measured is the server's, not a held body.
        let (mut bytes, mut lines) = (0_usize, 0_usize);
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let took = started.elapsed();
        let rows = lines.saturating_sub(1);
        sampler.abort();
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{label}: {file} of one integration: {rows} rows ({} KiB) in {took:.2?}: {:.0} rows/s; \
             RSS {} MiB before, peak {} MiB while streaming",
            bytes / 1024,
            rows as f64 / took.as_secs_f64(),
            before / 1024,
            peak / 1024,
        );
    }
    // What each page reads (issue 19: pages render in < 100 ms for 100k deals), through the
    // typed reads the page handlers call, median of 5 rounds (the templates themselves are
    // microseconds: 50 rows at most).
    let reads = projector.reads();
    let scope = dealflow_shared::tenants::Scope::Operator;
    let order = {
        let page = reads.deal_page(&scope, &id, Some("limit=1")).await.ok();
        page.and_then(|p| p.items.first().map(|d| d.order_id.to_string()))
            .context("a deal")?
    };
    let month_ago = chrono::Utc::now() - chrono::Duration::days(30);
    let mut timings: Vec<(&str, Vec<Duration>)> = vec![
        ("integration page", vec![]),
        ("deals page", vec![]),
        ("deal page", vec![]),
    ];
    for _ in 0..5 {
        let started = Instant::now();
        api(reads.integration(&scope, &id).await)?;
        api(reads.stage_mapping(&scope, &id, None).await)?;
        api(reads.sync(&scope, &id, None).await)?;
        api(reads.dead_letters(&scope, &id, None).await)?;
        timings[0].1.push(started.elapsed());
        let started = Instant::now();
        api(reads.integration(&scope, &id).await)?;
        api(reads.deal_page(&scope, &id, None).await)?;
        api(reads.funnels(&scope, &id, None).await)?;
        api(reads.charts(&scope, &id, month_ago).await)?;
        api(reads.stage_mapping(&scope, &id, None).await)?;
        timings[1].1.push(started.elapsed());
        let started = Instant::now();
        api(reads.integration(&scope, &id).await)?;
        api(reads.trace(&scope, &id, &order, None).await)?;
        api(reads.deal(&scope, &id, &order, None).await)?;
        timings[2].1.push(started.elapsed());
    }
    let medians: Vec<String> = timings
        .iter_mut()
        .map(|(page, times)| {
            times.sort();
            format!("{page} {:.1?}", times[times.len() / 2])
        })
        .collect();
    println!(
        "{label}: page reads of one integration ({deals} deals), median of 5: {}",
        medians.join(", ")
    );
    server.abort();
    projector.store().close().await;
    Ok(())
}

/// A read's answer, its error as the message it carries.
fn api<T>(answer: Result<T, dealflow_shared::http::ApiError>) -> anyhow::Result<T> {
    answer.map_err(|e| anyhow::anyhow!("{}: {}", e.status, e.message))
}

/// This process's resident memory in KiB (`VmRSS`; 0 where /proc is absent).
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// A KiB figure of /proc/self/status (0 where /proc is absent).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts the peak resident memory (`VmHWM`) over from the current one (Linux; a no-op
/// elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Orders generated at a time for `--export-only`.
const CHUNK: usize = 100_000;
/// Order ids of chunk `k` are moved up by `k × ORDER_ID_STRIDE` so chunks never collide.
const ORDER_ID_STRIDE: u64 = 10_000_000;

/// Publishes one integration with `orders` deals, each order's last snapshot only: generated
/// [`CHUNK`] orders at a time (each chunk's order ids moved apart, its events re-keyed to the
/// first chunk's integration, whose settings and stages are kept), so memory stays at one
/// chunk. Returns the integration and the events published.
async fn publish_last_snapshots(
    bus: &dyn EventBus,
    topics: &Topics,
    orders: usize,
) -> anyhow::Result<(Vec<IntegrationId>, usize)> {
    let mut integration = None;
    let mut published = 0;
    for chunk in 0..orders.div_ceil(CHUNK) {
        let stream = synthetic::generate(&Spec {
            seed: chunk as u64 + 1,
            integrations: 1,
            orders_per_integration: CHUNK.min(orders - chunk * CHUNK),
        });
        let id = *integration.get_or_insert(stream.integrations[0]);
        // The last snapshot of each order wins; everything else only from the first chunk.
        let mut last = std::collections::HashMap::new();
        for (at, (_, envelope)) in stream.events.iter().enumerate() {
            if let Event::DealUpserted(deal) = &envelope.event {
                last.insert(deal.order_id, at);
            }
        }
        let kept: Vec<_> = stream
            .events
            .into_iter()
            .enumerate()
            .filter_map(|(at, (source, mut envelope))| {
                match &mut envelope.event {
                    Event::DealUpserted(deal) if last.get(&deal.order_id) == Some(&at) => {
                        deal.order_id += chunk as u64 * ORDER_ID_STRIDE;
                    }
                    Event::DealUpserted(_) | Event::DealDeleted(_) => return None,
                    _ if chunk > 0 => return None,
                    _ => {}
                }
                envelope.integration_id = id;
                Some((source, envelope))
            })
            .collect();
        synthetic::publish(bus, topics, &kept).await?;
        published += kept.len();
    }
    println!("generated one integration × {orders} orders: {published} events (last snapshots)");
    Ok((integration.into_iter().collect(), published))
}
