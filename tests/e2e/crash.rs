//! kill -9 of the real `dealflow run` process during a burst of webhooks, then a restart on the
//! same data directory: no accepted webhook is lost and nothing is duplicated.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dealflow_simulator::{SimConfig, Simulator};
use dealflow_testkit::{wait_for, wait_until};
use serde_json::{Value, json};

use crate::support::{Process, WAIT, free_port, run_binary, wait_ready as ready};

fn start(dir: &std::path::Path, port: u16) -> Process {
    run_binary(
        "all",
        &[
            ("DEALFLOW_DATA_DIR", dir.display().to_string()),
            ("DEALFLOW_LISTEN", format!("127.0.0.1:{port}")),
            ("DEALFLOW_CRM_ALLOW_HOSTS", "http://127.0.0.1:*".to_owned()),
        ],
    )
}

/// Connects `account` through the running process's API; `(integration id, webhook URL)`.
async fn connect(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    account: &dealflow_simulator::AccountHandle,
) -> (String, String) {
    let response = http
        .post(format!("{base}/api/v1/integrations"))
        .bearer_auth(token)
        .json(&json!({"crm_url": account.url(), "api_key": account.api_key(), "backfill_days": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let integration: Value = response.json().await.unwrap();
    let text = |field: &str| integration[field].as_str().unwrap().to_string();
    (text("id"), text("webhook_url"))
}

/// The first page (up to 500) of the integration's deals, `None` while the process does not
/// answer.
async fn deals_page(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> Option<Vec<Value>> {
    let page: Value = http
        .get(format!("{base}/api/v1/integrations/{id}/deals?limit=500"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    page["items"].as_array().cloned()
}

/// The live orders of `account`.
fn live_orders(account: &dealflow_simulator::AccountHandle) -> Vec<u64> {
    account.inspect(|s| {
        s.orders
            .values()
            .filter(|o| o.is_live())
            .map(|o| o.id)
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_accepted_webhook() {
    let sim = Simulator::start(SimConfig::new(1, 150)).await.unwrap();
    let account = sim.account(0);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut process = start(dir.path(), port);
    ready(&http, &base).await;
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    let (id, hook) = connect(&http, &base, &token, account).await;

    // A burst over every order (each announced twice), killed midway.
    let orders: Vec<u64> = live_orders(account);
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    // Requests that got no 202 (refused or cut by the kill).
    let unanswered = Arc::new(AtomicUsize::new(0));
    let mut burst = tokio::task::JoinSet::new();
    // Enough requests that the kill, right after the first few are accepted, lands while most
    // are still in flight (on any machine: 600 fsynced webhooks take far longer than a poll).
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        for &order in &orders {
            let (http, hook, accepted, unanswered) = (
                http.clone(),
                hook.clone(),
                accepted.clone(),
                unanswered.clone(),
            );
            burst.spawn(async move {
                let sent = http
                    .post(&hook)
                    .form(&[("orderId", order.to_string()), ("round", round.to_string())])
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status() == 202) {
                    accepted.lock().unwrap().insert(order);
                } else {
                    unanswered.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    wait_until(WAIT, "part of the burst to be accepted", || async {
        accepted.lock().unwrap().len() >= 10
    })
    .await;
    process.0.kill().unwrap(); // SIGKILL: no shutdown path runs
    process.0.wait().unwrap();
    while burst.join_next().await.is_some() {}
    let accepted = accepted.lock().unwrap().clone();
    let unanswered = unanswered.load(Ordering::Relaxed);
    assert!(!accepted.is_empty(), "part of the burst was accepted");
    assert!(
        unanswered > 0,
        "the kill landed mid-burst: all {} requests were answered 202",
        orders.len() * ROUNDS
    );

    // Restart on the same data directory: every accepted order becomes exactly one deal.
    let _restarted = start(dir.path(), port);
    ready(&http, &base).await;
    let deals: Vec<Value> = wait_for(WAIT, "every accepted webhook to become a deal", || async {
        let deals = deals_page(&http, &base, &token, &id).await?;
        let present: BTreeSet<u64> = deals
            .iter()
            .filter_map(|d| d["order_id"].as_u64())
            .collect();
        accepted.is_subset(&present).then_some(deals)
    })
    .await;
    let ids: Vec<u64> = deals
        .iter()
        .map(|d| d["order_id"].as_u64().unwrap())
        .collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "a deal listed twice");
    assert!(unique.iter().all(|o| orders.contains(o)));
    for order in unique.iter().take(20) {
        let deal: Value = http
            .get(format!("{base}/api/v1/integrations/{id}/deals/{order}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let history = deal["stage_history"].as_array().unwrap();
        let entries: BTreeSet<String> = history.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            entries.len(),
            history.len(),
            "stage history duplicated for {order}"
        );
    }
}

/// DESIGN §7.6 on Kafka (issue 17): after kill -9 of the process that holds the enricher's and
/// the projector's consumer group members, a restarted process is back at work — a webhook
/// sent after the restart visible as a deal — within 15 s of the kill, not after the default
/// 45 s `session.timeout.ms` during which the group waits for the dead member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_work_resumes_within_15_s_after_kill_9() {
    let broker = dealflow_testkit::Broker::start().await;
    let sim = Simulator::start(SimConfig::new(1, 20)).await.unwrap();
    let account = sim.account(0);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let prefix = format!("resume{}.", std::process::id());
    let env = |dir: &std::path::Path| {
        vec![
            ("DEALFLOW_DATA_DIR", dir.display().to_string()),
            ("DEALFLOW_LISTEN", format!("127.0.0.1:{port}")),
            ("DEALFLOW_CRM_ALLOW_HOSTS", "http://127.0.0.1:*".to_owned()),
            ("DEALFLOW_KAFKA_BROKERS", broker.bootstrap()),
            ("DEALFLOW_TOPIC_PREFIX", prefix.clone()),
        ]
    };
    let mut process = run_binary("all", &env(dir.path()));
    ready(&http, &base).await;
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    let (id, hook) = connect(&http, &base, &token, account).await;
    let orders: Vec<u64> = live_orders(account);
    let has_deal = |order: u64| {
        let (http, base, token, id) = (&http, &base, &token, &id);
        async move {
            deals_page(http, base, token, id)
                .await
                .is_some_and(|d| d.iter().any(|x| x["order_id"].as_u64() == Some(order)))
        }
    };
    // Work before the kill: the first order is a deal, so every group has its member.
    let sent = http
        .get(format!("{hook}?orderId={}", orders[0]))
        .send()
        .await;
    assert_eq!(sent.unwrap().status(), 202);
    wait_until(WAIT, "the first deal", || async {
        has_deal(orders[0]).await
    })
    .await;

    process.0.kill().unwrap(); // SIGKILL: the members never leave their groups
    process.0.wait().unwrap();
    let killed = std::time::Instant::now();
    let _restarted = run_binary("all", &env(dir.path()));
    wait_until(WAIT, "the restarted process to accept webhooks", || async {
        let sent = http
            .get(format!("{hook}?orderId={}", orders[1]))
            .send()
            .await;
        sent.is_ok_and(|r| r.status() == 202)
    })
    .await;
    wait_until(
        WAIT,
        "a webhook after the restart to become a deal",
        || async { has_deal(orders[1]).await },
    )
    .await;
    let resumed = killed.elapsed();
    println!("work resumed {:.1} s after kill -9", resumed.as_secs_f64());
    assert!(
        resumed < std::time::Duration::from_secs(15),
        "work resumed only {resumed:?} after kill -9 (DESIGN §7.6: within 15 s)"
    );
}
