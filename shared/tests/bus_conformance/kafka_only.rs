//! Behaviour specific to Kafka.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use dealflow_shared::bus::{Delivered, EventBus, KafkaBus, OutRecord, Retention, TopicSpec};
use dealflow_testkit::{Broker, Storage, unique_prefix};
use tokio::time::Instant;

use crate::support::{
    Harness, POLL, WAIT, group, kafka_config, payload_set, publish_numbered, publish_sentinels,
    read_to_sentinels, text,
};

/// Two members of one group split the partitions, and each record goes to one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_in_one_group_split_the_partitions() {
    let h = Harness::kafka().await;
    let bus = h.bus().await;
    let [topic] = <[String; 1]>::try_from(h.topics(&*bus, &["split"]).await).unwrap();
    let group = group();
    let mut a = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    let mut b = bus
        .subscribe(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut got: Vec<(char, Delivered)> = Vec::new();
    loop {
        let (ra, rb) = tokio::join!(
            a.poll(100, Duration::from_millis(200)),
            b.poll(100, Duration::from_millis(200))
        );
        got.extend(ra.unwrap().into_iter().map(|r| ('a', r)));
        got.extend(rb.unwrap().into_iter().map(|r| ('b', r)));
        let (sa, sb) = (a.assignment(), b.assignment());
        if !sa.is_empty() && !sb.is_empty() && sa.len() + sb.len() == 3 {
            assert!(sa.iter().all(|p| !sb.contains(p)), "{sa:?} / {sb:?}");
            break;
        }
        assert!(Instant::now() < deadline, "assignments {sa:?} / {sb:?}");
    }
    assert!(got.is_empty(), "nothing was published yet");
    let owner: HashMap<i32, char> = a
        .assignment()
        .into_iter()
        .map(|(_, p)| (p, 'a'))
        .chain(b.assignment().into_iter().map(|(_, p)| (p, 'b')))
        .collect();

    let sent = publish_numbered(&*bus, &topic, "split", 60).await;
    let deadline = Instant::now() + WAIT;
    while got.len() < sent.len() {
        assert!(Instant::now() < deadline, "received {} of 60", got.len());
        let (ra, rb) = tokio::join!(a.poll(100, POLL), b.poll(100, POLL));
        got.extend(ra.unwrap().into_iter().map(|r| ('a', r)));
        got.extend(rb.unwrap().into_iter().map(|r| ('b', r)));
    }
    let payloads: BTreeSet<String> = got.iter().map(|(_, r)| text(r)).collect();
    assert_eq!(payloads, sent.into_iter().collect());
    assert!(got.iter().all(|(who, r)| owner[&r.partition] == *who));
    assert!(got.iter().any(|(who, _)| *who == 'a') && got.iter().any(|(who, _)| *who == 'b'));
}

/// With the broker down, publish fails with a transient error in the configured time; after
/// the broker restarts (durable storage) the acked records are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_is_transient() {
    let mut broker = Broker::start_with(Storage::Sqlite).await;
    let mut config = kafka_config(&broker);
    config.publish_timeout = Duration::from_secs(2);
    let bus = KafkaBus::new(config).unwrap();
    let topic = format!("{}outage", unique_prefix());
    bus.ensure_topics(&[TopicSpec::new(&topic, 1, Retention::Forever)])
        .await
        .unwrap();
    publish_numbered(&bus, &topic, "before", 5).await;

    broker.stop();
    let err = bus
        .publish(&topic, vec![OutRecord::new("k", "lost")])
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    broker.restart().await;
    let deadline = Instant::now() + WAIT;
    loop {
        match bus
            .publish(&topic, vec![OutRecord::new("k", "after")])
            .await
        {
            Ok(_) => break,
            Err(e) if e.is_transient() && Instant::now() < deadline => {}
            Err(e) => panic!("publish after restart: {e:?}"),
        }
    }
    let mut consumer = bus
        .subscribe(&group(), std::slice::from_ref(&topic))
        .await
        .unwrap();
    publish_sentinels(&bus, &topic, 1).await;
    let got = read_to_sentinels(&mut *consumer, 1).await;
    let payloads = payload_set(&got);
    for i in 0..5 {
        assert!(payloads.contains(&format!("before-{i}")), "{payloads:?}");
    }
    assert!(payloads.contains("after"), "{payloads:?}");
}
