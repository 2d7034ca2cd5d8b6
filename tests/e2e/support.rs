//! Harness: a simulator, a dealflow all-in-one on port 0 with a fresh data directory, and
//! helpers to call its API and wait for the read model; and the real `dealflow run --target …`
//! binary as a child process, for tests of the process itself or of the split deployment
//! (which [`System::start_split`] runs behind its gateway, `crate::split`).

#![allow(dead_code)] // each test module uses a different part

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dealflow::allinone::AllInOne;
use dealflow_shared::config::Config;
use dealflow_simulator::{AccountHandle, SimConfig, SimHandle, Simulator};
use dealflow_testkit::{Broker, unique_prefix, wait_for};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::split::{self, Deployment};

pub const WAIT: Duration = Duration::from_secs(60);

/// Which bus the system runs on.
pub enum Bus {
    Embedded,
    Kafka(Broker),
}

impl Bus {
    pub async fn kafka() -> Self {
        Bus::Kafka(Broker::start().await)
    }
}

/// A running all-in-one dealflow with its simulator.
pub struct System {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    pub sim: SimHandle,
    /// What the system was started with (data dir, topic prefix…).
    pub config: Config,
    running: Running,
    _bus: Bus,
    _dir: TempDir,
}

/// How the system runs.
enum Running {
    /// The all-in-one in this test process.
    InProcess {
        shutdown: CancellationToken,
        task: JoinHandle<anyhow::Result<()>>,
    },
    /// Three `dealflow run --target …` processes behind the gateway.
    Split(Deployment),
}

/// The configuration of a test system: fresh data dir, port 0, simulator hosts allowed.
pub fn config(dir: &std::path::Path, bus: &Bus, extra: &[(&str, &str)]) -> Config {
    let mut env = BTreeMap::from([
        ("DEALFLOW_DATA_DIR".to_string(), dir.display().to_string()),
        ("DEALFLOW_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        (
            "DEALFLOW_CRM_ALLOW_HOSTS".to_string(),
            "http://127.0.0.1:*".to_string(),
        ),
        ("DEALFLOW_TOPIC_PREFIX".to_string(), unique_prefix()),
    ]);
    if let Bus::Kafka(broker) = bus {
        env.insert("DEALFLOW_KAFKA_BROKERS".to_string(), broker.bootstrap());
    }
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Config::from_map(&env).unwrap()
}

impl System {
    pub async fn start(bus: Bus, orders: usize) -> Self {
        Self::start_accounts(bus, 1, orders).await
    }

    /// A system whose simulator has `accounts` accounts of `orders` orders each.
    pub async fn start_accounts(bus: Bus, accounts: usize, orders: usize) -> Self {
        Self::start_configured(bus, accounts, orders, &[]).await
    }

    /// Like [`start_accounts`](Self::start_accounts), with extra configuration variables.
    pub async fn start_configured(
        bus: Bus,
        accounts: usize,
        orders: usize,
        extra: &[(&str, &str)],
    ) -> Self {
        dealflow_shared::telemetry::init_for_tests();
        let sim = Simulator::start(SimConfig::new(accounts, orders))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), &bus, extra);
        let app = AllInOne::build(&config).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let token = app.api_token().expose_secret().to_string();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let system = Self {
            base,
            token,
            http: reqwest::Client::new(),
            sim,
            config,
            running: Running::InProcess { shutdown, task },
            _bus: bus,
            _dir: dir,
        };
        system.wait_ready().await;
        system
    }

    /// The split deployment (DESIGN §2) with a simulator of `accounts` accounts of `orders`
    /// orders: its `base` is the gateway, its `token` the operator's.
    pub async fn start_split(accounts: usize, orders: usize) -> Self {
        dealflow_shared::telemetry::init_for_tests();
        let sim = Simulator::start(SimConfig::new(accounts, orders))
            .await
            .unwrap();
        let bus = Bus::kafka().await;
        let Bus::Kafka(broker) = &bus else {
            unreachable!()
        };
        let dir = tempfile::tempdir().unwrap();
        let gateway_port = free_port();
        let base = format!("http://127.0.0.1:{gateway_port}");
        let shared = [
            ("DEALFLOW_KAFKA_BROKERS", broker.bootstrap()),
            ("DEALFLOW_TOPIC_PREFIX", unique_prefix()),
            ("DEALFLOW_API_TOKEN", split::TOKEN.to_string()),
            ("DEALFLOW_SECRET_KEY", split::SECRET_KEY.to_string()),
            ("DEALFLOW_CRM_ALLOW_HOSTS", "http://127.0.0.1:*".to_string()),
            ("DEALFLOW_PUBLIC_URL", base.clone()),
        ];
        let http = reqwest::Client::new();
        let deployment = Deployment::start(gateway_port, &shared, &http).await;
        let mut env: BTreeMap<String, String> = shared
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        env.insert("DEALFLOW_DATA_DIR".into(), dir.path().display().to_string());
        env.insert(
            "DEALFLOW_DATABASE_URL".into(),
            deployment.database_url.clone(),
        );
        Self {
            base,
            token: split::TOKEN.to_string(),
            http,
            sim,
            config: Config::from_map(&env).unwrap(),
            running: Running::Split(deployment),
            _bus: bus,
            _dir: dir,
        }
    }

    pub async fn wait_ready(&self) {
        wait_ready(&self.http, &self.base).await;
    }

    pub fn account(&self) -> &AccountHandle {
        self.sim.account(0)
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The `/metrics` text the process serves now.
    pub async fn metrics(&self) -> String {
        dealflow_testkit::metrics::scrape(&self.http, &self.base).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Connects the simulator's account; returns (integration id, webhook URL on this listener).
    pub async fn connect(&self, default_funnel: bool) -> (String, String) {
        self.connect_account(0, default_funnel).await
    }

    /// Connects the simulator's account `i`; returns (integration id, webhook URL).
    pub async fn connect_account(&self, i: usize, default_funnel: bool) -> (String, String) {
        self.connect_with(i, json!({"default_funnel": default_funnel}))
            .await
    }

    /// Connects the simulator's account `i` with the settings in `overrides` (no backfill,
    /// delivery cost included, active unless they say otherwise).
    pub async fn connect_with(&self, i: usize, overrides: Value) -> (String, String) {
        let account = self.sim.account(i);
        let mut request = json!({"crm_url": account.url(), "api_key": account.api_key(),
                                 "default_funnel": false, "include_delivery_cost": true,
                                 "active": true, "backfill_days": 0});
        for (k, v) in overrides.as_object().expect("overrides are an object") {
            request[k] = v.clone();
        }
        let (status, body) = self
            .send(reqwest::Method::POST, "/integrations", request)
            .await;
        assert_eq!(status, 201, "{body}");
        let hook = body["webhook_url"].as_str().unwrap();
        assert!(
            hook.starts_with(&self.base),
            "the public URL follows the listener: {hook}"
        );
        // No wait for the read model: the 201 came once it shows the integration (DESIGN §4).
        let id = body["id"].as_str().unwrap().to_string();
        (id, hook.to_string())
    }

    /// Every deal of an integration, through keyset pagination.
    pub async fn all_deals(&self, id: &str) -> Vec<Value> {
        let mut deals = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("?limit=500&cursor={c}"),
                None => "?limit=500".to_string(),
            };
            let page = self.get(&format!("/integrations/{id}/deals{query}")).await;
            deals.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return deals,
            }
        }
    }

    /// Waits until `check` holds for the deals of `id`.
    pub async fn wait_deals(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        wait_for(WAIT, what, || async {
            let deals = self.all_deals(id).await;
            check(&deals).then_some(deals)
        })
        .await
    }

    pub async fn stop(self) {
        match self.running {
            Running::InProcess { shutdown, task } => {
                shutdown.cancel();
                task.await.unwrap().unwrap();
            }
            Running::Split(deployment) => drop(deployment),
        }
    }

    /// Stops the all-in-one and hands back its data directory, configuration and bus (a
    /// broker stays up), so what it wrote can be replayed.
    pub async fn stop_keeping_bus(self) -> (TempDir, Config, Bus) {
        let Running::InProcess { shutdown, task } = self.running else {
            panic!("only the in-process all-in-one keeps its data");
        };
        shutdown.cancel();
        task.await.unwrap().unwrap();
        (self._dir, self.config, self._bus)
    }

    /// Stops the all-in-one and hands back its data directory, so its files can be inspected.
    pub async fn stop_keeping_data(self) -> (TempDir, Config) {
        let (dir, config, _) = self.stop_keeping_bus().await;
        (dir, config)
    }
}

/// Waits until `base` answers `/readyz` with a success.
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    wait_for(WAIT, &format!("{base} to be ready"), || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

/// A `dealflow` child process, killed (SIGKILL) and reaped when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free right now, for a child process's listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary as `dealflow run --target <target>` with `env` (JSON logs, shown
/// only with `TEST_LOG`).
pub fn run_binary(target: &str, env: &[(&str, String)]) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_dealflow"))
        .args(["run", "--target", target])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DEALFLOW_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("dealflow run starts");
    Process(child)
}

/// The simulator's live orders by id.
pub fn truth_orders(account: &AccountHandle) -> BTreeMap<u64, Value> {
    account.truth()["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["deleted"] == false)
        .map(|o| (o["id"].as_u64().unwrap(), o["order"].clone()))
        .collect()
}

/// A deal minus the fields that say when dealflow last looked (not what it knows).
pub fn facts(deal: &Value) -> Value {
    let mut d = deal.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove("updated_at");
    }
    d
}
