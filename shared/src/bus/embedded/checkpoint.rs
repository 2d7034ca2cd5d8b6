//! WAL checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so the
//! publishers of that batch wait for pages to be copied into the database file and for its
//! fsync. The writer turns it off (`wal_autocheckpoint=0`); instead:
//!
//! - a background thread with its own connection runs a `PASSIVE` checkpoint every
//!   [`CHECKPOINT_INTERVAL`] when something was committed, copying committed pages into the
//!   database file while the writer keeps committing (it never blocks the writer or readers);
//! - a passive checkpoint cannot let the WAL start over while commits keep arriving, so when the
//!   WAL has grown past [`WAL_RESET_FRAMES`] the writer itself checkpoints between two batches
//!   ([`wal_needs_reset`], [`checkpoint_now`]). Most pages are already copied by then, so this
//!   is short, and the writer's next commit starts the WAL again from its beginning (unless a
//!   reader still uses old frames; then it tries again after the next background pass).
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

use super::super::BusError;
use super::protocol::Counters;

/// How often the background thread copies committed pages into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// WAL frames (pages, 4 KiB each) after which the writer makes the WAL start over (≈ 32 MiB).
#[cfg(not(test))]
const WAL_RESET_FRAMES: u64 = 8192;
/// Small in unit tests, so a test sees the WAL start over without writing 32 MiB.
#[cfg(test)]
pub(super) const WAL_RESET_FRAMES: u64 = 256;

/// The background checkpointer; [`stop`](Checkpointer::stop) ends it and closes its connection.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Frames in the WAL at the last background pass, for [`wal_needs_reset`].
    wal_frames: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Opens its own connection to the log at `path` and starts the thread.
    pub(super) fn start(path: &Path, counters: Arc<Counters>) -> Result<Self, BusError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| BusError::fatal("opening the embedded log checkpointer", e))?;
        let (stop, stopped) = mpsc::channel();
        let wal_frames = Arc::new(AtomicU64::new(0));
        let frames = Arc::clone(&wal_frames);
        let thread = std::thread::Builder::new()
            .name("log-checkpoint".into())
            .spawn(move || run(&conn, &stopped, &counters, &frames))
            .map_err(|e| BusError::fatal("starting the embedded log checkpointer", e))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            wal_frames,
        })
    }

    /// True when the WAL has grown past [`WAL_RESET_FRAMES`] since the writer last
    /// checkpointed. Answers true at most once per background pass, so a reader holding old
    /// frames costs the writer one extra checkpoint per [`CHECKPOINT_INTERVAL`], not per batch.
    pub(super) fn wal_needs_reset(&self) -> bool {
        self.wal_frames
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |frames| {
                (frames >= WAL_RESET_FRAMES).then_some(0)
            })
            .is_ok()
    }

    /// Ends the thread and waits until its connection is closed.
    pub(super) fn stop(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the embedded log checkpointer panicked");
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
    stopped: &mpsc::Receiver<()>,
    counters: &Counters,
    wal_frames: &AtomicU64,
) {
    let mut seen = counters.transactions.load(Ordering::Relaxed);
    loop {
        match stopped.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let committed = counters.transactions.load(Ordering::Relaxed);
        if committed == seen {
            continue;
        }
        seen = committed;
        match checkpoint_now(conn) {
            Ok(progress) => wal_frames.store(progress.wal_frames, Ordering::Relaxed),
            Err(error) => tracing::warn!(%error, "embedded log checkpoint"),
        }
    }
}

/// What one checkpoint found and did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Progress {
    /// Frames in the WAL.
    pub wal_frames: u64,
    /// Frames now copied into the database file.
    pub copied: u64,
}

impl Progress {
    /// Every frame is in the database file: the next commit can start the WAL over.
    pub(super) fn complete(self) -> bool {
        self.copied >= self.wal_frames
    }
}

/// Runs one `PASSIVE` checkpoint (never waits for readers or the writer).
pub(super) fn checkpoint_now(conn: &Connection) -> Result<Progress, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        // Columns: busy flag, frames in the WAL, frames checkpointed (-1 when not in WAL mode).
        let frames = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(Progress {
            wal_frames: frames(1)?,
            copied: frames(2)?,
        })
    })
}
