//! Reconciliation: reading the account's `orders/history` from the stored cursor, so a
//! change whose webhook was never sent (RetailCRM triggers do not retry) is found within one
//! `reconcile_interval` (DESIGN §7.1).
//!
//! Pages of 100 are walked by moving `sinceId` to the last record's id (never `page`,
//! API-NOTES §4). Each page's distinct changed orders become `OrderChanged` (`source:
//! history`) on `order-changed`, so they take the live path's batching and budget; records
//! with `deleted: true` become `DealDeleted` at once (with `merged_into` from `combinedTo`);
//! `status` records become `DealStagesRecorded` (`timeline`), so a status that lasted between
//! two fetches still reaches the deal's timeline.
//! The cursor is written to `sync-state` only after those records are acknowledged. A record
//! that cannot be read or names no order is dead-lettered with its reason and the cursor
//! moves past it: one bad record never stalls the feed.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use dealflow_shared::bus::Delivered;
use dealflow_shared::events::{ChangeSource, DealDeleted, Event, OrderChanged};
use dealflow_shared::retailcrm::models::HistoryPage;
use dealflow_shared::retailcrm::time::to_utc;
use dealflow_shared::retailcrm::{HistoryFilter, PageLimit};
use tokio::time::Instant;

use super::Worker;
use super::batch::client;
use super::failure::{Failure, bus_failure};
use super::timeline::{stage_events, stage_records};
use crate::context::STAGE_HISTORY;

/// History pages read in one step at most; a live batch that falls due ends the step after
/// the page in hand, so a long history (an account that changed thousands of orders since the
/// last read) never holds the account's live changes back by more than one call.
const PAGES_PER_STEP: usize = 5;
/// The source recorded on dead letters of history records (no bus topic: RetailCRM's feed;
/// the offset header is the record's history id).
pub const HISTORY_SOURCE: &str = "retailcrm:orders/history";

/// What one page of history asks for.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PageWork {
    /// Orders changed (and not deleted on this page), with the time of the latest record
    /// (the account's local time).
    pub changed: BTreeMap<u64, NaiveDateTime>,
    /// Orders deleted, with the order they were merged into.
    pub deleted: Vec<(u64, Option<u64>)>,
    /// Records that cannot be processed: `(history id, reason, record)`.
    pub bad: Vec<(Option<i64>, String, serde_json::Value)>,
}

/// Sorts a page's records into changed orders, deleted orders and bad records.
pub(super) fn classify(page: &HistoryPage) -> PageWork {
    let mut work = PageWork::default();
    for entry in &page.unreadable {
        work.bad
            .push((entry.id, entry.reason.clone(), entry.raw.clone()));
    }
    for entry in &page.history {
        let order_id = entry
            .order
            .as_ref()
            .and_then(|o| u64::try_from(o.id).ok())
            .filter(|id| *id > 0 && i64::try_from(*id).is_ok());
        let Some(order_id) = order_id else {
            let raw = serde_json::json!({"id": entry.id, "field": entry.field});
            work.bad
                .push((Some(entry.id), "the record names no order".into(), raw));
            continue;
        };
        if entry.deleted {
            let merged_into = entry
                .combined_to
                .as_ref()
                .and_then(|c| u64::try_from(c.id).ok())
                .filter(|id| *id > 0);
            work.deleted.push((order_id, merged_into));
        } else {
            let latest = work.changed.entry(order_id).or_insert(entry.created_at);
            *latest = (*latest).max(entry.created_at);
        }
    }
    // A deleted order is not fetched again: its by-id answer would only be `Not found`.
    for (order_id, _) in &work.deleted {
        work.changed.remove(order_id);
    }
    work
}

/// When a change history reports had surely happened: its latest record's time (whole
/// seconds in the account's timezone, so one second later), never later than `now`. It is
/// the change's `received_at`: a live fetch of the order that started after it (by the
/// enricher's clock margin, `fetched`) already holds the change, so reconciling an account
/// whose webhooks all arrived costs no second fetch of every order it reads about.
fn changed_by(latest: NaiveDateTime, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    (to_utc(latest, tz) + chrono::Duration::seconds(1)).min(now)
}

impl Worker {
    /// Reads history from the cursor: to its end, or `PAGES_PER_STEP` pages (then live work
    /// goes first and the next step continues at once). Orders held for a by-id lookup that
    /// history reported deleted are completed without one. Returns whether history was read
    /// to its end.
    pub(super) async fn reconcile(&mut self) -> Result<bool, Failure> {
        let reached_end = self.read_history().await?;
        if reached_end {
            // Every order held so far was held before this read's last page was asked for.
            self.unlisted.history_read();
        }
        self.complete_known_deleted();
        Ok(reached_end)
    }

    /// Up to `PAGES_PER_STEP` pages of history from the cursor; whether it reached the end.
    async fn read_history(&mut self) -> Result<bool, Failure> {
        self.sync.reconcile_step(Instant::now());
        self.ensure_reference().await?;
        let tz = self.reference.get().expect("loaded above").timezone;
        let metrics = self.context.metrics.clone();
        for page_no in 0..PAGES_PER_STEP {
            let live_due = self.batch_due_at().is_some_and(|at| at <= Instant::now());
            if page_no > 0 && live_due {
                break; // live work first; the read goes on at once after it
            }
            let mut state = self.current_sync();
            let filter = match state.history_cursor {
                Some(cursor) => HistoryFilter {
                    since_id: Some(i64::try_from(cursor).unwrap_or(i64::MAX)),
                    limit: PageLimit::Hundred,
                    ..HistoryFilter::default()
                },
                // No connect-time cursor: start at the connect time, not at the account's
                // first record (older orders are the backfill's job).
                None => HistoryFilter {
                    start_date: Some(self.config.created_at.with_timezone(&tz).naive_local()),
                    limit: PageLimit::Hundred,
                    ..HistoryFilter::default()
                },
            };
            let started = Instant::now();
            let page = client(&mut self.crm)?.history(filter).await?;
            metrics.stage("history", started.elapsed());
            if page.is_empty() {
                return self.finish_reconcile(state).await.map(|()| true);
            }
            let work = classify(&page);
            for (entry_id, reason, raw) in &work.bad {
                // Logged once, by the dead-letter sender, with the order and the reason.
                let record = Delivered {
                    topic: HISTORY_SOURCE.to_owned(),
                    partition: -1,
                    offset: entry_id.unwrap_or(-1),
                    key: Some(self.id.to_string()),
                    payload: serde_json::to_vec(raw).unwrap_or_default(),
                    headers: Vec::new(),
                };
                self.context
                    .dead_letter(&record, STAGE_HISTORY, reason)
                    .await
                    .map_err(bus_failure)?;
            }
            let now = Utc::now();
            let mut events: Vec<Event> = work
                .deleted
                .iter()
                .map(|&(order_id, merged_into)| {
                    Event::DealDeleted(DealDeleted {
                        order_id,
                        merged_into,
                        observed_at: now,
                    })
                })
                .collect();
            events.extend(stage_events(stage_records(&page, tz)));
            events.extend(work.changed.iter().map(|(&order_id, &latest)| {
                Event::OrderChanged(OrderChanged {
                    order_id,
                    source: ChangeSource::History,
                    received_at: changed_by(latest, tz, now),
                })
            }));
            self.context
                .output
                .publish(self.id, events)
                .await
                .map_err(bus_failure)?;
            self.known_deleted.remember(work.deleted.iter().copied());
            metrics
                .sync()
                .history_entries("changed", page.len() - work.bad.len() - work.deleted.len());
            metrics
                .sync()
                .history_entries("deleted", work.deleted.len());
            metrics
                .sync()
                .history_entries("dead_lettered", work.bad.len());

            let moved = page
                .last_id()
                .and_then(|id| u64::try_from(id).ok())
                .filter(|id| state.history_cursor.is_none_or(|c| *id > c));
            let Some(cursor) = moved else {
                // Only records without a readable id: nothing to move the cursor to.
                tracing::error!(integration_id = %self.id, cursor = state.history_cursor, "history page gives no later record id; the cursor stays");
                return self.finish_reconcile(state).await.map(|()| true);
            };
            state.history_cursor = Some(cursor);
            let full = page.len() >= PageLimit::Hundred.get() as usize;
            if !full {
                return self.finish_reconcile(state).await.map(|()| true);
            }
            self.save_sync(state).await?;
        }
        metrics.sync().reconciled("yielded");
        self.sync.reconcile_yielded(Instant::now());
        Ok(false)
    }

    /// History read to its end: the cursor and `last_reconciled_at` are written.
    async fn finish_reconcile(
        &mut self,
        mut state: dealflow_shared::events::SyncStateChanged,
    ) -> Result<(), Failure> {
        state.last_reconciled_at = Some(Utc::now());
        self.save_sync(state).await?;
        self.sync
            .reconcile_done(self.context.settings.reconcile_interval, Instant::now());
        self.context.metrics.sync().reconciled("complete");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dealflow_shared::retailcrm::models::OrdersHistoryResponse;

    use super::*;

    fn page(entries: serde_json::Value) -> HistoryPage {
        let body: OrdersHistoryResponse = serde_json::from_value(serde_json::json!({
            "success": true, "history": entries,
        }))
        .unwrap();
        HistoryPage {
            history: body.history,
            unreadable: Vec::new(),
            pagination: None,
            generated_at: None,
        }
    }

    #[test]
    fn changes_deletions_and_merges_are_sorted_out() {
        let p = page(serde_json::json!([
            {"id": 10, "createdAt": "2024-01-15 10:00:00", "field": "status", "order": {"id": 5}},
            {"id": 11, "createdAt": "2024-01-15 10:00:01", "field": "status", "order": {"id": 6}},
            {"id": 12, "createdAt": "2024-01-15 10:00:02", "field": "status", "order": {"id": 5}},
            {"id": 13, "createdAt": "2024-01-15 10:00:03", "deleted": true, "field": "id",
             "order": {"id": 6}, "combinedTo": {"id": 7}},
            {"id": 14, "createdAt": "2024-01-15 10:00:04", "deleted": true, "field": "id",
             "order": {"id": 8}},
            {"id": 15, "createdAt": "2024-01-15 10:00:05", "field": "status"},
        ]));
        let work = classify(&p);
        assert_eq!(
            work.changed.keys().copied().collect::<Vec<_>>(),
            [5],
            "6 was merged away"
        );
        let latest = NaiveDateTime::parse_from_str("2024-01-15 10:00:02", "%Y-%m-%d %H:%M:%S");
        assert_eq!(
            work.changed[&5],
            latest.unwrap(),
            "the order's latest record"
        );
        assert_eq!(work.deleted, vec![(6, Some(7)), (8, None)]);
        assert_eq!(work.bad.len(), 1);
        assert_eq!(work.bad[0].0, Some(15));
        assert_eq!(p.last_id(), Some(15));
    }
}

#[cfg(test)]
mod changed_by_tests {
    use super::*;

    #[test]
    fn a_history_change_is_dated_by_its_record_a_second_later_never_in_the_future() {
        let tz: Tz = "Europe/Moscow".parse().unwrap();
        let local =
            NaiveDateTime::parse_from_str("2024-01-15 10:00:02", "%Y-%m-%d %H:%M:%S").unwrap();
        let now = Utc::now();
        let at = changed_by(local, tz, now);
        assert_eq!(at.to_rfc3339(), "2024-01-15T07:00:03+00:00");
        let future = (now + chrono::Duration::hours(4))
            .with_timezone(&tz)
            .naive_local();
        assert_eq!(changed_by(future, tz, now), now);
    }
}
