//! Historical loads: the backfill on connect (`backfill_days`) and re-syncs the user asks
//! for. Each pages through `GET /orders?filter[createdAtFrom]=since&limit=100`, one page per
//! step, within the account's budget; the full orders in each page are mapped like a live
//! batch (no per-order calls), so the events are the webhook path's. Progress goes to
//! `sync-state` after every page, so a restart resumes at the next page. Once the orders are
//! loaded, the load's timeline pass (`timeline`) reads the window's `orders/history` the same
//! way, page by page, so the loaded deals get every stage they passed through: deals first,
//! timelines next.
//!
//! **Live changes first.** A page is read only when no live batch is due and either the
//! account's live queue is empty or `live_batches_per_load_page` live batches ran since the
//! last page: a webhook waits at most one page (one request) behind a backfill, and a busy
//! account's backfill still moves.
//!
//! **Moving pages.** The list's order is not documented (the simulator sorts newest first).
//! Orders created during the load land before the window's older orders (newest first: pages
//! shift later, so some orders are read twice, harmless) or after them (oldest first: read
//! at the end); none is skipped either way, so the window has no upper bound (and live
//! changes cover new orders anyway). Orders deleted during the load shift later orders onto
//! pages already read; when the window's total shrinks, the load steps back as many pages as
//! orders went away and reads them again.

use chrono::{Days, Utc};
use dealflow_shared::bus::Delivered;
use dealflow_shared::events::{LoadKind, LoadProgress, SyncStateChanged};
use dealflow_shared::retailcrm::models::Pagination;
use tokio::time::Instant;

use super::Worker;
use super::batch::client;
use super::failure::{Failure, bus_failure, is_unreadable};
use crate::context::STAGE_LOAD;

/// Orders per page (the most `/orders` documents).
const PAGE_SIZE: u64 = 100;
/// The source recorded on dead letters of load pages and orders.
pub const LOAD_SOURCE: &str = "retailcrm:orders";

pub(super) fn kind_label(kind: LoadKind) -> &'static str {
    match kind {
        LoadKind::Backfill => "backfill",
        LoadKind::Resync => "resync",
    }
}

fn slot(state: &mut SyncStateChanged, kind: LoadKind) -> &mut Option<LoadProgress> {
    match kind {
        LoadKind::Backfill => &mut state.backfill,
        LoadKind::Resync => &mut state.resync,
    }
}

/// Moves `progress` past page `page_no`, which returned `got` orders.
pub(super) fn advance(
    progress: &mut LoadProgress,
    page_no: u32,
    got: usize,
    pagination: &Pagination,
) {
    let (total, pages) = (pagination.total_count, pagination.total_page_count);
    let mut done = page_no;
    if let Some(before) = progress.orders_total
        && total < before
    {
        // Orders went away: later ones moved onto pages already read. Read those again.
        let back = u32::try_from((before - total).div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX);
        done = page_no.saturating_sub(back.saturating_add(1));
    }
    progress.pages_done = done;
    progress.orders_done = (progress.orders_done + got as u64).min(total);
    progress.orders_total = Some(total);
    progress.pages_total = Some(pages);
    if done == page_no && page_no >= pages {
        progress.finished_at = Some(Utc::now());
    }
}

impl Worker {
    /// The load to run next: an unfinished backfill first, then the latest re-sync request.
    pub(super) fn pending_load(&self) -> Option<LoadKind> {
        let state = self.sync.state();
        if self.config.backfill_days > 0
            && state
                .and_then(|s| s.backfill.as_ref())
                .is_none_or(|p| !p.is_complete())
        {
            return Some(LoadKind::Backfill);
        }
        let request = self.config.resync.as_ref()?;
        let served = state
            .and_then(|s| s.resync.as_ref())
            .is_some_and(|p| p.requested_at >= request.requested_at && p.is_complete());
        (!served).then_some(LoadKind::Resync)
    }

    /// Whether a load page may run now (live changes first).
    pub(super) fn load_allowed(&self) -> bool {
        self.pending_load().is_some()
            && (self.live.waiting.is_empty()
                || self.sync.live_since_page() >= self.context.settings.live_batches_per_load_page)
    }

    /// The progress to continue, or a new load for the current request.
    fn load_progress(&self, state: &mut SyncStateChanged, kind: LoadKind) -> LoadProgress {
        let tz = self.reference.get().map(|r| r.timezone).unwrap_or_default();
        let (since, until, requested_at) = match (kind, &self.config.resync) {
            (LoadKind::Resync, Some(request)) => {
                (request.since, request.until, request.requested_at)
            }
            _ => {
                let connected = self.config.created_at.with_timezone(&tz).date_naive();
                let days = Days::new(u64::from(self.config.backfill_days));
                (
                    connected.checked_sub_days(days).unwrap_or(connected),
                    None,
                    self.config.created_at,
                )
            }
        };
        match slot(state, kind).take() {
            Some(p) if p.requested_at == requested_at && !p.is_complete() => p,
            _ => {
                tracing::info!(integration_id = %self.id, kind = kind_label(kind), %since, ?until, "load started");
                LoadProgress {
                    kind,
                    since,
                    until,
                    requested_at,
                    pages_done: 0,
                    pages_total: None,
                    orders_done: 0,
                    orders_total: None,
                    started_at: Utc::now(),
                    finished_at: None,
                    timeline: None,
                }
            }
        }
    }

    /// Reads, maps and publishes one page of the pending load (or, once its orders are
    /// loaded, of its timeline pass), then writes the progress.
    pub(super) async fn load_page(&mut self) -> Result<(), Failure> {
        let Some(kind) = self.pending_load() else {
            return Ok(());
        };
        self.ensure_reference().await?;
        let mut state = self.current_sync();
        let mut progress = self.load_progress(&mut state, kind);
        if progress.finished_at.is_some() {
            let tz = self.reference.get().expect("loaded above").timezone;
            self.timeline_page(&state, &mut progress, tz).await?;
            *slot(&mut state, kind) = Some(progress);
            return self.save_sync(state).await;
        }
        let page_no = progress.pages_done + 1;
        let started = Instant::now();
        let label = kind_label(kind);
        let answer = client(&mut self.crm)?
            .orders_created_between(progress.since, progress.until, page_no)
            .await;
        match answer {
            Ok(page) => {
                self.resolve_reference(&page.orders, started).await?;
                let mut mapped = self.map_orders(&page.orders, &[]);
                for (order_id, _, reason) in &mapped.poison {
                    let payload =
                        serde_json::json!({"order_id": order_id, "load": label, "page": page_no});
                    self.dead_letter_load(*order_id as i64, payload, reason)
                        .await?;
                }
                let events = std::mem::take(&mut mapped.events);
                self.context
                    .output
                    .publish(self.id, events)
                    .await
                    .map_err(bus_failure)?;
                self.reference.remember_stages(&mapped);
                self.context
                    .metrics
                    .orders_fetched("found", page.orders.len());
                self.context.metrics.sync().load_page(label, "ok");
                advance(&mut progress, page_no, page.orders.len(), &page.pagination);
            }
            Err(error) if is_unreadable(&error) => {
                // One page RetailCRM answers with something unreadable is skipped (with its
                // reason on the dead-letter topic) rather than stalling the load forever.
                let payload =
                    serde_json::json!({"load": label, "since": progress.since, "page": page_no});
                self.dead_letter_load(-1, payload, &error.to_string())
                    .await?;
                self.context.metrics.sync().load_page(label, "unreadable");
                progress.pages_done = page_no;
                if progress.pages_total.is_some_and(|total| page_no >= total) {
                    progress.finished_at = Some(Utc::now());
                }
            }
            Err(error) => return Err(error.into()),
        }
        self.context.metrics.stage("load_page", started.elapsed());
        let finished = progress.finished_at.is_some();
        self.log_progress(&progress, finished);
        *slot(&mut state, kind) = Some(progress.clone());
        self.save_sync(state).await?;
        self.sync.report_load(
            self.context.metrics.sync(),
            (!finished).then_some((
                kind,
                i64::try_from(progress.orders_done).unwrap_or(i64::MAX),
                progress
                    .orders_total
                    .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
            )),
        );
        Ok(())
    }

    async fn dead_letter_load(
        &self,
        offset: i64,
        payload: serde_json::Value,
        reason: &str,
    ) -> Result<(), Failure> {
        // Logged once, by the dead-letter sender, with the order and the reason.
        let record = Delivered {
            topic: LOAD_SOURCE.to_owned(),
            partition: -1,
            offset,
            key: Some(self.id.to_string()),
            payload: serde_json::to_vec(&payload).unwrap_or_default(),
            headers: Vec::new(),
        };
        self.context
            .dead_letter(&record, STAGE_LOAD, reason)
            .await
            .map_err(bus_failure)
    }

    /// Logs progress every `progress_log_every`, and always when a load ends.
    fn log_progress(&mut self, progress: &LoadProgress, finished: bool) {
        let every = self.context.settings.progress_log_every;
        if !self.sync.progress_log_due(every, finished) {
            return;
        }
        let elapsed = (Utc::now() - progress.started_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
        let per_second = if elapsed > 0.0 {
            progress.orders_done as f64 / elapsed
        } else {
            0.0
        };
        tracing::info!(
            integration_id = %self.id, kind = kind_label(progress.kind), since = %progress.since,
            pages_done = progress.pages_done, pages_total = progress.pages_total,
            orders_done = progress.orders_done, orders_total = progress.orders_total,
            orders_per_second = format!("{per_second:.0}"), finished,
            "{}", if finished { "load finished" } else { "load progress" }
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn progress() -> LoadProgress {
        LoadProgress {
            kind: LoadKind::Backfill,
            since: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            until: None,
            requested_at: Utc::now(),
            pages_done: 0,
            pages_total: None,
            orders_done: 0,
            orders_total: None,
            started_at: Utc::now(),
            finished_at: None,
            timeline: None,
        }
    }

    fn pagination(total: u64) -> Pagination {
        Pagination {
            limit: 100,
            total_count: total,
            current_page: 1,
            total_page_count: u32::try_from(total.div_ceil(100)).unwrap(),
        }
    }

    #[test]
    fn pages_advance_and_the_last_one_finishes() {
        let mut p = progress();
        advance(&mut p, 1, 100, &(pagination(250)));
        assert_eq!(
            (p.pages_done, p.orders_done, p.orders_total),
            (1, 100, Some(250))
        );
        advance(&mut p, 2, 100, &(pagination(250)));
        assert!(p.finished_at.is_none());
        advance(&mut p, 3, 50, &(pagination(250)));
        assert_eq!((p.pages_done, p.orders_done), (3, 250));
        assert!(p.finished_at.is_some());
    }

    #[test]
    fn a_shrinking_window_steps_back_and_an_empty_one_ends_at_once() {
        let mut p = progress();
        advance(&mut p, 1, 100, &(pagination(500)));
        advance(&mut p, 2, 100, &(pagination(500)));
        // Three orders were deleted before page 3 was read: page 2 is read again.
        advance(&mut p, 3, 100, &(pagination(497)));
        assert_eq!(p.pages_done, 1, "the next page is 2 again");
        assert!(p.finished_at.is_none());
        let mut empty = progress();
        advance(&mut empty, 1, 0, &(pagination(0)));
        assert!(empty.finished_at.is_some());
    }
}
