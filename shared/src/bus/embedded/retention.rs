//! Retention of the embedded log: the sweep that drops records superseded on compacted topics
//! and expired on `Days(n)` topics, what it reports, and the hourly schedule that asks the
//! writer for it.
//!
//! The sweep runs inside a writer batch like any other write, so it never races an append;
//! offsets never repeat after it, since each topic's next offset is stored, not derived.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::batch::{TopicState, now_ms};
use super::protocol::{Op, Request};
use crate::bus::Retention;

/// How often retention runs on its own; the first sweep comes one minute after opening.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
const FIRST_RETENTION_SWEEP: Duration = Duration::from_secs(60);
const MS_PER_DAY: i64 = 86_400_000;

/// What one retention sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Records dropped from compacted topics because a newer record has the same key.
    pub compacted: u64,
    /// Records dropped from `Days(n)` topics because they are older than `n` days.
    pub expired: u64,
}

/// Asks the writer for a retention sweep hourly (the first one minute after opening), until
/// the log is closed (the weak sender keeps no log open).
pub(super) async fn schedule_retention(requests: mpsc::WeakSender<Request>) {
    let start = tokio::time::Instant::now() + FIRST_RETENTION_SWEEP;
    let mut ticks = tokio::time::interval_at(start, RETENTION_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(requests) = requests.upgrade() else {
            return;
        };
        // Nobody waits for the report; the writer logs what it deleted.
        let (reply, _ignored) = oneshot::channel();
        let op = Op::Retention { now_ms: now_ms() };
        if requests.send(Request { op, reply }).await.is_err() {
            return;
        }
    }
}

/// Deletes superseded records of compacted topics and expired ones of `Days` topics.
pub(super) fn sweep(
    conn: &Connection,
    topics: &HashMap<String, TopicState>,
    now_ms: i64,
) -> rusqlite::Result<RetentionReport> {
    let mut report = RetentionReport::default();
    for state in topics.values() {
        match state.retention {
            Retention::Forever => {}
            Retention::Compacted => {
                let deleted = conn.execute(
                    "DELETE FROM records WHERE topic_id = ?1 AND offset NOT IN
                     (SELECT MAX(offset) FROM records WHERE topic_id = ?1 GROUP BY key)",
                    params![state.id],
                )?;
                report.compacted += u64::try_from(deleted).unwrap_or(u64::MAX);
            }
            Retention::Days(days) => {
                let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(MS_PER_DAY));
                let deleted = conn.execute(
                    "DELETE FROM records WHERE topic_id = ?1 AND appended_at_ms < ?2",
                    params![state.id, cutoff],
                )?;
                report.expired += u64::try_from(deleted).unwrap_or(u64::MAX);
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
