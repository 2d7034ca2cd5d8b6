//! Test harness for ingest: a real bus (embedded log or nisshi), the service on port 0, and
//! helpers to seed integrations and read what reached the bus.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dealflow_ingest::{IngestService, IngestSettings};
use dealflow_shared::bus::{Delivered, EventBus, OutRecord};
use dealflow_shared::config::HostPattern;
use dealflow_shared::events::{Envelope, Event, IntegrationConfigured, IntegrationId};
use dealflow_shared::metrics::Metrics;
use dealflow_shared::retailcrm::{BudgetSettings, Budgets, ClientOptions};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::visibility::ReadSide;
use dealflow_testkit::bus::TestBus;
use dealflow_testkit::{Storage, wait_for};
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-key-that-is-long-enough-0123456789";
pub const API_TOKEN: &str = "test-api-token-0123456789abcdef";
pub const WAIT: Duration = Duration::from_secs(30);
/// The read-your-writes bound of a test ingest: short, so "behind" is seen quickly.
pub const READ_SIDE_TIMEOUT: Duration = Duration::from_secs(1);

dealflow_testkit::test_bus_wrapper!(
    /// A real bus and the topics of one test (the shared [`TestBus`]).
    Backend
);

impl Backend {
    pub async fn embedded() -> Self {
        Self(TestBus::embedded().await)
    }

    pub async fn kafka() -> Self {
        Self::kafka_with(Storage::Memory).await
    }

    /// Short client timeouts: the broker tests wait for a publish to fail.
    pub async fn kafka_with(storage: Storage) -> Self {
        Self(TestBus::kafka_with(storage, Duration::from_secs(3)).await)
    }

    /// Every record on `topic` up to its current end.
    pub async fn read_all(&self, topic: &str) -> Vec<Delivered> {
        let end: i64 = self
            .bus
            .end_offsets(topic)
            .await
            .unwrap()
            .iter()
            .map(|(_, e)| e)
            .sum();
        let group = format!("reader-{}", uuid::Uuid::now_v7().simple());
        let mut consumer = self
            .bus
            .subscribe(&group, &[topic.to_string()])
            .await
            .unwrap();
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while (records.len() as i64) < end {
            assert!(
                tokio::time::Instant::now() < deadline,
                "reading {topic} timed out"
            );
            records.extend(
                consumer
                    .poll(1000, Duration::from_millis(200))
                    .await
                    .unwrap(),
            );
        }
        records
    }

    /// The `OrderChanged` events on the bus, decoded.
    pub async fn order_changes(&self) -> Vec<Envelope> {
        self.read_all(&self.topics.order_changed())
            .await
            .iter()
            .map(|r| Envelope::decode(&r.payload).unwrap())
            .collect()
    }

    /// Publishes an integration directly (as another ingest would have).
    pub async fn seed_integration(&self, active: bool) -> IntegrationId {
        let id = IntegrationId::new();
        let keys = SecretKeys::derive(&SecretString::from(SECRET));
        let now = Utc::now();
        let config = IntegrationConfigured {
            tenant_id: dealflow_shared::events::TenantId::default_tenant(),
            crm_url: "https://demo.retailcrm.ru/".into(),
            api_key_sealed: keys.seal(id, &SecretString::from("seeded-crm-key")),
            api_key_hint: "…-key".into(),
            active,
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
        let envelope = Envelope::new(id, Event::IntegrationConfigured(config));
        self.bus
            .publish(
                &self.topics.integrations(),
                vec![OutRecord::new(envelope.key(), envelope.encode())],
            )
            .await
            .unwrap();
        id
    }
}

/// A running ingest.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), dealflow_ingest::IngestError>>,
}

/// How a test ingest is set up beyond its bus.
pub struct Options<'a> {
    pub allow_hosts: &'a [&'a str],
    pub secret: &'a str,
    /// The secret being rotated out.
    pub previous: Option<&'a str>,
    /// What a settings write waits for; none by default (no projector runs in these tests).
    pub read_side: ReadSide,
    /// How long it waits ([`READ_SIDE_TIMEOUT`] by default).
    pub read_side_timeout: Duration,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            allow_hosts: &[],
            secret: SECRET,
            previous: None,
            read_side: ReadSide::None,
            read_side_timeout: READ_SIDE_TIMEOUT,
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: &Backend, bus: Arc<dyn EventBus>, allow_hosts: &[&str]) -> Self {
        let options = Options {
            allow_hosts,
            ..Options::default()
        };
        Self::spawn_with(backend, bus, options).await
    }

    /// An ingest set up as `options` say (secrets being rotated, a read side to wait for).
    pub async fn spawn_with(
        backend: &Backend,
        bus: Arc<dyn EventBus>,
        options: Options<'_>,
    ) -> Self {
        let Options {
            allow_hosts,
            secret,
            previous,
            read_side,
            read_side_timeout,
        } = options;
        dealflow_shared::telemetry::init_for_tests();
        let settings = IngestSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: "https://dealflow.example.com".parse().unwrap(),
            topics: backend.topics.clone(),
            crm_allow_hosts: allow_hosts
                .iter()
                .map(|p| HostPattern::parse(p).unwrap())
                .collect(),
            secret_key: SecretString::from(secret.to_owned()),
            secret_key_previous: previous.map(|p| SecretString::from(p.to_owned())),
            api_token: SecretString::from(API_TOKEN),
            publish_timeout: Duration::from_secs(2),
            client_options: ClientOptions::default(),
            read_side,
            read_side_timeout,
        };
        let budgets = Budgets::new(BudgetSettings::with_rps(8).unwrap());
        let service = IngestService::build(settings, bus, budgets, Metrics::new())
            .await
            .unwrap();
        let base = format!("http://{}", service.local_addr());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(service.run_until_stopped(shutdown.clone()));
        let app = Self {
            base,
            http: reqwest::Client::new(),
            shutdown,
            task,
        };
        wait_for(WAIT, "ingest to serve", || async {
            app.http
                .get(format!("{}/readyz", app.base))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        })
        .await;
        app
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// The `/metrics` text this ingest serves now.
    pub async fn metrics_text(&self) -> String {
        let response = self.http.get(format!("{}/metrics", self.base)).send();
        response.await.unwrap().text().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// A call to the API with the token (and a JSON body when given); `(status, body)`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, self.api(path))
            .bearer_auth(API_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// The webhook URL the API shows for an integration (once this ingest knows it).
    pub async fn webhook_url(&self, id: IntegrationId) -> String {
        let url = wait_for(WAIT, "the integration to be known", || async {
            let (status, body) = self.get_json(&format!("/integrations/{id}")).await;
            (status == 200).then(|| body["webhook_url"].as_str().unwrap().to_string())
        })
        .await;
        // Public URL → this test server.
        url.replace("https://dealflow.example.com", &self.base)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// `{"error": {"code": …}}` of a response, with its status.
pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// One test per case and backend: `embedded::<case>` and `kafka::<case>`, each calling
/// `<case>(backend)` (a function of the test binary taking a [`Backend`]).
#[allow(unused_macros)] // not every test binary runs cases on both backends
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::support::Backend::embedded().await).await }) *
        }
        mod kafka {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::support::Backend::kafka().await).await }) *
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;
