//! Test harness for the enricher: a real bus (embedded log or nisshi), the simulator (or
//! wiremock) for RetailCRM, integrations and order changes published as ingest would, the
//! service started and stopped (or killed), and readers that follow the output topics.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use dealflow_enricher::{EnricherError, EnricherService, EnricherSettings};
use dealflow_shared::bus::{Consumer, Delivered, OutRecord};
use dealflow_shared::events::{
    ChangeSource, DealDeleted, DealUpserted, Envelope, Event, IntegrationConfigured, IntegrationId,
    OrderChanged, StageRecorded,
};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets, ClientOptions, RetryPolicy};
use dealflow_shared::secrets::SecretKeys;
use dealflow_testkit::bus::TestBus;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "enricher-test-secret-key-that-is-long-enough-0123";
pub const WAIT: Duration = Duration::from_secs(30);

dealflow_testkit::test_bus_wrapper!(
    /// A real bus and the topics of one test (the shared [`TestBus`]).
    Backend
);

impl Backend {
    pub async fn embedded() -> Self {
        Self(TestBus::embedded().await)
    }

    pub async fn kafka() -> Self {
        Self(TestBus::kafka().await)
    }

    pub fn keys() -> SecretKeys {
        SecretKeys::derive(&SecretString::from(SECRET))
    }

    /// Publishes an integration's settings as ingest does (sealed key, `updated_at` now).
    pub async fn configure(&self, id: IntegrationId, crm_url: &str, api_key: &str) {
        self.configure_with(id, crm_url, api_key, |_| {}).await;
    }

    /// Like [`Backend::configure`], with `edit` applied to the settings first (backfill,
    /// history cursor, re-sync request, `created_at`).
    pub async fn configure_with(
        &self,
        id: IntegrationId,
        crm_url: &str,
        api_key: &str,
        edit: impl FnOnce(&mut IntegrationConfigured),
    ) {
        let now = Utc::now();
        let config = IntegrationConfigured {
            tenant_id: dealflow_shared::events::TenantId::default_tenant(),
            crm_url: crm_url.to_string(),
            api_key_sealed: Self::keys().seal(id, &SecretString::from(api_key.to_string())),
            api_key_hint: api_key.chars().rev().take(4).collect(),
            active: true,
            default_funnel: false,
            include_delivery_cost: true,
            revenue: dealflow_shared::events::Revenue::Total,
            stage_mapping: Default::default(),
            backfill_days: 0,
            webhook_token_generation: 0,
            history_since_id: None,
            resync: None,
            created_at: now,
            updated_at: now,
        };
        let mut config = config;
        edit(&mut config);
        let envelope = Envelope::new(id, Event::IntegrationConfigured(config));
        self.bus
            .publish(
                &self.topics.integrations(),
                vec![OutRecord::new(envelope.key(), envelope.encode())],
            )
            .await
            .unwrap();
    }

    /// Publishes one `OrderChanged` per id, in order, as webhooks would.
    pub async fn changes(&self, id: IntegrationId, order_ids: &[u64]) {
        self.changes_received_at(id, order_ids, Utc::now()).await;
    }

    /// Publishes one `OrderChanged` per id that ingest received at `received_at` (a backlog).
    pub async fn changes_received_at(
        &self,
        id: IntegrationId,
        order_ids: &[u64],
        received_at: chrono::DateTime<Utc>,
    ) {
        let records: Vec<OutRecord> = order_ids
            .iter()
            .map(|&order_id| {
                let event = Event::OrderChanged(OrderChanged {
                    order_id,
                    source: ChangeSource::Webhook,
                    received_at,
                });
                let envelope = Envelope::new(id, event);
                OutRecord::new(envelope.key(), envelope.encode())
            })
            .collect();
        for chunk in records.chunks(250) {
            self.bus
                .publish(&self.topics.order_changed(), chunk.to_vec())
                .await
                .unwrap();
        }
    }

    /// Publishes one `OrderChanged` per order for each of `ids` (integrations of the account
    /// at `crm_url`), keyed by the account as ingest keys them, in chunks of 500.
    pub async fn account_changes(&self, crm_url: &str, ids: &[IntegrationId], order_ids: &[u64]) {
        let key = dealflow_shared::topics::order_changed_key(crm_url);
        let records: Vec<OutRecord> = order_ids
            .iter()
            .flat_map(|&order_id| {
                ids.iter().map(move |id| {
                    let event = Event::OrderChanged(OrderChanged {
                        order_id,
                        source: ChangeSource::Webhook,
                        received_at: Utc::now(),
                    });
                    Envelope::new(*id, event).encode()
                })
            })
            .map(|payload| OutRecord::new(key.clone(), payload))
            .collect();
        for chunk in records.chunks(500) {
            self.bus
                .publish(&self.topics.order_changed(), chunk.to_vec())
                .await
                .unwrap();
        }
    }

    /// Publishes raw bytes on `order-changed`.
    pub async fn raw_change(&self, key: &str, payload: &[u8]) {
        self.bus
            .publish(
                &self.topics.order_changed(),
                vec![OutRecord::new(key, payload.to_vec())],
            )
            .await
            .unwrap();
    }

    /// Records on `order-changed` so far.
    pub async fn order_changed_len(&self) -> i64 {
        self.bus
            .end_offsets(&self.topics.order_changed())
            .await
            .unwrap()
            .iter()
            .map(|(_, e)| e)
            .sum()
    }

    /// A reader that follows `topic` from its beginning.
    /// Records published on `topic` so far, over every partition.
    pub async fn published(&self, topic: &str) -> usize {
        let ends = self.bus.end_offsets(topic).await.unwrap();
        ends.iter().map(|(_, end)| *end as usize).sum()
    }

    pub async fn reader(&self, topic: &str) -> Reader {
        let group = format!("reader-{}", uuid::Uuid::now_v7().simple());
        let consumer = self
            .bus
            .subscribe(&group, &[topic.to_string()])
            .await
            .unwrap();
        Reader {
            consumer,
            records: Vec::new(),
        }
    }
}

/// Follows one topic and keeps every record read so far.
pub struct Reader {
    consumer: Box<dyn Consumer>,
    pub records: Vec<Delivered>,
}

impl Reader {
    /// Reads what arrived (waits briefly).
    pub async fn poll(&mut self) {
        let batch = self
            .consumer
            .poll(1000, Duration::from_millis(100))
            .await
            .unwrap();
        self.records.extend(batch);
    }

    /// Polls until at least `count` records were read (without decoding them).
    pub async fn until_records(&mut self, within: Duration, count: usize) {
        let deadline = Instant::now() + within;
        while self.records.len() < count {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} records ({} read)",
                self.records.len()
            );
            self.poll().await;
        }
    }

    /// Every record decoded.
    pub fn envelopes(&self) -> Vec<Envelope> {
        self.records
            .iter()
            .map(|r| {
                Envelope::decode(&r.payload).unwrap_or_else(|e| panic!("bad output record: {e}"))
            })
            .collect()
    }

    /// Polls until `done` holds for the decoded records; panics naming `what` after `within`.
    pub async fn until(
        &mut self,
        within: Duration,
        what: &str,
        mut done: impl FnMut(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        let deadline = Instant::now() + within;
        loop {
            self.poll().await;
            let envelopes = self.envelopes();
            if done(&envelopes) {
                return envelopes;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what} ({} records)",
                envelopes.len()
            );
        }
    }
}

/// The deal events of one integration, by order id.
#[derive(Debug, Default)]
pub struct Deals {
    pub upserted: HashMap<u64, Vec<DealUpserted>>,
    pub deleted: HashMap<u64, Vec<DealDeleted>>,
    /// Stage records from `orders/history`, per order, in bus order.
    pub stages: HashMap<u64, Vec<StageRecorded>>,
}

impl Deals {
    pub fn of(envelopes: &[Envelope], id: IntegrationId) -> Self {
        let mut deals = Deals::default();
        for e in envelopes.iter().filter(|e| e.integration_id == id) {
            match &e.event {
                Event::DealUpserted(d) => deals
                    .upserted
                    .entry(d.order_id)
                    .or_default()
                    .push(d.clone()),
                Event::DealDeleted(d) => {
                    deals.deleted.entry(d.order_id).or_default().push(d.clone())
                }
                Event::DealStagesRecorded(d) => deals
                    .stages
                    .entry(d.order_id)
                    .or_default()
                    .extend(d.stages.iter().cloned()),
                other => panic!("unexpected event on deals: {other:?}"),
            }
        }
        deals
    }

    /// Orders with any deal event.
    pub fn orders(&self) -> HashSet<u64> {
        self.upserted
            .keys()
            .chain(self.deleted.keys())
            .copied()
            .collect()
    }

    /// Whether every one of `ids` has a deal event.
    pub fn covers(&self, ids: &[u64]) -> bool {
        let seen = self.orders();
        ids.iter().all(|id| seen.contains(id))
    }

    pub fn events(&self) -> usize {
        self.upserted.values().map(Vec::len).sum::<usize>()
            + self.deleted.values().map(Vec::len).sum::<usize>()
    }
}

/// Settings for tests: short timings, quick client retries.
pub fn test_settings(backend: &Backend) -> EnricherSettings {
    let mut s = EnricherSettings::new(backend.topics.clone(), SecretString::from(SECRET));
    s.client_options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_elapsed: Duration::from_secs(2),
        },
        ..ClientOptions::default()
    };
    s.batch_linger = Duration::from_millis(100);
    s.poll_timeout = Duration::from_millis(50);
    s.commit_interval = Duration::from_millis(200);
    s.backoff_initial = Duration::from_millis(200);
    s.backoff_max = Duration::from_secs(1);
    s.requeue_after = Duration::from_secs(120);
    s.parked_retry = Duration::from_secs(120);
    s.unknown_integration_grace = Duration::from_secs(5);
    s.shutdown_grace = Duration::from_secs(3);
    s
}

/// A running enricher.
pub struct App {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), EnricherError>>,
    pub metrics: Metrics,
    pub base: String,
}

impl App {
    pub async fn start(backend: &Backend, settings: EnricherSettings) -> Self {
        Self::start_with_budgets(backend, settings, Budgets::new(BudgetSettings::default())).await
    }

    pub async fn start_with_budgets(
        backend: &Backend,
        mut settings: EnricherSettings,
        budgets: Budgets,
    ) -> Self {
        dealflow_shared::telemetry::init_for_tests();
        settings.listen = Some("127.0.0.1:0".parse().unwrap());
        let metrics = Metrics::new();
        let service =
            EnricherService::build(settings, backend.bus.clone(), budgets, metrics.clone())
                .await
                .unwrap();
        let base = format!("http://{}", service.local_addr().unwrap());
        let readiness = service.readiness();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(service.run_until_stopped(shutdown.clone()));
        dealflow_testkit::wait_until(WAIT, "the enricher to consume", || {
            let ready = readiness.is_ready();
            async move { ready }
        })
        .await;
        Self {
            shutdown,
            task,
            metrics,
            base,
        }
    }

    /// Graceful stop: in-flight work finishes, offsets are committed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the enricher stops in time")
            .unwrap()
            .unwrap();
    }

    /// A crash: the service and its workers are dropped where they are, nothing committed.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// The value of one metric line (`name{labels}`), summed over matching lines.
    pub fn metric(&self, prefix: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Order-fetching calls the simulator counted (`GET /orders` and `GET /orders/{id}`).
pub fn order_fetching_calls(counters: &dealflow_simulator::CountersSnapshot) -> u64 {
    ["GET /api/v5/orders", "GET /api/v5/orders/{id}"]
        .iter()
        .map(|k| counters.requests.get(*k).copied().unwrap_or(0))
        .sum()
}

/// The simulator's orders: `(id, deleted, order JSON)`.
pub fn truth_orders(truth: &serde_json::Value) -> Vec<(u64, bool, serde_json::Value)> {
    truth["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_u64().unwrap(),
                o["deleted"].as_bool().unwrap(),
                o["order"].clone(),
            )
        })
        .collect()
}
