//! Stopping at the worst moment loses nothing (DESIGN §7.6, at least once): killed after the
//! events were published but before the offsets were committed, the enricher publishes them
//! again on restart; stopped while a fetch hangs, it gives up the batch in time and the next
//! run does it. On the embedded log and on Kafka.

mod support;

use std::time::Duration;

use dealflow_shared::events::IntegrationId;
use dealflow_simulator::{FaultAction, FaultRule, SimConfig, Simulator};
use dealflow_testkit::wait_until;
use support::{App, Backend, Deals, WAIT, test_settings, truth_orders};
use tokio::time::Instant;

async fn killed_before_commit_emits_again(backend: Backend) {
    let sim = Simulator::start(SimConfig::new(1, 30)).await.unwrap();
    let account = sim.account(0);
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let orders: Vec<u64> = truth_orders(&account.truth()).iter().map(|o| o.0).collect();
    backend.changes(id, &orders).await;

    let mut settings = test_settings(&backend);
    settings.commit_interval = Duration::from_secs(3600); // the kill comes first
    let app = App::start(&backend, settings).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "every deal once", |e| {
            Deals::of(e, id).covers(&orders)
        })
        .await;
    app.kill().await;

    let app = App::start(&backend, test_settings(&backend)).await;
    let envelopes = deals
        .until(WAIT, "every deal again", |e| {
            let found = Deals::of(e, id);
            orders.iter().all(|o| {
                found.upserted.get(o).map_or(0, Vec::len) + found.deleted.get(o).map_or(0, Vec::len)
                    >= 2
            })
        })
        .await;
    assert_eq!(Deals::of(&envelopes, id).orders().len(), orders.len());
    app.stop().await;
    // Stopped gracefully this time: a third run fetches only what changed since.
    let app = App::start(&backend, test_settings(&backend)).await;
    backend.changes(id, &orders[..1]).await;
    let count = |found: &Deals, o: &u64| {
        found.upserted.get(o).map_or(0, Vec::len) + found.deleted.get(o).map_or(0, Vec::len)
    };
    let envelopes = deals
        .until(WAIT, "the one new change", |e| {
            count(&Deals::of(e, id), &orders[0]) >= 3
        })
        .await;
    app.stop().await;
    let found = Deals::of(&envelopes, id);
    assert!(
        orders[1..].iter().all(|o| count(&found, o) == 2),
        "the committed records were not delivered again"
    );
}

async fn stopped_mid_fetch_gives_the_batch_up(backend: Backend) {
    let sim = Simulator::start(SimConfig::new(1, 10)).await.unwrap();
    let account = sim.account(0);
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let orders: Vec<u64> = truth_orders(&account.truth()).iter().map(|o| o.0).collect();
    account.add_fault(FaultRule::next("/api/v5/orders", 1, FaultAction::Hang));
    let mut settings = test_settings(&backend);
    settings.shutdown_grace = Duration::from_millis(300);
    let app = App::start(&backend, settings).await;
    backend.changes(id, &orders).await;
    wait_until(WAIT, "the fetch to hang", || async {
        account.counters().faults_injected >= 1
    })
    .await;
    let stopping = Instant::now();
    app.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "stopped in {:?}",
        stopping.elapsed()
    );
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals.poll().await;
    assert!(
        Deals::of(&deals.envelopes(), id).orders().is_empty(),
        "the hung batch published nothing"
    );

    let app = App::start(&backend, test_settings(&backend)).await;
    deals
        .until(WAIT, "every deal after the restart", |e| {
            Deals::of(e, id).covers(&orders)
        })
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_on_embedded_log() {
    killed_before_commit_emits_again(Backend::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_on_kafka() {
    killed_before_commit_emits_again(Backend::kafka().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_mid_fetch_on_embedded_log() {
    stopped_mid_fetch_gives_the_batch_up(Backend::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_mid_fetch_on_kafka() {
    stopped_mid_fetch_gives_the_batch_up(Backend::kafka().await).await;
}
