//! Every metric the Grafana dashboard and the alert rules use (`deploy/metrics-used.txt`) is
//! exported by a running all-in-one process under that exact name, once it has seen ordinary
//! traffic: a connect, webhooks (accepted and refused), deals applied, a re-sync, a
//! reconciliation.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use dealflow::allinone::AllInOne;
use dealflow_simulator::{SimConfig, Simulator};
use dealflow_testkit::wait_until;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::{Bus, WAIT, config, truth_orders};

/// The names the dashboard and the rules reference (histograms with `_bucket`/`_sum`/`_count`).
fn used_names() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/metrics-used.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 10, "{path} lists the metrics: {names:?}");
    names
}

/// Metric names present in a Prometheus text exposition (samples, not only HELP/TYPE lines).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    // Its own all-in-one (not `System`): reconciliation every second, so the
    // last-reconciled gauge has a value within the test.
    dealflow_shared::telemetry::init_for_tests();
    let sim = Simulator::start(SimConfig::new(1, 20)).await.unwrap();
    let account = sim.account(0);
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::Embedded;
    let app = AllInOne::build(&config(
        dir.path(),
        &bus,
        &[("DEALFLOW_RECONCILE_INTERVAL", "1s")],
    ))
    .await
    .unwrap();
    let base = format!("http://{}", app.local_addr());
    let token = app.api_token().expose_secret().to_string();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let http = reqwest::Client::new();
    wait_until(WAIT, "dealflow to be ready", || async {
        let r = http.get(format!("{base}/readyz")).send().await;
        r.is_ok_and(|r| r.status().is_success())
    })
    .await;

    let created = http
        .post(format!("{base}/api/v1/integrations"))
        .bearer_auth(&token)
        .json(&json!({"crm_url": account.url(), "api_key": account.api_key(), "backfill_days": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let integration: Value = created.json().await.unwrap();
    let id = integration["id"].as_str().unwrap().to_string();
    let hook = integration["webhook_url"].as_str().unwrap().to_string();
    let orders: Vec<u64> = truth_orders(account).keys().copied().collect();
    for order in &orders[..5] {
        let sent = http.post(format!("{hook}?orderId={order}")).send().await;
        assert_eq!(sent.unwrap().status(), 202);
    }
    let refused = http.post(&hook).send().await.unwrap().status();
    assert_eq!(refused, 400, "a webhook without an order id");
    let resync = http
        .post(format!("{base}/api/v1/integrations/{id}/resync"))
        .bearer_auth(&token)
        .json(&json!({"since": "2000-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resync.status(), 202);

    let wanted = used_names();
    // Polled with a deadline: the enricher's gauges appear as its workers start.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = dealflow_testkit::metrics::scrape(&http, &base).await;
        let have = exported(&text);
        let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not exported after {WAIT:?}: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The per-integration gauges describe this integration.
    let text = dealflow_testkit::metrics::scrape(&http, &base).await;
    assert!(
        text.contains(&format!(
            "dealflow_integration_active{{integration_id=\"{id}\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "dealflow_integration_last_webhook_timestamp_seconds{{integration_id=\"{id}\"}}"
        ))),
        "the webhook time is exported"
    );
    let current: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("dealflow_integration_health{") && l.contains(&id))
        .filter(|l| l.ends_with(" 1"))
        .collect();
    assert_eq!(current.len(), 1, "exactly one current status: {current:?}");
    shutdown.cancel();
    task.await.unwrap().unwrap();
    drop((sim, bus, dir));
}
