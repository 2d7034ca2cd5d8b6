//! dealflow as real child processes (`dealflow run --target …`, the release binary), so each
//! component's memory and CPU can be read from `/proc/<pid>`: the benchmarks that measure the
//! system end to end (`e2e`, `backlog`) start it this way rather than in the bench process.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The API token every bench process shares (split targets must agree on it).
pub const API_TOKEN: &str = "bench-api-token-0123456789abcdef";
/// The secret key every bench process shares (seals CRM keys, derives webhook tokens).
pub const SECRET_KEY: &str = "bench-e2e-secret-key-that-is-long-enough-0123456";

/// One running `dealflow run --target <target>`.
#[derive(Debug)]
pub struct Dealflow {
    /// `all`, `ingest`, `enricher` or `projector`.
    pub target: String,
    /// `http://127.0.0.1:<port>` of its listener.
    pub base: String,
    pub pid: u32,
    /// Its stdout and stderr, quoted when it fails.
    pub log: PathBuf,
    child: Child,
}

/// A port that was free a moment ago (the child binds it; a race with another process is
/// possible but rare, and shows as a child that exits at start).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl Dealflow {
    /// [`spawn`](Self::spawn), then waits until its `/readyz` answers 200.
    pub async fn start(
        binary: &Path,
        target: &str,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        let mut process = Self::spawn(binary, target, dir, env)?;
        process.wait_ready(Duration::from_secs(120)).await?;
        Ok(process)
    }

    /// Spawns `binary run --target target` with `env` (plus the shared secrets, a free port and
    /// JSON logs into `dir/<target>.log`).
    pub fn spawn(
        binary: &Path,
        target: &str,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        // A listener the caller chose (another process must know it), or a free port.
        let listen = match env.get("DEALFLOW_LISTEN") {
            Some(listen) => listen.clone(),
            None => format!("127.0.0.1:{}", free_port()?),
        };
        let log = dir.join(format!("{target}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = command(binary, &["run", "--target", target], env);
        command
            .env("DEALFLOW_LISTEN", &listen)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| {
            format!(
                "starting {} (build it: cargo build --release --bin dealflow)",
                binary.display()
            )
        })?;
        let pid = child.id().context("the child exited at once")?;
        Ok(Self {
            target: target.to_string(),
            base: format!("http://{listen}"),
            pid,
            log,
            child,
        })
    }

    /// Runs `binary args…` to its end with the same environment as [`spawn`](Self::spawn)'s
    /// processes (a CLI command such as `reprocess`); fails if it does not succeed.
    pub async fn cli(
        binary: &Path,
        args: &[&str],
        env: &BTreeMap<String, String>,
    ) -> anyhow::Result<std::process::Output> {
        let output = command(binary, args, env)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {} {}", binary.display(), args.join(" ")))?;
        anyhow::ensure!(
            output.status.success(),
            "{} {} failed: {}",
            binary.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(output)
    }

    /// Waits until its `/readyz` answers 200; fails if it exits first.
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "dealflow --target {} exited at start ({status}):\n{}",
                    self.target,
                    self.tail_log()
                );
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "dealflow --target {} was not ready within {within:?}:\n{}",
                    self.target,
                    self.tail_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// False once it has exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The first `n` warnings and errors of its log, and how many there are.
    pub fn problems(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .collect();
        let mut out: Vec<String> = lines.iter().take(n).map(|l| l.to_string()).collect();
        out.push(format!("({} warnings and errors in all)", lines.len()));
        out.join("\n")
    }

    /// The last lines of its log, for error messages.
    pub fn tail_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Asks it to stop (SIGTERM, as an orchestrator would) and waits; kills it after 20 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!(
                    "dealflow --target {} ignored SIGTERM; killing it",
                    self.target
                );
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// A scratch PostgreSQL database on the local server, dropped by [`ScratchDb::drop_now`].
#[derive(Debug)]
pub struct ScratchDb {
    pub name: String,
    /// Server URL without a database (`postgres://postgres@127.0.0.1:5432`).
    server: String,
}

impl ScratchDb {
    pub fn create(server: &str) -> anyhow::Result<Self> {
        let name = format!("dealflow_bench_{}", std::process::id());
        psql(server, &format!("DROP DATABASE IF EXISTS {name}"))?;
        psql(server, &format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            name,
            server: server.trim_end_matches('/').to_string(),
        })
    }

    /// `DEALFLOW_DATABASE_URL` for it.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    pub fn drop_now(self) -> anyhow::Result<()> {
        psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
    }
}

fn psql(server: &str, statement: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("psql")
        .args([
            &format!("{}/postgres", server.trim_end_matches('/')),
            "-q",
            "-c",
            statement,
        ])
        .stdout(Stdio::null())
        .status()
        .context("running psql (the PostgreSQL client)")?;
    anyhow::ensure!(status.success(), "psql {statement:?} failed: {status}");
    Ok(())
}

/// `binary args…` with nothing of the caller's environment but `PATH`, the shared secrets,
/// JSON logs, the image's malloc arenas, the caller's librdkafka settings and `env` (which
/// wins).
fn command(binary: &Path, args: &[&str], env: &BTreeMap<String, String>) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DEALFLOW_API_TOKEN", API_TOKEN)
        .env("DEALFLOW_SECRET_KEY", SECRET_KEY)
        .env("DEALFLOW_CRM_ALLOW_HOSTS", "http://127.0.0.1:*")
        .env("DEALFLOW_LOG_FORMAT", "json")
        // As the image sets it (deploy/Dockerfile); the caller's value to compare
        // (`MALLOC_ARENA_MAX=8 dealflow-bench …`).
        .env(
            "MALLOC_ARENA_MAX",
            std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".to_owned()),
        )
        // The operator's librdkafka settings, to compare them (`DEALFLOW_KAFKA_PROPERTIES=…
        // dealflow-bench e2e`); the caller's own variables still win.
        .envs(std::env::var("DEALFLOW_KAFKA_PROPERTIES").map(|p| ("DEALFLOW_KAFKA_PROPERTIES", p)))
        .envs(env);
    command
}
