//! Poison never blocks a partition: bytes that are not an `OrderChanged` envelope, an order
//! RetailCRM describes in a way that cannot be read, and an order the mapper refuses each
//! land in the dead-letter topic with their original bytes and the source topic, partition,
//! offset, stage and reason in headers; every other record keeps flowing. On the embedded log
//! and on Kafka.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::Utc;
use dealflow_shared::bus::{
    Delivered, HEADER_ERROR, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC,
    HEADER_STAGE,
};
use dealflow_shared::events::{DealDeleted, Envelope, Event, IntegrationId};
use dealflow_simulator::{SimConfig, Simulator};
use serde_json::{Value, json};
use support::{App, Backend, Deals, WAIT, test_settings, truth_orders};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn header<'a>(record: &'a Delivered, name: &str) -> &'a str {
    std::str::from_utf8(
        record
            .header(name)
            .unwrap_or_else(|| panic!("no {name} header")),
    )
    .unwrap()
}

/// Dead letters, once `count` of them arrived.
async fn dead_letters(backend: &Backend, count: usize) -> Vec<Delivered> {
    let mut reader = backend.reader(&backend.topics.dead_letter()).await;
    reader.until_records(WAIT, count).await;
    reader.records
}

async fn bad_bytes_are_dead_lettered(backend: Backend) {
    let sim = Simulator::start(SimConfig::new(1, 5)).await.unwrap();
    let account = sim.account(0);
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let orders: Vec<u64> = truth_orders(&account.truth()).iter().map(|o| o.0).collect();
    let key = id.to_string();
    backend.changes(id, &orders[..2]).await;
    backend.raw_change(&key, b"{not an envelope").await;
    let wrong_type = Envelope::new(
        id,
        Event::DealDeleted(DealDeleted {
            order_id: 1,
            merged_into: None,
            observed_at: Utc::now(),
        }),
    );
    backend.raw_change(&key, &wrong_type.encode()).await;
    // An integration nobody configured (or one removed since): skipped after a grace period.
    backend.changes(IntegrationId::new(), &[orders[0]]).await;
    backend.changes(id, &orders[2..]).await;

    let mut settings = test_settings(&backend);
    settings.unknown_integration_grace = std::time::Duration::from_millis(500);
    let app = App::start(&backend, settings).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "the deals around the poison", |e| {
            Deals::of(e, id).covers(&orders)
        })
        .await;
    let letters = dead_letters(&backend, 2).await;
    assert_eq!(letters.len(), 2);
    let mut order_changed = backend.reader(&backend.topics.order_changed()).await;
    order_changed.until_records(WAIT, orders.len() + 2).await;
    for letter in &letters {
        assert_eq!(letter.key.as_deref(), Some(key.as_str()));
        assert_eq!(
            header(letter, HEADER_SOURCE_TOPIC),
            backend.topics.order_changed()
        );
        assert_eq!(header(letter, HEADER_STAGE), "enricher.decode");
        let partition: i32 = header(letter, HEADER_SOURCE_PARTITION).parse().unwrap();
        let offset: i64 = header(letter, HEADER_SOURCE_OFFSET).parse().unwrap();
        let original = order_changed
            .records
            .iter()
            .find(|r| r.partition == partition && r.offset == offset)
            .expect("the headers point at the original record");
        assert_eq!(letter.payload, original.payload, "the original bytes");
    }
    let reasons: Vec<&str> = letters.iter().map(|l| header(l, HEADER_ERROR)).collect();
    assert!(
        reasons.iter().any(|r| r.contains("not an event envelope")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unexpected event type DealDeleted")),
        "{reasons:?}"
    );
    assert_eq!(
        app.metric("dealflow_enricher_dead_letters_total{stage=\"enricher.decode\"}"),
        2.0
    );
    dealflow_testkit::wait_until(
        WAIT,
        "the unknown integration's change to be skipped",
        || async {
            app.metric("dealflow_enricher_records_skipped_total{reason=\"unknown_integration\"}")
                == 1.0
        },
    )
    .await;
    app.stop().await;
}

fn fixture(name: &str) -> Value {
    let dir = match std::env::var_os("DEALFLOW_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/retailcrm"
        )),
    };
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

/// `GET /api/v5/orders?filter[ids][]=…`: the known orders among the ids, as JSON text (so an
/// order with an unreadable field makes the whole list unreadable, as it would for real).
struct OrdersList(HashMap<i64, Value>);

impl Respond for OrdersList {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let orders: Vec<&Value> = request
            .url
            .query_pairs()
            .filter(|(k, _)| k == "filter[ids][]")
            .filter_map(|(_, v)| self.0.get(&v.parse::<i64>().ok()?))
            .collect();
        let pagination = json!({"limit": 100, "totalCount": orders.len(), "currentPage": 1, "totalPageCount": 1});
        ResponseTemplate::new(200)
            .set_body_json(json!({"success": true, "pagination": pagination, "orders": orders}))
    }
}

/// A RetailCRM account (wiremock) whose data are the fixtures, plus a broken order (9002: an
/// unreadable `totalSumm`) and one without a status (9001); order 9003 does not exist.
async fn fixture_account() -> MockServer {
    let server = MockServer::start().await;
    let good = [
        fixture("orders-get.json")["order"].clone(),
        fixture("orders-list.json")["orders"][0].clone(),
        fixture("orders-create.json")["order"].clone(),
    ];
    let mut no_status = good[0].clone();
    no_status["id"] = json!(9001);
    no_status.as_object_mut().unwrap().remove("status");
    let mut unreadable = good[1].clone();
    unreadable["id"] = json!(9002);
    unreadable["totalSumm"] = json!("twelve");
    let orders: HashMap<i64, Value> = good
        .into_iter()
        .chain([no_status, unreadable])
        .map(|o| (o["id"].as_i64().unwrap(), o))
        .collect();
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
    Mock::given(method("GET"))
        .and(path("/api/v5/orders"))
        .respond_with(OrdersList(orders))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v5/(orders|users)/\d+$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error-not-found.json")))
        .mount(&server)
        .await;
    server
}

async fn bad_orders_are_dead_lettered(backend: Backend) {
    let server = fixture_account().await;
    let id = IntegrationId::new();
    backend
        .configure(id, &format!("{}/", server.uri()), "fixture-key")
        .await;
    backend
        .changes(id, &[6722, 9001, 7141, 9002, 7146, 9003])
        .await;
    let app = App::start(&backend, test_settings(&backend)).await;
    let mut deals = backend.reader(&backend.topics.deals()).await;
    deals
        .until(WAIT, "the good orders' deals", |e| {
            Deals::of(e, id).covers(&[6722, 7141, 7146, 9003])
        })
        .await;
    let letters = dead_letters(&backend, 2).await;
    let by_stage: HashMap<&str, &Delivered> = letters
        .iter()
        .map(|l| (header(l, HEADER_STAGE), l))
        .collect();
    let unmappable = by_stage["enricher.map"];
    assert!(
        header(unmappable, HEADER_ERROR).contains("order 9001 has no `status`"),
        "{}",
        header(unmappable, HEADER_ERROR)
    );
    let unreadable = by_stage["enricher.fetch"];
    assert!(
        header(unreadable, HEADER_ERROR).contains("totalSumm"),
        "{}",
        header(unreadable, HEADER_ERROR)
    );
    for (letter, order_id) in [(unmappable, 9001), (unreadable, 9002)] {
        let envelope = Envelope::decode(&letter.payload).unwrap();
        assert!(matches!(envelope.event, Event::OrderChanged(c) if c.order_id == order_id));
        assert_eq!(
            header(letter, HEADER_SOURCE_TOPIC),
            backend.topics.order_changed()
        );
    }
    let found = Deals::of(&deals.envelopes(), id);
    assert_eq!(found.deleted[&9003][0].merged_into, None);
    assert!(!found.orders().contains(&9001) && !found.orders().contains(&9002));

    // The partition keeps flowing after the poison.
    backend.changes(id, &[7141]).await;
    deals
        .until(WAIT, "a later change", |e| {
            Deals::of(e, id).upserted[&7141].len() >= 2
        })
        .await;
    let list_calls = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/v5/orders")
        .count();
    // 1 call for the batch, the halving that isolates 9002, and 1 for the later change.
    assert!(list_calls <= 10, "{list_calls} list calls");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bytes_on_embedded_log() {
    bad_bytes_are_dead_lettered(Backend::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bytes_on_kafka() {
    bad_bytes_are_dead_lettered(Backend::kafka().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orders_on_embedded_log() {
    bad_orders_are_dead_lettered(Backend::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orders_on_kafka() {
    bad_orders_are_dead_lettered(Backend::kafka().await).await;
}

/// A burst of poison above the dead-letter cap stops the enricher with an error instead of
/// draining the topic into the dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_above_the_cap_halts_loudly() {
    let backend = Backend::embedded().await;
    let sim = Simulator::start(SimConfig::new(1, 3)).await.unwrap();
    let account = sim.account(0);
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let key = id.to_string();
    for i in 0..40 {
        backend
            .raw_change(&key, format!("poison {i}").as_bytes())
            .await;
    }
    let mut settings = test_settings(&backend);
    settings.dead_letter_cap = dealflow_shared::bus::DeadLetterCap {
        max: 5,
        window: std::time::Duration::from_secs(600),
    };
    // Not `App::start`: that waits for readiness, which a halting enricher may never reach.
    dealflow_shared::telemetry::init_for_tests();
    settings.listen = Some("127.0.0.1:0".parse().unwrap());
    let service = dealflow_enricher::EnricherService::build(
        settings,
        backend.bus.clone(),
        dealflow_shared::retailcrm::Budgets::new(Default::default()),
        dealflow_shared::metrics::Metrics::new(),
    )
    .await
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stopped = tokio::time::timeout(WAIT, service.run_until_stopped(shutdown))
        .await
        .expect("the enricher to stop by itself");
    assert!(
        matches!(
            stopped,
            Err(dealflow_enricher::EnricherError::Bus(
                dealflow_shared::bus::BusError::DeadLetterCapReached { .. }
            ))
        ),
        "{stopped:?}"
    );
    let letters = backend.published(&backend.topics.dead_letter()).await;
    assert!(
        letters <= 6,
        "{letters} dead letters: the burst was drained"
    );
}
