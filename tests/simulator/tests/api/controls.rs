//! The `/_sim` HTTP controls, injected faults and the command-line entry point.

use std::time::{Duration, Instant};

use dealflow_simulator::{ErrorBody, FaultAction, FaultRule, SimArgs};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::{client, get, history_since, last_history_id, live_orders, ok, sim};

async fn control(method: reqwest::Method, url: String, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = client().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn http_controls_drive_the_account() {
    let sim = sim(40, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let base = a.controls_url();
    let (status, info) = control(reqwest::Method::GET, base.clone(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["keys"][0]["key"], Value::String(a.api_key()));
    assert_eq!(info["timezone"], "Europe/Moscow");

    let since = last_history_id(a).await;
    let (status, created) = control(reqwest::Method::POST, format!("{base}/orders"), Some(json!({
        "status": "new",
        "items": [{ "name": "Чайник", "price": 2990, "quantity": 2 }, { "price": "100.50", "canceled": true }],
        "delivery_cost": 350,
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_u64().expect("id");
    let order = ok(a, &format!("api/v5/orders/{id}?by=id")).await["order"].clone();
    assert_eq!(order["summ"], json!(5980));
    assert_eq!(order["totalSumm"], json!(6330));

    let (status, body) = control(
        reqwest::Method::POST,
        format!("{base}/orders/{id}/status?source=api"),
        Some(json!({ "status": "client-confirmed" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], Value::Bool(true));
    let (status, body) = control(
        reqwest::Method::POST,
        format!("{base}/orders/{id}/edit"),
        Some(json!({ "delivery_cost": 0, "manager_id": null })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["history_entries"], 1,
        "no manager before, so only the cost changed"
    );
    let other = live_orders(a)[0]["id"].as_u64().expect("id");
    let (status, _) = control(
        reqwest::Method::POST,
        format!("{base}/orders/merge"),
        Some(json!({ "from": other, "into": id })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = control(
        reqwest::Method::POST,
        format!("{base}/orders/{id}/delete"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let fields: Vec<(String, bool)> = history_since(a, since)
        .await
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("field").to_owned(),
                e["deleted"] == Value::Bool(true),
            )
        })
        .collect();
    assert_eq!(fields.first(), Some(&("status".to_owned(), false)));
    assert!(fields.contains(&("delivery_cost".to_owned(), false)));
    assert_eq!(
        fields.iter().filter(|(_, deleted)| *deleted).count(),
        2,
        "{fields:?}"
    );

    // Errors name what went wrong.
    let (status, body) = control(
        reqwest::Method::POST,
        format!("{base}/orders/{id}/status"),
        Some(json!({ "status": "new" })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "order_removed");
    let (status, body) = control(
        reqwest::Method::POST,
        format!("{base}/orders/1/delete"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "unknown_order");
    let (status, body) = control(
        reqwest::Method::POST,
        format!("{base}/orders"),
        Some(json!({ "colour": "red" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_body");

    // Keys: revoke over HTTP, then restore.
    let (status, _) = control(reqwest::Method::POST, format!("{base}/keys/0/revoke"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(a, "api/credentials").await.0, StatusCode::FORBIDDEN);
    control(
        reqwest::Method::POST,
        format!("{base}/keys/0/restore"),
        None,
    )
    .await;
    assert_eq!(get(a, "api/credentials").await.0, StatusCode::OK);
    let (status, body) = control(
        reqwest::Method::PUT,
        format!("{base}/keys/0"),
        Some(json!({ "scopes": ["order_read"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get(a, "api/v5/settings").await.0, StatusCode::FORBIDDEN);

    let (status, counters) = control(reqwest::Method::GET, format!("{base}/counters"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        counters["requests"]["GET /api/v5/orders/history"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    );
    let (_, truth) = control(reqwest::Method::GET, format!("{base}/truth"), None).await;
    let removed = truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["id"].as_u64() == Some(other))
        .expect("merged order");
    assert_eq!(removed["merged_into"].as_u64(), Some(id));
}

#[tokio::test]
async fn injected_errors_latency_and_hangs() {
    let sim = sim(20, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    a.add_fault(FaultRule::next(
        "/api/v5/orders",
        2,
        FaultAction::Status {
            code: 503,
            body: ErrorBody::Html,
        },
    ));
    for _ in 0..2 {
        let (status, body) = get(a, "api/v5/orders").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.as_str().is_some_and(|b| b.starts_with('<')),
            "HTML body"
        );
    }
    assert_eq!(
        get(a, "api/v5/reference/statuses").await.0,
        StatusCode::OK,
        "other paths are untouched"
    );
    assert_eq!(
        get(a, "api/v5/orders").await.0,
        StatusCode::OK,
        "only the next two"
    );
    assert_eq!(a.counters().faults_injected, 2);

    // Over HTTP: a 500 with a JSON body, then latency.
    let (status, _) = control(reqwest::Method::POST, format!("{}/faults", a.controls_url()), Some(json!({
        "path_prefix": "/api/v5/users", "count": 1, "action": { "kind": "status", "code": 500, "body": "json" },
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = get(a, "api/v5/users").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["success"], Value::Bool(false));
    a.add_fault(FaultRule::next(
        "/api/",
        1,
        FaultAction::Latency { ms: 300 },
    ));
    let started = Instant::now();
    assert_eq!(get(a, "api/credentials").await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    a.add_fault(FaultRule::next("/api/credentials", 1, FaultAction::Hang));
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = quick
        .get(format!("{}api/credentials", a.url()))
        .header("X-API-KEY", a.api_key())
        .send()
        .await
        .expect_err("a hang times out");
    assert!(err.is_timeout(), "{err}");
    a.clear_faults();
    assert!(a.faults().is_empty());
    assert_eq!(get(a, "api/credentials").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_cli_entry_point_serves_until_cancelled() {
    // A free port for the first account (the second takes the next one).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let args = SimArgs {
        accounts: 1,
        orders: 10,
        seed: 1,
        listen_host: "127.0.0.1".parse().expect("ip"),
        base_port: port,
        timezone: chrono_tz::Asia::Almaty,
        currency: "KZT".into(),
        rate_limit: 10,
    };
    assert_eq!(args.config().accounts[0].currency, "KZT");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(dealflow_simulator::run(args, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        if let Ok(r) = client()
            .get(format!("http://127.0.0.1:{port}/_sim"))
            .send()
            .await
        {
            break r.json::<Value>().await.expect("JSON");
        }
        assert!(Instant::now() < deadline, "the simulator did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(info["timezone"], "Asia/Almaty");
    assert_eq!(info["currency"], "KZT");
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops in time")
        .expect("joined");
    assert!(result.is_ok(), "{result:?}");
}
