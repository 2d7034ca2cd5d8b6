//! The 10 requests/s limit: bursts get 503 with the documented body, the counters agree,
//! and a client that keeps under the limit never sees one.

use std::time::Duration;

use dealflow_simulator::{AccountConfig, ErrorBody, SimConfig};
use futures::future::join_all;
use reqwest::StatusCode;

use crate::common::{client, fixture, start};

async fn limited_sim(body: ErrorBody) -> dealflow_simulator::SimHandle {
    let account = AccountConfig {
        rate_limit_body: body,
        ..AccountConfig::with_orders(20)
    };
    start(SimConfig {
        accounts: vec![account],
        ..SimConfig::new(0, 0)
    })
    .await
}

#[tokio::test]
async fn a_burst_of_30_gets_503s_and_the_counters_agree() {
    let sim = limited_sim(ErrorBody::Json).await;
    let a = sim.account(0);
    let http = client();
    let url = format!("{}api/v5/reference/statuses", a.url());
    let key = a.api_key();
    let calls = (0..30).map(|_| {
        let request = http.get(&url).header("X-API-KEY", &key);
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status();
            (status, response.text().await.expect("body"))
        }
    });
    let results = join_all(calls).await;
    let rejected: Vec<&String> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(_, b)| b)
        .collect();
    let accepted = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert!(!rejected.is_empty(), "a burst of 30 must hit the limit");
    assert!((1..=10).contains(&accepted), "{accepted} accepted");
    assert_eq!(rejected.len() + accepted, 30);
    for body in &rejected {
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON 503 body");
        assert_eq!(body, fixture("error-rate-limit.json"));
    }
    let counters = a.counters();
    assert_eq!(counters.total, 30);
    assert_eq!(counters.rate_limited, rejected.len() as u64);
    assert_eq!(
        counters.responses.get("503").copied(),
        Some(rejected.len() as u64)
    );
    assert_eq!(
        counters
            .requests
            .get("GET /api/v5/reference/statuses")
            .copied(),
        Some(30)
    );
    assert!(counters.max_per_second > 10, "{}", counters.max_per_second);
}

#[tokio::test]
async fn html_body_when_configured() {
    let sim = limited_sim(ErrorBody::Html).await;
    let a = sim.account(0);
    let http = client();
    let url = format!("{}api/credentials", a.url());
    let calls = (0..15).map(|_| http.get(&url).header("X-API-KEY", a.api_key()).send());
    let responses = join_all(calls).await;
    let rejected = responses
        .into_iter()
        .map(|r| r.expect("sent"))
        .find(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .expect("some 503");
    let content_type = rejected.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"));
    assert!(
        rejected
            .text()
            .await
            .expect("body")
            .contains("503 Service Temporarily Unavailable")
    );
}

#[tokio::test]
async fn a_paced_client_never_sees_503() {
    let sim = limited_sim(ErrorBody::Json).await;
    let a = sim.account(0);
    let http = client();
    let mut ticker = tokio::time::interval(Duration::from_millis(125));
    // A slow response must not make the ticker catch up with a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..14 {
        ticker.tick().await;
        let response = http
            .get(format!("{}api/v5/orders?limit=20", a.url()))
            .header("X-API-KEY", a.api_key())
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let counters = a.counters();
    assert_eq!(counters.rate_limited, 0);
    assert!(counters.max_per_second <= 10, "{}", counters.max_per_second);
}
