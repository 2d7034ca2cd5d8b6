//! Payloads of earlier versions, exactly as they were written, and their upcasts into the
//! current types. Never changed or removed: records of these versions stay on the topics (the
//! compacted `sync-state` keeps each integration's last record for ever), and `decode` reads
//! them through these shapes.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::sync_state::{LoadKind, LoadProgress, SyncStateChanged};

/// `SyncStateChanged` v1: loads without a timeline pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncStateChangedV1 {
    history_cursor: Option<u64>,
    last_reconciled_at: Option<DateTime<Utc>>,
    backfill: Option<LoadProgressV1>,
    resync: Option<LoadProgressV1>,
    updated_at: DateTime<Utc>,
}

/// `LoadProgress` inside `SyncStateChanged` v1.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadProgressV1 {
    kind: LoadKind,
    since: NaiveDate,
    requested_at: DateTime<Utc>,
    pages_done: u32,
    pages_total: Option<u32>,
    orders_done: u64,
    orders_total: Option<u64>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<SyncStateChangedV1> for SyncStateChanged {
    fn from(v1: SyncStateChangedV1) -> Self {
        Self {
            history_cursor: v1.history_cursor,
            last_reconciled_at: v1.last_reconciled_at,
            backfill: v1.backfill.map(Into::into),
            resync: v1.resync.map(Into::into),
            updated_at: v1.updated_at,
        }
    }
}

impl From<LoadProgressV1> for LoadProgress {
    /// A v1 load never ran a timeline pass: `timeline: None`, so a finished v1 load still
    /// gets its deals' timelines completed after an upgrade.
    fn from(v1: LoadProgressV1) -> Self {
        Self {
            kind: v1.kind,
            since: v1.since,
            requested_at: v1.requested_at,
            pages_done: v1.pages_done,
            pages_total: v1.pages_total,
            orders_done: v1.orders_done,
            orders_total: v1.orders_total,
            started_at: v1.started_at,
            finished_at: v1.finished_at,
            timeline: None,
        }
    }
}
