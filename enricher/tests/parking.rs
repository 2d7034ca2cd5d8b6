//! A parked account does not hold its partition's offset hostage: its stalled records are
//! appended again at the end of the partition, so after a restart the healthy account's
//! records are not fetched again, and the parked account's work is still all there and
//! catches up once its key is replaced. On the embedded log (one partition shared by every
//! account) and on Kafka.

mod support;

use std::time::Duration;

use dealflow_enricher::HEADER_REQUEUED;
use dealflow_shared::events::{Envelope, Event, HealthStatus, IntegrationId};
use dealflow_simulator::{KeyAccess, SimConfig, Simulator};
use dealflow_testkit::wait_until;
use support::{App, Backend, Deals, WAIT, order_fetching_calls, test_settings, truth_orders};

async fn parked_work_survives_a_restart_without_holding_others(backend: Backend) {
    let sim = Simulator::start(SimConfig::new(2, 20)).await.unwrap();
    let (parked, healthy) = (sim.account(0), sim.account(1));
    let (parked_id, healthy_id) = (IntegrationId::new(), IntegrationId::new());
    backend
        .configure(parked_id, &parked.url(), &parked.api_key())
        .await;
    backend
        .configure(healthy_id, &healthy.url(), &healthy.api_key())
        .await;
    parked.revoke_key(0).unwrap();
    let parked_orders: Vec<u64> = truth_orders(&parked.truth())
        .iter()
        .take(10)
        .map(|o| o.0)
        .collect();
    let healthy_orders: Vec<u64> = truth_orders(&healthy.truth())
        .iter()
        .take(10)
        .map(|o| o.0)
        .collect();
    backend.changes(parked_id, &parked_orders).await;
    backend.changes(healthy_id, &healthy_orders).await;
    let published = backend.order_changed_len().await;

    let mut settings = test_settings(&backend);
    settings.requeue_after = Duration::from_secs(1);
    let app = App::start(&backend, settings.clone()).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "the healthy account's deals", |e| {
            Deals::of(e, healthy_id).covers(&healthy_orders)
        })
        .await;
    // The parked account's ten records come back at the end of the partition.
    wait_until(WAIT, "stalled records appended again", || async {
        backend.order_changed_len().await >= published + 10
    })
    .await;
    // Read until both the originals and ten appended copies are in: they may sit on different
    // partitions (the copies go under the account's key), which a reader gets in any order.
    let mut order_changed = backend.reader(&backend.topics.order_changed()).await;
    let deadline = std::time::Instant::now() + WAIT;
    let marked = loop {
        order_changed.poll().await;
        let marked = order_changed
            .records
            .iter()
            .filter(|r| r.header(HEADER_REQUEUED).is_some())
            .count();
        if order_changed.records.len() - marked >= published as usize && marked >= 10 {
            break marked;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the originals and the appended records ({} read, {marked} marked)",
            order_changed.records.len()
        );
    };
    assert_eq!(
        order_changed.records.len() - marked,
        published as usize,
        "every appended copy is marked"
    );
    assert!(app.metric("dealflow_enricher_records_requeued_total") >= 10.0);
    app.stop().await;

    // After the restart only the parked account's records are delivered again (the healthy
    // account's new worker only loads its reference data).
    let healthy_calls_before = order_fetching_calls(&healthy.counters());
    let app = App::start(&backend, settings).await;
    let (_, new_key) = parked.add_key(KeyAccess::default());
    backend.configure(parked_id, &parked.url(), &new_key).await;
    deals
        .until(WAIT, "the parked account to catch up", |e| {
            Deals::of(e, parked_id).covers(&parked_orders)
        })
        .await;
    assert_eq!(
        order_fetching_calls(&healthy.counters()),
        healthy_calls_before,
        "the healthy account's records were committed before the restart, not fetched again"
    );
    app.stop().await;
}

/// A key that may not read users is `access_denied`: parked the same way, back to `ok` with
/// a key that may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_parks_until_a_better_key() {
    let backend = Backend::embedded().await;
    let sim = Simulator::start(SimConfig::new(1, 10)).await.unwrap();
    let account = sim.account(0);
    let narrow = KeyAccess {
        scopes: vec![
            "order_read".into(),
            "customer_read".into(),
            "reference_read".into(),
        ],
        ..KeyAccess::default()
    };
    account.set_key_access(0, narrow).unwrap();
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let orders: Vec<u64> = truth_orders(&account.truth()).iter().map(|o| o.0).collect();
    backend.changes(id, &orders).await;
    let app = App::start(&backend, test_settings(&backend)).await;
    let mut health = backend.reader(&backend.topics.health()).await;
    let status = |e: &[Envelope]| {
        e.iter().rev().find_map(|e| match &e.event {
            Event::IntegrationHealthChanged(h) => Some((h.status, h.message.clone())),
            _ => None,
        })
    };
    let reported = health
        .until(WAIT, "access_denied", |e| {
            status(e).is_some_and(|s| s.0 == HealthStatus::AccessDenied)
        })
        .await;
    let message = status(&reported).unwrap().1.unwrap();
    assert!(
        message.contains("/api/v5/users/"),
        "names what the key may not call: {message}"
    );
    let (_, full_key) = account.add_key(KeyAccess::default());
    backend.configure(id, &account.url(), &full_key).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "the deals", |e| Deals::of(e, id).covers(&orders))
        .await;
    health
        .until(WAIT, "ok again", |e| {
            status(e).is_some_and(|s| s.0 == HealthStatus::Ok)
        })
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_on_embedded_log() {
    parked_work_survives_a_restart_without_holding_others(Backend::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_on_kafka() {
    parked_work_survives_a_restart_without_holding_others(Backend::kafka().await).await;
}
