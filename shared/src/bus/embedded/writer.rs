//! The embedded log's single writer thread and its group commit.
//!
//! Every write (appends, offset commits, topic changes, retention) goes through one thread that
//! owns the only writing connection (a synchronous `rusqlite` connection: the whole batch runs
//! in one go, without a round trip to another thread per statement). It takes a request, drains
//! every other request already waiting, applies them all in one `BEGIN IMMEDIATE` transaction
//! with cached prepared statements and commits once, so concurrent publishers share one fsync;
//! only then does it answer them and wake consumers. While publishers keep arriving together,
//! each batch first lingers [`LINGER_UNDER_LOAD`] to gather more of them. The transaction
//! itself is [`super::batch`]; checkpoints stay off the commit path
//! ([`crate::sqlite_checkpoint`]).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot, watch};

use super::batch::{TopicState, load_topics, write};
use super::protocol::{Counters, Done, Op, Request, TopicEnds};
use super::schema::migrate;
use crate::bus::BusError;
use crate::sqlite_checkpoint::{self, Checkpointer};

/// WAL frames after which the writer makes the WAL start over ([`sqlite_checkpoint`]).
#[cfg(not(test))]
const WAL_RESET_FRAMES: u64 = sqlite_checkpoint::WAL_RESET_FRAMES;
/// Small in unit tests, so a test sees the WAL start over without writing 32 MiB.
#[cfg(test)]
pub(super) const WAL_RESET_FRAMES: u64 = 256;

/// Stop draining more requests into one transaction past this many records, to bound latency.
const MAX_BATCH_RECORDS: usize = 20_000;
/// A batch of at least this many requests means publishers are arriving concurrently...
const LOADED_BATCH: usize = 4;
/// ... and then the next batch waits this long for more before its transaction begins.
const LINGER_UNDER_LOAD: Duration = Duration::from_micros(200);
/// Prepared statements kept by the writer's connection (it uses fewer than this).
const STATEMENT_CACHE: usize = 32;

/// What the writer thread needs. Holding the lock file keeps a second writer (another process,
/// or a reopen in this one) out until the thread has closed its connections.
#[derive(Debug)]
pub(super) struct WriterSetup {
    pub path: PathBuf,
    pub busy_timeout: Duration,
    pub rx: mpsc::Receiver<Request>,
    pub wake: watch::Sender<TopicEnds>,
    pub counters: Arc<Counters>,
    pub lock: File,
}

/// Starts the writer thread; resolves once its connection is open, the schema is in place and
/// it is taking requests.
pub(super) async fn start(setup: WriterSetup) -> Result<(), BusError> {
    let (ready, opened) = oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || run(setup, &runtime, ready))
        .map_err(|e| BusError::fatal("starting the embedded log writer", e))?;
    opened
        .await
        .map_err(|_| BusError::fatal_msg("the embedded log writer stopped while opening"))?
}

/// The thread: runs until every request sender is dropped, then closes its connections and
/// releases the lock.
fn run(
    setup: WriterSetup,
    runtime: &tokio::runtime::Handle,
    ready: oneshot::Sender<Result<(), BusError>>,
) {
    let WriterSetup {
        path,
        busy_timeout,
        mut rx,
        wake,
        counters,
        lock,
    } = setup;
    let mut writer = match Writer::open(&path, busy_timeout, wake, counters, runtime.clone()) {
        Ok(writer) => writer,
        Err(error) => {
            drop(lock);
            let _ = ready.send(Err(error));
            return;
        }
    };
    // If `open` was abandoned meanwhile, its request sender is gone and the loop ends at once.
    let _ = ready.send(Ok(()));
    let mut under_load = false;
    while let Some(first) = rx.blocking_recv() {
        if under_load {
            // Concurrent publishers: wait a little for more of them, so that one commit and
            // its fsync serve twice as many (halves the commits at 20k webhooks/s; +~15 %
            // webhooks/s and the same p50, BENCHMARKS.md). Alone, a request never waits.
            std::thread::sleep(LINGER_UNDER_LOAD);
        }
        let mut weight = weight(&first.op);
        let mut batch = vec![first];
        while weight < MAX_BATCH_RECORDS {
            let Ok(request) = rx.try_recv() else {
                break;
            };
            weight += self::weight(&request.op);
            batch.push(request);
        }
        under_load = batch.len() >= LOADED_BATCH;
        writer.apply_batch(batch);
        // After answering: a checkpoint here delays only the next batch, never an answer.
        writer.checkpoint_if_due();
    }
    writer.close();
    drop(lock);
}

/// Where to send an outcome, and the outcome.
type Answer = (
    oneshot::Sender<Result<Done, BusError>>,
    Result<Done, BusError>,
);

/// The writer's connection and what it keeps in memory.
struct Writer {
    conn: Connection,
    topics: HashMap<String, TopicState>,
    wake: watch::Sender<TopicEnds>,
    counters: Arc<Counters>,
    checkpointer: Checkpointer,
    /// Where answers are delivered (see `answer`).
    runtime: tokio::runtime::Handle,
}

impl Writer {
    /// Opens (or creates) the file in WAL mode with `synchronous=FULL`, migrates the schema,
    /// loads the topics and starts the checkpointer.
    fn open(
        path: &Path,
        busy_timeout: Duration,
        wake: watch::Sender<TopicEnds>,
        counters: Arc<Counters>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, BusError> {
        let opening =
            |e| BusError::fatal(format!("opening the embedded log {}", path.display()), e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(opening)?;
        conn.busy_timeout(busy_timeout).map_err(opening)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(opening)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(BusError::fatal_msg(format!(
                "the embedded log {} cannot use a write-ahead log (journal mode {mode})",
                path.display()
            )));
        }
        // The schema's `REFERENCES` are enforced.
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(opening)?;
        // Durable on commit: the WAL is fsynced by every commit.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(opening)?;
        // Checkpoints run off the commit path (see `sqlite_checkpoint`).
        sqlite_checkpoint::writer_pragmas(&conn).map_err(opening)?;
        migrate(&mut conn)?;
        let topics = load_topics(&conn)
            .map_err(|e| BusError::fatal("loading the embedded log topics", e))?;
        let checkpointer = Checkpointer::start(path, "embedded log", WAL_RESET_FRAMES)
            .map_err(|e| BusError::fatal("starting the embedded log checkpointer", e))?;
        wake.send_modify(|ends| publish_ends(&topics, ends));
        Ok(Self {
            conn,
            topics,
            wake,
            counters,
            checkpointer,
            runtime,
        })
    }

    /// Applies a batch in one transaction and answers every request.
    fn apply_batch(&mut self, batch: Vec<Request>) {
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|r| (r.op, r.reply)).unzip();
        let mut appended = false;
        match write(&mut self.conn, &mut self.topics, &ops, &mut appended) {
            Ok(outcomes) => {
                self.count(&ops, &outcomes);
                if appended {
                    self.wake
                        .send_modify(|ends| publish_ends(&self.topics, ends));
                }
                self.answer(replies.into_iter().zip(outcomes).collect());
            }
            Err(error) => {
                tracing::error!(%error, requests = replies.len(), "embedded log write failed");
                // In-memory offsets may have moved inside the rolled-back transaction.
                match load_topics(&self.conn) {
                    Ok(reloaded) => self.topics = reloaded,
                    Err(error) => tracing::error!(%error, "reloading embedded log topics"),
                }
                let message = error.to_string();
                let failed = |reply| {
                    let error = format!("writing to the embedded log: {message}");
                    (reply, Err(BusError::fatal_msg(error)))
                };
                self.answer(replies.into_iter().map(failed).collect());
            }
        }
    }

    /// Delivers the outcomes from a task on the runtime rather than from this thread: waking
    /// each requester from outside the runtime costs a cross-thread wake-up apiece, while the
    /// writer could already be writing the next batch. One spawn hands them all over.
    fn answer(&self, answers: Vec<Answer>) {
        self.runtime.spawn(async move {
            for (reply, outcome) in answers {
                // The requester may have given up (timeout, dropped future); nothing to do.
                let _ = reply.send(outcome);
            }
        });
    }

    /// Counts what a committed batch wrote: requests refused on their own (unknown topic) are
    /// not counted.
    fn count(&self, ops: &[Op], outcomes: &[Result<Done, BusError>]) {
        let c = &self.counters;
        let (mut publishes, mut records, mut commits) = (0, 0, 0);
        for (op, _) in ops.iter().zip(outcomes).filter(|(_, o)| o.is_ok()) {
            match op {
                Op::Publish { records: r, .. } => {
                    publishes += 1;
                    records += u64::try_from(r.len()).unwrap_or(u64::MAX);
                }
                Op::CommitOffsets { .. } => commits += 1,
                _ => {}
            }
        }
        c.publish_requests.fetch_add(publishes, Ordering::Relaxed);
        c.records_appended.fetch_add(records, Ordering::Relaxed);
        c.offset_commits.fetch_add(commits, Ordering::Relaxed);
        c.transactions.fetch_add(1, Ordering::Relaxed);
        self.checkpointer.committed();
    }

    /// Lets the WAL start over once it has grown past its bound (see `sqlite_checkpoint`).
    fn checkpoint_if_due(&mut self) {
        self.checkpointer.reset_if_due(&self.conn);
    }

    /// Stops the checkpointer, then closes the writing connection (the last one to close
    /// checkpoints the WAL into the file).
    fn close(self) {
        let Self {
            conn, checkpointer, ..
        } = self;
        checkpointer.stop();
        if let Err((_, error)) = conn.close() {
            tracing::warn!(%error, "closing the embedded log");
        }
    }
}

/// Refreshes what consumers watch (a new topic has no records, so it only matters once
/// something is appended to it).
fn publish_ends(topics: &HashMap<String, TopicState>, ends: &mut TopicEnds) {
    ends.clear();
    ends.extend(topics.values().map(|t| (t.id, t.next_offset)));
}

/// How much a request adds to a batch (records for appends, 1 otherwise).
fn weight(op: &Op) -> usize {
    match op {
        Op::Publish { records, .. } => records.len().max(1),
        _ => 1,
    }
}
