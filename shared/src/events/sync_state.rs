//! The payload of `sync-state` (current version): each integration's history cursor and the
//! progress of its backfill / re-sync, with their timeline pass. Written by the enricher after
//! every step, so a restart (or another machine) resumes where it stopped.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Which kind of historical load a [`LoadProgress`] tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadKind {
    /// The backfill on connect (`backfill_days`).
    Backfill,
    /// A re-sync the user asked for (`POST …/resync`).
    Resync,
}

/// Progress of one historical load: paging `GET /orders?filter[createdAtFrom]=since` by 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadProgress {
    pub kind: LoadKind,
    /// Orders created on or after this day (account timezone) are loaded.
    pub since: NaiveDate,
    /// ... and on or before this day (a re-sync's `until`; `None`: up to now). SyncStateChanged v3.
    #[serde(default)]
    pub until: Option<NaiveDate>,
    /// The request this load serves: the integration's `created_at` for a backfill, the
    /// re-sync's `requested_at` for a re-sync (a newer request starts a new load).
    pub requested_at: DateTime<Utc>,
    /// Pages finished (their events acknowledged); the load resumes at the next one.
    pub pages_done: u32,
    /// Pages of the window at the last page read (it changes while orders are created).
    pub pages_total: Option<u32>,
    /// Orders emitted so far.
    pub orders_done: u64,
    /// Orders in the window at the last page read.
    pub orders_total: Option<u64>,
    pub started_at: DateTime<Utc>,
    /// Set once the last page of orders is done (the timeline pass follows).
    pub finished_at: Option<DateTime<Utc>>,
    /// The pass over `orders/history` of the window that completes the loaded deals' stage
    /// timelines, once the orders are loaded (`None` until it starts).
    pub timeline: Option<TimelineProgress>,
}

impl LoadProgress {
    /// Orders loaded and their timelines completed: nothing left to do for this request.
    pub fn is_complete(&self) -> bool {
        self.finished_at.is_some()
            && self
                .timeline
                .as_ref()
                .is_some_and(|t| t.finished_at.is_some())
    }
}

/// Progress of a load's timeline pass: `orders/history` from the window's first day
/// (`filter[startDate]`, then `filter[sinceId]` forward), up to where reconciliation stood when
/// the pass started (later records are reconciliation's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineProgress {
    /// The last history id read (the next `sinceId`); `None` until the first page is read.
    pub cursor: Option<u64>,
    /// The reconciliation cursor when the pass started: it ends once it reaches this id
    /// (`None`: at the end of the history).
    pub stop_at: Option<u64>,
    /// Pages read.
    pub pages_done: u32,
    /// Pages of the window as the first page counted them (more arrive while it runs).
    pub pages_total: Option<u32>,
    /// History records read.
    pub records_done: u64,
    /// Records of the window as the first page counted them.
    pub records_total: Option<u64>,
    /// Status records turned into stage entries.
    pub stages_recorded: u64,
    pub started_at: DateTime<Utc>,
    /// Set once the pass reached `stop_at` or the end of the history.
    pub finished_at: Option<DateTime<Utc>>,
}

impl TimelineProgress {
    /// A pass starting now that ends at `stop_at`.
    pub fn starting(stop_at: Option<u64>) -> Self {
        Self {
            cursor: None,
            stop_at,
            pages_done: 0,
            pages_total: None,
            records_done: 0,
            records_total: None,
            stages_recorded: 0,
            started_at: Utc::now(),
            finished_at: None,
        }
    }
}

/// `sync-state` (compacted): the full synchronisation state of one integration, written by
/// the enricher after every step so a restart (or another machine) resumes where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncStateChanged {
    /// The last `orders/history` id whose changes are acknowledged (the next `sinceId`);
    /// `None` until the first history page is read.
    pub history_cursor: Option<u64>,
    /// When reconciliation last read `orders/history` to its end.
    pub last_reconciled_at: Option<DateTime<Utc>>,
    /// The backfill on connect, once started.
    pub backfill: Option<LoadProgress>,
    /// The latest re-sync, once started.
    pub resync: Option<LoadProgress>,
    /// Orders the versions of this record (the newest wins).
    pub updated_at: DateTime<Utc>,
}
