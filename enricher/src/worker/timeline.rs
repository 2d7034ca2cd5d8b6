//! Stage timelines from `orders/history` (DESIGN §5 "Stage timeline").
//!
//! A snapshot shows only the status an order is in when it is fetched; a status that lasted
//! between two fetches, or every status of an order loaded by a backfill, is known only to the
//! history. So every `status` record (and the creation record's status) becomes a stage entry
//! at the record's `createdAt` with its id, which keeps RetailCRM's own order of changes made
//! within one second. Reconciliation emits them for every page it reads; a backfill or re-sync
//! runs a **timeline pass** once its orders are loaded: the history of the window from its
//! first day (`filter[startDate]`, then `filter[sinceId]` forward, never `page`) up to where
//! reconciliation stood when the pass started, one page per step like the order pages (live
//! changes first, inside the account's budget), its progress in `sync-state` so a restart
//! resumes at the next page.

use std::collections::BTreeMap;

use chrono::{NaiveTime, Utc};
use chrono_tz::Tz;
use dealflow_shared::events::{
    DealStagesRecorded, Event, LoadKind, LoadProgress, StageRecorded, SyncStateChanged,
    TimelineProgress,
};
use dealflow_shared::retailcrm::models::HistoryPage;
use dealflow_shared::retailcrm::time::to_utc;
use dealflow_shared::retailcrm::{HistoryFilter, PageLimit};
use tokio::time::Instant;

use super::Worker;
use super::batch::client;
use super::failure::{Failure, bus_failure};

/// The stage entries a history page tells, per order, ascending by record id.
pub(super) fn stage_records(page: &HistoryPage, tz: Tz) -> BTreeMap<u64, Vec<StageRecorded>> {
    let mut out: BTreeMap<u64, Vec<StageRecorded>> = BTreeMap::new();
    for entry in &page.history {
        if entry.deleted {
            continue;
        }
        let Some(order_id) = entry
            .order
            .as_ref()
            .and_then(|o| u64::try_from(o.id).ok())
            .filter(|id| *id > 0 && i64::try_from(*id).is_ok())
        else {
            continue;
        };
        let Ok(history_id) = u64::try_from(entry.id) else {
            continue;
        };
        let code = if entry.field.as_deref() == Some("status") {
            entry.new_value.get("code").and_then(|c| c.as_str())
        } else if entry.created {
            // A creation record of another field still says which status the order began in.
            entry.order.as_ref().and_then(|o| o.status.as_deref())
        } else {
            None
        };
        let Some(code) = code.filter(|c| !c.is_empty()) else {
            continue;
        };
        out.entry(order_id).or_default().push(StageRecorded {
            stage_code: code.to_owned(),
            entered_at: to_utc(entry.created_at, tz),
            history_id,
        });
    }
    for stages in out.values_mut() {
        stages.sort_by_key(|s| s.history_id);
    }
    out
}

/// One `DealStagesRecorded` per order of `records`.
pub(super) fn stage_events(records: BTreeMap<u64, Vec<StageRecorded>>) -> Vec<Event> {
    let now = Utc::now();
    records
        .into_iter()
        .map(|(order_id, stages)| {
            Event::DealStagesRecorded(DealStagesRecorded {
                order_id,
                stages,
                observed_at: now,
            })
        })
        .collect()
}

/// Moves the pass past a page of `got` records whose last id is `last_id`; the first page
/// (read by date) also counts the window.
fn advance(timeline: &mut TimelineProgress, page: &HistoryPage, stages: u64) {
    let first = timeline.cursor.is_none();
    timeline.pages_done += 1;
    timeline.records_done += page.len() as u64;
    timeline.stages_recorded += stages;
    if first && let Some(p) = &page.pagination {
        timeline.pages_total = Some(p.total_page_count);
        timeline.records_total = Some(p.total_count);
    }
    let last = page.last_id().and_then(|id| u64::try_from(id).ok());
    let moved = last.filter(|id| timeline.cursor.is_none_or(|c| *id > c));
    if let Some(id) = moved {
        timeline.cursor = Some(id);
    }
    let full = page.len() >= PageLimit::Hundred.get() as usize;
    let reached = matches!((timeline.cursor, timeline.stop_at), (Some(c), Some(stop)) if c >= stop);
    if !full || reached || moved.is_none() {
        timeline.finished_at = Some(Utc::now());
    }
}

impl Worker {
    /// Reads one page of the timeline pass of `progress` (whose orders are loaded) and
    /// publishes its stage entries; the caller saves the progress.
    pub(super) async fn timeline_page(
        &mut self,
        state: &SyncStateChanged,
        progress: &mut LoadProgress,
        tz: Tz,
    ) -> Result<(), Failure> {
        let timeline = progress.timeline.get_or_insert_with(|| {
            tracing::info!(integration_id = %self.id, since = %progress.since, stop_at = state.history_cursor, "timeline pass started");
            // Later records are reconciliation's: it turns them into stage entries too.
            TimelineProgress::starting(state.history_cursor)
        });
        let filter = match timeline.cursor {
            Some(cursor) => HistoryFilter {
                since_id: Some(i64::try_from(cursor).unwrap_or(i64::MAX)),
                ..HistoryFilter::default()
            },
            None => HistoryFilter {
                start_date: Some(progress.since.and_time(NaiveTime::MIN)),
                ..HistoryFilter::default()
            },
        };
        let started = Instant::now();
        let page = client(&mut self.crm)?.history(filter).await?;
        self.context
            .metrics
            .stage("timeline_page", started.elapsed());
        // Unreadable records only cost a timeline entry here: reconciliation dead-letters
        // those after its cursor, and the pass must not dead-letter them a second time.
        let records = stage_records(&page, tz);
        let stages: usize = records.values().map(Vec::len).sum();
        self.context
            .output
            .publish(self.id, stage_events(records))
            .await
            .map_err(bus_failure)?;
        advance(timeline, &page, stages as u64);
        let label = match progress.kind {
            LoadKind::Backfill => "backfill",
            LoadKind::Resync => "resync",
        };
        self.context.metrics.sync().load_page(label, "timeline");
        if let Some(finished) = timeline.finished_at {
            tracing::info!(
                integration_id = %self.id, kind = label, since = %progress.since,
                pages = timeline.pages_done, records = timeline.records_done,
                stages = timeline.stages_recorded,
                seconds = (finished - timeline.started_at).num_milliseconds() as f64 / 1000.0,
                "timeline pass finished"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dealflow_shared::retailcrm::models::OrdersHistoryResponse;

    use super::*;

    fn page(entries: serde_json::Value, total: u64) -> HistoryPage {
        let body: OrdersHistoryResponse = serde_json::from_value(serde_json::json!({
            "success": true, "history": entries,
            "pagination": {"limit": 100, "totalCount": total, "currentPage": 1,
                           "totalPageCount": total.div_ceil(100)},
        }))
        .unwrap();
        HistoryPage {
            history: body.history,
            unreadable: Vec::new(),
            pagination: body.pagination,
            generated_at: None,
        }
    }

    #[test]
    fn status_and_creation_records_become_stages_at_their_time_in_utc() {
        let p = page(
            serde_json::json!([
                {"id": 10, "createdAt": "2024-01-15 10:00:00", "created": true, "field": "status",
                 "oldValue": null, "newValue": {"code": "fresh"}, "order": {"id": 5, "status": "fresh"}},
                {"id": 11, "createdAt": "2024-01-15 10:00:07", "field": "manager",
                 "newValue": {"id": 3}, "order": {"id": 5, "status": "fresh"}},
                {"id": 12, "createdAt": "2024-01-15 10:05:00", "field": "status",
                 "oldValue": {"code": "fresh"}, "newValue": {"code": "picking"}, "order": {"id": 5}},
                {"id": 13, "createdAt": "2024-01-15 10:05:00", "field": "status",
                 "oldValue": {"code": "picking"}, "newValue": {"code": "done"}, "order": {"id": 5}},
                {"id": 14, "createdAt": "2024-01-15 10:06:00", "created": true, "field": "id",
                 "order": {"id": 6, "status": "new"}},
                {"id": 15, "createdAt": "2024-01-15 10:07:00", "deleted": true, "field": "id",
                 "order": {"id": 6}},
                {"id": 16, "createdAt": "2024-01-15 10:08:00", "field": "status",
                 "newValue": {"code": "x"}},
            ]),
            7,
        );
        let records = stage_records(&p, chrono_tz::Europe::Moscow);
        let of = |order: u64| -> Vec<(String, String, u64)> {
            records[&order]
                .iter()
                .map(|s| {
                    (
                        s.stage_code.clone(),
                        s.entered_at.to_rfc3339(),
                        s.history_id,
                    )
                })
                .collect()
        };
        assert_eq!(
            of(5),
            [
                ("fresh".into(), "2024-01-15T07:00:00+00:00".into(), 10),
                ("picking".into(), "2024-01-15T07:05:00+00:00".into(), 12),
                ("done".into(), "2024-01-15T07:05:00+00:00".into(), 13),
            ]
        );
        assert_eq!(
            of(6),
            [("new".into(), "2024-01-15T07:06:00+00:00".into(), 14)]
        );
        assert_eq!(records.len(), 2, "a record naming no order gives nothing");
    }

    fn full_page(first_id: i64, total: u64) -> HistoryPage {
        let entries: Vec<_> = (first_id..first_id + 100)
            .map(|id| {
                serde_json::json!({"id": id, "createdAt": "2024-01-15 10:00:00",
                                         "field": "manager", "order": {"id": 5}})
            })
            .collect();
        page(serde_json::Value::Array(entries), total)
    }

    #[test]
    fn the_pass_counts_the_window_on_its_first_page_and_stops_at_reconciliations_cursor() {
        let mut t = TimelineProgress::starting(Some(250));
        advance(&mut t, &full_page(1, 1000), 3);
        assert_eq!(
            (t.cursor, t.pages_done, t.records_done),
            (Some(100), 1, 100)
        );
        assert_eq!((t.pages_total, t.records_total), (Some(10), Some(1000)));
        assert!(t.finished_at.is_none());
        advance(&mut t, &full_page(101, 900), 0);
        assert_eq!(
            t.pages_total,
            Some(10),
            "later pages do not recount the window"
        );
        assert!(t.finished_at.is_none());
        advance(&mut t, &full_page(201, 800), 0);
        assert_eq!(t.cursor, Some(300));
        assert!(t.finished_at.is_some(), "past the cursor of reconciliation");
        assert_eq!(t.stages_recorded, 3);
    }

    #[test]
    fn the_pass_ends_at_a_short_page_or_an_empty_history() {
        let mut t = TimelineProgress::starting(None);
        advance(&mut t, &full_page(1, 150), 0);
        assert!(t.finished_at.is_none());
        advance(&mut t, &page(serde_json::json!([]), 0), 0);
        assert!(t.finished_at.is_some());
        assert_eq!(t.cursor, Some(100), "an empty page leaves the cursor");
    }
}
