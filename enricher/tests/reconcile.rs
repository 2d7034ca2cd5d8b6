//! Reconciliation finds what no webhook announced: orders changed, created, deleted and
//! merged in the simulator with no webhook at all reach the deals topic within one
//! (short) interval, deleted ones as `DealDeleted` (merged ones with `merged_into`) and never
//! resurrected; the cursor and `last_reconciled_at` are on `sync-state`. A history record
//! that cannot be processed goes to the dead-letter topic and later records are still
//! applied. On the embedded log and on Kafka.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use dealflow_shared::bus::{HEADER_SOURCE_OFFSET, HEADER_STAGE};
use dealflow_shared::events::{Event, IntegrationId, SyncStateChanged};
use dealflow_simulator::{NewOrder, SimConfig, Simulator};
use serde_json::{Value, json};
use support::{App, Backend, Deals, Reader, WAIT, test_settings, truth_orders};
use tokio::time::Instant;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INTERVAL: Duration = Duration::from_millis(800);

/// The integration's latest sync state read so far.
async fn sync_state(reader: &mut Reader, id: IntegrationId) -> Option<SyncStateChanged> {
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

/// Polls until the integration's latest sync state satisfies `done`.
async fn wait_state(
    reader: &mut Reader,
    id: IntegrationId,
    what: &str,
    done: impl Fn(&SyncStateChanged) -> bool,
) -> SyncStateChanged {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(state) = sync_state(reader, id).await
            && done(&state)
        {
            return state;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// The account's orders that are not deleted.
fn live_orders(account: &dealflow_simulator::AccountHandle) -> Vec<u64> {
    truth_orders(&account.truth())
        .iter()
        .filter(|o| !o.1)
        .map(|o| o.0)
        .collect()
}

/// Connects the account with its history cursor at the last record (as connecting does):
/// the integration and that cursor.
async fn connect_at_history_end(
    backend: &Backend,
    account: &dealflow_simulator::AccountHandle,
) -> (IntegrationId, Option<u64>) {
    let cursor = account.inspect(|s| s.history.last_id());
    let id = IntegrationId::new();
    backend
        .configure_with(id, &account.url(), &account.api_key(), |c| {
            c.history_since_id = cursor;
        })
        .await;
    (id, cursor)
}

async fn changes_without_webhooks_appear_within_one_interval(backend: Backend) {
    let sim = Simulator::start(SimConfig::new(1, 40)).await.unwrap();
    let account = sim.account(0);
    let live = live_orders(account);
    let (id, cursor) = connect_at_history_end(&backend, account).await;
    let mut settings = test_settings(&backend);
    settings.reconcile_interval = INTERVAL;
    let app = App::start(&backend, settings).await;

    // No webhook for any of these.
    let (changed, deleted, merged, survivor) = (live[0], live[1], live[2], live[3]);
    account.set_status(changed, "complete", None).unwrap();
    let created = account.create_order(&NewOrder::default()).unwrap();
    account.delete_order(deleted, None).unwrap();
    account.merge_orders(merged, survivor).unwrap();
    let mutated = Instant::now();

    let mut deals = backend.reader(&backend.topics.deals()).await;
    let envelopes = deals
        .until(WAIT, "the changes found through orders/history", |e| {
            let d = Deals::of(e, id);
            d.upserted
                .get(&changed)
                .is_some_and(|v| v.iter().any(|x| x.status_code == "complete"))
                && d.upserted.contains_key(&created)
                && d.deleted.contains_key(&deleted)
                && d.deleted
                    .get(&merged)
                    .is_some_and(|v| v.iter().any(|x| x.merged_into == Some(survivor)))
        })
        .await;
    let took = mutated.elapsed();
    // One interval to notice, then one batch (linger + a few calls at 8/s).
    assert!(
        took < INTERVAL * 2 + Duration::from_secs(3),
        "found after {took:?} with an interval of {INTERVAL:?}"
    );
    let found = Deals::of(&envelopes, id);
    let expected = [changed, created, deleted, merged, survivor];
    assert!(
        found.orders().iter().all(|o| expected.contains(o)),
        "only changed orders are fetched: {:?}",
        found.orders()
    );
    assert_eq!(found.deleted[&deleted][0].merged_into, None);

    // Another interval or two later: the deleted and merged orders stay deleted.
    let mut states = backend.reader(&backend.topics.sync_state()).await;
    let first = wait_state(&mut states, id, "a sync state", |_| true).await;
    wait_state(&mut states, id, "a later reconciliation", |s| {
        s.last_reconciled_at > first.last_reconciled_at
    })
    .await;
    deals.poll().await;
    let found = Deals::of(&deals.envelopes(), id);
    for gone in [deleted, merged] {
        assert!(
            !found.upserted.contains_key(&gone),
            "order {gone} is never upserted"
        );
    }
    let state = sync_state(&mut states, id).await.unwrap();
    let last = account.inspect(|s| s.history.last_id()).unwrap();
    assert_eq!(
        state.history_cursor,
        Some(last),
        "the cursor reached the end"
    );
    assert!(state.history_cursor > cursor);
    assert!(app.metric("dealflow_reconciliations_total") >= 2.0);
    app.stop().await;
}

#[tokio::test]
async fn changes_without_webhooks_appear_within_one_interval_embedded() {
    changes_without_webhooks_appear_within_one_interval(Backend::embedded().await).await;
}

#[tokio::test]
async fn changes_without_webhooks_appear_within_one_interval_kafka() {
    changes_without_webhooks_appear_within_one_interval(Backend::kafka().await).await;
}

/// Orders deleted after the account was connected are learnt from `orders/history` (which
/// the sync's owner reads anyway) rather than with a `GET /orders/{id}` each (issue 20):
/// webhooks name 60 orders, six of them deleted or merged since connecting and one deleted
/// before; the six cost one history read together, only the older one a lookup. Embedded
/// log only: the bus plays no part in the choice.
#[tokio::test]
async fn deletions_since_connecting_cost_no_lookup() {
    let backend = Backend::embedded().await;
    let sim = Simulator::start(SimConfig::new(1, 150)).await.unwrap();
    let account = sim.account(0);
    let orders = truth_orders(&account.truth());
    let live: Vec<u64> = orders.iter().filter(|o| !o.1).map(|o| o.0).collect();
    let deleted_before = orders.iter().find(|o| o.1).expect("a generated deletion").0;
    let (id, _) = connect_at_history_end(&backend, account).await;
    // Connected: now five orders are deleted and one merged into another.
    let deleted_since: Vec<u64> = live[..5].to_vec();
    for order in &deleted_since {
        account.delete_order(*order, None).unwrap();
    }
    let (merged, survivor) = (live[5], live[6]);
    account.merge_orders(merged, survivor).unwrap();
    let mut named: Vec<u64> = live[..60].to_vec();
    named.push(deleted_before);

    // No reconciliation falls due by itself here: only the held orders make history read.
    let mut settings = test_settings(&backend);
    settings.reconcile_interval = Duration::from_secs(864_000);
    let app = App::start(&backend, settings).await;
    backend.changes(id, &named).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "a deal event for every order named", |e| {
            Deals::of(e, id).covers(&named)
        })
        .await;
    dealflow_testkit::wait_until(WAIT, "the enricher to hold nothing", || async {
        app.metric("dealflow_enricher_unfinished_records") == 0.0
            && app.metric("dealflow_enricher_waiting_orders") == 0.0
    })
    .await;
    deals.poll().await;
    let found = Deals::of(&deals.envelopes(), id);
    for order in deleted_since.iter().chain([&merged, &deleted_before]) {
        assert!(
            found.deleted.contains_key(order),
            "order {order}: DealDeleted"
        );
        assert!(!found.upserted.contains_key(order), "order {order} is gone");
    }
    assert_eq!(found.deleted[&merged][0].merged_into, Some(survivor));

    let counters = account.counters();
    let calls = |key: &str| counters.requests.get(key).copied().unwrap_or(0);
    assert_eq!(
        calls("GET /api/v5/orders/{id}"),
        1,
        "only the order deleted before connecting is looked up: {counters:?}"
    );
    // One read, or two if the orders came in two batches (each holds its missing orders).
    let history = calls("GET /api/v5/orders/history");
    assert!(
        (1..=2).contains(&history),
        "history read once per batch that held orders: {counters:?}"
    );
    assert_eq!(
        app.metric("dealflow_enricher_records_skipped_total{reason=\"deleted_in_history\"}"),
        6.0
    );
    app.stop().await;
}

/// A change that history reports after a live fetch already read it costs no second fetch
/// (issue 20): the history record dates the change, and the fetch that started after it (by
/// more than the clock margin) holds it. Order `edited` is changed, its webhook fetched seven
/// seconds later; then a webhook for an order deleted since connecting makes the enricher read
/// history, which reports both: one list call in all, the edit finished as covered.
#[tokio::test]
async fn a_change_history_reports_after_its_fetch_is_not_fetched_again() {
    let backend = Backend::embedded().await;
    let sim = Simulator::start(SimConfig::new(1, 30)).await.unwrap();
    let account = sim.account(0);
    let live = live_orders(account);
    let (id, _) = connect_at_history_end(&backend, account).await;
    let (edited, deleted) = (live[0], live[1]);
    account.set_status(edited, "complete", None).unwrap();
    account.delete_order(deleted, None).unwrap();
    // The fetch must start beyond the record's second and the enricher's 5 s clock margin.
    tokio::time::sleep(Duration::from_secs(7)).await;

    // Ten days: the first read's phase (at least a thousandth of the interval) is never due
    // in the run, so only the held deletion makes history read, after the edit's fetch.
    let mut settings = test_settings(&backend);
    settings.reconcile_interval = Duration::from_secs(864_000);
    let app = App::start(&backend, settings).await;
    backend.changes(id, &[edited, deleted]).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "the edit fetched and the deletion learnt", |e| {
            let d = Deals::of(e, id);
            d.upserted.contains_key(&edited) && d.deleted.contains_key(&deleted)
        })
        .await;
    dealflow_testkit::wait_until(WAIT, "the enricher to hold nothing", || async {
        app.metric("dealflow_enricher_unfinished_records") == 0.0
            && app.metric("dealflow_enricher_waiting_orders") == 0.0
            && app.metric("dealflow_enricher_records_skipped_total{reason=\"covered_by_fetch\"}")
                >= 1.0
    })
    .await;
    let counters = account.counters();
    let calls = |key: &str| counters.requests.get(key).copied().unwrap_or(0);
    assert!(calls("GET /api/v5/orders/history") >= 1, "{counters:?}");
    assert_eq!(
        calls("GET /api/v5/orders"),
        1,
        "the change history reported was already fetched: {counters:?}"
    );
    assert_eq!(calls("GET /api/v5/orders/{id}"), 0, "{counters:?}");
    app.stop().await;
}

fn fixture(name: &str) -> Value {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/retailcrm"
    ));
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

/// An account (wiremock, fixture data) whose history after record 500 holds a record that
/// cannot be read (501), one that names no order (502), a change of the fixture order (503)
/// and a merge (504); nothing after 504.
async fn account_with_a_bad_history_record() -> (MockServer, i64) {
    let server = MockServer::start().await;
    let order = fixture("orders-get.json")["order"].clone();
    let order_id = order["id"].as_i64().unwrap();
    for (route, file) in [
        ("/api/v5/settings", "settings.json"),
        ("/api/v5/reference/statuses", "reference-statuses.json"),
        (
            "/api/v5/reference/status-groups",
            "reference-status-groups.json",
        ),
        ("/api/v5/reference/sites", "reference-sites.json"),
        ("/api/v5/users/28", "users-get.json"),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(file)))
            .mount(&server)
            .await;
    }
    let history = json!([
        {"id": 501, "createdAt": "not a time", "field": "status", "order": {"id": order_id}},
        {"id": 502, "createdAt": "2024-01-15 10:00:01", "field": "status"},
        {"id": 503, "createdAt": "2024-01-15 10:00:02", "field": "status",
         "order": {"id": order_id, "site": order["site"], "status": order["status"]}},
        {"id": 504, "createdAt": "2024-01-15 10:00:03", "field": "id", "deleted": true,
         "source": "combine", "order": {"id": 9003}, "combinedTo": {"id": order_id}},
    ]);
    let page = |history: Value| {
        ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "generatedAt": "2024-01-15 10:00:05", "history": history,
            "pagination": {"limit": 100, "totalCount": 4, "currentPage": 1, "totalPageCount": 1},
        }))
    };
    Mock::given(method("GET"))
        .and(path("/api/v5/orders/history"))
        .and(query_param("filter[sinceId]", "500"))
        .respond_with(page(history))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v5/orders/history"))
        .and(query_param("filter[sinceId]", "504"))
        .respond_with(page(json!([])))
        .mount(&server)
        .await;
    let list = json!({"success": true, "orders": [order],
        "pagination": {"limit": 100, "totalCount": 1, "currentPage": 1, "totalPageCount": 1}});
    Mock::given(method("GET"))
        .and(path("/api/v5/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .mount(&server)
        .await;
    (server, order_id)
}

#[tokio::test]
async fn a_bad_history_record_is_dead_lettered_and_later_ones_applied() {
    let backend = Backend::embedded().await;
    let (server, order_id) = account_with_a_bad_history_record().await;
    let id = IntegrationId::new();
    backend
        .configure_with(id, &format!("{}/", server.uri()), "fixture-key", |c| {
            c.history_since_id = Some(500);
        })
        .await;
    let mut settings = test_settings(&backend);
    settings.reconcile_interval = INTERVAL;
    let app = App::start(&backend, settings).await;

    let mut letters = backend.reader(&backend.topics.dead_letter()).await;
    letters.until_records(WAIT, 2).await;
    let mut offsets: Vec<&str> = letters
        .records
        .iter()
        .map(|r| std::str::from_utf8(r.header(HEADER_SOURCE_OFFSET).unwrap()).unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, ["501", "502"]);
    assert!(
        letters
            .records
            .iter()
            .all(|r| r.header(HEADER_STAGE) == Some(b"enricher.history".as_slice()))
    );
    let mut deals = backend.reader(&backend.topics.deals()).await;
    let order_id = order_id as u64;
    deals
        .until(WAIT, "the records after the bad ones", |e| {
            let d = Deals::of(e, id);
            d.upserted.contains_key(&order_id)
                && d.deleted
                    .get(&9003)
                    .is_some_and(|v| v[0].merged_into == Some(order_id))
        })
        .await;
    let mut states = backend.reader(&backend.topics.sync_state()).await;
    wait_state(&mut states, id, "the cursor past the bad records", |s| {
        s.history_cursor == Some(504) && s.last_reconciled_at.is_some()
    })
    .await;
    app.stop().await;
}
