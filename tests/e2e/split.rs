//! The split deployment as a user runs it (DESIGN §2): `dealflow run --target ingest`,
//! `--target enricher` and `--target projector` as three processes on Kafka (nisshi) and a fresh
//! PostgreSQL database, behind the compose gateway's own configuration
//! (`deploy/nginx/dealflow.conf`) in a real nginx (Debian's nginx-light, installed by `.ci/run`).
//! A [`System`](crate::support::System) started this way is used like the all-in-one one: its
//! `base` is the gateway.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use dealflow_testkit::wait_for;
use sqlx::Connection;
use tempfile::TempDir;

use crate::support::{Process, WAIT, free_port, run_binary, wait_ready};

/// The operator token and the sealing key the three processes share.
pub const TOKEN: &str = "split-e2e-operator-token-0123456789abcdef";
pub const SECRET_KEY: &str = "split-e2e-secret-key-long-enough-0123456789";

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What runs a split deployment: the processes, the gateway, the database, their directories.
pub struct Deployment {
    pub database_url: String,
    // Dropped in order: the gateway and the processes before their directories.
    _gateway: Gateway,
    _processes: Vec<Process>,
    _dirs: Vec<TempDir>,
}

impl Deployment {
    /// Starts the three components and the gateway; `shared` is the environment every component
    /// gets (the bus, the topic prefix, the token and key, the public URL = the gateway).
    /// Answers once every component is ready and the gateway serves the sign-in page.
    pub async fn start(
        gateway_port: u16,
        shared: &[(&str, String)],
        http: &reqwest::Client,
    ) -> Self {
        let database_url = fresh_database().await;
        let ports = [free_port(), free_port(), free_port()];
        let ingest_base = format!("http://127.0.0.1:{}", ports[0]);
        let mut processes = Vec::new();
        let mut dirs = Vec::new();
        for (target, port) in ["ingest", "enricher", "projector"].into_iter().zip(ports) {
            let dir = tempfile::tempdir().unwrap();
            let mut env = shared.to_vec();
            env.push(("DEALFLOW_DATA_DIR", dir.path().display().to_string()));
            env.push(("DEALFLOW_LISTEN", format!("127.0.0.1:{port}")));
            if target == "projector" {
                env.push(("DEALFLOW_DATABASE_URL", database_url.clone()));
                env.push(("DEALFLOW_INGEST_URL", ingest_base.clone()));
            }
            processes.push(run_binary(target, &env));
            dirs.push(dir);
        }
        for port in ports {
            wait_ready(http, &format!("http://127.0.0.1:{port}")).await;
        }
        let gateway = Gateway::start(gateway_port, ports[0], ports[2]);
        let login = format!("http://127.0.0.1:{gateway_port}/login");
        wait_for(WAIT, "the gateway to serve the sign-in page", || async {
            let r = http.get(&login).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        Self {
            database_url,
            _gateway: gateway,
            _processes: processes,
            _dirs: dirs,
        }
    }
}

/// A new database on the machine's PostgreSQL; its URL.
async fn fresh_database() -> String {
    let name = format!("e2e_split_{}", uuid_like());
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (user postgres, database test)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

/// A name part unique across test processes and runs.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

/// nginx with the compose gateway's file, its upstreams pointed at local ports.
struct Gateway {
    master: Child,
    _dir: TempDir,
}

impl Drop for Gateway {
    /// SIGTERM, not SIGKILL: the master takes its workers along only when it is let stop.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.master.id().to_string()])
            .status();
        let _ = self.master.wait();
    }
}

impl Gateway {
    fn start(port: u16, ingest: u16, projector: u16) -> Self {
        let nginx = std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".to_string());
        let dir = tempfile::tempdir().unwrap();
        // nginx's workers run as another user when the master is root: they must reach the
        // buffer directories.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let work = dir.path().display().to_string();
        let conf = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/nginx/dealflow.conf"
        ))
        .unwrap();
        let replaced = [
            ("server ingest:8080;", format!("server 127.0.0.1:{ingest};")),
            (
                "server projector:8080;",
                format!("server 127.0.0.1:{projector};"),
            ),
            ("listen 8080;", format!("listen 127.0.0.1:{port};")),
            ("/var/log/nginx/access.log", format!("{work}/access.log")),
        ];
        let mut conf = conf;
        for (from, to) in replaced {
            assert!(conf.contains(from), "the gateway config has {from:?}");
            conf = conf.replace(from, &to);
        }
        std::fs::write(dir.path().join("gateway.conf"), conf).unwrap();
        let main = format!(
            "daemon off; pid {work}/nginx.pid; error_log {work}/error.log;\n\
             events {{ }}\n\
             http {{\n\
               client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};\n\
               uwsgi_temp_path {work}; scgi_temp_path {work};\n\
               include {work}/gateway.conf;\n\
             }}\n"
        );
        let main_path = dir.path().join("nginx.conf");
        std::fs::write(&main_path, main).unwrap();
        let child = Command::new(&nginx)
            .arg("-c")
            .arg(&main_path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{nginx}: {e}; run .ci/run (it installs nginx-light)"));
        Self {
            master: child,
            _dir: dir,
        }
    }
}
