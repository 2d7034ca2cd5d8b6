//! A throwaway Kafka-protocol broker: the `nisshi` binary spawned on a free IPv4 port.
//!
//! The binary comes from `NISSHI_BIN` or `PATH`. There is no skipping: without it the test
//! fails and says how to install it. Its output goes to a log file in the broker's temporary
//! directory (quoted when the broker fails to start), or to the test's stderr when `TEST_LOG`
//! is set.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

/// How long a broker may take to accept connections (it is usually up in ~50 ms).
const START_TIMEOUT: Duration = Duration::from_secs(20);
const START_POLL: Duration = Duration::from_millis(20);
/// Attempts with a new port when the broker exits at start (a port taken in between).
const START_ATTEMPTS: usize = 3;

const INSTALL_HINT: &str = "the nisshi broker is needed by the Kafka tests: run `.ci/run`, or \
     `cargo install --locked --ignore-rust-version nisshi --version 0.8.1` (see KAFKA.md), \
     or point NISSHI_BIN at the binary";

/// Where the broker keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// `memory://`: fastest; everything is lost when the broker stops.
    #[default]
    Memory,
    /// `sqlite://` in the broker's temporary directory: survives [`Broker::restart`].
    Sqlite,
}

/// A running nisshi broker, killed (by PID) when dropped.
#[derive(Debug)]
pub struct Broker {
    binary: PathBuf,
    storage: Storage,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker with memory storage.
    pub async fn start() -> Self {
        Self::start_with(Storage::Memory).await
    }

    /// Starts a broker with the given storage.
    pub async fn start_with(storage: Storage) -> Self {
        let binary = nisshi_binary();
        let dir = tempfile::tempdir().expect("creating the broker's temporary directory");
        let mut broker = Self {
            binary,
            storage,
            port: 0,
            dir,
            child: None,
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            broker.port = free_port();
            match broker.spawn().await {
                Ok(()) => return broker,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("nisshi did not start:\n{}", failures.join("\n---\n"));
    }

    /// `bootstrap.servers` for clients: `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the broker listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The storage engine in use.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The broker's working directory: its log and, with [`Storage::Sqlite`], its data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the broker (idempotent). Clients see it as unreachable until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine; the wait reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the broker and starts it again on the same port and storage.
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn().await {
            panic!("nisshi did not restart: {failure}");
        }
    }

    /// Spawns the binary and waits until the port accepts connections.
    async fn spawn(&mut self) -> Result<(), String> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = match self.storage {
            Storage::Memory => "memory://nisshi/",
            // Relative to the working directory, which is the temporary directory.
            Storage::Sqlite => "sqlite://nisshi.db",
        };
        let log_path = self.dir.path().join("nisshi.log");
        let (stdout, stderr) = if std::env::var_os("TEST_LOG").is_some() {
            (Stdio::inherit(), Stdio::inherit())
        } else {
            let log = open_log(&log_path)?;
            let clone = log.try_clone().map_err(|e| format!("log file: {e}"))?;
            (Stdio::from(log), Stdio::from(clone))
        };
        let child = Command::new(&self.binary)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", storage])
            .args(["--group-initial-rebalance-delay", "0s"])
            // Held JoinGroup/SyncGroup requests re-read the group this often: keeps
            // rebalances in tests quick.
            .args(["--group-poll-interval", "50ms"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", self.binary.display()))?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "nisshi on port {} exited with {status}; log:\n{}",
                    self.port,
                    log_tail(&log_path)
                ));
            }
            if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "nisshi did not accept connections on port {} within {START_TIMEOUT:?}; log:\n{}",
                    self.port,
                    log_tail(&log_path)
                ));
            }
            tokio::time::sleep(START_POLL).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `NISSHI_BIN`, else the first `nisshi` on `PATH`; panics with the install hint otherwise.
fn nisshi_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NISSHI_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NISSHI_BIN={} is not a file; {INSTALL_HINT}",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nisshi"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("nisshi was not found on PATH; {INSTALL_HINT}"))
}

/// A port that was free a moment ago (the broker binds it right after).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("finding a free port")
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))
}

/// The last few KiB of the broker log, for failure messages.
fn log_tail(path: &Path) -> String {
    const TAIL: u64 = 4096;
    let Ok(mut file) = File::open(path) else {
        return "(no log; TEST_LOG sends it to stderr)".to_owned();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
