//! The embedded log's single writer task and its group commit.
//!
//! Every write (appends, offset commits, topic changes, retention) goes through one task that
//! owns the only writing connection. It takes a request, drains every other request already
//! waiting, applies them all in one `BEGIN IMMEDIATE` transaction and commits once, so
//! concurrent publishers share one fsync; only then does it answer them and wake consumers.
//! Offsets are assigned here, densely per topic, in the order requests were received.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

use super::super::{BusError, OutRecord, Position, Retention, TopicSpec};
use super::schema::{encode_headers, retention_from_sql, retention_to_sql};

/// Stop draining more requests into one transaction past this many records, to bound latency.
const MAX_BATCH_RECORDS: usize = 20_000;
/// Rows per multi-row INSERT (6 bound values each, far below SQLite's variable limit).
const INSERT_CHUNK: usize = 100;
/// How often retention runs on its own; the first sweep comes one minute after opening.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
const FIRST_RETENTION_SWEEP: Duration = Duration::from_secs(60);
const MS_PER_DAY: i64 = 86_400_000;

/// A write for the writer task, with where to send its outcome.
#[derive(Debug)]
pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done, BusError>>,
}

/// The writes the task knows.
#[derive(Debug)]
pub(super) enum Op {
    Publish {
        topic: String,
        records: Vec<OutRecord>,
    },
    CommitOffsets {
        group: String,
        offsets: Vec<(i64, i64)>,
    },
    EnsureTopics(Vec<TopicSpec>),
    ResetGroup {
        group: String,
        topic_ids: Vec<i64>,
    },
    Retention {
        now_ms: i64,
    },
}

/// A successful outcome, one variant per [`Op`].
#[derive(Debug)]
pub(super) enum Done {
    Published(Vec<Position>),
    Committed,
    TopicsEnsured,
    GroupReset,
    Retention(RetentionReport),
}

/// What one retention sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Records dropped from compacted topics because a newer record has the same key.
    pub compacted: u64,
    /// Records dropped from `Days(n)` topics because they are older than `n` days.
    pub expired: u64,
}

/// Counters shared with [`super::EmbeddedLog::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub transactions: AtomicU64,
    pub publish_requests: AtomicU64,
    pub records_appended: AtomicU64,
    pub offset_commits: AtomicU64,
}

#[derive(Debug, Clone)]
struct TopicState {
    id: i64,
    next_offset: i64,
    retention: Retention,
}

/// The task state. Holding the lock file keeps a second writer (another process, or a reopen
/// in this one) out until this writer has closed its connection.
pub(super) struct Writer {
    pub conn: SqliteConnection,
    pub rx: mpsc::Receiver<Request>,
    pub wake: watch::Sender<u64>,
    pub counters: Arc<Counters>,
    pub lock: File,
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Writer {
    /// Runs until every sender is dropped, then closes the connection and releases the lock.
    pub async fn run(mut self) {
        let mut topics = match load_topics(&mut self.conn).await {
            Ok(topics) => topics,
            Err(error) => {
                tracing::error!(%error, "embedded log writer could not load its topics");
                return;
            }
        };
        let start = tokio::time::Instant::now() + FIRST_RETENTION_SWEEP;
        let mut retention = tokio::time::interval_at(start, RETENTION_INTERVAL);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                request = self.rx.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
                _ = retention.tick() => {
                    let (reply, _ignored) = oneshot::channel();
                    Request { op: Op::Retention { now_ms: now_ms() }, reply }
                }
            };
            let mut batch = vec![first];
            let mut weight = weight(&batch[0].op);
            while weight < MAX_BATCH_RECORDS {
                let Ok(request) = self.rx.try_recv() else {
                    break;
                };
                weight += self::weight(&request.op);
                batch.push(request);
            }
            self.apply_batch(&mut topics, batch).await;
        }
        if let Err(error) = self.conn.close().await {
            tracing::warn!(%error, "closing the embedded log");
        }
        drop(self.lock);
    }

    /// Applies a batch in one transaction and answers every request.
    async fn apply_batch(&mut self, topics: &mut HashMap<String, TopicState>, batch: Vec<Request>) {
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|r| (r.op, r.reply)).unzip();
        let mut appended = false;
        match write(&mut self.conn, topics, &ops, &mut appended).await {
            Ok(outcomes) => {
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                // Count what was written: requests refused on their own (unknown topic) are not.
                for (op, _) in ops.iter().zip(&outcomes).filter(|(_, o)| o.is_ok()) {
                    match op {
                        Op::Publish { records, .. } => {
                            self.counters
                                .publish_requests
                                .fetch_add(1, Ordering::Relaxed);
                            let n = u64::try_from(records.len()).unwrap_or(u64::MAX);
                            self.counters
                                .records_appended
                                .fetch_add(n, Ordering::Relaxed);
                        }
                        Op::CommitOffsets { .. } => {
                            self.counters.offset_commits.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                if appended {
                    self.wake.send_modify(|generation| *generation += 1);
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The requester may have given up (timeout, dropped future); nothing to do.
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = replies.len(), "embedded log write failed");
                // In-memory offsets may have moved inside the rolled-back transaction.
                match load_topics(&mut self.conn).await {
                    Ok(reloaded) => *topics = reloaded,
                    Err(error) => tracing::error!(%error, "reloading embedded log topics"),
                }
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(BusError::fatal_msg(format!(
                        "writing to the embedded log: {message}"
                    ))));
                }
            }
        }
    }
}

/// How much a request adds to a batch (records for appends, 1 otherwise).
fn weight(op: &Op) -> usize {
    match op {
        Op::Publish { records, .. } => records.len().max(1),
        _ => 1,
    }
}

async fn load_topics(
    conn: &mut SqliteConnection,
) -> Result<HashMap<String, TopicState>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, name, retention, next_offset FROM topics")
        .fetch_all(conn)
        .await?;
    rows.into_iter()
        .map(|row| {
            let state = TopicState {
                id: row.try_get("id")?,
                next_offset: row.try_get("next_offset")?,
                retention: retention_from_sql(row.try_get("retention")?),
            };
            Ok((row.try_get("name")?, state))
        })
        .collect()
}

/// One transaction for the whole batch. A request that is invalid on its own (unknown topic)
/// gets its error without touching the others; a storage error fails the whole batch.
async fn write(
    conn: &mut SqliteConnection,
    topics: &mut HashMap<String, TopicState>,
    ops: &[Op],
    appended: &mut bool,
) -> Result<Vec<Result<Done, BusError>>, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut touched = HashSet::new();
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let outcome = match op {
            Op::Publish { topic, records } => {
                let result = append(&mut tx, topics, topic, records).await?;
                if result.as_ref().is_ok_and(|p| !p.is_empty()) {
                    *appended = true;
                    touched.insert(topic.clone());
                }
                result.map(Done::Published)
            }
            Op::CommitOffsets { group, offsets } => {
                for &(topic_id, next_offset) in offsets {
                    sqlx::query(
                        "INSERT INTO group_offsets (group_name, topic_id, next_offset) VALUES (?, ?, ?)
                         ON CONFLICT (group_name, topic_id) DO UPDATE SET next_offset = excluded.next_offset",
                    )
                    .bind(group)
                    .bind(topic_id)
                    .bind(next_offset)
                    .execute(&mut *tx)
                    .await?;
                }
                Ok(Done::Committed)
            }
            Op::EnsureTopics(specs) => {
                ensure_topics(&mut tx, topics, specs).await?;
                Ok(Done::TopicsEnsured)
            }
            Op::ResetGroup { group, topic_ids } => {
                for topic_id in topic_ids {
                    sqlx::query("DELETE FROM group_offsets WHERE group_name = ? AND topic_id = ?")
                        .bind(group)
                        .bind(topic_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(Done::GroupReset)
            }
            Op::Retention { now_ms } => Ok(Done::Retention(sweep(&mut tx, topics, *now_ms).await?)),
        };
        outcomes.push(outcome);
    }
    for name in touched {
        let state = &topics[&name];
        sqlx::query("UPDATE topics SET next_offset = ? WHERE id = ?")
            .bind(state.next_offset)
            .bind(state.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Appends records to one topic; the outer error is storage, the inner one this request's.
async fn append(
    conn: &mut SqliteConnection,
    topics: &mut HashMap<String, TopicState>,
    topic: &str,
    records: &[OutRecord],
) -> Result<Result<Vec<Position>, BusError>, sqlx::Error> {
    let Some(state) = topics.get_mut(topic) else {
        return Ok(Err(BusError::UnknownTopic(topic.to_owned())));
    };
    let mut encoded = Vec::with_capacity(records.len());
    for record in records {
        match encode_headers(&record.headers) {
            Ok(headers) => encoded.push(headers),
            Err(error) => return Ok(Err(error)),
        }
    }
    let appended_at = now_ms();
    let first = state.next_offset;
    let rows = records.iter().zip(encoded).zip(first..);
    let rows: Vec<_> = rows.collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO records (topic_id, offset, key, payload, headers, appended_at_ms) ",
        );
        insert.push_values(chunk, |mut row, ((record, headers), offset)| {
            row.push_bind(state.id)
                .push_bind(*offset)
                .push_bind(&record.key)
                .push_bind(&record.payload)
                .push_bind(headers.as_deref())
                .push_bind(appended_at);
        });
        insert.build().execute(&mut *conn).await?;
    }
    let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
    state.next_offset = first + count;
    Ok(Ok((first..state.next_offset)
        .map(|offset| Position {
            partition: 0,
            offset,
        })
        .collect()))
}

/// Creates missing topics and updates the retention of existing ones.
async fn ensure_topics(
    conn: &mut SqliteConnection,
    topics: &mut HashMap<String, TopicState>,
    specs: &[TopicSpec],
) -> Result<(), sqlx::Error> {
    for spec in specs {
        let retention = retention_to_sql(spec.retention);
        if let Some(state) = topics.get_mut(&spec.name) {
            if state.retention != spec.retention {
                sqlx::query("UPDATE topics SET retention = ? WHERE id = ?")
                    .bind(&retention)
                    .bind(state.id)
                    .execute(&mut *conn)
                    .await?;
                state.retention = spec.retention;
            }
            continue;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO topics (name, retention, next_offset) VALUES (?, ?, 0) RETURNING id",
        )
        .bind(&spec.name)
        .bind(&retention)
        .fetch_one(&mut *conn)
        .await?;
        let state = TopicState {
            id,
            next_offset: 0,
            retention: spec.retention,
        };
        topics.insert(spec.name.clone(), state);
    }
    Ok(())
}

/// Deletes superseded records of compacted topics and expired ones of `Days` topics.
async fn sweep(
    conn: &mut SqliteConnection,
    topics: &HashMap<String, TopicState>,
    now_ms: i64,
) -> Result<RetentionReport, sqlx::Error> {
    let mut report = RetentionReport::default();
    for state in topics.values() {
        match state.retention {
            Retention::Forever => {}
            Retention::Compacted => {
                report.compacted += sqlx::query(
                    "DELETE FROM records WHERE topic_id = ?1 AND offset NOT IN
                     (SELECT MAX(offset) FROM records WHERE topic_id = ?1 GROUP BY key)",
                )
                .bind(state.id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            }
            Retention::Days(days) => {
                let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(MS_PER_DAY));
                report.expired +=
                    sqlx::query("DELETE FROM records WHERE topic_id = ? AND appended_at_ms < ?")
                        .bind(state.id)
                        .bind(cutoff)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
            }
        }
    }
    if report != RetentionReport::default() {
        tracing::info!(
            compacted = report.compacted,
            expired = report.expired,
            "embedded log retention"
        );
    }
    Ok(report)
}
