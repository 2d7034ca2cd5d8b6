//! A few SQLite read connections (rusqlite) shared by async callers: the embedded log's
//! consumers and the projector's SQLite read model.
//!
//! A read runs right on the calling task's thread. sqlx's SQLite driver runs each connection
//! on a thread of its own and hands every row across a channel; at a live load of hundreds of
//! small reads a second those hand-overs (thread wake-ups) cost more than the reads
//! (BENCHMARKS.md, issue 20). These reads take a millisecond or so; the rare long one (a page
//! of thousands of rows) holds one runtime worker for that long.

use std::sync::Mutex;

use rusqlite::Connection;
use tokio::sync::Semaphore;

/// Read connections, each used by one read at a time.
#[derive(Debug)]
pub struct ReadConnections {
    conns: Vec<Mutex<Connection>>,
    /// One permit per connection: holding one guarantees a free connection.
    permits: Semaphore,
}

impl ReadConnections {
    /// Shares `conns` (at least one).
    pub fn new(conns: Vec<Connection>) -> Self {
        assert!(!conns.is_empty(), "at least one read connection");
        Self {
            permits: Semaphore::new(conns.len()),
            conns: conns.into_iter().map(Mutex::new).collect(),
        }
    }

    /// Runs `read` on a free connection (waiting for one while all are busy).
    pub async fn read<R>(&self, read: impl FnOnce(&Connection) -> R) -> R {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        for conn in &self.conns {
            // The guard lives only inside this synchronous call, never across an await. A
            // poisoned connection (a read panicked) is still a valid connection.
            let guard = match conn.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            return read(&guard);
        }
        unreachable!("a permit is held, so one of the connections is free")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_the_connections() {
        let conns = (0..2)
            .map(|_| Connection::open_in_memory().unwrap())
            .collect();
        let readers = std::sync::Arc::new(ReadConnections::new(conns));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16_i64 {
            let readers = readers.clone();
            tasks.spawn(async move {
                readers
                    .read(|c| c.query_row("SELECT ?1 * 2", [i], |r| r.get::<_, i64>(0)))
                    .await
                    .unwrap()
            });
        }
        let mut sum = 0;
        while let Some(v) = tasks.join_next().await {
            sum += v.unwrap();
        }
        assert_eq!(sum, (0..16).map(|i| i * 2).sum::<i64>());
    }
}
