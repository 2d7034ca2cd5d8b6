//! The two deployments under test and how they are started: the three components as separate
//! processes on Kafka and PostgreSQL ("split"), and the all-in-one on the embedded log and
//! SQLite ("allinone"). Both get the same API token and secret key, given by environment, so
//! nothing is generated (and printed) on start.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use dealflow_shared::config::Config;
use rand::Rng;
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use tokio::sync::Mutex;

use crate::process::Process;

/// How often each deployment reconciles through `orders/history`: short, so the 30% of
/// webhooks that are never sent are recovered within the suite's time.
pub const RECONCILE_INTERVAL: &str = "5s";

/// Which deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Split,
    AllInOne,
}

/// An integration as connected in one deployment.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Simulator account index.
    pub account: usize,
    pub id: String,
    pub webhook_url: String,
}

/// What every task needs to reach a deployment (cheap to clone).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub name: &'static str,
    pub kind: Kind,
    /// Webhooks and the settings API (ingest, or the all-in-one).
    pub write_base: String,
    /// The read API (projector, or the all-in-one).
    pub read_base: String,
    /// One per simulator account, in account order (filled by the connect step).
    pub integrations: Vec<Integration>,
    /// A tenant's tokens issued at the start (filled by the connect step).
    pub tenant_tokens: Option<crate::tenants::TenantTokens>,
    /// The configuration of the bus, to inject poison and read the dead letters.
    pub bus_config: Config,
}

/// A deployment: its endpoints and its processes (shared with the fault injector).
#[derive(Debug, Clone)]
pub struct Deployment {
    pub endpoints: Endpoints,
    pub processes: Arc<Mutex<Vec<Process>>>,
}

/// Secrets shared by every process of the run.
#[derive(Debug, Clone)]
pub struct RunSecrets {
    pub api_token: String,
    pub secret_key: String,
}

impl RunSecrets {
    pub fn generate(rng: &mut StdRng) -> Self {
        let mut text =
            |n: usize| -> String { (0..n).map(|_| rng.sample(Alphanumeric) as char).collect() };
        Self {
            api_token: text(40),
            secret_key: text(48),
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The environment every process shares.
fn common_env(secrets: &RunSecrets) -> BTreeMap<String, String> {
    BTreeMap::from(
        [
            ("DEALFLOW_API_TOKEN", secrets.api_token.as_str()),
            ("DEALFLOW_SECRET_KEY", secrets.secret_key.as_str()),
            ("DEALFLOW_CRM_ALLOW_HOSTS", "http://127.0.0.1:*"),
            ("DEALFLOW_RECONCILE_INTERVAL", RECONCILE_INTERVAL),
            ("DEALFLOW_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
}

fn with(env: &BTreeMap<String, String>, extra: &[(&str, String)]) -> BTreeMap<String, String> {
    let mut env = env.clone();
    for (k, v) in extra {
        env.insert((*k).to_owned(), v.clone());
    }
    env
}

fn config_of(env: &BTreeMap<String, String>) -> anyhow::Result<Config> {
    let dealflow_only = env
        .iter()
        .filter(|(k, _)| k.starts_with("DEALFLOW_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Config::from_map(&dealflow_only).context("the suite's own dealflow configuration")
}

/// The three components as separate processes on Kafka and PostgreSQL.
pub fn split(
    work: &Path,
    binary: &Path,
    secrets: &RunSecrets,
    brokers: &str,
    topic_prefix: &str,
    database_url: &str,
) -> anyhow::Result<Deployment> {
    let base_env = with(
        &common_env(secrets),
        &[
            ("DEALFLOW_KAFKA_BROKERS", brokers.to_owned()),
            ("DEALFLOW_TOPIC_PREFIX", topic_prefix.to_owned()),
            ("DEALFLOW_DATABASE_URL", database_url.to_owned()),
        ],
    );
    let mut processes = Vec::new();
    let mut bases = BTreeMap::new();
    let mut bus_env = base_env.clone();
    // The projector's pages send their writes to ingest, which starts first.
    let ingest_port = free_port()?;
    // Two enricher replicas share the group: accounts move between them on every kill.
    for (name, target) in [
        ("ingest", "ingest"),
        ("enricher", "enricher"),
        ("enricher-2", "enricher"),
        ("projector", "projector"),
    ] {
        let port = if name == "ingest" {
            ingest_port
        } else {
            free_port()?
        };
        let data_dir = work.join("split").join(name);
        std::fs::create_dir_all(&data_dir)?;
        let env = with(
            &base_env,
            &[
                ("DEALFLOW_LISTEN", format!("127.0.0.1:{port}")),
                ("DEALFLOW_DATA_DIR", data_dir.display().to_string()),
                (
                    "DEALFLOW_INGEST_URL",
                    format!("http://127.0.0.1:{ingest_port}"),
                ),
            ],
        );
        if name == "enricher" {
            bus_env = env.clone();
        }
        let base = format!("http://127.0.0.1:{port}");
        bases.insert(name, base.clone());
        processes.push(Process::new(
            &format!("split/{name}"),
            binary,
            &["run", "--target", target],
            env.into_iter().collect(),
            work.join(format!("split-{name}.log")),
            base,
        ));
    }
    Ok(Deployment {
        endpoints: Endpoints {
            name: "split",
            kind: Kind::Split,
            write_base: bases["ingest"].clone(),
            read_base: bases["projector"].clone(),
            integrations: Vec::new(),
            tenant_tokens: None,
            bus_config: config_of(&bus_env)?,
        },
        processes: Arc::new(Mutex::new(processes)),
    })
}

/// The all-in-one on the embedded log and SQLite.
pub fn all_in_one(work: &Path, binary: &Path, secrets: &RunSecrets) -> anyhow::Result<Deployment> {
    let port = free_port()?;
    let data_dir = work.join("allinone").join("data");
    std::fs::create_dir_all(&data_dir)?;
    let env = with(
        &common_env(secrets),
        &[
            ("DEALFLOW_LISTEN", format!("127.0.0.1:{port}")),
            ("DEALFLOW_DATA_DIR", data_dir.display().to_string()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let config = config_of(&env)?;
    let process = Process::new(
        "allinone",
        binary,
        &["run"],
        env.into_iter().collect(),
        work.join("allinone.log"),
        base.clone(),
    );
    Ok(Deployment {
        endpoints: Endpoints {
            name: "allinone",
            kind: Kind::AllInOne,
            write_base: base.clone(),
            read_base: base,
            integrations: Vec::new(),
            tenant_tokens: None,
            bus_config: config,
        },
        processes: Arc::new(Mutex::new(vec![process])),
    })
}

impl Deployment {
    /// Starts every process and waits until each is ready.
    pub async fn start(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        let mut processes = self.processes.lock().await;
        for p in processes.iter_mut() {
            p.spawn()?;
        }
        for p in processes.iter_mut() {
            p.wait_ready(http).await?;
        }
        Ok(())
    }

    /// Gracefully stops every process.
    pub async fn stop(&self) {
        for p in self.processes.lock().await.iter_mut() {
            p.stop(std::time::Duration::from_secs(20)).await;
        }
    }

    /// Base URLs of every process (for `/metrics`).
    pub async fn bases(&self) -> Vec<(String, String)> {
        self.processes
            .lock()
            .await
            .iter()
            .map(|p| (p.name.clone(), p.base.clone()))
            .collect()
    }
}
