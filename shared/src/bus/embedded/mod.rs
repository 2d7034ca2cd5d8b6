//! The embedded log: the event bus in one SQLite file, for the single-machine default.
//!
//! - **Durable on ack**: WAL with `synchronous=FULL`; `publish` answers after the fsynced commit.
//! - **Group commit**: one writer thread ([`writer`]) batches every waiting request into one
//!   transaction, so concurrent publishers share one fsync ([`EmbeddedLog::stats`] counts them).
//! - **Checkpoints off the commit path**: WAL pages are copied into the file by a background
//!   thread, not inside a commit ([`crate::sqlite_checkpoint`]).
//! - **Order**: one partition per topic; offsets are dense and assigned in arrival order, so the
//!   order per key (and overall) is the publish order.
//! - **Groups**: committed offsets per `(group, topic)`. A group has **at most one active
//!   member**: a second `subscribe` for a group whose consumer is still alive fails with
//!   [`BusError::GroupBusy`] (there is nothing to split with one partition per topic).
//! - **Wake-ups**: consumers wait on a `watch` channel carrying each topic's end offset, updated
//!   after each commit that appended records; they read the file only when one of their topics
//!   has moved past their position, never by polling it.
//! - **One process**: a `<file>.lock` advisory lock keeps a second process (or a second open in
//!   this one) from writing the same file; opening waits briefly for a previous instance in this
//!   process to finish closing, then fails with a clear error.
//! - **Retention**: a sweep (hourly, and on demand) drops records superseded by a newer one with
//!   the same key on compacted topics and records older than `n` days on `Days(n)` topics.
//!   Offsets never repeat after a sweep.
//!
//! Files: [`writer`] is the writer thread, [`batch`] its group-commit transaction, [`protocol`]
//! what is exchanged with it, [`retention`] the sweep, [`consumer`] a group member, [`schema`]
//! the tables, [`lock`] the one-process lock.

mod batch;
mod consumer;
mod lock;
mod protocol;
mod retention;
mod schema;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::{mpsc, oneshot, watch};

pub use consumer::EmbeddedConsumer;
pub use retention::RetentionReport;

use super::{BusError, Consumer, EventBus, GroupStart, OutRecord, Position, TopicSpec};
use crate::sqlite_readers::ReadConnections;
use lock::lock_file;
use protocol::{Counters, Done, Op, Request, TopicEnds};
use retention::schedule_retention;
use writer::WriterSetup;

/// SQLite's own wait for a lock (readers during a checkpoint, say).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Queued write requests before publishers wait (backpressure).
const REQUEST_QUEUE: usize = 1024;
/// Connections for consumers and metadata reads (WAL readers never block the writer).
const READ_CONNECTIONS: usize = 4;

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Committed write transactions (each is one fsync).
    pub transactions: u64,
    /// `publish` calls written.
    pub publish_requests: u64,
    /// Records appended.
    pub records_appended: u64,
    /// Consumer offset commits written.
    pub offset_commits: u64,
}

/// The embedded log. Cheap to clone; the file closes when the last clone and the last consumer
/// are dropped.
#[derive(Debug, Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    requests: mpsc::Sender<Request>,
    reader: ReadConnections,
    wake: watch::Receiver<TopicEnds>,
    counters: Arc<Counters>,
    active_groups: Mutex<HashSet<String>>,
}

impl EmbeddedLog {
    /// Opens (or creates) the log at `path`, creating its directory if needed.
    #[tracing::instrument(skip_all, fields(path = %path.as_ref().display()), err)]
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, BusError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                BusError::fatal(format!("creating the directory {}", dir.display()), e)
            })?;
        }
        let lock = lock_file(&path).await?;
        let (requests, rx) = mpsc::channel(REQUEST_QUEUE);
        let (wake_tx, wake) = watch::channel(TopicEnds::new());
        let counters = Arc::new(Counters::default());
        // The writer creates the file and its schema before any reader connects.
        writer::start(WriterSetup {
            path: path.clone(),
            busy_timeout: BUSY_TIMEOUT,
            rx,
            wake: wake_tx,
            counters: Arc::clone(&counters),
            lock,
        })
        .await?;
        // Readers only read: WAL readers never block the writer, and the journal mode is the
        // file's (set by the writer).
        let opening =
            |e| BusError::fatal(format!("opening the embedded log {}", path.display()), e);
        let reader = ReadConnections::new(
            (0..READ_CONNECTIONS)
                .map(|_| {
                    let conn = Connection::open(&path)?;
                    conn.busy_timeout(BUSY_TIMEOUT)?;
                    Ok(conn)
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(opening)?,
        );
        tokio::spawn(schedule_retention(requests.downgrade()));
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                requests,
                reader,
                wake,
                counters,
                active_groups: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Counters since this log was opened.
    pub fn stats(&self) -> EmbeddedStats {
        let c = &self.inner.counters;
        EmbeddedStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            publish_requests: c.publish_requests.load(Ordering::Relaxed),
            records_appended: c.records_appended.load(Ordering::Relaxed),
            offset_commits: c.offset_commits.load(Ordering::Relaxed),
        }
    }

    /// Runs the retention sweep now (it also runs hourly on its own).
    pub async fn enforce_retention(&self) -> Result<RetentionReport, BusError> {
        self.enforce_retention_at(SystemTime::now()).await
    }

    /// Runs the retention sweep as if the time were `now` (records are stamped when appended).
    #[tracing::instrument(skip_all, err)]
    pub async fn enforce_retention_at(&self, now: SystemTime) -> Result<RetentionReport, BusError> {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        match self.call(Op::Retention { now_ms }).await? {
            Done::Retention(report) => Ok(report),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one write to the writer thread and waits for its outcome.
    async fn call(&self, op: Op) -> Result<Done, BusError> {
        let (reply, outcome) = oneshot::channel();
        self.inner
            .requests
            .send(Request { op, reply })
            .await
            .map_err(|_| BusError::fatal_msg("the embedded log writer has stopped"))?;
        outcome
            .await
            .map_err(|_| BusError::fatal_msg("the embedded log writer has stopped"))?
    }

    /// Resolves topic names to ids, failing on the first unknown one.
    async fn topic_ids(&self, topics: &[String]) -> Result<Vec<i64>, BusError> {
        let mut ids = Vec::with_capacity(topics.len());
        for topic in topics {
            let query = "SELECT id FROM topics WHERE name = ?";
            let id = topic_value(&self.inner.reader, query, topic).await?;
            ids.push(id.ok_or_else(|| BusError::UnknownTopic(topic.clone()))?);
        }
        Ok(ids)
    }

    /// Claims `group` for one member until the returned guard drops.
    fn claim_group(&self, group: &str) -> Result<GroupClaim, BusError> {
        let mut active = lock_groups(&self.inner.active_groups);
        if !active.insert(group.to_owned()) {
            return Err(BusError::GroupBusy(group.to_owned()));
        }
        Ok(GroupClaim {
            log: self.clone(),
            group: group.to_owned(),
        })
    }
}

#[async_trait]
impl EventBus for EmbeddedLog {
    #[tracing::instrument(skip_all, fields(topics = specs.len()), err)]
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError> {
        if let Some(bad) = specs.iter().find(|s| s.name.is_empty()) {
            return Err(BusError::Config(format!("empty topic name in {bad:?}")));
        }
        match self.call(Op::EnsureTopics(specs.to_vec())).await? {
            Done::TopicsEnsured => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    #[tracing::instrument(skip_all, fields(topic = %topic, records = records.len()), err)]
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, BusError> {
        let op = Op::Publish {
            topic: topic.to_owned(),
            records,
        };
        match self.call(op).await? {
            Done::Published(positions) => Ok(positions),
            other => Err(unexpected(&other)),
        }
    }

    #[tracing::instrument(skip_all, fields(group = %group, topics = ?topics), err)]
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Consumer>, BusError> {
        let claim = self.claim_group(group)?;
        let ids = self.topic_ids(topics).await?;
        let consumer = EmbeddedConsumer::start(claim, topics, &ids).await?;
        Ok(Box::new(consumer))
    }

    #[tracing::instrument(skip_all, fields(group = %group, topics = ?topics), err)]
    async fn reset_group(
        &self,
        group: &str,
        topics: &[String],
        to: GroupStart,
        only: Option<&[i32]>,
    ) -> Result<(), BusError> {
        // Holding the claim keeps a member from joining halfway through the reset.
        let _claim = self.claim_group(group)?;
        // One partition per topic: partition 0 or nothing.
        if only.is_some_and(|only| !only.contains(&0)) {
            return Ok(());
        }
        let topic_ids = self.topic_ids(topics).await?;
        let op = Op::ResetGroup {
            group: group.to_owned(),
            topic_ids,
            since_ms: match to {
                GroupStart::Earliest => None,
                GroupStart::Since(time) => Some(time.timestamp_millis()),
            },
        };
        match self.call(op).await? {
            Done::GroupReset => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    #[tracing::instrument(skip_all, fields(topic = %topic), err)]
    async fn end_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
        let query = "SELECT next_offset FROM topics WHERE name = ?";
        let next = topic_value(&self.inner.reader, query, topic).await?;
        let next = next.ok_or_else(|| BusError::UnknownTopic(topic.to_owned()))?;
        Ok(vec![(0, next)])
    }

    // No `err`: a read-your-writes wait asks every few milliseconds and reports failures once.
    #[tracing::instrument(skip_all, fields(group = %group, topic = %topic))]
    async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, i64)>, BusError> {
        let [topic_id] = <[i64; 1]>::try_from(self.topic_ids(&[topic.to_owned()]).await?)
            .expect("one id per topic");
        let next = committed_offset(&self.inner.reader, group, topic_id).await?;
        Ok(next.map(|next| (0, next)).into_iter().collect())
    }
}

/// The integer `query` selects from the row of `topic` (its one parameter), `None` for an
/// unknown topic.
async fn topic_value(
    reader: &ReadConnections,
    query: &'static str,
    topic: &str,
) -> Result<Option<i64>, BusError> {
    reader
        .read(|conn| {
            conn.prepare_cached(query)?
                .query_row([topic], |row| row.get(0))
                .optional()
        })
        .await
        .map_err(|e| BusError::fatal("reading embedded log topics", e))
}

/// The next offset `group` committed on the topic, `None` when it never committed there.
async fn committed_offset(
    reader: &ReadConnections,
    group: &str,
    topic_id: i64,
) -> Result<Option<i64>, BusError> {
    reader
        .read(|conn| {
            conn.prepare_cached(
                "SELECT next_offset FROM group_offsets WHERE group_name = ? AND topic_id = ?",
            )?
            .query_row(params![group, topic_id], |row| row.get(0))
            .optional()
        })
        .await
        .map_err(|e| BusError::fatal("reading committed offsets", e))
}

/// The right to be the one active member of a group; released on drop.
#[derive(Debug)]
struct GroupClaim {
    log: EmbeddedLog,
    group: String,
}

impl Drop for GroupClaim {
    fn drop(&mut self) {
        lock_groups(&self.log.inner.active_groups).remove(&self.group);
    }
}

/// The group registry stays consistent even if a holder panicked (it only inserts/removes).
fn lock_groups(groups: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    groups
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unexpected(done: &Done) -> BusError {
    BusError::fatal_msg(format!(
        "embedded log writer answered {done:?} to another request"
    ))
}

#[cfg(test)]
mod tests;
