//! Poison on every topic the projector reads (issue 10): bytes that are not an envelope and a
//! well-formed envelope of a type the topic does not carry (DESIGN §6) each land in the
//! dead-letter topic with the source topic, partition, offset, stage and reason in headers,
//! while the later records of the same partition are applied; a burst of poison above the
//! dead-letter cap stops the consumer with an error instead of draining the topic.

use std::time::Duration;

use dealflow_shared::bus::{
    BusError, DeadLetterCap, Delivered, HEADER_ERROR, HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC, HEADER_STAGE, OutRecord,
};
use dealflow_shared::events::{Envelope, Event, EventType};
use dealflow_synthetic::{self as synthetic, Spec};

use crate::support::*;

fn header(record: &Delivered, name: &str) -> String {
    String::from_utf8_lossy(record.header(name).unwrap_or_else(|| panic!("no {name}"))).into_owned()
}

async fn read_all(bus: &Bus, topic: &str) -> Vec<Delivered> {
    let total: i64 = bus
        .bus
        .end_offsets(topic)
        .await
        .unwrap()
        .iter()
        .map(|(_, end)| end)
        .sum();
    let group = format!("reader-{}", uuid::Uuid::now_v7().simple());
    let mut consumer = bus
        .bus
        .subscribe(&group, &[topic.to_owned()])
        .await
        .unwrap();
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while (records.len() as i64) < total {
        assert!(tokio::time::Instant::now() < deadline, "reading {topic}");
        records.extend(
            consumer
                .poll(500, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_every_topic_is_dead_lettered_and_a_burst_halts() {
    let db = Db::sqlite().await;
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 71,
        integrations: 1,
        orders_per_integration: 3,
    });
    let id = stream.integrations[0];
    let key = id.to_string();
    let sample = |ty: EventType| {
        stream
            .events
            .iter()
            .find(|(_, e)| e.event.event_type() == ty)
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    // A deal that, were it applied from the wrong topic, would show up in the API.
    let stray_deal = |n: u64| {
        let mut envelope = sample(EventType::DealUpserted);
        if let Event::DealUpserted(d) = &mut envelope.event {
            d.order_id = 990_000 + n;
        }
        Envelope::new(id, envelope.event)
    };
    let topics = [
        bus.topics.integrations(),
        bus.topics.order_changed(),
        bus.topics.deals(),
        bus.topics.contacts(),
        bus.topics.funnels(),
        bus.topics.health(),
        bus.topics.sync_state(),
    ];
    for (n, topic) in topics.iter().enumerate() {
        let wrong = if *topic == bus.topics.deals() {
            Envelope::new(id, sample(EventType::ContactUpserted).event)
        } else {
            stray_deal(n as u64)
        };
        let records = vec![
            OutRecord::new(key.clone(), b"{not an envelope".to_vec()),
            OutRecord::new(key.clone(), wrong.encode()),
        ];
        bus.bus.publish(topic, records).await.unwrap();
    }
    // The later records of the same partitions (same key).
    bus.publish(&stream.events).await;

    let poison = 2 * topics.len();
    let mut settings = bus.settings(&db);
    settings.dead_letter_cap = DeadLetterCap {
        max: poison,
        window: Duration::from_secs(600),
    };
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;

    let deals = app.ok(&format!("/integrations/{key}/deals")).await;
    let ids: Vec<u64> = deals["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["order_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "only the deals topic's deals: {ids:?}");
    assert!(ids.iter().all(|id| *id < 990_000), "{ids:?}");

    let letters = read_all(&bus, &bus.topics.dead_letter()).await;
    assert_eq!(letters.len(), poison);
    for topic in &topics {
        let from: Vec<&Delivered> = letters
            .iter()
            .filter(|l| header(l, HEADER_SOURCE_TOPIC) == *topic)
            .collect();
        assert_eq!(from.len(), 2, "{topic}");
        let source = read_all(&bus, topic).await;
        for letter in &from {
            assert_eq!(header(letter, HEADER_STAGE), "projector.decode");
            assert_eq!(letter.key.as_deref(), Some(key.as_str()));
            let partition: i32 = header(letter, HEADER_SOURCE_PARTITION).parse().unwrap();
            let offset: i64 = header(letter, HEADER_SOURCE_OFFSET).parse().unwrap();
            let original = source
                .iter()
                .find(|r| r.partition == partition && r.offset == offset)
                .expect("the headers point at the original");
            assert_eq!(letter.payload, original.payload);
        }
        let reasons: Vec<String> = from.iter().map(|l| header(l, HEADER_ERROR)).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("unexpected event type") && r.contains(topic.as_str())),
            "{topic}: {reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| !r.contains("unexpected event type")),
            "{topic}: {reasons:?}"
        );
    }

    // A burst of poison above the cap: the consumer stops loudly, the dead-letter topic holds
    // at most the cap's worth, and the rest of the burst stays unconsumed on its topic.
    let burst: Vec<OutRecord> = (0..50)
        .map(|i| OutRecord::new(key.clone(), format!("poison {i}").into_bytes()))
        .collect();
    bus.bus.publish(&bus.topics.deals(), burst).await.unwrap();
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
    let letters = read_all(&bus, &bus.topics.dead_letter()).await;
    assert!(
        letters.len() <= poison + 1,
        "{} dead letters: the burst was drained",
        letters.len()
    );
}

/// A poison record dead-lettered, then met again because the projector crashed before its
/// transaction committed (a second projector over an empty store stands for the restarted
/// one): the topic holds two copies, and they are one letter — same deterministic identity —
/// for every reader that counts letters as DESIGN §6 says (issue 17).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_one_letter_per_stage_across_a_crash() {
    let bus = Bus::embedded().await;
    let key = dealflow_shared::events::IntegrationId::new().to_string();
    bus.bus
        .publish(
            &bus.topics.deals(),
            vec![OutRecord::new(key, b"{poison across a crash".to_vec())],
        )
        .await
        .unwrap();
    let records = read_all(&bus, &bus.topics.deals()).await;
    assert_eq!(records.len(), 1);
    for db in [Db::sqlite().await, Db::sqlite().await] {
        let (projector, _) = projector(&bus, &db).await;
        projector.apply_batch(&records).await.unwrap();
    }
    let copies = read_all(&bus, &bus.topics.dead_letter()).await;
    assert_eq!(
        copies.len(),
        2,
        "the redelivery dead-lettered the record again"
    );
    let letters = dealflow_shared::bus::distinct_letters(copies);
    assert_eq!(letters.len(), 1, "two copies, one letter");
    let poison = &records[0];
    assert_eq!(
        header(&letters[0], dealflow_shared::bus::HEADER_LETTER_ID),
        dealflow_shared::bus::letter_id(
            &poison.topic,
            poison.partition,
            poison.offset,
            "projector.decode"
        )
    );
}
