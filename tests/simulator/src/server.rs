//! Starting and stopping the simulator: one listener per account, and the handles tests use
//! to reach and drive the accounts.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::accounts::Account;
use crate::config::SimConfig;

/// How long `shutdown` waits for the listeners to finish their in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Entry point: `Simulator::start(config)`.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Generates every account's data and starts its listener.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        let shutdown = CancellationToken::new();
        let started = Utc::now();
        let mut tasks = JoinSet::new();
        let mut accounts = Vec::with_capacity(config.accounts.len());
        for (i, cfg) in config.accounts.iter().enumerate() {
            let port = if config.base_port == 0 {
                0
            } else {
                u16::try_from(usize::from(config.base_port) + i)
                    .context("--base-port + accounts exceeds 65535")?
            };
            let listener = TcpListener::bind((config.listen_host, port))
                .await
                .with_context(|| format!("binding account {i} to {}:{port}", config.listen_host))?;
            let addr = listener.local_addr().context("reading the bound address")?;
            let account = Arc::new(Account::new(
                i,
                cfg,
                config.seed,
                started,
                shutdown.child_token(),
            ));
            let app = crate::routes::router(Arc::clone(&account));
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(err) = served {
                    tracing::error!(account = i, %err, "simulator listener failed");
                }
            });
            tracing::info!(account = i, %addr, "simulated RetailCRM account listening");
            accounts.push(AccountHandle { addr, account });
        }
        Ok(SimHandle {
            accounts,
            shutdown,
            tasks,
        })
    }
}

/// A running simulator. Dropping it stops the listeners; `shutdown` also waits for them.
#[derive(Debug)]
pub struct SimHandle {
    accounts: Vec<AccountHandle>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl SimHandle {
    /// Account `i`. Panics when there is no such account (a test bug).
    pub fn account(&self, i: usize) -> &AccountHandle {
        &self.accounts[i]
    }

    /// Every account.
    pub fn accounts(&self) -> &[AccountHandle] {
        &self.accounts
    }

    /// Stops the listeners and waits (bounded) for them to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("simulator listeners did not stop in time; aborting them");
            self.tasks.abort_all();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One running account: its address plus every control of [`Account`] (through `Deref`).
#[derive(Debug, Clone)]
pub struct AccountHandle {
    addr: SocketAddr,
    account: Arc<Account>,
}

impl AccountHandle {
    /// The account's base URL, `http://host:port/` (the client appends `api/v5/...`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first API key (full access unless configured otherwise).
    pub fn api_key(&self) -> String {
        // Every account has at least one key (a default one when none is configured).
        self.account.key(0).unwrap_or_default()
    }

    /// The `/_sim` control base URL.
    pub fn controls_url(&self) -> String {
        format!("http://{}/_sim", self.addr)
    }
}

impl Deref for AccountHandle {
    type Target = Account;

    fn deref(&self) -> &Account {
        &self.account
    }
}
