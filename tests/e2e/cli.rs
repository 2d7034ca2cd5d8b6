//! The `dealflow` command itself: configuration a component cannot run with stops it at start
//! with one line naming the variable (the guide's "errors are for people"); `replay` and
//! `reprocess` on both buses.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use dealflow_simulator::{OrderEdit, SimConfig, Simulator};
use dealflow_testkit::{unique_prefix, wait_for};
use serde_json::{Value, json};

use crate::support::{Bus, Process, WAIT, free_port, run_binary, wait_ready};

/// Runs `dealflow run --target <target>` with only `env` (and a scratch data directory); its
/// exit success and its stderr.
fn run_target(target: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dealflow"))
        .args(["run", "--target", target])
        .env_clear()
        .env("DEALFLOW_DATA_DIR", dir.path())
        .envs(env.iter().copied())
        .output()
        .expect("dealflow runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_split_component_names_the_variable_it_misses() {
    let shared = [
        ("DEALFLOW_KAFKA_BROKERS", "127.0.0.1:1"),
        (
            "DEALFLOW_API_TOKEN",
            "cli-test-operator-token-0123456789abcdef",
        ),
        (
            "DEALFLOW_SECRET_KEY",
            "cli-test-secret-key-long-enough-0123456789",
        ),
    ];
    // The projector serves the pages, whose writes go to ingest: without its address the
    // forms could not work, so it does not start.
    let (ok, stderr) = run_target("projector", &shared);
    assert!(!ok, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("DEALFLOW_INGEST_URL") && stderr.contains("--target projector"),
        "{stderr}"
    );
    let mut bad_url = shared.to_vec();
    bad_url.push(("DEALFLOW_INGEST_URL", "ingest:8080"));
    let (ok, stderr) = run_target("projector", &bad_url);
    assert!(!ok && stderr.contains("DEALFLOW_INGEST_URL"), "{stderr}");
    // Without Kafka no component runs alone.
    let (ok, stderr) = run_target("ingest", &shared[1..]);
    assert!(!ok && stderr.contains("DEALFLOW_KAFKA_BROKERS"), "{stderr}");
}

/// `dealflow reprocess` and `dealflow replay` on a stopped all-in-one's data (issue 20): both
/// refuse while it runs; reprocess fetches again exactly the orders whose change arrived after
/// `--since` (their amounts changed in RetailCRM without a webhook, the reconciliation far
/// off); replay rebuilds a read model whose deals were wiped; the restarted process shows both.
async fn reprocess_and_replay(bus: Bus) {
    let sim = Simulator::start(SimConfig::new(1, 12)).await.unwrap();
    let account = sim.account(0);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = vec![
        ("DEALFLOW_DATA_DIR", dir.path().display().to_string()),
        ("DEALFLOW_LISTEN", format!("127.0.0.1:{port}")),
        ("DEALFLOW_CRM_ALLOW_HOSTS", "http://127.0.0.1:*".to_string()),
        ("DEALFLOW_TOPIC_PREFIX", unique_prefix()),
        ("DEALFLOW_API_TOKEN", TOKEN.to_string()),
        ("DEALFLOW_SECRET_KEY", SECRET_KEY.to_string()),
        // Only webhooks and reprocess fetch orders here.
        ("DEALFLOW_RECONCILE_INTERVAL", "1h".to_string()),
    ];
    if let Bus::Kafka(broker) = &bus {
        env.push(("DEALFLOW_KAFKA_BROKERS", broker.bootstrap()));
    }
    let http = reqwest::Client::new();
    let process = run_binary("all", &env);
    wait_ready(&http, &base).await;
    let created: Value = http
        .post(format!("{base}/api/v1/integrations"))
        .bearer_auth(TOKEN)
        .json(&json!({"crm_url": account.url(), "api_key": account.api_key(), "backfill_days": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("created").to_string();
    let hook = created["webhook_url"].as_str().unwrap().to_string();
    let orders: Vec<u64> = account.inspect(|s| {
        s.orders
            .values()
            .filter(|o| o.is_live())
            .map(|o| o.id)
            .collect()
    });
    let (before, after) = orders.split_at(orders.len() / 2);
    let deals = |n: usize| {
        let (http, base, id) = (&http, &base, &id);
        async move {
            wait_for(WAIT, &format!("{n} deals"), || async move {
                let deals = amounts(http, base, id).await;
                (deals.len() == n).then_some(deals)
            })
            .await
        }
    };
    for order in before {
        let r = http.get(format!("{hook}?orderId={order}")).send().await;
        assert_eq!(r.unwrap().status(), 202);
    }
    deals(before.len()).await;
    // Record times have millisecond precision: a clear gap on both sides of the cut.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for order in after {
        let r = http.get(format!("{hook}?orderId={order}")).send().await;
        assert_eq!(r.unwrap().status(), 202);
    }
    let first = deals(orders.len()).await;

    // While it runs, neither command touches its data.
    let (ok, _, stderr) = command(&["reprocess", "--since", &since], &env);
    assert!(!ok && stderr.contains("first"), "{stderr}");
    if matches!(bus, Bus::Embedded) {
        let (ok, _, stderr) = command(&["replay"], &env);
        assert!(
            !ok && stderr.contains("stop `dealflow run` first"),
            "{stderr}"
        );
    }
    stop(process);

    // Every order changes in RetailCRM; no webhook says so.
    for order in &orders {
        let edit = OrderEdit {
            delivery_cost: Some(rust_decimal::Decimal::new(123_456, 2)),
            ..OrderEdit::default()
        };
        account.edit_order(*order, &edit, None).unwrap();
    }
    let calls_before = account.counters();
    let (ok, stdout, stderr) = command(&["reprocess", "--since", &since], &env);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{} order changes to read again", after.len())),
        "only the changes after --since: {stdout}"
    );
    assert!(stdout.contains("reprocess finished"), "{stdout}");
    println!("{stdout}");
    assert!(
        account.counters().total > calls_before.total,
        "reprocess asked RetailCRM"
    );

    // Wipe the read model's deals; replay rebuilds them (the reprocessed ones included).
    wipe_deals(dir.path()).await;
    let (ok, stdout, stderr) = command(&["replay"], &env);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("replay finished"), "{stdout}");
    println!("{stdout}");

    let _restarted = run_binary("all", &env);
    wait_ready(&http, &base).await;
    // Replay committed the rebuilt view before the restart: it is there at once.
    let now = amounts(&http, &base, &id).await;
    assert_eq!(now.len(), orders.len(), "{now:?}");
    for order in before {
        assert_eq!(
            now[order], first[order],
            "order {order} was not fetched again"
        );
    }
    for order in after {
        assert_ne!(now[order], first[order], "order {order} was fetched again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_and_replay_on_the_embedded_log() {
    reprocess_and_replay(Bus::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_and_replay_on_kafka() {
    reprocess_and_replay(Bus::kafka().await).await;
}

const TOKEN: &str = "cli-test-operator-token-0123456789abcdef";
const SECRET_KEY: &str = "cli-test-secret-key-long-enough-0123456789";

/// Runs `dealflow <args>` to its end with `env`: success, stdout, stderr.
fn command(args: &[&str], env: &[(&str, String)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dealflow"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("dealflow runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Stops the process the way an operator does (SIGTERM) and waits for it.
fn stop(mut process: Process) {
    let _ = Command::new("kill")
        .args(["-TERM", &process.0.id().to_string()])
        .status();
    let status = process.0.wait().unwrap();
    assert!(status.success(), "dealflow stopped cleanly: {status}");
}

/// Each deal's amount by order id.
async fn amounts(http: &reqwest::Client, base: &str, id: &str) -> BTreeMap<u64, Value> {
    let page: Value = http
        .get(format!("{base}/api/v1/integrations/{id}/deals?limit=500"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["order_id"].as_u64().unwrap(), d["amount"].clone()))
        .collect()
}

/// Deletes every deal row of the all-in-one's SQLite read model (it is stopped).
async fn wipe_deals(data_dir: &std::path::Path) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", data_dir.join("dealflow.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let wiped = sqlx::query("DELETE FROM deals")
        .execute(&mut db)
        .await
        .unwrap();
    assert!(wiped.rows_affected() > 0);
    db.close().await.unwrap();
}
