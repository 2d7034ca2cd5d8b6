//! The webhook against a real bus: every accepted form gives 202 and exactly one
//! `OrderChanged`; every bad form gives its documented status and nothing on the bus; a bus
//! that cannot acknowledge gives 503; a second ingest serves what the first one knows.
//! Each case runs on the embedded log and on Kafka (nisshi).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dealflow_shared::bus::{
    BusError, Consumer, EventBus, GroupStart, OutRecord, Position, TopicSpec,
};
use dealflow_shared::events::{ChangeSource, Event};
use dealflow_testkit::{Storage, unpooled_client};
use support::{Backend, TestApp, error_code};

async fn accepted_forms(backend: Backend) {
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let id = backend.seed_integration(true).await;
    let hook = app.webhook_url(id).await;
    let http = &app.http;
    let requests = vec![
        (101, http.get(format!("{hook}?orderId=101"))),
        (102, http.post(format!("{hook}?id=102"))),
        (103, http.post(&hook).form(&[("id", "103")])),
        (
            104,
            http.post(&hook)
                .form(&[("orderId", "104"), ("site", "shop")]),
        ),
        (
            105,
            http.post(&hook).json(&serde_json::json!({"orderId": 105})),
        ),
        (106, http.put(&hook).json(&serde_json::json!({"id": "106"}))),
        (
            107,
            http.get(&hook)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("orderId=107"),
        ),
        (
            108,
            http.post(format!("{hook}?orderId=108"))
                .form(&[("orderId", "108")]),
        ),
    ];
    let mut expected = Vec::new();
    for (order_id, request) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 202, "order {order_id}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap(),
            serde_json::json!({"accepted": true})
        );
        expected.push(order_id);
    }
    let changes = backend.order_changes().await;
    let mut seen: Vec<u64> = changes
        .iter()
        .map(|e| {
            assert_eq!(e.integration_id, id);
            match &e.event {
                Event::OrderChanged(c) => {
                    assert_eq!(c.source, ChangeSource::Webhook);
                    c.order_id
                }
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen, expected,
        "exactly one OrderChanged per accepted webhook"
    );
    app.stop().await;
}

async fn refused_forms(backend: Backend) {
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let active = backend.seed_integration(true).await;
    let inactive = backend.seed_integration(false).await;
    let hook = app.webhook_url(active).await;
    let inactive_hook = app.webhook_url(inactive).await;
    let http = &app.http;
    // A token for the right integration with one character changed: forged.
    let mut forged = hook.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let cases = vec![
        ("missing id", http.post(&hook), 400, "invalid_order_id"),
        (
            "zero",
            http.get(format!("{hook}?orderId=0")),
            400,
            "invalid_order_id",
        ),
        (
            "negative",
            http.post(&hook).form(&[("id", "-5")]),
            400,
            "invalid_order_id",
        ),
        (
            "text",
            http.post(&hook)
                .json(&serde_json::json!({"orderId": "abc"})),
            400,
            "invalid_order_id",
        ),
        (
            "ambiguous",
            http.post(format!("{hook}?orderId=1"))
                .form(&[("orderId", "2")]),
            400,
            "invalid_order_id",
        ),
        (
            "bad json",
            http.post(&hook)
                .header("content-type", "application/json")
                .body("{"),
            400,
            "invalid_order_id",
        ),
        (
            "unknown token",
            http.get(format!("{}/hooks/retailcrm/nope?orderId=1", app.base)),
            404,
            "unknown_integration",
        ),
        (
            "forged token",
            http.get(format!("{forged}?orderId=1")),
            404,
            "unknown_integration",
        ),
        (
            "inactive",
            http.get(format!("{inactive_hook}?orderId=1")),
            409,
            "integration_inactive",
        ),
        (
            "too large",
            // The server may close the connection of a body it refuses unread: this request
            // gets a connection of its own, so the next request never gets the closed one.
            unpooled_client()
                .post(format!("{hook}?orderId=1"))
                .header("content-type", "text/plain")
                .body("x".repeat(64 * 1024 + 1)),
            413,
            "payload_too_large",
        ),
    ];
    for (name, request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (status, code.to_string()),
            "{name}"
        );
    }
    assert!(
        backend.order_changes().await.is_empty(),
        "nothing reaches the bus"
    );
    // Exactly 64 KiB is still accepted.
    let mut body = "orderId=9&pad=".to_string();
    body.push_str(&"x".repeat(64 * 1024 - body.len()));
    let response = http
        .post(&hook)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.stop().await;
}

async fn second_ingest_serves_state_from_the_topic(backend: Backend) {
    let first = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let id = backend.seed_integration(true).await;
    let hook_first = first.webhook_url(id).await;
    let second = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    // Known at once: the second process read the topic to its end before serving.
    let (status, body) = second.get_json(&format!("/integrations/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let hook_second = hook_first.replace(&first.base, &second.base);
    let response = second
        .http
        .get(format!("{hook_second}?orderId=77"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // Switching it off through the first is seen by the second.
    let response = first
        .http
        .patch(first.api(&format!("/integrations/{id}")))
        .bearer_auth(support::API_TOKEN)
        .json(&serde_json::json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Until the change arrives through the topic the second ingest still accepts; every 202 is
    // one record, every 409 none.
    let accepted = std::sync::atomic::AtomicUsize::new(1);
    dealflow_testkit::wait_until(
        support::WAIT,
        "the second ingest to see the change",
        || async {
            let response = second
                .http
                .get(format!("{hook_second}?orderId=78"))
                .send()
                .await
                .unwrap();
            if response.status() == 202 {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            response.status() == 409
        },
    )
    .await;
    assert_eq!(
        backend.order_changes().await.len(),
        accepted.load(Ordering::SeqCst)
    );
    first.stop().await;
    second.stop().await;
}

support::on_both_backends!(
    accepted_forms,
    refused_forms,
    second_ingest_serves_state_from_the_topic
);

/// The real embedded log behind a switch that makes `publish` fail as an unwritable disk would
/// (the tests run as root, so file permissions cannot make the log unwritable).
#[derive(Debug)]
struct Unwritable {
    inner: Arc<dyn EventBus>,
    failing: AtomicBool,
}

#[async_trait]
impl EventBus for Unwritable {
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError> {
        self.inner.ensure_topics(specs).await
    }
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, BusError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(BusError::Fatal {
                message: "disk I/O error".into(),
                source: None,
            });
        }
        self.inner.publish(topic, records).await
    }
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.subscribe(group, topics).await
    }
    async fn reset_group(
        &self,
        group: &str,
        topics: &[String],
        to: GroupStart,
        only: Option<&[i32]>,
    ) -> Result<(), BusError> {
        self.inner.reset_group(group, topics, to, only).await
    }
    async fn end_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
        self.inner.end_offsets(topic).await
    }
    async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, i64)>, BusError> {
        self.inner.committed_offsets(group, topic).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_log_unwritable_answers_503_then_recovers() {
    let backend = Backend::embedded().await;
    let bus = Arc::new(Unwritable {
        inner: backend.bus.clone(),
        failing: AtomicBool::new(false),
    });
    let app = TestApp::spawn(&backend, bus.clone(), &[]).await;
    let id = backend.seed_integration(true).await;
    let hook = app.webhook_url(id).await;
    bus.failing.store(true, Ordering::SeqCst);
    let response = app
        .http
        .get(format!("{hook}?orderId=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (503, "broker_unavailable".into())
    );
    assert!(backend.order_changes().await.is_empty());
    bus.failing.store(false, Ordering::SeqCst);
    let response = app
        .http
        .get(format!("{hook}?orderId=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let changes = backend.order_changes().await;
    assert_eq!(changes.len(), 1);
    assert!(matches!(&changes[0].event, Event::OrderChanged(c) if c.order_id == 2));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_down_answers_503_then_recovers() {
    let mut backend = Backend::kafka_with(Storage::Sqlite).await;
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let id = backend.seed_integration(true).await;
    let hook = app.webhook_url(id).await;
    assert_eq!(
        app.http
            .get(format!("{hook}?orderId=1"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );

    backend.broker.as_mut().unwrap().stop();
    let response = app
        .http
        .get(format!("{hook}?orderId=2"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (503, "broker_unavailable".into())
    );

    backend.broker.as_mut().unwrap().restart().await;
    dealflow_testkit::wait_until(support::WAIT, "ingest to accept again", || async {
        let response = app
            .http
            .get(format!("{hook}?orderId=3"))
            .send()
            .await
            .unwrap();
        response.status() == 202
    })
    .await;
    let ids: Vec<u64> = backend
        .order_changes()
        .await
        .iter()
        .filter_map(|e| match &e.event {
            Event::OrderChanged(c) => Some(c.order_id),
            _ => None,
        })
        .collect();
    assert!(ids.contains(&1) && ids.contains(&3), "{ids:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_webhooks_by_result_and_label_routes_not_tokens() {
    let backend = Backend::embedded().await;
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let id = backend.seed_integration(true).await;
    let hook = app.webhook_url(id).await;
    let token = hook.rsplit('/').next().unwrap().to_string();
    for query in ["orderId=1", "orderId=2", "orderId=x"] {
        app.http
            .get(format!("{hook}?{query}"))
            .send()
            .await
            .unwrap();
    }
    app.http
        .get(format!("{}/hooks/retailcrm/unknown?orderId=1", app.base))
        .send()
        .await
        .unwrap();
    let text = app.metrics_text().await;
    assert!(
        text.contains(r#"dealflow_webhooks_total{result="accepted"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dealflow_webhooks_total{result="invalid_order_id"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dealflow_webhooks_total{result="unknown_integration"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/hooks/retailcrm/{token}""#),
        "{text}"
    );
    assert!(
        text.contains("dealflow_bus_publish_duration_seconds_count"),
        "{text}"
    );
    assert!(
        !text.contains(&token) && !text.contains("unknown?"),
        "no token in any label"
    );
    app.stop().await;
}
