//! The cases every backend must pass.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dealflow_shared::bus::{
    BusError, DeadLetterCap, DeadLetters, GroupStart, HEADER_ERROR, HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC, HEADER_STAGE, OutRecord, Retention, TopicSpec,
};
use dealflow_testkit::unique_prefix;
use tokio::time::Instant;

use crate::support::{
    Harness, consume, group, payload_set, publish_numbered, publish_sentinels, read_to_sentinels,
    text,
};

/// Keys, payloads and headers (repeated names, empty values) arrive intact, at the published
/// positions.
pub(crate) async fn records_round_trip(h: Harness) {
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["rt"]).await).unwrap();
    let records = vec![
        OutRecord::new("a", "first")
            .with_header("h", "1")
            .with_header("h", "2")
            .with_header("empty", ""),
        OutRecord::new("b", vec![0_u8, 159, 255]),
    ];
    let positions = bus.publish(&topic, records.clone()).await.unwrap();
    let mut consumer = bus
        .subscribe(&group(), std::slice::from_ref(&topic))
        .await
        .unwrap();
    let got = consume(&mut *consumer, 2, false).await;
    for (record, position) in records.iter().zip(&positions) {
        let delivered = got
            .iter()
            .find(|d| d.key.as_deref() == Some(record.key.as_str()))
            .unwrap();
        assert_eq!(delivered.topic, topic);
        assert_eq!(delivered.payload, record.payload);
        assert_eq!(delivered.headers, record.headers);
        assert_eq!(
            (delivered.partition, delivered.offset),
            (position.partition, position.offset)
        );
    }
}

/// Concurrent publishers with interleaved keys: every key's records arrive complete, once, in
/// publish order, all on one partition.
pub(crate) async fn ordering_per_key(h: Harness) {
    const PUBLISHERS: usize = 4;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 8;
    const KEYS: usize = 5;
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["order"]).await).unwrap();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (bus, topic) = (Arc::clone(&bus), topic.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = [0_usize; KEYS];
            for b in 0..BATCHES {
                let records: Vec<OutRecord> = (0..PER_BATCH)
                    .map(|i| {
                        let k = (i * 3 + b) % KEYS;
                        seq[k] += 1;
                        OutRecord::new(format!("p{p}-k{k}"), format!("p{p}-k{k}:{}", seq[k]))
                    })
                    .collect();
                bus.publish(&topic, records).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = PUBLISHERS * BATCHES * PER_BATCH;
    let mut consumer = bus.subscribe(&group(), &[topic]).await.unwrap();
    let got = consume(&mut *consumer, total, false).await;
    let mut per_key: BTreeMap<String, (i32, Vec<usize>)> = BTreeMap::new();
    for record in &got {
        let (key, seq) = text(record)
            .split_once(':')
            .map(|(k, s)| (k.to_owned(), s.parse().unwrap()))
            .unwrap();
        assert_eq!(record.key.as_deref(), Some(key.as_str()));
        let entry = per_key.entry(key).or_insert((record.partition, Vec::new()));
        assert_eq!(entry.0, record.partition, "a key spans two partitions");
        entry.1.push(seq);
    }
    assert_eq!(per_key.len(), PUBLISHERS * KEYS);
    for (key, (_, seqs)) in per_key {
        let expected: Vec<usize> = (1..=seqs.len()).collect();
        assert_eq!(seqs, expected, "order of {key}");
    }
}

/// Every key lands on the partition `partition_for` names (Kafka's murmur2 partitioner), so
/// a process can tell where a key goes without publishing (the enricher's account ownership).
pub async fn keys_land_where_partition_for_says(h: Harness) {
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["placed"]).await).unwrap();
    let keys: Vec<String> = (0..40)
        .map(|i| format!("shop{i}.retailcrm.ru"))
        .chain(["127.0.0.1:41234".to_owned(), String::new()])
        .collect();
    let records = keys
        .iter()
        .map(|k| OutRecord::new(k.clone(), k.clone()))
        .collect();
    bus.publish(&topic, records).await.unwrap();
    let partitions = i32::try_from(bus.end_offsets(&topic).await.unwrap().len()).unwrap();
    assert_eq!(partitions, h.partitions());
    let mut consumer = bus.subscribe(&group(), &[topic]).await.unwrap();
    let got = consume(&mut *consumer, keys.len(), false).await;
    let mut spread = std::collections::BTreeSet::new();
    for record in &got {
        let key = text(record);
        assert_eq!(
            record.partition,
            dealflow_shared::bus::partition_for(&key, partitions),
            "{key:?}"
        );
        spread.insert(record.partition);
    }
    assert_eq!(
        spread.len(),
        usize::try_from(partitions).unwrap(),
        "keys spread over every partition"
    );
}

/// A member that stops before committing leaves its records to the next member; what it did
/// commit is not seen again.
pub(crate) async fn at_least_once_after_crash(h: Harness) {
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["alo"]).await).unwrap();
    let group = group();
    let all = publish_numbered(&*bus, &topic, "r", 20).await;

    let mut first = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    let got = consume(&mut *first, 20, false).await;
    // Commit the first half as delivered (per partition a prefix), store the rest uncommitted.
    let (done, pending) = got.split_at(10);
    for record in done {
        first.store(record).unwrap();
    }
    first.commit().await.unwrap();
    for record in pending {
        first.store(record).unwrap();
    }
    drop(first); // the "crash": stored but never committed

    let mut second = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    publish_sentinels(&*bus, &topic, h.partitions()).await;
    let again = read_to_sentinels(&mut *second, h.partitions()).await;
    assert_eq!(payload_set(&again), payload_set(pending));
    assert_eq!(
        payload_set(done).len() + payload_set(pending).len(),
        all.len()
    );
}

/// Commit, drop the bus, open a new one: the group continues after its committed offsets.
pub(crate) async fn resume_after_restart(h: Harness) {
    let group = group();
    let topic = {
        let bus = h.bus().await;
        let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["resume"]).await).unwrap();
        publish_numbered(&*bus, &topic, "old", 10).await;
        let mut consumer = bus
            .subscribe(&group, std::slice::from_ref(&topic))
            .await
            .unwrap();
        consume(&mut *consumer, 10, true).await;
        topic
    };
    let bus = h.bus().await;
    let new = publish_numbered(&*bus, &topic, "new", 5).await;
    let mut consumer = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    publish_sentinels(&*bus, &topic, h.partitions()).await;
    let got = read_to_sentinels(&mut *consumer, h.partitions()).await;
    assert_eq!(payload_set(&got), new.into_iter().collect());
}

/// `reset_group` replays the topic from the beginning; it refuses while a member is active.
pub(crate) async fn replay_from_beginning(h: Harness) {
    let bus = h.bus().await;
    let topics = h.topics(&*bus, &["replay-a", "replay-b"]).await;
    let group = group();
    let mut all = publish_numbered(&*bus, &topics[0], "a", 10).await;
    all.extend(publish_numbered(&*bus, &topics[1], "b", 4).await);

    let mut consumer = bus.subscribe(&group, &topics).await.unwrap();
    consume(&mut *consumer, 14, true).await;
    drop(consumer);

    bus.reset_group(&group, &topics, GroupStart::Earliest, None)
        .await
        .unwrap();
    let mut consumer = bus.subscribe(&group, &topics).await.unwrap();
    let replayed = consume(&mut *consumer, 14, false).await;
    assert_eq!(payload_set(&replayed), all.into_iter().collect());

    let busy = bus
        .reset_group(&group, &topics, GroupStart::Earliest, None)
        .await
        .unwrap_err();
    assert!(matches!(busy, BusError::GroupBusy(_)), "{busy:?}");
}

/// `reset_group` to a time (`dealflow reprocess --since`): the group reads again exactly the
/// records appended from then on, and a time after every record leaves it at the end.
pub(crate) async fn replay_since_a_time(h: Harness) {
    let bus = h.bus().await;
    let topics = h.topics(&*bus, &["since"]).await;
    let group = group();
    publish_numbered(&*bus, &topics[0], "before", 12).await;
    // Record times have millisecond precision: a clear gap on both sides of the cut.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = publish_numbered(&*bus, &topics[0], "after", 9).await;

    let mut consumer = bus.subscribe(&group, &topics).await.unwrap();
    consume(&mut *consumer, 21, true).await;
    drop(consumer);

    let end = bus.end_offsets(&topics[0]).await.unwrap();
    let behind = || async {
        let committed = bus.committed_offsets(&group, &topics[0]).await.unwrap();
        end.iter()
            .map(|(p, end)| {
                let at = committed
                    .iter()
                    .find(|(c, _)| c == p)
                    .map_or(0, |(_, o)| *o);
                end - at
            })
            .sum::<i64>()
    };
    // A partition that does not exist: nothing moves.
    bus.reset_group(&group, &topics, GroupStart::Since(cut), Some(&[9999]))
        .await
        .unwrap();
    assert_eq!(behind().await, 0, "only the named partitions move");
    bus.reset_group(&group, &topics, GroupStart::Since(cut), None)
        .await
        .unwrap();
    assert_eq!(
        behind().await,
        9,
        "exactly the records after the cut are to be read again"
    );
    let mut consumer = bus.subscribe(&group, &topics).await.unwrap();
    let again = consume(&mut *consumer, 9, true).await;
    assert_eq!(payload_set(&again), after.into_iter().collect());
    drop(consumer);

    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    bus.reset_group(&group, &topics, GroupStart::Since(later), None)
        .await
        .unwrap();
    let committed = bus.committed_offsets(&group, &topics[0]).await.unwrap();
    for (partition, end) in end {
        let at = committed
            .iter()
            .find(|(c, _)| *c == partition)
            .map(|(_, o)| *o);
        assert!(
            end == 0 || at == Some(end),
            "partition {partition}: at {at:?}, end {end}"
        );
    }
}

/// After a clean commit a new member gets nothing again.
pub(crate) async fn no_duplicates_after_clean_commit(h: Harness) {
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["nodup"]).await).unwrap();
    let group = group();
    publish_numbered(&*bus, &topic, "once", 30).await;
    let mut consumer = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    let got = consume(&mut *consumer, 30, true).await;
    assert_eq!(payload_set(&got).len(), 30);
    drop(consumer);

    let mut consumer = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    publish_sentinels(&*bus, &topic, h.partitions()).await;
    let again = read_to_sentinels(&mut *consumer, h.partitions()).await;
    assert!(again.is_empty(), "redelivered: {:?}", payload_set(&again));
}

/// High watermarks: zero on a new topic, one past the last offset after publishing.
pub(crate) async fn end_offsets(h: Harness) {
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["ends"]).await).unwrap();
    let empty = bus.end_offsets(&topic).await.unwrap();
    let partitions: Vec<i32> = (0..h.partitions()).collect();
    assert_eq!(empty.iter().map(|e| e.0).collect::<Vec<_>>(), partitions);
    assert!(empty.iter().all(|&(_, high)| high == 0), "{empty:?}");

    let records = (0..17)
        .map(|i| OutRecord::new(format!("k{i}"), "x"))
        .collect();
    let positions = bus.publish(&topic, records).await.unwrap();
    let mut expected: HashMap<i32, i64> = HashMap::new();
    for p in positions {
        let high = expected.entry(p.partition).or_default();
        *high = (*high).max(p.offset + 1);
    }
    let ends = bus.end_offsets(&topic).await.unwrap();
    for (partition, high) in &ends {
        assert_eq!(
            *high,
            expected.get(partition).copied().unwrap_or(0),
            "{ends:?}"
        );
    }
    assert_eq!(ends.iter().map(|e| e.1).sum::<i64>(), 17);

    let missing = bus
        .end_offsets(&format!("{topic}-missing"))
        .await
        .unwrap_err();
    assert!(matches!(missing, BusError::UnknownTopic(_)), "{missing:?}");
}

/// Dead letters keep the bytes and key and name their source; the cap stops the flood.
pub(crate) async fn dead_letters(h: Harness) {
    let bus = h.bus().await;
    let topics = h.topics(&*bus, &["source", "dead-letter"]).await;
    let (source, dlq) = (&topics[0], &topics[1]);
    let originals = (0..3).map(|i| OutRecord::new(format!("acct-{i}"), format!("poison-{i}")));
    bus.publish(source, originals.collect()).await.unwrap();
    let mut consumer = bus
        .subscribe(&group(), std::slice::from_ref(source))
        .await
        .unwrap();
    let bad = consume(&mut *consumer, 3, false).await;

    let cap = DeadLetterCap {
        max: 2,
        window: Duration::from_secs(600),
    };
    let letters = DeadLetters::new(Arc::clone(&bus), dlq.clone(), cap);
    for record in &bad[..2] {
        letters
            .send(record, "test.map", "cannot map: ∅")
            .await
            .unwrap();
    }
    let capped = letters
        .send(&bad[2], "test.map", "again")
        .await
        .unwrap_err();
    assert!(
        matches!(capped, BusError::DeadLetterCapReached { count: 2, .. }),
        "{capped:?}"
    );
    assert!(!capped.is_transient());

    let mut reader = bus
        .subscribe(&group(), std::slice::from_ref(dlq))
        .await
        .unwrap();
    let dead = consume(&mut *reader, 2, false).await;
    for letter in &dead {
        let original = bad[..2]
            .iter()
            .find(|r| r.payload == letter.payload)
            .unwrap();
        assert_eq!(letter.key, original.key);
        let header = |name| String::from_utf8(letter.header(name).unwrap().to_vec()).unwrap();
        assert_eq!(header(HEADER_SOURCE_TOPIC), *source);
        assert_eq!(
            header(HEADER_SOURCE_PARTITION),
            original.partition.to_string()
        );
        assert_eq!(header(HEADER_SOURCE_OFFSET), original.offset.to_string());
        assert_eq!(header(HEADER_STAGE), "test.map");
        assert_eq!(header(HEADER_ERROR), "cannot map: ∅");
    }
    let total: i64 = bus
        .end_offsets(dlq)
        .await
        .unwrap()
        .iter()
        .map(|e| e.1)
        .sum();
    assert_eq!(total, 2, "the capped send must publish nothing");
}

/// A waiting poll is woken by a publish (not by its timeout); an idle one times out empty.
pub(crate) async fn poll_wakes_on_publish(h: Harness) {
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["wake"]).await).unwrap();
    let mut consumer = bus
        .subscribe(&group(), std::slice::from_ref(&topic))
        .await
        .unwrap();
    // Let the member settle (Kafka assigns partitions during the first polls).
    let idle = consumer.poll(10, Duration::from_millis(300)).await.unwrap();
    assert!(idle.is_empty());

    let publisher = {
        let (bus, topic) = (Arc::clone(&bus), topic.clone());
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            bus.publish(&topic, vec![OutRecord::new("k", "wake")])
                .await
                .unwrap();
        })
    };
    let started = Instant::now();
    let long = Duration::from_secs(25);
    let mut got = Vec::new();
    while got.is_empty() && started.elapsed() < long {
        got = consumer.poll(10, long).await.unwrap();
    }
    publisher.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() < long, "woken only by the timeout");
}

/// Subscribing or publishing to a topic that was never created is refused clearly (and the
/// topic is not created on the way).
pub(crate) async fn unknown_topic_is_refused(h: Harness) {
    let bus = h.bus().await;
    let missing = format!("{}missing", unique_prefix());
    let err = bus
        .subscribe(&group(), std::slice::from_ref(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::UnknownTopic(_)), "{err:?}");
    let err = bus
        .publish(&missing, vec![OutRecord::new("k", "v")])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::UnknownTopic(_)), "{err:?}");
    assert!(!err.is_transient());
    let err = bus.end_offsets(&missing).await.unwrap_err();
    assert!(matches!(err, BusError::UnknownTopic(_)), "{err:?}");
}

/// Every retention kind can be created, and ensuring existing topics again is fine.
pub(crate) async fn ensure_topics_is_idempotent(h: Harness) {
    let bus = h.bus().await;
    let prefix = unique_prefix();
    let specs: Vec<TopicSpec> = [
        ("compacted", Retention::Compacted),
        ("days", Retention::Days(7)),
        ("forever", Retention::Forever),
    ]
    .into_iter()
    .map(|(name, retention)| TopicSpec::new(format!("{prefix}{name}"), h.partitions(), retention))
    .collect();
    bus.ensure_topics(&specs).await.unwrap();
    bus.publish(&specs[0].name, vec![OutRecord::new("k", "v")])
        .await
        .unwrap();
    bus.ensure_topics(&specs).await.unwrap();
    for spec in &specs {
        let ends = bus.end_offsets(&spec.name).await.unwrap();
        assert_eq!(ends.len(), usize::try_from(h.partitions()).unwrap());
    }
    let kept: i64 = bus
        .end_offsets(&specs[0].name)
        .await
        .unwrap()
        .iter()
        .map(|e| e.1)
        .sum();
    assert_eq!(kept, 1, "re-ensuring must not recreate the topic");
}

/// `committed_offsets` says what a group committed (the next offset per partition, partitions
/// it never committed left out), right after the commit returns, and asking never disturbs the
/// group's active member: it keeps its partitions and nothing is redelivered to it.
pub(crate) async fn committed_offsets(h: Harness) {
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["committed"]).await).unwrap();
    let group = group();
    assert_eq!(bus.committed_offsets(&group, &topic).await.unwrap(), []);

    publish_numbered(&*bus, &topic, "c", 20).await;
    let mut member = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    let got = consume(&mut *member, 20, false).await;
    // Commit all but the last record of each partition.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for record in &got {
        let end = last.entry(record.partition).or_default();
        *end = (*end).max(record.offset);
    }
    let mut expected: Vec<(i32, i64)> = Vec::new();
    for record in &got {
        if record.offset < last[&record.partition] {
            member.store(record).unwrap();
        }
    }
    for (&partition, &end) in &last {
        if end > 0 {
            expected.push((partition, end));
        }
    }
    member.commit().await.unwrap();
    // No polling: the commit has returned, so the offsets are there.
    assert_eq!(
        bus.committed_offsets(&group, &topic).await.unwrap(),
        expected
    );
    assert_eq!(
        bus.committed_offsets(&format!("{group}-other"), &topic)
            .await
            .unwrap(),
        [],
        "another group committed nothing"
    );

    // The member was not disturbed: it still reads what comes next, and only that.
    let assigned = member.assignment();
    publish_sentinels(&*bus, &topic, h.partitions()).await;
    let again = read_to_sentinels(&mut *member, h.partitions()).await;
    assert!(again.is_empty(), "redelivered: {:?}", payload_set(&again));
    assert_eq!(member.assignment(), assigned);

    let missing = bus
        .committed_offsets(&group, &format!("{topic}-missing"))
        .await
        .unwrap_err();
    assert!(matches!(missing, BusError::UnknownTopic(_)), "{missing:?}");
}
