//! WAL checkpoints off the commit path, for a SQLite file with one writing connection: the
//! embedded log and the projector's SQLite read model.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so whoever
//! waits for that commit also waits for pages to be copied into the database file and for its
//! fsync (in the projector's bench ~8 % of a batch's time; BENCHMARKS.md, issue 20). The writer
//! turns it off (`wal_autocheckpoint=0`, see [`writer_pragmas`]); instead:
//!
//! - a background thread with its own connection runs a `PASSIVE` checkpoint every
//!   [`CHECKPOINT_INTERVAL`] when something was committed ([`Checkpointer::committed`]),
//!   copying committed pages into the database file while the writer keeps committing (it never
//!   blocks the writer or readers);
//! - a passive checkpoint cannot let the WAL start over while commits keep arriving, so when the
//!   WAL has grown past the writer's bound the writer itself checkpoints between two
//!   transactions ([`Checkpointer::reset_if_due`]). Most pages are already copied by then, so
//!   this is short, and the writer's next commit starts the WAL again from its beginning
//!   (unless a reader still uses old frames; then it tries again after the next background
//!   pass).
//!
//! Durability does not depend on any of this: with `synchronous=FULL` a commit is durable once
//! the WAL is fsynced.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the background thread copies committed pages into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// WAL frames (pages, 4 KiB each) after which the writer makes the WAL start over (≈ 32 MiB).
pub const WAL_RESET_FRAMES: u64 = 8192;

/// Sets up the writing connection for checkpoints off its commit path: no automatic
/// checkpoint, and a WAL that grew while a reader held old frames shrinks back when it starts
/// over.
pub fn writer_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
}

/// Why the checkpointer did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open a checkpoint connection: {0}")]
    Open(#[from] rusqlite::Error),
    #[error("cannot start the checkpoint thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// The background checkpointer; [`stop`](Checkpointer::stop) ends it and closes its connection.
#[derive(Debug)]
pub struct Checkpointer {
    /// What the logs call this file ("embedded log", "read model").
    name: &'static str,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Transactions the writer committed ([`Self::committed`]).
    commits: Arc<AtomicU64>,
    /// Frames in the WAL at the last background pass, for [`Self::wal_needs_reset`].
    wal_frames: Arc<AtomicU64>,
    /// WAL frames after which the writer makes the WAL start over.
    reset_frames: u64,
}

impl Checkpointer {
    /// Opens its own connection to the SQLite file at `path` and starts the thread; the WAL
    /// starts over once it has `reset_frames` frames ([`WAL_RESET_FRAMES`] outside tests).
    pub fn start(path: &Path, name: &'static str, reset_frames: u64) -> Result<Self, StartError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let (stop, stopped) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let wal_frames = Arc::new(AtomicU64::new(0));
        let thread = {
            let (commits, frames) = (Arc::clone(&commits), Arc::clone(&wal_frames));
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || run(&conn, name, &stopped, &commits, &frames))?
        };
        Ok(Self {
            name,
            stop: Some(stop),
            thread: Some(thread),
            commits,
            wal_frames,
            reset_frames,
        })
    }

    /// Tells the background thread that the writer committed a transaction.
    pub fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Release);
    }

    /// True when the WAL has grown past its bound since the writer last checkpointed. Answers
    /// true at most once per background pass, so a reader holding old frames costs the writer
    /// one extra checkpoint per [`CHECKPOINT_INTERVAL`], not per transaction.
    pub fn wal_needs_reset(&self) -> bool {
        let bound = self.reset_frames;
        self.wal_frames
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |frames| {
                (frames >= bound).then_some(0)
            })
            .is_ok()
    }

    /// Lets the WAL start over once it has grown past its bound: a checkpoint on the writer's
    /// own `conn`, between two of its transactions.
    pub fn reset_if_due(&self, conn: &Connection) {
        if !self.wal_needs_reset() {
            return;
        }
        match checkpoint_now(conn) {
            Ok(progress) if !progress.complete() => tracing::debug!(
                file = self.name,
                wal_frames = progress.wal_frames,
                copied = progress.copied,
                "a reader still uses the WAL; it starts over later"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(file = self.name, %error, "SQLite checkpoint"),
        }
    }

    /// Ends the thread and waits until its connection is closed.
    pub fn stop(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(file = self.name, "the SQLite checkpointer panicked");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Dropping the sender ends the thread's wait; it is not joined here (see `stop`).
        drop(self.stop.take());
    }
}

fn run(
    conn: &Connection,
    name: &str,
    stopped: &mpsc::Receiver<()>,
    commits: &AtomicU64,
    wal_frames: &AtomicU64,
) {
    let mut seen = commits.load(Ordering::Acquire);
    loop {
        match stopped.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let committed = commits.load(Ordering::Acquire);
        if committed == seen {
            continue;
        }
        seen = committed;
        match checkpoint_now(conn) {
            Ok(progress) => wal_frames.store(progress.wal_frames, Ordering::Relaxed),
            Err(error) => tracing::warn!(file = name, %error, "SQLite checkpoint"),
        }
    }
}

/// What one checkpoint found and did.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Frames in the WAL.
    pub wal_frames: u64,
    /// Frames now copied into the database file.
    pub copied: u64,
}

impl Progress {
    /// Every frame is in the database file: the next commit can start the WAL over.
    pub fn complete(self) -> bool {
        self.copied >= self.wal_frames
    }
}

/// Runs one `PASSIVE` checkpoint (never waits for readers or the writer).
pub fn checkpoint_now(conn: &Connection) -> Result<Progress, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        // Columns: busy flag, frames in the WAL, frames checkpointed (-1 when not in WAL mode).
        let frames = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(Progress {
            wal_frames: frames(1)?,
            copied: frames(2)?,
        })
    })
}
