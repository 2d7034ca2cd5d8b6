//! `dealflow sim` end to end: the command serves a data set that the shared RetailCRM client
//! reads back completely and consistently (issue 2, "Done when").
//!
//! Runs the real binary, reads the account URL and key it prints, then walks every endpoint
//! dealflow uses through the client, within the client's budget.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use dealflow_shared::retailcrm::models::OrderCustomer;
use dealflow_shared::retailcrm::{
    Budgets, ClientOptions, HistoryFilter, OrdersFilter, PageLimit, RetailCrmClient,
    RetailCrmError, time,
};
use secrecy::SecretString;

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dealflow sim` and returns the first account's URL and API key.
fn start_sim(orders: usize) -> (Sim, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dealflow"))
        .args([
            "sim",
            "--accounts",
            "1",
            "--orders",
            &orders.to_string(),
            "--base-port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dealflow sim starts");
    let stdout = child.stdout.take().unwrap();
    let sim = Sim(child);
    // Keep reading in the background: closing the pipe would kill the simulator on its next
    // line of output.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("account 0: ") {
                let field = |name: &str| {
                    rest.split_whitespace()
                        .find_map(|f| f.strip_prefix(&format!("{name}=")))
                        .map(str::to_string)
                };
                let _ = tx.send((field("url"), field("api_key")));
            }
        }
    });
    let (url, key) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("dealflow sim printed its first account");
    (
        sim,
        url.expect("url= in the account line"),
        key.expect("api_key= in the account line"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_the_whole_simulated_account() {
    let (_sim, url, key) = start_sim(120);
    let budgets = Budgets::default();
    let client = RetailCrmClient::new(
        &url.parse().unwrap(),
        SecretString::from(key),
        &budgets,
        &ClientOptions::default(),
    )
    .unwrap();

    let credentials = client.credentials().await.unwrap();
    assert!(credentials.has_full_site_access());
    for scope in ["order_read", "customer_read", "reference_read", "user_read"] {
        assert!(credentials.has_scope(scope), "{scope}");
    }
    let settings = client.settings().await.unwrap();
    let tz = settings
        .time_zone()
        .unwrap()
        .expect("the account has a timezone");
    let statuses = client.statuses().await.unwrap();
    let groups = client.status_groups().await.unwrap();
    let sites = client.sites().await.unwrap();
    assert!(sites.len() >= 2, "several shops");
    let group_codes: Vec<&str> = groups.keys().map(String::as_str).collect();
    for group in [
        "new",
        "approval",
        "assembling",
        "delivery",
        "complete",
        "cancel",
    ] {
        assert!(group_codes.contains(&group), "group {group}");
    }
    assert!(
        statuses.values().any(|s| !s.active),
        "an inactive status exists"
    );

    // Every order, page by page, 100 at a time.
    let mut orders = Vec::new();
    let mut page = 1;
    loop {
        let filter = OrdersFilter {
            limit: PageLimit::Hundred,
            page: Some(page),
            ..OrdersFilter::default()
        };
        let result = client.orders(&filter).await.unwrap();
        orders.extend(result.orders);
        if page >= result.pagination.total_page_count {
            assert_eq!(orders.len() as u64, result.pagination.total_count);
            break;
        }
        page += 1;
    }
    // Exactly the live orders of the simulator's truth (some generated orders are deleted or
    // merged, and those are gone from the list as in the real API).
    let truth: serde_json::Value = reqwest::get(format!("{url}_sim/truth"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut live: Vec<i64> = truth["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["deleted"] == false)
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    live.sort();
    let mut listed: Vec<i64> = orders.iter().map(|o| o.id).collect();
    listed.sort();
    assert_eq!(listed, live);
    assert!(listed.len() >= 100);

    let mut corporate = 0;
    for order in &orders {
        let status = order.status.as_deref().unwrap();
        let group = &statuses
            .get(status)
            .unwrap_or_else(|| panic!("unknown status {status}"))
            .group;
        assert!(
            groups.contains_key(group.as_str()),
            "group {group} of {status}"
        );
        assert!(sites.contains_key(order.site.as_deref().unwrap()));
        let created = order.created_at.expect("createdAt");
        // Naive local times convert to UTC without loss.
        let utc = time::to_utc(created, tz);
        assert_eq!(utc.with_timezone(&tz).naive_local(), created);
        assert!(order.total_summ.is_some());
        if let Some(OrderCustomer::Corporate(_)) = &order.customer {
            corporate += 1;
        }
    }
    assert!(corporate > 0, "some orders are corporate");

    // The same orders by id, 100 per call, and one by id.
    let ids: Vec<i64> = orders.iter().take(100).map(|o| o.id).collect();
    let by_ids = client
        .orders(&OrdersFilter {
            ids: ids.clone(),
            limit: PageLimit::Hundred,
            ..OrdersFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_ids.orders.len(), 100);
    let one = client.order_by_id(ids[0]).await.unwrap();
    assert_eq!(one.id, ids[0]);
    assert!(matches!(
        client.order_by_id(987_654_321).await,
        Err(RetailCrmError::NotFound { .. })
    ));

    // Managers resolve: every manager of these orders is either the user with that id or,
    // for a user deleted since (the data set has some), `Not found`; most resolve. An id no
    // user ever had is `Not found`.
    let managers: std::collections::BTreeSet<i64> =
        orders.iter().filter_map(|o| o.manager_id).collect();
    assert!(managers.len() >= 2, "orders have several managers");
    let mut resolved = 0;
    for &manager in &managers {
        match client.user(manager).await {
            Ok(user) => {
                assert_eq!(user.id, manager);
                resolved += 1;
            }
            Err(RetailCrmError::NotFound { .. }) => {}
            Err(other) => panic!("user {manager}: {other}"),
        }
    }
    assert!(
        resolved * 2 > managers.len(),
        "{resolved} of {} managers resolve",
        managers.len()
    );
    assert!(matches!(
        client.user(987_654_321).await,
        Err(RetailCrmError::NotFound { .. })
    ));
    for order in orders.iter().take(10) {
        match &order.customer {
            Some(OrderCustomer::Individual(c)) => {
                client.customer(c.id).await.unwrap();
            }
            Some(OrderCustomer::Corporate(c)) => {
                client.customer_corporate(c.id).await.unwrap();
            }
            _ => {}
        }
    }

    // History: every order was created with a history record; sinceId walks forward.
    let first = client
        .orders_history(&HistoryFilter::default())
        .await
        .unwrap();
    assert!(!first.history.is_empty());
    let next = client
        .orders_history(&HistoryFilter {
            since_id: first.last_id(),
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    assert!(next.history.iter().all(|e| Some(e.id) > first.last_id()));

    // Everything went through one budget and the simulator never had to refuse.
    let stats = client.budget().stats();
    assert!(stats.acquired >= 10);
}
