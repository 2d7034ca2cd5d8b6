//! `dealflow reprocess --since <RFC 3339 time> [--integration ID]`: fetch again from RetailCRM
//! every order whose change reached dealflow since a time (after a mapping fix, or to redo a
//! window the enricher handled wrongly), through the same enricher as always.
//!
//! How: the enricher group's position on `order-changed` moves back to the first record
//! appended at or after `--since` (with `--integration`, only on the partition holding that
//! integration's account; other accounts there are fetched again too, which is harmless), then
//! this command runs an enricher itself until the group is back where the topic ended when it
//! started, with a progress bar, and stops; enrichers started afterwards continue from there.
//! Each order is fetched once however many records name it, inside the account's budget.
//!
//! It races with running enrichers (they hold the group's partitions), so it refuses while any
//! runs: stop `--target enricher` (or the all-in-one) first. ingest and the projector may keep
//! running; on the embedded log the all-in-one holds the log, so it is stopped anyway. What is
//! fetched again becomes domain events; the read model shows it once a projector applies them
//! (the running projectors, or `dealflow run` on one machine).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use dealflow_enricher::{EnricherService, EnricherSettings};
use dealflow_shared::bus::{BusError, EventBus, GroupStart, partition_for};
use dealflow_shared::config::{Config, vars};
use dealflow_shared::events::IntegrationId;
use dealflow_shared::metrics::Metrics;
use dealflow_shared::registry::Registry;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets};
use dealflow_shared::topics::{Topics, order_changed_key};
use dealflow_shared::{telemetry, wiring};
use tokio_util::sync::CancellationToken;

use crate::progress::{Progress, per_second};

/// How often the group's position is read while the enricher works.
const CHECK_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// Fetch again every order whose change arrived at or after this time (RFC 3339, for
    /// example 2026-12-01T00:00:00Z).
    #[arg(long, value_parser = parse_since)]
    since: DateTime<Utc>,
    /// Only the orders of this integration's RetailCRM account (and of the accounts sharing
    /// its partition).
    #[arg(long)]
    integration: Option<IntegrationId>,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time like 2026-12-01T00:00:00Z ({e})"))
}

/// The position of the enricher group on `order-changed`, per partition.
type Offsets = Vec<(i32, i64)>;

pub async fn run(args: ReprocessArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    if args.since > Utc::now() {
        bail!("--since {} is in the future", args.since.to_rfc3339());
    }
    let secrets = wiring::load_or_generate_secrets(&config).context("reading the secrets")?;
    let topics = Topics::new(config.topic_prefix.clone());
    let bus = open_bus_alone(&config, "dealflow-reprocess").await?;
    let settings = EnricherSettings::from_config(&config, secrets.secret_key);
    let group = settings.consumer_group.clone();
    let topic = topics.order_changed();

    let only = match args.integration {
        Some(id) => Some(vec![account_partition(&bus, &topics, id, &shutdown).await?]),
        None => None,
    };
    let reset = bus
        .reset_group(
            &group,
            std::slice::from_ref(&topic),
            GroupStart::Since(args.since),
            only.as_deref(),
        )
        .await;
    match reset {
        Ok(()) => {}
        Err(BusError::GroupBusy(_)) => bail!(
            "the enricher group {group} has running members: stop every `dealflow run --target \
             enricher` (or the all-in-one) first; reprocess runs the enricher itself until it \
             has caught up, and they continue from there"
        ),
        Err(e) => return Err(e).context("moving the enricher group back"),
    }
    let from = bus.committed_offsets(&group, &topic).await?;
    let target = bus.end_offsets(&topic).await?;
    let total = behind(&from, &target);
    println!(
        "reprocess: the enricher group {group} moved back to {} on {}: {total} order changes to read again",
        args.since.to_rfc3339(),
        match &only {
            Some(p) => format!("partition {}", p[0]),
            None => format!("{} partition(s)", target.len()),
        },
    );
    if total == 0 {
        println!("nothing arrived since then; nothing to fetch");
        return Ok(());
    }

    // Ingest may be running beside this command and keeps one request per second of each
    // account for its key checks; on the embedded log nothing else runs.
    let budget = match config.kafka {
        Some(_) => BudgetSettings::enricher_beside_ingest(config.crm_rps),
        None => BudgetSettings::with_rps(config.crm_rps),
    }
    .with_context(|| format!("{}: {}", vars::CRM_RPS, config.crm_rps))?;
    // This process serves no HTTP: its progress is the bar.
    let mut settings = settings;
    settings.listen = None;
    let enricher =
        EnricherService::build(settings, bus.clone(), Budgets::new(budget), Metrics::new())
            .await
            .context("building the enricher")?;
    let stop = shutdown.child_token();
    let running = tokio::spawn(enricher.run_until_stopped(stop.clone()));

    let progress = Progress::new("order changes");
    let mut done = 0;
    let caught_up = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break false,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        if running.is_finished() {
            break false;
        }
        let now = bus.committed_offsets(&group, &topic).await?;
        done = total - behind(&now, &target).min(total);
        progress.update(done as u64, total as u64);
        if done >= total {
            break true;
        }
    };
    progress.finish();
    stop.cancel();
    running
        .await
        .context("the enricher panicked")?
        .context("the enricher failed")?;
    let elapsed = progress.elapsed();
    if !caught_up {
        println!(
            "reprocess interrupted after {:.1}s: {done} of {total} order changes read again; \
             enrichers started now continue from there",
            elapsed.as_secs_f64()
        );
        return Ok(());
    }
    println!(
        "reprocess finished in {:.1}s: {total} order changes read again ({:.0}/s); the fetched \
         orders are on the domain topics, and the read model shows them once a projector \
         applies them",
        elapsed.as_secs_f64(),
        per_second(total as u64, elapsed),
    );
    Ok(())
}

/// Records between the group's position and `target`, summed over partitions.
fn behind(position: &Offsets, target: &Offsets) -> i64 {
    target
        .iter()
        .map(|(partition, end)| {
            let at = position
                .iter()
                .find(|(p, _)| p == partition)
                .map_or(0, |(_, offset)| *offset);
            (end - at).max(0)
        })
        .sum()
}

/// The `order-changed` partition of an integration's account (its records are keyed by it).
async fn account_partition(
    bus: &Arc<dyn EventBus>,
    topics: &Topics,
    id: IntegrationId,
    shutdown: &CancellationToken,
) -> anyhow::Result<i32> {
    let registry = Registry::new();
    let stop = shutdown.child_token();
    let group = format!(
        "{}reprocess-registry-{}",
        topics.prefix(),
        uuid::Uuid::now_v7().simple()
    );
    let following = tokio::spawn(registry.clone().follow(
        bus.clone(),
        topics.integrations(),
        group,
        stop.clone(),
    ));
    tokio::select! {
        _ = registry.wait_ready() => {}
        _ = shutdown.cancelled() => bail!("interrupted"),
    }
    stop.cancel();
    let _ = following.await;
    let integration = registry
        .get(id)
        .with_context(|| format!("--integration {id}: there is no such integration"))?;
    let partitions = bus.end_offsets(&topics.order_changed()).await?.len();
    let partitions = i32::try_from(partitions).context("partition count")?;
    Ok(partition_for(
        &order_changed_key(&integration.crm_url),
        partitions,
    ))
}

/// Opens the bus for a command that must not share the embedded log with a running process.
pub async fn open_bus_alone(config: &Config, client_id: &str) -> anyhow::Result<Arc<dyn EventBus>> {
    wiring::open_bus(config, client_id).await.with_context(|| {
        if config.kafka.is_some() {
            "opening the event bus".to_string()
        } else {
            format!(
                "opening the embedded event log in {} (one process at a time: stop `dealflow \
                 run` first)",
                config.data_dir.display()
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_must_be_a_zoned_time() {
        assert!(parse_since("2026-12-01T00:00:00Z").is_ok());
        assert_eq!(
            parse_since("2026-12-01T03:00:00+03:00").unwrap(),
            parse_since("2026-12-01T00:00:00Z").unwrap()
        );
        let refused = parse_since("2026-12-01 00:00").unwrap_err();
        assert!(refused.contains("RFC 3339"), "{refused}");
    }

    #[test]
    fn behind_counts_each_partition_up_to_its_target() {
        let target = vec![(0, 10), (1, 5), (2, 0)];
        assert_eq!(behind(&vec![(0, 4), (1, 5)], &target), 6);
        // A partition never committed counts from 0; one past the target counts nothing.
        assert_eq!(behind(&vec![(0, 12)], &target), 5);
    }
}
