//! What the rest of the embedded log exchanges with the writer thread: the requests it takes,
//! the outcomes it answers, the topic ends consumers watch, and the counters it keeps.
//!
//! Kept apart from the thread itself ([`super::writer`]) so the log and its consumers depend
//! only on this small surface, not on how the writer batches.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use tokio::sync::oneshot;

use super::retention::RetentionReport;
use crate::bus::{BusError, OutRecord, Position, TopicSpec};

/// The next offset of each topic (by id) as of the last commit: what consumers watch to know
/// whether one of their topics has new records, without reading the file.
pub(super) type TopicEnds = HashMap<i64, i64>;

/// A write for the writer thread, with where to send its outcome.
#[derive(Debug)]
pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done, BusError>>,
}

/// The writes the writer knows.
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
        /// `None`: from the earliest record; else from the first appended at or after this
        /// time (milliseconds since the epoch).
        since_ms: Option<i64>,
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

/// Counters shared with [`super::EmbeddedLog::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub transactions: AtomicU64,
    pub publish_requests: AtomicU64,
    pub records_appended: AtomicU64,
    pub offset_commits: AtomicU64,
}
