//! Rebuilding the read model from the topics (`dealflow replay [--integration ID]`).
//!
//! A replay reads the source topics from the beginning with a fresh consumer group (it never
//! commits, so nothing is left behind) and applies them through the same code as the consumer,
//! all in ONE transaction: readers keep seeing the old view until the rebuilt one commits.
//!
//! - Everything: the read model is emptied and rebuilt up to the topics' end offsets as they
//!   were when the replay started; the applied offsets are set to those, so a consumer that
//!   starts afterwards skips what the replay applied.
//! - One integration: its rows are emptied and its events re-applied up to the offsets the
//!   read model had applied, so it ends exactly where the rest of the view is; the consumer
//!   continues from there as before.
//!
//! Between steps the deal rows, stage histories and traces of hot orders stay in memory and are
//! written once they go cold (at most one step's worth of orders; `apply::write_back`): an
//! order's events spread over several steps, and reading and rewriting its rows at each was
//! most of a PostgreSQL replay's time.
//!
//! `integration_activity` (the latest webhook) is kept: its source, `order-changed`, expires
//! after days, so it cannot always be rebuilt; re-applying what is left only moves it forward.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::Conn;
use dealflow_shared::bus::{Consumer, Delivered, EventBus};
use dealflow_shared::events::Envelope;
use dealflow_shared::events::IntegrationId;

use crate::apply::batch::{self, Decoded};
use crate::apply::letters::Letter;
use crate::apply::write_back::WriteBack;
use crate::apply::{Applied, apply_events};
use crate::error::ProjectorError;
use crate::metrics::ProjectorMetrics;
use crate::settings::ProjectorSettings;
use crate::store::{Sql, Store, StoreError, TABLES, upkeep};

/// Empty polls (after partitions are assigned) before the rest of a target is given up as
/// gone: records at the tail of `order-changed` expire, so its end offset may be unreachable.
const IDLE_POLLS: u32 = 5;
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a replay step waits for more records once it has some.
const MORE_TIMEOUT: Duration = Duration::from_millis(5);

/// Where a replay is, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Records read within the replay's target so far.
    pub records_read: u64,
    /// Records to read (an upper bound: compaction and retention leave gaps).
    pub records_total: u64,
    /// Events applied so far.
    pub events_applied: u64,
    /// True on the last report, once the rebuilt view is committed.
    pub finished: bool,
}

/// What a finished replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub records_read: u64,
    pub applied: Applied,
    /// Records that could not be decoded (the consumer dead-lettered them when it met them).
    pub invalid: u64,
    pub elapsed: Duration,
}

/// Rebuilds the read model of `settings` from the topics on `bus`: everything, or only
/// `integration`. Run it while no projector consumes into the same database, or that consumer
/// will re-read from the start (correctly, but for nothing).
pub async fn replay(
    settings: &ProjectorSettings,
    bus: Arc<dyn EventBus>,
    integration: Option<IntegrationId>,
    progress: impl Fn(ReplayProgress),
) -> Result<ReplayReport, ProjectorError> {
    let store = Store::open(&settings.database_url).await?;
    let result = run(&store, settings, &bus, integration, &progress, None).await;
    store.close().await;
    result
}

#[tracing::instrument(skip_all, fields(integration = ?integration), err)]
pub(crate) async fn run(
    store: &Store,
    settings: &ProjectorSettings,
    bus: &Arc<dyn EventBus>,
    integration: Option<IntegrationId>,
    progress: &dyn Fn(ReplayProgress),
    metrics: Option<&ProjectorMetrics>,
) -> Result<ReplayReport, ProjectorError> {
    let started = Instant::now();
    let topics = settings.source_topics();
    let targets: BTreeMap<(String, i32), i64> = match integration {
        None => {
            let mut ends = BTreeMap::new();
            for topic in &topics {
                for (partition, end) in bus.end_offsets(topic).await? {
                    ends.insert((topic.clone(), partition), end);
                }
            }
            ends
        }
        Some(_) => store
            .applied_offsets()
            .await?
            .into_iter()
            .filter(|((topic, _), _)| topics.contains(topic))
            .collect(),
    };
    let total = targets
        .values()
        .map(|n| u64::try_from(*n).unwrap_or(0))
        .sum();
    let remaining: BTreeMap<(String, i32), i64> = targets
        .iter()
        .filter(|(_, end)| **end > 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect();

    let group = format!(
        "{}-replay-{}",
        settings.group,
        uuid::Uuid::now_v7().simple()
    );
    let mut consumer = bus.subscribe(&group, &topics).await?;
    let mut tx = store
        .begin_write()
        .await
        .map_err(StoreError::query("starting a replay"))?;
    let mut conn = tx.conn();
    clear(&mut conn, integration).await?;

    let mut report = ReplayReport {
        records_read: 0,
        applied: Applied::default(),
        invalid: 0,
        elapsed: Duration::ZERO,
    };
    let mut reader = Reader {
        consumer: consumer.as_mut(),
        max: settings.replay_batch_size,
        targets: &targets,
        remaining,
        integration,
    };
    // The steps' rows stay in memory while their orders are hot (emptied tables: the memo
    // knows which orders have no rows yet).
    let mut memo = WriteBack::new(settings.replay_batch_size);
    let mut idle = 0;
    let mut step = reader.step().await?;
    loop {
        report.records_read += step.read;
        report.invalid += step.invalid;
        if step.polled == 0 {
            if reader.remaining.is_empty() {
                break;
            }
            if !reader.consumer.assignment().is_empty() {
                idle += 1;
                if idle >= IDLE_POLLS {
                    tracing::warn!(
                        partitions = ?reader.remaining.keys().collect::<Vec<_>>(),
                        "the tail of these partitions is gone (retention); replay ends here"
                    );
                    break;
                }
            }
            step = reader.step().await?;
            continue;
        }
        idle = 0;
        let envelopes: Vec<&Envelope> = step.envelopes.iter().collect();
        // The next step is read and decoded while this one is written. The read goes first:
        // on SQLite the write runs on this thread, so the read must have been sent by then.
        let (next, applied) = tokio::join!(
            reader.step(),
            apply_events(
                &mut conn,
                store.dialect(),
                &envelopes,
                &step.letters,
                Some(&mut memo)
            )
        );
        let (applied, next) = (applied?, next?);
        report.applied.add(&applied);
        if let Some(metrics) = metrics {
            metrics.set_replay(report.records_read, total);
        }
        progress(ReplayProgress {
            records_read: report.records_read,
            records_total: total,
            events_applied: report.applied.total(),
            finished: false,
        });
        drop(envelopes);
        step = next;
    }
    report.applied.deals_written += memo.flush_all(&mut conn, store.dialect()).await? as u64;
    if integration.is_none() {
        let next: Vec<((&str, i32), i64)> = targets
            .iter()
            .filter(|(_, end)| **end > 0)
            .map(|((topic, partition), end)| ((topic.as_str(), *partition), *end))
            .collect();
        batch::store_offsets(&mut conn, &next).await?;
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing a replay"))?;
    // Every row is new: statistics and visibility for the rebuilt tables before the replay
    // reports done (`store::upkeep`); a failure leaves them to autovacuum.
    if let Err(error) = upkeep::run(store).await {
        tracing::warn!(%error, "table upkeep after the replay failed");
    }
    report.elapsed = started.elapsed();
    progress(ReplayProgress {
        records_read: report.records_read,
        records_total: total,
        events_applied: report.applied.total(),
        finished: true,
    });
    tracing::info!(
        records = report.records_read,
        events = report.applied.total(),
        elapsed = ?report.elapsed,
        "replay finished"
    );
    Ok(report)
}

/// The records of one replay step within the targets, decoded.
#[derive(Debug, Default)]
struct ReadStep {
    /// Records polled, within the targets or not (none: the poll timed out).
    polled: usize,
    /// Records within the targets.
    read: u64,
    invalid: u64,
    envelopes: Vec<Envelope>,
    letters: Vec<Letter>,
}

/// Reads the replay's records, step by step.
struct Reader<'a> {
    consumer: &'a mut dyn Consumer,
    /// Records per step.
    max: usize,
    /// The end offset of each partition.
    targets: &'a BTreeMap<(String, i32), i64>,
    /// Partitions not yet read up to their target.
    remaining: BTreeMap<(String, i32), i64>,
    /// The integration replayed (`None`: every one).
    integration: Option<IntegrationId>,
}

impl Reader<'_> {
    /// Reads one step: polls until the step is full or the bus has no more at once (a poll
    /// returns at most what is already fetched, so one poll alone is often smaller), keeps
    /// what is within the targets (marking partitions done) and of the integration replayed,
    /// decoded. Empty once every partition is read.
    async fn step(&mut self) -> Result<ReadStep, ProjectorError> {
        if self.remaining.is_empty() {
            return Ok(ReadStep::default());
        }
        let max = self.max;
        let consumer = &mut *self.consumer;
        let mut records = consumer.poll(max, POLL_TIMEOUT).await?;
        while !records.is_empty() && records.len() < max {
            let more = consumer.poll(max - records.len(), MORE_TIMEOUT).await?;
            if more.is_empty() {
                break;
            }
            records.extend(more);
        }
        let polled = records.len();
        records.retain(|record| within(self.targets, &mut self.remaining, record));
        // Decoded on a blocking thread, so the step being written meanwhile keeps its pace.
        let decoded = batch::Polled::decode_aside(records).await;
        let mut step = ReadStep {
            polled,
            read: decoded.len() as u64,
            ..ReadStep::default()
        };
        for (record, decoded) in decoded.into_parts() {
            match decoded {
                Decoded::Event(e) if self.integration.is_none_or(|id| id == e.integration_id) => {
                    step.envelopes.push(e)
                }
                Decoded::Letter(l) if self.integration.is_none_or(|id| id == l.integration_id) => {
                    step.letters.push(l)
                }
                Decoded::Event(_) | Decoded::Letter(_) | Decoded::Skipped => {}
                Decoded::Invalid(reason) => {
                    // The consumer dead-lettered it when it met it.
                    batch::dead_letter(&record, &reason, None).await?;
                    step.invalid += 1;
                }
            }
        }
        Ok(step)
    }
}

/// Whether `record` is below its partition's target; marks the partition done at the last one.
fn within(
    targets: &BTreeMap<(String, i32), i64>,
    remaining: &mut BTreeMap<(String, i32), i64>,
    record: &Delivered,
) -> bool {
    let key = (record.topic.clone(), record.partition);
    let target = targets.get(&key).copied().unwrap_or(0);
    if record.offset + 1 >= target {
        remaining.remove(&key);
    }
    record.offset < target
}

/// Empties what the replay rebuilds.
async fn clear(conn: &mut Conn<'_>, integration: Option<IntegrationId>) -> Result<(), StoreError> {
    for (table, _) in TABLES {
        if *table == "integration_activity" {
            continue;
        }
        let sql = match integration {
            None => Sql::new(&format!("DELETE FROM {table}")),
            // Offsets describe the whole view, which a one-integration replay does not move.
            Some(_) if *table == "applied_offsets" => continue,
            Some(id) => {
                let column = if matches!(*table, "integrations" | "removed_integrations") {
                    "id"
                } else {
                    "integration_id"
                };
                let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE {column} = "));
                sql.bind(id.to_string());
                sql
            }
        };
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("clearing the read model for a replay"))?;
    }
    Ok(())
}
