//! Behaviour specific to the embedded log.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dealflow_shared::bus::{BusError, EmbeddedLog, EventBus, OutRecord, Retention, TopicSpec};
use dealflow_testkit::unique_prefix;
use tokio::time::Instant;

use crate::support::{Harness, consume, group, payload_set, publish_numbered, text};

async fn open(h: &Harness) -> EmbeddedLog {
    let Harness::Embedded { file, .. } = h else {
        unreachable!()
    };
    EmbeddedLog::open(file).await.unwrap()
}

/// A group has one active member; a second is refused until the first is dropped.
#[tokio::test]
async fn second_member_of_a_group_is_refused() {
    let h = Harness::embedded().await;
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["solo"]).await).unwrap();
    let group = group();
    let first = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(first.assignment(), vec![(topic.clone(), 0)]);
    let err = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::GroupBusy(_)), "{err:?}");
    bus.subscribe(&crate::support::group(), std::slice::from_ref(&topic))
        .await
        .unwrap();
    drop(first);
    bus.subscribe(&group, &[topic]).await.unwrap();
}

/// Everything acknowledged, and every committed offset, survives closing and reopening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_acked_records_and_offsets() {
    let h = Harness::embedded().await;
    let group = group();
    let (topic, acked) = {
        let bus = h.bus().await;
        let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["durable"]).await).unwrap();
        let mut tasks = Vec::new();
        for p in 0..8 {
            let (bus, topic) = (Arc::clone(&bus), topic.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..25 {
                    let payload = format!("p{p}-{i}");
                    bus.publish(
                        &topic,
                        vec![OutRecord::new(format!("p{p}"), payload.clone())],
                    )
                    .await
                    .unwrap();
                    acked.push(payload);
                }
                acked
            }));
        }
        let mut acked = BTreeSet::new();
        for task in tasks {
            acked.extend(task.await.unwrap());
        }
        let mut consumer = bus
            .subscribe(&group, std::slice::from_ref(&topic))
            .await
            .unwrap();
        consume(&mut *consumer, 50, true).await;
        (topic, acked)
    };
    let bus = h.bus().await;
    assert_eq!(bus.end_offsets(&topic).await.unwrap(), vec![(0, 200)]);
    let mut fresh = bus
        .subscribe(&crate::support::group(), std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(payload_set(&consume(&mut *fresh, 200, false).await), acked);
    let mut resumed = bus.subscribe(&group, &[topic]).await.unwrap();
    let rest = consume(&mut *resumed, 150, false).await;
    assert_eq!(rest.first().map(|r| r.offset), Some(50));
}

/// Concurrent publishers share transactions (one fsync for many publishes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_share_commits() {
    const TASKS: usize = 32;
    const EACH: usize = 20;
    let h = Harness::embedded().await;
    let log = open(&h).await;
    let [topic] = <[String; 1]>::try_from(h.topics(&log, &["group-commit"]).await).unwrap();
    let before = log.stats();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (log, topic) = (log.clone(), topic.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let record = OutRecord::new(format!("t{t}"), format!("{i}"));
                log.publish(&topic, vec![record]).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let after = log.stats();
    let publishes = after.publish_requests - before.publish_requests;
    let transactions = after.transactions - before.transactions;
    eprintln!(
        "{publishes} concurrent single-record publishes in {elapsed:?} with {transactions} transactions"
    );
    assert_eq!(publishes, u64::try_from(TASKS * EACH).unwrap());
    assert!(
        transactions < publishes / 2,
        "{transactions} transactions for {publishes} publishes: no group commit"
    );
    assert_eq!(log.end_offsets(&topic).await.unwrap(), vec![(0, 640)]);
}

/// Compaction keeps the latest record per key; expiry drops old records; offsets never
/// repeat afterwards.
#[tokio::test]
async fn retention_compacts_and_expires() {
    let h = Harness::embedded().await;
    let log = open(&h).await;
    let prefix = unique_prefix();
    let (compacted, daily) = (format!("{prefix}compacted"), format!("{prefix}daily"));
    log.ensure_topics(&[
        TopicSpec::new(&compacted, 1, Retention::Compacted),
        TopicSpec::new(&daily, 1, Retention::Days(1)),
    ])
    .await
    .unwrap();
    let records = [("a", "a1"), ("b", "b1"), ("a", "a2")];
    let records = records
        .iter()
        .map(|(k, v)| OutRecord::new(*k, *v))
        .collect();
    log.publish(&compacted, records).await.unwrap();
    publish_numbered(&log, &daily, "d", 3).await;

    let report = log.enforce_retention().await.unwrap();
    assert_eq!((report.compacted, report.expired), (1, 0));
    let mut reader = log
        .subscribe(&group(), std::slice::from_ref(&compacted))
        .await
        .unwrap();
    let kept: Vec<String> = consume(&mut *reader, 2, false)
        .await
        .iter()
        .map(text)
        .collect();
    assert_eq!(kept, ["b1", "a2"]);

    let later = SystemTime::now() + Duration::from_secs(2 * 86_400);
    let report = log.enforce_retention_at(later).await.unwrap();
    assert_eq!(report.expired, 3);
    let next = log
        .publish(&daily, vec![OutRecord::new("k", "late")])
        .await
        .unwrap();
    assert_eq!(next[0].offset, 3);
    let mut reader = log.subscribe(&group(), &[daily]).await.unwrap();
    let left = consume(&mut *reader, 1, false).await;
    assert_eq!((left[0].offset, text(&left[0])), (3, "late".to_owned()));
}

/// A second open of a file in use fails with a clear error instead of corrupting it.
#[tokio::test]
async fn second_open_of_the_same_file_is_refused() {
    let h = Harness::embedded().await;
    let _first = open(&h).await;
    let Harness::Embedded { file, .. } = &h else {
        unreachable!()
    };
    let err = EmbeddedLog::open(file).await.unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
}
