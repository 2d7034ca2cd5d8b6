//! One `dealflow run` process: spawned with its environment, its stdout and stderr appended to
//! a log file that survives restarts, killed with SIGKILL (and the death checked), restarted.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a (re)started process may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What a kill -9 left behind: proof that the process really died of it.
#[derive(Debug, Clone)]
pub struct KillEvidence {
    pub pid: u32,
    /// The signal the process died of (9 = SIGKILL).
    pub signal: Option<i32>,
    /// `/proc/<pid>` no longer existed after the reap.
    pub gone_from_proc: bool,
}

impl KillEvidence {
    /// Killed by SIGKILL and gone.
    pub fn verified(&self) -> bool {
        self.signal == Some(9) && self.gone_from_proc
    }
}

/// A dealflow process of a deployment.
#[derive(Debug)]
pub struct Process {
    /// `split/ingest`, `allinone`, … (for messages and the summary).
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    /// `http://127.0.0.1:<port>`: health, metrics and (depending on the role) the API.
    pub base: String,
    child: Option<Child>,
}

impl Process {
    pub fn new(
        name: &str,
        binary: &Path,
        args: &[&str],
        env: Vec<(String, String)>,
        log: PathBuf,
        base: String,
    ) -> Self {
        Self {
            name: name.to_owned(),
            binary: binary.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
            log,
            base,
            child: None,
        }
    }

    /// Starts the process (appending to its log).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone().context("cloning the log handle")?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            // Nothing from the suite's own environment leaks in (a stray DEALFLOW_* would
            // change what is tested); PATH and HOME are all a process needs besides its config.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("spawning {} ({})", self.name, self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/readyz` answers 200; fails early when the process exits.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("checking the child")?
            {
                self.child = None;
                bail!(
                    "{} exited while starting ({status}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            if is_ready(http, &self.base).await {
                return Ok(started.elapsed());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} was not ready within {READY_TIMEOUT:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, reap, and check the process is really gone.
    pub fn kill9(&mut self) -> anyhow::Result<KillEvidence> {
        let Some(mut child) = self.child.take() else {
            bail!("{} is not running", self.name);
        };
        let pid = child.id();
        // `Child::kill` sends SIGKILL on Unix: no shutdown path runs.
        child
            .kill()
            .with_context(|| format!("killing {}", self.name))?;
        let status = child.wait().context("reaping the killed process")?;
        Ok(KillEvidence {
            pid,
            signal: status.signal(),
            gone_from_proc: !Path::new(&format!("/proc/{pid}")).exists(),
        })
    }

    /// SIGTERM (the graceful path) and wait for the exit, SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Our own child, by pid; std has no SIGTERM, `kill` does.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("{} did not stop within {grace:?}; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Whether the process is alive (not exited by itself).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One look at `base/readyz`: 200 within 2 s.
pub async fn is_ready(http: &reqwest::Client, base: &str) -> bool {
    http.get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}
