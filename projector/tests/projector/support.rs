//! Test harness: a fresh database per test (a SQLite file, or a PostgreSQL database created on
//! 127.0.0.1:5432 and dropped afterwards), a real bus (embedded log, or nisshi), the projector
//! on port 0, and helpers to publish streams and wait until they are applied.

#![allow(dead_code)] // each test module uses a different part of the harness

use std::collections::BTreeMap;
use std::time::Duration;

use dealflow_projector::{Projector, ProjectorService, ProjectorSettings, Store};
use dealflow_shared::bus::OutRecord;
use dealflow_shared::config::DatabaseUrl;
use dealflow_shared::events::{Envelope, Event, IntegrationId};
use dealflow_shared::metrics::Metrics;
use dealflow_synthetic::{self as synthetic, Source};
use dealflow_testkit::bus::TestBus;
use dealflow_testkit::wait_until;
use secrecy::SecretString;
use sqlx::Connection as _;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-key-that-is-long-enough-0123456789";
pub const API_TOKEN: &str = "test-api-token-0123456789abcdef";
pub const WAIT: Duration = Duration::from_secs(40);
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs a test body once on SQLite and once on PostgreSQL.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::support::Db::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::support::Db::postgres().await).await
            }
        }
    };
}
pub(crate) use both;

/// A fresh read model database, removed when dropped.
pub struct Db {
    pub url: DatabaseUrl,
    kind: DbKind,
}

enum DbKind {
    Sqlite(TempDir),
    Postgres(String),
}

impl Db {
    pub async fn sqlite() -> Self {
        dealflow_shared::telemetry::init_for_tests();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
        Self {
            url: DatabaseUrl::Sqlite(SecretString::from(url)),
            kind: DbKind::Sqlite(dir),
        }
    }

    pub async fn postgres() -> Self {
        dealflow_shared::telemetry::init_for_tests();
        sqlx::any::install_default_drivers();
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::AnyConnection::connect(PG_ADMIN)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (user postgres, database test)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self {
            url: DatabaseUrl::Postgres(SecretString::from(url)),
            kind: DbKind::Postgres(name),
        }
    }

    /// Another fresh database of the same kind.
    pub async fn another(&self) -> Self {
        match self.kind {
            DbKind::Sqlite(_) => Self::sqlite().await,
            DbKind::Postgres(_) => Self::postgres().await,
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.kind, DbKind::Sqlite(_))
    }

    /// The SQLite file (SQLite only).
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        match &self.kind {
            DbKind::Sqlite(dir) => dir.path().join("read.db"),
            DbKind::Postgres(_) => panic!("not a SQLite database"),
        }
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let DbKind::Postgres(name) = &self.kind else {
            return;
        };
        let name = name.clone();
        // Drop runs inside the test's runtime; the cleanup gets a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::AnyConnection::connect(PG_ADMIN).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

dealflow_testkit::test_bus_wrapper!(
    /// A real bus with the topics of one test (the shared [`TestBus`]).
    Bus
);

impl Bus {
    pub async fn embedded() -> Self {
        Self(TestBus::embedded().await)
    }

    pub async fn kafka() -> Self {
        Self(TestBus::kafka().await)
    }

    pub fn settings(&self, db: &Db) -> ProjectorSettings {
        let mut settings = ProjectorSettings::new(
            "127.0.0.1:0".parse().unwrap(),
            "https://dealflow.example.com".parse().unwrap(),
            db.url.clone(),
            self.topics.clone(),
            SecretString::from(API_TOKEN),
            SecretString::from(SECRET),
        );
        settings.poll_timeout = Duration::from_millis(200);
        settings
    }

    pub async fn publish(&self, events: &[(Source, Envelope)]) {
        synthetic::publish(self.bus.as_ref(), &self.topics, events)
            .await
            .unwrap();
    }

    /// Publishes one event.
    pub async fn send(&self, source: Source, id: IntegrationId, event: Event) {
        self.publish(&[(source, Envelope::new(id, event))]).await;
    }

    /// Publishes raw bytes (a poison record).
    pub async fn send_raw(&self, source: Source, key: &str, bytes: &[u8]) {
        self.bus
            .publish(
                &source.topic(&self.topics),
                vec![OutRecord::new(key, bytes.to_vec())],
            )
            .await
            .unwrap();
    }

    /// The end offset of every source topic partition.
    pub async fn ends(&self, settings: &ProjectorSettings) -> BTreeMap<(String, i32), i64> {
        let mut out = BTreeMap::new();
        for topic in settings.source_topics() {
            for (p, end) in self.bus.end_offsets(&topic).await.unwrap() {
                if end > 0 {
                    out.insert((topic.clone(), p), end);
                }
            }
        }
        out
    }

    /// Waits until `store` has applied everything on the bus now.
    pub async fn wait_applied(&self, settings: &ProjectorSettings, store: &Store) {
        let ends = self.ends(settings).await;
        wait_until(WAIT, "the read model to apply every record", || async {
            let applied = store.applied_offsets().await.unwrap();
            ends.iter()
                .all(|(k, end)| applied.get(k).is_some_and(|a| a >= end))
        })
        .await;
    }
}

/// The view the embedded log builds into SQLite from `events` (offsets left out): the
/// reference other buses and databases are compared with.
pub async fn embedded_view(events: &[(Source, Envelope)]) -> BTreeMap<String, Vec<String>> {
    let db = Db::sqlite().await;
    let bus = Bus::embedded().await;
    bus.publish(events).await;
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    let view = without_offsets(app.store.dump_tables().await.unwrap());
    app.stop().await.unwrap();
    view
}

/// A running projector service.
pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub projector: Projector,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), dealflow_projector::ProjectorError>>,
}

impl App {
    pub async fn spawn(settings: ProjectorSettings, bus: &Bus) -> Self {
        let service = ProjectorService::build(settings, bus.bus.clone(), Metrics::new())
            .await
            .unwrap();
        let base = format!("http://{}", service.local_addr());
        let projector = service.projector().clone();
        let store = projector.store().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(service.run_until_stopped(shutdown.clone()));
        Self {
            base,
            http: reqwest::Client::new(),
            store,
            projector,
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /api/v1{path}` with the token: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.request(path).await;
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// `GET /api/v1{path}` with the token: status and body text (the CSV exports).
    pub async fn text(&self, path: &str) -> (u16, String) {
        let response = self.request(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn request(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/api/v1{path}")))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// Like [`get`](Self::get), expecting 200.
    pub async fn ok(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The error code of a failing `GET`.
    pub async fn error(&self, path: &str) -> (u16, String) {
        let (status, body) = self.get(path).await;
        (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// The value of one series of the service's `/metrics` (`0` before it exists).
    pub async fn metric(&self, series: &str) -> u64 {
        let text = dealflow_testkit::metrics::scrape(&self.http, &self.base).await;
        dealflow_testkit::metrics::series_value(&text, series).map_or(0, |v| v as u64)
    }

    pub async fn stop(self) -> Result<(), dealflow_projector::ProjectorError> {
        self.shutdown.cancel();
        self.task.await.unwrap()
    }

    /// Waits for the consumer to stop on its own (a fatal error) and returns its result.
    pub async fn stopped(self) -> Result<(), dealflow_projector::ProjectorError> {
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the service to stop")
            .unwrap()
    }
}

/// A dump without the rows that depend on how the bus laid records out (offsets).
pub fn without_offsets(mut dump: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    dump.remove("applied_offsets");
    dump
}

/// A dump without the order traces either: a snapshot that changes no deal is still logged
/// as fetched (that is what a trace is for).
pub fn view_only(dump: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut dump = without_offsets(dump);
    dump.remove("order_traces");
    dump
}

/// Asserts two dumps are equal, table by table (a readable failure).
pub fn assert_same(a: &BTreeMap<String, Vec<String>>, b: &BTreeMap<String, Vec<String>>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (table, rows) in a {
        let other = &b[table];
        if rows != other {
            let only_a: Vec<_> = rows.iter().filter(|r| !other.contains(r)).take(3).collect();
            let only_b: Vec<_> = other.iter().filter(|r| !rows.contains(r)).take(3).collect();
            panic!(
                "table {table} differs ({} vs {} rows)\nonly left: {only_a:#?}\nonly right: {only_b:#?}",
                rows.len(),
                other.len()
            );
        }
    }
}

/// Applies everything on the bus now through `projector.apply_batch`, driving a consumer of
/// `group` by hand: `cut()` gives each poll's size and whether to "crash" after the database
/// commit and before the bus commit (the consumer is dropped without committing, so the bus
/// redelivers what the database already applied). Returns how many redelivered records the
/// database recognised as applied and skipped.
pub async fn drive(
    projector: &Projector,
    bus: &Bus,
    settings: &ProjectorSettings,
    group: &str,
    mut cut: impl FnMut() -> (usize, bool),
) -> u64 {
    let mut skipped = 0;
    let store = projector.store();
    let ends = bus.ends(settings).await;
    let topics = settings.source_topics();
    let mut consumer = bus.bus.subscribe(group, &topics).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let applied = store.applied_offsets().await.unwrap();
        if ends
            .iter()
            .all(|(k, end)| applied.get(k).is_some_and(|a| a >= end))
        {
            return skipped;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "driving the projector timed out"
        );
        let (max, crash) = cut();
        let records = consumer
            .poll(max, Duration::from_millis(200))
            .await
            .unwrap();
        if records.is_empty() {
            continue;
        }
        skipped += projector
            .apply_batch(&records)
            .await
            .unwrap()
            .already_applied;
        if crash {
            drop(consumer);
            consumer = bus.bus.subscribe(group, &topics).await.unwrap();
            continue;
        }
        let mut last = BTreeMap::new();
        for r in &records {
            last.insert((r.topic.clone(), r.partition), r);
        }
        for r in last.values() {
            consumer.store(r).unwrap();
        }
        consumer.commit().await.unwrap();
    }
}

/// Opens a projector (no consumer running) on `db`.
pub async fn projector(bus: &Bus, db: &Db) -> (Projector, ProjectorSettings) {
    let settings = bus.settings(db);
    let projector = Projector::open(settings.clone(), bus.bus.clone(), &Metrics::new())
        .await
        .unwrap();
    (projector, settings)
}

/// The `field` of each item as an instant. RFC 3339 texts do not sort as text: chrono writes
/// as many fraction digits as the instant needs ("…26.025Z" is before "…26.025778Z").
pub fn instants(items: &[serde_json::Value], field: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    items
        .iter()
        .map(|item| {
            let text = item[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} of {item}"));
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
                .to_utc()
        })
        .collect()
}
