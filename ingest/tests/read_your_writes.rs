//! Read your writes at the write edge (DESIGN §4), with ingest waiting on the projector's
//! consumer group as a separate ingest does: a settings write is answered only once the group
//! has committed past it; with nothing committing, every write answers
//! `503 read_model_behind` within the bound, and the write is on the bus all the same.
//! Each case runs on the embedded log and on Kafka (nisshi).

mod support;

use std::time::Duration;

use dealflow_shared::bus::{Consumer, Delivered};
use dealflow_shared::events::{Envelope, Event};
use dealflow_shared::visibility::ReadSide;
use dealflow_simulator::{SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};
use support::{API_TOKEN, Backend, Options, READ_SIDE_TIMEOUT, TestApp, WAIT};
use tokio::sync::mpsc;
use tokio::time::Instant;

const ALLOW_SIM: &str = "http://127.0.0.1:*";

/// An ingest that waits for the projector's group (which nothing joins unless the test does)
/// for at most `bound`.
async fn spawn(backend: &Backend, bound: Duration) -> (TestApp, SimHandle) {
    let sim = Simulator::start(SimConfig::new(1, 5)).await.unwrap();
    let options = Options {
        allow_hosts: &[ALLOW_SIM],
        read_side: ReadSide::ConsumerGroup(backend.topics.projector_group()),
        read_side_timeout: bound,
        ..Options::default()
    };
    let app = TestApp::spawn_with(backend, backend.bus.clone(), options).await;
    (app, sim)
}

fn connect_body(sim: &SimHandle) -> Value {
    json!({"crm_url": sim.account(0).url(), "api_key": sim.account(0).api_key(),
           "backfill_days": 0})
}

/// Asserts a `503 read_model_behind` that came after the bound, not long after it.
fn assert_behind(what: &str, (status, body): &(u16, Value), took: Duration) -> String {
    assert_eq!(*status, 503, "{what}: {body}");
    assert_eq!(body["error"]["code"], "read_model_behind", "{what}: {body}");
    assert!(
        took >= READ_SIDE_TIMEOUT && took < READ_SIDE_TIMEOUT + Duration::from_secs(3),
        "{what} answered after {took:?} (bound {READ_SIDE_TIMEOUT:?})"
    );
    body["error"]["message"].as_str().unwrap().to_owned()
}

async fn timed(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> ((u16, Value), Duration) {
    let started = Instant::now();
    let answer = app.send(method, path, body).await;
    (answer, started.elapsed())
}

async fn nothing_consuming_answers_read_model_behind(backend: Backend) {
    let (app, sim) = spawn(&backend, READ_SIDE_TIMEOUT).await;
    let (answer, took) = timed(
        &app,
        reqwest::Method::POST,
        "/integrations",
        Some(connect_body(&sim)),
    )
    .await;
    let message = assert_behind("create", &answer, took);

    // Saved all the same: on the bus, and the message names it so it is not created twice.
    let records = backend.read_all(&backend.topics.integrations()).await;
    assert_eq!(records.len(), 1);
    let envelope = Envelope::decode(&records[0].payload).unwrap();
    assert!(matches!(envelope.event, Event::IntegrationConfigured(_)));
    let id = envelope.integration_id.to_string();
    assert!(message.contains(&id), "{message}");
    assert!(message.contains("saved"), "{message}");

    let path = format!("/integrations/{id}");
    let (answer, took) = timed(
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"active": false})),
    )
    .await;
    let message = assert_behind("change", &answer, took);
    assert!(message.contains("saved"), "{message}");
    let resync = format!("{path}/resync");
    let (answer, took) = timed(
        &app,
        reqwest::Method::POST,
        &resync,
        Some(json!({"since": "2024-01-01"})),
    )
    .await;
    assert_behind("resync", &answer, took);
    let (answer, took) = timed(&app, reqwest::Method::DELETE, &path, None).await;
    let message = assert_behind("delete", &answer, took);
    assert!(message.contains("removed"), "{message}");

    let records = backend.read_all(&backend.topics.integrations()).await;
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| {
            Envelope::decode(&r.payload)
                .unwrap()
                .event
                .event_type()
                .as_str()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "IntegrationConfigured",
            "IntegrationConfigured",
            "IntegrationConfigured",
            "IntegrationRemoved"
        ]
    );
    app.stop().await;
}

/// Stands in for the projector: a member of its group that commits each record only when the
/// test says so, reporting every record it receives.
async fn stand_in(
    backend: &Backend,
) -> (
    mpsc::Receiver<Delivered>,
    mpsc::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut member = backend
        .bus
        .subscribe(
            &backend.topics.projector_group(),
            &[backend.topics.integrations()],
        )
        .await
        .unwrap();
    // Kafka assigns the partitions during the first polls.
    let deadline = Instant::now() + WAIT;
    while member.assignment().is_empty() {
        assert!(Instant::now() < deadline, "the stand-in got no partitions");
        assert!(
            member
                .poll(1, Duration::from_millis(100))
                .await
                .unwrap()
                .is_empty()
        );
    }
    let (seen_tx, seen) = mpsc::channel(8);
    let (commit, mut go) = mpsc::channel::<()>(8);
    let task = tokio::spawn(async move {
        loop {
            let batch = member.poll(10, Duration::from_millis(100)).await.unwrap();
            for record in batch {
                seen_tx.send(record.clone()).await.unwrap();
                if go.recv().await.is_none() {
                    return;
                }
                commit_one(&mut *member, &record).await;
            }
        }
    });
    (seen, commit, task)
}

async fn commit_one(member: &mut dyn Consumer, record: &Delivered) {
    member.store(record).unwrap();
    member.commit().await.unwrap();
}

async fn answered_once_the_group_commits_past_the_write(backend: Backend) {
    // A long bound: the stand-in's read and the pause below must fit well inside it.
    let bound = Duration::from_secs(10);
    let (app, sim) = spawn(&backend, bound).await;
    let (mut seen, commit, stand_in) = stand_in(&backend).await;
    let writing = {
        let request = app
            .http
            .post(app.api("/integrations"))
            .bearer_auth(API_TOKEN)
            .json(&connect_body(&sim));
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let record = tokio::time::timeout(WAIT, seen.recv())
        .await
        .unwrap()
        .unwrap();
    // The record is on the bus and read, but not committed: no answer yet. (A pause to see
    // that nothing happens; nothing waits on it to happen.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !writing.is_finished(),
        "answered before the read side had it"
    );
    let committed_at = Instant::now();
    commit.send(()).await.unwrap();
    let (status, body) = writing.await.unwrap();
    assert_eq!(status, 201, "{body}");
    // Answered on the commit, not at the bound.
    assert!(
        committed_at.elapsed() < bound / 2,
        "{:?}",
        committed_at.elapsed()
    );
    let committed = backend
        .bus
        .committed_offsets(
            &backend.topics.projector_group(),
            &backend.topics.integrations(),
        )
        .await
        .unwrap();
    assert!(
        committed.contains(&(record.partition, record.offset + 1)),
        "{committed:?}"
    );
    drop(commit);
    stand_in.abort();
    app.stop().await;
}

support::on_both_backends!(
    nothing_consuming_answers_read_model_behind,
    answered_once_the_group_commits_past_the_write,
);
