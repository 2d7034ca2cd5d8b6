//! Backfill on connect and re-sync (DESIGN §7.1): 5,000 orders are loaded in pages of 100
//! within the account's budget (the simulator's busiest second never exceeds it), a crash
//! midway resumes at the next page instead of starting over, webhooks sent during the
//! backfill are applied before it ends, and a re-sync re-emits exactly the orders created
//! since its date. Embedded log. After the orders, the backfill's timeline pass reads the
//! window's `orders/history` inside the same budget and gives every loaded order its stages.
//!
//! The backfill test prints its throughput (orders/s against the 100 × budget ceiling) and
//! what the timeline pass cost (history calls, time):
//! `cargo test -p dealflow-enricher --test backfill -- --nocapture`.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use dealflow_shared::events::{
    Event, IntegrationId, LoadProgress, ResyncRequested, SyncStateChanged,
};
use dealflow_shared::retailcrm::{BudgetSettings, Budgets};
use dealflow_simulator::{AccountConfig, NewOrder, SimConfig, Simulator};
use support::{App, Backend, Deals, Reader, test_settings, truth_orders};
use tokio::time::Instant;

const LONG: Duration = Duration::from_secs(90);

async fn latest(reader: &mut Reader, id: IntegrationId) -> Option<SyncStateChanged> {
    reader.poll().await;
    reader
        .envelopes()
        .into_iter()
        .filter(|e| e.integration_id == id)
        .filter_map(|e| match e.event {
            Event::SyncStateChanged(s) => Some(s),
            _ => None,
        })
        .next_back()
}

async fn wait_load(
    reader: &mut Reader,
    id: IntegrationId,
    what: &str,
    pick: impl Fn(&SyncStateChanged) -> Option<&LoadProgress>,
    done: impl Fn(&LoadProgress) -> bool,
) -> LoadProgress {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(state) = latest(reader, id).await
            && let Some(progress) = pick(&state)
            && done(progress)
        {
            return progress.clone();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

fn crm_calls(app_metrics: &dealflow_shared::metrics::Metrics, endpoint: &str) -> f64 {
    let prefix = format!("dealflow_enricher_crm_calls_total{{endpoint=\"{endpoint}\"");
    app_metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn list_calls(app_metrics: &dealflow_shared::metrics::Metrics) -> f64 {
    crm_calls(app_metrics, "orders_list")
}

#[tokio::test]
async fn a_backfill_of_5000_orders_stays_in_budget_resumes_and_lets_webhooks_first() {
    let backend = Backend::embedded().await;
    let mut account_config = AccountConfig::with_orders(5000);
    account_config.history_days = 20;
    let mut config = SimConfig::new(0, 0);
    config.accounts.push(account_config);
    let sim = Simulator::start(config).await.unwrap();
    let account = sim.account(0);
    let live: HashSet<u64> = truth_orders(&account.truth())
        .iter()
        .filter(|o| !o.1)
        .map(|o| o.0)
        .collect();
    let id = IntegrationId::new();
    let cursor = account.inspect(|s| s.history.last_id());
    backend
        .configure_with(id, &account.url(), &account.api_key(), |c| {
            c.backfill_days = 30;
            c.history_since_id = cursor;
        })
        .await;
    let budgets = || Budgets::new(BudgetSettings::default());
    let rps = BudgetSettings::default().rps();
    let mut states = backend.reader(&backend.topics.sync_state()).await;

    // First run: killed once 15 pages are done.
    let app = App::start_with_budgets(&backend, test_settings(&backend), budgets()).await;
    let metrics = app.metrics.clone();
    wait_load(
        &mut states,
        id,
        "15 pages",
        |s| s.backfill.as_ref(),
        |p| p.pages_done >= 15,
    )
    .await;
    app.kill().await;
    let first_run_pages = list_calls(&metrics);
    let resumed = latest(&mut states, id).await.unwrap().backfill.unwrap();
    assert!(resumed.finished_at.is_none(), "killed midway");

    // Second run: resumes at the next page; webhooks for orders created now come first.
    let restarted = Instant::now();
    let app = App::start_with_budgets(&backend, test_settings(&backend), budgets()).await;
    wait_load(
        &mut states,
        id,
        "the resumed backfill",
        |s| s.backfill.as_ref(),
        |p| p.pages_done > resumed.pages_done,
    )
    .await;
    let fresh: Vec<u64> = (0..3)
        .map(|_| account.create_order(&NewOrder::default()).unwrap())
        .collect();
    backend.changes(id, &fresh).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(LONG, "the webhook orders", |e| {
            Deals::of(e, id).covers(&fresh)
        })
        .await;
    let during = latest(&mut states, id).await.unwrap().backfill.unwrap();
    assert!(
        during.finished_at.is_none(),
        "webhooks are applied before the backfill ends ({} of {:?} pages done)",
        during.pages_done,
        during.pages_total
    );

    let done = wait_load(
        &mut states,
        id,
        "the backfill to finish",
        |s| s.backfill.as_ref(),
        |p| p.finished_at.is_some(),
    )
    .await;
    let took = restarted.elapsed();
    let second_run_pages = list_calls(&app.metrics);
    let pages = done.pages_total.unwrap();
    assert_eq!(
        pages, 50,
        "5,000 orders in pages of 100 (the 3 new ones make no new page)"
    );
    // At most the page in flight when the first run was killed is read twice.
    assert!(
        first_run_pages + second_run_pages <= f64::from(pages) + 1.0,
        "{first_run_pages} + {second_run_pages} list calls for {pages} pages"
    );
    assert!(
        f64::from(resumed.pages_done) <= first_run_pages,
        "progress is written only after a page's events"
    );
    deals
        .until(LONG, "every order of the window", |e| {
            let found = Deals::of(e, id).orders();
            live.iter().all(|o| found.contains(o))
        })
        .await;
    let busiest = account.counters().max_per_second;
    assert!(
        busiest <= 10,
        "the account saw {busiest} requests in one second"
    );
    let resumed_orders = (done.pages_done - resumed.pages_done) * 100;
    let per_second = f64::from(resumed_orders) / took.as_secs_f64();
    let ceiling = 100.0 * f64::from(rps);
    eprintln!(
        "backfill throughput: {resumed_orders} orders in {took:.2?} = {per_second:.0} orders/s, \
         {:.0}% of the {ceiling:.0} orders/s ceiling (budget {rps}/s, busiest second {busiest})",
        100.0 * per_second / ceiling
    );

    // Deals first, timelines next: the pass starts once the orders are loaded, reads the
    // window's history inside the same budget and gives every loaded order its stages.
    let complete = wait_load(
        &mut states,
        id,
        "the backfill's timeline pass",
        |s| s.backfill.as_ref(),
        LoadProgress::is_complete,
    )
    .await;
    let timeline = complete.timeline.clone().unwrap();
    assert!(
        complete.finished_at.unwrap() <= timeline.started_at,
        "the timeline pass starts after the last page of orders"
    );
    let timeline_took = (timeline.finished_at.unwrap() - timeline.started_at)
        .to_std()
        .unwrap();
    // Every history call of this run: the pass's pages and reconciliation's.
    let history_calls = crm_calls(&app.metrics, "history");
    assert!(history_calls >= f64::from(timeline.pages_done));
    let expected_records = account.inspect(|s| {
        s.history
            .entries()
            .iter()
            .filter(|e| cursor.is_none_or(|c| e.id <= c))
            .count()
    });
    assert!(
        timeline.records_done >= expected_records as u64,
        "the pass read {} of the window's {expected_records} history records",
        timeline.records_done
    );
    let end = backend.published(&backend.topics.deals()).await;
    deals.until_records(LONG, end).await;
    let staged = Deals::of(&deals.envelopes(), id);
    let missing: Vec<&u64> = live
        .iter()
        .filter(|o| !staged.stages.contains_key(o))
        .collect();
    assert!(
        missing.is_empty(),
        "orders without history stages: {missing:?}"
    );
    let busiest = account.counters().max_per_second;
    assert!(
        busiest <= 10,
        "the account saw {busiest} requests in one second"
    );
    eprintln!(
        "backfill timeline: {} history pages for {} records ({} status records) of {} orders in \
         {timeline_took:.2?} after the orders ({history_calls} history calls in the run with \
         reconciliation's; budget {rps}/s, busiest second {busiest})",
        timeline.pages_done,
        timeline.records_done,
        timeline.stages_recorded,
        live.len(),
    );
    assert!(app.metric("dealflow_backfill_running") == 0.0);
    app.stop().await;
}

#[tokio::test]
async fn a_resync_re_emits_exactly_the_orders_created_in_its_days() {
    let backend = Backend::embedded().await;
    let sim = Simulator::start(SimConfig::new(1, 300)).await.unwrap();
    let account = sim.account(0);
    let orders = truth_orders(&account.truth());
    let created = |o: &serde_json::Value| {
        NaiveDate::parse_from_str(&o["createdAt"].as_str().unwrap()[..10], "%Y-%m-%d").unwrap()
    };
    let mut days: Vec<NaiveDate> = orders.iter().map(|o| created(&o.2)).collect();
    days.sort_unstable();
    // A window in the middle: both ends are days in the account's timezone, inclusive.
    let since = days[days.len() / 3];
    let until = days[days.len() * 2 / 3];
    let expected: HashSet<u64> = orders
        .iter()
        .filter(|o| !o.1 && created(&o.2) >= since && created(&o.2) <= until)
        .map(|o| o.0)
        .collect();
    assert!(expected.len() > 50 && expected.len() < 200);
    let id = IntegrationId::new();
    let cursor = account.inspect(|s| s.history.last_id());
    let configure = |resync: Option<ResyncRequested>| {
        let (url, key) = (account.url(), account.api_key());
        let backend = &backend;
        async move {
            backend
                .configure_with(id, &url, &key, |c| {
                    c.history_since_id = cursor;
                    c.resync = resync;
                })
                .await
        }
    };
    configure(None).await;
    let app = App::start(&backend, test_settings(&backend)).await;
    let requested_at = Utc::now();
    configure(Some(ResyncRequested {
        since,
        until: Some(until),
        requested_at,
    }))
    .await;
    let mut states = backend.reader(&backend.topics.sync_state()).await;
    let done = wait_load(
        &mut states,
        id,
        "the re-sync",
        |s| s.resync.as_ref(),
        |p| p.requested_at == requested_at && p.finished_at.is_some(),
    )
    .await;
    assert_eq!((done.since, done.until), (since, Some(until)));
    assert_eq!(done.orders_total, Some(expected.len() as u64));
    let end = backend.published(&backend.topics.deals()).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals.until_records(LONG, end).await;
    let found = Deals::of(&deals.envelopes(), id);
    assert_eq!(
        found.orders(),
        expected,
        "exactly the orders created from {since} to {until}"
    );
    assert!(found.deleted.is_empty());

    // Then its timeline pass: the window's history from `since`, so every re-synced order gets
    // its status records, each at its record's time and in record order.
    let complete = wait_load(
        &mut states,
        id,
        "the re-sync's timeline pass",
        |s| s.resync.as_ref(),
        |p| p.requested_at == requested_at && p.is_complete(),
    )
    .await;
    assert!(complete.timeline.as_ref().unwrap().stages_recorded > 0);
    let end = backend.published(&backend.topics.deals()).await;
    deals.until_records(LONG, end).await;
    let staged = Deals::of(&deals.envelopes(), id).stages;
    let truth = account.truth();
    for order in &expected {
        let want: Vec<(String, u64)> = truth["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == *order)
            .unwrap()["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["code"].as_str().unwrap().to_owned(),
                    s["history_id"].as_u64().unwrap(),
                )
            })
            .collect();
        let got: Vec<(String, u64)> = staged
            .get(order)
            .unwrap_or_else(|| panic!("no stages for re-synced order {order}"))
            .iter()
            .map(|s| (s.stage_code.clone(), s.history_id))
            .collect();
        assert_eq!(got, want, "order {order}");
    }
    app.stop().await;
}
