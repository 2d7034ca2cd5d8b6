//! The consumer: restarts resume from what the database says, a fresh or restored database
//! catches up from the log, poison records are dead-lettered, and the dead-letter cap halts.

use std::time::Duration;

use dealflow_shared::bus::{BusError, DeadLetterCap, HEADER_ERROR, HEADER_SOURCE_TOPIC};
use dealflow_shared::events::IntegrationId;
use dealflow_synthetic::{self as synthetic, Source, Spec};
use dealflow_testkit::wait_for;

use crate::support::*;

both!(restarts_and_a_fresh_database_catch_up_from_the_log);
async fn restarts_and_a_fresh_database_catch_up_from_the_log(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 51,
        integrations: 2,
        orders_per_integration: 30,
    });
    let (first, second) = stream.events.split_at(stream.events.len() / 2);
    bus.publish(first).await;
    let mut settings = bus.settings(&db);
    settings.batch_size = 37;
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    app.stop().await.unwrap();
    bus.publish(second).await;
    // Stopped part-way through, then started again.
    let app = App::spawn(settings.clone(), &bus).await;
    wait_for(WAIT, "some progress", || async {
        let applied: i64 = app.store.applied_offsets().await.unwrap().values().sum();
        (applied > 0).then_some(())
    })
    .await;
    app.stop().await.unwrap();
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    let reference = app.store.dump_tables().await.unwrap();
    app.stop().await.unwrap();

    // A fresh database under the same (already committed) consumer group starts over.
    let fresh = db.another().await;
    let mut fresh_settings = settings.clone();
    fresh_settings.database_url = fresh.url.clone();
    let app = App::spawn(fresh_settings.clone(), &bus).await;
    bus.wait_applied(&fresh_settings, &app.store).await;
    assert_same(&reference, &app.store.dump_tables().await.unwrap());
    app.stop().await.unwrap();
}

/// A database restored from an older copy is behind the group's committed offsets: the gap is
/// detected when the next record arrives, and the group replayed (applied records skipped),
/// nothing lost. (Until a record arrives the bus trait cannot tell; `replay` fixes it at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_older_database_catches_up() {
    let db = Db::sqlite().await;
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 52,
        integrations: 1,
        orders_per_integration: 30,
    });
    let (first, second) = stream.events.split_at(stream.events.len() / 2);
    bus.publish(first).await;
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    app.stop().await.unwrap();
    let backup = db.sqlite_path().with_extension("backup");
    std::fs::copy(db.sqlite_path(), &backup).unwrap();

    bus.publish(second).await;
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    let reference = app.store.dump_tables().await.unwrap();
    app.stop().await.unwrap();

    std::fs::copy(&backup, db.sqlite_path()).unwrap();
    for wal in ["read.db-wal", "read.db-shm"] {
        let _ = std::fs::remove_file(db.sqlite_path().with_file_name(wal));
    }
    let app = App::spawn(settings.clone(), &bus).await;
    let (source, last) = stream.events.last().unwrap().clone();
    bus.publish(&[(source, last)]).await;
    bus.wait_applied(&settings, &app.store).await;
    assert_same(
        &without_offsets(reference),
        &without_offsets(app.store.dump_tables().await.unwrap()),
    );
    app.stop().await.unwrap();
}

both!(poison_records_are_dead_lettered_and_the_cap_halts);
async fn poison_records_are_dead_lettered_and_the_cap_halts(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 53,
        integrations: 1,
        orders_per_integration: 3,
    });
    let id = stream.integrations[0].to_string();
    bus.send_raw(Source::Deals, &id, b"{not json").await;
    bus.publish(&stream.events).await;
    let unknown = br#"{"type":"DealRenamed","version":1,"id":"0190c1a4-4e5e-7a0b-8b1e-000000000001","integration_id":"0190c1a4-4e5e-7a0b-8b1e-000000000002","occurred_at":"2024-01-15T07:00:00Z","data":{}}"#;
    bus.send_raw(Source::Contacts, &id, unknown).await;
    let mut settings = bus.settings(&db);
    settings.dead_letter_cap = DeadLetterCap {
        max: 2,
        window: Duration::from_secs(600),
    };
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    // The partition kept flowing past the poison record.
    assert_eq!(
        app.ok(&format!("/integrations/{id}/deals")).await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let letters = read_topic(&bus, &bus.topics.dead_letter(), 2).await;
    let from = |topic: String| {
        letters
            .iter()
            .find(|l| l.header(HEADER_SOURCE_TOPIC) == Some(topic.as_bytes()))
            .unwrap()
    };
    assert_eq!(from(bus.topics.deals()).payload, b"{not json");
    let reason = from(bus.topics.contacts()).header(HEADER_ERROR).unwrap();
    assert!(String::from_utf8_lossy(reason).contains("DealRenamed"));

    // A third within the window: the consumer halts instead of draining the topic.
    bus.send_raw(Source::Deals, &IntegrationId::new().to_string(), b"\xff")
        .await;
    let stopped = app.stopped().await;
    assert!(
        matches!(
            stopped,
            Err(dealflow_projector::ProjectorError::Batch(
                dealflow_projector::BatchError::DeadLetter(BusError::DeadLetterCapReached { .. })
            ))
        ),
        "{stopped:?}"
    );
}

async fn read_topic(bus: &Bus, topic: &str, count: usize) -> Vec<dealflow_shared::bus::Delivered> {
    let group = format!("reader-{}", uuid::Uuid::now_v7().simple());
    let mut consumer = bus
        .bus
        .subscribe(&group, &[topic.to_owned()])
        .await
        .unwrap();
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while records.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        records.extend(
            consumer
                .poll(100, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    records
}

/// Under a steady trickle (a record every few milliseconds, each poll finding one or two) a
/// batch starts at least the linger (25 ms) after the previous one began, topped up with what
/// arrived: a few dozen batches for ~190 records, not one per record. Nothing is lost or
/// repeated on the way (the view equals one applied at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_steady_trickle_batches_linger_and_top_up() {
    let db = Db::sqlite().await;
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 58,
        integrations: 1,
        orders_per_integration: 30,
    });
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    let started = std::time::Instant::now();
    for event in &stream.events {
        bus.publish(std::slice::from_ref(event)).await;
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    let trickle = started.elapsed();
    bus.wait_applied(&settings, &app.store).await;
    let batches = app.metric("dealflow_projector_batch_records_count").await;
    let records = stream.events.len() as u64;
    // One batch per 25 ms of trickle, plus the first and a last one; without the linger it
    // was about one per record.
    let most = trickle.as_millis() as u64 / 25 + 10;
    assert!(
        batches <= most && batches < records / 2,
        "{batches} batches for {records} records over {trickle:?} (at most {most})"
    );
    let view = app.store.dump_tables().await.unwrap();
    app.stop().await.unwrap();

    let fresh = db.another().await;
    let mut at_once = settings.clone();
    at_once.database_url = fresh.url.clone();
    let app = App::spawn(at_once.clone(), &bus).await;
    bus.wait_applied(&at_once, &app.store).await;
    assert_same(&view, &app.store.dump_tables().await.unwrap());
    app.stop().await.unwrap();
}
