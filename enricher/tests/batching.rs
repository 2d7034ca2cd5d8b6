//! A burst of webhooks costs few calls: 1,000 `OrderChanged` for 300 distinct orders of one
//! account become exactly those 300 orders' deal events, fetched with a handful of
//! `filter[ids]` calls, and the simulated account never sees more than its budget in any
//! second. On the embedded log and on Kafka.

mod support;

use std::str::FromStr;

use dealflow_shared::events::{Event, IntegrationId};
use dealflow_simulator::{SimConfig, Simulator};
use dealflow_testkit::wait_until;
use rust_decimal::Decimal;
use support::{App, Backend, Deals, WAIT, order_fetching_calls, test_settings, truth_orders};

async fn a_burst_costs_one_fetch_per_order(backend: Backend) {
    let sim = Simulator::start(SimConfig::new(1, 300)).await.unwrap();
    let account = sim.account(0);
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let orders = truth_orders(&account.truth());
    assert_eq!(orders.len(), 300);
    let ids: Vec<u64> = orders.iter().map(|(id, _, _)| *id).collect();
    // Every order once, then 700 repeats spread over them (bursts of the same orders).
    let mut changes = ids.clone();
    changes.extend((0..700).map(|i| ids[(i * 7919 + 13) % ids.len()]));
    backend.changes(id, &changes).await;

    let app = App::start(&backend, test_settings(&backend)).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "a deal event for each of the 300 orders", |e| {
            Deals::of(e, id).covers(&ids)
        })
        .await;
    // Wait until the enricher holds nothing (every record finished, nothing waiting), then
    // read the deals topic to its end: what is there is everything it will ever emit.
    wait_until(WAIT, "the enricher to be idle", || async {
        app.metric("dealflow_enricher_unfinished_records") == 0.0
            && app.metric("dealflow_enricher_waiting_orders") == 0.0
    })
    .await;
    let end = backend.published(&backend.topics.deals()).await;
    deals.until_records(WAIT, end).await;
    let found = Deals::of(&deals.envelopes(), id);
    assert!(found.covers(&ids));
    assert_eq!(found.orders().len(), 300, "exactly the 300 orders");
    assert_eq!(found.events(), 300, "a burst for one order costs one fetch");
    for (order_id, deleted, order) in &orders {
        if *deleted {
            assert!(
                found.deleted.contains_key(order_id),
                "order {order_id} is gone: DealDeleted"
            );
            assert!(!found.upserted.contains_key(order_id));
            continue;
        }
        let deal = found.upserted[order_id].last().unwrap();
        assert_eq!(
            deal.status_code,
            order["status"].as_str().unwrap(),
            "order {order_id}"
        );
        let total = Decimal::from_str(&order["totalSumm"].to_string()).unwrap();
        assert_eq!(deal.total_sum, total, "order {order_id}");
    }
    let removed = orders.iter().filter(|o| o.1).count();
    assert!(
        removed > 0,
        "the generated account has deleted or merged orders"
    );

    let counters = account.counters();
    let fetching = order_fetching_calls(&counters);
    println!(
        "[{}] order-fetching calls: {fetching}, all calls: {}, max per second: {}, deal events: {}",
        backend.name,
        counters.total,
        counters.max_per_second,
        found.events()
    );
    assert!(
        fetching <= 10,
        "{fetching} order-fetching calls for 300 orders: {counters:?}"
    );
    assert!(counters.max_per_second <= 10, "{counters:?}");
    assert_eq!(
        counters.rate_limited, 0,
        "the budget never let the account refuse a call"
    );

    // Every (site, status) stage once, and the metrics tell the same story.
    let mut funnels = backend.reader(&backend.topics.funnels()).await;
    let truth = account.truth();
    let sites = truth["sites"].as_array().unwrap().len();
    let stages = funnels
        .until(WAIT, "the funnel stages", |e| !e.is_empty())
        .await;
    assert!(
        stages
            .iter()
            .all(|e| matches!(e.event, Event::FunnelStageSeen(_)))
    );
    assert_eq!(stages.len() % sites, 0, "every site gets every status");
    assert!(app.metric("dealflow_enricher_orders_per_call_count") >= 3.0);
    assert_eq!(
        app.metric("dealflow_enricher_orders_fetched_total{result=\"found\"}") as usize,
        300 - removed
    );
    assert_eq!(
        app.metric("dealflow_enricher_orders_fetched_total{result=\"deleted\"}") as usize,
        removed
    );
    let http = reqwest::Client::new();
    let text = dealflow_testkit::metrics::scrape(&http, &app.base).await;
    if std::env::var_os("SHOW_METRICS").is_some() {
        println!("{text}");
    }
    assert!(
        text.contains("dealflow_enricher_crm_calls_total{endpoint=\"orders\",status=\"ok\"}"),
        "{text}"
    );
    assert!(text.contains("dealflow_enricher_events_emitted_total{type=\"DealUpserted\"}"));
    assert_eq!(
        http.get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

/// A backlog read late: change records that ingest received before their order's fetch
/// started are finished without another call; a change received after the fetch is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_received_before_a_fetch_cost_no_call() {
    let backend = Backend::embedded().await;
    let sim = Simulator::start(SimConfig::new(1, 60)).await.unwrap();
    let account = sim.account(0);
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let ids: Vec<u64> = truth_orders(&account.truth())
        .iter()
        .map(|(id, _, _)| *id)
        .collect();
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(1);
    backend.changes_received_at(id, &ids, long_ago).await;
    let app = App::start(&backend, test_settings(&backend)).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "a deal event for every order", |e| {
            Deals::of(e, id).covers(&ids)
        })
        .await;
    wait_until(WAIT, "the enricher to be idle", || async {
        app.metric("dealflow_enricher_unfinished_records") == 0.0
            && app.metric("dealflow_enricher_waiting_orders") == 0.0
    })
    .await;
    let fetched = order_fetching_calls(&account.counters());

    // The same changes again, as a backlog would deliver them after the fetches.
    backend.changes_received_at(id, &ids, long_ago).await;
    let covered = "dealflow_enricher_records_skipped_total{reason=\"covered_by_fetch\"}";
    wait_until(WAIT, "every repeat to be finished as covered", || async {
        app.metric(covered) == ids.len() as f64
            && app.metric("dealflow_enricher_unfinished_records") == 0.0
    })
    .await;
    assert_eq!(order_fetching_calls(&account.counters()), fetched);

    // A change received now is newer than every fetch: fetched again.
    backend.changes(id, &ids[..1]).await;
    wait_until(WAIT, "the new change to be fetched", || async {
        order_fetching_calls(&account.counters()) > fetched
    })
    .await;
    assert_eq!(app.metric(covered), ids.len() as f64);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_on_embedded_log() {
    a_burst_costs_one_fetch_per_order(Backend::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_on_kafka() {
    a_burst_costs_one_fetch_per_order(Backend::kafka().await).await;
}
